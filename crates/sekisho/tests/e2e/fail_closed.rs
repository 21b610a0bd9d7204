//! Fail closed on the decision path, with real failures rather than hooks: a stored policy whose
//! deny list was corrupted in the database (as a bad restore or a hand edit would) makes its
//! service deny everything with `policy_unreadable` on the tunnel and gateway paths and in
//! `ctl policy test`, where it used to become an empty deny list under required conditions that
//! still permitted.

use std::net::SocketAddr;

use serde_json::json;
use sqlx::Connection;

use crate::harness::Relay;
use crate::targets;

async fn sql(relay: &Relay, statement: &str) {
    let db = relay.dir.path().join("data").join("sekisho.db");
    let mut c = sqlx::SqliteConnection::connect(&format!("sqlite://{}", db.display())).await.unwrap();
    let r = sqlx::query(statement).execute(&mut c).await.unwrap();
    assert!(r.rows_affected() > 0, "{statement} changed nothing");
}

#[tokio::test]
async fn a_stored_policy_that_cannot_be_read_denies_its_service_on_every_path() {
    let hosts = std::env::temp_dir().join(format!("sekisho-hosts-{}", rand::random::<u64>()));
    std::fs::write(&hosts, "127.0.0.1 intranet.test\n").unwrap();
    let relay = Relay::start_with(&[
        "--socks-listen",
        "127.0.0.1:0",
        "--socks-hosts",
        hosts.to_str().unwrap(),
        "--egress-allow",
        "127.0.0.0/8",
    ])
    .await;
    let key = relay.admin_key.clone();
    let ok = |(status, v): (u16, serde_json::Value)| {
        assert!((200..300).contains(&status), "{v}");
        v
    };
    // A tunnel service and a gateway, each allowed for everyone with a deny list that matters.
    let back = relay.agent("site", "back").await;
    let mut front = relay.agent("front", "front").await;
    let echo = targets::echo_after_eof("ok:").await;
    relay.service("echo", &back, &format!("tcp://{echo}")).await;
    relay.policy("echo", &["true"], &[r#"principal == Agent::"someone-else""#]).await;
    let (_, addr) = relay.route(&mut front, "echo").await;
    relay.ctl(&["service", "create", "internet", "--target", "socks"]).await.unwrap();
    relay.policy("internet", &["true"], &[r#"context.port == 9"#]).await;
    ok(relay.api("POST", "/api/v1/groups", Some(json!({"name": "staff", "role": "member"})), &key).await);
    let user = json!({"name": "alice", "password": "correct horse battery", "groups": ["staff"]});
    ok(relay.api("POST", "/api/v1/users", Some(user), &key).await);
    let proxy = ok(relay
        .api("POST", "/api/v1/api-keys", Some(json!({"name": "p", "scopes": ["gateway:use"], "user": "alice"})), &key)
        .await)["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let web = targets::http().await;
    let through_gateway = |socks: SocketAddr| {
        let url = format!("http://intranet.test:{}/", web.port());
        let user = format!("alice:{proxy}");
        async move {
            let out = tokio::process::Command::new("curl")
                .args(["-sS", "--max-time", "10", "--socks5-hostname", &socks.to_string(), "--proxy-user", &user, &url])
                .output()
                .await
                .unwrap();
            out.status.success()
        }
    };
    let socks = relay.socks.unwrap();
    assert_eq!(targets::roundtrip(addr, b"x").await.unwrap(), b"ok:x");
    assert!(through_gateway(socks).await);

    // The stored deny lists become unreadable; the generation moves, as when another relay
    // changes something, so this relay reloads within its 1 s poll.
    sql(&relay, "UPDATE service_policies SET deny = '[\"principal ==' ").await;
    sql(&relay, "UPDATE cluster_state SET generation = generation + 1").await;

    // Tunnel: refused with the reason, not allowed for want of deny conditions.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while targets::roundtrip(addr, b"x").await.is_ok_and(|r| r == b"ok:x") {
        assert!(tokio::time::Instant::now() < deadline, "a service whose policy cannot be read stayed open");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let e = relay.wait_event(|e| e["path"] == "tunnel" && e["policy_id"] == "policy_unreadable").await;
    assert!(e["reason"].as_str().unwrap().contains("the stored deny list is not readable"), "{e}");
    // Gateway.
    assert!(!through_gateway(socks).await, "the gateway let a connection through an unreadable policy");
    relay.wait_event(|e| e["path"] == "socks" && e["policy_id"] == "policy_unreadable").await;
    // The dry run says the same.
    let test = relay.ctl(&["policy", "test", "--service", "echo", "--agent", "front", "--ip", "203.0.113.7"]).await;
    let test = test.unwrap();
    assert_eq!(
        (test["allowed"].as_bool(), test["policy_id"].as_str()),
        (Some(false), Some("policy_unreadable")),
        "{test}"
    );

    // Setting the policy again through the API mends it.
    relay.policy("echo", &["true"], &[]).await;
    assert_eq!(targets::roundtrip(addr, b"y").await.unwrap(), b"ok:y");
}

/// `scripts/postgres.sh` with `args`; Ok(stdout) or Err(why).
fn postgres(args: &[&str]) -> Result<String, String> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/postgres.sh");
    let out = std::process::Command::new(script)
        .args(args)
        .env("SEKISHO_PG_DURABLE", "1")
        .output()
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// A relay on its own PostgreSQL, which is stopped mid-test (`pg_ctl stop -m immediate`): a
/// gateway login that must read the store is refused, the relay says it is degraded, and once the
/// database is back the refusal recorded during the outage is in the log, which verifies.
#[tokio::test]
async fn postgres_stopped_mid_test_refuses_what_needs_the_store_and_loses_no_event() {
    let pg_dir = std::env::temp_dir().join(format!("sekisho-pg-outage-{}", rand::random::<u32>()));
    let url = match postgres(&["start", pg_dir.to_str().unwrap()]) {
        Ok(url) => url,
        Err(why) => {
            assert!(std::env::var("SEKISHO_REQUIRE_PG").is_err(), "no PostgreSQL for the outage test: {why}");
            eprintln!("skipped: no PostgreSQL ({why})");
            return;
        }
    };
    struct Cluster(std::path::PathBuf);
    impl Drop for Cluster {
        fn drop(&mut self) {
            let _ = postgres(&["stop", self.0.to_str().unwrap()]);
        }
    }
    let cluster = Cluster(pg_dir);
    let hosts = std::env::temp_dir().join(format!("sekisho-hosts-{}", rand::random::<u64>()));
    std::fs::write(&hosts, "127.0.0.1 intranet.test\n").unwrap();
    let relay = Relay::start_with(&[
        "--database",
        &url,
        "--socks-listen",
        "127.0.0.1:0",
        "--socks-hosts",
        hosts.to_str().unwrap(),
        "--egress-allow",
        "127.0.0.0/8",
    ])
    .await;
    let key = relay.admin_key.clone();
    let ok = |(status, v): (u16, serde_json::Value)| {
        assert!((200..300).contains(&status), "{v}");
        v
    };
    relay.ctl(&["service", "create", "internet", "--target", "socks"]).await.unwrap();
    relay.policy("internet", &["true"], &[]).await;
    ok(relay
        .api("POST", "/api/v1/users", Some(json!({"name": "alice", "password": "correct horse battery"})), &key)
        .await);
    let proxy_key = |name: &str| {
        let body = json!({"name": name, "scopes": ["gateway:use"], "user": "alice"});
        let relay = &relay;
        let key = key.clone();
        async move { relay.api("POST", "/api/v1/api-keys", Some(body), &key).await.1["key"].as_str().unwrap().to_owned() }
    };
    let used = proxy_key("used").await;
    let fresh = proxy_key("fresh").await;
    let web = targets::http().await;
    let socks = relay.socks.unwrap();
    let curl = |secret: String| {
        let url = format!("http://intranet.test:{}/", web.port());
        async move {
            tokio::process::Command::new("curl")
                .args(["-sS", "--max-time", "15", "--socks5-hostname", &socks.to_string(), "--proxy-user"])
                .arg(format!("alice:{secret}"))
                .arg(&url)
                .output()
                .await
                .unwrap()
                .status
                .success()
        }
    };
    assert!(curl(used.clone()).await, "the gateway works before the outage");

    postgres(&["halt", cluster.0.to_str().unwrap()]).unwrap();
    // A key the relay has not seen must be read from the store: refused, not let through.
    assert!(!curl(fresh.clone()).await, "a login that could not be checked was let through");
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let health = relay.api("GET", "/api/v1/health", None, "").await.1;
        if health["status"] == "degraded" {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the relay never said it was degraded: {health}");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }

    postgres(&["resume", cluster.0.to_str().unwrap()]).unwrap();
    // The refusal made during the outage was kept and is written now; the chain verifies.
    let refused = relay
        .wait_event(|e| {
            e["kind"] == "login"
                && e["path"] == "socks"
                && e["reason"].as_str().unwrap_or("").starts_with("store_error")
        })
        .await;
    assert_eq!(refused["decision"], "deny", "{refused}");
    let again = curl(fresh).await;
    if !again {
        let (_, events) = relay.api("GET", "/api/v1/audit?limit=20", None, &key).await;
        panic!("the gateway does not work after the outage: {events:#}");
    }
    let verified = ok(relay.api("POST", "/api/v1/audit/verify", None, &key).await);
    assert_eq!(verified["ok"], true, "{verified}");
}
