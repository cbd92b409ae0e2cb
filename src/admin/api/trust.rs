//! Trust anchors: the CA certificates trusted for verifying partner servers.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Deserialize;

use crate::admin::auth::{Need, ADMIN, VIEWER};
use crate::admin::extract::{decode_b64, Body};

use crate::control::views::AnchorView;

use super::handler::{as_caller, json, ApiResult, S};
use super::responses::{
    BadRequest, Conflict, Forbidden, NotFound, PayloadTooLarge, Refused, Unauthorized, Unavailable,
};

/// A new trust anchor.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = TrustAnchorAdd)]
pub struct AnchorBody {
    #[schema(pattern = "^[A-Za-z0-9._-]{1,128}$", example = "partner-root-2")]
    name: String,
    /// PEM text, or base64 of PEM or DER.
    content: String,
    owner: Option<String>,
    /// E-mail addresses and/or `webhook:NAME` for expiry alerts.
    contact: Option<String>,
}

/// Every trust anchor.
#[utoipa::path(get, path = "/trust-anchors", tag = "trust anchors", operation_id = "listTrustAnchors",
    responses((status = 200, description = "Every trust anchor", body = [AnchorView]), (status = 401, response = Unauthorized), (status = 503, response = Unavailable)))]
pub async fn list(State(st): S, _: Need<VIEWER>) -> ApiResult {
    Ok(json(StatusCode::OK, &st.control.list_anchors().await?))
}

/// One trust anchor.
#[utoipa::path(get, path = "/trust-anchors/{name}", tag = "trust anchors", operation_id = "showTrustAnchor",
    params(("name" = String, Path, description = "The trust anchor's name", pattern = "^[A-Za-z0-9._-]{1,128}$", example = "partner-root")),
    responses((status = 200, description = "The trust anchor", body = AnchorView),
        (status = 400, response = BadRequest), (status = 404, response = NotFound), (status = 401, response = Unauthorized), (status = 503, response = Unavailable)))]
pub async fn show(State(st): S, _: Need<VIEWER>, Path(name): Path<String>) -> ApiResult {
    Ok(json(StatusCode::OK, &st.control.show_anchor(&name).await?))
}

/// Add a trust anchor (admin).
#[utoipa::path(post, path = "/trust-anchors", tag = "trust anchors", operation_id = "addTrustAnchor",
    request_body = AnchorBody,
    responses((status = 201, description = "Added", body = AnchorView),
        (status = 400, response = BadRequest), (status = 403, response = Forbidden),
        (status = 409, response = Conflict), (status = 413, response = PayloadTooLarge),
        (status = 422, response = Refused), (status = 401, response = Unauthorized), (status = 503, response = Unavailable)))]
pub async fn add(State(st): S, Need(caller): Need<ADMIN>, Body(body): Body<AnchorBody>) -> ApiResult {
    let data = if body.content.contains("-----BEGIN") {
        body.content.into_bytes()
    } else {
        decode_b64("content", &body.content)?
    };
    let view = as_caller(
        &caller,
        st.control.add_anchor_owned(&body.name, "content", &data, body.owner.as_deref(), body.contact.as_deref()),
    )
    .await?;
    Ok(json(StatusCode::CREATED, &view))
}

/// Remove a trust anchor (admin).
#[utoipa::path(delete, path = "/trust-anchors/{name}", tag = "trust anchors", operation_id = "removeTrustAnchor",
    params(("name" = String, Path, description = "The trust anchor's name", pattern = "^[A-Za-z0-9._-]{1,128}$", example = "partner-root")),
    responses((status = 204, description = "Removed"),
        (status = 400, response = BadRequest), (status = 403, response = Forbidden),
        (status = 404, response = NotFound), (status = 409, response = Conflict), (status = 401, response = Unauthorized), (status = 503, response = Unavailable)))]
pub async fn remove(State(st): S, Need(caller): Need<ADMIN>, Path(name): Path<String>) -> ApiResult {
    as_caller(&caller, st.control.remove_anchor(&name)).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
