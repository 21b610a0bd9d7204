//! Policy decisions on real streams and the evidence they leave: deny pages, audit events,
//! validation diagnostics, the dry run, `sekisho audit verify` against tampering, and a relay
//! killed with SIGKILL under load whose chain still verifies.

use std::path::Path;

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;

use crate::harness::{BIN, Relay, test_dir};
use crate::targets;

async fn get(addr: std::net::SocketAddr) -> (u16, String) {
    let resp = reqwest::get(format!("http://{addr}/")).await.unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

#[tokio::test]
async fn policies_decide_every_stream_and_denials_are_recorded_first() {
    let relay = Relay::start().await;
    let back = relay.agent("site", "back").await;
    let mut front = relay.agent("laptop", "front").await;
    let web = targets::http().await;
    relay.ctl(&["service", "create", "wiki", "--agent", &back.id, "--target", &format!("http://{web}")]).await.unwrap();
    let (_, addr) = relay.route(&mut front, "wiki").await;

    // No policy: closed.
    let (status, page) = get(addr).await;
    assert_eq!(status, 403, "{page}");
    assert!(page.contains("default-deny"), "{page}");
    // The refusal waits for the client's request: an HTTP client that has not written yet
    // would take an early answer as a protocol error.
    let mut raw = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let early = tokio::time::timeout(std::time::Duration::from_millis(300), raw.read(&mut buf)).await;
    assert!(early.is_err(), "answered before the request: {early:?}");
    raw.write_all(b"GET / HTTP/1.1\r\nHost: wiki\r\n\r\n").await.unwrap();
    let mut answer = Vec::new();
    raw.read_to_end(&mut answer).await.unwrap();
    assert!(String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 403"), "{}", String::from_utf8_lossy(&answer));
    let e = relay.wait_event(|e| e["policy_id"] == "default-deny").await;
    assert_eq!(
        (e["kind"].as_str(), e["decision"].as_str(), e["subject"].as_str()),
        (Some("access"), Some("deny"), Some("laptop"))
    );
    assert_eq!(
        (e["path"].as_str(), e["target"].as_str(), e["country"].as_str()),
        (Some("tunnel"), Some("wiki"), Some("LOCAL"))
    );

    // Required: only this agent, from the local network.
    relay.policy("wiki", &[r#"principal == Agent::"laptop""#, r#"context.country == "LOCAL""#], &[]).await;
    assert_eq!(get(addr).await, (200, "hello through sekisho".to_owned()));
    let e = relay.wait_event(|e| e["decision"] == "allow" && e["target"] == "wiki" && e["bytes_out"].is_number()).await;
    assert_eq!(e["policy_id"], "wiki/required");
    assert!(e["duration_ms"].is_number());

    // A deny condition wins.
    relay
        .policy("wiki", &["true"], &[r#"context.path == "tunnel" && principal is Agent && principal.site == """#])
        .await;
    let (status, page) = get(addr).await;
    assert_eq!(status, 403);
    assert!(page.contains("wiki/deny/0"), "the deny page names the policy: {page}");
    relay.wait_event(|e| e["policy_id"] == "wiki/deny/0" && e["decision"] == "deny").await;

    // Broken text is refused with Cedar's own diagnostics, and changes nothing.
    let body = json!({ "required": ["true"], "deny": ["context.country =="] });
    let (status, v) = relay.api("PUT", "/api/v1/policies/wiki", Some(body), &relay.admin_key).await;
    assert_eq!((status, v["error"]["code"].as_str()), (400, Some("invalid_policy")), "{v}");
    let d = &v["error"]["diagnostics"][0];
    assert_eq!(
        (d["kind"].as_str(), d["index"].as_u64(), d["line"].as_u64(), d["column"].as_u64()),
        (Some("deny"), Some(0), Some(1), Some(19)),
        "{v}"
    );
    let body = json!({ "required": ["true", "context.nope == 1"], "deny": [] });
    let (status, v) = relay.api("PUT", "/api/v1/policies/wiki", Some(body), &relay.admin_key).await;
    assert_eq!(status, 400, "{v}");
    let d = &v["error"]["diagnostics"][0];
    assert_eq!((d["kind"].as_str(), d["index"].as_u64()), (Some("required"), Some(1)), "{v}");
    assert!(d["message"].as_str().unwrap().contains("nope"), "{v}");
    assert_eq!(get(addr).await.0, 403, "the old policy still holds");
    let (_, p) = relay.api("GET", "/api/v1/policies/wiki", None, &relay.admin_key).await;
    assert_eq!(p["deny"].as_array().unwrap().len(), 1, "{p}");
    assert!(p["cedar"].as_str().unwrap().contains("forbid"), "{p}");
}

#[tokio::test]
async fn the_dry_run_uses_geoip_and_the_tenant_clock() {
    let dir = test_dir();
    let mmdb = dir.path().join("geo.mmdb");
    sekisho_policy::geo::write_test_db(&mmdb, &[("203.0.113.0/24", "JP"), ("1.2.3.0/24", "US")]).unwrap();
    let relay = Relay::start_with(&["--geoip", mmdb.to_str().unwrap(), "--local-country", "JP"]).await;
    let back = relay.agent("site", "back").await;
    relay.service("wiki", &back, "http://127.0.0.1:9").await;
    let ok = |(s, v): (u16, serde_json::Value)| {
        assert!((200..300).contains(&s), "{v}");
        v
    };
    ok(relay.api("POST", "/api/v1/groups", Some(json!({"name": "ops", "role": "member"})), &relay.admin_key).await);
    let user = json!({"name": "alice", "password": "correct horse battery", "groups": ["ops"]});
    ok(relay.api("POST", "/api/v1/users", Some(user), &relay.admin_key).await);
    relay
        .policy(
            "wiki",
            &[r#"principal in Group::"ops""#, r#"context.country == "JP""#, "context.hour >= 9 && context.hour < 18"],
            &[r#"context.weekday == "sun""#],
        )
        .await;
    let test = |ip: &str, at: &str| {
        let relay = &relay;
        let body = json!({"service": "wiki", "user": "alice", "ip": ip, "at": at});
        async move { ok(relay.api("POST", "/api/v1/policies/test", Some(body), &relay.admin_key).await) }
    };
    let allow = test("203.0.113.5", "2026-11-23T09:00+09:00").await;
    assert_eq!((allow["decision"].as_str(), allow["country"].as_str()), (Some("allow"), Some("JP")), "{allow}");
    let us = test("1.2.3.4", "2026-11-23T09:00+09:00").await;
    assert_eq!(
        (us["decision"].as_str(), us["policy_id"].as_str(), us["country"].as_str()),
        (Some("deny"), Some("wiki/required/1"), Some("US"))
    );
    let night = test("203.0.113.5", "2026-11-23T00:30:00Z").await;
    assert_eq!(night["decision"], "allow", "00:30Z is 09:30 in Tokyo: {night}");
    let late = test("203.0.113.5", "2026-11-23T19:00+09:00").await;
    assert_eq!(late["policy_id"], "wiki/required/2");
    let sunday = test("10.1.2.3", "2026-11-22T10:00+09:00").await;
    assert_eq!((sunday["policy_id"].as_str(), sunday["country"].as_str()), (Some("wiki/deny/0"), Some("JP")));
    // Through the CLI too.
    let v = relay
        .ctl(&[
            "policy",
            "test",
            "--service",
            "wiki",
            "--user",
            "alice",
            "--ip",
            "1.2.3.4",
            "--at",
            "2026-11-23T09:00+09:00",
        ])
        .await
        .unwrap();
    assert_eq!(v["policy_id"], "wiki/required/1");
}

/// `sekisho audit verify` on a data directory: (passed, stdout).
async fn verify(data: &Path) -> (bool, String) {
    let out = Command::new(BIN)
        .args(["audit", "verify", "--data-dir"])
        .arg(data)
        .env("SEKISHO_LANG", "en")
        .output()
        .await
        .unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr))
}

async fn sql(data: &Path, statement: &str) {
    use sqlx::Connection;
    let db = data.join("sekisho.db");
    let mut c = sqlx::SqliteConnection::connect(&format!("sqlite://{}", db.display())).await.unwrap();
    let r = sqlx::query(statement).execute(&mut c).await.unwrap();
    assert!(r.rows_affected() > 0, "{statement} changed nothing");
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file() {
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
}

#[tokio::test]
async fn audit_verify_catches_edited_deleted_and_reordered_events() {
    let mut relay = Relay::start().await;
    for i in 0..12 {
        relay.ctl(&["token", "create", "--name", &format!("t{i}"), "--role", "back"]).await.unwrap();
    }
    let (_, report) = relay.api("POST", "/api/v1/audit/verify", None, &relay.admin_key).await;
    assert_eq!(report["ok"], true, "{report}");
    assert!(report["tenants"][0]["events"].as_u64().unwrap() >= 12, "{report}");
    relay.proc.kill().await;
    let data = relay.dir.path().join("data");
    let (ok, out) = verify(&data).await;
    assert!(ok, "{out}");

    let cases = [
        ("edit", vec!["UPDATE audit_events SET decision = 'deny' WHERE seq = 5"], "#5 altered"),
        ("delete", vec!["DELETE FROM audit_events WHERE seq = 6"], "#6 deleted"),
        (
            "reorder",
            vec![
                "UPDATE audit_events SET seq = -1 WHERE seq = 3",
                "UPDATE audit_events SET seq = 3 WHERE seq = 4",
                "UPDATE audit_events SET seq = 4 WHERE seq = -1",
            ],
            "#3 altered",
        ),
    ];
    for (name, statements, expect) in cases {
        let copy = relay.dir.path().join(format!("tampered-{name}"));
        copy_dir(&data, &copy);
        for s in statements {
            sql(&copy, s).await;
        }
        let (ok, out) = verify(&copy).await;
        assert!(!ok, "{name} went unnoticed: {out}");
        assert!(out.contains("TAMPERED") && out.contains(expect), "{name}: {out}");
    }
    // A stranger's key is not trusted.
    let (ok, out) = {
        let other = relay.dir.path().join("other.pub");
        std::fs::write(&other, format!("{}\n", "11".repeat(32))).unwrap();
        let o = Command::new(BIN)
            .args(["audit", "verify", "--data-dir"])
            .arg(&data)
            .arg("--key")
            .arg(&other)
            .output()
            .await
            .unwrap();
        (o.status.success(), String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr))
    };
    assert!(!ok, "{out}");
    relay.restart().await;
}

#[tokio::test]
async fn a_relay_killed_under_load_leaves_a_chain_without_gaps() {
    let mut relay = Relay::start().await;
    let back = relay.agent("site", "back").await;
    let mut front = relay.agent("laptop", "front").await;
    let web = targets::http().await;
    relay.service("wiki", &back, &format!("http://{web}")).await;
    relay.service("closed", &back, &format!("http://{web}")).await;
    relay.policy("closed", &["false"], &[]).await;
    let (_, open_addr) = relay.route(&mut front, "wiki").await;
    let (_, closed_addr) = relay.route(&mut front, "closed").await;
    let load: Vec<_> = (0..8)
        .map(|i| {
            let addr = if i % 2 == 0 { open_addr } else { closed_addr };
            tokio::spawn(async move {
                let client = reqwest::Client::builder().pool_max_idle_per_host(0).build().unwrap();
                let mut n = 0u32;
                while client.get(format!("http://{addr}/")).send().await.is_ok() {
                    n += 1;
                }
                n
            })
        })
        .collect();
    // Let allowed stream ends and durable denials pile up, then pull the plug.
    relay.wait_event(|e| e["policy_id"] == "closed/required/0").await;
    relay.wait_event(|e| e["policy_id"] == "wiki/required").await;
    relay.proc.kill().await;
    drop(front);
    for l in load {
        let _ = l.await;
    }
    let data = relay.dir.path().join("data");
    let (ok, out) = verify(&data).await;
    // The chain has no gaps; what the relay committed after its last signature is reported as
    // unsigned (never passed as signed), and nothing else is wrong.
    let unsigned = !ok && out.contains("UNSIGNED default") && out.contains("not covered by a signed checkpoint");
    assert!(ok && out.contains("OK default") || unsigned, "after SIGKILL: {out}");
    assert!(!out.contains("TAMPERED"), "{out}");
    // And the relay carries on with the same chain, saying first what it found unsigned.
    relay.restart().await;
    if unsigned {
        relay.wait_event(|e| e["reason"].as_str().unwrap_or("").starts_with("audit_unsigned_at_start")).await;
    }
    relay.ctl(&["token", "create", "--name", "after", "--role", "back"]).await.unwrap();
    let (_, report) = relay.api("POST", "/api/v1/audit/verify", None, &relay.admin_key).await;
    assert_eq!(report["ok"], true, "{report}");
}

#[tokio::test]
async fn a_relay_on_postgresql_routes_decides_and_verifies() {
    let Some(url) = crate::harness::pg_database().await else { return };
    let relay = Relay::start_with(&["--database", &url]).await;
    let back = relay.agent("site", "back").await;
    let mut front = relay.agent("laptop", "front").await;
    let web = targets::http().await;
    relay.service("wiki", &back, &format!("http://{web}")).await;
    let (_, addr) = relay.route(&mut front, "wiki").await;
    assert_eq!(get(addr).await.0, 200);
    relay.wait_event(|e| e["policy_id"] == "wiki/required" && e["bytes_out"].is_number()).await;
    let (_, report) = relay.api("POST", "/api/v1/audit/verify", None, &relay.admin_key).await;
    assert_eq!(report["ok"], true, "{report}");
    assert!(!relay.dir.path().join("data/sekisho.db").exists(), "state went to PostgreSQL, not SQLite");
    let out = Command::new(BIN)
        .args(["audit", "verify", "--database", &url, "--data-dir"])
        .arg(relay.dir.path().join("data"))
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
}

/// Runs SQL on the relay's database (SQLite file or PostgreSQL), as someone with access to it.
async fn sql_on(url: &str, statement: &str) {
    use sqlx::Connection;
    sqlx::any::install_default_drivers();
    let mut c = sqlx::AnyConnection::connect(url).await.unwrap();
    let r = sqlx::query(statement).execute(&mut c).await.unwrap();
    assert!(r.rows_affected() > 0, "{statement} changed nothing");
}

/// `sekisho audit verify` offline, on `--database` when given.
async fn verify_on(data: &Path, database: Option<&str>) -> (bool, String) {
    let mut cmd = Command::new(BIN);
    cmd.args(["audit", "verify", "--data-dir"]).arg(data).env("SEKISHO_LANG", "en");
    if let Some(url) = database {
        cmd.args(["--database", url]);
    }
    let out = cmd.output().await.unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr))
}

/// The newest event of the default tenant, as the relay's own verification reports it.
async fn last_seq(relay: &Relay) -> i64 {
    let (_, report) = relay.api("POST", "/api/v1/audit/verify", None, &relay.admin_key).await;
    assert_eq!(report["ok"], true, "{report}");
    report["tenants"].as_array().unwrap().iter().find(|t| t["tenant"] == "default").unwrap()["last_seq"]
        .as_i64()
        .unwrap()
}

/// Someone with the database edits old events and asks for retention (which would remove them
/// and sign what is left): refused with `audit_unverified`, nothing removed, the refusal on
/// record, the log still failing verification. Then the newest events are deleted together
/// with their checkpoints: the anchor file outside the database names the cut. Then the anchor
/// file itself is deleted: said so.
async fn the_log_cannot_be_laundered_or_cut_short(database: Option<String>) {
    let extra: Vec<&str> = database.as_deref().map_or(vec![], |u| vec!["--database", u]);
    let relay = Relay::start_with(&extra).await;
    let data = relay.dir.path().join("data");
    let url = database.clone().unwrap_or_else(|| format!("sqlite://{}", data.join("sekisho.db").display()));
    for i in 0..8 {
        relay.ctl(&["token", "create", "--name", &format!("t{i}"), "--role", "back"]).await.unwrap();
    }
    last_seq(&relay).await;

    // Laundering: old-looking edited events, then retention.
    let ages = 4000 * 86_400_000i64; // older than any retention (at most 3650 days)
    sql_on(
        &url,
        &format!("UPDATE audit_events SET at = at - {ages}, reason = 'nothing happened' WHERE tenant_id = 'default' AND seq <= 3"),
    )
    .await;
    let (status, body) = relay.api("POST", "/api/v1/tenants/retention", None, &relay.admin_key).await;
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("audit_unverified")), "{body}");
    assert!(body["error"]["refused"][0]["reason"].as_str().unwrap().contains("refusing to prune"), "{body}");
    relay.wait_event(|e| e["reason"].as_str().unwrap_or("").starts_with("audit_unverified")).await;
    let (_, report) = relay.api("POST", "/api/v1/audit/verify", None, &relay.admin_key).await;
    let t = report["tenants"].as_array().unwrap().iter().find(|t| t["tenant"] == "default").unwrap().clone();
    assert_eq!((report["ok"].as_bool(), t["first_seq"].as_i64()), (Some(false), Some(1)), "nothing pruned: {report}");
    assert_eq!(t["problem"]["kind"], "altered", "{report}");
    drop(relay);

    // A fresh relay for the cut: a tail deleted with its checkpoints.
    let database = match database {
        Some(_) => crate::harness::pg_database().await,
        None => None,
    };
    let extra: Vec<&str> = database.as_deref().map_or(vec![], |u| vec!["--database", u]);
    let mut relay = Relay::start_with(&extra).await;
    let data = relay.dir.path().join("data");
    let url = database.clone().unwrap_or_else(|| format!("sqlite://{}", data.join("sekisho.db").display()));
    for i in 0..8 {
        relay.ctl(&["token", "create", "--name", &format!("a{i}"), "--role", "back"]).await.unwrap();
    }
    let kept = last_seq(&relay).await;
    for i in 0..5 {
        relay.ctl(&["token", "create", "--name", &format!("b{i}"), "--role", "back"]).await.unwrap();
    }
    let newest = last_seq(&relay).await;
    relay.proc.kill().await;
    assert!(verify_on(&data, database.as_deref()).await.0, "an untouched log verifies offline");
    sql_on(&url, &format!("DELETE FROM audit_events WHERE tenant_id = 'default' AND seq > {kept}")).await;
    sql_on(&url, &format!("DELETE FROM audit_checkpoints WHERE tenant_id = 'default' AND seq > {kept}")).await;
    let (ok, out) = verify_on(&data, database.as_deref()).await;
    assert!(!ok, "a cut tail went unnoticed: {out}");
    let said = format!("events #{}..#{newest} are missing: the anchor file", kept + 1);
    assert!(out.contains("TAMPERED default") && out.contains("cut") && out.contains(&said), "{out}");
    std::fs::remove_file(data.join("audit-anchors.jsonl")).unwrap();
    let (ok, out) = verify_on(&data, database.as_deref()).await;
    assert!(!ok && out.contains("anchor_missing") && out.contains("is missing"), "{out}");
}

#[tokio::test]
async fn the_log_cannot_be_laundered_or_cut_short_on_sqlite() {
    the_log_cannot_be_laundered_or_cut_short(None).await;
}

#[tokio::test]
async fn the_log_cannot_be_laundered_or_cut_short_on_postgresql() {
    let Some(url) = crate::harness::pg_database().await else { return };
    the_log_cannot_be_laundered_or_cut_short(Some(url)).await;
}
