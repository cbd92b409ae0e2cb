//! The audit log, newest first.

use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;

use crate::admin::auth::{Need, VIEWER};
use crate::admin::extract::Params;
use crate::control::views::AuditView;

use super::handler::{json, ApiResult, S};
use super::responses::{BadRequest, Unauthorized, Unavailable};

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LimitQuery {
    /// How many entries (default 100; clamped to 1..10000).
    #[param(example = 20)]
    limit: Option<i64>,
}

/// The audit log, newest first.
#[utoipa::path(get, path = "/audit", tag = "audit", operation_id = "audit", params(LimitQuery),
    responses((status = 200, description = "Audit entries", body = [AuditView]),
        (status = 400, response = BadRequest), (status = 401, response = Unauthorized),
        (status = 503, response = Unavailable)))]
pub async fn list(State(st): S, _: Need<VIEWER>, Params(q): Params<LimitQuery>) -> ApiResult {
    Ok(json(StatusCode::OK, &st.control.audit(q.limit.unwrap_or(100)).await?))
}
