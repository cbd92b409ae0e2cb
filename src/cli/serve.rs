use std::net::SocketAddr;
use std::sync::Arc;

use clap::Args;

use crate::control::ControlError;
use crate::gateway::{self, admin, Gateway};
use crate::routes::CompileOptions;

use super::{open, Settings};

pub const DEFAULT_PROXY: &str = "127.0.0.1:9780";
pub const DEFAULT_ADMIN: &str = "127.0.0.1:9781";

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Where applications send their requests (HTTP_PROXY). Default 127.0.0.1:9780.
    #[arg(long, value_name = "ADDR")]
    pub proxy_listen: Option<String>,
    /// Where /healthz, /readyz and /metrics are served. Default 127.0.0.1:9781.
    #[arg(long, value_name = "ADDR")]
    pub admin_listen: Option<String>,
}

fn addr(text: &str, what: &str) -> Result<SocketAddr, ControlError> {
    text.parse().map_err(|_| {
        ControlError::usage(
            "usage",
            format!("--{what} '{text}' is not an address"),
            "give IP:PORT, e.g. 127.0.0.1:9780",
        )
    })
}

async fn listen(addr: SocketAddr, what: &str) -> Result<tokio::net::TcpListener, ControlError> {
    tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        ControlError::usage(
            "usage",
            format!("cannot listen on {addr} for the {what}: {e}"),
            "pick a free port with --proxy-listen/--admin-listen",
        )
    })
}

pub async fn run(args: ServeArgs, settings: &Settings) -> Result<u8, ControlError> {
    let cfg = &settings.gateway;
    let proxy_addr =
        addr(args.proxy_listen.as_deref().or(cfg.proxy_listen.as_deref()).unwrap_or(DEFAULT_PROXY), "proxy-listen")?;
    let admin_addr =
        addr(args.admin_listen.as_deref().or(cfg.admin_listen.as_deref()).unwrap_or(DEFAULT_ADMIN), "admin-listen")?;
    let control = Arc::new(open(settings).await?);
    gateway::metrics::install();
    let gw = Arc::new(Gateway::new(
        CompileOptions { settings: Arc::new(cfg.upstream()), allow_unbound: cfg.allow_unbound },
        cfg.gateway(),
    ));
    if let Err(e) = gw.reload(&control).await {
        eprintln!("warning: the route table could not be built ({e}); not ready until the store is fixed");
    }
    let proxy = listen(proxy_addr, "proxy").await?;
    let admin = listen(admin_addr, "admin listener").await?;
    if !proxy_addr.ip().is_loopback() {
        eprintln!("warning: the proxy listens on {proxy_addr}, beyond loopback: anyone who reaches it can use the bound certificates");
    }
    if !admin_addr.ip().is_loopback() {
        eprintln!("warning: the admin listener on {admin_addr} is reachable beyond loopback without TLS");
    }
    let table = gw.current();
    eprintln!(
        "certgate serving: proxy http://{} (set HTTP_PROXY=http://{} or call http://{}/svc/NAME/...), admin http://{}; route table revision {} with {} binding(s)",
        gateway::local_addr(&proxy),
        gateway::local_addr(&proxy),
        gateway::local_addr(&proxy),
        gateway::local_addr(&admin),
        table.as_ref().map(|t| t.revision).unwrap_or(0),
        table.as_ref().map(|t| t.len()).unwrap_or(0),
    );
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutting down: no new connections, finishing in-flight requests");
        let _ = stop_tx.send(true);
    });
    let watcher = tokio::spawn(gw.clone().watch(control.clone()));
    let mut admin_stop = stop_rx.clone();
    let router = admin::router(gw.clone());
    let admin_task = tokio::spawn(async move {
        let _ = axum::serve(admin, router)
            .with_graceful_shutdown(async move {
                let _ = admin_stop.wait_for(|v| *v).await;
            })
            .await;
    });
    let mut proxy_stop = stop_rx.clone();
    gateway::serve_proxy(gw.clone(), proxy, async move {
        let _ = proxy_stop.wait_for(|v| *v).await;
    })
    .await;
    watcher.abort();
    let _ = admin_task.await;
    control.close().await;
    Ok(0)
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(t) => t,
            Err(_) => {
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
