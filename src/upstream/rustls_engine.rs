//! The default TLS engine: rustls with a client config built once per (certificate, trust policy).
//!
//! rustls never renegotiates. A TLS 1.2 partner that asks for the client certificate after the
//! request (IIS, SAP, Apache per path) sends a HelloRequest; rustls would answer it with a
//! `no_renegotiation` warning and the partner then fails the request in its own words. The
//! engine watches the records under rustls instead: a handshake record from the partner after a
//! TLS 1.2 handshake is finished can only be a renegotiation request, and the connection ends
//! with `upstream-renegotiation-required`, whose remedy names the binding option that allows it.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::ClientConfig;
use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::engine::{HandshakeError, HandshakeFuture, Handshaken, TlsEngine};
use crate::model::ErrorCode;
use crate::tls::{self, UpstreamCertError, UpstreamFailure};

pub struct RustlsEngine {
    connector: TlsConnector,
}

impl RustlsEngine {
    pub fn new(config: Arc<ClientConfig>) -> Self {
        RustlsEngine { connector: TlsConnector::from(config) }
    }
}

impl TlsEngine for RustlsEngine {
    fn handshake(&self, tcp: TcpStream, server_name: &str) -> HandshakeFuture {
        let connector = self.connector.clone();
        let name = ServerName::try_from(server_name.to_string());
        let shown = server_name.to_string();
        Box::pin(async move {
            let name = name.map_err(|_| {
                HandshakeError::Partner(UpstreamFailure {
                    code: crate::model::ErrorCode::BadRequest,
                    message: format!("'{shown}' is not a valid server name"),
                })
            })?;
            let armed = Arc::new(AtomicBool::new(false));
            let watched = RecordWatch { inner: tcp, armed: armed.clone(), header: [0; 5], header_len: 0, body_left: 0 };
            let (stream, presented) = tls::note_presented(connector.connect(name, watched)).await;
            let stream = stream.map_err(|e| match tls::classify(&e) {
                Some(f) => HandshakeError::Partner(f),
                None => HandshakeError::Other(e.to_string()),
            })?;
            let (_, conn) = stream.get_ref();
            let resumed = conn.handshake_kind() == Some(rustls::HandshakeKind::Resumed);
            let h2 = conn.alpn_protocol() == Some(b"h2");
            if conn.protocol_version() == Some(rustls::ProtocolVersion::TLSv1_2) {
                armed.store(true, Ordering::Relaxed);
            }
            let (version, cipher, alpn) = tls::negotiated(conn);
            let peer_leaf = conn.peer_certificates().and_then(|c| c.first()).map(|c| c.to_vec());
            Ok(Handshaken { io: Box::new(stream), resumed, h2, version, cipher, alpn, peer_leaf, presented })
        })
    }

    fn classify(&self, error: &std::io::Error) -> Option<UpstreamFailure> {
        tls::classify(error)
    }
}

/// TLS record content type of handshake messages.
const HANDSHAKE: u8 = 22;

/// The TCP stream under rustls, reading TLS record headers as they pass (they are in the clear
/// in TLS 1.2). Once `armed` (a TLS 1.2 handshake finished), a handshake record from the partner
/// is a renegotiation request (HelloRequest) and the read fails with
/// `upstream-renegotiation-required`.
struct RecordWatch {
    inner: TcpStream,
    armed: Arc<AtomicBool>,
    header: [u8; 5],
    header_len: usize,
    body_left: usize,
}

impl RecordWatch {
    /// Follow the record boundaries through `data`; true when a handshake record starts while
    /// armed.
    fn renegotiation_in(&mut self, data: &[u8]) -> bool {
        let armed = self.armed.load(Ordering::Relaxed);
        let mut rest = data;
        while !rest.is_empty() {
            if self.body_left > 0 {
                let n = self.body_left.min(rest.len());
                self.body_left -= n;
                rest = &rest[n..];
                continue;
            }
            let n = (5 - self.header_len).min(rest.len());
            self.header[self.header_len..self.header_len + n].copy_from_slice(&rest[..n]);
            self.header_len += n;
            rest = &rest[n..];
            if self.header_len == 5 {
                self.header_len = 0;
                self.body_left = u16::from_be_bytes([self.header[3], self.header[4]]) as usize;
                if armed && self.header[0] == HANDSHAKE {
                    return true;
                }
            }
        }
        false
    }
}

impl AsyncRead for RecordWatch {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let r = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = &r {
            if this.renegotiation_in(&buf.filled()[before..]) {
                buf.set_filled(before);
                return Poll::Ready(Err(std::io::Error::other(UpstreamCertError {
                    code: ErrorCode::UpstreamRenegotiationRequired,
                    message: "the partner asked for a TLS renegotiation after the request (it asks for the client \
                              certificate only for this path), which this binding does not allow"
                        .into(),
                })));
            }
        }
        r
    }
}

impl AsyncWrite for RecordWatch {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn watch() -> RecordWatch {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let tcp = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        RecordWatch { inner: tcp, armed: Arc::new(AtomicBool::new(false)), header: [0; 5], header_len: 0, body_left: 0 }
    }

    #[tokio::test]
    async fn a_handshake_record_after_a_tls12_handshake_is_a_renegotiation_request_wherever_reads_split() {
        let mut w = watch().await;
        // Handshake records before arming (the handshake itself) pass.
        assert!(!w.renegotiation_in(&[22, 3, 3, 0, 2, 0xaa, 0xbb]));
        w.armed.store(true, Ordering::Relaxed);
        // Application data (type 23) of 3 bytes, split mid-header and mid-body.
        assert!(!w.renegotiation_in(&[23, 3]));
        assert!(!w.renegotiation_in(&[3, 0, 3, 1]));
        assert!(!w.renegotiation_in(&[2, 3]));
        // An alert passes; a handshake record (HelloRequest) whose header straddles reads is seen.
        assert!(!w.renegotiation_in(&[21, 3, 3, 0, 2, 1, 0, 22, 3]));
        assert!(w.renegotiation_in(&[3, 0, 4]));
    }
}
