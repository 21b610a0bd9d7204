//! The agent's links to its relays: for each relay, dial (through a proxy if set), TLS with the
//! pinned CA, hello, then serve until the connection ends, and again after a jittered backoff.
//!
//! An agent may be given several relays of one cluster (relays sharing one database): it keeps a
//! link to each, serves streams from all of them, and takes its configuration and opens its own
//! streams through the first relay in its list that is connected ([`Links`]). When that relay
//! goes, the next one's link and configuration take over at once.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;

use rustls::pki_types::ServerName;
use sekisho_tunnel::conn::Heartbeat;
use sekisho_tunnel::dial::{self, Backoff};
use sekisho_tunnel::identity::{EXPORTER_LABEL, EnrollmentToken};
use sekisho_tunnel::proto::{self, AgentConfig, Hello, RelayMsg};
use sekisho_tunnel::tls::{self, Pin};
use sekisho_tunnel::{AGENT_ALPNS, Connection};
use sekisho_wire::{Config, Side};
use tokio::sync::watch;
use tokio_rustls::TlsConnector;
use tokio_util::sync::CancellationToken;
use zeroize::Zeroize;

use crate::back::Back;
use crate::front::Front;
use crate::pairs::Pairs;
use crate::relay::{Link, RouteReports, report};
use crate::state::{AgentState, Enrollment};
use crate::{AgentError, AgentEvent, AgentOptions, Events};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

enum Failure {
    Retry(String),
    Fatal(AgentError),
}

/// One relay's link and the configuration it last sent.
#[derive(Default)]
struct Slot {
    link: Option<Link>,
    config: Option<AgentConfig>,
}

/// The links to every relay; the first connected one (in the order given) is the active one.
pub(crate) struct Links {
    slots: Mutex<Vec<Slot>>,
    active: watch::Sender<Option<Link>>,
    /// The (link generation, configuration) the front and back roles run with now.
    applied: tokio::sync::Mutex<Option<(u64, AgentConfig)>>,
}

impl Links {
    fn new(relays: usize) -> (Arc<Links>, watch::Receiver<Option<Link>>) {
        let (active, rx) = watch::channel(None);
        let slots = Mutex::new((0..relays).map(|_| Slot::default()).collect());
        (Arc::new(Links { slots, active, applied: tokio::sync::Mutex::new(None) }), rx)
    }

    fn set_link(&self, relay: usize, link: Option<Link>) {
        let mut slots = self.slots.lock();
        slots[relay] = Slot { link, config: None };
    }

    fn set_config(&self, relay: usize, config: AgentConfig) {
        self.slots.lock()[relay].config = Some(config);
    }

    /// Makes the active link's configuration the one the agent runs with.
    async fn sync(&self, front: &Front, back: &Back) {
        let mut applied = self.applied.lock().await;
        let active = {
            let slots = self.slots.lock();
            slots.iter().find_map(|s| Some((s.link.clone()?, s.config.clone()?)))
        };
        self.active.send_replace(active.as_ref().map(|(l, _)| l.clone()));
        let Some((link, config)) = active else { return };
        if applied.as_ref().is_some_and(|(g, c)| *g == link.generation && *c == config) {
            return;
        }
        tracing::info!(routes = config.routes.len(), services = config.services.len(), "configuration applied");
        back.set_services(&config.services);
        front.apply(config.routes.clone()).await;
        *applied = Some((link.generation, config));
    }
}

impl RouteReports for Links {
    fn report(&self, route_id: &str, bound: Option<String>, error: Option<String>) {
        for slot in self.slots.lock().iter() {
            if let Some(l) = &slot.link {
                report(&l.conn, route_id, bound.clone(), error.clone());
            }
        }
    }
}

/// What the links of one agent share.
struct Shared {
    opts: AgentOptions,
    state: Mutex<AgentState>,
    /// Set once the agent is enrolled (the first relay enrolls it; the others wait for that).
    enrolled: watch::Sender<bool>,
    links: Arc<Links>,
    front: Front,
    back: Arc<Back>,
    pairs: Arc<Pairs>,
    events: Events,
    shutdown: CancellationToken,
    generation: AtomicU64,
}

/// The relays to keep links to: `--relay` (comma-separated), else the ones stored at enrollment.
fn relays(given: &str, stored: Option<&str>) -> Vec<String> {
    let list = if given.trim().is_empty() { stored.unwrap_or_default() } else { given };
    let mut out: Vec<String> = Vec::new();
    for r in list.split(',').map(str::trim).filter(|r| !r.is_empty()) {
        // Two links to one relay would replace each other there forever.
        if !out.iter().any(|o| o == r) {
            out.push(r.to_owned());
        }
    }
    out
}

/// Runs the agent until `shutdown` or a fatal error.
pub async fn run(opts: AgentOptions, events: Events, shutdown: CancellationToken) -> Result<(), AgentError> {
    let state = AgentState::load(&opts.state_dir)?;
    let token = match (&state.enrollment, &opts.token) {
        (Some(e), Some(_)) => {
            tracing::info!(agent_id = %e.agent_id, "already enrolled; ignoring --token");
            None
        }
        (Some(_), None) => None,
        (None, Some(t)) => Some(EnrollmentToken::parse(t).ok_or(AgentError::BadToken)?),
        (None, None) => return Err(AgentError::NotEnrolled),
    };
    let relays = relays(&opts.relay, state.enrollment.as_ref().map(|e| e.relay.as_str()));
    if relays.is_empty() {
        return Err(AgentError::Refused {
            code: "no_relay".into(),
            message: "no relay address: pass --relay HOST:PORT".into(),
        });
    }
    let (links, link_rx) = Links::new(relays.len());
    let pairs = Arc::new(Pairs::new(*state.keys.noise_secret()));
    let front = Front::new(link_rx, links.clone(), pairs.clone(), events.clone(), shutdown.clone());
    let back = Arc::new(Back::new(*state.keys.noise_secret()));
    let shared = Arc::new(Shared {
        opts,
        enrolled: watch::Sender::new(state.enrollment.is_some()),
        state: Mutex::new(state),
        links,
        front,
        back,
        pairs,
        events,
        shutdown: shutdown.clone(),
        generation: AtomicU64::new(0),
    });
    let mut tasks = tokio::task::JoinSet::new();
    for (i, relay) in relays.into_iter().enumerate() {
        let token = if i == 0 { token.clone() } else { None };
        tasks.spawn(keep_link(shared.clone(), i, relay, token));
    }
    // A fatal error on any link (revoked, refused enrollment) stops the agent.
    while let Some(done) = tasks.join_next().await {
        if let Ok(Err(fatal)) = done {
            shutdown.cancel();
            return Err(fatal);
        }
    }
    Ok(())
}

/// Keeps the link to relay number `index` up until shutdown or a fatal error.
async fn keep_link(
    sh: Arc<Shared>,
    index: usize,
    relay: String,
    mut token: Option<EnrollmentToken>,
) -> Result<(), AgentError> {
    if token.is_none() {
        let mut enrolled = sh.enrolled.subscribe();
        tokio::select! {
            _ = enrolled.wait_for(|e| *e) => {}
            () = sh.shutdown.cancelled() => return Ok(()),
        }
    }
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(5));
    loop {
        let generation = sh.generation.fetch_add(1, Ordering::Relaxed) + 1;
        let attempt = tokio::select! {
            r = connect(&sh, &relay, token.as_ref()) => r,
            () = sh.shutdown.cancelled() => return Ok(()),
        };
        let reason = match attempt {
            Ok((conn, connected)) => {
                token = None;
                backoff.reset();
                sh.pairs.clear();
                sh.links.set_link(index, Some(Link { conn: conn.clone(), generation }));
                let reason = serve(&sh, index, &conn, connected).await;
                sh.links.set_link(index, None);
                sh.links.sync(&sh.front, &sh.back).await;
                if sh.shutdown.is_cancelled() {
                    conn.close("agent shutting down");
                    return Ok(());
                }
                reason?
            }
            Err(Failure::Fatal(e)) => return Err(e),
            Err(Failure::Retry(reason)) => reason,
        };
        let delay = backoff.next_delay();
        tracing::warn!(%relay, %reason, retry_in_ms = delay.as_millis() as u64, "relay connection lost");
        let retry_in_ms = delay.as_millis() as u64;
        let _ = sh.events.send(AgentEvent::Disconnected { relay: relay.clone(), reason, retry_in_ms });
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = sh.shutdown.cancelled() => return Ok(()),
        }
    }
}

fn host_of(relay: &str) -> &str {
    let host = relay.rsplit_once(':').map_or(relay, |(h, _)| h);
    host.trim_start_matches('[').trim_end_matches(']')
}

async fn connect(
    sh: &Shared,
    relay: &str,
    token: Option<&EnrollmentToken>,
) -> Result<(Connection, AgentEvent), Failure> {
    let enrollment = sh.state.lock().enrollment.clone();
    let pin = match (&enrollment, token) {
        (Some(e), _) => Pin::Ca(tls::first_cert(&e.ca_pem).ok_or_else(|| {
            Failure::Fatal(AgentError::State(crate::state::StateError::Corrupt("agent.json".into())))
        })?),
        (None, Some(t)) => Pin::Fingerprint(t.ca_fingerprint),
        (None, None) => return Err(Failure::Fatal(AgentError::NotEnrolled)),
    };
    let alpn = AGENT_ALPNS.iter().map(|a| a.to_vec()).collect();
    let config = tls::client_config(pin, alpn).map_err(|e| Failure::Retry(e.to_string()))?;
    let tcp = dial::connect(relay, sh.opts.proxy.as_ref(), CONNECT_TIMEOUT)
        .await
        .map_err(|e| Failure::Retry(e.to_string()))?;
    let server_name = ServerName::try_from(host_of(relay).to_owned()).map_err(|_| {
        Failure::Fatal(AgentError::Refused {
            code: "bad_address".into(),
            message: format!("`{relay}` is not a valid host:port"),
        })
    })?;
    let tls_stream = tokio::time::timeout(CONNECT_TIMEOUT, TlsConnector::from(config).connect(server_name, tcp))
        .await
        .map_err(|_| Failure::Retry(format!("TLS handshake with `{relay}` timed out")))?
        .map_err(|e| Failure::Retry(explain_tls(relay, &e)))?;
    let session = tls_stream.get_ref().1;
    let mut exporter = [0u8; 32];
    session.export_keying_material(&mut exporter, EXPORTER_LABEL, None).map_err(|e| Failure::Retry(e.to_string()))?;
    let ca_pem = session.peer_certificates().and_then(|c| c.last()).map(|c| pem_of(c.as_ref()));
    let link = tokio::time::timeout(CONNECT_TIMEOUT, sekisho_tunnel::Link::client(tls_stream))
        .await
        .map_err(|_| Failure::Retry(format!("`{relay}` did not open the agent link")))?
        .map_err(|e| Failure::Retry(format!("agent link with `{relay}`: {e}")))?;
    let (conn, driver) = Connection::new(link, Side::Client, Config::default(), Heartbeat::default());
    tokio::spawn(driver);

    let version = env!("CARGO_PKG_VERSION").to_owned();
    let hostname = std::fs::read_to_string("/etc/hostname").map(|h| h.trim().to_owned()).unwrap_or_default();
    let (signature, sign_pub, noise_pub) = {
        let state = sh.state.lock();
        (hex::encode(state.keys.sign(&exporter)), state.keys.sign_public(), state.keys.noise_public())
    };
    exporter.zeroize();
    let hello = match (&enrollment, token) {
        (Some(e), _) => Hello::Login { agent_id: e.agent_id.clone(), version, hostname, signature },
        (None, Some(t)) => Hello::Enroll {
            token: EnrollmentToken::format(&t.secret, &t.ca_fingerprint),
            version,
            hostname,
            sign_pub: hex::encode(sign_pub),
            noise_pub: hex::encode(noise_pub),
            signature,
        },
        (None, None) => return Err(Failure::Fatal(AgentError::NotEnrolled)),
    };
    conn.send_control(proto::encode(&hello)).map_err(|e| Failure::Retry(e.to_string()))?;
    let reply = tokio::time::timeout(CONNECT_TIMEOUT, conn.recv_control())
        .await
        .map_err(|_| Failure::Retry("relay did not answer the hello".into()))?
        .ok_or_else(|| {
            Failure::Retry(format!("relay closed the connection: {}", conn.closed_reason().unwrap_or_default()))
        })?;
    match serde_json::from_slice::<RelayMsg>(&reply) {
        Ok(RelayMsg::Welcome { agent_id, name, role }) => {
            if enrollment.is_none() {
                let ca_pem = ca_pem.ok_or_else(|| Failure::Retry("relay sent no certificate chain".into()))?;
                // Every relay given is remembered, so a restart without --relay keeps them all.
                let relay = if sh.opts.relay.trim().is_empty() { relay.to_owned() } else { sh.opts.relay.clone() };
                sh.state
                    .lock()
                    .save_enrollment(Enrollment { agent_id: agent_id.clone(), name: name.clone(), relay, ca_pem })
                    .map_err(|e| Failure::Fatal(e.into()))?;
                sh.enrolled.send_replace(true);
                let _ = sh.events.send(AgentEvent::Enrolled { agent_id: agent_id.clone(), name: name.clone() });
            }
            let aead = sekisho_tunnel::aead::Backend::current().name();
            tracing::info!(%agent_id, %name, %role, %relay, aead, "connected to relay");
            Ok((conn, AgentEvent::Connected { agent_id, name, role, relay: relay.to_owned() }))
        }
        Ok(RelayMsg::Error { code, message }) => {
            conn.close("refused");
            if code.starts_with("token_") || ["revoked", "unknown_agent", "bad_signature"].contains(&code.as_str()) {
                Err(Failure::Fatal(AgentError::Refused { code, message }))
            } else {
                Err(Failure::Retry(format!("relay refused ({code}): {message}")))
            }
        }
        _ => Err(Failure::Retry("relay sent an unexpected first message".into())),
    }
}

fn explain_tls(relay: &str, e: &std::io::Error) -> String {
    let text = e.to_string();
    if text.contains("NoApplicationProtocol") {
        format!(
            "`{relay}` does not speak the Sekisho agent protocol (it refused ALPN `sekisho/1`); is it a Sekisho relay?"
        )
    } else if text.contains("CA named by the enrollment token")
        || text.contains("UnknownIssuer")
        || text.contains("BadSignature")
    {
        format!("`{relay}` is not the relay this agent trusts: {text}")
    } else {
        format!("TLS with `{relay}` failed: {text}")
    }
}

fn pem_of(der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

/// Serves one connection: configuration from the relay, and streams for the back role.
async fn serve(sh: &Shared, index: usize, conn: &Connection, connected: AgentEvent) -> Result<String, AgentError> {
    let (front, back, shutdown, events) = (&sh.front, &sh.back, &sh.shutdown, &sh.events);
    front.report_all(conn);
    // Announce the connection once the first configuration is in place: from then on the agent
    // serves its services and routes.
    let mut connected = Some(connected);
    loop {
        tokio::select! {
            accepted = conn.accept() => {
                let Some((stream, payload)) = accepted else { break };
                let back = back.clone();
                tokio::spawn(async move { back.serve(stream, payload).await });
            }
            msg = conn.recv_control() => {
                let Some(msg) = msg else { break };
                match serde_json::from_slice::<RelayMsg>(&msg) {
                    Ok(RelayMsg::Config(config)) => {
                        tracing::debug!(routes = config.routes.len(), services = config.services.len(), "configuration received");
                        sh.links.set_config(index, config);
                        sh.links.sync(front, back).await;
                        if let Some(event) = connected.take() {
                            let _ = events.send(event);
                        }
                    }
                    Ok(RelayMsg::Error { code, message }) if code == "revoked" => {
                        return Err(AgentError::Refused { code, message });
                    }
                    Ok(other) => tracing::info!(?other, "unexpected control message"),
                    Err(e) => tracing::warn!(error = %e, "malformed control message from relay"),
                }
            }
            () = shutdown.cancelled() => return Ok("shutdown".into()),
        }
    }
    Ok(conn.closed().await)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relays_come_from_the_flag_or_the_enrollment_once_each() {
        assert_eq!(relays(" a:1, b:2 ,a:1,,", Some("c:3")), ["a:1", "b:2"]);
        assert_eq!(relays("", Some("c:3,d:4")), ["c:3", "d:4"]);
        assert!(relays(" ", None).is_empty());
    }
}
