//! The audit log, newest first.

use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;

use crate::admin::auth::{Need, VIEWER};
use crate::admin::extract::Params;

use super::handler::{json, ApiResult, S};

#[derive(Deserialize)]
pub struct LimitQuery {
    limit: Option<i64>,
}

pub async fn list(State(st): S, _: Need<VIEWER>, Params(q): Params<LimitQuery>) -> ApiResult {
    Ok(json(StatusCode::OK, &st.control.audit(q.limit.unwrap_or(100)).await?))
}
