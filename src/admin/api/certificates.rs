//! Client certificates: list, show, check, import, rotate, export, remove.

use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::IntoResponse;
use serde::Deserialize;

use crate::admin::auth::{Need, ADMIN, VIEWER};
use crate::admin::error::ApiError;
use crate::admin::extract::{read_upload, Params};
use crate::control::ExportFormat;

use super::handler::{as_caller, json, ApiResult, S};

pub async fn list(State(st): S, _: Need<VIEWER>) -> ApiResult {
    Ok(json(StatusCode::OK, &st.control.list_certificates().await?))
}

pub async fn show(State(st): S, _: Need<VIEWER>, Path(name): Path<String>) -> ApiResult {
    Ok(json(StatusCode::OK, &st.control.show_certificate(&name).await?))
}

pub async fn check(State(st): S, _: Need<VIEWER>, Path(name): Path<String>) -> ApiResult {
    let mut reports = st.control.check_certificates(Some(&name)).await?;
    Ok(json(StatusCode::OK, &reports.pop()))
}

pub async fn import(State(st): S, Need(caller): Need<ADMIN>, req: Request) -> ApiResult {
    let up = read_upload(req, &st).await?;
    let name = up.name.clone().ok_or_else(|| ApiError::bad_request("no name was sent", "send the 'name' field"))?;
    let req = up.into_import(name)?;
    let view = as_caller(&caller, st.control.import_certificate(req)).await?;
    Ok(json(StatusCode::CREATED, &view))
}

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

#[derive(Deserialize)]
pub struct ForceQuery {
    force: Option<bool>,
}

pub async fn remove(
    State(st): S,
    Need(caller): Need<ADMIN>,
    Path(name): Path<String>,
    Params(q): Params<ForceQuery>,
) -> ApiResult {
    as_caller(&caller, st.control.remove_certificate(&name, q.force.unwrap_or(false))).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize)]
pub struct ExportQuery {
    format: Option<String>,
    chain: Option<bool>,
}

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
