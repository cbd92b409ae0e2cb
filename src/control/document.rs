//! The apply file: what a store should hold, declared in TOML or YAML (`certgate apply`,
//! `export-config`, `import-mendix --write`, `POST /api/v1/apply`). Plain data and its parsing;
//! planning and applying are in `apply.rs`. The documented example is `docs/apply-example.toml`.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::model::ErrorCode;
use crate::pki::{Password, Refusal};

use super::ControlError;

/// The format of an apply file, chosen by its extension.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Toml,
    Yaml,
}

impl Format {
    pub fn parse(text: &str) -> Option<Format> {
        match text.to_ascii_lowercase().as_str() {
            "toml" => Some(Format::Toml),
            "yaml" | "yml" => Some(Format::Yaml),
            _ => None,
        }
    }

    /// By the file's extension: `.toml`, `.yaml` or `.yml`.
    pub fn of_path(path: &std::path::Path) -> Result<Format, ControlError> {
        path.extension().and_then(|e| e.to_str()).and_then(Format::parse).ok_or_else(|| {
            ControlError::usage(
                "usage",
                format!("{}: the apply file's format is chosen by its extension", path.display()),
                "name the file *.toml, *.yaml or *.yml",
            )
        })
    }
}

/// Everything an apply file can declare. Objects not declared are left alone (or removed with
/// prune). Tokens are never declared: they are secrets, made with their own command.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Document {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub certificates: Vec<CertificateDecl>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trust_anchors: Vec<AnchorDecl>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bindings: Vec<BindingDecl>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<ServiceDecl>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub apps: Vec<AppDecl>,
}

/// A client certificate: a file with where its password comes from, or the `id` of one already
/// in the store under this name (both: the file must hold that id).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertificateDecl {
    pub name: String,
    /// SHA-256 of the leaf DER, lowercase hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// PKCS#12, PEM or DER; a relative path is taken from the apply file's folder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// `env:VAR` or `file:PATH`, never the password itself. Absent: no (or an empty) password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Whom expiry alerts reach: e-mail addresses and/or `webhook:NAME`, comma-separated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact: Option<String>,
    /// A password handed over in memory (import-mendix reads it from the app's settings);
    /// never read from or written to a file.
    #[serde(skip)]
    pub given_password: Option<Password>,
}

/// A trust anchor: a file of CA certificates, or the PEM text itself (what export writes).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnchorDecl {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pem: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Whom expiry alerts reach: e-mail addresses and/or `webhook:NAME`, comma-separated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact: Option<String>,
}

/// Destination -> certificate (or several candidates, or none), with the partner's trust policy.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BindingDecl {
    /// `host`, `host:port`, `*.domain` (a URL is reduced to its host).
    pub destination: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<String>,
    /// Several certificates in order of preference (instead of `certificate`): at each
    /// handshake the first that chains to a CA the partner names is presented.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub certificates: Vec<String>,
    /// Send no certificate to this destination.
    #[serde(default, skip_serializing_if = "is_false")]
    pub no_cert: bool,
    /// `public` (default), `private` or `ca:NAME[,NAME]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trust: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sni: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pins: Vec<String>,
    /// The partner asks for the certificate after the request: allow one renegotiation per
    /// connection and TLS 1.3 post-handshake authentication (OpenSSL engine, HTTP/1.1).
    #[serde(default, skip_serializing_if = "is_false")]
    pub allow_renegotiation: bool,
}

/// A named service: NAME -> base URL, with its own binding (certificate or `no_cert`) or, with
/// neither, the binding of the URL's host.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceDecl {
    pub name: String,
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<String>,
    /// Several certificates in order of preference (instead of `certificate`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub certificates: Vec<String>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub no_cert: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trust: Option<String>,
    /// As for a binding; only with a certificate or `no_cert`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sni: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pins: Vec<String>,
    /// The partner asks for the certificate after the request: allow one renegotiation per
    /// connection (OpenSSL engine); only with a certificate.
    #[serde(default, skip_serializing_if = "is_false")]
    pub allow_renegotiation: bool,
}

/// A calling application and the certificates it may present. A new app's credential is shown
/// once, in the result of the apply that created it.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppDecl {
    pub name: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub grants: Vec<String>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// Where a certificate's password comes from.
pub enum PasswordSource {
    Env(String),
    File(PathBuf),
}

impl PasswordSource {
    pub fn parse(text: &str) -> Result<PasswordSource, String> {
        if let Some(var) = text.strip_prefix("env:").filter(|v| !v.is_empty()) {
            Ok(PasswordSource::Env(var.to_string()))
        } else if let Some(path) = text.strip_prefix("file:").filter(|v| !v.is_empty()) {
            Ok(PasswordSource::File(PathBuf::from(path)))
        } else {
            Err("a password is given as env:VARIABLE or file:PATH, never as the password itself".into())
        }
    }
}

impl Document {
    /// Parse an apply file. `label` names it in messages (its path, or "document" for the API).
    pub fn parse(label: &str, text: &str, format: Format) -> Result<Document, ControlError> {
        let hint = "fix the file: see docs/apply-example.toml for every key";
        match format {
            Format::Toml => toml::from_str(text).map_err(|e| {
                let line = e.span().map(|s| line_at(text, s.start));
                let what = e.message().trim().to_string();
                refused(
                    match line {
                        Some(l) => format!("{label}:{l}: {what}"),
                        None => format!("{label}: {what}"),
                    },
                    hint,
                )
            }),
            Format::Yaml => {
                serde_norway::from_str::<Option<Document>>(text).map(Option::unwrap_or_default).map_err(|e| {
                    let what = e.to_string();
                    refused(
                        match e.location() {
                            Some(l) => format!("{label}:{}: {what}", l.line()),
                            None => format!("{label}: {what}"),
                        },
                        hint,
                    )
                })
            }
        }
    }

    /// The document as a file of this format.
    pub fn render(&self, format: Format) -> Result<String, ControlError> {
        let out = match format {
            Format::Toml => toml::to_string(self).map_err(|e| e.to_string()),
            Format::Yaml => serde_norway::to_string(self).map_err(|e| e.to_string()),
        };
        out.map_err(|e| ControlError::unavailable(format!("cannot write the document: {e}")))
    }
}

fn refused(message: String, hint: &str) -> ControlError {
    ControlError::Refused(Refusal::new(ErrorCode::Malformed, message, hint))
}

/// The 1-based line of a byte offset.
fn line_at(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].bytes().filter(|b| *b == b'\n').count() + 1
}

/// The line where `key` is set to `value` (`key = "value"` in TOML, `key: value` in YAML, also
/// after a list's `- `), for messages about one object; the parsers keep no positions once the
/// document is read. `nth` picks among repeated declarations (0 = the first).
pub fn line_of(text: &str, key: &str, value: &str, nth: usize) -> Option<usize> {
    let mut seen = 0;
    for (i, line) in text.lines().enumerate() {
        let l = line.trim_start().trim_start_matches("- ").trim_start();
        let Some(rest) = l.strip_prefix(key) else { continue };
        let rest = rest.trim_start();
        let Some(rest) = rest.strip_prefix('=').or_else(|| rest.strip_prefix(':')) else { continue };
        let v = rest.trim();
        let v = v.split(" #").next().unwrap_or(v).trim();
        let v = v.trim_matches(|c| c == '"' || c == '\'');
        if v == value {
            if seen == nth {
                return Some(i + 1);
            }
            seen += 1;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_errors_name_the_line() {
        let text = "[[certificates]]\nname = \"a\"\ncolour = \"blue\"\n";
        let e = Document::parse("x.toml", text, Format::Toml).unwrap_err();
        assert!(e.message().starts_with("x.toml:3:"), "{}", e.message());
        assert!(e.message().contains("colour"), "{}", e.message());
    }

    #[test]
    fn yaml_errors_name_the_line() {
        let text = "certificates:\n  - name: a\n    colour: blue\n";
        let e = Document::parse("x.yaml", text, Format::Yaml).unwrap_err();
        assert!(e.message().starts_with("x.yaml:3:"), "{}", e.message());
    }

    #[test]
    fn an_empty_yaml_file_declares_nothing() {
        let d = Document::parse("x.yaml", "", Format::Yaml).unwrap();
        assert!(d.certificates.is_empty() && d.bindings.is_empty());
    }

    #[test]
    fn line_of_finds_toml_and_yaml_keys() {
        let toml = "[[bindings]]\ndestination = \"a.example\"\n[[bindings]]\ndestination = \"b.example\" # x\n";
        assert_eq!(line_of(toml, "destination", "b.example", 0), Some(4));
        let yaml = "bindings:\n  - destination: a.example\n  - destination: 'b.example'\n";
        assert_eq!(line_of(yaml, "destination", "b.example", 0), Some(3));
        assert_eq!(line_of(yaml, "destination", "c.example", 0), None);
    }

    #[test]
    fn passwords_come_from_env_or_file_only() {
        assert!(matches!(PasswordSource::parse("env:PFX_PW"), Ok(PasswordSource::Env(v)) if v == "PFX_PW"));
        assert!(matches!(PasswordSource::parse("file:/run/pw"), Ok(PasswordSource::File(_))));
        assert!(PasswordSource::parse("hunter2").is_err());
        assert!(PasswordSource::parse("env:").is_err());
    }
}
