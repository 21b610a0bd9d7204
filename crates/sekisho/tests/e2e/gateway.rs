//! The SOCKS5 gateway with real clients: `curl --socks5-hostname` and `curl --socks5` through
//! the relay to local HTTP servers (names from a hosts file), domain lists, wrong credentials,
//! garbage and half-finished handshakes, egress through a back agent, and 1,000 concurrent
//! CONNECTs.

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::Command;

use crate::harness::Relay;
use crate::targets;

/// A relay running the gateway, with `names` resolving to 127.0.0.1 through its hosts file.
async fn relay_with_gateway(names: &[&str], allow_private: bool) -> Relay {
    let hosts = std::env::temp_dir().join(format!("sekisho-hosts-{}", rand::random::<u64>()));
    std::fs::write(&hosts, format!("127.0.0.1 {}\n", names.join(" "))).unwrap();
    let hosts = hosts.to_str().unwrap().to_owned();
    let mut args = vec!["--socks-listen", "127.0.0.1:0", "--socks-hosts", hosts.as_str()];
    if allow_private {
        args.extend(["--egress-allow", "127.0.0.0/8,::1/128"]);
    }
    Relay::start_with(&args).await
}

/// Creates group `staff`, user `name` in it, and a `gateway:use` key for the user.
async fn staff_user(relay: &Relay, name: &str) -> String {
    staff_user_key(relay, name).await.0
}

/// [`staff_user`], also returning the key's id.
async fn staff_user_key(relay: &Relay, name: &str) -> (String, String) {
    let ok = |(s, v): (u16, Value)| {
        assert!((200..300).contains(&s), "{v}");
        v
    };
    let _ =
        relay.api("POST", "/api/v1/groups", Some(json!({"name": "staff", "role": "member"})), &relay.admin_key).await;
    let user = json!({"name": name, "password": "correct horse battery", "groups": ["staff"]});
    ok(relay.api("POST", "/api/v1/users", Some(user), &relay.admin_key).await);
    let key = json!({"name": format!("{name}-proxy"), "scopes": ["gateway:use"], "user": name});
    let v = ok(relay.api("POST", "/api/v1/api-keys", Some(key), &relay.admin_key).await);
    let keys = ok(relay.api("GET", "/api/v1/api-keys", None, &relay.admin_key).await);
    let id = keys.as_array().unwrap().iter().find(|k| k["name"] == format!("{name}-proxy")).unwrap()["id"].clone();
    (v["key"].as_str().unwrap().to_owned(), id.as_str().unwrap().to_owned())
}

/// `curl` through the gateway; Ok(body) or Err(exit code and stderr).
async fn curl(proxy_flag: &str, socks: SocketAddr, user: &str, url: &str) -> Result<String, String> {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "10", proxy_flag, &socks.to_string(), "--proxy-user", user, url])
        .output()
        .await
        .expect("curl is installed by the README's test command");
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!("exit {:?}: {}", out.status.code(), String::from_utf8_lossy(&out.stderr)))
    }
}

/// A SOCKS5 client written out byte by byte (for what curl will not send): greeting, RFC 1929
/// login, then `command` to `dest`. Returns the stream and the reply code.
async fn raw_request(socks: SocketAddr, user: &str, key: &str, command: u8, dest: SocketAddr) -> (TcpStream, u8) {
    let mut s = TcpStream::connect(socks).await.unwrap();
    s.write_all(&[5, 1, 2]).await.unwrap();
    let mut two = [0u8; 2];
    s.read_exact(&mut two).await.unwrap();
    assert_eq!(two, [5, 2], "the gateway asks for username/password");
    let mut auth = vec![1, user.len() as u8];
    auth.extend_from_slice(user.as_bytes());
    auth.push(key.len() as u8);
    auth.extend_from_slice(key.as_bytes());
    s.write_all(&auth).await.unwrap();
    s.read_exact(&mut two).await.unwrap();
    assert_eq!(two, [1, 0], "login accepted");
    let mut req = vec![5, command, 0];
    match dest {
        SocketAddr::V4(a) => {
            req.push(1);
            req.extend_from_slice(&a.ip().octets());
        }
        SocketAddr::V6(a) => {
            req.push(4);
            req.extend_from_slice(&a.ip().octets());
        }
    }
    req.extend_from_slice(&dest.port().to_be_bytes());
    s.write_all(&req).await.unwrap();
    let mut head = [0u8; 4];
    s.read_exact(&mut head).await.unwrap();
    let rest = match head[3] {
        1 => 6,
        4 => 18,
        other => panic!("reply address type {other}"),
    };
    let mut bound = vec![0u8; rest];
    s.read_exact(&mut bound).await.unwrap();
    (s, head[1])
}

#[tokio::test]
async fn the_gateway_decides_by_domain_and_user_and_records_every_connection() {
    let relay = relay_with_gateway(&["allowed.test", "blocked.test", "www.blocked.test"], true).await;
    let socks: SocketAddr = relay.socks.expect("the relay reports its gateway address");
    let (key, key_id) = staff_user_key(&relay, "alice").await;
    let web = targets::http().await;
    relay.ctl(&["service", "create", "internet", "--target", "socks"]).await.unwrap();
    relay
        .ctl(&[
            "policy",
            "set",
            "internet",
            "--require",
            r#"principal in Group::"staff""#,
            "--deny-domain",
            "Blocked.Test",
        ])
        .await
        .unwrap();
    let alice = format!("alice:{key}");

    // Remote DNS: the domain goes to the relay, which resolves it and asks policy.
    let page = curl("--socks5-hostname", socks, &alice, &format!("http://allowed.test:{}/", web.port())).await;
    assert_eq!(page.as_deref(), Ok("hello through sekisho"));
    let e = relay.wait_event(|e| e["path"] == "socks" && e["decision"] == "allow" && e["bytes_out"].is_number()).await;
    assert_eq!(
        (e["subject"].as_str(), e["target"].as_str(), e["policy_id"].as_str()),
        (Some("alice"), Some(format!("allowed.test:{}", web.port()).as_str()), Some("internet/required")),
        "{e}"
    );
    assert!(e["bytes_in"].as_u64().unwrap() > 0 && e["duration_ms"].is_number(), "{e}");

    // The deny list covers the domain and its subdomains.
    let denied = curl("--socks5-hostname", socks, &alice, &format!("http://www.blocked.test:{}/", web.port())).await;
    assert!(denied.is_err(), "{denied:?}");
    let e = relay.wait_event(|e| e["path"] == "socks" && e["decision"] == "deny").await;
    assert_eq!(
        (e["policy_id"].as_str(), e["target"].as_str()),
        (Some("internet/deny-domains"), Some(format!("www.blocked.test:{}", web.port()).as_str())),
        "{e}"
    );
    assert!(e["reason"].as_str().unwrap().contains("deny list"), "{e}");
    // A denied name is decided before it is resolved: one that no DNS knows is still a policy
    // denial (not `dns_failed`), so no query for it left the relay.
    let unknown = format!("http://tracker.blocked.test:{}/", web.port());
    assert!(curl("--socks5-hostname", socks, &alice, &unknown).await.is_err());
    let e = relay.wait_event(|e| e["target"].as_str().unwrap_or("").starts_with("tracker.blocked.test")).await;
    assert_eq!((e["decision"].as_str(), e["policy_id"].as_str()), (Some("deny"), Some("internet/deny-domains")), "{e}");
    let found = relay.ctl(&["audit", "search", "--domain", "www.blocked.test", "--format", "json"]).await.unwrap();
    let found: Vec<&str> = found.as_array().unwrap().iter().filter_map(|e| e["target"].as_str()).collect();
    assert_eq!(found, [format!("www.blocked.test:{}", web.port())], "the log filters by domain");

    // Local DNS: an address, decided on the address alone.
    let page = curl("--socks5", socks, &alice, &format!("http://127.0.0.1:{}/", web.port())).await;
    assert_eq!(page.as_deref(), Ok("hello through sekisho"));
    relay.wait_event(|e| e["target"] == format!("127.0.0.1:{}", web.port()) && e["decision"] == "allow").await;

    // Policies see the destination: no port 22 for anyone.
    relay
        .ctl(&[
            "policy",
            "set",
            "internet",
            "--require",
            "true",
            "--deny",
            "context.port == 22",
            "--deny-domain",
            "blocked.test",
        ])
        .await
        .unwrap();
    let (_, code) = raw_request(socks, "alice", &key, 1, "127.0.0.1:22".parse().unwrap()).await;
    assert_eq!(code, 2, "connection not allowed by ruleset");
    relay.wait_event(|e| e["policy_id"] == "internet/deny/0").await;

    // The dry run sees domains too.
    let test = relay
        .ctl(&[
            "policy",
            "test",
            "--service",
            "internet",
            "--user",
            "alice",
            "--ip",
            "127.0.0.1",
            "--domain",
            "x.blocked.test",
            "--port",
            "443",
        ])
        .await
        .unwrap();
    assert_eq!(test["policy_id"], "internet/deny-domains", "{test}");

    // Wrong credentials, someone else's key, a key of no user: refused and recorded.
    let wrong = curl("--socks5-hostname", socks, "alice:not-a-key", "http://allowed.test/").await;
    assert!(wrong.is_err(), "{wrong:?}");
    relay
        .wait_event(|e| e["kind"] == "login" && e["reason"].as_str().unwrap_or("").contains("not a valid API key"))
        .await;
    let bob_key = staff_user(&relay, "bob").await;
    let mixed = curl("--socks5-hostname", socks, &format!("alice:{bob_key}"), "http://allowed.test/").await;
    assert!(mixed.is_err(), "{mixed:?}");
    relay.wait_event(|e| e["kind"] == "login" && e["reason"].as_str().unwrap_or("").contains("is not `alice`'s")).await;
    let admin = curl("--socks5-hostname", socks, &format!("alice:{}", relay.admin_key), "http://allowed.test/").await;
    assert!(admin.is_err(), "{admin:?}");
    relay.wait_event(|e| e["kind"] == "login" && e["reason"].as_str().unwrap_or("").contains("no enabled user")).await;

    // Garbage gets the connection closed and an event; half a handshake is just dropped.
    let mut junk = TcpStream::connect(socks).await.unwrap();
    junk.write_all(b"\x16\x03\x01\x00\xa5garbage that is neither SOCKS5 nor HTTP").await.unwrap();
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), junk.read_to_end(&mut rest)).await.unwrap();
    assert!(rest.is_empty(), "{rest:?}");
    relay.wait_event(|e| e["reason"].as_str().unwrap_or("").contains("not a SOCKS5 client")).await;
    for partial in [&[5u8][..], &[5, 1, 2], &[5, 1, 2, 1, 5, b'a']] {
        let mut s = TcpStream::connect(socks).await.unwrap();
        s.write_all(partial).await.unwrap();
        drop(s);
    }
    // No authentication method we accept.
    let mut s = TcpStream::connect(socks).await.unwrap();
    s.write_all(&[5, 1, 0]).await.unwrap();
    let mut two = [0u8; 2];
    s.read_exact(&mut two).await.unwrap();
    assert_eq!(two, [5, 0xFF]);

    // UDP ASSOCIATE is refused with "command not supported".
    let (_, code) = raw_request(socks, "alice", &key, 3, "0.0.0.0:0".parse().unwrap()).await;
    assert_eq!(code, 7);
    relay.wait_event(|e| e["reason"].as_str().unwrap_or("").contains("command_not_supported")).await;

    // IPv6 destinations, where the machine has IPv6 loopback.
    if let Ok(v6) = tokio::net::TcpListener::bind("[::1]:0").await {
        let addr = v6.local_addr().unwrap();
        tokio::spawn(async move {
            if let Ok((mut s, _)) = v6.accept().await {
                let _ = s.write_all(b"over v6").await;
            }
        });
        let (mut s, code) = raw_request(socks, "alice", &key, 1, addr).await;
        assert_eq!(code, 0);
        let mut got = Vec::new();
        s.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"over v6");
    }

    // HTTP CONNECT on the same port: same credentials, same decisions, reasons in the answer.
    let connect = |user: Option<String>, url: String| async move {
        let mut cmd = Command::new("curl");
        cmd.args(["-sS", "--max-time", "10", "-p", "-x", &format!("http://{socks}")]);
        if let Some(user) = &user {
            cmd.args(["--proxy-user", user]);
        }
        let out = cmd.arg(&url).output().await.unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, body, err) = connect(Some(alice.clone()), format!("http://allowed.test:{}/", web.port())).await;
    assert!(ok && body == "hello through sekisho", "{body} {err}");
    let (ok, _, err) = connect(Some(alice.clone()), format!("http://www.blocked.test:{}/", web.port())).await;
    assert!(!ok && err.contains("403"), "{err}");
    let (ok, _, err) = connect(None, format!("http://allowed.test:{}/", web.port())).await;
    assert!(!ok && err.contains("407"), "{err}");
    let mut plain = TcpStream::connect(socks).await.unwrap();
    plain.write_all(b"GET http://allowed.test/ HTTP/1.1\r\nHost: allowed.test\r\n\r\n").await.unwrap();
    let mut answer = Vec::new();
    plain.read_to_end(&mut answer).await.unwrap();
    assert!(String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 405"), "{}", String::from_utf8_lossy(&answer));

    // Everyone else's streams were unaffected all along.
    let page = curl("--socks5-hostname", socks, &alice, &format!("http://allowed.test:{}/", web.port())).await;
    assert_eq!(page.as_deref(), Ok("hello through sekisho"));

    // A revoked key stops working at once, although the gateway remembers verified keys.
    let (status, v) = relay.api("DELETE", &format!("/api/v1/api-keys/{key_id}"), None, &relay.admin_key).await;
    assert!((200..300).contains(&status), "{v}");
    let revoked = curl("--socks5-hostname", socks, &alice, &format!("http://allowed.test:{}/", web.port())).await;
    assert!(revoked.is_err(), "{revoked:?}");
    relay.wait_event(|e| e["kind"] == "login" && e["reason"].as_str().unwrap_or("").contains("revoked")).await;
}

#[tokio::test]
async fn direct_egress_refuses_the_relays_own_networks_unless_allowed() {
    let relay = relay_with_gateway(&["intranet.test"], false).await;
    let socks = relay.socks.unwrap();
    let key = staff_user(&relay, "alice").await;
    let web = targets::http().await;
    relay.ctl(&["service", "create", "internet", "--target", "socks"]).await.unwrap();
    relay.policy("internet", &["true"], &[]).await;
    let refused =
        curl("--socks5-hostname", socks, &format!("alice:{key}"), &format!("http://intranet.test:{}/", web.port()))
            .await;
    assert!(refused.is_err(), "{refused:?}");
    let e = relay.wait_event(|e| e["policy_id"] == "private_destination").await;
    assert!(e["reason"].as_str().unwrap().contains("127.0.0.1"), "{e}");
}

#[tokio::test]
async fn egress_through_a_back_agent_and_a_thousand_concurrent_connects() {
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let relay = relay_with_gateway(&["echo.test"], true).await;
    let socks = relay.socks.unwrap();
    let key = staff_user(&relay, "alice").await;
    let site = relay.agent("site", "back").await;
    relay.ctl(&["service", "create", "internet", "--target", "socks"]).await.unwrap();
    relay.ctl(&["service", "create", "sitenet", "--target", "socks", "--agent", &site.id]).await.unwrap();
    relay.policy("internet", &["true"], &[]).await;
    relay.policy("sitenet", &[r#"context.domain == "localhost" || context.domain == """#], &[]).await;
    let web = targets::http().await;

    // Two gateways: the username picks one.
    let url = format!("http://localhost:{}/", web.port());
    let unpicked = curl("--socks5-hostname", socks, &format!("alice:{key}"), &url).await;
    assert!(unpicked.is_err(), "{unpicked:?}");
    relay.wait_event(|e| e["reason"].as_str().unwrap_or("").contains("choose one of internet, sitenet")).await;
    let page = curl("--socks5-hostname", socks, &format!("alice+sitenet:{key}"), &url).await;
    assert_eq!(page.as_deref(), Ok("hello through sekisho"));
    let e = relay.wait_event(|e| e["detail"].as_str().unwrap_or("").contains("egress via agent site")).await;
    assert_eq!(
        (e["decision"].as_str(), e["target"].as_str()),
        (Some("allow"), Some(format!("localhost:{}", web.port()).as_str()))
    );
    // A closed port at the site is reported as refused, not as a hang. (Bound but not listening,
    // so no other test's listener can take the port meanwhile.)
    let reserved = tokio::net::TcpSocket::new_v4().unwrap();
    reserved.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let closed = reserved.local_addr().unwrap();
    let (_, code) = raw_request(socks, "alice+sitenet", &key, 1, closed).await;
    assert_eq!(code, 5, "connection refused");

    // 1,000 CONNECTs at once through the direct gateway, each echoing its own bytes.
    let echo = targets::echo_stream().await;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..1000u32 {
        let key = key.clone();
        tasks.spawn(async move {
            let (mut s, code) = raw_request(socks, "alice+internet", &key, 1, echo).await;
            assert_eq!(code, 0);
            let msg = format!("stream {i:04}");
            s.write_all(msg.as_bytes()).await.unwrap();
            let mut back = vec![0u8; msg.len()];
            s.read_exact(&mut back).await.unwrap();
            assert_eq!(back, msg.as_bytes());
        });
    }
    let all = tokio::time::timeout(Duration::from_secs(120), async {
        while let Some(done) = tasks.join_next().await {
            done.unwrap();
        }
    })
    .await;
    assert!(all.is_ok(), "1,000 concurrent CONNECTs did not finish");
    drop(site);
}
