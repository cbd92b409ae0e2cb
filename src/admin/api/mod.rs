//! The JSON API under `/api/v1`, one file per noun (like `cli/`). Every change goes through
//! `control` (validation, one transaction, audit row under the token's name, revision bump), like
//! the CLI. This file is the router: routes, roles (in each handler's `Need<ROLE>`) and the
//! fallback.

mod apply;
mod apps;
mod audit;
mod bindings;
mod certificates;
mod doc;
mod expiry;
mod handler;
mod meta;
mod probe;
mod renewal;
mod responses;
mod services;
mod tokens;
mod trust;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::routing::{delete, get, post, put};
use axum::Router;

use super::error::ApiError;
use super::extract::BODY_LIMIT;
use super::state::AdminState;

pub fn openapi_document() -> &'static serde_json::Value {
    doc::document()
}

pub fn router(state: Arc<AdminState>) -> Router {
    Router::new()
        .route("/openapi.json", get(doc::openapi))
        .route("/whoami", get(meta::whoami))
        .route("/revision", get(meta::revision))
        .route("/audit", get(audit::list))
        .route("/apply", post(apply::apply))
        .route("/certificates", get(certificates::list).post(certificates::import))
        .route("/certificates/{name}", get(certificates::show).put(certificates::rotate).delete(certificates::remove))
        .route("/certificates/{name}/export", get(certificates::export))
        .route("/certificates/{name}/check", get(certificates::check))
        .route("/certificates/{name}/owner", put(expiry::certificate_owner))
        .route("/trust-anchors/{name}/owner", put(expiry::anchor_owner))
        .route("/expiry", get(expiry::list))
        .route("/requests", get(renewal::pending))
        .route("/certificates/{name}/request", get(renewal::csr).post(renewal::request))
        .route("/certificates/{name}/complete", axum::routing::post(renewal::complete))
        .route("/trust-anchors", get(trust::list).post(trust::add))
        .route("/trust-anchors/{name}", get(trust::show).delete(trust::remove))
        .route("/bindings", get(bindings::list))
        .route("/bindings/{destination}", get(bindings::show).put(bindings::put).delete(bindings::delete))
        .route("/probe", post(probe::run))
        .route("/services", get(services::list))
        .route("/services/{name}", get(services::show).put(services::put).delete(services::delete))
        .route("/apps", get(apps::list).post(apps::add))
        .route("/apps/{name}", get(apps::show).delete(apps::remove))
        .route("/apps/{name}/grants/{certificate}", put(apps::grant).delete(apps::revoke_grant))
        .route("/tokens", get(tokens::list).post(tokens::create))
        .route("/tokens/{name}", delete(tokens::revoke))
        .fallback(|| async {
            ApiError::new(StatusCode::NOT_FOUND, "not-found", "no such API route".into(), "see /api/v1/openapi.json")
        })
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(state)
}
