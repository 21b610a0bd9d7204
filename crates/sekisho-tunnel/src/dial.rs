//! Outbound connections: straight, or through an HTTP CONNECT proxy (`HTTPS_PROXY`, `--proxy`),
//! and the jittered exponential backoff between attempts.

use std::time::Duration;

use base64::Engine;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[derive(Debug, thiserror::Error)]
pub enum DialError {
    #[error("cannot connect to `{addr}`: {source}")]
    Connect { addr: String, source: std::io::Error },
    #[error("connecting to `{0}` timed out")]
    Timeout(String),
    #[error("invalid proxy url `{0}`: expected http://[user:password@]host:port")]
    BadProxyUrl(String),
    #[error("proxy `{proxy}` refused CONNECT to `{target}`: {status}")]
    ProxyRefused { proxy: String, target: String, status: String },
    #[error("proxy `{0}` sent a malformed reply")]
    ProxyProtocol(String),
}

/// An HTTP proxy that tunnels with CONNECT.
#[derive(Clone)]
pub struct Proxy {
    addr: String,
    auth: Option<String>,
    no_proxy: Vec<String>,
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxy").field("addr", &self.addr).field("auth", &self.auth.as_ref().map(|_| "MASKED")).finish()
    }
}

impl Proxy {
    /// Parses `http://[user:password@]host:port`.
    pub fn parse(url: &str) -> Result<Self, DialError> {
        let bad = || DialError::BadProxyUrl(url.to_owned());
        let rest = url.strip_prefix("http://").or_else(|| (!url.contains("://")).then_some(url)).ok_or_else(bad)?;
        let rest = rest.trim_end_matches('/');
        let (auth, host) = match rest.rsplit_once('@') {
            Some((userinfo, host)) => {
                (Some(base64::engine::general_purpose::STANDARD.encode(userinfo.as_bytes())), host)
            }
            None => (None, rest),
        };
        if host.is_empty() || host.contains('/') {
            return Err(bad());
        }
        let addr = if host.rsplit_once(':').is_some_and(|(_, p)| p.parse::<u16>().is_ok()) {
            host.to_owned()
        } else {
            format!("{host}:80")
        };
        Ok(Proxy { addr, auth, no_proxy: Vec::new() })
    }

    /// The proxy named by `HTTPS_PROXY`/`https_proxy`/`ALL_PROXY`, honouring `NO_PROXY`.
    pub fn from_env() -> Result<Option<Self>, DialError> {
        let var = ["HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"]
            .iter()
            .find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()));
        let Some(url) = var else { return Ok(None) };
        let mut proxy = Self::parse(&url)?;
        let no = std::env::var("NO_PROXY").or_else(|_| std::env::var("no_proxy")).unwrap_or_default();
        proxy.no_proxy = no
            .split(',')
            .map(|s| s.trim().trim_start_matches('.').to_ascii_lowercase())
            .filter(|s| !s.is_empty())
            .collect();
        Ok(Some(proxy))
    }

    fn bypass(&self, target: &str) -> bool {
        let host = target.rsplit_once(':').map_or(target, |(h, _)| h).trim_matches(['[', ']']).to_ascii_lowercase();
        self.no_proxy.iter().any(|n| n == "*" || host == *n || host.ends_with(&format!(".{n}")))
    }

    pub fn addr(&self) -> &str {
        &self.addr
    }
}

/// Connects to `target` (`host:port`), through `proxy` if given, within `timeout`.
pub async fn connect(target: &str, proxy: Option<&Proxy>, timeout: Duration) -> Result<TcpStream, DialError> {
    let fut = async {
        match proxy.filter(|p| !p.bypass(target)) {
            None => tcp(target).await,
            Some(p) => via_proxy(p, target).await,
        }
    };
    tokio::time::timeout(timeout, fut).await.map_err(|_| DialError::Timeout(target.to_owned()))?
}

async fn tcp(addr: &str) -> Result<TcpStream, DialError> {
    let s = TcpStream::connect(addr).await.map_err(|source| DialError::Connect { addr: addr.to_owned(), source })?;
    let _ = s.set_nodelay(true);
    Ok(s)
}

async fn via_proxy(proxy: &Proxy, target: &str) -> Result<TcpStream, DialError> {
    let mut s = tcp(&proxy.addr).await?;
    let mut req = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\nUser-Agent: sekisho\r\n");
    if let Some(auth) = &proxy.auth {
        req.push_str(&format!("Proxy-Authorization: Basic {auth}\r\n"));
    }
    req.push_str("\r\n");
    let io = |source| DialError::Connect { addr: proxy.addr.clone(), source };
    s.write_all(req.as_bytes()).await.map_err(io)?;
    // Read the reply head byte by byte so no tunnelled byte is consumed.
    let mut head = Vec::with_capacity(256);
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() > 16 << 10 {
            return Err(DialError::ProxyProtocol(proxy.addr.clone()));
        }
        let b = s.read_u8().await.map_err(io)?;
        head.push(b);
    }
    let text = String::from_utf8_lossy(&head);
    let status_line = text.lines().next().unwrap_or_default();
    let mut parts = status_line.splitn(3, ' ');
    let (version, code) = (parts.next().unwrap_or_default(), parts.next().unwrap_or_default());
    if !version.starts_with("HTTP/1.") {
        return Err(DialError::ProxyProtocol(proxy.addr.clone()));
    }
    if code != "200" {
        return Err(DialError::ProxyRefused {
            proxy: proxy.addr.clone(),
            target: target.to_owned(),
            status: status_line.to_owned(),
        });
    }
    Ok(s)
}

/// Listen backlog for every listener: bursts of new connections (a thousand clients at once)
/// must queue, not be dropped (the OS default of 128 overflows and resets them).
pub const LISTEN_BACKLOG: u32 = 4096;

/// Binds a TCP listener with a deep accept queue.
pub fn listen(addr: std::net::SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = if addr.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Like [`listen`] for an address given as text (`ip:port`).
pub fn listen_str(addr: &str) -> std::io::Result<tokio::net::TcpListener> {
    let parsed = addr.parse().map_err(|_| {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("`{addr}` is not an ip:port address"))
    })?;
    listen(parsed)
}

/// Jittered exponential backoff: `base · 2^n`, capped, then scaled by a random factor in
/// [0.5, 1.0) so that many agents cut off together do not reconnect in lockstep.
#[derive(Debug, Clone)]
pub struct Backoff {
    attempt: u32,
    base: Duration,
    cap: Duration,
}

impl Backoff {
    pub fn new(base: Duration, cap: Duration) -> Self {
        Backoff { attempt: 0, base, cap }
    }

    /// The delay before the next attempt.
    pub fn next_delay(&mut self) -> Duration {
        let exp = self.base.saturating_mul(1u32 << self.attempt.min(16));
        self.attempt = self.attempt.saturating_add(1);
        let capped = exp.min(self.cap);
        capped.mul_f64(0.5 + rand::random::<f64>() * 0.5)
    }

    /// Call after a connection succeeded.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_urls_parse() {
        let p = Proxy::parse("http://user:pw@proxy.local:3128/").unwrap();
        assert_eq!(p.addr(), "proxy.local:3128");
        assert!(p.auth.is_some());
        assert_eq!(Proxy::parse("proxy:8080").unwrap().addr(), "proxy:8080");
        assert_eq!(Proxy::parse("http://proxy").unwrap().addr(), "proxy:80");
        assert!(Proxy::parse("socks5://x:1").is_err());
        assert!(format!("{:?}", p).contains("MASKED"));
    }

    #[test]
    fn no_proxy_matches_suffixes() {
        let mut p = Proxy::parse("http://p:1").unwrap();
        p.no_proxy = vec!["example.com".into(), "127.0.0.1".into()];
        assert!(p.bypass("relay.example.com:443"));
        assert!(p.bypass("127.0.0.1:7443"));
        assert!(!p.bypass("example.org:443"));
    }

    #[test]
    fn backoff_grows_with_jitter_and_caps() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
        let first = b.next_delay();
        assert!(first >= Duration::from_millis(50) && first < Duration::from_millis(100));
        for _ in 0..20 {
            assert!(b.next_delay() <= Duration::from_secs(2));
        }
        b.reset();
        assert!(b.next_delay() < Duration::from_millis(100));
    }
}
