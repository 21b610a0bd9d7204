//! Row types, one per table.

use serde::Serialize;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ApiKey {
    pub id: String,
    pub tenant_id: String,
    pub name: String,
    pub key_hash: String,
    pub scopes: String,
    pub created_at: i64,
    pub expires_at: Option<i64>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct EnrollmentToken {
    pub id: String,
    pub tenant_id: String,
    pub token_hash: String,
    pub name: String,
    pub role: String,
    pub site: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub used_at: Option<i64>,
    pub agent_id: Option<String>,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Agent {
    pub id: String,
    pub tenant_id: String,
    pub name: String,
    pub role: String,
    pub site: String,
    pub sign_pub: String,
    pub noise_pub: String,
    pub created_at: i64,
    pub last_seen: Option<i64>,
    pub last_addr: Option<String>,
    pub version: Option<String>,
    pub hostname: Option<String>,
    pub revoked_at: Option<i64>,
}

impl Agent {
    pub fn serves_back(&self) -> bool {
        self.role == "back" || self.role == "both"
    }

    pub fn serves_front(&self) -> bool {
        self.role == "front" || self.role == "both"
    }
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Service {
    pub id: String,
    pub tenant_id: String,
    pub name: String,
    pub agent_id: String,
    pub target: String,
    pub protocol: String,
    pub edge_listen: Option<String>,
    pub created_at: i64,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Route {
    pub id: String,
    pub tenant_id: String,
    pub front_agent_id: String,
    pub listen: String,
    pub service_id: String,
    pub created_at: i64,
}

/// An event to record.
#[derive(Debug, Clone, Default, Serialize, sqlx::FromRow)]
pub struct NewEvent {
    pub at: i64,
    pub kind: String,
    pub agent_id: Option<String>,
    pub subject: Option<String>,
    pub target: Option<String>,
    pub decision: String,
    pub reason: String,
    pub source: Option<String>,
    pub bytes_up: Option<i64>,
    pub bytes_down: Option<i64>,
}

/// A recorded event.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Event {
    pub id: i64,
    pub tenant_id: String,
    #[serde(flatten)]
    #[sqlx(flatten)]
    pub event: NewEvent,
}
