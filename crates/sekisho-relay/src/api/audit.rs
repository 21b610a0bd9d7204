//! The audit log through the API: search (JSON, JSON lines or CSV) and verification of the
//! caller's chain (every tenant's for the relay operator).

use axum::extract::{Query, State as AxState};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use sekisho_store::AuditFilter;
use serde::Deserialize;

use super::auth::Caller;
use super::{ApiError, S};

#[derive(Deserialize)]
pub(crate) struct SearchQuery {
    #[serde(flatten)]
    filter: AuditFilter,
    format: Option<String>,
}

pub(crate) async fn search(
    AxState(state): AxState<S>,
    Extension(caller): Extension<Caller>,
    Query(q): Query<SearchQuery>,
) -> Result<Response, ApiError> {
    let rows = state.store.search_audit(&caller.tenant, &q.filter).await?;
    Ok(match q.format.as_deref() {
        None | Some("json") => Json(rows).into_response(),
        Some("jsonl") => {
            ([(header::CONTENT_TYPE, "application/x-ndjson")], sekisho_audit::export::to_json_lines(&rows))
                .into_response()
        }
        Some("csv") => {
            ([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], sekisho_audit::export::to_csv(&rows)).into_response()
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
    let tenant = if q.all && caller.is_system() { None } else { Some(caller.tenant.as_str()) };
    let keys = [state.audit_public_key];
    Ok(Json(sekisho_audit::verify(&state.store, &keys, tenant).await?))
}
