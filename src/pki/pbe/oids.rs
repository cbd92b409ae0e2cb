//! The object identifiers the PKCS#12 and PKCS#8 readers compare against, readable names for
//! the ones a refusal may have to mention, and the "not supported" refusal that names them.

use der::asn1::ObjectIdentifier as Oid;

use crate::pki::refusal::{Code, Refusal};

use super::ber;
use super::HINT_REEXPORT;

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

/// "unsupported <what> <name> (<oid>)".
pub(crate) fn unsupported_oid(what: &str, oid: &[u8]) -> Refusal {
    let dotted = ber::oid_to_string(oid);
    let message = match name(oid) {
        Some(name) => format!("the {what} {name} ({dotted}) is not supported"),
        None => format!("the {what} with OID {dotted} is not supported"),
    };
    Refusal::new(Code::UnsupportedAlgorithm, message, HINT_REEXPORT)
}
