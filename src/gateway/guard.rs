//! Slow and hostile applications. Every accepted connection (proxy and admin listener) passes
//! [`Admission`] (`max_connections` and a per-client-address limit; a connection beyond either
//! gets a fast `503 too-many-connections` and is closed) and then runs under [`guard`], which cuts
//! it off:
//!
//! - a request head that is not complete within `header_read_timeout` gets `408 request-timeout`;
//! - a request head larger than `max_header_bytes` gets `431 headers-too-large`;
//! - a request head hyper would refuse (checked as hyper reads it, see `head.rs`) gets
//!   `400 bad-request` (or `431` for more than 100 header lines) instead of hyper's bare status;
//! - a connection that opens and sends nothing for `header_read_timeout`, or stays idle between
//!   requests (HTTP/1.1 keep-alive, HTTP/2) for `keep_alive_timeout`, is closed;
//! - a request body that pauses longer than `body_read_timeout` ends the request with
//!   `408 request-timeout`, and a body that cannot be read (an absurd chunk size, a connection
//!   that drops mid-body) with `400 bad-request`: the application's fault is never answered as
//!   the partner's (`502`). [`ClientFault`] carries that verdict from the body to the proxy.
//!
//! How: the socket is wrapped in an I/O type that sees every byte read; a request counts as in
//! flight from the moment hyper hands it to the service until its response body is dropped. With
//! nothing in flight, bytes read are a request head (timed and counted until its blank line);
//! a watchdog, driven in the connection's own task (see [`run`]), sleeps until the next
//! deadline (and wakes at least once per header-read or keep-alive timeout to look again).
//! hyper's own `header_read_timeout` closes the connection without an answer, and its
//! oversized-head answer is a bare 431: this module gives both the `Certgate-Error` code and
//! JSON body. HTTP/2 (prior knowledge, `PRI *`) must start its first request within the
//! header-read timeout and is then timed for idleness: its frames are not parsed here.
//!
//! The watchdog also tells the proxy's session loop (`session.rs`) when an idle HTTP/1
//! connection may let hyper's state go ([`RELEASE_AFTER`]) and when the proxy stops; it signals
//! through an atomic the loop reads when polled ([`Signals`]).

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::mem::MaybeUninit;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use hyper::body::{Body as HttpBody, Frame, Incoming, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use super::error::GatewayError;
use super::head::{self, Head};
use crate::model::ErrorCode;
use crate::upstream::BoxError;

/// The limits on applications' connections, from the `[gateway]` config section.
#[derive(Clone, Debug)]
pub struct ClientLimits {
    /// Open connections in all (each listener counts its own).
    pub max_connections: usize,
    /// Open connections from one client IP address.
    pub max_connections_per_client: usize,
    /// From the first byte of a request head (or from accepting the connection) to its end.
    pub header_read_timeout: Duration,
    /// An idle connection between requests is closed after this long.
    pub keep_alive_timeout: Duration,
    /// The longest pause allowed while a request body arrives.
    pub body_read_timeout: Duration,
    /// The largest request head (request line and headers).
    pub max_header_bytes: usize,
}

impl Default for ClientLimits {
    fn default() -> Self {
        ClientLimits {
            max_connections: 4096,
            max_connections_per_client: 1024,
            header_read_timeout: Duration::from_secs(10),
            keep_alive_timeout: Duration::from_secs(60),
            body_read_timeout: Duration::from_secs(30),
            max_header_bytes: 64 * 1024,
        }
    }
}

impl ClientLimits {
    /// hyper's read buffer: larger than our head limit, so that `guard` answers an oversized head
    /// (with its code) before hyper does (with a bare 431).
    pub fn hyper_buffer(&self) -> usize {
        (self.max_header_bytes.saturating_mul(2)).max(16 * 1024) + 16 * 1024
    }

    /// The server builder for applications' connections (proxy and admin listener): HTTP/1 with
    /// `hyper_buffer`, HTTP/2 with the same header limit as HTTP/1 (hyper's default is 16 KiB)
    /// and at most [`MAX_H2_STREAMS`] concurrent streams per connection.
    pub fn server_builder(&self) -> hyper_util::server::conn::auto::Builder<hyper_util::rt::TokioExecutor> {
        let mut builder = hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
        builder.http1().max_buf_size(self.hyper_buffer()).keep_alive(true);
        builder
            .http2()
            .max_header_list_size(u32::try_from(self.max_header_bytes).unwrap_or(u32::MAX))
            .max_concurrent_streams(MAX_H2_STREAMS);
        builder
    }
}

/// Concurrent HTTP/2 streams one application connection may open (hyper's default is 200).
pub const MAX_H2_STREAMS: u32 = 100;

/// How many refused connections may be answered at once; beyond that they are closed at once.
const ANSWERING: usize = 64;
/// How long a refused connection is given to take its 503 and let go.
const REFUSAL_LINGER: Duration = Duration::from_millis(500);
/// After the watchdog cut a connection off, hyper gets this long to end it before it is dropped.
const CUT_GRACE: Duration = Duration::from_secs(1);
/// What a cut-off client may still send after its answer before the connection closes.
const DRAIN_LIMIT: usize = 1 << 20;
/// How long an HTTP/1 connection of the proxy stays idle before hyper's state for it (its read
/// and write buffers, 16 KiB or more) is let go; the socket stays open, and the next request on
/// it is served by a new hyper connection (see `session.rs`). The watchdog looks at least this
/// often, so a connection is let go between one and two of these after its last request.
pub(crate) const RELEASE_AFTER: Duration = Duration::from_secs(2);

/// What the watchdog asks of the loop serving a connection's sessions (`Activity::signal`).
pub(crate) const SIGNAL_NONE: u8 = 0;
/// Idle long enough: end the hyper session, keep the socket.
pub(crate) const SIGNAL_RELEASE: u8 = 1;
/// The proxy is stopping: finish what is in flight, then close.
pub(crate) const SIGNAL_STOP: u8 = 2;

/// Admission of new connections: the total and per-address limits.
#[derive(Clone)]
pub struct Admission {
    limits: ClientLimits,
    total: Arc<Semaphore>,
    per_client: Arc<Mutex<HashMap<IpAddr, usize>>>,
    answering: Arc<Semaphore>,
    listener: &'static str,
}

/// An admitted connection's place; dropping it frees the place.
pub struct Admitted {
    _total: OwnedSemaphorePermit,
    ip: IpAddr,
    per_client: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let mut map = self.per_client.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = map.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.ip);
            }
        }
    }
}

impl Admission {
    /// `listener` names the listener in log lines (`proxy`, `admin`).
    pub fn new(limits: ClientLimits, listener: &'static str) -> Self {
        Admission {
            total: Arc::new(Semaphore::new(limits.max_connections.max(1))),
            per_client: Arc::default(),
            answering: Arc::new(Semaphore::new(ANSWERING)),
            limits,
            listener,
        }
    }

    pub fn limits(&self) -> &ClientLimits {
        &self.limits
    }

    /// A place for a connection from `peer`, or why there is none.
    pub fn admit(&self, peer: SocketAddr) -> Result<Admitted, GatewayError> {
        let ip = peer.ip();
        let mut map = self.per_client.lock().unwrap_or_else(|p| p.into_inner());
        let open = map.get(&ip).copied().unwrap_or(0);
        if open >= self.limits.max_connections_per_client {
            return Err(GatewayError::new(
                ErrorCode::TooManyConnections,
                format!(
                    "{ip} already has {open} connections open to the {} listener (max_connections_per_client = {})",
                    self.listener, self.limits.max_connections_per_client
                ),
            ));
        }
        let permit = self.total.clone().try_acquire_owned().map_err(|_| {
            GatewayError::new(
                ErrorCode::TooManyConnections,
                format!(
                    "the {} listener has {} connections open (max_connections)",
                    self.listener, self.limits.max_connections
                ),
            )
        })?;
        map.insert(ip, open + 1);
        Ok(Admitted { _total: permit, ip, per_client: self.per_client.clone() })
    }

    /// Answer a refused connection with `error` (plain HTTP/1.1, `Connection: close`) without
    /// waiting for its request, then close it. At most `ANSWERING` at once; beyond that the
    /// connection is closed without an answer.
    pub fn refuse(&self, mut stream: TcpStream, peer: SocketAddr, error: GatewayError) {
        tracing::warn!(%peer, listener = self.listener, code = error.code.as_str(), "connection refused: {}", error.message);
        crate::telemetry::connection_cut(self.listener, error.code.as_str());
        let Ok(permit) = self.answering.clone().try_acquire_owned() else {
            return;
        };
        let answer = error.http1_bytes();
        tokio::spawn(async move {
            let _ = tokio::time::timeout(REFUSAL_LINGER, async {
                stream.write_all(&answer).await?;
                stream.shutdown().await?;
                // Read what the client sends meanwhile, so closing does not reset the
                // connection before it has read the answer.
                let mut sink = [0u8; 4096];
                let mut total = 0usize;
                while total < 256 * 1024 {
                    match tokio::io::AsyncReadExt::read(&mut stream, &mut sink).await? {
                        0 => break,
                        n => total += n,
                    }
                }
                Ok::<_, io::Error>(())
            })
            .await;
            drop(permit);
        });
    }
}

/// Why the watchdog ended a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cut {
    /// Opened and sent nothing within the header-read timeout.
    Silent,
    /// Idle between requests for the keep-alive timeout.
    Idle,
    /// A request head that did not end in time: 408.
    HeadTimeout,
    /// A request head over `max_header_bytes`: 431.
    HeadTooLarge,
    /// A request head hyper would refuse (see `head.rs`): the answer is the connection's
    /// `refusal`, with this code.
    HeadRefused(ErrorCode),
}

impl Cut {
    fn label(self) -> &'static str {
        match self {
            Cut::Silent => "silent",
            Cut::Idle => "idle",
            Cut::HeadTimeout => ErrorCode::RequestTimeout.as_str(),
            Cut::HeadTooLarge => ErrorCode::HeadersTooLarge.as_str(),
            Cut::HeadRefused(code) => code.as_str(),
        }
    }
}

/// What the connection is doing, shared by its I/O, its service and its watchdog.
struct State {
    accepted: Instant,
    in_flight: usize,
    served: u64,
    /// When the first byte of the request head now being read arrived.
    head_started: Option<Instant>,
    /// When the last request in flight ended.
    idle_since: Instant,
    h2: bool,
    cut: Option<Cut>,
    /// hyper's read, to wake when the watchdog cuts the connection off.
    reader: Option<Waker>,
    /// An HTTP/1 session runs that may be let go once idle (proxy connections only; set by the
    /// session loop, cleared by the watchdog when it asks for the release).
    releasable: bool,
    /// The last request's body was dropped before its end (an answer that did not need it: a
    /// partner's early 413, an API refusal). hyper then reads once more to drain it and closes
    /// the connection unless that finished the body, so the next bytes read may be the body's
    /// rest: they are passed on unchecked (the head check would take them for a head and refuse
    /// it) until the next request starts. Bounded still: by the keep-alive timeout, and hyper's
    /// own head limits.
    rest_unread: bool,
}

struct Activity {
    state: Mutex<State>,
    changed: Notify,
    /// `SIGNAL_*`: set by the watchdog, taken by the session loop (one load per poll of it).
    signal: AtomicU8,
    /// The last write to the socket did not complete (hyper holds bytes the client has not
    /// taken): such a connection is not let go while idle.
    write_blocked: AtomicBool,
    /// A request body not read to its end yet is open (HTTP/1: the client may still be sending
    /// it; see `Watched::bytes_to_linger_for`).
    body_open: AtomicBool,
}

impl Activity {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn request_started(self: &Arc<Self>) -> InFlight {
        let mut s = self.lock();
        s.in_flight += 1;
        s.served += 1;
        s.head_started = None;
        s.rest_unread = false;
        InFlight(self.clone())
    }

    /// The next deadline and what happens then; `None` while a request is in flight.
    fn deadline(&self, limits: &ClientLimits) -> Option<(Instant, Cut)> {
        let s = self.lock();
        if s.cut.is_some() || s.in_flight > 0 {
            return None;
        }
        if s.h2 {
            // The first request (its HEADERS frame) is due within the header-read timeout, like
            // an HTTP/1 head; later, only idleness is timed (frames are not parsed here).
            if s.served == 0 {
                return Some((s.accepted + limits.header_read_timeout, Cut::Silent));
            }
            return Some((s.idle_since + limits.keep_alive_timeout, Cut::Idle));
        }
        Some(match s.head_started {
            Some(t) => (t + limits.header_read_timeout, Cut::HeadTimeout),
            None if s.served == 0 => (s.accepted + limits.header_read_timeout, Cut::Silent),
            None => (s.idle_since + limits.keep_alive_timeout, Cut::Idle),
        })
    }

    fn cut(&self, why: Cut) {
        let mut s = self.lock();
        if s.cut.is_none() {
            s.cut = Some(why);
        }
        if let Some(w) = s.reader.take() {
            w.wake();
        }
    }

    /// When an idle HTTP/1 session may be let go (see [`RELEASE_AFTER`]); `None` while it may
    /// not: a request in flight or a head arriving, an answer not yet taken, HTTP/2, a cut.
    fn release_at(&self) -> Option<Instant> {
        let s = self.lock();
        let idle =
            s.releasable && s.cut.is_none() && s.in_flight == 0 && s.head_started.is_none() && !s.h2 && !s.rest_unread;
        (idle && !self.write_blocked.load(Ordering::Relaxed)).then(|| s.idle_since + RELEASE_AFTER)
    }

    /// Ask the session loop to let its idle session go (once: the flag is cleared under the lock).
    fn ask_release(&self) -> bool {
        let mut s = self.lock();
        if !s.releasable {
            return false;
        }
        s.releasable = false;
        self.signal.store(SIGNAL_RELEASE, Ordering::Release);
        true
    }

    /// Sleep until a deadline passes with the connection still in the state that set it.
    ///
    /// The watchdog wakes at the next deadline and at least once per `period` (the shorter of
    /// the header-read and keep-alive timeouts, and [`RELEASE_AFTER`] for a connection served in
    /// sessions), and looks at the state again each time. A request's own changes (a head starting, a
    /// request ending) set a deadline no sooner than one period after the change, so the
    /// watchdog meets it without being told: nothing on a request's path wakes it (`changed` is
    /// for the rare changes: a cut, HTTP/2 learnt). `stop` (the proxy's shutdown) is passed on
    /// to the session loop as [`SIGNAL_STOP`].
    ///
    /// `stop` is only borrowed: the proxy waits for every connection's receiver to be dropped,
    /// which is when the connection has ended.
    async fn watch(&self, limits: &ClientLimits, mut stop: Option<&mut tokio::sync::watch::Receiver<bool>>) -> Cut {
        let mut period = limits.header_read_timeout.min(limits.keep_alive_timeout).max(Duration::from_millis(10));
        if stop.is_some() {
            // Served in sessions (`Guard::in_sessions`): a session may start at any time, and its
            // release is due `RELEASE_AFTER` after its last request.
            period = period.min(RELEASE_AFTER);
        }
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let now = Instant::now();
            let mut wake = match self.deadline(limits) {
                Some((at, why)) if now >= at => return why,
                Some((at, _)) => at.min(now + period),
                None => now + period,
            };
            match self.release_at() {
                Some(at) if now >= at && self.ask_release() => wake_own_task().await,
                Some(at) if now < at => wake = wake.min(at),
                _ => {}
            }
            let stopped = async {
                match stop.as_mut() {
                    Some(rx) => {
                        let _ = rx.wait_for(|stopping| *stopping).await;
                    }
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = tokio::time::sleep_until(wake) => {}
                _ = changed => {}
                () = stopped => {
                    stop = None;
                    self.signal.store(SIGNAL_STOP, Ordering::Release);
                    wake_own_task().await;
                }
            }
        }
    }
}

/// Wake the task this runs in (the connection's: see [`run`]), so that what was just signalled
/// is seen by the session loop on the next poll.
async fn wake_own_task() {
    std::future::poll_fn(|cx| {
        cx.waker().wake_by_ref();
        Poll::Ready(())
    })
    .await
}

/// A request in flight; dropped with its response body (or with the request when it fails).
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        {
            let mut s = self.0.lock();
            s.in_flight -= 1;
            if s.in_flight == 0 {
                s.idle_since = Instant::now();
            }
        }
        // The watchdog is not woken: the keep-alive deadline this sets is at least one of its
        // periods away (see `Activity::watch`).
    }
}

/// The socket as hyper sees it: counts and times request heads, and writes the watchdog's answer.
struct Watched {
    stream: TcpStream,
    activity: Arc<Activity>,
    limits: ClientLimits,
    /// Plain HTTP (answers can be written); false under TLS, where the connection just closes.
    plain: bool,
    read_any: bool,
    head_len: usize,
    head_done: bool,
    last: [u8; 2],
    /// The request head read so far (plain connections only), for `head::check`.
    head_buf: Vec<u8>,
    /// Why `head::check` refused the head, to answer with.
    refusal: Option<GatewayError>,
    /// The answer being written after a cut, and how much of it went out.
    answer: Option<(Vec<u8>, usize)>,
    /// Bytes read and thrown away after the answer (sent, then the write side shut).
    drained: usize,
    shut: bool,
    /// Set once the server closes the connection (see [`LINGER`]).
    lingering: Option<Linger>,
    /// The last write did not complete (mirrored in `Activity::write_blocked` when it changes).
    write_blocked: bool,
}

impl Watched {
    /// Feed bytes of a request head; true once its blank line was seen.
    ///
    /// Line ends are found with `memchr` and only their two bytes before are looked at (a byte
    /// at a time was most of the cost of a head with a few long header lines).
    fn scan_head(&mut self, data: &[u8]) -> bool {
        // The byte `back` places before `data[i]`, from the bytes kept of the last read when
        // `data` does not reach that far.
        let last = self.last;
        let before = |i: usize, back: usize| match i.checked_sub(back) {
            Some(j) => data[j],
            None => last[2 + i - back],
        };
        for i in memchr::memchr_iter(b'\n', data) {
            let one = before(i, 1);
            if one == b'\n' || (one == b'\r' && before(i, 2) == b'\n') {
                self.head_len += i + 1;
                return true;
            }
        }
        self.last = match data {
            [] => self.last,
            [b] => [self.last[1], *b],
            [.., a, b] => [*a, *b],
        };
        self.head_len += data.len();
        false
    }

    /// Add bytes of the head to what was read of it and check it as hyper will read it:
    /// after its first read (hyper parses what it has then) and once it is complete (hyper
    /// parses again only then). `Some`: hyper would refuse it; answer with this instead.
    fn check_head(&mut self, part: &[u8]) -> Option<GatewayError> {
        if !self.plain {
            return None; // TLS records, not a head: hyper reads the decrypted bytes
        }
        let first = self.head_buf.is_empty();
        let checked = if first && self.head_done {
            // The whole head came in one read (the common case): checked where it lies.
            head::check(part)
        } else {
            self.head_buf.extend_from_slice(part);
            if first || self.head_done {
                head::check(&self.head_buf)
            } else {
                Head::Partial
            }
        };
        let refusal = match checked {
            Head::Refused(e) => Some(e),
            Head::Partial | Head::Complete => None,
        };
        if self.head_done {
            // Kept for the next request on this connection (no allocation per request), unless a
            // large head grew it.
            self.head_buf.clear();
            self.head_buf.shrink_to(4096);
        }
        refusal
    }

    fn answer_for(&self, cut: Cut) -> Option<Vec<u8>> {
        if !self.plain {
            return None;
        }
        let error = match cut {
            Cut::Silent | Cut::Idle => return None,
            Cut::HeadTimeout => GatewayError::new(
                ErrorCode::RequestTimeout,
                format!(
                    "the request head did not arrive in full within {} ms (header_read_timeout_ms)",
                    self.limits.header_read_timeout.as_millis()
                ),
            ),
            Cut::HeadRefused(_) => self.refusal.clone()?,
            Cut::HeadTooLarge => GatewayError::new(
                ErrorCode::HeadersTooLarge,
                format!(
                    "the request line and headers are larger than {} bytes (max_header_bytes)",
                    self.limits.max_header_bytes
                ),
            ),
        };
        Some(error.http1_bytes())
    }

    /// After a cut: write the answer (if any), then read and discard what the client still
    /// sends (so that closing does not reset the connection before it read the answer; bounded
    /// by `CUT_GRACE` and `DRAIN_LIMIT`), then report end of stream to hyper.
    fn poll_cut(&mut self, cx: &mut Context<'_>, cut: Cut) -> Poll<io::Result<()>> {
        if self.answer.is_none() {
            self.answer = Some((self.answer_for(cut).unwrap_or_default(), 0));
        }
        let Some((bytes, sent)) = self.answer.as_mut() else { return Poll::Ready(Ok(())) };
        if bytes.is_empty() {
            return Poll::Ready(Ok(()));
        }
        while *sent < bytes.len() {
            match Pin::new(&mut self.stream).poll_write(cx, &bytes[*sent..]) {
                Poll::Ready(Ok(n)) if n > 0 => *sent += n,
                Poll::Ready(_) => return Poll::Ready(Ok(())),
                Poll::Pending => return Poll::Pending,
            }
        }
        if !self.shut {
            match Pin::new(&mut self.stream).poll_shutdown(cx) {
                Poll::Ready(Ok(())) => self.shut = true,
                Poll::Ready(Err(_)) => return Poll::Ready(Ok(())),
                Poll::Pending => return Poll::Pending,
            }
        }
        let mut sink = [0u8; 8192];
        while self.drained < DRAIN_LIMIT {
            let mut buf = ReadBuf::new(&mut sink);
            match Pin::new(&mut self.stream).poll_read(cx, &mut buf) {
                Poll::Ready(Ok(())) if !buf.filled().is_empty() => self.drained += buf.filled().len(),
                Poll::Ready(_) => return Poll::Ready(Ok(())),
                Poll::Pending => return Poll::Pending,
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncRead for Watched {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let cut = this.activity.lock().cut;
        if let Some(cut) = cut {
            return this.poll_cut(cx, cut);
        }
        let before = buf.filled().len();
        match Pin::new(&mut this.stream).poll_read(cx, buf) {
            Poll::Pending => {
                this.activity.lock().reader = Some(cx.waker().clone());
                Poll::Pending
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Ready(Ok(())) => {
                let data = &buf.filled()[before..];
                if data.is_empty() {
                    return Poll::Ready(Ok(()));
                }
                let first = !this.read_any;
                this.read_any = true;
                let mut s = this.activity.lock();
                if first && data.starts_with(b"PRI") {
                    s.h2 = true;
                }
                if s.h2 || s.in_flight > 0 || s.rest_unread {
                    return Poll::Ready(Ok(()));
                }
                if s.head_started.is_none() {
                    // The head's deadline is a header-read timeout away: the watchdog meets it
                    // without being woken (see `Activity::watch`).
                    s.head_started = Some(Instant::now());
                    drop(s);
                    this.head_len = 0;
                    this.head_done = false;
                    this.last = [0, 0];
                    this.head_buf.clear();
                } else {
                    drop(s);
                }
                if !this.head_done {
                    let head_before = this.head_len;
                    this.head_done = this.scan_head(&buf.filled()[before..]);
                    if this.head_len > this.limits.max_header_bytes {
                        buf.set_filled(before);
                        this.activity.cut(Cut::HeadTooLarge);
                        this.activity.changed.notify_one();
                        return this.poll_cut(cx, Cut::HeadTooLarge);
                    }
                    let part = before..before + (this.head_len - head_before);
                    if let Some(refusal) = this.check_head(&buf.filled()[part]) {
                        let cut = Cut::HeadRefused(refusal.code);
                        this.refusal = Some(refusal);
                        buf.set_filled(before);
                        this.activity.cut(cut);
                        this.activity.changed.notify_one();
                        return this.poll_cut(cx, cut);
                    }
                }
                Poll::Ready(Ok(()))
            }
        }
    }
}

impl Watched {
    /// Note whether a write completed; the shared flag is written only when it changes.
    fn wrote<T>(&mut self, polled: Poll<T>) -> Poll<T> {
        let blocked = polled.is_pending();
        if blocked != self.write_blocked {
            self.write_blocked = blocked;
            self.activity.write_blocked.store(blocked, Ordering::Relaxed);
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.stream).poll_write(cx, buf);
        self.wrote(polled)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.stream).poll_write_vectored(cx, bufs);
        self.wrote(polled)
    }
    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }
    /// The end of the connection's sending side, then a lingering close: what the client still
    /// sends is read and dropped until it closes its side, sends nothing for [`LINGER_QUIET`],
    /// [`LINGER`] has passed or [`LINGER_BYTES`] were read. Read past the head check: the bytes
    /// are the rest of a body, not a request.
    ///
    /// An HTTP/1 connection whose last request was read whole, with nothing more waiting to be
    /// read, closes at once (see [`Watched::bytes_to_linger_for`]).
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.answer.is_some() {
            // Cut off: its answer (if any) went out and what followed was drained (`poll_cut`).
            return match this.shut {
                true => Poll::Ready(Ok(())),
                false => Pin::new(&mut this.stream).poll_shutdown(cx),
            };
        }
        // Not zeroed: a read only writes into it (8 KiB zeroed on every close cost more than
        // the read that follows).
        let mut scratch = [MaybeUninit::<u8>::uninit(); 8192];
        let linger = match &mut this.lingering {
            Some(linger) => linger,
            None => {
                let Some(read) = this.bytes_to_linger_for(cx, &mut scratch) else {
                    return Poll::Ready(Ok(()));
                };
                std::task::ready!(Pin::new(&mut this.stream).poll_shutdown(cx))?;
                let quiet = Box::pin(tokio::time::sleep(LINGER_QUIET));
                this.lingering.insert(Linger { quiet, end: Instant::now() + LINGER, read })
            }
        };
        // A few reads per poll, so that a fast sender does not hold the worker's other connections.
        for _ in 0..32 {
            let mut buf = ReadBuf::uninit(&mut scratch);
            match Pin::new(&mut this.stream).poll_read(cx, &mut buf) {
                Poll::Ready(Ok(())) if !buf.filled().is_empty() => {
                    linger.read += buf.filled().len();
                    if linger.read >= LINGER_BYTES {
                        return Poll::Ready(Ok(()));
                    }
                    let quiet_until = Instant::now() + LINGER_QUIET;
                    linger.quiet.as_mut().reset(quiet_until.min(linger.end));
                }
                // The client closed its side (or the connection failed): nothing more to lose.
                Poll::Ready(_) => return Poll::Ready(Ok(())),
                Poll::Pending => return linger.quiet.as_mut().poll(cx).map(Ok),
            }
        }
        if linger.quiet.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Ok(()));
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

impl Watched {
    /// Whether closing needs the lingering: `None` (close now) for an HTTP/1 connection whose
    /// last request body was read to its end (or had none) and that has no byte waiting in the
    /// socket, which one read tells. Closing then sends no reset (the kernel resets a connection
    /// closed with unread bytes), and a client that keeps to the protocol sends nothing after an
    /// answer that closes the connection. That is the common close (`Connection: close` from
    /// the client): one read instead of a `shutdown`, a wake-up for the client's end and its
    /// read. `Some(bytes read and dropped)`: linger. Bytes were waiting, a request body is not
    /// read to its end (still held, or dropped before it: an answer that did not need it, a
    /// partner's early 413; hyper's drain just before the close can leave the socket empty for
    /// a moment while the client is still sending), or the connection is HTTP/2 (its client may
    /// be sending frames as the GOAWAY crosses them).
    fn bytes_to_linger_for(&mut self, cx: &mut Context<'_>, scratch: &mut [MaybeUninit<u8>]) -> Option<usize> {
        if self.activity.body_open.load(Ordering::Relaxed) {
            return Some(0);
        }
        {
            let s = self.activity.lock();
            if s.h2 || s.rest_unread || s.in_flight > 0 {
                return Some(0);
            }
        }
        let mut buf = ReadBuf::uninit(scratch);
        match Pin::new(&mut self.stream).poll_read(cx, &mut buf) {
            Poll::Ready(Ok(())) if !buf.filled().is_empty() => Some(buf.filled().len()),
            // Nothing waiting (closed now, without a reset), or the client closed (or failed).
            Poll::Pending | Poll::Ready(_) => None,
        }
    }
}

/// A lingering close under way.
struct Linger {
    /// Ends it when the client sends nothing for [`LINGER_QUIET`], at `end` at the latest.
    quiet: Pin<Box<tokio::time::Sleep>>,
    end: Instant,
    /// The bytes read and dropped so far.
    read: usize,
}

/// A connection the server closes while the client may still be sending (a request body was
/// left unread, say after a partner's early 413 or an admin API refusal; bytes were waiting; an
/// HTTP/2 connection ended with a GOAWAY; see [`Watched::bytes_to_linger_for`]) goes on reading
/// and dropping what the client still sends for a while ("lingering close", as nginx and
/// Apache do): closing a socket with unread bytes makes the kernel reset the connection, and
/// the reset can take the answer, already sent, away from the client before it reads it, so
/// the application would see a broken pipe instead of the answer.
/// It ends when the client closes its side (what clients do on the answer's end), after
/// [`LINGER_QUIET`] without a byte, after [`LINGER`] in all, or after [`LINGER_BYTES`]. Both
/// listeners, plain or TLS (under TLS the bytes dropped are records, after the close_notify).
const LINGER: Duration = Duration::from_secs(2);
/// See [`LINGER`].
const LINGER_QUIET: Duration = Duration::from_millis(500);
/// The most bytes read while lingering before the connection is closed all the same.
const LINGER_BYTES: usize = 64 * 1024 * 1024;

/// The verdict on a request body the application sent, set when reading it failed; the proxy
/// answers with it instead of blaming the partner. The proxy takes it from the [`ClientBody`]
/// before the body goes on (not from the request's extensions: their map would be allocated,
/// filled and freed for every request).
#[derive(Clone, Default)]
pub struct ClientFault(Arc<OnceLock<GatewayError>>);

impl ClientFault {
    pub fn get(&self) -> Option<&GatewayError> {
        self.0.get()
    }
    fn set(&self, e: GatewayError) {
        let _ = self.0.set(e);
    }
}

/// An application's request body: a pause longer than `body_read_timeout` or a broken body ends
/// it with an error, recorded in its `ClientFault`.
pub struct ClientBody {
    inner: Incoming,
    pause: PauseTimer,
    fault: ClientFault,
    /// The connection to tell if the body is dropped before its end (see `State::rest_unread`);
    /// `None` for a body that was empty from the start (no clone per bodiless request) and once
    /// it has ended.
    unread: Option<Arc<Activity>>,
}

impl ClientBody {
    fn new(inner: Incoming, pause: Duration, activity: &Arc<Activity>) -> Self {
        let unread = (!inner.is_end_stream()).then(|| {
            activity.body_open.store(true, Ordering::Relaxed);
            activity.clone()
        });
        ClientBody { inner, pause: PauseTimer::new(pause), fault: ClientFault::default(), unread }
    }

    /// Where a failure to read this body is recorded.
    pub fn fault(&self) -> &ClientFault {
        &self.fault
    }
}

/// The longest pause allowed between a body's frames. The timer is made the first time the
/// body has nothing to give and reset by each frame after that: a body that is there at once
/// (none, or a small one read with its head: the common case) never registers a timer.
pub(crate) struct PauseTimer {
    pause: Duration,
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl PauseTimer {
    pub(crate) fn new(pause: Duration) -> Self {
        PauseTimer { pause, timer: None }
    }

    pub(crate) fn pause(&self) -> Duration {
        self.pause
    }

    /// A frame arrived: the next pause starts now.
    pub(crate) fn frame(&mut self) {
        if let Some(timer) = self.timer.as_mut() {
            timer.as_mut().reset(Instant::now() + self.pause);
        }
    }

    /// The body has nothing to give: true once it has paused for longer than allowed (`cx` is
    /// woken then).
    pub(crate) fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        let pause = self.pause;
        self.timer.get_or_insert_with(|| Box::pin(tokio::time::sleep(pause))).as_mut().poll(cx).is_ready()
    }
}

impl HttpBody for ClientBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                this.pause.frame();
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                let message = format!("the request body could not be read: {e}");
                this.fault.set(GatewayError::new(ErrorCode::BadRequest, message.clone()));
                Poll::Ready(Some(Err(message.into())))
            }
            Poll::Ready(None) => {
                if let Some(activity) = this.unread.take() {
                    activity.body_open.store(false, Ordering::Relaxed);
                }
                Poll::Ready(None)
            }
            Poll::Pending => {
                if this.pause.expired(cx) {
                    let message = format!(
                        "the request body paused for more than {} ms (body_read_timeout_ms)",
                        this.pause.pause().as_millis()
                    );
                    this.fault.set(GatewayError::new(ErrorCode::RequestTimeout, message.clone()));
                    return Poll::Ready(Some(Err(message.into())));
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for ClientBody {
    fn drop(&mut self) {
        if let Some(activity) = self.unread.take() {
            if !self.inner.is_end_stream() {
                activity.lock().rest_unread = true;
            }
            activity.body_open.store(false, Ordering::Relaxed);
        }
    }
}

/// A response body that keeps its request counted as in flight until hyper drops it.
pub struct TrackedBody<B> {
    inner: B,
    _in_flight: Option<InFlight>,
}

impl<B> HttpBody for TrackedBody<B>
where
    B: HttpBody + Unpin,
{
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }
    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }
    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A hyper service that sees `ClientBody` requests, wrapped to count requests in flight.
pub struct Guarded<S> {
    inner: S,
    activity: Arc<Activity>,
    body_read_timeout: Duration,
}

impl<S, B> hyper::service::Service<Request<Incoming>> for Guarded<S>
where
    S: hyper::service::Service<Request<ClientBody>, Response = Response<B>>,
    S::Future: Send + 'static,
    B: HttpBody + Unpin,
{
    type Response = Response<TrackedBody<B>>;
    type Error = S::Error;
    type Future = Tracked<S::Future>;

    fn call(&self, req: Request<Incoming>) -> Self::Future {
        let in_flight = self.activity.request_started();
        let req = req.map(|body| ClientBody::new(body, self.body_read_timeout, &self.activity));
        Tracked { response: Box::pin(self.inner.call(req)), in_flight: Some(in_flight) }
    }
}

/// A request's future under watch: its response body carries the in-flight count. The request
/// is boxed once, at its own size (hyper keeps this wrapper in the connection's slot, so an
/// idle connection holds 16 bytes for it, not a request's state).
pub struct Tracked<F> {
    response: Pin<Box<F>>,
    in_flight: Option<InFlight>,
}

impl<F, B, E> Future for Tracked<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<TrackedBody<B>>, E>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let resp = std::task::ready!(self.response.as_mut().poll(cx))?;
        let in_flight = self.in_flight.take();
        Poll::Ready(Ok(resp.map(|inner| TrackedBody { inner, _in_flight: in_flight })))
    }
}

/// One guarded connection: the I/O to give hyper, the service to give it, and the watchdog to
/// run beside it (see [`run`]).
pub struct Guard<S> {
    pub io: hyper_util::rt::TokioIo<WatchedIo>,
    pub service: Guarded<S>,
    watchdog: Watchdog,
}

/// The socket under watch (opaque).
pub struct WatchedIo(Watched);

impl WatchedIo {
    /// The connection speaks HTTP/2 (learnt from ALPN under TLS): only idleness is timed.
    pub fn set_h2(&self) {
        self.0.activity.lock().h2 = true;
        self.0.activity.changed.notify_one();
    }

    /// Where the watchdog's signals to the session loop are read.
    pub(crate) fn signals(&self) -> Signals {
        Signals(self.0.activity.clone())
    }

    /// An HTTP/1 session starts on this connection that the watchdog may ask to let go.
    pub(crate) fn session_started(&self) {
        self.0.activity.lock().releasable = true;
    }

    /// The session was let go: what it kept for a request head goes too.
    pub(crate) fn released(&mut self) {
        self.0.head_buf = Vec::new();
    }

    /// With no session: ready when the client sends again (`true`), or when the connection is
    /// to end (`false`): the watchdog cut it off (idle for the keep-alive timeout) or the proxy
    /// is stopping.
    pub(crate) fn poll_resume(&mut self, cx: &mut Context<'_>) -> Poll<bool> {
        {
            let mut s = self.0.activity.lock();
            if s.cut.is_some() {
                return Poll::Ready(false);
            }
            s.reader = Some(cx.waker().clone());
        }
        if Signals::take_from(&self.0.activity) == SIGNAL_STOP {
            return Poll::Ready(false);
        }
        self.0.stream.poll_read_ready(cx).map(|ready| ready.is_ok())
    }
}

impl AsyncRead for WatchedIo {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for WatchedIo {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

/// The watchdog's signals to a connection's session loop (`SIGNAL_*`).
pub(crate) struct Signals(Arc<Activity>);

impl Signals {
    /// What the watchdog asked for since the last call.
    pub(crate) fn take(&self) -> u8 {
        Signals::take_from(&self.0)
    }

    fn take_from(activity: &Activity) -> u8 {
        // A load first: nearly always nothing, and a swap would write the shared line each poll.
        match activity.signal.load(Ordering::Acquire) {
            SIGNAL_NONE => SIGNAL_NONE,
            _ => activity.signal.swap(SIGNAL_NONE, Ordering::AcqRel),
        }
    }
}

/// The watchdog of one connection.
pub struct Watchdog {
    activity: Arc<Activity>,
    limits: ClientLimits,
    listener: &'static str,
    peer: SocketAddr,
    /// The proxy's shutdown, passed on to the session loop; set when the connection is served
    /// in sessions (`Guard::in_sessions`).
    stop: Option<tokio::sync::watch::Receiver<bool>>,
}

impl Watchdog {
    /// Resolves when the connection was cut off and hyper had its grace to end it.
    pub async fn run(mut self) {
        let mut stop = self.stop.take();
        let why = self.activity.watch(&self.limits, stop.as_mut()).await;
        tracing::debug!(peer = %self.peer, listener = self.listener, "connection cut off: {}", why.label());
        if matches!(why, Cut::HeadTimeout | Cut::HeadTooLarge | Cut::HeadRefused(_)) {
            tracing::info!(peer = %self.peer, listener = self.listener, code = why.label(), "request refused");
        }
        crate::telemetry::connection_cut(self.listener, why.label());
        self.activity.cut(why);
        tokio::time::sleep(CUT_GRACE).await;
    }
}

/// Put `stream` under watch. `plain`: the connection speaks HTTP directly (answers can be
/// written); false when TLS sits on top of it.
pub fn guard<S>(
    stream: TcpStream,
    peer: SocketAddr,
    service: S,
    limits: &ClientLimits,
    plain: bool,
    listener: &'static str,
) -> Guard<S> {
    let now = Instant::now();
    let activity = Arc::new(Activity {
        state: Mutex::new(State {
            accepted: now,
            in_flight: 0,
            served: 0,
            head_started: None,
            idle_since: now,
            h2: false,
            cut: None,
            reader: None,
            releasable: false,
            rest_unread: false,
        }),
        changed: Notify::new(),
        signal: AtomicU8::new(SIGNAL_NONE),
        write_blocked: AtomicBool::new(false),
        body_open: AtomicBool::new(false),
    });
    let watched = Watched {
        stream,
        activity: activity.clone(),
        limits: limits.clone(),
        plain,
        read_any: false,
        head_len: 0,
        head_done: false,
        last: [0, 0],
        head_buf: Vec::new(),
        refusal: None,
        answer: None,
        drained: 0,
        shut: false,
        lingering: None,
        write_blocked: false,
    };
    Guard {
        io: hyper_util::rt::TokioIo::new(WatchedIo(watched)),
        service: Guarded { inner: service, activity: activity.clone(), body_read_timeout: limits.body_read_timeout },
        watchdog: Watchdog { activity, limits: limits.clone(), listener, peer, stop: None },
    }
}

impl<S> Guard<S> {
    pub fn into_parts(self) -> (hyper_util::rt::TokioIo<WatchedIo>, Guarded<S>, Watchdog) {
        (self.io, self.service, self.watchdog)
    }

    /// The connection is served by the session loop (`session::serve`): its watchdog looks at
    /// least every [`RELEASE_AFTER`], asks for an idle session to be let go, and passes on the
    /// proxy's shutdown (`stop` turning true) to end the connection gracefully.
    pub fn in_sessions(mut self, stop: tokio::sync::watch::Receiver<bool>) -> Self {
        self.watchdog.stop = Some(stop);
        self
    }
}

/// Drive `conn` until it ends or its watchdog gives up on it.
///
/// The watchdog is polled only when one of its own wakers fired (its timer, or `changed`), not
/// each time hyper's connection is woken: a kept-alive connection is woken several times per
/// request, and polling the watchdog's timer and `Notify` each time cost about as much as
/// hyper's parsing of the request head (docs/decisions.md "Production mode's cost per request").
pub async fn run<F, T>(conn: F, watchdog: Watchdog) -> Option<T>
where
    F: Future<Output = T>,
{
    let mut conn = std::pin::pin!(conn);
    let mut watch = std::pin::pin!(watchdog.run());
    let flag = Arc::new(WatchdogWake { woken: AtomicBool::new(true), task: Mutex::new(None) });
    let waker = Waker::from(flag.clone());
    std::future::poll_fn(move |cx| {
        // The task to wake is set before the flag is read: a wake after the read wakes this
        // poll's task.
        flag.set_task(cx.waker());
        if let Poll::Ready(done) = conn.as_mut().poll(cx) {
            return Poll::Ready(Some(done));
        }
        if flag.woken.swap(false, Ordering::AcqRel) && watch.as_mut().poll(&mut Context::from_waker(&waker)).is_ready()
        {
            return Poll::Ready(None);
        }
        Poll::Pending
    })
    .await
}

/// The watchdog's waker in [`run`]: notes that the watchdog has something to look at, and wakes
/// the connection's task.
struct WatchdogWake {
    woken: AtomicBool,
    task: Mutex<Option<Waker>>,
}

impl WatchdogWake {
    fn set_task(&self, waker: &Waker) {
        let mut task = self.task.lock().unwrap_or_else(|p| p.into_inner());
        if !task.as_ref().is_some_and(|t| t.will_wake(waker)) {
            *task = Some(waker.clone());
        }
    }
}

impl std::task::Wake for WatchdogWake {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        if let Some(task) = self.task.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
            task.wake_by_ref();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn watched(limits: ClientLimits) -> Watched {
        // A connected pair on loopback, only to have a TcpStream.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        client.set_nonblocking(true).unwrap();
        let stream = TcpStream::from_std(client).unwrap();
        let g = guard(stream, "127.0.0.1:1".parse().unwrap(), (), &limits, true, "test");
        g.io.into_inner().0
    }

    #[tokio::test]
    async fn head_scan_finds_the_blank_line_with_crlf_and_bare_lf() {
        let mut w = watched(ClientLimits::default());
        assert!(!w.scan_head(b"GET / HTTP/1.1\r\nHost: a\r\n"));
        assert!(w.scan_head(b"\r\nbody"));
        assert_eq!(w.head_len, "GET / HTTP/1.1\r\nHost: a\r\n\r\n".len());
        let mut w = watched(ClientLimits::default());
        assert!(w.scan_head(b"GET / HTTP/1.1\nHost: a\n\n"));
        let mut w = watched(ClientLimits::default());
        assert!(!w.scan_head(b"GET / HTTP/1.1\r"));
        assert!(!w.scan_head(b"\nA: b\r\n\r"));
        assert!(w.scan_head(b"\n"));
        // One byte per read: the line ends are seen across reads.
        let mut w = watched(ClientLimits::default());
        let head = b"GET / HTTP/1.1\r\nA: b\r\n\r\nrest";
        let end = head.len() - "rest".len();
        for (i, b) in head.iter().enumerate() {
            if w.scan_head(std::slice::from_ref(b)) {
                assert_eq!((i + 1, w.head_len), (end, end));
                break;
            }
            assert!(i + 1 < end, "the blank line at {end} was not seen");
        }
        // A bare \r\r\n is not a blank line; \n\r\n split over two reads is.
        let mut w = watched(ClientLimits::default());
        assert!(!w.scan_head(b"GET / HTTP/1.1\r\nA: b\r\r\n"));
        assert!(!w.scan_head(b"B: c\n"));
        assert!(w.scan_head(b"\r\n"));
        assert_eq!(w.head_len, "GET / HTTP/1.1\r\nA: b\r\r\nB: c\n\r\n".len());
    }

    #[tokio::test]
    async fn admission_counts_per_address_and_frees_on_drop() {
        let limits = ClientLimits { max_connections: 3, max_connections_per_client: 2, ..ClientLimits::default() };
        let a = Admission::new(limits, "test");
        let one: SocketAddr = "127.0.0.1:1000".parse().unwrap();
        let two: SocketAddr = "127.0.0.2:1000".parse().unwrap();
        let p1 = a.admit(one).unwrap();
        let _p2 = a.admit(one).unwrap();
        let e = a.admit(one).err().expect("a third from one address is refused");
        assert_eq!(e.code, ErrorCode::TooManyConnections);
        assert!(e.message.contains("max_connections_per_client = 2"), "{}", e.message);
        let _p3 = a.admit(two).unwrap();
        let e = a.admit(two).err().expect("the fourth in all is refused");
        assert!(e.message.contains("(max_connections)"), "{}", e.message);
        drop(p1);
        assert!(a.admit(two).is_ok(), "a freed place is given again");
    }
}
