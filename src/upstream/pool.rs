//! One proxy worker's connections to the partners of one route, over hyper's connection-level
//! client (`hyper::client::conn`): an HTTP/1.1 connection serves one request at a time and comes
//! back idle when its response body has been read to the end; an HTTP/2 connection (the partner
//! chose `h2` by ALPN) is shared by every request to its authority.
//!
//! Why not hyper-util's pooled client: it spawns a task per HTTP/1 response to hand the
//! connection back, starts a connection for every request that finds no idle one
//! and finishes it in a task of its own when an idle one served the request first, and boxes
//! every request future. Here a request that finds no idle connection opens one itself, in its
//! own task, and waits for it; while [`MAX_CONNECTING`] are being opened it waits for one of
//! those or for a connection to come back, whichever is first. Dropping the request (the
//! application left, or its time ran out) drops the connection being opened.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::uri::Authority;
use http::{HeaderValue, Request, Response, Uri};
use hyper::body::{Frame, Incoming, SizeHint};
use hyper::client::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioIo};

use super::h1;
use super::{Body, BoxError, Connector, UpstreamIo};

/// The most connections one route opens at once. Beyond this many, a request waits for a
/// connection to be opened or to come back idle: against a partner slower to handshake than
/// requests arrive, one connection per waiting request grew to thousands of half-open
/// connections (500 busy clients: 12,000 sockets, 200 MB).
pub const MAX_CONNECTING: usize = 32;

/// How long a connection beyond `max_idle_per_host` may stay idle before it is closed (and how
/// often a pool's reaper looks).
const TRIM_AFTER: Duration = Duration::from_secs(1);

/// A route's connections on one proxy worker.
pub(super) struct Pool {
    connector: Connector,
    /// HTTP/1.1 connections not in use, the most recently returned last.
    idle: Mutex<Vec<Idle>>,
    /// HTTP/2 connections, one per authority, shared by all requests.
    shared: Mutex<Vec<Shared>>,
    /// Told when a connection comes back idle (a request waiting for a permit to open one takes it).
    returned: tokio::sync::Notify,
    /// A task drops connections idle longer than the idle timeout; set while it runs.
    reaping: AtomicBool,
    /// The last connection opened chose HTTP/2: requests that find none to share open one at a
    /// time (the others then share it) instead of one each.
    speaks_h2: AtomicBool,
    opening_h2: tokio::sync::Mutex<()>,
    h2: http2::Builder<TokioExecutor>,
}

struct Idle {
    authority: Authority,
    conn: h1::Conn,
    /// The `Host` header of its requests, made once per connection.
    host: HeaderValue,
    since: Instant,
}

struct Shared {
    authority: Authority,
    send: http2::SendRequest<Body>,
    used: Instant,
}

enum Sender {
    H1(h1::Conn, HeaderValue),
    H2(http2::SendRequest<Body>),
}

impl Pool {
    pub(super) fn new(connector: Connector) -> Arc<Pool> {
        Arc::new(Pool {
            connector,
            idle: Mutex::new(Vec::new()),
            shared: Mutex::new(Vec::new()),
            returned: tokio::sync::Notify::new(),
            reaping: AtomicBool::new(false),
            speaks_h2: AtomicBool::new(false),
            opening_h2: tokio::sync::Mutex::new(()),
            h2: http2::Builder::new(TokioExecutor::new()),
        })
    }

    /// Send `req` (an absolute `https://` URI, no `Host` header) and wait for the response head.
    /// A request that could not be written on a reused connection (the partner had closed it) is
    /// sent again on another.
    pub(super) async fn send(self: &Arc<Self>, mut req: Request<Body>) -> Result<Response<ResponseBody>, BoxError> {
        let uri = req.uri().clone();
        let authority = uri.authority().cloned().ok_or("the partner URL has no host")?;
        loop {
            let (sender, reused) = self.checkout(&authority, &uri).await?;
            let unsent = match sender {
                Sender::H2(mut send) => match send.try_send_request(req).await {
                    Ok(resp) => return Ok(resp.map(|body| ResponseBody { inner: Inner::H2(body) })),
                    Err(mut e) => match e.take_message() {
                        Some(unsent) if reused => {
                            // Closed under us: nobody else should share it either.
                            self.forget_shared(&authority);
                            unsent
                        }
                        _ => return Err(Box::new(e.into_error())),
                    },
                },
                Sender::H1(conn, host) => {
                    let max_head = self.connector.settings.max_response_header_bytes;
                    let own_host = req.headers_mut().remove(http::header::HOST);
                    match h1::send(conn, req, own_host.as_ref().unwrap_or(&host), max_head, reused).await {
                        Ok((answer, conn)) => {
                            let back = Back { pool: self.clone(), authority, host };
                            return Ok(Response::from_parts(answer.parts, ResponseBody::h1(answer.body, conn, back)));
                        }
                        Err(h1::Failed { unsent: Some(unsent), .. }) if reused => unsent,
                        Err(failed) => return Err(Box::new(failed.error)),
                    }
                }
            };
            // As it came: the next connection may be HTTP/2 (a partner name behind which some
            // servers offer h2 and some do not), where the authority is not a `Host` header.
            req = unsent;
            *req.uri_mut() = uri.clone();
            req.headers_mut().remove(http::header::HOST);
        }
    }

    /// A connection to `authority` ready for a request, and whether it served one before.
    async fn checkout(self: &Arc<Self>, authority: &Authority, uri: &Uri) -> Result<(Sender, bool), BoxError> {
        let mut one_at_a_time = None;
        loop {
            if let Some(sender) = self.take_ready(authority) {
                return Ok((sender, true));
            }
            let sharing = self.connector.settings.max_idle_per_host > 0;
            let one_at_a_time_now = sharing && self.speaks_h2.load(Ordering::Relaxed);
            if one_at_a_time.is_none() && one_at_a_time_now {
                // Wait while another request opens the connection to share, then look again.
                one_at_a_time = Some(self.opening_h2.lock().await);
                continue;
            }
            if !one_at_a_time_now {
                // The request before failed to open one: the rest try at once, each its own.
                one_at_a_time = None;
            }
            let connecting = &self.connector.route.connecting;
            let permit = match connecting.try_acquire() {
                Ok(permit) => permit,
                Err(_) => {
                    let returned = self.returned.notified();
                    tokio::select! {
                        permit = connecting.acquire() => permit?,
                        () = returned => continue,
                    }
                }
            };
            // Boxed: the connect and handshake futures are most of this one's size, and a request
            // that finds a connection (nearly every one, kept alive) should not carry them (nor
            // copy them at every level above).
            let opened = Box::pin(self.open(authority, uri, permit)).await;
            // A failure ends the one-at-a-time opening: requests waiting behind this one must not
            // each wait out a connect timeout in turn.
            self.speaks_h2.store(matches!(opened, Ok(Sender::H2(_))), Ordering::Relaxed);
            return opened.map(|sender| (sender, false));
        }
    }

    /// A new connection to `authority`: TCP, TLS (the connect permit is held until here), HTTP.
    async fn open(
        self: &Arc<Self>,
        authority: &Authority,
        uri: &Uri,
        permit: tokio::sync::SemaphorePermit<'_>,
    ) -> Result<Sender, BoxError> {
        let io = self.connector.open(uri).await?;
        drop(permit);
        self.handshake(authority, io).await
    }

    /// Take an idle HTTP/1.1 connection that is ready, or share the HTTP/2 one; connections
    /// found closed or expired are dropped on the way.
    fn take_ready(&self, authority: &Authority) -> Option<Sender> {
        let idle_timeout = self.connector.settings.idle_timeout;
        {
            let mut shared = self.shared.lock().unwrap_or_else(|p| p.into_inner());
            shared.retain(|s| !s.send.is_closed());
            if let Some(s) = shared.iter_mut().find(|s| s.authority == *authority) {
                s.used = Instant::now();
                return Some(Sender::H2(s.send.clone()));
            }
        }
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        let mut i = idle.len();
        while i > 0 {
            i -= 1;
            let entry = &mut idle[i];
            if entry.since.elapsed() > idle_timeout {
                idle.swap_remove(i);
                continue;
            }
            if entry.authority == *authority {
                if !entry.conn.is_open() {
                    idle.swap_remove(i);
                    continue;
                }
                let Idle { conn, host, .. } = idle.swap_remove(i);
                return Some(Sender::H1(conn, host));
            }
        }
        None
    }

    fn forget_shared(&self, authority: &Authority) {
        self.shared.lock().unwrap_or_else(|p| p.into_inner()).retain(|s| s.authority != *authority);
    }

    /// Start HTTP on a fresh TLS connection: HTTP/2 when the partner chose it, else HTTP/1.1.
    async fn handshake(self: &Arc<Self>, authority: &Authority, io: UpstreamIo) -> Result<Sender, BoxError> {
        if io.h2 {
            let (mut send, conn) = self.h2.handshake(TokioIo::new(io)).await?;
            drive(conn);
            send.ready().await?;
            if self.connector.settings.max_idle_per_host == 0 {
                // Nothing is kept: not even shared.
                return Ok(Sender::H2(send));
            }
            let mut shared = self.shared.lock().unwrap_or_else(|p| p.into_inner());
            shared.retain(|s| !s.send.is_closed() && s.authority != *authority);
            shared.push(Shared { authority: authority.clone(), send: send.clone(), used: Instant::now() });
            drop(shared);
            self.reap_later();
            Ok(Sender::H2(send))
        } else {
            Ok(Sender::H1(h1::Conn::new(io), host_header(authority)?))
        }
    }

    /// An HTTP/1.1 connection whose response was read to the end comes back.
    fn put(self: &Arc<Self>, authority: Authority, mut conn: h1::Conn, host: HeaderValue) {
        conn.idle();
        if self.connector.settings.max_idle_per_host == 0 {
            // Nothing is kept.
            return;
        }
        // Kept even beyond `max_idle_per_host`: under a load that comes in waves the connections
        // of one wave serve the next within milliseconds (closing them at once opened 10,800
        // connections in 8 s in the 1,000-connection benchmark). The reaper closes what stays
        // idle beyond the limit for `TRIM_AFTER`.
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        idle.push(Idle { authority, conn, host, since: Instant::now() });
        drop(idle);
        self.returned.notify_one();
        self.reap_later();
    }

    /// Make sure a task drops what stays idle past the idle timeout (one per pool while it holds
    /// connections; it ends when the pool is empty or gone).
    fn reap_later(self: &Arc<Self>) {
        if self.reaping.swap(true, Ordering::AcqRel) {
            return;
        }
        let pool: Weak<Pool> = Arc::downgrade(self);
        let timeout = self.connector.settings.idle_timeout;
        let every = (timeout / 2).clamp(Duration::from_millis(100), TRIM_AFTER);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let Some(pool) = pool.upgrade() else { return };
                if pool.reap(timeout) {
                    return;
                }
            }
        });
    }

    /// Drop connections idle longer than `timeout`; true (and the reaper flag cleared) when
    /// nothing is left to watch.
    fn reap(&self, timeout: Duration) -> bool {
        let mut shared = self.shared.lock().unwrap_or_else(|p| p.into_inner());
        shared.retain(|s| !s.send.is_closed() && s.used.elapsed() <= timeout);
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        idle.retain_mut(|i| i.since.elapsed() <= timeout && i.conn.is_open());
        let most = self.connector.settings.max_idle_per_host;
        if idle.len() > most {
            // Per partner, the `most` most recently returned stay; older ones beyond them close
            // once idle for `TRIM_AFTER`.
            idle.sort_by_key(|i| i.since);
            let mut newer: Vec<(Authority, usize)> = Vec::new();
            let mut keep = vec![true; idle.len()];
            for (n, i) in idle.iter().enumerate().rev() {
                let count = match newer.iter_mut().find(|(a, _)| *a == i.authority) {
                    Some((_, c)) => c,
                    None => {
                        newer.push((i.authority.clone(), 0));
                        &mut newer.last_mut().expect("just pushed").1
                    }
                };
                *count += 1;
                keep[n] = *count <= most || i.since.elapsed() < TRIM_AFTER;
            }
            let mut keep = keep.into_iter();
            idle.retain(|_| keep.next().unwrap_or(true));
        }
        if idle.is_empty() && shared.is_empty() {
            // Cleared under both locks: a connection put now starts a new reaper.
            self.reaping.store(false, Ordering::Release);
            return true;
        }
        false
    }
}

/// Run a partner connection's I/O in a task of its own until it ends.
fn drive<C>(conn: C)
where
    C: std::future::Future<Output = hyper::Result<()>> + Send + 'static,
{
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!("partner connection ended: {e}");
        }
    });
}

/// `Host` for an HTTP/1.1 request: the host, with the port unless it is 443.
fn host_header(authority: &Authority) -> Result<HeaderValue, BoxError> {
    let value = match authority.port_u16() {
        Some(443) | None => HeaderValue::from_str(authority.host()),
        Some(port) => HeaderValue::from_maybe_shared(Bytes::from(format!("{}:{port}", authority.host()))),
    };
    Ok(value?)
}

/// Where an HTTP/1.1 connection goes back once its response has been read to the end.
struct Back {
    pool: Arc<Pool>,
    authority: Authority,
    host: HeaderValue,
}

/// A partner's response body. Read to its end, it hands its HTTP/1.1 connection back to the
/// pool; dropped before (the application left), the connection closes with it.
pub struct ResponseBody {
    inner: Inner,
}

enum Inner {
    H2(Incoming),
    H1 { reading: h1::Reading, conn: Option<h1::Conn>, back: Option<Back> },
}

impl ResponseBody {
    fn h1(reading: h1::Reading, conn: h1::Conn, back: Back) -> Self {
        let mut body = ResponseBody { inner: Inner::H1 { reading, conn: Some(conn), back: Some(back) } };
        // No body (HEAD, 204, 304, `content-length: 0`): nobody may poll it.
        if hyper::body::Body::is_end_stream(&body) {
            body.finish();
        }
        body
    }

    /// The body was read to its end: the connection goes back if it can serve another request.
    fn finish(&mut self) {
        if let Inner::H1 { reading, conn, back } = &mut self.inner {
            if let (Some(c), Some(Back { pool, authority, host })) = (conn.take(), back.take()) {
                if reading.reusable(&c) {
                    pool.put(authority, c, host);
                }
            }
        }
    }
}

impl hyper::body::Body for ResponseBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        match &mut this.inner {
            Inner::H2(incoming) => std::pin::Pin::new(incoming).poll_frame(cx).map_err(|e| Box::new(e) as BoxError),
            Inner::H1 { reading, conn, .. } => {
                let Some(c) = conn.as_mut() else { return Poll::Ready(None) };
                let polled = reading.poll_data(c, cx);
                let ended = match &polled {
                    Poll::Ready(None) => true,
                    Poll::Ready(Some(Ok(_))) => reading.is_done(),
                    Poll::Ready(Some(Err(_))) => {
                        *conn = None;
                        false
                    }
                    Poll::Pending => false,
                };
                if ended {
                    this.finish();
                }
                polled.map_err(|e| Box::new(e) as BoxError)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.inner {
            Inner::H2(incoming) => incoming.is_end_stream(),
            Inner::H1 { reading, conn, .. } => conn.is_none() || reading.is_done(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            Inner::H2(incoming) => incoming.size_hint(),
            Inner::H1 { reading, .. } => reading.size_hint(),
        }
    }
}
