//! `POST /recordings/export`: chosen recordings and the chained events that vouch for them, as
//! one archive encrypted to a passphrase or to age recipients (see `sekisho_audit::archive`).
//!
//! Everything is checked before the first byte is sent (each recording exists in the caller's
//! tenant, has ended, and has its chained event; the chain is signed up to now); the archive is
//! then written as it streams, one recording in memory at a time.

use std::collections::BTreeMap;

use age::secrecy::SecretString;
use axum::body::Body as HttpBody;
use axum::extract::State as AxState;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use sekisho_audit::archive::{self, ArchiveWriter, Manifest, ManifestRecording, Seal};
use sekisho_audit::{Decision, EventKind};
use sekisho_store::{AuditRow, Checkpoint, now_ms};
use serde::Deserialize;

use super::auth::Caller;
use super::{ApiError, Body, S};

/// At most this many recordings per archive.
const MAX_RECORDINGS: usize = 1000;
/// At most this many chained events (the recordings' own and the links to their checkpoints).
const MAX_EVENTS: usize = 200_000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ExportRequest {
    ids: Vec<String>,
    #[serde(default)]
    passphrase: Option<String>,
    #[serde(default)]
    recipients: Vec<String>,
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string())
}

pub(crate) async fn export(
    AxState(state): AxState<S>,
    Extension(caller): Extension<Caller>,
    body: Body<ExportRequest>,
) -> Result<Response, ApiError> {
    let Json(req) = body?;
    let seal = match (req.passphrase, req.recipients.is_empty()) {
        (Some(p), true) if p.chars().count() >= 8 => Seal::Passphrase(SecretString::from(p)),
        (Some(_), true) => {
            return Err(ApiError::bad_request("weak_passphrase", "the passphrase must have at least 8 characters"));
        }
        (None, false) => Seal::Recipients(req.recipients),
        _ => {
            return Err(ApiError::bad_request(
                "seal_required",
                "give either `passphrase` or `recipients` (age X25519 recipients, `age1…`), not both",
            ));
        }
    };
    if let Seal::Recipients(list) = &seal
        && let Some(bad) = list.iter().find(|r| r.trim().parse::<age::x25519::Recipient>().is_err())
    {
        return Err(ApiError::bad_request("invalid_recipient", format!("`{bad}` is not an age recipient (`age1…`)")));
    }
    let mut ids = req.ids;
    ids.sort();
    ids.dedup();
    if ids.is_empty() || ids.len() > MAX_RECORDINGS {
        return Err(ApiError::bad_request("invalid_ids", format!("give 1 to {MAX_RECORDINGS} recording ids")));
    }

    // Sign the chain up to now, so every recording's event is covered by a checkpoint.
    state.auditor.checkpoint().await.map_err(internal)?;
    let tenant = caller.tenant.clone();
    let mut recordings = Vec::new();
    for id in &ids {
        let row = state
            .store
            .get_recording(&tenant, id)
            .await?
            .ok_or_else(|| ApiError::not_found(format!("recording `{id}` not found")))?;
        if row.ended_at.is_none() {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "recording_in_progress",
                format!("recording `{id}` is still running; export it when the session has ended"),
            ));
        }
        let event = state.store.recording_event(&tenant, id).await?.ok_or_else(|| {
            ApiError::new(
                StatusCode::CONFLICT,
                "recording_unchained",
                format!("recording `{id}` has no chained event (the relay stopped before the session ended)"),
            )
        })?;
        let file = if row.sha256.is_empty() { String::new() } else { format!("recordings/{id}.cast") };
        recordings.push(ManifestRecording {
            id: row.id,
            user: row.user_name,
            target: row.target,
            protocol: row.protocol,
            kind: row.kind,
            command: row.command,
            source_ip: row.source_ip,
            started_at: row.started_at,
            ended_at: row.ended_at,
            event_seq: event.seq,
            sha256: row.sha256,
            file,
        });
    }
    for r in recordings.iter().filter(|r| !r.file.is_empty()) {
        if !sekisho_door::recordings::cast_path(&state.recordings, &r.id).exists() {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "recording_missing",
                format!("the sealed file of recording `{}` is missing from the recordings directory", r.id),
            ));
        }
    }
    // Each recording's event and the chain from it to the first signed checkpoint after it.
    let all_checkpoints = state.store.list_checkpoints(&tenant).await?;
    let mut checkpoints: BTreeMap<i64, Checkpoint> = BTreeMap::new();
    let mut events: BTreeMap<i64, AuditRow> = BTreeMap::new();
    for r in &recordings {
        let cp = all_checkpoints.iter().filter(|c| c.kind == "periodic" && c.seq >= r.event_seq).min_by_key(|c| c.seq);
        let last = cp.map_or(r.event_seq, |c| c.seq);
        if let Some(c) = cp {
            checkpoints.insert(c.seq, c.clone());
        }
        let mut after = r.event_seq - 1;
        while after < last {
            if events.contains_key(&(after + 1)) {
                after += 1;
                continue;
            }
            let page = state.store.audit_page(&tenant, after, (last - after).min(10_000)).await?;
            let Some(end) = page.last().map(|e| e.seq) else { break };
            events.extend(page.into_iter().map(|e| (e.seq, e)));
            after = end;
            if events.len() > MAX_EVENTS {
                return Err(ApiError::bad_request(
                    "export_too_large",
                    format!("the export would hold more than {MAX_EVENTS} events; export fewer recordings at a time"),
                ));
            }
        }
    }

    let (_, exported_by) = caller.subject();
    let audit = caller
        .event(EventKind::Admin, Decision::Allow, &state)
        .target("recordings/export")
        .reason(format!("exported {} recordings", recordings.len()))
        .detail(serde_json::json!({ "recordings": ids }).to_string());
    state.auditor.record_durable(audit).await.map_err(|e| {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "audit_unavailable", format!("cannot record the export: {e}"))
    })?;

    let manifest = Manifest {
        format: archive::FORMAT.into(),
        created_at: now_ms(),
        tenant: tenant.to_string(),
        exported_by,
        audit_key: hex::encode(state.audit_public_key.as_bytes()),
        recordings,
        files: BTreeMap::new(),
    };
    let events: Vec<AuditRow> = events.into_values().collect();
    let checkpoints: Vec<Checkpoint> = checkpoints.into_values().collect();
    let (dir, key) = (state.recordings.clone(), state.master.recording_key());
    let (reader, writer) = tokio::io::duplex(256 << 10);
    tokio::task::spawn_blocking(move || {
        let out = tokio_util::io::SyncIoBridge::new(writer);
        let result = (|| -> Result<(), String> {
            let created = (manifest.created_at / 1000).max(0) as u64;
            let mut w = ArchiveWriter::new(out, &seal, created).map_err(|e| e.to_string())?;
            for r in manifest.recordings.iter().filter(|r| !r.file.is_empty()) {
                let sealed =
                    std::fs::read(sekisho_door::recordings::cast_path(&dir, &r.id)).map_err(|e| e.to_string())?;
                let opened = sekisho_audit::recording::sealed::open(&key, &sealed).map_err(|e| e.to_string())?;
                w.add(&r.file, &opened.plain).map_err(|e| e.to_string())?;
            }
            w.add(archive::EVENTS, &archive::json_lines(&events)).map_err(|e| e.to_string())?;
            w.add(archive::CHECKPOINTS, &archive::json_lines(&checkpoints)).map_err(|e| e.to_string())?;
            let mut out = w.finish(manifest).map_err(|e| e.to_string())?;
            std::io::Write::flush(&mut out).map_err(|e| e.to_string())?;
            out.shutdown().map_err(|e| e.to_string())
        })();
        // The client sees a truncated archive, which does not decrypt.
        if let Err(e) = result {
            tracing::error!(error = %e, "recording export failed while streaming");
        }
    });
    let name = format!("sekisho-evidence-{}.age", now_ms() / 1000);
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_owned()),
            (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{name}\"")),
        ],
        HttpBody::from_stream(tokio_util::io::ReaderStream::new(reader)),
    )
        .into_response())
}
