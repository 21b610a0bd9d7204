//! Front-side end-to-end sessions, one per back agent per relay connection, established on
//! first use by a Noise KK handshake over a dedicated stream and shared by every later stream.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use parking_lot::Mutex;
use sekisho_tunnel::e2e::{self, PairSession};
use sekisho_tunnel::identity::decode32;
use sekisho_tunnel::proto::{self, E2eOpen, OpenRoute, RouteConfig};
use tokio::sync::OnceCell;

use sekisho_tunnel::pump::BridgeError;
use sekisho_wire::{ResetCode, StreamError};

use crate::relay::Link;

/// Why a connection could not be served.
pub(crate) enum Failure {
    /// The relay, the back agent or the target refused or reset the stream.
    Reset(ResetCode, String),
    Other(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Reset(code, reason) => write!(f, "stream reset ({}): {reason}", code.name()),
            Failure::Other(reason) => f.write_str(reason),
        }
    }
}

impl From<BridgeError> for Failure {
    fn from(e: BridgeError) -> Self {
        match e {
            BridgeError::Stream(StreamError::Reset { code, reason }) => Failure::Reset(code, reason),
            other => Failure::Other(other.to_string()),
        }
    }
}

impl From<StreamError> for Failure {
    fn from(e: StreamError) -> Self {
        match e {
            StreamError::Reset { code, reason } => Failure::Reset(code, reason),
            other => Failure::Other(other.to_string()),
        }
    }
}

const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

pub(crate) struct Established {
    pub(crate) id: u64,
    pub(crate) session: Arc<PairSession>,
}

type Cell = Arc<OnceCell<Arc<Established>>>;

pub(crate) struct Pairs {
    secret: [u8; 32],
    map: Arc<Mutex<HashMap<(u64, String), Cell>>>,
}

impl Drop for Pairs {
    /// The agent's Noise secret is wiped with each copy of it.
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.secret);
    }
}

impl Pairs {
    pub(crate) fn new(secret: [u8; 32]) -> Self {
        Pairs { secret, map: Arc::new(Mutex::new(HashMap::new())) }
    }

    /// Forgets all sessions (the relay connection they lived on is gone).
    pub(crate) fn clear(&self) {
        self.map.lock().clear();
    }

    /// The session with the route's back agent, establishing it if needed. Concurrent callers
    /// share one handshake.
    pub(crate) async fn get(&self, link: &Link, route: &RouteConfig) -> Result<Arc<Established>, Failure> {
        let key = (link.generation, route.peer_agent.clone());
        let cell = {
            let mut map = self.map.lock();
            // A session that has handed out half its stream indices is replaced by a new one
            // (a new handshake); streams still open on it go on.
            if map.get(&key).and_then(|c| c.get()).is_some_and(|e| e.session.wants_rehandshake()) {
                map.remove(&key);
            }
            map.entry(key.clone()).or_default().clone()
        };
        if let Some(established) = cell.get() {
            return Ok(established.clone());
        }
        // Boxed: the handshake's future is large, and the future of every connection would
        // otherwise keep room for it while it forwards.
        let result = Box::pin(cell.get_or_try_init(|| self.establish(link, route, key.clone()))).await.cloned();
        if result.is_err() {
            let mut map = self.map.lock();
            if map.get(&key).is_some_and(|c| Arc::ptr_eq(c, &cell)) {
                map.remove(&key);
            }
        }
        result
    }

    async fn establish(
        &self,
        link: &Link,
        route: &RouteConfig,
        key: (u64, String),
    ) -> Result<Arc<Established>, Failure> {
        let peer = decode32(&route.peer_key).ok_or_else(|| Failure::Other("route has a malformed peer key".into()))?;
        let id: u64 = rand::random();
        let open = OpenRoute { route: route.id.clone(), e2e: Some(E2eOpen::Handshake { session: id }) };
        let stream = link.conn.open(proto::encode(&open)).map_err(|e| Failure::Other(e.to_string()))?;
        let (init, first) = e2e::initiate(&self.secret, &peer).map_err(|e| Failure::Other(e.to_string()))?;
        let exchange = async {
            stream.write_all(&e2e::frame_handshake(&first)).await?;
            let mut buf = BytesMut::new();
            loop {
                if let Some(reply) = e2e::take_handshake(&mut buf) {
                    return Ok::<_, Failure>(reply);
                }
                match stream.read_chunk().await {
                    Ok(Some(chunk)) => buf.extend_from_slice(&chunk),
                    Ok(None) => return Err(Failure::Other("relay or back agent closed the handshake".to_owned())),
                    Err(e) => return Err(e.into()),
                }
            }
        };
        let reply = tokio::time::timeout(HANDSHAKE_TIMEOUT, exchange)
            .await
            .map_err(|_| Failure::Other("end-to-end handshake timed out".to_owned()))??;
        let session =
            Arc::new(init.finish(&reply).map_err(|e| Failure::Other(format!("end-to-end handshake failed: {e}")))?);
        if session.keying() == e2e::Keying::Session {
            tracing::info!(peer = %route.peer_agent, "end-to-end session with an agent of an earlier version: one key for all streams (upgrade it)");
        } else {
            tracing::debug!(peer = %route.peer_agent, "end-to-end session established, a key per stream");
        }
        // The handshake stream anchors the session: when it ends, so does the session.
        let map = self.map.clone();
        tokio::spawn(async move {
            while let Ok(Some(_)) = stream.read_chunk().await {}
            // Only this session (or a cell not yet filled, most likely by this very handshake):
            // after a re-handshake the entry holds the newer session, which stays.
            let mut map = map.lock();
            if map.get(&key).is_some_and(|c| c.get().is_none_or(|e| e.id == id)) {
                map.remove(&key);
            }
        });
        Ok(Arc::new(Established { id, session }))
    }
}
