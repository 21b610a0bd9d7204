//! `socksload`: a small load generator for SOCKS5 proxies (and the plain TCP baseline), used by
//! `bench/socks.sh` to compare the Sekisho relay's SOCKS5 gateway with a direct connection and
//! with Dante on loopback.
//!
//! - `serve` runs the targets: a bulk port (the client's first byte picks the direction: `U`
//!   uploads into a sink that answers the byte count when the client half-closes, `D` downloads
//!   from a source that writes until the client goes away) and an echo port (one length-prefixed
//!   request echoed back, then the target closes first, as HTTP/1.0 servers do). It prints one JSON
//!   line `{"event":"ready","bulk":ADDR,"echo":ADDR}` and runs until killed.
//! - `bulk` opens N connections to the bulk port (directly, or through `--proxy` with RFC 1928
//!   CONNECT and, with `--user`/`--pass`, RFC 1929 username/password), moves data for S seconds
//!   and prints `{"mode":"bulk","gbit_s":…}` (bytes counted by the receiver).
//! - `connrate` runs C workers that each loop: connect, SOCKS5 handshake, send a small request to
//!   the echo port, read the echo, see the target close. It prints the completed connections per
//!   second, the error count and latency percentiles of whole connections.
//!
//! `bench/socks.sh` starts `socksload serve` once, then runs `bulk` and `connrate` against it
//! directly, through Sekisho (username and API key) and through Dante (`socksmethod: none`).
//! Network errors are counted, never fatal.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Barrier;

/// Every single network step (connect, handshake, read, write) must finish within this.
const STEP_TIMEOUT: Duration = Duration::from_secs(10);
const CHUNK: usize = 64 * 1024;

#[derive(Parser)]
#[command(about = "SOCKS5 load generator and targets for bench/socks.sh")]
struct Cli {
    /// Tokio worker threads (default: one per core).
    #[arg(long, global = true)]
    threads: Option<usize>,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the bulk (sink/source) and echo targets; prints a JSON ready line.
    Serve {
        #[arg(long, default_value = "127.0.0.1:0")]
        bulk: SocketAddr,
        #[arg(long, default_value = "127.0.0.1:0")]
        echo: SocketAddr,
    },
    /// Parallel bulk transfer for a fixed time.
    Bulk {
        #[command(flatten)]
        via: Via,
        /// Parallel connections.
        #[arg(long, default_value_t = 4)]
        conns: usize,
        #[arg(long, value_enum, default_value = "up")]
        dir: Dir,
    },
    /// New connections per second: connect, handshake, small request and response, close.
    Connrate {
        #[command(flatten)]
        via: Via,
        /// Concurrent workers.
        #[arg(long, default_value_t = 32)]
        workers: usize,
        /// Bytes sent and echoed per connection (1 to 255).
        #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u8).range(1..))]
        size: u8,
    },
}

#[derive(Args, Clone)]
struct Via {
    /// The target (the bulk or echo port of `serve`).
    #[arg(long)]
    target: SocketAddr,
    /// SOCKS5 proxy to go through (default: connect directly).
    #[arg(long)]
    proxy: Option<SocketAddr>,
    /// RFC 1929 username (offers only username/password authentication when given).
    #[arg(long, requires = "pass")]
    user: Option<String>,
    /// RFC 1929 password (used only with `--user`).
    #[arg(long, env = "SOCKSLOAD_PASS", hide_env_values = true)]
    pass: Option<String>,
    /// Seconds to run.
    #[arg(long, default_value_t = 10)]
    secs: u64,
}

#[derive(Clone, Copy, ValueEnum)]
enum Dir {
    /// Client to target.
    Up,
    /// Target to client.
    Down,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    rt.enable_all();
    if let Some(n) = cli.threads {
        rt.worker_threads(n.max(1));
    }
    let rt = rt.build().context("cannot start the tokio runtime")?;
    rt.block_on(async {
        match cli.command {
            Cmd::Serve { bulk, echo } => serve(bulk, echo).await,
            Cmd::Bulk { via, conns, dir } => bulk(via, conns.max(1), dir).await,
            Cmd::Connrate { via, workers, size } => connrate(via, workers.max(1), size).await,
        }
    })
}

// ------------------------------------------------------------------------------------ targets

async fn serve(bulk: SocketAddr, echo: SocketAddr) -> anyhow::Result<()> {
    let bulk = TcpListener::bind(bulk).await.with_context(|| format!("cannot listen on {bulk}"))?;
    let echo = TcpListener::bind(echo).await.with_context(|| format!("cannot listen on {echo}"))?;
    println!("{}", json!({"event": "ready", "bulk": bulk.local_addr()?, "echo": echo.local_addr()?}));
    let b = tokio::spawn(accept_loop(bulk, serve_bulk));
    let e = tokio::spawn(accept_loop(echo, serve_echo));
    let _ = tokio::join!(b, e);
    Ok(())
}

async fn accept_loop<F, Fut>(listener: TcpListener, handle: F)
where
    F: Fn(TcpStream) -> Fut,
    Fut: Future<Output = std::io::Result<()>> + Send + 'static,
{
    loop {
        match listener.accept().await {
            Ok((sock, _)) => {
                let _ = sock.set_nodelay(true);
                tokio::spawn(handle(sock));
            }
            // Out of file descriptors and the like: back off a little.
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

/// `U`: read to EOF, answer the byte count (8 bytes, big endian). `D`: write until the peer leaves.
async fn serve_bulk(mut sock: TcpStream) -> std::io::Result<()> {
    let mut buf = vec![0u8; CHUNK];
    let mut mode = [0u8; 1];
    sock.read_exact(&mut mode).await?;
    match mode[0] {
        b'U' => {
            let mut total = 0u64;
            loop {
                match sock.read(&mut buf).await? {
                    0 => break,
                    n => total += n as u64,
                }
            }
            sock.write_all(&total.to_be_bytes()).await?;
            sock.shutdown().await
        }
        b'D' => loop {
            sock.write_all(&buf).await?;
        },
        _ => Ok(()),
    }
}

/// One small exchange, then the server closes first, like an HTTP/1.0 server: the request is one
/// length byte and that many bytes, echoed back. The side that closes first keeps the TIME_WAIT
/// socket, so it stays on the target's listening port and no proxy or client runs out of
/// ephemeral ports during a long connection-rate test.
async fn serve_echo(mut sock: TcpStream) -> std::io::Result<()> {
    let mut len = [0u8; 1];
    sock.read_exact(&mut len).await?;
    let mut buf = vec![0u8; usize::from(len[0])];
    sock.read_exact(&mut buf).await?;
    sock.write_all(&buf).await?;
    sock.shutdown().await
}

// ------------------------------------------------------------------------------------ client

async fn step<T>(what: &str, f: impl Future<Output = std::io::Result<T>>) -> anyhow::Result<T> {
    match tokio::time::timeout(STEP_TIMEOUT, f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => bail!("{what}: {e}"),
        Err(_) => bail!("{what}: timed out"),
    }
}

/// Connects to `via.target`, through the SOCKS5 proxy if there is one.
async fn open(via: &Via) -> anyhow::Result<TcpStream> {
    let Some(proxy) = via.proxy else {
        let sock = step("connect", TcpStream::connect(via.target)).await?;
        let _ = sock.set_nodelay(true);
        return Ok(sock);
    };
    let mut sock = step("connect to proxy", TcpStream::connect(proxy)).await?;
    let _ = sock.set_nodelay(true);
    let credentials = via.user.as_deref().zip(via.pass.as_deref());
    // Greeting: offer exactly one method.
    let method = if credentials.is_some() { 0x02 } else { 0x00 };
    step("greeting", sock.write_all(&[5, 1, method])).await?;
    let mut answer = [0u8; 2];
    step("method choice", sock.read_exact(&mut answer)).await?;
    if answer != [5, method] {
        bail!("proxy refused method {method}: answered {answer:?}");
    }
    if let Some((user, pass)) = credentials {
        if user.len() > 255 || pass.len() > 255 {
            bail!("username and password must be at most 255 bytes");
        }
        let mut auth = Vec::with_capacity(3 + user.len() + pass.len());
        auth.push(1);
        auth.push(user.len() as u8);
        auth.extend_from_slice(user.as_bytes());
        auth.push(pass.len() as u8);
        auth.extend_from_slice(pass.as_bytes());
        step("authentication", sock.write_all(&auth)).await?;
        step("authentication answer", sock.read_exact(&mut answer)).await?;
        if answer != [1, 0] {
            bail!("authentication refused: {answer:?}");
        }
    }
    let mut request = vec![5, 1, 0];
    match via.target.ip() {
        IpAddr::V4(ip) => {
            request.push(1);
            request.extend_from_slice(&ip.octets());
        }
        IpAddr::V6(ip) => {
            request.push(4);
            request.extend_from_slice(&ip.octets());
        }
    }
    request.extend_from_slice(&via.target.port().to_be_bytes());
    step("connect request", sock.write_all(&request)).await?;
    let mut head = [0u8; 4];
    step("connect reply", sock.read_exact(&mut head)).await?;
    if head[0] != 5 || head[1] != 0 {
        bail!("connect refused: reply code {}", head[1]);
    }
    let rest = match head[3] {
        1 => 4 + 2,
        4 => 16 + 2,
        3 => {
            let mut len = [0u8; 1];
            step("connect reply", sock.read_exact(&mut len)).await?;
            usize::from(len[0]) + 2
        }
        t => bail!("connect reply with unknown address type {t}"),
    };
    let mut bound = vec![0u8; rest];
    step("connect reply", sock.read_exact(&mut bound)).await?;
    Ok(sock)
}

/// Errors by message, for the report (the first few kinds only).
#[derive(Default)]
struct Errors {
    count: AtomicU64,
    kinds: std::sync::Mutex<Vec<(String, u64)>>,
}

impl Errors {
    fn add(&self, e: &anyhow::Error) {
        self.count.fetch_add(1, Ordering::Relaxed);
        let msg = e.to_string();
        let Ok(mut kinds) = self.kinds.lock() else { return };
        if let Some(k) = kinds.iter_mut().find(|(m, _)| *m == msg) {
            k.1 += 1;
        } else if kinds.len() < 8 {
            kinds.push((msg, 1));
        }
    }

    fn json(&self) -> serde_json::Value {
        let kinds = self.kinds.lock().map(|k| k.clone()).unwrap_or_default();
        serde_json::Value::Object(kinds.into_iter().map(|(m, n)| (m, json!(n))).collect())
    }
}

async fn bulk(via: Via, conns: usize, dir: Dir) -> anyhow::Result<()> {
    let secs = Duration::from_secs(via.secs.max(1));
    let errors = Arc::new(Errors::default());
    let barrier = Arc::new(Barrier::new(conns + 1));
    let via = Arc::new(via);
    let mut tasks = Vec::with_capacity(conns);
    for _ in 0..conns {
        let (via, barrier, errors) = (via.clone(), barrier.clone(), errors.clone());
        tasks.push(tokio::spawn(async move {
            let sock = open(&via).await;
            // Everyone waits at the barrier, even after a failure, so the others start.
            barrier.wait().await;
            let started = Instant::now();
            let moved = match sock {
                Ok(sock) => match dir {
                    Dir::Up => upload(sock, started + secs).await,
                    Dir::Down => download(sock, started + secs).await,
                },
                Err(e) => Err(e),
            };
            match moved {
                Ok(bytes) => Some((bytes, started.elapsed())),
                Err(e) => {
                    errors.add(&e);
                    None
                }
            }
        }));
    }
    barrier.wait().await;
    let started = Instant::now();
    let mut bytes = 0u64;
    let mut elapsed = Duration::ZERO;
    let mut ok = 0usize;
    for t in tasks {
        if let Ok(Some((b, e))) = t.await {
            bytes += b;
            elapsed = elapsed.max(e);
            ok += 1;
        }
    }
    let wall = started.elapsed();
    let elapsed = if elapsed.is_zero() { wall } else { elapsed };
    let gbit_s = bytes as f64 * 8.0 / elapsed.as_secs_f64() / 1e9;
    let dir = match dir {
        Dir::Up => "up",
        Dir::Down => "down",
    };
    println!(
        "{}",
        json!({
            "mode": "bulk", "dir": dir, "proxy": via.proxy.map(|p| p.to_string()), "conns": conns,
            "ok_conns": ok, "secs": elapsed.as_secs_f64(), "bytes": bytes, "gbit_s": gbit_s,
            "errors": errors.count.load(Ordering::Relaxed), "error_kinds": errors.json(),
        })
    );
    Ok(())
}

/// Writes until `deadline`, half-closes, and returns the byte count the sink received.
async fn upload(mut sock: TcpStream, deadline: Instant) -> anyhow::Result<u64> {
    let buf = vec![0x5au8; CHUNK];
    step("write", sock.write_all(b"U")).await?;
    while Instant::now() < deadline {
        step("write", sock.write_all(&buf)).await?;
    }
    step("half-close", sock.shutdown()).await?;
    let mut count = [0u8; 8];
    step("read the sink's count", sock.read_exact(&mut count)).await?;
    Ok(u64::from_be_bytes(count))
}

/// Reads until `deadline`; returns the bytes read.
async fn download(mut sock: TcpStream, deadline: Instant) -> anyhow::Result<u64> {
    let mut buf = vec![0u8; CHUNK];
    step("write", sock.write_all(b"D")).await?;
    let mut total = 0u64;
    while Instant::now() < deadline {
        match step("read", sock.read(&mut buf)).await? {
            0 => bail!("the source closed the connection"),
            n => total += n as u64,
        }
    }
    Ok(total)
}

async fn connrate(via: Via, workers: usize, size: u8) -> anyhow::Result<()> {
    let secs = Duration::from_secs(via.secs.max(1));
    let errors = Arc::new(Errors::default());
    let via = Arc::new(via);
    let started = Instant::now();
    let deadline = started + secs;
    let mut tasks = Vec::with_capacity(workers);
    for _ in 0..workers {
        let (via, errors) = (via.clone(), errors.clone());
        tasks.push(tokio::spawn(async move {
            let mut payload = vec![0x61u8; usize::from(size) + 1];
            payload[0] = size;
            let mut echoed = vec![0u8; usize::from(size)];
            let mut latencies = Vec::new();
            while Instant::now() < deadline {
                let t0 = Instant::now();
                match exchange(&via, &payload, &mut echoed).await {
                    Ok(()) => latencies.push(t0.elapsed()),
                    Err(e) => {
                        errors.add(&e);
                        // Do not spin on a refusing proxy.
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
            }
            latencies
        }));
    }
    let mut latencies = Vec::new();
    for t in tasks {
        if let Ok(l) = t.await {
            latencies.extend(l);
        }
    }
    let elapsed = started.elapsed();
    latencies.sort_unstable();
    let pct = |p: f64| -> Option<f64> {
        let last = latencies.len().checked_sub(1)?;
        let i = ((last as f64) * p).round() as usize;
        latencies.get(i.min(last)).map(|d| d.as_secs_f64() * 1e3)
    };
    let done = latencies.len() as u64;
    println!(
        "{}",
        json!({
            "mode": "connrate", "proxy": via.proxy.map(|p| p.to_string()), "workers": workers, "size": size,
            "secs": elapsed.as_secs_f64(), "conns": done, "conns_per_s": done as f64 / elapsed.as_secs_f64(),
            "p50_ms": pct(0.5), "p99_ms": pct(0.99),
            "errors": errors.count.load(Ordering::Relaxed), "error_kinds": errors.json(),
        })
    );
    Ok(())
}

/// One connection: open (with the handshake), send the request (`payload` starts with its length
/// byte), read the echo, and wait for the target to close first.
async fn exchange(via: &Via, payload: &[u8], echoed: &mut [u8]) -> anyhow::Result<()> {
    let mut sock = open(via).await?;
    step("write request", sock.write_all(payload)).await?;
    step("read response", sock.read_exact(echoed)).await?;
    if echoed != &payload[1..] {
        bail!("the echo differs from the request");
    }
    let mut end = [0u8; 1];
    match step("wait for the close", sock.read(&mut end)).await? {
        0 => Ok(()),
        _ => bail!("the target sent more than the echo"),
    }
}
