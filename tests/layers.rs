//! The import rule of DESIGN.md "Code layout", checked on the source: modules import only from
//! their own layer or below, never in a circle (between top-level modules, nor between the files
//! of one module), and the interfaces (cli, admin) never reach into the store.
//!
//! Layers, bottom up: vocabulary (model, telemetry); pki and tls; store and upstream; control and
//! routes; gateway; admin and cli; main.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const LAYERS: &[&[&str]] = &[
    &["model", "telemetry"],
    &["pki", "tls"],
    &["store", "upstream"],
    &["control", "routes"],
    &["gateway"],
    &["admin", "cli"],
];

/// Modules above `store` that must go through `control` instead (DESIGN.md: "`cli` and `admin`
/// never touch `store` directly").
const NOT_TO_STORE: &[&str] = &["admin", "cli", "gateway"];

fn layer_of(top: &str) -> Option<usize> {
    LAYERS.iter().position(|l| l.contains(&top))
}

/// A source file as a module path: `src/routes/table.rs` -> ["routes", "table"].
fn module_path(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).unwrap().with_extension("");
    let mut parts: Vec<String> = rel.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    parts
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The code of a file without comments and string literals (so prose never counts as an import).
fn code_only(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'/' && b.get(i + 1) == Some(&b'/') {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if b[i] == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                if b[i] == b'\\' {
                    i += 1;
                }
                i += 1;
            }
            i += 1;
            out.push_str("\"\"");
        } else if b[i] == b'r' && b.get(i + 1) == Some(&b'#') && b.get(i + 2) == Some(&b'"') {
            let end = text[i + 3..].find("\"#").map(|e| i + 3 + e + 2).unwrap_or(b.len());
            i = end;
            out.push_str("\"\"");
        } else {
            out.push(b[i] as char);
            i += 1;
        }
    }
    out
}

/// Every path a file names: `crate::a::b::C`, `super::x::Y`, and the items of `use crate::{a, b::c}`.
fn paths_in(code: &str) -> Vec<Vec<String>> {
    let mut found = Vec::new();
    for (start, root) in code
        .match_indices("crate::")
        .map(|(i, _)| (i, "crate"))
        .chain(code.match_indices("super::").map(|(i, _)| (i, "super")))
    {
        let before = code[..start].chars().last();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
            continue;
        }
        let rest = &code[start + root.len() + 2..];
        let mut prefix = vec![root.to_string()];
        let mut chars = rest;
        loop {
            let ident: String = chars.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
            if ident.is_empty() {
                if let Some(group) = chars.strip_prefix('{') {
                    // `crate::{a, b::c}`: one path per item at the first level.
                    let inner: String = group.chars().take_while(|c| *c != '}').collect();
                    for item in inner.split(',') {
                        let mut p = prefix.clone();
                        p.extend(
                            item.trim()
                                .split("::")
                                .map(|s| s.trim().to_string())
                                .filter(|s| !s.is_empty() && s != "self"),
                        );
                        found.push(p);
                    }
                } else {
                    found.push(prefix.clone());
                }
                break;
            }
            prefix.push(ident.clone());
            chars = &chars[ident.len()..];
            match chars.strip_prefix("::") {
                Some(r) => chars = r,
                None => {
                    found.push(prefix.clone());
                    break;
                }
            }
        }
    }
    found
}

/// Resolve a path to the module file it lands in (the longest module-path prefix that is a file).
/// `from` is the module the file defines (`a/b/c.rs` and `a/b/c/mod.rs` both define `a::b::c`).
fn resolve(from: &[String], path: &[String], modules: &BTreeSet<Vec<String>>) -> Option<Vec<String>> {
    let (mut full, mut rest) = if path[0] == "crate" { (Vec::new(), &path[1..]) } else { (from.to_vec(), path) };
    while rest.first().map(String::as_str) == Some("super") {
        full.pop();
        rest = &rest[1..];
    }
    full.extend(rest.iter().cloned());
    (1..=full.len()).rev().map(|n| full[..n].to_vec()).find(|p| modules.contains(p))
}

struct Graph {
    /// file module -> file modules it names
    edges: BTreeMap<Vec<String>, BTreeSet<Vec<String>>>,
}

fn build() -> Graph {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let modules: BTreeSet<Vec<String>> = files.iter().map(|f| module_path(&src, f)).collect();
    let mut edges = BTreeMap::new();
    for f in &files {
        let from = module_path(&src, f);
        if from.is_empty() || from == ["main"] || from == ["lib"] {
            continue;
        }
        let text = std::fs::read_to_string(f).unwrap();
        // Unit tests (by convention at the end of a file) may reach anywhere.
        let text = text.split("#[cfg(test)]").next().unwrap_or_default();
        let code = code_only(text);
        let mut to = BTreeSet::new();
        for p in paths_in(&code) {
            if p.len() < 2 {
                continue;
            }
            if let Some(target) = resolve(&from, &p, &modules) {
                if target != from && !target.is_empty() {
                    to.insert(target);
                }
            }
        }
        edges.insert(from, to);
    }
    Graph { edges }
}

fn cycle(nodes: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        n: &str,
        g: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        state.insert(n.to_string(), 1);
        stack.push(n.to_string());
        for m in g.get(n).into_iter().flatten() {
            match state.get(m.as_str()).copied().unwrap_or(0) {
                1 => {
                    let at = stack.iter().position(|s| s == m).unwrap();
                    let mut c = stack[at..].to_vec();
                    c.push(m.clone());
                    return Some(c);
                }
                0 => {
                    if let Some(c) = visit(m, g, state, stack) {
                        return Some(c);
                    }
                }
                _ => {}
            }
        }
        stack.pop();
        state.insert(n.to_string(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for n in nodes.keys() {
        if state.get(n.as_str()).copied().unwrap_or(0) == 0 {
            if let Some(c) = visit(n, nodes, &mut state, &mut Vec::new()) {
                return Some(c);
            }
        }
    }
    None
}

#[test]
fn imports_run_downward_only_and_never_in_a_circle() {
    let g = build();
    let mut problems = Vec::new();
    let mut tops: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (from, tos) in &g.edges {
        let top = &from[0];
        let Some(layer) = layer_of(top) else {
            problems.push(format!("src/{top} is in no layer: add it to LAYERS (tests/layers.rs) and src/lib.rs"));
            continue;
        };
        for to in tos {
            let other = &to[0];
            if other == top {
                continue;
            }
            tops.entry(top.clone()).or_default().insert(other.clone());
            match layer_of(other) {
                Some(l) if l > layer => {
                    problems.push(format!("{} imports {} from a layer above it", from.join("::"), to.join("::")))
                }
                None => problems.push(format!("{} imports {}, which is in no layer", from.join("::"), to.join("::"))),
                _ => {}
            }
            if NOT_TO_STORE.contains(&top.as_str()) && other == "store" {
                problems.push(format!("{} reaches into the store: go through control", from.join("::")));
            }
        }
    }
    if let Some(c) = cycle(&tops) {
        problems.push(format!("top-level modules import each other in a circle: {}", c.join(" -> ")));
    }
    // Inside each module: files must not import each other in a circle. A `mod.rs` declares and
    // re-exports its children, so only its children's imports count.
    let mut by_module: BTreeMap<String, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    for (from, tos) in &g.edges {
        for to in tos {
            if to[0] != from[0] || to.starts_with(from) {
                continue;
            }
            by_module.entry(from[0].clone()).or_default().entry(from.join("::")).or_default().insert(to.join("::"));
        }
    }
    for (module, graph) in &by_module {
        if let Some(c) = cycle(graph) {
            problems.push(format!("files of {module} import each other in a circle: {}", c.join(" -> ")));
        }
    }
    assert!(problems.is_empty(), "import rule broken:\n  {}", problems.join("\n  "));
}

#[test]
fn the_checker_sees_imports_it_must_refuse() {
    let code =
        code_only("use crate::store::Store; // crate::admin::x\nlet s = \"crate::cli::y\";\nuse super::{a, b::C};");
    let paths = paths_in(&code);
    assert!(paths.contains(&vec!["crate".into(), "store".into(), "Store".into()]), "{paths:?}");
    assert!(!paths.iter().any(|p| p.contains(&"admin".to_string()) || p.contains(&"cli".to_string())), "{paths:?}");
    assert!(paths.contains(&vec!["super".into(), "b".into(), "C".into()]), "{paths:?}");
    let mut g = BTreeMap::new();
    g.insert("a".to_string(), BTreeSet::from(["b".to_string()]));
    g.insert("b".to_string(), BTreeSet::from(["a".to_string()]));
    assert!(cycle(&g).is_some());
    assert_eq!(layer_of("model"), Some(0));
    assert!(layer_of("gateway") > layer_of("routes"));
}
