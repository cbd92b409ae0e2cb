//! Several candidate client certificates on one route, in order of preference: at each
//! handshake the partner's CertificateRequest picks one. The first candidate whose chain reaches
//! a CA name the partner sent (`certificate_authorities`) is presented, or the first candidate
//! when the partner sent no names or none matches (what .NET's SslStream does with several
//! client certificates). A route with one certificate is a list of one.
//!
//! rustls does not tell the resolver which connection it serves, so the name of the candidate
//! presented is left in a task-local slot that the TLS engine opens around each handshake
//! ([`note_presented`]): the gateway counts it per destination and `probe` reports it.

use std::cell::RefCell;
use std::sync::Arc;

use rustls::client::ResolvesClientCert;
use rustls::sign::CertifiedKey;
use rustls::SignatureScheme;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use x509_parser::prelude::FromDer;

tokio::task_local! {
    static PRESENTED: RefCell<Option<String>>;
}

/// Run a handshake future with a slot for the name of the candidate presented; returns the
/// future's output and that name (None: the partner asked for no certificate, or the session was
/// resumed without asking).
pub async fn note_presented<F: std::future::Future>(handshake: F) -> (F::Output, Option<String>) {
    PRESENTED
        .scope(RefCell::new(None), async move {
            let out = handshake.await;
            let presented = PRESENTED.with(|p| p.borrow_mut().take());
            (out, presented)
        })
        .await
}

/// One candidate: its name, what it sends, and the CA names its chain reaches.
pub struct Candidate {
    pub name: String,
    key: Arc<CertifiedKey>,
    /// DER of every CA name on the path: the issuer of the leaf and of each certificate sent,
    /// and the subject of each intermediate sent (so the top issuer is the anchor's subject).
    ca_names: Vec<Vec<u8>>,
    /// The leaf's validity (unix seconds): candidates valid now are preferred.
    not_before: i64,
    not_after: i64,
}

impl std::fmt::Debug for Candidate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Candidate").field("name", &self.name).field("key", &"<private>").finish()
    }
}

impl Candidate {
    /// `chain`: the leaf first, then the intermediates it sends. Refused when the key does not
    /// sign with this TLS provider or does not match the leaf.
    pub fn new(
        name: &str,
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Result<Candidate, String> {
        let unusable =
            |e: rustls::Error| format!("the certificate '{name}' cannot be used as a TLS client identity: {e}");
        let mut ca_names = Vec::new();
        let (mut not_before, mut not_after) = (i64::MIN, i64::MAX);
        for (i, der) in chain.iter().enumerate() {
            if let Ok((_, c)) = x509_parser::parse_x509_certificate(der.as_ref()) {
                if i == 0 {
                    not_before = c.validity().not_before.timestamp();
                    not_after = c.validity().not_after.timestamp();
                }
                ca_names.push(c.issuer().as_raw().to_vec());
                if i > 0 {
                    ca_names.push(c.subject().as_raw().to_vec());
                }
            }
        }
        let key = CertifiedKey::from_der(chain, key, &super::provider()).map_err(unusable)?;
        Ok(Candidate { name: name.to_string(), key: Arc::new(key), ca_names, not_before, not_after })
    }

    /// Whether its path reaches one of the names the partner sent.
    fn reaches(&self, wanted: &[Vec<u8>]) -> bool {
        self.ca_names.iter().any(|n| wanted.contains(n))
    }

    fn signs_with(&self, schemes: &[SignatureScheme]) -> bool {
        self.key.key.choose_scheme(schemes).is_some()
    }

    fn valid_at(&self, now: i64) -> bool {
        self.not_before <= now && now <= self.not_after
    }
}

/// The candidates of one route, in order of preference.
#[derive(Debug)]
pub struct CandidateResolver {
    candidates: Vec<Candidate>,
}

impl CandidateResolver {
    pub fn new(candidates: Vec<Candidate>) -> Self {
        CandidateResolver { candidates }
    }

    /// The candidate to present for the CA names a partner sent (DER of each name) and the
    /// signature schemes it accepts: the first that reaches one of the names, or the first when
    /// the partner sent none or none matches. Candidates whose key cannot sign with any scheme
    /// offered, or that are not valid at `now` (unix seconds), are passed over while another
    /// can be used.
    pub fn choose(&self, ca_names: &[&[u8]], schemes: &[SignatureScheme], now: i64) -> Option<&Candidate> {
        let all: Vec<&Candidate> = self.candidates.iter().collect();
        let usable = prefer(prefer(all, |c| c.signs_with(schemes)), |c| c.valid_at(now));
        let wanted: Vec<Vec<u8>> = ca_names.iter().map(|n| normalized_name(n)).collect();
        usable.iter().find(|c| c.reaches(&wanted)).or_else(|| usable.first()).copied()
    }
}

/// The candidates that pass `test`, or all of them when none does.
fn prefer(candidates: Vec<&Candidate>, test: impl Fn(&Candidate) -> bool) -> Vec<&Candidate> {
    let passing: Vec<&Candidate> = candidates.iter().copied().filter(|c| test(c)).collect();
    if passing.is_empty() {
        candidates
    } else {
        passing
    }
}

/// A name as the partner sent it, as the DER of an X.509 Name (some servers send the content
/// without its SEQUENCE header).
fn normalized_name(der: &[u8]) -> Vec<u8> {
    match x509_parser::x509::X509Name::from_der(der) {
        Ok((_, name)) => name.as_raw().to_vec(),
        Err(_) => {
            let mut wrapped = vec![0x30];
            let len = der.len();
            if len < 0x80 {
                wrapped.push(len as u8);
            } else if len < 0x100 {
                wrapped.extend([0x81, len as u8]);
            } else {
                wrapped.extend([0x82, (len >> 8) as u8, len as u8]);
            }
            wrapped.extend_from_slice(der);
            wrapped
        }
    }
}

impl ResolvesClientCert for CandidateResolver {
    fn resolve(&self, root_hint_subjects: &[&[u8]], sigschemes: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or_default();
        let chosen = self.choose(root_hint_subjects, sigschemes, now)?;
        let _ = PRESENTED.try_with(|p| *p.borrow_mut() = Some(chosen.name.clone()));
        Some(chosen.key.clone())
    }

    fn has_certs(&self) -> bool {
        !self.candidates.is_empty()
    }
}
