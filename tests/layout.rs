//! The workspace's layout, checked: modules inside a crate import one way, the core reaches
//! nothing outside itself, and no production file or function outgrows its room.
//!
//! Anyone can run it with `cargo test --test layout`. It reads the source as text (the crates'
//! `src/` trees), so it needs no tool beyond the test runner:
//!
//! - **No import circles** between a crate's top-level modules. A module depends on another when
//!   its production code (the part before `#[cfg(test)]`) names `crate::other`, directly or
//!   through a name that `lib.rs` re-exports (`crate::Config` is `crate::config`).
//! - **The core is pure**: no IO, async runtime, SQL, HTTP or wall clock in `crates/core` or
//!   `crates/sim`.
//! - **Rooms of one size**: no production file over `FILE_LINES_MAX` lines, no production function
//!   over `FUNCTION_LINES_MAX` lines (tests and the data tables listed in `LONG_FUNCTIONS_ALLOWED`
//!   excepted).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// Production lines (before the first `#[cfg(test)]`) a source file may hold.
const FILE_LINES_MAX: usize = 1_000;
/// Lines a production function may span, signature to closing brace.
const FUNCTION_LINES_MAX: usize = 120;
/// Functions allowed to be longer, with why: `(file suffix, function name)`.
const LONG_FUNCTIONS_ALLOWED: &[(&str, &str)] = &[];

/// Modules that import nothing else of their crate but the modules listed, with why: the HTTP
/// plumbing is shared by every handler and must never reach back into them; time and money are
/// the vocabulary everything else is written in, and alerts are what the detector says to the
/// incident engine, so neither may know the other.
const LEAF_MODULES: &[(&str, &str, &[&str])] = &[
    ("crates/server/src", "http", &[]),
    ("crates/core/src", "time", &[]),
    ("crates/core/src", "money", &[]),
    ("crates/core/src", "alert", &["time"]),
];

/// Names that must never appear in the pure crates' sources.
const IMPURE: &[&str] = &[
    "SystemTime::now",
    "Instant::now",
    "std::fs",
    "std::net",
    "std::thread::sleep",
    "tokio::",
    "rusqlite",
    "postgres::",
    "axum",
    "ureq",
];

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every crate's `src/` directory: the binary's and each library's under `crates/`.
fn source_roots() -> Vec<PathBuf> {
    let mut roots = vec![workspace().join("src")];
    let mut crates: Vec<PathBuf> = fs::read_dir(workspace().join("crates"))
        .unwrap()
        .map(|entry| entry.unwrap().path().join("src"))
        .filter(|path| path.is_dir())
        .collect();
    crates.sort();
    roots.extend(crates);
    roots
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// A file's production part: everything before its first `#[cfg(test)]`. Files that are tests
/// as a whole (`tests.rs`, or anything under a `tests/` folder) have none.
fn production(path: &Path, root: &Path) -> String {
    let relative = path.strip_prefix(root).unwrap();
    let is_test_file = relative.file_name().is_some_and(|name| name == "tests.rs")
        || relative.components().any(|c| c.as_os_str() == "tests");
    if is_test_file {
        return String::new();
    }
    let text = fs::read_to_string(path).unwrap();
    match text.find("#[cfg(test)]") {
        Some(at) => text[..at].to_owned(),
        None => text,
    }
}

/// The top-level module a file belongs to (`detect/baseline.rs` → `detect`); `None` for the
/// crate root.
fn top_module(path: &Path, root: &Path) -> Option<String> {
    let first = path.strip_prefix(root).unwrap().components().next()?;
    let name = first.as_os_str().to_str()?.trim_end_matches(".rs");
    (name != "lib" && name != "main").then(|| name.to_owned())
}

/// Identifiers that follow `prefix` in `text`.
fn paths_after<'a>(text: &'a str, prefix: &str) -> Vec<&'a str> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find(prefix) {
        let before = rest[..at].chars().next_back();
        rest = &rest[at + prefix.len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let end = rest
            .find(|c: char| !(c.is_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        if end > 0 {
            found.push(&rest[..end]);
        }
    }
    found
}

/// Names the crate root re-exports, and the module each comes from (`Config` → `config`).
fn root_reexports(root: &Path) -> BTreeMap<String, String> {
    let mut names = BTreeMap::new();
    for file in ["lib.rs", "main.rs"] {
        let Ok(text) = fs::read_to_string(root.join(file)) else {
            continue;
        };
        for line in text.lines().map(str::trim) {
            let Some(rest) = line.strip_prefix("pub use ") else {
                continue;
            };
            let Some((module, items)) = rest.split_once("::") else {
                continue;
            };
            let items = items
                .trim_end_matches(';')
                .trim_matches(|c| c == '{' || c == '}');
            for item in items.split(',').map(str::trim).filter(|i| !i.is_empty()) {
                let name = item.rsplit("::").next().unwrap();
                names.insert(name.to_owned(), module.to_owned());
            }
        }
    }
    names
}

fn is_module(root: &Path, name: &str) -> bool {
    !name.is_empty() && (root.join(format!("{name}.rs")).is_file() || root.join(name).is_dir())
}

/// Module → the modules its production code names, per crate root.
fn import_graph(root: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let reexports = root_reexports(root);
    let mut files = Vec::new();
    rust_files(root, &mut files);
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for path in files {
        let Some(module) = top_module(&path, root) else {
            continue;
        };
        let text = production(&path, root);
        let mut named: Vec<&str> = paths_after(&text, "crate::");
        // `use crate::{a, b::c}` names several modules at once.
        for group in text.split("use crate::{").skip(1) {
            let group = group.split("};").next().unwrap_or("");
            named.extend(
                group
                    .split(',')
                    .map(|item| item.trim().split("::").next().unwrap()),
            );
        }
        let targets = named
            .into_iter()
            .map(|name| reexports.get(name).map_or(name, String::as_str))
            .filter(|target| *target != module && is_module(root, target))
            .map(str::to_owned)
            .collect::<Vec<_>>();
        graph.entry(module).or_default().extend(targets);
    }
    graph
}

/// Every circle in `graph`, each as the path that closes it, found once.
fn circles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    fn walk(
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        seen: &mut BTreeSet<BTreeSet<String>>,
        found: &mut Vec<Vec<String>>,
    ) {
        let node = path.last().unwrap().clone();
        for next in graph.get(&node).into_iter().flatten() {
            if let Some(at) = path.iter().position(|m| m == next) {
                let circle: Vec<String> = path[at..].to_vec();
                if seen.insert(circle.iter().cloned().collect()) {
                    let mut shown = circle;
                    shown.push(next.clone());
                    found.push(shown);
                }
            } else if path.len() < 16 {
                path.push(next.clone());
                walk(graph, path, seen, found);
                path.pop();
            }
        }
    }
    let mut found = Vec::new();
    let mut seen = BTreeSet::new();
    for start in graph.keys() {
        walk(graph, &mut vec![start.clone()], &mut seen, &mut found);
    }
    found
}

#[test]
fn modules_import_one_way() {
    let mut problems = Vec::new();
    for root in source_roots() {
        for circle in circles(&import_graph(&root)) {
            problems.push(format!("{}: {}", root.display(), circle.join(" -> ")));
        }
    }
    assert!(
        problems.is_empty(),
        "import circles:\n{}",
        problems.join("\n")
    );
}

#[test]
fn leaf_modules_import_only_what_they_may() {
    let mut problems = Vec::new();
    for (root, module, allowed) in LEAF_MODULES {
        let graph = import_graph(&workspace().join(root));
        let imports: Vec<&String> = graph
            .get(*module)
            .into_iter()
            .flatten()
            .filter(|target| !allowed.contains(&target.as_str()))
            .collect();
        if !imports.is_empty() {
            problems.push(format!("{root}: {module} imports {imports:?}"));
        }
    }
    assert!(
        problems.is_empty(),
        "leaf modules import:\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_circle_finder_finds_circles() {
    let graph: BTreeMap<String, BTreeSet<String>> = [
        ("config", &["incident"][..]),
        ("incident", &["alert", "detect"]),
        ("detect", &["config", "alert"]),
        ("alert", &[]),
    ]
    .into_iter()
    .map(|(m, ts)| (m.to_owned(), ts.iter().map(|t| t.to_string()).collect()))
    .collect();
    let found = circles(&graph);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].first(), found[0].last());
    assert_eq!(found[0].len(), 4);
}

#[test]
fn pure_crates_reach_nothing_outside() {
    let mut problems = Vec::new();
    for name in ["core", "sim"] {
        let root = workspace().join("crates").join(name).join("src");
        if !root.is_dir() {
            continue;
        }
        let mut files = Vec::new();
        rust_files(&root, &mut files);
        for path in files {
            let text = fs::read_to_string(&path).unwrap();
            for (number, line) in text.lines().enumerate() {
                let code = line.split("//").next().unwrap();
                for word in IMPURE.iter().filter(|w| code.contains(*w)) {
                    problems.push(format!("{}:{}: {word}", path.display(), number + 1));
                }
            }
        }
    }
    assert!(
        problems.is_empty(),
        "the pure crates reach outside:\n{}",
        problems.join("\n")
    );
}

#[test]
fn production_files_fit_their_room() {
    let mut problems = Vec::new();
    for root in source_roots() {
        let mut files = Vec::new();
        rust_files(&root, &mut files);
        for path in files {
            let n_lines = production(&path, &root).lines().count();
            if n_lines > FILE_LINES_MAX {
                problems.push(format!("{}: {n_lines} production lines", path.display()));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "files over {FILE_LINES_MAX} lines:\n{}",
        problems.join("\n")
    );
}

/// Production functions with their span in lines: a function starts at its `fn` line and ends
/// at the first line that closes it at the same indentation (the code is rustfmt'd).
fn long_functions(text: &str) -> Vec<(String, usize)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut found = Vec::new();
    for (start, line) in lines.iter().enumerate() {
        let trimmed = line.trim_start();
        let Some(name) = function_name(trimmed) else {
            continue;
        };
        let indent = &line[..line.len() - trimmed.len()];
        // A declaration without a body ends with `;` before any `{`.
        let body_opens = lines[start..]
            .iter()
            .map(|l| l.trim_end())
            .find(|l| l.ends_with('{') || l.ends_with(';'))
            .is_some_and(|l| l.ends_with('{'));
        if !body_opens || trimmed.trim_end().ends_with('}') {
            continue;
        }
        let close = format!("{indent}}}");
        if let Some(end) = lines[start + 1..].iter().position(|l| *l == close) {
            let span = end + 2;
            if span > FUNCTION_LINES_MAX {
                found.push((name.to_owned(), span));
            }
        }
    }
    found
}

fn function_name(line: &str) -> Option<&str> {
    let mut rest = line;
    for prefix in [
        "pub(crate) ",
        "pub(super) ",
        "pub ",
        "const ",
        "async ",
        "unsafe ",
    ] {
        rest = rest.strip_prefix(prefix).unwrap_or(rest);
    }
    let rest = rest.strip_prefix("fn ")?;
    let end = rest.find(|c: char| !(c.is_alphanumeric() || c == '_'))?;
    Some(&rest[..end])
}

#[test]
fn production_functions_fit_their_room() {
    let mut problems = Vec::new();
    for root in source_roots() {
        let mut files = Vec::new();
        rust_files(&root, &mut files);
        for path in files {
            for (name, span) in long_functions(&production(&path, &root)) {
                let allowed = LONG_FUNCTIONS_ALLOWED
                    .iter()
                    .any(|(file, allowed)| path.ends_with(file) && *allowed == name);
                if !allowed {
                    problems.push(format!("{}: fn {name}: {span} lines", path.display()));
                }
            }
        }
    }
    assert!(
        problems.is_empty(),
        "functions over {FUNCTION_LINES_MAX} lines:\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_function_measure_counts_signature_to_brace() {
    let body: String = (0..130)
        .map(|i| format!("        let x{i} = {i};\n"))
        .collect();
    let text = format!(
        "impl A {{\n    pub fn long(\n        a: u8,\n    ) -> u8 {{\n{body}    }}\n    fn short() {{}}\n    fn declared();\n}}\n"
    );
    assert_eq!(long_functions(&text), vec![("long".to_owned(), 134)]);
}
