//! API tokens: who may call the API, and with which role (admin only, even to list).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Deserialize;

use crate::admin::auth::{Need, ADMIN};
use crate::admin::extract::Body;

use super::handler::{as_caller, json, ApiResult, S};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenBody {
    name: String,
    role: String,
}

pub async fn list(State(st): S, _: Need<ADMIN>) -> ApiResult {
    Ok(json(StatusCode::OK, &st.control.tokens().await?))
}

pub async fn create(State(st): S, Need(caller): Need<ADMIN>, Body(body): Body<TokenBody>) -> ApiResult {
    let created = as_caller(&caller, st.control.create_token(&body.name, &body.role)).await?;
    Ok(json(StatusCode::CREATED, &created))
}

pub async fn revoke(State(st): S, Need(caller): Need<ADMIN>, Path(name): Path<String>) -> ApiResult {
    as_caller(&caller, st.control.revoke_token(&name)).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
