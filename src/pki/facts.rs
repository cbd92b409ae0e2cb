//! Facts about one X.509 certificate, read once with x509-parser and kept as plain values.

use std::fmt;

use ::time::OffsetDateTime;
use x509_parser::prelude::*;

use super::refusal::{Code, Refusal};
use crate::model::CertificateId;

/// The public-key algorithm of a certificate, as the contract names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyKind {
    Rsa {
        bits: usize,
    },
    EcP256,
    EcP384,
    Ed25519,
    /// Anything else (DSA, P-521, Ed448, GOST...), named for messages.
    Other(String),
}

impl KeyKind {
    /// `rsa`, `ec-p256`, `ec-p384`, `ed25519` (the contract's `key_type`).
    pub fn type_name(&self) -> &str {
        match self {
            KeyKind::Rsa { .. } => "rsa",
            KeyKind::EcP256 => "ec-p256",
            KeyKind::EcP384 => "ec-p384",
            KeyKind::Ed25519 => "ed25519",
            KeyKind::Other(name) => name,
        }
    }

    pub fn bits(&self) -> usize {
        match self {
            KeyKind::Rsa { bits } => *bits,
            KeyKind::EcP256 | KeyKind::Ed25519 => 256,
            KeyKind::EcP384 => 384,
            KeyKind::Other(_) => 0,
        }
    }

    /// Whether certgate can present a client certificate with this key.
    pub fn supported_for_client(&self) -> Result<(), Refusal> {
        match self {
            KeyKind::Rsa { bits } if (2048..=8192).contains(bits) => Ok(()),
            KeyKind::Rsa { bits } => Err(Refusal::new(
                Code::UnsupportedAlgorithm,
                format!("the certificate has an RSA key of {bits} bits; certgate's TLS stack signs with RSA keys of 2048 to 8192 bits only"),
                "ask the issuer for a new certificate with an RSA 2048-4096, ECDSA P-256/P-384 or Ed25519 key",
            )),
            KeyKind::EcP256 | KeyKind::EcP384 | KeyKind::Ed25519 => Ok(()),
            KeyKind::Other(name) => Err(Refusal::new(
                Code::UnsupportedAlgorithm,
                format!("the certificate's key algorithm is {name}, which certgate cannot present"),
                "ask the issuer for a certificate with an RSA, ECDSA P-256/P-384 or Ed25519 key",
            )),
        }
    }
}

impl fmt::Display for KeyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyKind::Rsa { bits } => write!(f, "RSA {bits}"),
            KeyKind::EcP256 => f.write_str("ECDSA P-256"),
            KeyKind::EcP384 => f.write_str("ECDSA P-384"),
            KeyKind::Ed25519 => f.write_str("Ed25519"),
            KeyKind::Other(name) => f.write_str(name),
        }
    }
}

#[derive(Clone, Debug)]
pub struct CertFacts {
    /// SHA-256 of the DER, lowercase hex without colons: the certificate id.
    pub id: CertificateId,
    pub der: Vec<u8>,
    pub subject: String,
    pub issuer: String,
    pub subject_raw: Vec<u8>,
    pub issuer_raw: Vec<u8>,
    /// Lowercase hex of the serial number.
    pub serial: String,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
    pub key: KeyKind,
    /// The BIT STRING of the subject public key (compared with a private key's public half).
    pub public_key_bits: Vec<u8>,
    /// None when the certificate has no extended key usage extension.
    pub client_auth_eku: Option<bool>,
    pub is_ca: bool,
    pub self_signed: bool,
    pub sha1_signature: bool,
    pub subject_key_id: Option<Vec<u8>>,
    pub authority_key_id: Option<Vec<u8>>,
    /// DNS names and IP addresses from the subject alternative name.
    pub alt_names: Vec<String>,
}

pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data).as_ref())
}

const OID_RSA: &str = "1.2.840.113549.1.1.1";
const OID_EC: &str = "1.2.840.10045.2.1";
const OID_P256: &str = "1.2.840.10045.3.1.7";
const OID_P384: &str = "1.3.132.0.34";
const OID_P521: &str = "1.3.132.0.35";
const OID_ED25519: &str = "1.3.101.112";
const OID_ED448: &str = "1.3.101.113";
const OID_DSA: &str = "1.2.840.10040.4.1";
const SHA1_SIGNATURES: &[&str] = &[
    "1.2.840.113549.1.1.5", // sha1WithRSAEncryption
    "1.2.840.10045.4.1",    // ecdsa-with-SHA1
    "1.2.840.10040.4.3",    // dsa-with-sha1
    "1.3.14.3.2.29",        // sha1WithRSASignature (OIW)
];

/// Read one DER certificate. The input must be exactly one certificate.
pub fn read(der: &[u8]) -> Result<CertFacts, Refusal> {
    let (rest, cert) = X509Certificate::from_der(der)
        .map_err(|e| Refusal::malformed(format!("a certificate could not be read ({e})")))?;
    if !rest.is_empty() {
        return Err(Refusal::malformed(format!("a certificate is followed by {} unexpected bytes", rest.len())));
    }
    let der = der.to_vec();
    let spki = cert.public_key();
    let alg = spki.algorithm.algorithm.to_id_string();
    let key = match alg.as_str() {
        OID_RSA => match spki.parsed() {
            Ok(x509_parser::public_key::PublicKey::RSA(rsa)) => KeyKind::Rsa { bits: rsa.key_size() },
            _ => return Err(Refusal::malformed("the certificate's RSA public key is damaged")),
        },
        OID_EC => {
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok())
                .map(|o| o.to_id_string())
                .unwrap_or_default();
            match curve.as_str() {
                OID_P256 => KeyKind::EcP256,
                OID_P384 => KeyKind::EcP384,
                OID_P521 => KeyKind::Other("ECDSA P-521".into()),
                other => KeyKind::Other(format!("ECDSA on curve {other}")),
            }
        }
        OID_ED25519 => KeyKind::Ed25519,
        OID_ED448 => KeyKind::Other("Ed448".into()),
        OID_DSA => KeyKind::Other("DSA".into()),
        other => KeyKind::Other(format!("key algorithm {other}")),
    };
    let client_auth_eku = match cert.extended_key_usage() {
        Ok(Some(eku)) => Some(eku.value.client_auth || eku.value.any),
        Ok(None) => None,
        Err(e) => return Err(Refusal::malformed(format!("the certificate's extended key usage is damaged ({e})"))),
    };
    let mut subject_key_id = None;
    let mut authority_key_id = None;
    let mut alt_names = Vec::new();
    for ext in cert.extensions() {
        match ext.parsed_extension() {
            ParsedExtension::SubjectKeyIdentifier(id) => subject_key_id = Some(id.0.to_vec()),
            ParsedExtension::AuthorityKeyIdentifier(aki) => {
                authority_key_id = aki.key_identifier.as_ref().map(|k| k.0.to_vec())
            }
            ParsedExtension::SubjectAlternativeName(san) => {
                for name in &san.general_names {
                    match name {
                        GeneralName::DNSName(d) => alt_names.push(d.to_string()),
                        GeneralName::IPAddress(ip) => alt_names.push(format_ip(ip)),
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    let subject_raw = cert.subject().as_raw().to_vec();
    let issuer_raw = cert.issuer().as_raw().to_vec();
    let self_signed = subject_raw == issuer_raw
        && match (&subject_key_id, &authority_key_id) {
            (Some(s), Some(a)) => s == a,
            _ => true,
        };
    Ok(CertFacts {
        id: CertificateId::of_der(&der),
        subject: cert.subject().to_string(),
        issuer: cert.issuer().to_string(),
        serial: hex::encode(cert.raw_serial()),
        not_before: to_time(cert.validity().not_before.timestamp()),
        not_after: to_time(cert.validity().not_after.timestamp()),
        public_key_bits: spki.subject_public_key.data.to_vec(),
        client_auth_eku,
        is_ca: cert.is_ca(),
        self_signed,
        sha1_signature: SHA1_SIGNATURES.contains(&cert.signature_algorithm.algorithm.to_id_string().as_str()),
        key,
        subject_key_id,
        authority_key_id,
        alt_names,
        subject_raw,
        issuer_raw,
        der,
    })
}

fn to_time(ts: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(ts).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

fn format_ip(bytes: &[u8]) -> String {
    match bytes.len() {
        4 => std::net::Ipv4Addr::new(bytes[0], bytes[1], bytes[2], bytes[3]).to_string(),
        16 => {
            let mut b = [0u8; 16];
            b.copy_from_slice(bytes);
            std::net::Ipv6Addr::from(b).to_string()
        }
        _ => hex::encode(bytes),
    }
}

impl CertFacts {
    /// The first common name, or the whole subject when there is none (for short listings).
    pub fn short_name(&self) -> String {
        self.subject
            .split(", ")
            .find_map(|part| part.strip_prefix("CN="))
            .map(str::to_string)
            .unwrap_or_else(|| self.subject.clone())
    }

    /// Whether `self` names `issuer` as its issuer (by name, and by key id where both have one).
    pub fn issued_by(&self, issuer: &CertFacts) -> bool {
        if self.issuer_raw != issuer.subject_raw {
            return false;
        }
        match (&self.authority_key_id, &issuer.subject_key_id) {
            (Some(a), Some(s)) => a == s,
            _ => true,
        }
    }
}
