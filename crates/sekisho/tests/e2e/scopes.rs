//! The scope table of `docs/ARCHITECTURE.md` ("Scopes never grant more than they name"), checked
//! cell by cell against a running relay: for each endpoint, a key with exactly its scope passes the
//! scope check and a key with every other scope is refused; each role's login session is allowed
//! or refused as the table says; `users:act` rows are refused without it; and every operation of
//! the relay's `openapi.json` has a row.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use crate::harness::Relay;

/// One row: (method, path, scope, [admin, operator, auditor, member]).
type Row = (String, String, String, [bool; 4]);

const ROLES: [&str; 4] = ["admin", "operator", "auditor", "member"];

fn table() -> Vec<Row> {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/ARCHITECTURE.md")).unwrap();
    let start = doc.find("<!-- scope-table: begin -->").expect("the scope table's begin marker");
    let end = doc.find("<!-- scope-table: end -->").expect("the scope table's end marker");
    let mut rows = Vec::new();
    for line in doc[start..end].lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
        assert_eq!(cells.len(), 6, "{line}");
        // The first code span: `METHOD /path` (a row may say more after it).
        let endpoint = cells[0].split('`').nth(1).unwrap_or(cells[0]);
        let Some((method, path)) = endpoint.split_once(' ') else { panic!("{line}") };
        let roles = [cells[2], cells[3], cells[4], cells[5]].map(|c| match c {
            "✓" => true,
            "–" => false,
            other => panic!("cell `{other}` in {line}"),
        });
        rows.push((method.to_owned(), path.to_owned(), cells[1].trim_matches('`').to_owned(), roles));
    }
    assert!(rows.len() > 40, "the table was not read: {rows:?}");
    rows
}

/// Whether an answer is the scope check's refusal (not a handler's own error after it passed).
fn scope_refused(status: u16, v: &Value) -> bool {
    status == 403
        && v["error"]["code"] == "forbidden"
        && v["error"]["message"].as_str().unwrap_or("").contains("lacks scope")
}

/// Calls `method path` (parameters filled with names that exist nowhere, bodies empty objects).
async fn call(relay: &Relay, method: &str, path: &str, key: &str) -> (u16, Value) {
    let concrete: String =
        path.split('/').map(|seg| if seg.starts_with('{') { "nosuchthing" } else { seg }).collect::<Vec<_>>().join("/");
    let body = matches!(method, "POST" | "PUT" | "PATCH").then(|| json!({}));
    relay.api(method, &concrete, body, key).await
}

#[tokio::test]
async fn every_cell_of_the_scope_table_holds() {
    let relay = Relay::start().await;
    let admin = relay.admin_key.clone();
    let ok = |(s, v): (u16, Value)| {
        assert!((200..300).contains(&s), "{v}");
        v
    };
    let rows = table();

    // Every operation the relay documents has a row, and no row names one it lacks.
    let (_, spec) = relay.api("GET", "/api/v1/openapi.json", None, "").await;
    let mut documented = BTreeSet::new();
    for (path, item) in spec["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            documented.insert(format!("{} {path}", method.to_uppercase()));
        }
    }
    let unkeyed = ["GET /api/v1/health", "GET /api/v1/openapi.json", "POST /api/v1/login"];
    let tabled: BTreeSet<String> =
        rows.iter().filter(|r| r.1.starts_with("/api/")).map(|r| format!("{} {}", r.0, r.1)).collect();
    let missing: Vec<&String> =
        documented.iter().filter(|e| !tabled.contains(*e) && !unkeyed.contains(&e.as_str())).collect();
    assert!(missing.is_empty(), "operations without a row in the scope table: {missing:?}");

    // A session key for each role, and keys of exactly one scope or all but one.
    let mut sessions = Vec::new();
    for role in ROLES {
        let group = format!("g-{role}");
        ok(relay.api("POST", "/api/v1/groups", Some(json!({"name": group, "role": role})), &admin).await);
        let user = json!({"name": format!("u-{role}"), "password": "correct horse battery", "groups": [group]});
        ok(relay.api("POST", "/api/v1/users", Some(user), &admin).await);
        let login = json!({"user": format!("u-{role}"), "password": "correct horse battery"});
        sessions
            .push(ok(relay.api("POST", "/api/v1/login", Some(login), "").await)["key"].as_str().unwrap().to_owned());
    }
    let (_, t) = relay.api("POST", "/api/v1/tenants", Some(json!({"name": "other"})), &admin).await;
    let tenant_admin = t["admin_key"].as_str().unwrap().to_owned();
    let all: Vec<String> = {
        let (_, doc) = relay.api("GET", "/api/v1/openapi.json", None, "").await;
        doc.pointer("/components/schemas/NewApiKey/properties/scopes/items/enum")
            .and_then(Value::as_array)
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .filter(|s| *s != "*")
            .map(str::to_owned)
            .collect()
    };
    let mint = |scopes: Vec<String>| {
        let relay = &relay;
        let admin = admin.clone();
        async move {
            let body = json!({"name": format!("k{}", rand::random::<u32>()), "scopes": scopes});
            relay.api("POST", "/api/v1/api-keys", Some(body), &admin).await.1["key"].as_str().unwrap().to_owned()
        }
    };

    let mut checked = 0;
    for (method, path, scope, roles) in &rows {
        if !path.starts_with("/api/") {
            continue; // the gateway row: its scope is the proxy password's (tests/e2e/gateway.rs)
        }
        let what = format!("{method} {path}");
        // Scope column.
        match scope.as_str() {
            "system" => {
                let (s, v) = call(&relay, method, path, &tenant_admin).await;
                assert!(scope_refused(s, &v), "{what}: a tenant's `*` passed a `system` endpoint: {s} {v}");
                let (s, v) = call(&relay, method, path, &admin).await;
                assert!(!scope_refused(s, &v), "{what}: the operator was refused: {s} {v}");
            }
            "any key" => {}
            "users:act" => {
                // On top of the endpoint's own scope; without it, acting as a user is refused.
                let own = if path.contains("api-keys") { "apikeys:write" } else { "agents:write" };
                let without: Vec<String> = all.iter().filter(|s| *s != "users:act").cloned().collect();
                let key = mint(without).await;
                let body = if path.contains("api-keys") {
                    json!({"name": "as-u", "scopes": ["gateway:use"], "user": "u-member"})
                } else {
                    json!({"name": "u-pc", "role": "front", "user": "u-member"})
                };
                let (s, v) = relay.api("POST", path, Some(body.clone()), &key).await;
                assert_eq!(
                    (s, v["error"]["code"].as_str()),
                    (403, Some("scope_escalation")),
                    "{what} without users:act: {v}"
                );
                let with = mint(vec![own.to_owned(), "users:act".into(), "gateway:use".into()]).await;
                let (s, v) = relay.api("POST", path, Some(body), &with).await;
                assert!((200..300).contains(&s), "{what} with {own} + users:act: {s} {v}");
                checked += 1;
                continue;
            }
            scope => {
                let (s, v) = call(&relay, method, path, &mint(vec![scope.to_owned()]).await).await;
                assert!(!scope_refused(s, &v), "{what}: a key of exactly `{scope}` was refused: {s} {v}");
                let others: Vec<String> = all.iter().filter(|s| *s != scope).cloned().collect();
                let (s, v) = call(&relay, method, path, &mint(others).await).await;
                assert!(scope_refused(s, &v), "{what}: a key of every scope but `{scope}` passed: {s} {v}");
            }
        }
        // Role columns (session-ending calls last, below).
        if path.ends_with("/logout") {
            continue;
        }
        for (i, role) in ROLES.iter().enumerate() {
            let (s, v) = call(&relay, method, path, &sessions[i]).await;
            assert_eq!(!scope_refused(s, &v), roles[i], "{what} as {role}: {s} {v}");
        }
        checked += 1;
    }
    // Logging out ends each role's own session.
    for session in &sessions {
        let (s, v) = relay.api("POST", "/api/v1/logout", None, session).await;
        assert!((200..300).contains(&s), "{v}");
    }
    assert!(checked >= rows.len() - 2, "{checked} of {} rows checked", rows.len());
}
