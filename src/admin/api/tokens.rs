//! API tokens: who may call the API, and with which role (admin only, even to list).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Deserialize;

use crate::admin::auth::{Need, ADMIN};
use crate::admin::extract::Body;

use crate::control::{NewToken, TokenView};

use super::handler::{as_caller, json, ApiResult, S};
use super::responses::{
    BadRequest, Conflict, Forbidden, NotFound, PayloadTooLarge, Refused, Unauthorized, Unavailable,
};

/// A new API token.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = TokenCreate, example = json!({"name": "ci-operator", "role": "operator"}))]
pub struct TokenBody {
    #[schema(pattern = "^[A-Za-z0-9._-]{1,128}$")]
    name: String,
    #[schema(value_type = crate::control::Role)]
    role: String,
}

/// Every token (admin; never the secrets).
#[utoipa::path(get, path = "/tokens", tag = "tokens", operation_id = "listTokens",
    responses((status = 200, description = "Every token", body = [TokenView]),
        (status = 403, response = Forbidden), (status = 401, response = Unauthorized), (status = 503, response = Unavailable)))]
pub async fn list(State(st): S, _: Need<ADMIN>) -> ApiResult {
    Ok(json(StatusCode::OK, &st.control.tokens().await?))
}

/// Create a token (admin): the secret is in the answer, once.
#[utoipa::path(post, path = "/tokens", tag = "tokens", operation_id = "createToken", request_body = TokenBody,
    responses((status = 201, description = "Created", body = NewToken),
        (status = 400, response = BadRequest), (status = 403, response = Forbidden),
        (status = 409, response = Conflict), (status = 413, response = PayloadTooLarge),
        (status = 422, response = Refused), (status = 401, response = Unauthorized), (status = 503, response = Unavailable)))]
pub async fn create(State(st): S, Need(caller): Need<ADMIN>, Body(body): Body<TokenBody>) -> ApiResult {
    let created = as_caller(&caller, st.control.create_token(&body.name, &body.role)).await?;
    Ok(json(StatusCode::CREATED, &created))
}

/// Revoke a token (admin).
#[utoipa::path(delete, path = "/tokens/{name}", tag = "tokens", operation_id = "revokeToken",
    params(("name" = String, Path, description = "The token's name", pattern = "^[A-Za-z0-9._-]{1,128}$", example = "ci-viewer")),
    responses((status = 204, description = "Revoked"),
        (status = 400, response = BadRequest), (status = 403, response = Forbidden),
        (status = 404, response = NotFound), (status = 401, response = Unauthorized), (status = 503, response = Unavailable)))]
pub async fn revoke(State(st): S, Need(caller): Need<ADMIN>, Path(name): Path<String>) -> ApiResult {
    as_caller(&caller, st.control.revoke_token(&name)).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
