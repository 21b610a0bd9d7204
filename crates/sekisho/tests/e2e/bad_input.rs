//! Bad input gets a clear error, a recorded reason, no panic, and no effect on other streams.

use std::time::Duration;

use sekisho_tunnel::identity::AgentKeys;
use sekisho_tunnel::link::SealedLink;
use sekisho_tunnel::proto::{Hello, RelayMsg};
use sekisho_tunnel::{AGENT_ALPN, AGENT_ALPN_V1, Link, Transport};
use sekisho_wire::{ResetCode, StreamError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::harness::{Agent, Relay};
use crate::{rawagent, targets};

/// A working route to check that other users are unaffected.
async fn healthy(relay: &Relay) -> (Agent, Agent, std::net::SocketAddr) {
    let back = relay.agent("site", "back").await;
    let mut front = relay.agent("front", "front").await;
    let echo = targets::echo_after_eof("ok:").await;
    relay.service("echo", &back, &format!("tcp://{echo}")).await;
    let (_, addr) = relay.route(&mut front, "echo").await;
    (back, front, addr)
}

async fn still_works(addr: std::net::SocketAddr) {
    assert_eq!(targets::roundtrip(addr, b"x").await.unwrap(), b"ok:x");
}

#[tokio::test]
async fn undefined_and_foreign_routes_are_refused_with_a_reason_and_recorded() {
    let relay = Relay::start().await;
    let (_b, _f, addr) = healthy(&relay).await;
    let routes = relay.ctl(&["route", "list"]).await.unwrap();
    let foreign = routes[0]["id"].as_str().unwrap().to_owned();
    let token = relay.token("intruder", "front").await;
    let (conn, _, reply) = rawagent::enroll(relay.addr, &relay.ca_file, &token).await;
    assert!(matches!(reply, RelayMsg::Welcome { .. }), "{reply:?}");

    for (route, code) in [("rt_doesnotexist", "route_not_found"), (foreign.as_str(), "route_not_assigned")] {
        let stream = conn.open(rawagent::open_route(route)).unwrap();
        stream.write_all(b"let me in").await.ok();
        match stream.read_chunk().await {
            Err(StreamError::Reset { code: c, reason }) => {
                assert_eq!(c, ResetCode::REFUSED);
                assert!(reason.contains(code), "{reason}");
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
        relay.wait_event(|e| e["decision"] == "deny" && e.to_string().contains(code)).await;
    }
    still_works(addr).await;
}

#[tokio::test]
async fn wrong_reused_and_expired_tokens_are_refused_with_clear_errors() {
    let relay = Relay::start().await;
    // Wrong token (right CA, unknown secret).
    let good = relay.token("a", "back").await;
    let fp = good.rsplit('.').next().unwrap();
    let wrong = format!("skt1.{}.{fp}", "A".repeat(43));
    let mut agent = Agent::start(&relay, &wrong, &[]).await;
    let (ok, err) = agent.proc.exit().await;
    assert!(!ok && err.contains("not known to this relay"), "{err}");

    // A token works once.
    let mut first = Agent::start(&relay, &good, &[]).await;
    first.proc.event("connected").await;
    let mut second = Agent::start(&relay, &good, &[]).await;
    let (ok, err) = second.proc.exit().await;
    assert!(!ok && err.contains("already used"), "{err}");

    // Expired.
    let v = relay.ctl(&["token", "create", "--name", "late", "--role", "back", "--ttl", "1s"]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let mut late = Agent::start(&relay, v["token"].as_str().unwrap(), &[]).await;
    let (ok, err) = late.proc.exit().await;
    assert!(!ok && err.contains("expired"), "{err}");

    // Garbage token text.
    let mut junk = Agent::start(&relay, "not-a-token", &[]).await;
    let (ok, err) = junk.proc.exit().await;
    assert!(!ok && err.contains("malformed"), "{err}");

    relay.wait_event(|e| e["kind"] == "agent_auth" && e.to_string().contains("token_used")).await;
}

#[tokio::test]
async fn unknown_agents_and_wrong_keys_are_refused() {
    let relay = Relay::start().await;
    let (_b, front, addr) = healthy(&relay).await;
    let (_, reply) = rawagent::hello(relay.addr, &relay.ca_file, |exp| {
        let k = AgentKeys::generate().unwrap();
        Hello::Login {
            agent_id: "ag_0000000000".into(),
            version: "x".into(),
            hostname: "x".into(),
            signature: hex::encode(k.sign(exp)),
        }
    })
    .await;
    assert!(matches!(&reply, RelayMsg::Error { code, .. } if code == "unknown_agent"), "{reply:?}");
    // Someone claiming to be the front agent without its key.
    let (_, reply) = rawagent::hello(relay.addr, &relay.ca_file, |exp| {
        let k = AgentKeys::generate().unwrap();
        Hello::Login {
            agent_id: front.id.clone(),
            version: "x".into(),
            hostname: "x".into(),
            signature: hex::encode(k.sign(exp)),
        }
    })
    .await;
    assert!(matches!(&reply, RelayMsg::Error { code, .. } if code == "bad_signature"), "{reply:?}");
    still_works(addr).await;
}

#[tokio::test]
async fn malformed_frames_and_hellos_close_only_that_connection() {
    let relay = Relay::start().await;
    let (_b, _f, addr) = healthy(&relay).await;
    // A long-lived stream of another user, open while the garbage arrives.
    let echo = {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(b"before ").await.unwrap();
        s
    };
    // On a link of the earlier version (the multiplexer inside TLS records): garbage instead of
    // frames, then an oversized frame header.
    let mut tls = rawagent::tls_connect(relay.addr, &relay.ca_file, AGENT_ALPN_V1).await.unwrap();
    tls.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), tls.read_to_end(&mut rest))
        .await
        .expect("relay closes the garbage connection");
    let mut tls = rawagent::tls_connect(relay.addr, &relay.ca_file, AGENT_ALPN_V1).await.unwrap();
    let mut header = vec![7u8, 0, 0, 0, 0, 0, 0, 0];
    header.extend_from_slice(&u32::MAX.to_be_bytes());
    tls.write_all(&header).await.unwrap();
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), tls.read_to_end(&mut rest))
        .await
        .expect("relay closes the oversized frame");

    // On the sealed link: bytes that are no record, a record whose tag is forged, a record
    // larger than allowed, and frames that parse as nothing inside a well-sealed record. Each
    // closes that link, and the relay records why.
    let sealed = || async {
        let tls = rawagent::tls_connect(relay.addr, &relay.ca_file, AGENT_ALPN).await.unwrap();
        match Link::client(tls).await.unwrap() {
            Link::Sealed(link) => link,
            other => panic!("relay chose {other:?}"),
        }
    };
    let mut forged = 100u32.to_be_bytes().to_vec();
    forged.extend_from_slice(&[0x5a; 100]);
    let cases: [(&[u8], &str); 3] = [
        (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", "exceeds the largest allowed"),
        (&forged, "failed authentication"),
        (&u32::MAX.to_be_bytes(), "exceeds the largest allowed"),
    ];
    for (bytes, reason) in cases {
        let mut link = sealed().await;
        link.get_mut().write_all(bytes).await.unwrap();
        assert_closed(&mut link).await;
        relay
            .wait_event(|e| {
                e["kind"] == "agent_auth"
                    && e["reason"].as_str().is_some_and(|r| r.starts_with("hello_missing") && r.contains(reason))
            })
            .await;
    }
    let mut link = sealed().await;
    let garbage: std::collections::VecDeque<bytes::Bytes> = [bytes::Bytes::from_static(&[0xee; 40])].into();
    std::future::poll_fn(|cx| link.poll_write_chunks(cx, &garbage)).await.unwrap();
    std::future::poll_fn(|cx| link.poll_flush_link(cx)).await.unwrap();
    let said = assert_closed(&mut link).await;
    assert!(
        said.windows(15).any(|w| w == b"malformed frame"),
        "the relay says why in a go-away before closing: {:?}",
        String::from_utf8_lossy(&said)
    );
    relay
        .wait_event(|e| {
            e["kind"] == "agent_auth"
                && e["reason"].as_str().is_some_and(|r| r.starts_with("hello_missing") && r.contains("malformed frame"))
        })
        .await;

    // A hello that is not JSON, on each kind of link.
    for alpn in [AGENT_ALPN, AGENT_ALPN_V1] {
        let tls = rawagent::tls_connect(relay.addr, &relay.ca_file, alpn).await.unwrap();
        let link = Link::client(tls).await.unwrap();
        let (conn, driver) =
            sekisho_tunnel::Connection::new(link, sekisho_wire::Side::Client, Default::default(), Default::default());
        tokio::spawn(driver);
        conn.send_control(bytes::Bytes::from_static(b"{not json")).unwrap();
        let reply: RelayMsg = serde_json::from_slice(&conn.recv_control().await.unwrap()).unwrap();
        assert!(matches!(&reply, RelayMsg::Error { code, .. } if code == "bad_hello"), "{reply:?}");
    }
    relay.wait_event(|e| e["kind"] == "agent_auth" && e.to_string().contains("bad_hello")).await;

    // The other user's stream is unaffected.
    let mut echo = echo;
    echo.write_all(b"after").await.unwrap();
    echo.shutdown().await.unwrap();
    let mut out = Vec::new();
    echo.read_to_end(&mut out).await.unwrap();
    assert_eq!(out, b"ok:before after");
    still_works(addr).await;
}

/// Waits for the relay to end a sealed link: the read ends (or fails) within 10 s. Returns what
/// the relay sent before it did.
async fn assert_closed(link: &mut SealedLink<tokio::net::TcpStream>) -> Vec<u8> {
    let mut buf = bytes::BytesMut::new();
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match std::future::poll_fn(|cx| link.poll_read_into(cx, &mut buf)).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "relay keeps a link that sent bad records");
    buf.to_vec()
}

#[tokio::test]
async fn a_client_with_the_wrong_alpn_is_refused_at_the_tls_handshake() {
    let relay = Relay::start().await;
    let err = rawagent::tls_connect(relay.addr, &relay.ca_file, b"not-sekisho").await.unwrap_err();
    assert!(err.to_string().contains("NoApplicationProtocol"), "{err}");
}

#[tokio::test]
async fn offline_agents_and_refusing_targets_reset_the_client_and_are_recorded() {
    let relay = Relay::start().await;
    let mut back = relay.agent("site", "back").await;
    let mut front = relay.agent("front", "front").await;
    // A port bound but not listening: connections to it are refused, and while the socket lives
    // no other test's listener can take the port (a dropped listener's port could be reused).
    let reserved = tokio::net::TcpSocket::new_v4().unwrap();
    reserved.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let closed_port = reserved.local_addr().unwrap();
    relay.service("dead", &back, &format!("tcp://{closed_port}")).await;
    let echo = targets::echo_after_eof("ok:").await;
    relay.service("echo", &back, &format!("tcp://{echo}")).await;
    let web = targets::http().await;
    relay.service("web", &back, &format!("http://{web}")).await;
    let (_, web_route) = relay.route(&mut front, "web").await;
    let (_, dead) = relay.route(&mut front, "dead").await;
    let (_, live) = relay.route(&mut front, "echo").await;
    assert!(targets::roundtrip(dead, b"hello").await.map_or(true, |v| v.is_empty()), "refused target yields no data");
    still_works(live).await;
    relay.wait_event(|e| e.to_string().contains("target_unreachable")).await;

    back.proc.kill().await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let agents = relay.ctl(&["agent", "list"]).await.unwrap();
        if agents.as_array().unwrap().iter().any(|a| a["name"] == "site" && a["online"] == false) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "agent never shown offline: {agents}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(targets::roundtrip(live, b"hello").await.map_or(true, |v| v.is_empty()));
    // An HTTP client is told why, in both languages, instead of seeing a bare reset.
    let r = reqwest::get(format!("http://{web_route}/")).await.unwrap();
    assert_eq!(r.status(), 503);
    let text = r.text().await.unwrap();
    assert!(text.contains("agent_offline") && text.contains("サービスが現在利用できません"), "{text}");
    relay.wait_event(|e| e.to_string().contains("agent_offline")).await;
}

/// Anonymous floods: requests without an API key from one address are refused and rate limited
/// like wrong keys, and the audit log gets the first few one by one and a count of the rest, not a
/// durable row each.
#[tokio::test]
async fn anonymous_floods_are_counted_not_written_row_by_row() {
    let relay = Relay::start_with(&["--noise-window-ms", "1500"]).await;
    let client = relay.http();
    let url = format!("https://localhost:{}/api/v1/agents", relay.addr.port());
    let mut statuses = std::collections::BTreeMap::new();
    for _ in 0..300 {
        let status = client.get(&url).send().await.unwrap().status().as_u16();
        *statuses.entry(status).or_insert(0) += 1;
    }
    // Ten missing keys, then the address is limited.
    assert_eq!((statuses.get(&401), statuses.get(&429)), (Some(&10), Some(&290)), "{statuses:?}");
    let summary = relay
        .wait_event(|e| e["policy_id"] == "noise" && e["reason"].as_str().unwrap_or("").contains("rate_limited"))
        .await;
    assert!(
        summary["reason"].as_str().unwrap().starts_with("noise: 278 more `rate_limited` refusals of 127.0.0.1 (of 290"),
        "{summary}"
    );
    let (_, events) = relay.api("GET", "/api/v1/audit?limit=1000", None, &relay.admin_key).await;
    let anonymous =
        events.as_array().unwrap().iter().filter(|e| e["kind"] == "admin" && e["subject_kind"] == "anonymous").count();
    assert_eq!(anonymous, 10 + 12, "ten missing keys and twelve of the limited ones, one by one");
}
