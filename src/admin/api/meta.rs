//! About the API itself: who is calling, and the store's revision (the document is `doc`).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Serialize;

use crate::admin::auth::{Caller, Need, VIEWER};
use crate::control::Role;

use super::handler::{json, ApiResult, S};
use super::responses::{Unauthorized, Unavailable};

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
