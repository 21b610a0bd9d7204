//! Real servers the tunnels lead to, started in the test process on port 0.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures_util::{SinkExt, StreamExt};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

async fn listen() -> (TcpListener, SocketAddr) {
    let l = sekisho_tunnel::dial::listen("127.0.0.1:0".parse().unwrap()).unwrap();
    let a = l.local_addr().unwrap();
    (l, a)
}

/// Serves every accepted connection with `handler` on its own task.
async fn serve<F, Fut>(handler: F) -> SocketAddr
where
    F: Fn(TcpStream) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (l, a) = listen().await;
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            tokio::spawn(handler(s));
        }
    });
    a
}

/// Echoes with a prefix: reads until the client half-closes, then answers `prefix + data` and
/// closes. Proves half-close travels end to end (the answer only comes after EOF).
pub async fn echo_after_eof(prefix: &'static str) -> SocketAddr {
    serve(move |mut s: TcpStream| async move {
        let mut data = Vec::new();
        if s.read_to_end(&mut data).await.is_err() {
            return;
        }
        let _ = s.write_all(prefix.as_bytes()).await;
        let _ = s.write_all(&data).await;
        let _ = s.shutdown().await;
    })
    .await
}

/// Streaming echo: copies bytes back as they arrive (for long-lived connections).
pub async fn echo_stream() -> SocketAddr {
    serve(|s: TcpStream| async move {
        let (mut r, mut w) = s.into_split();
        let _ = tokio::io::copy(&mut r, &mut w).await;
        let _ = w.shutdown().await;
    })
    .await
}

/// Reads everything, answers with the SHA-256 of what it read.
pub async fn sink_hash() -> SocketAddr {
    serve(move |mut s: TcpStream| async move {
        let mut h = Sha256::new();
        let mut buf = vec![0u8; 256 << 10];
        loop {
            match s.read(&mut buf).await {
                Ok(0) => break,
                Ok(n) => h.update(&buf[..n]),
                Err(_) => return,
            }
        }
        let _ = s.write_all(&h.finalize()).await;
        let _ = s.shutdown().await;
    })
    .await
}

/// Deterministic, position-dependent bytes: word i of the stream is `i` (little endian), so a
/// dropped, duplicated or reordered chunk changes the hash.
pub fn fill(offset_words: u64, buf: &mut [u8]) {
    for (i, chunk) in buf.chunks_exact_mut(8).enumerate() {
        chunk.copy_from_slice(&(offset_words + i as u64).to_le_bytes());
    }
}

/// Reads a decimal byte count line, then sends that many bytes of [`fill`] data.
pub async fn source() -> SocketAddr {
    serve(move |mut s: TcpStream| async move {
        let mut line = Vec::new();
        loop {
            let Ok(b) = s.read_u8().await else { return };
            if b == b'\n' {
                break;
            }
            line.push(b);
        }
        let total: u64 = String::from_utf8_lossy(&line).trim().parse().unwrap_or(0);
        let mut buf = vec![0u8; 256 << 10];
        let mut sent = 0u64;
        while sent < total {
            let n = (buf.len() as u64).min(total - sent) as usize;
            fill(sent / 8, &mut buf[..n]);
            if s.write_all(&buf[..n]).await.is_err() {
                return;
            }
            sent += n as u64;
        }
        let _ = s.shutdown().await;
    })
    .await
}

/// A small HTTP server: `/` says hello, `/big` streams 4 MiB.
pub async fn http() -> SocketAddr {
    let (l, a) = listen().await;
    let app = axum::Router::new()
        .route("/", axum::routing::get(|| async { "hello through sekisho" }))
        .route("/big", axum::routing::get(|| async { vec![b'x'; 4 << 20] }));
    tokio::spawn(async move { axum::serve(l, app).await });
    a
}

/// WebSocket echo server.
pub async fn websocket_echo() -> SocketAddr {
    serve(|s: TcpStream| async move {
        let Ok(mut ws) = tokio_tungstenite::accept_async(s).await else {
            return;
        };
        while let Some(Ok(msg)) = ws.next().await {
            if (msg.is_text() || msg.is_binary()) && ws.send(msg).await.is_err() {
                return;
            }
        }
    })
    .await
}

/// A minimal HTTP CONNECT proxy; counts the tunnels it opened and remembers their targets.
pub struct ConnectProxy {
    pub addr: SocketAddr,
    pub count: Arc<AtomicUsize>,
    pub targets: Arc<std::sync::Mutex<Vec<String>>>,
}

pub async fn connect_proxy() -> ConnectProxy {
    let (l, addr) = listen().await;
    let count = Arc::new(AtomicUsize::new(0));
    let targets = Arc::new(std::sync::Mutex::new(Vec::new()));
    let (c, t) = (count.clone(), targets.clone());
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else {
                return;
            };
            let (c, t) = (c.clone(), t.clone());
            tokio::spawn(async move {
                let mut head = Vec::new();
                while !head.ends_with(b"\r\n\r\n") {
                    let Ok(b) = s.read_u8().await else { return };
                    head.push(b);
                }
                let text = String::from_utf8_lossy(&head).into_owned();
                let mut parts = text.split_whitespace();
                if parts.next() != Some("CONNECT") {
                    let _ = s.write_all(b"HTTP/1.1 405 Method Not Allowed\r\n\r\n").await;
                    return;
                }
                let target = parts.next().unwrap_or_default().to_owned();
                let Ok(mut up) = TcpStream::connect(&target).await else {
                    let _ = s.write_all(b"HTTP/1.1 502 Bad Gateway\r\n\r\n").await;
                    return;
                };
                // As real proxies do: no Nagle delay on tunnelled bytes.
                let _ = (s.set_nodelay(true), up.set_nodelay(true));
                c.fetch_add(1, Ordering::SeqCst);
                t.lock().unwrap().push(target);
                let _ = s.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n").await;
                let _ = tokio::io::copy_bidirectional(&mut s, &mut up).await;
            });
        }
    });
    ConnectProxy { addr, count, targets }
}

/// Collects every byte sent to it (the relay's debug tap).
pub async fn collector() -> (SocketAddr, Arc<std::sync::Mutex<Vec<u8>>>) {
    let (l, a) = listen().await;
    let store = Arc::new(std::sync::Mutex::new(Vec::new()));
    let s2 = store.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let s2 = s2.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 << 10];
                while let Ok(n) = s.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    s2.lock().unwrap().extend_from_slice(&buf[..n]);
                }
            });
        }
    });
    (a, store)
}

/// Sends `data`, half-closes, and reads the whole answer.
pub async fn roundtrip(addr: SocketAddr, data: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut s = TcpStream::connect(addr).await?;
    s.write_all(data).await?;
    s.shutdown().await?;
    let mut out = Vec::new();
    s.read_to_end(&mut out).await?;
    Ok(out)
}
