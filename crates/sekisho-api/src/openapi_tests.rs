//! Keeps `openapi.json` honest: every route of [`super::router`] is described (and nothing else),
//! with the scope the authentication layer will ask for.
//!
//! The routes are read from the source of `api.rs`, so a route added there without its
//! description (or removed without removing it) fails here.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

/// The source the router is built from.
const API_SOURCE: &str = include_str!("lib.rs");
/// Where the authenticated router is nested.
const PREFIX: &str = "/api/v1";
const METHODS: [&str; 8] = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Str(String),
    Ident(String),
    Punct(char),
}

/// A small Rust lexer: string literals, identifiers and punctuation; comments are dropped.
fn lex(src: &str) -> Vec<Tok> {
    let chars: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c.is_whitespace() {
            i += 1;
        } else if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            i += 2;
            while i < chars.len() && !(chars[i] == '*' && chars.get(i + 1) == Some(&'/')) {
                i += 1;
            }
            i += 2;
        } else if c == '"' {
            let mut s = String::new();
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                if chars[i] == '\\' {
                    i += 1;
                }
                if let Some(&ch) = chars.get(i) {
                    s.push(ch);
                }
                i += 1;
            }
            i += 1;
            out.push(Tok::Str(s));
        } else if c == '\'' && (next == Some('\\') || chars.get(i + 2) == Some(&'\'')) {
            // A char literal (not a lifetime): skip it.
            i += 1;
            while i < chars.len() && chars[i] != '\'' {
                if chars[i] == '\\' {
                    i += 1;
                }
                i += 1;
            }
            i += 1;
        } else if c.is_alphanumeric() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            out.push(Tok::Ident(chars[start..i].iter().collect()));
        } else {
            out.push(Tok::Punct(c));
            i += 1;
        }
    }
    out
}

/// `(path as served, method, public)` for every `.route("<path>", <method router>)` in `api.rs`.
fn source_routes() -> Vec<(String, String, bool)> {
    let toks = lex(API_SOURCE);
    let mut routes = Vec::new();
    for (at, window) in toks.windows(4).enumerate() {
        let [Tok::Punct('.'), Tok::Ident(call), Tok::Punct('('), Tok::Str(path)] = window else { continue };
        if call != "route" {
            continue;
        }
        let public = path.starts_with(PREFIX);
        let full = if public { path.clone() } else { format!("{PREFIX}{path}") };
        // The method router: calls at the top level of the rest of this `.route(...)`.
        let mut depth = 0i32;
        let mut methods = Vec::new();
        for (k, tok) in toks.iter().enumerate().skip(at + 4) {
            match tok {
                Tok::Punct('(' | '[' | '{') => depth += 1,
                Tok::Punct(')' | ']' | '}') => {
                    depth -= 1;
                    if depth < 0 {
                        break;
                    }
                }
                Tok::Ident(name) if depth == 0 && toks.get(k + 1) == Some(&Tok::Punct('(')) => {
                    assert!(
                        !["any", "on", "on_service", "any_service"].contains(&name.as_str()),
                        "route `{full}` uses `{name}(`; list its methods explicitly so they can be described"
                    );
                    if METHODS.contains(&name.as_str()) {
                        methods.push(name.clone());
                    }
                }
                _ => {}
            }
        }
        assert!(!methods.is_empty(), "found no method (get/post/…) for route `{full}` in api.rs");
        routes.extend(methods.into_iter().map(|m| (full.clone(), m, public)));
    }
    routes
}

/// The scope `auth::required_scope` asks for: the document must say what the relay enforces.
fn expected_scope(method: &str, path: &str) -> String {
    let method = axum::http::Method::from_bytes(method.to_uppercase().as_bytes()).expect("a valid HTTP method");
    super::auth::required_scope(&method, path)
}

fn document() -> Value {
    serde_json::from_str(super::OPENAPI).expect("openapi.json is not valid JSON")
}

/// `(path, method) → operation` of the document.
fn operations(doc: &Value) -> BTreeMap<(String, String), Value> {
    let paths = doc["paths"].as_object().expect("openapi.json has no `paths` object");
    let mut ops = BTreeMap::new();
    for (path, item) in paths {
        let item = item.as_object().unwrap_or_else(|| panic!("path item `{path}` is not an object"));
        for (key, op) in item {
            if METHODS.contains(&key.as_str()) {
                ops.insert((path.clone(), key.clone()), op.clone());
            }
        }
    }
    ops
}

#[test]
fn document_header() {
    let doc = document();
    assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.1")), "not an OpenAPI 3.1 document");
    assert_eq!(doc["info"]["title"], "Sekisho admin API");
    assert!(doc["info"]["version"].is_string());
    assert_eq!(doc["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");
    assert_eq!(doc["security"], serde_json::json!([{ "bearer": [] }]));
}

#[test]
fn routes_of_the_router_are_exactly_the_documented_operations() {
    assert!(API_SOURCE.contains(".nest(\"/api/v1\", authed)"), "the authed router is no longer nested at {PREFIX}");
    let routes = source_routes();
    assert!(routes.len() >= 30, "found only {} routes in api.rs; is the parser still right?", routes.len());
    let in_source: BTreeSet<(String, String)> = routes.iter().map(|(p, m, _)| (p.clone(), m.clone())).collect();
    assert_eq!(in_source.len(), routes.len(), "a (path, method) appears twice in api.rs");
    let documented: BTreeSet<(String, String)> = operations(&document()).into_keys().collect();
    let missing: Vec<_> = in_source.difference(&documented).collect();
    let stale: Vec<_> = documented.difference(&in_source).collect();
    assert!(missing.is_empty(), "routes missing from openapi.json: {missing:?}");
    assert!(stale.is_empty(), "openapi.json describes routes the router does not have: {stale:?}");
}

#[test]
fn every_operation_says_how_it_is_authorised() {
    let ops = operations(&document());
    for ((path, method), op) in &ops {
        let public = op.get("security").is_some_and(|s| s.as_array().is_some_and(Vec::is_empty));
        let scope = op.get("x-required-scope").and_then(Value::as_str);
        assert!(public || scope.is_some(), "{method} {path}: neither `x-required-scope` nor `security: []`");
    }
    for (path, method, public) in source_routes() {
        let op = &ops[&(path.clone(), method.clone())];
        if public {
            assert_eq!(op["security"], serde_json::json!([]), "{method} {path} needs no key: want `security: []`");
            assert!(op.get("x-required-scope").is_none(), "{method} {path} needs no key, so no scope");
        } else {
            assert!(op.get("security").is_none(), "{method} {path} is behind the API key layer; drop `security`");
            assert_eq!(
                op["x-required-scope"].as_str(),
                Some(expected_scope(&method, &path).as_str()),
                "{method} {path}: wrong `x-required-scope`"
            );
        }
    }
}

#[test]
fn operations_are_complete() {
    let doc = document();
    let mut ids = BTreeSet::new();
    for ((path, method), op) in operations(&doc) {
        let id = op["operationId"].as_str().unwrap_or_else(|| panic!("{method} {path}: no operationId"));
        assert!(ids.insert(id.to_owned()), "operationId `{id}` is used twice");
        assert!(op["summary"].is_string(), "{method} {path}: no summary");
        let responses = op["responses"].as_object().unwrap_or_else(|| panic!("{method} {path}: no responses"));
        assert!(responses.keys().any(|k| k.starts_with('2')), "{method} {path}: no success response");
        assert_eq!(
            responses.get("4XX").and_then(|r| r["$ref"].as_str()),
            Some("#/components/responses/Error"),
            "{method} {path}: 4XX must be the shared Error response"
        );
        if method == "delete" {
            assert!(responses.contains_key("204"), "{method} {path}: deletes answer 204");
        }
        // Path parameters: exactly the `{name}`s of the template, each required.
        let in_template: BTreeSet<&str> =
            path.split('/').filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}'))).collect();
        let declared: BTreeSet<&str> = op["parameters"]
            .as_array()
            .map(|ps| {
                ps.iter()
                    .filter(|p| p["in"] == "path")
                    .inspect(|p| assert_eq!(p["required"], true, "{method} {path}: path parameters are required"))
                    .filter_map(|p| p["name"].as_str())
                    .collect()
            })
            .unwrap_or_default();
        assert_eq!(in_template, declared, "{method} {path}: path parameters differ from the template");
    }
}

#[test]
fn every_reference_resolves() {
    fn walk<'a>(v: &'a Value, refs: &mut Vec<&'a str>) {
        match v {
            Value::Object(map) => {
                if let Some(r) = map.get("$ref").and_then(Value::as_str) {
                    refs.push(r);
                }
                map.values().for_each(|v| walk(v, refs));
            }
            Value::Array(items) => items.iter().for_each(|v| walk(v, refs)),
            _ => {}
        }
    }
    let doc = document();
    let mut refs = Vec::new();
    walk(&doc, &mut refs);
    assert!(!refs.is_empty());
    for r in refs {
        let pointer = r.strip_prefix('#').unwrap_or_else(|| panic!("`{r}` is not a local reference"));
        assert!(doc.pointer(pointer).is_some(), "`{r}` does not resolve");
    }
}

#[test]
fn the_scope_list_is_the_relays() {
    let doc = document();
    let listed: Vec<&str> = doc
        .pointer("/components/schemas/NewApiKey/properties/scopes/items/enum")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let mut expected = vec!["*"];
    expected.extend(sekisho_door::credentials::TENANT_SCOPES);
    assert_eq!(listed, expected);
}
