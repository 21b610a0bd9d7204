//! Service policies: required and deny conditions as Cedar text, validated before anything is
//! stored, and a dry run (`policies/test`) that decides a made-up request without touching a
//! stream.

use axum::extract::{Path, State as AxState};
use axum::http::StatusCode;
use axum::{Extension, Json};
use sekisho_gate::{AccessPath, Attempt, AuthMethod, Destination, Resource, ServiceInfo, Subject, Unreadable};
use sekisho_policy::ServicePolicy;
use sekisho_store::{PolicyLists, PolicyRow, Service, now_ms};
use serde::{Deserialize, Serialize};
use serde_json::json;
use time::OffsetDateTime;

use super::auth::Caller;
use super::{ApiError, Body, S};

#[derive(Serialize)]
pub(crate) struct PolicyView {
    service: String,
    required: Vec<String>,
    deny: Vec<String>,
    allow_domains: Vec<String>,
    deny_domains: Vec<String>,
    updated_at: i64,
    updated_by: String,
    /// The Cedar policies the conditions compile to.
    cedar: String,
    /// Why the stored lists cannot be read, when they cannot (the service then denies
    /// everything, `policy_unreadable`, until its policy is set again).
    #[serde(skip_serializing_if = "Option::is_none")]
    unreadable: Option<String>,
}

fn service(state: &S, caller: &Caller, name: &str) -> Result<Service, ApiError> {
    state
        .topology()
        .find_service(&caller.tenant, name)
        .cloned()
        .ok_or_else(|| ApiError::not_found(format!("service `{name}` not found")))
}

fn view(state: &S, svc: &Service, row: &PolicyRow) -> PolicyView {
    let cedar = state.gate.policy(&svc.tenant_id, &svc.name).map(|c| c.cedar_text()).unwrap_or_default();
    let (lists, unreadable) = match &row.lists {
        Ok(l) => (l.clone(), None),
        Err(why) => (PolicyLists::default(), Some(why.clone())),
    };
    PolicyView {
        service: svc.name.clone(),
        required: lists.required,
        deny: lists.deny,
        allow_domains: lists.allow_domains,
        deny_domains: lists.deny_domains,
        updated_at: row.updated_at,
        updated_by: row.updated_by.clone(),
        cedar,
        unreadable,
    }
}

pub(crate) async fn list(
    AxState(state): AxState<S>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<Vec<PolicyView>>, ApiError> {
    let topo = state.topology();
    let mut out: Vec<PolicyView> = state
        .store
        .list_policies_all()
        .await?
        .iter()
        .filter(|r| r.tenant_id == caller.tenant)
        .filter_map(|r| topo.services.get(&r.service_id).map(|s| view(&state, s, r)))
        .collect();
    out.sort_by(|a, b| a.service.cmp(&b.service));
    Ok(Json(out))
}

pub(crate) async fn get(
    AxState(state): AxState<S>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> Result<Json<PolicyView>, ApiError> {
    let svc = service(&state, &caller, &name)?;
    let rows = state.store.list_policies_all().await?;
    let row = rows
        .iter()
        .find(|r| r.service_id == svc.id)
        .ok_or_else(|| ApiError::not_found(format!("service `{name}` has no policy (everything is denied)")))?;
    Ok(Json(view(&state, &svc, row)))
}

pub(crate) async fn put(
    AxState(state): AxState<S>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    body: Body<ServicePolicy>,
) -> Result<(StatusCode, Json<PolicyView>), ApiError> {
    let Json(mut policy) = body?;
    let svc = service(&state, &caller, &name)?;
    // Stored as matched: lower case, no trailing dot (bad entries are reported by `compile`).
    for list in [&mut policy.allow_domains, &mut policy.deny_domains] {
        for entry in list.iter_mut() {
            if let Ok(p) = sekisho_policy::domain_pattern(entry) {
                *entry = p;
            }
        }
    }
    let compiled = state.gate.compile(&svc.name, &policy).map_err(|e| {
        ApiError::bad_request("invalid_policy", e.to_string()).with_details(json!({ "diagnostics": e.diagnostics }))
    })?;
    let lists = PolicyLists {
        required: policy.required.clone(),
        deny: policy.deny.clone(),
        allow_domains: policy.allow_domains.clone(),
        deny_domains: policy.deny_domains.clone(),
    };
    let updated_at = now_ms();
    state.store.put_policy(&svc.id, &svc.tenant_id, &lists, updated_at, &caller.name).await?;
    let row = PolicyRow {
        service_id: svc.id.clone(),
        tenant_id: svc.tenant_id.clone(),
        lists: Ok(lists),
        updated_at,
        updated_by: caller.name.clone(),
    };
    state.policy_changed(|engine| engine.insert(&svc.tenant_id, &svc.name, compiled)).await;
    Ok((StatusCode::OK, Json(view(&state, &svc, &row))))
}

pub(crate) async fn delete(
    AxState(state): AxState<S>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    let svc = service(&state, &caller, &name)?;
    if !state.store.delete_policy(&caller.tenant, &svc.id).await? {
        return Err(ApiError::not_found(format!("service `{name}` has no policy")));
    }
    state.policy_changed(|engine| engine.remove(&svc.tenant_id, &svc.name)).await;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Test {
    service: String,
    user: Option<String>,
    agent: Option<String>,
    ip: std::net::IpAddr,
    /// RFC 3339, e.g. `2026-11-23T09:00+09:00` (seconds optional); default now.
    at: Option<String>,
    #[serde(default = "tunnel")]
    path: String,
    auth_method: Option<String>,
    /// Gateways: the destination domain, port and address asked for.
    domain: Option<String>,
    port: Option<u16>,
    dest_ip: Option<std::net::IpAddr>,
}

fn tunnel() -> String {
    "tunnel".into()
}

/// Parses RFC 3339 with or without seconds.
pub(crate) fn parse_time(text: &str) -> Option<OffsetDateTime> {
    use time::format_description::well_known::Rfc3339;
    if let Ok(t) = OffsetDateTime::parse(text, &Rfc3339) {
        return Some(t);
    }
    // `2026-11-23T09:00+09:00` → insert `:00` seconds before the offset.
    let t = text.find('T')?;
    let offset_at = text[t..].find(['+', '-', 'Z']).map(|i| i + t)?;
    let with_secs = format!("{}:00{}", &text[..offset_at], &text[offset_at..]);
    OffsetDateTime::parse(&with_secs, &Rfc3339).ok()
}

pub(crate) async fn test(
    AxState(state): AxState<S>,
    Extension(caller): Extension<Caller>,
    body: Body<Test>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let Json(req) = body?;
    let svc = service(&state, &caller, &req.service)?;
    let topo = state.topology();
    let path: AccessPath = req
        .path
        .parse()
        .map_err(|e: sekisho_gate::UnknownWord| ApiError::bad_request("invalid_path", format!("path: {e}")))?;
    let (subject, default_auth) = match (&req.user, &req.agent) {
        (Some(u), agent) => {
            let via_agent = match agent {
                Some(a) => Some(sekisho_door::decide::agent_info(
                    topo.find_agent(&caller.tenant, a).map_err(ApiError::not_found)?,
                )),
                None => None,
            };
            // The same facts a door reads, failing the same way: a store error is a deny with its
            // reason, not an answer.
            let groups = match state.store.get_user(&caller.tenant, u).await {
                Ok(Some(user)) => state
                    .store
                    .groups_of(&user.id)
                    .await
                    .map(|gs| gs.into_iter().map(|g| g.name).collect())
                    .map_err(|e| Unreadable::store(&format!("the groups of `{u}`"), e)),
                Ok(None) => return Err(ApiError::not_found(format!("user `{u}` not found"))),
                Err(e) => Err(Unreadable::store(&format!("the user `{u}`"), e)),
            };
            (Subject::User { name: u.clone(), groups, via_agent }, AuthMethod::PasswordTotp)
        }
        (None, Some(a)) => {
            let a = topo.find_agent(&caller.tenant, a).map_err(ApiError::not_found)?;
            (Subject::Agent(sekisho_door::decide::agent_info(a)), AuthMethod::AgentKey)
        }
        (None, None) => return Err(ApiError::bad_request("missing_principal", "give a user or an agent")),
    };
    let auth = match &req.auth_method {
        Some(m) => m.parse().map_err(|e: sekisho_gate::UnknownWord| {
            ApiError::bad_request("invalid_auth_method", format!("auth_method: {e}"))
        })?,
        None => default_auth,
    };
    let now = sekisho_door::decide::tenant_now(&topo, &caller.tenant);
    let at = match &req.at {
        Some(text) => {
            let at = parse_time(text).ok_or_else(|| {
                ApiError::bad_request(
                    "invalid_time",
                    format!("`{text}` is not an RFC 3339 time like 2026-11-23T09:00+09:00"),
                )
            })?;
            // On the tenant's clock as it was then (daylight saving included).
            sekisho_door::decide::tenant_time(&topo, &caller.tenant, at)
        }
        None => now,
    };
    let country = state.geo.country(req.ip);
    let attempt = Attempt {
        tenant: caller.tenant.clone(),
        path,
        auth,
        subject,
        source_ip: req.ip,
        country: country.clone(),
        at,
        credential: None,
    };
    let resource = Resource {
        service: ServiceInfo { name: svc.name.clone(), protocol: svc.protocol.into() },
        destination: (req.domain.is_some() || req.port.is_some() || req.dest_ip.is_some()).then(|| Destination {
            domain: req.domain.as_deref().map(sekisho_door::names::normalize_domain).unwrap_or_default(),
            ip: req.dest_ip,
            port: req.port.unwrap_or(0),
        }),
    };
    let d = state.gate.dry_run(&attempt, &resource);
    Ok(Json(json!({
        "allowed": d.allowed,
        "decision": if d.allowed { "allow" } else { "deny" },
        "policy_id": d.policy_id,
        "reason": d.reason,
        "country": country,
        "at": at.format(&time::format_description::well_known::Rfc3339).unwrap_or_default(),
    })))
}
