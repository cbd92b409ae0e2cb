//! The admin API's error: a status and `{"error", "message", "hint"}` with the CLI's codes. The
//! one place where `ControlError` becomes an HTTP answer.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::control::ControlError;
use crate::model::Action;

/// An API error: status + `{"error", "message", "hint"}` with the CLI's codes.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: String,
    message: String,
    hint: String,
    /// The operation that fixes it, as data (the console offers it as a button).
    action: Option<Box<Action>>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &str, message: String, hint: &str) -> Self {
        ApiError { status, code: code.to_string(), message, hint: hint.to_string(), action: None }
    }

    /// A 400 `usage` error: the request itself is malformed.
    pub fn bad_request(message: impl Into<String>, hint: &str) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, "usage", message.into(), hint)
    }
}

impl From<ControlError> for ApiError {
    fn from(e: ControlError) -> Self {
        // The status belongs to the code (model::ErrorCode); the hint is the interface-neutral
        // remedy, never a command line.
        let code = e.code();
        let status = StatusCode::from_u16(code.http_status()).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
        let remedy = e.remedy();
        ApiError {
            status,
            code: code.to_string(),
            message: e.message(),
            hint: remedy.text.into_owned(),
            action: remedy.action.map(Box::new),
        }
    }
}

/// Every refusal the API itself produces. A refusal changes nothing in the store.
#[derive(serde::Serialize, utoipa::ToSchema)]
#[schema(as = Error)]
pub struct ErrorBody {
    /// A stable code: unauthorized, forbidden, csrf, usage, invalid-name, not-found, name-taken,
    /// still-bound, wrong-password, password-required, no-private-key, key-mismatch, malformed,
    /// unsupported-algorithm, empty, not-a-certificate, too-large, master-key, store-unavailable.
    #[schema(example = "wrong-password")]
    pub error: String,
    /// What was wrong, with the facts.
    pub message: String,
    /// What to do next.
    pub hint: String,
    /// The operation that fixes the problem, as data: the console offers it as a button.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub action: Option<ErrorAction>,
}

/// An operation that fixes a problem.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ErrorAction {
    #[schema(example = "import-certificate")]
    pub id: String,
    /// The certificate, destination or app it is about, when known.
    #[schema(required = true)]
    pub target: Option<String>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: self.code,
            message: self.message,
            hint: self.hint,
            action: self
                .action
                .as_ref()
                .map(|a| ErrorAction { id: a.id().to_string(), target: a.target().map(str::to_string) }),
        };
        let mut resp = (self.status, Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer realm=\"certgate\""));
        }
        resp
    }
}
