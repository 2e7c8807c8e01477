//! The server's layout, checked from its source: the top-level modules import one way (no
//! circle), and the HTTP plumbing imports nothing of the crate but itself, so that handlers
//! depend on it and never the reverse. Run with the other tests; `python3
//! ../shared/tools/layout.py cycles` checks every crate the same way.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Top-level module → the top-level modules its production code names as `crate::x`.
fn import_graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut graph = BTreeMap::new();
    let mut stack = vec![src.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let relative = path.strip_prefix(&src).unwrap();
            let first = relative.components().next().unwrap().as_os_str();
            let module = first.to_str().unwrap().trim_end_matches(".rs").to_owned();
            if module == "lib" {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let production = text.split("#[cfg(test)]").next().unwrap();
            let targets: &mut BTreeSet<String> = graph.entry(module.clone()).or_default();
            for (at, _) in production.match_indices("crate::") {
                let name: String = production[at + "crate::".len()..]
                    .chars()
                    .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
                    .collect();
                if !name.is_empty() && name != module {
                    targets.insert(name);
                }
            }
        }
    }
    graph
}

fn reaches(graph: &BTreeMap<String, BTreeSet<String>>, from: &str, to: &str) -> bool {
    let mut seen = BTreeSet::new();
    let mut todo = vec![from.to_owned()];
    while let Some(module) = todo.pop() {
        for next in graph.get(&module).into_iter().flatten() {
            if next == to {
                return true;
            }
            if seen.insert(next.clone()) {
                todo.push(next.clone());
            }
        }
    }
    false
}

#[test]
fn top_level_modules_import_one_way() {
    let graph = import_graph();
    assert!(
        graph.contains_key("http") && graph.contains_key("api"),
        "{graph:?}"
    );
    for (module, targets) in &graph {
        for target in targets {
            assert!(
                !reaches(&graph, target, module),
                "`{module}` imports `{target}`, which leads back to `{module}`: {graph:?}"
            );
        }
    }
}

#[test]
fn the_http_plumbing_imports_no_handler_and_no_service() {
    // Not the API areas, not the router, not a service: only itself and other crates.
    let graph = import_graph();
    let http = graph.get("http").cloned().unwrap_or_default();
    assert!(http.is_empty(), "http imports {http:?}");
}
