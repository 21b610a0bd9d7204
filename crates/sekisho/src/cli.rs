//! Command-line grammar.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "sekisho", version, about = "Sekisho (関所): zero-trust access without open ports or VPNs")]
pub(crate) struct Cli {
    /// Language of messages: ja or en (default: from LANG).
    #[arg(long, global = true, env = "SEKISHO_LANG")]
    pub lang: Option<String>,
    /// Log level or filter for stderr logs (e.g. info, debug, sekisho_relay=debug).
    #[arg(long, global = true)]
    pub log: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run a relay: the TLS port agents dial out to, and the admin API.
    Relay(RelayArgs),
    /// Run an agent (front, back or both roles, as enrolled).
    Agent(AgentArgs),
    /// Administer a relay through its admin API.
    Ctl(CtlArgs),
    /// Start a relay, two agents and a demo web page, and print the URL to open.
    Quickstart(QuickstartArgs),
    /// Work with the tamper-evident audit log directly (offline, from the data directory).
    #[command(subcommand)]
    Audit(AuditCmd),
}

#[derive(Debug, Subcommand)]
pub(crate) enum AuditCmd {
    /// Recompute every tenant's hash chain and check the signed checkpoints; exit 1 on the first
    /// altered, inserted, reordered or deleted event.
    Verify {
        /// The relay's data directory (its database and `audit.pub`).
        #[arg(long, env = "SEKISHO_DATA_DIR", default_value = "./sekisho-data")]
        data_dir: PathBuf,
        /// The database, if not the data directory's SQLite file.
        #[arg(long, env = "SEKISHO_DATABASE_URL")]
        database: Option<String>,
        /// Trusted checkpoint key files (hex public keys); default: DATA_DIR/audit.pub.
        #[arg(long = "key")]
        keys: Vec<PathBuf>,
        /// Only this tenant (id).
        #[arg(long)]
        tenant: Option<String>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
pub(crate) struct RelayArgs {
    /// Directory for the database, CA and keys (created if missing).
    #[arg(long, env = "SEKISHO_DATA_DIR", default_value = "./sekisho-data")]
    pub data_dir: PathBuf,
    /// Address of the TLS port (agents and admin API share it; port 0 picks a free one).
    #[arg(long, default_value = "0.0.0.0:7443")]
    pub listen: SocketAddr,
    /// Name or IP agents use to reach this relay (repeatable; added to the certificate).
    #[arg(long = "hostname")]
    pub hostnames: Vec<String>,
    /// Print status as JSON lines on stdout.
    #[arg(long)]
    pub json_events: bool,
    /// Database URL: sqlite://PATH or postgres://USER@HOST/DB (default: DATA_DIR/sekisho.db).
    #[arg(long, env = "SEKISHO_DATABASE_URL")]
    pub database: Option<String>,
    /// GeoIP country database (MaxMind GeoLite2-Country or DB-IP .mmdb) for `context.country`.
    #[arg(long, env = "SEKISHO_GEOIP")]
    pub geoip: Option<PathBuf>,
    /// Country code given to loopback and private addresses.
    #[arg(long, env = "SEKISHO_LOCAL_COUNTRY", default_value = "LOCAL")]
    pub local_country: String,
    /// Testing only: copy every spliced agent-to-agent byte to this TCP address.
    #[arg(long, hide = true)]
    pub debug_tap: Option<SocketAddr>,
}

#[derive(Debug, Args)]
pub(crate) struct AgentArgs {
    /// Relay address, host:port (stored at enrollment; overrides the stored one when given).
    #[arg(long, env = "SEKISHO_RELAY", default_value = "")]
    pub relay: String,
    /// One-time enrollment token (only for the first start).
    #[arg(long, env = "SEKISHO_TOKEN")]
    pub token: Option<String>,
    /// Directory for the agent's keys and enrollment.
    #[arg(long, env = "SEKISHO_STATE_DIR", default_value = "./sekisho-agent")]
    pub state_dir: PathBuf,
    /// HTTP CONNECT proxy to reach the relay through (default: HTTPS_PROXY).
    #[arg(long)]
    pub proxy: Option<String>,
    /// Print status as JSON lines on stdout.
    #[arg(long)]
    pub json_events: bool,
}

#[derive(Debug, Args)]
pub(crate) struct CtlArgs {
    /// Admin API URL of the relay.
    #[arg(long, env = "SEKISHO_URL", default_value = "https://127.0.0.1:7443")]
    pub url: String,
    /// Admin API key.
    #[arg(long, env = "SEKISHO_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// The relay's CA certificate (ca.pem in its data directory).
    #[arg(long, env = "SEKISHO_CA")]
    pub ca: Option<PathBuf>,
    /// Print results as JSON.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: CtlCommand,
}

#[derive(Debug, Subcommand)]
pub(crate) enum CtlCommand {
    /// Enrollment tokens.
    #[command(subcommand)]
    Token(TokenCmd),
    /// Agents.
    #[command(subcommand)]
    Agent(AgentCmd),
    /// Services published by back agents.
    #[command(subcommand)]
    Service(ServiceCmd),
    /// Routes: a front agent's local address leading to a service.
    #[command(subcommand)]
    Route(RouteCmd),
    /// Recent events (refusals, enrollments, stream ends).
    Events {
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum TokenCmd {
    /// Create a one-time enrollment token.
    Create {
        /// Name the agent will have.
        #[arg(long)]
        name: String,
        /// front, back or both.
        #[arg(long, default_value = "both")]
        role: String,
        /// Site label.
        #[arg(long, default_value = "")]
        site: String,
        /// Lifetime, e.g. 30m, 1h, 2d (default 1h).
        #[arg(long, default_value = "1h")]
        ttl: String,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum AgentCmd {
    /// List agents with their online state.
    List,
    /// Revoke an agent (by id or name): its key is refused from now on.
    Revoke { agent: String },
}

#[derive(Debug, Subcommand)]
pub(crate) enum ServiceCmd {
    /// Publish a target through a back agent.
    Create {
        name: String,
        /// Back agent (id or name).
        #[arg(long)]
        agent: String,
        /// tcp://host:port or http://host:port, as seen from the back agent.
        #[arg(long)]
        target: String,
        /// Also expose the service as a TCP port on the relay (ip:port).
        #[arg(long)]
        edge_listen: Option<String>,
    },
    List,
    /// Remove a service (its routes must be removed first).
    Rm {
        name: String,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum RouteCmd {
    /// Open a local address on a front agent that leads to a service.
    Create {
        /// Front agent (id or name).
        #[arg(long)]
        agent: String,
        /// Local address on the front agent, e.g. 127.0.0.1:18080.
        #[arg(long)]
        listen: String,
        /// Service (name or id).
        #[arg(long)]
        service: String,
    },
    List,
    /// Remove a route: its listener closes and its streams are reset.
    Rm {
        id: String,
    },
}

#[derive(Debug, Args)]
pub(crate) struct QuickstartArgs {
    /// Keep state here instead of a temporary directory.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Local port for the demo route (falls back to a free port if taken).
    #[arg(long, default_value_t = 18080)]
    pub port: u16,
    /// Print status as JSON lines on stdout.
    #[arg(long)]
    pub json_events: bool,
}
