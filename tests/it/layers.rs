//! The crate's layering, read from the source: `use crate::…` imports between top-level modules
//! form no cycle, the pure layers import no service layer and no web, async or storage crate, and
//! the transports reach the service only through `api`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The pure layers: synchronous maths over plain data.
const PURE: [&str; 4] = ["model", "train", "eval", "data"];
/// What a pure layer may import besides the other pure layers.
const PURE_MAY_USE: [&str; 1] = ["rng"];
/// Crates that belong to the service, never to a pure layer.
const SERVICE_CRATES: [&str; 11] = [
    "axum",
    "tokio",
    "tonic",
    "tower",
    "hyper",
    "utoipa",
    "rusqlite",
    "prometheus",
    "prost",
    "tracing",
    "anyhow",
];
/// The transports, which go through `api` only.
const TRANSPORTS: [&str; 2] = ["http", "grpc"];
/// What a transport may import besides `api`.
const TRANSPORT_MAY_USE: [&str; 2] = ["api", "config"];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// A file's code without its trailing unit-test module and without line comments.
fn code(text: &str) -> String {
    let text = text.find("#[cfg(test)]").map_or(text, |cut| &text[..cut]);
    text.lines()
        .map(|l| l.find("//").map_or(l, |c| &l[..c]))
        .collect::<Vec<_>>()
        .join("\n")
}

fn ident_at(s: &str) -> Option<&str> {
    let end = s
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(s.len());
    let id = &s[..end];
    (!id.is_empty() && !id.starts_with(|c: char| c.is_ascii_digit())).then_some(id)
}

/// The top-level modules a piece of code names through `prefix::` (e.g. `crate::`), including
/// the first names of grouped imports `prefix::{a::b, c}`.
fn named_modules(code: &str, prefix: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for (at, _) in code.match_indices(prefix) {
        if at > 0 && code[..at].ends_with(|c: char| c.is_ascii_alphanumeric() || c == '_') {
            continue;
        }
        let rest = &code[at + prefix.len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 1;
            let mut expect_name = true;
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    ',' if depth == 1 => expect_name = true,
                    c if c.is_whitespace() => {}
                    _ if expect_name && depth == 1 => {
                        if let Some(id) = ident_at(&group[i..]) {
                            found.insert(id.to_owned());
                        }
                        expect_name = false;
                    }
                    _ => {}
                }
            }
        } else if let Some(id) = ident_at(rest) {
            found.insert(id.to_owned());
        }
    }
    found
}

/// The source files of each top-level module, as code.
fn modules() -> BTreeMap<String, Vec<(PathBuf, String)>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut modules: BTreeMap<String, Vec<(PathBuf, String)>> = BTreeMap::new();
    for path in files {
        let rel = path.strip_prefix(&src).expect("under src");
        let first = rel.components().next().expect("a component");
        let top = first
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_owned();
        let text = std::fs::read_to_string(&path).expect("read source");
        modules.entry(top).or_default().push((path, code(&text)));
    }
    modules
}

/// Which top-level modules each top-level module imports.
fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let modules = modules();
    let known: BTreeSet<String> = modules.keys().cloned().collect();
    modules
        .iter()
        .map(|(name, files)| {
            let mut deps = BTreeSet::new();
            for (_, code) in files {
                deps.extend(named_modules(code, "crate::"));
                // The binary (main.rs and its cli/ modules) names the library by its crate name.
                if name == "main" || name == "cli" {
                    deps.extend(named_modules(code, "irgan::"));
                }
            }
            deps.retain(|d| d != name && known.contains(d));
            (name.clone(), deps)
        })
        .collect()
}

/// The modules reachable from `from` (itself excluded unless on a cycle).
fn reachable(graph: &BTreeMap<String, BTreeSet<String>>, from: &str) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut todo: Vec<&str> = graph[from].iter().map(String::as_str).collect();
    while let Some(m) = todo.pop() {
        if seen.insert(m.to_owned()) {
            todo.extend(graph.get(m).into_iter().flatten().map(String::as_str));
        }
    }
    seen
}

#[test]
fn top_level_modules_import_each_other_without_cycles() {
    let graph = graph();
    let on_cycle: Vec<String> = graph
        .keys()
        .filter(|m| reachable(&graph, m).contains(*m))
        .map(|m| format!("{m} -> {:?}", graph[m]))
        .collect();
    assert!(on_cycle.is_empty(), "import cycles through: {on_cycle:#?}");
}

#[test]
fn pure_layers_import_only_pure_layers() {
    let graph = graph();
    let mut bad = Vec::new();
    for layer in PURE {
        for dep in &graph[layer] {
            if !PURE.contains(&dep.as_str()) && !PURE_MAY_USE.contains(&dep.as_str()) {
                bad.push(format!("{layer} -> {dep}"));
            }
        }
    }
    assert!(bad.is_empty(), "pure layers importing upwards: {bad:?}");
}

#[test]
fn pure_layers_use_no_web_async_or_storage_crate() {
    let mut bad = Vec::new();
    for (name, files) in modules() {
        if !PURE.contains(&name.as_str()) {
            continue;
        }
        for (path, code) in files {
            for krate in SERVICE_CRATES {
                if !named_modules(&code, &format!("{krate}::")).is_empty()
                    || code.contains(&format!("use {krate};"))
                {
                    bad.push(format!("{} uses {krate}", path.display()));
                }
            }
        }
    }
    assert!(bad.is_empty(), "{bad:#?}");
}

#[test]
fn transports_go_through_the_api() {
    let graph = graph();
    let mut bad = Vec::new();
    for transport in TRANSPORTS {
        for dep in &graph[transport] {
            if !TRANSPORT_MAY_USE.contains(&dep.as_str()) {
                bad.push(format!("{transport} -> {dep}"));
            }
        }
    }
    assert!(bad.is_empty(), "transports bypassing api: {bad:?}");
}

#[test]
fn the_import_reader_sees_grouped_and_nested_imports() {
    let text = "use crate::{a::b, c::{d, e}, f};\nlet x = crate::g::h(); // crate::z\nmycrate::y";
    let found = named_modules(&code(text), "crate::");
    let want: BTreeSet<String> = ["a", "c", "f", "g"].map(String::from).into();
    assert_eq!(found, want);
}
