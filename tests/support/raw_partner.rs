//! A partner that speaks HTTP/1.1 by hand behind TLS and records every byte it receives, so a
//! test sees exactly what crossed the gateway (a smuggled second request would show here), or
//! that misbehaves on purpose (see `Behaviour`). Bound on 127.0.0.1:0 before `start` returns.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::{Minted, TestCa};

/// How long one partner connection may live before the partner drops it.
const CONNECTION_LIMIT: Duration = Duration::from_secs(20);

/// What the partner does once it has read a request head.
#[derive(Clone, Copy, Debug)]
pub enum Behaviour {
    /// `200`, `content-length: 2`, body `ok`, `connection: close`.
    Answer,
}

/// The bytes of one connection, in arrival order.
#[derive(Clone, Default)]
struct Conn(Arc<Mutex<Vec<u8>>>);

pub struct RawPartner {
    addr: SocketAddr,
    conns: Arc<Mutex<Vec<Conn>>>,
    open: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl RawPartner {
    /// Serve `server` (issued by `ca`'s intermediate) over TLS, HTTP/1.1 only.
    pub async fn start(server: &Minted, ca: &TestCa, behaviour: Behaviour) -> RawPartner {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let chain = vec![CertificateDer::from(server.der.clone()), CertificateDer::from(ca.intermediate.der.clone())];
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server.key_der()));
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .expect("partner certificate");
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the raw partner");
        let addr = listener.local_addr().unwrap();
        let conns: Arc<Mutex<Vec<Conn>>> = Arc::default();
        let open = Arc::new(AtomicUsize::new(0));
        let (conns2, open2) = (conns.clone(), open.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else { continue };
                let acceptor = acceptor.clone();
                let conn = Conn::default();
                conns2.lock().unwrap().push(conn.clone());
                let open = open2.clone();
                open.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let _ = tokio::time::timeout(CONNECTION_LIMIT, serve(acceptor, tcp, conn, behaviour)).await;
                    open.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        RawPartner { addr, conns, open, task }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.conns.lock().unwrap().len()
    }

    /// Connections still open.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::SeqCst)
    }

    /// Everything received, all connections, as text.
    pub fn received(&self) -> String {
        let conns = self.conns.lock().unwrap();
        conns.iter().map(|c| String::from_utf8_lossy(&c.0.lock().unwrap()).into_owned()).collect::<Vec<_>>().join("")
    }

    /// Request heads received: lines that look like `METHOD TARGET HTTP/1.x`.
    pub fn request_lines(&self) -> Vec<String> {
        self.received()
            .split('\n')
            .map(|l| l.trim_end_matches('\r'))
            .filter(|l| {
                let parts: Vec<&str> = l.split(' ').collect();
                parts.len() == 3
                    && parts[2].starts_with("HTTP/1.")
                    && !parts[0].is_empty()
                    && parts[0].bytes().all(|b| b.is_ascii_uppercase())
            })
            .map(str::to_string)
            .collect()
    }
}

impl Drop for RawPartner {
    fn drop(&mut self) {
        self.task.abort();
        if std::thread::panicking() {
            eprintln!("--- raw partner received:\n{}", self.received());
        }
    }
}

async fn serve(acceptor: tokio_rustls::TlsAcceptor, tcp: tokio::net::TcpStream, conn: Conn, behaviour: Behaviour) {
    let Ok(mut tls) = acceptor.accept(tcp).await else { return };
    let mut buf = vec![0u8; 16 * 1024];
    let mut answered = false;
    loop {
        let n = match tls.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let seen = {
            let mut all = conn.0.lock().unwrap();
            all.extend_from_slice(&buf[..n]);
            all.windows(4).any(|w| w == b"\r\n\r\n")
        };
        if seen && !answered {
            answered = true;
            match behaviour {
                Behaviour::Answer => {
                    let _ = tls.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok").await;
                    let _ = tls.flush().await;
                }
            }
        }
    }
}
