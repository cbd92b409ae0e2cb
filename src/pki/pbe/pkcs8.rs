//! PKCS#8 `EncryptedPrivateKeyInfo` (what a PEM "ENCRYPTED PRIVATE KEY" holds), decrypted with
//! the schemes of `schemes.rs`, and the PrivateKeyInfo shape check that tells a right password
//! from a wrong one.

use zeroize::Zeroizing;

use crate::pki::refusal::{Code, Refusal};

use super::ber::{self, tag};
use super::budget::{KdfCost, WorkBudget};
use super::kdf::PasswordForms;
use super::schemes::{EncryptionScheme, PbeError};

const HINT_WRONG_PASSWORD: &str = "check the password that was set when the file was exported";
const HINT_GIVE_PASSWORD: &str = "give it with --password-env VAR, --password-file FILE or --password-stdin";

/// Whether `der` is exactly one PKCS#8 PrivateKeyInfo / OneAsymmetricKey:
/// SEQUENCE { INTEGER 0|1, AlgorithmIdentifier, OCTET STRING, ... }.
pub(crate) fn looks_like_private_key_info(der: &[u8]) -> bool {
    let check = || -> Result<bool, ber::Error> {
        let (tlv, rest) = ber::parse(der)?;
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
    let (tlv, rest) = ber::parse(der).map_err(|e| e.refusal(what))?;
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
