//! An application's plain connection to the proxy, served as a series of hyper sessions.
//!
//! hyper keeps a read buffer (8 KiB at least) and a header write buffer (8 KiB) for each
//! connection as long as the connection lives, idle or not, and has no option to let them go.
//! Applications' HTTP clients keep pools of idle connections open for minutes; with hyper's
//! state held by each, a thousand idle connections cost tens of MiB. Here an HTTP/1 connection
//! idle for [`RELEASE_AFTER`](super::guard::RELEASE_AFTER) ends its hyper session (hyper's
//! graceful shutdown of an idle connection, without shutting the socket) and keeps only the
//! socket and the watchdog's state; when the client sends again, a new session serves it.
//! The watchdog decides when (it already looks at the connection's idleness) and signals the
//! loop here; nothing is added to a request's path but one atomic load per poll.
//!
//! The first bytes tell HTTP/2 with prior knowledge (its 24-byte preface) from HTTP/1, as
//! hyper-util's `auto` builder does; an HTTP/2 connection is served by one session to its end.
//! The proxy's shutdown reaches each connection through its watchdog: an idle one closes, a busy
//! one finishes its request first (hyper's graceful shutdown).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use http::{Request, Response};
use hyper::body::Body as HttpBody;
use hyper::server::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::guard::{ClientBody, ClientLimits, Guard, WatchedIo, MAX_H2_STREAMS, SIGNAL_RELEASE, SIGNAL_STOP};
use crate::upstream::BoxError;

const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// The room for a connection's first read: a usual request head whole (what is longer is read
/// on by the session), small enough for malloc's per-thread cache.
const FIRST_READ: usize = 1000;

/// How long after a session is let go its memory is handed back to the system (see
/// [`give_back_memory_soon`]).
const TRIM_AFTER: std::time::Duration = std::time::Duration::from_secs(5);

/// The HTTP/1 and HTTP/2 settings of one listener's sessions.
#[derive(Clone)]
pub struct Sessions {
    h1: http1::Builder,
    h2: http2::Builder<TokioExecutor>,
}

impl Sessions {
    /// The settings `ClientLimits::server_builder` gives the admin listener, for the proxy's
    /// connections served session by session.
    pub fn new(limits: &ClientLimits) -> Self {
        let mut h1 = http1::Builder::new();
        // No hyper timer: the watchdog times heads (with an answer hyper would not give).
        h1.max_buf_size(limits.hyper_buffer()).keep_alive(true).header_read_timeout(None);
        let mut h2 = http2::Builder::new(TokioExecutor::new());
        h2.max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX))
            .max_concurrent_streams(MAX_H2_STREAMS);
        Sessions { h1, h2 }
    }
}

/// Serve a guarded plain connection to its end: `None` when its watchdog cut it off.
pub async fn serve<S, B>(guard: Guard<S>, sessions: Arc<Sessions>) -> Option<Result<(), BoxError>>
where
    S: hyper::service::Service<Request<ClientBody>, Response = Response<B>> + Unpin + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: HttpBody + Unpin + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    let (io, mut service, watchdog) = guard.into_parts();
    let io = io.into_inner();
    let served = async move {
        let signals = io.signals();
        let mut io = Replay { first: Bytes::new(), io };
        // The first bytes, read through the watch like any: HTTP/2's preface, or an HTTP/1 head,
        // whole as a rule (one read for the head, not one for the preface's length and one for
        // the rest); the session reads them first.
        let mut first = BytesMut::zeroed(FIRST_READ);
        let mut n = 0;
        loop {
            let mut buf = ReadBuf::new(&mut first[n..]);
            let read = std::future::poll_fn(|cx| {
                if signals.take() == SIGNAL_STOP {
                    return Poll::Ready(None); // stopping: nothing was asked yet
                }
                Pin::new(&mut io.io).poll_read(cx, &mut buf).map(Some)
            })
            .await;
            let Some(read) = read else { return Ok(()) };
            read?;
            let got = buf.filled().len();
            n += got;
            let seen = n.min(H2_PREFACE.len());
            // Read on only while what came so far may still be the start of HTTP/2's preface.
            if got == 0 || seen == H2_PREFACE.len() || first[..seen] != H2_PREFACE[..seen] {
                break;
            }
        }
        if n == 0 {
            return Ok(()); // closed (or cut off) before a byte
        }
        first.truncate(n);
        let h2 = first.starts_with(H2_PREFACE);
        io.first = first.freeze();
        if h2 {
            // HTTP/2 with prior knowledge: one session to the end (its streams are not idle in
            // the sense above), ended with a GOAWAY when the proxy stops.
            let mut conn = Box::pin(sessions.h2.serve_connection(TokioIo::new(io), service));
            let mut stopping = false;
            return std::future::poll_fn(|cx| {
                if !stopping && signals.take() == SIGNAL_STOP {
                    conn.as_mut().graceful_shutdown();
                    stopping = true;
                }
                conn.as_mut().poll(cx)
            })
            .await
            .map_err(Into::into);
        }
        loop {
            io.io.session_started();
            // Boxed: hyper's state for the connection (several KiB besides its buffers) is freed
            // with the session; inline, this loop's future would keep its room while idle.
            let mut conn = Box::new(sessions.h1.serve_connection(TokioIo::new(io), service));
            let mut releasing = false;
            let ended = std::future::poll_fn(|cx| {
                match signals.take() {
                    SIGNAL_RELEASE if !releasing => {
                        Pin::new(&mut *conn).graceful_shutdown();
                        releasing = true;
                    }
                    SIGNAL_STOP => {
                        Pin::new(&mut *conn).graceful_shutdown();
                        releasing = false;
                    }
                    _ => {}
                }
                if releasing {
                    // Idle: hyper ends the session at once, and the socket is not shut.
                    conn.poll_without_shutdown(cx).map_ok(|()| true)
                } else {
                    Pin::new(&mut *conn).poll(cx).map_ok(|()| false)
                }
            })
            .await?;
            if !ended {
                return Ok(()); // the client closed, asked to close, or the proxy is stopping
            }
            let http1::Parts { io: session_io, read_buf, service: session_service, .. } = conn.into_parts();
            io = session_io.into_inner();
            service = session_service;
            // Bytes hyper read and did not use (none, when it was idle) come first next time. Copied:
            // even empty, `read_buf` shares hyper's whole read buffer (8 KiB or more), which would
            // stay allocated as long as it does.
            io.first = if read_buf.is_empty() { Bytes::new() } else { Bytes::copy_from_slice(&read_buf) };
            drop(read_buf);
            io.io.released();
            crate::telemetry::session_released("proxy");
            give_back_memory_soon();
            if io.first.is_empty() && !std::future::poll_fn(|cx| io.io.poll_resume(cx)).await {
                return Ok(());
            }
        }
    };
    super::guard::run(served, watchdog).await
}

/// Freed memory goes back to malloc, which keeps it for reuse: the process's size (RSS) would
/// stay at its high-water mark however many sessions were let go. [`TRIM_AFTER`] after a session
/// is let go (once for all let go meanwhile), `malloc_trim` hands whole free pages back to the
/// system, on a blocking thread. It walks every arena, each locked in turn (measured here: about
/// 2 ms for a 50 MiB heap, plus 1.5 us per free chunk it gives back), so it runs at most once per
/// `TRIM_AFTER`, and only after sessions were let go.
fn give_back_memory_soon() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        use std::sync::atomic::{AtomicBool, Ordering};
        static SCHEDULED: AtomicBool = AtomicBool::new(false);
        if SCHEDULED.swap(true, Ordering::AcqRel) {
            return;
        }
        /// Clears `SCHEDULED` however the task ends (its runtime may stop while it sleeps).
        struct Scheduled;
        impl Drop for Scheduled {
            fn drop(&mut self) {
                SCHEDULED.store(false, Ordering::Release);
            }
        }
        let scheduled = Scheduled;
        tokio::spawn(async move {
            tokio::time::sleep(TRIM_AFTER).await;
            drop(scheduled);
            // SAFETY: malloc_trim only returns free pages of malloc's own heap to the system.
            let _ = tokio::task::spawn_blocking(|| unsafe { libc::malloc_trim(0) }).await;
        });
    }
}

/// The connection's socket under watch, giving first the bytes read before the session began.
struct Replay {
    first: Bytes,
    io: WatchedIo,
}

impl AsyncRead for Replay {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        if !self.first.is_empty() {
            let n = self.first.len().min(buf.remaining());
            buf.put_slice(&self.first[..n]);
            self.first.advance(n);
            if self.first.is_empty() {
                self.first = Bytes::new(); // its buffer goes now, not with the session
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for Replay {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }
    /// A lingering close (`WatchedIo`'s, shared with the admin listener).
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}
