//! The old OpenSSL encrypted key form: a `RSA PRIVATE KEY` or `EC PRIVATE KEY` block with
//! `Proc-Type: 4,ENCRYPTED` and `DEK-Info: CIPHER,IV` headers. The key is
//! EVP_BytesToKey(MD5, salt = first 8 bytes of the IV, one round) and the body is CBC with
//! PKCS#7 padding.

use cbc::cipher::{block_padding::Pkcs7, BlockCipherDecrypt, BlockModeDecrypt, KeyInit, KeyIvInit};
use md5::{Digest, Md5};
use zeroize::Zeroizing;

use super::pem::PemBlock;
use super::refusal::{Code, Refusal};

pub fn is_encrypted(block: &PemBlock) -> bool {
    block.header("Proc-Type").is_some_and(|v| v.replace(' ', "").eq_ignore_ascii_case("4,ENCRYPTED"))
}

/// Decrypt the block's body. `Err` with `wrong-password` when the padding or the structure
/// shows the password was not the right one.
pub fn decrypt(block: &PemBlock, password: &[u8]) -> Result<Zeroizing<Vec<u8>>, Refusal> {
    let dek = block.header("DEK-Info").ok_or_else(|| {
        Refusal::malformed(format!(
            "PEM block '{}' says Proc-Type: 4,ENCRYPTED but has no DEK-Info header",
            block.label
        ))
    })?;
    let (cipher, iv_hex) = dek
        .split_once(',')
        .ok_or_else(|| Refusal::malformed(format!("PEM DEK-Info header '{dek}' is not 'CIPHER,IV'")))?;
    let iv =
        hex::decode(iv_hex.trim()).map_err(|_| Refusal::malformed(format!("PEM DEK-Info IV '{iv_hex}' is not hex")))?;
    let cipher = cipher.trim().to_ascii_uppercase();
    let (key_len, iv_len) = match cipher.as_str() {
        "AES-128-CBC" => (16, 16),
        "AES-192-CBC" => (24, 16),
        "AES-256-CBC" => (32, 16),
        "DES-EDE3-CBC" => (24, 8),
        "DES-CBC" => (8, 8),
        other => {
            return Err(Refusal::new(
                Code::UnsupportedAlgorithm,
                format!("the key is encrypted with {other}, which certgate does not read"),
                "convert it with 'openssl pkcs8 -topk8 -v2 aes-256-cbc' and import the result",
            ))
        }
    };
    if iv.len() != iv_len {
        return Err(Refusal::malformed(format!("PEM DEK-Info IV has {} bytes, {cipher} needs {iv_len}", iv.len())));
    }
    let key = bytes_to_key(password, &iv[..8], key_len);
    let data: &[u8] = &block.der;
    let plain = match cipher.as_str() {
        "AES-128-CBC" => cbc_decrypt::<aes::Aes128>(&key, &iv, data),
        "AES-192-CBC" => cbc_decrypt::<aes::Aes192>(&key, &iv, data),
        "AES-256-CBC" => cbc_decrypt::<aes::Aes256>(&key, &iv, data),
        "DES-EDE3-CBC" => cbc_decrypt::<des::TdesEde3>(&key, &iv, data),
        _ => cbc_decrypt::<des::Des>(&key, &iv, data),
    };
    // A wrong password almost always breaks the padding; when it does not, the result is not
    // a DER SEQUENCE.
    match plain {
        Some(p) if p.first() == Some(&0x30) => Ok(p),
        _ => Err(wrong_password(&block.label)),
    }
}

pub fn wrong_password(what: &str) -> Refusal {
    Refusal::new(
        Code::WrongPassword,
        format!("the password does not open the encrypted {what}"),
        "check the password that was set when the key was exported",
    )
}

fn cbc_decrypt<C>(key: &[u8], iv: &[u8], data: &[u8]) -> Option<Zeroizing<Vec<u8>>>
where
    C: BlockCipherDecrypt + KeyInit,
{
    let dec = cbc::Decryptor::<C>::new_from_slices(key, iv).ok()?;
    dec.decrypt_padded_vec::<Pkcs7>(data).ok().map(Zeroizing::new)
}

/// OpenSSL's EVP_BytesToKey with MD5 and one round.
fn bytes_to_key(password: &[u8], salt: &[u8], len: usize) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(Vec::with_capacity(len + 16));
    let mut prev: Option<Vec<u8>> = None;
    while out.len() < len {
        let mut h = Md5::new();
        if let Some(p) = &prev {
            h.update(p);
        }
        h.update(password);
        h.update(salt);
        let d = h.finalize().to_vec();
        out.extend_from_slice(&d);
        prev = Some(d);
    }
    out.truncate(len);
    out
}
