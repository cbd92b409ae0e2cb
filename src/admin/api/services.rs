//! Named services: `NAME` → a partner base URL, with its certificate (or none) and trust policy.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Deserialize;

use crate::admin::auth::{Need, OPERATOR, VIEWER};
use crate::admin::extract::{present, Body};
use crate::control::ControlError;

use super::handler::{as_caller, json, ApiResult, S};
use super::responses::{BadRequest, Forbidden, NotFound, PayloadTooLarge, Refused, Unauthorized, Unavailable};

/// A named service's partner URL and binding.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = ServicePut, example = json!({"url": "https://api.partner.test/soap/invoice", "certificate": "billing", "trust": "ca:partner-root"}))]
pub struct ServiceBody {
    /// The partner's base URL: an https URL with host, optional port and path; no query or fragment.
    url: String,
    /// A certificate name, or null for no certificate; absent (and no `certificates`): the URL
    /// host's binding applies.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    certificate: Option<Option<String>>,
    /// Several certificates in order of preference, as for a binding: at each handshake the first
    /// that chains to a CA the partner names is presented, or the first when it names none.
    #[schema(min_items = 1)]
    certificates: Option<Vec<String>>,
    /// Only with a certificate.
    trust: Option<String>,
    /// The partner asks for the certificate after the request (TLS 1.2 renegotiation or TLS 1.3
    /// post-handshake authentication): allow it once per connection (OpenSSL engine, HTTP/1.1).
    /// Only with a certificate.
    #[serde(default)]
    allow_renegotiation: bool,
}

/// Every named service.
#[utoipa::path(get, path = "/services", tag = "services", operation_id = "listServices",
    responses((status = 200, description = "Every service", body = [crate::control::ServiceView]), (status = 401, response = Unauthorized), (status = 503, response = Unavailable)))]
pub async fn list(State(st): S, _: Need<VIEWER>) -> ApiResult {
    let mut services = st.control.services().await?;
    super::bindings::mark_unavailable(&st.gateway, services.iter_mut().filter_map(|s| s.binding.as_mut()));
    Ok(json(StatusCode::OK, &services))
}

/// One named service.
#[utoipa::path(get, path = "/services/{name}", tag = "services", operation_id = "showService",
    params(("name" = String, Path, description = "The service's name", pattern = "^[A-Za-z0-9._-]{1,128}$", example = "Billing.InvoiceService")),
    responses((status = 200, description = "The service", body = crate::control::ServiceView),
        (status = 400, response = BadRequest), (status = 404, response = NotFound), (status = 401, response = Unauthorized), (status = 503, response = Unavailable)))]
pub async fn show(State(st): S, _: Need<VIEWER>, Path(name): Path<String>) -> ApiResult {
    match st.control.services().await?.into_iter().find(|s| s.name == name) {
        Some(s) => Ok(json(StatusCode::OK, &s)),
        None => Err(ControlError::NotFound {
            what: format!("service '{name}'"),
            hint: "list them with GET /api/v1/services".into(),
        }
        .into()),
    }
}

/// Add or change a named service (operator).
#[utoipa::path(put, path = "/services/{name}", tag = "services", operation_id = "putService",
    params(("name" = String, Path, description = "The service's name", pattern = "^[A-Za-z0-9._-]{1,128}$", example = "Billing.InvoiceService")), request_body = ServiceBody,
    responses((status = 200, description = "Replaced", body = crate::control::ServiceView),
        (status = 201, description = "Created", body = crate::control::ServiceView),
        (status = 400, response = BadRequest), (status = 403, response = Forbidden),
        (status = 404, response = NotFound), (status = 413, response = PayloadTooLarge),
        (status = 422, response = Refused), (status = 401, response = Unauthorized), (status = 503, response = Unavailable)))]
pub async fn put(
    State(st): S,
    Need(caller): Need<OPERATOR>,
    Path(name): Path<String>,
    Body(body): Body<ServiceBody>,
) -> ApiResult {
    let certificates = super::bindings::chosen_certificates(body.certificate, body.certificates)?;
    let view = as_caller(
        &caller,
        st.control.add_service(&name, &body.url, certificates, body.trust, body.allow_renegotiation),
    )
    .await?;
    let status = if view.replaced == Some(true) { StatusCode::OK } else { StatusCode::CREATED };
    Ok(json(status, &view))
}

/// Remove a named service (operator).
#[utoipa::path(delete, path = "/services/{name}", tag = "services", operation_id = "deleteService",
    params(("name" = String, Path, description = "The service's name", pattern = "^[A-Za-z0-9._-]{1,128}$", example = "Billing.InvoiceService")),
    responses((status = 204, description = "Removed"),
        (status = 400, response = BadRequest), (status = 403, response = Forbidden),
        (status = 404, response = NotFound), (status = 401, response = Unauthorized), (status = 503, response = Unavailable)))]
pub async fn delete(State(st): S, Need(caller): Need<OPERATOR>, Path(name): Path<String>) -> ApiResult {
    as_caller(&caller, st.control.remove_service(&name)).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
