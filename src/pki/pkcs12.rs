//! RFC 7292 PKCS#12 (PFX) reader: certificates and private keys out of a password-protected
//! file, with the password semantics certgate promises.
//!
//! * Integrity: the HMAC MacData (SHA-1/224/256/384/512, key from the PKCS#12 KDF with ID 3)
//!   or PBMAC1 (RFC 9579, PBKDF2 + HMAC, as OpenSSL 3.4+ writes with `-pbmac1_pbkdf2`).
//!   Public-key integrity mode (signedData) is refused as unsupported.
//! * Privacy: `data` and `encryptedData` (PKCS#12 PBES1 or PBES2, see `pbe/schemes.rs`) authSafe
//!   parts; `envelopedData` (public-key privacy mode) is refused as unsupported.
//! * Bags: keyBag, pkcs8ShroudedKeyBag, certBag (x509Certificate; sdsiCertificate ignored),
//!   safeContentsBag (nested, depth-limited); crlBag, secretBag and unknown bags are ignored.
//! * Passwords: `None` tries the empty password as BMPString (`[0,0]`) and then as the
//!   zero-length "NULL" form .NET and Java write; `Some(p)` tries `p` (and, when empty, the
//!   NULL form too). The encoding that verified the MAC is tried first for the bags.
//! * BER input (indefinite lengths, constructed OCTET STRINGs) is accepted; truncated or
//!   trailing-garbage input is malformed. No input makes it panic; recursion and allocation are
//!   bounded, and all password hashing is priced against a [`WorkBudget`] before it runs.

use crate::pki::password::Password;
use crate::pki::refusal::{Code, Refusal};

use std::borrow::Cow;
use std::fmt;

use zeroize::Zeroizing;

use super::pbe::ber::{self, tag, Tlv};
use super::pbe::{
    self, hmac_verify, oids, pbkdf2_hmac, pkcs12_kdf, EncryptionScheme, HashAlg, KdfCost, KdfPurpose, PasswordForms,
    PbeError, WorkBudget,
};

/// Largest input accepted.
pub const MAX_INPUT_LEN: usize = 1024 * 1024;
/// How deep safeContentsBags may nest.
const MAX_BAG_NESTING: usize = 4;
/// Friendly names are cut to this many characters.
const MAX_FRIENDLY_NAME_CHARS: usize = 256;

const HINT_WRONG_PASSWORD: &str = "check the password that was set when the file was exported";
const HINT_GIVE_PASSWORD: &str = "give it with --password-env VAR, --password-file FILE or --password-stdin";
const HINT_REEXPORT_PASSWORD: &str = "export it again protected by a password (the tool's default settings)";

/// What a PKCS#12 file held.
#[derive(Default)]
pub struct Pkcs12Contents {
    /// X.509 certificates (DER), in file order.
    pub certs: Vec<Vec<u8>>,
    /// Private keys as PKCS#8 PrivateKeyInfo (DER), in file order.
    pub keys: Vec<Zeroizing<Vec<u8>>>,
    /// The friendlyName of each key bag, aligned with `keys` (empty when the bag has none);
    /// for messages only.
    pub friendly_names: Vec<String>,
}

impl fmt::Debug for Pkcs12Contents {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cert_sizes: Vec<usize> = self.certs.iter().map(Vec::len).collect();
        f.debug_struct("Pkcs12Contents")
            .field("certs (DER sizes)", &cert_sizes)
            .field("keys", &format_args!("{} private key(s), redacted", self.keys.len()))
            .field("friendly_names", &self.friendly_names)
            .finish()
    }
}

/// Cheap sniff: an outer SEQUENCE whose first element is INTEGER 3, followed by a SEQUENCE
/// (the authSafe ContentInfo).
pub fn looks_like_pkcs12(data: &[u8]) -> bool {
    // Only the headers are looked at; a definite-length outer value is not walked.
    let sniff = || -> Result<bool, ber::Error> {
        if data.first() != Some(&tag::SEQUENCE) {
            return Ok(false);
        }
        let header_len = match data.get(1) {
            Some(&l) if l <= 0x80 => 2,
            Some(&l) if (0x81..=0x84).contains(&l) => 2 + usize::from(l & 0x7f),
            _ => return Ok(false),
        };
        let inner = data.get(header_len..).unwrap_or(&[]);
        if inner.len() < 5 || inner[..3] != [tag::INTEGER, 0x01, 0x03] {
            return Ok(false);
        }
        Ok(inner[3] == tag::SEQUENCE)
    };
    sniff().unwrap_or(false)
}

/// Read a PKCS#12 file with the default [`WorkBudget`].
pub fn read(data: &[u8], password: Option<&Password>) -> Result<Pkcs12Contents, Refusal> {
    read_with_budget(data, password, &mut WorkBudget::new())
}

/// Read a PKCS#12 file, paying all password hashing from `budget`.
pub fn read_with_budget(
    data: &[u8],
    password: Option<&Password>,
    budget: &mut WorkBudget,
) -> Result<Pkcs12Contents, Refusal> {
    if data.is_empty() {
        return Err(Refusal::new(Code::Empty, "the PKCS#12 file is empty", "copy or export the file again and retry"));
    }
    if data.len() > MAX_INPUT_LEN {
        return Err(Refusal::new(
            Code::TooLarge,
            format!("the PKCS#12 file is {} bytes; certgate reads at most {MAX_INPUT_LEN}", data.len()),
            "export only the client certificate, its chain and its key",
        ));
    }
    let whole = "the PKCS#12 file";
    let (pfx, rest) = ber::parse(data).map_err(|e| e.refusal(whole))?;
    if !rest.is_empty() {
        return Err(Refusal::malformed(format!(
            "{} bytes of unexpected data follow the PKCS#12 structure",
            rest.len()
        )));
    }
    let mut r = pfx.sequence().map_err(|e| e.refusal(whole))?;
    let version = r.expect(tag::INTEGER, "version").and_then(|t| t.uint()).map_err(|e| e.refusal(whole))?;
    if version != 3 {
        return Err(Refusal::malformed(format!("the PKCS#12 file has version {version}; only version 3 exists")));
    }
    let auth_safe = r.expect(tag::SEQUENCE, "authSafe").map_err(|e| e.refusal(whole))?;
    let mac_data = r.optional(tag::SEQUENCE).map_err(|e| e.refusal(whole))?;
    r.finish().map_err(|e| e.refusal(whole))?;

    // authSafe: ContentInfo of type data holding the AuthenticatedSafe.
    let (content_type, content) = content_info(auth_safe, "the authSafe")?;
    if content_type == oids::SIGNED_DATA.as_bytes() {
        return Err(Refusal::new(
            Code::UnsupportedAlgorithm,
            "the PKCS#12 file uses public-key integrity mode (signedData), which certgate does not support",
            HINT_REEXPORT_PASSWORD,
        ));
    }
    if content_type != oids::DATA.as_bytes() {
        return Err(pbe::unsupported_oid("authSafe content type", content_type));
    }
    let auth_safe_bytes = data_content(content, "the authSafe")?;
    let parts = authenticated_safe(&auth_safe_bytes)?;
    let mac = mac_data.map(parse_mac).transpose()?;

    let mut candidates = password_candidates(password);

    // Price everything needed to open the file, before any hashing: the MAC, every encrypted
    // part and every shrouded key in plaintext parts, once each. Fallback attempts with a
    // second password encoding are only made when the budget still affords them.
    let mut costs: Vec<KdfCost> = Vec::new();
    if let Some(mac) = &mac {
        costs.push(mac.cost());
    }
    for part in &parts {
        match part {
            Part::Data(bytes) => shrouded_key_costs(bytes, 0, &mut costs)?,
            Part::Encrypted { scheme, .. } => costs.extend(scheme.costs()),
        }
    }
    budget.precheck(&costs)?;

    if let Some(mac) = &mac {
        match verify_mac(mac, &auth_safe_bytes, &candidates, budget)? {
            Some(index) => candidates[..=index].rotate_right(1),
            None => {
                return Err(match password {
                    None => password_required(),
                    Some(_) => Refusal::new(
                        Code::WrongPassword,
                        "the password does not open the PKCS#12 file",
                        HINT_WRONG_PASSWORD,
                    ),
                })
            }
        }
    }

    let mut reader = BagReader {
        candidates,
        budget,
        password_given: password.is_some(),
        mac_verified: mac.is_some(),
        out: Pkcs12Contents::default(),
    };
    for part in &parts {
        match part {
            Part::Data(bytes) => reader.safe_contents(bytes, 0)?,
            Part::Encrypted { scheme, ciphertext } => {
                let plain = reader.decrypt(
                    scheme,
                    ciphertext,
                    "the encrypted part of the PKCS#12 file (usually its certificates)",
                    is_safe_contents,
                )?;
                reader.safe_contents(&plain, 0)?;
            }
        }
    }
    Ok(reader.out)
}

fn password_required() -> Refusal {
    Refusal::new(Code::PasswordRequired, "the PKCS#12 file is protected by a password", HINT_GIVE_PASSWORD)
}

fn password_candidates(password: Option<&Password>) -> Vec<PasswordForms> {
    match password {
        Some(p) if !p.is_empty() => vec![PasswordForms::new(p.as_str())],
        // No password, or an empty one: RFC 7292's [0,0] first, then the zero-length form.
        _ => vec![PasswordForms::new(""), PasswordForms::null()],
    }
}

/// ContentInfo ::= SEQUENCE { contentType OID, content [0] EXPLICIT ANY OPTIONAL }
fn content_info<'a>(tlv: Tlv<'a>, what: &str) -> Result<(&'a [u8], Option<Tlv<'a>>), Refusal> {
    let mut r = tlv.sequence().map_err(|e| e.refusal(what))?;
    let oid = r.expect(tag::OID, "content type").map_err(|e| e.refusal(what))?.content;
    let content = r.optional(tag::CONTEXT_0).map_err(|e| e.refusal(what))?;
    r.finish().map_err(|e| e.refusal(what))?;
    Ok((oid, content))
}

/// The OCTET STRING inside a data ContentInfo's [0].
fn data_content<'a>(content: Option<Tlv<'a>>, what: &str) -> Result<Cow<'a, [u8]>, Refusal> {
    let content = content.ok_or_else(|| Refusal::malformed(format!("{what} has no content")))?;
    let mut r = content.children().map_err(|e| e.refusal(what))?;
    let octets = r.next().map_err(|e| e.refusal(what))?;
    r.finish().map_err(|e| e.refusal(what))?;
    if octets.tag != tag::OCTET_STRING && octets.tag != 0x24 {
        return Err(Refusal::malformed(format!("{what} does not hold an OCTET STRING")));
    }
    octets.octets().map_err(|e| e.refusal(what))
}

enum Part<'a> {
    /// SafeContents in the clear.
    Data(Cow<'a, [u8]>),
    /// SafeContents encrypted with a password.
    Encrypted { scheme: EncryptionScheme<'a>, ciphertext: Cow<'a, [u8]> },
}

/// AuthenticatedSafe ::= SEQUENCE OF ContentInfo
fn authenticated_safe(bytes: &[u8]) -> Result<Vec<Part<'_>>, Refusal> {
    let what = "the PKCS#12 contents (AuthenticatedSafe)";
    let (tlv, rest) = ber::parse(bytes).map_err(|e| e.refusal(what))?;
    if !rest.is_empty() {
        return Err(Refusal::malformed(format!("{what} has {} bytes of trailing data", rest.len())));
    }
    let mut r = tlv.sequence().map_err(|e| e.refusal(what))?;
    let mut parts = Vec::new();
    while let Some(ci) = r.next_opt().map_err(|e| e.refusal(what))? {
        let (oid, content) = content_info(ci, what)?;
        if oid == oids::DATA.as_bytes() {
            parts.push(Part::Data(data_content(content, what)?));
        } else if oid == oids::ENCRYPTED_DATA.as_bytes() {
            parts.push(encrypted_data(content)?);
        } else if oid == oids::ENVELOPED_DATA.as_bytes() {
            return Err(Refusal::new(
                Code::UnsupportedAlgorithm,
                "the PKCS#12 file uses public-key privacy mode (envelopedData), which certgate does not support",
                HINT_REEXPORT_PASSWORD,
            ));
        } else {
            return Err(pbe::unsupported_oid("PKCS#12 content type", oid));
        }
    }
    Ok(parts)
}

/// EncryptedData ::= SEQUENCE { version, EncryptedContentInfo ::= SEQUENCE { contentType,
/// contentEncryptionAlgorithm, encryptedContent [0] IMPLICIT OCTET STRING OPTIONAL },
/// unprotectedAttrs [1] IMPLICIT OPTIONAL }
fn encrypted_data(content: Option<Tlv<'_>>) -> Result<Part<'_>, Refusal> {
    let what = "an encrypted part of the PKCS#12 file";
    let content = content.ok_or_else(|| Refusal::malformed(format!("{what} has no content")))?;
    let mut outer = content.children().map_err(|e| e.refusal(what))?;
    let ed = outer.expect(tag::SEQUENCE, "EncryptedData").map_err(|e| e.refusal(what))?;
    outer.finish().map_err(|e| e.refusal(what))?;
    let mut r = ed.sequence().map_err(|e| e.refusal(what))?;
    r.expect(tag::INTEGER, "version").map_err(|e| e.refusal(what))?;
    let eci = r.expect(tag::SEQUENCE, "EncryptedContentInfo").map_err(|e| e.refusal(what))?;
    // [1] unprotectedAttrs may follow; nothing in it matters here.
    r.optional(0xa1).map_err(|e| e.refusal(what))?;
    r.finish().map_err(|e| e.refusal(what))?;
    let mut e = eci.sequence().map_err(|e| e.refusal(what))?;
    e.expect(tag::OID, "content type").map_err(|e| e.refusal(what))?;
    let alg = e.expect(tag::SEQUENCE, "encryption algorithm").map_err(|e| e.refusal(what))?;
    let ciphertext = match e.next_opt().map_err(|e| e.refusal(what))? {
        Some(t) if t.tag == tag::CONTEXT_0_PRIMITIVE || t.tag == tag::CONTEXT_0 => {
            t.octets().map_err(|e| e.refusal(what))?
        }
        Some(t) => return Err(Refusal::malformed(format!("{what} has unexpected tag 0x{:02x}", t.tag))),
        None => return Err(Refusal::malformed(format!("{what} has no encrypted content"))),
    };
    e.finish().map_err(|e| e.refusal(what))?;
    let scheme = EncryptionScheme::from_tlv(alg)?;
    Ok(Part::Encrypted { scheme, ciphertext })
}

/// A plaintext that parses as SafeContents: one SEQUENCE of SEQUENCEs starting with an OID.
fn is_safe_contents(plain: &[u8]) -> bool {
    let check = || -> Result<bool, ber::Error> {
        let (tlv, rest) = ber::parse(plain)?;
        if !rest.is_empty() || tlv.tag != tag::SEQUENCE {
            return Ok(false);
        }
        let mut r = tlv.sequence()?;
        while let Some(bag) = r.next_opt()? {
            let mut b = bag.sequence()?;
            b.expect(tag::OID, "bag type")?;
        }
        Ok(true)
    };
    check().unwrap_or(false)
}

// ------------------------------------------------------------------------------------------
// MAC
// ------------------------------------------------------------------------------------------

enum MacKind<'a> {
    /// RFC 7292: HMAC keyed by the PKCS#12 KDF (ID 3) with the MAC's own hash.
    Classic { hash: HashAlg, salt: &'a [u8], iterations: u64 },
    /// RFC 9579 PBMAC1: HMAC keyed by PBKDF2 over the UTF-8 password.
    Pbmac1 { kdf: pbe::Pbkdf2Params<'a>, key_len: usize, hmac: HashAlg },
}

struct MacCheck<'a> {
    kind: MacKind<'a>,
    digest: &'a [u8],
}

impl MacCheck<'_> {
    fn cost(&self) -> KdfCost {
        match &self.kind {
            MacKind::Classic { hash, iterations, .. } => KdfCost::pkcs12(*hash, *iterations, hash.output_len()),
            MacKind::Pbmac1 { kdf, key_len, .. } => KdfCost::pbkdf2(kdf.prf, kdf.iterations, *key_len),
        }
    }

    /// The bytes of the password this MAC is keyed with.
    fn encoding<'p>(&self, password: &'p PasswordForms) -> &'p [u8] {
        match self.kind {
            MacKind::Classic { .. } => password.bmp(),
            MacKind::Pbmac1 { .. } => password.utf8(),
        }
    }

    fn verify(&self, password: &PasswordForms, data: &[u8], budget: &mut WorkBudget) -> Result<bool, Refusal> {
        match &self.kind {
            MacKind::Classic { hash, salt, iterations } => {
                let key =
                    pkcs12_kdf(*hash, password.bmp(), salt, KdfPurpose::Mac, *iterations, hash.output_len(), budget)?;
                Ok(hmac_verify(*hash, &key, data, self.digest))
            }
            MacKind::Pbmac1 { kdf, key_len, hmac } => {
                let key = pbkdf2_hmac(kdf.prf, password.utf8(), kdf.salt, kdf.iterations, *key_len, budget)?;
                Ok(hmac_verify(*hmac, &key, data, self.digest))
            }
        }
    }
}

/// MacData ::= SEQUENCE { mac DigestInfo, macSalt OCTET STRING, iterations INTEGER DEFAULT 1 }
fn parse_mac(tlv: Tlv<'_>) -> Result<MacCheck<'_>, Refusal> {
    let what = "the PKCS#12 MAC";
    let mut m = tlv.sequence().map_err(|e| e.refusal(what))?;
    let digest_info = m.expect(tag::SEQUENCE, "DigestInfo").map_err(|e| e.refusal(what))?;
    let salt = m.expect(tag::OCTET_STRING, "MAC salt").map_err(|e| e.refusal(what))?.content;
    let iterations = match m.optional(tag::INTEGER).map_err(|e| e.refusal(what))? {
        Some(t) => t.uint().map_err(|e| e.refusal(what))?,
        None => 1,
    };
    m.finish().map_err(|e| e.refusal(what))?;

    let mut d = digest_info.sequence().map_err(|e| e.refusal(what))?;
    let alg = d.expect(tag::SEQUENCE, "MAC algorithm").map_err(|e| e.refusal(what))?;
    let digest = d.expect(tag::OCTET_STRING, "MAC value").map_err(|e| e.refusal(what))?.content;
    d.finish().map_err(|e| e.refusal(what))?;
    let mut a = alg.sequence().map_err(|e| e.refusal(what))?;
    let oid = a.expect(tag::OID, "MAC algorithm OID").map_err(|e| e.refusal(what))?.content;
    let params = a.next_opt().map_err(|e| e.refusal(what))?;
    a.finish().map_err(|e| e.refusal(what))?;

    if oid == oids::PBMAC1.as_bytes() {
        // PBMAC1-params ::= SEQUENCE { keyDerivationFunc, messageAuthScheme }; macSalt and
        // iterations of the MacData are ignored (RFC 9579 section 3).
        let params = params.ok_or_else(|| Refusal::malformed("PBMAC1 without parameters"))?;
        let mut p = params.sequence().map_err(|e| e.refusal(what))?;
        let kdf_alg = p.expect(tag::SEQUENCE, "PBMAC1 key-derivation function").map_err(|e| e.refusal(what))?;
        let mac_alg = p.expect(tag::SEQUENCE, "PBMAC1 message authentication scheme").map_err(|e| e.refusal(what))?;
        p.finish().map_err(|e| e.refusal(what))?;
        let kdf = pbe::parse_pbkdf2_algorithm(kdf_alg)?;
        let mut ma = mac_alg.sequence().map_err(|e| e.refusal(what))?;
        let mac_oid = ma.expect(tag::OID, "MAC scheme OID").map_err(|e| e.refusal(what))?.content;
        if let Some(param) = ma.next_opt().map_err(|e| e.refusal(what))? {
            if param.tag != tag::NULL {
                return Err(Refusal::malformed("PBMAC1 HMAC with unexpected parameters"));
            }
        }
        ma.finish().map_err(|e| e.refusal(what))?;
        let hmac = HashAlg::from_hmac_oid(mac_oid)
            .ok_or_else(|| pbe::unsupported_oid("PBMAC1 message authentication scheme", mac_oid))?;
        let key_len = match kdf.key_length {
            Some(len @ 1..=128) => len as usize,
            Some(len) => return Err(Refusal::malformed(format!("PBMAC1 with a {len}-byte key"))),
            None => return Err(Refusal::malformed("PBMAC1 without the PBKDF2 key length RFC 9579 requires")),
        };
        if digest.len() != hmac.output_len() {
            return Err(Refusal::malformed(format!(
                "the PBMAC1 value has {} bytes; HMAC-{} gives {}",
                digest.len(),
                hmac.name(),
                hmac.output_len()
            )));
        }
        return Ok(MacCheck { kind: MacKind::Pbmac1 { kdf, key_len, hmac }, digest });
    }

    let hash = HashAlg::from_digest_oid(oid).ok_or_else(|| pbe::unsupported_oid("MAC digest algorithm", oid))?;
    if let Some(param) = params {
        if param.tag != tag::NULL {
            return Err(Refusal::malformed("the MAC digest algorithm has unexpected parameters"));
        }
    }
    if digest.len() != hash.output_len() {
        return Err(Refusal::malformed(format!(
            "the MAC value has {} bytes; {} gives {}",
            digest.len(),
            hash.name(),
            hash.output_len()
        )));
    }
    if iterations == 0 {
        return Err(Refusal::malformed("the MAC asks for 0 iterations"));
    }
    Ok(MacCheck { kind: MacKind::Classic { hash, salt, iterations }, digest })
}

/// Index of the first candidate whose encoding verifies the MAC.
fn verify_mac(
    mac: &MacCheck<'_>,
    data: &[u8],
    candidates: &[PasswordForms],
    budget: &mut WorkBudget,
) -> Result<Option<usize>, Refusal> {
    let mut tried: Vec<&[u8]> = Vec::new();
    for (index, candidate) in candidates.iter().enumerate() {
        let encoding = mac.encoding(candidate);
        if tried.contains(&encoding) || (index > 0 && !budget.affords(&[mac.cost()])) {
            continue;
        }
        tried.push(encoding);
        if mac.verify(candidate, data, budget)? {
            return Ok(Some(index));
        }
    }
    Ok(None)
}

// ------------------------------------------------------------------------------------------
// Bags
// ------------------------------------------------------------------------------------------

/// SafeBag ::= SEQUENCE { bagId OID, bagValue [0] EXPLICIT ANY, bagAttributes SET OPTIONAL }
struct SafeBag<'a> {
    id: &'a [u8],
    value: Tlv<'a>,
    attributes: Option<Tlv<'a>>,
}

const BAGS: &str = "a bag in the PKCS#12 file";

fn safe_bags<'a>(bytes: &'a [u8]) -> Result<Vec<SafeBag<'a>>, Refusal> {
    let what = "the PKCS#12 bags (SafeContents)";
    let (tlv, rest) = ber::parse(bytes).map_err(|e| e.refusal(what))?;
    if !rest.is_empty() {
        return Err(Refusal::malformed(format!("{what} have {} bytes of trailing data", rest.len())));
    }
    safe_bags_in(tlv)
}

fn safe_bags_in(tlv: Tlv<'_>) -> Result<Vec<SafeBag<'_>>, Refusal> {
    let mut r = tlv.sequence().map_err(|e| e.refusal(BAGS))?;
    let mut bags = Vec::new();
    while let Some(bag) = r.next_opt().map_err(|e| e.refusal(BAGS))? {
        let mut b = bag.sequence().map_err(|e| e.refusal(BAGS))?;
        let id = b.expect(tag::OID, "bag type").map_err(|e| e.refusal(BAGS))?.content;
        let wrapper = b.expect(tag::CONTEXT_0, "bag value").map_err(|e| e.refusal(BAGS))?;
        let attributes = b.optional(tag::SET).map_err(|e| e.refusal(BAGS))?;
        b.finish().map_err(|e| e.refusal(BAGS))?;
        let mut w = wrapper.children().map_err(|e| e.refusal(BAGS))?;
        let value = w.next().map_err(|e| e.refusal(BAGS))?;
        w.finish().map_err(|e| e.refusal(BAGS))?;
        bags.push(SafeBag { id, value, attributes });
    }
    Ok(bags)
}

/// EncryptedPrivateKeyInfo ::= SEQUENCE { encryptionAlgorithm, encryptedData OCTET STRING }
fn shrouded_key(value: Tlv<'_>) -> Result<(EncryptionScheme<'_>, Cow<'_, [u8]>), Refusal> {
    let what = "an encrypted private key in the PKCS#12 file";
    let mut r = value.sequence().map_err(|e| e.refusal(what))?;
    let alg = r.expect(tag::SEQUENCE, "encryption algorithm").map_err(|e| e.refusal(what))?;
    let data = r.next().map_err(|e| e.refusal(what))?;
    r.finish().map_err(|e| e.refusal(what))?;
    if data.tag != tag::OCTET_STRING && data.tag != 0x24 {
        return Err(Refusal::malformed(format!("{what} does not hold an OCTET STRING")));
    }
    let scheme = EncryptionScheme::from_tlv(alg)?;
    Ok((scheme, data.octets().map_err(|e| e.refusal(what))?))
}

/// Add the price of every shrouded key in these SafeContents (nested ones included).
fn shrouded_key_costs(bytes: &[u8], depth: usize, costs: &mut Vec<KdfCost>) -> Result<(), Refusal> {
    let bags = safe_bags(bytes)?;
    shrouded_key_costs_in(&bags, depth, costs)
}

fn shrouded_key_costs_in(bags: &[SafeBag<'_>], depth: usize, costs: &mut Vec<KdfCost>) -> Result<(), Refusal> {
    for bag in bags {
        if bag.id == oids::SHROUDED_KEY_BAG.as_bytes() {
            costs.extend(shrouded_key(bag.value)?.0.costs());
        } else if bag.id == oids::SAFE_CONTENTS_BAG.as_bytes() {
            if depth >= MAX_BAG_NESTING {
                return Err(Refusal::malformed("the PKCS#12 bags are nested too deeply"));
            }
            shrouded_key_costs_in(&safe_bags_in(bag.value)?, depth + 1, costs)?;
        }
    }
    Ok(())
}

struct BagReader<'b> {
    /// Password encodings, the one that worked last first.
    candidates: Vec<PasswordForms>,
    budget: &'b mut WorkBudget,
    password_given: bool,
    mac_verified: bool,
    out: Pkcs12Contents,
}

impl BagReader<'_> {
    fn safe_contents(&mut self, bytes: &[u8], depth: usize) -> Result<(), Refusal> {
        let bags = safe_bags(bytes)?;
        // Price every shrouded key in here before decrypting the first.
        let mut costs = Vec::new();
        shrouded_key_costs_in(&bags, depth, &mut costs)?;
        self.budget.precheck(&costs)?;
        self.bags(&bags, depth)
    }

    fn bags(&mut self, bags: &[SafeBag<'_>], depth: usize) -> Result<(), Refusal> {
        for bag in bags {
            let id = bag.id;
            if id == oids::KEY_BAG.as_bytes() {
                if !pbe::looks_like_private_key_info(bag.value.raw) {
                    return Err(Refusal::malformed("a key bag in the PKCS#12 file does not hold a PKCS#8 private key"));
                }
                self.push_key(Zeroizing::new(bag.value.raw.to_vec()), bag.attributes);
            } else if id == oids::SHROUDED_KEY_BAG.as_bytes() {
                let (scheme, ciphertext) = shrouded_key(bag.value)?;
                let key = self.decrypt(
                    &scheme,
                    &ciphertext,
                    "the private key in the PKCS#12 file",
                    pbe::looks_like_private_key_info,
                )?;
                self.push_key(key, bag.attributes);
            } else if id == oids::CERT_BAG.as_bytes() {
                if let Some(cert) = cert_bag(bag.value)? {
                    self.out.certs.push(cert);
                }
            } else if id == oids::SAFE_CONTENTS_BAG.as_bytes() {
                if depth >= MAX_BAG_NESTING {
                    return Err(Refusal::malformed("the PKCS#12 bags are nested too deeply"));
                }
                let nested = safe_bags_in(bag.value)?;
                self.bags(&nested, depth + 1)?;
            }
            // crlBag, secretBag and unknown bags: nothing certgate uses.
        }
        Ok(())
    }

    fn push_key(&mut self, key: Zeroizing<Vec<u8>>, attributes: Option<Tlv<'_>>) {
        self.out.keys.push(key);
        self.out.friendly_names.push(attributes.and_then(friendly_name).unwrap_or_default());
    }

    /// Decrypt with the password candidates, the last one that worked first; a result that
    /// fails the padding or `accept` counts as the wrong password.
    fn decrypt(
        &mut self,
        scheme: &EncryptionScheme<'_>,
        ciphertext: &[u8],
        what: &str,
        accept: fn(&[u8]) -> bool,
    ) -> Result<Zeroizing<Vec<u8>>, Refusal> {
        let mut tried: Vec<Vec<u8>> = Vec::new();
        for index in 0..self.candidates.len() {
            let candidate = &self.candidates[index];
            let encoding = if scheme.uses_bmp_password() { candidate.bmp() } else { candidate.utf8() };
            if tried.iter().any(|t| t.as_slice() == encoding) || (index > 0 && !self.budget.affords(&scheme.costs())) {
                continue;
            }
            tried.push(encoding.to_vec());
            match scheme.decrypt(candidate, ciphertext, self.budget) {
                Ok(plain) if accept(&plain) => {
                    self.candidates[..=index].rotate_right(1);
                    return Ok(plain);
                }
                Ok(_) | Err(PbeError::BadDecrypt) => continue,
                Err(PbeError::Refused(refusal)) => return Err(refusal),
            }
        }
        for t in &mut tried {
            zeroize::Zeroize::zeroize(t);
        }
        Err(if self.mac_verified {
            Refusal::new(
                Code::WrongPassword,
                format!(
                    "the password opens the PKCS#12 file's integrity check but does not decrypt {what} \
                     (was it exported with a separate encryption password?)"
                ),
                HINT_WRONG_PASSWORD,
            )
        } else if !self.password_given {
            password_required()
        } else {
            Refusal::new(Code::WrongPassword, format!("the password does not open {what}"), HINT_WRONG_PASSWORD)
        })
    }
}

/// CertBag ::= SEQUENCE { certId OID, certValue [0] EXPLICIT OCTET STRING }; X.509 only.
fn cert_bag(value: Tlv<'_>) -> Result<Option<Vec<u8>>, Refusal> {
    let what = "a certificate bag in the PKCS#12 file";
    let mut r = value.sequence().map_err(|e| e.refusal(what))?;
    let cert_type = r.expect(tag::OID, "certificate type").map_err(|e| e.refusal(what))?.content;
    let wrapper = r.expect(tag::CONTEXT_0, "certificate value").map_err(|e| e.refusal(what))?;
    r.finish().map_err(|e| e.refusal(what))?;
    if cert_type != oids::X509_CERTIFICATE.as_bytes() {
        return Ok(None); // sdsiCertificate and others
    }
    let mut w = wrapper.children().map_err(|e| e.refusal(what))?;
    let octets = w.next().map_err(|e| e.refusal(what))?;
    w.finish().map_err(|e| e.refusal(what))?;
    if octets.tag != tag::OCTET_STRING && octets.tag != 0x24 {
        return Err(Refusal::malformed(format!("{what} does not hold an OCTET STRING")));
    }
    let der = octets.octets().map_err(|e| e.refusal(what))?;
    let is_one_sequence = matches!(ber::parse(&der), Ok((tlv, rest)) if rest.is_empty() && tlv.tag == tag::SEQUENCE);
    if !is_one_sequence {
        return Err(Refusal::malformed(format!("{what} does not hold a DER certificate")));
    }
    Ok(Some(der.into_owned()))
}

/// The friendlyName attribute (BMPString) of a bag, cleaned for messages.
fn friendly_name(attributes: Tlv<'_>) -> Option<String> {
    let mut set = attributes.children().ok()?;
    while let Ok(Some(attr)) = set.next_opt() {
        let Ok(mut a) = attr.sequence() else { continue };
        let Ok(oid) = a.expect(tag::OID, "attribute type") else {
            continue;
        };
        if oid.content != oids::FRIENDLY_NAME.as_bytes() {
            continue;
        }
        let Ok(values) = a.expect(tag::SET, "attribute values") else {
            continue;
        };
        let mut v = values.children().ok()?;
        let value = v.next_opt().ok()??;
        if value.tag != tag::BMP_STRING || value.content.len() % 2 != 0 {
            return None;
        }
        let units = value.content.chunks_exact(2).map(|c| u16::from_be_bytes([c[0], c[1]]));
        let name: String = char::decode_utf16(units)
            .map(|c| match c {
                Ok(c) if !c.is_control() => c,
                _ => '?',
            })
            .take(MAX_FRIENDLY_NAME_CHARS)
            .collect();
        return Some(name);
    }
    None
}

#[cfg(test)]
#[path = "pkcs12_tests.rs"]
mod tests;
