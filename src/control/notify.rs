//! Sending alert messages: a signed JSON POST to a webhook (hyper's client over our rustls
//! stack, the system's roots for HTTPS), and a plain-text mail over SMTP (lettre, rustls on
//! aws-lc-rs). Knows nothing of certificates or thresholds.

use std::time::Duration;

use aws_lc_rs::hmac;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};

use std::path::PathBuf;

use serde::Deserialize;
use zeroize::Zeroizing;

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

/// How the connection to the mail server is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpSecurity {
    /// Plain connection upgraded with STARTTLS, which must succeed (port 587 by default).
    Starttls,
    /// TLS from the first byte, "SMTPS" (port 465 by default).
    Tls,
    /// No encryption: only to a relay on this machine (127.0.0.1, ::1, localhost; port 25).
    None,
}

/// `[alerts.smtp]`: where e-mail alerts are handed over. The password is read when a mail is
/// sent, from a file or an environment variable; it is never in the config file itself.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpConfig {
    pub host: String,
    /// Default: 587 for starttls, 465 for tls, 25 for none.
    pub port: Option<u16>,
    #[serde(default = "default_security")]
    pub security: SmtpSecurity,
    /// The sender, e.g. `certgate <certgate@example.com>`.
    pub from: String,
    /// For SMTP AUTH (PLAIN or LOGIN, offered only over TLS); with a password_file or password_env.
    pub username: Option<String>,
    pub password_file: Option<PathBuf>,
    pub password_env: Option<String>,
    /// Extra CA certificates (PEM) trusted for the mail server, beside the system's roots.
    pub ca_file: Option<PathBuf>,
    /// How long one mail may take, connect to the server's last answer.
    #[serde(default = "default_smtp_timeout")]
    pub timeout_seconds: u64,
}

fn default_security() -> SmtpSecurity {
    SmtpSecurity::Starttls
}

fn default_smtp_timeout() -> u64 {
    30
}

impl SmtpConfig {
    pub fn port(&self) -> u16 {
        self.port.unwrap_or(match self.security {
            SmtpSecurity::Starttls => 587,
            SmtpSecurity::Tls => 465,
            SmtpSecurity::None => 25,
        })
    }

    /// Refuse what cannot work or would be unsafe, before anything is sent.
    pub fn check(&self) -> Result<(), String> {
        if self.host.trim().is_empty() {
            return Err("[alerts.smtp] host is empty".into());
        }
        if self.security == SmtpSecurity::None && !is_loopback_host(&self.host) {
            return Err(format!(
                "[alerts.smtp] security = \"none\" is allowed only to a relay on this machine (127.0.0.1, ::1 or localhost), not to '{}': use starttls or tls",
                self.host
            ));
        }
        mailbox(&self.from).map_err(|e| format!("[alerts.smtp] from = '{}' is not a mailbox: {e}", self.from))?;
        match (&self.username, &self.password_file, &self.password_env) {
            (Some(_), None, None) => {
                return Err("[alerts.smtp] has a username but no password_file or password_env".into())
            }
            (None, Some(_), _) | (None, _, Some(_)) => {
                return Err("[alerts.smtp] has a password but no username".into())
            }
            (_, Some(_), Some(_)) => {
                return Err("[alerts.smtp] give the password in password_file or password_env, not both".into())
            }
            _ => {}
        }
        Ok(())
    }

    /// The login, with the password read now from the file or variable the config names.
    pub fn credentials(&self) -> Result<Option<(String, Zeroizing<String>)>, String> {
        let Some(user) = &self.username else { return Ok(None) };
        if let Some(var) = &self.password_env {
            return match std::env::var(var) {
                Ok(v) if !v.is_empty() => Ok(Some((user.clone(), Zeroizing::new(v)))),
                _ => Err(format!("the SMTP password is to come from the variable {var}, which is not set")),
            };
        }
        if let Some(path) = &self.password_file {
            let text = Zeroizing::new(
                std::fs::read_to_string(path)
                    .map_err(|e| format!("the SMTP password file {} cannot be read: {e}", path.display()))?,
            );
            let pass = text.trim_end_matches(['\r', '\n']);
            if pass.is_empty() {
                return Err(format!("the SMTP password file {} is empty", path.display()));
            }
            return Ok(Some((user.clone(), Zeroizing::new(pass.to_string()))));
        }
        Ok(None)
    }
}

/// `localhost`, or an IP address on the loopback interface.
fn is_loopback_host(host: &str) -> bool {
    let h = host.trim().trim_start_matches('[').trim_end_matches(']');
    h.eq_ignore_ascii_case("localhost") || h.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// A mailbox (`ops@example.com` or `Name <ops@example.com>`), as lettre reads it.
pub fn mailbox(text: &str) -> Result<lettre::message::Mailbox, String> {
    text.trim().parse::<lettre::message::Mailbox>().map_err(|e| e.to_string())
}

/// The name this machine greets the mail server with (EHLO): its host name, else `localhost`.
fn hello_name() -> lettre::transport::smtp::extension::ClientId {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname writes at most that many bytes.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    let name = if rc == 0 {
        let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
        String::from_utf8_lossy(&buf[..end]).into_owned()
    } else {
        String::new()
    };
    let valid = !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
    lettre::transport::smtp::extension::ClientId::Domain(if valid { name } else { "localhost".into() })
}

/// The error and its causes on one line (lettre's top-level text alone says little).
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        let t = s.to_string();
        if !out.contains(&t) {
            out.push_str(": ");
            out.push_str(&t);
        }
        src = s.source();
    }
    out
}

/// Send one plain-text mail to `to` through the configured server; `Err` says what went wrong
/// (never the password).
pub async fn send_mail(smtp: &SmtpConfig, to: &str, subject: &str, text: String) -> Result<(), String> {
    let timeout = Duration::from_secs(smtp.timeout_seconds.max(1));
    let server = format!("{}:{}", smtp.host, smtp.port());
    match tokio::time::timeout(timeout, mail(smtp, to, subject, text, timeout)).await {
        Ok(r) => r.map_err(|e| format!("the mail server {server}: {e}")),
        Err(_) => Err(format!("the mail server {server} did not finish within {} s", timeout.as_secs())),
    }
}

async fn mail(smtp: &SmtpConfig, to: &str, subject: &str, text: String, timeout: Duration) -> Result<(), String> {
    use lettre::message::header::ContentType;
    use lettre::transport::smtp::authentication::{Credentials, Mechanism};
    use lettre::transport::smtp::client::{AsyncSmtpConnection, Certificate, TlsParameters};
    use lettre::Message;

    let from = mailbox(&smtp.from).map_err(|e| format!("the sender '{}' is not a mailbox: {e}", smtp.from))?;
    let rcpt = mailbox(to).map_err(|e| format!("'{to}' is not a mailbox: {e}"))?;
    let message = Message::builder()
        .from(from)
        .to(rcpt)
        .subject(subject)
        .header(ContentType::TEXT_PLAIN)
        .body(text)
        .map_err(|e| format!("cannot build the message: {e}"))?;
    let tls = match smtp.security {
        SmtpSecurity::None => None,
        _ => {
            let mut params =
                TlsParameters::builder(smtp.host.trim_start_matches('[').trim_end_matches(']').to_string());
            if let Some(path) = &smtp.ca_file {
                let pem = std::fs::read(path)
                    .map_err(|e| format!("the SMTP ca_file {} cannot be read: {e}", path.display()))?;
                let cert = Certificate::from_pem(&pem)
                    .map_err(|e| format!("the SMTP ca_file {} holds no PEM certificate: {e}", path.display()))?;
                params = params.add_root_certificate(cert);
            }
            Some(params.build_rustls().map_err(|e| format!("cannot set up TLS: {}", chain(&e)))?)
        }
    };
    let credentials = smtp.credentials()?;
    let hello = hello_name();
    let host = smtp.host.trim_start_matches('[').trim_end_matches(']');
    let wrapper = if smtp.security == SmtpSecurity::Tls { tls.clone() } else { None };
    let mut conn = AsyncSmtpConnection::connect_tokio1((host, smtp.port()), Some(timeout), &hello, wrapper, None)
        .await
        .map_err(|e| chain(&e))?;
    if smtp.security == SmtpSecurity::Starttls {
        if !conn.can_starttls() {
            return Err(
                "it does not offer STARTTLS (set security = \"tls\" for a server that speaks TLS at once)".into()
            );
        }
        let params = tls.expect("TLS parameters for starttls");
        conn.starttls(params, &hello).await.map_err(|e| format!("STARTTLS failed: {}", chain(&e)))?;
    }
    if let Some((user, pass)) = credentials {
        let creds = Credentials::new(user, pass.to_string());
        conn.auth(&[Mechanism::Plain, Mechanism::Login], &creds)
            .await
            .map_err(|e| format!("the login was refused: {}", chain(&e)))?;
    }
    conn.send(message.envelope(), &message.formatted())
        .await
        .map_err(|e| format!("refused the mail: {}", chain(&e)))?;
    // The mail is accepted; say goodbye, but do not wait long for the server's answer.
    let _ = tokio::time::timeout(Duration::from_secs(2), conn.quit()).await;
    Ok(())
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
