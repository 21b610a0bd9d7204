//! The relay: the cloud side every agent dials out to, and the composer of its front doors.
//!
//! One TLS 1.3 port serves two protocols, told apart by ALPN: agents (`sekisho/1`) are served by
//! the [`router`], which decides and splices their streams; HTTP clients (`h2`, `http/1.1`) reach
//! the routes of the HTTP front doors (the admin API, `sekisho-api`; the console and browser
//! edge, `sekisho-web`). Relay-edge ports ([`edge`]) accept plain TCP for a service and carry it
//! to the service's back agent. The SSH bastion (`sekisho-bastion`) and the SOCKS5 gateway
//! (`sekisho-gateway`) listen on ports of their own.
//!
//! Each front door is a crate that depends only on the front-door layer (`sekisho-door`: the
//! shared state, credentials, limits, egress) and the access gate (`sekisho-gate`), never on
//! another door; this crate alone knows them all and starts them through
//! [`sekisho_door::FrontDoor`]. The relay decides and routes; it cannot read agent-to-agent
//! payload, which is sealed end to end by the agents (see `sekisho_tunnel::e2e`).

mod edge;
mod listener;
mod metrics;
mod samples;
mod siem;
pub use siem::{SiemConfig, SiemError};
mod router;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use sekisho_door::{FrontDoor, State, events, secrets};
use sekisho_store::Store;
use sekisho_tunnel::tls::LocalCa;
use tokio_util::sync::CancellationToken;

pub use sekisho_bastion::BastionConfig;
pub use sekisho_door::egress::EgressRule;
pub use sekisho_door::limits::LimitsConfig;
pub use sekisho_door::names::WebConfig;
pub use sekisho_door::secrets::{hash_secret, new_api_key};
pub use sekisho_gateway::GatewayConfig;

#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error(
        "the data directory `{path}` cannot be used ({cause}); the relay keeps its database, keys and \
         recordings there, so it must exist and be writable by the relay's user"
    )]
    DataDir { path: String, cause: std::io::Error },
    #[error(transparent)]
    Store(#[from] sekisho_store::StoreError),
    #[error(transparent)]
    Tls(#[from] sekisho_tunnel::tls::TlsError),
    #[error("cannot listen on `{addr}`: {source}")]
    Listen { addr: SocketAddr, source: std::io::Error },
    #[error(transparent)]
    AuditKey(#[from] sekisho_audit::KeyError),
    #[error(transparent)]
    Audit(#[from] sekisho_audit::AuditError),
    #[error(transparent)]
    Geo(#[from] sekisho_policy::geo::GeoError),
    #[error(transparent)]
    Secrets(#[from] secrets::SealError),
    #[error(transparent)]
    Gateway(#[from] sekisho_gateway::GatewayError),
    #[error(transparent)]
    Bastion(#[from] sekisho_bastion::BastionError),
    #[error(transparent)]
    Siem(#[from] siem::SiemError),
}

/// How to run a relay.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    /// Extra names (DNS or IP) for the relay certificate, and the first one for the address shown
    /// in enrollment commands.
    pub hostnames: Vec<String>,
    /// Test-only: send a copy of every spliced agent-to-agent byte to this address.
    pub debug_tap: Option<SocketAddr>,
    /// `sqlite://…` or `postgres://…`; default: `sekisho.db` in the data directory.
    pub database: Option<String>,
    /// A MaxMind/DB-IP country database for `context.country`.
    pub geoip: Option<PathBuf>,
    /// The audit anchor file (default: `audit-anchors.jsonl` in the data directory).
    pub audit_anchors: Option<PathBuf>,
    /// The country given to loopback and private addresses.
    pub local_country: String,
    /// The SOCKS5 gateway, when it runs.
    pub gateway: Option<GatewayConfig>,
    /// The SSH bastion, when it runs.
    pub bastion: Option<BastionConfig>,
    /// The web console's host, under which services are published for browsers
    /// (`<service>.<tenant>.<web_domain>`).
    pub web_domain: String,
    /// Which of the relay's own networks it may dial itself (gateway, bastion, sign-in provider).
    pub egress: EgressRule,
    /// How long unauthenticated refusals are counted before their summary is recorded (60 s;
    /// shorter in tests).
    pub noise_window: std::time::Duration,
    /// Open connections per source address and in all, per listener.
    pub limits: LimitsConfig,
    /// How long an HTTP client on the TLS port may take to send a request head, first or next
    /// (10 s; shorter in tests).
    pub http_header_timeout: std::time::Duration,
    /// Serve Prometheus metrics (`/metrics`, plain HTTP) on this address.
    pub metrics: Option<SocketAddr>,
    /// Send every audit event to a SIEM (syslog over TLS).
    pub siem: Option<SiemConfig>,
    /// How often the agents online are sampled for the dashboard (5 minutes; shorter in tests).
    pub agent_sample_interval: std::time::Duration,
}

/// A running relay.
pub struct RelayHandle {
    pub addr: SocketAddr,
    /// The SOCKS5 gateway's address, when it runs.
    pub gateway_addr: Option<SocketAddr>,
    /// The SSH bastion's address, when it runs.
    pub bastion_addr: Option<SocketAddr>,
    /// The Prometheus metrics listener's address, when it runs.
    pub metrics_addr: Option<SocketAddr>,
    /// Where people open the web console.
    pub console_url: String,
    pub ca_fingerprint: String,
    pub ca_path: PathBuf,
    /// The first admin API key, only on the very first start (it is stored hashed).
    pub admin_key: Option<String>,
    state: Arc<State>,
    shutdown: CancellationToken,
    tasks: tokio::task::JoinHandle<()>,
}

impl RelayHandle {
    /// Creates an enrollment token directly (the quickstart's shortcut around the API).
    pub async fn create_enrollment_token(
        &self,
        name: &str,
        role: sekisho_store::Role,
        ttl_secs: i64,
    ) -> Result<String, RelayError> {
        Ok(self.state.create_token("default", name, role, "", ttl_secs, None).await?.0)
    }

    /// Issues a new admin API key directly (for the person who owns the data directory, e.g. the
    /// quickstart). Returned once; stored hashed.
    pub async fn issue_api_key(&self, name: &str) -> Result<String, RelayError> {
        Ok(secrets::issue_api_key(&self.state.store, name).await?)
    }

    /// The address agents should dial.
    pub fn public_addr(&self) -> String {
        self.state.public_addr.clone()
    }

    /// Stops accepting, closes agent connections, waits for the listener to end, and commits
    /// and checkpoints the audit log.
    pub async fn shutdown(self) {
        self.shutdown.cancel();
        self.state.hub.close_all("relay shutting down");
        let _ = self.tasks.await;
        let _ = self.state.auditor.checkpoint().await;
    }
}

/// Starts a relay and returns once it listens.
pub async fn start(config: RelayConfig) -> Result<RelayHandle, RelayError> {
    // A directory the relay cannot write (a read-only mount, a full disk) stops it here, by name:
    // it could not keep evidence, so it must not serve.
    let data_dir = |cause| RelayError::DataDir { path: config.data_dir.display().to_string(), cause };
    std::fs::create_dir_all(&config.data_dir).map_err(data_dir)?;
    make_private(&config.data_dir).map_err(data_dir)?;
    let probe = config.data_dir.join(".sekisho-write-check");
    std::fs::write(&probe, b"").and_then(|()| std::fs::remove_file(&probe)).map_err(data_dir)?;
    let (ca, _) = LocalCa::load_or_create(&config.data_dir)?;
    let store = match &config.database {
        Some(url) => Store::connect(url).await?,
        None => Store::open(&config.data_dir.join("sekisho.db")).await?,
    };
    let admin_key = secrets::bootstrap_admin_key(&store).await?;
    let master = secrets::MasterKey::load_or_create(&config.data_dir)?;
    let audit_key = sekisho_audit::AuditKey::load_or_create(&config.data_dir)?;
    let audit_public_key = audit_key.verifying_key();
    let audit_anchors = config.audit_anchors.clone().unwrap_or_else(|| config.data_dir.join("audit-anchors.jsonl"));
    let relay_id = relay_id(&config.data_dir).map_err(data_dir)?;
    let sampling_relay = relay_id.clone();
    // Durable events (a stream's opening, a refusal) are appended to this journal before the
    // caller goes on and committed in batches; a crash's leftovers are committed at start.
    let journal = sekisho_audit::JournalConfig { dir: config.data_dir.join("audit-journal"), relay: relay_id.clone() };
    let audit_config = sekisho_audit::AuditConfig {
        anchors: Some(audit_anchors.clone()),
        journal: Some(journal),
        ..sekisho_audit::AuditConfig::default()
    };
    let (auditor, _audit_task) = sekisho_audit::Auditor::start(store.clone(), audit_key, audit_config).await?;
    // Streams this relay had open when it last stopped without closing them (kill -9, a crash,
    // power loss) get their `closed` event now, before anything is forwarded.
    let crashed = auditor.close_streams_left_open(&store, &relay_id).await?;
    if crashed > 0 {
        tracing::warn!(streams = crashed, relay = %relay_id, "streams left open by the last run were closed as open_at_crash");
    }
    let geo = sekisho_policy::geo::Geo::open(config.geoip.as_deref(), &config.local_country)?;

    let mut names = vec!["localhost".to_owned(), "127.0.0.1".to_owned(), "::1".to_owned()];
    names.extend(config.hostnames.iter().cloned());
    if !names.contains(&config.web_domain) {
        names.push(config.web_domain.clone());
    }
    let ca_fingerprint = ca.fingerprint();
    let certs = Arc::new(sekisho_tunnel::tls::SniCerts::new(ca, &names, &config.web_domain)?);
    let alpn = vec![
        sekisho_tunnel::AGENT_ALPN.to_vec(),
        sekisho_tunnel::AGENT_ALPN_V1.to_vec(),
        b"h2".to_vec(),
        b"http/1.1".to_vec(),
    ];
    let tls = sekisho_tunnel::tls::server_config_sni(certs.clone(), alpn)?;

    let tcp = sekisho_tunnel::dial::listen(config.listen)
        .map_err(|source| RelayError::Listen { addr: config.listen, source })?;
    let addr = tcp.local_addr().map_err(|source| RelayError::Listen { addr: config.listen, source })?;
    let public_host = config.hostnames.first().cloned().unwrap_or_else(|| addr.ip().to_string());
    let public_addr = if public_host.contains(':') && !public_host.starts_with('[') {
        format!("[{public_host}]:{}", addr.port())
    } else {
        format!("{public_host}:{}", addr.port())
    };

    let shutdown = CancellationToken::new();
    let tap = config.debug_tap.map(events::start_tap);
    let state = State::new(sekisho_door::state::Parts {
        store,
        relay_id,
        ca_fingerprint: ca_fingerprint.clone(),
        public_addr,
        web: WebConfig { domain: config.web_domain.clone(), port: addr.port() },
        tap,
        shutdown: shutdown.clone(),
        auditor,
        geo,
        master,
        audit_public_key,
        audit_anchors,
        recordings: config.data_dir.join("recordings"),
        egress: Arc::new(config.egress.clone()),
        noise_window: config.noise_window,
        limits: config.limits,
        http_header_timeout: config.http_header_timeout,
    });
    // Browser-host certificates only for tenants that exist.
    let known = Arc::downgrade(&state);
    certs.set_filter(Box::new(move |label| {
        known.upgrade().is_some_and(|s| s.topology().tenants.values().any(|t| t.name.eq_ignore_ascii_case(label)))
    }));
    // Relay edge ports follow every reload of the topology, the first one included.
    let edges = Arc::new(edge::Edges::default());
    state.on_reload(Box::new(move |state, topo| Box::pin(edge::sync(state, edges.clone(), topo))));
    state.start_cluster().await?;
    events::spawn_retention(&state);
    events::spawn_noise_summaries(&state);

    // The front doors, in order: an HTTP door wraps the routes of those before it.
    let mut doors: Vec<Arc<dyn FrontDoor>> =
        vec![Arc::new(sekisho_api::ApiDoor::new(state.clone())), Arc::new(sekisho_web::WebDoor::new(state.clone()))];
    if let Some(g) = &config.gateway {
        doors.push(Arc::new(sekisho_gateway::GatewayDoor::bind(state.clone(), g)?));
    }
    if let Some(b) = &config.bastion {
        doors.push(Arc::new(sekisho_bastion::BastionDoor::bind(state.clone(), &config.data_dir, b)?));
    }
    let addr_of = |name: &str| doors.iter().find(|d| d.name() == name).and_then(|d| d.local_addr());
    let (gateway_addr, bastion_addr) = (addr_of("socks"), addr_of("ssh"));
    let mut http = axum::Router::new();
    for door in &doors {
        http = door.http(http);
    }
    for door in doors {
        tracing::debug!(door = door.name(), addr = ?door.local_addr(), "front door open");
        tokio::spawn(door.serve(shutdown.clone()));
    }
    let metrics_addr = match config.metrics {
        Some(at) => Some(
            metrics::serve(at, state.clone(), shutdown.clone())
                .await
                .map_err(|source| RelayError::Listen { addr: at, source })?,
        ),
        None => None,
    };
    samples::start(state.clone(), sampling_relay, config.agent_sample_interval, shutdown.clone());
    if let Some(siem) = config.siem.clone() {
        let host = config.hostnames.first().cloned().unwrap_or_else(|| "sekisho".into());
        siem::start(siem, state.store.clone(), config.data_dir.clone(), host, shutdown.clone())?;
    }
    let console_url = format!("{}/", state.web.console_origin());
    let tasks = tokio::spawn(listener::run(tcp, tls, state.clone(), http, shutdown.clone()));
    Ok(RelayHandle {
        addr,
        gateway_addr,
        bastion_addr,
        metrics_addr,
        console_url,
        ca_fingerprint,
        ca_path: config.data_dir.join("ca.pem"),
        admin_key,
        state,
        shutdown,
        tasks,
    })
}

/// This relay's lasting id, kept in `relay-id` in its data directory (created on first start):
/// the first part of its stream ids, so that after a crash it closes its own open streams and
/// not those of another relay sharing the database.
fn relay_id(dir: &std::path::Path) -> std::io::Result<String> {
    let path = dir.join("relay-id");
    match std::fs::read_to_string(&path) {
        Ok(id) if !id.trim().is_empty() && id.trim().chars().all(|c| c.is_ascii_alphanumeric()) => {
            Ok(id.trim().to_owned())
        }
        Ok(_) => Err(std::io::Error::other(format!("{} does not hold a relay id", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let id = hex::encode(rand::random::<[u8; 6]>());
            std::fs::write(&path, format!("{id}\n"))?;
            Ok(id)
        }
        Err(e) => Err(e),
    }
}

/// The data directory and everything in it are the relay user's alone: the directory 0700, files
/// 0600 (the database and its WAL too), and every file the relay creates from now on likewise
/// (umask 077 for the process). Files an earlier version left readable are tightened.
#[cfg(unix)]
fn make_private(dir: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o077));
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o700))?;
        for entry in std::fs::read_dir(&d)? {
            let entry = entry?;
            let kind = entry.file_type()?;
            if kind.is_dir() {
                pending.push(entry.path());
            } else if kind.is_file() {
                let mode = entry.metadata()?.permissions().mode();
                if mode & 0o077 != 0 {
                    std::fs::set_permissions(entry.path(), std::fs::Permissions::from_mode(mode & 0o700))?;
                }
            }
        }
    }
    Ok(())
}

#[cfg(not(unix))]
fn make_private(_dir: &std::path::Path) -> std::io::Result<()> {
    Ok(())
}
