//! Turning a relayed stream into a Cedar request, and its decision into an audit event.
//!
//! The principal of a tunnel stream is the front agent that opened it, or — when that agent was
//! enrolled for a user (a personal device, `ctl token create --user`) — the user, with the agent
//! in `context.agent`. A disabled owner is denied before policy. The source address is the front
//! agent's public address as the relay sees it; its country comes from GeoIP.

use std::net::IpAddr;

use sekisho_audit::{Decision as AuditDecision, Event, EventKind, SubjectKind};
use sekisho_policy::{AccessRequest, AgentInfo, Decision, Principal, ServiceInfo};
use sekisho_store::{Agent, Service};
use time::{OffsetDateTime, UtcOffset};

use crate::state::State;
use crate::topology::Topology;

/// The tenant's local time now.
pub(crate) fn tenant_now(topo: &Topology, tenant: &str) -> OffsetDateTime {
    let offset = UtcOffset::from_whole_seconds(topo.utc_offset(tenant) as i32 * 60).unwrap_or(UtcOffset::UTC);
    OffsetDateTime::now_utc().to_offset(offset)
}

fn agent_info(a: &Agent) -> AgentInfo {
    AgentInfo { name: a.name.clone(), site: a.site.clone(), role: a.role.clone() }
}

/// The access event of a decision about `svc` (the caller names the subject).
fn access_event(svc: &Service, decision: &Decision, path: &str, auth: &str, source: IpAddr, country: String) -> Event {
    Event::new(
        &svc.tenant_id,
        EventKind::Access,
        if decision.allowed { AuditDecision::Allow } else { AuditDecision::Deny },
    )
    .path(path)
    .target(svc.name.clone())
    .policy(decision.policy_id.clone())
    .reason(decision.reason.clone())
    .auth(auth)
    .source(source, country)
}

/// Decides a stream that `front` opened towards `svc`, from `source`.
pub(crate) fn tunnel(
    state: &State,
    topo: &Topology,
    front: &Agent,
    svc: &Service,
    source: IpAddr,
) -> (Decision, Event) {
    let country = state.geo.country(source);
    let owner = front.owner_user_id.as_ref().and_then(|id| topo.owners.get(id));
    let (principal, via_agent, subject) = match owner {
        Some(u) => (
            Principal::User { name: u.name.clone(), groups: u.groups.clone() },
            Some(agent_info(front)),
            (SubjectKind::User, format!("{} (via agent {})", u.name, front.name)),
        ),
        None => (
            Principal::Agent { name: front.name.clone(), site: front.site.clone(), role: front.role.clone() },
            None,
            (SubjectKind::Agent, front.name.clone()),
        ),
    };
    let decision = if owner.is_some_and(|u| u.disabled) {
        Decision { allowed: false, policy_id: "user-disabled".into(), reason: "the agent's user is disabled".into() }
    } else {
        let req = AccessRequest {
            tenant: svc.tenant_id.clone(),
            principal,
            via_agent,
            service: ServiceInfo { name: svc.name.clone(), protocol: svc.protocol.clone() },
            source_ip: source,
            country: country.clone(),
            at: tenant_now(topo, &svc.tenant_id),
            auth_method: "agent_key".into(),
            path: "tunnel".into(),
            destination: None,
        };
        state.policy.read().decide(&req)
    };
    let event = access_event(svc, &decision, "tunnel", "agent_key", source, country).subject(subject.0, subject.1);
    (decision, event)
}

/// Decides a plain TCP connection from `source` to a relay edge port of `svc`. The principal is
/// the unauthenticated `Visitor::"<ip>"`; conditions on `context.source_ip` and
/// `context.country` are what guard edge ports.
pub(crate) fn edge(state: &State, topo: &Topology, svc: &Service, source: IpAddr) -> (Decision, Event) {
    let country = state.geo.country(source);
    let req = AccessRequest {
        tenant: svc.tenant_id.clone(),
        principal: Principal::Visitor { ip: source.to_string() },
        via_agent: None,
        service: ServiceInfo { name: svc.name.clone(), protocol: svc.protocol.clone() },
        source_ip: source,
        country: country.clone(),
        at: tenant_now(topo, &svc.tenant_id),
        auth_method: "none".into(),
        path: "edge".into(),
        destination: None,
    };
    let decision = state.policy.read().decide(&req);
    let event = access_event(svc, &decision, "edge", "none", source, country)
        .subject(SubjectKind::Anonymous, source.to_string());
    (decision, event)
}

/// Decides one request of a signed-in browser user to a service published for browsers.
pub(crate) fn browser(
    state: &State,
    topo: &Topology,
    svc: &Service,
    user: &crate::web::EdgeUser,
    source: IpAddr,
) -> (Decision, Event) {
    let country = state.geo.country(source);
    let req = AccessRequest {
        tenant: svc.tenant_id.clone(),
        principal: Principal::User { name: user.name.clone(), groups: user.groups.clone() },
        via_agent: None,
        service: ServiceInfo { name: svc.name.clone(), protocol: svc.protocol.clone() },
        source_ip: source,
        country: country.clone(),
        at: tenant_now(topo, &svc.tenant_id),
        auth_method: user.auth_method.into(),
        path: "browser".into(),
        destination: None,
    };
    let decision = state.policy.read().decide(&req);
    let event = access_event(svc, &decision, "browser", user.auth_method, source, country)
        .subject(SubjectKind::User, user.name.clone());
    (decision, event)
}
