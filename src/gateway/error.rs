//! Errors the gateway itself produces: a status, a `Certgate-Error: CODE` header and a short
//! JSON body `{"error", "message", "hint"}`. The status and the remedy come from the code.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode};
use http_body_util::{BodyExt, Full};

use crate::model::{ErrorCode, Remedy};
use crate::upstream::Body;

#[derive(Debug, Clone)]
pub struct GatewayError {
    pub code: ErrorCode,
    pub message: String,
    /// A remedy that knows more than the code's own (e.g. names the destination).
    pub remedy: Option<Remedy>,
}

impl GatewayError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        GatewayError { code, message: message.into(), remedy: None }
    }

    pub fn with_remedy(mut self, remedy: Remedy) -> Self {
        self.remedy = Some(remedy);
        self
    }

    pub fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.code.http_status()).unwrap_or(StatusCode::BAD_GATEWAY)
    }

    /// The next step, as an operator reading the application's log needs it: words and the
    /// command that does it.
    pub fn hint(&self) -> String {
        self.remedy.clone().unwrap_or_else(|| self.code.remedy()).for_cli()
    }

    fn json_body(&self) -> String {
        serde_json::json!({"error": self.code, "message": self.message, "hint": self.hint()}).to_string()
    }

    /// The same answer as raw HTTP/1.1 bytes with `Connection: close`, for a connection that is
    /// refused or cut off outside hyper's request cycle.
    pub fn http1_bytes(&self) -> Vec<u8> {
        let body = self.json_body();
        let status = self.status();
        format!(
            "HTTP/1.1 {} {}\r\ncertgate-error: {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            status.as_u16(),
            status.canonical_reason().unwrap_or(""),
            self.code.as_str(),
            body.len(),
        )
        .into_bytes()
    }

    pub fn response(&self) -> Response<Body> {
        let body = self.json_body();
        let mut resp = Response::new(Full::new(Bytes::from(body)).map_err(|never| match never {}).boxed());
        *resp.status_mut() = self.status();
        let headers = resp.headers_mut();
        headers.insert("certgate-error", HeaderValue::from_static(self.code.as_str()));
        headers.insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if self.code == ErrorCode::ProxyAuthRequired {
            headers.insert(http::header::PROXY_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"certgate\""));
        }
        resp
    }
}
