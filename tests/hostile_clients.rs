//! Slow, hostile and broken applications against a running gateway (in-process, real sockets on
//! 127.0.0.1): request smuggling shapes never reach the partner as a second request, oversized
//! and malformed requests get their 4xx (with `Certgate-Error` where certgate can answer) while
//! the gateway keeps serving, stalled connections are cut off within the configured timeouts,
//! and connection floods get `503 too-many-connections`.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::gateway::{read_responses, wait_until, Gateway, GatewayConfig};
use crate::support::raw_partner::{Behaviour, RawPartner};
use crate::support::upstream::{Upstream, UpstreamConfig};
use crate::support::{Env, TestCa};

/// Bound on every raw exchange in this file.
const EXCHANGE_LIMIT: Duration = Duration::from_secs(15);

/// A store that trusts the partner CA and sends `partner.test` to 127.0.0.1 with no certificate.
struct World {
    env: Env,
    partner_ca: TestCa,
}

impl World {
    fn new() -> World {
        let env = Env::new();
        let partner_ca = TestCa::new("partner");
        let root = env.file("partner-root.pem", &partner_ca.root.cert_pem);
        env.run(&["--json", "trust", "add", "partnerca", root.to_str().unwrap()]).ok();
        env.run(&["--json", "bind", "partner.test", "--no-cert"]).ok();
        World { env, partner_ca }
    }

    fn config(&self) -> GatewayConfig {
        GatewayConfig::new().resolve(&["partner.test"])
    }

    async fn raw_partner(&self) -> RawPartner {
        RawPartner::start(&self.partner_ca.server(&["partner.test"]), &self.partner_ca, Behaviour::Answer).await
    }

    async fn echo_partner(&self) -> Upstream {
        Upstream::start(UpstreamConfig::new(&self.partner_ca.server(&["partner.test"]), &self.partner_ca)).await
    }
}

/// What a raw client got: the bytes until the gateway closed, and when it closed.
struct Got {
    text: String,
    closed_after: Option<Duration>,
}

impl Got {
    fn status_lines(&self) -> Vec<&str> {
        self.text.split("\r\n").filter(|l| l.starts_with("HTTP/1.1 ")).collect()
    }
    /// The first response's status.
    fn status(&self) -> Option<u16> {
        self.text.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()
    }
    fn header(&self, name: &str) -> Option<String> {
        let head = self.text.split("\r\n\r\n").next()?;
        head.split("\r\n").find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    }
    /// The first response is certgate's own: status, `Certgate-Error` and the JSON body.
    #[track_caller]
    fn assert_gateway_error(&self, status: u16, code: &str) {
        assert_eq!(self.status(), Some(status), "status; got:\n{}", self.text);
        assert_eq!(self.header("certgate-error").as_deref(), Some(code), "Certgate-Error; got:\n{}", self.text);
        let body = self.text.split("\r\n\r\n").nth(1).unwrap_or("");
        let json: serde_json::Value =
            serde_json::from_str(body).unwrap_or_else(|e| panic!("JSON body ({e}); got:\n{}", self.text));
        assert_eq!(json["error"], code, "{json}");
        assert!(json["message"].as_str().is_some_and(|m| !m.is_empty()) && json["hint"].is_string(), "{json}");
    }
}

/// Connect to `to` (from `from` when given), send `bytes`, and read until the gateway closes
/// the connection (or `EXCHANGE_LIMIT`).
async fn exchange(to: SocketAddr, from: Option<&str>, bytes: &[u8]) -> Got {
    let mut stream = connect(to, from).await;
    let started = Instant::now();
    if !bytes.is_empty() {
        stream.write_all(bytes).await.expect("send the request bytes");
    }
    read_to_close(&mut stream, started).await
}

async fn connect(to: SocketAddr, from: Option<&str>) -> TcpStream {
    match from {
        None => TcpStream::connect(to).await.expect("connect to the gateway"),
        Some(ip) => {
            let socket = tokio::net::TcpSocket::new_v4().unwrap();
            socket.bind(format!("{ip}:0").parse().unwrap()).expect("bind a loopback source address");
            socket.connect(to).await.expect("connect to the gateway")
        }
    }
}

async fn read_to_close(stream: &mut TcpStream, started: Instant) -> Got {
    let mut all = Vec::new();
    let mut buf = [0u8; 8192];
    let closed_after = loop {
        match tokio::time::timeout_at((started + EXCHANGE_LIMIT).into(), stream.read(&mut buf)).await {
            Err(_) => break None,
            Ok(Ok(0)) | Ok(Err(_)) => break Some(started.elapsed()),
            Ok(Ok(n)) => all.extend_from_slice(&buf[..n]),
        }
    };
    Got { text: String::from_utf8_lossy(&all).into_owned(), closed_after }
}

/// Read one response with a Content-Length body.
async fn read_response(stream: &mut TcpStream) -> String {
    read_responses(stream, 1).await
}

// ---------------------------------------------------------------------------------------------
// Smuggling

/// Each shape: a request with a second request hidden after (or inside) its body.
fn smuggling_shapes(port: u16) -> Vec<(&'static str, String)> {
    let host = format!("partner.test:{port}");
    let hidden = format!("GET http://{host}/smuggled HTTP/1.1\r\nHost: {host}\r\n\r\n");
    let chunked_then_hidden = format!("0\r\n\r\n{hidden}");
    let n = chunked_then_hidden.len();
    let line = format!("POST http://{host}/front HTTP/1.1\r\nHost: {host}\r\n");
    vec![
        ("CL+TE", format!("{line}Content-Length: {n}\r\nTransfer-Encoding: chunked\r\n\r\n{chunked_then_hidden}")),
        ("TE+CL", format!("{line}Transfer-Encoding: chunked\r\nContent-Length: {n}\r\n\r\n{chunked_then_hidden}")),
        (
            "duplicate Content-Length",
            format!("{line}Content-Length: 0\r\nContent-Length: {}\r\n\r\n{hidden}", hidden.len()),
        ),
        (
            "obs-folded Transfer-Encoding",
            format!("{line}Content-Length: {n}\r\nTransfer-Encoding:\r\n chunked\r\n\r\n{chunked_then_hidden}"),
        ),
        (
            "unknown Transfer-Encoding",
            format!("{line}Transfer-Encoding: xchunked\r\nContent-Length: {n}\r\n\r\n{chunked_then_hidden}"),
        ),
        (
            "Transfer-Encoding not ending in chunked",
            format!("{line}Transfer-Encoding: chunked, identity\r\n\r\n{chunked_then_hidden}"),
        ),
        (
            "bare LF inside a header line",
            format!("{line}X-Note: a\nTransfer-Encoding: chunked\r\nContent-Length: {n}\r\n\r\n{chunked_then_hidden}"),
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smuggling_shapes_never_reach_the_partner_as_a_second_request() {
    let w = World::new();
    let partner = w.raw_partner().await;
    let gw = Gateway::start(&w.env, &w.config().set("keep_alive_timeout_ms", 1000)).await;
    let mut report = Vec::new();
    for (shape, request) in smuggling_shapes(partner.port()) {
        let before = partner.request_lines().len();
        let got = exchange(gw.proxy, None, request.as_bytes()).await;
        assert!(got.closed_after.is_some(), "{shape}: the gateway did not close the connection; got:\n{}", got.text);
        // Let the partner's side of every exchange end, so that all it received is recorded.
        wait_until(Duration::from_secs(5), async || (partner.open() == 0).then_some(())).await;
        let lines = partner.request_lines();
        let new = &lines[before..];
        let from_partner = got.text.matches("\r\n\r\nok").count();
        let statuses = got.status_lines().iter().map(|l| l.to_string()).collect::<Vec<_>>();
        report.push(format!("{shape}: client got {statuses:?}; partner saw {new:?}"));
        assert!(
            new.len() <= from_partner,
            "{shape}: the partner saw {} request(s) {new:?} but only {from_partner} answer(s) came back to the \
             client: a request reached the partner that the gateway did not account for\nclient got:\n{}",
            new.len(),
            got.text
        );
        assert!(
            !new.iter().any(|l| l.contains("/smuggled")),
            "{shape}: the hidden request reached the partner: {new:?}\nclient got:\n{}",
            got.text
        );
        for status in &statuses {
            assert!(
                status.starts_with("HTTP/1.1 200") || status.starts_with("HTTP/1.1 4"),
                "{shape}: a shape that is the client's fault must never be answered {status}"
            );
            if status.starts_with("HTTP/1.1 4") {
                assert!(
                    got.text.contains("certgate-error: bad-request"),
                    "{shape}: refused without our code:\n{}",
                    got.text
                );
            }
        }
    }
    eprintln!("{}", report.join("\n"));
    // The gateway keeps serving.
    let r = gw.proxy_get(&format!("http://partner.test:{}/after", partner.port())).await;
    assert_eq!(r.status, 200, "{}", r.describe());
    assert_eq!(partner.request_lines().last().map(String::as_str), Some("GET /after HTTP/1.1"));
}

// ---------------------------------------------------------------------------------------------
// Oversized and malformed requests

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_and_malformed_requests_get_their_4xx_and_the_gateway_keeps_serving() {
    let w = World::new();
    let up = w.echo_partner().await;
    let gw = Gateway::start(&w.env, &w.config().set("max_header_bytes", 16384)).await;
    let host = format!("partner.test:{}", up.port());
    let line = format!("GET http://{host}/echo HTTP/1.1\r\nHost: {host}\r\n");

    // A head over max_header_bytes: 431 with certgate's code, before the partner is involved.
    let big = format!("{line}X-Big: {}\r\n\r\n", "a".repeat(20_000));
    exchange(gw.proxy, None, big.as_bytes()).await.assert_gateway_error(431, "headers-too-large");
    // A head of many small lines adding up over the limit: the same.
    let many: String = (0..2000).map(|i| format!("X-{i}: v\r\n")).collect();
    exchange(gw.proxy, None, format!("{line}{many}\r\n").as_bytes())
        .await
        .assert_gateway_error(431, "headers-too-large");
    // More header fields than hyper parses (100), under the byte limit: the same code.
    let fields: String = (0..150).map(|i| format!("X-{i}: v\r\n")).collect();
    exchange(gw.proxy, None, format!("{line}{fields}\r\n").as_bytes())
        .await
        .assert_gateway_error(431, "headers-too-large");

    assert_eq!(up.request_count(), 0, "no refused head reached the partner: {}", up.describe());

    // A chunked body whose first chunk size is absurd: the client's fault, 400, never 502.
    let absurd = format!(
        "POST http://{host}/echo HTTP/1.1\r\nHost: {host}\r\nTransfer-Encoding: chunked\r\n\r\nFFFFFFFFFFFFFFFFFFFF\r\nabc\r\n0\r\n\r\n"
    );
    exchange(gw.proxy, None, absurd.as_bytes()).await.assert_gateway_error(400, "bad-request");
    // A chunk size that is not hex.
    let nothex = format!(
        "POST http://{host}/echo HTTP/1.1\r\nHost: {host}\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n"
    );
    exchange(gw.proxy, None, nothex.as_bytes()).await.assert_gateway_error(400, "bad-request");

    // Malformed heads: refused with certgate's 400 before hyper or any route sees them.
    for (what, bytes) in [
        ("garbage", "\x16\x03\x01\x02\x00garbage\r\n\r\n".to_string()),
        ("no version", format!("GET http://{host}/echo\r\n\r\n")),
        ("space in a header name", format!("{line}Bad Name: x\r\n\r\n")),
        (
            "invalid Content-Length",
            format!("POST http://{host}/echo HTTP/1.1\r\nHost: {host}\r\nContent-Length: -1\r\n\r\n"),
        ),
    ] {
        let got = exchange(gw.proxy, None, bytes.as_bytes()).await;
        assert_eq!(got.status(), Some(400), "{what}; got:\n{}", got.text);
        got.assert_gateway_error(400, "bad-request");
    }
    // The head of a request is forwarded before its body is read (bodies stream): the partner
    // saw the two broken-body requests start, and their bodies abort, never complete.
    let seen = up.requests();
    assert_eq!(seen.len(), 2, "{}", up.describe());
    assert!(seen.iter().all(|r| r.body_len == 0), "a broken body is never passed on: {}", up.describe());

    let r = gw.proxy_get(&format!("http://{host}/echo")).await;
    r.echo();
    assert_eq!(up.request_count(), 3);
}

/// Each malformed head hyper would answer with a bare 400 (or 431), and the code certgate
/// answers it with instead.
fn malformed_heads(host: &str) -> Vec<(&'static str, Vec<u8>, u16, &'static str)> {
    let line = format!("GET http://{host}/echo HTTP/1.1\r\nHost: {host}\r\n");
    let head = |extra: &str| format!("{line}{extra}\r\n").into_bytes();
    let many: String = (0..101).map(|i| format!("X-{i}: v\r\n")).collect();
    vec![
        ("request line that is not HTTP", b"HELLO THERE\r\n\r\n".to_vec(), 400, "bad-request"),
        (
            "request line with an unknown version",
            format!("GET http://{host}/ HTTP/9.9\r\n\r\n").into_bytes(),
            400,
            "bad-request",
        ),
        (
            "request line with two spaces",
            format!("GET  http://{host}/ HTTP/1.1\r\n\r\n").into_bytes(),
            400,
            "bad-request",
        ),
        (
            "request target with a control byte",
            format!("GET http://{host}/a\x01b HTTP/1.1\r\n\r\n").into_bytes(),
            400,
            "bad-request",
        ),
        ("header line without a colon", head("NoColonHere\r\n"), 400, "bad-request"),
        ("header name with a control byte", head("X-B\x01d: v\r\n"), 400, "bad-request"),
        ("header name with a separator", head("X(y): v\r\n"), 400, "bad-request"),
        ("header value with a bare CR", head("X-A: a\rb\r\n"), 400, "bad-request"),
        ("Content-Length that is not a number", head("Content-Length: 1e3\r\n"), 400, "bad-request"),
        ("two Content-Lengths that disagree", head("Content-Length: 1\r\nContent-Length: 2\r\n"), 400, "bad-request"),
        (
            "Transfer-Encoding in HTTP/1.0",
            format!("POST http://{host}/ HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n").into_bytes(),
            400,
            "bad-request",
        ),
        (
            // hyper reads Transfer-Encoding as visible ASCII only: "not chunked" to it.
            "Transfer-Encoding with a UTF-8 byte",
            format!("POST http://{host}/echo HTTP/1.1\r\nHost: {host}\r\nTransfer-Encoding: \u{e9}, chunked\r\n\r\n0\r\n\r\n")
                .into_bytes(),
            400,
            "bad-request",
        ),
        ("101 header lines", head(&many), 431, "headers-too-large"),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_request_heads_get_certgate_error_codes_and_the_gateway_keeps_serving() {
    let w = World::new();
    let up = w.echo_partner().await;
    let gw = Gateway::start(&w.env, &w.config().set("max_header_bytes", 16384)).await;
    let host = format!("partner.test:{}", up.port());
    for (what, bytes, status, code) in malformed_heads(&host) {
        let got = exchange(gw.proxy, None, &bytes).await;
        eprintln!("{what}: {}", got.text.lines().next().unwrap_or(""));
        assert!(got.closed_after.is_some(), "{what}: the gateway did not close the connection");
        got.assert_gateway_error(status, code);
    }
    // A header block over max_header_bytes.
    let big = format!("GET http://{host}/echo HTTP/1.1\r\nX-Big: {}\r\n\r\n", "a".repeat(20_000));
    exchange(gw.proxy, None, big.as_bytes()).await.assert_gateway_error(431, "headers-too-large");

    // The broken line arrives after a good start, in a second write: checked when the head is
    // complete, as hyper reads it then.
    let mut stream = connect(gw.proxy, None).await;
    let started = Instant::now();
    stream.write_all(format!("GET http://{host}/echo HTTP/1.1\r\nHost: {host}\r\n").as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    stream.write_all(b"Bad Name: x\r\n\r\n").await.unwrap();
    read_to_close(&mut stream, started).await.assert_gateway_error(400, "bad-request");

    // The second request of a keep-alive connection is checked like the first.
    let mut stream = connect(gw.proxy, None).await;
    let started = Instant::now();
    stream.write_all(format!("GET http://{host}/echo HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes()).await.unwrap();
    let first = read_response(&mut stream).await;
    assert!(first.starts_with("HTTP/1.1 200"), "the first request is served; got:\n{first}");
    stream.write_all(format!("GET http://{host}/echo HTTP/1.1\r\nNoColon\r\n\r\n").as_bytes()).await.unwrap();
    read_to_close(&mut stream, started).await.assert_gateway_error(400, "bad-request");
    assert_eq!(up.request_count(), 1, "only the good request reached the partner: {}", up.describe());

    // The admin listener answers a malformed head the same way.
    exchange(gw.admin, None, b"GET /healthz HTTP/1.1\r\nNoColon\r\n\r\n")
        .await
        .assert_gateway_error(400, "bad-request");

    // The gateway keeps serving.
    let r = gw.proxy_get(&format!("http://{host}/echo")).await;
    r.echo();
    assert_eq!(up.request_count(), 2);
}

// ---------------------------------------------------------------------------------------------
// HTTP/2 from applications

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_applications_get_the_header_read_timeout_and_the_header_limit() {
    let w = World::new();
    let up = w.echo_partner().await;
    w.env.run(&["service", "add", "Echo", "--url", &format!("https://partner.test:{}", up.port())]).ok();
    let gw =
        Gateway::start(&w.env, &w.config().set("header_read_timeout_ms", 1000).set("keep_alive_timeout_ms", 30_000))
            .await;

    // The HTTP/2 preface and then no request: closed within the header-read timeout (it was only
    // timed for idleness, keep_alive_timeout_ms).
    let got = exchange(gw.proxy, None, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").await;
    let after = got.closed_after.expect("a stalled HTTP/2 connection is closed");
    assert!(after >= Duration::from_millis(900) && after < Duration::from_secs(5), "closed after {after:?}");

    // curl over HTTP/2 (prior knowledge): the header limit is max_header_bytes (64 KiB), as for
    // HTTP/1, not hyper's 16 KiB. (The big header is a `Certgate-*` one, which the gateway does
    // not forward: the partner has limits of its own.)
    let url = format!("http://{}/svc/Echo/echo", gw.proxy);
    let call = |header_bytes: usize| {
        let out = crate::support::nginx::curl()
            .args(["-s", "-D", "/dev/stderr", "-o", "/dev/null", "-w", "%{http_code} %{http_version}"])
            .args(["--http2-prior-knowledge", "--max-time", "20"])
            .args(["-H", &format!("Certgate-Padding: {}", "a".repeat(header_bytes)), &url])
            .output()
            .expect("run curl");
        eprintln!("curl with a {header_bytes}-byte header: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert_eq!(call(30_000), "200 2", "a 30 KB header over HTTP/2: {}", up.describe());
    assert_eq!(up.request_count(), 1, "{}", up.describe());
    // Over the limit: h2 answers 431, or (a header block this far over it, sent in CONTINUATION
    // frames) ends the connection with GOAWAY; either way nothing goes on.
    let over = call(70_000);
    assert!(over == "431 2" || over == "000 0", "a 70 KB header over HTTP/2 got {over}");
    assert_eq!(up.request_count(), 1, "the oversized request never reached the partner: {}", up.describe());
    assert_eq!(call(10), "200 2", "the gateway keeps serving HTTP/2");
}

// ---------------------------------------------------------------------------------------------
// Slow clients

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_request_head_gets_408_within_the_header_read_timeout() {
    let w = World::new();
    let gw = Gateway::start(&w.env, &w.config().set("header_read_timeout_ms", 1000)).await;
    let got = exchange(gw.proxy, None, b"GET http://partner.test/ HTT").await;
    got.assert_gateway_error(408, "request-timeout");
    let after = got.closed_after.expect("closed");
    assert!(after >= Duration::from_millis(900) && after < Duration::from_millis(3000), "closed after {after:?}");
    // The admin listener too.
    let got = exchange(gw.admin, None, b"GET /healthz HTTP/1.1\r\nHost: x\r\n").await;
    got.assert_gateway_error(408, "request-timeout");
    // A connection that sends nothing is closed without an answer.
    let got = exchange(gw.proxy, None, b"").await;
    assert_eq!(got.text, "", "nothing is answered to a connection that said nothing");
    let after = got.closed_after.expect("a silent connection is closed");
    assert!(after < Duration::from_millis(3000), "closed after {after:?}");
}

/// The first bytes of a connection decide HTTP/1 or HTTP/2 (its 24-byte preface): a head that
/// arrives a byte at a time, and one whose first bytes are those of the preface (`PRI`) but not
/// the rest, are read as HTTP/1 heads and answered as such.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heads_that_arrive_a_byte_at_a_time_or_start_like_the_http2_preface_are_served_as_http1() {
    let w = World::new();
    let up = w.echo_partner().await;
    let gw = Gateway::start(&w.env, &w.config()).await;
    let host = format!("partner.test:{}", up.port());
    let head = format!("GET http://{host}/echo?slow=1 HTTP/1.1\r\nHost: {host}\r\n\r\n");
    let mut stream = connect(gw.proxy, None).await;
    for b in head.as_bytes() {
        stream.write_all(std::slice::from_ref(b)).await.unwrap();
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let answer = read_response(&mut stream).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "a head sent a byte at a time is answered:\n{answer}");
    assert_eq!(up.request_count(), 1);

    // `PRI` then not the preface: an HTTP/1 request line with an unusual method.
    let got = exchange(
        gw.proxy,
        None,
        format!("PRI http://{host}/echo HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await;
    assert!(got.text.starts_with("HTTP/1.1 "), "an HTTP/1 answer: {:?}", got.text);
    assert!(got.closed_after.is_some(), "closed after its answer (Connection: close)");
}

/// The watchdog is not woken when a head starts (it wakes at least once per header-read timeout
/// and looks again): a second request's head that stalls on a kept-alive connection still gets
/// 408 after the header-read timeout, not after the much longer keep-alive timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_second_head_on_a_kept_alive_connection_gets_408_within_the_header_read_timeout() {
    let w = World::new();
    let up = w.echo_partner().await;
    let config = w.config().set("header_read_timeout_ms", 1000).set("keep_alive_timeout_ms", 30_000);
    let gw = Gateway::start(&w.env, &config).await;
    let mut stream = connect(gw.proxy, None).await;
    let host = format!("partner.test:{}", up.port());
    stream.write_all(format!("GET http://{host}/echo HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes()).await.unwrap();
    let first = read_response(&mut stream).await;
    assert!(first.starts_with("HTTP/1.1 200"), "the first request is answered:\n{first}");
    // Idle for a while (the watchdog has armed for the keep-alive deadline), then half a head.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let started = Instant::now();
    stream.write_all(format!("GET http://{host}/echo HTTP/1.1\r\nHo").as_bytes()).await.unwrap();
    let got = read_to_close(&mut stream, started).await;
    got.assert_gateway_error(408, "request-timeout");
    let after = got.closed_after.expect("closed");
    assert!(after >= Duration::from_millis(900) && after < Duration::from_millis(5000), "closed after {after:?}");
    assert_eq!(up.request_count(), 1, "only the first request reached the partner");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_keep_alive_connection_is_closed_after_the_keep_alive_timeout() {
    let w = World::new();
    let up = w.echo_partner().await;
    // One request, then idleness: the close is timed from the end of the response, so a loaded
    // machine (the suite runs many tests at once) cannot make the test race its own timer.
    let gw = Gateway::start(&w.env, &w.config().set("keep_alive_timeout_ms", 3000)).await;
    let tcp = TcpStream::connect(gw.proxy).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp)).await.unwrap();
    let conn = tokio::spawn(conn);
    let url = format!("http://partner.test:{}/echo", up.port());
    let req = hyper::Request::get(&url).header("host", "partner.test").body(Full::new(Bytes::new())).unwrap();
    let resp = sender.send_request(req).await.expect("a request on a keep-alive connection");
    assert_eq!(resp.status(), 200);
    resp.into_body().collect().await.unwrap();
    let idle = Instant::now();
    tokio::time::timeout(Duration::from_secs(15), conn).await.expect("the gateway closes an idle connection").ok();
    let after = idle.elapsed();
    // Not before about the timeout (the response may reach the client a little after the timer
    // starts), and not much after it.
    assert!(after >= Duration::from_millis(1500) && after < Duration::from_millis(12000), "closed after {after:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_body_that_stalls_gets_408_not_a_partner_error() {
    let w = World::new();
    let up = w.echo_partner().await;
    let gw = Gateway::start(&w.env, &w.config().set("body_read_timeout_ms", 1000)).await;
    let host = format!("partner.test:{}", up.port());
    let head = format!("POST http://{host}/echo HTTP/1.1\r\nHost: {host}\r\nContent-Length: 100\r\n\r\n0123456789");
    let got = exchange(gw.proxy, None, head.as_bytes()).await;
    got.assert_gateway_error(408, "request-timeout");
    let after = got.closed_after.expect("closed");
    assert!(after < Duration::from_millis(4000), "answered after {after:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_stalled_connections_are_cut_off_while_requests_keep_succeeding() {
    const STALLED: usize = 500;
    let w = World::new();
    let up = w.echo_partner().await;
    let gw = Gateway::start(&w.env, &w.config().set("header_read_timeout_ms", 2000)).await;
    let started = Instant::now();
    let mut stalled = Vec::new();
    for _ in 0..STALLED {
        let mut s = TcpStream::connect(gw.proxy).await.expect("connect a stalled client");
        s.write_all(b"GET http://partner.test/ HT").await.unwrap();
        stalled.push(s);
    }
    let opened = started.elapsed();
    // Meanwhile, applications keep getting answers.
    let url = format!("http://partner.test:{}/echo", up.port());
    let mut served = 0;
    for _ in 0..20 {
        gw.proxy_get(&url).await.echo();
        served += 1;
    }
    let readers: Vec<_> =
        stalled.into_iter().map(|mut s| tokio::spawn(async move { read_to_close(&mut s, started).await })).collect();
    let mut latest = Duration::ZERO;
    let mut answered = 0;
    for r in readers {
        let got = r.await.unwrap();
        let after = got.closed_after.expect("every stalled connection is closed");
        latest = latest.max(after);
        if got.status() == Some(408) {
            answered += 1;
        }
    }
    eprintln!(
        "{STALLED} stalled connections opened in {opened:?}; {served} requests served meanwhile; all closed after \
         {latest:?} at the latest ({answered} with 408)"
    );
    assert_eq!(answered, STALLED, "each stalled head gets its 408");
    assert!(latest < opened + Duration::from_millis(2000 + 3000), "the last was closed after {latest:?}");
    gw.proxy_get(&url).await.echo();
}

// ---------------------------------------------------------------------------------------------
// Floods

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_max_connections_get_503_too_many_connections() {
    let w = World::new();
    let up = w.echo_partner().await;
    let config = w.config().set("max_connections", 10).set("header_read_timeout_ms", 30000);
    let gw = Gateway::start(&w.env, &config).await;
    let mut held = Vec::new();
    for _ in 0..10 {
        held.push(connect(gw.proxy, None).await);
    }
    let url = format!("http://partner.test:{}/echo", up.port());
    let request = format!("GET {url} HTTP/1.1\r\nHost: partner.test\r\n\r\n");
    // The accept loop admits in order; the eleventh and later are refused at once.
    let started = Instant::now();
    for _ in 0..5 {
        let got = exchange(gw.proxy, None, request.as_bytes()).await;
        got.assert_gateway_error(503, "too-many-connections");
        assert!(got.text.contains("max_connections"), "{}", got.text);
    }
    assert!(started.elapsed() < Duration::from_secs(3), "refusals are fast: {:?}", started.elapsed());
    drop(held);
    // Places free up as the held connections close.
    let ok = wait_until(Duration::from_secs(5), async || {
        let got = exchange(gw.proxy, None, request.as_bytes()).await;
        (got.status() == Some(200)).then_some(())
    })
    .await;
    assert!(ok.is_some(), "the gateway serves again once connections closed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_client_address_beyond_its_limit_gets_503_while_others_get_in() {
    let w = World::new();
    let up = w.echo_partner().await;
    let config = w.config().set("max_connections_per_client", 3).set("header_read_timeout_ms", 30000);
    let gw = Gateway::start(&w.env, &config).await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(connect(gw.proxy, Some("127.0.0.1")).await);
    }
    let url = format!("http://partner.test:{}/echo", up.port());
    let request = format!("GET {url} HTTP/1.1\r\nHost: partner.test\r\nConnection: close\r\n\r\n");
    let got = exchange(gw.proxy, Some("127.0.0.1"), request.as_bytes()).await;
    got.assert_gateway_error(503, "too-many-connections");
    assert!(got.text.contains("max_connections_per_client = 3"), "{}", got.text);
    // Another loopback address is another client.
    let got = exchange(gw.proxy, Some("127.0.0.2"), request.as_bytes()).await;
    assert_eq!(got.status(), Some(200), "another address gets in; got:\n{}", got.text);
    // The admin listener counts its own connections, with the same limits.
    let mut admin_held = Vec::new();
    for _ in 0..3 {
        admin_held.push(connect(gw.admin, Some("127.0.0.1")).await);
    }
    let got = exchange(gw.admin, Some("127.0.0.1"), b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await;
    got.assert_gateway_error(503, "too-many-connections");
    drop(held);
    drop(admin_held);
}
