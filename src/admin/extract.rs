//! Reading requests for the admin API: JSON bodies and query parameters whose rejections are
//! `ApiError`s, and certificate uploads as a multipart form or a JSON body with base64 files.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Multipart, Query, Request};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::Json;
use base64::Engine;
use serde::Deserialize;

use crate::control::{ControlError, ImportRequest, InputFile};
use crate::pki::Password;

use super::error::ApiError;

/// Room for a 1 MiB certificate file base64-encoded in JSON, or in a multipart form.
pub const BODY_LIMIT: usize = 4 * 1024 * 1024;

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

impl<T: serde::de::DeserializeOwned, St: Send + Sync> FromRequestParts<St> for Params<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &St) -> Result<Self, ApiError> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(v)| Params(v))
            .map_err(|r| ApiError::bad_request(r.body_text(), "see /api/v1/openapi.json for the query parameters"))
    }
}

/// For `Option<Option<T>>` fields: tell "absent" (None) from "null" (Some(None)).
pub fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

pub fn decode_b64(field: &str, text: &str) -> Result<Vec<u8>, ApiError> {
    base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .map_err(|_| ApiError::bad_request(format!("'{field}' is not base64"), "send the file's bytes base64-encoded"))
}

/// What an import or rotation carries, from either body form.
pub struct Upload {
    pub name: Option<String>,
    file: Option<InputFile>,
    key: Option<InputFile>,
    chain: Vec<InputFile>,
    password: Option<Password>,
    owner: Option<String>,
    contact: Option<String>,
}

/// A certificate upload as JSON, files base64-encoded.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = CertificateUpload)]
pub struct UploadJson {
    /// Required for an import; when given for a rotation, the name in the URL.
    #[schema(pattern = "^[A-Za-z0-9._-]{1,128}$", example = "billing")]
    name: Option<String>,
    /// The certificate file (PKCS#12, PEM or DER), base64.
    #[schema(format = Byte)]
    content: String,
    /// The PKCS#12 or key password.
    #[schema(format = Password)]
    password: Option<String>,
    /// A separate private key file, base64.
    #[schema(format = Byte)]
    key: Option<String>,
    /// Intermediate CA certificate files, each base64.
    #[serde(default)]
    chain: Vec<String>,
    /// Who to ask about this certificate.
    owner: Option<String>,
    contact: Option<String>,
}

fn too_large(what: String) -> ApiError {
    ControlError::from(crate::pki::Refusal::new(
        crate::pki::Code::TooLarge,
        what,
        "a certificate file is a few kilobytes: check that this is the right file",
    ))
    .into()
}

/// Read a multipart form (`file`, `password`, `name`, `key`, `owner`) or a JSON body.
pub async fn read_upload<St: Send + Sync>(req: Request, state: &St) -> Result<Upload, ApiError> {
    let is_multipart = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("multipart/form-data"));
    if is_multipart {
        let mut form = Multipart::from_request(req, state).await.map_err(|e| {
            ApiError::bad_request(format!("the multipart form cannot be read: {e}"), "send fields file, password, name")
        })?;
        let mut up =
            Upload { name: None, file: None, key: None, chain: Vec::new(), password: None, owner: None, contact: None };
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
                "contact" if !data.is_empty() => up.contact = Some(text()),
                "contact" => {}
                other => {
                    return Err(ApiError::bad_request(
                        format!("unknown form field '{other}'"),
                        "fields are file, password, name, key, chain, owner, contact",
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
            "send {\"name\", \"content\": base64, \"password\"?, \"key\"?: base64, \"owner\"?, \"contact\"?}",
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
        contact: body.contact,
    })
}

impl Upload {
    /// The import (or rotation) of certificate `name` this upload asks for.
    pub fn into_import(self, name: String) -> Result<ImportRequest, ApiError> {
        let file = self.file.ok_or_else(|| {
            ApiError::bad_request(
                "no certificate file was sent",
                "send the file in the 'file' field (or 'content' in JSON)",
            )
        })?;
        if file.data.len() > crate::pki::bundle::MAX_INPUT_BYTES {
            return Err(ControlError::from(crate::pki::bundle::too_large(file.data.len())).into());
        }
        let mut files = vec![file];
        files.extend(self.key);
        files.extend(self.chain);
        Ok(ImportRequest { name, files, password: self.password, owner: self.owner, contact: self.contact })
    }
}
