//! A private key as imported: DER bytes in one of three encodings, zeroized on drop, never
//! printed. Its public half is derived with the TLS provider so that the certificate it belongs
//! to can be found by comparing public keys.

use std::fmt;
use std::sync::Arc;

use rustls::sign::SigningKey;
use rustls_pki_types::{PrivateKeyDer, PrivatePkcs1KeyDer, PrivatePkcs8KeyDer, PrivateSec1KeyDer};
use x509_parser::prelude::FromDer;
use x509_parser::x509::SubjectPublicKeyInfo;
use zeroize::Zeroizing;

use super::refusal::{Code, Refusal};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyFormat {
    Pkcs8,
    Pkcs1,
    Sec1,
}

impl KeyFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyFormat::Pkcs8 => "pkcs8",
            KeyFormat::Pkcs1 => "pkcs1",
            KeyFormat::Sec1 => "sec1",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pkcs8" => Some(KeyFormat::Pkcs8),
            "pkcs1" => Some(KeyFormat::Pkcs1),
            "sec1" => Some(KeyFormat::Sec1),
            _ => None,
        }
    }
}

#[derive(Clone)]
pub struct PrivateKey {
    der: Zeroizing<Vec<u8>>,
    format: KeyFormat,
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PrivateKey({}, <redacted>)", self.format.as_str())
    }
}

impl PrivateKey {
    pub fn new(der: Zeroizing<Vec<u8>>, format: KeyFormat) -> Self {
        PrivateKey { der, format }
    }

    pub fn format(&self) -> KeyFormat {
        self.format
    }

    /// The raw DER, for sealing. Never for output.
    pub fn secret_der(&self) -> &[u8] {
        &self.der
    }

    pub fn to_rustls(&self) -> PrivateKeyDer<'static> {
        let bytes = self.der.to_vec();
        match self.format {
            KeyFormat::Pkcs8 => PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(bytes)),
            KeyFormat::Pkcs1 => PrivateKeyDer::Pkcs1(PrivatePkcs1KeyDer::from(bytes)),
            KeyFormat::Sec1 => PrivateKeyDer::Sec1(PrivateSec1KeyDer::from(bytes)),
        }
    }

    /// Load the key into the TLS provider: proves it is usable for signing handshakes.
    pub fn signing_key(&self) -> Result<Arc<dyn SigningKey>, Refusal> {
        rustls::crypto::aws_lc_rs::sign::any_supported_type(&self.to_rustls()).map_err(|e| {
            Refusal::new(
                Code::UnsupportedAlgorithm,
                format!("the private key cannot be used for TLS ({e})"),
                "use an RSA 2048-8192, ECDSA P-256/P-384 or Ed25519 key",
            )
        })
    }

    /// The subject public key bits of the key's public half (same form as in a certificate).
    pub fn public_key_bits(&self) -> Result<Vec<u8>, Refusal> {
        let signing = match self.signing_key() {
            Ok(s) => s,
            // RSA keys aws-lc-rs will not sign with (1024 to 2047 bits) are presented through
            // OpenSSL: their public half comes from there.
            Err(refused) => return self.legacy_rsa_public_key().ok_or(refused),
        };
        let spki = signing.public_key().ok_or_else(|| {
            Refusal::new(
                Code::UnsupportedAlgorithm,
                "the public half of the private key cannot be derived",
                "use an RSA, ECDSA P-256/P-384 or Ed25519 key",
            )
        })?;
        let (_, parsed) = SubjectPublicKeyInfo::from_der(spki.as_ref())
            .map_err(|_| Refusal::malformed("the private key's public half is damaged"))?;
        Ok(parsed.subject_public_key.data.to_vec())
    }
}

impl PrivateKey {
    /// The RSAPublicKey (PKCS#1, as in a certificate's SPKI) of an RSA key of 1024 bits or more
    /// that aws-lc-rs refuses, read by OpenSSL (in memory).
    fn legacy_rsa_public_key(&self) -> Option<Vec<u8>> {
        let rsa = match self.format {
            KeyFormat::Pkcs1 => openssl::rsa::Rsa::private_key_from_der(&self.der).ok()?,
            KeyFormat::Pkcs8 => openssl::pkey::PKey::private_key_from_pkcs8(&self.der).ok()?.rsa().ok()?,
            KeyFormat::Sec1 => return None,
        };
        if rsa.size() * 8 < 1024 || !rsa.check_key().unwrap_or(false) {
            return None;
        }
        rsa.public_key_to_der_pkcs1().ok()
    }
}

/// Where a client identity's private key comes from: asked only when a TLS engine builds its
/// configuration, so the key is in memory no longer than that configuration needs it. Today the
/// store's sealed key (`control`); an HSM key would be another implementation.
pub trait KeySource: Send + Sync {
    /// The key, in memory. The error says why it cannot be had (shown as the route's reason).
    fn load(&self) -> Result<PrivateKey, String>;
}

/// A key already in memory (e.g. one just read from a file).
impl KeySource for PrivateKey {
    fn load(&self) -> Result<PrivateKey, String> {
        Ok(self.clone())
    }
}
