//! The agent's link to the relay: dial (through a proxy if set), TLS with the pinned CA, hello,
//! then serve until the connection ends, and again after a jittered backoff.

use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use sekisho_tunnel::conn::Heartbeat;
use sekisho_tunnel::dial::{self, Backoff};
use sekisho_tunnel::identity::{EXPORTER_LABEL, EnrollmentToken};
use sekisho_tunnel::proto::{self, AgentMsg, Hello, RelayMsg};
use sekisho_tunnel::tls::{self, Pin};
use sekisho_tunnel::{AGENT_ALPN, Connection};
use sekisho_wire::{Config, Side};
use tokio::sync::watch;
use tokio_rustls::TlsConnector;
use tokio_util::sync::CancellationToken;

use crate::back::Back;
use crate::front::Front;
use crate::pairs::Pairs;
use crate::state::{AgentState, Enrollment};
use crate::{AgentError, AgentEvent, AgentOptions, Events};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The current relay connection, shared with the front listeners.
#[derive(Clone)]
pub(crate) struct Link {
    pub(crate) conn: Connection,
    pub(crate) generation: u64,
}

enum Failure {
    Retry(String),
    Fatal(AgentError),
}

/// Runs the agent until `shutdown` or a fatal error.
pub async fn run(opts: AgentOptions, events: Events, shutdown: CancellationToken) -> Result<(), AgentError> {
    let mut state = AgentState::load(&opts.state_dir)?;
    let token = match (&state.enrollment, &opts.token) {
        (Some(e), Some(_)) => {
            tracing::info!(agent_id = %e.agent_id, "already enrolled; ignoring --token");
            None
        }
        (Some(_), None) => None,
        (None, Some(t)) => Some(EnrollmentToken::parse(t).ok_or(AgentError::BadToken)?),
        (None, None) => return Err(AgentError::NotEnrolled),
    };
    let (link_tx, link_rx) = watch::channel::<Option<Link>>(None);
    let pairs = Arc::new(Pairs::new(*state.keys.noise_secret()));
    let front = Front::new(link_rx, pairs.clone(), events.clone(), shutdown.clone());
    let back = Arc::new(Back::new(*state.keys.noise_secret()));
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(5));
    let mut token = token;
    let mut generation = 0u64;
    loop {
        generation += 1;
        let attempt = tokio::select! {
            r = connect(&opts, &mut state, token.as_ref(), &events) => r,
            () = shutdown.cancelled() => return Ok(()),
        };
        let reason = match attempt {
            Ok((conn, connected)) => {
                token = None;
                backoff.reset();
                pairs.clear();
                link_tx.send_replace(Some(Link { conn: conn.clone(), generation }));
                let reason = serve(&conn, &front, &back, &shutdown, connected, &events).await;
                link_tx.send_replace(None);
                if shutdown.is_cancelled() {
                    conn.close("agent shutting down");
                    return Ok(());
                }
                match reason {
                    Err(fatal) => return Err(fatal),
                    Ok(reason) => reason,
                }
            }
            Err(Failure::Fatal(e)) => return Err(e),
            Err(Failure::Retry(reason)) => reason,
        };
        let delay = backoff.next_delay();
        tracing::warn!(%reason, retry_in_ms = delay.as_millis() as u64, "relay connection lost");
        let _ = events.send(AgentEvent::Disconnected { reason, retry_in_ms: delay.as_millis() as u64 });
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = shutdown.cancelled() => return Ok(()),
        }
    }
}

fn host_of(relay: &str) -> &str {
    let host = relay.rsplit_once(':').map_or(relay, |(h, _)| h);
    host.trim_start_matches('[').trim_end_matches(']')
}

async fn connect(
    opts: &AgentOptions,
    state: &mut AgentState,
    token: Option<&EnrollmentToken>,
    events: &Events,
) -> Result<(Connection, AgentEvent), Failure> {
    let relay = state
        .enrollment
        .as_ref()
        .map_or(opts.relay.clone(), |e| if opts.relay.is_empty() { e.relay.clone() } else { opts.relay.clone() });
    let pin = match (&state.enrollment, token) {
        (Some(e), _) => Pin::Ca(tls::first_cert(&e.ca_pem).ok_or_else(|| {
            Failure::Fatal(AgentError::State(crate::state::StateError::Corrupt("agent.json".into())))
        })?),
        (None, Some(t)) => Pin::Fingerprint(t.ca_fingerprint),
        (None, None) => return Err(Failure::Fatal(AgentError::NotEnrolled)),
    };
    let config = tls::client_config(pin, vec![AGENT_ALPN.to_vec()]).map_err(|e| Failure::Retry(e.to_string()))?;
    let tcp =
        dial::connect(&relay, opts.proxy.as_ref(), CONNECT_TIMEOUT).await.map_err(|e| Failure::Retry(e.to_string()))?;
    let server_name = ServerName::try_from(host_of(&relay).to_owned()).map_err(|_| {
        Failure::Fatal(AgentError::Refused {
            code: "bad_address".into(),
            message: format!("`{relay}` is not a valid host:port"),
        })
    })?;
    let tls_stream = tokio::time::timeout(CONNECT_TIMEOUT, TlsConnector::from(config).connect(server_name, tcp))
        .await
        .map_err(|_| Failure::Retry(format!("TLS handshake with `{relay}` timed out")))?
        .map_err(|e| Failure::Retry(explain_tls(&relay, &e)))?;
    let session = tls_stream.get_ref().1;
    let mut exporter = [0u8; 32];
    session.export_keying_material(&mut exporter, EXPORTER_LABEL, None).map_err(|e| Failure::Retry(e.to_string()))?;
    let ca_pem = session.peer_certificates().and_then(|c| c.last()).map(|c| pem_of(c.as_ref()));
    let (conn, driver) = Connection::new(tls_stream, Side::Client, Config::default(), Heartbeat::default());
    tokio::spawn(driver);

    let version = env!("CARGO_PKG_VERSION").to_owned();
    let hostname = std::fs::read_to_string("/etc/hostname").map(|h| h.trim().to_owned()).unwrap_or_default();
    let signature = hex::encode(state.keys.sign(&exporter));
    let hello = match (&state.enrollment, token) {
        (Some(e), _) => Hello::Login { agent_id: e.agent_id.clone(), version, hostname, signature },
        (None, Some(t)) => Hello::Enroll {
            token: EnrollmentToken::format(&t.secret, &t.ca_fingerprint),
            version,
            hostname,
            sign_pub: hex::encode(state.keys.sign_public()),
            noise_pub: hex::encode(state.keys.noise_public()),
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
            if state.enrollment.is_none() {
                let ca_pem = ca_pem.ok_or_else(|| Failure::Retry("relay sent no certificate chain".into()))?;
                state
                    .save_enrollment(Enrollment {
                        agent_id: agent_id.clone(),
                        name: name.clone(),
                        relay: relay.clone(),
                        ca_pem,
                    })
                    .map_err(|e| Failure::Fatal(e.into()))?;
                let _ = events.send(AgentEvent::Enrolled { agent_id: agent_id.clone(), name: name.clone() });
            }
            tracing::info!(%agent_id, %name, %role, "connected to relay");
            Ok((conn, AgentEvent::Connected { agent_id, name, role }))
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
async fn serve(
    conn: &Connection,
    front: &Front,
    back: &Arc<Back>,
    shutdown: &CancellationToken,
    connected: AgentEvent,
    events: &Events,
) -> Result<String, AgentError> {
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
                        tracing::info!(routes = config.routes.len(), services = config.services.len(), "configuration received");
                        back.set_services(&config.services);
                        front.apply(conn, config.routes).await;
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

/// Tells the relay about a route listener.
pub(crate) fn report(conn: &Connection, route_id: &str, bound: Option<String>, error: Option<String>) {
    let _ = conn.send_control(proto::encode(&AgentMsg::RouteStatus { route_id: route_id.to_owned(), bound, error }));
}
