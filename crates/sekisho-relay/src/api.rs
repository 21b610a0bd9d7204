//! The admin API: JSON over HTTPS under `/api/v1`, authenticated with an API key
//! (`Authorization: Bearer sk_…`). `sekisho ctl` and (later) the web console use only this.

mod error;

use std::sync::Arc;

use axum::extract::{Path, Query, Request, State as AxState};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
pub(crate) use error::ApiError;
use sekisho_store::{Agent, Route, Service, StoreError, now_ms};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::secrets::{hash_secret, new_id};
use crate::state::State;
use crate::topology::Topology;

type S = Arc<State>;

pub(crate) fn router(state: S) -> Router {
    let authed = Router::new()
        .route("/enrollment-tokens", post(create_token))
        .route("/agents", get(list_agents))
        .route("/agents/{id}", delete(revoke_agent))
        .route("/services", get(list_services).post(create_service))
        .route("/services/{name}", delete(delete_service))
        .route("/routes", get(list_routes).post(create_route))
        .route("/routes/{id}", delete(delete_route))
        .route("/events", get(list_events))
        .layer(axum::middleware::from_fn_with_state(state.clone(), authenticate));
    Router::new()
        .route("/api/v1/health", get(health))
        .nest("/api/v1", authed)
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint") })
        .with_state(state)
}

async fn authenticate(AxState(state): AxState<S>, req: Request, next: Next) -> Response {
    let header = req.headers().get(axum::http::header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    let Some(key) = header.and_then(|h| h.strip_prefix("Bearer ")) else {
        return ApiError::unauthenticated("missing API key: send `Authorization: Bearer <key>`").into_response();
    };
    match state.store.find_api_key(&hash_secret(key.trim())).await {
        Ok(Some(k)) if k.expires_at.is_none_or(|t| t > now_ms()) => next.run(req).await,
        Ok(Some(_)) => ApiError::unauthenticated("API key has expired").into_response(),
        Ok(None) => ApiError::unauthenticated("API key is not valid").into_response(),
        Err(e) => ApiError::from(e).into_response(),
    }
}

async fn health(AxState(state): AxState<S>) -> Json<serde_json::Value> {
    Json(
        json!({ "status": "ok", "version": env!("CARGO_PKG_VERSION"), "agents_online": state.hub.online_count(), "streams_open": state.hub.stream_count() }),
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewToken {
    name: String,
    role: String,
    #[serde(default)]
    site: String,
    ttl_secs: Option<i64>,
}

async fn create_token(
    AxState(state): AxState<S>,
    body: Result<Json<NewToken>, axum::extract::rejection::JsonRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let Json(req) = body.map_err(ApiError::from)?;
    check_name(&req.name)?;
    if !["front", "back", "both"].contains(&req.role.as_str()) {
        return Err(ApiError::bad_request("invalid_role", format!("role `{}` must be front, back or both", req.role)));
    }
    let ttl = req.ttl_secs.unwrap_or(3600);
    if !(1..=30 * 86_400).contains(&ttl) {
        return Err(ApiError::bad_request("invalid_ttl", "ttl_secs must be between 1 and 2592000 (30 days)"));
    }
    let (token, row) = state.create_token(&req.name, &req.role, &req.site, ttl).await?;
    let command = format!("sekisho agent --relay {} --token {token}", state.public_addr);
    Ok((
        StatusCode::CREATED,
        Json(json!({ "id": row.id, "token": token, "expires_at": row.expires_at, "command": command })),
    ))
}

#[derive(Serialize)]
struct AgentView {
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
}

async fn list_agents(AxState(state): AxState<S>) -> Result<Json<Vec<AgentView>>, ApiError> {
    let agents = state.store.list_agents().await?;
    Ok(Json(
        agents
            .into_iter()
            .map(|a| {
                let live = state.hub.info(&a.id);
                AgentView {
                    online: live.is_some(),
                    last_seen: if live.is_some() { Some(now_ms()) } else { a.last_seen },
                    address: live.as_ref().map(|l| l.0.to_string()).or(a.last_addr),
                    version: live.map(|l| l.1).or(a.version),
                    revoked: a.revoked_at.is_some(),
                    id: a.id,
                    name: a.name,
                    role: a.role,
                    site: a.site,
                    hostname: a.hostname,
                }
            })
            .collect(),
    ))
}

async fn revoke_agent(AxState(state): AxState<S>, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    let agent = state.topology().find_agent(&id).map(|a| a.id.clone()).map_err(ApiError::not_found)?;
    state.store.revoke_agent(&agent).await?;
    state.refresh().await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewService {
    name: String,
    agent: String,
    target: String,
    edge_listen: Option<String>,
}

#[derive(Serialize)]
struct ServiceView {
    #[serde(flatten)]
    service: Service,
    agent_name: String,
    edge_bound: Option<String>,
    edge_error: Option<String>,
}

/// Parses `tcp://host:port` / `http://host:port` / `https://host:port`; returns the protocol.
fn parse_target(target: &str) -> Result<String, ApiError> {
    let bad = || {
        ApiError::bad_request(
            "invalid_target",
            format!("target `{target}` must look like tcp://host:port or http://host:port"),
        )
    };
    let (scheme, rest) = target.split_once("://").ok_or_else(bad)?;
    if !["tcp", "http", "https"].contains(&scheme) {
        return Err(bad());
    }
    let hostport = rest.trim_end_matches('/');
    let (host, port) = hostport.rsplit_once(':').ok_or_else(bad)?;
    if host.is_empty() || port.parse::<u16>().is_err() || hostport.contains('/') {
        return Err(bad());
    }
    Ok(scheme.to_owned())
}

/// The agent named `key`, if it plays `role` (what `what` needs).
fn agent_in_role<'t>(
    topo: &'t Topology,
    key: &str,
    role: &str,
    what: &str,
    plays: fn(&Agent) -> bool,
) -> Result<&'t Agent, ApiError> {
    let agent = topo.find_agent(key).map_err(ApiError::not_found)?;
    if !plays(agent) {
        return Err(ApiError::bad_request(
            "wrong_role",
            format!("agent `{}` has role `{}`; {what} need a {role} agent", agent.name, agent.role),
        ));
    }
    Ok(agent)
}

fn check_name(name: &str) -> Result<(), ApiError> {
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

async fn create_service(
    AxState(state): AxState<S>,
    body: Result<Json<NewService>, axum::extract::rejection::JsonRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let Json(req) = body.map_err(ApiError::from)?;
    check_name(&req.name)?;
    let protocol = parse_target(&req.target)?;
    if let Some(l) = &req.edge_listen {
        l.parse::<std::net::SocketAddr>()
            .map_err(|_| ApiError::bad_request("invalid_listen", format!("edge_listen `{l}` must be ip:port")))?;
    }
    let topo = state.topology();
    let agent = agent_in_role(&topo, &req.agent, "back", "services", Agent::serves_back)?;
    let svc = Service {
        id: new_id("sv"),
        tenant_id: "default".into(),
        name: req.name,
        agent_id: agent.id.clone(),
        target: req.target,
        protocol,
        edge_listen: req.edge_listen,
        created_at: now_ms(),
    };
    state.store.insert_service(&svc).await?;
    state.refresh().await?;
    Ok((StatusCode::CREATED, Json(service_view(&state, svc))))
}

fn service_view(state: &State, service: Service) -> ServiceView {
    let topo = state.topology();
    let edge = state.edges.status(&service.id);
    ServiceView {
        agent_name: topo.agents.get(&service.agent_id).map(|a| a.name.clone()).unwrap_or_default(),
        edge_bound: edge.clone().and_then(Result::ok),
        edge_error: edge.and_then(Result::err),
        service,
    }
}

async fn list_services(AxState(state): AxState<S>) -> Result<Json<Vec<ServiceView>>, ApiError> {
    let services = state.store.list_services().await?;
    Ok(Json(services.into_iter().map(|s| service_view(&state, s)).collect()))
}

async fn delete_service(AxState(state): AxState<S>, Path(name): Path<String>) -> Result<StatusCode, ApiError> {
    state.store.delete_service(&name).await?;
    state.refresh().await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewRoute {
    agent: String,
    listen: String,
    service: String,
}

#[derive(Serialize)]
struct RouteView {
    #[serde(flatten)]
    route: Route,
    agent_name: String,
    service_name: String,
    bound: Option<String>,
    error: Option<String>,
}

fn route_view(state: &State, route: Route) -> RouteView {
    let topo = state.topology();
    let status = state.route_status.lock().get(&route.id).cloned().unwrap_or_default();
    RouteView {
        agent_name: topo.agents.get(&route.front_agent_id).map(|a| a.name.clone()).unwrap_or_default(),
        service_name: topo.services.get(&route.service_id).map(|s| s.name.clone()).unwrap_or_default(),
        bound: status.bound,
        error: status.error,
        route,
    }
}

async fn create_route(
    AxState(state): AxState<S>,
    body: Result<Json<NewRoute>, axum::extract::rejection::JsonRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let Json(req) = body.map_err(ApiError::from)?;
    req.listen.parse::<std::net::SocketAddr>().map_err(|_| {
        ApiError::bad_request(
            "invalid_listen",
            format!("listen `{}` must be ip:port, e.g. 127.0.0.1:18080", req.listen),
        )
    })?;
    let topo = state.topology();
    let agent = agent_in_role(&topo, &req.agent, "front", "routes", Agent::serves_front)?;
    let svc = topo
        .find_service(&req.service)
        .ok_or_else(|| ApiError::not_found(format!("service `{}` not found", req.service)))?;
    let fixed_port = !req.listen.ends_with(":0");
    if fixed_port && topo.routes.values().any(|r| r.front_agent_id == agent.id && r.listen == req.listen) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            format!("agent `{}` already has a route on `{}`", agent.name, req.listen),
        ));
    }
    let route = Route {
        id: new_id("rt"),
        tenant_id: "default".into(),
        front_agent_id: agent.id.clone(),
        listen: req.listen,
        service_id: svc.id.clone(),
        created_at: now_ms(),
    };
    state.store.insert_route(&route).await?;
    state.refresh().await?;
    Ok((StatusCode::CREATED, Json(route_view(&state, route))))
}

async fn list_routes(AxState(state): AxState<S>) -> Result<Json<Vec<RouteView>>, ApiError> {
    let routes = state.store.list_routes().await?;
    Ok(Json(routes.into_iter().map(|r| route_view(&state, r)).collect()))
}

async fn delete_route(AxState(state): AxState<S>, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    state.store.delete_route(&id).await?;
    state.refresh().await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
struct EventQuery {
    limit: Option<i64>,
}

async fn list_events(
    AxState(state): AxState<S>,
    Query(q): Query<EventQuery>,
) -> Result<Json<Vec<sekisho_store::Event>>, ApiError> {
    let limit = q.limit.unwrap_or(100).clamp(1, 10_000);
    Ok(Json(state.store.list_events(limit).await?))
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict { .. } => ApiError::new(StatusCode::CONFLICT, "conflict", e.to_string()),
            StoreError::NotFound { .. } => ApiError::not_found(e.to_string()),
            StoreError::InUse { .. } => ApiError::new(StatusCode::CONFLICT, "in_use", e.to_string()),
            StoreError::Db(_) | StoreError::Migrate(_) => {
                tracing::error!(error = %e, "store error in admin API");
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error; see the relay log")
            }
        }
    }
}
