//! The published API contract: `docs/openapi.json` is the document the code generates, the
//! server serves it at `/openapi.json` without a credential, and every route of the router is
//! in it with each method it answers.
//!
//! Refresh the committed file after changing the API:
//! `UPDATE_OPENAPI=1 cargo test -p revloop-server --test openapi`.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde_json::Value;

use common::TestServer;
use revloop_server::api::openapi::document_json;

fn committed_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.json")
}

#[test]
fn the_committed_document_is_the_generated_one() {
    let generated = document_json();
    let path = committed_path();
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        std::fs::write(&path, &generated).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "docs/openapi.json differs from the document the code generates; refresh it with \
         `UPDATE_OPENAPI=1 cargo test -p revloop-server --test openapi` and commit it"
    );
}

#[test]
fn the_document_is_openapi_3_1_and_served_without_a_credential() {
    let server = TestServer::start();
    let mut response = server
        .agent
        .get(&format!("{}/openapi.json", server.base))
        .call()
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let text = response.body_mut().read_to_string().unwrap();
    assert_eq!(text, document_json());
    let doc: Value = serde_json::from_str(&text).unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["api_token"]["scheme"], "bearer");
    assert_eq!(schemes["write_key"]["scheme"], "basic");
}

/// Each documented operation that needs a credential says what a failing store answers: 503
/// with `Retry-After`, and the error body.
#[test]
fn every_secured_operation_documents_the_common_failures() {
    let doc: Value = serde_json::from_str(&document_json()).unwrap();
    let mut n_secured = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let responses = &operation["responses"];
            assert!(
                responses
                    .get("200")
                    .or(responses.get("201"))
                    .or(responses.get("202"))
                    .is_some(),
                "{method} {path} has no success reply"
            );
            if operation.get("security").is_none() {
                continue;
            }
            n_secured += 1;
            for status in ["401", "403", "500", "503"] {
                assert!(
                    responses.get(status).is_some(),
                    "{method} {path} does not document {status}"
                );
            }
            assert!(
                responses["503"]["headers"].get("Retry-After").is_some(),
                "{method} {path}: 503 without Retry-After"
            );
        }
    }
    assert!(n_secured > 20, "only {n_secured} secured operations");
}

const METHODS: [&str; 5] = ["GET", "POST", "PUT", "PATCH", "DELETE"];

/// The router's routes, each with the methods it answers.
///
/// axum's `Router` cannot list its routes, so the paths are read from the source of the
/// router (`routes.rs`): every `.route("<path>", ...)`. A route whose path is not a string
/// literal right there would be missed, so the number of literals read must equal the number
/// of `.route(` calls. The methods are not read from the source (a method router may be built
/// elsewhere, as the ingest routes are): the live router is asked, with each method in turn on
/// the path with its parameters filled in, and a method counts unless it is answered with the
/// router's own 405 or 404 (an unauthenticated request is refused with 401 or 400 long before
/// a handler could answer with those codes for another reason, and a handler's own 404 has
/// another message).
fn routes(server: &TestServer) -> BTreeMap<String, BTreeSet<String>> {
    let source = include_str!("../src/routes.rs");
    let n_calls = source.matches(".route(").count();
    let paths: Vec<&str> = source
        .split(".route(")
        .skip(1)
        .filter_map(|rest| rest.trim_start().strip_prefix('"'))
        .filter_map(|rest| rest.split('"').next())
        .collect();
    assert_eq!(
        paths.len(),
        n_calls,
        "every .route( in routes.rs must name its path as a string literal, for this test"
    );
    assert!(n_calls >= 25, "only {n_calls} routes found in routes.rs");
    let mut routes = BTreeMap::new();
    for path in paths {
        let concrete = fill_parameters(path);
        let mut methods = BTreeSet::new();
        for method in METHODS {
            if answers(server, method, &concrete) {
                methods.insert(method.to_ascii_lowercase());
            }
        }
        assert!(!methods.is_empty(), "{path} answers no method");
        routes.insert(path.to_owned(), methods);
    }
    routes
}

/// A path template with each `{parameter}` filled in with something a route takes.
fn fill_parameters(path: &str) -> String {
    path.split('/')
        .map(|segment| match segment {
            "{action}" => "note",
            s if s.starts_with('{') => "1",
            s => s,
        })
        .collect::<Vec<_>>()
        .join("/")
}

fn answers(server: &TestServer, method: &str, path: &str) -> bool {
    let url = format!("{}{path}", server.base);
    let agent = &server.agent;
    let result = match method {
        "GET" => agent.get(&url).call(),
        "DELETE" => agent.delete(&url).call(),
        "POST" => agent.post(&url).send(&b""[..]),
        "PUT" => agent.put(&url).send(&b""[..]),
        "PATCH" => agent.patch(&url).send(&b""[..]),
        _ => unreachable!(),
    };
    let mut response = result.unwrap();
    let status = response.status().as_u16();
    let body: Value =
        serde_json::from_str(&response.body_mut().read_to_string().unwrap()).unwrap_or_default();
    let router_refusal = (status == 405 && body["error"]["code"] == "method_not_allowed")
        || (status == 404
            && body["error"]["message"]
                .as_str()
                .unwrap_or("")
                .starts_with("no such endpoint"));
    !router_refusal
}

/// A documented path matches a route when each segment is the same, or the route's is a
/// parameter (one handler serves `/api/v1/incidents/{id}/{action}`, documented per action).
fn matches(route: &str, documented: &str) -> bool {
    let (route, documented): (Vec<_>, Vec<_>) =
        (route.split('/').collect(), documented.split('/').collect());
    route.len() == documented.len()
        && route
            .iter()
            .zip(&documented)
            .all(|(r, d)| r == d || r.starts_with('{'))
}

#[test]
fn every_route_is_documented_with_its_methods_and_nothing_else_is() {
    let server = TestServer::start();
    let routes = routes(&server);
    let doc: Value = serde_json::from_str(&document_json()).unwrap();
    let documented: BTreeMap<String, BTreeSet<String>> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(path, item)| {
            (
                path.clone(),
                item.as_object().unwrap().keys().cloned().collect(),
            )
        })
        .collect();
    let mut missing = Vec::new();
    for (route, methods) in &routes {
        for method in methods {
            let found = documented
                .iter()
                .any(|(path, ops)| matches(route, path) && ops.contains(method));
            if !found {
                missing.push(format!("{} {route}", method.to_ascii_uppercase()));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "routes missing from the OpenAPI document: {missing:?}"
    );
    let mut invented = Vec::new();
    for (path, ops) in &documented {
        for method in ops {
            let served = routes
                .iter()
                .any(|(route, methods)| matches(route, path) && methods.contains(method));
            if !served {
                invented.push(format!("{} {path}", method.to_ascii_uppercase()));
            }
        }
    }
    assert!(
        invented.is_empty(),
        "documented but not routed: {invented:?}"
    );
}
