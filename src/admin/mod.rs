//! The admin listener: JSON API, web console, health and metrics. Every route in one place:
//!
//! | route | methods | who |
//! |---|---|---|
//! | `/healthz`, `/readyz`, `/metrics` | GET | anyone (no secrets) |
//! | `/` , `/console/*` | GET | anyone (the console signs in with a token) |
//! | `/console/login`, `/console/logout` | POST | token holder; sets/clears the session cookie |
//! | `/console/session` | GET | session: name, role and the CSRF token |
//! | `/api/v1/whoami`, `/api/v1/revision`, `/api/v1/audit` | GET | viewer |
//! | `/api/v1/certificates` | GET viewer; POST (import: multipart or JSON base64) admin |
//! | `/api/v1/certificates/{name}` | GET viewer; PUT (rotate) and DELETE admin |
//! | `/api/v1/certificates/{name}/export`, `/check` | GET viewer |
//! | `/api/v1/certificates/{name}/owner`, `/api/v1/trust-anchors/{name}/owner` | PUT `{"owner"?, "contact"?}` admin |
//! | `/api/v1/certificates/{name}/request` | GET (the pending CSR) viewer; POST (make key + CSR) admin |
//! | `/api/v1/certificates/{name}/complete` | POST (issued certificate) admin |
//! | `/api/v1/requests` | GET pending requests with their age, viewer |
//! | `/api/v1/expiry?within=30d` | GET viewer |
//! | `/api/v1/trust-anchors`, `/{name}` | GET viewer; POST, DELETE admin |
//! | `/api/v1/bindings`, `/{destination}` | GET viewer; PUT, DELETE operator |
//! | `/api/v1/services`, `/{name}` | GET viewer; PUT, DELETE operator |
//! | `/api/v1/apps`, `/{name}`, `/{name}/grants/{certificate}` | GET viewer; POST, DELETE, PUT operator |
//! | `/api/v1/tokens`, `/{name}` | GET, POST, DELETE admin |
//! | `/api/v1/apply` | POST (plan an apply document; applied unless `dry_run`) admin |
//! | `/api/v1/openapi.json` | GET anyone |
//!
//! Authentication: `Authorization: Bearer TOKEN`, or the console's session cookie
//! (HttpOnly, SameSite=Strict) plus an `X-CSRF-Token` header on every change.
//!
//! Files: `api/` (one file per noun; `api/mod.rs` is the router), `auth` (who is calling),
//! `session` (console sessions), `error` (`ApiError`, the only place `ControlError` becomes HTTP),
//! `extract` (bodies, query parameters, uploads), `state`, `console`, `health`. Imports only go
//! down: `api` → `auth` → `session`/`state`/`error`; `extract` → `error`; nothing imports `api`.

mod api;
mod auth;
mod console;
mod error;
mod extract;
mod health;
mod session;
mod state;

/// The admin API's OpenAPI document (what `/api/v1/openapi.json` serves).
pub fn openapi_document() -> &'static serde_json::Value {
    api::openapi_document()
}

pub use session::Sessions;
pub use state::AdminState;

use std::sync::Arc;

use axum::Router;

use crate::control::Control;

pub fn router(state: Arc<AdminState>) -> Router {
    Router::new()
        .merge(health::router(state.gateway.clone(), state.alerts.clone()))
        .merge(console::router(state.clone()))
        .nest("/api/v1", api::router(state))
}

/// Serve the admin router on `listener`, over TLS when `tls` is given, until `shutdown`. The
/// connection limits and timeouts of the proxy listener apply here too (`gateway::guard`); over
/// TLS a cut-off connection is closed without an answer.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    tls: Option<Arc<rustls::ServerConfig>>,
    limits: crate::gateway::ClientLimits,
    shutdown: impl std::future::Future<Output = ()>,
) {
    use hyper_util::rt::TokioIo;
    use hyper_util::service::TowerToHyperService;

    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    let admission = crate::gateway::Admission::new(limits.clone(), "admin");
    let builder = limits.server_builder();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = crate::gateway::accept(&listener) => accepted,
            _ = &mut shutdown => break,
        };
        let admitted = match admission.admit(peer) {
            Ok(a) => a,
            Err(e) if acceptor.is_none() => {
                admission.refuse(stream, peer, e);
                continue;
            }
            Err(e) => {
                tracing::warn!(%peer, "admin connection refused: {}", e.message);
                continue;
            }
        };
        let service = TowerToHyperService::new(router.clone());
        let guarded = crate::gateway::guard(stream, peer, service, &limits, acceptor.is_none(), "admin");
        let (io, service, watchdog) = guarded.into_parts();
        match &acceptor {
            None => {
                let conn = graceful.watch(builder.serve_connection(io, service).into_owned());
                tokio::spawn(async move {
                    let _ = crate::gateway::run_guarded(conn, watchdog).await;
                    drop(admitted);
                });
            }
            Some(acceptor) => {
                let acceptor = acceptor.clone();
                let builder = builder.clone();
                let watcher = graceful.watcher();
                tokio::spawn(async move {
                    let served = async move {
                        match acceptor.accept(io.into_inner()).await {
                            Ok(tls) => {
                                if tls.get_ref().1.alpn_protocol() == Some(b"h2") {
                                    tls.get_ref().0.set_h2();
                                }
                                let conn = builder.serve_connection(TokioIo::new(tls), service).into_owned();
                                let _ = watcher.watch(conn).await;
                            }
                            Err(e) => tracing::debug!(%peer, "admin TLS handshake failed: {e}"),
                        }
                    };
                    // The handshake counts as the first request head: the header-read timeout
                    // bounds it.
                    let _ = crate::gateway::run_guarded(served, watchdog).await;
                    drop(admitted);
                });
            }
        }
    }
    drop(listener);
    let _ = tokio::time::timeout(std::time::Duration::from_secs(10), graceful.shutdown()).await;
}

/// A TLS server config from a certificate in the store (the "application server certificate").
pub async fn server_tls(
    control: &Control,
    name: &str,
) -> Result<Arc<rustls::ServerConfig>, crate::control::ControlError> {
    let mut inputs = control.route_inputs_with(&[name]).await?;
    let id = inputs.identities.remove(name).ok_or_else(|| crate::control::ControlError::NotFound {
        what: format!("certificate '{name}'"),
        hint: crate::model::Remedy::with(
            "import it first",
            crate::model::Action::ImportCertificate(Some(name.to_string())),
        ),
    })?;
    let chain = id.chain.iter().cloned().map(rustls_pki_types::CertificateDer::from).collect();
    let config = rustls::ServerConfig::builder_with_provider(crate::tls::provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| e.to_string())
        .and_then(|b| {
            let key = id.key.load()?;
            b.with_no_client_auth().with_single_cert(chain, key.to_rustls()).map_err(|e| e.to_string())
        })
        .map_err(|e| {
            crate::control::ControlError::usage(
                "usage",
                format!("certificate '{name}' cannot serve HTTPS: {e}"),
                "use a certificate with its key (ideally one issued for this host's name)",
            )
        })?;
    let mut config = config;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
