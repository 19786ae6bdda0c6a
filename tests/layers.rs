//! The import graph of `src/`: every arrow points down the layers, and no
//! two modules import each other, directly or around a loop.
//!
//! Layers, lowest first: `sys`, `text` and `crypt`; `config` and `logger`; `spec`
//! and `image`; `protocol` (the tree–knot protocol) and `load` (loading
//! the desired set from the config files); `knot` and `tree`,
//! which know each other only through `protocol`; `cli`. A module may
//! import its own layer's modules only within its own top-level module
//! (`tree::apply` may use `tree::plan`, not `knot::fs`).
//!
//! The graph is read from the source: every `use` and every path that
//! starts with `crate::` or `super::`, outside `#[cfg(test)]` modules and
//! `*_tests.rs` files (a test may reach anywhere). A module's reference to
//! its own parent (`super::X` where X is defined in `mod.rs`) is not an
//! arrow: a parent module is its children's facade.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const LAYERS: &[(&str, u32)] = &[
    ("sys", 0),
    ("text", 0),
    ("crypt", 0),
    ("config", 1),
    ("logger", 1),
    ("spec", 2),
    ("image", 2),
    ("protocol", 3),
    ("load", 3),
    ("knot", 4),
    ("tree", 4),
    ("cli", 5),
];

fn layer(module: &str) -> Option<u32> {
    let top = module.split("::").next().unwrap_or(module);
    LAYERS.iter().find(|(n, _)| *n == top).map(|(_, l)| *l)
}

/// Every `.rs` file below `dir`.
fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).expect("read src") {
        let p = e.expect("dir entry").path();
        if p.is_dir() {
            sources(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The module path of a file (`src/tree/run.rs` → `tree::run`).
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file
        .strip_prefix(src)
        .expect("below src")
        .with_extension("");
    let mut parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        parts.pop();
    }
    parts.join("::")
}

/// `src` without `#[cfg(test)] mod NAME { ... }` blocks and `//` comments.
fn production_code(src: &str) -> String {
    let mut out = String::new();
    let mut rest = src;
    while let Some(at) = rest.find("#[cfg(test)]") {
        out.push_str(&rest[..at]);
        let after = &rest[at..];
        let Some(open) = after.find('{') else { break };
        let head = &after[..open];
        if !head.contains("mod ") || head.contains(';') {
            // Not an inline test module: keep it (a `mod x;` declaration's
            // file is skipped by name).
            out.push_str("#[cfg(test)]");
            rest = &after["#[cfg(test)]".len()..];
            continue;
        }
        let mut depth = 0;
        let mut end = after.len();
        for (i, c) in after.char_indices().skip(open) {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = i + 1;
                        break;
                    }
                }
                _ => {}
            }
        }
        rest = &after[end..];
    }
    out.push_str(rest);
    out.lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

/// `a::{b, c::{d, e}}` → `a::b`, `a::c::d`, `a::c::e`.
fn expand(tree: &str) -> Vec<String> {
    let Some(open) = tree.find('{') else {
        return vec![tree.to_string()];
    };
    let prefix = &tree[..open];
    let body = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
    let mut parts = Vec::new();
    let mut depth = 0;
    let mut cur = String::new();
    for c in body.chars() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            _ => {}
        }
        if c == ',' && depth == 0 {
            parts.push(std::mem::take(&mut cur));
        } else {
            cur.push(c);
        }
    }
    parts.push(cur);
    parts
        .iter()
        .filter(|p| !p.is_empty())
        .flat_map(|p| expand(p))
        .map(|p| format!("{prefix}{p}").replace("::self", ""))
        .collect()
}

/// Paths named in `code`: use trees, and inline `crate::`/`super::` paths.
fn paths(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    let squeezed: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    let mut rest = squeezed.as_str();
    // `use` declarations, whitespace gone: "usea::{b,c};" (a `pub use`
    // reads "pubusea::b;", found the same way).
    while let Some(at) = rest.find("use") {
        let after = &rest[at + 3..];
        let starts_path = after.starts_with("crate::") || after.starts_with("super::");
        if starts_path && let Some(end) = after.find(';') {
            out.extend(expand(&after[..end]));
        }
        rest = after;
    }
    for start in ["crate::", "super::"] {
        let mut rest = code;
        while let Some(at) = rest.find(start) {
            let before = rest[..at].chars().last();
            let tail = &rest[at..];
            let len = tail
                .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                .unwrap_or(tail.len());
            if !before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                out.push(tail[..len].trim_end_matches(':').to_string());
            }
            rest = &tail[len.max(1)..];
        }
    }
    out
}

struct Graph {
    edges: BTreeMap<String, BTreeSet<String>>,
}

fn graph() -> Graph {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let mut by_module: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
    for f in files {
        let name = f.file_stem().unwrap_or_default().to_string_lossy();
        if name.ends_with("_tests")
            || name == "tests"
            || f.components().any(|c| c.as_os_str() == "mini_init")
        {
            continue;
        }
        by_module.entry(module_of(&src, &f)).or_default().push(f);
    }
    let known: BTreeSet<String> = by_module.keys().cloned().collect();
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (module, files) in &by_module {
        let from: Vec<&str> = if module.is_empty() {
            vec![]
        } else {
            module.split("::").collect()
        };
        for f in files {
            let code = production_code(&std::fs::read_to_string(f).expect("read source"));
            for p in paths(&code) {
                let mut parts: Vec<&str> = p.split("::").collect();
                let mut base: Vec<&str>;
                if parts.first() == Some(&"crate") {
                    base = Vec::new();
                    parts.remove(0);
                } else {
                    base = from.clone();
                    while parts.first() == Some(&"super") {
                        base.pop();
                        parts.remove(0);
                    }
                }
                base.extend(parts);
                // The longest prefix that is a module.
                let target = (1..=base.len())
                    .rev()
                    .map(|k| base[..k].join("::"))
                    .find(|m| known.contains(m));
                let Some(target) = target else { continue };
                let is_ancestor = module.starts_with(&format!("{target}::"));
                if &target != module && !is_ancestor {
                    edges.entry(module.clone()).or_default().insert(target);
                }
            }
        }
    }
    Graph { edges }
}

#[test]
fn every_import_points_down_a_layer_or_stays_in_its_module() {
    let g = graph();
    let mut wrong = Vec::new();
    for (from, tos) in &g.edges {
        let (Some(lf), top_from) = (layer(from), from.split("::").next()) else {
            continue;
        };
        for to in tos {
            let Some(lt) = layer(to) else { continue };
            let same_top = top_from == to.split("::").next();
            if lt > lf || (lt == lf && !same_top) {
                wrong.push(format!("{from} -> {to}"));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports that point up or sideways: {wrong:#?}"
    );
    // The checker sees what it must: these arrows exist.
    assert!(
        g.edges["tree::launch"].contains("protocol"),
        "{:?}",
        g.edges["tree::launch"]
    );
    assert!(g.edges["knot::fs"].contains("knot::steps"));
}

#[test]
fn no_module_imports_itself_around_a_loop() {
    let g = graph();
    // Depth-first search for a back edge.
    fn visit<'a>(
        g: &'a Graph,
        m: &'a str,
        path: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
    ) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|p| *p == m) {
            let mut cycle: Vec<String> = path[i..].iter().map(|s| s.to_string()).collect();
            cycle.push(m.to_string());
            return Some(cycle);
        }
        if done.contains(m) {
            return None;
        }
        path.push(m);
        for next in g.edges.get(m).into_iter().flatten() {
            if let Some(c) = visit(g, next, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(m);
        None
    }
    let mut done = BTreeSet::new();
    for m in g.edges.keys() {
        if let Some(cycle) = visit(&g, m, &mut Vec::new(), &mut done) {
            panic!("import cycle: {}", cycle.join(" -> "));
        }
    }
}

#[test]
fn the_reader_expands_use_trees_and_skips_test_code() {
    assert_eq!(
        expand("crate::a::{b,c::{d,e},self}"),
        [
            "crate::a::b",
            "crate::a::c::d",
            "crate::a::c::e",
            "crate::a"
        ]
    );
    let code = production_code(
        "use crate::x; // crate::y\n#[cfg(test)]\nmod tests { use crate::z; }\nfn f() { super::w::g(); }",
    );
    let p = paths(&code);
    assert!(p.contains(&"crate::x".to_string()), "{p:?}");
    assert!(p.contains(&"super::w::g".to_string()), "{p:?}");
    assert!(
        !p.iter().any(|p| p.contains('y') || p.contains('z')),
        "{p:?}"
    );
}
