//! Runs `certgate serve` on 127.0.0.1, waits for `/readyz`, and talks to it as an application
//! would: absolute-form proxy requests, named-service requests and CONNECT over plain HTTP/1.1
//! (hyper), plus the admin endpoints.
//!
//! Two ways to run it:
//! - **In-process** (`Gateway::start`, `start_with`), the default: both listeners are bound on
//!   127.0.0.1:0 here first (no free-port race), then `certgate::cli::serve_on` runs on its own
//!   thread with its own tokio runtime, with settings passed explicitly (data directory, store URL,
//!   master key from the test's `Env`; no environment variable is read). Drop stops it like
//!   SIGTERM would and joins the thread (bounded). Its output goes to the test's own captured
//!   output, so `log()` has nothing to show.
//! - **Process** (`Gateway::process`, `process_with`): the real binary as a child on free ports,
//!   killed on drop, its stdout and stderr kept for `log()`. For tests that need a process: a
//!   signal (SIGTERM), several nodes (cluster, outage), what serve prints (`log()`), and `/metrics`
//!   values (the metrics recorder is process-global: in-process gateways of parallel tests would
//!   share the counters).

use std::collections::BTreeMap;
use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{HeaderMap, Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::Env;

/// How long one request through the gateway may take before the test fails.
const REQUEST_LIMIT: Duration = Duration::from_secs(60);
/// How long `serve` may take to answer `/readyz` with 200.
const READY_LIMIT: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(20);

/// The `[gateway]` section of the config file a test runs `serve` (and `call`) with.
#[derive(Clone, Debug, Default)]
pub struct GatewayConfig {
    pub allow_unbound: bool,
    pub resolve: Vec<String>,
    pub connect_timeout_ms: Option<u64>,
    pub handshake_timeout_ms: Option<u64>,
    pub response_header_timeout_ms: Option<u64>,
    pub reload_interval_ms: Option<u64>,
    /// More `[gateway]` keys, written as given (`key = value`).
    pub extra: Vec<(String, String)>,
    /// `log_format = "..."` at the top of the file.
    pub log_format: Option<String>,
    /// Top-level keys written before `[gateway]` (e.g. `test_now = "..."`).
    pub preamble: String,
    /// More tables written after the `[gateway]` ones (e.g. `[alerts]`).
    pub tables: String,
}

impl GatewayConfig {
    pub fn new() -> Self {
        Self::default()
    }
    /// Send these names to 127.0.0.1 (`[gateway.resolve]`).
    pub fn resolve(mut self, names: &[&str]) -> Self {
        self.resolve.extend(names.iter().map(|n| n.to_string()));
        self
    }
    pub fn allow_unbound(mut self) -> Self {
        self.allow_unbound = true;
        self
    }
    pub fn response_header_timeout_ms(mut self, ms: u64) -> Self {
        self.response_header_timeout_ms = Some(ms);
        self
    }
    pub fn connect_timeout_ms(mut self, ms: u64) -> Self {
        self.connect_timeout_ms = Some(ms);
        self
    }
    /// Any other `[gateway]` key, e.g. `set("max_connections", 20)`.
    pub fn set(mut self, key: &str, value: impl std::fmt::Display) -> Self {
        self.extra.push((key.to_string(), value.to_string()));
        self
    }

    pub fn log_format(mut self, format: &str) -> Self {
        self.log_format = Some(format.to_string());
        self
    }

    pub fn toml(&self) -> String {
        let mut out = String::new();
        if let Some(f) = &self.log_format {
            out.push_str(&format!("log_format = \"{f}\"\n"));
        }
        out.push_str(&format!("{}\n[gateway]\n", self.preamble));
        out.push_str(&format!("allow_unbound = {}\n", self.allow_unbound));
        for (key, value) in [
            ("connect_timeout_ms", self.connect_timeout_ms),
            ("handshake_timeout_ms", self.handshake_timeout_ms),
            ("response_header_timeout_ms", self.response_header_timeout_ms),
            ("reload_interval_ms", self.reload_interval_ms),
        ] {
            if let Some(v) = value {
                out.push_str(&format!("{key} = {v}\n"));
            }
        }
        for (key, value) in &self.extra {
            out.push_str(&format!("{key} = {value}\n"));
        }
        out.push_str("\n[gateway.resolve]\n");
        for name in &self.resolve {
            out.push_str(&format!("\"{name}\" = \"127.0.0.1\"\n"));
        }
        out.push('\n');
        out.push_str(&self.tables);
        out
    }

    /// Write the file into the test's scratch folder and return its path.
    pub fn write(&self, env: &Env) -> PathBuf {
        env.file("gateway.toml", self.toml())
    }
}

/// A port that was free a moment ago (bound on 127.0.0.1:0, then released): only for a child
/// process that must bind the port itself (nginx, PostgreSQL, `serve` in process mode) or a port
/// where nothing may listen. Anything in this process binds 127.0.0.1:0 and keeps the listener.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Read `answers` whole HTTP/1.1 responses (each with a `Content-Length` body, none meaning an
/// empty one) from a raw connection, within 15 s; panics if it closes or stalls first.
pub async fn read_responses(stream: &mut TcpStream, answers: usize) -> String {
    use tokio::io::AsyncReadExt;
    /// How many whole responses `text` holds.
    fn complete(mut text: &str) -> usize {
        let mut n = 0;
        while let Some((head, rest)) = text.split_once("\r\n\r\n") {
            let len = head
                .lines()
                .find_map(|l| l.split_once(':').filter(|(k, _)| k.eq_ignore_ascii_case("content-length")))
                .and_then(|(_, v)| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            if rest.len() < len {
                break;
            }
            n += 1;
            text = &rest[len..];
        }
        n
    }
    let mut all = Vec::new();
    let mut buf = [0u8; 8192];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let text = String::from_utf8_lossy(&all).into_owned();
        if complete(&text) >= answers {
            return text;
        }
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => all.extend_from_slice(&buf[..n]),
            other => panic!("the response did not arrive in full ({other:?}); got:\n{text}"),
        }
    }
}

/// Poll `probe` every 20 ms until it returns `Some`, for at most `limit`.
pub async fn wait_until<T>(limit: Duration, mut probe: impl AsyncFnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = probe().await {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(POLL).await;
    }
}

/// A response as the application saw it, with the gateway's log at that moment for messages.
pub struct Resp {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub log: String,
}

impl Resp {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.get(name).map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    }
    /// `Certgate-Error`, when the gateway itself answered.
    pub fn error_code(&self) -> Option<String> {
        self.header("certgate-error")
    }
    pub fn describe(&self) -> String {
        let body = self.text();
        let body: String = body.chars().take(2000).collect();
        format!(
            "status {}, certgate-error {:?}, body {body}\n--- gateway log (tail):\n{}",
            self.status,
            self.error_code(),
            self.log
        )
    }
    #[track_caller]
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("response is not JSON ({e}): {}", self.describe()))
    }
    /// A 200 from the upstream's `/echo` (or `/slow`): its JSON account of what it received.
    #[track_caller]
    pub fn echo(&self) -> serde_json::Value {
        assert_eq!(self.status, 200, "expected the partner's 200: {}", self.describe());
        assert!(self.error_code().is_none(), "a 200 carrying Certgate-Error: {}", self.describe());
        self.json()
    }
    /// An error certgate produced: the status, `Certgate-Error: CODE` and the JSON body
    /// `{"error": CODE, "message", "hint"}`. Returns the body.
    #[track_caller]
    pub fn gateway_error(&self, status: u16, code: &str) -> serde_json::Value {
        assert_eq!(self.status, status, "status: {}", self.describe());
        assert_eq!(self.error_code().as_deref(), Some(code), "Certgate-Error header: {}", self.describe());
        let body = self.json();
        assert_eq!(body["error"], code, "error code in the body: {}", self.describe());
        for field in ["message", "hint"] {
            assert!(
                body[field].as_str().is_some_and(|m| !m.trim().is_empty()),
                "{field} in the body: {}",
                self.describe()
            );
        }
        body
    }
    /// The error body's message (panics when there is none).
    pub fn message(&self) -> String {
        self.json()["message"].as_str().unwrap_or_default().to_string()
    }
}

/// Sends requests to a running gateway; cheap to clone into tasks.
#[derive(Clone)]
pub struct GatewayClient {
    pub proxy: SocketAddr,
    pub admin: SocketAddr,
    log: Arc<Mutex<String>>,
    /// Set when the admin listener serves HTTPS (`serve --admin-tls-cert`): requests to `admin`
    /// then go over TLS, verified against the test CA, for the name `localhost`.
    admin_tls: Option<Arc<rustls::ClientConfig>>,
}

/// A TLS client config that trusts `root_der` only (HTTP/1.1 over ALPN).
pub fn tls_client_config(root_der: &[u8]) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(rustls::pki_types::CertificateDer::from(root_der.to_vec())).expect("test CA root");
    let mut config =
        rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

/// An HTTP/1.1 connection to `to`, over TLS (for the name `localhost`) when `tls` is given.
async fn open_http1<B>(
    to: SocketAddr,
    tls: Option<Arc<rustls::ClientConfig>>,
) -> Result<hyper::client::conn::http1::SendRequest<B>, String>
where
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let tcp = TcpStream::connect(to).await.map_err(|e| format!("connect to {to}: {e}"))?;
    match tls {
        None => {
            let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
                .await
                .map_err(|e| format!("HTTP/1.1 handshake with {to}: {e}"))?;
            tokio::spawn(async move {
                let _ = conn.await;
            });
            Ok(sender)
        }
        Some(config) => {
            let name = rustls::pki_types::ServerName::try_from("localhost").expect("server name");
            let stream = tokio_rustls::TlsConnector::from(config)
                .connect(name, tcp)
                .await
                .map_err(|e| format!("TLS handshake with {to}: {e}"))?;
            let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .map_err(|e| format!("HTTP/1.1 handshake with {to} over TLS: {e}"))?;
            tokio::spawn(async move {
                let _ = conn.await;
            });
            Ok(sender)
        }
    }
}

impl GatewayClient {
    pub fn proxy_url(&self) -> String {
        format!("http://{}", self.proxy)
    }
    pub fn admin_url(&self) -> String {
        let scheme = if self.admin_tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.admin)
    }
    /// The last 6000 characters the gateway wrote.
    pub fn log(&self) -> String {
        tail(&self.log.lock().unwrap(), 6000)
    }
    /// Everything the gateway wrote so far (to parse it line by line).
    pub fn log_all(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Send `req` on a new connection to `to` and return the response head with its body
    /// unread (for streaming tests). Fails the test after 60 s.
    pub async fn send_streaming<B>(&self, to: SocketAddr, req: Request<B>) -> Response<Incoming>
    where
        B: hyper::body::Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let log = self.log.clone();
        let tls = if to == self.admin { self.admin_tls.clone() } else { None };
        let exchange = async move {
            let mut sender = open_http1(to, tls).await?;
            sender.send_request(req).await.map_err(|e| format!("request to {to}: {e:?}"))
        };
        match tokio::time::timeout(REQUEST_LIMIT, exchange).await {
            Ok(Ok(resp)) => resp,
            Ok(Err(e)) => panic!("{e}\n--- gateway log (tail):\n{}", tail(&log.lock().unwrap(), 6000)),
            Err(_) => panic!(
                "no response from {to} within {REQUEST_LIMIT:?}\n--- gateway log (tail):\n{}",
                tail(&log.lock().unwrap(), 6000)
            ),
        }
    }

    /// Send `req` to `to` and read the whole response.
    pub async fn send<B>(&self, to: SocketAddr, req: Request<B>) -> Resp
    where
        B: hyper::body::Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let resp = self.send_streaming(to, req).await;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = match tokio::time::timeout(REQUEST_LIMIT, resp.into_body().collect()).await {
            Ok(Ok(b)) => b.to_bytes(),
            Ok(Err(e)) => {
                panic!("reading the body of a {status} from {to}: {e}\n--- gateway log (tail):\n{}", self.log())
            }
            Err(_) => panic!(
                "the body of a {status} from {to} did not end within {REQUEST_LIMIT:?}\n--- gateway log (tail):\n{}",
                self.log()
            ),
        };
        Resp { status, headers, body, log: self.log() }
    }

    /// A proxy request: `METHOD http://host:port/path HTTP/1.1` (absolute-form) to the proxy
    /// port, with `Host` set from the URL.
    pub async fn proxy(&self, method: &str, url: &str, headers: &[(&str, &str)], body: impl Into<Bytes>) -> Resp {
        let uri: hyper::Uri = url.parse().unwrap_or_else(|e| panic!("bad URL {url}: {e}"));
        let host = uri.authority().expect("absolute URL").as_str().to_string();
        let mut req = Request::builder().method(method).uri(uri).header("host", host);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        self.send(self.proxy, req.body(Full::new(body.into())).unwrap()).await
    }

    pub async fn proxy_get(&self, url: &str) -> Resp {
        self.proxy("GET", url, &[], Bytes::new()).await
    }

    /// A named-service request: `METHOD /svc/NAME{rest}` (origin-form) to the proxy port.
    pub async fn service(
        &self,
        method: &str,
        name: &str,
        rest: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> Resp {
        let mut req =
            Request::builder().method(method).uri(format!("/svc/{name}{rest}")).header("host", self.proxy.to_string());
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        self.send(self.proxy, req.body(Full::new(body.into())).unwrap()).await
    }

    /// `CONNECT authority HTTP/1.1` to the proxy port.
    pub async fn connect(&self, authority: &str) -> Resp {
        let req = Request::builder()
            .method("CONNECT")
            .uri(authority)
            .header("host", authority)
            .body(Full::new(Bytes::new()))
            .unwrap();
        self.send(self.proxy, req).await
    }

    /// `GET path` on the admin listener.
    pub async fn admin_get(&self, path: &str) -> Resp {
        let req =
            Request::builder().uri(path).header("host", self.admin.to_string()).body(Full::new(Bytes::new())).unwrap();
        self.send(self.admin, req).await
    }

    pub async fn readyz_json(&self) -> serde_json::Value {
        let r = self.admin_get("/readyz").await;
        assert_eq!(r.status, 200, "/readyz: {}", r.describe());
        r.json()
    }

    /// The `revision` that `/readyz` reports.
    pub async fn revision(&self) -> i64 {
        let j = self.readyz_json().await;
        j["revision"].as_i64().unwrap_or_else(|| panic!("/readyz has no integer revision: {j}"))
    }

    pub async fn metrics_text(&self) -> String {
        let r = self.admin_get("/metrics").await;
        assert_eq!(r.status, 200, "/metrics: {}", r.describe());
        r.text()
    }
}

/// How to run `serve` beyond the defaults of `Gateway::start`.
#[derive(Clone, Debug, Default)]
pub struct ServeOptions {
    /// More arguments after `serve --proxy-listen ... --admin-listen ...`.
    pub args: Vec<String>,
    /// The proxy listen address (default: 127.0.0.1:0 in-process, a free port for a process).
    pub proxy_listen: Option<String>,
    /// DER of the CA root that issued the admin listener's certificate: talk HTTPS to it.
    pub admin_tls_root: Option<Vec<u8>>,
}

/// How a gateway runs (see the module comment).
enum Runner {
    Process(Child),
    InProcess(InProcess),
}

/// `serve_on` on its own thread and runtime.
struct InProcess {
    /// Dropping or sending stops serve as SIGTERM does.
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    /// Ends serve at once (when in-flight requests hold up the graceful stop).
    abort: Option<tokio::sync::oneshot::Sender<()>>,
    /// serve's result (`Err` with the message when it refused to start or failed).
    done: mpsc::Receiver<Result<u8, String>>,
    thread: Option<std::thread::JoinHandle<()>>,
    ended: Option<Result<u8, String>>,
}

/// What an in-process gateway writes in place of a log.
const IN_PROCESS_LOG: &str = "(in-process gateway: its output is in the test's captured output above)";
/// How long Drop waits for a graceful stop of an in-process gateway, then for the abort.
const STOP_LIMIT: Duration = Duration::from_secs(5);

/// A running `certgate serve`.
pub struct Gateway {
    runner: Runner,
    client: GatewayClient,
    config: PathBuf,
}

impl std::ops::Deref for Gateway {
    type Target = GatewayClient;
    fn deref(&self) -> &GatewayClient {
        &self.client
    }
}

impl Gateway {
    /// Start `serve` in-process with `env`'s data directory, store and master key and `config`
    /// as its config file, on two listeners bound on 127.0.0.1:0, and wait (polling every 20 ms,
    /// at most 10 s) until `/readyz` answers 200.
    pub async fn start(env: &Env, config: &GatewayConfig) -> Gateway {
        Self::start_with(env, config, ServeOptions::default()).await
    }

    /// Like `start`, with more `serve` arguments, another proxy listen address, or an admin
    /// listener over HTTPS (`admin_tls_root`: the CA that issued its certificate).
    pub async fn start_with(env: &Env, config: &GatewayConfig, opts: ServeOptions) -> Gateway {
        let path = config.write(env);
        let proxy_listen = opts.proxy_listen.clone().unwrap_or_else(|| "127.0.0.1:0".into());
        let proxy_std = std::net::TcpListener::bind(&proxy_listen)
            .unwrap_or_else(|e| panic!("bind the proxy listener on {proxy_listen}: {e}"));
        let admin_std = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the admin listener");
        let bound = proxy_std.local_addr().unwrap();
        // The client reaches a wildcard listener through loopback.
        let proxy = if bound.ip().is_unspecified() { SocketAddr::from(([127, 0, 0, 1], bound.port())) } else { bound };
        let admin = admin_std.local_addr().unwrap();
        // What serve logs through `tracing` goes to the test's captured output (once per process).
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("certgate=info,warn"))
            .with_test_writer()
            .try_init();
        let settings = in_process_settings(env, &path);
        let args = serve_args(&opts.args);
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let (abort_tx, abort_rx) = tokio::sync::oneshot::channel::<()>();
        let (done_tx, done_rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name(format!("serve-{admin}"))
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .expect("a runtime for serve");
                let result = rt.block_on(async move {
                    for l in [&proxy_std, &admin_std] {
                        l.set_nonblocking(true).map_err(|e| e.to_string())?;
                    }
                    let proxy = tokio::net::TcpListener::from_std(proxy_std).map_err(|e| e.to_string())?;
                    let admin = tokio::net::TcpListener::from_std(admin_std).map_err(|e| e.to_string())?;
                    let shutdown = async move {
                        let _ = stop_rx.await;
                    };
                    let serve = certgate::cli::serve_on(&settings, &args, proxy, admin, shutdown);
                    tokio::select! {
                        served = serve => served.map_err(|e| e.to_string()),
                        _ = abort_rx => Err("aborted: in-flight requests held up the stop".to_string()),
                    }
                });
                rt.shutdown_timeout(Duration::from_secs(1));
                let _ = done_tx.send(result);
            })
            .expect("spawn the serve thread");
        let runner =
            InProcess { stop: Some(stop_tx), abort: Some(abort_tx), done: done_rx, thread: Some(thread), ended: None };
        let log = Arc::new(Mutex::new(IN_PROCESS_LOG.to_string()));
        let admin_tls = opts.admin_tls_root.as_deref().map(tls_client_config);
        let mut gw = Gateway {
            runner: Runner::InProcess(runner),
            client: GatewayClient { proxy, admin, log, admin_tls },
            config: path,
        };
        gw.wait_ready().await;
        gw
    }

    /// Start the real binary, `certgate --config FILE serve`, on two free ports of 127.0.0.1
    /// with `env`'s data directory, and wait until `/readyz` answers 200 (as `start`).
    pub async fn process(env: &Env, config: &GatewayConfig) -> Gateway {
        Self::process_with(env, config, ServeOptions::default()).await
    }

    /// Like `process`, with the options of `start_with`.
    pub async fn process_with(env: &Env, config: &GatewayConfig, opts: ServeOptions) -> Gateway {
        let path = config.write(env);
        let proxy_listen = opts.proxy_listen.clone().unwrap_or_else(|| format!("127.0.0.1:{}", free_port()));
        let listen: SocketAddr = proxy_listen.parse().expect("proxy listen address");
        // The client reaches a wildcard listener through loopback.
        let proxy =
            if listen.ip().is_unspecified() { SocketAddr::from(([127, 0, 0, 1], listen.port())) } else { listen };
        let mut admin: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        while admin.port() == proxy.port() {
            admin = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        }
        let admin_s = admin.to_string();
        let mut args: Vec<&str> = vec![
            "--config",
            path.to_str().unwrap(),
            "serve",
            "--proxy-listen",
            &proxy_listen,
            "--admin-listen",
            &admin_s,
        ];
        args.extend(opts.args.iter().map(String::as_str));
        let mut child =
            env.command(&args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn certgate serve");
        let log = Arc::new(Mutex::new(String::new()));
        for pipe in [
            child.stdout.take().map(|p| Box::new(p) as Box<dyn Read + Send>),
            child.stderr.take().map(|p| Box::new(p) as Box<dyn Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let log = log.clone();
            std::thread::spawn(move || collect(pipe, log));
        }
        let admin_tls = opts.admin_tls_root.as_deref().map(tls_client_config);
        let mut gw = Gateway {
            runner: Runner::Process(child),
            client: GatewayClient { proxy, admin, log, admin_tls },
            config: path,
        };
        gw.wait_ready().await;
        gw
    }

    /// `Some(how)` once serve has ended.
    fn ended(&mut self) -> Option<String> {
        match &mut self.runner {
            Runner::Process(child) => child.try_wait().ok().flatten().map(|status| format!("exited with {status}")),
            Runner::InProcess(run) => {
                if run.ended.is_none() {
                    run.ended = run.done.try_recv().ok();
                }
                run.ended.as_ref().map(|r| match r {
                    Ok(code) => format!("returned {code}"),
                    Err(e) => format!("failed: {e}"),
                })
            }
        }
    }

    async fn wait_ready(&mut self) {
        let deadline = Instant::now() + READY_LIMIT;
        let admin = self.client.admin;
        let tls = self.client.admin_tls.clone();
        loop {
            if let Some(how) = self.ended() {
                // Give the reader threads a moment to drain the pipes, bounded.
                let _ = wait_until(Duration::from_millis(500), async || None::<()>).await;
                panic!("certgate serve {how} before it was ready\n--- its output:\n{}", self.client.log());
            }
            let probe = async {
                let mut sender = open_http1(admin, tls.clone()).await.ok()?;
                let req = Request::builder()
                    .uri("/readyz")
                    .header("host", admin.to_string())
                    .body(Full::new(Bytes::new()))
                    .ok()?;
                let resp = sender.send_request(req).await.ok()?;
                Some(resp.status().as_u16())
            };
            if let Ok(Some(200)) = tokio::time::timeout(Duration::from_secs(1), probe).await {
                return;
            }
            if Instant::now() >= deadline {
                panic!(
                    "certgate serve did not answer 200 on {}/readyz within {READY_LIMIT:?}\n--- its output:\n{}",
                    self.client.admin_url(),
                    self.client.log()
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    pub fn client(&self) -> GatewayClient {
        self.client.clone()
    }
    /// The config file `serve` runs with (pass it to `certgate call` too).
    pub fn config_path(&self) -> &Path {
        &self.config
    }
    /// The child's process id; `None` in-process (where serve cannot restart either).
    pub fn pid(&self) -> Option<u32> {
        match &self.runner {
            Runner::Process(child) => Some(child.id()),
            Runner::InProcess(_) => None,
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        match &mut self.runner {
            Runner::Process(child) => {
                let _ = child.kill();
                let _ = child.wait();
            }
            Runner::InProcess(run) => {
                if let Some(stop) = run.stop.take() {
                    let _ = stop.send(());
                }
                let mut ended = run.ended.is_some() || run.done.recv_timeout(STOP_LIMIT).is_ok();
                if !ended {
                    if let Some(abort) = run.abort.take() {
                        let _ = abort.send(());
                    }
                    ended = run.done.recv_timeout(STOP_LIMIT).is_ok();
                }
                // Join only a thread that has ended; one that did not is left behind (bounded).
                if let Some(thread) = run.thread.take().filter(|_| ended) {
                    let _ = thread.join();
                }
                if !ended {
                    eprintln!(
                        "the in-process gateway on {} did not stop within {:?}",
                        self.client.admin,
                        STOP_LIMIT * 2
                    );
                }
            }
        }
        if std::thread::panicking() {
            eprintln!("--- certgate serve output (tail):\n{}", self.client.log());
        }
    }
}

/// `serve`'s settings from the test's `Env`, given explicitly: its data directory, and the store
/// and master key its `CERTGATE_*` variables name (as the binary would read them).
fn in_process_settings(env: &Env, config: &Path) -> certgate::cli::Settings {
    use certgate::control::{MasterKeySource, Redacted};
    let var = |name: &str| env.vars.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let data_dir = var("CERTGATE_DATA_DIR").map(PathBuf::from).unwrap_or_else(|| env.data_dir());
    let master_key = match (var("CERTGATE_MASTER_KEY"), var("CERTGATE_MASTER_KEY_FILE")) {
        (Some(inline), _) => Some(MasterKeySource::Inline(Redacted(zeroize::Zeroizing::new(inline)))),
        (None, Some(path)) => Some(MasterKeySource::File(PathBuf::from(path))),
        (None, None) => None,
    };
    let store = var("CERTGATE_STORE");
    certgate::cli::Settings::explicit(data_dir, store.as_deref(), master_key, Some(config), "cli:tester")
        .unwrap_or_else(|e| panic!("settings for the in-process gateway: {e}"))
}

/// `serve`'s arguments beyond the listen addresses, parsed as the binary parses them.
fn serve_args(extra: &[String]) -> certgate::cli::ServeArgs {
    #[derive(clap::Parser)]
    struct Serve {
        #[command(flatten)]
        args: certgate::cli::ServeArgs,
    }
    let all = std::iter::once("serve".to_string()).chain(extra.iter().cloned());
    <Serve as clap::Parser>::try_parse_from(all).unwrap_or_else(|e| panic!("serve arguments {extra:?}: {e}")).args
}

fn collect(mut pipe: Box<dyn Read + Send>, log: Arc<Mutex<String>>) {
    let mut buf = [0u8; 8192];
    while let Ok(n) = pipe.read(&mut buf) {
        if n == 0 {
            break;
        }
        let mut l = log.lock().unwrap();
        l.push_str(&String::from_utf8_lossy(&buf[..n]));
        if l.len() > 1 << 20 {
            let cut = l.len() - (1 << 19);
            let cut = (cut..l.len()).find(|i| l.is_char_boundary(*i)).unwrap_or(0);
            l.drain(..cut);
        }
    }
}

fn tail(s: &str, n: usize) -> String {
    if s.len() <= n {
        return s.to_string();
    }
    let start = (s.len() - n..s.len()).find(|i| s.is_char_boundary(*i)).unwrap_or(0);
    format!("...{}", &s[start..])
}

/// Every series of metric `name` in Prometheus text: its labels and value.
pub fn metric_series(text: &str, name: &str) -> Vec<(BTreeMap<String, String>, f64)> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (series, labels_text) = match line.find('{') {
            Some(i) => {
                let Some(close) = line.rfind('}') else { continue };
                (&line[..i], &line[i + 1..close])
            }
            None => (line.split_whitespace().next().unwrap_or(""), ""),
        };
        if series != name {
            continue;
        }
        let after = match line.rfind('}') {
            Some(close) if line.contains('{') => &line[close + 1..],
            _ => &line[series.len()..],
        };
        let Some(value) = after.split_whitespace().next().and_then(|v| v.parse::<f64>().ok()) else {
            continue;
        };
        out.push((parse_labels(labels_text), value));
    }
    out
}

/// The sum of the values of `name`'s series whose labels include all of `labels`; `None`
/// when no series matches.
pub fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let matching: Vec<f64> = metric_series(text, name)
        .into_iter()
        .filter(|(l, _)| labels.iter().all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v)))
        .map(|(_, v)| v)
        .collect();
    (!matching.is_empty()).then(|| matching.iter().sum())
}

fn parse_labels(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut chars = text.chars().peekable();
    loop {
        while matches!(chars.peek(), Some(',') | Some(' ')) {
            chars.next();
        }
        let key: String = std::iter::from_fn(|| chars.next_if(|c| *c != '=')).collect();
        if key.is_empty() || chars.next() != Some('=') || chars.next() != Some('"') {
            break;
        }
        let mut value = String::new();
        while let Some(c) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some('n') => value.push('\n'),
                    Some(other) => value.push(other),
                    None => break,
                },
                '"' => break,
                other => value.push(other),
            }
        }
        out.insert(key.trim().to_string(), value);
    }
    out
}
