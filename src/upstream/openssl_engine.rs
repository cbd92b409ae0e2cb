//! The second TLS engine: OpenSSL, for the routes rustls cannot serve. A partner that asks for the
//! client certificate only after the request (IIS, SAP: TLS 1.2 renegotiation; Apache: TLS 1.3
//! post-handshake authentication) or an identity whose key aws-lc-rs will not sign with (RSA
//! 1024). Everything else is shared with the rustls engine: the partner is verified by the same
//! [`PartnerVerifier`] (OpenSSL's own checks are off) on the chain OpenSSL received, during every
//! handshake (the first and a renegotiation) before any request byte goes out; failures carry the
//! same error codes. The key reaches OpenSSL from memory only.
//!
//! Renegotiation is allowed once per connection (like Go's `RenegotiateOnceAsClient`): after the
//! first one the connection refuses further requests with a `no_renegotiation` alert. Routes on
//! this engine speak HTTP/1.1 only (renegotiation and HTTP/2 do not mix).

use std::collections::HashMap;
use std::os::raw::c_int;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};

use foreign_types::ForeignTypeRef;
use openssl::pkey::{PKey, Private};
use openssl::ssl::{
    Ssl, SslContext, SslContextBuilder, SslMethod, SslOptions, SslSession, SslSessionCacheMode, SslVerifyMode,
    SslVersion,
};
use openssl::x509::{X509StoreContext, X509StoreContextRef, X509};
use rustls::client::danger::ServerCertVerifier;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_openssl::SslStream;

use super::engine::{HandshakeError, HandshakeFuture, Handshaken, TlsEngine};
use crate::model::ErrorCode;
use crate::pki::{KeyFormat, PrivateKey};
use crate::tls::{self, PartnerVerifier, UpstreamCertError, UpstreamFailure};

/// What an OpenSSL route presents: leaf + intermediates (DER, leaf first) and the key.
pub struct OpensslIdentity {
    pub chain: Vec<Vec<u8>>,
    pub key: PrivateKey,
    /// The key is one OpenSSL's default security level refuses (RSA under 2048 bits).
    pub weak: bool,
}

/// How an OpenSSL route behaves.
pub struct OpensslOptions {
    /// Allow one TLS 1.2 renegotiation per connection and offer TLS 1.3 post-handshake auth.
    pub allow_renegotiation: bool,
}

pub struct OpensslEngine {
    ctx: SslContext,
    verifier: Arc<PartnerVerifier>,
    allow_renegotiation: bool,
    /// The last session per (server name, address), for resumption; this route's only.
    sessions: Arc<Mutex<HashMap<String, SslSession>>>,
}

/// The session key of a connection (in the `Ssl`'s ex data, for the new-session callback).
fn session_key_index() -> openssl::ex_data::Index<Ssl, String> {
    static INDEX: OnceLock<openssl::ex_data::Index<Ssl, String>> = OnceLock::new();
    *INDEX.get_or_init(|| Ssl::new_ex_index().expect("OpenSSL ex data index"))
}

/// Handshakes started on a connection (the first, then renegotiations), counted by
/// [`count_handshakes`].
fn handshakes_index() -> openssl::ex_data::Index<Ssl, AtomicUsize> {
    static INDEX: OnceLock<openssl::ex_data::Index<Ssl, AtomicUsize>> = OnceLock::new();
    *INDEX.get_or_init(|| Ssl::new_ex_index().expect("OpenSSL ex data index"))
}

type InfoCallback = unsafe extern "C" fn(*const openssl_sys::SSL, c_int, c_int);

extern "C" {
    // OpenSSL 3: `uint64_t SSL_set_options(SSL *s, uint64_t op)` (a macro before 1.1.0, so not
    // in openssl-sys for every version).
    fn SSL_set_options(s: *mut openssl_sys::SSL, op: u64) -> u64;
    // Not wrapped by the openssl crate.
    fn SSL_set_info_callback(s: *mut openssl_sys::SSL, cb: Option<InfoCallback>);
}

/// `SSL_CB_HANDSHAKE_START`: a handshake (or renegotiation) begins.
const SSL_CB_HANDSHAKE_START: c_int = 0x10;

/// Renegotiation once per connection (Go's `RenegotiateOnceAsClient`). OpenSSL reports a
/// handshake start for the first handshake and for each HelloRequest, before it reads it: at the
/// third start (the partner's second HelloRequest) the option is set in time for OpenSSL to
/// answer with a `no_renegotiation` alert instead.
unsafe extern "C" fn count_handshakes(ssl: *const openssl_sys::SSL, kind: c_int, _value: c_int) {
    if kind & SSL_CB_HANDSHAKE_START == 0 {
        return;
    }
    // SAFETY: OpenSSL passes the connection the callback was set on, alive for the call.
    let conn = unsafe { openssl::ssl::SslRef::from_ptr(ssl as *mut openssl_sys::SSL) };
    if let Some(count) = conn.ex_data(handshakes_index()) {
        if count.fetch_add(1, Ordering::SeqCst) + 1 >= 3 {
            // SAFETY: the same live SSL; this only sets an option flag.
            unsafe { SSL_set_options(ssl as *mut openssl_sys::SSL, openssl_sys::SSL_OP_NO_RENEGOTIATION) };
        }
    }
}

fn load_key(key: &PrivateKey) -> Result<PKey<Private>, String> {
    let der = key.secret_der();
    let loaded = match key.format() {
        KeyFormat::Pkcs8 => PKey::private_key_from_pkcs8(der),
        KeyFormat::Pkcs1 => openssl::rsa::Rsa::private_key_from_der(der).and_then(PKey::from_rsa),
        KeyFormat::Sec1 => openssl::ec::EcKey::private_key_from_der(der).and_then(PKey::from_ec_key),
    };
    // Never the OpenSSL error text in full: it names nothing secret, but keep it short.
    loaded.map_err(|_| "OpenSSL cannot read the private key".to_string())
}

impl OpensslEngine {
    pub fn new(
        verifier: Arc<PartnerVerifier>,
        identity: Option<OpensslIdentity>,
        options: OpensslOptions,
    ) -> Result<Self, String> {
        let ossl = |what: &str, e: openssl::error::ErrorStack| format!("OpenSSL engine: {what}: {e}");
        let mut b = SslContextBuilder::new(SslMethod::tls_client()).map_err(|e| ossl("context", e))?;
        b.set_min_proto_version(Some(SslVersion::TLS1_2)).map_err(|e| ossl("versions", e))?;
        b.set_options(SslOptions::NO_COMPRESSION);
        if !options.allow_renegotiation {
            b.set_options(SslOptions::NO_RENEGOTIATION);
        }
        b.set_alpn_protos(b"\x08http/1.1").map_err(|e| ossl("ALPN", e))?;
        // OpenSSL's own checks are off: certgate's verifier runs in the callback (per connection).
        b.set_verify(SslVerifyMode::PEER);
        b.set_session_cache_mode(SslSessionCacheMode::CLIENT | SslSessionCacheMode::NO_INTERNAL_STORE);
        if let Some(id) = &identity {
            if id.weak {
                // Debian's OpenSSL runs at security level 2, which refuses RSA keys under 2048
                // bits; level 1 still refuses anything under 1024.
                b.set_security_level(1);
            }
            let leaf = id.chain.first().ok_or("the identity has no certificate")?;
            let leaf = X509::from_der(leaf).map_err(|e| ossl("the certificate", e))?;
            b.set_certificate(&leaf).map_err(|e| ossl("the certificate", e))?;
            for der in id.chain.iter().skip(1) {
                let c = X509::from_der(der).map_err(|e| ossl("an intermediate certificate", e))?;
                b.add_extra_chain_cert(c).map_err(|e| ossl("an intermediate certificate", e))?;
            }
            let key = load_key(&id.key)?;
            b.set_private_key(&key).map_err(|e| ossl("the private key", e))?;
            b.check_private_key().map_err(|e| ossl("the private key does not match the certificate", e))?;
        }
        if options.allow_renegotiation {
            // SAFETY: a valid SSL_CTX owned by the builder; the call sets a flag.
            unsafe { openssl_sys::SSL_CTX_set_post_handshake_auth(b.as_ptr(), 1) };
        }
        let sessions: Arc<Mutex<HashMap<String, SslSession>>> = Arc::default();
        let store = sessions.clone();
        b.set_new_session_callback(move |ssl, session| {
            if let Some(key) = ssl.ex_data(session_key_index()) {
                let mut map = store.lock().unwrap_or_else(|p| p.into_inner());
                if map.len() >= 1024 {
                    map.clear();
                }
                map.insert(key.clone(), session);
            }
        });
        Ok(OpensslEngine { ctx: b.build(), verifier, allow_renegotiation: options.allow_renegotiation, sessions })
    }
}

/// What one connection's verification found (shared with its verify callback).
#[derive(Default)]
struct ConnState {
    /// The leaf last verified and the answer, so the callback (called once per chain depth)
    /// verifies each handshake's chain once.
    verified: Mutex<Option<(Vec<u8>, bool)>>,
    failure: Mutex<Option<UpstreamFailure>>,
}

impl ConnState {
    fn failure(&self) -> Option<UpstreamFailure> {
        self.failure.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// certgate's verifier over the chain the partner sent (the leaf and what came with it).
fn verify(verifier: &PartnerVerifier, name: &str, state: &ConnState, store: &mut X509StoreContextRef) -> bool {
    let chain: Vec<Vec<u8>> = {
        let ssl = X509StoreContext::ssl_idx().ok().and_then(|i| store.ex_data(i));
        let sent = ssl.and_then(|s| s.peer_cert_chain());
        match sent {
            Some(stack) => stack.iter().filter_map(|c| c.to_der().ok()).collect(),
            None => store.chain().map(|s| s.iter().filter_map(|c| c.to_der().ok()).collect()).unwrap_or_default(),
        }
    };
    let Some(leaf) = chain.first() else {
        *state.failure.lock().unwrap_or_else(|p| p.into_inner()) = Some(UpstreamFailure {
            code: ErrorCode::UpstreamUntrusted,
            message: "the partner sent no certificate".into(),
        });
        return false;
    };
    let mut verified = state.verified.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((der, ok)) = verified.as_ref() {
        if der == leaf {
            return *ok;
        }
    }
    let intermediates: Vec<CertificateDer<'_>> =
        chain[1..].iter().map(|c| CertificateDer::from(c.as_slice())).collect();
    let result = match ServerName::try_from(name) {
        Ok(server_name) => verifier
            .verify_server_cert(
                &CertificateDer::from(leaf.as_slice()),
                &intermediates,
                &server_name,
                &[],
                UnixTime::now(),
            )
            .map(|_| ())
            .map_err(|e| {
                tls::classify(&e).unwrap_or(UpstreamFailure {
                    code: ErrorCode::UpstreamUntrusted,
                    message: format!("the partner's certificate was refused: {e}"),
                })
            }),
        Err(_) => Err(UpstreamFailure {
            code: ErrorCode::BadRequest,
            message: format!("'{name}' is not a valid server name"),
        }),
    };
    let ok = result.is_ok();
    if let Err(f) = result {
        *state.failure.lock().unwrap_or_else(|p| p.into_inner()) = Some(f);
    }
    *verified = Some((leaf.clone(), ok));
    ok
}

/// The partner's alert in OpenSSL's words ("sslv3 alert bad certificate"), as the RFC names it.
fn alert_of(e: &openssl::ssl::Error) -> Option<String> {
    let stack = e.ssl_error()?;
    stack.errors().iter().find_map(|err| {
        let reason = err.reason()?;
        let (_, name) = reason.split_once(" alert ")?;
        Some(name.trim().replace(' ', "_"))
    })
}

fn failure_of_alert(alert: &str) -> UpstreamFailure {
    const REJECTS: &[&str] = &[
        "certificate_required",
        "bad_certificate",
        "unknown_ca",
        "certificate_unknown",
        "unsupported_certificate",
        "certificate_revoked",
        "certificate_expired",
        "access_denied",
        "decrypt_error",
    ];
    if REJECTS.contains(&alert) {
        UpstreamFailure {
            code: ErrorCode::UpstreamRejectedCertificate,
            message: format!("the partner refused the client certificate with the TLS alert {alert}"),
        }
    } else {
        UpstreamFailure {
            code: ErrorCode::UpstreamConnectFailed,
            message: format!("the partner ended the TLS connection with the alert {alert}"),
        }
    }
}

/// An OpenSSL failure on a connection, in the contract's terms: the verifier's finding first,
/// then the partner's alert.
fn explain(state: &ConnState, e: Option<&openssl::ssl::Error>) -> Option<UpstreamFailure> {
    state.failure().or_else(|| e.and_then(alert_of).map(|a| failure_of_alert(&a)))
}

impl TlsEngine for OpensslEngine {
    fn handshake(&self, tcp: TcpStream, server_name: &str) -> HandshakeFuture {
        let prepared = (|| {
            let mut ssl = Ssl::new(&self.ctx).map_err(|e| HandshakeError::Other(e.to_string()))?;
            let state = Arc::new(ConnState::default());
            let name = server_name.to_string();
            let (verifier, st) = (self.verifier.clone(), state.clone());
            ssl.set_verify_callback(SslVerifyMode::PEER, move |_openssl_ok, store| {
                verify(&verifier, &name, &st, store)
            });
            if server_name.parse::<std::net::IpAddr>().is_err() {
                ssl.set_hostname(server_name).map_err(|e| HandshakeError::Other(e.to_string()))?;
            }
            let key = format!("{server_name}|{}", tcp.peer_addr().map(|a| a.to_string()).unwrap_or_default());
            let saved = self.sessions.lock().unwrap_or_else(|p| p.into_inner()).get(&key).cloned();
            if let Some(session) = saved {
                // SAFETY: the session came from this engine's own context.
                let _ = unsafe { ssl.set_session(&session) };
            }
            ssl.set_ex_data(session_key_index(), key);
            if self.allow_renegotiation {
                ssl.set_ex_data(handshakes_index(), AtomicUsize::new(0));
                // SAFETY: a valid SSL owned by `ssl`; the callback reads only its ex data.
                unsafe { SSL_set_info_callback(ssl.as_ptr(), Some(count_handshakes)) };
            }
            let stream = SslStream::new(ssl, tcp).map_err(|e| HandshakeError::Other(e.to_string()))?;
            Ok::<_, HandshakeError>((stream, state))
        })();
        Box::pin(async move {
            let (mut stream, state) = prepared?;
            if let Err(e) = Pin::new(&mut stream).connect().await {
                return Err(match explain(&state, Some(&e)) {
                    Some(f) => HandshakeError::Partner(f),
                    None => HandshakeError::Other(e.to_string()),
                });
            }
            let ssl = stream.ssl();
            let resumed = ssl.session_reused();
            let version = Some(ssl.version_str().to_string());
            let cipher = ssl.current_cipher().map(|c| c.standard_name().unwrap_or(c.name()).to_string());
            let alpn = ssl.selected_alpn_protocol().map(|a| String::from_utf8_lossy(a).into_owned());
            let peer_leaf = ssl.peer_certificate().and_then(|c| c.to_der().ok());
            let io = OpensslIo { stream, state };
            // An OpenSSL route has one identity (the first candidate); which one went out is not
            // counted per handshake here.
            Ok(Handshaken { io: Box::new(io), resumed, h2: false, version, cipher, alpn, peer_leaf, presented: None })
        })
    }

    fn classify(&self, error: &std::io::Error) -> Option<UpstreamFailure> {
        tls::classify(error)
    }
}

/// An established OpenSSL connection: turns failures into the contract's codes (as
/// [`UpstreamCertError`]s, which `tls::classify` reads).
struct OpensslIo {
    stream: SslStream<TcpStream>,
    state: Arc<ConnState>,
}

impl OpensslIo {
    fn explain_io(&self, e: std::io::Error) -> std::io::Error {
        if tls::classify(&e).is_some() {
            return e;
        }
        let ssl_error = e.get_ref().and_then(|inner| inner.downcast_ref::<openssl::ssl::Error>());
        match explain(&self.state, ssl_error) {
            Some(f) => std::io::Error::other(UpstreamCertError { code: f.code, message: f.message }),
            None => e,
        }
    }
}

impl AsyncRead for OpensslIo {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        Pin::new(&mut this.stream).poll_read(cx, buf).map_err(|e| this.explain_io(e))
    }
}

impl AsyncWrite for OpensslIo {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        Pin::new(&mut this.stream).poll_write(cx, buf).map_err(|e| this.explain_io(e))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        Pin::new(&mut this.stream).poll_flush(cx).map_err(|e| this.explain_io(e))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}
