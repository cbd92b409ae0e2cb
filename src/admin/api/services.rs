//! Named services: `NAME` → a partner base URL, with its certificate (or none) and trust policy.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Deserialize;

use crate::admin::auth::{Need, OPERATOR, VIEWER};
use crate::admin::extract::{present, Body};
use crate::control::ControlError;

use super::handler::{as_caller, json, ApiResult, S};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceBody {
    url: String,
    #[serde(default, deserialize_with = "present")]
    certificate: Option<Option<String>>,
    trust: Option<String>,
}

pub async fn list(State(st): S, _: Need<VIEWER>) -> ApiResult {
    Ok(json(StatusCode::OK, &st.control.services().await?))
}

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

pub async fn put(
    State(st): S,
    Need(caller): Need<OPERATOR>,
    Path(name): Path<String>,
    Body(body): Body<ServiceBody>,
) -> ApiResult {
    let view = as_caller(&caller, st.control.add_service(&name, &body.url, body.certificate, body.trust)).await?;
    let status = if view.replaced == Some(true) { StatusCode::OK } else { StatusCode::CREATED };
    Ok(json(status, &view))
}

pub async fn delete(State(st): S, Need(caller): Need<OPERATOR>, Path(name): Path<String>) -> ApiResult {
    as_caller(&caller, st.control.remove_service(&name)).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
