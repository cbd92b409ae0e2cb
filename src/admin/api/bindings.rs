//! Bindings: which certificate (or none) goes out to a destination, with which trust policy.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Deserialize;

use crate::admin::auth::{Need, OPERATOR, VIEWER};
use crate::admin::error::ApiError;
use crate::admin::extract::{present, Body};
use crate::control::{BindRequest, ControlError};

use super::handler::{as_caller, json, ApiResult, S};

/// `certificate`: a name, or null for "send no certificate".
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BindingBody {
    #[serde(default, deserialize_with = "present")]
    certificate: Option<Option<String>>,
    trust: Option<String>,
    sni: Option<String>,
    #[serde(default)]
    pins: Vec<String>,
}

pub async fn list(State(st): S, _: Need<VIEWER>) -> ApiResult {
    Ok(json(StatusCode::OK, &st.control.bindings().await?))
}

pub async fn show(State(st): S, _: Need<VIEWER>, Path(destination): Path<String>) -> ApiResult {
    let key =
        crate::routes::Destination::parse(&destination).map(|p| p.destination.key()).unwrap_or(destination.clone());
    let found = st.control.bindings().await?.into_iter().find(|b| b.destination == key);
    match found {
        Some(b) => Ok(json(StatusCode::OK, &b)),
        None => Err(ControlError::NotFound {
            what: format!("binding for '{destination}'"),
            hint: "list them with GET /api/v1/bindings".into(),
        }
        .into()),
    }
}

pub async fn put(
    State(st): S,
    Need(caller): Need<OPERATOR>,
    Path(destination): Path<String>,
    Body(body): Body<BindingBody>,
) -> ApiResult {
    let certificate = body.certificate.ok_or_else(|| {
        ApiError::bad_request("'certificate' is required", "give a certificate name, or null to send no certificate")
    })?;
    let view = as_caller(
        &caller,
        st.control.bind(BindRequest { destination, certificate, trust: body.trust, sni: body.sni, pins: body.pins }),
    )
    .await?;
    let status = if view.replaced == Some(true) { StatusCode::OK } else { StatusCode::CREATED };
    Ok(json(status, &view))
}

pub async fn delete(State(st): S, Need(caller): Need<OPERATOR>, Path(destination): Path<String>) -> ApiResult {
    as_caller(&caller, st.control.unbind(&destination)).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
