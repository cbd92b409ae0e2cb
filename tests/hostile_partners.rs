//! Hostile and broken partners behind a running gateway (real sockets on 127.0.0.1): endless
//! response headers, an endless body (streamed, the gateway's memory stays bounded), a stalled
//! body, garbage instead of TLS, a 50-certificate chain and a ~1 MB chain, an alert instead of a
//! ServerHello and alerts in a loop, an answer before the request body was read. The application gets certgate's code within the configured
//! timeouts, and another route keeps answering meanwhile.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::Request;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::support::gateway::{Gateway, GatewayClient, GatewayConfig};
use crate::support::upstream::{Upstream, UpstreamConfig};
use crate::support::{Env, Minted, TestCa};

/// The limits the gateway runs with here: every answer must come within them (plus slack).
const HANDSHAKE_MS: u64 = 2_000;
const RESPONSE_HEADER_MS: u64 = 3_000;
const RESPONSE_BODY_MS: u64 = 2_000;
/// Slack on a loaded two-core machine.
const SLACK: Duration = Duration::from_secs(4);
/// How long a hostile partner connection may live before the partner drops it.
const PARTNER_LIMIT: Duration = Duration::from_secs(30);

/// How a partner misbehaves.
#[derive(Clone)]
enum Shape {
    /// After the request head: a status line, then one header line that never ends.
    EndlessHeaderLine,
    /// After the request head: a status line, then header fields without end.
    EndlessHeaderFields,
    /// A chunked body that never ends.
    EndlessBody,
    /// `content-length: 1000000`, 1000 bytes, then nothing (the connection stays open).
    StalledBody,
    /// Plain bytes instead of a TLS ServerHello.
    Garbage,
    /// TLS with this certificate chain (the partner's key signs).
    Chain(Vec<Vec<u8>>),
    /// A fatal `handshake_failure` alert instead of a ServerHello.
    Alert,
    /// Warning alerts without end instead of a ServerHello.
    AlertLoop,
    /// `413` right after the request head (keep-alive, no `connection: close`), then nothing
    /// read or said while the request body is still coming.
    EarlyAnswer,
    /// Not hostile: a chunked `200` right after the request head, then each piece of the request
    /// body echoed as it is read (a partner that answers as it reads), ended with the body.
    Duplex,
}

struct Partner {
    port: u16,
    task: tokio::task::JoinHandle<()>,
    /// Connections accepted so far.
    accepted: Arc<std::sync::atomic::AtomicUsize>,
}

impl Drop for Partner {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn tls_acceptor(chain: Vec<Vec<u8>>, key: Vec<u8>) -> tokio_rustls::TlsAcceptor {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let chain = chain.into_iter().map(CertificateDer::from).collect();
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(chain, PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key)))
        .expect("partner certificate");
    tokio_rustls::TlsAcceptor::from(Arc::new(config))
}

impl Partner {
    async fn start(server: &Minted, ca: &TestCa, shape: Shape) -> Partner {
        let chain = match &shape {
            Shape::Chain(chain) => chain.clone(),
            _ => vec![server.der.clone(), ca.intermediate.der.clone()],
        };
        let acceptor = tls_acceptor(chain, server.key_der());
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the hostile partner");
        let port = listener.local_addr().unwrap().port();
        let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = accepted.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else { continue };
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let (acceptor, shape) = (acceptor.clone(), shape.clone());
                tokio::spawn(async move {
                    let _ = tokio::time::timeout(PARTNER_LIMIT, misbehave(acceptor, tcp, shape)).await;
                });
            }
        });
        Partner { port, task, accepted }
    }
}

/// Read until a blank line (the request head), bounded by `PARTNER_LIMIT` through the caller:
/// the bytes read (the head and whatever followed it) and where the head ends.
async fn read_head<S: tokio::io::AsyncRead + Unpin>(s: &mut S) -> Option<(Vec<u8>, usize)> {
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if let Some(i) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
            return Some((seen, i + 4));
        }
        match s.read(&mut buf).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
        }
    }
}

/// The `Duplex` partner: answer at once, then echo the request body (framed by its
/// `content-length`) piece by piece as chunks while it is still coming.
async fn echo_as_read<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(s: &mut S) {
    let Some((seen, end)) = read_head(s).await else { return };
    let mut buf = vec![0u8; 16 * 1024];
    let head = String::from_utf8_lossy(&seen[..end]).to_ascii_lowercase();
    let Some(length) = head.lines().find_map(|l| l.strip_prefix("content-length:")?.trim().parse::<usize>().ok())
    else {
        return;
    };
    if s.write_all(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n").await.is_err() || s.flush().await.is_err()
    {
        return;
    }
    let mut piece = seen[end..].to_vec();
    let mut left = length;
    while left > 0 {
        if piece.is_empty() {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => piece.extend_from_slice(&buf[..n]),
            }
        }
        let take = piece.len().min(left);
        let chunk = [format!("{take:x}\r\n").as_bytes(), &piece[..take], b"\r\n"].concat();
        if s.write_all(&chunk).await.is_err() || s.flush().await.is_err() {
            return;
        }
        left -= take;
        piece.drain(..take);
    }
    let _ = s.write_all(b"0\r\n\r\n").await;
    let _ = s.flush().await;
    // Keep the connection until the gateway closes it.
    while matches!(s.read(&mut buf).await, Ok(n) if n > 0) {}
}

async fn misbehave(acceptor: tokio_rustls::TlsAcceptor, mut tcp: TcpStream, shape: Shape) {
    let mut first = [0u8; 512];
    match shape {
        Shape::Garbage => {
            let _ = tcp.read(&mut first).await;
            let _ = tcp.write_all(b"SSH-2.0-OpenSSH_9.6 hello, this is not TLS\r\n").await;
            let _ = tcp.read(&mut first).await;
            return;
        }
        Shape::Alert => {
            let _ = tcp.read(&mut first).await;
            // TLS 1.2 record: alert, fatal (2), handshake_failure (40).
            let _ = tcp.write_all(&[0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x28]).await;
            let _ = tcp.read(&mut first).await;
            return;
        }
        Shape::AlertLoop => {
            let _ = tcp.read(&mut first).await;
            // Warning (1) no_renegotiation (100), again and again.
            let record = [0x15, 0x03, 0x03, 0x00, 0x02, 0x01, 0x64].repeat(512);
            while tcp.write_all(&record).await.is_ok() {}
            return;
        }
        _ => {}
    }
    let Ok(mut tls) = acceptor.accept(tcp).await else { return };
    if let Shape::Duplex = shape {
        echo_as_read(&mut tls).await;
        return;
    }
    if read_head(&mut tls).await.is_none() {
        return;
    }
    match shape {
        Shape::EndlessHeaderLine => {
            let _ = tls.write_all(b"HTTP/1.1 200 OK\r\nX-Endless: ").await;
            let chunk = vec![b'a'; 16 * 1024];
            while tls.write_all(&chunk).await.is_ok() {}
        }
        Shape::EndlessHeaderFields => {
            let _ = tls.write_all(b"HTTP/1.1 200 OK\r\n").await;
            let mut i = 0u64;
            loop {
                let line = format!("X-Field-{i}: {}\r\n", "b".repeat(64));
                if tls.write_all(line.as_bytes()).await.is_err() {
                    break;
                }
                i += 1;
            }
        }
        Shape::EndlessBody => {
            let _ = tls.write_all(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n").await;
            let data = vec![b'z'; 64 * 1024];
            let chunk = [format!("{:x}\r\n", data.len()).into_bytes(), data, b"\r\n".to_vec()].concat();
            while tls.write_all(&chunk).await.is_ok() {}
        }
        Shape::StalledBody => {
            let _ = tls.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 1000000\r\n\r\n").await;
            let _ = tls.write_all(&[b's'; 1000]).await;
            let _ = tls.flush().await;
            // Keep the connection open, say nothing more.
            let mut buf = [0u8; 1024];
            while matches!(tls.read(&mut buf).await, Ok(n) if n > 0) {}
        }
        Shape::Chain(_) => {
            let _ = tls.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok").await;
            let _ = tls.flush().await;
        }
        Shape::EarlyAnswer => {
            let _ = tls.write_all(b"HTTP/1.1 413 Payload Too Large\r\ncontent-length: 9\r\n\r\ntoo large").await;
            let _ = tls.flush().await;
            // Keep the connection open, read nothing more.
            tokio::time::sleep(PARTNER_LIMIT).await;
        }
        Shape::Garbage | Shape::Alert | Shape::AlertLoop | Shape::Duplex => unreachable!(),
    }
}

/// A store that trusts the partner CA; `partner.test` (the hostile one) and `other.test` (a
/// well-behaved echo partner) both go to 127.0.0.1 with no client certificate.
struct World {
    env: Env,
    ca: TestCa,
    other: Upstream,
}

impl World {
    async fn new() -> World {
        let env = Env::new();
        let ca = TestCa::new("partner");
        let root = env.file("partner-root.pem", &ca.root.cert_pem);
        env.run(&["--json", "trust", "add", "partnerca", root.to_str().unwrap()]).ok();
        env.run(&["--json", "bind", "partner.test", "--no-cert"]).ok();
        env.run(&["--json", "bind", "other.test", "--no-cert"]).ok();
        let other = Upstream::start(UpstreamConfig::new(&ca.server(&["other.test"]), &ca)).await;
        World { env, ca, other }
    }

    fn config(&self) -> GatewayConfig {
        GatewayConfig::new()
            .resolve(&["partner.test", "other.test"])
            .set("handshake_timeout_ms", HANDSHAKE_MS)
            .response_header_timeout_ms(RESPONSE_HEADER_MS)
            .set("response_body_timeout_ms", RESPONSE_BODY_MS)
    }

    async fn partner(&self, shape: Shape) -> Partner {
        Partner::start(&self.ca.server(&["partner.test"]), &self.ca, shape).await
    }

    fn other_url(&self) -> String {
        format!("http://other.test:{}/echo", self.other.port())
    }
}

/// While `hostile` runs, `other.test` keeps answering 200: at least one request, each within a
/// few seconds. Returns what `hostile` returned.
async fn meanwhile_other_route_works<T>(
    client: &GatewayClient,
    other_url: &str,
    hostile: impl Future<Output = T>,
) -> T {
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (client2, url, stop2) = (client.clone(), other_url.to_string(), stop.clone());
    let checker = tokio::spawn(async move {
        let mut answered = 0;
        for _ in 0..200 {
            let started = Instant::now();
            let r = client2.proxy_get(&url).await;
            assert_eq!(r.status, 200, "the other route failed while a partner misbehaved: {}", r.describe());
            assert!(started.elapsed() < Duration::from_secs(5), "the other route took {:?}", started.elapsed());
            answered += 1;
            if stop2.load(std::sync::atomic::Ordering::SeqCst) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        answered
    });
    let out = hostile.await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let answered = checker.await.expect("the other route's checker panicked");
    assert!(answered >= 1, "the other route was never asked");
    out
}

/// `GET /` to the hostile partner through the gateway: the gateway's own error, within `limit`.
async fn expect_error(w: &World, gw: &Gateway, shape: Shape, status: u16, codes: &[&str], limit: Duration) -> String {
    expect_error_from(w, gw, w.partner(shape).await, status, codes, limit).await
}

async fn expect_error_from(
    w: &World,
    gw: &Gateway,
    partner: Partner,
    status: u16,
    codes: &[&str],
    limit: Duration,
) -> String {
    let client = gw.client();
    let url = format!("http://partner.test:{}/", partner.port);
    let started = Instant::now();
    let r = meanwhile_other_route_works(&client, &w.other_url(), client.proxy_get(&url)).await;
    let took = started.elapsed();
    assert_eq!(r.status, status, "{}", r.describe());
    let code = r.error_code().unwrap_or_default();
    assert!(codes.contains(&code.as_str()), "expected one of {codes:?}: {}", r.describe());
    r.gateway_error(status, &code);
    assert!(took < limit + SLACK, "the answer took {took:?}, the limit is {limit:?}");
    format!("{code} after {} ms: {}", took.as_millis(), r.message())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partner_response_heads_without_end_get_a_502() {
    let w = World::new().await;
    let gw = Gateway::start(&w.env, &w.config()).await;
    let limit = Duration::from_millis(RESPONSE_HEADER_MS);
    let line = expect_error(&w, &gw, Shape::EndlessHeaderLine, 502, &["upstream-connect-failed"], limit).await;
    assert!(line.contains("response head"), "{line}");
    let fields = expect_error(&w, &gw, Shape::EndlessHeaderFields, 502, &["upstream-connect-failed"], limit).await;
    eprintln!("endless header line: {line}\nendless header fields: {fields}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partners_that_do_not_speak_tls_get_a_502_within_the_handshake_timeout() {
    let w = World::new().await;
    let gw = Gateway::start(&w.env, &w.config()).await;
    let limit = Duration::from_millis(HANDSHAKE_MS);
    let garbage = expect_error(&w, &gw, Shape::Garbage, 502, &["upstream-connect-failed"], limit).await;
    let alert = expect_error(&w, &gw, Shape::Alert, 502, &["upstream-connect-failed"], limit).await;
    assert!(alert.contains("handshake_failure"), "{alert}");
    let alerts = expect_error(&w, &gw, Shape::AlertLoop, 502, &["upstream-connect-failed"], limit).await;
    eprintln!("garbage: {garbage}\nalert: {alert}\nalerts in a loop: {alerts}");
}

/// `count` self-signed CA certificates, each with `padding` bytes in a private extension: with
/// the name of `ca`'s intermediate under other keys (`look_alike`), or with names of their own.
fn decoys(ca: &TestCa, count: usize, padding: usize, look_alike: bool) -> Vec<Vec<u8>> {
    (0..count)
        .map(|i| {
            let mut params = ca.intermediate.params.clone();
            if !look_alike {
                let mut dn = rcgen::DistinguishedName::new();
                dn.push(rcgen::DnType::CommonName, format!("unrelated {i}"));
                params.distinguished_name = dn;
            }
            params.serial_number = Some(rcgen::SerialNumber::from((i as u64 + 1000).to_be_bytes().to_vec()));
            if padding > 0 {
                params.custom_extensions =
                    vec![rcgen::CustomExtension::from_oid_content(&[1, 3, 6, 1, 4, 1, 55555, 1], vec![b'p'; padding])];
            }
            let key = rcgen::KeyPair::generate().unwrap();
            params.self_signed(&key).unwrap().der().to_vec()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_and_huge_certificate_chains_are_refused_within_the_handshake_timeout() {
    let w = World::new().await;
    let gw = Gateway::start(&w.env, &w.config()).await;
    let limit = Duration::from_millis(HANDSHAKE_MS);
    let leaf = w.ca.server(&["partner.test"]);
    // 50 certificates: the leaf and 49 look-alike intermediates that do not sign it.
    let mut chain = vec![leaf.der.clone()];
    chain.extend(decoys(&w.ca, 49, 0, true));
    let long = Partner::start(&leaf, &w.ca, Shape::Chain(chain.clone())).await;
    let client = gw.client();
    let started = Instant::now();
    let r = meanwhile_other_route_works(
        &client,
        &w.other_url(),
        client.proxy_get(&format!("http://partner.test:{}/", long.port)),
    )
    .await;
    r.gateway_error(502, "upstream-untrusted");
    assert!(started.elapsed() < limit + SLACK, "took {:?}", started.elapsed());
    let long_msg = r.message();
    // 48 unrelated certificates and then the real intermediate: a long chain that is valid works.
    let mut chain = vec![leaf.der.clone()];
    chain.extend(decoys(&w.ca, 48, 0, false));
    chain.push(w.ca.intermediate.der.clone());
    let valid = Partner::start(&leaf, &w.ca, Shape::Chain(chain)).await;
    let r = client.proxy_get(&format!("http://partner.test:{}/", valid.port)).await;
    assert_eq!(r.status, 200, "{}", r.describe());
    assert_eq!(r.text(), "ok");
    // About 1 MB: 50 certificates of 20 KB.
    let mut huge = vec![leaf.der.clone()];
    huge.extend(decoys(&w.ca, 48, 20_500, false));
    huge.push(w.ca.intermediate.der.clone());
    let total: usize = huge.iter().map(Vec::len).sum();
    assert!(total > 1_000_000, "{total}");
    let huge_msg = expect_error_from(
        &w,
        &gw,
        Partner::start(&leaf, &w.ca, Shape::Chain(huge)).await,
        502,
        &["upstream-connect-failed", "upstream-untrusted"],
        limit,
    )
    .await;
    eprintln!("50 certificates: {long_msg}\n{total} bytes of certificates: {huge_msg}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_partner_body_is_cut_within_the_body_timeout() {
    let w = World::new().await;
    let gw = Gateway::process(&w.env, &w.config()).await;
    let partner = w.partner(Shape::StalledBody).await;
    let client = gw.client();
    let url: hyper::Uri = format!("http://partner.test:{}/", partner.port).parse().unwrap();
    let started = Instant::now();
    let (received, outcome) = meanwhile_other_route_works(&client, &w.other_url(), async {
        let req = Request::get(url.clone())
            .header("host", url.authority().unwrap().as_str())
            .body(Empty::<Bytes>::new())
            .unwrap();
        let resp = client.send_streaming(gw.proxy, req).await;
        assert_eq!(resp.status(), 200);
        let mut body = resp.into_body();
        let mut received = 0usize;
        let limit = Duration::from_millis(RESPONSE_HEADER_MS + RESPONSE_BODY_MS) + SLACK;
        loop {
            match tokio::time::timeout_at((started + limit).into(), body.frame()).await {
                Err(_) => break (received, "still open".to_string()),
                Ok(None) => break (received, "ended".to_string()),
                Ok(Some(Err(e))) => break (received, format!("cut: {e}")),
                Ok(Some(Ok(f))) => received += f.data_ref().map_or(0, |d| d.len()),
            }
        }
    })
    .await;
    let took = started.elapsed();
    assert_eq!(received, 1000, "the bytes the partner sent reach the application");
    assert!(outcome.starts_with("cut"), "the application's response must be cut, not {outcome} ({took:?})");
    assert!(took < Duration::from_millis(RESPONSE_BODY_MS) + SLACK, "cut after {took:?}");
    let log = wait_for_log(&client, "upstream-timeout").await;
    assert!(log.contains("response_body_timeout_ms"), "{log}");
}

/// A partner that answers an upload before reading its body (a 413), and then reads no more: the
/// application gets the partner's answer, not a timeout or a 502, and the connection, whose
/// request was cut short, is never used for another request (the next one opens its own).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_before_the_request_body_was_sent_reaches_the_application_on_a_connection_not_reused() {
    let w = World::new().await;
    let gw = Gateway::start(&w.env, &w.config()).await;
    let partner = w.partner(Shape::EarlyAnswer).await;
    let client = gw.client();
    let url = format!("http://partner.test:{}/upload", partner.port);
    // More than loopback's socket buffers hold: the body cannot all be written.
    let body = Bytes::from(vec![b'u'; 32 * 1024 * 1024]);
    for round in 1..=2 {
        let started = Instant::now();
        let r = client.proxy("POST", &url, &[("content-type", "application/octet-stream")], body.clone()).await;
        assert_eq!(r.status, 413, "round {round}: {}", r.describe());
        assert_eq!(r.text(), "too large", "round {round}");
        assert!(
            started.elapsed() < Duration::from_millis(RESPONSE_HEADER_MS),
            "round {round}: {:?}",
            started.elapsed()
        );
    }
    assert_eq!(
        partner.accepted.load(std::sync::atomic::Ordering::SeqCst),
        2,
        "the connection whose request body was cut short served no second request"
    );
}

/// A partner that answers as it reads (its response streams while the request body is still
/// coming, each piece echoed): the application sends the second half of its body only once the
/// answer's head has reached it, and the gateway must still carry that half to the partner and
/// the echo back. (Stopping at the answer's head left the partner waiting for the body and the
/// application for the rest of the answer: the response was cut after the body timeout.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partner_that_answers_while_it_reads_the_request_gets_the_whole_body() {
    let w = World::new().await;
    let gw = Gateway::start(&w.env, &w.config()).await;
    let partner = w.partner(Shape::Duplex).await;
    let client = gw.client();
    let url: hyper::Uri = format!("http://partner.test:{}/echo-as-you-read", partner.port).parse().unwrap();
    let first = Bytes::from(vec![b'a'; 64 * 1024]);
    let second = Bytes::from(vec![b'b'; 64 * 1024]);
    let (tx, body) = crate::support::upstream::body_channel(4);
    tx.send(first.clone()).await.unwrap();
    let req = Request::post(url.clone())
        .header("host", url.authority().unwrap().as_str())
        .header("content-length", (first.len() + second.len()).to_string())
        .body(body)
        .unwrap();
    let resp = client.send_streaming(gw.proxy, req).await;
    assert_eq!(resp.status(), 200, "the answer's head came before the request's second half");
    tx.send(second.clone()).await.unwrap();
    drop(tx);
    let limit = Duration::from_millis(RESPONSE_BODY_MS) + SLACK;
    let echoed = tokio::time::timeout(limit, resp.into_body().collect())
        .await
        .expect("the echo ends")
        .expect("the echo is not cut")
        .to_bytes();
    assert!(echoed == [first, second].concat(), "the echo differs: {} bytes", echoed.len());
}

async fn wait_for_log(client: &GatewayClient, needle: &str) -> String {
    crate::support::gateway::wait_until(Duration::from_secs(5), async || {
        let log = client.log();
        log.contains(needle).then_some(log)
    })
    .await
    .unwrap_or_else(|| panic!("no {needle} in the gateway log:\n{}", client.log()))
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc/PID/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/PID/status")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endless_partner_body_streams_with_bounded_memory() {
    let w = World::new().await;
    let gw = Gateway::process(&w.env, &w.config()).await;
    let pid = gw.pid().expect("a process-mode gateway");
    let partner = w.partner(Shape::EndlessBody).await;
    let client = gw.client();
    // Warm up: one exchange with the other route, so the baseline includes a live connection.
    assert_eq!(client.proxy_get(&w.other_url()).await.status, 200);
    let before = rss_kib(pid);
    let url: hyper::Uri = format!("http://partner.test:{}/", partner.port).parse().unwrap();
    const WANT: usize = 256 * 1024 * 1024;
    let started = Instant::now();
    let (received, peak) = meanwhile_other_route_works(&client, &w.other_url(), async {
        let req = Request::get(url.clone())
            .header("host", url.authority().unwrap().as_str())
            .body(Empty::<Bytes>::new())
            .unwrap();
        let resp = client.send_streaming(gw.proxy, req).await;
        assert_eq!(resp.status(), 200);
        let mut body = resp.into_body();
        let (mut received, mut peak, mut next_sample) = (0usize, before, 0usize);
        while received < WANT && started.elapsed() < Duration::from_secs(60) {
            // Read slowly at first, so the gateway has every reason to buffer if it would.
            if received < 8 * 1024 * 1024 {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            match tokio::time::timeout(Duration::from_secs(10), body.frame()).await {
                Ok(Some(Ok(f))) => received += f.data_ref().map_or(0, |d| d.len()),
                other => panic!("the endless body stopped after {received} bytes: {:?}", other.map(|o| o.is_some())),
            }
            if received >= next_sample {
                peak = peak.max(rss_kib(pid));
                next_sample = received + 4 * 1024 * 1024;
            }
        }
        (received, peak)
    })
    .await;
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "endless body: {} MiB in {secs:.1} s ({:.0} MiB/s); gateway RSS {} KiB before, peak {} KiB",
        received / (1024 * 1024),
        received as f64 / (1024.0 * 1024.0) / secs,
        before,
        peak
    );
    assert!(received >= WANT, "only {received} bytes within 60 s");
    assert!(peak < before + 64 * 1024, "the gateway's RSS grew from {before} KiB to {peak} KiB while streaming");
}

/// A partner that accepts TCP and never answers the ClientHello (a partner whose TLS has stalled),
/// counting how many of its connections are open at once.
struct Silent {
    port: u16,
    peak: Arc<std::sync::atomic::AtomicUsize>,
    accepted: Arc<std::sync::atomic::AtomicUsize>,
    /// When each connection was accepted.
    accepted_at: Arc<std::sync::Mutex<Vec<Instant>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Silent {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Silent {
    async fn start() -> Silent {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (open, peak, accepted) =
            (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let accepted_at = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (open2, peak2, accepted2, at2) = (open.clone(), peak.clone(), accepted.clone(), accepted_at.clone());
        let task = tokio::spawn(async move {
            while let Ok((mut tcp, _)) = listener.accept().await {
                at2.lock().unwrap().push(Instant::now());
                accepted2.fetch_add(1, Ordering::SeqCst);
                let now = open2.fetch_add(1, Ordering::SeqCst) + 1;
                peak2.fetch_max(now, Ordering::SeqCst);
                let open3 = open2.clone();
                tokio::spawn(async move {
                    let mut sink = [0u8; 4096];
                    let _ = tokio::time::timeout(PARTNER_LIMIT, async {
                        while matches!(tcp.read(&mut sink).await, Ok(n) if n > 0) {}
                    })
                    .await;
                    open3.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        Silent { port, peak, accepted, accepted_at, task }
    }
}

/// 40 requests at once to a partner whose handshakes stall: certgate opens at most
/// `MAX_CONNECTING` (32) connections to it at a time (not one per waiting request), and every
/// application gets 504 upstream-timeout within the limits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partner_whose_handshakes_stall_gets_at_most_32_connections_at_once() {
    use std::sync::atomic::Ordering;
    let w = World::new().await;
    let gw = Gateway::start(&w.env, &w.config()).await;
    let partner = Silent::start().await;
    let client = gw.client();
    let url = format!("http://partner.test:{}/", partner.port);
    let started = Instant::now();
    let requests = (0..40).map(|_| {
        let (client, url) = (client.clone(), url.clone());
        tokio::spawn(async move { client.proxy_get(&url).await })
    });
    let answers: Vec<_> = join_tasks(requests).await;
    let took = started.elapsed();
    for r in &answers {
        assert_eq!(r.status, 504, "{}", r.describe());
        r.gateway_error(504, "upstream-timeout");
    }
    // Opened at once: accepted within one second of each other (the handshake timeout is two).
    // The partner's own count of open connections lags behind certgate's closes under load.
    let at = partner.accepted_at.lock().unwrap().clone();
    let burst = at
        .iter()
        .map(|a| at.iter().filter(|b| **b >= *a && b.duration_since(*a) < Duration::from_secs(1)).count())
        .max();
    let peak = partner.peak.load(Ordering::SeqCst);
    assert!(
        burst.unwrap_or(0) <= 32,
        "the partner saw {burst:?} connections opened within a second (at most 32; {peak} open at once by its count)"
    );
    assert!(partner.accepted.load(Ordering::SeqCst) >= 32, "the first 32 connections are opened at once");
    assert!(took < Duration::from_millis(RESPONSE_HEADER_MS) + SLACK, "the last answer came after {took:?}");
}

/// A burst of requests against a partner slower to open connections than requests arrive: the
/// first connections answer the burst as they come back idle, and the connections the other
/// requests asked for are not opened afterwards, when nobody waits for them any more (hyper's
/// pool used to finish each one in the background: 300 requests, 300 handshakes).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_against_a_slow_partner_opens_only_the_connections_it_needs() {
    const REQUESTS: usize = 300;
    let w = World::new().await;
    let gw = Gateway::start(&w.env, &w.config()).await;
    let slow = Upstream::start(
        UpstreamConfig::new(&w.ca.server(&["partner.test"]), &w.ca)
            .http11_only()
            .handshake_delay(Duration::from_millis(300)),
    )
    .await;
    let client = gw.client();
    let url = format!("http://partner.test:{}/echo", slow.port());
    let requests = (0..REQUESTS).map(|_| {
        let (client, url) = (client.clone(), url.clone());
        tokio::spawn(async move { client.proxy_get(&url).await })
    });
    let answers: Vec<_> = join_tasks(requests).await;
    for r in &answers {
        assert_eq!(r.status, 200, "{}", r.describe());
    }
    assert_eq!(slow.requests().len(), REQUESTS);
    // Long enough for every connection asked for to have been opened (32 at a time, 300 ms each).
    tokio::time::sleep(Duration::from_secs(4)).await;
    let opened = slow.handshakes();
    let opened = opened.full + opened.resumed;
    assert!(
        (32..=128).contains(&opened),
        "the partner completed {opened} handshakes for {REQUESTS} requests (32 at once, then only what was waited for)"
    );
}

async fn join_tasks<T>(handles: impl Iterator<Item = tokio::task::JoinHandle<T>>) -> Vec<T> {
    let mut out = Vec::new();
    for h in handles.collect::<Vec<_>>() {
        out.push(h.await.expect("a request task panicked"));
    }
    out
}
