//! What a TLS engine must do for the connector: turn a TCP connection into an authenticated TLS
//! stream (presenting the route's identity, verifying the partner by the route's trust policy), and
//! recognise the partner's TLS failures on an established connection. Nothing here names a TLS
//! library.

use std::future::Future;
use std::pin::Pin;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use crate::tls::UpstreamFailure;

/// A TLS stream, whatever library made it.
pub trait TlsIo: AsyncRead + AsyncWrite + Send + Unpin + 'static {}

impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> TlsIo for T {}

/// A finished handshake.
pub struct Handshaken {
    pub io: Box<dyn TlsIo>,
    /// The session was resumed (no full handshake).
    pub resumed: bool,
    /// The partner chose HTTP/2 by ALPN.
    pub h2: bool,
    /// What was negotiated, for diagnosis: `TLSv1.3`, the cipher suite's name, the ALPN protocol.
    pub version: Option<String>,
    pub cipher: Option<String>,
    pub alpn: Option<String>,
    /// The name of the client certificate presented in this handshake (of the route's candidates,
    /// the one the partner's CA names picked); None when the partner asked for none or the
    /// session was resumed without asking.
    pub presented: Option<String>,
    /// The partner's leaf certificate (DER) that the verifier accepted.
    pub peer_leaf: Option<Vec<u8>>,
}

/// Why a handshake failed.
pub enum HandshakeError {
    /// The partner or its certificate: a contract code and message (untrusted, name mismatch,
    /// the partner's alert...).
    Partner(UpstreamFailure),
    /// Anything else (the connection broke, the peer spoke no TLS), as text.
    Other(String),
}

pub type HandshakeFuture = Pin<Box<dyn Future<Output = Result<Handshaken, HandshakeError>> + Send>>;

/// One route's TLS: its identity, trust policy and session cache, built when the route table is
/// published and shared by every connection of the route.
pub trait TlsEngine: Send + Sync + 'static {
    /// Handshake over `tcp`, sending `server_name` as SNI (when it is a DNS name) and verifying the
    /// partner's certificate for it.
    fn handshake(&self, tcp: TcpStream, server_name: &str) -> HandshakeFuture;

    /// What an I/O error on an established connection says about the partner (a TLS 1.3 partner
    /// refuses a client certificate with an alert on the first read after the handshake).
    fn classify(&self, error: &std::io::Error) -> Option<UpstreamFailure>;
}

/// The engine of a route that could not be built: every handshake is refused with the reason.
pub struct Unavailable(pub String);

impl TlsEngine for Unavailable {
    fn handshake(&self, _tcp: TcpStream, _server_name: &str) -> HandshakeFuture {
        let reason = self.0.clone();
        Box::pin(async move {
            Err(HandshakeError::Partner(UpstreamFailure {
                code: crate::model::ErrorCode::RouteUnavailable,
                message: reason,
            }))
        })
    }

    fn classify(&self, _error: &std::io::Error) -> Option<UpstreamFailure> {
        None
    }
}
