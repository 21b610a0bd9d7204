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

    // The API shows why, not empty lists.
    let (_, shown) = relay.api("GET", "/api/v1/policies/echo", None, &key).await;
    assert!(shown["unreadable"].as_str().unwrap_or("").contains("the stored deny list is not readable"), "{shown}");
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

/// A relay on its own PostgreSQL, which is stopped mid-test (`pg_ctl stop -m immediate`): every
/// front door refuses what it cannot check, by name (`store_unavailable`), never letting it
/// through and never calling it "not valid" — the SOCKS gateway, the admin API, `ctl policy
/// test`, the console sign-in, the SSH bastion, an agent's enrolment and a browser-edge request
/// with a session (503, not forwarded, not signed out); the relay says it is
/// degraded; once the database is back every refusal made during the outage is in the log, which
/// verifies, and each path works again.
#[tokio::test]
async fn postgres_stopped_mid_test_denies_on_every_path_by_name_and_loses_no_event() {
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
        "--ssh-listen",
        "127.0.0.1:0",
    ])
    .await;
    let dir = relay.dir.path().to_owned();
    let key = relay.admin_key.clone();
    let ok = |(status, v): (u16, serde_json::Value)| {
        assert!((200..300).contains(&status), "{v}");
        v
    };
    relay.ctl(&["service", "create", "internet", "--target", "socks"]).await.unwrap();
    relay.policy("internet", &["true"], &[]).await;
    let (totp, ssh_key) = crate::ssh_util::bastion_user(&relay, &dir, "alice", "staff").await;
    let new_key = |body: serde_json::Value| {
        let relay = &relay;
        let key = key.clone();
        async move { relay.api("POST", "/api/v1/api-keys", Some(body), &key).await.1["key"].as_str().unwrap().to_owned() }
    };
    let used = new_key(json!({"name": "used", "scopes": ["gateway:use"], "user": "alice"})).await;
    let fresh = new_key(json!({"name": "fresh", "scopes": ["gateway:use"], "user": "alice"})).await;
    let reader = new_key(json!({"name": "reader", "scopes": ["agents:read"]})).await;
    let token = relay.token("late", "back").await;
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
    // A browser with a session on a service of the browser edge.
    let back = relay.agent("site", "back").await;
    let app = crate::web::app().await;
    let app_target = format!("http://{app}");
    relay.ctl(&["service", "create", "wiki", "--agent", &back.id, "--target", &app_target, "--browser"]).await.unwrap();
    relay.policy("wiki", &["principal in Group::\"staff\""], &[]).await;
    let wiki = "wiki.default.localhost";
    let mut browser = crate::web::Visitor::new(&relay, &[wiki]);
    let first = browser.get(&browser.url(wiki, "/headers")).await;
    let (page, _) = browser.sign_in(first.location.as_deref().unwrap(), "alice", &totp, -1).await;
    assert_eq!(page.status, 200, "the browser edge works before the outage: {}", page.body);
    let headers_url = browser.url(wiki, "/headers");
    // Any admin change makes the browser edge forget the sessions it had checked (within the last
    // 10 s), so the next request must read the visitor's session from the store.
    ok(relay.api("POST", "/api/v1/groups", Some(json!({"name": "before-outage", "role": "member"})), &key).await);

    postgres(&["halt", cluster.0.to_str().unwrap()]).unwrap();
    let ssh = ssh_login(&relay, &totp, &ssh_key, "alice+internet@127.0.0.1");
    let sign_in = console_sign_in(&relay, &totp, "ja");
    let enrol = enrolment_refused(&relay, &token);
    let (gateway, api, policy_test, ssh, page, (mut late, refused), during) = tokio::join!(
        curl(fresh.clone()),
        relay.api("GET", "/api/v1/agents", None, &reader),
        relay.ctl(&["policy", "test", "--service", "internet", "--user", "alice", "--ip", "203.0.113.7"]),
        ssh,
        sign_in,
        enrol,
        browser.get(&headers_url),
    );
    // A browser request whose session cannot be checked does not reach the service, and says
    // why; the visitor is not signed out.
    assert_eq!(during.status, 503, "{}", during.body);
    assert!(during.body.contains("store_unavailable"), "the browser is told why: {}", during.body);
    assert!(!during.body.contains("x-sekisho-user"), "the request reached the service: {}", during.body);
    assert!(during.set_cookies.iter().all(|c| !c.starts_with("__Host-sekisho-edge=")), "{:?}", during.set_cookies);
    // A key the relay has not seen must be read from the store: refused, not let through.
    assert!(!gateway, "a gateway login that could not be checked was let through");
    assert_eq!((api.0, api.1["error"]["code"].as_str()), (503, Some("store_unavailable")), "{}", api.1);
    let policy_test = policy_test.expect_err("a dry run without the store has no answer");
    assert!(policy_test.contains("store_unavailable"), "{policy_test}");
    assert_ne!(ssh.0, 0, "an ssh login that could not be checked was let in: {} {}", ssh.1, ssh.2);
    assert!(
        page.body.contains("データベースを読み書きできない"),
        "the sign-in page says why, in Japanese: {}",
        page.body
    );
    assert!(page.set_cookies.iter().all(|c| !c.starts_with("__Host-sekisho=")), "no session without the store");
    let why = refused["reason"].as_str().unwrap();
    assert!(why.contains("store_unavailable"), "the agent hears why, not `token_unknown`: {refused}");
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
    // Every refusal made during the outage was kept and is written now, each with its reason.
    let unavailable = |e: &serde_json::Value, path: &str| {
        e["path"] == path
            && e["decision"] == "deny"
            && e["reason"].as_str().unwrap_or("").starts_with("store_unavailable")
    };
    relay.wait_event(|e| e["kind"] == "login" && unavailable(e, "socks")).await;
    relay.wait_event(|e| e["kind"] == "login" && unavailable(e, "ssh")).await;
    relay.wait_event(|e| e["kind"] == "login" && unavailable(e, "api") && e["subject"] == "alice").await;
    relay.wait_event(|e| unavailable(e, "api") && e["target"] == "GET /agents").await;
    // Each path works again: the agent enrols with the token it kept, the gateway lets the fresh
    // key in, the API answers.
    late.proc.wait_new("enrolled after the outage", |e| e["event"] == "connected").await;
    let again = curl(fresh).await;
    if !again {
        let (_, events) = relay.api("GET", "/api/v1/audit?limit=20", None, &key).await;
        panic!("the gateway does not work after the outage: {events:#}");
    }
    assert_eq!(relay.api("GET", "/api/v1/agents", None, &reader).await.0, 200);
    let after = browser.get(&headers_url).await;
    assert_eq!(after.status, 200, "the browser session outlived the outage: {}", after.body);
    assert!(after.body.contains("x-sekisho-user"), "{}", after.body);
    let verified = ok(relay.api("POST", "/api/v1/audit/verify", None, &key).await);
    assert_eq!(verified["ok"], true, "{verified}");
}

/// Another process holding the SQLite database in `BEGIN EXCLUSIVE` (a backup tool or a hand
/// `sqlite3` session would): every write waits out the busy timeout and fails.
struct ExclusiveHold(tokio::process::Child);

impl ExclusiveHold {
    async fn take(db: &std::path::Path) -> ExclusiveHold {
        use tokio::io::AsyncBufReadExt;
        let script = "import sqlite3, sys\n\
                      c = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)\n\
                      c.execute('BEGIN EXCLUSIVE')\n\
                      print('held', flush=True)\n\
                      sys.stdin.read()\n\
                      c.execute('ROLLBACK')\n";
        let mut child = tokio::process::Command::new("python3")
            .args(["-c", script])
            .arg(db)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("python3 runs");
        let mut out = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let line = tokio::time::timeout(std::time::Duration::from_secs(40), out.next_line()).await;
        assert_eq!(line.ok().and_then(|l| l.ok()).flatten().as_deref(), Some("held"), "python3 took the lock");
        ExclusiveHold(child)
    }

    async fn release(mut self) {
        drop(self.0.stdin.take());
        let status = self.0.wait().await.unwrap();
        assert!(status.success(), "the lock holder ended cleanly");
    }
}

/// SQLite held by another process in `BEGIN EXCLUSIVE`: a route's new stream is decided from what
/// the relay holds and forwarded, because its `opened` event is on disk in the relay's audit journal
/// (committed to the database once the lock is gone); every decision that needs a write is refused
/// by name — the console sign-in (its TOTP step must be spent), the SSH bastion (the same), an
/// agent's enrolment, an admin change (503, nothing changed, and the attempt and its failure are on
/// record). Once the lock is gone, nothing recorded meanwhile is missing and the chain verifies.
#[tokio::test]
async fn sqlite_held_exclusive_refuses_what_needs_a_write_and_loses_no_event() {
    let relay = Relay::start_with(&["--ssh-listen", "127.0.0.1:0"]).await;
    let dir = relay.dir.path().to_owned();
    let key = relay.admin_key.clone();
    let (totp, ssh_key) = crate::ssh_util::bastion_user(&relay, &dir, "alice", "staff").await;
    let back = relay.agent("site", "back").await;
    let mut front = relay.agent("front", "front").await;
    let echo = targets::echo_after_eof("ok:").await;
    relay.service("echo", &back, &format!("tcp://{echo}")).await;
    let (_, addr) = relay.route(&mut front, "echo").await;
    let token = relay.token("late", "back").await;
    assert_eq!(targets::roundtrip(addr, b"before").await.unwrap(), b"ok:before");
    let streams_before = tunnel_events(&relay).await;

    let hold = ExclusiveHold::take(&dir.join("data").join("sekisho.db")).await;
    let ssh = ssh_login(&relay, &totp, &ssh_key, "alice+echo@127.0.0.1");
    let sign_in = console_sign_in(&relay, &totp, "en");
    let enrol = enrolment_refused(&relay, &token);
    let (stream, ssh, page, (mut late, refused), change) = tokio::join!(
        targets::roundtrip(addr, b"during"),
        ssh,
        sign_in,
        enrol,
        relay.api("POST", "/api/v1/groups", Some(json!({"name": "during", "role": "member"})), &key),
    );
    // Decided from what the relay holds, and forwarded: its opening is on disk in the journal.
    assert_eq!(stream.as_deref().ok(), Some(&b"ok:during"[..]), "the stream during the hold: {stream:?}");
    assert_ne!(ssh.0, 0, "an ssh login whose TOTP step could not be spent was let in: {} {}", ssh.1, ssh.2);
    assert!(page.body.contains("cannot read or write its database"), "the sign-in page says why: {}", page.body);
    assert!(page.set_cookies.iter().all(|c| !c.starts_with("__Host-sekisho=")), "no session without the store");
    assert!(refused["reason"].as_str().unwrap().contains("store_unavailable"), "{refused}");
    // The change's evidence is journaled; the change itself cannot be written.
    assert_eq!((change.0, change.1["error"]["code"].as_str()), (503, Some("store_unavailable")), "{}", change.1);

    hold.release().await;
    let unavailable = |e: &serde_json::Value, path: &str| {
        e["path"] == path
            && e["decision"] == "deny"
            && e["reason"].as_str().unwrap_or("").starts_with("store_unavailable")
    };
    relay.wait_event(|e| e["kind"] == "login" && unavailable(e, "ssh")).await;
    relay.wait_event(|e| e["kind"] == "login" && unavailable(e, "api") && e["subject"] == "alice").await;
    relay.wait_event(|e| e["kind"] == "agent_auth" && unavailable(e, "agent")).await;
    // The stream forwarded while the store was held is on record, opened and closed, in order.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    while tunnel_events(&relay).await < streams_before + 2 {
        assert!(tokio::time::Instant::now() < deadline, "the stream made during the hold left no events");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let closed = relay.wait_event(|e| e["path"] == "tunnel" && e["phase"] == "closed").await;
    let stream_id = closed["stream_id"].as_str().unwrap().to_owned();
    relay.wait_event(|e| e["phase"] == "opened" && e["stream_id"] == stream_id.as_str()).await;
    assert_eq!(closed["decision"], "allow", "{closed}");
    // The refused change: permitted (journaled), then failed for want of the store.
    relay
        .wait_event(|e| {
            e["kind"] == "admin"
                && e["decision"] == "deny"
                && e["target"] == "POST /groups"
                && e["reason"].as_str().unwrap_or("").contains("store_unavailable")
        })
        .await;
    assert_eq!(targets::roundtrip(addr, b"after").await.unwrap(), b"ok:after");
    // Nothing was changed by the refused admin request; each path works again.
    let (_, groups) = relay.api("GET", "/api/v1/groups", None, &key).await;
    assert!(!groups.to_string().contains("\"during\""), "a change without evidence was applied: {groups}");
    late.proc.wait_new("enrolled after the hold", |e| e["event"] == "connected").await;
    let mut v = crate::web::Visitor::new(&relay, &[]);
    let (page, _) = v.sign_in(&v.url("localhost", "/login"), "alice", &totp, 1).await;
    assert_eq!(page.status, 200, "{}", page.body);
    let verified = relay.api("POST", "/api/v1/audit/verify", None, &key).await.1;
    assert_eq!(verified["ok"], true, "{verified}");
}

/// How many tunnel access events the relay's log holds (of its last 500).
async fn tunnel_events(relay: &Relay) -> usize {
    let (_, events) = relay.api("GET", "/api/v1/audit?limit=500", None, &relay.admin_key).await;
    events.as_array().unwrap().iter().filter(|e| e["path"] == "tunnel" && e["kind"] == "access").count()
}

/// A directory made read-only by a read-only bind mount over it; unmounted when dropped.
struct ReadOnlyMount(std::path::PathBuf);

impl ReadOnlyMount {
    /// None where this process may not mount (not root, or a container without the right).
    fn over(dir: &std::path::Path) -> Option<ReadOnlyMount> {
        let mount = |args: &[&str]| {
            std::process::Command::new("mount")
                .args(args)
                .arg(dir)
                .arg(dir)
                .stderr(std::process::Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        if !mount(&["--bind"]) {
            return None;
        }
        let ro = ReadOnlyMount(dir.to_owned());
        assert!(mount(&["-o", "remount,bind,ro"]), "remounting the bind mount read-only");
        Some(ro)
    }
}

impl Drop for ReadOnlyMount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

/// A data directory that has become read-only (a disk remounted read-only after errors, a
/// mistaken mount) stops the relay at start, saying which directory and why: a relay that could
/// not keep evidence must not serve. Made writable again, the relay starts on the same data.
#[tokio::test]
async fn a_read_only_data_directory_stops_the_relay_at_start_with_the_reason() {
    let mut relay = Relay::start().await;
    relay.proc.kill().await;
    let data = relay.dir.path().join("data");
    let Some(ro) = ReadOnlyMount::over(&data) else {
        assert!(std::env::var("SEKISHO_REQUIRE_MOUNT").is_err(), "this test needs to mount (root)");
        eprintln!("skipped: cannot mount here (the test needs root)");
        return;
    };
    assert!(std::fs::write(data.join("probe"), b"x").is_err(), "the mount is read-only");
    let out = tokio::process::Command::new(crate::harness::BIN)
        .args(["relay", "--json-events", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .output();
    let out = tokio::time::timeout(std::time::Duration::from_secs(30), out).await.expect("the relay exits").unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a relay on a read-only data directory started: {stderr}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("\"ready\""), "it said it was ready");
    let said = format!("the data directory `{}` cannot be used (Read-only file system", data.display());
    assert!(stderr.contains(&said) && stderr.contains("writable by the relay's user"), "{stderr}");
    drop(ro);
    relay.restart().await;
    assert_eq!(relay.health().await["status"], "ok");
}

/// An OpenSSH login to the bastion as `target` with alice's key and TOTP: (exit code, out, err).
async fn ssh_login(relay: &Relay, totp: &str, key: &std::path::Path, target: &str) -> (i32, String, String) {
    let dir = relay.dir.path();
    let code = crate::ssh_util::totp_now(totp, 0);
    let opts = crate::ssh_util::ssh_opts(dir, relay.ssh.unwrap(), key, &code, None);
    let args = [opts, vec![target.to_owned(), "true".to_owned()]].concat();
    crate::ssh_util::run("ssh", &args, dir, &code, b"").await
}

/// alice's console sign-in form, sent once in `lang`: the page the relay answers.
async fn console_sign_in(relay: &Relay, totp: &str, lang: &'static str) -> crate::web::Page {
    let mut v = crate::web::Visitor::new(relay, &[]);
    v.lang = lang;
    let code = crate::ssh_util::totp_now(totp, 0);
    let form = [("tenant", "default"), ("user", "alice"), ("password", crate::web::PASSWORD), ("totp", &code)];
    v.post(&v.url("localhost", "/login"), &form).await
}

/// An agent enrolling with `token`, and the first refusal it reports (it keeps retrying).
async fn enrolment_refused(relay: &Relay, token: &str) -> (crate::harness::Agent, serde_json::Value) {
    let mut late = crate::harness::Agent::start(relay, token, &[]).await;
    let refused = late.proc.wait_for("enrolment refused", |e| e["event"] == "disconnected").await;
    (late, refused)
}
