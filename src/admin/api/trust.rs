//! Trust anchors: the CA certificates trusted for verifying partner servers.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Deserialize;

use crate::admin::auth::{Need, ADMIN, VIEWER};
use crate::admin::extract::{decode_b64, Body};

use super::handler::{as_caller, json, ApiResult, S};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnchorBody {
    name: String,
    /// PEM text, or base64 of PEM or DER.
    content: String,
    owner: Option<String>,
    /// E-mail addresses and/or `webhook:NAME` for expiry alerts.
    contact: Option<String>,
}

pub async fn list(State(st): S, _: Need<VIEWER>) -> ApiResult {
    Ok(json(StatusCode::OK, &st.control.list_anchors().await?))
}

pub async fn show(State(st): S, _: Need<VIEWER>, Path(name): Path<String>) -> ApiResult {
    Ok(json(StatusCode::OK, &st.control.show_anchor(&name).await?))
}

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

pub async fn remove(State(st): S, Need(caller): Need<ADMIN>, Path(name): Path<String>) -> ApiResult {
    as_caller(&caller, st.control.remove_anchor(&name)).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
