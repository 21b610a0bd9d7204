//! Tenants (relay operator only), users (with TOTP enrolment), groups and API keys. The login
//! that uses them is in `login.rs`.

use std::collections::HashMap;

use axum::extract::{Path, State as AxState};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::{Extension, Json};
use sekisho_store::{Group, Tenant, User, now_ms};
use serde::{Deserialize, Serialize};
use serde_json::json;
use totp_rs::{Algorithm, Secret, TOTP};

use super::auth::{Caller, may_act_as, may_take_over};
use super::{ApiError, Body, S};
use crate::tunnel::check_name;
use sekisho_door::credentials::{ROLES, TENANT_SCOPES, valid_ip_entry};
use sekisho_door::secrets::{hash_password, hash_secret, new_id, store_key};

// --- Tenants ------------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewTenant {
    name: String,
    #[serde(default = "default_max_agents")]
    max_agents: i64,
    #[serde(default = "default_retention")]
    retention_days: i64,
    /// The old way to give the tenant's clock: a fixed offset. `time_zone` is the one to use.
    utc_offset_minutes: Option<i64>,
    /// An IANA zone (`Asia/Tokyo`, the default) or a fixed offset (`+05:30`).
    time_zone: Option<String>,
}

fn default_max_agents() -> i64 {
    100
}
fn default_retention() -> i64 {
    90
}
/// The zone a tenant asks for: `time_zone` (checked, spelled as the database does), else the
/// fixed `utc_offset_minutes`, else `fallback`. Returns the name and its offset now.
fn tenant_zone(time_zone: Option<&str>, offset: Option<i64>, fallback: &str) -> Result<(String, i64), ApiError> {
    let name = match (time_zone, offset) {
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request("invalid_plan", "give time_zone or utc_offset_minutes, not both"));
        }
        (Some(name), None) => sekisho_store::zone::canonical(name).ok_or_else(|| crate::login::invalid_zone(name))?,
        (None, Some(m)) if (-720..=840).contains(&m) => sekisho_store::zone::offset_name(m),
        (None, Some(_)) => {
            return Err(ApiError::bad_request("invalid_plan", "utc_offset_minutes must be between -720 and 840"));
        }
        (None, None) => fallback.to_owned(),
    };
    let zone = sekisho_store::zone::parse(&name).ok_or_else(|| crate::login::invalid_zone(&name))?;
    Ok((name, sekisho_store::zone::offset_at(&zone, now_ms())))
}

fn check_plan(max_agents: i64, retention_days: i64) -> Result<(), ApiError> {
    if !(1..=100_000).contains(&max_agents) {
        return Err(ApiError::bad_request("invalid_plan", "max_agents must be between 1 and 100000"));
    }
    if !(1..=3650).contains(&retention_days) {
        return Err(ApiError::bad_request("invalid_plan", "retention_days must be between 1 and 3650"));
    }
    Ok(())
}

/// Creates a tenant and its first admin key (shown once).
pub(crate) async fn create_tenant(
    AxState(state): AxState<S>,
    body: Body<NewTenant>,
) -> Result<impl IntoResponse, ApiError> {
    let Json(req) = body?;
    check_name(&req.name)?;
    check_plan(req.max_agents, req.retention_days)?;
    let (time_zone, utc_offset_minutes) =
        tenant_zone(req.time_zone.as_deref(), req.utc_offset_minutes, sekisho_store::zone::DEFAULT)?;
    let tenant = Tenant {
        id: new_id("tn").into(),
        name: req.name,
        max_agents: req.max_agents,
        retention_days: req.retention_days,
        utc_offset_minutes,
        created_at: now_ms(),
        time_zone,
    };
    state.store.insert_tenant(&tenant).await?;
    let (_, key) = store_key(&state.store, &tenant.id, "tenant-admin", "*", None, None, "").await?;
    state.refresh().await?;
    Ok((StatusCode::CREATED, Json(json!({ "tenant": tenant, "admin_key": key }))))
}

pub(crate) async fn list_tenants(AxState(state): AxState<S>) -> Result<Json<Vec<Tenant>>, ApiError> {
    let mut tenants = state.store.list_tenants().await?;
    for t in &mut tenants {
        t.time_zone = t.zone_name();
    }
    Ok(Json(tenants))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TenantChange {
    max_agents: Option<i64>,
    retention_days: Option<i64>,
    utc_offset_minutes: Option<i64>,
    time_zone: Option<String>,
}

pub(crate) async fn update_tenant(
    AxState(state): AxState<S>,
    Path(name): Path<String>,
    body: Body<TenantChange>,
) -> Result<Json<Tenant>, ApiError> {
    let Json(req) = body?;
    let mut t = state
        .store
        .get_tenant(&name)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("tenant `{name}` not found")))?;
    t.max_agents = req.max_agents.unwrap_or(t.max_agents);
    t.retention_days = req.retention_days.unwrap_or(t.retention_days);
    check_plan(t.max_agents, t.retention_days)?;
    (t.time_zone, t.utc_offset_minutes) =
        tenant_zone(req.time_zone.as_deref(), req.utc_offset_minutes, &t.zone_name())?;
    state.store.update_tenant(&t).await?;
    state.refresh().await?;
    Ok(Json(t))
}

/// Applies every tenant's retention now (normally hourly).
pub(crate) async fn enforce_retention(AxState(state): AxState<S>) -> Result<Json<serde_json::Value>, ApiError> {
    let done = sekisho_door::events::enforce_retention(&state).await;
    if !done.refused.is_empty() {
        let names: Vec<&str> = done.refused.iter().map(|r| r.tenant.as_str()).collect();
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "audit_unverified",
            format!(
                "the audit log of {} does not verify, so it was not pruned; run `ctl audit verify`",
                names.join(", ")
            ),
        )
        .with_details(json!({ "removed": done.removed, "refused": done.refused })));
    }
    Ok(Json(json!({ "removed": done.removed })))
}

// --- Users --------------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewUser {
    name: String,
    #[serde(default)]
    display_name: String,
    password: String,
    #[serde(default)]
    groups: Vec<String>,
}

fn check_password(pw: &str) -> Result<(), ApiError> {
    if pw.chars().count() < 10 || pw.len() > 1024 {
        return Err(ApiError::bad_request("weak_password", "password must be 10 to 1024 characters long"));
    }
    Ok(())
}

async fn argon2(password: String) -> Result<String, ApiError> {
    tokio::task::spawn_blocking(move || hash_password(&password))
        .await
        .map_err(|_| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "password hashing failed"))
}

#[derive(Serialize)]
pub(crate) struct UserView {
    #[serde(flatten)]
    user: User,
    groups: Vec<String>,
    locked: bool,
}

pub(crate) async fn create_user(
    AxState(state): AxState<S>,
    Extension(caller): Extension<Caller>,
    body: Body<NewUser>,
) -> Result<impl IntoResponse, ApiError> {
    let Json(req) = body?;
    check_name(&req.name)?;
    check_password(&req.password)?;
    let mut groups = Vec::new();
    for g in &req.groups {
        let group = find_group(&state, &caller, g).await?;
        caller.may_grant(&group.role, &format!("joining group `{}`", group.name))?;
        groups.push(group);
    }
    let user = User {
        id: new_id("us").into(),
        tenant_id: caller.tenant.clone(),
        name: req.name,
        display_name: req.display_name,
        password_hash: argon2(req.password).await?,
        totp_secret: None,
        totp_enabled: false,
        failed_logins: 0,
        locked_until: None,
        disabled_at: None,
        created_at: now_ms(),
        time_zone: String::new(),
    };
    state.store.insert_user(&user).await?;
    for g in &groups {
        state.store.add_member(&g.id, &user.id).await?;
    }
    let names = groups.into_iter().map(|g| g.name).collect();
    Ok((StatusCode::CREATED, Json(UserView { user, groups: names, locked: false })))
}

pub(crate) async fn list_users(
    AxState(state): AxState<S>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<Vec<UserView>>, ApiError> {
    let groups: HashMap<String, String> =
        state.store.list_groups(&caller.tenant).await?.into_iter().map(|g| (g.id, g.name)).collect();
    let mut member_of: HashMap<String, Vec<String>> = HashMap::new();
    for (g, u) in state.store.list_members(&caller.tenant).await? {
        member_of.entry(u).or_default().extend(groups.get(&g).cloned());
    }
    let now = now_ms();
    Ok(Json(
        state
            .store
            .list_users(&caller.tenant)
            .await?
            .into_iter()
            .map(|u| UserView {
                groups: member_of.remove(u.id.as_str()).unwrap_or_default(),
                locked: u.locked_until.is_some_and(|t| t > now),
                user: u,
            })
            .collect(),
    ))
}

pub(super) async fn find_user(state: &S, caller: &Caller, name: &str) -> Result<User, ApiError> {
    state
        .store
        .get_user(&caller.tenant, name)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("user `{name}` not found")))
}

async fn find_group(state: &S, caller: &Caller, name: &str) -> Result<Group, ApiError> {
    state
        .store
        .get_group(&caller.tenant, name)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("group `{name}` not found")))
}

pub(crate) async fn delete_user(
    AxState(state): AxState<S>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    let user = find_user(&state, &caller, &name).await?;
    state.store.delete_user(&caller.tenant, &user.id).await?;
    state.refresh().await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewPassword {
    password: String,
}

pub(crate) async fn set_password(
    AxState(state): AxState<S>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    body: Body<NewPassword>,
) -> Result<StatusCode, ApiError> {
    let Json(req) = body?;
    check_password(&req.password)?;
    let user = find_user(&state, &caller, &name).await?;
    may_take_over(&state, &caller, &user, "setting the password").await?;
    state.store.set_password(&user.id, &argon2(req.password).await?).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(crate) async fn unlock_user(
    AxState(state): AxState<S>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    let user = find_user(&state, &caller, &name).await?;
    state.store.login_succeeded(&user.id).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(crate) fn totp(secret: Vec<u8>) -> Result<TOTP, ApiError> {
    TOTP::new(Algorithm::SHA1, 6, 1, 30, secret)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", format!("totp: {e}")))
}

/// Enrolls (or re-enrolls) TOTP: returns the secret, its otpauth URL and ten recovery codes,
/// each shown once.
pub(crate) async fn enroll_totp(
    AxState(state): AxState<S>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let user = find_user(&state, &caller, &name).await?;
    may_take_over(&state, &caller, &user, "enrolling TOTP").await?;
    let raw = rand::random::<[u8; 20]>().to_vec();
    totp(raw.clone())?;
    let encoded = Secret::Raw(raw.clone()).to_encoded().to_string();
    let url = format!("otpauth://totp/Sekisho:{}?secret={encoded}&issuer=Sekisho", user.name);
    let codes: Vec<String> = (0..10).map(|_| recovery_code()).collect();
    let hashes: Vec<String> = codes.iter().map(|c| hash_secret(c)).collect();
    state.store.set_totp(&user.id, &state.master.seal(&raw), &hashes).await?;
    Ok((StatusCode::CREATED, Json(json!({ "secret": encoded, "otpauth_url": url, "recovery_codes": codes }))))
}

/// 80 random bits as `xxxxx-xxxxx-xxxxx-xxxxx` (lowercase base32).
fn recovery_code() -> String {
    let alphabet = b"abcdefghijklmnopqrstuvwxyz234567";
    let bits = u128::from_le_bytes({
        let mut b = [0u8; 16];
        b[..10].copy_from_slice(&rand::random::<[u8; 10]>());
        b
    });
    let chars: Vec<char> = (0..20).map(|i| alphabet[((bits >> (i * 4)) & 31) as usize] as char).collect();
    chars.chunks(5).map(|c| c.iter().collect::<String>()).collect::<Vec<_>>().join("-")
}

// --- Groups -------------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewGroup {
    name: String,
    #[serde(default = "member")]
    role: String,
}

fn member() -> String {
    "member".into()
}

#[derive(Serialize)]
pub(crate) struct GroupView {
    #[serde(flatten)]
    group: Group,
    members: Vec<String>,
}

pub(crate) async fn create_group(
    AxState(state): AxState<S>,
    Extension(caller): Extension<Caller>,
    body: Body<NewGroup>,
) -> Result<impl IntoResponse, ApiError> {
    let Json(req) = body?;
    check_name(&req.name)?;
    if !ROLES.contains(&req.role.as_str()) {
        return Err(ApiError::bad_request(
            "invalid_role",
            format!("role `{}` must be one of {}", req.role, ROLES.join(", ")),
        ));
    }
    caller.may_grant(&req.role, &format!("a group of role `{}`", req.role))?;
    let group = Group {
        id: new_id("gr"),
        tenant_id: caller.tenant.clone(),
        name: req.name,
        role: req.role,
        created_at: now_ms(),
    };
    state.store.insert_group(&group).await?;
    Ok((StatusCode::CREATED, Json(GroupView { group, members: vec![] })))
}

pub(crate) async fn list_groups(
    AxState(state): AxState<S>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<Vec<GroupView>>, ApiError> {
    let users: HashMap<String, String> =
        state.store.list_users(&caller.tenant).await?.into_iter().map(|u| (u.id.into_string(), u.name)).collect();
    let mut members: HashMap<String, Vec<String>> = HashMap::new();
    for (g, u) in state.store.list_members(&caller.tenant).await? {
        members.entry(g).or_default().extend(users.get(&u).cloned());
    }
    Ok(Json(
        state
            .store
            .list_groups(&caller.tenant)
            .await?
            .into_iter()
            .map(|g| GroupView { members: members.remove(&g.id).unwrap_or_default(), group: g })
            .collect(),
    ))
}

pub(crate) async fn delete_group(
    AxState(state): AxState<S>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    let g = find_group(&state, &caller, &name).await?;
    state.store.delete_group(&caller.tenant, &g.id).await?;
    state.refresh().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The ids of a tenant's group and user named in a membership path.
async fn membership(
    state: &S,
    caller: &Caller,
    group: &str,
    user: &str,
) -> Result<(String, sekisho_store::UserId), ApiError> {
    Ok((find_group(state, caller, group).await?.id, find_user(state, caller, user).await?.id))
}

pub(crate) async fn add_member(
    AxState(state): AxState<S>,
    Extension(caller): Extension<Caller>,
    Path((group, user)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let (g, u) = membership(&state, &caller, &group, &user).await?;
    let role = find_group(&state, &caller, &group).await?.role;
    caller.may_grant(&role, &format!("joining group `{group}`"))?;
    state.store.add_member(&g, &u).await?;
    state.refresh().await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(crate) async fn remove_member(
    AxState(state): AxState<S>,
    Extension(caller): Extension<Caller>,
    Path((group, user)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let (g, u) = membership(&state, &caller, &group, &user).await?;
    state.store.remove_member(&g, &u).await?;
    state.refresh().await?;
    Ok(StatusCode::NO_CONTENT)
}

// --- API keys -----------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewKey {
    name: String,
    scopes: Vec<String>,
    /// Days until it expires; none means never.
    expires_in_days: Option<i64>,
    /// Or seconds (a key for an hour's work), one minute to 3650 days.
    expires_in_secs: Option<i64>,
    #[serde(default)]
    allowed_ips: Vec<String>,
    /// Make it a personal key of this user.
    user: Option<String>,
}

pub(crate) async fn create_key(
    AxState(state): AxState<S>,
    Extension(caller): Extension<Caller>,
    body: Body<NewKey>,
) -> Result<impl IntoResponse, ApiError> {
    let Json(req) = body?;
    check_name(&req.name)?;
    if req.scopes.is_empty() {
        return Err(ApiError::bad_request("invalid_scope", "give at least one scope"));
    }
    for s in &req.scopes {
        if s != "*" && !TENANT_SCOPES.contains(&s.as_str()) {
            return Err(ApiError::bad_request(
                "invalid_scope",
                format!("unknown scope `{s}`; known: *, {}", TENANT_SCOPES.join(", ")),
            ));
        }
        if !caller.has(s) {
            return Err(ApiError::forbidden(
                "scope_escalation",
                format!("you cannot grant scope `{s}`, which you do not hold"),
            ));
        }
    }
    if let Some(bad) = req.allowed_ips.iter().find(|e| !valid_ip_entry(e)) {
        return Err(ApiError::bad_request("invalid_ip", format!("`{bad}` is not an IP address or CIDR")));
    }
    let expires_at = match (req.expires_in_days, req.expires_in_secs) {
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request("invalid_expiry", "give expires_in_days or expires_in_secs, not both"));
        }
        (Some(d), None) if (1..=3650).contains(&d) => Some(now_ms() + d * 86_400_000),
        (Some(_), None) => {
            return Err(ApiError::bad_request("invalid_expiry", "expires_in_days must be between 1 and 3650"));
        }
        (None, Some(s)) if (60..=3650 * 86_400).contains(&s) => Some(now_ms() + s * 1000),
        (None, Some(_)) => {
            return Err(ApiError::bad_request(
                "invalid_expiry",
                "expires_in_secs must be between 60 (one minute) and 315360000 (3650 days)",
            ));
        }
        (None, None) => None,
    };
    let user_id = match &req.user {
        Some(u) => {
            let user = find_user(&state, &caller, u).await?;
            may_act_as(&state, &caller, &user).await?;
            Some(user.id)
        }
        None => None,
    };
    let (id, key) = store_key(
        &state.store,
        &caller.tenant,
        &req.name,
        &req.scopes.join(" "),
        expires_at,
        user_id.map(Into::into),
        &req.allowed_ips.join(","),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(json!({ "id": id, "key": key, "expires_at": expires_at, "scopes": req.scopes }))))
}

pub(crate) async fn list_keys(
    AxState(state): AxState<S>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<Vec<sekisho_store::ApiKey>>, ApiError> {
    Ok(Json(state.store.list_api_keys(&caller.tenant).await?))
}

pub(crate) async fn revoke_key(
    AxState(state): AxState<S>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.store.revoke_api_key(&caller.tenant, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
