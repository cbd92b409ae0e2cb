//! Chains: the pool of CA certificates certgate knows (from the file being imported, other
//! certificates' chains and the trust anchors), the path from a leaf up through it, and a
//! cryptographic check of that path with webpki.

use rustls_pki_types::{CertificateDer, UnixTime};
use time::OffsetDateTime;
use webpki::{EndEntityCert, ExtendedKeyUsageValidator, KeyPurposeIdIter};

use super::facts::CertFacts;

/// Where a CA certificate in the pool came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// The file(s) being imported, or the certificate's own stored chain.
    Own,
    /// The stored chain of another certificate.
    Certificate(String),
    /// A trust anchor bundle.
    Anchor(String),
}

impl Origin {
    pub fn describe(&self) -> String {
        match self {
            Origin::Own => "came with the certificate".into(),
            Origin::Certificate(n) => format!("from the chain of certificate '{n}'"),
            Origin::Anchor(n) => format!("trust anchor '{n}'"),
        }
    }
}

#[derive(Clone, Debug)]
pub struct PoolCert {
    pub facts: CertFacts,
    pub origin: Origin,
}

#[derive(Default, Clone)]
pub struct Pool {
    certs: Vec<PoolCert>,
}

impl Pool {
    /// Add a certificate unless one with the same id is there already (the first origin wins,
    /// so add the certificate's own chain first).
    pub fn add(&mut self, facts: CertFacts, origin: Origin) {
        if !self.certs.iter().any(|c| c.facts.id == facts.id) {
            self.certs.push(PoolCert { facts, origin });
        }
    }

    pub fn certs(&self) -> &[PoolCert] {
        &self.certs
    }

    pub fn issuer_of(&self, cert: &CertFacts) -> Option<&PoolCert> {
        self.certs.iter().filter(|c| c.facts.id != cert.id).find(|c| cert.issued_by(&c.facts))
    }

    /// Walk from the leaf up by issuer until a self-signed root or a missing issuer.
    pub fn path(&self, leaf: &CertFacts) -> ChainPath {
        let mut links: Vec<PoolCert> = Vec::new();
        let mut current = leaf;
        let mut seen = vec![leaf.id.clone()];
        loop {
            if current.self_signed {
                return ChainPath { links, end: PathEnd::Root };
            }
            if links.len() >= 8 {
                return ChainPath { links, end: PathEnd::TooLong };
            }
            match self.issuer_of(current) {
                Some(issuer) if !seen.contains(&issuer.facts.id) => {
                    seen.push(issuer.facts.id.clone());
                    links.push(issuer.clone());
                    current = &links.last().expect("just pushed").facts;
                }
                _ => return ChainPath { end: PathEnd::MissingIssuer(current.issuer.clone()), links },
            }
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PathEnd {
    /// Ends at a self-signed root (which may be the leaf itself).
    Root,
    /// The named issuer of the last certificate is not known.
    MissingIssuer(String),
    TooLong,
}

#[derive(Clone, Debug)]
pub struct ChainPath {
    /// Issuers above the leaf, nearest first.
    pub links: Vec<PoolCert>,
    pub end: PathEnd,
}

impl ChainPath {
    /// The certificates a client sends after its leaf: every issuer up to, not including, a
    /// self-signed root.
    pub fn to_send(&self) -> Vec<&CertFacts> {
        self.links.iter().map(|l| &l.facts).filter(|f| !f.self_signed).collect()
    }

    /// The leaf's own issuer is unknown: partners that trust only the root will refuse it.
    pub fn leaf_issuer_missing(&self) -> bool {
        self.links.is_empty() && matches!(self.end, PathEnd::MissingIssuer(_))
    }

    /// Check signatures along the path with webpki when it reaches a root. `Ok(None)` when
    /// there is no root to check against.
    pub fn verify_signatures(&self, leaf: &CertFacts) -> Result<Option<()>, String> {
        let Some(root) = self.links.last().filter(|_| self.end == PathEnd::Root) else {
            return Ok(None);
        };
        let leaf_der = CertificateDer::from(leaf.der.as_slice());
        let ee = EndEntityCert::try_from(&leaf_der).map_err(|e| format!("{e:?}"))?;
        let root_der = CertificateDer::from(root.facts.der.as_slice());
        let anchor = webpki::anchor_from_trusted_cert(&root_der).map_err(|e| format!("{e:?}"))?;
        let intermediates: Vec<CertificateDer<'_>> =
            self.links[..self.links.len() - 1].iter().map(|l| CertificateDer::from(l.facts.der.as_slice())).collect();
        // Validity and purpose are reported on their own; here only the signatures and the
        // CA constraints matter, so check at a moment when the leaf is valid.
        let mid =
            leaf.not_before.unix_timestamp() + (leaf.not_after.unix_timestamp() - leaf.not_before.unix_timestamp()) / 2;
        let now = OffsetDateTime::now_utc().unix_timestamp();
        let at =
            if now > leaf.not_before.unix_timestamp() && now < leaf.not_after.unix_timestamp() { now } else { mid };
        let time = UnixTime::since_unix_epoch(std::time::Duration::from_secs(at.max(0) as u64));
        ee.verify_for_usage(
            webpki::ALL_VERIFICATION_ALGS,
            std::slice::from_ref(&anchor),
            &intermediates,
            time,
            AnyPurpose,
            None,
            None,
        )
        .map(|_| Some(()))
        .map_err(|e| describe_webpki_error(&e))
    }
}

struct AnyPurpose;

impl ExtendedKeyUsageValidator for AnyPurpose {
    fn validate(&self, _iter: KeyPurposeIdIter<'_, '_>) -> Result<(), webpki::Error> {
        Ok(())
    }
}

pub fn describe_webpki_error(e: &webpki::Error) -> String {
    use webpki::Error as E;
    match e {
        E::InvalidSignatureForPublicKey => {
            "a signature in the chain does not verify: an issuer certificate is not the one that signed it".into()
        }
        E::CaUsedAsEndEntity => "the leaf is a CA certificate, not a client certificate".into(),
        E::EndEntityUsedAsCa => "a certificate in the chain is not a CA but is used as an issuer".into(),
        E::CertExpired { .. } => "a certificate in the chain has expired".into(),
        E::CertNotValidYet { .. } => "a certificate in the chain is not valid yet".into(),
        E::UnknownIssuer => "the chain does not lead to its root".into(),
        E::UnsupportedSignatureAlgorithmContext(_) | E::UnsupportedSignatureAlgorithmForPublicKeyContext(_) => {
            "a certificate in the chain is signed with an algorithm certgate does not verify".into()
        }
        other => format!("the chain does not verify ({other:?})"),
    }
}
