//! Password-based decryption for PKCS#12 files and PKCS#8 encrypted keys, with a work budget.
//!
//! One file per role:
//!
//! * `ber.rs`: the small BER/DER reader `pkcs12.rs` also uses (PKCS#12 files from some tools
//!   are BER, which a strict DER decoder rejects).
//! * `oids.rs`: the OID table and the "not supported" refusal that names an OID.
//! * `hash.rs`: [`HashAlg`] (SHA-1/224/256/384/512) and the HMAC check of the PKCS#12 MAC.
//! * `budget.rs`: [`WorkBudget`] and [`KdfCost`]. Every key derivation is paid for *before* it
//!   runs, so a file that asks for 2^31 iterations (or a thousand bags with a million each) is
//!   refused at once instead of burning minutes of CPU.
//! * `kdf.rs`: the password encodings, the PKCS#12 KDF (RFC 7292 Appendix B, written here) and
//!   PBKDF2 (the `pbkdf2` crate) for PBMAC1.
//! * `schemes.rs`: PBES1 with the PKCS#12 schemes, and PBES2 through the `pkcs5` crate.
//! * `pkcs8.rs`: [`decrypt_encrypted_private_key_info`] for a PKCS#8 `EncryptedPrivateKeyInfo`.
//!
//! Outside `pki` only the budget and the PKCS#8 entry point are public; the rest is for the
//! PKCS#12 reader next door.

pub(crate) mod ber;
mod budget;
mod hash;
mod kdf;
pub(crate) mod oids;
mod pkcs8;
mod schemes;

pub use budget::{KdfCost, KdfKind, WorkBudget};

/// Fuzzing entry point (`fuzz/fuzz_targets/ber.rs`), not part of the API: the BER reader, and
/// the encryption-scheme and PBKDF2 parameter readers over the same bytes.
#[doc(hidden)]
pub fn fuzz_ber(data: &[u8]) {
    ber::fuzz_ber(data);
    if let Ok(scheme) = EncryptionScheme::parse(data) {
        let _ = scheme.name();
        let _ = scheme.uses_bmp_password();
        let costs = scheme.costs();
        let _ = WorkBudget::new().precheck(costs.iter());
    }
    if let Ok((tlv, _)) = ber::parse(data) {
        let _ = parse_pbkdf2_algorithm(tlv);
    }
}
pub use hash::HashAlg;
pub use pkcs8::decrypt_encrypted_private_key_info;

pub(crate) use hash::hmac_verify;
pub(crate) use kdf::{pbkdf2_hmac, pkcs12_kdf, KdfPurpose, PasswordForms};
pub(crate) use oids::unsupported_oid;
pub(crate) use pkcs8::looks_like_private_key_info;
pub(crate) use schemes::{parse_pbkdf2_algorithm, EncryptionScheme, PbeError, Pbkdf2Params};

/// The hint of every refusal for a scheme, parameter or cost certgate does not accept.
const HINT_REEXPORT: &str = "export it again with the tool's default settings";
