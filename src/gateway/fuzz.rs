//! Entry point for the fuzz target `request_target` (docs/FUZZING.md); not part of the API.
//!
//! One input is the bytes an application sends on a fresh connection. They go through the
//! head check the guard runs before hyper ([`super::head::check`]) and through hyper's own
//! HTTP/1 server (on an in-memory pipe), and the two must agree: a head the check passes must
//! reach the service (else the application would get hyper's bare answer), and a head it
//! refuses must be one hyper refuses too (else certgate would refuse a request that works).
//! A head hyper accepts then goes to [`super::resolve`] against a compiled route table.

use std::convert::Infallible;
use std::sync::{Arc, Mutex, OnceLock};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::head::{self, Head};
use crate::routes::RouteTable;

struct World {
    runtime: tokio::runtime::Runtime,
    table: RouteTable,
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
        let table = {
            let _entered = runtime.enter();
            crate::routes::fuzz_table()
        };
        World { runtime, table }
    })
}

/// Run one input (see the module doc).
pub fn request_target(data: &[u8]) {
    let world = world();
    let verdict = head::check(data);
    let seen: Arc<Mutex<Option<Request<()>>>> = Arc::default();
    let seen_in = seen.clone();
    let input = Bytes::copy_from_slice(data);
    let hyper_error = world.runtime.block_on(async move {
        let (mut client, server) = tokio::io::duplex(1 << 20);
        client.write_all(&input).await.expect("the pipe takes the input");
        client.shutdown().await.expect("the pipe closes");
        let service = hyper::service::service_fn(move |req: Request<Incoming>| {
            let seen = seen_in.clone();
            async move {
                let (parts, _) = req.into_parts();
                let mut slot = seen.lock().unwrap_or_else(|p| p.into_inner());
                if slot.is_none() {
                    *slot = Some(Request::from_parts(parts, ()));
                }
                Ok::<_, Infallible>(Response::new(Empty::<Bytes>::new()))
            }
        });
        let limits = super::ClientLimits::default();
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder.max_buf_size(limits.hyper_buffer()).keep_alive(true);
        let conn = builder.serve_connection(hyper_util::rt::TokioIo::new(server), service);
        let outcome = tokio::time::timeout(std::time::Duration::from_secs(5), conn).await;
        let mut sink = Vec::new();
        let _ = client.read_to_end(&mut sink).await;
        match outcome {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(e.is_parse() || e.is_parse_too_large() || e.is_parse_status()),
            Err(_) => panic!("hyper did not finish a {}-byte input within 5 s", data.len()),
        }
    });
    let reached = seen.lock().unwrap_or_else(|p| p.into_inner()).take();
    match (&verdict, &reached) {
        (Head::Complete, None) if hyper_error == Some(true) => {
            panic!("the head check passed a head hyper refuses: {:?}", String::from_utf8_lossy(data))
        }
        (Head::Refused(e), Some(_)) => {
            panic!("the head check refused ({}) a head hyper serves: {:?}", e.message, String::from_utf8_lossy(data))
        }
        _ => {}
    }
    if let Some(req) = reached {
        let req = req.map(|()| Empty::<Bytes>::new().map_err(|never| match never {}).boxed());
        if let Ok(target) = super::resolve(&req, &world.table) {
            assert_eq!(target.uri.scheme_str(), Some("https"), "the partner URL {} is not https", target.uri);
            assert!(target.uri.host().is_some(), "the partner URL {} has no host", target.uri);
        }
    }
}
