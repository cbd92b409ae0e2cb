//! The warnings of the contract, worked out from a certificate's facts, its path and the time.

use time::{Duration, OffsetDateTime};

use super::chain::{ChainPath, PathEnd};
use super::facts::CertFacts;

/// Certificates that expire within this are flagged `expires-soon`.
pub const EXPIRES_SOON: Duration = Duration::days(30);

/// A problem with a certificate: its code, the facts, and what to do.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct Warning {
    #[schema(value_type = String)]
    pub code: &'static str,
    pub message: String,
    pub remedy: String,
}

fn warning(code: &'static str, message: String, remedy: &str) -> Warning {
    Warning { code, message, remedy: remedy.to_string() }
}

pub fn days_left(leaf: &CertFacts, now: OffsetDateTime) -> i64 {
    (leaf.not_after - now).whole_days()
}

pub fn assess(leaf: &CertFacts, path: &ChainPath, now: OffsetDateTime) -> Vec<Warning> {
    let mut out = Vec::new();
    let fmt = |t: OffsetDateTime| t.date().to_string();
    if now > leaf.not_after {
        out.push(warning(
            "expired",
            format!(
                "the certificate expired on {} ({} days ago)",
                fmt(leaf.not_after),
                (now - leaf.not_after).whole_days()
            ),
            "partners refuse it: get a renewed certificate and run 'certgate cert rotate NAME FILE'",
        ));
    } else if now < leaf.not_before {
        out.push(warning(
            "not-yet-valid",
            format!("the certificate is valid only from {}", fmt(leaf.not_before)),
            "partners refuse it until then: check the date on this machine or wait for the start date",
        ));
    } else if leaf.not_after - now < EXPIRES_SOON {
        out.push(warning(
            "expires-soon",
            format!("the certificate expires on {} (in {} days)", fmt(leaf.not_after), days_left(leaf, now)),
            "request the renewal now, then run 'certgate cert rotate NAME FILE'",
        ));
    }
    if leaf.client_auth_eku == Some(false) {
        out.push(warning(
            "no-client-auth-eku",
            "the certificate's extended key usage does not include clientAuth".into(),
            "many partners refuse it for mutual TLS: ask the CA for a certificate with the TLS client authentication purpose",
        ));
    }
    if path.leaf_issuer_missing() {
        let issuer = match &path.end {
            PathEnd::MissingIssuer(name) => name.clone(),
            _ => leaf.issuer.clone(),
        };
        out.push(warning(
            "incomplete-chain",
            format!("the issuing CA '{issuer}' is neither in the file nor in the store, so a partner that trusts only the root will refuse the certificate"),
            "import the intermediate CA certificate (certgate trust add NAME FILE, or rotate with --chain FILE)",
        ));
    }
    if let super::facts::KeyKind::Rsa { bits } = leaf.key {
        if bits < 2048 {
            out.push(warning(
                "weak-key",
                format!("the certificate has an RSA key of {bits} bits (under 2048); certgate presents it through its OpenSSL engine, as rustls will not sign with it"),
                "partners with current TLS settings refuse it: ask the issuer for a certificate with an RSA 2048+ or ECDSA key",
            ));
        }
    }
    let sha1_in_chain = path.links.iter().filter(|l| !l.facts.self_signed).find(|l| l.facts.sha1_signature);
    if leaf.sha1_signature || sha1_in_chain.is_some() {
        let who = if leaf.sha1_signature {
            "the certificate".to_string()
        } else {
            format!("the intermediate '{}'", sha1_in_chain.map(|l| l.facts.subject.as_str()).unwrap_or(""))
        };
        out.push(warning(
            "sha1-signature",
            format!("{who} is signed with SHA-1"),
            "partners with current TLS stacks refuse SHA-1 signatures: ask the CA to reissue with SHA-256",
        ));
    }
    out
}
