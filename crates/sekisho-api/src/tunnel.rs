//! Agents, enrollment tokens, services and routes of the caller's tenant.

use axum::extract::{Path, Query, State as AxState};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use sekisho_audit::{Decision, EventKind};
use sekisho_store::{Agent, Protocol, Role, Route, Service, now_ms};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::auth::Caller;
use super::{ApiError, Body, S};
use sekisho_door::State;
use sekisho_door::secrets::new_id;
use sekisho_door::topology::Topology;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewToken {
    name: String,
    role: String,
    #[serde(default)]
    site: String,
    ttl_secs: Option<i64>,
    /// Enroll a personal device of this user: its streams act for the user.
    user: Option<String>,
}

pub(crate) async fn create_token(
    AxState(state): AxState<S>,
    Extension(caller): Extension<Caller>,
    body: Body<NewToken>,
) -> Result<impl IntoResponse, ApiError> {
    let Json(req) = body?;
    check_name(&req.name)?;
    let role: Role = req.role.parse().map_err(|_| {
        ApiError::bad_request("invalid_role", format!("role `{}` must be front, back or both", req.role))
    })?;
    let ttl = req.ttl_secs.unwrap_or(3600);
    if !(1..=30 * 86_400).contains(&ttl) {
        return Err(ApiError::bad_request("invalid_ttl", "ttl_secs must be between 1 and 2592000 (30 days)"));
    }
    let owner = match &req.user {
        Some(u) => {
            let user = state
                .store
                .get_user(&caller.tenant, u)
                .await?
                .ok_or_else(|| ApiError::not_found(format!("user `{u}` not found")))?;
            // A personal agent's streams act as its user.
            super::auth::may_act_as(&state, &caller, &user).await?;
            Some(user.id)
        }
        None => None,
    };
    let (token, row) =
        state.create_token(&caller.tenant, &req.name, role, &req.site, ttl, owner.map(Into::into)).await?;
    let command = format!("sekisho agent --relay {} --token {token}", state.public_addr);
    Ok((
        StatusCode::CREATED,
        Json(json!({ "id": row.id, "token": token, "expires_at": row.expires_at, "command": command })),
    ))
}

#[derive(Serialize)]
pub(crate) struct AgentView {
    id: String,
    name: String,
    role: String,
    site: String,
    online: bool,
    version: Option<String>,
    address: Option<String>,
    hostname: Option<String>,
    last_seen: Option<i64>,
    revoked: bool,
    /// Streams open on its relay connection now.
    streams: usize,
    /// The form of its relay link while online: `sekisho/2` (sealed records) or `sekisho/1`
    /// (inside TLS records, agents of earlier versions).
    link: Option<&'static str>,
}

pub(crate) async fn list_agents(
    AxState(state): AxState<S>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<Vec<AgentView>>, ApiError> {
    let agents = state.store.list_agents(&caller.tenant).await?;
    Ok(Json(
        agents
            .into_iter()
            .map(|a| {
                let live = state.hub.info(&a.id);
                let streams = state.hub.conn(&a.id).map_or(0, |c| c.stream_count());
                AgentView {
                    streams,
                    online: live.is_some(),
                    last_seen: if live.is_some() { Some(now_ms()) } else { a.last_seen },
                    address: live.as_ref().map(|l| l.0.to_string()).or(a.last_addr),
                    link: live.as_ref().map(|l| l.2),
                    version: live.map(|l| l.1).or(a.version),
                    revoked: a.revoked_at.is_some(),
                    id: a.id.to_string(),
                    name: a.name,
                    role: a.role.into(),
                    site: a.site,
                    hostname: a.hostname,
                }
            })
            .collect(),
    ))
}

#[derive(Deserialize)]
pub(crate) struct RevokeQuery {
    /// Also while it has routes and services (incident response): its routes are deleted, its
    /// services left without an agent, its streams ended.
    #[serde(default)]
    force: bool,
}

pub(crate) async fn revoke_agent(
    AxState(state): AxState<S>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Query(q): Query<RevokeQuery>,
) -> Result<Response, ApiError> {
    let agent = state.topology().find_agent(&caller.tenant, &id).map(|a| a.id.clone()).map_err(ApiError::not_found)?;
    let detached = state.store.revoke_agent(&caller.tenant, &agent, q.force).await?;
    // The new topology disconnects the agent, which ends every stream on its link.
    state.refresh().await?;
    if !q.force {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    let detail =
        json!({ "agent": agent, "routes_deleted": detached.routes, "services_without_agent": detached.services });
    let event = caller
        .event(EventKind::Admin, Decision::Allow, &state)
        .target(format!("agent {agent}"))
        .reason(format!(
            "agent revoked by force: {} route(s) deleted, {} service(s) left without an agent, its streams ended",
            detached.routes.len(),
            detached.services.len()
        ))
        .detail(detail.to_string());
    if let Err(e) = state.auditor.record_durable(event).await {
        tracing::error!(error = %e, "cannot record a forced agent revocation");
    }
    Ok(Json(detail).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewService {
    name: String,
    /// The back agent; optional only for a gateway (`socks`), whose egress is then the relay.
    #[serde(default)]
    agent: Option<String>,
    target: String,
    edge_listen: Option<String>,
    /// Also publish it at its browser hostname, behind the Sekisho login (`http` targets).
    #[serde(default)]
    browser: bool,
}

#[derive(Serialize)]
pub(crate) struct ServiceView {
    #[serde(flatten)]
    service: Service,
    /// Where a browser reaches it, when it is published for browsers.
    browser_url: Option<String>,
    agent_name: String,
    edge_bound: Option<String>,
    edge_error: Option<String>,
}

/// Parses `tcp://host:port` / `http://host:port` / `https://host:port` / `ssh://host:port` /
/// `telnet://host:port`; returns the protocol.
fn parse_target(target: &str) -> Result<Protocol, ApiError> {
    let bad = || {
        ApiError::bad_request(
            "invalid_target",
            format!("target `{target}` must look like tcp://host:port, http://host:port or ssh://host:port"),
        )
    };
    let (scheme, rest) = target.split_once("://").ok_or_else(bad)?;
    let protocol: Protocol = scheme.parse().map_err(|_| bad())?;
    if protocol == Protocol::Socks {
        return Err(bad());
    }
    let hostport = rest.trim_end_matches('/');
    let (host, port) = hostport.rsplit_once(':').ok_or_else(bad)?;
    if host.is_empty() || port.parse::<u16>().is_err() || hostport.contains('/') {
        return Err(bad());
    }
    Ok(protocol)
}

/// A gateway is created with the target `socks` (or `socks://`): its egress is the relay, or
/// the back agent given.
fn is_gateway_target(target: &str) -> bool {
    matches!(target, "socks" | "socks://" | "socks://relay" | "socks://agent")
}

/// The agent named `key`, if it plays `role` (what `what` needs).
fn agent_in_role<'t>(
    topo: &'t Topology,
    tenant: &str,
    key: &str,
    role: &str,
    what: &str,
    plays: fn(&Agent) -> bool,
) -> Result<&'t Agent, ApiError> {
    let agent = topo.find_agent(tenant, key).map_err(ApiError::not_found)?;
    if !plays(agent) {
        return Err(ApiError::bad_request(
            "wrong_role",
            format!("agent `{}` has role `{}`; {what} need a {role} agent", agent.name, agent.role),
        ));
    }
    Ok(agent)
}

pub(crate) fn check_name(name: &str) -> Result<(), ApiError> {
    let ok = !name.is_empty() && name.len() <= 64 && name.chars().all(|c| c.is_alphanumeric() || "-_.".contains(c));
    if ok {
        Ok(())
    } else {
        Err(ApiError::bad_request(
            "invalid_name",
            format!("name `{name}` must be 1-64 letters, digits, `-`, `_` or `.`"),
        ))
    }
}

pub(crate) async fn create_service(
    AxState(state): AxState<S>,
    Extension(caller): Extension<Caller>,
    body: Body<NewService>,
) -> Result<impl IntoResponse, ApiError> {
    let Json(req) = body?;
    check_name(&req.name)?;
    let gateway = is_gateway_target(&req.target);
    let protocol = if gateway { Protocol::Socks } else { parse_target(&req.target)? };
    let bastion = protocol.is_bastion();
    if let Some(l) = &req.edge_listen {
        if bastion {
            return Err(ApiError::bad_request(
                "invalid_listen",
                "an SSH or Telnet target is reached through the relay's bastion, which records it; it has no edge port",
            ));
        }
        if gateway {
            return Err(ApiError::bad_request(
                "invalid_listen",
                "a gateway is reached at the relay's SOCKS5 port; it has no edge port",
            ));
        }
        l.parse::<std::net::SocketAddr>()
            .map_err(|_| ApiError::bad_request("invalid_listen", format!("edge_listen `{l}` must be ip:port")))?;
        // Which addresses the relay's host listens on is the operator's to say, not a tenant's.
        if !caller.is_system() {
            return Err(ApiError::forbidden(
                "operator_only",
                "edge ports are opened by the relay operator (a key with the `system` scope); ask the operator",
            ));
        }
    }
    let topo = state.topology();
    if req.browser {
        if protocol != Protocol::Http {
            return Err(ApiError::bad_request(
                "invalid_browser",
                "only an `http://` service can be published for browsers (the relay speaks HTTP to it)",
            ));
        }
        let tenant = topo.tenants.get(caller.tenant.as_str()).map_or(caller.tenant.as_str(), |t| t.name.as_str());
        for (what, label) in [("service", req.name.as_str()), ("tenant", tenant)] {
            if !sekisho_door::names::is_host_label(label) {
                return Err(ApiError::bad_request(
                    "invalid_browser",
                    format!(
                        "the {what} name `{label}` cannot be part of a hostname: use lower-case letters, digits and `-`"
                    ),
                ));
            }
        }
    }
    let agent = match &req.agent {
        Some(key) => Some(agent_in_role(&topo, &caller.tenant, key, "back", "services", Agent::serves_back)?),
        None if gateway || bastion => None,
        None => {
            return Err(ApiError::bad_request(
                "missing_agent",
                "a service needs the back agent that serves it (`agent`); only a gateway or an SSH/Telnet target \
                 (reached from the relay) may go without",
            ));
        }
    };
    let target = match (gateway, agent) {
        (true, Some(_)) => "socks://agent".to_owned(),
        (true, None) => "socks://relay".to_owned(),
        (false, _) => req.target,
    };
    let svc = Service {
        id: new_id("sv").into(),
        tenant_id: caller.tenant.clone(),
        name: req.name,
        agent_id: agent.map(|a| a.id.clone()),
        target,
        protocol,
        edge_listen: req.edge_listen,
        created_at: now_ms(),
        browser: req.browser,
    };
    state.store.insert_service(&svc).await?;
    state.refresh().await?;
    Ok((StatusCode::CREATED, Json(service_view(&state, svc))))
}

fn service_view(state: &State, service: Service) -> ServiceView {
    let topo = state.topology();
    let edge = state.edge_status.lock().get(service.id.as_str()).cloned();
    ServiceView {
        agent_name: service
            .agent_id
            .as_ref()
            .and_then(|id| topo.agents.get(id))
            .map(|a| a.name.clone())
            .unwrap_or_default(),
        edge_bound: edge.clone().and_then(Result::ok),
        edge_error: edge.and_then(Result::err),
        browser_url: state.web.service_url(&topo, &service),
        service,
    }
}

pub(crate) async fn list_services(
    AxState(state): AxState<S>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<Vec<ServiceView>>, ApiError> {
    let services = state.store.list_services(&caller.tenant).await?;
    Ok(Json(services.into_iter().map(|s| service_view(&state, s)).collect()))
}

pub(crate) async fn delete_service(
    AxState(state): AxState<S>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    let svc = state.store.delete_service(&caller.tenant, &name).await?;
    state.gate.change_policies(|e| e.remove(&svc.tenant_id, &svc.name));
    state.refresh().await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewRoute {
    agent: String,
    listen: String,
    service: String,
}

#[derive(Serialize)]
pub(crate) struct RouteView {
    #[serde(flatten)]
    route: Route,
    agent_name: String,
    service_name: String,
    bound: Option<String>,
    error: Option<String>,
}

fn route_view(state: &State, route: Route) -> RouteView {
    let topo = state.topology();
    let status = state.route_status.lock().get(route.id.as_str()).cloned().unwrap_or_default();
    RouteView {
        agent_name: topo.agents.get(&route.front_agent_id).map(|a| a.name.clone()).unwrap_or_default(),
        service_name: topo.services.get(&route.service_id).map(|s| s.name.clone()).unwrap_or_default(),
        bound: status.bound,
        error: status.error,
        route,
    }
}

pub(crate) async fn create_route(
    AxState(state): AxState<S>,
    Extension(caller): Extension<Caller>,
    body: Body<NewRoute>,
) -> Result<impl IntoResponse, ApiError> {
    let Json(req) = body?;
    req.listen.parse::<std::net::SocketAddr>().map_err(|_| {
        ApiError::bad_request(
            "invalid_listen",
            format!("listen `{}` must be ip:port, e.g. 127.0.0.1:18080", req.listen),
        )
    })?;
    let topo = state.topology();
    let agent = agent_in_role(&topo, &caller.tenant, &req.agent, "front", "routes", Agent::serves_front)?;
    let svc = topo
        .find_service(&caller.tenant, &req.service)
        .ok_or_else(|| ApiError::not_found(format!("service `{}` not found", req.service)))?;
    if svc.protocol == Protocol::Socks {
        return Err(ApiError::bad_request(
            "gateway_route",
            format!("`{}` is a gateway: clients reach it at the relay's SOCKS5 port, not through a route", svc.name),
        ));
    }
    if svc.protocol.is_bastion() {
        return Err(ApiError::bad_request(
            "bastion_route",
            format!(
                "`{}` is an SSH/Telnet target: it is reached through the relay's bastion, which records every \
                 session, not through a route",
                svc.name
            ),
        ));
    }
    let fixed_port = !req.listen.ends_with(":0");
    if fixed_port && topo.routes.values().any(|r| r.front_agent_id == agent.id && r.listen == req.listen) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            format!("agent `{}` already has a route on `{}`", agent.name, req.listen),
        ));
    }
    let route = Route {
        id: new_id("rt").into(),
        tenant_id: caller.tenant.clone(),
        front_agent_id: agent.id.clone(),
        listen: req.listen,
        service_id: svc.id.clone(),
        created_at: now_ms(),
    };
    state.store.insert_route(&route).await?;
    state.refresh().await?;
    Ok((StatusCode::CREATED, Json(route_view(&state, route))))
}

pub(crate) async fn list_routes(
    AxState(state): AxState<S>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<Vec<RouteView>>, ApiError> {
    let routes = state.store.list_routes(&caller.tenant).await?;
    Ok(Json(routes.into_iter().map(|r| route_view(&state, r)).collect()))
}

pub(crate) async fn delete_route(
    AxState(state): AxState<S>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.store.delete_route(&caller.tenant, &id).await?;
    state.refresh().await?;
    Ok(StatusCode::NO_CONTENT)
}
