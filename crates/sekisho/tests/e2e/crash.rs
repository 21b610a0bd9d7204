//! Evidence across crashes: the relay is killed (SIGKILL) three times at random moments while
//! short and long streams run on every path (tunnel, relay edge port, SOCKS gateway, SSH
//! bastion). What the clients saw acknowledged (an echo came back: the relay forwarded their
//! bytes) is compared with the log: no acknowledged stream lacks its `opened` event, and every
//! stream is closed, those open at a kill as `open_at_crash` by the relay that started again.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use rand::Rng;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::harness::Relay;
use crate::ssh_util::{bastion_user, keygen, run, s, ssh_opts, start_sshd, totp_now};
use crate::targets;

/// A port free now (the relay's doors keep theirs across restarts).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// How a client reaches the echo server on one path.
#[derive(Clone)]
enum Way {
    /// A front agent's route, or a relay edge port: plain TCP.
    Direct(SocketAddr),
    /// The SOCKS gateway, logged in with a `gateway:use` key.
    Socks { gateway: SocketAddr, user: String, key: String, dest: SocketAddr },
}

impl Way {
    async fn connect(&self) -> std::io::Result<TcpStream> {
        match self {
            Way::Direct(a) => TcpStream::connect(a).await,
            Way::Socks { gateway, user, key, dest } => {
                let mut s = TcpStream::connect(gateway).await?;
                s.write_all(&[5, 1, 2]).await?;
                let mut two = [0u8; 2];
                s.read_exact(&mut two).await?;
                let mut auth = vec![1, user.len() as u8];
                auth.extend_from_slice(user.as_bytes());
                auth.push(key.len() as u8);
                auth.extend_from_slice(key.as_bytes());
                s.write_all(&auth).await?;
                s.read_exact(&mut two).await?;
                let SocketAddr::V4(d) = dest else { unreachable!("the echo server listens on IPv4") };
                let mut req = vec![5, 1, 0, 1];
                req.extend_from_slice(&d.ip().octets());
                req.extend_from_slice(&d.port().to_be_bytes());
                s.write_all(&req).await?;
                let mut reply = [0u8; 10];
                s.read_exact(&mut reply).await?;
                if reply[1] != 0 {
                    return Err(std::io::Error::other(format!("SOCKS reply {}", reply[1])));
                }
                Ok(s)
            }
        }
    }
}

/// One echo round trip: true when the bytes came back (the relay forwarded them).
async fn ping(s: &mut TcpStream) -> bool {
    let trip = async {
        s.write_all(b"ping\n").await?;
        let mut back = [0u8; 5];
        s.read_exact(&mut back).await?;
        std::io::Result::Ok(&back == b"ping\n")
    };
    matches!(tokio::time::timeout(Duration::from_secs(3), trip).await, Ok(Ok(true)))
}

#[derive(Default)]
struct Tally {
    acked: AtomicU64,
    /// Long streams acknowledged and still held.
    alive: AtomicU64,
}

/// Short streams, one after another: connect, one echo, close.
async fn short_streams(way: Way, tally: Arc<Tally>, stop: Arc<AtomicBool>) {
    while !stop.load(Ordering::Relaxed) {
        if let Ok(Ok(mut s)) = tokio::time::timeout(Duration::from_secs(3), way.connect()).await
            && ping(&mut s).await
        {
            tally.acked.fetch_add(1, Ordering::Relaxed);
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// A long stream, held until the relay dies or the test stops, then opened again.
async fn long_stream(way: Way, tally: Arc<Tally>, stop: Arc<AtomicBool>) {
    while !stop.load(Ordering::Relaxed) {
        let Ok(Ok(mut s)) = tokio::time::timeout(Duration::from_secs(3), way.connect()).await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        if !ping(&mut s).await {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        }
        tally.acked.fetch_add(1, Ordering::Relaxed);
        tally.alive.fetch_add(1, Ordering::Relaxed);
        let mut buf = [0u8; 64];
        while !stop.load(Ordering::Relaxed) {
            if let Ok(Ok(0) | Err(_)) = tokio::time::timeout(Duration::from_millis(100), s.read(&mut buf)).await {
                break;
            }
        }
        tally.alive.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The `opened` events of each path, and the stream ids of every `closed` event.
async fn opened_by_path(relay: &Relay) -> (HashMap<String, u64>, Vec<Value>) {
    let (status, events) = relay.api("GET", "/api/v1/audit?kind=access&limit=100000", None, &relay.admin_key).await;
    assert_eq!(status, 200, "{events}");
    let events = events.as_array().unwrap().clone();
    let mut opened = HashMap::new();
    for e in events.iter().filter(|e| e["phase"] == "opened") {
        *opened.entry(e["path"].as_str().unwrap().to_owned()).or_default() += 1;
    }
    (opened, events)
}

#[tokio::test]
async fn kill_9_under_load_on_every_path_loses_no_opened_stream_and_closes_every_stream() {
    let (socks_port, ssh_port, edge_port, route_port) = (free_port(), free_port(), free_port(), free_port());
    let socks_listen = format!("127.0.0.1:{socks_port}");
    let ssh_listen = format!("127.0.0.1:{ssh_port}");
    let args = ["--socks-listen", &socks_listen, "--egress-allow", "127.0.0.0/8", "--ssh-listen", &ssh_listen];
    let mut relay = Relay::start_with(&args).await;
    let dir = relay.dir.path().to_owned();
    let echo = targets::echo_stream().await;
    let back = relay.agent("site", "back").await;
    let mut front = relay.agent("pc", "front").await;

    // Tunnel: a front agent's route to the echo server behind the back agent.
    relay.service("echo", &back, &format!("tcp://{echo}")).await;
    relay.policy("echo", &["true"], &[]).await;
    let route_listen = format!("127.0.0.1:{route_port}");
    relay
        .ctl(&["route", "create", "--agent", &front.id, "--listen", &route_listen, "--service", "echo"])
        .await
        .unwrap();
    front.proc.wait_for("route_listening", |e| e["event"] == "route_listening").await;
    // A relay edge port to the same server.
    let edge_listen = format!("127.0.0.1:{edge_port}");
    let target = format!("tcp://{echo}");
    relay
        .ctl(&["service", "create", "plc", "--agent", &back.id, "--target", &target, "--edge-listen", &edge_listen])
        .await
        .unwrap();
    relay.policy("plc", &["true"], &[]).await;
    // The SOCKS gateway, direct from the relay.
    relay.ctl(&["service", "create", "internet", "--target", "socks"]).await.unwrap();
    relay.policy("internet", &["true"], &[]).await;
    let user = json!({"name": "carol", "password": "correct horse battery"});
    relay.api("POST", "/api/v1/users", Some(user), &relay.admin_key).await;
    let key = json!({"name": "carol-proxy", "scopes": ["gateway:use"], "user": "carol"});
    let (_, k) = relay.api("POST", "/api/v1/api-keys", Some(key), &relay.admin_key).await;
    let socks_key = k["key"].as_str().expect("a gateway key").to_owned();
    // The SSH bastion to a real sshd behind the back agent; each round logs in as new users
    // (a TOTP code is spent once per user and 30 s step).
    let target_key = dir.join("target_key");
    keygen(&target_key);
    let sshd = start_sshd(&dir, &target_key.with_extension("pub")).await;
    let me = String::from_utf8(std::process::Command::new("id").arg("-un").output().unwrap().stdout).unwrap();
    relay.service("web01", &back, &format!("ssh://127.0.0.1:{}", sshd.port)).await;
    let key_file = target_key.to_str().unwrap();
    relay.ctl(&["service", "login", "web01", "--login", me.trim(), "--key-file", key_file]).await.unwrap();
    relay.policy("web01", &["true"], &[]).await;
    let auditor = crate::web::web_user(&relay, "auditor", "auditors", "admin", "監査担当").await;
    let mut ssh_users = Vec::new();
    for r in 0..4 {
        for kind in ["long", "short"] {
            let name = format!("ops{r}{kind}");
            let (secret, key) = bastion_user(&relay, &dir, &name, "ops").await;
            ssh_users.push((name, secret, key));
        }
    }

    let ways = [
        ("tunnel", Way::Direct(route_listen.parse().unwrap())),
        ("edge", Way::Direct(edge_listen.parse().unwrap())),
        (
            "socks",
            Way::Socks { gateway: socks_listen.parse().unwrap(), user: "carol".into(), key: socks_key, dest: echo },
        ),
    ];
    let stop = Arc::new(AtomicBool::new(false));
    let mut tallies: HashMap<&str, Arc<Tally>> = HashMap::new();
    let mut tasks = Vec::new();
    for (path, way) in &ways {
        let tally = Arc::new(Tally::default());
        tallies.insert(path, tally.clone());
        tasks.push(tokio::spawn(short_streams(way.clone(), tally.clone(), stop.clone())));
        for _ in 0..2 {
            tasks.push(tokio::spawn(long_stream(way.clone(), tally.clone(), stop.clone())));
        }
    }
    let ssh = Arc::new(Tally::default());
    let mut ssh_sessions = Vec::new();
    let mut open_at_kills = 0;
    for round in 0..4 {
        // The back agent is connected again once a tunnel echo comes back.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(mut s) = ways[0].1.connect().await
                && ping(&mut s).await
            {
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "the tunnel did not come back after restart {round}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // SSH: a session held open, and a command that ends.
        let (long_name, long_secret, long_key) = &ssh_users[round * 2];
        let code = totp_now(long_secret, 0);
        let mut opts = ssh_opts(&dir, ssh_listen.parse().unwrap(), long_key, &code, None);
        opts.extend([format!("{long_name}+web01@127.0.0.1"), "echo up; sleep 300".into()]);
        let mut session = tokio::process::Command::new("ssh")
            .args(&opts)
            .env("SSH_ASKPASS", dir.join(format!("askpass-{code}.sh")))
            .env("SSH_ASKPASS_REQUIRE", "force")
            .env("DISPLAY", ":0")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut lines = tokio::io::BufReader::new(session.stdout.take().unwrap()).lines();
        let up = tokio::time::timeout(Duration::from_secs(20), lines.next_line()).await;
        assert!(matches!(&up, Ok(Ok(Some(l))) if l == "up"), "the held SSH session of round {round}: {up:?}");
        ssh.acked.fetch_add(1, Ordering::Relaxed);
        ssh_sessions.push((session, lines));
        let (short_name, short_secret, short_key) = &ssh_users[round * 2 + 1];
        let code = totp_now(short_secret, 0);
        let opts = ssh_opts(&dir, ssh_listen.parse().unwrap(), short_key, &code, None);
        let exec = [opts, s(&[&format!("{short_name}+web01@127.0.0.1"), "echo short"])].concat();
        let (rc, out, err) = run("ssh", &exec, &dir, &code, b"").await;
        assert_eq!((rc, out.trim()), (0, "short"), "the SSH command of round {round}: {err}");
        ssh.acked.fetch_add(1, Ordering::Relaxed);

        // Load for a random while, then a kill at that moment.
        let ms = rand::thread_rng().gen_range(700..2000);
        tokio::time::sleep(Duration::from_millis(ms)).await;
        if round == 3 {
            // The console lists the streams open now, in Japanese.
            let mut console = crate::web::Visitor::new(&relay, &[]);
            console.lang = "ja";
            let login = console.url("localhost", "/login");
            console.sign_in(&login, "auditor", &auditor, 0).await;
            let page = console.get(&console.url("localhost", "/audit")).await;
            assert_eq!(page.status, 200, "{}", page.body);
            let section = page.body.split_once("id=\"open-streams\"").map(|(_, rest)| rest).unwrap_or_default();
            assert!(section.contains("開始後まだ終了していないストリーム"), "{}", page.body);
            assert!(
                section.contains("tunnel") && section.contains("echo") && section.contains("ops3long"),
                "{section}"
            );
            break;
        }
        // What was acknowledged and is still held is open at the kill (the SSH session too).
        open_at_kills += tallies.values().map(|t| t.alive.load(Ordering::Relaxed)).sum::<u64>() + 1;
        relay.restart_with(&args).await;
    }
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    drop(ssh_sessions);
    // The front agent's end-to-end handshake stream stays open while it is connected (it anchors
    // the pair's session): the agent leaves too.
    front.proc.kill().await;

    // Every stream is closed: the relay that started again closed those open at each kill, and
    // the last ones ended when their clients left.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (_, open) = relay.api("GET", "/api/v1/audit/streams", None, &relay.admin_key).await;
        if open.as_array().is_some_and(Vec::is_empty) {
            break;
        }
        if tokio::time::Instant::now() >= deadline {
            let (_, events) = relay.api("GET", "/api/v1/audit?limit=100000", None, &relay.admin_key).await;
            let ids: Vec<&str> = open.as_array().unwrap().iter().filter_map(|o| o["stream_id"].as_str()).collect();
            let theirs: Vec<&Value> = events
                .as_array()
                .unwrap()
                .iter()
                .filter(|e| ids.contains(&e["stream_id"].as_str().unwrap_or("")))
                .collect();
            for (name, p) in [("relay", &relay.proc), ("front", &front.proc), ("back", &back.proc)] {
                let _ = std::fs::copy(&p.stderr, format!("/tmp/crash-{name}.log"));
            }
            panic!(
                "streams still open after the clients left: {open:#}\ntheir events: {theirs:#?}\nrelay: {}\nfront: {}\nback: {}",
                relay.proc.stderr_tail(),
                front.proc.stderr_tail(),
                back.proc.stderr_tail()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (_, report) = relay.api("POST", "/api/v1/audit/verify", Some(json!({})), &relay.admin_key).await;
    let t = &report["tenants"][0];
    assert!(t["problem"].is_null(), "{report:#}");
    assert_eq!(t["open_streams"], json!([]), "{report:#}");
    let crashed = t["closed_at_crash"].as_u64().unwrap();
    assert!(
        crashed >= open_at_kills,
        "{crashed} streams closed as open_at_crash, {open_at_kills} were open at the kills"
    );

    // No acknowledged stream is missing its opened event, on any path.
    let (opened, events) = opened_by_path(&relay).await;
    tallies.insert("ssh", ssh);
    for (path, tally) in &tallies {
        let acked = tally.acked.load(Ordering::Relaxed);
        let logged = opened.get(*path).copied().unwrap_or(0);
        assert!(acked > 0, "no {path} stream was acknowledged: the load did not run");
        assert!(logged >= acked, "{path}: {acked} streams acknowledged to clients, {logged} opened events");
    }
    // And every opened stream has its closed event, with the same id.
    let closed: std::collections::HashSet<&str> =
        events.iter().filter(|e| e["phase"] == "closed").filter_map(|e| e["stream_id"].as_str()).collect();
    let unclosed: Vec<&Value> = events
        .iter()
        .filter(|e| e["phase"] == "opened" && !closed.contains(e["stream_id"].as_str().unwrap()))
        .collect();
    assert!(unclosed.is_empty(), "opened and never closed: {unclosed:#?}");
    let at_crash =
        events.iter().filter(|e| e["reason"].as_str().is_some_and(|r| r.starts_with("open_at_crash:"))).count();
    assert_eq!(at_crash as u64, crashed);
    eprintln!(
        "crash test: {} acknowledged ({:?}), opened events {opened:?}, {crashed} closed as open_at_crash ({open_at_kills} held at the kills)",
        tallies.values().map(|t| t.acked.load(Ordering::Relaxed)).sum::<u64>(),
        tallies.iter().map(|(p, t)| (*p, t.acked.load(Ordering::Relaxed))).collect::<Vec<_>>(),
    );
}
