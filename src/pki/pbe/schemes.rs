//! The password-based encryption schemes: a parsed AlgorithmIdentifier that can be priced and
//! then decrypts.
//!
//! * PBES1 with the PKCS#12 schemes (3-key and 2-key triple DES, RC2-128, RC2-40; `des`, `rc2`
//!   and `cbc` crates, key and IV from the PKCS#12 KDF in `kdf.rs`); the RC4 ones are refused as
//!   unsupported. PBES1 takes the BMPString password.
//! * PBES2 (RFC 8018) through the `pkcs5` crate: PBKDF2 with HMAC-SHA-1/224/256/384/512 or
//!   scrypt, and AES-128/192/256-CBC or DES-EDE3-CBC. PBES2 takes the UTF-8 password. The
//!   parameters are checked and priced here first (pkcs5 would run any iteration count, and
//!   panics on some malformed parameters).

use cbc::cipher::block_padding::Pkcs7;
use cbc::cipher::{BlockCipherDecrypt, BlockModeDecrypt, InnerIvInit, KeyInit};
use zeroize::Zeroizing;

use crate::pki::refusal::{Code, Refusal};

use super::ber::{self, tag, Tlv};
use super::budget::{KdfCost, WorkBudget};
use super::hash::HashAlg;
use super::kdf::{pkcs12_kdf, KdfPurpose, PasswordForms, MAX_SALT_LEN};
use super::oids::{self, unsupported_oid};
use super::HINT_REEXPORT;

/// scrypt: at most this much memory (128 * N * r bytes) ...
const SCRYPT_MAX_MEMORY: u64 = 256 * 1024 * 1024;
/// ... and at most this parallelization parameter.
const SCRYPT_MAX_P: u64 = 4;

/// Why a decryption did not give plaintext.
#[derive(Debug)]
pub enum PbeError {
    /// Padding (or, for callers, the plaintext structure) did not check out: almost always the
    /// wrong password.
    BadDecrypt,
    /// The scheme is unsupported, damaged or over the work budget.
    Refused(Refusal),
}

impl From<Refusal> for PbeError {
    fn from(r: Refusal) -> Self {
        PbeError::Refused(r)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pkcs12Cipher {
    TripleDes3Key,
    TripleDes2Key,
    Rc2_128,
    Rc2_40,
}

impl Pkcs12Cipher {
    fn key_len(self) -> usize {
        match self {
            Pkcs12Cipher::TripleDes3Key => 24,
            Pkcs12Cipher::TripleDes2Key => 16,
            Pkcs12Cipher::Rc2_128 => 16,
            Pkcs12Cipher::Rc2_40 => 5,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Pkcs12Cipher::TripleDes3Key => "pbeWithSHAAnd3-KeyTripleDES-CBC",
            Pkcs12Cipher::TripleDes2Key => "pbeWithSHAAnd2-KeyTripleDES-CBC",
            Pkcs12Cipher::Rc2_128 => "pbeWithSHAAnd128BitRC2-CBC",
            Pkcs12Cipher::Rc2_40 => "pbeWithSHAAnd40BitRC2-CBC",
        }
    }
}

const PKCS12_PBE_IV_LEN: usize = 8;

#[derive(Debug)]
enum SchemeKind<'a> {
    Pkcs12 { cipher: Pkcs12Cipher, salt: &'a [u8], iterations: u64 },
    Pbes2 { params: Box<pkcs5::pbes2::Parameters>, cost: KdfCost },
}

/// A parsed password-based encryption AlgorithmIdentifier, ready to price and to decrypt.
#[derive(Debug)]
pub struct EncryptionScheme<'a> {
    kind: SchemeKind<'a>,
    name: String,
}

impl<'a> EncryptionScheme<'a> {
    /// Parse an AlgorithmIdentifier (its whole TLV). Unknown or unsupported schemes are refused
    /// as unsupported-algorithm naming the OID; damaged parameters as malformed.
    #[allow(dead_code)] // for callers holding a bare AlgorithmIdentifier; tests
    pub fn parse(algorithm_identifier: &'a [u8]) -> Result<Self, Refusal> {
        let (tlv, rest) = ber::parse(algorithm_identifier).map_err(|e| e.refusal("the encryption algorithm"))?;
        if !rest.is_empty() {
            return Err(Refusal::malformed("trailing data after the encryption algorithm"));
        }
        Self::from_tlv(tlv)
    }

    pub(crate) fn from_tlv(alg: Tlv<'a>) -> Result<Self, Refusal> {
        let what = "the encryption algorithm";
        let mut r = alg.sequence().map_err(|e| e.refusal(what))?;
        let oid = r.expect(tag::OID, "algorithm OID").map_err(|e| e.refusal(what))?.content;
        let params = r.next_opt().map_err(|e| e.refusal(what))?;
        r.finish().map_err(|e| e.refusal(what))?;

        use oids::*;
        let cipher = if oid == PBE_SHA_3DES3.as_bytes() {
            Some(Pkcs12Cipher::TripleDes3Key)
        } else if oid == PBE_SHA_3DES2.as_bytes() {
            Some(Pkcs12Cipher::TripleDes2Key)
        } else if oid == PBE_SHA_RC2_128.as_bytes() {
            Some(Pkcs12Cipher::Rc2_128)
        } else if oid == PBE_SHA_RC2_40.as_bytes() {
            Some(Pkcs12Cipher::Rc2_40)
        } else {
            None
        };
        if let Some(cipher) = cipher {
            let what = cipher.name();
            let params = params.ok_or_else(|| Refusal::malformed(format!("{what} without parameters")))?;
            let mut p = params.sequence().map_err(|e| e.refusal(what))?;
            let salt = p.expect(tag::OCTET_STRING, "salt").map_err(|e| e.refusal(what))?.content;
            let iterations =
                p.expect(tag::INTEGER, "iteration count").and_then(|t| t.uint()).map_err(|e| e.refusal(what))?;
            p.finish().map_err(|e| e.refusal(what))?;
            if iterations == 0 {
                return Err(Refusal::malformed(format!("{what} with 0 iterations")));
            }
            if salt.len() > MAX_SALT_LEN {
                return Err(Refusal::new(
                    Code::UnsupportedAlgorithm,
                    format!("{what} with a {}-byte salt; certgate accepts at most {MAX_SALT_LEN}", salt.len()),
                    HINT_REEXPORT,
                ));
            }
            return Ok(EncryptionScheme {
                kind: SchemeKind::Pkcs12 { cipher, salt, iterations },
                name: what.to_string(),
            });
        }
        if oid == PBES2.as_bytes() {
            let params = params.ok_or_else(|| Refusal::malformed("PBES2 without parameters"))?;
            return parse_pbes2(params);
        }
        Err(unsupported_oid("encryption scheme", oid))
    }

    /// The scheme's name, e.g. "PBES2 (PBKDF2-HMAC-SHA-256, AES-256-CBC)".
    #[allow(dead_code)] // for messages
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether this scheme takes the BMPString password (PKCS#12 PBES1) rather than UTF-8.
    pub fn uses_bmp_password(&self) -> bool {
        matches!(self.kind, SchemeKind::Pkcs12 { .. })
    }

    /// The key derivations one decryption attempt runs.
    pub fn costs(&self) -> Vec<KdfCost> {
        match &self.kind {
            SchemeKind::Pkcs12 { cipher, iterations, .. } => vec![
                KdfCost::pkcs12(HashAlg::Sha1, *iterations, cipher.key_len()),
                KdfCost::pkcs12(HashAlg::Sha1, *iterations, PKCS12_PBE_IV_LEN),
            ],
            SchemeKind::Pbes2 { cost, .. } => vec![*cost],
        }
    }

    /// Decrypt `ciphertext` with one password candidate, paying the budget first.
    pub fn decrypt(
        &self,
        password: &PasswordForms,
        ciphertext: &[u8],
        budget: &mut WorkBudget,
    ) -> Result<Zeroizing<Vec<u8>>, PbeError> {
        match &self.kind {
            SchemeKind::Pkcs12 { cipher, salt, iterations } => {
                // Price both derivations before running the first.
                budget.precheck(&self.costs())?;
                let pw = password.bmp();
                let key = pkcs12_kdf(HashAlg::Sha1, pw, salt, KdfPurpose::Key, *iterations, cipher.key_len(), budget)?;
                let iv = pkcs12_kdf(HashAlg::Sha1, pw, salt, KdfPurpose::Iv, *iterations, PKCS12_PBE_IV_LEN, budget)?;
                match cipher {
                    Pkcs12Cipher::TripleDes3Key => {
                        let c = des::TdesEde3::new_from_slice(&key).map_err(|_| internal("3DES key"))?;
                        cbc_decrypt(c, &iv, ciphertext)
                    }
                    Pkcs12Cipher::TripleDes2Key => {
                        let c = des::TdesEde2::new_from_slice(&key).map_err(|_| internal("2-key 3DES key"))?;
                        cbc_decrypt(c, &iv, ciphertext)
                    }
                    Pkcs12Cipher::Rc2_128 | Pkcs12Cipher::Rc2_40 => {
                        // Effective key bits = key length in bits (128 or 40), as RFC 7292
                        // B.2/C says; rc2's KeyInit does the same, but be explicit.
                        let c = rc2::Rc2::new_with_eff_key_len(&key, key.len() * 8);
                        cbc_decrypt(c, &iv, ciphertext)
                    }
                }
            }
            SchemeKind::Pbes2 { params, cost } => {
                budget.spend(cost)?;
                let mut buf = Zeroizing::new(ciphertext.to_vec());
                let len = match params.decrypt_in_place(password.utf8(), &mut buf) {
                    Ok(plain) => plain.len(),
                    Err(pkcs5::Error::DecryptFailed) => return Err(PbeError::BadDecrypt),
                    Err(e) => {
                        return Err(PbeError::Refused(Refusal::new(
                            Code::UnsupportedAlgorithm,
                            format!("{} could not be used: {e}", self.name),
                            HINT_REEXPORT,
                        )))
                    }
                };
                buf.truncate(len);
                Ok(buf)
            }
        }
    }
}

fn internal(what: &str) -> PbeError {
    PbeError::Refused(Refusal::malformed(format!("could not set up the cipher ({what})")))
}

fn cbc_decrypt<C: BlockCipherDecrypt>(cipher: C, iv: &[u8], ciphertext: &[u8]) -> Result<Zeroizing<Vec<u8>>, PbeError> {
    let decryptor = cbc::Decryptor::<C>::inner_iv_slice_init(cipher, iv).map_err(|_| internal("IV length"))?;
    let mut buf = Zeroizing::new(ciphertext.to_vec());
    let len = decryptor.decrypt_padded::<Pkcs7>(&mut buf).map_err(|_| PbeError::BadDecrypt)?.len();
    buf.truncate(len);
    Ok(buf)
}

/// Parsed PBKDF2-params (RFC 8018 A.2).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Pbkdf2Params<'a> {
    pub salt: &'a [u8],
    pub iterations: u64,
    pub key_length: Option<u64>,
    pub prf: HashAlg,
}

/// Parse the parameters of a PBKDF2 AlgorithmIdentifier (`kdf` is the whole AlgorithmIdentifier).
pub(crate) fn parse_pbkdf2_algorithm(kdf: Tlv<'_>) -> Result<Pbkdf2Params<'_>, Refusal> {
    let what = "the PBKDF2 parameters";
    let mut r = kdf.sequence().map_err(|e| e.refusal(what))?;
    let oid = r.expect(tag::OID, "KDF OID").map_err(|e| e.refusal(what))?.content;
    if oid != oids::PBKDF2.as_bytes() {
        return Err(unsupported_oid("key-derivation function", oid));
    }
    let params = r.expect(tag::SEQUENCE, "PBKDF2-params").map_err(|e| e.refusal(what))?;
    r.finish().map_err(|e| e.refusal(what))?;
    let mut p = params.sequence().map_err(|e| e.refusal(what))?;
    let salt_tlv = p.next().map_err(|e| e.refusal(what))?;
    if salt_tlv.tag != tag::OCTET_STRING {
        return Err(Refusal::new(
            Code::UnsupportedAlgorithm,
            "PBKDF2 with an \"otherSource\" salt is not supported",
            HINT_REEXPORT,
        ));
    }
    let salt = salt_tlv.content;
    let iterations = p.expect(tag::INTEGER, "iteration count").and_then(|t| t.uint()).map_err(|e| e.refusal(what))?;
    let key_length = match p.optional(tag::INTEGER).map_err(|e| e.refusal(what))? {
        Some(t) => Some(t.uint().map_err(|e| e.refusal(what))?),
        None => None,
    };
    let prf = match p.optional(tag::SEQUENCE).map_err(|e| e.refusal(what))? {
        None => HashAlg::Sha1,
        Some(alg) => {
            let mut a = alg.sequence().map_err(|e| e.refusal(what))?;
            let prf_oid = a.expect(tag::OID, "PRF OID").map_err(|e| e.refusal(what))?.content;
            if let Some(param) = a.next_opt().map_err(|e| e.refusal(what))? {
                if param.tag != tag::NULL || !param.content.is_empty() {
                    return Err(Refusal::malformed("PBKDF2 PRF with unexpected parameters"));
                }
            }
            a.finish().map_err(|e| e.refusal(what))?;
            HashAlg::from_hmac_oid(prf_oid).ok_or_else(|| unsupported_oid("PBKDF2 pseudo-random function", prf_oid))?
        }
    };
    p.finish().map_err(|e| e.refusal(what))?;
    if iterations == 0 {
        return Err(Refusal::malformed("PBKDF2 with 0 iterations"));
    }
    Ok(Pbkdf2Params { salt, iterations, key_length, prf })
}

fn parse_pbes2(params: Tlv<'_>) -> Result<EncryptionScheme<'static>, Refusal> {
    let what = "the PBES2 parameters";
    // Work on a DER copy: BER writers may use indefinite lengths here, and pkcs5 reads DER.
    let der_copy = ber::to_der(&params).map_err(|e| e.refusal(what))?;
    let (params, _) = ber::parse(&der_copy).map_err(|e| e.refusal(what))?;
    let mut r = params.sequence().map_err(|e| e.refusal(what))?;
    let kdf = r.expect(tag::SEQUENCE, "key-derivation function").map_err(|e| e.refusal(what))?;
    let enc = r.expect(tag::SEQUENCE, "encryption scheme").map_err(|e| e.refusal(what))?;
    r.finish().map_err(|e| e.refusal(what))?;

    // The cipher, checked here (pkcs5 0.8 would panic on a short DES-EDE3 IV).
    let mut e = enc.sequence().map_err(|e| e.refusal(what))?;
    let enc_oid = e.expect(tag::OID, "cipher OID").map_err(|e| e.refusal(what))?.content;
    let enc_param = e.next_opt().map_err(|e| e.refusal(what))?;
    e.finish().map_err(|e| e.refusal(what))?;
    use oids::*;
    let (cipher_name, key_len, iv_len) = if enc_oid == AES128_CBC.as_bytes() {
        ("AES-128-CBC", 16u64, 16usize)
    } else if enc_oid == AES192_CBC.as_bytes() {
        ("AES-192-CBC", 24, 16)
    } else if enc_oid == AES256_CBC.as_bytes() {
        ("AES-256-CBC", 32, 16)
    } else if enc_oid == DES_EDE3_CBC.as_bytes() {
        ("DES-EDE3-CBC", 24, 8)
    } else {
        return Err(unsupported_oid("PBES2 cipher", enc_oid));
    };
    match enc_param {
        Some(iv) if iv.tag == tag::OCTET_STRING && iv.content.len() == iv_len => {}
        _ => return Err(Refusal::malformed(format!("PBES2 {cipher_name} without a {iv_len}-byte IV"))),
    }

    // The KDF, checked and priced here.
    let mut k = kdf.sequence().map_err(|e| e.refusal(what))?;
    let kdf_oid = k.expect(tag::OID, "KDF OID").map_err(|e| e.refusal(what))?.content;
    let (cost, kdf_name) = if kdf_oid == PBKDF2.as_bytes() {
        let p = parse_pbkdf2_algorithm(kdf)?;
        if let Some(len) = p.key_length {
            if len != key_len {
                return Err(Refusal::malformed(format!("PBES2 key length {len} does not match {cipher_name}")));
            }
        }
        if p.salt.len() > pkcs5::pbes2::Salt::MAX_LEN {
            return Err(Refusal::new(
                Code::UnsupportedAlgorithm,
                format!(
                    "PBKDF2 with a {}-byte salt; certgate accepts at most {}",
                    p.salt.len(),
                    pkcs5::pbes2::Salt::MAX_LEN
                ),
                HINT_REEXPORT,
            ));
        }
        if p.iterations > u64::from(u32::MAX) {
            // Over any budget anyway; price it so the message says so.
            let cost = KdfCost::pbkdf2(p.prf, p.iterations, key_len as usize);
            return Err(WorkBudget::new().check_one(&cost).err().unwrap_or_else(|| {
                Refusal::new(Code::UnsupportedAlgorithm, "PBKDF2 iteration count too large", HINT_REEXPORT)
            }));
        }
        (KdfCost::pbkdf2(p.prf, p.iterations, key_len as usize), format!("PBKDF2-HMAC-{}", p.prf.name()))
    } else if kdf_oid == SCRYPT.as_bytes() {
        let sp = k.expect(tag::SEQUENCE, "scrypt-params").map_err(|e| e.refusal(what))?;
        k.finish().map_err(|e| e.refusal(what))?;
        let mut s = sp.sequence().map_err(|e| e.refusal(what))?;
        let salt = s.expect(tag::OCTET_STRING, "salt").map_err(|e| e.refusal(what))?.content;
        let n = s.expect(tag::INTEGER, "cost parameter N").and_then(|t| t.uint()).map_err(|e| e.refusal(what))?;
        let r_ = s.expect(tag::INTEGER, "block size r").and_then(|t| t.uint()).map_err(|e| e.refusal(what))?;
        let p_ = s.expect(tag::INTEGER, "parallelization p").and_then(|t| t.uint()).map_err(|e| e.refusal(what))?;
        let key_length = match s.optional(tag::INTEGER).map_err(|e| e.refusal(what))? {
            Some(t) => Some(t.uint().map_err(|e| e.refusal(what))?),
            None => None,
        };
        s.finish().map_err(|e| e.refusal(what))?;
        if n < 2 || !n.is_power_of_two() || r_ == 0 || p_ == 0 {
            return Err(Refusal::malformed(format!("scrypt with invalid parameters N={n}, r={r_}, p={p_}")));
        }
        if let Some(len) = key_length {
            if len != key_len {
                return Err(Refusal::malformed(format!("PBES2 key length {len} does not match {cipher_name}")));
            }
        }
        let memory = 128u64.saturating_mul(n).saturating_mul(r_);
        if memory > SCRYPT_MAX_MEMORY || p_ > SCRYPT_MAX_P {
            return Err(Refusal::new(
                Code::UnsupportedAlgorithm,
                format!(
                    "the file asks for scrypt with N={n}, r={r_}, p={p_} ({} MiB of memory); \
                     certgate accepts at most {} MiB and p <= {SCRYPT_MAX_P}",
                    memory / (1024 * 1024),
                    SCRYPT_MAX_MEMORY / (1024 * 1024)
                ),
                HINT_REEXPORT,
            ));
        }
        if salt.len() > pkcs5::pbes2::Salt::MAX_LEN {
            return Err(Refusal::new(
                Code::UnsupportedAlgorithm,
                format!(
                    "scrypt with a {}-byte salt; certgate accepts at most {}",
                    salt.len(),
                    pkcs5::pbes2::Salt::MAX_LEN
                ),
                HINT_REEXPORT,
            ));
        }
        // pkcs5 keeps r and p in u16 and scrypt wants log2(N) < 64; both hold after the checks
        // above (r <= 2^21 / N <= 2^20 could still exceed u16, so check).
        if r_ > u64::from(u16::MAX) {
            return Err(Refusal::malformed(format!("scrypt block size r={r_} is out of range")));
        }
        (KdfCost::scrypt(n, r_, p_), "scrypt".to_string())
    } else {
        return Err(unsupported_oid("PBES2 key-derivation function", kdf_oid));
    };

    // Everything pkcs5 could choke on has been checked: let it parse the same bytes.
    let any = der::asn1::AnyRef::try_from(der_copy.as_slice())
        .map_err(|_| Refusal::malformed("the PBES2 parameters are not valid DER"))?;
    let parsed = pkcs5::pbes2::Parameters::try_from(any).map_err(|e| {
        Refusal::new(
            Code::UnsupportedAlgorithm,
            format!("PBES2 ({kdf_name}, {cipher_name}) parameters were not accepted: {e}"),
            HINT_REEXPORT,
        )
    })?;
    Ok(EncryptionScheme {
        kind: SchemeKind::Pbes2 { params: Box::new(parsed), cost },
        name: format!("PBES2 ({kdf_name}, {cipher_name})"),
    })
}
