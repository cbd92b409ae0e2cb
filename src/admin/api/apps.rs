//! Apps and their grants: each calling application has its own proxy credential, and grants say
//! which certificates it may use.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Deserialize;

use crate::admin::auth::{Need, OPERATOR, VIEWER};
use crate::admin::extract::Body;

use super::handler::{as_caller, json, ApiResult, S};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppBody {
    name: String,
}

pub async fn list(State(st): S, _: Need<VIEWER>) -> ApiResult {
    Ok(json(StatusCode::OK, &st.control.apps().await?))
}

pub async fn show(State(st): S, _: Need<VIEWER>, Path(name): Path<String>) -> ApiResult {
    Ok(json(StatusCode::OK, &st.control.app(&name).await?))
}

pub async fn add(State(st): S, Need(caller): Need<OPERATOR>, Body(body): Body<AppBody>) -> ApiResult {
    let created = as_caller(&caller, st.control.add_app(&body.name)).await?;
    Ok(json(StatusCode::CREATED, &created))
}

pub async fn remove(State(st): S, Need(caller): Need<OPERATOR>, Path(name): Path<String>) -> ApiResult {
    as_caller(&caller, st.control.remove_app(&name)).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub async fn grant(
    State(st): S,
    Need(caller): Need<OPERATOR>,
    Path((name, certificate)): Path<(String, String)>,
) -> ApiResult {
    Ok(json(StatusCode::OK, &as_caller(&caller, st.control.grant(&name, &certificate)).await?))
}

pub async fn revoke_grant(
    State(st): S,
    Need(caller): Need<OPERATOR>,
    Path((name, certificate)): Path<(String, String)>,
) -> ApiResult {
    Ok(json(StatusCode::OK, &as_caller(&caller, st.control.revoke_grant(&name, &certificate)).await?))
}
