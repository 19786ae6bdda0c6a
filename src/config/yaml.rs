//! Bounded YAML loading.
//!
//! Container configs come from images and are untrusted. quire (the YAML
//! dialect lithos uses) expands aliases by cloning nodes and parses by
//! recursive descent, so a "billion laughs" file or a deeply nested one would
//! cost exponential memory or the stack. Before quire sees any text we make
//! one streaming pass with an event parser (`saphyr-parser`, no recursion,
//! no expansion) that counts nodes *as expanded*, nesting depth, documents
//! and duplicate keys, and stops at the first limit crossed. Only a file that
//! passes goes to quire, whose AST we then convert ourselves (`reader.rs`).
//!
//! The function here is pure: bytes in, AST or error out. Callers decide how
//! the bytes were read (size-capped, `openat2(RESOLVE_IN_ROOT)` for images).

use std::collections::{HashMap, HashSet};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::Rc;

use quire::ast::Ast;
use saphyr_parser::{Event, Parser};

use super::error::ConfigError;

/// Bounds applied to one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest file accepted, in bytes.
    pub max_bytes: usize,
    /// Largest number of YAML nodes after alias expansion.
    pub max_nodes: usize,
    /// Deepest nesting of mappings and sequences.
    pub max_depth: usize,
}

/// Limits for container configs read from images (untrusted).
pub const UNTRUSTED: Limits = Limits {
    max_bytes: 1 << 20,
    max_nodes: 100_000,
    max_depth: 64,
};

/// Limits for operator-written files (master, sandboxes, processes). They are
/// trusted, but a typo should still not make `cairn tree` eat the host.
pub const TRUSTED: Limits = Limits {
    max_bytes: 16 << 20,
    max_nodes: 2_000_000,
    max_depth: 128,
};

/// Parse `bytes` (the content of `file`) into a quire AST, within `limits`.
pub fn parse(file: &str, bytes: &[u8], limits: &Limits) -> Result<Ast, ConfigError> {
    if bytes.len() > limits.max_bytes {
        return Err(ConfigError::new(
            file,
            format!(
                "file is {} bytes, more than the limit of {} bytes",
                bytes.len(),
                limits.max_bytes
            ),
        ));
    }
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let line = 1 + bytes[..e.valid_up_to()]
            .iter()
            .filter(|&&b| b == b'\n')
            .count();
        ConfigError::new(file, "file is not valid UTF-8").at(line)
    })?;
    if let Some(off) = text.find('\0') {
        let line = 1 + text[..off].matches('\n').count();
        return Err(ConfigError::new(file, "file contains a NUL byte").at(line));
    }
    doc_markers(file, text)?;
    preflight(file, text, limits)?;
    quire_parse(file, text)
}

/// quire's tokenizer reads `---` as a document start wherever a token
/// begins, even glued to text (`---[`) or in the middle of a line, while
/// YAML (and so the pre-flight) reads those as plain text. Such a file
/// would reach quire unchecked, so refuse it: `---` must be at the start
/// of a line and followed by a space or the end of the line.
fn doc_markers(file: &str, text: &str) -> Result<(), ConfigError> {
    let b = text.as_bytes();
    let mut from = 0;
    while let Some(off) = text[from..].find("---") {
        let i = from + off;
        from = i + 1;
        let boundary = i == 0
            || matches!(
                b[i - 1],
                b' ' | b'\t' | b'\n' | b'\r' | b'[' | b']' | b'{' | b'}' | b',' | b':'
            );
        if !boundary {
            continue;
        }
        let line_start = i == 0 || b[i - 1] == b'\n';
        let spaced = b
            .get(i + 3)
            .is_none_or(|c| matches!(c, b' ' | b'\t' | b'\n' | b'\r'));
        if !(line_start && spaced) {
            let line = 1 + text[..i].matches('\n').count();
            return Err(ConfigError::new(
                file,
                "\"---\" may only start a line, followed by a space or a line end (quote it if it is text)",
            )
            .at(line));
        }
    }
    Ok(())
}

/// One open mapping or sequence during the pre-flight pass.
struct Frame {
    is_map: bool,
    /// For mappings: the next node is a key.
    expect_key: bool,
    keys: HashSet<String>,
    anchor: usize,
    /// Nodes inside this collection, counting alias expansions.
    size: usize,
}

impl Frame {
    /// A node (`key` is its text when it is a scalar) completed inside this
    /// collection. Returns the duplicate key, if it is one.
    fn child(&mut self, key: Option<&str>) -> Option<String> {
        if !self.is_map {
            return None;
        }
        let was_key = self.expect_key;
        self.expect_key = !self.expect_key;
        match key {
            // `<<` may repeat (merge keys).
            Some(k) if was_key && k != "<<" && !self.keys.insert(k.to_string()) => {
                Some(k.to_string())
            }
            _ => None,
        }
    }
}

/// The streaming pass described in the module docs.
fn preflight(file: &str, text: &str, limits: &Limits) -> Result<(), ConfigError> {
    let mut stack: Vec<Frame> = Vec::new();
    let mut anchor_sizes: HashMap<usize, usize> = HashMap::new();
    let mut total: usize = 0;
    let mut documents = 0usize;

    for item in Parser::new_from_str(text) {
        let (event, span) = item.map_err(|e| {
            ConfigError::new(file, format!("YAML syntax error: {}", e.info())).at(e.marker().line())
        })?;
        let line = span.start.line();
        let is_start = matches!(event, Event::SequenceStart(..) | Event::MappingStart(..));
        // (nodes added, scalar text for duplicate-key tracking)
        let (added, key): (usize, Option<String>) = match event {
            Event::DocumentStart(_) => {
                documents += 1;
                if documents > 1 {
                    return Err(
                        ConfigError::new(file, "more than one YAML document in the file").at(line),
                    );
                }
                continue;
            }
            Event::Scalar(value, _, anchor, _) => {
                if anchor != 0 {
                    anchor_sizes.insert(anchor, 1);
                }
                (1, Some(value.into_owned()))
            }
            Event::Alias(id) => (anchor_sizes.get(&id).copied().unwrap_or(1), None),
            Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) => {
                if stack.len() >= limits.max_depth {
                    return Err(ConfigError::new(
                        file,
                        format!("nesting deeper than {} levels", limits.max_depth),
                    )
                    .at(line));
                }
                stack.push(Frame {
                    is_map: matches!(event, Event::MappingStart(..)),
                    expect_key: true,
                    keys: HashSet::new(),
                    anchor,
                    size: 0,
                });
                (1, None)
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let Some(frame) = stack.pop() else { continue };
                if frame.anchor != 0 {
                    anchor_sizes.insert(frame.anchor, frame.size + 1);
                }
                if let Some(parent) = stack.last_mut() {
                    parent.size = parent.size.saturating_add(frame.size + 1);
                    parent.child(None);
                }
                continue;
            }
            _ => continue,
        };
        total = total.saturating_add(added);
        if total > limits.max_nodes {
            return Err(ConfigError::new(
                file,
                format!(
                    "more than {} YAML nodes (counting alias expansion); refusing to parse",
                    limits.max_nodes
                ),
            )
            .at(line));
        }
        // A collection start is counted in its own frame's parent at its end.
        if is_start {
            continue;
        }
        if let Some(top) = stack.last_mut() {
            top.size = top.size.saturating_add(added);
            if let Some(dup) = top.child(key.as_deref()) {
                return Err(ConfigError::new(
                    file,
                    format!("duplicate key {dup:?} in one mapping"),
                )
                .at(line));
            }
        }
    }
    Ok(())
}

/// Run quire's parser and preprocessor (merge keys, aliases). Includes are
/// refused: a config must never make us read another file.
fn quire_parse(file: &str, text: &str) -> Result<Ast, ConfigError> {
    let result = catch_unwind(AssertUnwindSafe(|| {
        let mut options = quire::Options::default();
        options.allow_include(|pos, _incl, err, _opts| {
            err.add_error(quire::Error::preprocess_error(
                pos,
                "includes are not allowed in cairn configs".to_string(),
            ));
            Ast::void(pos)
        });
        let err = quire::ErrorCollector::new();
        let ast = quire::raw_parse(Rc::new(String::new()), text, |doc| {
            quire::ast::process(&options, doc, &err)
        });
        match ast {
            Ok(ast) => err.into_result(ast).map_err(|l| l.to_string()),
            Err(e) => Err(err.into_fatal(e).to_string()),
        }
    }));
    match result {
        Ok(Ok(ast)) => Ok(ast),
        Ok(Err(msg)) => Err(quire_error(file, &msg)),
        Err(_) => Err(ConfigError::new(
            file,
            "the YAML parser failed on this file (internal panic); please simplify it",
        )),
    }
}

/// quire formats errors as `FILE:LINE:COL: Kind: text`; we gave it an empty
/// file name, so pick the line out and keep the text.
fn quire_error(file: &str, msg: &str) -> ConfigError {
    let first = msg.lines().next().unwrap_or("").trim();
    let mut parts = first.splitn(4, ':');
    let _empty = parts.next();
    let line = parts.next().and_then(|l| l.trim().parse::<usize>().ok());
    let _col = parts.next();
    let rest = parts.next().map(str::trim).unwrap_or(first);
    let err = ConfigError::new(file, rest.to_string());
    match line {
        Some(l) => err.at(l),
        None => err,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn p(text: &str) -> Result<Ast, ConfigError> {
        parse("f.yaml", text.as_bytes(), &UNTRUSTED)
    }

    #[test]
    fn plain_config_parses() {
        let ast = p("a: 1\nb: !Tmpfs {size: 1Mi}\nc: [x, y]\n_anchor: &x {k: v}\nd:\n  <<: *x\n")
            .unwrap();
        assert!(matches!(ast, Ast::Map(..)));
    }

    #[test]
    fn empty_file_is_null() {
        assert!(matches!(p("").unwrap(), Ast::Null(..)));
    }

    #[test]
    fn alias_bomb_is_refused_quickly() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..10 {
            let prev = format!("*a{}", i - 1);
            let items = [prev.as_str(); 10].join(", ");
            text.push_str(&format!("a{i}: &a{i} [{items}]\n"));
        }
        let start = Instant::now();
        let e = p(&text).unwrap_err();
        assert!(e.message.contains("YAML nodes"), "{e}");
        assert!(start.elapsed().as_millis() < 500);
    }

    #[test]
    fn deep_nesting_is_refused() {
        let text = "[".repeat(10_000) + &"]".repeat(10_000);
        let e = p(&text).unwrap_err();
        assert!(
            e.message.contains("nesting deeper") || e.message.contains("recursion limit"),
            "{e}"
        );
        let mut block = String::new();
        for i in 0..100 {
            block.push_str(&" ".repeat(i));
            block.push_str("a:\n");
        }
        assert!(p(&block).unwrap_err().message.contains("nesting deeper"));
    }

    #[test]
    fn too_big_is_refused_before_parsing() {
        let text = "a: b\n".repeat(700_000);
        let start = Instant::now();
        let e = p(&text).unwrap_err();
        assert!(e.message.contains("more than the limit"), "{e}");
        assert!(start.elapsed().as_millis() < 100);
    }

    #[test]
    fn too_many_nodes() {
        let text = format!("[{}]", vec!["1"; 120_000].join(","));
        assert!(p(&text).unwrap_err().message.contains("YAML nodes"));
    }

    #[test]
    fn bad_bytes() {
        let e = parse("f.yaml", b"a: 1\nb: \xff\n", &UNTRUSTED).unwrap_err();
        assert_eq!(e.line, Some(2));
        assert!(e.message.contains("UTF-8"));
        let e = parse("f.yaml", b"a: \0", &UNTRUSTED).unwrap_err();
        assert!(e.message.contains("NUL"));
        assert_eq!(e.line, Some(1));
        let e = parse("f.yaml", b"a: 1\nb: 2\nc: \0", &UNTRUSTED).unwrap_err();
        assert_eq!(
            (e.message.as_str(), e.line),
            ("file contains a NUL byte", Some(3))
        );
    }

    /// A file of exactly `max_bytes` is read; one byte more is not.
    #[test]
    fn size_limit_is_inclusive() {
        let limits = Limits {
            max_bytes: 8,
            ..UNTRUSTED
        };
        assert!(parse("f.yaml", b"a: 12345", &limits).is_ok());
        let e = parse("f.yaml", b"a: 123456", &limits).unwrap_err();
        assert_eq!(e.message, "file is 9 bytes, more than the limit of 8 bytes");
    }

    #[test]
    fn duplicates_and_documents() {
        let e = p("a: 1\nb: 2\na: 3\n").unwrap_err();
        assert_eq!(e.line, Some(3));
        assert!(e.message.contains("duplicate key \"a\""));
        assert!(p("a: {x: 1}\nb: {x: 2}\n").is_ok());
        assert!(
            p("a: 1\n---\nb: 2\n")
                .unwrap_err()
                .message
                .contains("more than one")
        );
    }

    #[test]
    fn includes_and_syntax_errors() {
        let e = p("a: !*Include /etc/shadow\n").unwrap_err();
        assert!(e.message.contains("includes are not allowed"), "{e}");
        let e = p("a: [1, 2\n").unwrap_err();
        assert!(e.message.contains("YAML"), "{e}");
        assert!(e.line.is_some());
    }

    #[test]
    fn glued_document_markers_are_refused() {
        // Found by fuzzing: quire reads these as a document start and a
        // flow collection, the pre-flight as one scalar.
        let mut bomb = String::from("---[&a0 [x,x,x,x,x,x,x,x,x,x]");
        for i in 1..8 {
            bomb.push_str(&format!(
                ",&a{i} [{}]",
                vec![format!("*a{}", i - 1); 10].join(",")
            ));
        }
        bomb.push(']');
        let start = Instant::now();
        let e = p(&bomb).unwrap_err();
        assert!(e.message.contains("\"---\""), "{e}");
        assert!(start.elapsed().as_millis() < 100);
        let deep = "---".to_string() + &"[".repeat(11_000) + &"]".repeat(11_000);
        assert!(p(&deep).is_err());
        for bad in [
            "---{executable: /bin/sh}",
            "a: --- [x]\n",
            "a: [---x]\n",
            "---a",
            "x: 1\n  ---b\n",
        ] {
            assert!(p(bad).is_err(), "{bad:?}");
        }
        // The error names the marker's line.
        let e = p("x: 1\ny: 2\n  ---b\n").unwrap_err();
        assert_eq!(e.line, Some(3), "{e}");
        for good in [
            "--- \na: 1\n",
            "---\na: 1\n",
            "a: x---y\n",
            "a: '--x'\n",
            "--\n",
            "a: -x---\n",
            // A marker after a comment line.
            "#c\n---\na: 1\n",
            "#c\n--- \na: 1\n",
        ] {
            assert!(p(good).is_ok(), "{good:?}: {:?}", p(good).err());
        }
    }

    #[test]
    fn quire_panics_found_by_fuzzing_are_contained() {
        for text in [
            "---[a",
            "---{",
            "---{a",
            "---{a:[]",
            "|\n  a\n#",
            "|\ne\n  \n{",
            "|\na\n  \na\u{21c}",
            "|\n\u{1}!\u{1}",
            "# \u{1}!\u{1}\n",
        ] {
            // Refused up front or a caught parser failure: an error, not a crash.
            assert!(p(text).is_err(), "{text:?}");
        }
    }

    #[test]
    fn global_tags_do_not_panic() {
        for text in [
            "a: !!str x\n",
            "!!map {a: 1}\n",
            "a: !<tag:x> 1\n",
            "a: !x!y 1\n",
        ] {
            let _ = p(text);
        }
    }
}
