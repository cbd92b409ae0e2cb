//! Health, readiness and metrics (no token needed: they hold no secrets).

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};

use crate::control::AlertStatus;
use crate::gateway::Gateway;

type HealthState = (Arc<Gateway>, Arc<AlertStatus>);

pub fn router(gateway: Arc<Gateway>, alerts: Arc<AlertStatus>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .with_state((gateway, alerts))
}

async fn readyz(State((gw, alerts)): State<HealthState>) -> impl IntoResponse {
    let table = gw.current();
    let (store_reachable, store_error) = gw.store_reachable();
    let body = serde_json::json!({
        "ready": table.is_some(),
        "revision": table.as_ref().map(|t| t.revision),
        "store_revision": gw.store_revision(),
        "bindings": table.as_ref().map(|t| t.len()),
        "last_reload_error": gw.last_error(),
        // Bindings that could not be compiled: they answer route-unavailable, the rest serve.
        "unavailable_routes": table.as_ref().map(|t| t.unavailable.iter().map(|(d, why)| serde_json::json!({"destination": d, "reason": why})).collect::<Vec<_>>()).unwrap_or_default(),
        // Still ready while the store is unreachable: the table in use keeps serving.
        "store_reachable": store_reachable,
        "store_error": store_error,
        // Expiry alerts: the last run of this node's loop and the alerts failing (any node).
        "alerts": alerts.get(),
    });
    let status = if table.is_some() { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(body))
}

async fn metrics_text(State((gw, _)): State<HealthState>) -> impl IntoResponse {
    let table = gw.current();
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        crate::telemetry::render(
            table.as_deref().map(|t| crate::telemetry::TableGauges {
                revision: t.revision,
                certificate_expiry: &t.certificate_expiry,
            }),
            gw.store_revision(),
        ),
    )
}
