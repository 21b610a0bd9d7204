//! The relay's shared state and the one place configuration changes take effect.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use sekisho_store::{EnrollmentToken, NewEvent, Store, StoreError, now_ms};
use sekisho_tunnel::identity;
use sekisho_tunnel::pump::Tap;
use tokio_util::sync::CancellationToken;

use crate::hub::Hub;
use crate::secrets::{hash_secret, new_id, random_secret};
use crate::topology::Topology;

/// What a front agent last reported about one route's listener.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub(crate) struct RouteStatus {
    pub(crate) bound: Option<String>,
    pub(crate) error: Option<String>,
}

pub(crate) struct State {
    pub(crate) store: Store,
    pub(crate) hub: Hub,
    pub(crate) ca_fingerprint: String,
    pub(crate) public_addr: String,
    pub(crate) tap: Option<Tap>,
    pub(crate) shutdown: CancellationToken,
    topology: RwLock<Arc<Topology>>,
    pub(crate) route_status: Mutex<HashMap<String, RouteStatus>>,
    /// Cancels the relayed streams of a route or service when it is removed.
    stream_scopes: Mutex<HashMap<String, CancellationToken>>,
    pub(crate) edges: crate::edge::Edges,
    pub(crate) events: tokio::sync::mpsc::UnboundedSender<NewEvent>,
    events_rx: Mutex<Option<tokio::sync::mpsc::UnboundedReceiver<NewEvent>>>,
    refresh_lock: tokio::sync::Mutex<()>,
}

impl State {
    pub(crate) fn new(
        store: Store,
        ca_fingerprint: String,
        public_addr: String,
        tap: Option<Tap>,
        shutdown: CancellationToken,
    ) -> Arc<Self> {
        let (events, events_rx) = tokio::sync::mpsc::unbounded_channel();
        Arc::new(State {
            store,
            hub: Hub::default(),
            ca_fingerprint,
            public_addr,
            tap,
            shutdown,
            topology: RwLock::new(Arc::new(Topology::default())),
            route_status: Mutex::new(HashMap::new()),
            stream_scopes: Mutex::new(HashMap::new()),
            edges: crate::edge::Edges::default(),
            events,
            events_rx: Mutex::new(Some(events_rx)),
            refresh_lock: tokio::sync::Mutex::new(()),
        })
    }

    pub(crate) fn topology(&self) -> Arc<Topology> {
        self.topology.read().clone()
    }

    pub(crate) fn take_events_rx(&self) -> Option<tokio::sync::mpsc::UnboundedReceiver<NewEvent>> {
        self.events_rx.lock().take()
    }

    /// Records an event (written by a background task, never blocking the data path).
    pub(crate) fn record(&self, mut event: NewEvent) {
        if event.at == 0 {
            event.at = now_ms();
        }
        let _ = self.events.send(event);
    }

    /// A cancellation scope for the streams of a route or service, live while it exists.
    pub(crate) fn stream_scope(&self, id: &str) -> CancellationToken {
        self.stream_scopes.lock().entry(id.to_owned()).or_insert_with(|| self.shutdown.child_token()).child_token()
    }

    /// Reloads the topology from the store and makes it take effect: configs are pushed to
    /// connected agents, edge listeners opened or closed, streams of removed routes reset.
    pub(crate) async fn refresh(self: &Arc<Self>) -> Result<(), StoreError> {
        let _guard = self.refresh_lock.lock().await;
        let topo = Arc::new(Topology::load(&self.store).await?);
        // Swap under the hub lock so agent registration cannot interleave (see `Hub::register`).
        self.hub.with_lock(|| *self.topology.write() = topo.clone());
        {
            let mut scopes = self.stream_scopes.lock();
            scopes.retain(|id, token| {
                let alive = topo.routes.contains_key(id) || topo.services.contains_key(id);
                if !alive {
                    token.cancel();
                }
                alive
            });
        }
        self.route_status.lock().retain(|id, _| topo.routes.contains_key(id));
        self.hub.push_configs(&topo);
        for agent in self.hub.online_ids() {
            if !topo.agents.contains_key(&agent) {
                self.hub.disconnect(&agent, "agent revoked by administrator");
            }
        }
        crate::edge::sync(self, &topo).await;
        Ok(())
    }

    /// Creates an enrollment token; returns its text (shown once) and row.
    pub(crate) async fn create_token(
        &self,
        name: &str,
        role: &str,
        site: &str,
        ttl_secs: i64,
    ) -> Result<(String, EnrollmentToken), StoreError> {
        let secret = random_secret();
        let now = now_ms();
        let row = EnrollmentToken {
            id: new_id("tok"),
            tenant_id: "default".into(),
            token_hash: hash_secret(&secret),
            name: name.to_owned(),
            role: role.to_owned(),
            site: site.to_owned(),
            created_at: now,
            expires_at: now + ttl_secs * 1000,
            used_at: None,
            agent_id: None,
        };
        self.store.insert_token(&row).await?;
        let fp = sekisho_tunnel::tls::parse_fingerprint(&self.ca_fingerprint).unwrap_or_default();
        Ok((identity::EnrollmentToken::format(&secret, &fp), row))
    }
}
