//! Entry point for the fuzz target `partner_response` (docs/FUZZING.md); not part of the API.
//!
//! One input is what a partner answers on a fresh HTTP/1.1 connection, ended by the partner
//! closing it. certgate's own HTTP/1.1 client ([`super::h1`]) reads it, fed in pieces of a size
//! the input's first byte picks, and so does hyper's client on an in-memory pipe. The two must
//! agree: an answer one reads whole (status and body), the other reads whole and the same; an
//! answer one refuses, the other refuses too (a partner's answer hyper took must not become a 502,
//! and an answer hyper refuses must not reach the application as if it were whole).

use std::sync::OnceLock;

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime"))
}

/// Run one input (see the module doc): byte 0 picks the piece size and the method (bit 7 set:
/// HEAD, else GET), the rest is the partner's answer.
pub fn partner_response(data: &[u8]) {
    let Some((&first, wire)) = data.split_first() else { return };
    let head_request = first & 0x80 != 0;
    let step = usize::from(first & 0x7f).max(1);
    let ours = super::h1::read_whole(wire, head_request, step);
    let theirs = runtime().block_on(hyper_reads(wire, head_request));
    let shown = String::from_utf8_lossy(wire);
    match (&ours, &theirs) {
        (Ok((status, body)), Ok((their_status, their_body))) => {
            assert_eq!(status, their_status, "the status differs from hyper's: {shown:?}");
            assert!(
                body == their_body,
                "the body differs from hyper's ({} vs {} bytes): {shown:?}",
                body.len(),
                their_body.len()
            );
        }
        (Ok(_), Err(e)) => panic!("certgate read an answer hyper refuses ({e}): {shown:?}"),
        (Err(e), Ok(_)) => panic!("certgate refused ({e}) an answer hyper reads: {shown:?}"),
        (Err(_), Err(_)) => {}
    }
}

/// hyper's client reading `wire` as the answer to a GET (or HEAD): its status and body.
async fn hyper_reads(wire: &[u8], head_request: bool) -> Result<(StatusCode, Vec<u8>), String> {
    let (ours, mut theirs) = tokio::io::duplex(1 << 20);
    // The partner answers once the request head is in (hyper's client refuses bytes that come
    // before its request), then closes.
    let answer = Bytes::copy_from_slice(wire);
    let partner = tokio::spawn(async move {
        let mut seen = Vec::new();
        let mut buf = [0u8; 1024];
        while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
            match theirs.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
        }
        theirs.write_all(&answer).await.expect("the pipe takes the input");
        theirs.shutdown().await.expect("the pipe closes");
        // Held open for reading until hyper is done (hyper may still write).
        while matches!(theirs.read(&mut buf).await, Ok(n) if n > 0) {}
    });
    let mut builder = hyper::client::conn::http1::Builder::new();
    builder.max_buf_size(64 * 1024);
    let (mut send, conn) = builder.handshake(hyper_util::rt::TokioIo::new(ours)).await.map_err(|e| e.to_string())?;
    let driven = tokio::spawn(conn);
    let method = if head_request { Method::HEAD } else { Method::GET };
    let req = Request::builder().method(method).uri("/").header("host", "partner.test").body(Empty::<Bytes>::new());
    let outcome = tokio::time::timeout(std::time::Duration::from_secs(5), async move {
        let resp = send.send_request(req.expect("a request")).await.map_err(|e| e.to_string())?;
        let status = resp.status();
        if status == StatusCode::SWITCHING_PROTOCOLS {
            // An upgrade hyper hands to its caller; certgate refuses it (both "refuse").
            return Err("101".to_string());
        }
        let body = resp.into_body().collect().await.map_err(|e| e.to_string())?.to_bytes();
        Ok((status, body.to_vec()))
    })
    .await
    .unwrap_or_else(|_| panic!("hyper did not finish a {}-byte answer within 5 s", wire.len()));
    driven.abort();
    partner.abort();
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The harness itself: hyper reads well-formed answers (a harness where hyper refused
    /// everything would agree with any refusal of ours), and both sides agree on them.
    #[test]
    fn hyper_and_certgate_read_well_formed_answers_alike() {
        let answers: [(&[u8], &[u8]); 4] = [
            (b"HTTP/1.0 200 OK\r\n\r\nuntil the end", b"until the end"),
            (b"HTTP/1.1 201 Created\r\ncontent-length: 5\r\n\r\nhello", b"hello"),
            (b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5;x\r\nhello\r\n0\r\nt: 1\r\n\r\n", b"hello"),
            (b"HTTP/1.1 204 No Content\r\n\r\n", b""),
        ];
        for (wire, body) in answers {
            let (_, theirs) = runtime().block_on(hyper_reads(wire, false)).expect("hyper reads it");
            assert_eq!(theirs, body);
            for first in [1u8, 2, 7, 0x7f] {
                partner_response(&[&[first][..], wire].concat());
            }
        }
        assert!(runtime().block_on(hyper_reads(b"HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\nshort", false)).is_err());
        partner_response(b"\x05HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\nshort");
    }

    /// Finding 4 (docs/FUZZING.md): trailer lines that are no header fields, one with a bare CR.
    #[test]
    fn a_trailer_line_with_a_bare_cr_is_refused_as_hyper_refuses_it() {
        let wire = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n0;ext=0\r\nhello\r\n0\r\x0fx-trai-trailer: t\r\n\r\n";
        assert!(runtime().block_on(hyper_reads(wire, false)).is_err(), "hyper refuses it");
        for step in [1, 3, 127] {
            assert!(super::super::h1::read_whole(wire, false, step).is_err(), "pieces of {step}");
            partner_response(&[&[step as u8][..], wire].concat());
        }
    }
}
