//! Starts the real `sekisho` binary as relay and agents on port 0 and talks to it with real
//! clients. Readiness comes from the JSON status lines the processes print (`--json-events`),
//! never from sleeping.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

pub const BIN: &str = env!("CARGO_BIN_EXE_sekisho");
pub const WAIT: Duration = Duration::from_secs(20);

/// A scratch directory; kept after the test when `SEKISHO_TEST_KEEP` is set, to read the logs
/// (`SEKISHO_TEST_LOG` sets the processes' `RUST_LOG`, e.g. `info,sekisho_relay::bastion=debug`).
pub fn test_dir() -> tempfile::TempDir {
    let mut b = tempfile::Builder::new();
    b.prefix("sekisho-e2e-");
    if std::env::var_os("SEKISHO_TEST_KEEP").is_some() {
        b.disable_cleanup(true);
    }
    b.tempdir().unwrap()
}

/// A child process whose stdout JSON lines are collected.
pub struct Proc {
    pub child: Child,
    events: mpsc::UnboundedReceiver<Value>,
    pub stderr: PathBuf,
    pub seen: Vec<Value>,
}

impl Proc {
    pub fn spawn(mut cmd: Command, stderr: PathBuf) -> Proc {
        let err = std::fs::File::create(&stderr).unwrap();
        cmd.stdout(Stdio::piped())
            .stderr(err)
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .env_remove("HTTPS_PROXY")
            .env_remove("https_proxy")
            .env_remove("ALL_PROXY")
            .env_remove("all_proxy")
            .env("RUST_LOG", std::env::var("SEKISHO_TEST_LOG").unwrap_or_else(|_| "info".into()));
        let mut child = cmd.spawn().expect("spawn sekisho");
        let stdout = child.stdout.take().unwrap();
        let (tx, events) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if let Ok(v) = serde_json::from_str::<Value>(&line) {
                    let _ = tx.send(v);
                }
            }
        });
        Proc { child, events, stderr, seen: Vec::new() }
    }

    /// Waits for a status line matching `pred` (already-seen lines included).
    pub async fn wait_for(&mut self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        if let Some(v) = self.seen.iter().find(|v| pred(v)) {
            return v.clone();
        }
        self.wait_new(what, pred).await
    }

    /// Waits for a status line matching `pred` that has not been seen yet.
    pub async fn wait_new(&mut self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            match tokio::time::timeout_at(deadline, self.events.recv()).await {
                Ok(Some(v)) => {
                    self.seen.push(v.clone());
                    if pred(&v) {
                        return v;
                    }
                }
                Ok(None) => panic!("process exited while waiting for {what}; stderr:\n{}", self.stderr_tail()),
                Err(_) => panic!("timed out waiting for {what}; seen {:?}; stderr:\n{}", self.seen, self.stderr_tail()),
            }
        }
    }

    pub async fn event(&mut self, name: &str) -> Value {
        let name = name.to_owned();
        self.wait_for(&name.clone(), move |v| v["event"] == name.as_str()).await
    }

    pub fn stderr_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.stderr).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    pub async fn kill(&mut self) {
        let _ = self.child.kill().await;
    }

    /// Waits for the process to exit on its own; returns (success, stderr).
    pub async fn exit(&mut self) -> (bool, String) {
        let status = tokio::time::timeout(WAIT, self.child.wait()).await.expect("process did not exit").unwrap();
        (status.success(), std::fs::read_to_string(&self.stderr).unwrap_or_default())
    }
}

/// A relay process with its own data directory.
pub struct Relay {
    pub proc: Proc,
    pub dir: tempfile::TempDir,
    pub addr: SocketAddr,
    pub api_url: String,
    pub ca_file: String,
    pub admin_key: String,
    /// The SOCKS5 gateway's address, when started with `--socks-listen`.
    pub socks: Option<SocketAddr>,
    /// The SSH bastion's address, when started with `--ssh-listen`.
    pub ssh: Option<SocketAddr>,
    /// The Prometheus metrics listener, when started with `--metrics-listen`.
    pub metrics: Option<SocketAddr>,
}

impl Relay {
    pub async fn start() -> Relay {
        Self::start_with(&[]).await
    }

    pub async fn start_with(extra: &[&str]) -> Relay {
        Self::start_in_with(test_dir(), extra).await
    }

    /// A relay whose data directory is `dir/data` (which the test may have prepared).
    pub async fn start_in(dir: tempfile::TempDir) -> Relay {
        Self::start_in_with(dir, &[]).await
    }

    async fn start_in_with(dir: tempfile::TempDir, extra: &[&str]) -> Relay {
        let (proc, ready) = Self::launch(dir.path(), "127.0.0.1:0", extra).await;
        Relay {
            proc,
            addr: ready["listen"].as_str().unwrap().parse().unwrap(),
            api_url: ready["api_url"].as_str().unwrap().to_owned(),
            ca_file: ready["ca_file"].as_str().unwrap().to_owned(),
            admin_key: ready["admin_key"].as_str().expect("first start prints the admin key").to_owned(),
            socks: ready["socks"].as_str().map(|a| a.parse().unwrap()),
            ssh: ready["ssh"].as_str().map(|a| a.parse().unwrap()),
            metrics: ready["metrics"].as_str().map(|a| a.parse().unwrap()),
            dir,
        }
    }

    /// Another relay of `first`'s cluster: the same database and a copy of `first`'s key files
    /// (CA, master key, audit and bastion keys), as an operator sets one up. It prints no admin key (the database
    /// has one), so it uses `first`'s.
    pub async fn join(first: &Relay, database: &str) -> Relay {
        let dir = test_dir();
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        // Every key file; not the SQLite files or the recordings.
        for entry in std::fs::read_dir(first.dir.path().join("data")).unwrap() {
            let entry = entry.unwrap();
            let name = entry.file_name().to_string_lossy().into_owned();
            if entry.file_type().unwrap().is_file() && !name.starts_with("sekisho.db") {
                std::fs::copy(entry.path(), data.join(&name)).unwrap();
            }
        }
        Self::start_from(dir, "127.0.0.1:0", &["--database", database], &first.admin_key).await
    }

    /// A relay on `dir/data` that holds a relay already (a restored backup), listening on
    /// `listen`; its database has an admin key, `admin_key`, so it prints none.
    pub async fn start_from(dir: tempfile::TempDir, listen: &str, extra: &[&str], admin_key: &str) -> Relay {
        let (proc, ready) = Self::launch(dir.path(), listen, extra).await;
        assert!(ready["admin_key"].is_null(), "the database already has an admin key");
        Relay {
            proc,
            addr: ready["listen"].as_str().unwrap().parse().unwrap(),
            api_url: ready["api_url"].as_str().unwrap().to_owned(),
            ca_file: ready["ca_file"].as_str().unwrap().to_owned(),
            admin_key: admin_key.to_owned(),
            socks: None,
            ssh: None,
            metrics: None,
            dir,
        }
    }

    async fn launch(dir: &std::path::Path, listen: &str, extra: &[&str]) -> (Proc, Value) {
        let mut cmd = Command::new(BIN);
        cmd.args(["relay", "--json-events", "--listen", listen, "--data-dir"]).arg(dir.join("data")).args(extra);
        let mut proc = Proc::spawn(cmd, dir.join(format!("relay-{}.log", rand::random::<u32>())));
        let ready = proc.event("ready").await;
        (proc, ready)
    }

    /// Kills the relay (SIGKILL) and starts it again on the same port and data directory.
    pub async fn restart(&mut self) {
        self.restart_with(&[]).await;
    }

    /// [`Relay::restart`] with `extra` arguments (the same fixed ports for its other doors).
    pub async fn restart_with(&mut self, extra: &[&str]) {
        self.proc.kill().await;
        let (proc, ready) = Self::launch(self.dir.path(), &self.addr.to_string(), extra).await;
        assert!(ready["admin_key"].is_null(), "the admin key is only shown on first start");
        self.proc = proc;
    }

    pub fn ctl_command(&self, key: &str) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.arg("ctl")
            .arg("--json")
            .env("SEKISHO_URL", &self.api_url)
            .env("SEKISHO_CA", &self.ca_file)
            .env("SEKISHO_API_KEY", key)
            .env("SEKISHO_LANG", "en");
        cmd
    }

    /// `sekisho ctl ARGS` as a person runs it (tables and sentences, not `--json`), with the
    /// admin key; its output.
    pub async fn ctl_text(&self, args: &[&str]) -> std::process::Output {
        Command::new(BIN)
            .arg("ctl")
            .args(args)
            .env("SEKISHO_URL", &self.api_url)
            .env("SEKISHO_CA", &self.ca_file)
            .env("SEKISHO_API_KEY", &self.admin_key)
            .output()
            .await
            .unwrap()
    }

    /// Runs `sekisho ctl --json ARGS`; Ok(parsed stdout) or Err(stderr).
    pub async fn ctl(&self, args: &[&str]) -> Result<Value, String> {
        let out = self.ctl_command(&self.admin_key).args(args).output().await.unwrap();
        if out.status.success() {
            Ok(serde_json::from_slice(&out.stdout).unwrap_or(Value::Null))
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    pub async fn token(&self, name: &str, role: &str) -> String {
        let v = self.ctl(&["token", "create", "--name", name, "--role", role]).await.unwrap();
        v["token"].as_str().unwrap().to_owned()
    }

    /// Enrolls and starts an agent, waiting until it is connected.
    pub async fn agent(&self, name: &str, role: &str) -> Agent {
        self.agent_at(&self.addr.to_string(), name, role).await
    }

    /// [`Relay::agent`], enrolled here but given `relays` (comma-separated) to connect to.
    pub async fn agent_at(&self, relays: &str, name: &str, role: &str) -> Agent {
        let token = self.token(name, role).await;
        let mut agent = Agent::start_at(relays, &token, &[]).await;
        let v = agent.proc.event("connected").await;
        agent.id = v["agent_id"].as_str().unwrap().to_owned();
        agent.name = name.to_owned();
        agent
    }

    /// Publishes a service and lets everyone routed to it in (required condition `true`).
    pub async fn service(&self, name: &str, agent: &Agent, target: &str) -> Value {
        let v = self.ctl(&["service", "create", name, "--agent", &agent.id, "--target", target]).await.unwrap();
        self.policy(name, &["true"], &[]).await;
        v
    }

    /// Sets a service's required and deny conditions (must be accepted).
    pub async fn policy(&self, service: &str, required: &[&str], deny: &[&str]) -> Value {
        let body = serde_json::json!({ "required": required, "deny": deny });
        let (status, v) = self.api("PUT", &format!("/api/v1/policies/{service}"), Some(body), &self.admin_key).await;
        assert_eq!(status, 200, "policy for {service} refused: {v}");
        v
    }

    /// An HTTPS client that trusts only this relay's CA.
    pub fn http(&self) -> reqwest::Client {
        let pem = std::fs::read(&self.ca_file).unwrap();
        reqwest::Client::builder().add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap()).build().unwrap()
    }

    /// Calls the admin API with `key`; returns the status and the JSON body (or the text).
    pub async fn api(&self, method: &str, path: &str, body: Option<Value>, key: &str) -> (u16, Value) {
        let url = format!("https://localhost:{}{path}", self.addr.port());
        let mut req = self.http().request(method.parse().unwrap(), url);
        if !key.is_empty() {
            req = req.bearer_auth(key);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    /// A request with `body` sent as it is (`application/json`); the status and the answer's text.
    pub async fn api_raw(&self, method: &str, path: &str, body: String, key: &str) -> (u16, String) {
        let url = format!("https://localhost:{}{path}", self.addr.port());
        let req = self
            .http()
            .request(method.parse().unwrap(), url)
            .bearer_auth(key)
            .header("content-type", "application/json")
            .body(body);
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.text().await.unwrap())
    }

    /// Creates a route on `front` to `service` on a free port; returns the bound address.
    pub async fn route(&self, front: &mut Agent, service: &str) -> (String, SocketAddr) {
        let v = self
            .ctl(&["route", "create", "--agent", &front.id, "--listen", "127.0.0.1:0", "--service", service])
            .await
            .unwrap();
        let id = v["id"].as_str().unwrap().to_owned();
        let rid = id.clone();
        let ev = front
            .proc
            .wait_for("route_listening", move |e| e["event"] == "route_listening" && e["route_id"] == rid.as_str())
            .await;
        (id, ev["addr"].as_str().unwrap().parse().unwrap())
    }

    /// The relay's health document (`/api/v1/health`).
    pub async fn health(&self) -> Value {
        self.api("GET", "/api/v1/health", None, &self.admin_key).await.1
    }

    /// Recent audit events of the default tenant, newest first, waiting until one matches `pred`.
    pub async fn wait_event(&self, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let (_, events) = self.api("GET", "/api/v1/audit?limit=500", None, &self.admin_key).await;
            if let Some(e) = events.as_array().unwrap().iter().find(|e| pred(e)) {
                return e.clone();
            }
            assert!(tokio::time::Instant::now() < deadline, "no matching event in {events:#}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// An agent process.
pub struct Agent {
    pub proc: Proc,
    pub _dir: tempfile::TempDir,
    pub id: String,
    pub name: String,
}

impl Agent {
    pub async fn start(relay: &Relay, token: &str, extra: &[&str]) -> Agent {
        Self::start_at(&relay.addr.to_string(), token, extra).await
    }

    /// An agent given `relays` (`host:port`, comma-separated).
    pub async fn start_at(relays: &str, token: &str, extra: &[&str]) -> Agent {
        let dir = test_dir();
        let mut cmd = Command::new(BIN);
        cmd.args(["agent", "--json-events", "--relay", relays, "--token", token, "--state-dir"])
            .arg(dir.path().join("state"))
            .args(extra);
        let proc = Proc::spawn(cmd, dir.path().join("agent.log"));
        Agent { proc, _dir: dir, id: String::new(), name: String::new() }
    }
}

/// Runs `sekisho ARGS` (in English) with `stdin` as its input; (success, stdout + stderr).
pub async fn sekisho_with_stdin(args: &[&str], stdin: &[u8]) -> (bool, String) {
    let mut child = Command::new(BIN)
        .args(args)
        .env("SEKISHO_LANG", "en")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut child.stdin.take().unwrap(), stdin).await.unwrap();
    let out = child.wait_with_output().await.unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr))
}

/// A fresh database on the test PostgreSQL server (`SEKISHO_TEST_PG`, set by scripts/test.sh), or
/// None where there is none (which `SEKISHO_REQUIRE_PG` turns into a failure).
pub async fn pg_database() -> Option<String> {
    use sqlx::Connection;
    let Ok(base) = std::env::var("SEKISHO_TEST_PG") else {
        assert!(std::env::var("SEKISHO_REQUIRE_PG").is_err(), "SEKISHO_TEST_PG is not set");
        return None;
    };
    sqlx::any::install_default_drivers();
    let name = format!("sekisho_e2e_{}", rand::random::<u32>());
    let (server, query) = base.split_once('?').map_or((base.as_str(), String::new()), |(s, q)| (s, format!("?{q}")));
    let mut admin = sqlx::AnyConnection::connect(&format!("{server}/postgres{query}")).await.unwrap();
    sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut admin).await.unwrap();
    Some(format!("{server}/{name}{query}"))
}
