//! An in-process partner server (tokio-rustls + hyper 1) that records what it received, so a test
//! asserts which certificate, SNI, ALPN, TLS version, HTTP version, path and headers actually
//! reached the partner, not just that a 200 came back.
//!
//! Endpoints: `/echo` and `/echo/...` (any method; 200 JSON of what was received), `/slow?ms=N` (answers after N
//! ms), `/big?bytes=N[&pause_after=M]` (streams N bytes of `pattern`; with `pause_after` it stops
//! after M bytes until `Upstream::release` is called), `/soap` (POST: a SOAP 1.1 `EchoResponse`;
//! `GET /soap?wsdl`: the WSDL). The listener is bound on 127.0.0.1:0 before `start` returns.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{HandshakeKind, RootCertStore, ServerConfig};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use super::{sha256_hex, Minted, TestCa};

/// Whether the partner asks for a client certificate, and which CA it must chain to.
#[derive(Clone)]
pub enum ClientAuth {
    /// No CertificateRequest at all.
    None,
    /// Requested; a certificate is verified against the roots when one is sent, but none is fine.
    Optional(Vec<Vec<u8>>),
    /// Required and verified against the roots (DER); otherwise the handshake fails with an alert.
    Required(Vec<Vec<u8>>),
    /// Required and verified, but the request names no CA (like nginx's `optional_no_ca`
    /// without a client CA list): any certificate may be offered.
    AnyNoNames(Vec<Vec<u8>>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Alpn {
    H2AndHttp11,
    Http11Only,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Versions {
    Both,
    Tls12Only,
    Tls13Only,
}

/// How the partner behaves. Defaults: no client certificate asked, ALPN `h2` + `http/1.1`, TLS
/// 1.2 and 1.3, keep-alive on.
#[derive(Clone)]
pub struct UpstreamConfig {
    chain: Vec<Vec<u8>>,
    key: Vec<u8>,
    client_auth: ClientAuth,
    alpn: Alpn,
    versions: Versions,
    keep_alive: bool,
    handshake_delay: Duration,
    idle_close: Option<Duration>,
}

impl UpstreamConfig {
    /// Serve `server` (minted by `ca`), sending the leaf and `ca`'s intermediate.
    pub fn new(server: &Minted, ca: &TestCa) -> Self {
        UpstreamConfig {
            chain: vec![server.der.clone(), ca.intermediate.der.clone()],
            key: server.key_der(),
            client_auth: ClientAuth::None,
            alpn: Alpn::H2AndHttp11,
            versions: Versions::Both,
            keep_alive: true,
            handshake_delay: Duration::ZERO,
            idle_close: None,
        }
    }
    /// Require a client certificate that chains to `ca`'s root.
    pub fn require_client_cert(mut self, ca: &TestCa) -> Self {
        self.client_auth = ClientAuth::Required(vec![ca.root.der.clone()]);
        self
    }
    /// Ask for a client certificate chaining to `ca`'s root, but accept none.
    pub fn optional_client_cert(mut self, ca: &TestCa) -> Self {
        self.client_auth = ClientAuth::Optional(vec![ca.root.der.clone()]);
        self
    }
    pub fn client_auth(mut self, auth: ClientAuth) -> Self {
        self.client_auth = auth;
        self
    }
    pub fn http11_only(mut self) -> Self {
        self.alpn = Alpn::Http11Only;
        self
    }
    pub fn tls12_only(mut self) -> Self {
        self.versions = Versions::Tls12Only;
        self
    }
    pub fn tls13_only(mut self) -> Self {
        self.versions = Versions::Tls13Only;
        self
    }
    /// Answer every HTTP/1.1 response with `Connection: close`, so each request needs a new
    /// connection (and handshake) from the client. Use with `http11_only`.
    pub fn close_after_each_response(mut self) -> Self {
        self.keep_alive = false;
        self
    }

    /// Wait this long after accepting a connection before the TLS handshake: a partner slower
    /// to open connections than requests arrive.
    pub fn handshake_delay(mut self, delay: Duration) -> Self {
        self.handshake_delay = delay;
        self
    }

    /// Close an HTTP/1.1 connection that waits this long for its next request (as Apache's
    /// `KeepAliveTimeout` does), without telling the client beforehand.
    pub fn close_when_idle_for(mut self, idle: Duration) -> Self {
        self.idle_close = Some(idle);
        self
    }

    fn server_config(&self) -> Arc<ServerConfig> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let versions: &[&'static rustls::SupportedProtocolVersion] = match self.versions {
            Versions::Both => &[&rustls::version::TLS13, &rustls::version::TLS12],
            Versions::Tls12Only => &[&rustls::version::TLS12],
            Versions::Tls13Only => &[&rustls::version::TLS13],
        };
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(versions)
            .expect("protocol versions");
        let roots = |ders: &Vec<Vec<u8>>| {
            let mut store = RootCertStore::empty();
            for d in ders {
                store.add(CertificateDer::from(d.clone())).expect("test CA root");
            }
            Arc::new(store)
        };
        let builder = match &self.client_auth {
            ClientAuth::None => builder.with_no_client_auth(),
            ClientAuth::Optional(ders) => builder.with_client_cert_verifier(
                WebPkiClientVerifier::builder_with_provider(roots(ders), provider.clone())
                    .allow_unauthenticated()
                    .build()
                    .expect("client verifier"),
            ),
            ClientAuth::Required(ders) => builder.with_client_cert_verifier(
                WebPkiClientVerifier::builder_with_provider(roots(ders), provider.clone())
                    .build()
                    .expect("client verifier"),
            ),
            ClientAuth::AnyNoNames(ders) => builder.with_client_cert_verifier(
                WebPkiClientVerifier::builder_with_provider(roots(ders), provider.clone())
                    .clear_root_hint_subjects()
                    .build()
                    .expect("client verifier"),
            ),
        };
        let chain: Vec<CertificateDer<'static>> = self.chain.iter().map(|d| CertificateDer::from(d.clone())).collect();
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key.clone()));
        let mut config = builder.with_single_cert(chain, key).expect("server certificate and key");
        config.alpn_protocols = match self.alpn {
            Alpn::H2AndHttp11 => vec![b"h2".to_vec(), b"http/1.1".to_vec()],
            Alpn::Http11Only => vec![b"http/1.1".to_vec()],
        };
        Arc::new(config)
    }
}

/// One request as the partner saw it.
#[derive(Clone, Debug)]
pub struct Recorded {
    /// The client certificate chain received, DER, leaf first; empty when none was sent.
    pub client_chain: Vec<Vec<u8>>,
    pub sni: Option<String>,
    pub alpn: Option<String>,
    /// `TLSv1.2` or `TLSv1.3`.
    pub tls_version: String,
    /// Whether the TLS connection that carried it was resumed.
    pub resumed: bool,
    /// `HTTP/1.1` or `HTTP/2.0`.
    pub http_version: String,
    pub method: String,
    /// Path and query.
    pub path: String,
    /// Lowercase names, in arrival order.
    pub headers: Vec<(String, String)>,
    pub body_len: u64,
    pub body_sha256: String,
}

impl Recorded {
    /// SHA-256 of the client leaf, lowercase hex (the certificate id certgate uses).
    pub fn client_cert_sha256(&self) -> Option<String> {
        self.client_chain.first().map(|d| sha256_hex(d))
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers.iter().find(|(k, _)| *k == name).map(|(_, v)| v.as_str())
    }
    pub fn to_json(&self) -> serde_json::Value {
        let mut headers = BTreeMap::<String, String>::new();
        for (k, v) in &self.headers {
            headers
                .entry(k.clone())
                .and_modify(|old| {
                    old.push_str(", ");
                    old.push_str(v);
                })
                .or_insert_with(|| v.clone());
        }
        serde_json::json!({
            "client_cert_sha256": self.client_cert_sha256(),
            "client_chain_sha256": self.client_chain.iter().map(|d| sha256_hex(d)).collect::<Vec<_>>(),
            "sni": self.sni,
            "alpn": self.alpn,
            "tls_version": self.tls_version,
            "resumed": self.resumed,
            "http_version": self.http_version,
            "method": self.method,
            "path": self.path,
            "headers": headers,
            "body_len": self.body_len,
            "body_sha256": self.body_sha256,
        })
    }
}

/// Handshakes the partner completed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Handshakes {
    pub full: u64,
    pub resumed: u64,
}

struct State {
    requests: Mutex<Vec<Recorded>>,
    full: AtomicU64,
    resumed: AtomicU64,
    failures: Mutex<Vec<String>>,
    upload_progress: AtomicU64,
    release: tokio::sync::Semaphore,
    /// TLS connections established and not yet ended.
    open: AtomicU64,
    /// New connections are accepted and then left without a handshake.
    stalled: std::sync::atomic::AtomicBool,
}

impl Default for State {
    fn default() -> Self {
        State {
            requests: Mutex::default(),
            full: AtomicU64::new(0),
            resumed: AtomicU64::new(0),
            failures: Mutex::default(),
            upload_progress: AtomicU64::new(0),
            release: tokio::sync::Semaphore::new(0),
            open: AtomicU64::new(0),
            stalled: std::sync::atomic::AtomicBool::new(false),
        }
    }
}

#[derive(Clone)]
struct ConnInfo {
    chain: Vec<Vec<u8>>,
    sni: Option<String>,
    alpn: Option<String>,
    tls_version: String,
    resumed: bool,
}

/// A running partner; stops when dropped.
pub struct Upstream {
    addr: SocketAddr,
    state: Arc<State>,
    task: tokio::task::JoinHandle<()>,
}

impl Upstream {
    /// Bind 127.0.0.1:0 and serve in the current tokio runtime.
    pub async fn start(config: UpstreamConfig) -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind upstream");
        let addr = listener.local_addr().unwrap();
        let acceptor = TlsAcceptor::from(config.server_config());
        let state = Arc::new(State::default());
        let keep_alive = config.keep_alive;
        let handshake_delay = config.handshake_delay;
        let idle_close = config.idle_close;
        let accept_state = state.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else { continue };
                let acceptor = acceptor.clone();
                let state = accept_state.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(handshake_delay).await;
                    if state.stalled.load(Ordering::SeqCst) {
                        // Hold the socket without a word until the client gives up.
                        let mut tcp = tcp;
                        let mut sink = [0u8; 1024];
                        let idle = tokio::time::timeout(Duration::from_secs(30), async {
                            while matches!(tokio::io::AsyncReadExt::read(&mut tcp, &mut sink).await, Ok(n) if n > 0) {}
                        });
                        let _ = idle.await;
                        return;
                    }
                    let tls = match tokio::time::timeout(Duration::from_secs(20), acceptor.accept(tcp)).await {
                        Ok(Ok(tls)) => tls,
                        Ok(Err(e)) => {
                            state.failures.lock().unwrap().push(e.to_string());
                            return;
                        }
                        Err(_) => {
                            state.failures.lock().unwrap().push("handshake timed out".into());
                            return;
                        }
                    };
                    let conn = tls.get_ref().1;
                    let resumed = matches!(conn.handshake_kind(), Some(HandshakeKind::Resumed));
                    if resumed {
                        state.resumed.fetch_add(1, Ordering::SeqCst);
                    } else {
                        state.full.fetch_add(1, Ordering::SeqCst);
                    }
                    let info = ConnInfo {
                        chain: conn
                            .peer_certificates()
                            .map(|c| c.iter().map(|d| d.to_vec()).collect())
                            .unwrap_or_default(),
                        sni: conn.server_name().map(str::to_string),
                        alpn: conn.alpn_protocol().map(|a| String::from_utf8_lossy(a).into_owned()),
                        tls_version: match conn.protocol_version() {
                            Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2".into(),
                            Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3".into(),
                            other => format!("{other:?}"),
                        },
                        resumed,
                    };
                    let svc_state = state.clone();
                    let svc = service_fn(move |req| handle(req, info.clone(), svc_state.clone()));
                    let mut builder = auto::Builder::new(TokioExecutor::new());
                    builder.http1().keep_alive(keep_alive);
                    if let Some(idle) = idle_close {
                        builder.http1().timer(hyper_util::rt::TokioTimer::new()).header_read_timeout(idle);
                    }
                    state.open.fetch_add(1, Ordering::SeqCst);
                    let served = builder.serve_connection(TokioIo::new(tls), svc).await;
                    state.open.fetch_sub(1, Ordering::SeqCst);
                    if let Err(e) = served {
                        state.failures.lock().unwrap().push(format!("connection: {e}"));
                    }
                });
            }
        });
        Upstream { addr, state, task }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
    pub fn port(&self) -> u16 {
        self.addr.port()
    }
    /// Every request received so far, in arrival order.
    pub fn requests(&self) -> Vec<Recorded> {
        self.state.requests.lock().unwrap().clone()
    }
    pub fn last_request(&self) -> Option<Recorded> {
        self.state.requests.lock().unwrap().last().cloned()
    }
    pub fn request_count(&self) -> usize {
        self.state.requests.lock().unwrap().len()
    }
    pub fn handshakes(&self) -> Handshakes {
        Handshakes { full: self.state.full.load(Ordering::SeqCst), resumed: self.state.resumed.load(Ordering::SeqCst) }
    }
    /// From now on, accept connections but never answer their handshake (connections already
    /// open go on).
    pub fn stall_new_connections(&self) {
        self.state.stalled.store(true, Ordering::SeqCst);
    }
    /// TLS connections open now (handshake done, not yet closed by either side).
    pub fn open_connections(&self) -> u64 {
        self.state.open.load(Ordering::SeqCst)
    }
    /// Handshakes and connections that failed, as rustls / hyper described them.
    pub fn failures(&self) -> Vec<String> {
        self.state.failures.lock().unwrap().clone()
    }
    /// Request body bytes received so far, over all requests (read as they arrive).
    pub fn upload_progress(&self) -> u64 {
        self.state.upload_progress.load(Ordering::SeqCst)
    }
    /// Let one paused `/big?pause_after=` response go on.
    pub fn release(&self) {
        self.state.release.add_permits(1);
    }
    /// A summary for assertion messages.
    pub fn describe(&self) -> String {
        let reqs = self.requests();
        let last = reqs.last().map(|r| r.to_json().to_string()).unwrap_or_else(|| "none".into());
        format!(
            "upstream {}: {} request(s), handshakes {:?}, failures {:?}, last request {last}",
            self.addr,
            reqs.len(),
            self.handshakes(),
            self.failures()
        )
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
        if std::thread::panicking() {
            eprintln!("--- {}", self.describe());
        }
    }
}

/// The byte at `offset` of every `/big` body.
pub fn pattern_byte(offset: u64) -> u8 {
    (offset % 251) as u8
}

/// `len` bytes of the `/big` pattern starting at `offset`.
pub fn pattern(offset: u64, len: usize) -> Vec<u8> {
    let cycle: Vec<u8> = (0..251u64).map(pattern_byte).collect();
    let mut out = Vec::with_capacity(len + 251);
    out.extend_from_slice(&cycle[(offset % 251) as usize..]);
    while out.len() < len {
        out.extend_from_slice(&cycle);
    }
    out.truncate(len);
    out
}

/// A body fed through a channel, frame by frame (http-body-util's `channel` feature is off).
pub struct ChannelBody {
    rx: tokio::sync::mpsc::Receiver<Bytes>,
}

/// A sender of body chunks and the body that streams them; the body ends when the sender drops.
pub fn body_channel(buffer: usize) -> (tokio::sync::mpsc::Sender<Bytes>, ChannelBody) {
    let (tx, rx) = tokio::sync::mpsc::channel(buffer);
    (tx, ChannelBody { rx })
}

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;
    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Infallible>>> {
        self.rx.poll_recv(cx).map(|chunk| chunk.map(|b| Ok(hyper::body::Frame::data(b))))
    }
}

type Body = http_body_util::combinators::BoxBody<Bytes, Infallible>;

fn full(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .body(Full::new(body.into()).boxed())
        .unwrap()
}

fn query_param(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        (k == name).then(|| v.to_string())
    })
}

async fn handle(req: Request<Incoming>, info: ConnInfo, state: Arc<State>) -> Result<Response<Body>, Infallible> {
    let (parts, mut body) = req.into_parts();
    let path = parts.uri.path_and_query().map(|p| p.as_str().to_string()).unwrap_or_else(|| "/".into());
    let headers: Vec<(String, String)> = parts
        .headers
        .iter()
        .map(|(k, v)| (k.as_str().to_ascii_lowercase(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
        .collect();
    // Read the body as it arrives, counting and hashing it, never holding more than a frame
    // (except for /soap, whose small body is parsed).
    let keep_body = parts.uri.path() == "/soap";
    let mut kept = Vec::new();
    let mut len = 0u64;
    let mut hash = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else { break };
        if let Some(data) = frame.data_ref() {
            len += data.len() as u64;
            hash.update(data);
            state.upload_progress.fetch_add(data.len() as u64, Ordering::SeqCst);
            if keep_body && kept.len() < 1 << 20 {
                kept.extend_from_slice(data);
            }
        }
    }
    let recorded = Recorded {
        client_chain: info.chain.clone(),
        sni: info.sni.clone(),
        alpn: info.alpn.clone(),
        tls_version: info.tls_version.clone(),
        resumed: info.resumed,
        http_version: format!("{:?}", parts.version),
        method: parts.method.as_str().to_string(),
        path,
        headers,
        body_len: len,
        body_sha256: hex::encode(hash.finish().as_ref()),
    };
    state.requests.lock().unwrap().push(recorded.clone());
    let query = parts.uri.query().unwrap_or("");
    let resp = match parts.uri.path() {
        p if p == "/echo" || p.starts_with("/echo/") => {
            full(StatusCode::OK, "application/json", recorded.to_json().to_string())
        }
        "/slow" => {
            let ms = query_param(query, "ms").and_then(|v| v.parse::<u64>().ok()).unwrap_or(1000).min(60_000);
            tokio::time::sleep(Duration::from_millis(ms)).await;
            full(StatusCode::OK, "application/json", recorded.to_json().to_string())
        }
        "/big" => {
            let total = query_param(query, "bytes").and_then(|v| v.parse::<u64>().ok()).unwrap_or(1 << 20);
            let pause_after = query_param(query, "pause_after").and_then(|v| v.parse::<u64>().ok());
            big(total, pause_after, state.clone())
        }
        "/soap" if parts.method == hyper::Method::GET && query.split('&').any(|kv| kv.eq_ignore_ascii_case("wsdl")) => {
            full(StatusCode::OK, "text/xml; charset=utf-8", WSDL)
        }
        "/soap" => {
            let text = String::from_utf8_lossy(&kept);
            let echoed = element_text(&text, "Text").unwrap_or_default();
            let cert = recorded.client_cert_sha256().unwrap_or_else(|| "none".into());
            full(
                StatusCode::OK,
                "text/xml; charset=utf-8",
                format!(
                    r#"<?xml version="1.0" encoding="utf-8"?><soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body><EchoResponse xmlns="urn:certgate:test"><Text>{echoed}</Text><ClientCertSha256>{cert}</ClientCertSha256></EchoResponse></soap:Body></soap:Envelope>"#
                ),
            )
        }
        _ => full(StatusCode::NOT_FOUND, "text/plain", "no such test endpoint\n"),
    };
    Ok(resp)
}

/// Stream `total` pattern bytes in 64 KiB frames; after `pause_after` bytes wait (at most 60 s)
/// for `Upstream::release`.
fn big(total: u64, pause_after: Option<u64>, state: Arc<State>) -> Response<Body> {
    let (tx, body) = body_channel(4);
    tokio::spawn(async move {
        let mut sent = 0u64;
        let mut paused = false;
        while sent < total {
            if let Some(p) = pause_after {
                if !paused && sent >= p {
                    paused = true;
                    if let Ok(Ok(permit)) = tokio::time::timeout(Duration::from_secs(60), state.release.acquire()).await
                    {
                        permit.forget();
                    }
                }
            }
            let mut n = (total - sent).min(64 * 1024);
            if let Some(p) = pause_after {
                if !paused && sent < p {
                    n = n.min(p - sent);
                }
            }
            if tx.send(Bytes::from(pattern(sent, n as usize))).await.is_err() {
                return;
            }
            sent += n;
        }
    });
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "application/octet-stream")
        .header("content-length", total.to_string())
        .body(body.boxed())
        .unwrap()
}

/// The text of the first element named `local` (any prefix), e.g. `<ns0:Text>hi</ns0:Text>`.
fn element_text(xml: &str, local: &str) -> Option<String> {
    let mut rest = xml;
    while let Some(i) = rest.find('<') {
        rest = &rest[i + 1..];
        let end = rest.find('>')?;
        let tag = &rest[..end];
        let name = tag.split_whitespace().next().unwrap_or("");
        let bare = name.rsplit(':').next().unwrap_or(name);
        if bare == local && !tag.starts_with('/') && !tag.ends_with('/') {
            let after = &rest[end + 1..];
            let close = after.find("</")?;
            return Some(after[..close].to_string());
        }
        rest = &rest[end + 1..];
    }
    None
}

/// A document/literal WSDL with one operation, `Echo(Text) -> EchoResponse(Text,
/// ClientCertSha256)`. Its address is a placeholder: clients set the endpoint themselves.
pub const WSDL: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<definitions name="EchoService"
    targetNamespace="urn:certgate:test"
    xmlns:tns="urn:certgate:test"
    xmlns:soap="http://schemas.xmlsoap.org/wsdl/soap/"
    xmlns:xsd="http://www.w3.org/2001/XMLSchema"
    xmlns="http://schemas.xmlsoap.org/wsdl/">
  <types>
    <xsd:schema targetNamespace="urn:certgate:test" elementFormDefault="qualified">
      <xsd:element name="Echo">
        <xsd:complexType>
          <xsd:sequence>
            <xsd:element name="Text" type="xsd:string"/>
          </xsd:sequence>
        </xsd:complexType>
      </xsd:element>
      <xsd:element name="EchoResponse">
        <xsd:complexType>
          <xsd:sequence>
            <xsd:element name="Text" type="xsd:string"/>
            <xsd:element name="ClientCertSha256" type="xsd:string"/>
          </xsd:sequence>
        </xsd:complexType>
      </xsd:element>
    </xsd:schema>
  </types>
  <message name="EchoRequest">
    <part name="parameters" element="tns:Echo"/>
  </message>
  <message name="EchoResponseMessage">
    <part name="parameters" element="tns:EchoResponse"/>
  </message>
  <portType name="EchoPortType">
    <operation name="Echo">
      <input message="tns:EchoRequest"/>
      <output message="tns:EchoResponseMessage"/>
    </operation>
  </portType>
  <binding name="EchoBinding" type="tns:EchoPortType">
    <soap:binding style="document" transport="http://schemas.xmlsoap.org/soap/http"/>
    <operation name="Echo">
      <soap:operation soapAction="urn:certgate:test#Echo"/>
      <input><soap:body use="literal"/></input>
      <output><soap:body use="literal"/></output>
    </operation>
  </binding>
  <service name="EchoService">
    <port name="EchoPort" binding="tns:EchoBinding">
      <soap:address location="http://placeholder.invalid/soap"/>
    </port>
  </service>
</definitions>
"#;
