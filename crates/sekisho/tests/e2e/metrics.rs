//! `/metrics` as an operator uses it: scraped by a real Prometheus (Debian's package), which then
//! answers queries about the relay: agents online, decisions by door and result, bytes carried.

use std::time::Duration;

use serde_json::Value;

use crate::harness::{Relay, test_dir};
use crate::targets;

/// The value of the sample `line` starts with, in an exposition text.
fn sample(text: &str, line: &str) -> Option<f64> {
    text.lines().find(|l| l.starts_with(line)).and_then(|l| l.rsplit(' ').next()).and_then(|v| v.parse().ok())
}

#[tokio::test]
async fn prometheus_scrapes_the_relay() {
    let relay = Relay::start_with(&["--metrics-listen", "127.0.0.1:0"]).await;
    let metrics = relay.metrics.expect("the ready event names the metrics address");
    let back = relay.agent("site", "back").await;
    let mut front = relay.agent("front", "front").await;
    let echo = targets::echo_stream().await;
    relay.service("echo", &back, &format!("tcp://{echo}")).await;
    let (_, addr) = relay.route(&mut front, "echo").await;
    assert_eq!(targets::roundtrip(addr, b"ping").await.unwrap(), b"ping");
    relay.policy("echo", &["true"], &["context.path == \"tunnel\""]).await;
    assert!(targets::roundtrip(addr, b"ping").await.map_or(true, |b| b.is_empty()), "denied now");
    // A failed sign-in.
    let body = serde_json::json!({ "user": "nobody", "password": "wrong password" });
    assert_eq!(relay.api("POST", "/api/v1/login", Some(body), "").await.0, 401);

    // The exposition itself.
    let url = format!("http://{metrics}/metrics");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let text = loop {
        let text = reqwest::get(&url).await.unwrap().text().await.unwrap();
        let done = sample(&text, "sekisho_decisions_total{door=\"tunnel\",decision=\"deny\"}").unwrap_or(0.0) >= 1.0
            && sample(&text, "sekisho_stream_bytes_total{direction=\"in\"}").unwrap_or(0.0) >= 4.0
            && sample(&text, "sekisho_logins_total{result=\"deny\"}").unwrap_or(0.0) >= 1.0;
        if done || tokio::time::Instant::now() > deadline {
            break text;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(sample(&text, "sekisho_agents_online "), Some(2.0), "{text}");
    assert!(sample(&text, "sekisho_decisions_total{door=\"tunnel\",decision=\"allow\"}") >= Some(1.0), "{text}");
    assert!(sample(&text, "sekisho_decisions_total{door=\"tunnel\",decision=\"deny\"}") >= Some(1.0), "{text}");
    assert!(sample(&text, "sekisho_stream_bytes_total{direction=\"in\"}") >= Some(4.0), "{text}");
    assert!(text.contains("# HELP sekisho_audit_queue_depth") && text.ends_with("# EOF\n"), "{text}");
    assert_eq!(sample(&text, "sekisho_logins_total{result=\"deny\"}"), Some(1.0), "{text}");
    assert_eq!(sample(&text, "sekisho_logins_total{result=\"allow\"}"), Some(0.0), "{text}");
    // Committed within the writer's batch window, not seconds later.
    assert!(sample(&text, "sekisho_audit_commit_lag_milliseconds ").is_some_and(|ms| ms < 5000.0), "{text}");
    assert!(!text.contains("echo") && !text.contains("site"), "names stay out of the metrics: {text}");

    // A real Prometheus scrapes it and answers a query.
    let dir = test_dir();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: sekisho\n    static_configs:\n      - targets: ['{metrics}']\n"
        ),
    )
    .unwrap();
    let mut prom = tokio::process::Command::new("prometheus")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.tsdb.path={}", dir.path().join("tsdb").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("prometheus.log")).unwrap())
        .kill_on_drop(true)
        .spawn()
        .expect("Debian's prometheus package (the test command installs it)");
    let query = format!("http://127.0.0.1:{port}/api/v1/query?query=sekisho_agents_online");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let answer = loop {
        if let Ok(resp) = reqwest::get(&query).await {
            let v: Value = resp.json().await.unwrap_or(Value::Null);
            if v["data"]["result"].as_array().is_some_and(|r| !r.is_empty()) {
                break v;
            }
        }
        let log = std::fs::read_to_string(dir.path().join("prometheus.log")).unwrap_or_default();
        assert!(tokio::time::Instant::now() < deadline, "Prometheus did not scrape the relay: {log}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(answer["data"]["result"][0]["value"][1], "2", "{answer}");
    let up = format!("http://127.0.0.1:{port}/api/v1/query?query=up%7Bjob%3D%22sekisho%22%7D");
    let up: Value = reqwest::get(&up).await.unwrap().json().await.unwrap();
    assert_eq!(up["data"]["result"][0]["value"][1], "1", "{up}");
    let _ = prom.kill().await;
}
