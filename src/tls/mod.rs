//! TLS towards partners: client configs (built once per route when a route table is published),
//! trust policies turned into root stores, partner verification with readable errors, and the
//! mapping of TLS failures to the gateway's error codes.

mod candidates;
mod errors;
mod sessions;
mod verifier;

pub use candidates::{note_presented, Candidate, CandidateResolver};
pub use errors::{classify, UpstreamFailure};
pub use verifier::{PartnerVerifier, UpstreamCertError};

use std::sync::Arc;

use rustls::client::{ClientSessionStore, Resumption};
use rustls::crypto::CryptoProvider;
use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::model::Pin;

pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// A resumption store for one certificate (shared by all its routes, never across certificates).
pub fn session_store() -> Arc<dyn ClientSessionStore> {
    Arc::new(sessions::SessionMemory::default())
}

/// The operating system's trusted roots (for `public`), read once per process.
pub fn system_roots() -> &'static [CertificateDer<'static>] {
    static ROOTS: std::sync::OnceLock<Vec<CertificateDer<'static>>> = std::sync::OnceLock::new();
    ROOTS.get_or_init(|| {
        let found = rustls_native_certs::load_native_certs();
        for e in &found.errors {
            tracing::warn!("reading the system's trusted roots: {e}");
        }
        found.certs
    })
}

pub fn root_store(certs: &[CertificateDer<'static>]) -> RootCertStore {
    let mut store = RootCertStore::empty();
    let _ = store.add_parsable_certificates(certs.iter().cloned());
    store
}

/// What one route presents and how it verifies its partner.
pub struct ClientSpec<'a> {
    /// The leaf and the intermediates to send, leaf first; None sends no certificate.
    pub identity: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
    pub roots: RootCertStore,
    /// Describes the trust policy in error messages ("ca:partner-root").
    pub trust_label: &'a str,
    pub pins: Vec<Pin>,
    pub sessions: Arc<dyn ClientSessionStore>,
}

pub fn client_config(spec: ClientSpec<'_>) -> Result<Arc<ClientConfig>, String> {
    let verifier = PartnerVerifier::new(spec.roots, spec.trust_label, spec.pins, provider())?;
    client_config_with(Arc::new(verifier), spec.identity, spec.sessions)
}

/// A partner verifier for one trust policy and set of pins. Its root store is the big part of a
/// client config (the system roots for `public`), so routes that verify alike share one.
pub fn partner_verifier(
    roots: &[CertificateDer<'static>],
    trust_label: &str,
    pins: Vec<Pin>,
) -> Result<Arc<PartnerVerifier>, String> {
    Ok(Arc::new(PartnerVerifier::new(root_store(roots), trust_label, pins, provider())?))
}

/// A client config presenting `identity` (or none) and verifying with a shared `verifier`.
pub fn client_config_with(
    verifier: Arc<PartnerVerifier>,
    identity: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
    sessions: Arc<dyn ClientSessionStore>,
) -> Result<Arc<ClientConfig>, String> {
    let candidates = match identity {
        Some((chain, key)) => vec![Candidate::new("the certificate", chain, key)?],
        None => Vec::new(),
    };
    client_config_candidates(verifier, candidates, sessions)
}

/// A client config presenting one of `candidates` at each handshake (the partner's CA names
/// pick; none: no certificate) and verifying with a shared `verifier`.
pub fn client_config_candidates(
    verifier: Arc<PartnerVerifier>,
    candidates: Vec<Candidate>,
    sessions: Arc<dyn ClientSessionStore>,
) -> Result<Arc<ClientConfig>, String> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let mut config = if candidates.is_empty() {
        builder.with_no_client_auth()
    } else {
        builder.with_client_cert_resolver(Arc::new(CandidateResolver::new(candidates)))
    };
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    config.resumption = Resumption::store(sessions);
    Ok(Arc::new(config))
}

/// What a finished handshake negotiated, as people read it: version (`TLSv1.3`), cipher suite
/// and ALPN protocol. For the connector (`upstream`) and for diagnosis (`probe`).
pub fn negotiated(conn: &rustls::ClientConnection) -> (Option<String>, Option<String>, Option<String>) {
    let version = conn.protocol_version().map(|v| match v {
        rustls::ProtocolVersion::TLSv1_3 => "TLSv1.3".to_string(),
        rustls::ProtocolVersion::TLSv1_2 => "TLSv1.2".to_string(),
        other => format!("{other:?}"),
    });
    let cipher = conn.negotiated_cipher_suite().map(|c| format!("{:?}", c.suite()));
    let alpn = conn.alpn_protocol().map(|a| String::from_utf8_lossy(a).into_owned());
    (version, cipher, alpn)
}
