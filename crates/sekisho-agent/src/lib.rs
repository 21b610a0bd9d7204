//! The agent: the connector that only ever dials out.
//!
//! On first start it trades a one-time enrollment token for an identity ([`state`]), then keeps
//! one TLS connection to the relay alive forever, reconnecting with jittered backoff
//! ([`link`]). In the **back** role it forwards streams from the relay to the targets of its
//! services ([`back`]); in the **front** role it opens the local listeners of the routes assigned to
//! it and sends what arrives there through the relay ([`front`]). Agent-to-agent streams are
//! sealed end to end ([`pairs`] on the front side).

mod back;
mod front;
mod link;
mod pairs;
mod relay;
pub mod state;

use std::path::PathBuf;

pub use link::run;
use sekisho_tunnel::dial::Proxy;

/// How to run an agent.
#[derive(Debug, Clone)]
pub struct AgentOptions {
    /// `host:port` of the relay.
    pub relay: String,
    /// The enrollment token, needed only until the agent is enrolled.
    pub token: Option<String>,
    pub state_dir: PathBuf,
    pub proxy: Option<Proxy>,
}

/// Things worth telling the person (or test) running the agent.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum AgentEvent {
    Enrolled { agent_id: String, name: String },
    Connected { agent_id: String, name: String, role: String, relay: String },
    Disconnected { relay: String, reason: String, retry_in_ms: u64 },
    RouteListening { route_id: String, service: String, addr: String },
    RouteClosed { route_id: String },
    RouteFailed { route_id: String, error: String },
}

/// Errors that stop the agent (everything else is retried).
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("this agent is not enrolled yet: pass --token with an enrollment token from `sekisho ctl token create`")]
    NotEnrolled,
    #[error("the enrollment token is malformed (expected `skt1.…`)")]
    BadToken,
    #[error("the relay refused this agent ({code}): {message}")]
    Refused { code: String, message: String },
    #[error(transparent)]
    State(#[from] state::StateError),
}

pub type Events = tokio::sync::mpsc::UnboundedSender<AgentEvent>;
