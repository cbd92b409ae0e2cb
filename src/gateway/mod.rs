//! The egress gateway: applications send plain HTTP (as to a proxy, or to `/svc/NAME/...`);
//! certgate opens HTTPS to the partner with the bound certificate, verifies the partner, pools
//! connections, and picks up store changes without a restart.
//!
//! The current route table is an `Arc` swapped atomically; requests take a clone of it and finish
//! on the table they started with. A reload task compiles a new table when the store revision
//! moves, and keeps the old one when compiling fails.

mod error;
#[doc(hidden)]
pub mod fuzz;
mod guard;
mod head;
pub mod probe;
mod proxy;
mod session;

pub use error::GatewayError;
pub use guard::{guard, run as run_guarded, Admission, ClientBody, ClientFault, ClientLimits};
pub use proxy::{
    forward, forward_as, resolve, set_request_spans, strip_hop_by_hop, Access, Target, CERTIFICATE_HEADER,
};

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwapOption;
use std::time::{Duration, Instant};

use http::{Request, Response};
use http_body_util::BodyExt;
use tokio::net::{TcpListener, TcpStream};

use crate::model::ErrorCode;
use crate::routes::{compile, compile_changes, CompileOptions, RouteSource, RouteTable, SourceEvent};

use crate::telemetry as metrics;
use crate::upstream::Body;

/// Gateway limits, from the `[gateway]` config section.
#[derive(Clone, Debug)]
pub struct GatewaySettings {
    pub response_header_timeout: Duration,
    pub reload_interval: Duration,
    /// Limits on applications' connections (also applied to the admin listener).
    pub clients: ClientLimits,
    pub shutdown_grace: Duration,
    /// Serve non-loopback callers even when no apps exist (`serve --unsafe-open-proxy`).
    pub unsafe_open_proxy: bool,
}

impl Default for GatewaySettings {
    fn default() -> Self {
        GatewaySettings {
            response_header_timeout: Duration::from_secs(30),
            reload_interval: Duration::from_millis(250),
            clients: ClientLimits::default(),
            shutdown_grace: Duration::from_secs(30),
            unsafe_open_proxy: false,
        }
    }
}

/// The live state: the table in use, and how the last reload went.
pub struct Gateway {
    table: ArcSwapOption<RouteTable>,
    last_error: Mutex<Option<String>>,
    store_revision: Mutex<Option<i64>>,
    /// Whether the last read of the store revision worked, and the error when it did not.
    store_status: Mutex<StoreStatus>,
    options: CompileOptions,
    pub settings: GatewaySettings,
}

impl Gateway {
    pub fn new(options: CompileOptions, settings: GatewaySettings) -> Self {
        Gateway {
            table: ArcSwapOption::const_empty(),
            last_error: Mutex::new(None),
            store_revision: Mutex::new(None),
            store_status: Mutex::new(StoreStatus { reachable: true, error: None, since: Instant::now() }),
            options,
            settings,
        }
    }

    pub fn current(&self) -> Option<Arc<RouteTable>> {
        self.table.load_full()
    }

    /// How routes are compiled (the upstream settings), for `probe` from the admin API.
    pub fn options(&self) -> &CompileOptions {
        &self.options
    }

    pub fn last_error(&self) -> Option<String> {
        self.last_error.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn store_revision(&self) -> Option<i64> {
        *self.store_revision.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether the store answered the last revision check (`/readyz`, `certgate_store_up`),
    /// and why not when it did not. While it does not, the current table keeps serving.
    pub fn store_reachable(&self) -> (bool, Option<String>) {
        let s = self.store_status.lock().unwrap_or_else(|p| p.into_inner());
        (s.reachable, s.error.clone())
    }

    fn store_answered(&self, result: Result<i64, String>) -> Option<i64> {
        let mut s = self.store_status.lock().unwrap_or_else(|p| p.into_inner());
        let loaded = self.current().map(|t| t.revision);
        match result {
            Ok(revision) => {
                if !s.reachable {
                    tracing::info!(
                        revision,
                        "the store is reachable again after {} s; catching up with what changed meanwhile",
                        s.since.elapsed().as_secs()
                    );
                    *s = StoreStatus { reachable: true, error: None, since: Instant::now() };
                }
                metrics::store_up(true);
                Some(revision)
            }
            Err(e) => {
                if s.reachable || s.error.as_deref() != Some(e.as_str()) {
                    tracing::warn!(
                        "cannot read the store revision: {e}; still serving the route table of revision {}",
                        loaded.map(|r| r.to_string()).unwrap_or_else(|| "(none)".into())
                    );
                }
                if s.reachable {
                    s.since = Instant::now();
                }
                s.reachable = false;
                s.error = Some(e);
                metrics::store_up(false);
                None
            }
        }
    }

    /// Compile and publish a new table from the store. On failure the previous table stays.
    /// With a table in use, only what changed since its revision is read and only the routes
    /// it touches are compiled again; when the source cannot say what changed (a gap, too many
    /// changes, a trust anchor change) the whole store is read and compiled (reusing unchanged
    /// routes by fingerprint).
    pub async fn reload(&self, source: &dyn RouteSource) -> Result<i64, String> {
        let result = async {
            let previous = self.current();
            // Compiling unseals keys and builds TLS configurations for every changed route: on
            // the blocking pool, so the requests served by this runtime do not wait for it.
            let options = self.options.clone();
            let since = previous.as_ref().and_then(|t| t.source.clone());
            if let (Some(table), Some(since)) = (previous.clone(), since) {
                if let Some((inputs, touched)) = source.inputs_since(since).await? {
                    *self.store_revision.lock().unwrap_or_else(|p| p.into_inner()) = Some(inputs.revision);
                    tracing::debug!(
                        revision = inputs.revision,
                        bindings = touched.destinations.len(),
                        certificates = touched.certificates.len(),
                        "incremental reload"
                    );
                    return tokio::task::spawn_blocking(move || compile_changes(inputs, &table, &touched, &options))
                        .await
                        .map_err(|e| format!("compiling the route table failed: {e}"))?;
                }
            }
            let inputs = source.inputs().await?;
            *self.store_revision.lock().unwrap_or_else(|p| p.into_inner()) = Some(inputs.revision);
            tokio::task::spawn_blocking(move || compile(inputs, previous.as_deref(), &options))
                .await
                .map_err(|e| format!("compiling the route table failed: {e}"))?
        }
        .await;
        match result {
            Ok(table) => {
                let revision = table.revision;
                // The table it replaces is freed on the blocking pool once the last request
                // using it is done (100,000 routes take milliseconds to free).
                let old = self.table.swap(Some(Arc::new(table)));
                tokio::task::spawn_blocking(move || drop(old));
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

    /// Check the store revision and republish when it moves (or when the last attempt failed):
    /// at once when a shared store (PostgreSQL) announces a change, and every
    /// `reload_interval` regardless, so a missed announcement is caught by the next poll. While
    /// the store cannot be read the table in use stays, and the first good read catches up.
    pub async fn watch(self: Arc<Self>, source: Arc<dyn RouteSource>) {
        let mut ticker = tokio::time::interval(self.settings.reload_interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut events = source.changes();
        metrics::store_up(true);
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                event = async {
                    match events.as_mut() {
                        Some(rx) => rx.recv().await,
                        None => std::future::pending().await,
                    }
                } => match event {
                    Some(SourceEvent::Changed(revision)) => tracing::debug!(revision, "store change announced"),
                    Some(SourceEvent::Listening) => tracing::debug!("listening for store change announcements"),
                    Some(SourceEvent::Lost(e)) => {
                        tracing::debug!("store change announcements interrupted ({e}); polling meanwhile");
                        continue;
                    }
                    None => {
                        events = None;
                        continue;
                    }
                },
            }
            let Some(seen) = self.store_answered(source.revision().await) else {
                continue;
            };
            *self.store_revision.lock().unwrap_or_else(|p| p.into_inner()) = Some(seen);
            let loaded = self.current().map(|t| t.revision);
            if loaded != Some(seen) || self.last_error().is_some() && loaded.is_none() {
                let _ = self.reload(source.as_ref()).await;
            }
        }
    }

    /// Handle one request of a client connection (the connection's service): the app credential
    /// the connection showed last is remembered (as the header's bytes, for the table it was
    /// checked against), so a keep-alive connection is not hashed and searched again on every
    /// request. Takes what it needs by value: this future is the service's future itself (a
    /// wrapper awaiting it would hold a second copy of its state).
    pub async fn handle_on(
        self: Arc<Self>,
        req: Request<ClientBody>,
        peer: SocketAddr,
        cache: Arc<AuthCache>,
    ) -> Result<Response<Body>, std::convert::Infallible> {
        let fault = req.body().fault().clone();
        let mut req = req.map(|b| b.boxed());
        let Some(table) = self.current() else {
            return Ok(GatewayError::new(ErrorCode::NotReady, "the route table has not been loaded yet").response());
        };
        let timeout = self.settings.response_header_timeout;
        // One call of `forward_as` below, not one per kind of caller: each would be a future of
        // its own inside this one (they are the largest part of a request's state).
        let access = if table.apps.is_empty() {
            if !(peer.ip().is_loopback() || self.settings.unsafe_open_proxy) {
                return Ok(GatewayError::new(
                    ErrorCode::ProxyAuthRequired,
                    format!("{peer} is not a loopback caller, and no apps exist to authenticate it"),
                )
                .response());
            }
            Access::Trusted
        } else {
            // Taken out here (it is never forwarded): one lookup, not one here and one to remove it.
            let sent = req.headers_mut().remove(http::header::PROXY_AUTHORIZATION);
            match cache.authenticate(&table, sent.as_ref()) {
                Ok((name, access)) => Access::App(name, access),
                Err(e) => {
                    metrics::request("(none)", "none", "-", e.code.as_str(), std::time::Duration::ZERO);
                    return Ok(e.response());
                }
            }
        };
        Ok(forward_as(&table, req, timeout, &access, Some(&fault)).await)
    }
}

/// The app a client connection authenticated as last: the `Proxy-Authorization` value it sent
/// and the table (by address and revision) that accepted it.
#[derive(Default)]
pub struct AuthCache {
    last: Mutex<Option<(http::HeaderValue, usize, i64, crate::model::AppName)>>,
}

impl AuthCache {
    /// `sent`: the request's `Proxy-Authorization` value.
    fn authenticate<'t>(
        &self,
        table: &'t RouteTable,
        sent: Option<&http::HeaderValue>,
    ) -> Result<(&'t str, &'t crate::routes::AppAccess), GatewayError> {
        let key = (table as *const RouteTable as usize, table.revision);
        if let Some(sent) = sent {
            let last = self.last.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((value, at, revision, name)) = last.as_ref() {
                if (*at, *revision) == key && value == sent {
                    if let Some((app, access)) = table.apps.get_key_value(name.as_str()) {
                        return Ok((app.as_str(), access));
                    }
                }
            }
        }
        let (name, access) = authenticate_app(table, sent)?;
        if let Some(sent) = sent {
            let name_typed = crate::model::AppName::stored(name.to_string());
            // A copy, not a clone: a clone shares the buffer hyper read the request head into (8
            // KiB or more), which the cache would keep allocated for the connection's life.
            let copy = http::HeaderValue::from_bytes(sent.as_bytes()).unwrap_or_else(|_| sent.clone());
            *self.last.lock().unwrap_or_else(|p| p.into_inner()) = Some((copy, key.0, key.1, name_typed));
        }
        Ok((name, access))
    }
}

/// Check `Proxy-Authorization: Basic base64(app:credential)` (`sent`) against the table's apps.
fn authenticate_app<'t>(
    table: &'t RouteTable,
    sent: Option<&http::HeaderValue>,
) -> Result<(&'t str, &'t crate::routes::AppAccess), GatewayError> {
    use base64::Engine;
    let missing = |why: &str| GatewayError::new(ErrorCode::ProxyAuthRequired, why.to_string());
    let value = sent
        .ok_or_else(|| missing("this proxy requires an app credential (Proxy-Authorization: Basic)"))?
        .to_str()
        .map_err(|_| missing("the Proxy-Authorization header is not text"))?;
    let encoded = value
        .strip_prefix("Basic ")
        .or_else(|| value.strip_prefix("basic "))
        .ok_or_else(|| missing("Proxy-Authorization must be 'Basic base64(app:credential)'"))?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| missing("Proxy-Authorization is not valid base64"))?;
    let (name, credential) =
        decoded.split_once(':').ok_or_else(|| missing("Proxy-Authorization must hold app:credential"))?;
    let hash = crate::model::secret_hash(credential);
    // Compare with every app's hash so the time taken does not depend on which name was sent.
    let mut found = None;
    for (app, access) in &table.apps {
        if crate::model::hashes_equal(&access.hash, &hash) && app == name {
            found = Some((app.as_str(), access));
        }
    }
    found.ok_or_else(|| missing(&format!("the credential of app '{name}' is not valid")))
}

/// The store as the reload task last found it.
struct StoreStatus {
    reachable: bool,
    error: Option<String>,
    /// When `reachable` last changed.
    since: Instant,
}

/// Accept applications' connections until `shutdown` resolves, then let in-flight requests
/// finish (bounded by the grace period). Each connection is admitted and guarded (see `guard`).
///
/// The listener is served by one thread per core (`upstream::workers`), each with a
/// single-threaded runtime of its own. A connection's requests, their partner connections and
/// the pools those stay in live on one worker: a request never waits for another core and no task
/// moves between cores, which is most of what a multi-threaded runtime costs a proxy. Whichever
/// worker accepts a connection hands it to the one [`pick`] names: light load stays on the first
/// worker (one pool per partner), a burst is spread over the cores. When no thread can be
/// started the listener is served on the caller's runtime instead.
pub async fn serve_proxy(
    gateway: Arc<Gateway>,
    listener: TcpListener,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let admission = Admission::new(gateway.settings.clients.clone(), "proxy");
    let listener = match listener.into_std() {
        Ok(l) => l,
        Err(e) => {
            tracing::error!("the proxy listener cannot be served: {e}");
            return;
        }
    };
    let count = crate::upstream::workers::count();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut inboxes = Vec::new();
    let mut receivers = Vec::new();
    for _ in 0..count {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        inboxes.push(tx);
        receivers.push(rx);
    }
    let shared = Arc::new(Workers { inboxes, load: (0..count).map(|_| AtomicUsize::new(0)).collect() });
    let mut running = Vec::new();
    for (index, inbox) in receivers.into_iter().enumerate() {
        let worker = Worker { index, shared: shared.clone(), inbox };
        match start_worker(worker, &listener, gateway.clone(), admission.clone(), stopped.clone()) {
            Ok(done) => running.push(done),
            Err(e) => tracing::warn!("proxy worker {} could not be started: {e}", index + 1),
        }
    }
    if running.is_empty() {
        let listener = match TcpListener::from_std(listener) {
            Ok(l) => l,
            Err(e) => {
                tracing::error!("the proxy listener cannot be served: {e}");
                return;
            }
        };
        let (_, inbox) = tokio::sync::mpsc::unbounded_channel();
        let alone = Arc::new(Workers { inboxes: Vec::new(), load: vec![AtomicUsize::new(0)] });
        let worker = Worker { index: 0, shared: alone, inbox };
        return accept_loop(gateway, listener, worker, admission, shutdown).await;
    }
    drop(listener);
    shutdown.await;
    let _ = stop.send(true);
    for done in running {
        let _ = done.await;
    }
}

/// A connection handed from the worker that accepted it to the one that serves it.
type Handoff = (std::net::TcpStream, SocketAddr, guard::Admitted);

/// What the proxy workers share: each one's inbox and how many connections each serves.
struct Workers {
    inboxes: Vec<tokio::sync::mpsc::UnboundedSender<Handoff>>,
    load: Vec<AtomicUsize>,
}

/// One proxy worker: its number (0-based), the shared part, and its inbox.
struct Worker {
    index: usize,
    shared: Arc<Workers>,
    inbox: tokio::sync::mpsc::UnboundedReceiver<Handoff>,
}

impl Worker {
    /// The worker that should serve the next connection, this one having accepted it (see
    /// [`pick`]).
    fn pick(&self) -> usize {
        pick(&self.shared.load, self.index)
    }

    /// Send an accepted connection (already counted for worker `to`) to worker `to`; when that
    /// fails (the worker has ended: shutting down) the connection is closed and uncounted.
    fn hand_over(&self, to: usize, stream: TcpStream, peer: SocketAddr, admitted: guard::Admitted) {
        let sent = match stream.into_std() {
            Ok(std) => self.shared.inboxes[to].send((std, peer, admitted)).is_ok(),
            Err(e) => {
                tracing::debug!(%peer, "connection lost while handed to another worker: {e}");
                false
            }
        };
        if !sent {
            self.shared.load[to].fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// The worker to serve a connection worker `accepted` accepted. Under light load (a worker
/// serves nothing) the lowest-numbered worker serving at most one connection more than the least
/// loaded: every connection goes to the first worker, so an application calling one partner now
/// and then is served by one pool (one partner connection, its TLS session reused) whichever
/// worker accepted. Under load (every worker serves some) the worker that accepted keeps it
/// when it serves at most one more than the least loaded, else that rule again: the connections
/// stay spread, no worker serving two more than another, and are not handed over for nothing.
/// A hand-over costs two system calls (the socket leaves one event loop for another) and a
/// wake-up of the other worker's thread; with a new connection per request, the first rule
/// alone handed a third of them over.
fn pick(loads: &[AtomicUsize], accepted: usize) -> usize {
    let load = |i: usize| loads[i].load(Ordering::Relaxed);
    let least = (0..loads.len()).map(load).min().unwrap_or(0);
    if least > 0 && accepted < loads.len() && load(accepted) <= least + 1 {
        return accepted;
    }
    (0..loads.len()).find(|&i| load(i) <= least + 1).unwrap_or(0)
}

/// Start proxy worker `worker` on a thread of its own; the receiver resolves when it has finished.
fn start_worker(
    worker: Worker,
    listener: &std::net::TcpListener,
    gateway: Arc<Gateway>,
    admission: Admission,
    mut stopped: tokio::sync::watch::Receiver<bool>,
) -> std::io::Result<tokio::sync::oneshot::Receiver<()>> {
    let listener = listener.try_clone()?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let (done, finished) = tokio::sync::oneshot::channel();
    let n = worker.index + 1;
    std::thread::Builder::new().name(format!("certgate-proxy-{n}")).spawn(move || {
        crate::upstream::workers::enter(n);
        runtime.block_on(async move {
            match TcpListener::from_std(listener) {
                Ok(listener) => {
                    accept_loop(gateway, listener, worker, admission, async move {
                        let _ = stopped.wait_for(|v| *v).await;
                    })
                    .await
                }
                Err(e) => tracing::error!("proxy worker {n} cannot serve the listener: {e}"),
            }
        });
        let _ = done.send(());
    })?;
    Ok(finished)
}

/// One worker's loop (see [`serve_proxy`]): accept, hand off or serve, until `shutdown`; then its
/// connections' graceful end.
async fn accept_loop(
    gateway: Arc<Gateway>,
    listener: TcpListener,
    mut worker: Worker,
    admission: Admission,
    shutdown: impl std::future::Future<Output = ()>,
) {
    // Each connection's watchdog holds a receiver: the proxy's shutdown reaches every
    // connection through it, and the sender learns when the last connection has ended.
    let (stop, stopping) = tokio::sync::watch::channel(false);
    let limits = gateway.settings.clients.clone();
    let sessions = Arc::new(session::Sessions::new(&limits));
    tokio::pin!(shutdown);
    loop {
        let (stream, peer, admitted) = tokio::select! {
            (stream, peer) = accept(&listener) => {
                let admitted = match admission.admit(peer) {
                    Ok(a) => a,
                    Err(e) => {
                        admission.refuse(stream, peer, e);
                        continue;
                    }
                };
                let to = worker.pick();
                // Counted at once, so the next accept (here or elsewhere) sees it.
                worker.shared.load[to].fetch_add(1, Ordering::Relaxed);
                if to != worker.index {
                    worker.hand_over(to, stream, peer, admitted);
                    continue;
                }
                (stream, peer, admitted)
            }
            Some((std, peer, admitted)) = worker.inbox.recv() => match TcpStream::from_std(std) {
                Ok(stream) => (stream, peer, admitted),
                Err(e) => {
                    worker.shared.load[worker.index].fetch_sub(1, Ordering::Relaxed);
                    tracing::debug!(%peer, "a handed-over connection cannot be served: {e}");
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let gw = gateway.clone();
        let cache = Arc::new(AuthCache::default());
        let service =
            hyper::service::service_fn(move |req: Request<ClientBody>| gw.clone().handle_on(req, peer, cache.clone()));
        let guarded = guard(stream, peer, service, &limits, true, "proxy").in_sessions(stopping.clone());
        let served = Served { shared: worker.shared.clone(), index: worker.index, _admitted: admitted };
        tokio::spawn(serve_guarded(guarded, sessions.clone(), peer, served));
    }
    drop(stopping);
    drop(listener);
    // Connections handed over but not yet served are closed.
    worker.inbox.close();
    while let Ok((_, _, admitted)) = worker.inbox.try_recv() {
        worker.shared.load[worker.index].fetch_sub(1, Ordering::Relaxed);
        drop(admitted);
    }
    let grace = gateway.settings.shutdown_grace;
    let _ = stop.send(true);
    if tokio::time::timeout(grace, stop.closed()).await.is_err() {
        tracing::warn!("in-flight requests did not finish within {} s", grace.as_secs());
    }
}

/// A client connection's place: in its worker's count and in the admission limits, given back
/// when the connection's task ends (however it ends).
struct Served {
    shared: Arc<Workers>,
    index: usize,
    _admitted: guard::Admitted,
}

impl Drop for Served {
    fn drop(&mut self) {
        self.shared.load[self.index].fetch_sub(1, Ordering::Relaxed);
    }
}

/// One client connection's task, to its end.
async fn serve_guarded<S, B>(
    guarded: guard::Guard<S>,
    sessions: Arc<session::Sessions>,
    peer: SocketAddr,
    served: Served,
) where
    S: hyper::service::Service<Request<ClientBody>, Response = Response<B>> + Unpin + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<crate::upstream::BoxError>,
    B: hyper::body::Body + Unpin + Send + 'static,
    B::Data: Send,
    B::Error: Into<crate::upstream::BoxError>,
{
    // Boxed: the task then holds a pointer, not a second copy of the connection's state.
    if let Some(Err(e)) = Box::pin(session::serve(guarded, sessions)).await {
        tracing::debug!(%peer, "connection ended: {e}");
    }
    drop(served);
}

/// The next connection; a failed accept (e.g. out of file descriptors) is logged and retried
/// after a short pause instead of ending the listener.
pub async fn accept(listener: &TcpListener) -> (tokio::net::TcpStream, SocketAddr) {
    loop {
        match listener.accept().await {
            Ok(a) => return a,
            Err(e) => {
                tracing::warn!(listener = %local_addr(listener), "accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// The address a listener really bound (for messages when port 0 was asked for).
pub fn local_addr(listener: &TcpListener) -> String {
    listener.local_addr().map(|a: SocketAddr| a.to_string()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_fill_the_first_worker_then_spread() {
        let load = |v: &[usize]| v.iter().map(|&n| AtomicUsize::new(n)).collect::<Vec<_>>();
        // Light load: the first worker, whichever accepted.
        assert_eq!(pick(&load(&[0, 0]), 1), 0);
        assert_eq!(pick(&load(&[0, 1]), 1), 0);
        assert_eq!(pick(&load(&[1, 0]), 1), 0, "one more than the least is within the tolerance");
        assert_eq!(pick(&load(&[2, 0]), 0), 1);
        assert_eq!(pick(&load(&[7]), 0), 0);
        // Under load: the worker that accepted, unless it serves two more than the least.
        assert_eq!(pick(&load(&[4, 4, 4]), 2), 2);
        assert_eq!(pick(&load(&[4, 5]), 1), 1);
        assert_eq!(pick(&load(&[4, 6]), 1), 0);
        assert_eq!(pick(&load(&[5, 9, 3]), 1), 2);
        assert_eq!(pick(&load(&[5, 9, 3]), 0), 2);
        assert_eq!(pick(&load(&[4, 9, 3]), 0), 0);
    }
}
