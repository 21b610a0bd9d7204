//! `POST /login`: a user's password and second factor (TOTP or a one-time recovery code) become a
//! short-lived session key with the scopes of the user's roles. Every attempt is audited; failures
//! count towards the per-address rate limit and the per-user lockout.

use axum::extract::State as AxState;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::{Extension, Json};
use sekisho_audit::{Decision, Event, EventKind, SubjectKind};
use sekisho_store::now_ms;
use serde::Deserialize;
use serde_json::json;

use super::{ApiError, Body, S};
use sekisho_door::credentials::PeerAddr;
use sekisho_door::secrets::{hash_password, hash_secret, verify_password};
use sekisho_door::sessions::{Issued, issue_session, login_wait_ms};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Login {
    #[serde(default = "default_tenant")]
    tenant: String,
    user: String,
    password: String,
    totp: Option<String>,
    recovery_code: Option<String>,
    /// End the session after this many seconds without use (the web console asks for 1,800).
    idle_timeout_secs: Option<u32>,
    /// Refuse a user who has no TOTP (the web console and browser access always ask for it).
    #[serde(default)]
    require_totp: bool,
}

fn default_tenant() -> String {
    "default".into()
}

/// A dummy hash to spend the same time on unknown users as on wrong passwords.
static DUMMY_HASH: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| hash_password("sekisho-dummy-password"));

pub(crate) async fn login(
    AxState(state): AxState<S>,
    peer: Option<Extension<PeerAddr>>,
    body: Body<Login>,
) -> Result<impl IntoResponse, ApiError> {
    let Json(req) = body?;
    let ip = peer.map_or(std::net::IpAddr::from([127, 0, 0, 1]), |p| p.0.0.ip());
    let (user, tenant) = (req.user.clone(), req.tenant.clone());
    let answer = check(&state, ip, req).await;
    if let Err(err) = &answer
        && err.code == "store_unavailable"
    {
        // A sign-in that could not be checked is refused and recorded (queued: the store that
        // failed the check would fail this write too; the writer keeps it until it is back).
        let topo = state.topology();
        let tenant_id = topo.tenants.values().find(|t| t.name == tenant).map_or("default", |t| t.id.as_str());
        state.auditor.record(
            Event::new(tenant_id, EventKind::Login, Decision::Deny)
                .subject(SubjectKind::User, user)
                .path("api")
                .reason(format!("store_unavailable: {}", err.message))
                .auth("password")
                .source(ip, state.geo.country(ip)),
        );
    }
    answer
}

async fn check(state: &S, ip: std::net::IpAddr, req: Login) -> Result<Json<serde_json::Value>, ApiError> {
    let tenant = state.store.get_tenant(&req.tenant).await?;
    let tenant_id = tenant.as_ref().map_or("default".to_owned(), |t| t.id.to_string());
    let audit = |decision: Decision, reason: &str, method: &str| {
        Event::new(&tenant_id, EventKind::Login, decision)
            .subject(SubjectKind::User, req.user.clone())
            .path("api")
            .reason(reason.to_owned())
            .auth(method)
            .source(ip, state.geo.country(ip))
    };
    let fail = |reason: &'static str, err: ApiError| {
        let state = state.clone();
        let event = audit(Decision::Deny, reason, "password");
        async move {
            state.limiter.failed(ip);
            if let Err(e) = state.auditor.record_durable(event).await {
                tracing::error!(error = %e, "cannot record failed login");
            }
            Err::<Json<serde_json::Value>, ApiError>(err)
        }
    };
    // One answer for every refusal of the credentials (unknown user, wrong password, locked
    // account), so the answer does not tell which users exist.
    let invalid = || {
        ApiError::unauthenticated(
            "user name or password is wrong, or the account waits after repeated failures; try again later",
        )
    };
    let rate_limited = || {
        ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "too many failed attempts from your address; try again in a minute",
        )
    };
    let user = match &tenant {
        Some(t) => state.store.get_user(&t.id, &req.user).await?,
        None => None,
    };
    let password = req.password.clone();
    let phc = user.as_ref().map_or_else(|| DUMMY_HASH.clone(), |u| u.password_hash.clone());
    let password_ok = tokio::task::spawn_blocking(move || verify_password(&password, &phc)).await.unwrap_or(false);
    // An address over its failure limit is refused for what would fail again; right credentials
    // still pass (one script behind a NAT must not lock out everyone else).
    let known = user.filter(|u| u.disabled_at.is_none());
    if state.limiter.blocked(ip) && !(password_ok && known.is_some()) {
        return fail("rate_limited", rate_limited()).await;
    }
    let Some(user) = known else {
        return fail("unknown_user", invalid()).await;
    };
    if user.locked_until.is_some_and(|t| t > now_ms()) {
        // Recorded as what it is; answered like any wrong credential.
        return fail("locked", invalid()).await;
    }
    let count_failure = |reason: &'static str, err: ApiError| {
        let state = state.clone();
        let uid = user.id.clone();
        async move {
            // Refused either way; a count that cannot be stored is logged (the per-address
            // limiter still counts it).
            if let Err(e) = state.store.login_failed(&uid, now_ms(), login_wait_ms).await {
                tracing::error!(error = %e, "cannot count a failed sign-in");
            }
            fail(reason, err).await
        }
    };
    if !password_ok {
        return count_failure("bad_password", invalid()).await;
    }
    let mut method = "password";
    if !user.totp_enabled && req.require_totp {
        let err = ApiError::unauthenticated(
            "this login needs a TOTP code and the account has none; ask an admin to enroll one \
             (`sekisho ctl user totp NAME`)",
        )
        .with_code("totp_not_enrolled");
        return fail("totp_not_enrolled", err).await;
    }
    if user.totp_enabled {
        method = "password+totp";
        let ok = match (&req.totp, &req.recovery_code) {
            (Some(code), _) => {
                // A secret this relay cannot unseal (another master key) refuses by name; it is
                // never read as an empty secret.
                let Some(secret) = user.totp_secret.as_deref().and_then(|s| state.master.open(s)) else {
                    let err = ApiError::unauthenticated(
                        "the account's TOTP secret cannot be read on this relay; ask an admin to enroll it again",
                    )
                    .with_code("totp_unreadable");
                    return fail("totp_unreadable", err).await;
                };
                // Each time step is spent once per user, here and on the SSH bastion alike.
                match sekisho_door::sessions::totp_step(secret, code, (now_ms() / 1000) as u64) {
                    Some(step) if state.store.use_totp_step(&user.id, step).await? => true,
                    Some(_) => {
                        let err = ApiError::unauthenticated("this TOTP code was already used; wait for the next one")
                            .with_code("totp_replayed");
                        // The password and the code were right (a form sent twice, say): audited,
                        // but not counted as guessing.
                        let event = audit(Decision::Deny, "totp_replayed", "password+totp");
                        if let Err(e) = state.auditor.record_durable(event).await {
                            tracing::error!(error = %e, "cannot record a replayed TOTP code");
                        }
                        return Err(err);
                    }
                    None => false,
                }
            }
            (None, Some(rc)) => state.store.use_recovery_code(&user.id, &hash_secret(rc.trim())).await?,
            (None, None) => {
                let err = ApiError::unauthenticated("a TOTP code (or a recovery code) is required")
                    .with_code("totp_required");
                return fail("totp_required", err).await;
            }
        };
        if !ok {
            let err = ApiError::unauthenticated("the TOTP or recovery code is wrong").with_code("bad_totp");
            return count_failure("bad_totp", err).await;
        }
    }
    let idle_ms = req.idle_timeout_secs.map(|s| i64::from(s.clamp(60, 12 * 3600)) * 1000);
    let Issued { id: session_id, key, expires_at, scopes } = issue_session(state, &user, method, idle_ms).await?;
    state
        .auditor
        .record_durable(audit(Decision::Allow, "login succeeded", method))
        .await
        .map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "audit_unavailable", e.to_string()))?;
    Ok(Json(
        json!({ "key": key, "id": session_id, "expires_at": expires_at, "idle_timeout_secs": idle_ms.map(|m| m / 1000), "scopes": scopes, "user": user.name, "auth_method": method }),
    ))
}

/// `POST /logout`: ends the calling session key, and the browser sessions minted from it.
pub(crate) async fn logout(
    AxState(state): AxState<S>,
    Extension(caller): Extension<super::auth::Caller>,
) -> Result<StatusCode, ApiError> {
    state.store.revoke_api_key(&caller.tenant, &caller.key_id).await?;
    state.changed().await;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /session`: who the calling key is, what it may do, and its tenant.
pub(crate) async fn session(
    AxState(state): AxState<S>,
    Extension(caller): Extension<super::auth::Caller>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let (tenant, tenant_zone) = {
        let topo = state.topology();
        match topo.tenants.get(caller.tenant.as_str()) {
            Some(t) => (t.name.clone(), t.zone_name()),
            None => (caller.tenant.to_string(), sekisho_store::zone::DEFAULT.to_owned()),
        }
    };
    let auth_method = state.store.get_api_key(&caller.key_id).await?.and_then(|k| k.auth_method);
    // A store error is an error (the `?`); a key without a user, or a user gone, has no zone of
    // its own.
    let user = match &caller.user_id {
        Some(id) => state.store.get_user(&caller.tenant, id.as_ref()).await?,
        None => None,
    };
    let own_zone = user.map(|u| u.time_zone).unwrap_or_default();
    Ok(Json(json!({
        "auth_method": auth_method,
        "name": caller.name,
        "user": caller.user_id.is_some(),
        "key_id": caller.key_id,
        "tenant": tenant,
        "tenant_id": caller.tenant,
        "scopes": caller.scopes,
        // The zone times are shown in: the user's own, else the tenant's.
        "time_zone": if own_zone.is_empty() { tenant_zone.clone() } else { own_zone.clone() },
        "user_time_zone": own_zone,
        "tenant_time_zone": tenant_zone,
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SessionChange {
    /// The signed-in user's own zone for what they are shown; `""` for the tenant's.
    time_zone: String,
}

/// `PATCH /session`: the caller's own preferences (its user's time zone). Any key acting for a
/// user may set its user's; it changes what that user is shown, never a decision.
pub(crate) async fn update_session(
    AxState(state): AxState<S>,
    Extension(caller): Extension<super::auth::Caller>,
    body: Body<SessionChange>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let Json(req) = body?;
    let Some(user) = &caller.user_id else {
        return Err(ApiError::bad_request("not_a_user", "this key acts for no user, so it has no time zone"));
    };
    let zone = match req.time_zone.as_str() {
        "" => String::new(),
        name => sekisho_store::zone::canonical(name).ok_or_else(|| invalid_zone(name))?,
    };
    state.store.set_user_time_zone(&caller.tenant, &user.clone().into(), &zone).await?;
    session(AxState(state), Extension(caller)).await
}

/// The refusal of a name that is no time zone.
pub(crate) fn invalid_zone(name: &str) -> ApiError {
    ApiError::bad_request(
        "invalid_time_zone",
        format!("`{name}` is not a time zone: use an IANA name such as Asia/Tokyo, or a fixed offset such as +09:00"),
    )
}
