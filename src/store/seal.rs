//! Private keys at rest: AES-256-GCM under the master key, the certificate id as associated
//! data, so a sealed key cannot be moved to another certificate's row.

use std::fmt;
use std::path::Path;

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::Engine;
use zeroize::Zeroizing;

const VERSION: u8 = 1;
/// A known plaintext sealed once per store, to tell a wrong master key from a damaged row.
pub const CHECK_PLAINTEXT: &[u8] = b"certgate master key check v1";
pub const CHECK_AAD: &[u8] = b"certgate:master-key-check";

#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("the sealed data is damaged or was sealed under another master key")]
    Open,
    #[error("{0}")]
    Key(String),
}

pub struct MasterKey {
    key: LessSafeKey,
    /// SHA-256 of the key, first 8 bytes in hex: safe to show, tells keys apart.
    fingerprint: String,
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MasterKey({})", self.fingerprint)
    }
}

impl MasterKey {
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, SealError> {
        if bytes.len() != 32 {
            return Err(SealError::Key(format!("the master key must be 32 bytes, it has {}", bytes.len())));
        }
        let unbound = UnboundKey::new(&AES_256_GCM, bytes)
            .map_err(|_| SealError::Key("the master key was refused by the cipher".into()))?;
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes);
        Ok(MasterKey { key: LessSafeKey::new(unbound), fingerprint: hex::encode(&digest.as_ref()[..8]) })
    }

    /// Base64 of 32 bytes (the `CERTGATE_MASTER_KEY` form, also the key file's content).
    pub fn from_base64(text: &str) -> Result<Self, SealError> {
        let bytes = Zeroizing::new(
            base64::engine::general_purpose::STANDARD
                .decode(text.trim())
                .map_err(|_| SealError::Key("the master key is not valid base64".into()))?,
        );
        Self::from_bytes(&bytes)
    }

    /// A new random key, returned with its base64 form for writing to the key file.
    pub fn generate() -> Result<(Self, Zeroizing<String>), SealError> {
        let mut bytes = Zeroizing::new([0u8; 32]);
        SystemRandom::new()
            .fill(&mut bytes[..])
            .map_err(|_| SealError::Key("the system random generator failed".into()))?;
        let text = Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(&bytes[..]));
        Ok((Self::from_bytes(&bytes[..])?, text))
    }

    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>, SealError> {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| SealError::Key("the system random generator failed".into()))?;
        let mut buf = plaintext.to_vec();
        self.key
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(aad), &mut buf)
            .map_err(|_| SealError::Key("sealing failed".into()))?;
        let mut out = Vec::with_capacity(1 + NONCE_LEN + buf.len());
        out.push(VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&buf);
        Ok(out)
    }

    pub fn open(&self, sealed: &[u8], aad: &[u8]) -> Result<Zeroizing<Vec<u8>>, SealError> {
        if sealed.len() < 1 + NONCE_LEN + 16 || sealed[0] != VERSION {
            return Err(SealError::Open);
        }
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&sealed[1..1 + NONCE_LEN]);
        let mut buf = Zeroizing::new(sealed[1 + NONCE_LEN..].to_vec());
        let len = self
            .key
            .open_in_place(Nonce::assume_unique_for_key(nonce), Aad::from(aad), &mut buf)
            .map_err(|_| SealError::Open)?
            .len();
        buf.truncate(len);
        Ok(buf)
    }
}

/// Read a key file (base64 of 32 bytes).
pub fn read_key_file(path: &Path) -> Result<MasterKey, SealError> {
    let text = Zeroizing::new(
        std::fs::read_to_string(path)
            .map_err(|e| SealError::Key(format!("cannot read the master key file {}: {e}", path.display())))?,
    );
    MasterKey::from_base64(&text).map_err(|e| SealError::Key(format!("{}: {e}", path.display())))
}

/// Create a key file with mode 0600 that did not exist before (never overwrite one).
pub fn create_key_file(path: &Path) -> Result<MasterKey, SealError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let (key, text) = MasterKey::generate()?;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| SealError::Key(format!("cannot create the master key file {}: {e}", path.display())))?;
    file.write_all(text.as_bytes())
        .and_then(|_| file.write_all(b"\n"))
        .and_then(|_| file.sync_all())
        .map_err(|e| SealError::Key(format!("cannot write {}: {e}", path.display())))?;
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_key_opens_only_with_same_key_and_same_id() {
        let (key, _) = MasterKey::generate().unwrap();
        let sealed = key.seal(b"secret key bytes", b"id-1").unwrap();
        assert!(!sealed.windows(6).any(|w| w == b"secret"));
        assert_eq!(&key.open(&sealed, b"id-1").unwrap()[..], b"secret key bytes");
        assert!(key.open(&sealed, b"id-2").is_err());
        let (other, _) = MasterKey::generate().unwrap();
        assert!(other.open(&sealed, b"id-1").is_err());
    }
}
