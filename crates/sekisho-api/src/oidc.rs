//! `GET/PUT/DELETE /oidc`: the tenant's OpenID Connect provider for web sign-in. The client
//! secret is sealed with the master key and never returned.

use axum::extract::State as AxState;
use axum::http::StatusCode;
use axum::{Extension, Json};
use sekisho_store::{OidcProvider, now_ms};
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::Caller;
use super::{ApiError, Body, S};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewOidc {
    issuer: String,
    client_id: String,
    client_secret: String,
    #[serde(default = "preferred_username")]
    username_claim: String,
    #[serde(default)]
    label: String,
}

fn preferred_username() -> String {
    "preferred_username".into()
}

fn view(p: &OidcProvider) -> Value {
    json!({
        "issuer": p.issuer, "client_id": p.client_id, "username_claim": p.username_claim,
        "label": p.label, "updated_at": p.updated_at,
    })
}

/// An issuer must be `https://`, or `http://` on a loopback address (a provider on the relay's
/// own machine, as in tests).
pub(crate) fn issuer_ok(issuer: &str) -> bool {
    let Ok(url) = reqwest::Url::parse(issuer) else { return false };
    if !url.username().is_empty() || url.password().is_some() || url.host().is_none() {
        return false;
    }
    let loopback = match url.host() {
        Some(url::Host::Domain(d)) => d == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    url.scheme() == "https" || (url.scheme() == "http" && loopback)
}

pub(crate) async fn get(
    AxState(state): AxState<S>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<Value>, ApiError> {
    let p = state
        .store
        .get_oidc(&caller.tenant)
        .await?
        .ok_or_else(|| ApiError::not_found("no OpenID Connect provider is set for this tenant"))?;
    Ok(Json(view(&p)))
}

pub(crate) async fn put(
    AxState(state): AxState<S>,
    Extension(caller): Extension<Caller>,
    body: Body<NewOidc>,
) -> Result<Json<Value>, ApiError> {
    let Json(req) = body?;
    if !issuer_ok(&req.issuer) {
        return Err(ApiError::bad_request(
            "invalid_issuer",
            format!("issuer `{}` must be an https:// URL (http:// only on loopback)", req.issuer),
        ));
    }
    // Not `email`: user names cannot hold `@` (it separates the tenant in bastion logins).
    if !["preferred_username", "sub"].contains(&req.username_claim.as_str()) {
        return Err(ApiError::bad_request(
            "invalid_claim",
            format!("username_claim `{}` must be preferred_username or sub", req.username_claim),
        ));
    }
    if req.client_id.is_empty() || req.client_secret.is_empty() {
        return Err(ApiError::bad_request("invalid_client", "client_id and client_secret are required"));
    }
    let p = OidcProvider {
        tenant_id: caller.tenant.clone(),
        issuer: req.issuer.trim_end_matches('/').to_owned(),
        client_id: req.client_id,
        client_secret: state.master.seal(req.client_secret.as_bytes()),
        username_claim: req.username_claim,
        label: req.label,
        updated_at: now_ms(),
    };
    state.store.put_oidc(&p).await?;
    Ok(Json(view(&p)))
}

pub(crate) async fn delete(
    AxState(state): AxState<S>,
    Extension(caller): Extension<Caller>,
) -> Result<StatusCode, ApiError> {
    if state.store.delete_oidc(&caller.tenant).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("no OpenID Connect provider is set for this tenant"))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn issuers_are_https_or_loopback_http() {
        for ok in
            ["https://accounts.example.com", "http://127.0.0.1:5556/dex", "http://localhost:8080", "http://[::1]:9"]
        {
            assert!(super::issuer_ok(ok), "{ok}");
        }
        for bad in [
            "http://idp.example.com",
            "ftp://x",
            "http://10.0.0.1/",
            "idp.example.com",
            "http://127.0.0.1:1@idp.example",
            "https://user:pw@idp.example.com",
        ] {
            assert!(!super::issuer_ok(bad), "{bad}");
        }
    }
}
