//! What the handlers' `#[utoipa::path]` attributes share: the error responses (each an
//! [`ErrorBody`], the one shape `ApiError` answers with) and the bodies that exist only as
//! documentation of what a handler reads by hand (the certificate upload form).

use utoipa::{ToResponse, ToSchema};

use crate::admin::error::ErrorBody;

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
