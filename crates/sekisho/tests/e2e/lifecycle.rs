//! Things that change while traffic flows: relay restarts, live route changes, revocation,
//! proxies, and the quickstart.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::Command;

use crate::harness::{Agent, BIN, Proc, Relay};
use crate::targets;

#[tokio::test]
async fn agents_reconnect_after_a_relay_restart_and_the_route_works_within_five_seconds() {
    let mut relay = Relay::start().await;
    let back = relay.agent("site", "back").await;
    let mut front = relay.agent("front", "front").await;
    let echo = targets::echo_after_eof("ok:").await;
    relay.service("echo", &back, &format!("tcp://{echo}")).await;
    let (_, addr) = relay.route(&mut front, "echo").await;
    assert_eq!(targets::roundtrip(addr, b"1").await.unwrap(), b"ok:1");

    relay.restart().await;
    let back_up = Instant::now();
    loop {
        if let Ok(v) = targets::roundtrip(addr, b"2").await
            && v == b"ok:2"
        {
            break;
        }
        assert!(back_up.elapsed() < Duration::from_secs(5), "route not working 5 s after the relay came back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(back);
}

#[tokio::test]
async fn route_changes_reach_agents_live() {
    let relay = Relay::start().await;
    let back = relay.agent("site", "back").await;
    let mut front = relay.agent("front", "front").await;
    let echo = targets::echo_stream().await;
    relay.service("echo", &back, &format!("tcp://{echo}")).await;

    let started = Instant::now();
    let (route, addr) = relay.route(&mut front, "echo").await;
    assert!(started.elapsed() < Duration::from_secs(1) + ctl_overhead(), "listener took {:?}", started.elapsed());
    let status = relay.ctl(&["route", "list"]).await.unwrap();
    assert_eq!(status[0]["bound"], addr.to_string());

    // A long-lived connection through the route.
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"ping").await.unwrap();
    let mut buf = [0u8; 4];
    s.read_exact(&mut buf).await.unwrap();

    relay.ctl(&["route", "rm", &route]).await.unwrap();
    let rid = route.clone();
    front.proc.wait_for("route_closed", move |e| e["event"] == "route_closed" && e["route_id"] == rid.as_str()).await;
    // The existing connection is reset and the listener is gone.
    let mut rest = Vec::new();
    let r = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut rest)).await.expect("stream ends");
    assert!(r.is_err() || rest.is_empty());
    assert!(TcpStream::connect(addr).await.is_err(), "listener still open");
    relay.wait_event(|e| e.to_string().contains("route removed")).await;
}

/// Time the `ctl` process itself takes (start-up, TLS) is not the agent's latency.
fn ctl_overhead() -> Duration {
    Duration::from_secs(2)
}

#[tokio::test]
async fn a_revoked_agent_is_disconnected_and_refused() {
    let relay = Relay::start().await;
    let mut agent = relay.agent("old-laptop", "front").await;
    relay.ctl(&["agent", "revoke", "old-laptop"]).await.unwrap();
    let (ok, err) = agent.proc.exit().await;
    assert!(!ok && err.contains("revoked"), "{err}");
    let agents = relay.ctl(&["agent", "list"]).await.unwrap();
    assert_eq!(agents[0]["revoked"], true);
    assert_eq!(agents[0]["online"], false);
}

/// Incident response: an agent with a route and a live stream is revoked only when forced; then
/// its stream ends, its route is deleted, the service it served is named, all on record.
#[tokio::test]
async fn a_forced_revocation_ends_streams_and_detaches_routes() {
    let relay = Relay::start().await;
    let back = relay.agent("site", "back").await;
    let mut front = relay.agent("stolen-pc", "front").await;
    let echo = targets::echo_stream().await;
    relay.service("echo", &back, &format!("tcp://{echo}")).await;
    let (route, addr) = relay.route(&mut front, "echo").await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"ping").await.unwrap();
    let mut buf = [0u8; 4];
    s.read_exact(&mut buf).await.unwrap();

    let refused = relay.ctl(&["agent", "revoke", "stolen-pc"]).await.unwrap_err();
    assert!(refused.contains("in_use") || refused.contains("in use"), "{refused}");
    let out = relay.ctl(&["agent", "revoke", "stolen-pc", "--force"]).await.unwrap();
    assert_eq!(out["routes_deleted"], serde_json::json!([route]), "{out}");
    assert_eq!(out["services_without_agent"], serde_json::json!([]), "{out}");
    let mut rest = Vec::new();
    let r = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut rest)).await.expect("the stream ends");
    assert!(r.is_err() || rest.is_empty(), "{r:?}");
    let (ok, err) = front.proc.exit().await;
    assert!(!ok && err.contains("revoked"), "{err}");
    assert_eq!(relay.ctl(&["route", "list"]).await.unwrap(), serde_json::json!([]));
    relay.wait_event(|e| e["reason"].as_str().unwrap_or("").starts_with("agent revoked by force: 1 route(s)")).await;

    // A back agent: the service stays, named, and refuses every access.
    let out = relay.ctl(&["agent", "revoke", "site", "--force"]).await.unwrap();
    assert_eq!(out["services_without_agent"], serde_json::json!(["echo"]), "{out}");
    // The human-readable answer names it too (in Japanese here).
    let back2 = relay.agent("site-2", "back").await;
    relay.service("files", &back2, &format!("tcp://{echo}")).await;
    let out = relay.ctl_text(&["--lang", "ja", "agent", "revoke", "site-2", "--force"]).await;
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("失効させ") && text.contains("エージェントのないサービス: files"), "{text}");
}

#[tokio::test]
async fn an_agent_behind_an_http_connect_proxy_works() {
    let relay = Relay::start().await;
    let proxy = targets::connect_proxy().await;
    let back_token = relay.token("behind-proxy", "back").await;
    let mut back = Agent::start(&relay, &back_token, &["--proxy", &format!("http://{}", proxy.addr)]).await;
    back.id = back.proc.event("connected").await["agent_id"].as_str().unwrap().to_owned();
    assert!(proxy.count.load(std::sync::atomic::Ordering::SeqCst) >= 1);
    assert_eq!(proxy.targets.lock().unwrap()[0], relay.addr.to_string());
    let mut front = relay.agent("front", "front").await;
    let echo = targets::echo_after_eof("via-proxy:").await;
    relay.service("echo", &back, &format!("tcp://{echo}")).await;
    let (_, addr) = relay.route(&mut front, "echo").await;
    assert_eq!(targets::roundtrip(addr, b"x").await.unwrap(), b"via-proxy:x");
}

#[tokio::test]
async fn quickstart_serves_the_demo_page() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(BIN);
    cmd.args(["quickstart", "--json-events", "--port", "0"]);
    let mut qs = Proc::spawn(cmd, dir.path().join("qs.log"));
    let ready = qs.event("ready").await;
    let url = ready["url"].as_str().unwrap();
    let page = reqwest::get(url).await.unwrap().text().await.unwrap();
    assert!(page.contains("SEKISHO-DEMO-OK"), "{page}");
    assert!(page.contains("関所"));
    // The demo is also published for browsers, behind the console's sign-in of the demo user.
    let console = ready["console_url"].as_str().unwrap();
    let browser = ready["browser_url"].as_str().unwrap();
    assert!(browser.starts_with("https://demo.default.localhost:"), "{browser}");
    let port: u16 = console.trim_end_matches('/').rsplit(':').next().unwrap().parse().unwrap();
    let relay: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
    let client = reqwest::Client::builder()
        .add_root_certificate(
            reqwest::Certificate::from_pem(&std::fs::read(ready["ca_file"].as_str().unwrap()).unwrap()).unwrap(),
        )
        .resolve("demo.default.localhost", relay)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let resp = client.get(browser).send().await.unwrap();
    assert_eq!(resp.status(), 303, "no session yet: to the sign-in");
    // Each path says what is true of it: ciphertext through the route, TLS ended at the relay
    // through the edge.
    assert!(page.contains("The relay only saw ciphertext") && page.contains("front agent (127.0.0.1)"), "{page}");
    let mut visitor = crate::web::Visitor::at(ready["ca_file"].as_str().unwrap(), relay, &["demo.default.localhost"]);
    let first = visitor.get(browser).await;
    let login = first.location.clone().expect("to the sign-in");
    let (password, secret) = (ready["password"].as_str().unwrap(), ready["totp_secret"].as_str().unwrap());
    let (edge, url) = visitor.sign_in_with(&login, "demo", password, secret, 0).await;
    assert!(url.starts_with(browser), "{url}");
    assert!(edge.body.contains("SEKISHO-DEMO-OK") && edge.body.contains("browser edge"), "{}", edge.body);
    assert!(edge.body.contains("ブラウザーエッジ経由") && !edge.body.contains("ciphertext"), "{}", edge.body);
}

#[tokio::test]
async fn a_frozen_relay_is_detected_by_heartbeat_and_streams_end_with_an_error() {
    let relay = Relay::start().await;
    let back = relay.agent("site", "back").await;
    let mut front = relay.agent("front", "front").await;
    let echo = targets::echo_stream().await;
    relay.service("echo", &back, &format!("tcp://{echo}")).await;
    let (_, addr) = relay.route(&mut front, "echo").await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"ping").await.unwrap();
    let mut buf = [0u8; 4];
    s.read_exact(&mut buf).await.unwrap();

    // Freeze the relay: TCP stays up, nothing answers.
    let pid = relay.proc.child.id().unwrap().to_string();
    let stop = |sig: &'static str| Command::new("kill").args([sig, &pid]).status();
    assert!(stop("-STOP").await.unwrap().success());
    let frozen = Instant::now();
    let ev = front.proc.wait_for("heartbeat disconnect", |e| e["event"] == "disconnected").await;
    let noticed = frozen.elapsed();
    assert!(ev["reason"].as_str().unwrap().contains("heartbeat"), "{ev}");
    assert!(noticed <= Duration::from_secs(16), "dead relay noticed only after {noticed:?}");
    // The user's connection ends with an error instead of hanging.
    let mut rest = Vec::new();
    let r = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut rest)).await.expect("stream must not hang");
    assert!(r.is_err() || rest.is_empty());
    assert!(stop("-CONT").await.unwrap().success());
    // And once the relay thaws, the agent comes back.
    front.proc.wait_new("reconnect", |e| e["event"] == "connected").await;
}

/// The data directory is the relay's alone: another local user reads neither the database (with
/// its WAL), nor keys, nor recordings; a directory an older version left open is tightened.
#[tokio::test]
async fn the_data_directory_and_every_file_in_it_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = crate::harness::test_dir();
    let data = dir.path().join("data");
    std::fs::create_dir_all(data.join("recordings")).unwrap();
    std::fs::write(data.join("left-by-an-older-version"), b"x").unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(data.join("left-by-an-older-version"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let relay = Relay::start_in(dir).await;
    // Something is written to the database and its WAL.
    relay.token("a", "back").await;
    let mut seen = Vec::new();
    let mut pending = vec![data.clone()];
    while let Some(d) = pending.pop() {
        let mode = std::fs::metadata(&d).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700, "{}", d.display());
        for entry in std::fs::read_dir(&d).unwrap() {
            let entry = entry.unwrap();
            if entry.file_type().unwrap().is_dir() {
                pending.push(entry.path());
                continue;
            }
            let mode = entry.metadata().unwrap().permissions().mode() & 0o777;
            assert_eq!(mode & 0o077, 0, "{} is {mode:o}", entry.path().display());
            seen.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    for f in ["sekisho.db", "sekisho.db-wal", "master.key", "left-by-an-older-version"] {
        assert!(seen.iter().any(|s| s == f), "{f} not among {seen:?}");
    }
}

/// `--log-format json`: every line on stderr is one JSON object a log collector can read.
#[tokio::test]
async fn logs_can_be_json_lines() {
    let relay = Relay::start_with(&["--log-format", "json"]).await;
    let _agent = relay.agent("site", "back").await;
    relay.health().await;
    let text = relay.proc.stderr_tail();
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(!lines.is_empty(), "the agent's connection is logged: {text}");
    for line in lines {
        let v: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(v["level"].is_string() && v["timestamp"].is_string() && v["fields"].is_object(), "{line}");
        // No field shadows another (a span field called `name` would collide with the span's).
        let spans = v["spans"].as_array().map_or(0, Vec::len) + usize::from(v["span"].is_object());
        assert_eq!(line.matches("\"name\":").count(), spans, "{line}");
    }
    assert!(text.contains("\"agent\":\"site\""), "the agent's name in its own field: {text}");
    assert!(!text.contains('\u{1b}'), "no colour codes");
}
