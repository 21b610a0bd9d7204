//! The admin API front door: JSON over HTTPS under `/api/v1`, described by
//! `/api/v1/openapi.json`.
//!
//! `sekisho ctl` and the web console use only this. Authentication, scopes, rate limits and the
//! admin audit trail are one layer ([`auth`], on the shared credentials of `sekisho-door`);
//! handlers see the [`auth::Caller`] and act only within its tenant, so no request can name
//! another tenant's objects. After every state-changing request the door says
//! [`State::changed`], so caches of verified credentials are dropped and open accesses decided
//! again.

mod audit;
mod auth;
mod bastion;
mod error;
mod error_ja;
mod export;
mod guard;
mod identity;
mod login;
mod oidc;
mod policy;
mod tunnel;

use std::sync::Arc;

use axum::extract::State as AxState;
use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};
use error::ApiError;
pub use guard::catch_panic;
use sekisho_door::{FrontDoor, State};
use sekisho_store::StoreError;
use serde_json::json;

/// The admin API as a front door: its routes on the relay's HTTPS port.
pub struct ApiDoor {
    state: Arc<State>,
}

impl ApiDoor {
    pub fn new(state: Arc<State>) -> Self {
        ApiDoor { state }
    }
}

impl FrontDoor for ApiDoor {
    fn name(&self) -> &'static str {
        "api"
    }

    fn http(&self, inner: Router) -> Router {
        inner.merge(router(self.state.clone()))
    }
}

type S = Arc<State>;
/// A JSON body whose rejection becomes our error shape.
type Body<T> = Result<Json<T>, JsonRejection>;

/// The OpenAPI 3.1 description of this API.
const OPENAPI: &str = include_str!("openapi.json");

/// Larger request bodies are refused with 413.
const MAX_BODY: usize = 256 * 1024;

fn router(state: S) -> Router {
    let authed = Router::new()
        .route("/tenants", get(identity::list_tenants).post(identity::create_tenant))
        .route("/tenants/{name}", axum::routing::patch(identity::update_tenant))
        .route("/tenants/retention", post(identity::enforce_retention))
        .route("/enrollment-tokens", post(tunnel::create_token))
        .route("/agents", get(tunnel::list_agents))
        .route("/agents/{id}", delete(tunnel::revoke_agent))
        .route("/services", get(tunnel::list_services).post(tunnel::create_service))
        .route("/services/{name}", delete(tunnel::delete_service))
        .route("/services/{name}/login", get(bastion::get_login).put(bastion::put_login))
        .route("/routes", get(tunnel::list_routes).post(tunnel::create_route))
        .route("/routes/{id}", delete(tunnel::delete_route))
        .route("/policies", get(policy::list))
        .route("/policies/test", post(policy::test))
        .route("/policies/{service}", get(policy::get).put(policy::put).delete(policy::delete))
        .route("/users", get(identity::list_users).post(identity::create_user))
        .route("/users/{name}", delete(identity::delete_user))
        .route("/users/{name}/password", post(identity::set_password))
        .route("/users/{name}/totp", post(identity::enroll_totp))
        .route("/users/{name}/unlock", post(identity::unlock_user))
        .route("/users/{name}/ssh-keys", get(bastion::list_ssh_keys).post(bastion::add_ssh_key))
        .route("/users/{name}/ssh-keys/{key}", delete(bastion::delete_ssh_key))
        .route("/groups", get(identity::list_groups).post(identity::create_group))
        .route("/groups/{name}", delete(identity::delete_group))
        .route("/groups/{name}/members/{user}", put(identity::add_member).delete(identity::remove_member))
        .route("/api-keys", get(identity::list_keys).post(identity::create_key))
        .route("/api-keys/{id}", delete(identity::revoke_key))
        .route("/recordings", get(bastion::search_recordings))
        .route("/recordings/export", post(export::export))
        .route("/recordings/{id}", get(bastion::get_recording))
        .route("/recordings/{id}/cast", get(bastion::get_cast))
        .route("/recordings/{id}/live", get(bastion::live))
        .route("/recordings/{id}/terminate", post(bastion::terminate))
        .route("/audit", get(audit::search))
        .route("/audit/verify", post(audit::verify))
        .route("/audit/summary", get(audit::summary))
        .route("/audit/streams", get(audit::open_streams))
        .route("/audit/events/{seq}", get(audit::event))
        .route("/oidc", get(oidc::get).put(oidc::put).delete(oidc::delete))
        .route("/session", get(login::session).patch(login::update_session))
        .route("/logout", post(login::logout))
        // Inside authentication, so a panic is recorded in the caller's tenant.
        .layer(axum::middleware::from_fn_with_state(state.clone(), crate::guard::catch_panic))
        .layer(axum::middleware::from_fn_with_state(state.clone(), auth::authenticate));
    Router::new()
        .route("/api/v1/health", get(health))
        .route(
            "/api/v1/openapi.json",
            get(|| async { ([(axum::http::header::CONTENT_TYPE, "application/json")], OPENAPI) }),
        )
        .route("/api/v1/login", post(login::login))
        .nest("/api/v1", authed)
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint") })
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
        .with_state(state)
}

/// Up or degraded for anyone (load balancers, monitors); the details (agents, streams, the audit
/// queue) only for the relay operator's key (`system` scope), since they span every tenant.
async fn health(AxState(state): AxState<S>, headers: axum::http::HeaderMap) -> Json<serde_json::Value> {
    // The audit log is part of health: when events cannot be stored, the relay is degraded (and,
    // once the queue is full, refuses new accesses).
    let audit = state.auditor.health();
    let (status, audit_state) = match (audit.saturated, audit.failing) {
        (true, _) => ("degraded", "saturated"),
        (false, true) => ("degraded", "retrying"),
        (false, false) => ("ok", "ok"),
    };
    let secret = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "));
    let operator = match secret {
        Some(s) => match state.store.find_api_key(&sekisho_door::secrets::hash_secret(s.trim())).await {
            Ok(Some(k)) => k.scopes.split_whitespace().any(|s| s == "system") && revoked_or_expired(&k).is_none(),
            _ => false,
        },
        None => false,
    };
    if !operator {
        return Json(json!({ "status": status, "version": env!("CARGO_PKG_VERSION") }));
    }
    Json(json!({
        "status": status,
        "version": env!("CARGO_PKG_VERSION"),
        "audit": audit_state,
        "audit_queued": audit.queued,
        "agents_online": state.hub.online_count(),
        "streams_open": state.hub.stream_count(),
        "connections": state
            .connection_counts()
            .into_iter()
            .map(|(name, open, refused)| (name.to_owned(), json!({ "open": open, "refused": refused })))
            .collect::<serde_json::Map<String, serde_json::Value>>(),
    }))
}

/// Why a key cannot be used at all now (revoked, expired), if it cannot.
fn revoked_or_expired(key: &sekisho_store::ApiKey) -> Option<&'static str> {
    if key.revoked_at.is_some() {
        Some("revoked")
    } else if key.expires_at.is_some_and(|t| t <= sekisho_store::now_ms()) {
        Some("expired")
    } else {
        None
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict { .. } => ApiError::conflict(e.to_string()),
            StoreError::NotFound { .. } => ApiError::not_found(e.to_string()),
            StoreError::InUse { .. } => ApiError::new(StatusCode::CONFLICT, "in_use", e.to_string()),
            StoreError::Limit { .. } => ApiError::forbidden("plan_limit", e.to_string()),
            // The database does not answer (or refuses a write): said as such, never as a
            // default answer, so the caller retries rather than acting on a guess.
            StoreError::Db(_) => {
                tracing::error!(error = %e, "store error in admin API");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "store_unavailable",
                    "the relay cannot read or write its database now; try again shortly",
                )
            }
            StoreError::Migrate(_) | StoreError::Url(_) => {
                tracing::error!(error = %e, "store error in admin API");
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error; see the relay log")
            }
        }
    }
}

impl From<sekisho_audit::AuditError> for ApiError {
    fn from(e: sekisho_audit::AuditError) -> Self {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "audit_unavailable", e.to_string())
    }
}
#[cfg(test)]
mod openapi_tests;
