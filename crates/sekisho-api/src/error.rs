//! The one place errors become HTTP responses: a stable code and a message for people.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

#[derive(Debug)]
pub(crate) struct ApiError {
    pub(crate) status: StatusCode,
    pub(crate) code: &'static str,
    pub(crate) message: String,
    /// Extra machine-readable facts (e.g. policy diagnostics), merged into the error object.
    pub(crate) details: Option<serde_json::Value>,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError { status, code, message: message.into(), details: None }
    }

    pub(crate) fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub(crate) fn unauthenticated(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthenticated", message)
    }
}

impl From<JsonRejection> for ApiError {
    fn from(e: JsonRejection) -> Self {
        let status = match e.status() {
            StatusCode::UNSUPPORTED_MEDIA_TYPE | StatusCode::PAYLOAD_TOO_LARGE => e.status(),
            _ => StatusCode::BAD_REQUEST,
        };
        Self::new(status, "bad_json", e.body_text())
    }
}

impl ApiError {
    pub(crate) fn forbidden(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, code, message)
    }

    pub(crate) fn with_details(mut self, details: serde_json::Value) -> Self {
        self.details = Some(details);
        self
    }

    /// The same error with another stable code.
    pub(crate) fn with_code(mut self, code: &'static str) -> Self {
        self.code = code;
        self
    }

    pub(crate) fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", message)
    }
}

impl From<sekisho_door::credentials::KeyProblem> for ApiError {
    fn from(p: sekisho_door::credentials::KeyProblem) -> Self {
        let status = if p.code == "ip_not_allowed" { StatusCode::FORBIDDEN } else { StatusCode::UNAUTHORIZED };
        ApiError::new(status, p.code, p.message)
    }
}

/// `code: message` of an error response, for the audit trail.
#[derive(Debug, Clone)]
pub(crate) struct ErrorTag(pub(crate) String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let tag = ErrorTag(format!("{}: {}", self.code, self.message));
        let message_ja = crate::error_ja::sentence(self.code, &self.message);
        let mut error = json!({ "code": self.code, "message": self.message, "message_ja": message_ja });
        if let (Some(serde_json::Value::Object(extra)), Some(obj)) = (self.details, error.as_object_mut()) {
            obj.extend(extra);
        }
        let mut response = (self.status, Json(json!({ "error": error }))).into_response();
        response.extensions_mut().insert(tag);
        response
    }
}
