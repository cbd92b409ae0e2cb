//! HTTP/1.1 towards partners, without a connection task: the request's own task writes the
//! request and reads the response head, and the response body (polled by the task that sends it
//! on to the application) reads the rest. A connection is a socket and a read buffer that exists
//! only while bytes are in flight; an idle one holds no buffer and no task (hyper's client held a
//! task, a request channel and two buffers per connection: about 25 KB of the 50 KB each partner
//! connection cost at the 1,000-connection peak, docs/decisions.md).
//!
//! What it speaks: requests framed by `content-length`, chunked when the length is unknown;
//! responses framed by `content-length`, chunked (extensions read, trailers checked, both dropped), or
//! by the end of the connection; no body for `HEAD`, 204, 304; interim 1xx responses skipped;
//! 101 (an upgrade) refused. A response that arrives before the request body is all written goes
//! to the application at once, and the rest of the body is written while the response is read
//! (the connection is reused only if it was all written by then). Keep-alive as HTTP/1.1 and 1.0
//! say.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use http::header::{CONNECTION, CONTENT_LENGTH, TRANSFER_ENCODING};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode, Version};
use hyper::body::{Body as _, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::{Body, BoxError, UpstreamIo};

/// The most header fields a response head may carry (hyper's limit, which the gateway kept).
pub const MAX_HEADERS: usize = 100;

/// The most a read takes at once: a TLS record's plaintext (16 KiB). Reads go into one scratch
/// buffer per thread of this size, and only what they got is copied into the connection's
/// buffer (see [`Conn::poll_fill`]).
const READ_SIZE: usize = 16 * 1024;

thread_local! {
    /// Where this thread's partner reads land before they are copied out (allocated and zeroed
    /// once per thread, on its first read).
    static SCRATCH: std::cell::RefCell<Box<[u8]>> = std::cell::RefCell::new(vec![0; READ_SIZE].into_boxed_slice());
}

/// The longest chunk-size line, and the most trailer bytes and fields, a chunked body may send
/// (hyper's limits for extensions and trailers).
const MAX_CHUNK_LINE: usize = 16 * 1024;
const MAX_TRAILERS: usize = 16 * 1024;
const MAX_TRAILER_FIELDS: usize = 100;

/// An HTTP/1.1 connection to a partner.
pub struct Conn {
    io: sync_wrapper::SyncWrapper<UpstreamIo>,
    /// Bytes read and not yet used. Empty, without an allocation, while the connection is idle.
    buf: BytesMut,
}

/// Why an exchange failed.
#[derive(Debug)]
pub enum Error {
    /// The connection failed (the TLS layer's errors, such as the partner's alert, are inside).
    Io(std::io::Error),
    /// The partner closed the connection early.
    Closed(&'static str),
    /// The response head is larger than `max_response_header_bytes` or has more than
    /// [`MAX_HEADERS`] fields.
    HeadTooLarge,
    /// The partner's response is not HTTP/1.1 as it must be.
    Invalid(String),
    /// The application's request body failed on its way.
    RequestBody(BoxError),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Io(_) => f.write_str("the connection to the partner failed"),
            Error::Closed(when) => write!(f, "the partner closed the connection {when}"),
            Error::HeadTooLarge => f.write_str("the partner's response head is too large"),
            Error::Invalid(why) => write!(f, "the partner's response is not valid HTTP/1.1: {why}"),
            Error::RequestBody(_) => f.write_str("the application's request body failed"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io(e) => Some(e),
            Error::RequestBody(e) => Some(&**e),
            _ => None,
        }
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Io(e)
    }
}

/// A failed exchange, with the request when it may be sent again on another connection: the
/// connection was reused and not a byte of the request went out on it.
pub struct Failed {
    pub error: Error,
    pub unsent: Option<Request<Body>>,
}

/// A response head and what reads its body.
pub struct Answer {
    pub parts: http::response::Parts,
    pub body: Reading,
}

impl Answer {
    fn not_reusable(mut self) -> Self {
        self.body.keep_alive = false;
        self
    }
}

impl Conn {
    pub fn new(io: UpstreamIo) -> Self {
        Conn { io: sync_wrapper::SyncWrapper::new(io), buf: BytesMut::new() }
    }

    /// Back to idle: the read buffer goes (the body's last pieces may still hold it).
    pub fn idle(&mut self) {
        self.buf = BytesMut::new();
    }

    /// An idle connection is still usable: the partner has not closed it and sent nothing
    /// unasked. Looks without waiting (a TLS 1.3 session ticket is read and kept by the TLS
    /// layer on the way).
    pub fn is_open(&mut self) -> bool {
        if !self.buf.is_empty() {
            return false;
        }
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let mut scratch = [0u8; 64];
        let mut buf = ReadBuf::new(&mut scratch);
        matches!(Pin::new(self.io.get_mut()).poll_read(&mut cx, &mut buf), Poll::Pending)
    }

    /// Read more into the buffer; `Ok(0)` at the end of the connection.
    ///
    /// The read lands in the thread's scratch buffer and what it got is appended to the
    /// connection's: a response of a few hundred bytes holds an allocation of its own size while
    /// it is on its way to the application (its head's values and its body share it), not a
    /// read buffer of several KiB. Copying costs less than it saves: one `memcpy` of what was
    /// read, against a larger allocation per response (glibc serves those from its slower bins).
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<usize>> {
        let io = self.io.get_mut();
        SCRATCH.with_borrow_mut(|scratch| {
            let mut read = ReadBuf::new(scratch);
            std::task::ready!(Pin::new(io).poll_read(cx, &mut read))?;
            self.buf.extend_from_slice(read.filled());
            Poll::Ready(Ok(read.filled().len()))
        })
    }
}

impl Drop for Conn {
    /// Close as hyper did: with the TLS `close_notify` (without it OpenSSL drops the session from
    /// the route's cache, and the next connection makes a full handshake). One attempt, without
    /// waiting: a connection that cannot take it now is closed all the same.
    fn drop(&mut self) {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let _ = Pin::new(self.io.get_mut()).poll_shutdown(&mut cx);
    }
}

/// How the request body goes on the wire.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Framing {
    None,
    Length(u64),
    Chunked,
}

/// Send `req` on `conn` (`host`: the `Host` header; `max_head`: the largest response head) and
/// read the response head. `reused`: the connection served a request before (a failure before a
/// byte of the request went out then hands the request back, to be sent on another).
pub async fn send(
    conn: Conn,
    req: Request<Body>,
    host: &HeaderValue,
    max_head: usize,
    reused: bool,
) -> Result<(Answer, Conn), Failed> {
    let (mut parts, body) = req.into_parts();
    let framing = framing(&mut parts, &body);
    let head_request = parts.method == Method::HEAD;
    let out = encode_head(&parts, host);
    let writing = Writing { out, body: Some(body), framing, body_polled: false, written: false, wrote_any: false };
    let mut exchange = Exchange { conn, writing: Some(writing), max_head, head_request, got_any: false };
    let result = std::future::poll_fn(|cx| exchange.poll(cx)).await;
    match result {
        Ok(answer) => Ok((answer, exchange.conn)),
        Err(error) => {
            // As hyper did: only a request of which nothing went out. One that went out may
            // have been acted on, or refused (a second renegotiation): its partner's answer is
            // the application's, not a second try's.
            let Some(writing) = exchange.writing.as_mut() else {
                return Err(Failed { error, unsent: None });
            };
            let replayable = reused && !writing.wrote_any && !writing.body_polled && matches!(error, Error::Io(_));
            let unsent = match writing.body.take() {
                Some(body) if replayable => {
                    if framing == Framing::Chunked {
                        // Ours, not the application's (it was removed as hop-by-hop), and the
                        // next connection may speak HTTP/2, which has no such field.
                        parts.headers.remove(TRANSFER_ENCODING);
                    }
                    Some(Request::from_parts(parts, body))
                }
                _ => None,
            };
            Err(Failed { error, unsent })
        }
    }
}

/// The request body's framing, with the headers that say it. `transfer-encoding` was removed
/// with the other hop-by-hop fields: the body goes as it is when its length is known, chunked
/// when not.
fn framing(parts: &mut http::request::Parts, body: &Body) -> Framing {
    if let Some(n) = parts.headers.get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.trim().parse::<u64>().ok()) {
        return if n == 0 { Framing::None } else { Framing::Length(n) };
    }
    if body.is_end_stream() {
        // Servers that want a length for these (IIS answers 411 without one) get 0.
        if matches!(parts.method, Method::POST | Method::PUT | Method::PATCH) {
            parts.headers.insert(CONTENT_LENGTH, HeaderValue::from_static("0"));
        }
        return Framing::None;
    }
    match body.size_hint().exact() {
        Some(n) => {
            parts.headers.insert(CONTENT_LENGTH, HeaderValue::from(n));
            if n == 0 {
                Framing::None
            } else {
                Framing::Length(n)
            }
        }
        None => {
            parts.headers.insert(TRANSFER_ENCODING, HeaderValue::from_static("chunked"));
            Framing::Chunked
        }
    }
}

/// The request line and header fields, in origin form (the path and query), `Host` first.
fn encode_head(parts: &http::request::Parts, host: &HeaderValue) -> BytesMut {
    let target = parts.uri.path_and_query().map(|p| p.as_str()).filter(|p| !p.is_empty()).unwrap_or("/");
    let mut size = parts.method.as_str().len() + target.len() + 32 + host.len();
    for (name, value) in &parts.headers {
        size += name.as_str().len() + value.len() + 4;
    }
    let mut out = BytesMut::with_capacity(size);
    out.put_slice(parts.method.as_str().as_bytes());
    out.put_u8(b' ');
    out.put_slice(target.as_bytes());
    out.put_slice(b" HTTP/1.1\r\nhost: ");
    out.put_slice(host.as_bytes());
    out.put_slice(b"\r\n");
    for (name, value) in &parts.headers {
        out.put_slice(name.as_str().as_bytes());
        out.put_slice(b": ");
        out.put_slice(value.as_bytes());
        out.put_slice(b"\r\n");
    }
    out.put_slice(b"\r\n");
    out
}

/// One request on its way out and its response head on its way in, both driven by one poll:
/// a partner may answer before the request body is all written.
struct Exchange {
    conn: Conn,
    /// None once handed to the response body (answered before the request was all written).
    writing: Option<Writing>,
    max_head: usize,
    head_request: bool,
    /// A byte of the response came.
    got_any: bool,
}

/// A request on its way out.
struct Writing {
    /// Encoded and not yet written.
    out: BytesMut,
    body: Option<Body>,
    framing: Framing,
    /// The body was asked for a frame (it can no longer be replayed).
    body_polled: bool,
    /// The whole request is written and flushed.
    written: bool,
    /// Some of the request went to the connection.
    wrote_any: bool,
}

impl Exchange {
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<Result<Answer, Error>> {
        let writing = self.writing.as_mut().expect("polled after its answer");
        if !writing.written {
            if let Poll::Ready(Err(e)) = writing.poll_write(&mut self.conn, cx) {
                // A partner that answers early (413) may close before it has read everything:
                // its answer, if it came, is worth more than the write error.
                if let (Error::Io(_), Poll::Ready(Ok(answer))) = (&e, self.poll_head(cx)) {
                    return Poll::Ready(Ok(answer.not_reusable()));
                }
                return Poll::Ready(Err(e));
            }
        }
        let mut answer = std::task::ready!(self.poll_head(cx))?;
        if let Some(writing) = self.writing.take_if(|w| !w.written) {
            // Answered before the request was all written: the rest goes on while the response
            // is read (a partner may answer as it reads); the connection serves another request
            // only if the request was all written by the response's end.
            answer.body.sending = Some(Box::new(writing));
        }
        Poll::Ready(Ok(answer))
    }

    /// Read until a final response head is complete (interim 1xx heads are skipped).
    fn poll_head(&mut self, cx: &mut Context<'_>) -> Poll<Result<Answer, Error>> {
        let conn = &mut self.conn;
        loop {
            if !conn.buf.is_empty() {
                if let Some(answer) = parse_head(&mut conn.buf, self.head_request)? {
                    return Poll::Ready(Ok(answer));
                }
                if conn.buf.len() > self.max_head {
                    return Poll::Ready(Err(Error::HeadTooLarge));
                }
            }
            let n = std::task::ready!(conn.poll_fill(cx))?;
            if n == 0 {
                return Poll::Ready(Err(Error::Closed(if self.got_any {
                    "in the middle of the response head"
                } else {
                    "without answering"
                })));
            }
            self.got_any = true;
        }
    }
}

impl Writing {
    /// Write what is encoded, then the body's frames as they come; flush when waiting.
    fn poll_write(&mut self, conn: &mut Conn, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        loop {
            while !self.out.is_empty() {
                let n = std::task::ready!(Pin::new(conn.io.get_mut()).poll_write(cx, &self.out))?;
                if n == 0 {
                    return Poll::Ready(Err(Error::Io(std::io::ErrorKind::WriteZero.into())));
                }
                self.out.advance(n);
                self.wrote_any = true;
            }
            if self.written {
                return Poll::Ready(Ok(()));
            }
            let Some(body) = self.body.as_mut() else {
                std::task::ready!(Pin::new(conn.io.get_mut()).poll_flush(cx))?;
                self.written = true;
                return Poll::Ready(Ok(()));
            };
            if self.framing == Framing::None {
                std::task::ready!(Pin::new(conn.io.get_mut()).poll_flush(cx))?;
                self.written = true;
                return Poll::Ready(Ok(()));
            }
            self.body_polled = true;
            match Pin::new(body).poll_frame(cx) {
                Poll::Pending => {
                    std::task::ready!(Pin::new(conn.io.get_mut()).poll_flush(cx))?;
                    return Poll::Pending;
                }
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Err(Error::RequestBody(e))),
                Poll::Ready(Some(Ok(frame))) => {
                    let Ok(data) = frame.into_data() else { continue };
                    if data.is_empty() {
                        continue;
                    }
                    match &mut self.framing {
                        Framing::Length(left) => {
                            let n = data.len() as u64;
                            if n > *left {
                                return Poll::Ready(Err(Error::RequestBody(
                                    "the request body is longer than its content-length".into(),
                                )));
                            }
                            *left -= n;
                            self.out.extend_from_slice(&data);
                        }
                        Framing::Chunked => {
                            self.out.reserve(data.len() + 20);
                            self.out.extend_from_slice(format!("{:x}\r\n", data.len()).as_bytes());
                            self.out.extend_from_slice(&data);
                            self.out.extend_from_slice(b"\r\n");
                        }
                        Framing::None => unreachable!("no body is polled without framing"),
                    }
                }
                Poll::Ready(None) => {
                    match self.framing {
                        Framing::Length(left) if left > 0 => {
                            return Poll::Ready(Err(Error::RequestBody(
                                "the request body ended before its content-length".into(),
                            )));
                        }
                        Framing::Chunked => self.out.extend_from_slice(b"0\r\n\r\n"),
                        _ => {}
                    }
                    self.framing = Framing::None;
                    self.body = None;
                }
            }
        }
    }
}

/// A final response head from the start of `buf` (taken out of it), None while incomplete.
fn parse_head(buf: &mut BytesMut, head_request: bool) -> Result<Option<Answer>, Error> {
    loop {
        let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut resp = httparse::Response::new(&mut fields);
        let len = match resp.parse(buf) {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(httparse::Error::TooManyHeaders) => return Err(Error::HeadTooLarge),
            Err(e) => return Err(Error::Invalid(format!("{e} in the response head"))),
        };
        let code = resp.code.unwrap_or(0);
        let status = StatusCode::from_u16(code).map_err(|_| Error::Invalid(format!("status {code}")))?;
        let version = if resp.version == Some(0) { Version::HTTP_10 } else { Version::HTTP_11 };
        let reason = resp.reason.map(str::to_string);
        if status == StatusCode::SWITCHING_PROTOCOLS {
            return Err(Error::Invalid("the partner switched protocols (101), which certgate does not forward".into()));
        }
        if status.is_informational() {
            // 100 Continue, 103 Early Hints: the final response follows.
            buf.advance(len);
            continue;
        }
        // Where each field lies in the head, so that their values can share its bytes.
        let base = buf.as_ptr() as usize;
        let mut spans: Vec<(HeaderName, usize, usize)> = Vec::with_capacity(resp.headers.len());
        for h in resp.headers.iter() {
            let name = HeaderName::from_bytes(h.name.as_bytes())
                .map_err(|_| Error::Invalid(format!("the header name {:?}", h.name)))?;
            let start = h.value.as_ptr() as usize - base;
            spans.push((name, start, start + h.value.len()));
        }
        let head = buf.split_to(len).freeze();
        let mut headers = HeaderMap::with_capacity(spans.len());
        for (name, start, end) in spans {
            let value = HeaderValue::from_maybe_shared(head.slice(start..end))
                .map_err(|_| Error::Invalid(format!("the value of {name}")))?;
            headers.append(name, value);
        }
        let body = Reading::for_response(status, version, &mut headers, head_request)?;
        let mut parts = http::Response::new(()).into_parts().0;
        parts.status = status;
        parts.version = version;
        parts.headers = headers;
        // A partner's own reason phrase ("500 Fault Occurred") goes on to the application, as
        // hyper's client and server passed it.
        if let Some(reason) = reason.filter(|r| Some(r.as_str()) != status.canonical_reason()) {
            if let Ok(phrase) = hyper::ext::ReasonPhrase::try_from(reason.as_bytes()) {
                parts.extensions.insert(phrase);
            }
        }
        return Ok(Some(Answer { parts, body }));
    }
}

/// Whether a header's comma-separated values hold `token`.
fn has_token(headers: &HeaderMap, name: &HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .any(|v| v.to_str().is_ok_and(|s| s.split(',').any(|t| t.trim().eq_ignore_ascii_case(token))))
}

/// How the response body is delimited, and where it stands.
#[derive(Debug)]
enum Decoder {
    Length(u64),
    Chunked(Chunk),
    /// Until the partner closes the connection.
    Eof,
    Done,
}

#[derive(Debug)]
enum Chunk {
    Size,
    Data(u64),
    /// The CRLF after a chunk's data.
    DataEnd,
    /// After the last chunk: the trailer lines so far (each with its CRLF) and their count.
    Trailers(BytesMut, usize),
}

/// A response body as it is read: the decoder and whether the connection may serve another
/// request once the body is read.
pub struct Reading {
    decoder: Decoder,
    keep_alive: bool,
    /// The rest of a request answered before it was all written, still on its way out.
    sending: Option<Box<Writing>>,
}

impl Reading {
    fn for_response(
        status: StatusCode,
        version: Version,
        headers: &mut HeaderMap,
        head_request: bool,
    ) -> Result<Reading, Error> {
        let mut keep_alive = if version == Version::HTTP_10 {
            has_token(headers, &CONNECTION, "keep-alive")
        } else {
            !has_token(headers, &CONNECTION, "close")
        };
        let no_body = head_request || status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED;
        let decoder = if no_body {
            Decoder::Done
        } else if headers.contains_key(TRANSFER_ENCODING) {
            if version == Version::HTTP_10 {
                return Err(Error::Invalid("an HTTP/1.0 response with transfer-encoding".into()));
            }
            // A length beside a transfer coding is not to be trusted (nor forwarded).
            if headers.remove(CONTENT_LENGTH).is_some() {
                keep_alive = false;
            }
            // Chunked when `chunked` is the last coding of the last field (as hyper reads it).
            let last = headers.get_all(TRANSFER_ENCODING).iter().next_back().and_then(|v| v.to_str().ok());
            match last.and_then(|v| v.rsplit(',').next()) {
                Some(t) if t.trim().eq_ignore_ascii_case("chunked") => Decoder::Chunked(Chunk::Size),
                _ => {
                    keep_alive = false;
                    Decoder::Eof
                }
            }
        } else if headers.contains_key(CONTENT_LENGTH) {
            let mut length: Option<u64> = None;
            for value in headers.get_all(CONTENT_LENGTH) {
                for part in value.to_str().unwrap_or("x").split(',') {
                    let n = part
                        .trim()
                        .parse::<u64>()
                        .ok()
                        .filter(|_| part.trim().bytes().all(|b| b.is_ascii_digit()))
                        .ok_or_else(|| Error::Invalid(format!("content-length {:?}", part.trim())))?;
                    if length.is_some_and(|l| l != n) {
                        return Err(Error::Invalid("two different content-lengths".into()));
                    }
                    length = Some(n);
                }
            }
            match length {
                Some(0) | None => Decoder::Done,
                Some(n) => Decoder::Length(n),
            }
        } else {
            keep_alive = false;
            Decoder::Eof
        };
        Ok(Reading { decoder, keep_alive, sending: None })
    }

    pub fn is_done(&self) -> bool {
        matches!(self.decoder, Decoder::Done)
    }

    /// The connection may serve another request: the body was read to its end and nothing
    /// else came.
    pub fn reusable(&self, conn: &Conn) -> bool {
        self.keep_alive && self.sending.is_none() && self.is_done() && conn.buf.is_empty()
    }

    pub fn size_hint(&self) -> SizeHint {
        match self.decoder {
            Decoder::Length(n) => SizeHint::with_exact(n),
            Decoder::Done => SizeHint::with_exact(0),
            _ => SizeHint::default(),
        }
    }

    /// The next piece of the body from `conn`, reading as needed; None at its end.
    pub fn poll_data(&mut self, conn: &mut Conn, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        if let Some(writing) = self.sending.as_mut() {
            match writing.poll_write(conn, cx) {
                Poll::Ready(Ok(())) => self.sending = None,
                Poll::Ready(Err(e)) => {
                    // The partner stopped reading the request (or the application's body
                    // failed): its answer still goes on; the connection is not reused.
                    tracing::debug!("the rest of a request answered early was not sent: {e}");
                    self.sending = None;
                    self.keep_alive = false;
                }
                Poll::Pending => {}
            }
        }
        loop {
            if let Some(data) = self.decode(&mut conn.buf)? {
                return Poll::Ready(Some(Ok(Frame::data(data))));
            }
            if self.is_done() {
                return Poll::Ready(None);
            }
            let n = std::task::ready!(conn.poll_fill(cx))?;
            if n == 0 {
                if matches!(self.decoder, Decoder::Eof) {
                    self.decoder = Decoder::Done;
                    return Poll::Ready(None);
                }
                return Poll::Ready(Some(Err(Error::Closed("before the response body was complete"))));
            }
        }
    }

    /// Take the next data from `buf` (None: more must be read, or the body is done); the framing
    /// around it is consumed as far as `buf` goes, so that a body whose end has arrived is done
    /// with its last data.
    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Bytes>, Error> {
        let data = match &mut self.decoder {
            Decoder::Done => return Ok(None),
            Decoder::Eof => {
                if buf.is_empty() {
                    return Ok(None);
                }
                return Ok(Some(buf.split().freeze()));
            }
            Decoder::Length(left) => {
                if buf.is_empty() {
                    return Ok(None);
                }
                let n = (*left).min(buf.len() as u64) as usize;
                *left -= n as u64;
                if *left == 0 {
                    self.decoder = Decoder::Done;
                }
                return Ok(Some(buf.split_to(n).freeze()));
            }
            Decoder::Chunked(_) => {
                self.chunk_framing(buf)?;
                match &mut self.decoder {
                    Decoder::Chunked(Chunk::Data(left)) if !buf.is_empty() => {
                        let n = (*left).min(buf.len() as u64) as usize;
                        *left -= n as u64;
                        if *left == 0 {
                            self.decoder = Decoder::Chunked(Chunk::DataEnd);
                        }
                        buf.split_to(n).freeze()
                    }
                    _ => return Ok(None),
                }
            }
        };
        self.chunk_framing(buf)?;
        Ok(Some(data))
    }

    /// Consume chunk framing (size lines, the CRLF after data, the last chunk and trailers) from
    /// `buf` until data is next, more must be read, or the body is done.
    fn chunk_framing(&mut self, buf: &mut BytesMut) -> Result<(), Error> {
        loop {
            let Decoder::Chunked(state) = &mut self.decoder else { return Ok(()) };
            match state {
                Chunk::Data(_) => return Ok(()),
                Chunk::DataEnd => {
                    if buf.len() < 2 {
                        return Ok(());
                    }
                    if &buf[..2] != b"\r\n" {
                        return Err(Error::Invalid("a chunk's data does not end with CRLF".into()));
                    }
                    buf.advance(2);
                    *state = Chunk::Size;
                }
                Chunk::Size => {
                    let Some(line) = take_line(buf, MAX_CHUNK_LINE, "chunk size line", false)? else { return Ok(()) };
                    let size = chunk_size(&line)?;
                    *state = if size == 0 { Chunk::Trailers(BytesMut::new(), 0) } else { Chunk::Data(size) };
                }
                Chunk::Trailers(lines, count) => {
                    if buf.is_empty() || (buf[0] == b'\r' && buf.len() < 2) {
                        return Ok(());
                    }
                    if buf[0] == b'\r' {
                        if buf[1] != b'\n' {
                            return Err(Error::Invalid("the chunked body does not end with CRLF".into()));
                        }
                        buf.advance(2);
                        check_trailers(lines, *count)?;
                        self.decoder = Decoder::Done;
                        return Ok(());
                    }
                    let Some(line) = take_line(buf, MAX_TRAILERS, "trailer field", true)? else { return Ok(()) };
                    *count += 1;
                    if *count > MAX_TRAILER_FIELDS || lines.len() + line.len() + 2 > MAX_TRAILERS {
                        return Err(Error::Invalid("the trailer fields are too large".into()));
                    }
                    lines.extend_from_slice(&line);
                    lines.extend_from_slice(b"\r\n");
                }
            }
        }
    }
}

/// A whole response read from `wire` fed in pieces of `step` bytes, the connection ending after
/// them: its status and body (the fuzz target's side of the comparison with hyper).
pub(super) fn read_whole(wire: &[u8], head_request: bool, step: usize) -> Result<(StatusCode, Vec<u8>), Error> {
    let mut buf = BytesMut::new();
    let mut answer: Option<Answer> = None;
    let mut body = Vec::new();
    for piece in wire.chunks(step.max(1)) {
        buf.extend_from_slice(piece);
        if answer.is_none() {
            answer = parse_head(&mut buf, head_request)?;
        }
        if let Some(a) = answer.as_mut() {
            while let Some(data) = a.body.decode(&mut buf)? {
                body.extend_from_slice(&data);
            }
        }
    }
    let mut answer = answer.ok_or(Error::Closed("in the middle of the response head"))?;
    if matches!(answer.body.decoder, Decoder::Eof) {
        answer.body.decoder = Decoder::Done;
    }
    if !answer.body.is_done() {
        return Err(Error::Closed("before the response body was complete"));
    }
    Ok((answer.parts.status, body))
}

/// A line from the start of `buf` up to its first CR, which must be followed by LF (taken
/// without its CRLF; None while incomplete). As hyper reads chunk framing: a bare CR is refused,
/// and so is a bare LF unless `lf_allowed` (a trailer line's LF is left to the field parser).
fn take_line(buf: &mut BytesMut, max: usize, what: &str, lf_allowed: bool) -> Result<Option<Bytes>, Error> {
    let cr = memchr::memchr(b'\r', buf);
    if !lf_allowed && memchr::memchr(b'\n', &buf[..cr.unwrap_or(buf.len())]).is_some() {
        return Err(Error::Invalid(format!("a {what} holds a bare LF")));
    }
    match cr {
        Some(end) if end + 1 < buf.len() => {
            if buf[end + 1] != b'\n' {
                return Err(Error::Invalid(format!("a {what} does not end with CRLF")));
            }
            let line = buf.split_to(end + 2).freeze();
            Ok(Some(line.slice(..end)))
        }
        _ if buf.len() > max => Err(Error::Invalid(format!("a {what} is too long"))),
        _ => Ok(None),
    }
}

/// The size of a chunk from its size line: hex digits, optional blanks, then nothing or `;` and
/// extensions (no LF anywhere).
fn chunk_size(line: &[u8]) -> Result<u64, Error> {
    let refused = || Error::Invalid(format!("the chunk size line {:?}", String::from_utf8_lossy(line)));
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    let rest = &line[digits..];
    let after_blanks = rest.iter().position(|&b| b != b' ' && b != b'\t');
    if digits == 0 || after_blanks.is_some_and(|i| rest[i] != b';') || line.contains(&b'\n') {
        return Err(refused());
    }
    let mut size = 0u64;
    for &d in &line[..digits] {
        let value = (d as char).to_digit(16).expect("a hex digit");
        size = size.checked_mul(16).and_then(|s| s.checked_add(u64::from(value))).ok_or_else(refused)?;
    }
    Ok(size)
}

/// The trailer fields of a chunked body must be header fields (they are dropped, but a body
/// whose trailers are not fields is as broken as hyper finds it).
fn check_trailers(lines: &[u8], count: usize) -> Result<(), Error> {
    if count == 0 {
        return Ok(());
    }
    let mut section = Vec::with_capacity(lines.len() + 2);
    section.extend_from_slice(lines);
    section.extend_from_slice(b"\r\n");
    let mut fields = vec![httparse::EMPTY_HEADER; count];
    match httparse::parse_headers(&section, &mut fields) {
        Ok(httparse::Status::Complete((_, fields))) => {
            for f in fields.iter() {
                if HeaderName::from_bytes(f.name.as_bytes()).is_err() || HeaderValue::from_bytes(f.value).is_err() {
                    return Err(Error::Invalid(format!("the trailer field {:?}", f.name)));
                }
            }
            Ok(())
        }
        _ => Err(Error::Invalid("the trailer fields".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(bytes: &[u8], head_request: bool) -> Result<Option<Answer>, Error> {
        parse_head(&mut BytesMut::from(bytes), head_request)
    }

    /// Decode `wire` fed in pieces of `step` bytes: the body, and whether it ended.
    fn decode_all(mut reading: Reading, wire: &[u8], step: usize) -> Result<(Vec<u8>, bool), Error> {
        let mut buf = BytesMut::new();
        let mut body = Vec::new();
        for piece in wire.chunks(step.max(1)) {
            buf.extend_from_slice(piece);
            while let Some(data) = reading.decode(&mut buf)? {
                body.extend_from_slice(&data);
            }
        }
        Ok((body, reading.is_done()))
    }

    #[test]
    fn heads_say_how_their_body_ends() {
        let a = head(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\nx-a: b\r\n\r\nhello", false).unwrap().unwrap();
        assert_eq!(a.parts.status, 200);
        assert!(a.parts.extensions.get::<hyper::ext::ReasonPhrase>().is_none(), "the canonical reason is not kept");
        let fault = head(b"HTTP/1.1 500 Fault Occurred\r\ncontent-length: 0\r\n\r\n", false).unwrap().unwrap();
        let phrase = fault.parts.extensions.get::<hyper::ext::ReasonPhrase>().expect("a partner's own reason is kept");
        assert_eq!(phrase.as_bytes(), b"Fault Occurred");
        assert_eq!(a.parts.headers["x-a"], "b");
        assert!(matches!(a.body.decoder, Decoder::Length(5)) && a.body.keep_alive);
        let a = head(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-length: 5\r\n\r\n", false)
            .unwrap()
            .unwrap();
        assert!(matches!(a.body.decoder, Decoder::Chunked(_)) && !a.body.keep_alive);
        assert!(!a.parts.headers.contains_key(CONTENT_LENGTH), "a length beside chunked is not forwarded");
        let a = head(b"HTTP/1.1 200 OK\r\n\r\n", false).unwrap().unwrap();
        assert!(matches!(a.body.decoder, Decoder::Eof) && !a.body.keep_alive);
        let a = head(b"HTTP/1.0 200 OK\r\ncontent-length: 2\r\n\r\n", false).unwrap().unwrap();
        assert!(!a.body.keep_alive, "HTTP/1.0 closes unless it says keep-alive");
        let a = head(b"HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\n", true).unwrap().unwrap();
        assert!(a.body.is_done() && a.body.keep_alive, "HEAD has no body");
        let a = head(b"HTTP/1.1 304 Not Modified\r\ncontent-length: 9\r\n\r\n", false).unwrap().unwrap();
        assert!(a.body.is_done());
        let a = head(b"HTTP/1.1 200 OK\r\nconnection: keep-alive, Close\r\ncontent-length: 1\r\n\r\n", false)
            .unwrap()
            .unwrap();
        assert!(!a.body.keep_alive);
    }

    #[test]
    fn interim_heads_are_skipped_and_upgrades_refused() {
        let a = head(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nlink: x\r\n\r\nHTTP/1.1 201 Created\r\ncontent-length: 0\r\n\r\n", false)
            .unwrap()
            .unwrap();
        assert_eq!(a.parts.status, 201);
        assert!(head(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 2", false).unwrap().is_none());
        assert!(matches!(head(b"HTTP/1.1 101 Switching Protocols\r\n\r\n", false), Err(Error::Invalid(_))));
    }

    #[test]
    fn bad_heads_are_refused() {
        for bad in [
            &b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\ncontent-length: 6\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\ncontent-length: +5\r\n\r\n",
            b"HTTP/1.1 200 OK\r\ncontent-length: 5x\r\n\r\n",
            b"HTTP/1.1 99 Low\r\n\r\n",
            b"SSH-2.0-OpenSSH\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nbad header\r\n\r\n",
        ] {
            assert!(head(bad, false).is_err(), "{}", String::from_utf8_lossy(bad));
        }
        let same = head(b"HTTP/1.1 200 OK\r\ncontent-length: 5, 5\r\ncontent-length: 5\r\n\r\n", false).unwrap();
        assert!(matches!(same.unwrap().body.decoder, Decoder::Length(5)));
        let many: String = (0..=MAX_HEADERS).map(|i| format!("x-{i}: v\r\n")).collect();
        let many = format!("HTTP/1.1 200 OK\r\n{many}\r\n");
        assert!(matches!(head(many.as_bytes(), false), Err(Error::HeadTooLarge)));
    }

    #[test]
    fn chunked_bodies_decode_whatever_the_pieces() {
        let wire = b"5;ext=1\r\nhello\r\n1 \r\n,\r\n00000000000000006\r\n world\r\n0\r\nx-trailer: t\r\n\r\n";
        for step in [1, 2, 3, 7, wire.len()] {
            let reading = Reading { decoder: Decoder::Chunked(Chunk::Size), keep_alive: true, sending: None };
            let (body, done) = decode_all(reading, wire, step).unwrap();
            assert_eq!(body, b"hello, world", "step {step}");
            assert!(done, "step {step}");
        }
        for bad in [
            &b"g\r\n"[..],
            b"5\nhello",
            b"5\r\nhelloXX",
            b"1ffffffffffffffff\r\n",
            b"\r\n",
            b"5;a\nb\r\n",
            b"5 6\r\n",
            b"0\r\nhello\r\n\r\n",
            b"0\r\nx: a\rb\r\n\r\n",
            b"0\r\n\rX",
        ] {
            let reading = Reading { decoder: Decoder::Chunked(Chunk::Size), keep_alive: true, sending: None };
            assert!(decode_all(reading, bad, 64).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn a_length_body_ends_with_its_last_byte() {
        let reading = Reading { decoder: Decoder::Length(5), keep_alive: true, sending: None };
        let (body, done) = decode_all(reading, b"hel", 2).unwrap();
        assert_eq!((body.as_slice(), done), (&b"hel"[..], false));
        let reading = Reading { decoder: Decoder::Length(5), keep_alive: true, sending: None };
        let mut buf = BytesMut::from(&b"helloEXTRA"[..]);
        let mut reading = reading;
        assert_eq!(reading.decode(&mut buf).unwrap().unwrap(), "hello");
        assert!(reading.is_done());
        assert_eq!(&buf[..], b"EXTRA", "what follows the body is left (the connection is then not reused)");
    }
}
