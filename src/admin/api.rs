//! The JSON API under `/api/v1`. Every change goes through `control` (validation, one
//! transaction, audit row under the token's name, revision bump), like the CLI.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRequest, Multipart, Path, Query, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::{Json, Router};
use base64::Engine;
use serde::Deserialize;

use crate::control::{BindRequest, ControlError, ExportFormat, ImportRequest, InputFile, ACTOR};
use crate::pki::Password;

use super::auth::{Caller, Need, ADMIN, OPERATOR, VIEWER};
use super::AdminState;

type S = State<Arc<AdminState>>;
type ApiResult = Result<Response, ApiError>;

/// An API error: status + `{"error", "message", "hint"}` with the CLI's codes.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: String,
    message: String,
    hint: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &str, message: String, hint: &str) -> Self {
        ApiError { status, code: code.to_string(), message, hint: hint.to_string() }
    }

    fn bad_request(message: impl Into<String>, hint: &str) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, "usage", message.into(), hint)
    }
}

impl From<ControlError> for ApiError {
    fn from(e: ControlError) -> Self {
        let status = match e.exit_code() {
            2 => StatusCode::BAD_REQUEST,
            3 => StatusCode::UNPROCESSABLE_ENTITY,
            4 => StatusCode::NOT_FOUND,
            5 => StatusCode::CONFLICT,
            _ => StatusCode::SERVICE_UNAVAILABLE,
        };
        ApiError { status, code: e.code().to_string(), message: e.message(), hint: e.hint() }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({"error": self.code, "message": self.message, "hint": self.hint});
        let mut resp = (self.status, Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer realm=\"certgate\""));
        }
        resp
    }
}

/// A JSON body; a body that does not parse is a 400 `usage` error in the API's own format.
pub struct Body<T>(pub T);

impl<T: serde::de::DeserializeOwned, St: Send + Sync> FromRequest<St> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &St) -> Result<Self, ApiError> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(Body(v)),
            Err(r) if r.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                Err(ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "too-large", r.body_text(), "send a smaller body"))
            }
            Err(r) => Err(ApiError::bad_request(r.body_text(), "send a JSON body as /api/v1/openapi.json describes")),
        }
    }
}

/// Query parameters; ones that do not parse are a 400 `usage` error in the API's own format.
pub struct Params<T>(pub T);

impl<T: serde::de::DeserializeOwned, St: Send + Sync> axum::extract::FromRequestParts<St> for Params<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, state: &St) -> Result<Self, ApiError> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(v)| Params(v))
            .map_err(|r| ApiError::bad_request(r.body_text(), "see /api/v1/openapi.json for the query parameters"))
    }
}

fn json<T: serde::Serialize>(status: StatusCode, value: &T) -> Response {
    (status, Json(value)).into_response()
}

/// Run a change with the caller as the audit log's actor.
async fn as_caller<T>(caller: &Caller, fut: impl std::future::Future<Output = T>) -> T {
    ACTOR.scope(format!("api:{}", caller.0.name), fut).await
}

pub fn router(state: Arc<AdminState>) -> Router {
    Router::new()
        .route("/openapi.json", get(openapi))
        .route("/whoami", get(whoami))
        .route("/revision", get(revision))
        .route("/audit", get(audit))
        .route("/certificates", get(list_certificates).post(import_certificate))
        .route("/certificates/{name}", get(show_certificate).put(rotate_certificate).delete(remove_certificate))
        .route("/certificates/{name}/export", get(export_certificate))
        .route("/certificates/{name}/check", get(check_certificate))
        .route("/trust-anchors", get(list_anchors).post(add_anchor))
        .route("/trust-anchors/{name}", get(show_anchor).delete(remove_anchor))
        .route("/bindings", get(list_bindings))
        .route("/bindings/{destination}", get(show_binding).put(put_binding).delete(delete_binding))
        .route("/services", get(list_services))
        .route("/services/{name}", get(show_service).put(put_service).delete(delete_service))
        .route("/apps", get(list_apps).post(add_app))
        .route("/apps/{name}", get(show_app).delete(remove_app))
        .route("/apps/{name}/grants/{certificate}", put(grant).delete(revoke_grant))
        .route("/tokens", get(list_tokens).post(create_token))
        .route("/tokens/{name}", axum::routing::delete(revoke_token))
        .fallback(|| async {
            ApiError::new(StatusCode::NOT_FOUND, "not-found", "no such API route".into(), "see /api/v1/openapi.json")
        })
        .layer(axum::extract::DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(state)
}

/// Room for a 1 MiB certificate file base64-encoded in JSON, or in a multipart form.
const BODY_LIMIT: usize = 4 * 1024 * 1024;

fn too_large(what: String) -> ApiError {
    ControlError::from(crate::pki::Refusal::new(
        crate::pki::Code::TooLarge,
        what,
        "a certificate file is a few kilobytes: check that this is the right file",
    ))
    .into()
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], include_str!("openapi.json")).into_response()
}

async fn whoami(State(st): S, caller: Caller) -> Response {
    json(StatusCode::OK, &serde_json::json!({"name": caller.0.name, "role": caller.0.role, "proxy": st.proxy_addr}))
}

async fn revision(State(st): S, _: Need<VIEWER>) -> ApiResult {
    Ok(json(StatusCode::OK, &serde_json::json!({"revision": st.control.revision().await?})))
}

#[derive(Deserialize)]
struct LimitQuery {
    limit: Option<i64>,
}

async fn audit(State(st): S, _: Need<VIEWER>, Params(q): Params<LimitQuery>) -> ApiResult {
    Ok(json(StatusCode::OK, &st.control.audit(q.limit.unwrap_or(100)).await?))
}

// ---- certificates ----

async fn list_certificates(State(st): S, _: Need<VIEWER>) -> ApiResult {
    Ok(json(StatusCode::OK, &st.control.list_certificates().await?))
}

async fn show_certificate(State(st): S, _: Need<VIEWER>, Path(name): Path<String>) -> ApiResult {
    Ok(json(StatusCode::OK, &st.control.show_certificate(&name).await?))
}

async fn check_certificate(State(st): S, _: Need<VIEWER>, Path(name): Path<String>) -> ApiResult {
    let mut reports = st.control.check_certificates(Some(&name)).await?;
    Ok(json(StatusCode::OK, &reports.pop()))
}

/// What an import or rotation carries, from either body form.
struct Upload {
    name: Option<String>,
    file: Option<InputFile>,
    key: Option<InputFile>,
    chain: Vec<InputFile>,
    password: Option<Password>,
    owner: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UploadJson {
    name: Option<String>,
    content: String,
    password: Option<String>,
    key: Option<String>,
    /// Intermediate CA files, each base64.
    #[serde(default)]
    chain: Vec<String>,
    owner: Option<String>,
}

fn decode_b64(field: &str, text: &str) -> Result<Vec<u8>, ApiError> {
    base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .map_err(|_| ApiError::bad_request(format!("'{field}' is not base64"), "send the file's bytes base64-encoded"))
}

/// Read a multipart form (`file`, `password`, `name`, `key`, `owner`) or a JSON body.
async fn read_upload(req: Request, state: &Arc<AdminState>) -> Result<Upload, ApiError> {
    let is_multipart = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("multipart/form-data"));
    if is_multipart {
        let mut form = Multipart::from_request(req, state).await.map_err(|e| {
            ApiError::bad_request(format!("the multipart form cannot be read: {e}"), "send fields file, password, name")
        })?;
        let mut up = Upload { name: None, file: None, key: None, chain: Vec::new(), password: None, owner: None };
        while let Some(field) = form.next_field().await.map_err(|e| {
            ApiError::bad_request(format!("the multipart form cannot be read: {e}"), "send fields file, password, name")
        })? {
            let field_name = field.name().unwrap_or_default().to_string();
            let label = field.file_name().map(str::to_string).unwrap_or_else(|| field_name.clone());
            let data = field.bytes().await.map_err(|e| {
                if e.status() == StatusCode::PAYLOAD_TOO_LARGE || e.body_text().contains("limit") {
                    too_large(format!("the upload is larger than {BODY_LIMIT} bytes"))
                } else {
                    ApiError::bad_request(format!("field '{field_name}' cannot be read: {e}"), "retry the upload")
                }
            })?;
            let text = || String::from_utf8_lossy(&data).trim().to_string();
            match field_name.as_str() {
                "file" => up.file = Some(InputFile { label, data: data.to_vec() }),
                "key" if !data.is_empty() => up.key = Some(InputFile { label, data: data.to_vec() }),
                "key" => {}
                "chain" if !data.is_empty() => up.chain.push(InputFile { label, data: data.to_vec() }),
                "chain" => {}
                "password" => up.password = Some(Password::new(String::from_utf8_lossy(&data).into_owned())),
                "name" => up.name = Some(text()),
                "owner" if !data.is_empty() => up.owner = Some(text()),
                "owner" => {}
                other => {
                    return Err(ApiError::bad_request(
                        format!("unknown form field '{other}'"),
                        "fields are file, password, name, key, chain, owner",
                    ))
                }
            }
        }
        return Ok(up);
    }
    let bytes = Bytes::from_request(req, state).await.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            too_large(format!("the body is larger than {BODY_LIMIT} bytes"))
        } else {
            ApiError::bad_request(format!("the body cannot be read: {e}"), "send JSON or a multipart form")
        }
    })?;
    let body: UploadJson = serde_json::from_slice(&bytes).map_err(|e| {
        ApiError::bad_request(
            format!("the JSON body is not valid: {e}"),
            "send {\"name\", \"content\": base64, \"password\"?, \"key\"?: base64, \"owner\"?}",
        )
    })?;
    Ok(Upload {
        name: body.name,
        file: Some(InputFile { label: "content".into(), data: decode_b64("content", &body.content)? }),
        key: match body.key {
            Some(k) => Some(InputFile { label: "key".into(), data: decode_b64("key", &k)? }),
            None => None,
        },
        chain: body
            .chain
            .iter()
            .enumerate()
            .map(|(i, c)| Ok(InputFile { label: format!("chain[{i}]"), data: decode_b64("chain", c)? }))
            .collect::<Result<_, ApiError>>()?,
        password: body.password.map(Password::new),
        owner: body.owner,
    })
}

fn import_request(up: Upload, name: String) -> Result<ImportRequest, ApiError> {
    let file = up.file.ok_or_else(|| {
        ApiError::bad_request(
            "no certificate file was sent",
            "send the file in the 'file' field (or 'content' in JSON)",
        )
    })?;
    if file.data.len() > crate::pki::bundle::MAX_INPUT_BYTES {
        return Err(ControlError::from(crate::pki::bundle::too_large(file.data.len())).into());
    }
    let mut files = vec![file];
    files.extend(up.key);
    files.extend(up.chain);
    Ok(ImportRequest { name, files, password: up.password, owner: up.owner })
}

async fn import_certificate(State(st): S, Need(caller): Need<ADMIN>, req: Request) -> ApiResult {
    let up = read_upload(req, &st).await?;
    let name = up.name.clone().ok_or_else(|| ApiError::bad_request("no name was sent", "send the 'name' field"))?;
    let req = import_request(up, name)?;
    let view = as_caller(&caller, st.control.import_certificate(req)).await?;
    Ok(json(StatusCode::CREATED, &view))
}

async fn rotate_certificate(
    State(st): S,
    Need(caller): Need<ADMIN>,
    Path(name): Path<String>,
    req: Request,
) -> ApiResult {
    let up = read_upload(req, &st).await?;
    if up.name.as_ref().is_some_and(|n| *n != name) {
        return Err(ApiError::bad_request(
            "the body names another certificate than the URL",
            "leave 'name' out when rotating",
        ));
    }
    let req = import_request(up, name)?;
    let view = as_caller(&caller, st.control.rotate_certificate(req)).await?;
    Ok(json(StatusCode::OK, &view))
}

#[derive(Deserialize)]
struct ForceQuery {
    force: Option<bool>,
}

async fn remove_certificate(
    State(st): S,
    Need(caller): Need<ADMIN>,
    Path(name): Path<String>,
    Params(q): Params<ForceQuery>,
) -> ApiResult {
    as_caller(&caller, st.control.remove_certificate(&name, q.force.unwrap_or(false))).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize)]
struct ExportQuery {
    format: Option<String>,
    chain: Option<bool>,
}

async fn export_certificate(
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

// ---- trust anchors ----

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AnchorBody {
    name: String,
    /// PEM text, or base64 of PEM or DER.
    content: String,
}

async fn list_anchors(State(st): S, _: Need<VIEWER>) -> ApiResult {
    Ok(json(StatusCode::OK, &st.control.list_anchors().await?))
}

async fn show_anchor(State(st): S, _: Need<VIEWER>, Path(name): Path<String>) -> ApiResult {
    Ok(json(StatusCode::OK, &st.control.show_anchor(&name).await?))
}

async fn add_anchor(State(st): S, Need(caller): Need<ADMIN>, Body(body): Body<AnchorBody>) -> ApiResult {
    let data = if body.content.contains("-----BEGIN") {
        body.content.into_bytes()
    } else {
        decode_b64("content", &body.content)?
    };
    let view = as_caller(&caller, st.control.add_anchor(&body.name, "content", &data)).await?;
    Ok(json(StatusCode::CREATED, &view))
}

async fn remove_anchor(State(st): S, Need(caller): Need<ADMIN>, Path(name): Path<String>) -> ApiResult {
    as_caller(&caller, st.control.remove_anchor(&name)).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

// ---- bindings and services ----

/// `certificate`: a name, or null for "send no certificate".
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BindingBody {
    #[serde(default, deserialize_with = "present")]
    certificate: Option<Option<String>>,
    trust: Option<String>,
    sni: Option<String>,
    #[serde(default)]
    pins: Vec<String>,
}

/// Tell "absent" (None) from "null" (Some(None)).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

async fn list_bindings(State(st): S, _: Need<VIEWER>) -> ApiResult {
    Ok(json(StatusCode::OK, &st.control.bindings().await?))
}

async fn show_binding(State(st): S, _: Need<VIEWER>, Path(destination): Path<String>) -> ApiResult {
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

async fn put_binding(
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

async fn delete_binding(State(st): S, Need(caller): Need<OPERATOR>, Path(destination): Path<String>) -> ApiResult {
    as_caller(&caller, st.control.unbind(&destination)).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ServiceBody {
    url: String,
    #[serde(default, deserialize_with = "present")]
    certificate: Option<Option<String>>,
    trust: Option<String>,
}

async fn list_services(State(st): S, _: Need<VIEWER>) -> ApiResult {
    Ok(json(StatusCode::OK, &st.control.services().await?))
}

async fn show_service(State(st): S, _: Need<VIEWER>, Path(name): Path<String>) -> ApiResult {
    match st.control.services().await?.into_iter().find(|s| s.name == name) {
        Some(s) => Ok(json(StatusCode::OK, &s)),
        None => Err(ControlError::NotFound {
            what: format!("service '{name}'"),
            hint: "list them with GET /api/v1/services".into(),
        }
        .into()),
    }
}

async fn put_service(
    State(st): S,
    Need(caller): Need<OPERATOR>,
    Path(name): Path<String>,
    Body(body): Body<ServiceBody>,
) -> ApiResult {
    let view = as_caller(&caller, st.control.add_service(&name, &body.url, body.certificate, body.trust)).await?;
    let status = if view.replaced == Some(true) { StatusCode::OK } else { StatusCode::CREATED };
    Ok(json(status, &view))
}

async fn delete_service(State(st): S, Need(caller): Need<OPERATOR>, Path(name): Path<String>) -> ApiResult {
    as_caller(&caller, st.control.remove_service(&name)).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

// ---- apps and grants ----

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AppBody {
    name: String,
}

async fn list_apps(State(st): S, _: Need<VIEWER>) -> ApiResult {
    Ok(json(StatusCode::OK, &st.control.apps().await?))
}

async fn show_app(State(st): S, _: Need<VIEWER>, Path(name): Path<String>) -> ApiResult {
    Ok(json(StatusCode::OK, &st.control.app(&name).await?))
}

async fn add_app(State(st): S, Need(caller): Need<OPERATOR>, Body(body): Body<AppBody>) -> ApiResult {
    let created = as_caller(&caller, st.control.add_app(&body.name)).await?;
    Ok(json(StatusCode::CREATED, &created))
}

async fn remove_app(State(st): S, Need(caller): Need<OPERATOR>, Path(name): Path<String>) -> ApiResult {
    as_caller(&caller, st.control.remove_app(&name)).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn grant(
    State(st): S,
    Need(caller): Need<OPERATOR>,
    Path((name, certificate)): Path<(String, String)>,
) -> ApiResult {
    Ok(json(StatusCode::OK, &as_caller(&caller, st.control.grant(&name, &certificate)).await?))
}

async fn revoke_grant(
    State(st): S,
    Need(caller): Need<OPERATOR>,
    Path((name, certificate)): Path<(String, String)>,
) -> ApiResult {
    Ok(json(StatusCode::OK, &as_caller(&caller, st.control.revoke_grant(&name, &certificate)).await?))
}

// ---- tokens ----

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenBody {
    name: String,
    role: String,
}

async fn list_tokens(State(st): S, _: Need<ADMIN>) -> ApiResult {
    Ok(json(StatusCode::OK, &st.control.tokens().await?))
}

async fn create_token(State(st): S, Need(caller): Need<ADMIN>, Body(body): Body<TokenBody>) -> ApiResult {
    let created = as_caller(&caller, st.control.create_token(&body.name, &body.role)).await?;
    Ok(json(StatusCode::CREATED, &created))
}

async fn revoke_token(State(st): S, Need(caller): Need<ADMIN>, Path(name): Path<String>) -> ApiResult {
    as_caller(&caller, st.control.revoke_token(&name)).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
