//! Who is calling the admin API, what they may do, and the evidence of it.
//!
//! Every request under `/api/v1` (except `health`, `openapi.json` and `login`) carries an API key.
//! A key belongs to one tenant and holds scopes (`agents:read`, `routes:write`, `audit:read`, …;
//! `*` is every scope of its tenant; `system`, held only by the relay operator's key, adds the
//! tenants themselves). The scope a request needs follows from its first path segment and method.
//! Keys may expire, be revoked, and be limited to source IPs. Failed attempts count against the
//! source IP (rate limit); every refusal and every state-changing request is in the audit log
//! before the handler runs.

use std::net::IpAddr;

use axum::extract::{Request, State as AxState};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sekisho_audit::{Decision, Event, EventKind, SubjectKind};
use sekisho_door::credentials::{PeerAddr, canonical, key_problem, role_scopes};
use sekisho_store::{ApiKey, StoreError, User};

use super::{ApiError, S};
use sekisho_door::secrets::hash_secret;

/// The authenticated caller, available to handlers as an extension.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    pub(crate) tenant: sekisho_store::TenantId,
    pub(crate) key_id: String,
    /// Key name, or the user's name for user keys and login sessions.
    pub(crate) name: String,
    pub(crate) user_id: Option<String>,
    pub(crate) scopes: Vec<String>,
    pub(crate) ip: IpAddr,
    /// How a session key's user signed in; `None` for keys made with the API.
    pub(crate) auth_method: Option<String>,
}

impl Caller {
    pub(crate) fn has(&self, scope: &str) -> bool {
        let wildcard = scope != "system" && self.scopes.iter().any(|s| s == "*");
        wildcard || self.scopes.iter().any(|s| s == scope)
    }

    pub(crate) fn is_system(&self) -> bool {
        self.has("system")
    }

    /// Whether the caller holds every scope `role` grants: what it takes to give that role to
    /// someone (a group of that role, a member of it) or to take over a user who has it (reset
    /// their password or TOTP). A scope never grants more than it names.
    pub(crate) fn holds_role(&self, role: &str) -> bool {
        role_scopes(role).iter().all(|s| if *s == "*" { self.scopes.iter().any(|c| c == "*") } else { self.has(s) })
    }

    /// [`Self::holds_role`] as an answer: `scope_escalation` naming the role.
    pub(crate) fn may_grant(&self, role: &str, what: &str) -> Result<(), ApiError> {
        if self.holds_role(role) {
            Ok(())
        } else {
            Err(ApiError::forbidden(
                "scope_escalation",
                format!("{what} needs every scope of role `{role}`, and this key does not hold them"),
            ))
        }
    }

    /// Audit subject for this caller.
    pub(crate) fn subject(&self) -> (SubjectKind, String) {
        match self.user_id {
            Some(_) => (SubjectKind::User, self.name.clone()),
            None => (SubjectKind::ApiKey, format!("{} ({})", self.name, self.key_id)),
        }
    }

    /// An audit event by this caller.
    pub(crate) fn event(&self, kind: EventKind, decision: Decision, state: &sekisho_door::State) -> Event {
        let (sk, subject) = self.subject();
        Event::new(&self.tenant, kind, decision)
            .subject(sk, subject)
            .path("api")
            .auth(self.auth_method.as_deref().unwrap_or("api_key"))
            .source(self.ip, state.geo.country(self.ip))
    }
}

/// The scope a request needs, from its path under `/api/v1` (with or without the prefix: nested
/// routers see it stripped) and its method.
pub(crate) fn required_scope(method: &Method, path: &str) -> String {
    let rest = path.trim_start_matches("/api/v1").trim_start_matches('/');
    let first = rest.split('/').next().unwrap_or("");
    let read = method == Method::GET || method == Method::HEAD;
    let area = match first {
        "tenants" => return "system".into(),
        "enrollment-tokens" | "agents" => "agents",
        "services" => "services",
        "routes" => "routes",
        "policies" if rest == "policies/test" => return "policies:read".into(),
        "policies" => "policies",
        "users" | "groups" | "oidc" => "users",
        "api-keys" => "apikeys",
        "audit" => return "audit:read".into(),
        "recordings" => "recordings",
        // Any valid key may ask who it is and end its own session.
        "session" | "logout" => return String::new(),
        _ => return "system".into(),
    };
    format!("{area}:{}", if read { "read" } else { "write" })
}

/// Whether the caller may take over `user`'s sign-in (set the password, enroll TOTP): only with
/// every scope the user's groups give, so no key takes over someone with more rights than it has.
pub(crate) async fn may_take_over(state: &S, caller: &Caller, user: &User, what: &str) -> Result<(), ApiError> {
    let groups = state.store.groups_of(&user.id).await?;
    for g in groups {
        caller.may_grant(&g.role, &format!("{what} of `{}` (in group `{}`)", user.name, g.name))?;
    }
    Ok(())
}

/// Acting as a user (a key or an enrollment token of theirs) needs `users:act` and every scope
/// the user's groups give.
pub(crate) async fn may_act_as(state: &S, caller: &Caller, user: &User) -> Result<(), ApiError> {
    if !caller.has("users:act") {
        return Err(ApiError::forbidden(
            "scope_escalation",
            format!("acting as user `{}` needs scope `users:act` (held by the admin role)", user.name),
        ));
    }
    may_take_over(state, caller, user, "acting as the user").await
}

/// The event of a refused API request.
fn refusal(state: &S, ip: IpAddr, tenant: &str, subject: String, err: &ApiError, what: String) -> Event {
    Event::new(tenant, EventKind::Admin, Decision::Deny)
        .subject(if subject.is_empty() { SubjectKind::Anonymous } else { SubjectKind::ApiKey }, subject)
        .path("api")
        .target(what)
        .reason(format!("{}: {}", err.code, err.message))
        .auth("api_key")
        .source(ip, state.geo.country(ip))
}

async fn refuse(state: &S, ip: IpAddr, tenant: &str, subject: String, err: ApiError, what: String) -> Response {
    // Nobody known: counted as noise, the first few recorded (see `sekisho_door::noise`).
    if subject.is_empty() && !state.noise.admit("api", ip, err.code) {
        return err.into_response();
    }
    if let Err(e) = state.auditor.record_durable(refusal(state, ip, tenant, subject, &err, what)).await {
        tracing::error!(error = %e, "cannot record API refusal");
    }
    err.into_response()
}

/// A caller that could not be checked because the store failed: refused as `store_unavailable`
/// (never let through, never told "not valid"), and recorded. The event is queued, not awaited:
/// the store that failed the check would fail the write too, and the writer keeps it until the
/// store is back.
fn unavailable(state: &S, ip: IpAddr, tenant: &str, subject: String, e: StoreError, what: String) -> Response {
    let err = ApiError::from(e);
    state.auditor.record(refusal(state, ip, tenant, subject, &err, what));
    err.into_response()
}

/// The authentication, authorisation and audit layer of `/api/v1`.
pub(crate) async fn authenticate(AxState(state): AxState<S>, mut req: Request, next: Next) -> Response {
    let ip = req.extensions().get::<PeerAddr>().map_or(IpAddr::from([127, 0, 0, 1]), |p| canonical(p.0.ip()));
    let what = format!("{} {}", req.method(), req.uri().path());
    // An address that failed too often is refused, but only for what would fail again: a valid
    // key still passes (keys are 256 random bits, and one script must not lock out a whole NAT).
    let limited = || {
        ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "too many failed attempts from your address; try again in a minute",
        )
    };
    let header = req.headers().get(axum::http::header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    let Some(secret) = header.and_then(|h| h.strip_prefix("Bearer ")) else {
        // A missing key counts against the address like a wrong one.
        let err = if state.limiter.blocked(ip) {
            limited()
        } else {
            state.limiter.failed(ip);
            ApiError::unauthenticated("missing API key: send `Authorization: Bearer <key>`")
        };
        return refuse(&state, ip, "default", String::new(), err, what).await;
    };
    let key: ApiKey = match state.store.find_api_key(&hash_secret(secret.trim())).await {
        Ok(Some(k)) => k,
        Ok(None) => {
            let err = if state.limiter.blocked(ip) {
                limited()
            } else {
                state.limiter.failed(ip);
                ApiError::unauthenticated("API key is not valid")
            };
            return refuse(&state, ip, "default", String::new(), err, what).await;
        }
        Err(e) => return unavailable(&state, ip, "default", String::new(), e, what),
    };
    let label = format!("{} ({})", key.name, key.id);
    if let Some(problem) = key_problem(&key, ip) {
        state.limiter.failed(ip);
        return refuse(&state, ip, &key.tenant_id, label, problem.into(), what).await;
    }
    // An admin sees (and builds on) what she just did through another relay of the cluster.
    state.catch_up().await;
    let mut name = key.name.clone();
    if let Some(uid) = &key.user_id {
        match state.store.get_user_by_id(uid).await {
            Ok(Some(u)) if u.disabled_at.is_none() => name = u.name,
            Ok(_) => {
                let err = ApiError::unauthenticated("the key's user is disabled or removed");
                return refuse(&state, ip, &key.tenant_id, label, err, what).await;
            }
            Err(e) => return unavailable(&state, ip, &key.tenant_id, label, e, what),
        }
    }
    let caller = Caller {
        tenant: key.tenant_id.clone(),
        key_id: key.id.clone(),
        name,
        user_id: key.user_id.clone().map(Into::into),
        scopes: key.scopes.split_whitespace().map(str::to_owned).collect(),
        ip,
        auth_method: key.auth_method.clone(),
    };
    let scope = required_scope(req.method(), req.uri().path());
    if !scope.is_empty() && !caller.has(&scope) {
        let err = ApiError::new(StatusCode::FORBIDDEN, "forbidden", format!("API key lacks scope `{scope}`"));
        return refuse(&state, ip, &key.tenant_id, label, err, what).await;
    }
    // Bookkeeping, not a decision: a store that cannot take it is logged, not a refusal.
    if let Err(e) = state.store.api_key_used(&key.id).await {
        tracing::warn!(error = %e, key = %key.id, "cannot note the key's last use");
    }
    let mutating = !matches!(*req.method(), Method::GET | Method::HEAD);
    let evidence = mutating || scope == "audit:read";
    if evidence {
        // The permitted action is on disk before it is carried out.
        let event = caller
            .event(EventKind::Admin, Decision::Allow, &state)
            .target(what.clone())
            .reason(format!("scope {scope}"));
        if mutating {
            if let Err(e) = state.auditor.record_durable(event).await {
                tracing::error!(error = %e, "refusing admin action: audit log unavailable");
                return ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "audit_unavailable",
                    "the audit log cannot be written; nothing was changed",
                )
                .into_response();
            }
        } else {
            state.auditor.record(event);
        }
    }
    req.extensions_mut().insert(caller.clone());
    let response = next.run(req).await;
    if mutating {
        // Keys, users or groups may have changed: the gateway checks them afresh, and open
        // accesses are decided again (a revoked key ends the connections made with it).
        state.changed().await;
    }
    if mutating && (response.status().is_client_error() || response.status().is_server_error()) {
        let reason = match response.extensions().get::<super::error::ErrorTag>() {
            Some(tag) => tag.0.clone(),
            None => format!("request failed with status {}", response.status().as_u16()),
        };
        // The outcome is committed before the caller hears it.
        let event = caller.event(EventKind::Admin, Decision::Deny, &state).target(what).reason(reason);
        if let Err(e) = state.auditor.record_durable(event).await {
            tracing::error!(error = %e, "cannot record failed admin action");
        }
    }
    response
}
