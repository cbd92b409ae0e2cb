//! Password-based decryption for PKCS#12 files and PKCS#8 encrypted keys, with a work budget.
//!
//! * The PKCS#12 key-derivation function of RFC 7292 Appendix B (IDs 1 key, 2 IV, 3 MAC) over
//!   SHA-1 / SHA-224 / SHA-256 / SHA-384 / SHA-512. It takes the password as raw, already
//!   encoded bytes: [`bmp_with_terminator`] (what RFC 7292 says) or [`null_password`] (the
//!   zero-length form .NET and Java use for an empty password).
//! * PBES1 with the PKCS#12 schemes (3-key and 2-key triple DES, RC2-128, RC2-40); the RC4 ones
//!   are refused as unsupported.
//! * PBES2 (RFC 8018) through the `pkcs5` crate: PBKDF2 with HMAC-SHA-1/224/256/384/512 or
//!   scrypt, and AES-128/192/256-CBC or DES-EDE3-CBC. PBES2 takes the UTF-8 password.
//! * [`decrypt_encrypted_private_key_info`] for a PKCS#8 `EncryptedPrivateKeyInfo`.
//!
//! Every key derivation is paid for from a [`WorkBudget`] *before* it runs, so a file that asks
//! for 2^31 iterations (or a thousand bags with a million each) is refused at once instead of
//! burning minutes of CPU.
//!
//! This file also holds the small BER/DER reader ([`asn1`]) that `pkcs12.rs` uses: PKCS#12
//! files from some tools are BER (indefinite lengths, constructed OCTET STRINGs), which a strict
//! DER decoder rejects.

use crate::pki::refusal::{Code, Refusal};

use std::fmt;

use cbc::cipher::block_padding::Pkcs7;
use cbc::cipher::{BlockCipherDecrypt, BlockModeDecrypt, InnerIvInit, KeyInit};
use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::digest::block_api::BlockSizeUser;
use sha2::digest::Digest;
use sha2::{Sha224, Sha256, Sha384, Sha512};
use zeroize::{Zeroize, Zeroizing};

use self::asn1::{tag, Tlv};

const HINT_REEXPORT: &str = "export it again with the tool's default settings";
const HINT_WRONG_PASSWORD: &str = "check the password that was set when the file was exported";
const HINT_GIVE_PASSWORD: &str = "give it with --password-env VAR, --password-file FILE or --password-stdin";

/// Longest salt accepted (PBES1 and PBKDF2); real files use 8 to 32 bytes.
const MAX_SALT_LEN: usize = 1024;
/// scrypt: at most this much memory (128 * N * r bytes) ...
const SCRYPT_MAX_MEMORY: u64 = 256 * 1024 * 1024;
/// ... and at most this parallelization parameter.
const SCRYPT_MAX_P: u64 = 4;

// ------------------------------------------------------------------------------------------
// Password encodings
// ------------------------------------------------------------------------------------------

/// The RFC 7292 (Appendix B.1) password encoding: UTF-16 big-endian ("BMPString", characters
/// outside the BMP as surrogate pairs, as OpenSSL does) followed by two zero bytes.
/// `""` gives `[0, 0]`.
pub fn bmp_with_terminator(password: &str) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(Vec::with_capacity(password.len() * 2 + 2));
    for unit in password.encode_utf16() {
        out.extend_from_slice(&unit.to_be_bytes());
    }
    out.extend_from_slice(&[0, 0]);
    out
}

/// The zero-length "NULL password" that .NET and Java feed to the PKCS#12 KDF for an empty
/// password (where RFC 7292 would give `[0, 0]`).
pub fn null_password() -> Zeroizing<Vec<u8>> {
    Zeroizing::new(Vec::new())
}

/// One candidate password in the two encodings the schemes need: BMPString bytes for the
/// PKCS#12 KDF (MAC and PBES1) and UTF-8 bytes for PBKDF2/scrypt (PBES2 and PBMAC1).
#[derive(Clone)]
pub struct PasswordForms {
    bmp: Zeroizing<Vec<u8>>,
    utf8: Zeroizing<Vec<u8>>,
    null: bool,
}

impl PasswordForms {
    /// The password as RFC 7292 wants it (BMP with terminator) and as UTF-8.
    pub fn new(password: &str) -> Self {
        PasswordForms {
            bmp: bmp_with_terminator(password),
            utf8: Zeroizing::new(password.as_bytes().to_vec()),
            null: false,
        }
    }

    /// The zero-length form of the empty password (see [`null_password`]).
    pub fn null() -> Self {
        PasswordForms { bmp: null_password(), utf8: Zeroizing::new(Vec::new()), null: true }
    }

    /// Bytes for the PKCS#12 KDF.
    pub fn bmp(&self) -> &[u8] {
        &self.bmp
    }

    /// Bytes for PBKDF2 / scrypt.
    pub fn utf8(&self) -> &[u8] {
        &self.utf8
    }

    /// For messages and tests: which encoding this is (never the password itself).
    pub fn label(&self) -> &'static str {
        if self.null {
            "zero-length (NULL) password"
        } else if self.utf8.is_empty() {
            "empty password as BMPString [0,0]"
        } else {
            "password"
        }
    }
}

impl fmt::Debug for PasswordForms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PasswordForms({})", self.label())
    }
}

// ------------------------------------------------------------------------------------------
// Hashes
// ------------------------------------------------------------------------------------------

/// The hash functions the KDFs and MACs can use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HashAlg {
    Sha1,
    Sha224,
    Sha256,
    Sha384,
    Sha512,
}

impl HashAlg {
    pub fn name(self) -> &'static str {
        match self {
            HashAlg::Sha1 => "SHA-1",
            HashAlg::Sha224 => "SHA-224",
            HashAlg::Sha256 => "SHA-256",
            HashAlg::Sha384 => "SHA-384",
            HashAlg::Sha512 => "SHA-512",
        }
    }

    /// Output length in bytes.
    pub fn output_len(self) -> usize {
        match self {
            HashAlg::Sha1 => 20,
            HashAlg::Sha224 => 28,
            HashAlg::Sha256 => 32,
            HashAlg::Sha384 => 48,
            HashAlg::Sha512 => 64,
        }
    }

    /// From a digest AlgorithmIdentifier OID (as in a PKCS#12 MacData).
    pub(crate) fn from_digest_oid(oid: &[u8]) -> Option<HashAlg> {
        use self::oids::*;
        [
            (SHA1, HashAlg::Sha1),
            (SHA224, HashAlg::Sha224),
            (SHA256, HashAlg::Sha256),
            (SHA384, HashAlg::Sha384),
            (SHA512, HashAlg::Sha512),
        ]
        .into_iter()
        .find(|(o, _)| o.as_bytes() == oid)
        .map(|(_, h)| h)
    }

    /// From an hmacWithSHA* OID (PBKDF2 PRF, PBMAC1 message authentication scheme).
    pub(crate) fn from_hmac_oid(oid: &[u8]) -> Option<HashAlg> {
        use self::oids::*;
        [
            (HMAC_SHA1, HashAlg::Sha1),
            (HMAC_SHA224, HashAlg::Sha224),
            (HMAC_SHA256, HashAlg::Sha256),
            (HMAC_SHA384, HashAlg::Sha384),
            (HMAC_SHA512, HashAlg::Sha512),
        ]
        .into_iter()
        .find(|(o, _)| o.as_bytes() == oid)
        .map(|(_, h)| h)
    }
}

/// Runs `$body` with `$D` bound to the hash type of `$alg`.
macro_rules! with_hash {
    ($alg:expr, $D:ident => $body:expr) => {
        match $alg {
            HashAlg::Sha1 => {
                type $D = Sha1;
                $body
            }
            HashAlg::Sha224 => {
                type $D = Sha224;
                $body
            }
            HashAlg::Sha256 => {
                type $D = Sha256;
                $body
            }
            HashAlg::Sha384 => {
                type $D = Sha384;
                $body
            }
            HashAlg::Sha512 => {
                type $D = Sha512;
                $body
            }
        }
    };
}

/// Constant-time check of an HMAC over `data` (the key can have any length).
pub fn hmac_verify(hash: HashAlg, key: &[u8], data: &[u8], expected: &[u8]) -> bool {
    with_hash!(hash, D => {
        match <Hmac<D> as KeyInit>::new_from_slice(key) {
            Ok(mut mac) => {
                mac.update(data);
                mac.verify_slice(expected).is_ok()
            }
            Err(_) => false,
        }
    })
}

// ------------------------------------------------------------------------------------------
// Work budget
// ------------------------------------------------------------------------------------------

/// Which key-derivation function a cost is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KdfKind {
    /// RFC 7292 Appendix B.
    Pkcs12(HashAlg),
    /// PBKDF2 with HMAC over the hash.
    Pbkdf2(HashAlg),
    /// scrypt (RFC 7914).
    Scrypt,
}

impl KdfKind {
    fn describe(self) -> String {
        match self {
            KdfKind::Pkcs12(h) => format!("PKCS#12 key-derivation ({})", h.name()),
            KdfKind::Pbkdf2(h) => format!("PBKDF2-HMAC-{}", h.name()),
            KdfKind::Scrypt => "scrypt".to_string(),
        }
    }
}

/// Work units per iteration and per output block, measured on the reference machine (AMD EPYC
/// with SHA extensions, `opt-level = 2`): one unit is about one nanosecond there. See
/// [`WorkBudget`].
const fn iteration_weight(kind: KdfKind) -> u64 {
    match kind {
        KdfKind::Pkcs12(HashAlg::Sha1) => 90,
        KdfKind::Pkcs12(HashAlg::Sha224) | KdfKind::Pkcs12(HashAlg::Sha256) => 100,
        KdfKind::Pkcs12(HashAlg::Sha384) | KdfKind::Pkcs12(HashAlg::Sha512) => 240,
        KdfKind::Pbkdf2(HashAlg::Sha1) => 150,
        KdfKind::Pbkdf2(HashAlg::Sha224) | KdfKind::Pbkdf2(HashAlg::Sha256) => 150,
        KdfKind::Pbkdf2(HashAlg::Sha384) | KdfKind::Pbkdf2(HashAlg::Sha512) => 420,
        // per unit of N * r * p
        KdfKind::Scrypt => 400,
    }
}

/// The price of one key derivation, computed from its parameters before it runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KdfCost {
    pub kind: KdfKind,
    /// The iteration count the file asks for (scrypt: N).
    pub iterations: u64,
    /// Output blocks of the hash (PKCS#12 KDF, PBKDF2); scrypt: r.
    pub blocks: u64,
    /// scrypt: p; otherwise 1.
    pub parallel: u64,
    /// Work units (about nanoseconds on the reference machine; see [`WorkBudget`]).
    pub units: u64,
}

impl KdfCost {
    /// PKCS#12 KDF producing `out_len` bytes.
    pub fn pkcs12(hash: HashAlg, iterations: u64, out_len: usize) -> KdfCost {
        let blocks = out_len.div_ceil(hash.output_len()).max(1) as u64;
        Self::iterated(KdfKind::Pkcs12(hash), iterations, blocks)
    }

    /// PBKDF2-HMAC producing `out_len` bytes.
    pub fn pbkdf2(prf: HashAlg, iterations: u64, out_len: usize) -> KdfCost {
        let blocks = out_len.div_ceil(prf.output_len()).max(1) as u64;
        Self::iterated(KdfKind::Pbkdf2(prf), iterations, blocks)
    }

    /// scrypt with cost N, block size r, parallelization p (work is proportional to N*r*p).
    pub fn scrypt(n: u64, r: u64, p: u64) -> KdfCost {
        let units = n.saturating_mul(r).saturating_mul(p).saturating_mul(iteration_weight(KdfKind::Scrypt));
        KdfCost { kind: KdfKind::Scrypt, iterations: n, blocks: r, parallel: p, units }
    }

    fn iterated(kind: KdfKind, iterations: u64, blocks: u64) -> KdfCost {
        let units = iterations.max(1).saturating_mul(blocks).saturating_mul(iteration_weight(kind));
        KdfCost { kind, iterations, blocks, parallel: 1, units }
    }

    /// The largest iteration count (scrypt: N) this derivation could have within `units`.
    fn max_iterations_within(&self, units: u64) -> u64 {
        let per = iteration_weight(self.kind).saturating_mul(self.blocks.max(1)).saturating_mul(self.parallel.max(1));
        units / per.max(1)
    }
}

/// How much password-hashing work certgate spends on one input before giving up.
///
/// Costs are in work units of about one nanosecond of CPU on the reference machine (2-core AMD
/// EPYC with SHA extensions, `opt-level = 2`); see [`KdfCost`]. For the PKCS#12 KDF and PBKDF2
/// a derivation costs `iterations x output blocks x weight`; the weights, measured there, are
/// 90 (PKCS#12 KDF, SHA-1), 100 (SHA-224/256), 240 (SHA-384/512) and 150 (PBKDF2-HMAC-SHA-1,
/// -SHA-224, -SHA-256), 420 (-SHA-384/512); scrypt costs `N x r x p x 400`. In a build of
/// this module at `opt-level = 0` the PKCS#12 KDF and PBMAC1's PBKDF2 run about 10x slower
/// (their hash calls are instantiated here); pkcs5's PBKDF2 and scrypt are unaffected.
///
/// Every KDF entry point of this module spends from the budget before computing anything, and
/// refuses (unsupported-algorithm) when one derivation is over the per-call cap or the total
/// left is not enough. [`WorkBudget::precheck`] lets a reader price everything it can already
/// see (a whole SafeContents, the MAC and all encrypted parts) and refuse before spending.
#[derive(Clone, Debug)]
pub struct WorkBudget {
    per_call: u64,
    total: u64,
    spent: u64,
    derivations: u32,
}

impl WorkBudget {
    /// Default cap for one derivation: about 1 s (6.6 million PBKDF2-HMAC-SHA256 iterations
    /// for an AES-256 key, 11.1 million PKCS#12-KDF SHA-1 iterations for a SHA-1 MAC key,
    /// 5.5 million for a 3DES key).
    pub const DEFAULT_PER_CALL: u64 = 1_000_000_000;
    /// Default total for one input: about 2 s.
    pub const DEFAULT_TOTAL: u64 = 2_000_000_000;

    /// A budget with the default limits.
    pub fn new() -> Self {
        Self::with_limits(Self::DEFAULT_PER_CALL, Self::DEFAULT_TOTAL)
    }

    /// A budget with explicit limits (work units, see above).
    pub fn with_limits(per_call: u64, total: u64) -> Self {
        WorkBudget { per_call, total, spent: 0, derivations: 0 }
    }

    /// Units still available.
    pub fn remaining(&self) -> u64 {
        self.total.saturating_sub(self.spent)
    }

    /// Units spent so far.
    #[allow(dead_code)] // diagnostics and tests
    pub fn spent(&self) -> u64 {
        self.spent
    }

    /// Key derivations paid for so far.
    #[allow(dead_code)] // diagnostics and tests
    pub fn derivations(&self) -> u32 {
        self.derivations
    }

    /// Refuse if this one derivation is over the per-call cap.
    pub fn check_one(&self, cost: &KdfCost) -> Result<(), Refusal> {
        if cost.units <= self.per_call {
            return Ok(());
        }
        let message = match cost.kind {
            KdfKind::Scrypt => format!(
                "the file asks for scrypt with N={}, r={}, p={}; certgate accepts at most \
                 N*r*p = {} (it would take {} to open)",
                cost.iterations,
                cost.blocks,
                cost.parallel,
                self.per_call / iteration_weight(KdfKind::Scrypt),
                estimate(cost.units)
            ),
            kind => format!(
                "the file asks for {} {} iterations; certgate accepts at most {} \
                 (it would take {} to open)",
                cost.iterations,
                kind.describe(),
                cost.max_iterations_within(self.per_call),
                estimate(cost.units)
            ),
        };
        Err(Refusal::new(Code::UnsupportedAlgorithm, message, HINT_REEXPORT))
    }

    /// Refuse (without spending) if these derivations, together, do not fit in what is left,
    /// or if one of them is over the per-call cap.
    pub fn precheck<'c>(&self, costs: impl IntoIterator<Item = &'c KdfCost>) -> Result<(), Refusal> {
        let mut sum = 0u64;
        let mut count = 0u64;
        let mut iterations = 0u64;
        for cost in costs {
            self.check_one(cost)?;
            sum = sum.saturating_add(cost.units);
            iterations = iterations.saturating_add(cost.iterations);
            count += 1;
        }
        if sum <= self.remaining() {
            return Ok(());
        }
        Err(self.total_refusal(count, iterations, sum))
    }

    /// Whether these derivations would pass [`WorkBudget::precheck`] (for optional attempts,
    /// e.g. a second password encoding, that are skipped rather than refused).
    pub fn affords<'c>(&self, costs: impl IntoIterator<Item = &'c KdfCost>) -> bool {
        self.precheck(costs).is_ok()
    }

    /// Pay for one derivation, or refuse.
    pub fn spend(&mut self, cost: &KdfCost) -> Result<(), Refusal> {
        self.check_one(cost)?;
        if cost.units > self.remaining() {
            return Err(self.total_refusal(
                u64::from(self.derivations) + 1,
                cost.iterations,
                self.spent.saturating_add(cost.units),
            ));
        }
        self.spent += cost.units;
        self.derivations = self.derivations.saturating_add(1);
        Ok(())
    }

    fn total_refusal(&self, count: u64, iterations: u64, units: u64) -> Refusal {
        Refusal::new(
            Code::UnsupportedAlgorithm,
            format!(
                "the file asks for {count} password-based key derivations ({iterations} \
                 iterations in all); certgate accepts {} of such work per file (it would \
                 take {} to open)",
                estimate(self.total),
                estimate(units)
            ),
            HINT_REEXPORT,
        )
    }
}

impl Default for WorkBudget {
    fn default() -> Self {
        Self::new()
    }
}

/// Human estimate of a number of work units (about nanoseconds).
fn estimate(units: u64) -> String {
    let secs = units / 1_000_000_000;
    match secs {
        0..=9 => format!("about {:.1} seconds", units as f64 / 1e9),
        10..=119 => format!("about {secs} seconds"),
        120..=7_199 => format!("about {} minutes", secs / 60),
        7_200..=172_799 => format!("about {} hours", secs / 3600),
        _ => format!("about {} days", secs / 86_400),
    }
}

// ------------------------------------------------------------------------------------------
// Key derivation functions
// ------------------------------------------------------------------------------------------

/// The ID byte of the PKCS#12 KDF (RFC 7292 B.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KdfPurpose {
    Key = 1,
    Iv = 2,
    Mac = 3,
}

/// The PKCS#12 KDF (RFC 7292 Appendix B.2). `password` is the already encoded password
/// ([`bmp_with_terminator`] or [`null_password`]). Spends from `budget` first.
pub fn pkcs12_kdf(
    hash: HashAlg,
    password: &[u8],
    salt: &[u8],
    purpose: KdfPurpose,
    iterations: u64,
    out_len: usize,
    budget: &mut WorkBudget,
) -> Result<Zeroizing<Vec<u8>>, Refusal> {
    check_kdf_inputs(salt, iterations, out_len)?;
    budget.spend(&KdfCost::pkcs12(hash, iterations, out_len))?;
    let mut out = Zeroizing::new(vec![0u8; out_len]);
    with_hash!(hash, D => pkcs12_kdf_raw::<D>(password, salt, purpose as u8, iterations, &mut out));
    Ok(out)
}

/// PBKDF2 (RFC 8018 5.2) with HMAC over `prf`; used for PBMAC1 (PBES2 goes through `pkcs5`).
/// Spends from `budget` first.
pub fn pbkdf2_hmac(
    prf: HashAlg,
    password: &[u8],
    salt: &[u8],
    iterations: u64,
    out_len: usize,
    budget: &mut WorkBudget,
) -> Result<Zeroizing<Vec<u8>>, Refusal> {
    check_kdf_inputs(salt, iterations, out_len)?;
    budget.spend(&KdfCost::pbkdf2(prf, iterations, out_len))?;
    let mut out = Zeroizing::new(vec![0u8; out_len]);
    with_hash!(prf, D => pbkdf2_raw::<D>(password, salt, iterations, &mut out));
    Ok(out)
}

fn check_kdf_inputs(salt: &[u8], iterations: u64, out_len: usize) -> Result<(), Refusal> {
    if iterations == 0 {
        return Err(Refusal::malformed("a key derivation asks for 0 iterations"));
    }
    if salt.len() > MAX_SALT_LEN {
        return Err(Refusal::new(
            Code::UnsupportedAlgorithm,
            format!("a key derivation has a {}-byte salt; certgate accepts at most {MAX_SALT_LEN}", salt.len()),
            HINT_REEXPORT,
        ));
    }
    if out_len == 0 || out_len > 256 {
        return Err(Refusal::malformed(format!("a key derivation asks for {out_len} output bytes")));
    }
    Ok(())
}

fn pkcs12_kdf_raw<D: Digest + BlockSizeUser>(password: &[u8], salt: &[u8], id: u8, iterations: u64, out: &mut [u8]) {
    let u = <D as Digest>::output_size();
    let v = <D as BlockSizeUser>::block_size();
    let diversifier = vec![id; v];
    // I = S || P, each repeated to a multiple of v bytes (empty stays empty).
    let mut input: Zeroizing<Vec<u8>> = Zeroizing::new(Vec::new());
    for part in [salt, password] {
        if !part.is_empty() {
            let len = v * part.len().div_ceil(v);
            input.extend((0..len).map(|i| part[i % part.len()]));
        }
    }
    let mut block_b: Zeroizing<Vec<u8>> = Zeroizing::new(vec![0u8; v]);
    let mut offset = 0;
    while offset < out.len() {
        let mut hasher = D::new();
        hasher.update(&diversifier);
        hasher.update(&input[..]);
        let mut a = hasher.finalize();
        for _ in 1..iterations {
            let next = D::digest(&a);
            a.as_mut_slice().zeroize();
            a = next;
        }
        let take = u.min(out.len() - offset);
        out[offset..offset + take].copy_from_slice(&a[..take]);
        offset += take;
        if offset < out.len() {
            for (k, byte) in block_b.iter_mut().enumerate() {
                *byte = a[k % u];
            }
            // I_j = (I_j + B + 1) mod 2^(8v) for each v-byte block of I.
            for chunk in input.chunks_mut(v) {
                let mut carry = 1u16;
                for k in (0..v).rev() {
                    let sum = u16::from(chunk[k]) + u16::from(block_b[k]) + carry;
                    chunk[k] = sum as u8;
                    carry = sum >> 8;
                }
            }
        }
        a.as_mut_slice().zeroize();
    }
}

fn pbkdf2_raw<D>(password: &[u8], salt: &[u8], iterations: u64, out: &mut [u8])
where
    D: hmac::EagerHash,
    Hmac<D>: KeyInit + Mac + Clone,
{
    let Ok(keyed) = <Hmac<D> as KeyInit>::new_from_slice(password) else {
        return; // HMAC takes keys of any length
    };
    let hlen = <Hmac<D> as hmac::digest::OutputSizeUser>::output_size();
    for (index, chunk) in out.chunks_mut(hlen).enumerate() {
        let mut mac = keyed.clone();
        mac.update(salt);
        mac.update(&((index as u32).wrapping_add(1)).to_be_bytes());
        let mut u = mac.finalize().into_bytes();
        let mut t = u.clone();
        for _ in 1..iterations {
            let mut mac = keyed.clone();
            mac.update(&u);
            let next = mac.finalize().into_bytes();
            u.as_mut_slice().zeroize();
            u = next;
            for (x, y) in t.iter_mut().zip(u.iter()) {
                *x ^= y;
            }
        }
        chunk.copy_from_slice(&t[..chunk.len()]);
        u.as_mut_slice().zeroize();
        t.as_mut_slice().zeroize();
    }
}

// ------------------------------------------------------------------------------------------
// Encryption schemes
// ------------------------------------------------------------------------------------------

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
        let (tlv, rest) = asn1::parse(algorithm_identifier).map_err(|e| e.refusal("the encryption algorithm"))?;
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

        use self::oids::*;
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
    let der_copy = asn1::to_der(&params).map_err(|e| e.refusal(what))?;
    let (params, _) = asn1::parse(&der_copy).map_err(|e| e.refusal(what))?;
    let mut r = params.sequence().map_err(|e| e.refusal(what))?;
    let kdf = r.expect(tag::SEQUENCE, "key-derivation function").map_err(|e| e.refusal(what))?;
    let enc = r.expect(tag::SEQUENCE, "encryption scheme").map_err(|e| e.refusal(what))?;
    r.finish().map_err(|e| e.refusal(what))?;

    // The cipher, checked here (pkcs5 0.8 would panic on a short DES-EDE3 IV).
    let mut e = enc.sequence().map_err(|e| e.refusal(what))?;
    let enc_oid = e.expect(tag::OID, "cipher OID").map_err(|e| e.refusal(what))?.content;
    let enc_param = e.next_opt().map_err(|e| e.refusal(what))?;
    e.finish().map_err(|e| e.refusal(what))?;
    use self::oids::*;
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

/// "unsupported <what> <name> (<oid>)".
pub(crate) fn unsupported_oid(what: &str, oid: &[u8]) -> Refusal {
    let dotted = asn1::oid_to_string(oid);
    let message = match oids::name(oid) {
        Some(name) => format!("the {what} {name} ({dotted}) is not supported"),
        None => format!("the {what} with OID {dotted} is not supported"),
    };
    Refusal::new(Code::UnsupportedAlgorithm, message, HINT_REEXPORT)
}

/// Whether `der` is exactly one PKCS#8 PrivateKeyInfo / OneAsymmetricKey:
/// SEQUENCE { INTEGER 0|1, AlgorithmIdentifier, OCTET STRING, ... }.
pub(crate) fn looks_like_private_key_info(der: &[u8]) -> bool {
    let check = || -> Result<bool, asn1::Error> {
        let (tlv, rest) = asn1::parse(der)?;
        if !rest.is_empty() || tlv.tag != tag::SEQUENCE {
            return Ok(false);
        }
        let mut r = tlv.sequence()?;
        let version = r.expect(tag::INTEGER, "version")?;
        if version.content != [0] && version.content != [1] {
            return Ok(false);
        }
        r.expect(tag::SEQUENCE, "algorithm")?;
        r.expect(tag::OCTET_STRING, "private key")?;
        Ok(true)
    };
    check().unwrap_or(false)
}

/// Decrypt a PKCS#8 `EncryptedPrivateKeyInfo` (DER; also what a PEM "ENCRYPTED PRIVATE KEY"
/// holds) with a UTF-8 password. PBES2 gets the UTF-8 bytes, the PKCS#12 PBES1 schemes the
/// BMPString-with-terminator; an empty password also tries the zero-length form. Returns the
/// DER PrivateKeyInfo. A failed decryption is wrong-password, or password-required when the
/// password is empty.
pub fn decrypt_encrypted_private_key_info(
    der: &[u8],
    password: &[u8],
    budget: &mut WorkBudget,
) -> Result<Zeroizing<Vec<u8>>, Refusal> {
    let what = "the encrypted private key";
    let (tlv, rest) = asn1::parse(der).map_err(|e| e.refusal(what))?;
    if !rest.is_empty() {
        return Err(Refusal::malformed(format!(
            "{} bytes of trailing data after the encrypted private key",
            rest.len()
        )));
    }
    let mut r = tlv.sequence().map_err(|e| e.refusal(what))?;
    let alg = r.expect(tag::SEQUENCE, "encryption algorithm").map_err(|e| e.refusal(what))?;
    let data = r.expect(tag::OCTET_STRING, "encrypted data").map_err(|e| e.refusal(what))?;
    r.finish().map_err(|e| e.refusal(what))?;
    let scheme = EncryptionScheme::from_tlv(alg)?;

    let text = std::str::from_utf8(password)
        .map_err(|_| Refusal::new(Code::WrongPassword, "the password is not valid UTF-8 text", HINT_WRONG_PASSWORD))?;
    let mut candidates = vec![PasswordForms::new(text)];
    if text.is_empty() && scheme.uses_bmp_password() {
        candidates.push(PasswordForms::null());
    }
    let costs: Vec<KdfCost> = candidates.iter().flat_map(|_| scheme.costs()).collect();
    budget.precheck(&costs)?;
    for candidate in &candidates {
        match scheme.decrypt(candidate, data.content, budget) {
            Ok(plain) if looks_like_private_key_info(&plain) => return Ok(plain),
            Ok(_) | Err(PbeError::BadDecrypt) => continue,
            Err(PbeError::Refused(r)) => return Err(r),
        }
    }
    if text.is_empty() {
        Err(Refusal::new(Code::PasswordRequired, "the private key is encrypted with a password", HINT_GIVE_PASSWORD))
    } else {
        Err(Refusal::new(Code::WrongPassword, format!("the password does not open {what}"), HINT_WRONG_PASSWORD))
    }
}

// ------------------------------------------------------------------------------------------
// OIDs
// ------------------------------------------------------------------------------------------

pub(crate) mod oids {
    use der::asn1::ObjectIdentifier as Oid;

    // PKCS#7 / CMS content types
    pub const DATA: Oid = Oid::new_unwrap("1.2.840.113549.1.7.1");
    pub const SIGNED_DATA: Oid = Oid::new_unwrap("1.2.840.113549.1.7.2");
    pub const ENVELOPED_DATA: Oid = Oid::new_unwrap("1.2.840.113549.1.7.3");
    pub const ENCRYPTED_DATA: Oid = Oid::new_unwrap("1.2.840.113549.1.7.6");
    // PKCS#12 bag types
    pub const KEY_BAG: Oid = Oid::new_unwrap("1.2.840.113549.1.12.10.1.1");
    pub const SHROUDED_KEY_BAG: Oid = Oid::new_unwrap("1.2.840.113549.1.12.10.1.2");
    pub const CERT_BAG: Oid = Oid::new_unwrap("1.2.840.113549.1.12.10.1.3");
    pub const CRL_BAG: Oid = Oid::new_unwrap("1.2.840.113549.1.12.10.1.4");
    pub const SECRET_BAG: Oid = Oid::new_unwrap("1.2.840.113549.1.12.10.1.5");
    pub const SAFE_CONTENTS_BAG: Oid = Oid::new_unwrap("1.2.840.113549.1.12.10.1.6");
    pub const X509_CERTIFICATE: Oid = Oid::new_unwrap("1.2.840.113549.1.9.22.1");
    pub const SDSI_CERTIFICATE: Oid = Oid::new_unwrap("1.2.840.113549.1.9.22.2");
    pub const FRIENDLY_NAME: Oid = Oid::new_unwrap("1.2.840.113549.1.9.20");
    pub const LOCAL_KEY_ID: Oid = Oid::new_unwrap("1.2.840.113549.1.9.21");
    // PKCS#12 PBE
    pub const PBE_SHA_RC4_128: Oid = Oid::new_unwrap("1.2.840.113549.1.12.1.1");
    pub const PBE_SHA_RC4_40: Oid = Oid::new_unwrap("1.2.840.113549.1.12.1.2");
    pub const PBE_SHA_3DES3: Oid = Oid::new_unwrap("1.2.840.113549.1.12.1.3");
    pub const PBE_SHA_3DES2: Oid = Oid::new_unwrap("1.2.840.113549.1.12.1.4");
    pub const PBE_SHA_RC2_128: Oid = Oid::new_unwrap("1.2.840.113549.1.12.1.5");
    pub const PBE_SHA_RC2_40: Oid = Oid::new_unwrap("1.2.840.113549.1.12.1.6");
    // PKCS#5
    pub const PBE_MD2_DES: Oid = Oid::new_unwrap("1.2.840.113549.1.5.1");
    pub const PBE_MD5_DES: Oid = Oid::new_unwrap("1.2.840.113549.1.5.3");
    pub const PBE_MD2_RC2: Oid = Oid::new_unwrap("1.2.840.113549.1.5.4");
    pub const PBE_MD5_RC2: Oid = Oid::new_unwrap("1.2.840.113549.1.5.6");
    pub const PBE_SHA1_DES: Oid = Oid::new_unwrap("1.2.840.113549.1.5.10");
    pub const PBE_SHA1_RC2: Oid = Oid::new_unwrap("1.2.840.113549.1.5.11");
    pub const PBKDF2: Oid = Oid::new_unwrap("1.2.840.113549.1.5.12");
    pub const PBES2: Oid = Oid::new_unwrap("1.2.840.113549.1.5.13");
    pub const PBMAC1: Oid = Oid::new_unwrap("1.2.840.113549.1.5.14");
    pub const SCRYPT: Oid = Oid::new_unwrap("1.3.6.1.4.1.11591.4.11");
    // HMAC PRFs
    pub const HMAC_SHA1: Oid = Oid::new_unwrap("1.2.840.113549.2.7");
    pub const HMAC_SHA224: Oid = Oid::new_unwrap("1.2.840.113549.2.8");
    pub const HMAC_SHA256: Oid = Oid::new_unwrap("1.2.840.113549.2.9");
    pub const HMAC_SHA384: Oid = Oid::new_unwrap("1.2.840.113549.2.10");
    pub const HMAC_SHA512: Oid = Oid::new_unwrap("1.2.840.113549.2.11");
    pub const HMAC_SHA512_224: Oid = Oid::new_unwrap("1.2.840.113549.2.12");
    pub const HMAC_SHA512_256: Oid = Oid::new_unwrap("1.2.840.113549.2.13");
    // digests
    pub const MD5: Oid = Oid::new_unwrap("1.2.840.113549.2.5");
    pub const SHA1: Oid = Oid::new_unwrap("1.3.14.3.2.26");
    pub const SHA224: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.2.4");
    pub const SHA256: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.2.1");
    pub const SHA384: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.2.2");
    pub const SHA512: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.2.3");
    pub const SHA512_224: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.2.5");
    pub const SHA512_256: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.2.6");
    pub const GOST_R3411_2012_256: Oid = Oid::new_unwrap("1.2.643.7.1.1.2.2");
    pub const GOST_R3411_2012_512: Oid = Oid::new_unwrap("1.2.643.7.1.1.2.3");
    // ciphers
    pub const DES_CBC: Oid = Oid::new_unwrap("1.3.14.3.2.7");
    pub const DES_EDE3_CBC: Oid = Oid::new_unwrap("1.2.840.113549.3.7");
    pub const RC2_CBC: Oid = Oid::new_unwrap("1.2.840.113549.3.2");
    pub const AES128_CBC: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.1.2");
    pub const AES192_CBC: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.1.22");
    pub const AES256_CBC: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.1.42");
    pub const AES128_GCM: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.1.6");
    pub const AES256_GCM: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.1.46");

    /// A readable name for the OIDs certgate may have to mention.
    pub fn name(oid: &[u8]) -> Option<&'static str> {
        let table: [(Oid, &str); 52] = [
            (DATA, "data"),
            (SIGNED_DATA, "signedData (public-key integrity mode)"),
            (ENVELOPED_DATA, "envelopedData (public-key privacy mode)"),
            (ENCRYPTED_DATA, "encryptedData"),
            (KEY_BAG, "keyBag"),
            (SHROUDED_KEY_BAG, "pkcs8ShroudedKeyBag"),
            (CERT_BAG, "certBag"),
            (CRL_BAG, "crlBag"),
            (SECRET_BAG, "secretBag"),
            (SAFE_CONTENTS_BAG, "safeContentsBag"),
            (X509_CERTIFICATE, "x509Certificate"),
            (SDSI_CERTIFICATE, "sdsiCertificate"),
            (FRIENDLY_NAME, "friendlyName"),
            (LOCAL_KEY_ID, "localKeyID"),
            (PBE_SHA_RC4_128, "pbeWithSHAAnd128BitRC4"),
            (PBE_SHA_RC4_40, "pbeWithSHAAnd40BitRC4"),
            (PBE_SHA_3DES3, "pbeWithSHAAnd3-KeyTripleDES-CBC"),
            (PBE_SHA_3DES2, "pbeWithSHAAnd2-KeyTripleDES-CBC"),
            (PBE_SHA_RC2_128, "pbeWithSHAAnd128BitRC2-CBC"),
            (PBE_SHA_RC2_40, "pbeWithSHAAnd40BitRC2-CBC"),
            (PBE_MD2_DES, "pbeWithMD2AndDES-CBC (PKCS#5 v1.5)"),
            (PBE_MD5_DES, "pbeWithMD5AndDES-CBC (PKCS#5 v1.5)"),
            (PBE_MD2_RC2, "pbeWithMD2AndRC2-CBC (PKCS#5 v1.5)"),
            (PBE_MD5_RC2, "pbeWithMD5AndRC2-CBC (PKCS#5 v1.5)"),
            (PBE_SHA1_DES, "pbeWithSHA1AndDES-CBC (PKCS#5 v1.5)"),
            (PBE_SHA1_RC2, "pbeWithSHA1AndRC2-CBC (PKCS#5 v1.5)"),
            (PBKDF2, "PBKDF2"),
            (PBES2, "PBES2"),
            (PBMAC1, "PBMAC1"),
            (SCRYPT, "scrypt"),
            (HMAC_SHA1, "hmacWithSHA1"),
            (HMAC_SHA224, "hmacWithSHA224"),
            (HMAC_SHA256, "hmacWithSHA256"),
            (HMAC_SHA384, "hmacWithSHA384"),
            (HMAC_SHA512, "hmacWithSHA512"),
            (HMAC_SHA512_224, "hmacWithSHA512-224"),
            (HMAC_SHA512_256, "hmacWithSHA512-256"),
            (MD5, "MD5"),
            (SHA1, "SHA-1"),
            (SHA224, "SHA-224"),
            (SHA256, "SHA-256"),
            (SHA384, "SHA-384"),
            (SHA512, "SHA-512"),
            (SHA512_224, "SHA-512/224"),
            (SHA512_256, "SHA-512/256"),
            (GOST_R3411_2012_256, "GOST R 34.11-2012 (256 bit)"),
            (GOST_R3411_2012_512, "GOST R 34.11-2012 (512 bit)"),
            (DES_CBC, "DES-CBC"),
            (DES_EDE3_CBC, "DES-EDE3-CBC"),
            (RC2_CBC, "RC2-CBC"),
            (AES128_GCM, "AES-128-GCM"),
            (AES256_GCM, "AES-256-GCM"),
        ];
        table.iter().find(|(o, _)| o.as_bytes() == oid).map(|(_, n)| *n)
    }
}

// ------------------------------------------------------------------------------------------
// A small BER/DER reader
// ------------------------------------------------------------------------------------------

/// Just enough BER to read PKCS#12: definite and indefinite lengths, constructed OCTET
/// STRINGs, low tag numbers. Every step is bounds-checked and recursion is limited to
/// [`asn1::MAX_DEPTH`] levels, so no input can make it panic or recurse without bound.
pub(crate) mod asn1 {
    use super::Refusal;
    use std::borrow::Cow;
    use std::fmt;

    /// Deepest nesting accepted (PKCS#12 needs about 12).
    pub const MAX_DEPTH: usize = 40;

    pub mod tag {
        pub const INTEGER: u8 = 0x02;
        pub const OCTET_STRING: u8 = 0x04;
        pub const NULL: u8 = 0x05;
        pub const OID: u8 = 0x06;
        pub const BMP_STRING: u8 = 0x1e;
        pub const SEQUENCE: u8 = 0x30;
        pub const SET: u8 = 0x31;
        /// [0] constructed (EXPLICIT, or IMPLICIT constructed)
        pub const CONTEXT_0: u8 = 0xa0;
        /// [0] primitive (IMPLICIT OCTET STRING)
        pub const CONTEXT_0_PRIMITIVE: u8 = 0x80;
    }

    /// What was wrong with the encoding.
    #[derive(Clone, Debug, PartialEq, Eq)]
    pub struct Error(pub String);

    impl Error {
        fn new(msg: impl Into<String>) -> Self {
            Error(msg.into())
        }

        /// A malformed refusal saying where.
        pub fn refusal(self, whereabouts: &str) -> Refusal {
            Refusal::malformed(format!("{whereabouts} is damaged: {}", self.0))
        }
    }

    impl fmt::Display for Error {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(&self.0)
        }
    }

    pub type Result<T> = std::result::Result<T, Error>;

    /// One tag-length-value.
    #[derive(Clone, Copy, Debug)]
    pub struct Tlv<'a> {
        pub tag: u8,
        /// The value (for indefinite lengths: without the end-of-contents octets).
        pub content: &'a [u8],
        /// The whole encoding, header included.
        pub raw: &'a [u8],
        depth: usize,
    }

    /// Parse the TLV at the start of `data` (depth 0); returns it and what follows.
    pub fn parse(data: &[u8]) -> Result<(Tlv<'_>, &[u8])> {
        parse_at(data, 0)
    }

    fn parse_at(data: &[u8], depth: usize) -> Result<(Tlv<'_>, &[u8])> {
        if depth > MAX_DEPTH {
            return Err(Error::new("the structure is nested too deeply"));
        }
        let (&tag, rest) = data.split_first().ok_or_else(|| Error::new("the data ends too early"))?;
        if tag == 0 {
            return Err(Error::new("unexpected end-of-contents marker"));
        }
        if tag & 0x1f == 0x1f {
            return Err(Error::new(format!("unsupported tag 0x{tag:02x}")));
        }
        let (&first, rest) = rest.split_first().ok_or_else(|| Error::new("the data ends inside a length"))?;
        if first == 0x80 {
            if tag & 0x20 == 0 {
                return Err(Error::new("indefinite length on a primitive value"));
            }
            // Walk the children up to the end-of-contents octets.
            let mut cursor = rest;
            loop {
                if cursor.len() >= 2 && cursor[0] == 0 && cursor[1] == 0 {
                    let content_len = rest.len() - cursor.len();
                    let total = 2 + content_len + 2;
                    let tlv = Tlv { tag, content: &rest[..content_len], raw: &data[..total], depth };
                    return Ok((tlv, &cursor[2..]));
                }
                if cursor.is_empty() {
                    return Err(Error::new("the data ends before an end-of-contents marker"));
                }
                let (_, after) = parse_at(cursor, depth + 1)?;
                cursor = after;
            }
        }
        let (len, header_len, rest) = if first < 0x80 {
            (first as usize, 2, rest)
        } else {
            let n = (first & 0x7f) as usize;
            if n > 4 {
                return Err(Error::new(format!("a length of {n} bytes is too large")));
            }
            if rest.len() < n {
                return Err(Error::new("the data ends inside a length"));
            }
            let len = rest[..n].iter().fold(0usize, |acc, &b| (acc << 8) | b as usize);
            (len, 2 + n, &rest[n..])
        };
        if rest.len() < len {
            return Err(Error::new(format!(
                "a value says it has {len} bytes but only {} remain (truncated?)",
                rest.len()
            )));
        }
        let tlv = Tlv { tag, content: &rest[..len], raw: &data[..header_len + len], depth };
        Ok((tlv, &rest[len..]))
    }

    impl<'a> Tlv<'a> {
        pub fn is_constructed(&self) -> bool {
            self.tag & 0x20 != 0
        }

        /// Read the children of a constructed value.
        pub fn children(&self) -> Result<Reader<'a>> {
            if !self.is_constructed() {
                return Err(Error::new(format!("expected a constructed value, found tag 0x{:02x}", self.tag)));
            }
            Ok(Reader { rest: self.content, depth: self.depth + 1 })
        }

        /// Read the elements of a SEQUENCE.
        pub fn sequence(&self) -> Result<Reader<'a>> {
            if self.tag != tag::SEQUENCE {
                return Err(Error::new(format!("expected a SEQUENCE, found tag 0x{:02x}", self.tag)));
            }
            self.children()
        }

        /// A non-negative INTEGER; values above u64::MAX saturate (they only ever mean "too
        /// many iterations", which the work budget refuses).
        pub fn uint(&self) -> Result<u64> {
            if self.tag != tag::INTEGER {
                return Err(Error::new(format!("expected an INTEGER, found tag 0x{:02x}", self.tag)));
            }
            let bytes = self.content;
            if bytes.is_empty() {
                return Err(Error::new("empty INTEGER"));
            }
            if bytes[0] & 0x80 != 0 {
                return Err(Error::new("negative INTEGER"));
            }
            let significant: &[u8] = {
                let skip = bytes.iter().take_while(|&&b| b == 0).count();
                &bytes[skip..]
            };
            if significant.len() > 8 {
                return Ok(u64::MAX);
            }
            Ok(significant.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b)))
        }

        /// The bytes of an OCTET STRING (or of an IMPLICIT-tagged one): a primitive value as
        /// is, a constructed one (BER) with its segments joined.
        pub fn octets(&self) -> Result<Cow<'a, [u8]>> {
            if !self.is_constructed() {
                return Ok(Cow::Borrowed(self.content));
            }
            let mut out = Vec::new();
            self.join_segments(&mut out)?;
            Ok(Cow::Owned(out))
        }

        fn join_segments(&self, out: &mut Vec<u8>) -> Result<()> {
            let mut r = self.children()?;
            while let Some(seg) = r.next_opt()? {
                match seg.tag {
                    tag::OCTET_STRING => out.extend_from_slice(seg.content),
                    0x24 => seg.join_segments(out)?,
                    t => return Err(Error::new(format!("unexpected tag 0x{t:02x} inside an OCTET STRING"))),
                }
            }
            Ok(())
        }
    }

    /// Reads consecutive TLVs.
    #[derive(Clone, Debug)]
    pub struct Reader<'a> {
        rest: &'a [u8],
        depth: usize,
    }

    impl<'a> Reader<'a> {
        pub fn peek_tag(&self) -> Option<u8> {
            self.rest.first().copied()
        }

        /// The next TLV, if any.
        pub fn next_opt(&mut self) -> Result<Option<Tlv<'a>>> {
            if self.rest.is_empty() {
                return Ok(None);
            }
            let (tlv, rest) = parse_at(self.rest, self.depth)?;
            self.rest = rest;
            Ok(Some(tlv))
        }

        /// The next TLV; running out is an error.
        pub fn next(&mut self) -> Result<Tlv<'a>> {
            self.next_opt()?.ok_or_else(|| Error::new("an element is missing"))
        }

        /// The next TLV, which must have tag `t`.
        pub fn expect(&mut self, t: u8, what: &str) -> Result<Tlv<'a>> {
            match self.next_opt()? {
                Some(tlv) if tlv.tag == t => Ok(tlv),
                Some(tlv) => Err(Error::new(format!("expected the {what}, found tag 0x{:02x}", tlv.tag))),
                None => Err(Error::new(format!("the {what} is missing"))),
            }
        }

        /// The next TLV if it has tag `t`.
        pub fn optional(&mut self, t: u8) -> Result<Option<Tlv<'a>>> {
            if self.peek_tag() == Some(t) {
                self.next_opt()
            } else {
                Ok(None)
            }
        }

        /// Error if anything is left.
        pub fn finish(&self) -> Result<()> {
            if self.rest.is_empty() {
                Ok(())
            } else {
                Err(Error::new(format!("{} unexpected bytes at the end of a structure", self.rest.len())))
            }
        }
    }

    /// The DER re-encoding of a (possibly BER) value: definite lengths everywhere and
    /// constructed OCTET STRINGs joined. Used before handing parameters to a DER-only parser.
    pub fn to_der(tlv: &Tlv<'_>) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(tlv.raw.len());
        write_der(tlv, &mut out)?;
        Ok(out)
    }

    fn write_der(tlv: &Tlv<'_>, out: &mut Vec<u8>) -> Result<()> {
        let (tag, body) = if tlv.tag == 0x24 {
            (tag::OCTET_STRING, tlv.octets()?.into_owned())
        } else if tlv.is_constructed() {
            let mut body = Vec::with_capacity(tlv.content.len());
            let mut r = tlv.children()?;
            while let Some(child) = r.next_opt()? {
                write_der(&child, &mut body)?;
            }
            (tlv.tag, body)
        } else {
            (tlv.tag, tlv.content.to_vec())
        };
        out.push(tag);
        let len = body.len();
        if len < 0x80 {
            out.push(len as u8);
        } else {
            let bytes = (len as u32).to_be_bytes();
            let skip = bytes.iter().take_while(|&&b| b == 0).count();
            out.push(0x80 | (4 - skip) as u8);
            out.extend_from_slice(&bytes[skip..]);
        }
        out.extend_from_slice(&body);
        Ok(())
    }

    /// Dotted form of an OID's content bytes (hex if it does not decode).
    pub fn oid_to_string(bytes: &[u8]) -> String {
        let mut arcs: Vec<u128> = Vec::new();
        let mut value: u128 = 0;
        let mut pending = false;
        for &b in bytes {
            if value > (u128::MAX >> 7) {
                return hex(bytes);
            }
            value = (value << 7) | u128::from(b & 0x7f);
            pending = b & 0x80 != 0;
            if !pending {
                arcs.push(value);
                value = 0;
            }
        }
        if pending || arcs.is_empty() {
            return hex(bytes);
        }
        let first = arcs[0];
        let (a, b) = match first {
            0..=39 => (0, first),
            40..=79 => (1, first - 40),
            _ => (2, first - 80),
        };
        let mut out = format!("{a}.{b}");
        for arc in &arcs[1..] {
            out.push('.');
            out.push_str(&arc.to_string());
        }
        out
    }

    fn hex(bytes: &[u8]) -> String {
        let mut s = String::from("0x");
        for b in bytes.iter().take(32) {
            s.push_str(&format!("{b:02x}"));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unhex(s: &str) -> Vec<u8> {
        let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }

    #[test]
    fn bmp_encoding() {
        assert_eq!(&bmp_with_terminator("")[..], &[0, 0]);
        assert_eq!(&bmp_with_terminator("ab")[..], &[0, 0x61, 0, 0x62, 0, 0]);
        assert_eq!(&bmp_with_terminator("é")[..], &[0, 0xe9, 0, 0]);
        // U+1F600 as a surrogate pair
        assert_eq!(&bmp_with_terminator("\u{1F600}")[..], &[0xd8, 0x3d, 0xde, 0x00, 0, 0]);
        assert!(null_password().is_empty());
    }

    // Vectors checked with `openssl kdf ... -kdfopt hexpass:<BMP bytes> PKCS12KDF` (OpenSSL 3.0).
    #[test]
    fn pkcs12_kdf_vectors() {
        let mut budget = WorkBudget::new();
        let pw = bmp_with_terminator("smeg");
        let salt = unhex("0A58CF64530D823F");
        let key = pkcs12_kdf(HashAlg::Sha1, &pw, &salt, KdfPurpose::Key, 1, 24, &mut budget).unwrap();
        assert_eq!(&key[..], &unhex("8AAAE6297B6CB04642AB5B077851284EB7128F1A2A7FBCA3")[..]);
        let iv = pkcs12_kdf(HashAlg::Sha1, &pw, &salt, KdfPurpose::Iv, 1, 8, &mut budget).unwrap();
        assert_eq!(&iv[..], &unhex("79993DFE048D3B76")[..]);
        let salt2 = unhex("3D83C0E4546AC140");
        let mac = pkcs12_kdf(HashAlg::Sha1, &pw, &salt2, KdfPurpose::Mac, 1, 20, &mut budget).unwrap();
        assert_eq!(&mac[..], &unhex("8D967D88F6CAA9D714800AB3D48051D63F73A312")[..]);
        let pw2 = bmp_with_terminator("queeg");
        let salt3 = unhex("05DEC959ACFF72F7");
        let key = pkcs12_kdf(HashAlg::Sha1, &pw2, &salt3, KdfPurpose::Key, 1000, 24, &mut budget).unwrap();
        assert_eq!(&key[..], &unhex("ED2034E36328830FF09DF1E1A07DD357185DAC0D4F9EB3D4")[..]);
        let iv = pkcs12_kdf(HashAlg::Sha1, &pw2, &salt3, KdfPurpose::Iv, 1000, 8, &mut budget).unwrap();
        assert_eq!(&iv[..], &unhex("11DEDAD7758D4860")[..]);
        // Multi-block outputs with SHA-512 and SHA-256, and the zero-length password.
        let key = pkcs12_kdf(HashAlg::Sha512, &bmp_with_terminator("smeg"), &salt, KdfPurpose::Mac, 3, 64, &mut budget)
            .unwrap();
        assert_eq!(&key[..], &unhex("F1208C3D89EA381D3641F9CC8203229E4A116261296C330449D00CB77CFB8492FDA3D578A04D2242D43D807B6E17BD527D3360FC7516DEB180528161A2A46F43")[..]);
        let key = pkcs12_kdf(HashAlg::Sha256, &null_password(), &salt, KdfPurpose::Key, 5, 100, &mut budget).unwrap();
        assert_eq!(&key[..], &unhex("F17B9C7CF88B594BC76BCCCCB0E130801ACE3BA6049DC1815E70839295798C92BEF2D116E8BDEB22404EC89C83A897D910A5FA34673F9016200F243CF459D8DB53C6060DE56742205B41840823D9EDC70772B5C05EE7C0F1978B401ABCEDD9976EF59599")[..]);
    }

    // RFC 6070 PBKDF2-HMAC-SHA1 and a PBKDF2-HMAC-SHA256 vector.
    #[test]
    fn pbkdf2_vectors() {
        let mut budget = WorkBudget::new();
        let out = pbkdf2_hmac(HashAlg::Sha1, b"password", b"salt", 2, 20, &mut budget).unwrap();
        assert_eq!(&out[..], &unhex("ea6c014dc72d6f8ccd1ed92ace1d41f0d8de8957")[..]);
        let out = pbkdf2_hmac(
            HashAlg::Sha1,
            b"passwordPASSWORDpassword",
            b"saltSALTsaltSALTsaltSALTsaltSALTsalt",
            4096,
            25,
            &mut budget,
        )
        .unwrap();
        assert_eq!(&out[..], &unhex("3d2eec4fe41c849b80c8d83662c0e44a8b291a964cf2f07038")[..]);
        let out = pbkdf2_hmac(HashAlg::Sha256, b"password", b"salt", 4096, 32, &mut budget).unwrap();
        assert_eq!(&out[..], &unhex("c5e478d59288c841aa530db6845c4c8d962893a001ce4e11a4963873aa98134a")[..]);
    }

    #[test]
    fn budget_refuses_before_work() {
        let mut budget = WorkBudget::new();
        let start = std::time::Instant::now();
        let err =
            pkcs12_kdf(HashAlg::Sha1, &[0, 0], b"salt", KdfPurpose::Mac, (1 << 31) - 1, 20, &mut budget).unwrap_err();
        assert_eq!(err.code, Code::UnsupportedAlgorithm);
        assert!(err.message.contains("2147483647"), "{}", err.message);
        assert!(err.message.contains("certgate accepts at most"), "{}", err.message);
        assert_eq!(err.hint, HINT_REEXPORT);
        assert!(start.elapsed().as_millis() < 100);
        assert_eq!(budget.spent(), 0);

        // Many affordable calls run out of the total.
        let mut budget = WorkBudget::with_limits(1000, 2500);
        let one =
            KdfCost { kind: KdfKind::Pbkdf2(HashAlg::Sha256), iterations: 1, blocks: 1, parallel: 1, units: 1000 };
        budget.spend(&one).unwrap();
        budget.spend(&one).unwrap();
        assert_eq!(budget.spend(&one).unwrap_err().code, Code::UnsupportedAlgorithm);
        assert!(budget.precheck(&[one, one, one]).is_err());
    }

    #[test]
    fn pbkdf2_budget_message() {
        let budget = WorkBudget::new();
        let err = budget.check_one(&KdfCost::pbkdf2(HashAlg::Sha256, 50_000_000, 32)).unwrap_err();
        assert!(
            err.message
                .starts_with("the file asks for 50000000 PBKDF2-HMAC-SHA-256 iterations; certgate accepts at most "),
            "{}",
            err.message
        );
    }

    #[test]
    fn asn1_reader_never_panics_on_prefixes() {
        // A BER value with an indefinite length and a constructed OCTET STRING.
        let ber = unhex("30 80 02 01 03 24 80 04 02 aa bb 04 01 cc 00 00 00 00");
        let (tlv, rest) = asn1::parse(&ber).unwrap();
        assert!(rest.is_empty());
        let mut r = tlv.sequence().unwrap();
        assert_eq!(r.next().unwrap().uint().unwrap(), 3);
        assert_eq!(&r.next().unwrap().octets().unwrap()[..], &[0xaa, 0xbb, 0xcc]);
        r.finish().unwrap();
        for n in 0..ber.len() {
            let _ = asn1::parse(&ber[..n]);
        }
        // Deep nesting is refused, not a stack overflow.
        let mut deep = Vec::new();
        for _ in 0..100_000 {
            deep.extend_from_slice(&[0x30, 0x80]);
        }
        assert!(asn1::parse(&deep).is_err());
        assert_eq!(asn1::oid_to_string(oids::PBES2.as_bytes()), "1.2.840.113549.1.5.13");
    }
}
