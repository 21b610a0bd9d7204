//! The audit log through the API: search (JSON, JSON lines or CSV) and verification of the
//! caller's chain (every tenant's for the relay operator).

use axum::extract::{Path, Query, State as AxState};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use sekisho_store::AuditFilter;
use serde::Deserialize;

use super::auth::Caller;
use super::{ApiError, S};

/// The query string: the filter's fields plus `format` (not flattened: query values are all
/// strings, which serde's flatten cannot turn into numbers).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SearchQuery {
    from: Option<i64>,
    to: Option<i64>,
    subject: Option<String>,
    target: Option<String>,
    decision: Option<String>,
    source_ip: Option<String>,
    country: Option<String>,
    kind: Option<String>,
    path: Option<String>,
    domain: Option<String>,
    /// Paging: events before this `seq` (the last `seq` of the page before).
    before: Option<i64>,
    limit: Option<i64>,
    format: Option<String>,
}

impl SearchQuery {
    fn filter(&self) -> AuditFilter {
        AuditFilter {
            from: self.from,
            to: self.to,
            subject: self.subject.clone(),
            target: self.target.clone(),
            decision: self.decision.clone(),
            source_ip: self.source_ip.clone(),
            country: self.country.clone(),
            kind: self.kind.clone(),
            path: self.path.clone(),
            domain: self.domain.clone(),
            before: self.before,
            limit: self.limit,
        }
    }
}

/// `GET /audit/events/{seq}`: one event with its place in the chain: its hash checked against the
/// previous event's, the neighbours' `seq`, its time in the tenant's zone, and the recording it
/// names (bastion sessions).
pub(crate) async fn event(
    AxState(state): AxState<S>,
    Extension(caller): Extension<Caller>,
    Path(seq): Path<i64>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let row = state
        .store
        .get_audit_event(&caller.tenant, seq)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no audit event #{seq}")))?;
    let next = state.store.get_audit_event(&caller.tenant, seq + 1).await?;
    let previous = match seq {
        1 => None,
        _ => state.store.get_audit_event(&caller.tenant, seq - 1).await?,
    };
    // Its own hash, and its link to the one before (the full proof is `POST /audit/verify`).
    let hash_ok = sekisho_audit::chain::event_hash(&row.prev_hash, row.seq, &row.record) == row.hash;
    // Unknown (null) when the events before it were pruned by retention (archived first).
    let linked = match &previous {
        Some(p) => Some(p.hash == row.prev_hash),
        None if seq == 1 => Some(row.prev_hash == sekisho_audit::chain::GENESIS),
        None => None,
    };
    let zone = state.topology().zone(caller.tenant.as_str());
    let detail: serde_json::Value = serde_json::from_str(&row.record.detail).unwrap_or(serde_json::Value::Null);
    Ok(Json(serde_json::json!({
        "time": sekisho_store::zone::iso(&zone, row.record.at),
        "chain": {
            "seq": row.seq,
            "prev_hash": row.prev_hash,
            "hash": row.hash,
            "hash_ok": hash_ok,
            "linked": linked,
            "previous_seq": previous.map(|p| p.seq),
            "next_seq": next.map(|n| n.seq),
        },
        "recording": detail["recording"].as_str(),
        "event": row,
    })))
}

pub(crate) async fn search(
    AxState(state): AxState<S>,
    Extension(caller): Extension<Caller>,
    q: Result<Query<SearchQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = q.map_err(|e| ApiError::bad_request("bad_query", e.body_text()))?;
    let rows = state.store.search_audit(&caller.tenant, &q.filter()).await?;
    let zone = state.topology().zone(caller.tenant.as_str());
    Ok(match q.format.as_deref() {
        None | Some("json") => Json(rows).into_response(),
        Some("jsonl") => {
            ([(header::CONTENT_TYPE, "application/x-ndjson")], sekisho_audit::export::to_json_lines(&rows, &zone))
                .into_response()
        }
        Some("csv") => {
            ([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], sekisho_audit::export::to_csv(&rows, &zone))
                .into_response()
        }
        Some(other) => {
            return Err(ApiError::bad_request(
                "invalid_format",
                format!("format `{other}` must be json, jsonl or csv"),
            ));
        }
    })
}

#[derive(Deserialize)]
pub(crate) struct SummaryQuery {
    /// The last this many hours (default 24, at most 90 days).
    hours: Option<i64>,
}

/// `GET /audit/summary`: access decisions of the caller's tenant in the last hours.
pub(crate) async fn summary(
    AxState(state): AxState<S>,
    Extension(caller): Extension<Caller>,
    Query(q): Query<SummaryQuery>,
) -> Result<Json<sekisho_store::AuditSummary>, ApiError> {
    let hours = q.hours.unwrap_or(24).clamp(1, 90 * 24);
    let from = sekisho_store::now_ms() - hours * 3600 * 1000;
    Ok(Json(state.store.audit_summary(&caller.tenant, from).await?))
}

#[derive(Deserialize)]
pub(crate) struct VerifyQuery {
    #[serde(default)]
    all: bool,
}

pub(crate) async fn verify(
    AxState(state): AxState<S>,
    Extension(caller): Extension<Caller>,
    Query(q): Query<VerifyQuery>,
) -> Result<Json<sekisho_audit::Report>, ApiError> {
    // Commit and sign what is pending, so the report covers everything up to now.
    let _ = state.auditor.checkpoint().await;
    let tenant = if q.all && caller.is_system() { None } else { Some(&caller.tenant) };
    let keys = [state.audit_public_key];
    let anchors = sekisho_audit::Anchors::read(&state.audit_anchors)
        .map_err(|why| ApiError::new(axum::http::StatusCode::INTERNAL_SERVER_ERROR, "anchors_unreadable", why))?;
    let mut report = sekisho_audit::verify(&state.store, &keys, tenant, Some(&anchors)).await?;
    // Each recording named by a chained event opens to the hash that event states.
    let (dir, key) = (state.recordings.clone(), state.master.recording_key());
    let report = tokio::task::spawn_blocking(move || {
        sekisho_audit::check_recordings(&mut report, &dir, Some(&key));
        report
    })
    .await
    .map_err(|e| ApiError::new(axum::http::StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?;
    Ok(Json(report))
}

/// One stream opened and not closed, as `GET /audit/streams` lists it.
#[derive(serde::Serialize)]
pub(crate) struct OpenStreamView {
    stream_id: String,
    /// The relay forwarding it (the first part of its id).
    relay: String,
    /// Its `opened` event.
    seq: i64,
    at: i64,
    path: String,
    subject: String,
    target: String,
    source_ip: String,
}

/// `GET /audit/streams`: the caller's streams whose `opened` event has no `closed` event yet:
/// open now, or on a relay that stopped and has not started again (which then closes them as
/// `open_at_crash`). Oldest first, at most 1,000.
pub(crate) async fn open_streams(
    AxState(state): AxState<S>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<Vec<OpenStreamView>>, ApiError> {
    let open = state.store.open_streams(Some(&caller.tenant), None, 1000).await?;
    let mut out = Vec::with_capacity(open.len());
    for s in open {
        let row = state.store.audit_page(&caller.tenant, s.seq - 1, 1).await?.into_iter().find(|r| r.seq == s.seq);
        let e = row.map(|r| r.record).unwrap_or_default();
        out.push(OpenStreamView {
            stream_id: s.stream_id,
            relay: s.relay,
            seq: s.seq,
            at: s.at,
            path: e.path,
            subject: e.subject,
            target: e.target,
            source_ip: e.source_ip,
        });
    }
    Ok(Json(out))
}
