//! Renewal: make a key and CSR inside certgate, then complete with the issued certificate.

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use serde::Deserialize;

use crate::admin::auth::{Need, ADMIN, VIEWER};
use crate::admin::extract::{decode_b64, Body};
use crate::control::views::{CertificateView, PendingView};
use crate::control::{CertificateRequest, InputFile};

use super::handler::{as_caller, json, ApiResult, S};
use super::responses::{
    BadRequest, Conflict, Forbidden, NotFound, PayloadTooLarge, Refused, Unauthorized, Unavailable,
};

/// `{"subject", "dns"?: [..], "key"?: "ec-p256", "owner"?, "contact"?}`
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = CertificateRequestBody, example = json!({"subject": "CN=billing,O=Example", "dns": [], "key": "ec-p256"}))]
pub struct RequestBody {
    subject: String,
    #[serde(default)]
    dns: Vec<String>,
    key: Option<String>,
    owner: Option<String>,
    contact: Option<String>,
}

/// Make a key inside certgate (sealed at once) and a PKCS#10 request for it (admin).
#[utoipa::path(post, path = "/certificates/{name}/request", tag = "certificates", operation_id = "requestCertificate",
    params(("name" = String, Path, description = "certificate name (an existing one is a renewal)")), request_body = RequestBody,
    responses((status = 201, description = "The pending request, with its CSR", body = Object),
        (status = 409, response = Conflict), (status = 422, response = Refused), (status = 400, response = BadRequest), (status = 401, response = Unauthorized), (status = 403, response = Forbidden), (status = 413, response = PayloadTooLarge), (status = 503, response = Unavailable)))]
pub async fn request(
    State(st): S,
    Need(caller): Need<ADMIN>,
    Path(name): Path<String>,
    Body(body): Body<RequestBody>,
) -> ApiResult {
    let req = CertificateRequest {
        name,
        subject: body.subject,
        dns: body.dns,
        key_type: body.key,
        owner: body.owner,
        contact: body.contact,
    };
    let view = as_caller(&caller, st.control.request_certificate(req)).await?;
    Ok(json(StatusCode::CREATED, &view))
}

/// The pending CSR as a PEM download.
#[utoipa::path(get, path = "/certificates/{name}/request", tag = "certificates", operation_id = "downloadCsr",
    params(("name" = String, Path, description = "certificate name")),
    responses((status = 200, description = "The PKCS#10 request (PEM)", content_type = "application/pkcs10", body = String),
        (status = 404, response = NotFound), (status = 400, response = BadRequest), (status = 401, response = Unauthorized), (status = 503, response = Unavailable)))]
pub async fn csr(State(st): S, _: Need<VIEWER>, Path(name): Path<String>) -> ApiResult {
    let pem = st.control.request_csr(&name).await?;
    let disposition = format!("attachment; filename=\"{name}.csr\"");
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/pkcs10".to_string()), (header::CONTENT_DISPOSITION, disposition)],
        pem,
    )
        .into_response())
}

/// `{"content": PEM text or base64 of PEM/DER/PKCS#7}`
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = CertificateComplete)]
pub struct CompleteBody {
    /// PEM text, or base64 of PEM, DER or PKCS#7 (.p7b).
    content: String,
}

/// Complete a pending request with the issued certificate (admin): the identity switches at once.
#[utoipa::path(post, path = "/certificates/{name}/complete", tag = "certificates", operation_id = "completeCertificate",
    params(("name" = String, Path, description = "certificate name")), request_body = CompleteBody,
    responses((status = 200, description = "The certificate", body = CertificateView),
        (status = 404, response = NotFound), (status = 422, response = Refused), (status = 400, response = BadRequest), (status = 401, response = Unauthorized), (status = 403, response = Forbidden), (status = 413, response = PayloadTooLarge), (status = 503, response = Unavailable)))]
pub async fn complete(
    State(st): S,
    Need(caller): Need<ADMIN>,
    Path(name): Path<String>,
    Body(body): Body<CompleteBody>,
) -> ApiResult {
    let data = if body.content.contains("-----BEGIN") {
        body.content.into_bytes()
    } else {
        decode_b64("content", &body.content)?
    };
    let file = InputFile { label: "content".into(), data };
    let view = as_caller(&caller, st.control.complete_certificate(&name, vec![file])).await?;
    Ok(json(StatusCode::OK, &view))
}

/// Pending certificate requests, with their age.
#[utoipa::path(get, path = "/requests", tag = "certificates", operation_id = "pendingRequests",
    responses((status = 200, description = "Pending requests", body = [PendingView]),
        (status = 401, response = Unauthorized), (status = 503, response = Unavailable)))]
pub async fn pending(State(st): S, _: Need<VIEWER>) -> ApiResult {
    Ok(json(StatusCode::OK, &st.control.pending_requests().await?))
}
