//! An application's HTTP/1 request head, checked the way hyper will read it, before hyper reads
//! it: a head hyper would refuse is answered here, like every other gateway refusal, with a
//! `Certgate-Error` code and the JSON body (hyper's own answer is a bare `400`/`431`).
//!
//! The checks are hyper 1's (`proto/h1/role.rs`, server side): `httparse` with its default
//! parser settings and at most [`MAX_HEADERS`] header lines; the method, the request target (as
//! an `http::Uri`, at most [`MAX_URI_LEN`] bytes) and each header name as `http` reads them;
//! `Transfer-Encoding` only in HTTP/1.1 and with `chunked` last; `Content-Length` digits only, and
//! several only when equal. The fuzz target `request_target` runs each head through this and
//! through hyper and fails when they disagree.

use http::header::{CONTENT_LENGTH, TRANSFER_ENCODING};
use http::{Method, Uri};

use super::error::GatewayError;
use crate::model::{ErrorCode, Remedy};

/// hyper's default limit on header lines (`DEFAULT_MAX_HEADERS`).
pub const MAX_HEADERS: usize = 100;
/// hyper's limit on the request target (`MAX_URI_LEN`).
pub const MAX_URI_LEN: usize = (u16::MAX - 1) as usize;
/// The longest header name `http` takes.
const MAX_HEADER_NAME_LEN: usize = u16::MAX as usize;

/// What a (possibly partial) request head amounts to.
#[derive(Debug)]
pub enum Head {
    /// Fine so far; more bytes are needed.
    Partial,
    /// A complete head that hyper will accept.
    Complete,
    /// A head hyper would refuse, and the answer to give instead.
    Refused(GatewayError),
}

fn bad(message: impl Into<String>) -> Head {
    Head::Refused(GatewayError::new(ErrorCode::BadRequest, message).with_remedy(Remedy::new(
        "send a well-formed HTTP/1.1 request (RFC 9112): 'METHOD TARGET HTTP/1.1', then 'Name: value' lines",
    )))
}

/// Check the bytes of a request head read so far.
pub fn check(buf: &[u8]) -> Head {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(buf) {
        Ok(httparse::Status::Partial) => return Head::Partial,
        Ok(httparse::Status::Complete(_)) => {}
        Err(e) => return refusal(e, &req),
    }
    let (Some(method), Some(target), Some(version)) = (req.method, req.path, req.version) else {
        return bad("the request line is incomplete");
    };
    if target.len() > MAX_URI_LEN {
        return Head::Refused(GatewayError::new(
            ErrorCode::HeadersTooLarge,
            format!("the request target is {} bytes long; at most {MAX_URI_LEN} are read", target.len()),
        ));
    }
    if Method::from_bytes(method.as_bytes()).is_err() {
        return bad(format!("'{}' is not an HTTP method", shown(method.as_bytes())));
    }
    if !plainly_valid_target(target.as_bytes()) {
        if let Err(e) = Uri::try_from(target) {
            return bad(format!("the request target '{}' is not a URL or path ({e})", shown(target.as_bytes())));
        }
    }
    debug_assert!(Uri::try_from(target).is_ok(), "'{target}' passed as plainly valid, and `http` refuses it");
    let http11 = version == 1;
    let mut content_length: Option<u64> = None;
    // hyper goes by the last Transfer-Encoding line only.
    let mut transfer_encoding: Option<&[u8]> = None;
    for h in req.headers.iter() {
        // httparse has checked the name's bytes (RFC 9110 token characters, the set `http`'s
        // `HeaderName` accepts), so it is compared as text: no `HeaderName` is built (one
        // allocation per header outside the standard set, and hyper builds it again anyway).
        let name = h.name.as_bytes();
        if name.len() > MAX_HEADER_NAME_LEN {
            return bad(format!("the header name '{}' is longer than {MAX_HEADER_NAME_LEN} bytes", shown(name)));
        }
        if name.eq_ignore_ascii_case(TRANSFER_ENCODING.as_str().as_bytes()) {
            if !http11 {
                return bad("an HTTP/1.0 request cannot have a Transfer-Encoding header");
            }
            transfer_encoding = Some(h.value);
        } else if name.eq_ignore_ascii_case(CONTENT_LENGTH.as_str().as_bytes()) && transfer_encoding.is_none() {
            let Some(n) = content_length_parse(h.value) else {
                return bad(format!("Content-Length '{}' is not a number", shown(h.value)));
            };
            match content_length {
                Some(prev) if prev != n => {
                    return bad(format!("two Content-Length headers disagree ({prev} and {n})"));
                }
                _ => content_length = Some(n),
            }
            if n > u64::MAX - 2 {
                return bad(format!("Content-Length {n} is larger than any body can be"));
            }
        }
    }
    if let Some(value) = transfer_encoding {
        if !is_visible_ascii(value) {
            return bad(format!(
                "the Transfer-Encoding header '{}' has a byte that is not visible ASCII (codings are plain tokens such as 'chunked')",
                shown(value)
            ));
        }
        if !is_chunked(value) {
            return bad("the request has a Transfer-Encoding whose last coding is not chunked");
        }
    }
    Head::Complete
}

/// A request target of the usual forms that `http` surely reads: a path (and query) of bytes its
/// path map takes, or `http://` or `https://`, a host of letters, digits, dots and dashes with at
/// most one port, then such a path or nothing. Told without building a `Uri`, which copies the
/// target into an allocation of its own for every request; any other target is read as a `Uri`
/// (the answer is the same, only slower to get). A subset of what `http` 1.x takes
/// (`uri/path.rs` `PATH_MAP`, `uri/authority.rs`): never true for a target it refuses (checked
/// in debug builds by reading the `Uri` anyway, and by the `request_target` fuzz target).
fn plainly_valid_target(target: &[u8]) -> bool {
    let path = if target.first() == Some(&b'/') {
        target
    } else {
        let Some(rest) = target.strip_prefix(b"http://").or_else(|| target.strip_prefix(b"https://")) else {
            return false;
        };
        let end = rest.iter().position(|&b| b == b'/').unwrap_or(rest.len());
        let authority = &rest[..end];
        let host_byte = |b: &u8| TARGET_BYTES[*b as usize] & HOST_BYTE != 0;
        if authority.is_empty() || !authority.iter().all(host_byte) || memchr::memchr_iter(b':', authority).count() > 1
        {
            return false;
        }
        &rest[end..]
    };
    path.iter().all(|&b| TARGET_BYTES[b as usize] & PATH_BYTE != 0)
}

/// In [`TARGET_BYTES`]: a byte `http` takes anywhere in a path or query: its path bytes, and `?`
/// (which starts the query; the query takes every path byte).
const PATH_BYTE: u8 = 1;
/// In [`TARGET_BYTES`]: a letter, digit, dot, dash or colon (a host and its port).
const HOST_BYTE: u8 = 2;
/// Which of [`PATH_BYTE`] and [`HOST_BYTE`] each byte is (one load per byte, not a chain of
/// range tests).
static TARGET_BYTES: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        if matches!(b, 0x21 | 0x24..=0x3b | 0x3d | 0x3f..=0x5f | 0x61..=0x7a | 0x7c | 0x7e) {
            t[i] |= PATH_BYTE;
        }
        if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':') {
            t[i] |= HOST_BYTE;
        }
        i += 1;
    }
    t
};

fn refusal(e: httparse::Error, req: &httparse::Request<'_, '_>) -> Head {
    use httparse::Error as E;
    match e {
        E::TooManyHeaders => Head::Refused(GatewayError::new(
            ErrorCode::HeadersTooLarge,
            format!("the request has more than {MAX_HEADERS} header lines"),
        )),
        E::Token if req.method.is_none() => bad("the request line does not start with an HTTP method"),
        E::Token => bad("the request target has a byte that is not allowed in a URL"),
        E::Version => bad("the request line does not end in HTTP/1.0 or HTTP/1.1"),
        E::HeaderName => bad("a header line has no colon, or its name a byte that is not allowed"),
        E::HeaderValue => bad("a header value has a byte that is not allowed"),
        E::NewLine => bad("a line of the request head ends in a bare carriage return"),
        E::Status => bad("the request line is not 'METHOD TARGET HTTP/1.1'"),
    }
}

/// What hyper's `is_chunked_` reads through `HeaderValue::to_str`: a tab or 0x20..0x7e. A
/// Transfer-Encoding value with any other byte (UTF-8 text included) is "not chunked" to hyper,
/// so the head is refused, even with `chunked` last.
fn is_visible_ascii(value: &[u8]) -> bool {
    value.iter().all(|&b| b == b'\t' || (0x20..0x7f).contains(&b))
}

/// hyper's `is_chunked_` for a visible-ASCII value: its last coding is `chunked`.
fn is_chunked(value: &[u8]) -> bool {
    value.rsplit(|&b| b == b',').next().is_some_and(|last| last.trim_ascii().eq_ignore_ascii_case(b"chunked"))
}

/// hyper's server-side `content_length_parse`: only digits (no list), within a u64.
fn content_length_parse(value: &[u8]) -> Option<u64> {
    if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(value).ok()?.parse().ok()
}

/// Bytes for a message: printable ASCII as is, at most 64 characters.
fn shown(bytes: &[u8]) -> String {
    let mut out: String =
        bytes.iter().take(64).map(|&b| if (0x20..0x7f).contains(&b) { b as char } else { '?' }).collect();
    if bytes.len() > 64 {
        out.push_str("...");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(head: &str) -> Option<&'static str> {
        match check(head.as_bytes()) {
            Head::Refused(e) => Some(e.code.as_str()),
            Head::Partial | Head::Complete => None,
        }
    }

    #[test]
    fn good_heads_pass_and_partial_ones_wait() {
        assert!(matches!(check(b"GET http://a.example/x HTTP/1.1\r\nHost: a.example\r\n\r\n"), Head::Complete));
        assert!(matches!(check(b"GET /svc/A/x HTTP/1.0\nHost: a\n\n"), Head::Complete));
        assert!(matches!(
            check(b"POST /svc/A HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n"),
            Head::Complete
        ));
        assert!(matches!(check(b"POST /svc/A HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"), Head::Complete));
        assert!(matches!(check(b"GET http://a.example/x HTTP/1.1\r\nHo"), Head::Partial));
    }

    #[test]
    fn heads_hyper_refuses_get_a_code() {
        assert_eq!(code("HELLO\r\n\r\n"), Some("bad-request"));
        assert_eq!(code("GET / HTTP/2.0\r\n\r\n"), Some("bad-request"));
        assert_eq!(code("GET / HTTP/1.1\r\nNoColon\r\n\r\n"), Some("bad-request"));
        assert_eq!(code("GET / HTTP/1.1\r\nA b: c\r\n\r\n"), Some("bad-request"));
        // Every byte `http`'s header names refuse is refused here (httparse's token check).
        for b in (0u8..=255).filter(|&b| http::HeaderName::from_bytes(&[b'x', b]).is_err() && b != b':') {
            let mut head = b"GET / HTTP/1.1\r\nx".to_vec();
            head.extend_from_slice(&[b, b':', b' ', b'v', b'\r', b'\n', b'\r', b'\n']);
            assert!(matches!(check(&head), Head::Refused(_)), "header name byte {b:#04x} was let through");
        }
        assert_eq!(code("POST / HTTP/1.1\r\nContent-Length: 5, 5\r\n\r\n"), Some("bad-request"));
        assert_eq!(code("POST / HTTP/1.1\r\nContent-Length: 18446744073709551615\r\n\r\n"), Some("bad-request"));
        assert_eq!(code("POST / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n"), Some("bad-request"));
        assert_eq!(code("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"), Some("bad-request"));
        let many: String = (0..=MAX_HEADERS).map(|i| format!("X-{i}: v\r\n")).collect();
        assert_eq!(code(&format!("GET / HTTP/1.1\r\n{many}\r\n")), Some("headers-too-large"));
        // A broken first line is refused before the head is complete, as hyper does.
        assert_eq!(code("GET /\x01"), Some("bad-request"));
    }

    /// Every target the fast path takes, `http` takes; the ones it leaves to `http` still get
    /// `http`'s answer.
    #[test]
    fn plainly_valid_targets_are_ones_http_reads() {
        let plain = [
            "/",
            "/svc/Billing.Svc/soap?wsdl&x=1",
            "/a/b;c=d/~e/%41!$&'()*+,=:@",
            "http://partner.test:8443/echo?q=/x?y",
            "https://a-b.example",
            "http://127.0.0.1:1/",
            "http://:80/",
        ];
        for t in plain {
            assert!(plainly_valid_target(t.as_bytes()), "{t}");
            assert!(Uri::try_from(t).is_ok(), "{t}");
        }
        let left_to_http = [
            "*",
            "partner.test:443",
            "HTTP://a/",
            "http://[::1]:80/",
            "http://u@a/",
            "http://a:1:2/",
            "http://a?q",
            "/a#frag",
            "/{\"json\"}",
            "/a b",
            "/\u{e9}",
            "http:///x",
            "ftp://a/",
        ];
        for t in left_to_http {
            assert!(!plainly_valid_target(t.as_bytes()), "{t}");
        }
        // Each byte alone after a slash: taken only where `http` takes it.
        for b in 0u8..=255 {
            let t = [b'/', b];
            if plainly_valid_target(&t) {
                assert!(Uri::try_from(&t[..]).is_ok(), "byte {b:#04x}");
            }
        }
    }

    /// CI's `request_target` finding (docs/FUZZING.md, finding 3): hyper reads a
    /// Transfer-Encoding line as visible ASCII only, so UTF-8 (or any byte above 0x7e) anywhere
    /// in it makes the request "not chunked" and hyper refuses it, even with `chunked` last.
    #[test]
    fn a_transfer_encoding_with_bytes_beyond_visible_ascii_is_refused_as_hyper_refuses_it() {
        assert_eq!(code("POST / HTTP/1.1\r\nTransfer-Encoding: \u{e9}, chunked\r\n\r\n"), Some("bad-request"));
        // Only the last Transfer-Encoding line counts, as in hyper.
        assert!(matches!(
            check(b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\x80\r\nTransfer-Encoding: chunked\r\n\r\n"),
            Head::Complete
        ));
        assert!(matches!(check(b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\x80, chunked\r\n\r\n"), Head::Refused(_)));
        // A tab is visible ASCII to hyper: still chunked.
        assert!(matches!(check(b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip,\tchunked\r\n\r\n"), Head::Complete));
    }
}
