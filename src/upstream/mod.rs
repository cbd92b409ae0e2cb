//! The upstream side, below routes: connection making and pooling towards partners. A
//! [`Connector`] opens TCP and hands the socket to a [`TlsEngine`], which yields a TLS stream
//! without naming its TLS library; a connection pool per route and proxy worker sits on top
//! ([`pool`]: connections are never shared across certificates or trust policies). HTTP/2 is
//! used when the partner picks it by ALPN. A second TLS engine (or a plain TCP tunnel) is
//! another `TlsEngine`, not an edit of route compilation.

mod engine;
pub mod fuzz;
mod h1;
mod openssl_engine;
mod pool;
mod rustls_engine;

pub use engine::{HandshakeError, HandshakeFuture, Handshaken, TlsEngine, TlsIo, Unavailable};
pub use h1::Error as H1Error;
pub use openssl_engine::{OpensslEngine, OpensslIdentity, OpensslOptions};
pub use pool::{ResponseBody, MAX_CONNECTING};

/// Told of the partner certificate each handshake verified (the gateway's record of partner
/// certificates and their expiry). Called on the connection path: it must be quick.
pub trait PartnerObserver: Send + Sync + 'static {
    fn seen(&self, partner: &PartnerSeen<'_>);
}

/// A partner's verified leaf, where it was met and how the route trusts it.
pub struct PartnerSeen<'a> {
    /// `host`, or `host:port` when the port is not 443.
    pub destination: &'a str,
    pub leaf_der: &'a [u8],
    /// The route narrows trust with SPKI pins.
    pub pinned: bool,
    /// The route's trust policy (`public`, `private`, `ca:NAME`).
    pub trust: &'a str,
}

/// Where a route reports the partner certificates it sees.
#[derive(Clone)]
pub struct Observed {
    pub observer: Arc<dyn PartnerObserver>,
    pub pinned: bool,
    pub trust: Arc<str>,
}
pub use rustls_engine::RustlsEngine;

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Uri;
use http_body_util::combinators::BoxBody;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::tls;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
pub type Body = BoxBody<Bytes, BoxError>;

/// Timeouts and name overrides shared by every route.
#[derive(Clone, Debug)]
pub struct UpstreamSettings {
    pub connect_timeout: Duration,
    pub handshake_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_idle_per_host: usize,
    /// The longest pause while a partner's response body arrives; then the response is cut.
    pub response_body_timeout: Duration,
    /// The largest response head a partner may send (hyper's HTTP/1 read buffer).
    pub max_response_header_bytes: usize,
    /// Static host -> address overrides (like curl --resolve).
    pub resolve: HashMap<String, IpAddr>,
}

impl Default for UpstreamSettings {
    fn default() -> Self {
        UpstreamSettings {
            connect_timeout: Duration::from_secs(5),
            handshake_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(90),
            max_idle_per_host: 64,
            response_body_timeout: Duration::from_secs(60),
            max_response_header_bytes: 64 * 1024,
            resolve: HashMap::new(),
        }
    }
}

/// Why a connection to the partner could not be made, with the gateway error code.
#[derive(Debug)]
pub struct ConnectError {
    pub code: crate::model::ErrorCode,
    pub message: String,
}

impl std::fmt::Display for ConnectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConnectError {}

/// The last TLS failure seen on a route's connections after their handshake. A TLS 1.3 partner
/// refuses a client certificate with an alert on the first read; on an HTTP/2 connection hyper
/// reports only "connection closed" to the request, so the connection records the alert here.
#[derive(Default)]
pub struct LastFailure(std::sync::Mutex<Option<(Instant, tls::UpstreamFailure)>>);

impl LastFailure {
    fn record(&self, f: tls::UpstreamFailure) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some((Instant::now(), f));
    }

    /// A failure recorded within `within`, if any.
    pub fn recent(&self, within: Duration) -> Option<tls::UpstreamFailure> {
        let slot = self.0.lock().unwrap_or_else(|p| p.into_inner());
        slot.as_ref().filter(|(at, _)| at.elapsed() <= within).map(|(_, f)| f.clone())
    }
}

/// A TLS connection to a partner, with the partner's TLS failures recorded on the route as they
/// are read (HTTP/1.1 uses it as it is, HTTP/2 through hyper's `TokioIo`).
pub struct UpstreamIo {
    io: Box<dyn TlsIo>,
    engine: Arc<dyn TlsEngine>,
    h2: bool,
    /// The route's connector part (its `LastFailure`).
    route: Arc<RouteSide>,
    /// A write error held back until the partner's closing alert (if any) has been read.
    deferred: Option<(std::io::Error, Pin<Box<tokio::time::Sleep>>)>,
}

impl AsyncRead for UpstreamIo {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.io).poll_read(cx, buf);
        if let Poll::Ready(Err(e)) = &result {
            if let Some(f) = this.engine.classify(e) {
                this.route.failures.record(f);
            }
        }
        result
    }
}

/// How long a failed write waits for the partner's alert before reporting the write error.
const ALERT_GRACE: Duration = Duration::from_millis(500);

impl UpstreamIo {
    /// A write failed: a TLS 1.3 partner that refuses the client certificate sends an alert and
    /// closes, and a write can fail before the alert is read (HTTP/2 writes its preface at once).
    /// Hold the write error back until the alert is read (so rustls sees it and the route records
    /// it) or a short grace period passes, then report the write error.
    fn poll_deferred(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Error> {
        let mut scratch = [0u8; 512];
        loop {
            let mut buf = ReadBuf::new(&mut scratch);
            match Pin::new(&mut self.io).poll_read(cx, &mut buf) {
                Poll::Ready(Err(e)) => {
                    if let Some(f) = self.engine.classify(&e) {
                        self.route.failures.record(f);
                    }
                    break;
                }
                Poll::Ready(Ok(())) if !buf.filled().is_empty() => continue,
                Poll::Ready(Ok(())) => break,
                Poll::Pending => {
                    let waiting = match &mut self.deferred {
                        Some((_, sleep)) => sleep.as_mut().poll(cx).is_pending(),
                        None => false,
                    };
                    if waiting {
                        return Poll::Pending;
                    }
                    break;
                }
            }
        }
        let (err, _) = self.deferred.take().expect("poll_deferred with a deferred error");
        Poll::Ready(err)
    }

    fn check_write<T>(&mut self, cx: &mut Context<'_>, result: Poll<std::io::Result<T>>) -> Poll<std::io::Result<T>> {
        match result {
            Poll::Ready(Err(e)) => {
                self.deferred = Some((e, Box::pin(tokio::time::sleep(ALERT_GRACE))));
                self.poll_deferred(cx).map(Err)
            }
            other => other,
        }
    }
}

impl AsyncWrite for UpstreamIo {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        if this.deferred.is_some() {
            return this.poll_deferred(cx).map(Err);
        }
        let result = Pin::new(&mut this.io).poll_write(cx, buf);
        this.check_write(cx, result)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        if this.deferred.is_some() {
            return this.poll_deferred(cx).map(Err);
        }
        let result = Pin::new(&mut this.io).poll_flush(cx);
        this.check_write(cx, result)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        if this.deferred.is_some() {
            return this.poll_deferred(cx).map(Err);
        }
        let result = Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        this.check_write(cx, result)
    }
}

/// Opens connections for one route: TCP to the partner, then the route's TLS engine.
#[derive(Clone)]
pub struct Connector {
    engine: Arc<dyn TlsEngine>,
    settings: Arc<UpstreamSettings>,
    /// What is the route's own, in one allocation (a route of 100,000 costs one, not four).
    route: Arc<RouteSide>,
}

/// A route's own part of its connector.
struct RouteSide {
    /// The route's destination key, for the metric of the certificate presented.
    destination: Arc<str>,
    /// `--sni`: the name sent and verified instead of the request's host.
    sni: Option<String>,
    failures: LastFailure,
    observed: Option<Observed>,
    /// Connections being opened for this route (all workers): at most [`MAX_CONNECTING`].
    connecting: tokio::sync::Semaphore,
}

impl Connector {
    /// `observed`: where each verified partner certificate is reported.
    pub fn new(
        engine: Arc<dyn TlsEngine>,
        destination: Arc<str>,
        sni: Option<String>,
        settings: Arc<UpstreamSettings>,
        observed: Option<Observed>,
    ) -> Self {
        let route = Arc::new(RouteSide {
            destination,
            sni,
            failures: LastFailure::default(),
            observed,
            connecting: tokio::sync::Semaphore::new(MAX_CONNECTING),
        });
        Connector { engine, settings, route }
    }

    /// TLS failures seen on this route's connections after their handshake.
    pub fn failures(&self) -> &LastFailure {
        &self.route.failures
    }
}

/// Open TCP to a partner: the `[gateway.resolve]` override, an IP address, or DNS; each address
/// in turn within the connect timeout. Returns the stream and the address it reached.
pub async fn connect_tcp(
    host: &str,
    port: u16,
    settings: &UpstreamSettings,
) -> Result<(TcpStream, SocketAddr), ConnectError> {
    use crate::model::ErrorCode::UpstreamConnectFailed;
    let failed = |message: String| ConnectError { code: UpstreamConnectFailed, message };
    let addrs: Vec<SocketAddr> = match settings.resolve.get(host) {
        Some(ip) => vec![SocketAddr::new(*ip, port)],
        None => match host.parse::<IpAddr>() {
            Ok(ip) => vec![SocketAddr::new(ip, port)],
            Err(_) => tokio::time::timeout(settings.connect_timeout, tokio::net::lookup_host((host, port)))
                .await
                .map_err(|_| failed(format!("resolving {host} timed out")))?
                .map_err(|e| failed(format!("cannot resolve {host}: {e}")))?
                .collect(),
        },
    };
    let mut last = None;
    for addr in addrs {
        match tokio::time::timeout(settings.connect_timeout, TcpStream::connect(addr)).await {
            Ok(Ok(s)) => {
                let _ = s.set_nodelay(true);
                return Ok((s, addr));
            }
            Ok(Err(e)) => last = Some(format!("connecting to {host}:{port} ({addr}) failed: {e}")),
            Err(_) => {
                last = Some(format!(
                    "connecting to {host}:{port} ({addr}) timed out after {} ms",
                    settings.connect_timeout.as_millis()
                ))
            }
        }
    }
    Err(failed(last.unwrap_or_else(|| format!("{host} has no address"))))
}

/// A TLS handshake with `engine` within the handshake timeout; failures carry their code.
pub async fn handshake(
    engine: &dyn TlsEngine,
    tcp: TcpStream,
    server_name: &str,
    host: &str,
    port: u16,
    settings: &UpstreamSettings,
) -> Result<Handshaken, ConnectError> {
    use crate::model::ErrorCode;
    tokio::time::timeout(settings.handshake_timeout, engine.handshake(tcp, server_name))
        .await
        .map_err(|_| ConnectError {
            code: ErrorCode::UpstreamTimeout,
            message: format!(
                "the TLS handshake with {host}:{port} took longer than {} ms",
                settings.handshake_timeout.as_millis()
            ),
        })?
        .map_err(|e| match e {
            HandshakeError::Partner(f) => ConnectError { code: f.code, message: f.message },
            HandshakeError::Other(e) => ConnectError {
                code: ErrorCode::UpstreamConnectFailed,
                message: format!("the TLS handshake with {host}:{port} failed: {e}"),
            },
        })
}

impl Connector {
    /// Open a TLS connection to the partner of `uri` (TCP, then the route's TLS engine), report
    /// the certificates of the handshake, and wrap it for hyper.
    async fn open(&self, uri: &Uri) -> Result<UpstreamIo, ConnectError> {
        let host = uri.host().unwrap_or_default().trim_start_matches('[').trim_end_matches(']');
        let port = uri.port_u16().unwrap_or(443);
        let settings = &self.settings;
        let route = &self.route;
        let (tcp, _) = connect_tcp(host, port, settings).await?;
        let name = route.sni.as_deref().unwrap_or(host);
        let started = Instant::now();
        let done = handshake(self.engine.as_ref(), tcp, name, host, port, settings).await?;
        crate::telemetry::handshake(done.resumed, started.elapsed());
        if let Some(name) = &done.presented {
            crate::telemetry::client_certificate_presented(&route.destination, name);
        }
        if let (Some(o), Some(leaf)) = (&route.observed, &done.peer_leaf) {
            let destination = if port == 443 { host.to_string() } else { format!("{host}:{port}") };
            o.observer.seen(&PartnerSeen {
                destination: &destination,
                leaf_der: leaf,
                pinned: o.pinned,
                trust: &o.trust,
            });
        }
        Ok(UpstreamIo {
            io: done.io,
            engine: self.engine.clone(),
            h2: done.h2,
            route: self.route.clone(),
            deferred: None,
        })
    }
}

/// One route's connection pools: one per proxy worker (see [`workers`]), each made on the first
/// request that needs it. A worker's requests use its own pool, so a connection to a partner is
/// opened, used and kept by the core that serves the request (no hop to another core), and a
/// route nobody calls costs no pool at all (100,000 bindings, a few hundred in use).
pub struct UpstreamClient {
    connector: Connector,
    /// One slot per worker, allocated on the route's first request.
    per_worker: std::sync::OnceLock<Box<[std::sync::OnceLock<Arc<pool::Pool>>]>>,
}

impl UpstreamClient {
    /// TLS failures seen on the route's connections after their handshake.
    pub fn failures(&self) -> &LastFailure {
        self.connector.failures()
    }

    /// Send a request (absolute `https://` URI) on the calling worker's pool and wait for the
    /// response head. A connection error is a [`ConnectError`] (its code); others are hyper's.
    pub async fn request(&self, req: http::Request<Body>) -> Result<http::Response<ResponseBody>, BoxError> {
        self.pool().send(req).await
    }

    fn pool(&self) -> &Arc<pool::Pool> {
        let slots =
            self.per_worker.get_or_init(|| (0..=workers::count()).map(|_| std::sync::OnceLock::new()).collect());
        let slot = &slots[workers::current().min(slots.len() - 1)];
        slot.get_or_init(|| pool::Pool::new(self.connector.clone()))
    }
}

pub fn client(connector: Connector) -> UpstreamClient {
    UpstreamClient { connector, per_worker: std::sync::OnceLock::new() }
}

/// The gateway's proxy workers: one thread per core, each with its own single-threaded runtime
/// accepting applications' connections (see `gateway::serve_proxy`). A request is served start to
/// end on one core, with that core's upstream pools. Every other thread (the admin API, `call`,
/// probes) is worker 0.
pub mod workers {
    use std::cell::Cell;
    use std::sync::OnceLock;

    thread_local! {
        static CURRENT: Cell<usize> = const { Cell::new(0) };
    }

    /// How many proxy workers the process runs: one per core the process may use, at most 64.
    pub fn count() -> usize {
        static COUNT: OnceLock<usize> = OnceLock::new();
        *COUNT.get_or_init(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1).clamp(1, 64))
    }

    /// The calling thread's worker number: 1..=count() on a proxy worker, 0 elsewhere.
    pub fn current() -> usize {
        CURRENT.with(|c| c.get())
    }

    /// Mark the calling thread as proxy worker `n` (1-based).
    pub fn enter(n: usize) {
        CURRENT.with(|c| c.set(n));
    }
}
