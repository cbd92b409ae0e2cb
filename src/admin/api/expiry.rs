//! What expires when, and who owns it.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;

use crate::admin::auth::{Need, ADMIN, VIEWER};
use crate::admin::extract::{Body, Params};
use crate::control::parse_window;

use super::handler::{as_caller, json, ApiResult, S};

#[derive(Deserialize)]
pub struct WithinQuery {
    within: Option<String>,
}

pub async fn list(State(st): S, _: Need<VIEWER>, Params(q): Params<WithinQuery>) -> ApiResult {
    let days = parse_window(q.within.as_deref().unwrap_or("30d"))?;
    Ok(json(StatusCode::OK, &st.control.expiry(days).await?))
}

/// `{"owner"?, "contact"?}`: a missing field stays, an empty one is cleared.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OwnerBody {
    owner: Option<String>,
    contact: Option<String>,
}

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
