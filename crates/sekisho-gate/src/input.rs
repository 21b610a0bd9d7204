//! What a front door knows about an access, typed: who ([`Subject`]), how they proved it
//! ([`AuthMethod`]), by which path ([`AccessPath`]), from where and when ([`Attempt`]), and what
//! they want ([`Resource`]).

use std::net::IpAddr;

use sekisho_audit::SubjectKind;
use sekisho_policy::{AccessPath, AgentInfo, AuthMethod, Destination, ServiceInfo};
use serde::Serialize;
use time::OffsetDateTime;

/// A fact the door could not read (the store did not answer). The gate denies with its code
/// rather than deciding without it: "no groups" is never a stand-in for "could not read the
/// groups".
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Unreadable {
    /// `store_unavailable`, …
    pub code: &'static str,
    pub message: String,
}

impl Unreadable {
    /// The store could not be asked for `what`.
    pub fn store(what: &str, error: impl std::fmt::Display) -> Self {
        Unreadable { code: "store_unavailable", message: format!("cannot read {what}: {error}") }
    }
}

/// Who is asking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    /// A person, with their groups as the door read them, and the personal agent they came
    /// through (`context.agent`), if any.
    User { name: String, groups: Result<Vec<String>, Unreadable>, via_agent: Option<AgentInfo> },
    /// An agent acting on its own behalf.
    Agent(AgentInfo),
    /// An unauthenticated client of a relay edge port, known by its address.
    Visitor,
    /// Someone the door could not (yet) resolve to a principal, named for the record only (an
    /// agent id that is not in the topology, a user who could not be looked up). Only refusals
    /// are made for them.
    Named { kind: SubjectKind, name: String },
}

impl Subject {
    /// A user with groups that were read.
    pub fn user(name: impl Into<String>, groups: Vec<String>) -> Self {
        Subject::User { name: name.into(), groups: Ok(groups), via_agent: None }
    }

    /// The audit event's subject kind and name.
    pub(crate) fn label(&self, source_ip: IpAddr) -> (SubjectKind, String) {
        match self {
            Subject::User { name, via_agent: Some(a), .. } => {
                (SubjectKind::User, format!("{name} (via agent {})", a.name))
            }
            Subject::User { name, .. } => (SubjectKind::User, name.clone()),
            Subject::Agent(a) => (SubjectKind::Agent, a.name.clone()),
            Subject::Visitor => (SubjectKind::Anonymous, source_ip.to_string()),
            Subject::Named { kind, name } => (*kind, name.clone()),
        }
    }

    /// The principal's user and agent names for the event's own fields (empty where none).
    pub(crate) fn principal(&self) -> (String, String) {
        match self {
            Subject::User { name, via_agent, .. } => {
                (name.clone(), via_agent.as_ref().map_or_else(String::new, |a| a.name.clone()))
            }
            Subject::Agent(a) => (String::new(), a.name.clone()),
            Subject::Visitor => (String::new(), String::new()),
            Subject::Named { kind: SubjectKind::User, name } => (name.clone(), String::new()),
            Subject::Named { kind: SubjectKind::Agent, name } => (String::new(), name.clone()),
            Subject::Named { .. } => (String::new(), String::new()),
        }
    }

    /// The user's name, for users.
    pub fn user_name(&self) -> Option<&str> {
        match self {
            Subject::User { name, .. } => Some(name),
            _ => None,
        }
    }
}

/// Who, how, by which path, from where and when: what a door knows before it knows the target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    pub tenant: sekisho_store::TenantId,
    pub path: AccessPath,
    pub auth: AuthMethod,
    pub subject: Subject,
    pub source_ip: IpAddr,
    /// ISO country of `source_ip` (GeoIP).
    pub country: String,
    /// When, in the tenant's UTC offset (`context.hour`, `weekday`).
    pub at: OffsetDateTime,
    /// The API key (its id) the subject authenticated with, if any: revoking it ends the access.
    pub credential: Option<String>,
}

/// What is asked for: a service and, for gateways, the destination behind it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resource {
    pub service: ServiceInfo,
    pub destination: Option<Destination>,
}

impl Resource {
    pub fn service(name: impl Into<String>, protocol: impl Into<String>) -> Self {
        Resource { service: ServiceInfo { name: name.into(), protocol: protocol.into() }, destination: None }
    }

    /// The audit event's target: the destination for gateways (`example.com:443`), else the service.
    pub(crate) fn label(&self) -> String {
        match &self.destination {
            Some(d) if !d.domain.is_empty() => format!("{}:{}", d.domain, d.port),
            Some(Destination { ip: Some(ip), port, .. }) => std::net::SocketAddr::new(*ip, *port).to_string(),
            _ => self.service.name.clone(),
        }
    }
}

/// The decision's whole input, as kept with its event (`detail.input`), so a later dry run
/// re-decides from what was known then, not from today's groups.
#[derive(Debug, Serialize)]
pub(crate) struct Kept<'a> {
    pub(crate) path: AccessPath,
    pub(crate) auth_method: AuthMethod,
    pub(crate) principal: KeptPrincipal<'a>,
    pub(crate) service: &'a str,
    pub(crate) protocol: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) domain: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) port: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) dest_ip: Option<IpAddr>,
    pub(crate) source_ip: IpAddr,
    pub(crate) country: &'a str,
    /// RFC 3339 in the tenant's offset.
    pub(crate) at: String,
    /// SHA-256 (first 16 hex digits) of the Cedar text that decided; empty when none did.
    pub(crate) policy_version: &'a str,
}

#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum KeptPrincipal<'a> {
    User {
        name: &'a str,
        groups: &'a [String],
        #[serde(skip_serializing_if = "Option::is_none")]
        agent: Option<&'a str>,
    },
    Agent {
        name: &'a str,
        site: &'a str,
        role: &'a str,
    },
    Visitor,
}
