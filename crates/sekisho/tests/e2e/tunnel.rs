//! Data through routes: HTTP, raw TCP with half-close, several sites, bulk, many streams,
//! WebSocket, and the proof that the relay sees only ciphertext.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::harness::Relay;
use crate::targets;

#[tokio::test]
async fn http_and_raw_tcp_reach_their_services_through_a_route() {
    let relay = Relay::start().await;
    let back = relay.agent("site-a", "back").await;
    let mut front = relay.agent("laptop", "front").await;
    let web = targets::http().await;
    let echo = targets::echo_after_eof("echo:").await;
    relay.service("wiki", &back, &format!("http://{web}")).await;
    relay.service("raw", &back, &format!("tcp://{echo}")).await;
    let (_, wiki) = relay.route(&mut front, "wiki").await;
    let (_, raw) = relay.route(&mut front, "raw").await;

    let body = reqwest::get(format!("http://{wiki}/")).await.unwrap().text().await.unwrap();
    assert_eq!(body, "hello through sekisho");
    let big = reqwest::get(format!("http://{wiki}/big")).await.unwrap().bytes().await.unwrap();
    assert_eq!(big.len(), 4 << 20);

    // The echo server answers only after it sees EOF: half-close crossed both agents.
    let answer = targets::roundtrip(raw, b"hello raw tcp").await.unwrap();
    assert_eq!(answer, b"echo:hello raw tcp");
}

#[tokio::test]
async fn two_sites_are_reachable_at_the_same_time() {
    let relay = Relay::start().await;
    let site_a = relay.agent("site-a", "back").await;
    let site_b = relay.agent("site-b", "back").await;
    let mut front = relay.agent("partner-pc", "front").await;
    let a = targets::echo_after_eof("A:").await;
    let b = targets::echo_after_eof("B:").await;
    relay.service("svc-a", &site_a, &format!("tcp://{a}")).await;
    relay.service("svc-b", &site_b, &format!("tcp://{b}")).await;
    let (_, ra) = relay.route(&mut front, "svc-a").await;
    let (_, rb) = relay.route(&mut front, "svc-b").await;
    let mut tasks = Vec::new();
    for i in 0..20 {
        let (addr, prefix) = if i % 2 == 0 { (ra, "A:") } else { (rb, "B:") };
        tasks.push(tokio::spawn(async move {
            let msg = format!("message {i}");
            let got = targets::roundtrip(addr, msg.as_bytes()).await.unwrap();
            assert_eq!(got, format!("{prefix}{msg}").as_bytes());
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

const GIB: u64 = 1 << 30;

#[tokio::test]
async fn one_gib_crosses_both_ways_with_matching_checksums() {
    let relay = Relay::start().await;
    let back = relay.agent("site", "back").await;
    let mut front = relay.agent("front", "front").await;
    let sink = targets::sink_hash().await;
    let source = targets::source().await;
    relay.service("sink", &back, &format!("tcp://{sink}")).await;
    relay.service("source", &back, &format!("tcp://{source}")).await;
    let (_, up) = relay.route(&mut front, "sink").await;
    let (_, down) = relay.route(&mut front, "source").await;

    let upload = async {
        let mut s = TcpStream::connect(up).await.unwrap();
        let mut h = Sha256::new();
        let mut buf = vec![0u8; 1 << 20];
        let mut sent = 0u64;
        while sent < GIB {
            targets::fill(sent / 8, &mut buf);
            h.update(&buf);
            s.write_all(&buf).await.unwrap();
            sent += buf.len() as u64;
        }
        s.shutdown().await.unwrap();
        let mut digest = Vec::new();
        s.read_to_end(&mut digest).await.unwrap();
        assert_eq!(digest, h.finalize().to_vec(), "upload checksum");
    };
    let download = async {
        let mut s = TcpStream::connect(down).await.unwrap();
        s.write_all(format!("{GIB}\n").as_bytes()).await.unwrap();
        let mut h = Sha256::new();
        let mut expected = Sha256::new();
        let mut buf = vec![0u8; 256 << 10];
        let mut got = 0u64;
        let mut want = vec![0u8; 256 << 10];
        loop {
            let n = s.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
            got += n as u64;
        }
        let mut made = 0u64;
        while made < GIB {
            targets::fill(made / 8, &mut want);
            expected.update(&want);
            made += want.len() as u64;
        }
        assert_eq!(got, GIB);
        assert_eq!(h.finalize(), expected.finalize(), "download checksum");
    };
    tokio::join!(upload, download);
}

#[tokio::test]
async fn a_thousand_concurrent_streams_all_complete() {
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let relay = Relay::start().await;
    let back = relay.agent("site", "back").await;
    let mut front = relay.agent("front", "front").await;
    let echo = targets::echo_after_eof("").await;
    relay.service("echo", &back, &format!("tcp://{echo}")).await;
    let (_, addr) = relay.route(&mut front, "echo").await;
    // Open all thousand before any finishes.
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(1000));
    let tasks: Vec<_> = (0..1000u32)
        .map(|i| {
            let barrier = barrier.clone();
            tokio::spawn(async move {
                let mut s = TcpStream::connect(addr).await?;
                barrier.wait().await;
                let msg: Vec<u8> = (0..1024u32).map(|j| ((i * 7 + j) % 251) as u8).collect();
                s.write_all(&msg).await?;
                s.shutdown().await?;
                let mut out = Vec::new();
                s.read_to_end(&mut out).await?;
                assert_eq!(out, msg, "stream {i}");
                Ok::<_, std::io::Error>(())
            })
        })
        .collect();
    let mut failed = Vec::new();
    for t in tasks {
        if let Err(e) = t.await.unwrap() {
            failed.push(e.to_string());
        }
    }
    assert!(
        failed.is_empty(),
        "{} of 1000 failed, first: {:?}\nfront:\n{}\nback:\n{}",
        failed.len(),
        failed.first(),
        front.proc.stderr_tail(),
        back.proc.stderr_tail()
    );
    // Every stream is released afterwards: only the end-to-end session's anchor stream (one on
    // each agent connection) stays open. A leak would keep this number up.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let open = relay.health().await["streams_open"].as_u64().unwrap();
        if open <= 2 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{open} streams still open on the relay");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn websocket_echo_and_long_lived_connections_work() {
    let relay = Relay::start().await;
    let back = relay.agent("site", "back").await;
    let mut front = relay.agent("front", "front").await;
    let ws = targets::websocket_echo().await;
    relay.service("ws", &back, &format!("http://{ws}")).await;
    let (_, addr) = relay.route(&mut front, "ws").await;
    let (mut client, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/")).await.unwrap();
    for i in 0..50 {
        client.send(format!("ping {i}").into()).await.unwrap();
        let reply = client.next().await.unwrap().unwrap();
        assert_eq!(reply.into_text().unwrap().as_str(), format!("ping {i}"));
        if i == 25 {
            // Idle for a moment: the connection must stay up.
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
    client.close(None).await.unwrap();
}

#[tokio::test]
async fn the_relay_forwards_only_ciphertext_between_agents() {
    let (tap, seen) = targets::collector().await;
    let relay = Relay::start_with(&["--debug-tap", &tap.to_string()]).await;
    let back = relay.agent("site", "back").await;
    let mut front = relay.agent("front", "front").await;
    let echo = targets::echo_after_eof("").await;
    relay.service("echo", &back, &format!("tcp://{echo}")).await;
    let (_, addr) = relay.route(&mut front, "echo").await;
    let marker = b"SEKISHO-PLAINTEXT-MARKER-0123456789".repeat(1000);
    let answer = targets::roundtrip(addr, &marker).await.unwrap();
    assert_eq!(answer, marker, "the service got and returned the plaintext");
    // The tap must have seen at least the payload both ways (so this test can fail) ...
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while seen.lock().unwrap().len() < 2 * marker.len() {
        assert!(tokio::time::Instant::now() < deadline, "tap saw only {} bytes", seen.lock().unwrap().len());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // ... and none of it is the plaintext.
    let bytes = seen.lock().unwrap().clone();
    assert!(!bytes.windows(25).any(|w| w == &b"SEKISHO-PLAINTEXT-MARKER-"[..]), "relay saw plaintext");
}

#[tokio::test]
async fn agent_links_are_tls_1_3_with_aes_128_gcm() {
    let relay = Relay::start().await;
    let tls = crate::rawagent::tls_connect(relay.addr, &relay.ca_file, sekisho_tunnel::AGENT_ALPN).await.unwrap();
    let (_, session) = tls.get_ref();
    assert_eq!(session.protocol_version(), Some(rustls::ProtocolVersion::TLSv1_3));
    assert_eq!(
        session.negotiated_cipher_suite().map(|s| s.suite()),
        Some(rustls::CipherSuite::TLS13_AES_128_GCM_SHA256),
        "both ends prefer AES-128-GCM (the fastest suite with vector AES)"
    );
    assert_eq!(session.alpn_protocol(), Some(sekisho_tunnel::AGENT_ALPN));
}

/// This version's agents take the sealed link (`sekisho/2`); an agent of the earlier form
/// (`sekisho/1`, the multiplexer inside TLS records) still logs in and carries streams, so relays
/// and agents can be upgraded in either order. `ctl agent list` shows which link each one has.
#[tokio::test]
async fn agents_take_the_sealed_link_and_an_agent_of_the_earlier_form_still_carries_streams() {
    let relay = Relay::start().await;
    let back = relay.agent("site-a", "back").await;
    let token = relay.token("old", "back").await;
    let (conn, _, reply) =
        crate::rawagent::enroll_over(relay.addr, &relay.ca_file, &token, sekisho_tunnel::AGENT_ALPN_V1).await;
    let sekisho_tunnel::proto::RelayMsg::Welcome { agent_id: old, .. } = reply else { panic!("{reply:?}") };
    let agents = relay.ctl(&["agent", "list"]).await.unwrap();
    let link_of =
        |id: &str| agents.as_array().unwrap().iter().find(|a| a["id"] == id).map(|a| a["link"].clone()).unwrap();
    assert_eq!(link_of(&back.id), "sekisho/2");
    assert_eq!(link_of(&old), "sekisho/1");

    // A port on the relay leads to the old agent, which answers on its stream.
    let v = relay
        .ctl(&[
            "service",
            "create",
            "old-plc",
            "--agent",
            &old,
            "--target",
            "tcp://127.0.0.1:9",
            "--edge-listen",
            "127.0.0.1:0",
        ])
        .await
        .unwrap();
    relay.policy("old-plc", &["true"], &[]).await;
    let edge: std::net::SocketAddr = v["edge_bound"].as_str().unwrap().parse().unwrap();
    tokio::spawn(async move {
        let (stream, _) = conn.accept().await.unwrap();
        let got = stream.read_chunk().await.unwrap().unwrap();
        stream.write_all(&[b"old:", &got[..]].concat()).await.unwrap();
        stream.finish().ok();
        std::future::pending::<()>().await;
    });
    let mut client = TcpStream::connect(edge).await.unwrap();
    client.write_all(b"ping").await.unwrap();
    let mut answer = [0u8; 8];
    tokio::time::timeout(Duration::from_secs(10), client.read_exact(&mut answer)).await.unwrap().unwrap();
    assert_eq!(&answer, b"old:ping");
}

/// A service published as a TCP port on the relay (the frp/rathole topology): data crosses it
/// both ways; a connection the policy denies is reset and recorded; removing the service closes
/// the port, resets the connections still open, and records them with what they moved.
#[tokio::test]
async fn an_edge_port_carries_tcp_and_its_removal_resets_open_connections_on_record() {
    let relay = Relay::start().await;
    let back = relay.agent("site-a", "back").await;
    let echo = targets::echo_stream().await;
    let target = format!("tcp://{echo}");
    let v = relay
        .ctl(&["service", "create", "plc", "--agent", &back.id, "--target", &target, "--edge-listen", "127.0.0.1:0"])
        .await
        .unwrap();
    let edge: std::net::SocketAddr = v["edge_bound"].as_str().expect("the edge port is open").parse().unwrap();
    // A tenant's admin cannot make the relay listen anywhere: edge ports are the operator's.
    let body = serde_json::json!({ "name": "acme" });
    let (_, t) = relay.api("POST", "/api/v1/tenants", Some(body), &relay.admin_key).await;
    let acme = t["admin_key"].as_str().unwrap();
    let svc = serde_json::json!({ "name": "grab", "target": "socks", "edge_listen": "0.0.0.0:0" });
    let (_, v) = relay.api("POST", "/api/v1/services", Some(svc), acme).await;
    assert_eq!(v["error"]["code"], "invalid_listen", "a gateway has no edge port: {v}");
    let (_, token) = relay
        .api("POST", "/api/v1/enrollment-tokens", Some(serde_json::json!({"name": "s", "role": "back"})), acme)
        .await;
    let acme_back = crate::harness::Agent::start(&relay, token["token"].as_str().unwrap(), &[]).await;
    let mut acme_back = acme_back;
    let id = acme_back.proc.event("connected").await["agent_id"].as_str().unwrap().to_owned();
    let svc = serde_json::json!({ "name": "grab", "agent": id, "target": &target, "edge_listen": "0.0.0.0:0" });
    let (status, v) = relay.api("POST", "/api/v1/services", Some(svc), acme).await;
    assert_eq!((status, v["error"]["code"].as_str()), (403, Some("operator_only")), "{v}");

    // Denied by the service's policy: reset, with the reason on record.
    relay.policy("plc", &["true"], &["true"]).await;
    let mut buf = [0u8; 16];
    // The reset can come before `connect` has returned.
    let read = match TcpStream::connect(edge).await {
        Ok(mut denied) => {
            tokio::time::timeout(Duration::from_secs(10), denied.read(&mut buf)).await.expect("no answer")
        }
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => Err(e),
        Err(e) => panic!("the edge port does not accept: {e}"),
    };
    assert!(read.is_err(), "a denied connection is reset, not served: {read:?}");
    let event = relay.wait_event(|e| e["path"] == "edge" && e["decision"] == "deny" && e["target"] == "plc").await;
    assert!(event["reason"].as_str().unwrap().starts_with("policy_denied"), "{event:#}");

    // Allowed: bytes both ways, and the connection stays open.
    relay.policy("plc", &["true"], &[]).await;
    let mut open = TcpStream::connect(edge).await.unwrap();
    open.write_all(b"read coil 7").await.unwrap();
    let mut echoed = [0u8; 11];
    tokio::time::timeout(Duration::from_secs(10), open.read_exact(&mut echoed)).await.unwrap().unwrap();
    assert_eq!(&echoed, b"read coil 7");

    // Removing the service ends the open connection with a reset and closes the port.
    relay.ctl(&["service", "rm", "plc"]).await.unwrap();
    let read = tokio::time::timeout(Duration::from_secs(10), open.read(&mut buf)).await.expect("still open");
    assert!(read.is_err(), "an open connection is reset when its service goes: {read:?}");
    let event = relay
        .wait_event(|e| {
            e["path"] == "edge"
                && e["decision"] == "allow"
                && e["detail"].as_str().is_some_and(|d| d.contains("edge port closed by administrator"))
        })
        .await;
    assert_eq!(event["bytes_in"], 11, "{event:#}");
    assert_eq!(event["bytes_out"], 11, "{event:#}");
    // The listener closes on the same signal that reset the connection, in its own task.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while TcpStream::connect(edge).await.is_ok() {
        assert!(tokio::time::Instant::now() < deadline, "the edge port is still open 5 s after removal");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
