//! The OpenAPI document of `/api/v1`, generated from the handlers (`#[utoipa::path]` on each,
//! in this folder) and the types they read and answer (`ToSchema` on the views in `control`
//! and on the bodies here). Served at `/api/v1/openapi.json`; schemathesis and the integration
//! tests check the server against it. A route added to the router without its `#[utoipa::path]`
//! here fails `the_openapi_document_lists_every_route_with_its_auth_errors`. The shared error
//! responses and the upload form are in `responses` (the handlers use them; this file lists the
//! handlers, so they cannot live here).

use std::sync::OnceLock;

use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::admin::error::{ErrorAction, ErrorBody};
use crate::control::views::{
    AnchorCertView, AnchorView, AuditView, CertificateView, ChainEntry, CheckReport, KeyCheck, PathLink,
};
use crate::control::{AppView, BindingView, NewApp, NewToken, Role, ServiceView, TokenView};
use crate::pki::assess::Warning;

use super::responses::{
    BadRequest, CertificateForm, Conflict, DerCertificate, ExportFormatName, Forbidden, NotFound, PayloadTooLarge,
    Refused, Unauthorized, Unavailable,
};
use super::{apply, apps, audit, bindings, certificates, expiry, meta, probe, renewal, services, tokens, trust};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "certgate admin API",
        version = "1",
        description = "The JSON API of certgate's admin listener (default http://127.0.0.1:9781). Every change goes through the same validation as the CLI, writes an audit row naming the token (actor api:TOKEN-NAME) and adds one to the store revision; a refusal changes nothing. Roles, weakest first: viewer (read), operator (bindings, services, apps, grants), admin (everything, incl. certificates, trust anchors and tokens). Errors are {\"error\", \"message\", \"hint\", \"action\"?} with the CLI's codes: 400 usage, 401 no valid token, 403 role too small, 404 not found, 409 conflict, 422 input refused."
    ),
    servers((url = "/api/v1")),
    security(("bearer" = []), ("session" = [])),
    tags(
        (name = "meta"), (name = "certificates"), (name = "trust anchors"), (name = "bindings"),
        (name = "services"), (name = "apps"), (name = "tokens"), (name = "audit"), (name = "apply"), (name = "expiry"),
    ),
    paths(
        openapi, meta::whoami, meta::revision, audit::list,
        certificates::list, certificates::import, certificates::show, certificates::rotate,
        certificates::remove, certificates::export, certificates::check,
        trust::list, trust::add, trust::show, trust::remove,
        bindings::list, bindings::show, bindings::put, bindings::delete,
        services::list, services::show, services::put, services::delete,
        apps::list, apps::add, apps::show, apps::remove, apps::grant, apps::revoke_grant,
        tokens::list, tokens::create, tokens::revoke,
        probe::run, apply::apply, expiry::list, expiry::certificate_owner, expiry::anchor_owner,
        renewal::request, renewal::csr, renewal::complete, renewal::pending,
    ),
    components(
        schemas(
            ErrorBody, ErrorAction, Role, meta::Whoami, meta::Revision, AuditView, ChainEntry, Warning,
            CertificateView, KeyCheck, PathLink, CheckReport, AnchorCertView, AnchorView, BindingView,
            ServiceView, AppView, NewApp, TokenView, NewToken, crate::admin::extract::UploadJson, CertificateForm,
            ExportFormatName, DerCertificate, trust::AnchorBody, bindings::BindingBody, services::ServiceBody, apps::AppBody,
            tokens::TokenBody, probe::ProbeBody, apply::ApplyBody, expiry::OwnerBody, renewal::RequestBody,
            renewal::CompleteBody, crate::control::views::PendingView,
        ),
        responses(BadRequest, Unauthorized, Forbidden, NotFound, Conflict, Refused, PayloadTooLarge, Unavailable),
    ),
    modifiers(&SecuritySchemes),
)]
struct ApiDoc;

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "meta", operation_id = "openapi", security(()),
    responses((status = 200, description = "The OpenAPI document", body = Object)))]
pub async fn openapi() -> axum::response::Response {
    axum::response::IntoResponse::into_response(axum::Json(document()))
}

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("A token from 'certgate token create NAME --role viewer|operator|admin'"))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                crate::admin::session::SESSION_COOKIE,
                "The console's session (POST /console/login); every change must also send the X-CSRF-Token header the login returned",
            ))),
        );
    }
}

/// The document as JSON. Objects with properties allow no others (a field the server adds
/// without documenting it fails the tests that check answers against the document).
pub fn document() -> &'static serde_json::Value {
    static DOC: OnceLock<serde_json::Value> = OnceLock::new();
    DOC.get_or_init(|| {
        let mut doc = serde_json::to_value(ApiDoc::openapi()).expect("the OpenAPI document serialises");
        close_objects(&mut doc);
        doc
    })
}

fn close_objects(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(map) => {
            if map.get("type").and_then(|t| t.as_str()) == Some("object")
                && map.contains_key("properties")
                && !map.contains_key("additionalProperties")
            {
                map.insert("additionalProperties".into(), serde_json::Value::Bool(false));
            }
            map.values_mut().for_each(close_objects);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(close_objects),
        _ => {}
    }
}
