//! The SSH bastion through the API: users' SSH keys, targets' logins (sealed at once; never
//! returned), and recordings — search, the decrypted asciicast, live view and termination.

use axum::body::Body as HttpBody;
use axum::extract::{Path, Query, State as AxState};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use russh::keys::{HashAlg, PrivateKey, PublicKey};
use sekisho_store::{Recording, RecordingFilter, SshKey, SshTarget, now_ms};
use serde::{Deserialize, Serialize};

use super::auth::Caller;
use super::{ApiError, Body, S};
use sekisho_door::secrets::new_id;

// --- Users' SSH keys ----------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewSshKey {
    public_key: String,
    #[serde(default)]
    name: String,
}

/// Parses one OpenSSH public key line; returns (key without comment, fingerprint, comment).
fn parse_public_key(text: &str) -> Result<(String, String, String), ApiError> {
    let mut key = PublicKey::from_openssh(text.trim()).map_err(|e| {
        ApiError::bad_request("invalid_key", format!("not an OpenSSH public key (`ssh-ed25519 AAAA… comment`): {e}"))
    })?;
    let comment = key.comment().to_string();
    key.set_comment("");
    let line = key.to_openssh().map_err(|e| ApiError::bad_request("invalid_key", e.to_string()))?;
    Ok((line, key.fingerprint(HashAlg::Sha256).to_string(), comment))
}

pub(crate) async fn list_ssh_keys(
    AxState(state): AxState<S>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> Result<Json<Vec<SshKey>>, ApiError> {
    let user = super::identity::find_user(&state, &caller, &name).await?;
    Ok(Json(state.store.list_ssh_keys(&caller.tenant, Some(&user.id)).await?))
}

pub(crate) async fn add_ssh_key(
    AxState(state): AxState<S>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    body: Body<NewSshKey>,
) -> Result<impl IntoResponse, ApiError> {
    let Json(req) = body?;
    let user = super::identity::find_user(&state, &caller, &name).await?;
    let (public_key, fingerprint, comment) = parse_public_key(&req.public_key)?;
    let key = SshKey {
        id: new_id("sk"),
        tenant_id: caller.tenant.clone(),
        user_id: user.id,
        name: if req.name.is_empty() { comment } else { req.name },
        public_key,
        fingerprint,
        created_at: now_ms(),
    };
    state.store.insert_ssh_key(&key).await?;
    Ok((StatusCode::CREATED, Json(key)))
}

pub(crate) async fn delete_ssh_key(
    AxState(state): AxState<S>,
    Extension(caller): Extension<Caller>,
    Path((name, key)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let user = super::identity::find_user(&state, &caller, &name).await?;
    let owned = state.store.list_ssh_keys(&caller.tenant, Some(&user.id)).await?;
    let Some(k) = owned.iter().find(|k| k.id == key || k.fingerprint == key) else {
        return Err(ApiError::not_found(format!("user `{name}` has no SSH key `{key}`")));
    };
    state.store.delete_ssh_key(&caller.tenant, &k.id).await?;
    Ok(StatusCode::NO_CONTENT)
}

// --- Target logins --------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TargetLogin {
    /// The account on the target. With `agent_forwarding` it may be empty: each user logs in
    /// as her own Sekisho user name.
    #[serde(default)]
    login: String,
    /// The target takes the user's own key from her forwarded agent (`ssh -A`); no secret is
    /// stored. SSH targets only.
    #[serde(default)]
    agent_forwarding: bool,
    password: Option<String>,
    /// An OpenSSH private key (unencrypted) for the bastion to log in with.
    private_key: Option<String>,
    /// The target's host key (`ssh-ed25519 AAAA…`); learnt on first use when absent.
    host_key: Option<String>,
}

#[derive(Serialize)]
pub(crate) struct TargetLoginView {
    service: String,
    login: String,
    secret_kind: String,
    host_key: String,
    updated_at: i64,
}

fn bastion_target(state: &S, caller: &Caller, name: &str) -> Result<sekisho_store::Service, ApiError> {
    let svc = state
        .topology()
        .find_service(&caller.tenant, name)
        .cloned()
        .ok_or_else(|| ApiError::not_found(format!("service `{name}` not found")))?;
    if !svc.protocol.is_bastion() {
        return Err(ApiError::bad_request(
            "not_a_bastion_target",
            format!("service `{name}` has protocol `{}`; logins are for ssh:// and telnet:// targets", svc.protocol),
        ));
    }
    Ok(svc)
}

fn login_view(svc: &str, t: SshTarget) -> TargetLoginView {
    TargetLoginView {
        service: svc.to_owned(),
        login: t.login,
        secret_kind: t.secret_kind,
        host_key: t.host_key,
        updated_at: t.updated_at,
    }
}

pub(crate) async fn put_login(
    AxState(state): AxState<S>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    body: Body<TargetLogin>,
) -> Result<Json<TargetLoginView>, ApiError> {
    let Json(req) = body?;
    let svc = bastion_target(&state, &caller, &name)?;
    let may_be_empty = req.agent_forwarding && req.login.is_empty();
    if !may_be_empty && (req.login.is_empty() || req.login.len() > 64 || req.login.chars().any(char::is_control)) {
        return Err(ApiError::bad_request("invalid_login", "login must be 1-64 printable characters"));
    }
    if req.agent_forwarding && svc.protocol != "ssh" {
        return Err(ApiError::bad_request(
            "invalid_login",
            format!("agent forwarding logs in to SSH targets; `{name}` is a {} target", svc.protocol),
        ));
    }
    let (kind, secret) = match (&req.password, &req.private_key) {
        _ if req.agent_forwarding && (req.password.is_some() || req.private_key.is_some()) => {
            return Err(ApiError::bad_request(
                "invalid_login",
                "agent forwarding uses the user's own key; give no password or private key with it",
            ));
        }
        _ if req.agent_forwarding => ("agent", String::new()),
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request("invalid_login", "give a password or a private key, not both"));
        }
        (Some(p), None) => ("password", state.master.seal(p.as_bytes())),
        (None, Some(k)) => {
            let key = PrivateKey::from_openssh(k.trim()).map_err(|e| {
                ApiError::bad_request("invalid_key", format!("not an unencrypted OpenSSH private key: {e}"))
            })?;
            if key.is_encrypted() {
                return Err(ApiError::bad_request(
                    "invalid_key",
                    "the private key is encrypted; give it without a passphrase",
                ));
            }
            ("key", state.master.seal(k.trim().as_bytes()))
        }
        (None, None) => ("none", String::new()),
    };
    let host_key = match &req.host_key {
        Some(h) if !h.trim().is_empty() => parse_public_key(h)?.0,
        _ => String::new(),
    };
    let target = SshTarget {
        service_id: svc.id.clone(),
        tenant_id: caller.tenant.clone(),
        login: req.login,
        secret_kind: kind.into(),
        secret,
        host_key,
        updated_at: now_ms(),
    };
    state.store.put_ssh_target(&target).await?;
    Ok(Json(login_view(&svc.name, target)))
}

pub(crate) async fn get_login(
    AxState(state): AxState<S>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> Result<Json<TargetLoginView>, ApiError> {
    let svc = bastion_target(&state, &caller, &name)?;
    let t = state
        .store
        .get_ssh_target(&svc.id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("target `{name}` has no login yet")))?;
    Ok(Json(login_view(&svc.name, t)))
}

// --- Recordings -----------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RecordingQuery {
    user: Option<String>,
    target: Option<String>,
    source_ip: Option<String>,
    protocol: Option<String>,
    command: Option<String>,
    since: Option<i64>,
    until: Option<i64>,
    limit: Option<i64>,
}

#[derive(Serialize)]
pub(crate) struct RecordingView {
    #[serde(flatten)]
    row: Recording,
    live: bool,
}

pub(crate) async fn search_recordings(
    AxState(state): AxState<S>,
    Extension(caller): Extension<Caller>,
    q: Result<Query<RecordingQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Vec<RecordingView>>, ApiError> {
    let Query(q) = q.map_err(|e| ApiError::bad_request("bad_query", e.body_text()))?;
    let filter = RecordingFilter {
        user: q.user,
        target: q.target,
        source_ip: q.source_ip,
        protocol: q.protocol,
        command: q.command,
        since: q.since,
        until: q.until,
        limit: q.limit.unwrap_or(100),
    };
    let rows = state.store.search_recordings(&caller.tenant, &filter).await?;
    Ok(Json(
        rows.into_iter()
            .map(|row| RecordingView { live: state.live_sessions.get(&caller.tenant, &row.id).is_some(), row })
            .collect(),
    ))
}

async fn find_recording(state: &S, caller: &Caller, id: &str) -> Result<Recording, ApiError> {
    state
        .store
        .get_recording(&caller.tenant, id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("recording `{id}` not found")))
}

pub(crate) async fn get_recording(
    AxState(state): AxState<S>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<RecordingView>, ApiError> {
    let row = find_recording(&state, &caller, &id).await?;
    Ok(Json(RecordingView { live: state.live_sessions.get(&caller.tenant, &id).is_some(), row }))
}

/// The asciicast of a recording, decrypted (playable with `asciinema play`).
pub(crate) async fn get_cast(
    AxState(state): AxState<S>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let row = find_recording(&state, &caller, &id).await?;
    let path = sekisho_door::recordings::cast_path(&state.recordings, &row.id);
    let sealed = tokio::fs::read(&path).await.map_err(|_| {
        ApiError::not_found(format!("recording `{id}` has no terminal recording (kind `{}`)", row.kind))
    })?;
    let key = state.master.recording_key();
    let opened = tokio::task::spawn_blocking(move || sekisho_audit::recording::sealed::open(&key, &sealed))
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?
        .map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "recording_damaged", e.to_string()))?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/x-asciicast"),
            (header::HeaderName::from_static("x-recording-complete"), if opened.complete { "true" } else { "false" }),
        ],
        opened.plain,
    )
        .into_response())
}

/// A session in progress as asciicast lines, from its header on, until it ends.
pub(crate) async fn live(
    AxState(state): AxState<S>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let Some(live) = state.live_sessions.get(&caller.tenant, &id) else {
        return Err(ApiError::not_found(format!("no session `{id}` is in progress")));
    };
    let rx = live.lines.subscribe();
    let header = bytes::Bytes::from(live.header.clone());
    let cancel = live.cancel.clone();
    drop(live);
    let head = futures_util::stream::once(async move { Ok::<_, std::convert::Infallible>(header) });
    let rest = futures_util::stream::unfold((rx, cancel), |(mut rx, cancel)| async move {
        loop {
            tokio::select! {
                r = rx.recv() => match r {
                    Ok(b) => return Some((Ok(b), (rx, cancel))),
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(_) => return None,
                },
                () = cancel.cancelled() => return None,
            }
        }
    });
    let stream = futures_util::StreamExt::chain(head, rest);
    Ok(([(header::CONTENT_TYPE, "application/x-asciicast")], HttpBody::from_stream(stream)).into_response())
}

pub(crate) async fn terminate(
    AxState(state): AxState<S>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let Some(live) = state.live_sessions.get(&caller.tenant, &id) else {
        return Err(ApiError::not_found(format!("no session `{id}` is in progress")));
    };
    live.terminate(&caller.subject().1);
    Ok(StatusCode::NO_CONTENT)
}
