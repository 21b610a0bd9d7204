//! What the relay's doors tell the access gate (`sekisho-gate`) about an access: typed attempts
//! built from what each door knows. The gate alone decides and builds the event.
//!
//! The principal of a tunnel stream is the front agent that opened it, or — when that agent was
//! enrolled for a user (a personal device, `ctl token create --user`) — the user, with the agent
//! in `context.agent`. A disabled owner is denied (`user_disabled`). The source address is the
//! front agent's public address as the relay sees it; its country comes from GeoIP.

use std::net::IpAddr;

use sekisho_audit::SubjectKind;
use sekisho_gate::{AccessPath, AgentInfo, Attempt, AuthMethod, Subject, Unreadable};
use sekisho_store::Agent;
use time::{OffsetDateTime, UtcOffset};

use crate::state::State;
use crate::topology::Topology;

/// The tenant's local time now, in its zone (with the offset that zone has today: daylight
/// saving included).
pub fn tenant_now(topo: &Topology, tenant: &str) -> OffsetDateTime {
    tenant_time(topo, tenant, OffsetDateTime::now_utc())
}

/// `at` on the tenant's clock: the offset its zone had at that instant.
pub fn tenant_time(topo: &Topology, tenant: &str, at: OffsetDateTime) -> OffsetDateTime {
    let ms = i64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(0);
    let minutes = sekisho_store::zone::offset_at(&topo.zone(tenant), ms);
    let offset = UtcOffset::from_whole_seconds(minutes as i32 * 60).unwrap_or(UtcOffset::UTC);
    at.to_offset(offset)
}

pub fn agent_info(a: &Agent) -> AgentInfo {
    AgentInfo { name: a.name.clone(), site: a.site.clone(), role: a.role.as_str().to_owned() }
}

/// An attempt of `path` in `tenant` by `subject` from `source`, now.
pub fn attempt(
    state: &State,
    topo: &Topology,
    tenant: &str,
    path: AccessPath,
    auth: AuthMethod,
    subject: Subject,
    source: IpAddr,
) -> Attempt {
    Attempt {
        tenant: tenant.to_owned().into(),
        path,
        auth,
        subject,
        source_ip: source,
        country: state.geo.country(source),
        at: tenant_now(topo, tenant),
        credential: None,
    }
}

/// A stream that `front` (or the agent id `from`, when it is not in the topology) opened, from
/// `source`.
pub fn tunnel(state: &State, topo: &Topology, front: Option<&Agent>, from: &str, source: IpAddr) -> Attempt {
    let (tenant, subject) = match front {
        None => ("default", Subject::Named { kind: SubjectKind::Agent, name: from.to_owned() }),
        Some(front) => {
            let subject = match front.owner_user_id.as_ref().map(|id| (id, topo.owners.get(id))) {
                None => Subject::Agent(agent_info(front)),
                Some((_, Some(u))) => Subject::User {
                    name: u.name.clone(),
                    groups: if u.disabled {
                        Err(Unreadable { code: "user_disabled", message: "the agent's user is disabled".into() })
                    } else {
                        Ok(u.groups.clone())
                    },
                    via_agent: Some(agent_info(front)),
                },
                // The owner is not in the snapshot (deleted, or the store did not answer then).
                Some((id, None)) => Subject::User {
                    name: id.to_string(),
                    groups: Err(Unreadable { code: "user_unknown", message: "the agent's user is not known".into() }),
                    via_agent: Some(agent_info(front)),
                },
            };
            (front.tenant_id.as_str(), subject)
        }
    };
    attempt(state, topo, tenant, AccessPath::Tunnel, AuthMethod::AgentKey, subject, source)
}
