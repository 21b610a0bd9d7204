//! Slow, silent and greedy clients against the listeners: connections over the per-address cap are
//! closed before any handshake (and counted), a TLS client that never sends a request head is
//! closed, and so is one that trickles it; other addresses' clients are unaffected.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::harness::Relay;
use crate::rawagent;

/// Whether the relay closes `sock` within `within`: end of stream or a reset.
async fn closed_within(sock: &mut (impl AsyncReadExt + Unpin), within: Duration) -> bool {
    let mut buf = [0u8; 64];
    let deadline = Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline.into(), sock.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => return true,
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}

#[tokio::test]
async fn silent_trickling_and_greedy_clients_are_closed() {
    let relay =
        Relay::start_with(&["--socks-listen", "127.0.0.1:0", "--conn-per-ip", "4", "--http-header-timeout-ms", "700"])
            .await;
    let socks = relay.socks.unwrap();

    // Four silent SOCKS connections are held (their handshake has 10 s); a fifth is closed at once.
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(TcpStream::connect(socks).await.unwrap());
    }
    let mut fifth = TcpStream::connect(socks).await.unwrap();
    assert!(closed_within(&mut fifth, Duration::from_secs(2)).await, "a fifth connection from one address was kept");
    for s in &mut held {
        assert!(!closed_within(s, Duration::from_millis(50)).await, "a connection within the cap was closed");
    }
    drop(held);

    // After the TLS handshake, a client that sends nothing is closed once the header timeout passes.
    let mut silent = rawagent::tls_connect(relay.addr, &relay.ca_file, b"http/1.1").await.unwrap();
    let started = Instant::now();
    assert!(closed_within(&mut silent, Duration::from_secs(5)).await, "a silent TLS client was kept");
    assert!(started.elapsed() >= Duration::from_millis(500), "closed before the timeout: {:?}", started.elapsed());
    // A request head trickled a byte at a time is closed too, though bytes keep coming.
    let mut trickle = rawagent::tls_connect(relay.addr, &relay.ca_file, b"http/1.1").await.unwrap();
    let head = b"GET /api/v1/health HTTP/1.1\r\nHost: localhost\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
    let mut cut = false;
    for byte in head {
        if trickle.write_all(&[*byte]).await.is_err() || trickle.flush().await.is_err() {
            cut = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(cut || closed_within(&mut trickle, Duration::from_secs(2)).await, "a trickled head was served");

    // The relay says what it refused (operator's view), and still serves the API.
    let health = relay.health().await;
    assert!(health["connections"]["socks"]["refused"].as_u64().unwrap() >= 1, "{health}");
    assert_eq!(health["status"], "ok", "{health}");
}

/// An SSH connection that never logs in is closed when its login window ends (two minutes by
/// default; russh alone would keep it for its hour of inactivity).
#[tokio::test]
async fn ssh_connections_that_never_log_in_are_closed() {
    let relay = Relay::start_with(&["--ssh-listen", "127.0.0.1:0", "--ssh-login-window-ms", "800"]).await;
    let mut sock = TcpStream::connect(relay.ssh.unwrap()).await.unwrap();
    sock.write_all(b"SSH-2.0-silent_client\r\n").await.unwrap();
    let started = Instant::now();
    assert!(closed_within(&mut sock, Duration::from_secs(5)).await, "a connection that never logged in was kept");
    assert!(started.elapsed() >= Duration::from_millis(700), "closed before the window: {:?}", started.elapsed());
}
