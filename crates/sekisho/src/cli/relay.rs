//! `sekisho relay`'s options.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;

#[derive(Debug, Args)]
pub(crate) struct RelayArgs {
    /// Directory for the database, CA and keys (created if missing).
    #[arg(long, env = "SEKISHO_DATA_DIR", default_value = "./sekisho-data")]
    pub data_dir: PathBuf,
    /// Address of the TLS port (agents and admin API share it; port 0 picks a free one).
    #[arg(long, env = "SEKISHO_LISTEN", default_value = "0.0.0.0:7443")]
    pub listen: SocketAddr,
    /// Name or IP agents use to reach this relay (repeatable, or comma-separated in
    /// SEKISHO_HOSTNAMES; added to the certificate).
    #[arg(long = "hostname", env = "SEKISHO_HOSTNAMES", value_delimiter = ',')]
    pub hostnames: Vec<String>,
    /// Print status as JSON lines on stdout.
    #[arg(long)]
    pub json_events: bool,
    /// Database URL: sqlite://PATH or postgres://USER@HOST/DB (default: DATA_DIR/sekisho.db).
    #[arg(long, env = "SEKISHO_DATABASE_URL")]
    pub database: Option<String>,
    /// The append-only file every signed audit checkpoint is also written to, outside the
    /// database, for `audit verify` to find a cut tail (default: DATA_DIR/audit-anchors.jsonl).
    /// Ship it elsewhere (or point it at storage the database's admins cannot rewrite).
    #[arg(long, env = "SEKISHO_AUDIT_ANCHORS")]
    pub audit_anchors: Option<PathBuf>,
    /// GeoIP country database (MaxMind GeoLite2-Country or DB-IP .mmdb) for `context.country`.
    #[arg(long, env = "SEKISHO_GEOIP")]
    pub geoip: Option<PathBuf>,
    /// Country code given to loopback and private addresses.
    #[arg(long, env = "SEKISHO_LOCAL_COUNTRY", default_value = "LOCAL")]
    pub local_country: String,
    /// Run the SOCKS5 gateway on this address (e.g. 0.0.0.0:1080; port 0 picks a free one).
    #[arg(long, env = "SEKISHO_SOCKS_LISTEN")]
    pub socks_listen: Option<SocketAddr>,
    /// Hosts file (/etc/hosts format) the gateway consults before DNS for direct egress.
    #[arg(long, env = "SEKISHO_SOCKS_HOSTS", requires = "socks_listen")]
    pub socks_hosts: Option<PathBuf>,
    /// Let the relay dial addresses in this range itself (repeatable, e.g. 10.20.0.0/16): the
    /// gateway's direct egress, bastion targets without an agent and sign-in providers. The relay's
    /// own networks (loopback, private, link-local, …) are refused unless allowed here.
    #[arg(long = "egress-allow", value_name = "CIDR", env = "SEKISHO_EGRESS_ALLOW", value_delimiter = ',')]
    pub egress_allow: Vec<ipnet::IpNet>,
    /// Same as --egress-allow for every range (kept for older command lines).
    #[arg(long, hide = true)]
    pub socks_allow_private: bool,
    /// Testing: the window (ms) in which unauthenticated refusals are counted before their
    /// summary is recorded.
    #[arg(long, hide = true, default_value_t = 60_000)]
    pub noise_window_ms: u64,
    /// Open connections one source address may hold on each listener (TLS port, SOCKS, SSH, edge ports).
    #[arg(long, env = "SEKISHO_CONN_PER_IP", default_value_t = 1024)]
    pub conn_per_ip: usize,
    /// Open connections each listener holds in all.
    #[arg(long, env = "SEKISHO_CONN_MAX", default_value_t = 50_000)]
    pub conn_max: usize,
    /// How long (ms) an SSH connection may take to log in before it is closed.
    #[arg(long, env = "SEKISHO_SSH_LOGIN_WINDOW_MS", default_value_t = 120_000)]
    pub ssh_login_window_ms: u64,
    /// Testing: how long (ms) an HTTP client may take to send a request head.
    #[arg(long, hide = true, default_value_t = 10_000)]
    pub http_header_timeout_ms: u64,
    /// Serve Prometheus metrics at http://ADDR/metrics (plain HTTP: loopback or a monitoring
    /// network, e.g. 127.0.0.1:9464; port 0 picks a free one).
    #[arg(long, env = "SEKISHO_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
    /// Send every audit event to a SIEM as syslog (RFC 5424) over TLS, e.g. siem.example.jp:6514;
    /// the position reached is kept in DATA_DIR/siem-cursor.json, so nothing is lost while the
    /// collector is down.
    #[arg(long, env = "SEKISHO_SIEM_SYSLOG", value_name = "HOST:PORT")]
    pub siem_syslog: Option<String>,
    /// The CA certificate (PEM) that signs the SIEM collector's certificate (default: the public
    /// web roots).
    #[arg(long, env = "SEKISHO_SIEM_CA", requires = "siem_syslog")]
    pub siem_ca: Option<PathBuf>,
    /// Testing: how often (ms) the agents online are sampled for the dashboard.
    #[arg(long, hide = true, default_value_t = 300_000)]
    pub agent_sample_ms: u64,
    /// Testing: how often (ms) the audit log is looked at for the SIEM when nothing was new.
    #[arg(long, hide = true, default_value_t = 1000)]
    pub siem_poll_ms: u64,
    /// Run the SSH bastion on this address (e.g. 0.0.0.0:2222; port 0 picks a free one).
    #[arg(long, env = "SEKISHO_SSH_LISTEN")]
    pub ssh_listen: Option<SocketAddr>,
    /// The web console's host name; services published for browsers are at
    /// `<service>.<tenant>.<domain>` (`*.localhost` resolves to loopback without DNS).
    #[arg(long, env = "SEKISHO_WEB_DOMAIN", default_value = "localhost")]
    pub web_domain: String,
    /// Testing only: copy every spliced agent-to-agent byte to this TCP address.
    #[arg(long, hide = true)]
    pub debug_tap: Option<SocketAddr>,
}
