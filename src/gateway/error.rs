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

    pub fn response(&self) -> Response<Body> {
        let body = serde_json::json!({"error": self.code, "message": self.message, "hint": self.hint()});
        let mut resp = Response::new(Full::new(Bytes::from(body.to_string())).map_err(|never| match never {}).boxed());
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
