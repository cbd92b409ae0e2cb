//! Certificate requests made inside certgate: a new key (aws-lc-rs key generation, PKCS#8) and a
//! PKCS#10 CSR (RFC 2986) signed with it. The DER is written here (a few dozen lines over the
//! fixed structure); the signature comes from the same rustls/aws-lc-rs signer the gateway uses.

use std::fmt;

use rustls::SignatureScheme;
use zeroize::Zeroizing;

use super::key::{KeyFormat, PrivateKey};
use super::refusal::{Code, Refusal};

/// The key types `cert request` makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyType {
    EcP256,
    EcP384,
    Rsa2048,
    Rsa3072,
    Rsa4096,
}

impl KeyType {
    pub fn parse(text: &str) -> Result<Self, Refusal> {
        Ok(match text {
            "ec-p256" => KeyType::EcP256,
            "ec-p384" => KeyType::EcP384,
            "rsa-2048" => KeyType::Rsa2048,
            "rsa-3072" => KeyType::Rsa3072,
            "rsa-4096" => KeyType::Rsa4096,
            other => {
                return Err(Refusal::new(
                    Code::UnsupportedAlgorithm,
                    format!("'{other}' is not a key type certgate makes"),
                    "choose ec-p256, ec-p384, rsa-2048, rsa-3072 or rsa-4096",
                ))
            }
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            KeyType::EcP256 => "ec-p256",
            KeyType::EcP384 => "ec-p384",
            KeyType::Rsa2048 => "rsa-2048",
            KeyType::Rsa3072 => "rsa-3072",
            KeyType::Rsa4096 => "rsa-4096",
        }
    }

    /// Make a new private key (PKCS#8).
    pub fn generate(self) -> Result<PrivateKey, Refusal> {
        use aws_lc_rs::encoding::AsDer;
        use aws_lc_rs::rsa::KeySize;
        use aws_lc_rs::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_ASN1_SIGNING, ECDSA_P384_SHA384_ASN1_SIGNING};
        let failed = || Refusal::new(Code::UnsupportedAlgorithm, "the key could not be generated", "try again");
        let der: Vec<u8> = match self {
            KeyType::EcP256 | KeyType::EcP384 => {
                let alg = if self == KeyType::EcP256 {
                    &ECDSA_P256_SHA256_ASN1_SIGNING
                } else {
                    &ECDSA_P384_SHA384_ASN1_SIGNING
                };
                let rng = aws_lc_rs::rand::SystemRandom::new();
                EcdsaKeyPair::generate_pkcs8(alg, &rng).map_err(|_| failed())?.as_ref().to_vec()
            }
            KeyType::Rsa2048 | KeyType::Rsa3072 | KeyType::Rsa4096 => {
                let size = match self {
                    KeyType::Rsa2048 => KeySize::Rsa2048,
                    KeyType::Rsa3072 => KeySize::Rsa3072,
                    _ => KeySize::Rsa4096,
                };
                let pair = aws_lc_rs::rsa::KeyPair::generate(size).map_err(|_| failed())?;
                let pkcs8: aws_lc_rs::encoding::Pkcs8V1Der<'static> = pair.as_der().map_err(|_| failed())?;
                pkcs8.as_ref().to_vec()
            }
        };
        Ok(PrivateKey::new(Zeroizing::new(der), KeyFormat::Pkcs8))
    }

    fn scheme(self) -> (SignatureScheme, Vec<u8>) {
        match self {
            // ecdsa-with-SHA256 / SHA384: no parameters
            KeyType::EcP256 => (SignatureScheme::ECDSA_NISTP256_SHA256, seq(&oid(&[1, 2, 840, 10045, 4, 3, 2]))),
            KeyType::EcP384 => (SignatureScheme::ECDSA_NISTP384_SHA384, seq(&oid(&[1, 2, 840, 10045, 4, 3, 3]))),
            // sha256WithRSAEncryption, NULL parameters
            _ => (
                SignatureScheme::RSA_PKCS1_SHA256,
                seq(&[oid(&[1, 2, 840, 113549, 1, 1, 11]), vec![0x05, 0x00]].concat()),
            ),
        }
    }
}

/// A distinguished name as typed (`CN=Billing client,O=Example,C=NL`, RFC 4514 order: most
/// specific first), checked and ready to encode.
#[derive(Clone, PartialEq, Eq)]
pub struct DistinguishedName(Vec<(&'static str, String)>);

impl fmt::Display for DistinguishedName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> =
            self.0.iter().map(|(k, v)| format!("{k}={}", v.replace('\\', "\\\\").replace(',', "\\,"))).collect();
        f.write_str(&parts.join(","))
    }
}

impl fmt::Debug for DistinguishedName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

const ATTRIBUTES: &[(&str, &[u64])] = &[
    ("CN", &[2, 5, 4, 3]),
    ("C", &[2, 5, 4, 6]),
    ("L", &[2, 5, 4, 7]),
    ("ST", &[2, 5, 4, 8]),
    ("O", &[2, 5, 4, 10]),
    ("OU", &[2, 5, 4, 11]),
    ("serialNumber", &[2, 5, 4, 5]),
    ("emailAddress", &[1, 2, 840, 113549, 1, 9, 1]),
];

impl DistinguishedName {
    pub fn parse(text: &str) -> Result<Self, Refusal> {
        let bad = |why: String| {
            Refusal::new(
                Code::Malformed,
                format!("the subject '{text}' cannot be read: {why}"),
                "write it like CN=billing-client,O=Example Ltd,C=NL (attributes CN, O, OU, L, ST, C, serialNumber, emailAddress; escape a comma as \\,)",
            )
        };
        let mut parts = Vec::new();
        let mut current = String::new();
        let mut chars = text.trim().trim_start_matches('/').chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => current.push(chars.next().ok_or_else(|| bad("it ends with a backslash".into()))?),
                ',' | '/' => parts.push(std::mem::take(&mut current)),
                _ => current.push(c),
            }
        }
        parts.push(current);
        let mut out = Vec::new();
        for part in parts.iter().map(|p| p.trim()).filter(|p| !p.is_empty()) {
            let (key, value) = part.split_once('=').ok_or_else(|| bad(format!("'{part}' has no '='")))?;
            let (key, value) = (key.trim(), value.trim());
            let known = ATTRIBUTES
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(key))
                .ok_or_else(|| bad(format!("'{key}' is not an attribute certgate writes")))?;
            if value.is_empty() || value.len() > 256 || value.chars().any(char::is_control) {
                return Err(bad(format!("the value of {key} is empty, too long or holds control characters")));
            }
            if known.0 == "C" && (value.len() != 2 || !value.chars().all(|c| c.is_ascii_alphabetic())) {
                return Err(bad("C is a two-letter country code".into()));
            }
            out.push((known.0, value.to_string()));
        }
        if !out.iter().any(|(k, _)| *k == "CN") {
            return Err(bad("it has no CN".into()));
        }
        Ok(DistinguishedName(out))
    }

    /// DER Name: RDNs from least to most specific (the reverse of the text).
    fn to_der(&self) -> Vec<u8> {
        let mut rdns = Vec::new();
        for (key, value) in self.0.iter().rev() {
            let arcs = ATTRIBUTES.iter().find(|(k, _)| k == key).map(|(_, a)| *a).unwrap_or(&[2, 5, 4, 3]);
            let string = match *key {
                "C" | "serialNumber" => tlv(0x13, value.as_bytes()),
                "emailAddress" => tlv(0x16, value.as_bytes()),
                _ => tlv(0x0c, value.as_bytes()),
            };
            rdns.push(tlv(0x31, &seq(&[oid(arcs), string].concat())));
        }
        seq(&rdns.concat())
    }
}

/// Build and sign a PKCS#10 request for `key` with `subject`, the DNS names as a subjectAltName
/// extension request, and clientAuth as the extended key usage asked for.
pub fn build_csr(
    key: &PrivateKey,
    key_type: KeyType,
    subject: &DistinguishedName,
    dns: &[String],
) -> Result<Vec<u8>, Refusal> {
    let signing = key.signing_key()?;
    let spki = signing.public_key().ok_or_else(|| {
        Refusal::new(Code::UnsupportedAlgorithm, "the key's public half cannot be had", "try another key type")
    })?;
    let mut extensions = Vec::new();
    // extendedKeyUsage: clientAuth
    extensions.push(seq(&[oid(&[2, 5, 29, 37]), tlv(0x04, &seq(&oid(&[1, 3, 6, 1, 5, 5, 7, 3, 2])))].concat()));
    if !dns.is_empty() {
        let names: Vec<u8> = dns.iter().flat_map(|d| tlv(0x82, d.as_bytes())).collect();
        extensions.push(seq(&[oid(&[2, 5, 29, 17]), tlv(0x04, &seq(&names))].concat()));
    }
    let ext_request = seq(&[oid(&[1, 2, 840, 113549, 1, 9, 14]), tlv(0x31, &seq(&extensions.concat()))].concat());
    let info =
        seq(&[vec![0x02, 0x01, 0x00], subject.to_der(), spki.as_ref().to_vec(), tlv(0xa0, &ext_request)].concat());
    let (scheme, alg) = key_type.scheme();
    let signer = signing.choose_scheme(&[scheme]).ok_or_else(|| {
        Refusal::new(Code::UnsupportedAlgorithm, "the key cannot sign with the expected scheme", "try another key type")
    })?;
    let signature = signer.sign(&info).map_err(|e| {
        Refusal::new(Code::UnsupportedAlgorithm, format!("signing the request failed: {e}"), "try again")
    })?;
    let mut bits = vec![0u8];
    bits.extend_from_slice(&signature);
    Ok(seq(&[info, alg, tlv(0x03, &bits)].concat()))
}

/// PEM of a CSR.
pub fn csr_pem(der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::from("-----BEGIN CERTIFICATE REQUEST-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE REQUEST-----\n");
    out
}

fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len.to_be_bytes().into_iter().skip_while(|b| *b == 0).collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(content);
    out
}

fn seq(content: &[u8]) -> Vec<u8> {
    tlv(0x30, content)
}

fn oid(arcs: &[u64]) -> Vec<u8> {
    let mut body = Vec::new();
    let mut push = |mut v: u64| {
        let mut tmp = vec![(v & 0x7f) as u8];
        v >>= 7;
        while v > 0 {
            tmp.push(0x80 | (v & 0x7f) as u8);
            v >>= 7;
        }
        tmp.reverse();
        body.extend(tmp);
    };
    push(arcs[0] * 40 + arcs[1]);
    for a in &arcs[2..] {
        push(*a);
    }
    tlv(0x06, &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subject_reads_rfc4514_text_and_refuses_unknown_attributes() {
        let dn = DistinguishedName::parse("CN=billing\\, client,O=Example Ltd,C=NL").unwrap();
        assert_eq!(dn.to_string(), "CN=billing\\, client,O=Example Ltd,C=NL");
        assert!(DistinguishedName::parse("O=Example").is_err());
        assert!(DistinguishedName::parse("CN=x,XX=y").is_err());
        assert!(DistinguishedName::parse("CN=x,C=Netherlands").is_err());
    }

    #[test]
    fn oid_encoding_matches_known_bytes() {
        assert_eq!(
            oid(&[1, 2, 840, 113549, 1, 1, 11]),
            [0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b]
        );
    }

    #[test]
    fn csr_of_every_key_type_parses_and_carries_the_public_key() {
        for kt in [KeyType::EcP256, KeyType::EcP384, KeyType::Rsa2048] {
            let key = kt.generate().unwrap();
            let dn = DistinguishedName::parse("CN=client.example,O=Example").unwrap();
            let der = build_csr(&key, kt, &dn, &["client.example".into()]).unwrap();
            use x509_parser::prelude::FromDer;
            let (_, csr) = x509_parser::certification_request::X509CertificationRequest::from_der(&der).unwrap();
            assert_eq!(
                csr.certification_request_info.subject_pki.subject_public_key.data.as_ref(),
                key.public_key_bits().unwrap().as_slice()
            );
        }
    }
}
