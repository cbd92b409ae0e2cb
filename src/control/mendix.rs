//! Moving a Mendix app's client certificates into certgate (seed 004): the custom settings
//! `ClientCertificates` (comma-separated paths, backslashes single), `ClientCertificatePasswords`
//! (same order) and `ClientCertificateUsages` (a JSON object, backslashes doubled: web-service
//! name or host -> path, an empty path for "no certificate"), read from an m2ee.yaml
//! (`mxruntime:`), from `Name = Value` lines, or given one by one. They become an apply
//! [`Document`]: each file a certificate, a host key a binding, a `Module.WebService` key a named
//! service (its partner URL given separately), an empty path a no-certificate binding or service.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use crate::model::ErrorCode;
use crate::pki::{Password, Refusal};

use super::document::{BindingDecl, CertificateDecl, Document, ServiceDecl};
use super::ControlError;

/// The three settings as the app has them. The passwords are secrets: no Debug of their text.
#[derive(Default)]
pub struct MendixSettings {
    /// Where they were read from, for messages.
    pub label: String,
    pub certificates: Option<String>,
    pub passwords: Option<Zeroizing<String>>,
    /// Web-service name or host -> path (already decoded from JSON).
    pub usages: Option<BTreeMap<String, String>>,
}

impl std::fmt::Debug for MendixSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MendixSettings")
            .field("label", &self.label)
            .field("certificates", &self.certificates)
            .field("passwords", &self.passwords.as_ref().map(|_| "<redacted>"))
            .field("usages", &self.usages)
            .finish()
    }
}

/// How the settings map onto this machine and onto certgate.
#[derive(Clone, Debug, Default)]
pub struct MendixOptions {
    /// Look each certificate file up by its file name in this folder (the app's paths are
    /// usually Windows paths such as `D:\App\Mx1.pfx`).
    pub cert_dir: Option<PathBuf>,
    /// Web-service name -> the partner's base URL.
    pub service_urls: BTreeMap<String, String>,
    /// Keys to take as hosts even though they look like `Module.WebService` names.
    pub hosts: Vec<String>,
    /// Trust policy for every binding and service made (default: public, as Mendix trusts its
    /// trust store).
    pub trust: Option<String>,
}

fn refused(label: &str, message: impl std::fmt::Display, hint: &str) -> ControlError {
    ControlError::Refused(Refusal::new(ErrorCode::Malformed, format!("{label}: {message}"), hint))
}

/// `ClientCertificateUsages`' text: a JSON object whose paths have doubled backslashes.
pub fn parse_usages(label: &str, text: &str) -> Result<BTreeMap<String, String>, ControlError> {
    if text.trim().is_empty() {
        return Ok(BTreeMap::new());
    }
    serde_json::from_str::<BTreeMap<String, String>>(text).map_err(|e| {
        refused(
            label,
            format!("ClientCertificateUsages is not a JSON object of names to paths ({e})"),
            "write it as { \"Module.WebService1\": \"D:\\\\App\\\\Mx1.pfx\" }: backslashes in its paths doubled",
        )
    })
}

impl MendixSettings {
    /// The `mxruntime:` section of an m2ee.yaml. `ClientCertificateUsages` may be the JSON text
    /// or a YAML mapping.
    pub fn from_m2ee(label: &str, text: &str) -> Result<MendixSettings, ControlError> {
        let doc: serde_norway::Value = serde_norway::from_str(text).map_err(|e| {
            let at = e.location().map(|l| format!(":{}", l.line())).unwrap_or_default();
            refused(&format!("{label}{at}"), e, "give the m2ee.yaml the app runs with")
        })?;
        let runtime = doc.get("mxruntime").ok_or_else(|| {
            refused(label, "has no mxruntime: section", "the three settings live under mxruntime: in m2ee.yaml")
        })?;
        let text_of = |key: &str| -> Result<Option<String>, ControlError> {
            match runtime.get(key) {
                None | Some(serde_norway::Value::Null) => Ok(None),
                Some(serde_norway::Value::String(s)) => Ok(Some(s.clone())),
                Some(serde_norway::Value::Number(n)) => Ok(Some(n.to_string())),
                Some(_) => Err(refused(label, format!("mxruntime.{key} is not text"), "give it as one line of text")),
            }
        };
        let usages = match runtime.get("ClientCertificateUsages") {
            None | Some(serde_norway::Value::Null) => None,
            Some(serde_norway::Value::String(s)) => Some(parse_usages(label, s)?),
            Some(serde_norway::Value::Mapping(m)) => {
                let mut out = BTreeMap::new();
                for (k, v) in m {
                    match (k.as_str(), v) {
                        (Some(k), serde_norway::Value::String(v)) => {
                            out.insert(k.to_string(), v.clone());
                        }
                        (Some(k), serde_norway::Value::Null) => {
                            out.insert(k.to_string(), String::new());
                        }
                        _ => {
                            return Err(refused(
                                label,
                                "mxruntime.ClientCertificateUsages maps something other than names to paths",
                                "each entry is \"Module.WebService\" or a host, then a path (or \"\")",
                            ))
                        }
                    }
                }
                Some(out)
            }
            Some(_) => {
                return Err(refused(
                    label,
                    "mxruntime.ClientCertificateUsages is neither JSON text nor a mapping",
                    "give it as the JSON object Studio Pro shows",
                ))
            }
        };
        Ok(MendixSettings {
            label: label.to_string(),
            certificates: text_of("ClientCertificates")?,
            passwords: text_of("ClientCertificatePasswords")?.map(Zeroizing::new),
            usages,
        })
    }

    /// `Name = Value` lines, as Studio Pro's custom settings show them (blank lines and lines
    /// starting with `#` are skipped; other names are ignored).
    pub fn from_settings(label: &str, text: &str) -> Result<MendixSettings, ControlError> {
        let mut s = MendixSettings { label: label.to_string(), ..Default::default() };
        for (i, line) in text.lines().enumerate() {
            let t = line.trim();
            if t.is_empty() || t.starts_with('#') {
                continue;
            }
            let Some((name, value)) = t.split_once('=') else {
                return Err(refused(
                    &format!("{label}:{}", i + 1),
                    "is not a Name = Value line",
                    "write each setting as Name = Value",
                ));
            };
            let value = value.trim().to_string();
            match name.trim() {
                "ClientCertificates" => s.certificates = Some(value),
                "ClientCertificatePasswords" => s.passwords = Some(Zeroizing::new(value)),
                "ClientCertificateUsages" => {
                    s.usages = Some(parse_usages(&format!("{label}:{}", i + 1), &value)?);
                }
                _ => {}
            }
        }
        Ok(s)
    }

    /// The apply document for these settings.
    pub fn to_document(&self, opts: &MendixOptions) -> Result<Document, ControlError> {
        let label = &self.label;
        let paths: Vec<String> = self
            .certificates
            .as_deref()
            .unwrap_or("")
            .split(',')
            .map(|p| p.trim().to_string())
            .filter(|p| !p.is_empty())
            .collect();
        let passwords: Vec<Password> = match &self.passwords {
            Some(p) if !paths.is_empty() => p.split(',').map(|s| Password::new(s.to_string())).collect(),
            _ => Vec::new(),
        };
        if !passwords.is_empty() && passwords.len() != paths.len() {
            return Err(refused(
                label,
                format!(
                    "ClientCertificates names {} files but ClientCertificatePasswords has {} passwords",
                    paths.len(),
                    passwords.len()
                ),
                "give one password per file, in the same order, separated by commas",
            ));
        }
        let usages = self.usages.clone().unwrap_or_default();
        if paths.is_empty() && usages.values().any(|p| !p.is_empty()) {
            return Err(refused(
                label,
                "ClientCertificateUsages names files but ClientCertificates is empty",
                "list every file in ClientCertificates",
            ));
        }
        let mut doc = Document::default();
        let mut names: Vec<String> = Vec::new();
        for (i, path) in paths.iter().enumerate() {
            let name = cert_name(path);
            if names.contains(&name) {
                return Err(refused(
                    label,
                    format!("two files in ClientCertificates are both named {name}"),
                    "give the files distinct names",
                ));
            }
            let file = locate(path, opts.cert_dir.as_deref()).map_err(|hint| ControlError::NotFound {
                what: format!("{label}: the file {path} on this machine"),
                hint: hint.into(),
            })?;
            doc.certificates.push(CertificateDecl {
                name: name.clone(),
                file: Some(file.display().to_string()),
                given_password: passwords.get(i).cloned(),
                ..Default::default()
            });
            names.push(name);
        }
        for (key, path) in &usages {
            let certificate = if path.trim().is_empty() {
                None
            } else {
                let i = paths
                    .iter()
                    .position(|p| p == path.trim())
                    .or_else(|| paths.iter().position(|p| p.eq_ignore_ascii_case(path.trim())))
                    .ok_or_else(|| {
                        refused(
                            label,
                            format!("ClientCertificateUsages gives {key} the file {path}, which ClientCertificates does not list"),
                            "list the file in ClientCertificates too (single backslashes there, doubled in the usages)",
                        )
                    })?;
                Some(names[i].clone())
            };
            let is_service = opts.service_urls.contains_key(key)
                || (looks_like_service(key) && !opts.hosts.iter().any(|h| h == key));
            if is_service {
                let url = opts.service_urls.get(key).ok_or_else(|| {
                    ControlError::usage(
                        "usage",
                        format!("{label}: {key} is a web service, and certgate needs its partner URL"),
                        format!(
                            "add --service-url {key}=https://partner.example/path (or --host {key} if it is a host name)"
                        ),
                    )
                })?;
                doc.services.push(ServiceDecl {
                    name: key.clone(),
                    url: url.clone(),
                    no_cert: certificate.is_none(),
                    certificate,
                    trust: opts.trust.clone(),
                    ..Default::default()
                });
            } else {
                doc.bindings.push(BindingDecl {
                    destination: key.trim_start_matches("https://").trim_start_matches("http://").to_string(),
                    no_cert: certificate.is_none(),
                    certificate,
                    trust: opts.trust.clone(),
                    ..Default::default()
                });
            }
        }
        for key in opts.service_urls.keys() {
            if !usages.contains_key(key) {
                return Err(ControlError::usage(
                    "usage",
                    format!("--service-url names {key}, which ClientCertificateUsages does not"),
                    "check the name against the settings' web-service names",
                ));
            }
        }
        Ok(doc)
    }
}

/// `ModuleName.WebserviceName`: two parts, the second starting with a capital (Mendix names
/// its documents so; host names are written in lower case).
fn looks_like_service(key: &str) -> bool {
    let mut parts = key.split('.');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(m), Some(s), None) => !m.is_empty() && s.chars().next().is_some_and(|c| c.is_ascii_uppercase()),
        _ => false,
    }
}

/// The file's name without folder (Windows or Unix) and extension, as a certificate name.
fn cert_name(path: &str) -> String {
    let base = path.rsplit(['\\', '/']).next().unwrap_or(path);
    let stem = match base.rfind('.') {
        Some(i) if i > 0 => &base[..i],
        _ => base,
    };
    let name: String = stem
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') { c } else { '-' })
        .take(128)
        .collect();
    if name.is_empty() {
        "certificate".into()
    } else {
        name
    }
}

/// Where the app's file is on this machine.
fn locate(path: &str, dir: Option<&Path>) -> Result<PathBuf, String> {
    let base = path.rsplit(['\\', '/']).next().unwrap_or(path);
    if let Some(dir) = dir {
        let p = dir.join(base);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(format!("{base} is not in {}: copy the app's certificate files there", dir.display()))
        };
    }
    let windows = path.contains('\\') || path.as_bytes().get(1) == Some(&b':');
    let p = PathBuf::from(path);
    if !windows && p.is_file() {
        return Ok(p);
    }
    Err(format!("copy the app's certificate files into one folder and give it with --cert-dir DIR (looked for {base})"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED: &str = r#"ClientCertificates = D:\App\Mx1.pfx,D:\App\Mx2.pfx
ClientCertificatePasswords = one,two
ClientCertificateUsages = { "Module.WebService1": "D:\\App\\Mx1.pfx", "www.server-to-contact.com": "D:\\App\\Mx2.pfx", "Module.WebService2": "" }
"#;

    #[test]
    fn settings_lines_follow_the_backslash_rules() {
        let s = MendixSettings::from_settings("settings", SEED).unwrap();
        assert_eq!(s.certificates.as_deref(), Some(r"D:\App\Mx1.pfx,D:\App\Mx2.pfx"));
        let u = s.usages.unwrap();
        assert_eq!(u["Module.WebService1"], r"D:\App\Mx1.pfx");
        assert_eq!(u["Module.WebService2"], "");
    }

    #[test]
    fn single_backslashes_in_the_usages_are_refused_with_the_rule() {
        let e = MendixSettings::from_settings("s", r#"ClientCertificateUsages = { "a.example": "D:\App\Mx1.pfx" }"#)
            .unwrap_err();
        assert!(e.hint().contains("doubled"), "{}", e.hint());
    }

    #[test]
    fn a_web_service_without_its_url_names_the_flag() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("Mx1.pfx"), b"x").unwrap();
        std::fs::write(dir.path().join("Mx2.pfx"), b"x").unwrap();
        let s = MendixSettings::from_settings("settings", SEED).unwrap();
        let mut opts = MendixOptions { cert_dir: Some(dir.path().into()), ..Default::default() };
        opts.service_urls.insert("Module.WebService1".into(), "https://a.example/ws1".into());
        let e = s.to_document(&opts).unwrap_err();
        assert!(e.hint().contains("--service-url Module.WebService2="), "{}", e.hint());
        opts.service_urls.insert("Module.WebService2".into(), "https://a.example/ws2".into());
        let doc = s.to_document(&opts).unwrap();
        assert_eq!(doc.certificates.len(), 2);
        assert_eq!(doc.bindings[0].destination, "www.server-to-contact.com");
        assert_eq!(doc.bindings[0].certificate.as_deref(), Some("Mx2"));
        let ws2 = doc.services.iter().find(|s| s.name == "Module.WebService2").unwrap();
        assert!(ws2.no_cert && ws2.certificate.is_none());
    }

    #[test]
    fn m2ee_yaml_takes_usages_as_text_or_mapping() {
        let text = "mxruntime:\n  ClientCertificates: /a/Mx1.pfx\n  ClientCertificatePasswords: pw\n  ClientCertificateUsages: '{\"x.example\": \"/a/Mx1.pfx\"}'\n";
        let s = MendixSettings::from_m2ee("m2ee.yaml", text).unwrap();
        assert_eq!(s.usages.unwrap()["x.example"], "/a/Mx1.pfx");
        let text =
            "mxruntime:\n  ClientCertificates: /a/Mx1.pfx\n  ClientCertificateUsages:\n    x.example: /a/Mx1.pfx\n";
        let s = MendixSettings::from_m2ee("m2ee.yaml", text).unwrap();
        assert_eq!(s.usages.unwrap()["x.example"], "/a/Mx1.pfx");
    }

    #[test]
    fn names_come_from_the_file_names() {
        assert_eq!(cert_name(r"D:\App\Mx1.pfx"), "Mx1");
        assert_eq!(cert_name("/srv/my cert.p12"), "my-cert");
        assert!(looks_like_service("Module.WebService1"));
        assert!(!looks_like_service("www.server-to-contact.com"));
        assert!(!looks_like_service("example.com"));
    }
}
