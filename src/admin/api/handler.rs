//! What every API handler shares: the state extractor, the result type, the JSON reply, and
//! running a change with the caller as the audit log's actor.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::control::ACTOR;

use crate::admin::auth::Caller;
use crate::admin::error::ApiError;
use crate::admin::state::AdminState;

pub type S = State<Arc<AdminState>>;
pub type ApiResult = Result<Response, ApiError>;

pub fn json<T: serde::Serialize>(status: StatusCode, value: &T) -> Response {
    (status, Json(value)).into_response()
}

/// Run a change with the caller as the audit log's actor.
pub async fn as_caller<T>(caller: &Caller, fut: impl std::future::Future<Output = T>) -> T {
    ACTOR.scope(format!("api:{}", caller.0.name), fut).await
}
