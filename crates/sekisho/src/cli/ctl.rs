//! `sekisho ctl`'s grammar: the admin API's commands.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::{RecordingCmd, SshKeyCmd};

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
    /// Tenants (relay operator key only).
    #[command(subcommand)]
    Tenant(TenantCmd),
    /// Users who log in with a password and TOTP.
    #[command(subcommand)]
    User(UserCmd),
    /// Groups: a role for their members.
    #[command(subcommand)]
    Group(GroupCmd),
    /// API keys of this tenant.
    #[command(subcommand)]
    Apikey(ApiKeyCmd),
    /// Service policies: required and deny conditions.
    #[command(subcommand)]
    Policy(PolicyCmd),
    /// The audit log: search, export and verify.
    #[command(subcommand)]
    Audit(CtlAuditCmd),
    /// SSH bastion recordings: search, replay, live view, termination.
    #[command(subcommand)]
    Recording(RecordingCmd),
    /// The tenant's OpenID Connect provider for web sign-in (single sign-on).
    #[command(subcommand)]
    Oidc(OidcCmd),
    /// Log in as a user (password read from stdin) and print a session key; needs no API key.
    Login {
        /// The tenant's name.
        #[arg(long, default_value = "default")]
        tenant: String,
        /// The user's name.
        #[arg(long)]
        user: String,
        /// The current code of the user's authenticator app.
        #[arg(long, conflicts_with = "recovery_code")]
        totp: Option<String>,
        /// One of the user's recovery codes (each works once).
        #[arg(long)]
        recovery_code: Option<String>,
    },
    /// Old name of `audit search`.
    #[command(hide = true)]
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
        /// Enroll a personal device of this user: its streams act for the user.
        #[arg(long)]
        user: Option<String>,
    },
}

/// Plan settings of a tenant; unset fields keep their value (or the relay's default).
#[derive(Debug, Args)]
pub(crate) struct TenantPlan {
    /// Most agents the tenant may enroll (relay default 100).
    #[arg(long)]
    pub max_agents: Option<i64>,
    /// Days audit events are kept (relay default 90).
    #[arg(long)]
    pub retention_days: Option<i64>,
    /// The tenant's time zone for policy time conditions and what its console shows: an IANA
    /// name such as Asia/Tokyo (the relay's default) or Europe/Berlin, or an offset such as +05:30.
    #[arg(long, allow_hyphen_values = true, conflicts_with = "utc_offset")]
    pub time_zone: Option<String>,
    /// A fixed offset instead of a zone, e.g. +09:00 or -05:30 (no daylight saving).
    #[arg(long, allow_hyphen_values = true)]
    pub utc_offset: Option<String>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum TenantCmd {
    /// Create a tenant and print its first admin key (shown once).
    Create {
        /// The tenant's name.
        name: String,
        #[command(flatten)]
        plan: TenantPlan,
    },
    /// List the tenants.
    List,
    /// Change a tenant's plan.
    Set {
        /// The tenant's name.
        name: String,
        #[command(flatten)]
        plan: TenantPlan,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum UserCmd {
    /// Add a user; the password (10 characters or more) is read from stdin.
    Add {
        /// The user's name.
        name: String,
        /// The name shown for the user.
        #[arg(long, default_value = "")]
        display_name: String,
        /// Group to join (repeatable).
        #[arg(long = "group")]
        groups: Vec<String>,
        /// Read the password from stdin without prompting (for scripts).
        #[arg(long)]
        password_stdin: bool,
    },
    /// List the users.
    List,
    /// Remove a user.
    Rm {
        /// The user's name.
        name: String,
    },
    /// Set a user's password (read from stdin).
    Passwd {
        /// The user's name.
        name: String,
    },
    /// Enroll (or re-enroll) TOTP: prints the secret, its otpauth URL and ten recovery codes, once.
    Totp {
        /// The user's name.
        name: String,
    },
    /// Unlock a user locked after failed logins.
    Unlock {
        /// The user's name.
        name: String,
    },
    /// A user's SSH public keys, for the bastion.
    #[command(subcommand)]
    SshKey(SshKeyCmd),
}

#[derive(Debug, Subcommand)]
pub(crate) enum GroupCmd {
    /// Add a group whose members get a role.
    Add {
        /// The group's name.
        name: String,
        /// The role its members get.
        #[arg(long, value_parser = ["admin", "operator", "auditor", "member"])]
        role: String,
    },
    /// List the groups.
    List,
    /// Remove a group.
    Rm {
        /// The group's name.
        name: String,
    },
    /// Group membership.
    #[command(subcommand)]
    Member(MemberCmd),
}

#[derive(Debug, Subcommand)]
pub(crate) enum MemberCmd {
    /// Add a user to a group.
    Add {
        /// The group's name.
        group: String,
        /// The user's name.
        user: String,
    },
    /// Remove a user from a group.
    Rm {
        /// The group's name.
        group: String,
        /// The user's name.
        user: String,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum ApiKeyCmd {
    /// Create an API key and print it (shown once).
    Create {
        /// The key's name.
        name: String,
        /// Scope, e.g. agents:read (repeatable or comma separated; `*` is every scope you hold).
        #[arg(long = "scope", required = true, value_delimiter = ',')]
        scopes: Vec<String>,
        /// Lifetime: 30m, 12h, 30d or 2w (a unit is required). Default: never.
        #[arg(long, visible_alias = "expires")]
        ttl: Option<String>,
        /// Address or CIDR the key may be used from (repeatable; default anywhere).
        #[arg(long = "allow-ip")]
        allow_ips: Vec<String>,
        /// Make it a personal key of this user.
        #[arg(long)]
        user: Option<String>,
    },
    /// List the API keys.
    List,
    /// Revoke a key by id.
    Revoke {
        /// The key's id.
        id: String,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum PolicyCmd {
    /// Set a service's policy; prints the Cedar it compiles to.
    Set {
        /// The service's name.
        service: String,
        /// Cedar condition that must hold (repeatable), e.g. 'principal in Group::"eng"'.
        #[arg(long = "require")]
        required: Vec<String>,
        /// Cedar condition that denies when it holds (repeatable).
        #[arg(long = "deny")]
        deny: Vec<String>,
        /// Gateways: only these destination domains (repeatable; `example.com` includes its
        /// subdomains, `*.example.com` only them).
        #[arg(long = "allow-domain")]
        allow_domains: Vec<String>,
        /// Gateways: deny these destination domains (repeatable, same patterns).
        #[arg(long = "deny-domain")]
        deny_domains: Vec<String>,
        /// JSON file {"required": [...], "deny": [...], "allow_domains": [...], "deny_domains": [...]}
        /// (its entries come first).
        #[arg(long)]
        file: Option<PathBuf>,
    },
    /// Show a service's policy and its Cedar.
    Show {
        /// The service's name.
        service: String,
    },
    /// List the policies.
    List,
    /// Remove a service's policy (everything is then denied).
    Rm {
        /// The service's name.
        service: String,
    },
    /// Decide a made-up request (dry run); exit 0 for allow and deny alike.
    Test {
        /// The service's name.
        #[arg(long)]
        service: String,
        /// The user's name.
        #[arg(long, required_unless_present = "agent")]
        user: Option<String>,
        /// The agent (alone: as the principal; with --user: the device the user comes through).
        #[arg(long)]
        agent: Option<String>,
        /// The source IP address.
        #[arg(long)]
        ip: std::net::IpAddr,
        /// RFC 3339 time, e.g. 2026-11-23T09:00+09:00 (default now).
        #[arg(long)]
        at: Option<String>,
        /// tunnel, web, ssh, … (default tunnel).
        #[arg(long)]
        path: Option<String>,
        /// e.g. password+totp (default from the principal).
        #[arg(long)]
        auth_method: Option<String>,
        /// Gateways: the destination domain.
        #[arg(long)]
        domain: Option<String>,
        /// Gateways: the destination port.
        #[arg(long)]
        port: Option<u16>,
        /// Gateways: the destination address.
        #[arg(long)]
        dest_ip: Option<std::net::IpAddr>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum AuditFormat {
    Table,
    Json,
    Jsonl,
    Csv,
}

#[derive(Debug, Default, Args)]
pub(crate) struct AuditQuery {
    /// From this time (RFC 3339 such as 2026-11-23T09:00+09:00, a date, or ms since the epoch).
    #[arg(long)]
    pub from: Option<String>,
    /// Up to (not including) this time; same forms as --from.
    #[arg(long)]
    pub to: Option<String>,
    /// Subject: a user, agent or API key.
    #[arg(long)]
    pub user: Option<String>,
    /// Target: a service (or an admin request).
    #[arg(long)]
    pub service: Option<String>,
    /// Gateway connections to this domain or its subdomains.
    #[arg(long)]
    pub domain: Option<String>,
    /// The decision: allow or deny.
    #[arg(long, value_parser = ["allow", "deny"])]
    pub decision: Option<String>,
    /// Source IP address.
    #[arg(long)]
    pub ip: Option<String>,
    /// Country code of the source.
    #[arg(long)]
    pub country: Option<String>,
    /// Event kind, e.g. access, login, admin.
    #[arg(long)]
    pub kind: Option<String>,
    /// Access path: tunnel, web, ssh, api, ….
    #[arg(long)]
    pub path: Option<String>,
    /// Most events to return, newest first (relay default 100).
    #[arg(long)]
    pub limit: Option<u32>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum CtlAuditCmd {
    /// Search the audit log, newest first.
    Search {
        #[command(flatten)]
        query: Box<AuditQuery>,
        /// Output format (with --json, table becomes json).
        #[arg(long, value_enum, default_value = "table")]
        format: AuditFormat,
        /// Write to this file instead of stdout.
        #[arg(long)]
        output: Option<PathBuf>,
        /// Show table times in this zone (Asia/Tokyo, Europe/Berlin) or at this offset (+09:00);
        /// default: your own zone, else your tenant's.
        #[arg(long, allow_hyphen_values = true)]
        tz: Option<String>,
    },
    /// Check the hash chain and signed checkpoints; exit 1 if anything was tampered with.
    Verify {
        /// Every tenant's chain (relay operator key only).
        #[arg(long)]
        all: bool,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum AgentCmd {
    /// List the agents with their online state.
    List,
    /// Revoke an agent (by id or name): its key is refused from now on.
    Revoke {
        /// The agent's id or name.
        agent: String,
        /// Also while it has routes or services (incident response): its streams end, the routes
        /// it fronts are deleted, the services it serves are left without an agent.
        #[arg(long)]
        force: bool,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum ServiceCmd {
    /// Publish a target through a back agent, or create a SOCKS5 gateway (`--target socks`).
    Create {
        /// The service's name.
        name: String,
        /// Back agent (id or name); a gateway without one egresses from the relay.
        #[arg(long)]
        agent: Option<String>,
        /// tcp://, http://, ssh:// or telnet://host:port, as seen from the back agent (or the relay
        /// for an SSH/Telnet target without agent); `socks` for a gateway.
        #[arg(long)]
        target: String,
        /// Also expose the service as a TCP port on the relay (ip:port).
        #[arg(long)]
        edge_listen: Option<String>,
        /// Also publish an http:// service for browsers at `<service>.<tenant>.<web domain>`,
        /// behind the Sekisho sign-in.
        #[arg(long)]
        browser: bool,
    },
    /// List the services.
    List,
    /// Remove a service (its routes must be removed first).
    Rm {
        /// The service's name.
        name: String,
    },
    /// Set how the bastion logs in to an SSH or Telnet target (the secret is sealed on the
    /// relay and never shown again).
    Login {
        /// The service's name.
        name: String,
        /// The account on the target (with `--agent-forwarding`, omit it to let each user log in
        /// as her own user name).
        #[arg(long, required_unless_present_any = ["show", "agent_forwarding"])]
        login: Option<String>,
        /// Read the target password from stdin.
        #[arg(long, conflicts_with = "key_file")]
        password_stdin: bool,
        /// An unencrypted OpenSSH private key for the target.
        #[arg(long)]
        key_file: Option<PathBuf>,
        /// Log in with the user's own key from her forwarded agent (`ssh -A`); no secret is stored.
        #[arg(long, conflicts_with_all = ["password_stdin", "key_file"])]
        agent_forwarding: bool,
        /// Pin the target's host key (`ssh-ed25519 AAAA…`); otherwise the first one seen is pinned.
        #[arg(long)]
        host_key: Option<String>,
        /// Show the current login (never the secret).
        #[arg(long)]
        show: bool,
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
    /// List the routes.
    List,
    /// Remove a route: its listener closes and its streams are reset.
    Rm {
        /// The route's id.
        id: String,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum OidcCmd {
    /// Set the provider (the client secret is read from stdin and kept sealed).
    Set {
        /// The issuer URL (its `/.well-known/openid-configuration` is read).
        #[arg(long)]
        issuer: String,
        /// The client id the provider gave.
        #[arg(long)]
        client_id: String,
        /// Which ID-token claim names the Sekisho user: preferred_username or sub.
        #[arg(long, default_value = "preferred_username")]
        claim: String,
        /// What the sign-in page calls it.
        #[arg(long, default_value = "")]
        label: String,
    },
    /// Show the provider.
    Show,
    /// Remove the provider.
    Rm,
}
