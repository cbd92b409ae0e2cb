//! The upstream side: a connector that opens TCP + TLS with one route's ready-built client
//! config, and a pooled hyper client per route (so connections are never shared across
//! certificates or trust policies). HTTP/2 is used when the partner picks it by ALPN.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Uri;
use http_body_util::combinators::BoxBody;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::ClientConfig;
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use crate::tls;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
pub type Body = BoxBody<Bytes, BoxError>;

/// Timeouts and name overrides shared by every route.
#[derive(Clone, Debug)]
pub struct UpstreamSettings {
    pub connect_timeout: Duration,
    pub handshake_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_idle_per_host: usize,
    /// Static host -> address overrides (like curl --resolve).
    pub resolve: HashMap<String, IpAddr>,
}

impl Default for UpstreamSettings {
    fn default() -> Self {
        UpstreamSettings {
            connect_timeout: Duration::from_secs(5),
            handshake_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(90),
            max_idle_per_host: 64,
            resolve: HashMap::new(),
        }
    }
}

/// Why a connection to the partner could not be made, with the gateway error code.
#[derive(Debug)]
pub struct ConnectError {
    pub code: &'static str,
    pub message: String,
}

impl std::fmt::Display for ConnectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConnectError {}

/// A TLS connection to a partner, as hyper wants it.
pub struct UpstreamIo {
    io: TokioIo<TlsStream<TcpStream>>,
    h2: bool,
}

impl Connection for UpstreamIo {
    fn connected(&self) -> Connected {
        let c = Connected::new();
        if self.h2 {
            c.negotiated_h2()
        } else {
            c
        }
    }
}

impl hyper::rt::Read for UpstreamIo {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: hyper::rt::ReadBufCursor<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for UpstreamIo {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
    fn poll_write_vectored(self: Pin<&mut Self>, cx: &mut Context<'_>, bufs: &[std::io::IoSlice<'_>]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }
}

#[derive(Clone)]
pub struct Connector {
    tls: TlsConnector,
    /// `--sni`: the name sent and verified instead of the request's host.
    sni: Option<ServerName<'static>>,
    settings: Arc<UpstreamSettings>,
}

impl Connector {
    pub fn new(config: Arc<ClientConfig>, sni: Option<String>, settings: Arc<UpstreamSettings>) -> Self {
        Connector {
            tls: TlsConnector::from(config),
            sni: sni.and_then(|s| ServerName::try_from(s).ok()),
            settings,
        }
    }
}

fn connect_error(code: &'static str, message: String) -> BoxError {
    Box::new(ConnectError { code, message })
}

impl tower::Service<Uri> for Connector {
    type Response = UpstreamIo;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<UpstreamIo, BoxError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            let host = uri.host().unwrap_or_default().trim_start_matches('[').trim_end_matches(']').to_string();
            let port = uri.port_u16().unwrap_or(443);
            let settings = &this.settings;
            let addrs: Vec<SocketAddr> = match settings.resolve.get(&host) {
                Some(ip) => vec![SocketAddr::new(*ip, port)],
                None => match host.parse::<IpAddr>() {
                    Ok(ip) => vec![SocketAddr::new(ip, port)],
                    Err(_) => tokio::time::timeout(settings.connect_timeout, tokio::net::lookup_host((host.as_str(), port)))
                        .await
                        .map_err(|_| connect_error("upstream-connect-failed", format!("resolving {host} timed out")))?
                        .map_err(|e| connect_error("upstream-connect-failed", format!("cannot resolve {host}: {e}")))?
                        .collect(),
                },
            };
            let mut last = None;
            let mut tcp = None;
            for addr in addrs {
                match tokio::time::timeout(settings.connect_timeout, TcpStream::connect(addr)).await {
                    Ok(Ok(s)) => {
                        tcp = Some(s);
                        break;
                    }
                    Ok(Err(e)) => last = Some(format!("connecting to {host}:{port} ({addr}) failed: {e}")),
                    Err(_) => last = Some(format!("connecting to {host}:{port} ({addr}) timed out after {} ms", settings.connect_timeout.as_millis())),
                }
            }
            let tcp = tcp.ok_or_else(|| connect_error("upstream-connect-failed", last.unwrap_or_else(|| format!("{host} has no address"))))?;
            let _ = tcp.set_nodelay(true);
            let name = match &this.sni {
                Some(n) => n.clone(),
                None => ServerName::try_from(host.clone())
                    .map_err(|_| connect_error("bad-request", format!("'{host}' is not a valid server name")))?,
            };
            let started = Instant::now();
            let stream = tokio::time::timeout(settings.handshake_timeout, this.tls.connect(name, tcp))
                .await
                .map_err(|_| {
                    connect_error("upstream-timeout", format!("the TLS handshake with {host}:{port} took longer than {} ms", settings.handshake_timeout.as_millis()))
                })?
                .map_err(|e| {
                    let f = tls::classify(&e).unwrap_or(tls::UpstreamFailure {
                        code: "upstream-connect-failed",
                        message: format!("the TLS handshake with {host}:{port} failed: {e}"),
                    });
                    connect_error(f.code, f.message)
                })?;
            let (_, conn) = stream.get_ref();
            let resumed = conn.handshake_kind() == Some(rustls::HandshakeKind::Resumed);
            let h2 = conn.alpn_protocol() == Some(b"h2");
            crate::gateway::metrics::handshake(resumed, started.elapsed());
            Ok(UpstreamIo { io: TokioIo::new(stream), h2 })
        })
    }
}

/// One route's pooled client.
pub type UpstreamClient = Client<Connector, Body>;

pub fn client(connector: Connector, settings: &UpstreamSettings) -> UpstreamClient {
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(settings.idle_timeout)
        .pool_max_idle_per_host(settings.max_idle_per_host)
        .build(connector)
}
