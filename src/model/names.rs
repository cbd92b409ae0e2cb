//! Names and ids as types: a [`CertificateName`], [`AppName`] or [`CertificateId`] has been checked
//! once, where it entered (a command line, an API body, an apply file), and is carried as such by
//! control, the store's records, the routes and the views. A name read back from the store was
//! checked when it was written.

use std::borrow::Borrow;
use std::fmt;
use std::ops::Deref;

/// Why a text is not a valid name or id; the caller adds which input it was.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidName {
    /// What kind of name was expected: "certificate", "app", "certificate id", ...
    pub kind: &'static str,
    pub text: String,
}

impl fmt::Display for InvalidName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "'{}' is not a valid {} name", self.text, self.kind)
    }
}

impl std::error::Error for InvalidName {}

/// The rule every user-given name follows (certificates, anchors, services, apps, tokens):
/// 1 to 128 ASCII letters, digits, '.', '_' or '-'.
pub fn is_valid_name(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 128
        && text.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

macro_rules! text_type {
    ($(#[$doc:meta])* $name:ident, $kind:literal, $pattern:literal, $valid:expr) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
        pub struct $name(String);

        impl $name {
            /// The kind of name, as messages say it.
            pub const KIND: &'static str = $kind;

            /// Checks `text` and takes it.
            pub fn parse(text: &str) -> Result<Self, InvalidName> {
                let valid: fn(&str) -> bool = $valid;
                if valid(text) {
                    Ok(Self(text.to_string()))
                } else {
                    Err(InvalidName { kind: $kind, text: text.to_string() })
                }
            }

            /// A value the store wrote after checking it (a row read back); not for user input.
            pub fn stored(text: String) -> Self {
                Self(text)
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }

            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl Deref for $name {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&self.0, f)
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }

        impl PartialEq<String> for $name {
            fn eq(&self, other: &String) -> bool {
                &self.0 == other
            }
        }

        impl PartialEq<$name> for str {
            fn eq(&self, other: &$name) -> bool {
                self == other.0
            }
        }

        impl PartialEq<$name> for String {
            fn eq(&self, other: &$name) -> bool {
                *self == other.0
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.0
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .pattern(Some($pattern))
                    .into()
            }
        }

        impl utoipa::ToSchema for $name {}

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = String::deserialize(d)?;
                Self::parse(&text).map_err(serde::de::Error::custom)
            }
        }
    };
}

text_type!(
    /// The name a certificate (identity) is stored under: what bindings and grants name.
    CertificateName,
    "certificate",
    "^[A-Za-z0-9._-]{1,128}$",
    is_valid_name
);

text_type!(
    /// The name of an application that calls through the gateway with proxy credentials.
    AppName,
    "app",
    "^[A-Za-z0-9._-]{1,128}$",
    is_valid_name
);

text_type!(
    /// A certificate's id: SHA-256 of its DER, 64 lowercase hex digits.
    CertificateId,
    "certificate id",
    "^[0-9a-f]{64}$",
    |text| text.len() == 64 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
);

impl CertificateId {
    /// The id of a certificate, from its DER.
    pub fn of_der(der: &[u8]) -> Self {
        use sha2::Digest;
        Self(hex::encode(sha2::Sha256::digest(der)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_one_rule() {
        assert!(CertificateName::parse("Billing.Invoice_2026-prod").is_ok());
        for bad in ["", "a b", "ä", "x/y", &"a".repeat(129)] {
            let err = CertificateName::parse(bad).unwrap_err();
            assert_eq!(err.kind, "certificate");
        }
        assert_eq!(AppName::parse("x y").unwrap_err().to_string(), "'x y' is not a valid app name");
    }

    #[test]
    fn ids_are_lowercase_sha256_hex() {
        let id = CertificateId::of_der(b"der");
        assert_eq!(id.len(), 64);
        assert_eq!(CertificateId::parse(&id).unwrap(), id);
        assert!(CertificateId::parse(&id.to_uppercase()).is_err());
        assert!(CertificateId::parse("abc").is_err());
    }

    #[test]
    fn names_compare_and_print_as_their_text() {
        let name = CertificateName::parse("billing").unwrap();
        assert_eq!(name, "billing");
        assert_eq!(format!("{name} {name:?}"), "billing \"billing\"");
        assert_eq!(serde_json::to_string(&name).unwrap(), "\"billing\"");
        assert!(serde_json::from_str::<CertificateName>("\"a b\"").is_err());
    }
}
