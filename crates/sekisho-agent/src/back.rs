//! The back role: streams from the relay go to the targets of this agent's services. Streams
//! from other agents must be sealed end to end; plain streams come only from the relay's edge.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use parking_lot::Mutex;
use sekisho_tunnel::MuxStream;
use sekisho_tunnel::dial;
use sekisho_tunnel::e2e::{self, PairSession};
use sekisho_tunnel::identity::decode32;
use sekisho_tunnel::proto::{E2eOpen, OpenService, ServiceConfig};
use sekisho_tunnel::pump::{Seal, Totals, abort, bridge};
use sekisho_wire::ResetCode;
use tokio::sync::watch;

const TARGET_TIMEOUT: Duration = Duration::from_secs(10);
const CONFIG_GRACE: Duration = Duration::from_secs(2);

/// End-to-end sessions by (front agent id, session id).
type Sessions = Mutex<HashMap<(String, u64), Arc<PairSession>>>;

pub(crate) struct Back {
    secret: [u8; 32],
    services: watch::Sender<Arc<HashMap<String, ServiceConfig>>>,
    sessions: Sessions,
}

impl Drop for Back {
    /// The agent's Noise secret is wiped with each copy of it.
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.secret);
    }
}

impl Back {
    pub(crate) fn new(secret: [u8; 32]) -> Self {
        Back { secret, services: watch::Sender::new(Arc::default()), sessions: Mutex::new(HashMap::new()) }
    }

    pub(crate) fn set_services(&self, services: &[ServiceConfig]) {
        self.services.send_replace(Arc::new(services.iter().map(|s| (s.id.clone(), s.clone())).collect()));
    }

    pub(crate) async fn serve(&self, stream: MuxStream, payload: Bytes) {
        let req: OpenService = match serde_json::from_slice(&payload) {
            Ok(r) => r,
            Err(e) => {
                return stream.reset(ResetCode::PROTOCOL, &format!("malformed open request: {e}"));
            }
        };
        let Some(svc) = self.service(&req.service).await else {
            return stream.reset(ResetCode::REFUSED, &format!("service `{}` is not served by this agent", req.service));
        };
        if svc.protocol == "socks" || req.dest.is_some() {
            // Boxed, like the handshake: rarer paths that would otherwise size every stream's future.
            return Box::pin(egress(&svc, stream, &req)).await;
        }
        let seal = match (&req.from_agent, req.e2e) {
            (None, None) => Seal::Plain,
            (Some(from), Some(E2eOpen::Handshake { session })) => {
                return Box::pin(self.handshake(stream, from.clone(), req.from_key.as_deref(), session)).await;
            }
            (Some(from), Some(E2eOpen::Stream { session, index })) => {
                let s = self.sessions.lock().get(&(from.clone(), session)).cloned();
                let Some(s) = s else {
                    return stream.reset(ResetCode::CRYPTO, "unknown end-to-end session; handshake again");
                };
                if let Err(e) = s.accept_index(index) {
                    tracing::warn!(%from, error = %e, "refusing replayed stream");
                    return stream.reset(ResetCode::CRYPTO, &e.to_string());
                }
                match s.stream(index, &svc.name) {
                    Ok((sealer, opener)) => Seal::Sealed(sealer, opener),
                    Err(e) => return stream.reset(ResetCode::CRYPTO, &e.to_string()),
                }
            }
            (Some(_), None) => {
                return stream.reset(ResetCode::CRYPTO, "agent streams must be end-to-end encrypted");
            }
            (None, Some(_)) => {
                return stream.reset(ResetCode::PROTOCOL, "end-to-end stream without a sending agent");
            }
        };
        let addr = target_addr(&svc.target);
        let mut tcp = match dial::connect(addr, None, TARGET_TIMEOUT).await {
            Ok(t) => t,
            Err(e) => {
                tracing::info!(service = %svc.name, error = %e, "target unreachable");
                return stream.reset(ResetCode::TARGET_UNREACHABLE, &format!("service `{}`: {e}", svc.name));
            }
        };
        let totals = Totals::default();
        if let Err(e) = bridge(&mut tcp, stream, seal, &totals).await {
            abort(&tcp);
            tracing::debug!(service = %svc.name, error = %e, "stream ended with an error");
        }
    }

    /// The service with this id. A stream may arrive just before the configuration naming its
    /// service (the relay pushes both at once, but over different connections), so an unknown
    /// id gets a short grace period before it is refused.
    async fn service(&self, id: &str) -> Option<ServiceConfig> {
        let mut rx = self.services.subscribe();
        let found = tokio::time::timeout(CONFIG_GRACE, rx.wait_for(|m| m.contains_key(id))).await;
        found.ok()?.ok()?.get(id).cloned()
    }

    async fn handshake(&self, stream: MuxStream, from: String, from_key: Option<&str>, session: u64) {
        let Some(peer) = from_key.and_then(decode32) else {
            return stream.reset(ResetCode::CRYPTO, "missing sender key for the end-to-end handshake");
        };
        let read_first = async {
            let mut buf = BytesMut::new();
            loop {
                if let Some(m) = e2e::take_handshake(&mut buf) {
                    return Some(m);
                }
                match stream.read_chunk().await {
                    Ok(Some(c)) => buf.extend_from_slice(&c),
                    _ => return None,
                }
            }
        };
        let Ok(Some(first)) = tokio::time::timeout(TARGET_TIMEOUT, read_first).await else {
            return stream.reset(ResetCode::CRYPTO, "no end-to-end handshake received");
        };
        let (pair, reply) = match e2e::respond(&self.secret, &peer, &first) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(%from, error = %e, "end-to-end handshake failed");
                return stream.reset(ResetCode::CRYPTO, &format!("end-to-end handshake failed: {e}"));
            }
        };
        if pair.keying() == e2e::Keying::Session {
            tracing::info!(%from, "end-to-end session with an agent of an earlier version: one key for all streams (upgrade it)");
        } else {
            tracing::debug!(%from, "end-to-end session established, a key per stream");
        }
        let key = (from, session);
        let pair = Arc::new(pair);
        self.sessions.lock().insert(key.clone(), pair.clone());
        if stream.write_all(&e2e::frame_handshake(&reply)).await.is_ok() {
            // Hold the session while the handshake stream lives.
            while let Ok(Some(_)) = stream.read_chunk().await {}
        }
        // Only this handshake's session: a newer handshake under the same id replaced it, and
        // its streams must not lose their keys when this older stream ends.
        let mut sessions = self.sessions.lock();
        if sessions.get(&key).is_some_and(|s| Arc::ptr_eq(s, &pair)) {
            sessions.remove(&key);
        }
    }
}

/// A gateway stream: the relay decided the connection and names the destination; dial it here
/// (so it leaves with this site's address) and answer with one status byte before any data:
/// 0 when connected, else the SOCKS5 reply code for the failure.
async fn egress(svc: &ServiceConfig, stream: MuxStream, req: &OpenService) {
    let dest = match (svc.protocol.as_str(), &req.dest, &req.from_agent, req.e2e) {
        ("socks", Some(dest), None, None) => dest,
        ("socks", _, _, _) => {
            return stream.reset(ResetCode::REFUSED, "gateway streams come only from the relay, with a destination");
        }
        _ => return stream.reset(ResetCode::REFUSED, &format!("service `{}` is not a gateway", svc.name)),
    };
    let mut tcp = match dial::connect(dest, None, TARGET_TIMEOUT).await {
        Ok(t) => t,
        Err(e) => {
            tracing::info!(gateway = %svc.name, %dest, error = %e, "egress destination unreachable");
            let code = match &e {
                dial::DialError::Connect { source, .. } => match source.kind() {
                    std::io::ErrorKind::ConnectionRefused => 5,
                    std::io::ErrorKind::TimedOut => 6,
                    std::io::ErrorKind::NetworkUnreachable => 3,
                    _ => 4,
                },
                dial::DialError::Timeout(_) => 6,
                _ => 4,
            };
            // Finished before it is dropped, the status byte reaches the relay even though the
            // drop then tells the relay this side stops reading.
            let _ = stream.write_all(&[code]).await;
            let _ = stream.finish();
            return;
        }
    };
    if stream.write_all(&[0]).await.is_err() {
        return;
    }
    let totals = Totals::default();
    if let Err(e) = bridge(&mut tcp, stream, Seal::Plain, &totals).await {
        abort(&tcp);
        tracing::debug!(gateway = %svc.name, error = %e, "egress stream ended with an error");
    }
}

/// `tcp://host:port` or `http://host:port/` → `host:port`.
fn target_addr(target: &str) -> &str {
    let rest = target.split_once("://").map_or(target, |(_, r)| r);
    rest.trim_end_matches('/')
}
