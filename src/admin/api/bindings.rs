//! Bindings: which certificate (or none) goes out to a destination, with which trust policy.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Deserialize;

use crate::admin::auth::{Need, OPERATOR, VIEWER};
use crate::admin::error::ApiError;
use crate::admin::extract::{present, Body};
use crate::control::{BindRequest, BindingView, ControlError};

use super::handler::{as_caller, json, ApiResult, S};
use super::responses::{BadRequest, Forbidden, NotFound, PayloadTooLarge, Refused, Unauthorized, Unavailable};

/// `certificate`: a name, or null for "send no certificate"; or `certificates`: several names in
/// order of preference. Exactly one of the two.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = BindingPut, example = json!({"certificates": ["billing-2026", "billing-2027"], "trust": "ca:partner-root", "pins": []}))]
pub struct BindingBody {
    /// A certificate name, or null to send no certificate. Required unless `certificates` is given.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    certificate: Option<Option<String>>,
    /// Several certificates in order of preference: at each handshake the first that chains to a
    /// CA the partner names is presented, or the first when it names none. Not empty.
    #[schema(min_items = 1)]
    certificates: Option<Vec<String>>,
    /// public (default), private or ca:NAME[,NAME].
    trust: Option<String>,
    /// The name to send as SNI and verify.
    sni: Option<String>,
    /// SPKI pins: sha256/BASE64 of the partner's public key.
    #[serde(default)]
    pins: Vec<String>,
    /// The partner asks for the certificate after the request (TLS 1.2 renegotiation or TLS 1.3
    /// post-handshake authentication): allow it once per connection (OpenSSL engine, HTTP/1.1).
    #[serde(default)]
    allow_renegotiation: bool,
}

/// Every binding.
#[utoipa::path(get, path = "/bindings", tag = "bindings", operation_id = "listBindings",
    responses((status = 200, description = "Every binding", body = [BindingView]), (status = 401, response = Unauthorized), (status = 503, response = Unavailable)))]
pub async fn list(State(st): S, _: Need<VIEWER>) -> ApiResult {
    let mut bindings = st.control.bindings().await?;
    mark_unavailable(&st.gateway, bindings.iter_mut());
    Ok(json(StatusCode::OK, &bindings))
}

/// Say which bindings the gateway's current route table could not use, and why.
pub(super) fn mark_unavailable<'a>(
    gateway: &crate::gateway::Gateway,
    bindings: impl Iterator<Item = &'a mut BindingView>,
) {
    let Some(table) = gateway.current() else { return };
    if table.unavailable.is_empty() {
        return;
    }
    for b in bindings {
        b.unavailable = table.unavailable.iter().find(|(d, _)| *d == b.destination).map(|(_, why)| why.clone());
    }
}

/// One binding.
#[utoipa::path(get, path = "/bindings/{destination}", tag = "bindings", operation_id = "showBinding",
    params(("destination" = String, Path, description = "host, host:port or *.domain (a URL is reduced to host[:port])", example = "api.partner.test")),
    responses((status = 200, description = "The binding", body = BindingView),
        (status = 400, response = BadRequest), (status = 404, response = NotFound), (status = 401, response = Unauthorized), (status = 503, response = Unavailable)))]
pub async fn show(State(st): S, _: Need<VIEWER>, Path(destination): Path<String>) -> ApiResult {
    let key =
        crate::routes::Destination::parse(&destination).map(|p| p.destination.key()).unwrap_or(destination.clone());
    let mut found = st.control.bindings().await?.into_iter().find(|b| b.destination == key);
    mark_unavailable(&st.gateway, found.iter_mut());
    match found {
        Some(b) => Ok(json(StatusCode::OK, &b)),
        None => Err(ControlError::NotFound {
            what: format!("binding for '{destination}'"),
            hint: "list them with GET /api/v1/bindings".into(),
        }
        .into()),
    }
}

/// Bind a destination to a certificate or to none (operator); replaces an existing binding.
#[utoipa::path(put, path = "/bindings/{destination}", tag = "bindings", operation_id = "putBinding",
    params(("destination" = String, Path, description = "host, host:port or *.domain (a URL is reduced to host[:port])", example = "api.partner.test")), request_body = BindingBody,
    responses((status = 200, description = "Replaced", body = BindingView),
        (status = 201, description = "Created", body = BindingView),
        (status = 400, response = BadRequest), (status = 403, response = Forbidden),
        (status = 404, response = NotFound), (status = 413, response = PayloadTooLarge),
        (status = 422, response = Refused), (status = 401, response = Unauthorized), (status = 503, response = Unavailable)))]
pub async fn put(
    State(st): S,
    Need(caller): Need<OPERATOR>,
    Path(destination): Path<String>,
    Body(body): Body<BindingBody>,
) -> ApiResult {
    let Some(certificates) = chosen_certificates(body.certificate, body.certificates)? else {
        return Err(ApiError::bad_request(
            "'certificate' or 'certificates' is required",
            "give a certificate name (or a list in order of preference), or null to send no certificate",
        ));
    };
    let view = as_caller(
        &caller,
        st.control.bind(BindRequest {
            destination,
            certificates,
            trust: body.trust,
            sni: body.sni,
            pins: body.pins,
            allow_renegotiation: body.allow_renegotiation,
        }),
    )
    .await?;
    let status = if view.replaced == Some(true) { StatusCode::OK } else { StatusCode::CREATED };
    Ok(json(status, &view))
}

/// Remove a binding (operator).
#[utoipa::path(delete, path = "/bindings/{destination}", tag = "bindings", operation_id = "deleteBinding",
    params(("destination" = String, Path, description = "host, host:port or *.domain (a URL is reduced to host[:port])", example = "api.partner.test")),
    responses((status = 204, description = "Removed"),
        (status = 400, response = BadRequest), (status = 403, response = Forbidden),
        (status = 404, response = NotFound), (status = 401, response = Unauthorized), (status = 503, response = Unavailable)))]
pub async fn delete(State(st): S, Need(caller): Need<OPERATOR>, Path(destination): Path<String>) -> ApiResult {
    as_caller(&caller, st.control.unbind(&destination)).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// The `certificate` / `certificates` pair of a binding or service body as the candidate list
/// (empty: send no certificate), or `None` when neither is given. Giving both, or an empty list,
/// is refused.
pub(super) fn chosen_certificates(
    one: Option<Option<String>>,
    list: Option<Vec<String>>,
) -> Result<Option<Vec<String>>, ApiError> {
    match (one, list) {
        (Some(one), None) => Ok(Some(one.into_iter().collect())),
        (None, Some(list)) if !list.is_empty() => Ok(Some(list)),
        (None, Some(_)) => Err(ApiError::bad_request(
            "'certificates' is empty",
            "name at least one certificate, or give \"certificate\": null to send no certificate",
        )),
        (Some(_), Some(_)) => Err(ApiError::bad_request(
            "give either 'certificate' or 'certificates', not both",
            "one certificate in 'certificate', or several in order of preference in 'certificates'",
        )),
        (None, None) => Ok(None),
    }
}
