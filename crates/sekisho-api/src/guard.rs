//! A panic in one request's handler becomes an error answer and an audit event, never a lost
//! connection with nothing recorded, and never a process abort (`panic = "unwind"`; stack
//! overflows, which Rust cannot catch, are prevented by bounds before every recursive parser:
//! `sekisho_policy::MAX_NESTING`, serde_json's recursion limit).

use std::any::Any;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use axum::extract::{Request, State as AxState};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures_util::FutureExt;
use sekisho_audit::{Decision, Event, EventKind, SubjectKind};

use sekisho_door::credentials::PeerAddr;

use crate::ApiError;
use crate::auth::Caller;
use sekisho_door::State;

/// The tenant whose chain records a panic before anyone was authenticated.
const SYSTEM_TENANT: &str = "default";

/// What a caught panic said, for the log and the audit event.
fn panic_message(payload: &(dyn Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_owned())
}

/// Runs `fut`; a panic in it becomes `Err(message)`.
pub(crate) async fn catch<F: Future>(fut: F) -> Result<F::Output, String> {
    AssertUnwindSafe(fut).catch_unwind().await.map_err(|p| panic_message(&*p))
}

/// Middleware: the request's handler, with a panic answered as `500 internal` and recorded in the
/// caller's tenant (the relay's own when nobody was authenticated yet).
pub async fn catch_panic(AxState(state): AxState<Arc<State>>, req: Request, next: Next) -> Response {
    let what = format!("{} {}", req.method(), req.uri().path());
    let caller = req.extensions().get::<Caller>().cloned();
    let peer = req.extensions().get::<PeerAddr>().map(|p| p.0.ip());
    match catch(next.run(req)).await {
        Ok(response) => response,
        Err(message) => {
            tracing::error!(request = %what, panic = %message, "a request handler panicked");
            let mut event = match &caller {
                Some(c) => {
                    let (kind, name) = c.subject();
                    Event::new(&c.tenant, EventKind::System, Decision::Deny).subject(kind, name)
                }
                None => Event::new(SYSTEM_TENANT, EventKind::System, Decision::Deny)
                    .subject(SubjectKind::Anonymous, String::new()),
            }
            .path("api")
            .target(what)
            .policy("internal_error")
            .reason(format!("internal_error: the request failed inside the relay ({message})"));
            if let Some(ip) = peer {
                event = event.source(ip, state.geo.country(ip));
            }
            if let Err(e) = state.auditor.record_durable(event).await {
                tracing::error!(error = %e, "cannot record a handler panic");
            }
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "internal error; the relay recorded it and kept running",
            )
            .into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panicking_future_becomes_its_message() {
        assert_eq!(catch(async { 7 }).await, Ok(7));
        let text: Result<(), String> = catch(async { panic!("boom {}", 42) }).await;
        assert_eq!(text, Err("boom 42".to_owned()));
        let bare: Result<(), String> = catch(async { std::panic::panic_any(5u8) }).await;
        assert_eq!(bare, Err("a panic without a message".to_owned()));
    }
}
