//! Apps and their grants: each calling application has its own proxy credential, and grants say
//! which certificates it may use.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Deserialize;

use crate::admin::auth::{Need, OPERATOR, VIEWER};
use crate::admin::extract::Body;

use crate::control::{AppView, NewApp};

use super::handler::{as_caller, json, ApiResult, S};
use super::responses::{
    BadRequest, Conflict, Forbidden, NotFound, PayloadTooLarge, Refused, Unauthorized, Unavailable,
};

/// A new calling application.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = AppAdd)]
pub struct AppBody {
    #[schema(pattern = "^[A-Za-z0-9._-]{1,128}$", example = "invoicing-app")]
    name: String,
}

/// Every app with its grants.
#[utoipa::path(get, path = "/apps", tag = "apps", operation_id = "listApps",
    responses((status = 200, description = "Every app", body = [AppView]), (status = 401, response = Unauthorized), (status = 503, response = Unavailable)))]
pub async fn list(State(st): S, _: Need<VIEWER>) -> ApiResult {
    Ok(json(StatusCode::OK, &st.control.apps().await?))
}

/// One app.
#[utoipa::path(get, path = "/apps/{name}", tag = "apps", operation_id = "showApp",
    params(("name" = String, Path, description = "The app's name", pattern = "^[A-Za-z0-9._-]{1,128}$", example = "caller")),
    responses((status = 200, description = "The app", body = AppView),
        (status = 400, response = BadRequest), (status = 404, response = NotFound), (status = 401, response = Unauthorized), (status = 503, response = Unavailable)))]
pub async fn show(State(st): S, _: Need<VIEWER>, Path(name): Path<String>) -> ApiResult {
    Ok(json(StatusCode::OK, &st.control.app(&name).await?))
}

/// Add an app (operator): its proxy credential is in the answer, once.
#[utoipa::path(post, path = "/apps", tag = "apps", operation_id = "addApp", request_body = AppBody,
    responses((status = 201, description = "Added", body = NewApp),
        (status = 400, response = BadRequest), (status = 403, response = Forbidden),
        (status = 409, response = Conflict), (status = 413, response = PayloadTooLarge),
        (status = 422, response = Refused), (status = 401, response = Unauthorized), (status = 503, response = Unavailable)))]
pub async fn add(State(st): S, Need(caller): Need<OPERATOR>, Body(body): Body<AppBody>) -> ApiResult {
    let created = as_caller(&caller, st.control.add_app(&body.name)).await?;
    Ok(json(StatusCode::CREATED, &created))
}

/// Remove an app and its grants (operator).
#[utoipa::path(delete, path = "/apps/{name}", tag = "apps", operation_id = "removeApp",
    params(("name" = String, Path, description = "The app's name", pattern = "^[A-Za-z0-9._-]{1,128}$", example = "caller")),
    responses((status = 204, description = "Removed"),
        (status = 400, response = BadRequest), (status = 403, response = Forbidden),
        (status = 404, response = NotFound), (status = 401, response = Unauthorized), (status = 503, response = Unavailable)))]
pub async fn remove(State(st): S, Need(caller): Need<OPERATOR>, Path(name): Path<String>) -> ApiResult {
    as_caller(&caller, st.control.remove_app(&name)).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Let an app present a certificate (operator).
#[utoipa::path(put, path = "/apps/{name}/grants/{certificate}", tag = "apps", operation_id = "grant",
    params(("name" = String, Path, description = "The app's name", pattern = "^[A-Za-z0-9._-]{1,128}$", example = "caller"), ("certificate" = String, Path, description = "The certificate's name", pattern = "^[A-Za-z0-9._-]{1,128}$", example = "billing")),
    responses((status = 200, description = "The app with its grants", body = AppView),
        (status = 400, response = BadRequest), (status = 403, response = Forbidden),
        (status = 404, response = NotFound), (status = 401, response = Unauthorized), (status = 503, response = Unavailable)))]
pub async fn grant(
    State(st): S,
    Need(caller): Need<OPERATOR>,
    Path((name, certificate)): Path<(String, String)>,
) -> ApiResult {
    Ok(json(StatusCode::OK, &as_caller(&caller, st.control.grant(&name, &certificate)).await?))
}

/// Take a grant away (operator).
#[utoipa::path(delete, path = "/apps/{name}/grants/{certificate}", tag = "apps", operation_id = "revokeGrant",
    params(("name" = String, Path, description = "The app's name", pattern = "^[A-Za-z0-9._-]{1,128}$", example = "caller"), ("certificate" = String, Path, description = "The certificate's name", pattern = "^[A-Za-z0-9._-]{1,128}$", example = "billing")),
    responses((status = 200, description = "The app with its grants", body = AppView),
        (status = 400, response = BadRequest), (status = 403, response = Forbidden),
        (status = 404, response = NotFound), (status = 401, response = Unauthorized), (status = 503, response = Unavailable)))]
pub async fn revoke_grant(
    State(st): S,
    Need(caller): Need<OPERATOR>,
    Path((name, certificate)): Path<(String, String)>,
) -> ApiResult {
    Ok(json(StatusCode::OK, &as_caller(&caller, st.control.revoke_grant(&name, &certificate)).await?))
}
