//! The password-based key derivations and the password encodings they take.
//!
//! * The PKCS#12 KDF of RFC 7292 Appendix B (IDs 1 key, 2 IV, 3 MAC) over SHA-1 / SHA-224 /
//!   SHA-256 / SHA-384 / SHA-512, written here (see docs/decisions.md, "Import"). It takes the
//!   password as raw, already encoded bytes: [`bmp_with_terminator`] (what RFC 7292 says) or
//!   [`null_password`] (the zero-length form .NET and Java use for an empty password).
//! * PBKDF2 (RFC 8018) with HMAC-SHA-1/224/256/384/512 for PBMAC1, from the `pbkdf2` crate (the
//!   same code `pkcs5` runs for PBES2).
//!
//! Both entry points check their inputs and pay the [`WorkBudget`] before hashing anything.

use std::fmt;

use sha2::digest::block_api::BlockSizeUser;
use sha2::digest::Digest;
use zeroize::{Zeroize, Zeroizing};

use crate::pki::refusal::{Code, Refusal};

use super::budget::{KdfCost, WorkBudget};
use super::hash::{with_hash, HashAlg};
use super::HINT_REEXPORT;

/// Longest salt accepted (PBES1 and PBKDF2); real files use 8 to 32 bytes.
pub(super) const MAX_SALT_LEN: usize = 1024;

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

/// PBKDF2 (RFC 8018 5.2) with HMAC over `prf`, by the `pbkdf2` crate; used for PBMAC1 (PBES2
/// goes through `pkcs5`, which runs the same crate). Spends from `budget` first.
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
    // The crate counts rounds in a u32; the default budget refuses far below that already.
    let rounds = u32::try_from(iterations).map_err(|_| {
        Refusal::new(
            Code::UnsupportedAlgorithm,
            format!("the file asks for {iterations} PBKDF2 iterations; certgate accepts at most {}", u32::MAX),
            HINT_REEXPORT,
        )
    })?;
    let mut out = Zeroizing::new(vec![0u8; out_len]);
    with_hash!(prf, D => pbkdf2::pbkdf2_hmac::<D>(password, salt, rounds, &mut out));
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

#[cfg(test)]
mod tests {
    use super::*;

    fn unhex(s: &str) -> Vec<u8> {
        hex::decode(s).unwrap()
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

    // RFC 6070 PBKDF2-HMAC-SHA1, and vectors from `openssl kdf -kdfopt digest:<hash> ... PBKDF2`
    // (OpenSSL 3.0) for every PRF the reader accepts: 70 bytes is several blocks for each hash
    // and ends in a partial one; a 150-byte password is longer than every hash's block.
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

        let vectors = [
            (HashAlg::Sha1, "6E88BE8BAD7EAE9D9E10AA061224034FED48D03FCBAD968B56006784539D5214CE970D912EC2049B04231D47C2EB88506945B26B2325E6ADFEEBA08895FF9587A30B79968D7C"),
            (HashAlg::Sha224, "D3BCF320FD918908EAFCAA460FAF40E201F6508D4E6F3D9C1C0ABD30DAE08CC8B1BC0657E2EBC229D22E48DF55DF72E83F2E50DB2324A73B01DDBB88831662F0080DA7025964"),
            (HashAlg::Sha256, "632C2812E46D4604102BA7618E9D6D7D2F8128F6266B4A03264D2A0460B7DCB388B3B1131F741BCBEB02541C8C2E97BD8BED62AB6425542E45512B7312F440EBC6E21F4356A5"),
            (HashAlg::Sha384, "3BD37E2236941D4A77B1B5B714C6F913FABB6B0841A6D7D8656B99D611E900FE06EDB93B5B809EFAA9678B635CE513E0F7D9EBB0AEA1E07F0AB90D1B9CBD94643BEF7C43C895"),
            (HashAlg::Sha512, "AFE6C5530785B6CC6B1C6453384731BD5EE432EE549FD42FB6695779AD8A1C5BF59DE69C48F774EFC4007D5298F9033C0241D5AB69305E7B64ECEEB8D834CFEC6AFDEC3C1C23"),
        ];
        for (prf, expected) in vectors {
            let out = pbkdf2_hmac(prf, b"password", b"salt", 1000, 70, &mut budget).unwrap();
            assert_eq!(&out[..], &unhex(expected)[..], "PBKDF2-HMAC-{}", prf.name());
        }

        let long = [b'p'; 150];
        let out = pbkdf2_hmac(HashAlg::Sha256, &long, b"NaCl", 2, 40, &mut budget).unwrap();
        assert_eq!(
            &out[..],
            &unhex("113B21CE9F38C00D3328E5999E4B971C0F36985B3E1FF392A023B7E6E9BDAE3F7A358586F643001B")[..]
        );
        let out = pbkdf2_hmac(HashAlg::Sha512, &long, b"NaCl", 2, 40, &mut budget).unwrap();
        assert_eq!(
            &out[..],
            &unhex("C996CDF6737F7173FD4FB91535BC85D78A8C1DC303BFE55AF0DBC6BE81228C2828F6B077AF05CBE8")[..]
        );
        let out = pbkdf2_hmac(HashAlg::Sha256, b"", b"salt", 3, 32, &mut budget).unwrap();
        assert_eq!(&out[..], &unhex("5DDF839AFA2D5FB4BE56E1A0F48917617559BEF61EC122BFCA1C7F75AC8F401D")[..]);
    }

    #[test]
    fn hostile_iteration_counts_are_refused_before_any_hashing() {
        let start = std::time::Instant::now();
        let mut budget = WorkBudget::new();
        let err =
            pkcs12_kdf(HashAlg::Sha1, &[0, 0], b"salt", KdfPurpose::Mac, (1 << 31) - 1, 20, &mut budget).unwrap_err();
        assert_eq!(err.code, Code::UnsupportedAlgorithm);
        assert!(err.message.contains("2147483647"), "{}", err.message);
        assert!(err.message.contains("certgate accepts at most"), "{}", err.message);
        assert_eq!(err.hint, HINT_REEXPORT);

        for iterations in [(1 << 31) - 1, u64::from(u32::MAX) + 1, u64::MAX] {
            for prf in [HashAlg::Sha1, HashAlg::Sha256, HashAlg::Sha512] {
                let err = pbkdf2_hmac(prf, b"pw", b"salt", iterations, 32, &mut budget).unwrap_err();
                assert_eq!(err.code, Code::UnsupportedAlgorithm);
                assert!(err.message.contains(&iterations.to_string()), "{}", err.message);
                assert!(err.message.contains("certgate accepts at most"), "{}", err.message);
            }
        }
        // Refused by price alone: nothing was spent, and no hashing ran.
        assert_eq!(budget.spent(), 0);
        assert_eq!(budget.derivations(), 0);
        assert!(start.elapsed().as_millis() < 100, "{:?}", start.elapsed());
    }

    #[test]
    fn a_budget_with_room_beyond_u32_still_refuses_pbkdf2_over_u32_rounds() {
        let mut budget = WorkBudget::with_limits(u64::MAX, u64::MAX);
        let iterations = u64::from(u32::MAX) + 1;
        let err = pbkdf2_hmac(HashAlg::Sha256, b"pw", b"salt", iterations, 32, &mut budget).unwrap_err();
        assert_eq!(err.code, Code::UnsupportedAlgorithm);
        assert!(err.message.contains("4294967296 PBKDF2 iterations"), "{}", err.message);
    }
}
