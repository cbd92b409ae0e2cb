//! The default TLS engine: rustls with a client config built once per (certificate, trust policy).

use std::sync::Arc;

use rustls::ClientConfig;
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::engine::{HandshakeError, HandshakeFuture, Handshaken, TlsEngine};
use crate::tls::{self, UpstreamFailure};

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
            let (stream, presented) = tls::note_presented(connector.connect(name, tcp)).await;
            let stream = stream.map_err(|e| match tls::classify(&e) {
                Some(f) => HandshakeError::Partner(f),
                None => HandshakeError::Other(e.to_string()),
            })?;
            let (_, conn) = stream.get_ref();
            let resumed = conn.handshake_kind() == Some(rustls::HandshakeKind::Resumed);
            let h2 = conn.alpn_protocol() == Some(b"h2");
            let (version, cipher, alpn) = tls::negotiated(conn);
            let peer_leaf = conn.peer_certificates().and_then(|c| c.first()).map(|c| c.to_vec());
            Ok(Handshaken { io: Box::new(stream), resumed, h2, version, cipher, alpn, peer_leaf, presented })
        })
    }

    fn classify(&self, error: &std::io::Error) -> Option<UpstreamFailure> {
        tls::classify(error)
    }
}
