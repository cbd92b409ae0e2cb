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
use tokio::io::AsyncWriteExt;

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
    theirs.write_all(wire).await.expect("the pipe takes the input");
    theirs.shutdown().await.expect("the pipe closes");
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
    outcome
}
