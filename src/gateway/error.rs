//! Errors the gateway itself produces: a status, a `Certgate-Error: CODE` header and a short
//! JSON body `{"error", "message", "hint"}`.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode};
use http_body_util::{BodyExt, Full};

use crate::upstream::Body;

#[derive(Debug, Clone)]
pub struct GatewayError {
    pub code: &'static str,
    pub message: String,
}

impl GatewayError {
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        GatewayError { code, message: message.into() }
    }

    pub fn status(&self) -> StatusCode {
        match self.code {
            "no-binding" | "not-granted" => StatusCode::FORBIDDEN,
            "proxy-auth-required" => StatusCode::PROXY_AUTHENTICATION_REQUIRED,
            "bad-request" => StatusCode::BAD_REQUEST,
            "upstream-timeout" => StatusCode::GATEWAY_TIMEOUT,
            "connect-not-supported" => StatusCode::NOT_IMPLEMENTED,
            "not-ready" => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::BAD_GATEWAY,
        }
    }

    pub fn hint(&self) -> &'static str {
        match self.code {
            "proxy-auth-required" => "send Proxy-Authorization: Basic base64(APP:CREDENTIAL) (e.g. HTTP_PROXY=http://APP:CREDENTIAL@host:9780); create an app with: certgate app add NAME",
            "not-granted" => "grant the certificate to the app: certgate app grant APP CERT",
            "no-binding" => "bind the destination: certgate bind HOST CERT (or --no-cert to call it without a certificate)",
            "bad-request" => "send proxy requests (set HTTP_PROXY=http://127.0.0.1:9780 and call http://partner/...) or use /svc/NAME/...",
            "connect-not-supported" => "call http://partner/... through the proxy instead of https:// via CONNECT: certgate opens the TLS connection itself and adds the certificate; or use a named service /svc/NAME/...",
            "client-certificate-expired" => "renew the certificate and run: certgate cert rotate NAME FILE",
            "upstream-connect-failed" => "check that the partner is reachable from this host (name, firewall, port)",
            "upstream-untrusted" => "trust the partner's CA: certgate trust add NAME CA-FILE, then bind with --trust ca:NAME",
            "upstream-name-mismatch" => "call the partner by the name on its certificate, or bind with --sni NAME",
            "upstream-rejected-certificate" => "the partner does not accept this client certificate: ask which CA it trusts, check the chain with certgate cert check NAME",
            "upstream-timeout" => "the partner did not answer in time; the limits are in the [gateway] section of the config file",
            "not-ready" => "the route table is not loaded yet: see /readyz on the admin listener",
            _ => "see the gateway log for details",
        }
    }

    pub fn response(&self) -> Response<Body> {
        let body = serde_json::json!({"error": self.code, "message": self.message, "hint": self.hint()});
        let mut resp = Response::new(Full::new(Bytes::from(body.to_string())).map_err(|never| match never {}).boxed());
        *resp.status_mut() = self.status();
        let headers = resp.headers_mut();
        headers.insert("certgate-error", HeaderValue::from_static(self.code));
        headers.insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if self.code == "proxy-auth-required" {
            headers.insert(http::header::PROXY_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"certgate\""));
        }
        resp
    }
}
