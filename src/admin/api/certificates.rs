//! Client certificates: list, show, check, import, rotate, export, remove.

use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::IntoResponse;
use serde::Deserialize;

use crate::admin::auth::{Need, ADMIN, VIEWER};
use crate::admin::error::ApiError;
use crate::admin::extract::{read_upload, Params};
use crate::control::ExportFormat;

use crate::control::views::{CertificateView, CheckReport};

use super::handler::{as_caller, json, ApiResult, S};
use super::responses::{
    BadRequest, Conflict, Forbidden, NotFound, PayloadTooLarge, Refused, Unauthorized, Unavailable,
};

const UPLOAD: &str = "The certificate file as a multipart form, or as JSON with the file base64-encoded. Files larger than 1 MiB are refused (422 too-large); a body larger than 4 MiB is refused the same way.";

/// Every certificate.
#[utoipa::path(get, path = "/certificates", tag = "certificates", operation_id = "listCertificates",
    responses((status = 200, description = "Every certificate", body = [CertificateView]), (status = 401, response = Unauthorized), (status = 503, response = Unavailable)))]
pub async fn list(State(st): S, _: Need<VIEWER>) -> ApiResult {
    Ok(json(StatusCode::OK, &st.control.list_certificates().await?))
}

/// One certificate.
#[utoipa::path(get, path = "/certificates/{name}", tag = "certificates", operation_id = "showCertificate",
    params(("name" = String, Path, description = "The certificate's name", pattern = "^[A-Za-z0-9._-]{1,128}$", example = "billing")),
    responses((status = 200, description = "The certificate", body = CertificateView),
        (status = 400, response = BadRequest), (status = 404, response = NotFound), (status = 401, response = Unauthorized), (status = 503, response = Unavailable)))]
pub async fn show(State(st): S, _: Need<VIEWER>, Path(name): Path<String>) -> ApiResult {
    Ok(json(StatusCode::OK, &st.control.show_certificate(&name).await?))
}

/// Key, path to a root, validity, purpose, with a remedy for each problem.
#[utoipa::path(get, path = "/certificates/{name}/check", tag = "certificates", operation_id = "checkCertificate",
    params(("name" = String, Path, description = "The certificate's name", pattern = "^[A-Za-z0-9._-]{1,128}$", example = "billing")),
    responses((status = 200, description = "The check report", body = CheckReport),
        (status = 400, response = BadRequest), (status = 404, response = NotFound), (status = 401, response = Unauthorized), (status = 503, response = Unavailable)))]
pub async fn check(State(st): S, _: Need<VIEWER>, Path(name): Path<String>) -> ApiResult {
    let mut reports = st.control.check_certificates(Some(&name)).await?;
    Ok(json(StatusCode::OK, &reports.pop()))
}

/// Import a certificate (admin). With the same certificate stored under another name, the answer
/// warns `already-stored` and names it; the import still happens.
#[utoipa::path(post, path = "/certificates", tag = "certificates", operation_id = "importCertificate",
    request_body(description = UPLOAD, content(
        (crate::admin::extract::UploadJson = "application/json"),
        (super::responses::CertificateForm = "multipart/form-data"))),
    responses((status = 201, description = "Imported (warnings in the answer)", body = CertificateView),
        (status = 400, response = BadRequest), (status = 403, response = Forbidden),
        (status = 409, response = Conflict), (status = 413, response = PayloadTooLarge),
        (status = 422, response = Refused), (status = 401, response = Unauthorized), (status = 503, response = Unavailable)))]
pub async fn import(State(st): S, Need(caller): Need<ADMIN>, req: Request) -> ApiResult {
    let up = read_upload(req, &st).await?;
    let name = up.name.clone().ok_or_else(|| ApiError::bad_request("no name was sent", "send the 'name' field"))?;
    let req = up.into_import(name)?;
    let view = as_caller(&caller, st.control.import_certificate(req)).await?;
    Ok(json(StatusCode::CREATED, &view))
}

/// New material under an existing name (admin): bindings and grants stay.
#[utoipa::path(put, path = "/certificates/{name}", tag = "certificates", operation_id = "rotateCertificate",
    params(("name" = String, Path, description = "The certificate's name", pattern = "^[A-Za-z0-9._-]{1,128}$", example = "billing")),
    request_body(description = UPLOAD, content(
        (crate::admin::extract::UploadJson = "application/json"),
        (super::responses::CertificateForm = "multipart/form-data"))),
    responses((status = 200, description = "Rotated", body = CertificateView),
        (status = 400, response = BadRequest), (status = 403, response = Forbidden),
        (status = 404, response = NotFound), (status = 413, response = PayloadTooLarge),
        (status = 422, response = Refused), (status = 401, response = Unauthorized), (status = 503, response = Unavailable)))]
pub async fn rotate(State(st): S, Need(caller): Need<ADMIN>, Path(name): Path<String>, req: Request) -> ApiResult {
    let up = read_upload(req, &st).await?;
    if up.name.as_ref().is_some_and(|n| *n != name) {
        return Err(ApiError::bad_request(
            "the body names another certificate than the URL",
            "leave 'name' out when rotating",
        ));
    }
    let req = up.into_import(name)?;
    let view = as_caller(&caller, st.control.rotate_certificate(req)).await?;
    Ok(json(StatusCode::OK, &view))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ForceQuery {
    /// Also drop the bindings that use it (otherwise 409 still-bound).
    force: Option<bool>,
}

/// Remove a certificate (admin).
#[utoipa::path(delete, path = "/certificates/{name}", tag = "certificates", operation_id = "removeCertificate",
    params(("name" = String, Path, description = "The certificate's name", pattern = "^[A-Za-z0-9._-]{1,128}$", example = "billing"), ForceQuery),
    responses((status = 204, description = "Removed"),
        (status = 400, response = BadRequest), (status = 403, response = Forbidden),
        (status = 404, response = NotFound), (status = 409, response = Conflict), (status = 401, response = Unauthorized), (status = 503, response = Unavailable)))]
pub async fn remove(
    State(st): S,
    Need(caller): Need<ADMIN>,
    Path(name): Path<String>,
    Params(q): Params<ForceQuery>,
) -> ApiResult {
    as_caller(&caller, st.control.remove_certificate(&name, q.force.unwrap_or(false))).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ExportQuery {
    /// pem (default) or der.
    #[param(value_type = Option<super::responses::ExportFormatName>)]
    format: Option<String>,
    /// With the issuers (PEM only; with format=der: 400).
    chain: Option<bool>,
}

/// The public part (never the key): PEM, with chain=true its issuers too, or DER.
#[utoipa::path(get, path = "/certificates/{name}/export", tag = "certificates", operation_id = "exportCertificate",
    params(("name" = String, Path, description = "The certificate's name", pattern = "^[A-Za-z0-9._-]{1,128}$", example = "billing"), ExportQuery),
    responses((status = 200, description = "PEM (the leaf, and with chain=true its issuers as far as the store knows them) or DER (the leaf)",
            headers(("Content-Disposition" = String, description = "attachment; filename=\"NAME.pem\" or \"NAME.cer\"")),
            content((String = "application/x-pem-file"), (super::responses::DerCertificate = "application/pkix-cert"))),
        (status = 400, response = BadRequest), (status = 404, response = NotFound), (status = 401, response = Unauthorized), (status = 503, response = Unavailable)))]
pub async fn export(
    State(st): S,
    _: Need<VIEWER>,
    Path(name): Path<String>,
    Params(q): Params<ExportQuery>,
) -> ApiResult {
    let format = match q.format.as_deref().unwrap_or("pem") {
        "pem" => ExportFormat::Pem,
        "der" => ExportFormat::Der,
        other => {
            return Err(ApiError::bad_request(
                format!("format '{other}' is not pem or der"),
                "use ?format=pem or ?format=der",
            ))
        }
    };
    let bytes = st.control.export_certificate(&name, format, q.chain.unwrap_or(false)).await?;
    let (ctype, ext) = match format {
        ExportFormat::Pem => ("application/x-pem-file", "pem"),
        ExportFormat::Der => ("application/pkix-cert", "cer"),
    };
    let mut headers = HeaderMap::new();
    headers.insert(header::CONTENT_TYPE, ctype.parse().expect("static"));
    if let Ok(v) = format!("attachment; filename=\"{name}.{ext}\"").parse() {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok((headers, bytes).into_response())
}
