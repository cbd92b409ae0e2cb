//! About the API itself: its OpenAPI document, who is calling, and the store's revision.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

use crate::admin::auth::{Caller, Need, VIEWER};
use crate::control::Role;

use super::doc::{Unauthorized, Unavailable};
use super::handler::{json, ApiResult, S};

/// Who is calling, and where applications send their requests.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Whoami {
    name: String,
    role: Role,
    /// The proxy listener's address (for HTTP_PROXY).
    proxy: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Revision {
    /// The store revision; every change adds one.
    revision: i64,
}

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "meta", operation_id = "openapi", security(()),
    responses((status = 200, description = "The OpenAPI document", body = Object)))]
pub async fn openapi() -> Response {
    Json(super::doc::document()).into_response()
}

/// The calling token's name and role, and the proxy listener's address.
#[utoipa::path(get, path = "/whoami", tag = "meta", operation_id = "whoami",
    responses((status = 200, description = "The caller", body = Whoami),
        (status = 401, response = Unauthorized), (status = 503, response = Unavailable)))]
pub async fn whoami(State(st): S, caller: Caller) -> Response {
    json(StatusCode::OK, &Whoami { name: caller.0.name, role: caller.0.role, proxy: st.proxy_addr.clone() })
}

/// The store revision.
#[utoipa::path(get, path = "/revision", tag = "meta", operation_id = "revision",
    responses((status = 200, description = "The store revision", body = Revision),
        (status = 401, response = Unauthorized), (status = 503, response = Unavailable)))]
pub async fn revision(State(st): S, _: Need<VIEWER>) -> ApiResult {
    Ok(json(StatusCode::OK, &Revision { revision: st.control.revision().await? }))
}
