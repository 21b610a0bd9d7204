//! Live re-decision at the access gate: an open stream that a change now denies is ended at once
//! (before the admin API answers the change), with an event that names the new reason; streams the
//! change does not touch go on.

use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::harness::{Agent, Relay};
use crate::targets;

/// Whether `sock` still echoes.
async fn echoes(sock: &mut TcpStream) -> bool {
    if sock.write_all(b"ping").await.is_err() {
        return false;
    }
    let mut buf = [0u8; 4];
    matches!(tokio::time::timeout(Duration::from_secs(5), sock.read_exact(&mut buf)).await, Ok(Ok(_)))
        && &buf == b"ping"
}

/// Waits (2 s at most) for the relay to end `sock`: end of stream or a reset.
async fn ended(sock: &mut TcpStream) -> bool {
    let mut buf = [0u8; 16];
    matches!(tokio::time::timeout(Duration::from_secs(2), sock.read(&mut buf)).await, Ok(Ok(0) | Err(_)))
}

#[tokio::test]
async fn a_group_or_policy_change_ends_the_open_streams_it_denies() {
    let relay = Relay::start().await;
    let key = relay.admin_key.clone();
    let ok = |(status, v): (u16, serde_json::Value)| {
        assert!((200..300).contains(&status), "{v}");
        v
    };
    ok(relay.api("POST", "/api/v1/groups", Some(json!({"name": "staff", "role": "member"})), &key).await);
    for name in ["alice", "bob"] {
        let user = json!({"name": name, "password": "correct horse battery", "groups": ["staff"]});
        ok(relay.api("POST", "/api/v1/users", Some(user), &key).await);
    }
    let back = relay.agent("site", "back").await;
    let echo = targets::echo_stream().await;
    relay.service("echo", &back, &format!("tcp://{echo}")).await;
    relay.policy("echo", &[r#"principal in Group::"staff""#], &[]).await;
    // Each user's personal device: its streams' principal is the user.
    let mut fronts = Vec::new();
    for name in ["alice", "bob"] {
        let v =
            relay.ctl(&["token", "create", "--name", &format!("{name}-pc"), "--role", "front", "--user", name]).await;
        let mut front = Agent::start(&relay, v.unwrap()["token"].as_str().unwrap(), &[]).await;
        front.id = front.proc.event("connected").await["agent_id"].as_str().unwrap().to_owned();
        let (_, addr) = relay.route(&mut front, "echo").await;
        fronts.push((front, addr));
    }
    let mut alice = TcpStream::connect(fronts[0].1).await.unwrap();
    let mut bob = TcpStream::connect(fronts[1].1).await.unwrap();
    assert!(echoes(&mut alice).await && echoes(&mut bob).await);

    // Bob leaves `staff`: his open stream ends, alice's goes on.
    ok(relay.api("DELETE", "/api/v1/groups/staff/members/bob", None, &key).await);
    assert!(ended(&mut bob).await, "bob's stream outlived his group membership");
    assert!(echoes(&mut alice).await, "alice's stream was ended too");
    let e = relay
        .wait_event(|e| {
            e["subject"] == "bob (via agent bob-pc)" && e["detail"].as_str().unwrap_or("").starts_with("revoked")
        })
        .await;
    assert_eq!(e["decision"], "deny", "{e}");
    assert!(e["reason"].as_str().unwrap().starts_with("access ended by a change: required condition not met"), "{e}");
    let input: serde_json::Value = serde_json::from_str(e["input"].as_str().unwrap()).unwrap();
    assert_eq!(input["principal"]["groups"], json!([]), "the event keeps what it was decided from: {input}");
    // New streams of bob's are refused; alice opens new ones.
    // (The front agent resets a refused connection at once: under load the reset can arrive
    // before the connect has even returned.)
    let refused = match TcpStream::connect(fronts[1].1).await {
        Ok(mut again) => !echoes(&mut again).await,
        Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
    };
    assert!(refused, "a new stream of bob's was carried");

    // A policy change that denies alice ends her stream too.
    relay.policy("echo", &[r#"principal in Group::"staff""#], &[r#"principal == User::"alice""#]).await;
    assert!(ended(&mut alice).await, "alice's stream outlived the policy that denies her");
    let e = relay
        .wait_event(|e| {
            e["subject"] == "alice (via agent alice-pc)" && e["detail"].as_str().unwrap_or("").starts_with("revoked")
        })
        .await;
    assert!(e["reason"].as_str().unwrap().contains("principal == User::\"alice\""), "{e}");
    // The stream's own event, closed with its bytes, follows.
    let closed = relay
        .wait_event(|e| {
            e["subject"] == "alice (via agent alice-pc)" && e["decision"] == "allow" && e["bytes_in"].as_u64() > Some(0)
        })
        .await;
    assert!(closed["detail"].as_str().unwrap().contains("ended"), "{closed}");
    // The principal is in its own fields: a search by the user (or by the device) finds what was
    // done through the user's own agent.
    assert_eq!(
        (closed["principal_user"].as_str(), closed["principal_agent"].as_str()),
        (Some("alice"), Some("alice-pc"))
    );
    for who in ["alice", "alice-pc"] {
        let found = relay.ctl(&["audit", "search", "--user", who, "--format", "json"]).await.unwrap();
        let found = found.as_array().unwrap();
        assert!(found.iter().any(|e| e["subject"] == "alice (via agent alice-pc)"), "search --user {who}: {found:?}");
    }
}

/// Revoking the API key a gateway connection was made with ends that connection.
#[tokio::test]
async fn revoking_a_gateway_key_ends_the_connections_made_with_it() {
    let relay = Relay::start_with(&["--socks-listen", "127.0.0.1:0", "--egress-allow", "127.0.0.0/8"]).await;
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
    let proxy = ok(relay
        .api("POST", "/api/v1/api-keys", Some(json!({"name": "p", "scopes": ["gateway:use"], "user": "alice"})), &key)
        .await);
    let (secret, id) = (proxy["key"].as_str().unwrap().to_owned(), proxy["id"].as_str().unwrap().to_owned());
    let echo = targets::echo_stream().await;
    // A SOCKS5 CONNECT by hand: greeting, username/password, request.
    let mut sock = TcpStream::connect(relay.socks.unwrap()).await.unwrap();
    sock.write_all(&[5, 1, 2]).await.unwrap();
    let mut two = [0u8; 2];
    sock.read_exact(&mut two).await.unwrap();
    let mut auth = vec![1, 5];
    auth.extend_from_slice(b"alice");
    auth.push(secret.len() as u8);
    auth.extend_from_slice(secret.as_bytes());
    sock.write_all(&auth).await.unwrap();
    sock.read_exact(&mut two).await.unwrap();
    assert_eq!(two, [1, 0], "authenticated");
    let std::net::SocketAddr::V4(v4) = echo else { panic!() };
    let mut request = vec![5, 1, 0, 1];
    request.extend_from_slice(&v4.ip().octets());
    request.extend_from_slice(&v4.port().to_be_bytes());
    sock.write_all(&request).await.unwrap();
    let mut reply = [0u8; 10];
    sock.read_exact(&mut reply).await.unwrap();
    assert_eq!(reply[1], 0, "connected");
    assert!(echoes(&mut sock).await);

    ok(relay.api("DELETE", &format!("/api/v1/api-keys/{id}"), None, &key).await);
    assert!(ended(&mut sock).await, "a connection outlived the key it was made with");
    relay.wait_event(|e| e["policy_id"] == "credential_revoked" && e["path"] == "socks").await;
}
