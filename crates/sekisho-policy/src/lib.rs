//! Sekisho's decision plane: every access (tunnel stream, and later browser, SSH and SOCKS sessions) is
//! decided here, by Cedar.
//!
//! Per service an admin sets *required* conditions (all must hold) and *deny* conditions (any holding
//! denies), each a Cedar boolean expression over [`SCHEMA`] such as `principal in Group::"ops"` or
//! `context.country == "JP"`. [`Engine::compile`] turns them into validated Cedar policies (reporting
//! problems at the admin's own line and column), [`Engine::decide`] answers one [`AccessRequest`] with a
//! [`Decision`] whose policy id and reason are stable enough for audit logs and deny pages, and [`geo`]
//! supplies `context.country`. This crate does no network or database I/O: loading policies from the
//! store and applying decisions is the relay's job.

mod access;
mod compile;
mod engine;
pub mod geo;
mod nesting;
mod schema;

pub use access::{AccessPath, AuthMethod, UnknownWord};
pub use compile::{
    CompiledPolicy, ConditionKind, Diagnostic, MAX_CONDITIONS, MAX_DOMAINS, PolicyError, ServicePolicy, domain_pattern,
};
pub use engine::{
    AccessRequest, AgentInfo, DEFAULT_DENY, Decision, Destination, Engine, POLICY_UNREADABLE, Principal, REQUEST_ERROR,
    ServiceInfo,
};
pub use nesting::{MAX_CONDITION_LEN, MAX_NESTING};
pub use schema::SCHEMA;
