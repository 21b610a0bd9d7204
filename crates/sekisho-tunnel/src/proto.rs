//! Messages of the agent protocol, carried as JSON in control frames (connection level) and in
//! open requests (per stream). JSON keeps them readable in logs and easy to evolve; they are a
//! few hundred bytes once per stream, never on the per-byte path.

use serde::{Deserialize, Serialize};

/// First control message of an agent on a new connection.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Hello {
    /// First contact: trade a one-time enrollment token for an agent identity.
    Enroll {
        token: String,
        version: String,
        hostname: String,
        sign_pub: String,
        noise_pub: String,
        /// Signature of the TLS exporter value with the key in `sign_pub`.
        signature: String,
    },
    /// Every later connection: prove possession of the enrolled key.
    Login { agent_id: String, version: String, hostname: String, signature: String },
}

/// Control messages from the relay to an agent.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum RelayMsg {
    Welcome { agent_id: String, name: String, role: String },
    Config(AgentConfig),
    Error { code: String, message: String },
}

/// Control messages from an agent to the relay.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AgentMsg {
    /// A route's local listener opened (`bound`) or failed (`error`), or closed (both `None`).
    RouteStatus { route_id: String, bound: Option<String>, error: Option<String> },
}

/// Everything an agent needs to play its roles; pushed whole on every change.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentConfig {
    pub routes: Vec<RouteConfig>,
    pub services: Vec<ServiceConfig>,
}

/// A local listener of a front agent leading to a service.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteConfig {
    pub id: String,
    pub listen: String,
    pub service: String,
    pub protocol: String,
    /// The back agent serving the service.
    pub peer_agent: String,
    /// The back agent's Noise static key (hex); streams are sealed end to end to it.
    pub peer_key: String,
}

/// A target a back agent forwards to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceConfig {
    pub id: String,
    pub name: String,
    pub target: String,
    pub protocol: String,
}

/// How a stream is sealed end to end.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum E2eOpen {
    /// This stream carries the Noise handshake of a new pair session.
    Handshake { session: u64 },
    /// This stream is sealed with the keys of an established pair session.
    Stream { session: u64, index: u32 },
}

/// Open request of a stream from a front agent to the relay.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenRoute {
    pub route: String,
    pub e2e: Option<E2eOpen>,
}

/// Open request of a stream from the relay to a back agent.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenService {
    pub service: String,
    /// The front agent on the other end, if any (edge streams start at the relay).
    pub from_agent: Option<String>,
    /// That agent's Noise static key (hex).
    pub from_key: Option<String>,
    pub e2e: Option<E2eOpen>,
    /// Gateway egress: the `host:port` to dial, for a service of protocol `socks` only.
    #[serde(default)]
    pub dest: Option<String>,
}

pub fn encode<T: Serialize>(msg: &T) -> bytes::Bytes {
    // Serialising these plain structs cannot fail.
    bytes::Bytes::from(serde_json::to_vec(msg).unwrap_or_default())
}
