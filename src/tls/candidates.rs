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

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair};
    use rustls_pki_types::PrivatePkcs8KeyDer;

    const NOW: i64 = 1_800_000_000;

    fn dn(cn: &str) -> DistinguishedName {
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, cn);
        dn
    }

    /// A root (its DER) and a key to sign leaves with.
    struct Ca {
        params: CertificateParams,
        key: KeyPair,
        der: Vec<u8>,
    }

    fn ca(cn: &str) -> Ca {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name = dn(cn);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let der = params.self_signed(&key).unwrap().der().to_vec();
        Ca { params, key, der }
    }

    /// A candidate issued by `issuer` (its chain is the leaf alone: the issuer's name is what
    /// matches), valid from `from` to `until` (unix seconds).
    fn candidate(name: &str, issuer: &Ca, alg: &'static rcgen::SignatureAlgorithm, from: i64, until: i64) -> Candidate {
        let key = KeyPair::generate_for(alg).unwrap();
        let mut params = CertificateParams::new(vec![format!("{name}.test")]).unwrap();
        params.distinguished_name = dn(name);
        params.not_before = time::OffsetDateTime::from_unix_timestamp(from).unwrap();
        params.not_after = time::OffsetDateTime::from_unix_timestamp(until).unwrap();
        let leaf = params.signed_by(&key, &Issuer::from_params(&issuer.params, &issuer.key)).unwrap();
        let chain = vec![CertificateDer::from(leaf.der().to_vec())];
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        Candidate::new(name, chain, key).unwrap()
    }

    fn subject_der(cert: &[u8]) -> Vec<u8> {
        x509_parser::parse_x509_certificate(cert).unwrap().1.subject().as_raw().to_vec()
    }

    const ECDSA: &[SignatureScheme] = &[SignatureScheme::ECDSA_NISTP256_SHA256, SignatureScheme::ED25519];
    const P256: &rcgen::SignatureAlgorithm = &rcgen::PKCS_ECDSA_P256_SHA256;

    fn chosen<'a>(r: &'a CandidateResolver, names: &[&[u8]], schemes: &[SignatureScheme]) -> &'a str {
        r.choose(names, schemes, NOW).map(|c| c.name.as_str()).unwrap()
    }

    #[test]
    fn the_partners_ca_names_pick_the_candidate_and_no_names_pick_the_first() {
        let (a, b) = (ca("CA A"), ca("CA B"));
        let r = CandidateResolver::new(vec![
            candidate("alpha", &a, P256, NOW - 10, NOW + 10),
            candidate("beta", &b, P256, NOW - 10, NOW + 10),
        ]);
        let name_b = subject_der(&b.der);
        assert_eq!(chosen(&r, &[&name_b], ECDSA), "beta");
        assert_eq!(chosen(&r, &[&subject_der(&a.der), &name_b], ECDSA), "alpha", "the first that matches");
        assert_eq!(chosen(&r, &[], ECDSA), "alpha", "no names: the first");
        let other = subject_der(&ca("CA C").der);
        assert_eq!(chosen(&r, &[&other], ECDSA), "alpha", "no match: the first");
        // A name sent without its SEQUENCE header still matches.
        assert!(name_b.len() < 0x80, "a short name: a two-byte header");
        let content = &name_b[2..];
        assert_eq!(chosen(&r, &[content], ECDSA), "beta");
    }

    #[test]
    fn candidates_that_are_not_valid_now_or_cannot_sign_are_passed_over_while_another_can() {
        let (a, b) = (ca("CA A"), ca("CA B"));
        let expired = CandidateResolver::new(vec![
            candidate("old", &a, P256, NOW - 100, NOW - 10),
            candidate("new", &b, P256, NOW - 10, NOW + 10),
        ]);
        assert_eq!(chosen(&expired, &[], ECDSA), "new");
        assert_eq!(chosen(&expired, &[&subject_der(&a.der)], ECDSA), "new", "named by the partner, still passed over");
        let r = CandidateResolver::new(vec![
            candidate("edwards", &a, &rcgen::PKCS_ED25519, NOW - 10, NOW + 10),
            candidate("nist", &b, P256, NOW - 10, NOW + 10),
        ]);
        assert_eq!(chosen(&r, &[], &[SignatureScheme::ECDSA_NISTP256_SHA256]), "nist");
        assert_eq!(chosen(&r, &[], ECDSA), "edwards");
        // None usable: the first all the same (the partner's refusal then says why).
        let lone = CandidateResolver::new(vec![candidate("gone", &a, P256, NOW - 100, NOW - 10)]);
        assert_eq!(chosen(&lone, &[], ECDSA), "gone");
        assert!(CandidateResolver::new(Vec::new()).choose(&[], ECDSA, NOW).is_none());
    }
}
