use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use clap::Args;

use crate::admin::{self, AdminState};
use crate::control::{AlertStatus, AlertsConfig, Control, ControlError, PartnerRegistry};
use crate::gateway::{self, Gateway};
use crate::routes::CompileOptions;

use super::{open, Settings};

/// What serve tells the person who started it: a plain line on stderr, or with
/// `--log-format json` a log event, so that every stderr line is JSON for the log shipper.
macro_rules! say_info {
    ($($arg:tt)*) => {
        if super::json_logs() { tracing::info!($($arg)*) } else { eprintln!($($arg)*) }
    };
}
macro_rules! say_warn {
    ($($arg:tt)*) => {
        if super::json_logs() { tracing::warn!($($arg)*) } else { eprintln!($($arg)*) }
    };
}

pub const DEFAULT_PROXY: &str = "127.0.0.1:9780";
pub const DEFAULT_ADMIN: &str = "127.0.0.1:9781";

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Where applications send their requests (HTTP_PROXY). Default 127.0.0.1:9780.
    #[arg(long, value_name = "ADDR")]
    pub proxy_listen: Option<String>,
    /// Where the admin API, the console, /healthz, /readyz and /metrics are served. Default 127.0.0.1:9781.
    #[arg(long, value_name = "ADDR")]
    pub admin_listen: Option<String>,
    /// Serve the admin listener over HTTPS with this certificate from the store (its key and chain).
    #[arg(long, value_name = "CERT")]
    pub admin_tls_cert: Option<String>,
    /// Let callers beyond loopback use the proxy while no app exists (anyone who reaches it can use
    /// every bound certificate). Without it, serve refuses such a listen address until an app exists.
    #[arg(long)]
    pub unsafe_open_proxy: bool,
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
    let ready = prepare(&args, settings, proxy_addr).await?;
    let proxy = listen(proxy_addr, "proxy").await?;
    let admin = listen(admin_addr, "admin listener").await?;
    ready.serve((proxy, proxy_addr), (admin, admin_addr), wait_for_signal()).await
}

/// `serve` on listeners the caller bound (e.g. on 127.0.0.1:0), until `shutdown` resolves, then
/// like after SIGTERM: no new connections, in-flight requests finish (bounded by
/// `shutdown_grace_ms`). `--proxy-listen`/`--admin-listen` in `args` are not used. For running
/// the gateway inside another program, such as the integration tests.
pub async fn serve_on(
    settings: &Settings,
    args: &ServeArgs,
    proxy: tokio::net::TcpListener,
    admin: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<u8, ControlError> {
    let bound = |l: &tokio::net::TcpListener, what: &str| {
        l.local_addr().map_err(|e| {
            ControlError::usage("usage", format!("the {what} has no address: {e}"), "pass a bound listener")
        })
    };
    let proxy_addr = bound(&proxy, "proxy listener")?;
    let admin_addr = bound(&admin, "admin listener")?;
    let ready = prepare(args, settings, proxy_addr).await?;
    ready.serve((proxy, proxy_addr), (admin, admin_addr), shutdown).await
}

/// Everything `serve` sets up before it listens: the store, the checks, the first route table.
struct Prepared {
    control: Arc<Control>,
    gateway: Arc<Gateway>,
    admin_tls: Option<Arc<rustls::ServerConfig>>,
    alerts: crate::control::AlertsConfig,
    partners: Arc<PartnerRegistry>,
}

async fn prepare(args: &ServeArgs, settings: &Settings, proxy_addr: SocketAddr) -> Result<Prepared, ControlError> {
    let cfg = &settings.gateway;
    settings.alerts.check()?;
    let control = Arc::new(open(settings).await?);
    if !proxy_addr.ip().is_loopback() && !args.unsafe_open_proxy && control.apps().await?.is_empty() {
        return Err(ControlError::usage(
            "usage",
            format!("the proxy would listen on {proxy_addr}, beyond loopback, while no app exists: anyone who reaches it could present every bound certificate"),
            "add an app first (certgate app add NAME; callers then authenticate), listen on 127.0.0.1, or pass --unsafe-open-proxy",
        ));
    }
    let admin_tls = match &args.admin_tls_cert {
        Some(name) => Some(admin::server_tls(&control, name).await?),
        None => None,
    };
    crate::telemetry::install();
    let partners = Arc::new(PartnerRegistry::default());
    let mut gw_settings = cfg.gateway();
    gw_settings.unsafe_open_proxy = args.unsafe_open_proxy;
    let gw = Arc::new(Gateway::new(
        CompileOptions {
            settings: Arc::new(cfg.upstream()),
            allow_unbound: cfg.allow_unbound,
            partners: Some(partners.clone()),
        },
        gw_settings,
    ));
    if let Err(e) = gw.reload(control.as_ref()).await {
        say_warn!("warning: the route table could not be built ({e}); not ready until the store is fixed");
    }
    Ok(Prepared { control, gateway: gw, admin_tls, alerts: settings.alerts.clone(), partners })
}

impl Prepared {
    /// Serve on the listeners; the addresses are the ones asked for, named in the warnings.
    async fn serve(
        self,
        (proxy, proxy_addr): (tokio::net::TcpListener, SocketAddr),
        (admin, admin_addr): (tokio::net::TcpListener, SocketAddr),
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<u8, ControlError> {
        let Prepared { control, gateway: gw, admin_tls, alerts, partners } = self;
        if !proxy_addr.ip().is_loopback() {
            say_warn!("warning: the proxy listens on {proxy_addr}, beyond loopback: anyone who reaches it can use the bound certificates");
        }
        if !admin_addr.ip().is_loopback() && admin_tls.is_none() {
            say_warn!("warning: the admin listener on {admin_addr} is reachable beyond loopback without TLS (use --admin-tls-cert CERT): tokens would cross the network in the clear");
        }
        let scheme = if admin_tls.is_some() { "https" } else { "http" };
        let table = gw.current();
        say_info!(
            "certgate serving: proxy http://{} (set HTTP_PROXY=http://{} or call http://{}/svc/NAME/...), admin and console {scheme}://{}; route table revision {} with {} binding(s)",
            gateway::local_addr(&proxy),
            gateway::local_addr(&proxy),
            gateway::local_addr(&proxy),
            gateway::local_addr(&admin),
            table.as_ref().map(|t| t.revision).unwrap_or(0),
            table.as_ref().map(|t| t.len()).unwrap_or(0),
        );
        if control.tokens().await?.is_empty() {
            say_info!(
                "no admin token exists yet: create one with 'certgate token create admin --role admin' and sign in at {scheme}://{}/",
                gateway::local_addr(&admin)
            );
        }
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            shutdown.await;
            tracing::info!("shutting down: no new connections, finishing in-flight requests");
            let _ = stop_tx.send(true);
        });
        let watcher = tokio::spawn(gw.clone().watch(control.clone() as Arc<dyn crate::routes::RouteSource>));
        let upkeep = tokio::spawn(async {
            let mut every = tokio::time::interval(crate::telemetry::UPKEEP_EVERY);
            loop {
                every.tick().await;
                crate::telemetry::upkeep();
            }
        });
        let partner_task = tokio::spawn(partners.clone().run(control.clone()));
        let alert_status = Arc::new(AlertStatus::default());
        let node = format!("{}@{}", std::process::id(), gateway::local_addr(&admin));
        let alert_task = tokio::spawn(alert_loop(control.clone(), alerts, alert_status.clone(), node));
        let mut admin_stop = stop_rx.clone();
        let router = admin::router(Arc::new(AdminState {
            control: control.clone(),
            gateway: gw.clone(),
            alerts: alert_status,
            sessions: Default::default(),
            https: admin_tls.is_some(),
            proxy_addr: gateway::local_addr(&proxy),
        }));
        let admin_task =
            tokio::spawn(admin::serve(admin, router, admin_tls, gw.settings.clients.clone(), async move {
                let _ = admin_stop.wait_for(|v| *v).await;
            }));
        let mut proxy_stop = stop_rx.clone();
        gateway::serve_proxy(gw.clone(), proxy, async move {
            let _ = proxy_stop.wait_for(|v| *v).await;
        })
        .await;
        watcher.abort();
        upkeep.abort();
        alert_task.abort();
        partner_task.abort();
        let _ = admin_task.await;
        // What the gateway saw last is kept for `certgate expiry`.
        if let Err(e) = partners.flush(&control).await {
            tracing::warn!("partner certificates could not be recorded: {e}");
        }
        control.close().await;
        Ok(0)
    }
}

/// Expiry alerts: once at start, then every `interval_seconds`. A failed run is shown in
/// `/readyz` and tried again at the next tick.
async fn alert_loop(control: Arc<Control>, cfg: AlertsConfig, status: Arc<AlertStatus>, node: String) {
    let mut every = tokio::time::interval(std::time::Duration::from_secs(cfg.interval_seconds.max(1)));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        if let Err(e) = control.run_alerts(&cfg, &node, &status).await {
            tracing::warn!("expiry alerts: {e}");
        }
    }
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
