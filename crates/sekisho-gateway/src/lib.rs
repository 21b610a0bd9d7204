//! The SOCKS5 web-filter gateway: staff devices use the relay as their proxy, and every outbound
//! connection is decided by the tenant's Cedar policies and left in the audit log.
//!
//! A gateway is a service of protocol `socks`. Its egress is the relay itself (target
//! `socks://relay`) or one back agent (`socks://agent`, so a site's staff browse with that site's
//! address); the agent leg is a plain tunnel stream whose open request carries the destination.
//! Clients authenticate with RFC 1929: the username is the user's name (`alice`, or
//! `alice+gateway` to pick one of several gateways), the password an API key of that user with
//! the `gateway:use` scope. The destination goes to policy as `context.domain`, `context.port` and
//! (when known before connecting) `context.dest_ip`.
//!
//! A name is decided first on its own (a denied name never becomes a DNS query); direct egress
//! then resolves it at the relay (through the operator's hosts file first) and decides again with
//! the address; the relay's egress rule (`sekisho_door::egress`) refuses addresses of
//! its own networks (loopback, private, link-local, …) before policy unless the operator allows
//! them, so a tenant cannot reach what sits next to the relay.

mod auth;
mod egress;
mod http;
mod socks5;

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use sekisho_audit::{Decision as AuditDecision, Event, EventKind, SubjectKind};
use sekisho_gate::{AccessPath, Attempt, AuthMethod, Denial, Destination, Resource, ServiceInfo, Subject, Verdict};
use sekisho_store::Service;
use sekisho_tunnel::pump::Totals;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use auth::AuthCache;
use auth::authenticate;
use egress::{direct, via_agent};
use http::{http_answer, http_handshake};
use socks5::{Reply, SocksError, Target};

use sekisho_door::egress::EgressError;
use sekisho_door::names::normalize_domain;
use sekisho_door::{DoorListener, FrontDoor, State};

/// The scope an API key needs to be a gateway password.
pub(crate) const GATEWAY_SCOPE: &str = "gateway:use";
/// The whole handshake (greeting, authentication, request) must arrive within this.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Room for the handshake: no SOCKS5 message is longer (a request with a 255-byte domain is 262
/// bytes), and each parser answers from the length fields it reads, so a partial message never grows.
const MAX_MESSAGE: usize = 600;

/// How the operator runs the gateway.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    pub listen: SocketAddr,
    /// A hosts file (`/etc/hosts` format) consulted before DNS for direct egress.
    pub hosts_file: Option<std::path::PathBuf>,
}

/// The running gateway's options and its own state.
pub(crate) struct Gateway {
    hosts: HashMap<String, Vec<IpAddr>>,
    /// Gateway passwords (API keys) verified recently.
    auth: AuthCache,
}

/// The gateway as a front door: its own listener.
pub struct GatewayDoor {
    state: Arc<State>,
    gateway: Arc<Gateway>,
    listener: DoorListener,
}

impl GatewayDoor {
    /// Reads the hosts file and binds the listener.
    pub fn bind(state: Arc<State>, config: &GatewayConfig) -> Result<Self, GatewayError> {
        let gateway = Arc::new(Gateway::new(config)?);
        let listener =
            DoorListener::bind(config.listen).map_err(|source| GatewayError::Listen { addr: config.listen, source })?;
        Ok(GatewayDoor { state, gateway, listener })
    }
}

impl FrontDoor for GatewayDoor {
    fn name(&self) -> &'static str {
        "socks"
    }

    fn local_addr(&self) -> Option<SocketAddr> {
        Some(self.listener.addr())
    }

    fn serve(self: Arc<Self>, shutdown: CancellationToken) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        let listener = self.listener.take();
        Box::pin(async move {
            if let Some(listener) = listener {
                run(self.state.clone(), self.gateway.clone(), listener, shutdown).await;
            }
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("cannot read hosts file `{path}`: {source}")]
    Hosts { path: String, source: std::io::Error },
    #[error("cannot listen on `{addr}`: {source}")]
    Listen { addr: SocketAddr, source: std::io::Error },
}

impl Gateway {
    pub(crate) fn new(config: &GatewayConfig) -> Result<Self, GatewayError> {
        let hosts = match &config.hosts_file {
            Some(path) => read_hosts(path)?,
            None => HashMap::new(),
        };
        Ok(Gateway { hosts, auth: AuthCache::default() })
    }
}

/// Reads `ADDRESS NAME…` lines; `#` starts a comment.
fn read_hosts(path: &Path) -> Result<HashMap<String, Vec<IpAddr>>, GatewayError> {
    let text = std::fs::read_to_string(path)
        .map_err(|source| GatewayError::Hosts { path: path.display().to_string(), source })?;
    let mut hosts: HashMap<String, Vec<IpAddr>> = HashMap::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or_default();
        let mut words = line.split_whitespace();
        let Some(Ok(ip)) = words.next().map(str::parse::<IpAddr>) else { continue };
        for name in words {
            hosts.entry(normalize_domain(name)).or_default().push(ip);
        }
    }
    Ok(hosts)
}

async fn run(state: Arc<State>, gateway: Arc<Gateway>, listener: TcpListener, shutdown: CancellationToken) {
    let limits = state.conn_limits("socks");
    loop {
        let (sock, peer) = tokio::select! {
            a = listener.accept() => match a {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "gateway accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = shutdown.cancelled() => return,
        };
        let Some(slot) = limits.admit(sekisho_door::credentials::canonical(peer.ip())) else { continue };
        let _ = sock.set_nodelay(true);
        let state = state.clone();
        let gateway = gateway.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            tokio::select! {
                () = serve(&state, &gateway, sock, peer) => {}
                () = shutdown.cancelled() => {}
            }
            drop(slot);
        });
    }
}

/// How the client asked: SOCKS5, or HTTP `CONNECT` on the same port (same credentials, same
/// decision); replies are written in the client's dialect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dialect {
    Socks,
    Http,
}

impl Dialect {
    /// The answer to a request: a SOCKS5 reply, or an HTTP status (with `why` as the body of a
    /// refusal, since an HTTP client can show it).
    fn reply(self, code: Reply, bound: Option<SocketAddr>, why: &str) -> Vec<u8> {
        match self {
            Dialect::Socks => socks5::reply(code, bound),
            Dialect::Http => {
                let status = match code {
                    Reply::Succeeded => return b"HTTP/1.1 200 Connection established\r\n\r\n".to_vec(),
                    Reply::NotAllowed => "403 Forbidden",
                    Reply::TtlExpired => "504 Gateway Timeout",
                    Reply::CommandNotSupported => "405 Method Not Allowed",
                    Reply::AddressTypeNotSupported => "400 Bad Request",
                    _ => "502 Bad Gateway",
                };
                http_answer(status, why, "")
            }
        }
    }
}

/// Who authenticated: the attempt every decision and refusal of this connection starts from.
struct Client {
    attempt: Attempt,
    /// The gateway picked with `user+gateway`, if any.
    gateway: Option<String>,
}

impl Client {
    fn tenant(&self) -> &str {
        &self.attempt.tenant
    }

    /// A refusal about `target` (empty when the request named none): `reason` starts with its code.
    fn refusal(&self, state: &State, target: &str, reason: String) -> Record {
        let code = reason.split(':').next().unwrap_or_default().to_owned();
        Record::Denial(state.gate.refuse(&self.attempt, target, &code, reason))
    }
}

/// What a refusal leaves in the audit log: a login event, the gate's denial of an access, or
/// nothing more than a count (unauthenticated noise, see `sekisho_door::noise`).
enum Record {
    Login(Box<Event>),
    Denial(Denial),
    Counted,
}

/// Why a handshake ended before a request was decided.
enum Ended {
    /// The client went away or stalled; nothing to record.
    Quietly(String),
    /// Already answered and recorded.
    Refused,
}

async fn serve(state: &Arc<State>, gateway: &Gateway, mut sock: TcpStream, peer: SocketAddr) {
    let ip = sekisho_door::credentials::canonical(peer.ip());
    let mut buf = BytesMut::with_capacity(MAX_MESSAGE);
    let started = tokio::time::timeout(HANDSHAKE_TIMEOUT, async {
        if sock.read_buf(&mut buf).await.map_err(|e| Ended::Quietly(e.to_string()))? == 0 {
            return Err(Ended::Quietly("closed the connection".into()));
        }
        if buf[0].is_ascii_uppercase() {
            http_handshake(state, &gateway.auth, &mut sock, &mut buf, ip).await.map(|(c, r)| (c, r, Dialect::Http))
        } else {
            handshake(state, &gateway.auth, &mut sock, &mut buf, ip).await.map(|(c, r)| (c, r, Dialect::Socks))
        }
    })
    .await;
    let (client, request, dialect) = match started {
        Ok(Ok(done)) => done,
        Ok(Err(Ended::Refused)) => return,
        Ok(Err(Ended::Quietly(why))) => {
            tracing::debug!(%peer, %why, "gateway client left during the handshake");
            return;
        }
        Err(_) => {
            tracing::debug!(%peer, "gateway handshake timed out");
            return;
        }
    };
    connect(state, gateway, sock, buf, client, request, dialect).await;
}

async fn read_message<T>(
    sock: &mut TcpStream,
    buf: &mut BytesMut,
    parse: fn(&[u8]) -> socks5::Parsed<T>,
) -> Result<Result<T, SocksError>, Ended> {
    loop {
        match parse(buf) {
            Ok(Some((message, n))) => {
                let _ = buf.split_to(n);
                return Ok(Ok(message));
            }
            Ok(None) => {}
            Err(e) => return Ok(Err(e)),
        }
        match sock.read_buf(buf).await {
            Ok(0) => return Err(Ended::Quietly("closed the connection".into())),
            Ok(_) => {}
            Err(e) => return Err(Ended::Quietly(e.to_string())),
        }
    }
}

/// Records a refusal before the client hears it (denials are durable), then answers.
async fn refuse(state: &State, sock: &mut TcpStream, answer: &[u8], record: Record) -> Ended {
    let recorded = match record {
        Record::Login(event) => state.auditor.record_durable(*event).await,
        Record::Denial(denial) => denial.record().await,
        Record::Counted => Ok(()),
    };
    if let Err(e) = recorded {
        tracing::error!(error = %e, "cannot record gateway refusal");
    }
    let _ = sock.write_all(answer).await;
    let _ = sock.shutdown().await;
    Ended::Refused
}

/// A refusal of a client not (yet) known to belong to a tenant: a login event, or an access
/// refusal (`reason` starts with its code) through the gate.
/// What an unknown client's refusal is about: its login, or an access it asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Anonymous {
    Login,
    Access,
}

fn anonymous(state: &State, kind: Anonymous, ip: IpAddr, reason: String) -> Record {
    let code = reason.split(':').next().unwrap_or_default().to_owned();
    if !state.noise.admit("socks", ip, &code) {
        return Record::Counted;
    }
    if kind == Anonymous::Login {
        return Record::Login(Box::new(
            Event::new("default", EventKind::Login, AuditDecision::Deny)
                .subject(SubjectKind::Anonymous, ip.to_string())
                .path("socks")
                .reason(reason)
                .auth("api_key")
                .source(ip, state.geo.country(ip)),
        ));
    }
    let topo = state.topology();
    let attempt = sekisho_door::decide::attempt(
        state,
        &topo,
        "default",
        AccessPath::Socks,
        AuthMethod::None,
        Subject::Visitor,
        ip,
    );
    Record::Denial(state.gate.refuse(&attempt, "", &code, reason))
}

async fn handshake(
    state: &State,
    cache: &AuthCache,
    sock: &mut TcpStream,
    buf: &mut BytesMut,
    ip: IpAddr,
) -> Result<(Client, socks5::Request), Ended> {
    let greeting = match read_message(sock, buf, socks5::parse_greeting).await? {
        Ok(g) => g,
        Err(e) => {
            state.limiter.failed(ip);
            let event = anonymous(state, Anonymous::Access, ip, format!("protocol_error: {e}"));
            return Err(refuse(state, sock, b"", event).await);
        }
    };
    if !greeting.methods.contains(&socks5::METHOD_USER_PASSWORD) {
        let reason = "no_acceptable_method: the gateway needs username/password authentication (RFC 1929); \
                      the password is an API key";
        let event = anonymous(state, Anonymous::Login, ip, reason.to_owned());
        return Err(refuse(state, sock, &[socks5::VERSION, socks5::METHOD_NONE_ACCEPTABLE], event).await);
    }
    sock.write_all(&[socks5::VERSION, socks5::METHOD_USER_PASSWORD])
        .await
        .map_err(|e| Ended::Quietly(e.to_string()))?;
    let credentials = match read_message(sock, buf, socks5::parse_credentials).await? {
        Ok(c) => c,
        Err(e) => {
            state.limiter.failed(ip);
            let event = anonymous(state, Anonymous::Login, ip, format!("protocol_error: {e}"));
            return Err(refuse(state, sock, &[socks5::AUTH_VERSION, 1], event).await);
        }
    };
    let client = match authenticate(state, cache, ip, &credentials).await {
        Ok(c) => c,
        Err(event) => {
            state.limiter.failed(ip);
            return Err(refuse(state, sock, &[socks5::AUTH_VERSION, 1], Record::Login(Box::new(event))).await);
        }
    };
    sock.write_all(&[socks5::AUTH_VERSION, 0]).await.map_err(|e| Ended::Quietly(e.to_string()))?;
    let request = match read_message(sock, buf, socks5::parse_request).await? {
        Ok(r) => r,
        Err(e) => {
            let reply = socks5::reply(e.reply().unwrap_or(Reply::GeneralFailure), None);
            let record = client.refusal(state, "", format!("protocol_error: {e}"));
            return Err(refuse(state, sock, &reply, record).await);
        }
    };
    if request.command != socks5::CMD_CONNECT {
        let name = match request.command {
            socks5::CMD_BIND => "BIND",
            socks5::CMD_UDP_ASSOCIATE => "UDP ASSOCIATE",
            _ => "unknown",
        };
        let why = format!("command_not_supported: {name} (command {}) is not offered; use CONNECT", request.command);
        let record = client.refusal(state, &request.target.to_string(), why);
        return Err(refuse(state, sock, &socks5::reply(Reply::CommandNotSupported, None), record).await);
    }
    Ok((client, request))
}

/// The tenant's gateway the client asked for, or its only one.
fn pick_gateway(state: &State, client: &Client) -> Result<Service, String> {
    let topo = state.topology();
    let gateways: Vec<&Service> =
        topo.services.values().filter(|s| s.tenant_id == client.tenant() && s.protocol == "socks").collect();
    match &client.gateway {
        Some(name) => gateways
            .iter()
            .find(|s| &s.name == name)
            .map(|s| (*s).clone())
            .ok_or_else(|| format!("no_gateway: there is no gateway `{name}`")),
        None => match gateways.as_slice() {
            [only] => Ok((*only).clone()),
            [] => Err("no_gateway: the tenant has no gateway (a service with target `socks`)".into()),
            _ => {
                let mut names: Vec<&str> = gateways.iter().map(|s| s.name.as_str()).collect();
                names.sort_unstable();
                Err(format!("no_gateway: choose one of {} with the username `user+gateway`", names.join(", ")))
            }
        },
    }
}

/// Where a direct connection may go: the addresses of the destination, resolved here (the
/// operator's hosts file first) and checked against the relay's egress rule.
async fn resolve(state: &State, gateway: &Gateway, target: &Target) -> Result<Vec<SocketAddr>, (Reply, String)> {
    let (host, port) = match target {
        Target::Ip(a) => (a.ip().to_string(), a.port()),
        Target::Domain(name, port) => (name.clone(), *port),
    };
    state.egress.resolve(&host, port, Some(&gateway.hosts)).await.map_err(|e| {
        let reply = match e {
            EgressError::Refused { .. } => Reply::NotAllowed,
            _ => Reply::HostUnreachable,
        };
        (reply, format!("{}: {e}", e.code()))
    })
}

async fn connect(
    state: &Arc<State>,
    gateway: &Gateway,
    mut sock: TcpStream,
    early: BytesMut,
    client: Client,
    request: socks5::Request,
    dialect: Dialect,
) {
    let target = request.target;
    let label = target.to_string();
    let svc = match pick_gateway(state, &client) {
        Ok(s) => s,
        Err(why) => {
            let record = client.refusal(state, &label, why.clone());
            refuse(state, &mut sock, &dialect.reply(Reply::NotAllowed, None, &why), record).await;
            return;
        }
    };
    let gateway_detail = format!("gateway {}", svc.name);
    let domain = match &target {
        Target::Domain(d, _) => d.clone(),
        Target::Ip(_) => String::new(),
    };
    let service = ServiceInfo { name: svc.name.clone(), protocol: svc.protocol.into() };
    // First on the name alone: a denied name is refused without a DNS query leaving the relay,
    // and is recorded as the policy denial it is. Allowed, it is resolved (direct egress) and
    // decided again with `context.dest_ip`; that second decision is the one that counts.
    if let Target::Domain(..) = &target {
        let by_name = Resource {
            service: service.clone(),
            destination: Some(Destination { domain: domain.clone(), ip: None, port: target.port() }),
        };
        match state.gate.decide(&client.attempt, &by_name) {
            Verdict::Permit(p) => p.withdraw(),
            Verdict::Deny(denial) => {
                let shown = denial.message();
                let record = Record::Denial(denial.detail(gateway_detail));
                refuse(state, &mut sock, &dialect.reply(Reply::NotAllowed, None, &shown), record).await;
                return;
            }
        }
    }
    let addrs = match svc.agent_id {
        Some(_) => Vec::new(),
        None => match resolve(state, gateway, &target).await {
            Ok(a) => a,
            Err((reply, why)) => {
                let Record::Denial(denial) = client.refusal(state, &label, why.clone()) else { return };
                let record = Record::Denial(denial.detail(gateway_detail));
                refuse(state, &mut sock, &dialect.reply(reply, None, &why), record).await;
                return;
            }
        },
    };
    let dest_ip = match &target {
        Target::Ip(a) => Some(a.ip()),
        Target::Domain(..) => addrs.first().map(SocketAddr::ip),
    };
    let resource = Resource { service, destination: Some(Destination { domain, ip: dest_ip, port: target.port() }) };
    let cancel = state.stream_scope(&svc.id);
    let permit = match state.gate.decide_within(&client.attempt, &resource, Some(&cancel)) {
        // On record as opened before anything is dialled or forwarded.
        Verdict::Permit(p) => p.open().await,
        Verdict::Deny(denial) => Err(denial),
    };
    let permit = match permit {
        Ok(p) => p,
        Err(denial) => {
            let shown = denial.message();
            let reply = if denial.code == "audit_unavailable" { Reply::GeneralFailure } else { Reply::NotAllowed };
            let record = Record::Denial(denial.detail(gateway_detail));
            refuse(state, &mut sock, &dialect.reply(reply, None, &shown), record).await;
            return;
        }
    };
    let started = Instant::now();
    let totals = Totals::default();
    let outcome = tokio::select! {
        r = async {
            match &svc.agent_id {
                None => direct(state, &mut sock, &addrs, early, &totals, dialect).await,
                Some(_) => via_agent(state, &svc, &mut sock, &target, early, &totals, dialect).await,
            }
        } => r,
        () = permit.revoked().cancelled() => Err("gateway removed by administrator, or access ended by a change".to_owned()),
    };
    let (up, down) = totals.get();
    let detail = match (&svc.agent_id, &outcome) {
        (None, Ok(from)) => format!("gateway {}, direct from {from}", svc.name),
        (Some(_), Ok(from)) => format!("gateway {}, egress via agent {from}", svc.name),
        (_, Err(e)) => format!("gateway {}; ended: {e}", svc.name),
    };
    permit.close(up, down, started.elapsed().as_millis() as u64, detail);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_files_map_names_to_addresses() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hosts");
        std::fs::write(&path, "# test\n127.0.0.1 Allowed.Test other.test # comment\n::1 allowed.test\nbad line\n")
            .unwrap();
        let hosts = read_hosts(&path).unwrap();
        assert_eq!(hosts["allowed.test"], ["127.0.0.1".parse::<IpAddr>().unwrap(), "::1".parse().unwrap()]);
        assert_eq!(hosts.len(), 2);
        assert!(read_hosts(&dir.path().join("missing")).is_err());
    }
}

/// Entry points for the fuzz targets (`crates/sekisho-fuzz`); not an interface to build on.
#[doc(hidden)]
pub mod fuzzing {
    use super::socks5::{Parsed, parse_credentials, parse_greeting, parse_request};

    /// Each SOCKS5 parser on `data` and on every prefix a slow client could have sent so far: an
    /// answer never claims more bytes than it was given, and a whole message stays whole when
    /// more bytes follow it.
    pub fn socks5(data: &[u8]) {
        fn check<T>(parsed: Parsed<T>, given: usize) -> Option<usize> {
            match parsed {
                Ok(Some((_, used))) => {
                    assert!(used > 0 && used <= given, "a parser used {used} of {given} bytes");
                    Some(used)
                }
                _ => None,
            }
        }
        let data = &data[..data.len().min(super::MAX_MESSAGE)];
        for end in 0..=data.len() {
            let d = &data[..end];
            let whole = (check(parse_greeting(d), end), check(parse_credentials(d), end), check(parse_request(d), end));
            if end == data.len() {
                continue;
            }
            let longer = &data[..end + 1];
            let (g, c, r) = whole;
            for (used, again) in [
                (g, check(parse_greeting(longer), end + 1)),
                (c, check(parse_credentials(longer), end + 1)),
                (r, check(parse_request(longer), end + 1)),
            ] {
                if let Some(used) = used {
                    assert_eq!(again, Some(used), "a whole message changed when a byte followed it");
                }
            }
        }
    }
}
