//! Sending alert messages: a signed JSON POST to a webhook (hyper's client over our rustls
//! stack, the system's roots for HTTPS). Knows nothing of certificates or thresholds.

use std::time::Duration;

use aws_lc_rs::hmac;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};

/// How long one webhook call may take, connect to answer.
pub const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(15);

/// `sha256=HEX`: HMAC-SHA256 of the body under the webhook's secret.
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    format!("sha256={}", hex::encode(hmac::sign(&key, body).as_ref()))
}

/// POST `body` (JSON) to `url`; `Err` names what went wrong (never the secret).
pub async fn post_webhook(url: &str, body: Vec<u8>, secret: Option<&[u8]>) -> Result<(), String> {
    match tokio::time::timeout(WEBHOOK_TIMEOUT, post(url, body, secret)).await {
        Ok(r) => r,
        Err(_) => Err(format!("no answer within {} s", WEBHOOK_TIMEOUT.as_secs())),
    }
}

async fn post(url: &str, body: Vec<u8>, secret: Option<&[u8]>) -> Result<(), String> {
    let parsed = url::Url::parse(url).map_err(|e| format!("the URL is not valid: {e}"))?;
    let host = parsed.host_str().ok_or("the URL has no host")?.to_string();
    let port = parsed.port_or_known_default().ok_or("the URL has no port")?;
    let tcp_host = host.trim_start_matches('[').trim_end_matches(']').to_string();
    let tcp = tokio::net::TcpStream::connect((tcp_host.as_str(), port))
        .await
        .map_err(|e| format!("cannot connect to {host}:{port}: {e}"))?;
    let mut path = parsed.path().to_string();
    if let Some(q) = parsed.query() {
        path.push('?');
        path.push_str(q);
    }
    let authority = match parsed.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.clone(),
    };
    let mut req = http::Request::post(path)
        .header(http::header::HOST, authority)
        .header(http::header::CONTENT_TYPE, "application/json")
        .header(http::header::USER_AGENT, concat!("certgate/", env!("CARGO_PKG_VERSION")));
    if let Some(s) = secret {
        req = req.header("x-certgate-signature", signature(s, &body));
    }
    let req = req.body(Full::new(Bytes::from(body))).map_err(|e| format!("cannot build the request: {e}"))?;
    match parsed.scheme() {
        "http" => exchange(tcp, req).await,
        "https" => {
            let config = rustls::ClientConfig::builder_with_provider(crate::tls::provider())
                .with_safe_default_protocol_versions()
                .map_err(|e| e.to_string())?
                .with_root_certificates(crate::tls::root_store(crate::tls::system_roots()))
                .with_no_client_auth();
            let name = rustls_pki_types::ServerName::try_from(tcp_host.clone())
                .map_err(|_| format!("'{host}' is not a server name"))?;
            let tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
                .connect(name, tcp)
                .await
                .map_err(|e| format!("TLS with {host}:{port} failed: {e}"))?;
            exchange(tls, req).await
        }
        other => Err(format!("the scheme '{other}' is not supported (use https:// or http://)")),
    }
}

async fn exchange<S>(stream: S, req: http::Request<Full<Bytes>>) -> Result<(), String>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("HTTP handshake failed: {e}"))?;
    let driver = tokio::spawn(conn);
    let resp = sender.send_request(req).await.map_err(|e| format!("the request failed: {e}"));
    let result = match resp {
        Ok(resp) => {
            let status = resp.status();
            // Read (a bounded part of) the answer so the connection ends cleanly.
            let _ = http_body_util::Limited::new(resp.into_body(), 64 * 1024).collect().await;
            if status.is_success() {
                Ok(())
            } else {
                Err(format!("the webhook answered {status}"))
            }
        }
        Err(e) => Err(e),
    };
    driver.abort();
    result
}

#[cfg(test)]
mod tests {
    #[test]
    fn signature_is_hmac_sha256_hex() {
        // RFC 4231 test case 2.
        let s = super::signature(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(s, "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    }
}
