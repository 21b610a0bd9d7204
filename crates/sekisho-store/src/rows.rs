//! Row types, one per table, parsed at the store boundary into the domain's types
//! ([`crate::domain`]): closed sets of words as enums, 0/1 flags as booleans (the portable SQL
//! subset has no booleans, so the columns stay `BIGINT`; the API still shows them as 0/1). Times
//! are milliseconds since the epoch.

use serde::{Deserialize, Serialize};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::domain::{AgentId, Protocol, Role, RouteId, ServiceId, TenantId, UserId, flag};

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Tenant {
    pub id: TenantId,
    pub name: String,
    pub max_agents: i64,
    pub retention_days: i64,
    /// The fixed offset used before tenants had zones (e.g. 540 for +09:00); read only when
    /// `time_zone` is empty. Kept current (the zone's offset now) when a zone is set.
    pub utc_offset_minutes: i64,
    pub created_at: i64,
    /// The tenant's IANA zone (`Asia/Tokyo`) or a fixed offset (`+05:30`), for policy time
    /// conditions and what the console shows; see [`Tenant::zone_name`].
    pub time_zone: String,
}

impl Tenant {
    /// The zone in force: `time_zone`, else the legacy offset as `±HH:MM` (Japan's as `Asia/Tokyo`).
    pub fn zone_name(&self) -> String {
        if !self.time_zone.is_empty() {
            return self.time_zone.clone();
        }
        match self.utc_offset_minutes {
            540 => crate::zone::DEFAULT.to_owned(),
            m => crate::zone::offset_name(m),
        }
    }

    /// The zone in force, parsed; a name that no longer parses (edited in the database) falls
    /// back to the tenant's fixed offset, never to another country's clock.
    pub fn zone(&self) -> jiff::tz::TimeZone {
        crate::zone::parse(&self.zone_name())
            .or_else(|| crate::zone::parse(&crate::zone::offset_name(self.utc_offset_minutes)))
            .unwrap_or(jiff::tz::TimeZone::UTC)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct User {
    pub id: UserId,
    pub tenant_id: TenantId,
    pub name: String,
    pub display_name: String,
    #[serde(skip)]
    pub password_hash: String,
    #[serde(skip)]
    pub totp_secret: Option<String>,
    #[serde(serialize_with = "flag::serialize")]
    pub totp_enabled: bool,
    pub failed_logins: i64,
    pub locked_until: Option<i64>,
    pub disabled_at: Option<i64>,
    pub created_at: i64,
    /// The user's own zone for what the console shows them; empty: the tenant's.
    pub time_zone: String,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Group {
    pub id: String,
    pub tenant_id: TenantId,
    pub name: String,
    pub role: String,
    pub created_at: i64,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct ApiKey {
    pub id: String,
    pub tenant_id: TenantId,
    pub name: String,
    #[serde(skip)]
    pub key_hash: String,
    /// Space-separated scopes, e.g. `agents:read routes:write`; `*` is every tenant scope.
    pub scopes: String,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    /// The user the key acts for (a login session or a personal key), if any.
    pub user_id: Option<UserId>,
    /// Comma-separated IPs or CIDRs the key may be used from; empty means anywhere.
    pub allowed_ips: String,
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
    /// A session key ends after this long without use (console and browser sessions).
    pub idle_ms: Option<i64>,
    /// The console session a browser session was minted from: revoking it ends this one too.
    pub parent_id: Option<String>,
    /// A browser session is valid only on this service host, and never on the admin API.
    pub bound_host: Option<String>,
    /// How a session key's user signed in (`password`, `password+totp`, `oidc`); `None` for
    /// keys made with the API.
    pub auth_method: Option<String>,
}

#[derive(Debug, Clone)]
pub struct EnrollmentToken {
    pub id: String,
    pub tenant_id: TenantId,
    pub token_hash: String,
    pub name: String,
    pub role: Role,
    pub site: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub used_at: Option<i64>,
    pub agent_id: Option<AgentId>,
    /// The user an agent enrolled with this token runs for (a personal device).
    pub owner_user_id: Option<UserId>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Agent {
    pub id: AgentId,
    pub tenant_id: TenantId,
    pub name: String,
    pub role: Role,
    pub site: String,
    pub sign_pub: String,
    pub noise_pub: String,
    pub created_at: i64,
    pub last_seen: Option<i64>,
    pub last_addr: Option<String>,
    pub version: Option<String>,
    pub hostname: Option<String>,
    pub revoked_at: Option<i64>,
    pub owner_user_id: Option<UserId>,
}

impl Agent {
    pub fn serves_back(&self) -> bool {
        self.role.serves_back()
    }

    pub fn serves_front(&self) -> bool {
        self.role.serves_front()
    }
}

/// What enrolling adds to the token's facts (tenant, name, role, site, owner): the agent's id
/// and keys, as it proved them, and what it says it runs.
#[derive(Debug, Clone)]
pub struct NewAgent {
    pub id: AgentId,
    /// Hex Ed25519 public key, whose signature over the TLS exporter enrolled it.
    pub sign_pub: String,
    /// Hex X25519 public key for the agents' end-to-end handshake.
    pub noise_pub: String,
    pub hostname: String,
    pub version: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Service {
    pub id: ServiceId,
    pub tenant_id: TenantId,
    pub name: String,
    /// The back agent serving it; `None` only for a gateway (protocol `socks`) whose egress is
    /// the relay itself.
    pub agent_id: Option<AgentId>,
    pub target: String,
    pub protocol: Protocol,
    pub edge_listen: Option<String>,
    pub created_at: i64,
    /// Also published at its browser hostname behind the Sekisho login.
    #[serde(serialize_with = "flag::serialize")]
    pub browser: bool,
}

/// A word column parsed into its enum; a word outside the set fails the row by name.
fn word<T: std::str::FromStr<Err = crate::domain::UnknownWord>>(row: &AnyRow, column: &str) -> Result<T, sqlx::Error> {
    let text: String = row.try_get(column)?;
    text.parse().map_err(|e| sqlx::Error::ColumnDecode { index: column.to_owned(), source: Box::new(e) })
}

fn flag_column(row: &AnyRow, column: &str) -> Result<bool, sqlx::Error> {
    Ok(row.try_get::<i64, _>(column)? != 0)
}

impl<'r> sqlx::FromRow<'r, AnyRow> for Service {
    fn from_row(row: &'r AnyRow) -> Result<Self, sqlx::Error> {
        Ok(Service {
            id: row.try_get("id")?,
            tenant_id: row.try_get("tenant_id")?,
            name: row.try_get("name")?,
            agent_id: row.try_get("agent_id")?,
            target: row.try_get("target")?,
            protocol: word(row, "protocol")?,
            edge_listen: row.try_get("edge_listen")?,
            created_at: row.try_get("created_at")?,
            browser: flag_column(row, "browser")?,
        })
    }
}

impl<'r> sqlx::FromRow<'r, AnyRow> for EnrollmentToken {
    fn from_row(row: &'r AnyRow) -> Result<Self, sqlx::Error> {
        Ok(EnrollmentToken {
            id: row.try_get("id")?,
            tenant_id: row.try_get("tenant_id")?,
            token_hash: row.try_get("token_hash")?,
            name: row.try_get("name")?,
            role: word(row, "role")?,
            site: row.try_get("site")?,
            created_at: row.try_get("created_at")?,
            expires_at: row.try_get("expires_at")?,
            used_at: row.try_get("used_at")?,
            agent_id: row.try_get("agent_id")?,
            owner_user_id: row.try_get("owner_user_id")?,
        })
    }
}

impl<'r> sqlx::FromRow<'r, AnyRow> for Agent {
    fn from_row(row: &'r AnyRow) -> Result<Self, sqlx::Error> {
        Ok(Agent {
            id: row.try_get("id")?,
            tenant_id: row.try_get("tenant_id")?,
            name: row.try_get("name")?,
            role: word(row, "role")?,
            site: row.try_get("site")?,
            sign_pub: row.try_get("sign_pub")?,
            noise_pub: row.try_get("noise_pub")?,
            created_at: row.try_get("created_at")?,
            last_seen: row.try_get("last_seen")?,
            last_addr: row.try_get("last_addr")?,
            version: row.try_get("version")?,
            hostname: row.try_get("hostname")?,
            revoked_at: row.try_get("revoked_at")?,
            owner_user_id: row.try_get("owner_user_id")?,
        })
    }
}

impl<'r> sqlx::FromRow<'r, AnyRow> for User {
    fn from_row(row: &'r AnyRow) -> Result<Self, sqlx::Error> {
        Ok(User {
            id: row.try_get("id")?,
            tenant_id: row.try_get("tenant_id")?,
            name: row.try_get("name")?,
            display_name: row.try_get("display_name")?,
            password_hash: row.try_get("password_hash")?,
            totp_secret: row.try_get("totp_secret")?,
            totp_enabled: flag_column(row, "totp_enabled")?,
            failed_logins: row.try_get("failed_logins")?,
            locked_until: row.try_get("locked_until")?,
            disabled_at: row.try_get("disabled_at")?,
            created_at: row.try_get("created_at")?,
            time_zone: row.try_get("time_zone")?,
        })
    }
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Route {
    pub id: RouteId,
    pub tenant_id: TenantId,
    pub front_agent_id: AgentId,
    pub listen: String,
    pub service_id: ServiceId,
    pub created_at: i64,
}

/// What a forced agent revocation took with it: the routes it fronted (deleted) and the services
/// it served (left without a usable agent).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Detached {
    pub routes: Vec<String>,
    pub services: Vec<String>,
}

/// A service's required and deny conditions, as the admin wrote them (Cedar expressions), and a
/// gateway's domain lists. Stored as JSON arrays; parsed here, once.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PolicyLists {
    pub required: Vec<String>,
    pub deny: Vec<String>,
    /// Domain patterns (gateways).
    pub allow_domains: Vec<String>,
    /// Domain patterns (gateways).
    pub deny_domains: Vec<String>,
}

/// A service's stored policy.
#[derive(Debug, Clone)]
pub struct PolicyRow {
    pub service_id: ServiceId,
    pub tenant_id: TenantId,
    /// The lists, or why the stored text cannot be read (a bad restore, a hand edit): the relay
    /// then denies everything for the service (`policy_unreadable`), and the API shows why.
    pub lists: Result<PolicyLists, String>,
    pub updated_at: i64,
    pub updated_by: String,
}

impl<'r> sqlx::FromRow<'r, AnyRow> for PolicyRow {
    fn from_row(row: &'r AnyRow) -> Result<Self, sqlx::Error> {
        let list = |name: &str| -> Result<Result<Vec<String>, String>, sqlx::Error> {
            let text: String = row.try_get(name)?;
            Ok(serde_json::from_str(&text).map_err(|e| format!("the stored {name} list is not readable: {e}")))
        };
        let (required, deny, allow_domains, deny_domains) =
            (list("required")?, list("deny")?, list("allow_domains")?, list("deny_domains")?);
        let lists = (|| {
            Ok(PolicyLists {
                required: required?,
                deny: deny?,
                allow_domains: allow_domains?,
                deny_domains: deny_domains?,
            })
        })();
        Ok(PolicyRow {
            service_id: row.try_get("service_id")?,
            tenant_id: row.try_get("tenant_id")?,
            lists,
            updated_at: row.try_get("updated_at")?,
            updated_by: row.try_get("updated_by")?,
        })
    }
}

/// The content of one audit event, before it is chained. Text fields are empty when they do
/// not apply; the numbers are set when a stream ends.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct AuditRecord {
    pub tenant_id: String,
    pub at: i64,
    pub kind: String,
    pub subject_kind: String,
    pub subject: String,
    pub path: String,
    pub target: String,
    pub decision: String,
    pub reason: String,
    pub policy_id: String,
    pub auth_method: String,
    pub source_ip: String,
    pub country: String,
    pub bytes_in: Option<i64>,
    pub bytes_out: Option<i64>,
    pub duration_ms: Option<i64>,
    pub detail: String,
    /// An access decision's whole input (JSON: principal, groups, context, policy version), so a
    /// later dry run re-decides from what was known then. Empty for other events, and then left
    /// out of the chain hash's JSON, so events stored before it existed verify unchanged.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub input: String,
    /// The user the event's principal acted for (also when it came through the user's own
    /// agent), so a search by user finds it. Empty when there is none; then left out of the chain
    /// hash's JSON, as `input` is.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub principal_user: String,
    /// The agent (device) the principal came through, or the agent that is the principal.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub principal_agent: String,
    /// The stream an access event belongs to (`<relay>:<run>:<n>`): its `opened` and `closed`
    /// events carry the same id. Empty for other events; then left out of the chain hash's JSON.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub stream_id: String,
    /// `opened` (committed before the stream's first byte was forwarded), `closed` (with its
    /// bytes and duration), or empty for an event that stands alone.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub phase: String,
}

/// A stream whose `opened` event is stored and whose `closed` event is not (yet).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct OpenStream {
    pub stream_id: String,
    /// The relay that forwards it (the first part of its id).
    pub relay: String,
    pub tenant_id: String,
    /// Its `opened` event.
    pub seq: i64,
    pub at: i64,
}

/// An audit event as stored: its place in the tenant's chain and its hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct AuditRow {
    pub seq: i64,
    #[serde(flatten)]
    #[sqlx(flatten)]
    pub record: AuditRecord,
    pub prev_hash: String,
    pub hash: String,
}

/// A signed statement that a tenant's chain had `hash` at `seq`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct Checkpoint {
    pub tenant_id: String,
    pub seq: i64,
    pub hash: String,
    pub at: i64,
    /// `periodic`, or `prune` for the anchor left when old events were removed.
    pub kind: String,
    pub key_id: String,
    pub signature: String,
}

/// A user's SSH public key, for the bastion's first factor.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct SshKey {
    pub id: String,
    pub tenant_id: TenantId,
    pub user_id: UserId,
    pub name: String,
    pub public_key: String,
    pub fingerprint: String,
    pub created_at: i64,
}

/// How the bastion logs in to an SSH or Telnet target. The secret stays sealed and never leaves
/// the relay.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct SshTarget {
    pub service_id: ServiceId,
    pub tenant_id: TenantId,
    pub login: String,
    /// `password`, `key` or `none`.
    pub secret_kind: String,
    #[serde(skip)]
    pub secret: String,
    pub host_key: String,
    pub updated_at: i64,
}

/// One recorded bastion session (a shell, an exec, an SFTP or SCP transfer).
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Recording {
    pub id: String,
    pub tenant_id: TenantId,
    pub session_id: String,
    pub user_name: String,
    pub target: String,
    pub protocol: String,
    pub kind: String,
    pub command: String,
    pub source_ip: String,
    pub started_at: i64,
    pub ended_at: Option<i64>,
    pub bytes: i64,
    pub sha256: String,
    /// JSON `[{"t": seconds, "cmd": "…"}]`.
    pub commands: String,
    /// JSON file operations.
    pub files: String,
}

/// What to look for among recordings; empty fields match everything.
#[derive(Debug, Clone, Default)]
pub struct RecordingFilter {
    pub user: Option<String>,
    pub target: Option<String>,
    pub source_ip: Option<String>,
    pub protocol: Option<String>,
    /// Substring of a typed or exec command.
    pub command: Option<String>,
    pub since: Option<i64>,
    pub until: Option<i64>,
    pub limit: i64,
}

/// A tenant's OpenID Connect provider for web sign-in.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct OidcProvider {
    pub tenant_id: TenantId,
    pub issuer: String,
    pub client_id: String,
    /// Sealed with the relay's master key; never returned by the API.
    #[serde(skip)]
    pub client_secret: String,
    /// Which ID-token claim names the Sekisho user: `preferred_username`, `email` or `sub`.
    pub username_claim: String,
    /// What the sign-in button says, e.g. `Google Workspace`.
    pub label: String,
    pub updated_at: i64,
}
