//! `POST /api/v1/apply`: an apply document (TOML or YAML text) planned against the store, and
//! applied in one change unless `dry_run`. A document sent to the server names no server files,
//! environment variables or passwords: certificates by `id` (uploaded first), trust anchors as
//! inline `pem` (docs/decisions.md, "Declarative configuration").

use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;

use crate::admin::auth::{Need, ADMIN};
use crate::admin::extract::Body;
use crate::control::{ApplyInput, ControlError, Document, Format, Sources};

use super::handler::{as_caller, json, ApiResult, S};
use super::responses::{
    BadRequest, Conflict, Forbidden, NotFound, PayloadTooLarge, Refused, Unauthorized, Unavailable,
};

/// An apply document and what to do with it.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = ApplyRequest, example = json!({"document": "[[bindings]]\ndestination = \"api.partner.test\"\nno_cert = true\n", "dry_run": true}))]
pub struct ApplyBody {
    /// The apply file's text.
    document: String,
    /// `toml` (default) or `yaml`.
    #[serde(default)]
    format: Option<String>,
    #[serde(default)]
    dry_run: bool,
    #[serde(default)]
    prune: bool,
}

/// Plan an apply document against the store (admin) and, unless `dry_run`, apply it in one change.
#[utoipa::path(post, path = "/apply", tag = "apply", operation_id = "apply", request_body = ApplyBody,
    responses((status = 200, description = "The plan (applied unless dry_run)", body = Object),
        (status = 404, response = NotFound), (status = 409, response = Conflict), (status = 422, response = Refused), (status = 400, response = BadRequest), (status = 401, response = Unauthorized), (status = 403, response = Forbidden), (status = 413, response = PayloadTooLarge), (status = 503, response = Unavailable)))]
pub async fn apply(State(st): S, Need(caller): Need<ADMIN>, Body(body): Body<ApplyBody>) -> ApiResult {
    let format = match body.format.as_deref() {
        None => Format::Toml,
        Some(f) => Format::parse(f).ok_or_else(|| {
            ControlError::usage("usage", format!("'{f}' is not a document format"), "send format toml or yaml")
        })?,
    };
    let document = Document::parse("document", &body.document, format)?;
    let input = ApplyInput {
        label: "document".into(),
        text: Some(body.document),
        document,
        sources: Sources::IdsOnly,
        prune: body.prune,
    };
    let view = as_caller(&caller, async {
        let prepared = st.control.plan(&input).await?;
        if body.dry_run {
            Ok::<_, ControlError>(prepared.view)
        } else {
            st.control.apply_plan(prepared).await
        }
    })
    .await?;
    Ok(json(StatusCode::OK, &view))
}
