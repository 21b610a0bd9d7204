//! The relay's shared state and the one place configuration changes take effect.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use sekisho_audit::Auditor;
use sekisho_policy::Engine;
use sekisho_policy::geo::Geo;
use sekisho_store::{EnrollmentToken, Store, StoreError, now_ms};
use sekisho_tunnel::identity;
use sekisho_tunnel::pump::Tap;
use tokio_util::sync::CancellationToken;

use crate::hub::Hub;
use crate::secrets::{MasterKey, hash_secret, new_id, random_secret};
use crate::topology::Topology;

/// What runs after every reload of the topology, before the change counts as applied (the
/// relay opens and closes its edge ports here).
pub type ReloadHook =
    Box<dyn Fn(Arc<State>, Arc<Topology>) -> futures_util::future::BoxFuture<'static, ()> + Send + Sync>;

/// Failed agent authentications one address may make per minute.
pub const AGENT_FAILURES_PER_MINUTE: u32 = 60;
/// How often a relay looks for changes made by other relays sharing its database.
const CLUSTER_POLL: Duration = Duration::from_secs(1);

/// What a front agent last reported about one route's listener.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct RouteStatus {
    pub bound: Option<String>,
    pub error: Option<String>,
}

pub struct State {
    pub store: Store,
    pub hub: Hub,
    pub ca_fingerprint: String,
    pub public_addr: String,
    pub tap: Option<Tap>,
    pub shutdown: CancellationToken,
    topology: RwLock<Arc<Topology>>,
    pub route_status: Mutex<HashMap<String, RouteStatus>>,
    /// Cancels the relayed streams of a route or service when it is removed.
    stream_scopes: Mutex<HashMap<String, CancellationToken>>,
    /// Each relay edge port's bound address or bind error, by service id.
    pub edge_status: Mutex<HashMap<String, Result<String, String>>>,
    reload_hook: std::sync::OnceLock<ReloadHook>,
    /// Counts changes to credentials, users and groups: caches of verified keys and sessions
    /// (the gateway's, the browser edge's) drop what they hold when it moves.
    credential_epoch: std::sync::atomic::AtomicU64,
    pub auditor: Auditor,
    /// The access gate: every decision on every path, with its evidence. Holds the tenants'
    /// compiled service policies, changed by the policy API and rebuilt from the store when
    /// another relay changed something.
    pub gate: Arc<sekisho_gate::Gate>,
    pub geo: Geo,
    pub master: MasterKey,
    /// Verifies this relay's audit checkpoints.
    pub audit_public_key: ed25519_dalek::VerifyingKey,
    /// The append-only file of signed checkpoints outside the database.
    pub audit_anchors: std::path::PathBuf,
    pub limiter: crate::credentials::Limiter,
    /// Failed agent authentications per source IP (agents behind one NAT share it, so the limit
    /// is higher than for people).
    pub agent_limiter: crate::credentials::Limiter,
    /// Recorded (bastion) sessions in progress.
    pub live_sessions: crate::recordings::LiveSessions,
    /// Where sealed bastion recordings are kept.
    pub recordings: std::path::PathBuf,
    /// Where browsers find the console and the services published for them.
    pub web: crate::names::WebAddress,
    /// The rule for every address the relay dials itself.
    pub egress: Arc<crate::egress::EgressRule>,
    /// Unauthenticated refusals, counted rather than all recorded.
    pub noise: crate::noise::Noise,
    /// The connection caps the operator set, and each listener's counts.
    pub limits: crate::limits::LimitsConfig,
    pub listeners: Mutex<Vec<Arc<crate::limits::ConnLimits>>>,
    /// One set of caps shared by all relay edge ports.
    pub edge_limits: Arc<crate::limits::ConnLimits>,
    pub http_header_timeout: Duration,
    refresh_lock: tokio::sync::Mutex<()>,
    /// The cluster generation (the store's change counter) this relay's topology and policies
    /// reflect.
    applied: AtomicI64,
}

/// What [`State::new`] is built from.
pub struct Parts {
    pub store: Store,
    /// This relay's lasting id (the first part of its stream ids).
    pub relay_id: String,
    pub ca_fingerprint: String,
    pub public_addr: String,
    pub tap: Option<Tap>,
    pub shutdown: CancellationToken,
    pub auditor: Auditor,
    pub geo: Geo,
    pub master: MasterKey,
    pub audit_public_key: ed25519_dalek::VerifyingKey,
    pub audit_anchors: std::path::PathBuf,
    pub recordings: std::path::PathBuf,
    pub web: crate::names::WebConfig,
    pub egress: Arc<crate::egress::EgressRule>,
    pub noise_window: std::time::Duration,
    pub limits: crate::limits::LimitsConfig,
    pub http_header_timeout: Duration,
}

impl State {
    pub fn new(p: Parts) -> Arc<Self> {
        Arc::new(State {
            store: p.store,
            hub: Hub::default(),
            ca_fingerprint: p.ca_fingerprint,
            public_addr: p.public_addr,
            tap: p.tap,
            shutdown: p.shutdown,
            topology: RwLock::new(Arc::new(Topology::default())),
            route_status: Mutex::new(HashMap::new()),
            stream_scopes: Mutex::new(HashMap::new()),
            edge_status: Mutex::new(HashMap::new()),
            reload_hook: std::sync::OnceLock::new(),
            credential_epoch: std::sync::atomic::AtomicU64::new(0),
            auditor: p.auditor.clone(),
            gate: Arc::new(sekisho_gate::Gate::new(p.auditor.clone(), &p.relay_id)),
            geo: p.geo,
            master: p.master,
            audit_public_key: p.audit_public_key,
            audit_anchors: p.audit_anchors,
            limiter: crate::credentials::Limiter::default(),
            agent_limiter: crate::credentials::Limiter::new(AGENT_FAILURES_PER_MINUTE),
            live_sessions: crate::recordings::LiveSessions::default(),
            recordings: p.recordings,
            web: crate::names::WebAddress::new(&p.web),
            egress: p.egress,
            noise: crate::noise::Noise::new(p.noise_window),
            limits: p.limits,
            edge_limits: crate::limits::ConnLimits::new("edge", p.limits),
            listeners: Mutex::new(Vec::new()),
            http_header_timeout: p.http_header_timeout,
            refresh_lock: tokio::sync::Mutex::new(()),
            applied: AtomicI64::new(0),
        })
    }

    /// Sets what runs after every reload of the topology (once, at start).
    pub fn on_reload(&self, hook: ReloadHook) {
        if self.reload_hook.set(hook).is_err() {
            tracing::error!("a second reload hook was refused");
        }
    }

    /// Something an administrator did may have changed keys, users, groups or policies: caches
    /// of verified credentials are dropped and every open access is decided again. The one
    /// signal a front door gives after a change (the API after each mutating request, a logout);
    /// a reload for another relay's change decides again by itself.
    pub async fn changed(&self) {
        self.credential_epoch.fetch_add(1, Ordering::SeqCst);
        self.redecide().await;
    }

    /// The count [`Self::changed`] moves; a cache keeps what it verified only while
    /// the count stays where it was then.
    pub fn credential_epoch(&self) -> u64 {
        self.credential_epoch.load(Ordering::SeqCst)
    }

    /// The caps of a new listener, counted in the operator's health view.
    pub fn conn_limits(&self, name: &'static str) -> Arc<crate::limits::ConnLimits> {
        let limits = crate::limits::ConnLimits::new(name, self.limits);
        self.listeners.lock().push(limits.clone());
        limits
    }

    /// Every listener's (name, open, refused), the edge ports' together.
    pub fn connection_counts(&self) -> Vec<(&'static str, u64, u64)> {
        let mut all: Vec<_> = self.listeners.lock().iter().map(|l| (l.name(), l.counts())).collect();
        all.push((self.edge_limits.name(), self.edge_limits.counts()));
        all.into_iter().map(|(n, (open, refused))| (n, open, refused)).collect()
    }

    pub fn topology(&self) -> Arc<Topology> {
        self.topology.read().clone()
    }

    /// Compiles every stored service policy into a new engine, which then replaces the current one.
    /// Fails closed: a stored policy that cannot be read or no longer compiles makes its service
    /// deny everything with `policy_unreadable` (and says why in the log).
    async fn load_policies(&self) -> Result<(), StoreError> {
        let services: HashMap<sekisho_store::ServiceId, sekisho_store::Service> =
            self.store.list_services_all().await?.into_iter().map(|s| (s.id.clone(), s)).collect();
        let rows = self.store.list_policies_all().await?;
        let mut engine = Engine::new();
        for row in rows {
            let Some(svc) = services.get(&row.service_id) else { continue };
            let compiled = stored_policy(&row).and_then(|policy| {
                engine.compile(&svc.name, &policy).map_err(|e| format!("the stored policy no longer compiles: {e}"))
            });
            match compiled {
                Ok(compiled) => engine.insert(&svc.tenant_id, &svc.name, compiled),
                Err(why) => {
                    tracing::error!(service = %svc.name, error = %why, "stored policy unusable; the service denies all");
                    engine.insert_unreadable(&svc.tenant_id, &svc.name, why);
                }
            }
        }
        self.gate.replace_policies(engine);
        Ok(())
    }

    /// Decides every open access again (after a change to policies, groups, users or keys) with
    /// each user's groups read afresh, and ends those now denied. A user who cannot be read, was
    /// deleted or disabled is denied with that reason.
    pub async fn redecide(&self) {
        if self.gate.live_count() == 0 {
            return;
        }
        let mut fresh = sekisho_gate::FreshGroups::new();
        for (tenant, name) in self.gate.live_users() {
            let groups = match self.store.get_user(&tenant, &name).await {
                Ok(Some(u)) if u.disabled_at.is_some() => Err(sekisho_gate::Unreadable {
                    code: "user_disabled",
                    message: format!("`{name}` has been disabled"),
                }),
                Ok(Some(u)) => match self.store.groups_of(&u.id).await {
                    Ok(groups) => Ok(groups.into_iter().map(|g| g.name).collect()),
                    Err(e) => Err(sekisho_gate::Unreadable::store(&format!("the groups of `{name}`"), e)),
                },
                Ok(None) => Err(sekisho_gate::Unreadable {
                    code: "user_deleted",
                    message: format!("`{name}` no longer exists"),
                }),
                Err(e) => Err(sekisho_gate::Unreadable::store(&format!("the user `{name}`"), e)),
            };
            fresh.insert((tenant, name), groups);
        }
        // Keys of open accesses that were revoked, expired or removed since.
        let mut dead = std::collections::HashSet::new();
        for (_, id) in self.gate.live_credentials() {
            match self.store.get_api_key(&id).await {
                Ok(Some(k)) if k.revoked_at.is_none() && k.expires_at.is_none_or(|t| t > now_ms()) => {}
                Ok(_) => {
                    dead.insert(id);
                }
                // Fail closed, as for groups that cannot be read.
                Err(e) => {
                    tracing::warn!(error = %e, key = %id, "cannot check a key of an open access; ending it");
                    dead.insert(id);
                }
            }
        }
        let ended = self.gate.redecide(&fresh, &dead);
        if ended > 0 {
            tracing::info!(ended, "open accesses ended by a change");
        }
    }

    /// Loads topology and policies at start, then follows the changes other relays sharing the
    /// database make (polled every [`CLUSTER_POLL`]).
    pub async fn start_cluster(self: &Arc<Self>) -> Result<(), StoreError> {
        self.applied.store(self.store.generation().await?, Ordering::SeqCst);
        self.load_policies().await?;
        {
            let _guard = self.refresh_lock.lock().await;
            self.reload_locked().await?;
        }
        let state = Arc::downgrade(self);
        let shutdown = self.shutdown.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = tokio::time::sleep(CLUSTER_POLL) => {}
                    () = shutdown.cancelled() => return,
                }
                let Some(state) = state.upgrade() else { return };
                state.catch_up().await;
            }
        });
        Ok(())
    }

    /// Takes in what other relays sharing the database changed since this one last looked (each
    /// second, before each admin API request, and when an agent reports on an unknown route). A
    /// database that cannot be asked is logged and leaves the current state in force.
    pub async fn catch_up(self: &Arc<Self>) {
        if let Err(e) = self.follow_cluster().await {
            tracing::warn!(error = %e, "cannot check the database for other relays' changes");
        }
    }

    /// Reloads everything if another relay changed something since this one last looked.
    async fn follow_cluster(self: &Arc<Self>) -> Result<(), StoreError> {
        let generation = self.store.generation().await?;
        if self.applied.load(Ordering::SeqCst) >= generation {
            return Ok(());
        }
        // Reloads happen under the lock and count as applied only once done, so a caller that
        // finds one under way waits for it and then sees its result.
        let _guard = self.refresh_lock.lock().await;
        if self.applied.load(Ordering::SeqCst) >= generation {
            return Ok(());
        }
        tracing::info!(generation, "configuration changed by another relay; reloading");
        self.load_policies().await?;
        self.reload_locked().await?;
        self.applied.fetch_max(generation, Ordering::SeqCst);
        Ok(())
    }

    /// Tells the other relays sharing the database that this one changed something. If another
    /// relay changed something meanwhile, this relay's own reload is left to [`Self::follow_cluster`].
    async fn announce(&self) {
        match self.store.bump_generation().await {
            Ok(g) => {
                let _ = self.applied.compare_exchange(g - 1, g, Ordering::SeqCst, Ordering::SeqCst);
            }
            Err(e) => tracing::warn!(error = %e, "cannot tell other relays about a change"),
        }
    }

    /// Applies a policy change (already stored) to this relay's engine and tells the other
    /// relays; the caller then says [`Self::changed`]. Under the refresh lock, so a reload for another relay's change cannot undo it.
    pub async fn policy_changed(&self, change: impl FnOnce(&mut Engine)) {
        let _guard = self.refresh_lock.lock().await;
        self.gate.change_policies(change);
        self.announce().await;
        // Open accesses are decided again by the caller's [`Self::changed`] once its request is
        // done (one re-decision per change, not one per step of it).
    }

    /// A cancellation scope for the streams of a route or service, live while it exists.
    pub fn stream_scope(&self, id: &str) -> CancellationToken {
        self.stream_scopes.lock().entry(id.to_owned()).or_insert_with(|| self.shutdown.child_token()).child_token()
    }

    /// Makes a change this relay stored take effect here (see [`Self::reload_locked`]) and tells
    /// the other relays sharing the database.
    pub async fn refresh(self: &Arc<Self>) -> Result<(), StoreError> {
        let _guard = self.refresh_lock.lock().await;
        // Told first: the configs pushed below reach agents that report back to other relays at
        // once, and those relays must then find the change when they look.
        self.announce().await;
        self.reload_locked().await
    }

    /// Reloads the topology from the store and makes it take effect: configs are pushed to
    /// connected agents, edge listeners opened or closed, streams of removed routes reset.
    async fn reload_locked(self: &Arc<Self>) -> Result<(), StoreError> {
        let topo = Arc::new(Topology::load(&self.store).await?);
        // Swap under the hub lock so agent registration cannot interleave (see `Hub::register`).
        self.hub.with_lock(|| *self.topology.write() = topo.clone());
        {
            let mut scopes = self.stream_scopes.lock();
            scopes.retain(|id, token| {
                let alive = topo.routes.contains_key(id.as_str()) || topo.services.contains_key(id.as_str());
                if !alive {
                    token.cancel();
                }
                alive
            });
        }
        self.route_status.lock().retain(|id, _| topo.routes.contains_key(id.as_str()));
        self.hub.push_configs(&topo);
        for agent in self.hub.online_ids() {
            if !topo.agents.contains_key(agent.as_str()) {
                self.hub.disconnect(&agent, "agent revoked by administrator");
            }
        }
        if let Some(hook) = self.reload_hook.get() {
            hook(self.clone(), topo.clone()).await;
        }
        self.redecide().await;
        Ok(())
    }

    /// Creates an enrollment token; returns its text (shown once) and row.
    pub async fn create_token(
        &self,
        tenant: &str,
        name: &str,
        role: sekisho_store::Role,
        site: &str,
        ttl_secs: i64,
        owner_user_id: Option<String>,
    ) -> Result<(String, EnrollmentToken), StoreError> {
        let secret = random_secret();
        let now = now_ms();
        let row = EnrollmentToken {
            id: new_id("tok"),
            tenant_id: tenant.into(),
            token_hash: hash_secret(&secret),
            name: name.to_owned(),
            role,
            site: site.to_owned(),
            created_at: now,
            expires_at: now + ttl_secs * 1000,
            used_at: None,
            agent_id: None,
            owner_user_id: owner_user_id.map(Into::into),
        };
        self.store.insert_token(&row).await?;
        let fp = sekisho_tunnel::tls::parse_fingerprint(&self.ca_fingerprint).unwrap_or_default();
        Ok((identity::EnrollmentToken::format(&secret, &fp), row))
    }
}

/// A stored policy row as the conditions it holds; `Err` says which list cannot be read.
fn stored_policy(row: &sekisho_store::PolicyRow) -> Result<sekisho_policy::ServicePolicy, String> {
    let lists = row.lists.clone()?;
    Ok(sekisho_policy::ServicePolicy {
        required: lists.required,
        deny: lists.deny,
        allow_domains: lists.allow_domains,
        deny_domains: lists.deny_domains,
    })
}
