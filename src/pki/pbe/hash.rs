//! The hash functions the KDFs and MACs can use, chosen at run time from an OID, and the HMAC
//! check of the PKCS#12 MAC. The hashes are the RustCrypto `sha1` and `sha2` crates, HMAC is
//! the `hmac` crate.

use hmac::{Hmac, KeyInit, Mac};

use super::oids;

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
        use oids::*;
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
        use oids::*;
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

/// Runs `$body` with `$D` bound to the hash type of `$alg` (`$alg` is a [`HashAlg`]).
macro_rules! with_hash {
    ($alg:expr, $D:ident => $body:expr) => {
        match $alg {
            $crate::pki::pbe::hash::HashAlg::Sha1 => {
                type $D = ::sha1::Sha1;
                $body
            }
            $crate::pki::pbe::hash::HashAlg::Sha224 => {
                type $D = ::sha2::Sha224;
                $body
            }
            $crate::pki::pbe::hash::HashAlg::Sha256 => {
                type $D = ::sha2::Sha256;
                $body
            }
            $crate::pki::pbe::hash::HashAlg::Sha384 => {
                type $D = ::sha2::Sha384;
                $body
            }
            $crate::pki::pbe::hash::HashAlg::Sha512 => {
                type $D = ::sha2::Sha512;
                $body
            }
        }
    };
}
pub(super) use with_hash;

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
