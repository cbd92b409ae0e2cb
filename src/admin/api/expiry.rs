//! What expires when, and who owns it.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;

use crate::admin::auth::{Need, ADMIN, VIEWER};
use crate::admin::extract::{Body, Params};
use crate::control::parse_window;
use crate::control::views::{AnchorView, CertificateView};

use super::handler::{as_caller, json, ApiResult, S};
use super::responses::{BadRequest, Forbidden, NotFound, PayloadTooLarge, Unauthorized, Unavailable};

#[derive(Deserialize, utoipa::IntoParams)]
pub struct WithinQuery {
    /// A window such as 30d, 12h or 2w (default 30d).
    within: Option<String>,
}

/// Certificates, trust anchors and partner certificates that expire within the window.
#[utoipa::path(get, path = "/expiry", tag = "expiry", operation_id = "expiry", params(WithinQuery),
    responses((status = 200, description = "What expires within the window", body = Object),
        (status = 400, response = BadRequest), (status = 401, response = Unauthorized), (status = 503, response = Unavailable)))]
pub async fn list(State(st): S, _: Need<VIEWER>, Params(q): Params<WithinQuery>) -> ApiResult {
    let days = parse_window(q.within.as_deref().unwrap_or("30d"))?;
    Ok(json(StatusCode::OK, &st.control.expiry(days).await?))
}

/// `{"owner"?, "contact"?}`: a missing field stays, an empty one is cleared.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = OwnerPut, example = json!({"owner": "payments team", "contact": "payments@example.test"}))]
pub struct OwnerBody {
    owner: Option<String>,
    contact: Option<String>,
}

/// Set a certificate's owner and contact (admin).
#[utoipa::path(put, path = "/certificates/{name}/owner", tag = "certificates", operation_id = "setCertificateOwner",
    params(("name" = String, Path, description = "certificate name")), request_body = OwnerBody,
    responses((status = 200, description = "The certificate", body = CertificateView),
        (status = 404, response = NotFound), (status = 400, response = BadRequest), (status = 401, response = Unauthorized), (status = 403, response = Forbidden), (status = 413, response = PayloadTooLarge), (status = 503, response = Unavailable)))]
pub async fn certificate_owner(
    State(st): S,
    Need(caller): Need<ADMIN>,
    Path(name): Path<String>,
    Body(body): Body<OwnerBody>,
) -> ApiResult {
    let change = st.control.set_owner("certificate", &name, body.owner.as_deref(), body.contact.as_deref());
    as_caller(&caller, change).await?;
    Ok(json(StatusCode::OK, &st.control.show_certificate(&name).await?))
}

/// Set a trust anchor's owner and contact (admin).
#[utoipa::path(put, path = "/trust-anchors/{name}/owner", tag = "trust anchors", operation_id = "setAnchorOwner",
    params(("name" = String, Path, description = "trust anchor name")), request_body = OwnerBody,
    responses((status = 200, description = "The trust anchor", body = AnchorView),
        (status = 404, response = NotFound), (status = 400, response = BadRequest), (status = 401, response = Unauthorized), (status = 403, response = Forbidden), (status = 413, response = PayloadTooLarge), (status = 503, response = Unavailable)))]
pub async fn anchor_owner(
    State(st): S,
    Need(caller): Need<ADMIN>,
    Path(name): Path<String>,
    Body(body): Body<OwnerBody>,
) -> ApiResult {
    let change = st.control.set_owner("trust-anchor", &name, body.owner.as_deref(), body.contact.as_deref());
    as_caller(&caller, change).await?;
    Ok(json(StatusCode::OK, &st.control.show_anchor(&name).await?))
}
