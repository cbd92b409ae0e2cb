//! The OpenAPI document of `/api/v1`, generated from the handlers (`#[utoipa::path]` on each,
//! in this folder) and the types they read and answer (`ToSchema` on the views in `control`
//! and on the bodies here). Served at `/api/v1/openapi.json`; schemathesis and the integration
//! tests check the server against it. A route added to the router without its `#[utoipa::path]`
//! here fails `the_openapi_document_lists_every_route_with_its_auth_errors`.

use std::sync::OnceLock;

use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToResponse, ToSchema};

use crate::admin::error::{ErrorAction, ErrorBody};
use crate::control::views::{
    AnchorCertView, AnchorView, AuditView, CertificateView, ChainEntry, CheckReport, KeyCheck, PathLink,
};
use crate::control::{AppView, BindingView, NewApp, NewToken, Role, ServiceView, TokenView};
use crate::pki::assess::Warning;

use super::{apps, audit, bindings, certificates, meta, services, tokens, trust};

/// The request is wrong (usage, invalid-name, a JSON body or query string that does not parse
/// or does not fit, an unknown field, content that is not base64, an unknown form field). Path
/// segments that cannot be decoded are refused by the framework as text/plain.
#[derive(ToResponse)]
#[allow(dead_code)]
pub enum BadRequest {
    Json(#[content("application/json")] ErrorBody),
    Text(#[content("text/plain")] String),
}

/// No token, a malformed Authorization header, or a revoked or unknown token.
#[derive(ToResponse)]
#[response(headers(("WWW-Authenticate" = String, description = "Bearer realm=\"certgate\"")))]
#[allow(dead_code)]
pub struct Unauthorized(ErrorBody);

/// The token's role is too small (forbidden), or a console session sent no CSRF token (csrf).
#[derive(ToResponse)]
#[allow(dead_code)]
pub struct Forbidden(ErrorBody);

/// The named object does not exist.
#[derive(ToResponse)]
#[allow(dead_code)]
pub struct NotFound(ErrorBody);

/// The name is taken (name-taken) or the object is still in use (still-bound).
#[derive(ToResponse)]
#[allow(dead_code)]
pub struct Conflict(ErrorBody);

/// The input was refused (wrong-password, malformed, too-large, key-mismatch, not-a-certificate, ...).
#[derive(ToResponse)]
#[allow(dead_code)]
pub struct Refused(ErrorBody);

/// The body is larger than 4 MiB (too-large).
#[derive(ToResponse)]
#[allow(dead_code)]
pub struct PayloadTooLarge(ErrorBody);

/// The store cannot be used (store-unavailable, master-key).
#[derive(ToResponse)]
#[allow(dead_code)]
pub struct Unavailable(ErrorBody);

/// A certificate upload as a form (what `read_upload` accepts besides JSON).
#[derive(ToSchema)]
#[schema(as = CertificateForm)]
#[allow(dead_code)]
pub struct CertificateForm {
    /// Required for an import; when given for a rotation, the name in the URL.
    #[schema(pattern = "^[A-Za-z0-9._-]{1,128}$")]
    name: Option<String>,
    /// The certificate file (PKCS#12, PEM or DER).
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
    #[schema(format = Password)]
    password: Option<String>,
    /// A separate private key file.
    #[schema(value_type = Option<String>, format = Binary)]
    key: Option<Vec<u8>>,
    /// Who to ask about this certificate.
    owner: Option<String>,
    /// Intermediate CA certificate files (repeat the field).
    #[schema(value_type = Option<Vec<String>>, format = Binary)]
    chain: Option<Vec<Vec<u8>>>,
}

/// A DER certificate (`application/pkix-cert`).
#[derive(ToSchema)]
#[schema(value_type = String, format = Binary)]
#[allow(dead_code)]
pub struct DerCertificate(Vec<u8>);

/// `certificates/{name}/export?format=`.
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)]
pub enum ExportFormatName {
    Pem,
    Der,
}

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
        (name = "services"), (name = "apps"), (name = "tokens"), (name = "audit"),
    ),
    paths(
        meta::openapi, meta::whoami, meta::revision, audit::list,
        certificates::list, certificates::import, certificates::show, certificates::rotate,
        certificates::remove, certificates::export, certificates::check,
        trust::list, trust::add, trust::show, trust::remove,
        bindings::list, bindings::show, bindings::put, bindings::delete,
        services::list, services::show, services::put, services::delete,
        apps::list, apps::add, apps::show, apps::remove, apps::grant, apps::revoke_grant,
        tokens::list, tokens::create, tokens::revoke,
    ),
    components(
        schemas(
            ErrorBody, ErrorAction, Role, meta::Whoami, meta::Revision, AuditView, ChainEntry, Warning,
            CertificateView, KeyCheck, PathLink, CheckReport, AnchorCertView, AnchorView, BindingView,
            ServiceView, AppView, NewApp, TokenView, NewToken, crate::admin::extract::UploadJson, CertificateForm,
            ExportFormatName, DerCertificate, trust::AnchorBody, bindings::BindingBody, services::ServiceBody, apps::AppBody,
            tokens::TokenBody,
        ),
        responses(BadRequest, Unauthorized, Forbidden, NotFound, Conflict, Refused, PayloadTooLarge, Unavailable),
    ),
    modifiers(&SecuritySchemes),
)]
struct ApiDoc;

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
