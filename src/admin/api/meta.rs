//! About the API itself: its OpenAPI document, who is calling, and the store's revision.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::admin::auth::{Caller, Need, VIEWER};

use super::handler::{json, ApiResult, S};

pub async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], include_str!("../openapi.json")).into_response()
}

pub async fn whoami(State(st): S, caller: Caller) -> Response {
    json(StatusCode::OK, &serde_json::json!({"name": caller.0.name, "role": caller.0.role, "proxy": st.proxy_addr}))
}

pub async fn revision(State(st): S, _: Need<VIEWER>) -> ApiResult {
    Ok(json(StatusCode::OK, &serde_json::json!({"revision": st.control.revision().await?})))
}
