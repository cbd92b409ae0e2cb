//! The egress gateway: applications send plain HTTP (as to a proxy, or to `/svc/NAME/...`);
//! certgate opens HTTPS to the partner with the bound certificate, verifies the partner, pools
//! connections, and picks up store changes without a restart.
//!
//! The current route table is an `Arc` swapped atomically; requests take a clone of it and finish
//! on the table they started with. A reload task compiles a new table when the store revision
//! moves, and keeps the old one when compiling fails.

pub mod admin;
mod error;
pub mod metrics;
mod proxy;
pub mod upstream;

pub use error::GatewayError;
pub use proxy::{forward, resolve, strip_hop_by_hop, Target};

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use http::{Request, Response};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;

use crate::control::Control;
use crate::routes::{compile, CompileOptions, RouteTable};

use upstream::{Body, BoxError};

/// Gateway limits, from the `[gateway]` config section.
#[derive(Clone, Debug)]
pub struct GatewaySettings {
    pub response_header_timeout: Duration,
    pub reload_interval: Duration,
    pub max_connections: usize,
    pub max_header_bytes: usize,
    pub shutdown_grace: Duration,
}

impl Default for GatewaySettings {
    fn default() -> Self {
        GatewaySettings {
            response_header_timeout: Duration::from_secs(30),
            reload_interval: Duration::from_millis(250),
            max_connections: 4096,
            max_header_bytes: 64 * 1024,
            shutdown_grace: Duration::from_secs(30),
        }
    }
}

/// The live state: the table in use, and how the last reload went.
pub struct Gateway {
    table: RwLock<Option<Arc<RouteTable>>>,
    last_error: Mutex<Option<String>>,
    store_revision: Mutex<Option<i64>>,
    options: CompileOptions,
    pub settings: GatewaySettings,
}

impl Gateway {
    pub fn new(options: CompileOptions, settings: GatewaySettings) -> Self {
        Gateway {
            table: RwLock::new(None),
            last_error: Mutex::new(None),
            store_revision: Mutex::new(None),
            options,
            settings,
        }
    }

    pub fn current(&self) -> Option<Arc<RouteTable>> {
        self.table.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn last_error(&self) -> Option<String> {
        self.last_error.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn store_revision(&self) -> Option<i64> {
        *self.store_revision.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Compile and publish a new table from the store. On failure the previous table stays.
    pub async fn reload(&self, control: &Control) -> Result<i64, String> {
        let result = async {
            let inputs = control.route_inputs().await.map_err(|e| e.message())?;
            *self.store_revision.lock().unwrap_or_else(|p| p.into_inner()) = Some(inputs.revision);
            let previous = self.current();
            compile(&inputs, previous.as_deref(), &self.options)
        }
        .await;
        match result {
            Ok(table) => {
                let revision = table.revision;
                *self.table.write().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(table));
                *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = None;
                metrics::reload("ok");
                tracing::info!(revision, "route table published");
                Ok(revision)
            }
            Err(e) => {
                *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(e.clone());
                metrics::reload("error");
                tracing::error!("route table not published, keeping the previous one: {e}");
                Err(e)
            }
        }
    }

    /// Poll the store revision and republish when it moves (or when the last attempt failed).
    pub async fn watch(self: Arc<Self>, control: Arc<Control>) {
        let mut ticker = tokio::time::interval(self.settings.reload_interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            let seen = match control.revision().await {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!("cannot read the store revision: {}", e.message());
                    continue;
                }
            };
            *self.store_revision.lock().unwrap_or_else(|p| p.into_inner()) = Some(seen);
            let loaded = self.current().map(|t| t.revision);
            if loaded != Some(seen) || self.last_error().is_some() && loaded.is_none() {
                let _ = self.reload(&control).await;
            }
        }
    }

    /// Handle one request from an application.
    pub async fn handle(&self, req: Request<Body>) -> Response<Body> {
        match self.current() {
            Some(table) => forward(&table, req, self.settings.response_header_timeout).await,
            None => GatewayError::new("not-ready", "the route table has not been loaded yet").response(),
        }
    }
}

/// Accept applications' connections until `shutdown` resolves, then let in-flight requests
/// finish (bounded by the grace period).
pub async fn serve_proxy(
    gateway: Arc<Gateway>,
    listener: TcpListener,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let limit = Arc::new(tokio::sync::Semaphore::new(gateway.settings.max_connections));
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().max_buf_size(gateway.settings.max_header_bytes.max(8192)).keep_alive(true);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let permit = match limit.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                tracing::warn!(%peer, "connection refused: max_connections reached");
                drop(stream);
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let gw = gateway.clone();
        let service = hyper::service::service_fn(move |req: Request<Incoming>| {
            let gw = gw.clone();
            async move {
                let req = req.map(|b| b.map_err(|e| Box::new(e) as BoxError).boxed());
                Ok::<_, std::convert::Infallible>(gw.handle(req).await)
            }
        });
        let conn = builder.serve_connection(TokioIo::new(stream), service).into_owned();
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(%peer, "connection ended: {e}");
            }
            drop(permit);
        });
    }
    drop(listener);
    let grace = gateway.settings.shutdown_grace;
    if tokio::time::timeout(grace, graceful.shutdown()).await.is_err() {
        tracing::warn!("in-flight requests did not finish within {} s", grace.as_secs());
    }
}

/// The address a listener really bound (for messages when port 0 was asked for).
pub fn local_addr(listener: &TcpListener) -> String {
    listener.local_addr().map(|a: SocketAddr| a.to_string()).unwrap_or_default()
}
