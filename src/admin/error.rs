//! The admin API's error: a status and `{"error", "message", "hint"}` with the CLI's codes. The
//! one place where `ControlError` becomes an HTTP answer.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::control::ControlError;

/// An API error: status + `{"error", "message", "hint"}` with the CLI's codes.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: String,
    message: String,
    hint: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &str, message: String, hint: &str) -> Self {
        ApiError { status, code: code.to_string(), message, hint: hint.to_string() }
    }

    /// A 400 `usage` error: the request itself is malformed.
    pub fn bad_request(message: impl Into<String>, hint: &str) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, "usage", message.into(), hint)
    }
}

impl From<ControlError> for ApiError {
    fn from(e: ControlError) -> Self {
        let status = match e.exit_code() {
            2 => StatusCode::BAD_REQUEST,
            3 => StatusCode::UNPROCESSABLE_ENTITY,
            4 => StatusCode::NOT_FOUND,
            5 => StatusCode::CONFLICT,
            _ => StatusCode::SERVICE_UNAVAILABLE,
        };
        ApiError { status, code: e.code().to_string(), message: e.message(), hint: e.hint() }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({"error": self.code, "message": self.message, "hint": self.hint});
        let mut resp = (self.status, Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer realm=\"certgate\""));
        }
        resp
    }
}
