//! Renewal: make a key and CSR inside certgate, then complete with the issued certificate.

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use serde::Deserialize;

use crate::admin::auth::{Need, ADMIN, VIEWER};
use crate::admin::extract::{decode_b64, Body};
use crate::control::{CertificateRequest, InputFile};

use super::handler::{as_caller, json, ApiResult, S};

/// `{"subject", "dns"?: [..], "key"?: "ec-p256", "owner"?, "contact"?}`
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestBody {
    subject: String,
    #[serde(default)]
    dns: Vec<String>,
    key: Option<String>,
    owner: Option<String>,
    contact: Option<String>,
}

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
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompleteBody {
    content: String,
}

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

pub async fn pending(State(st): S, _: Need<VIEWER>) -> ApiResult {
    Ok(json(StatusCode::OK, &st.control.pending_requests().await?))
}
