//! HTTP `CONNECT` on the gateway's port: the same credentials (Basic: user name and API key),
//! decision and audit as SOCKS5; refusals are HTTP statuses with the reason in the body.

use std::net::{IpAddr, SocketAddr};

use bytes::BytesMut;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

use super::AuthCache;
use super::socks5::{self, Target};
use super::{Anonymous, Client, Ended, anonymous, authenticate, refuse};
use sekisho_door::State;

pub(super) fn http_answer(status: &str, why: &str, extra_headers: &str) -> Vec<u8> {
    let body = format!("Sekisho gateway: {why}\n");
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\n{extra_headers}Connection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Longest HTTP request head accepted.
const MAX_HTTP_HEAD: usize = 8 << 10;

/// `CONNECT host:port HTTP/1.1` with `Proxy-Authorization: Basic base64(user:key)`.
pub(super) async fn http_handshake(
    state: &State,
    cache: &AuthCache,
    sock: &mut TcpStream,
    buf: &mut BytesMut,
    ip: IpAddr,
) -> Result<(Client, socks5::Request), Ended> {
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > MAX_HTTP_HEAD {
            let event = anonymous(state, Anonymous::Access, ip, "protocol_error: HTTP request head over 8 KiB".into());
            let answer = http_answer("431 Request Header Fields Too Large", "the request head is over 8 KiB", "");
            return Err(refuse(state, sock, &answer, event).await);
        }
        match sock.read_buf(buf).await {
            Ok(0) => return Err(Ended::Quietly("closed the connection".into())),
            Ok(_) => {}
            Err(e) => return Err(Ended::Quietly(e.to_string())),
        }
    };
    let head = buf.split_to(head_end);
    let text = String::from_utf8_lossy(&head);
    let mut lines = text.split("\r\n");
    let mut request_line = lines.next().unwrap_or_default().split(' ');
    let (method, authority) = (request_line.next().unwrap_or_default(), request_line.next().unwrap_or_default());
    if method != "CONNECT" {
        let why = format!("protocol_error: `{method}` is not offered; this port takes SOCKS5 or HTTP CONNECT");
        let event = anonymous(state, Anonymous::Access, ip, why.clone());
        let answer = http_answer("405 Method Not Allowed", &why, "Allow: CONNECT\r\n");
        return Err(refuse(state, sock, &answer, event).await);
    }
    let credentials = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("proxy-authorization"))
        .and_then(|(_, v)| v.trim().strip_prefix("Basic ").map(str::trim).map(str::to_owned))
        .and_then(|b| base64::Engine::decode(&base64::engine::general_purpose::STANDARD, b).ok())
        .and_then(|raw| String::from_utf8(raw).ok())
        .and_then(|pair| {
            pair.split_once(':').map(|(u, p)| socks5::Credentials { user: u.to_owned(), password: p.to_owned() })
        });
    let Some(credentials) = credentials else {
        let why = "no_credentials: send Proxy-Authorization: Basic (user name and API key)";
        let event = anonymous(state, Anonymous::Login, ip, why.to_owned());
        let answer =
            http_answer("407 Proxy Authentication Required", why, "Proxy-Authenticate: Basic realm=\"sekisho\"\r\n");
        return Err(refuse(state, sock, &answer, event).await);
    };
    let client = match authenticate(state, cache, ip, &credentials).await {
        Ok(c) => c,
        Err(event) => {
            let event = super::Record::Login(Box::new(event));
            state.limiter.failed(ip);
            let answer = http_answer(
                "407 Proxy Authentication Required",
                "the user name or API key was not accepted",
                "Proxy-Authenticate: Basic realm=\"sekisho\"\r\n",
            );
            return Err(refuse(state, sock, &answer, event).await);
        }
    };
    let target = authority.rsplit_once(':').and_then(|(host, port)| {
        let port = port.parse::<u16>().ok()?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        match host.parse::<IpAddr>() {
            Ok(ip) => Some(Target::Ip(SocketAddr::new(ip, port))),
            Err(_) => socks5::domain(host, port),
        }
    });
    let Some(target) = target else {
        let why = format!("protocol_error: `{authority}` is not host:port");
        let record = client.refusal(state, "", why.clone());
        return Err(refuse(state, sock, &http_answer("400 Bad Request", &why, ""), record).await);
    };
    Ok((client, socks5::Request { command: socks5::CMD_CONNECT, target }))
}
