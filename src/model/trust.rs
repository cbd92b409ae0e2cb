//! How a binding verifies its partner: `public` (the OS roots plus certgate's anchors),
//! `private` (certgate's anchors only) or `ca:NAME[,NAME]` (the named anchors only).

use std::fmt;

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TrustPolicy {
    Public,
    Private,
    Anchors(Vec<String>),
}

impl TrustPolicy {
    pub fn parse(text: &str) -> Result<Self, String> {
        match text.trim() {
            "public" => Ok(TrustPolicy::Public),
            "private" => Ok(TrustPolicy::Private),
            other => {
                let names = other
                    .strip_prefix("ca:")
                    .ok_or_else(|| format!("'{other}' is not a trust policy: use public, private or ca:NAME[,NAME]"))?;
                let mut list: Vec<String> =
                    names.split(',').map(|n| n.trim().to_string()).filter(|n| !n.is_empty()).collect();
                if list.is_empty() {
                    return Err("ca: needs at least one trust anchor name".into());
                }
                list.sort();
                list.dedup();
                // Kept by every binding record (100,000 in a big store): no spare capacity.
                list.shrink_to_fit();
                Ok(TrustPolicy::Anchors(list))
            }
        }
    }
}

impl fmt::Display for TrustPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrustPolicy::Public => f.write_str("public"),
            TrustPolicy::Private => f.write_str("private"),
            TrustPolicy::Anchors(names) => write!(f, "ca:{}", names.join(",")),
        }
    }
}

/// An SPKI pin: `sha256/BASE64` of the partner certificate's SubjectPublicKeyInfo.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Pin(pub [u8; 32]);

impl Pin {
    pub fn parse(text: &str) -> Result<Self, String> {
        use base64::Engine;
        let b64 = text
            .trim()
            .strip_prefix("sha256/")
            .ok_or_else(|| format!("'{text}' is not a pin: use sha256/BASE64 of the partner's public key (SPKI)"))?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map_err(|_| format!("'{text}': the part after sha256/ is not base64"))?;
        let arr: [u8; 32] = bytes.try_into().map_err(|_| format!("'{text}': a SHA-256 pin is 32 bytes"))?;
        Ok(Pin(arr))
    }

    pub fn of_spki(spki_der: &[u8]) -> Self {
        let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, spki_der);
        let mut arr = [0u8; 32];
        arr.copy_from_slice(d.as_ref());
        Pin(arr)
    }
}

impl fmt::Display for Pin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use base64::Engine;
        write!(f, "sha256/{}", base64::engine::general_purpose::STANDARD.encode(self.0))
    }
}
