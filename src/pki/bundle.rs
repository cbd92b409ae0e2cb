//! From the bytes a user hands over to one identity: leaf certificate, its private key and the
//! CA certificates that came with it. Formats are recognised by content, never by extension.

use zeroize::Zeroizing;

use super::facts::{self, CertFacts};
use super::key::{KeyFormat, PrivateKey};
use super::password::Password;
use super::pbe::{self, WorkBudget};
use super::pem::{self, PemBlock};
use super::refusal::{Code, Refusal};
use super::{legacy_pem, pkcs12, pkcs7};

/// Inputs larger than this are refused before they are parsed.
pub const MAX_INPUT_BYTES: usize = 1 << 20;

/// Everything found in one file.
#[derive(Default, Debug)]
pub struct Contents {
    pub certs: Vec<CertFacts>,
    pub keys: Vec<PrivateKey>,
    /// Things that are not certificates or keys (a CSR, a public key), for messages.
    pub other: Vec<&'static str>,
}

impl Contents {
    fn merge(&mut self, other: Contents) {
        self.certs.extend(other.certs);
        self.keys.extend(other.keys);
        self.other.extend(other.other);
    }
}

/// One client identity, ready to be sealed and stored.
#[derive(Debug)]
pub struct Identity {
    pub leaf: CertFacts,
    pub key: PrivateKey,
    /// Every distinct CA certificate that came with it, the leaf's issuer first.
    pub chain: Vec<CertFacts>,
    /// Things worth telling the user (ignored extra certificates, roots offered as anchors).
    pub notes: Vec<String>,
}

/// Read one file. `password` is what the user gave (None: nothing given).
pub fn read(data: &[u8], password: Option<&Password>) -> Result<Contents, Refusal> {
    if data.len() > MAX_INPUT_BYTES {
        return Err(too_large(data.len()));
    }
    if data.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(Refusal::new(
            Code::Empty,
            "the file is empty",
            "check the path; export the certificate again if the file was not written",
        ));
    }
    if data.starts_with(&[0xfe, 0xed, 0xfe, 0xed]) || data.starts_with(&[0xce, 0xce, 0xce, 0xce]) {
        return Err(Refusal::new(
            Code::Malformed,
            "the file is a Java JKS/JCEKS keystore, not PKCS#12",
            "convert it: keytool -importkeystore -srckeystore FILE.jks -destkeystore FILE.p12 -deststoretype PKCS12",
        ));
    }
    let mut budget = WorkBudget::default();
    if pem::looks_like_pem(data) {
        let blocks = pem::parse_blocks(data)?;
        let mut contents = Contents::default();
        for block in &blocks {
            contents.merge(read_pem_block(block, password, &mut budget)?);
        }
        return Ok(contents);
    }
    if pkcs7::looks_like_pkcs7(data) {
        return pkcs7_contents(data);
    }
    if pkcs12::looks_like_pkcs12(data) {
        let p12 = pkcs12::read(data, password)?;
        let mut contents = Contents::default();
        for der in &p12.certs {
            contents.certs.push(facts::read(der)?);
        }
        for key in p12.keys {
            contents.keys.push(PrivateKey::new(key, KeyFormat::Pkcs8));
        }
        return Ok(contents);
    }
    if data.first() == Some(&0x30) {
        return read_der(data, password, &mut budget);
    }
    if std::str::from_utf8(data).is_ok() {
        return Err(Refusal::new(
            Code::NotACertificate,
            "the file is text without any PEM block ('-----BEGIN ...')",
            "give a PKCS#12 (.pfx/.p12), PEM or DER file that holds the certificate",
        ));
    }
    Err(Refusal::malformed("the file is neither PKCS#12, PEM nor DER (unreadable data)"))
}

pub fn too_large(len: usize) -> Refusal {
    Refusal::new(
        Code::TooLarge,
        format!(
            "the file has {len} bytes; certgate reads certificate files of at most {MAX_INPUT_BYTES} bytes (1 MiB)"
        ),
        "a certificate file is a few kilobytes: check that this is the right file",
    )
}

fn password_required(what: &str) -> Refusal {
    Refusal::new(
        Code::PasswordRequired,
        format!("the {what} is protected by a password"),
        "give it with --password-env VAR, --password-file FILE or --password-stdin",
    )
}

fn read_pem_block(block: &PemBlock, password: Option<&Password>, budget: &mut WorkBudget) -> Result<Contents, Refusal> {
    let mut c = Contents::default();
    let der: &[u8] = &block.der;
    match block.label.as_str() {
        "CERTIFICATE" | "X509 CERTIFICATE" => c.certs.push(facts::read(der)?),
        "TRUSTED CERTIFICATE" => {
            // OpenSSL's -trustout form: the certificate followed by its trust settings.
            let len = der_len(der).ok_or_else(|| Refusal::malformed("a TRUSTED CERTIFICATE block is damaged"))?;
            c.certs.push(facts::read(&der[..len])?)
        }
        "PRIVATE KEY" => c.keys.push(PrivateKey::new(copy(der), KeyFormat::Pkcs8)),
        "RSA PRIVATE KEY" | "EC PRIVATE KEY" => {
            let format = if block.label.starts_with("RSA") { KeyFormat::Pkcs1 } else { KeyFormat::Sec1 };
            let der = if legacy_pem::is_encrypted(block) {
                let pw = password.ok_or_else(|| password_required(&format!("private key ({})", block.label)))?;
                legacy_pem::decrypt(block, pw.as_bytes())?
            } else {
                copy(der)
            };
            c.keys.push(PrivateKey::new(der, format));
        }
        "ENCRYPTED PRIVATE KEY" => {
            let pw = password.ok_or_else(|| password_required("private key (ENCRYPTED PRIVATE KEY)"))?;
            let der = pbe::decrypt_encrypted_private_key_info(der, pw.as_bytes(), budget)?;
            c.keys.push(PrivateKey::new(der, KeyFormat::Pkcs8));
        }
        "CERTIFICATE REQUEST" | "NEW CERTIFICATE REQUEST" => c.other.push("a certificate signing request (CSR)"),
        "PUBLIC KEY" | "RSA PUBLIC KEY" => c.other.push("a public key"),
        "EC PARAMETERS" => {}
        "PKCS7" | "CMS" | "CERTIFICATE CHAIN" => return pkcs7_contents(der),
        "DSA PRIVATE KEY" => {
            return Err(Refusal::new(
                Code::UnsupportedAlgorithm,
                "the file holds a DSA private key, which TLS client authentication no longer uses",
                "ask the issuer for a certificate with an RSA, ECDSA P-256/P-384 or Ed25519 key",
            ))
        }
        "OPENSSH PRIVATE KEY" => c.other.push("an OpenSSH private key"),
        _ => c.other.push("an unknown PEM block"),
    }
    Ok(c)
}

/// The certificates of a PKCS#7 bundle (`.p7b`).
fn pkcs7_contents(data: &[u8]) -> Result<Contents, Refusal> {
    let mut c = Contents::default();
    for der in pkcs7::certificates(data)? {
        c.certs.push(facts::read(&der)?);
    }
    Ok(c)
}

fn copy(der: &[u8]) -> Zeroizing<Vec<u8>> {
    Zeroizing::new(der.to_vec())
}

/// Length of the first DER element (header + content), if well-formed.
fn der_len(data: &[u8]) -> Option<usize> {
    let (_, content, rest) = tlv(data)?;
    let _ = content;
    Some(data.len() - rest.len())
}

/// One DER TLV: (tag, content, rest). Only definite lengths of up to 4 bytes.
fn tlv(data: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let tag = *data.first()?;
    let first = *data.get(1)? as usize;
    let (len, header) = if first < 0x80 {
        (first, 2)
    } else {
        let n = first & 0x7f;
        if n == 0 || n > 4 {
            return None;
        }
        let mut len = 0usize;
        for i in 0..n {
            len = (len << 8) | *data.get(2 + i)? as usize;
        }
        (len, 2 + n)
    };
    let end = header.checked_add(len)?;
    if end > data.len() {
        return None;
    }
    Some((tag, &data[header..end], &data[end..]))
}

/// The tags of the elements of a SEQUENCE's content.
fn child_tags(content: &[u8]) -> Option<Vec<(u8, &[u8])>> {
    let mut out = Vec::new();
    let mut rest = content;
    while !rest.is_empty() {
        let (tag, c, r) = tlv(rest)?;
        out.push((tag, c));
        rest = r;
        if out.len() > 16 {
            break;
        }
    }
    Some(out)
}

const SEQ: u8 = 0x30;
const INT: u8 = 0x02;
const OCTETS: u8 = 0x04;

fn read_der(data: &[u8], password: Option<&Password>, budget: &mut WorkBudget) -> Result<Contents, Refusal> {
    let mut c = Contents::default();
    let Some((SEQ, content, rest)) = tlv(data) else {
        return Err(Refusal::malformed(
            "the file starts like DER but its length does not fit: it is truncated or damaged",
        ));
    };
    if !rest.is_empty() {
        // Some tools append several DER certificates back to back.
        let mut remaining = data;
        while let Some((SEQ, _, r)) = tlv(remaining) {
            let one = &remaining[..remaining.len() - r.len()];
            c.certs.push(facts::read(one)?);
            remaining = r;
            if remaining.is_empty() {
                return Ok(c);
            }
        }
        return Err(Refusal::malformed("the DER data has trailing bytes that are not a certificate"));
    }
    let kids = child_tags(content).ok_or_else(|| Refusal::malformed("the DER structure is damaged"))?;
    let tags: Vec<u8> = kids.iter().map(|(t, _)| *t).collect();
    let int_value = |i: usize| kids.get(i).filter(|(t, _)| *t == INT).map(|(_, v)| *v);
    match tags.as_slice() {
        // Certificate or CSR: SEQUENCE { SEQUENCE tbs, SEQUENCE alg, BIT STRING }
        [SEQ, SEQ, 0x03] => {
            let tbs = child_tags(kids[0].1).unwrap_or_default();
            let is_csr = tbs.len() >= 3
                && tbs[0].0 == INT
                && tbs[0].1 == [0]
                && tbs[1].0 == SEQ
                && tbs[2].0 == SEQ
                && tbs.get(3).is_some_and(|(t, _)| *t == 0xa0);
            if is_csr {
                c.other.push("a certificate signing request (CSR)");
            } else {
                c.certs.push(facts::read(data)?);
            }
        }
        // PKCS#8 PrivateKeyInfo: SEQUENCE { INTEGER 0|1, SEQUENCE alg, OCTET STRING, ... }
        [INT, SEQ, OCTETS, ..] if matches!(int_value(0), Some([0]) | Some([1])) => {
            c.keys.push(PrivateKey::new(copy(data), KeyFormat::Pkcs8))
        }
        // EncryptedPrivateKeyInfo: SEQUENCE { SEQUENCE alg, OCTET STRING }
        [SEQ, OCTETS] => {
            let pw = password.ok_or_else(|| password_required("private key (encrypted PKCS#8)"))?;
            let der = pbe::decrypt_encrypted_private_key_info(data, pw.as_bytes(), budget)?;
            c.keys.push(PrivateKey::new(der, KeyFormat::Pkcs8));
        }
        // PKCS#1 RSAPrivateKey: SEQUENCE { INTEGER 0, INTEGER n, ... 9 integers }
        [INT, INT, INT, INT, INT, INT, INT, INT, INT, ..] if int_value(0) == Some(&[0]) => {
            c.keys.push(PrivateKey::new(copy(data), KeyFormat::Pkcs1))
        }
        // SEC1 ECPrivateKey: SEQUENCE { INTEGER 1, OCTET STRING, [0]?, [1]? }
        [INT, OCTETS, ..] if int_value(0) == Some(&[1]) => c.keys.push(PrivateKey::new(copy(data), KeyFormat::Sec1)),
        // SubjectPublicKeyInfo: SEQUENCE { SEQUENCE alg, BIT STRING }
        [SEQ, 0x03] => c.other.push("a public key"),
        _ => {
            return Err(Refusal::new(
                Code::NotACertificate,
                "the DER data is not a certificate, a private key or a PKCS#12 file",
                "give a PKCS#12 (.pfx/.p12), PEM or DER file that holds the certificate",
            ))
        }
    }
    Ok(c)
}

/// Put the contents of all given files together into one identity.
pub fn assemble(contents: Contents) -> Result<Identity, Refusal> {
    let Contents { certs, keys, other } = contents;
    let mut distinct: Vec<CertFacts> = Vec::new();
    for cert in certs {
        if !distinct.iter().any(|c| c.id == cert.id) {
            distinct.push(cert);
        }
    }
    if distinct.is_empty() {
        return Err(match (keys.is_empty(), other.first()) {
            (_, Some(what)) => Refusal::new(
                Code::NotACertificate,
                format!("the file holds {what}, not a certificate"),
                if what.contains("CSR") {
                    "send the CSR to your CA and import the certificate it returns, with its key (--key)"
                } else {
                    "give the certificate file, with its private key in it or with --key FILE"
                },
            ),
            (false, None) => Refusal::new(
                Code::NotACertificate,
                "the file holds only a private key, no certificate",
                "give the certificate as FILE and this key with --key FILE",
            ),
            (true, None) => Refusal::new(
                Code::Empty,
                "the file holds no certificate and no key",
                "check that this is the exported certificate file",
            ),
        });
    }
    if keys.is_empty() {
        return Err(Refusal::new(
            Code::NoPrivateKey,
            format!("the file holds {} certificate(s) ({}) but no private key", distinct.len(), names(&distinct)),
            "export it again with 'Yes, export the private key' (PKCS#12), or give the key with --key FILE",
        ));
    }
    // Match every key with the certificate(s) carrying its public half.
    let mut matched: Vec<(PrivateKey, Vec<usize>)> = Vec::new();
    let mut key_error = None;
    for key in keys {
        let bits = match key.public_key_bits() {
            Ok(b) => b,
            Err(e) => {
                key_error.get_or_insert(e);
                continue;
            }
        };
        let hits: Vec<usize> = (0..distinct.len()).filter(|&i| distinct[i].public_key_bits == bits).collect();
        if !hits.is_empty() && !matched.iter().any(|(_, h)| *h == hits) {
            matched.push((key, hits));
        }
    }
    let (key, hits) = match matched.len() {
        0 => {
            // A key the TLS provider cannot load: say why in terms of the certificate when
            // its algorithm or size is the reason (RSA 1024, P-521, DSA...).
            if key_error.is_some() {
                if let Some(refusal) = distinct.iter().find_map(|c| c.key.supported_for_client().err()) {
                    return Err(refusal);
                }
            }
            return Err(key_error.unwrap_or_else(|| {
                Refusal::new(
                    Code::KeyMismatch,
                    format!(
                        "the private key matches none of the certificates in the file(s) ({})",
                        names(&distinct)
                    ),
                    "give the key that was generated with this certificate's request (check with 'openssl x509 -noout -pubkey' on both)",
                )
            }));
        }
        1 => matched.pop().expect("one"),
        n => {
            return Err(Refusal::new(
                Code::Malformed,
                format!(
                    "the file holds {n} private keys with their certificates; certgate imports one identity per name"
                ),
                "export each certificate with its key to its own file and import them under separate names",
            ))
        }
    };
    // Several certificates with the same key (a renewal): the one valid longest.
    let leaf_index = *hits
        .iter()
        .filter(|&&i| !distinct[i].is_ca)
        .chain(hits.iter())
        .max_by_key(|&&i| distinct[i].not_after)
        .expect("at least one hit");
    let leaf = distinct.remove(leaf_index);
    leaf.key.supported_for_client()?;
    let mut notes = Vec::new();
    let mut chain: Vec<CertFacts> = Vec::new();
    // Path order first, then any other CA certificates that came along.
    let mut current = leaf.clone();
    while let Some(pos) = distinct.iter().position(|c| current.issued_by(c) && c.id != current.id) {
        let issuer = distinct.remove(pos);
        current = issuer.clone();
        let root = issuer.self_signed;
        chain.push(issuer);
        if root {
            break;
        }
    }
    for cert in distinct {
        if cert.is_ca || cert.self_signed {
            chain.push(cert);
        } else {
            notes.push(format!(
                "ignored certificate '{}': it is not a CA certificate and does not belong to the key",
                cert.subject
            ));
        }
    }
    for root in chain.iter().filter(|c| c.self_signed) {
        notes.push(format!(
            "the file contains the root CA '{}'; it is kept with the chain but not trusted for partners (to trust it: certgate trust add NAME FILE)",
            root.subject
        ));
    }
    Ok(Identity { leaf, key, chain, notes })
}

fn names(certs: &[CertFacts]) -> String {
    let mut list: Vec<String> = certs.iter().take(4).map(|c| c.short_name()).collect();
    if certs.len() > 4 {
        list.push(format!("and {} more", certs.len() - 4));
    }
    list.join(", ")
}
