//! `@{name}` substitution helpers, on arbitrary text.
//!
//! Input layout: `template \0 name=value \0 name=value ...` (the first NUL
//! separates the template from the variable table; invalid UTF-8 is replaced
//! lossily).

#![no_main]

use std::collections::HashMap;

use cairn::config::variables::{is_pid_placeholder, references, substitute};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.split('\0');
    let template = parts.next().unwrap_or("");
    let vars: HashMap<&str, &str> = parts
        .map(|kv| kv.split_once('=').unwrap_or((kv, "")))
        .collect();

    // 1. With the given table.
    let refs = references(template);
    let result = substitute(template, &|n| vars.get(n).map(|v| v.to_string()));
    let _ = is_pid_placeholder(template);
    if let Ok(out) = &result {
        // Success means every reference was known and none was the pid.
        for r in &refs {
            assert!(vars.contains_key(r), "substituted unknown variable {r:?}");
        }
        if refs.is_empty() {
            assert_eq!(out, template);
        }
    }

    // 2. Property: a lookup that knows every name.
    let wrapped = substitute(template, &|n| Some(format!("<{n}>")));
    if !template.contains("@{") {
        assert_eq!(wrapped.as_deref(), Ok(template), "template without @{{ changed");
        assert!(refs.is_empty());
        assert!(!is_pid_placeholder(template));
    }
    match &wrapped {
        Ok(out) => {
            // Only the pid placeholder can fail when every name is known.
            for r in &refs {
                assert!(
                    !matches!(*r, "lithos:pid" | "cairn:pid"),
                    "@{{{r}}} was substituted"
                );
                assert!(out.contains(&format!("<{r}>")), "{r:?} missing from {out:?}");
            }
        }
        Err(e) => {
            assert!(
                refs.iter().any(|r| matches!(*r, "lithos:pid" | "cairn:pid")),
                "failed without a pid reference: {e}"
            );
        }
    }
    if is_pid_placeholder(template) {
        assert_eq!(refs.len(), 1);
        assert!(wrapped.is_err());
    }

    // Each variable value as a template too (values are environ values).
    for v in vars.values() {
        let _ = is_pid_placeholder(v);
        let _ = references(v);
    }
});
