//! What the store keeps. Plain data: the `pki` module gives it meaning.

use std::fmt;

use crate::model::{AppName, CertificateId, CertificateName, Pin, TrustPolicy};

/// A client identity as stored: public parts in the clear, the private key sealed.
#[derive(Clone)]
pub struct CertificateRecord {
    pub name: CertificateName,
    /// SHA-256 of the leaf DER, lowercase hex.
    pub id: CertificateId,
    pub leaf_der: Vec<u8>,
    /// The CA certificates that came with it, the leaf's issuer first.
    pub chain_der: Vec<Vec<u8>>,
    /// The private key sealed under the master key, the certificate id as associated data.
    pub sealed_key: Vec<u8>,
    pub key_format: String,
    pub owner: Option<String>,
    /// Where expiry alerts go: e-mail addresses and/or `webhook:NAME`, comma-separated.
    pub contact: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl fmt::Debug for CertificateRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertificateRecord")
            .field("name", &self.name)
            .field("id", &self.id)
            .field("chain", &self.chain_der.len())
            .field("sealed_key", &"<sealed>")
            .finish()
    }
}

/// A named bundle of CA certificates trusted for verifying partners.
#[derive(Clone, Debug)]
pub struct AnchorRecord {
    pub name: String,
    pub certs_der: Vec<Vec<u8>>,
    pub owner: Option<String>,
    pub contact: Option<String>,
    pub created_at: i64,
}

/// A key made inside certgate (sealed at once) and its CSR, waiting for the issued certificate.
#[derive(Clone)]
pub struct RequestRecord {
    pub name: CertificateName,
    pub subject: String,
    /// `ec-p256`, `ec-p384`, `rsa-2048`, ...
    pub key_type: String,
    /// Sealed under the master key with [`RequestRecord::seal_context`] as associated data.
    pub sealed_key: Vec<u8>,
    pub key_format: String,
    pub csr_der: Vec<u8>,
    pub owner: Option<String>,
    pub contact: Option<String>,
    pub created_at: i64,
}

impl RequestRecord {
    /// The associated data a pending key is sealed with (there is no certificate id yet).
    pub fn seal_context(name: &str, created_at: i64) -> Vec<u8> {
        format!("certificate-request:{name}:{created_at}").into_bytes()
    }
}

impl fmt::Debug for RequestRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestRecord")
            .field("name", &self.name)
            .field("subject", &self.subject)
            .field("key_type", &self.key_type)
            .field("sealed_key", &"<sealed>")
            .finish()
    }
}

/// The partner leaf the gateway verified last for a destination.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartnerRecord {
    pub destination: String,
    pub subject: String,
    pub issuer: String,
    /// Unix seconds.
    pub not_after: i64,
    /// `sha256/BASE64` of the SPKI.
    pub pin: String,
    /// How the partner was trusted: `pin`, `self-signed-anchor`, `anchor` or `public`.
    pub trust: String,
    pub seen_at: i64,
}

/// One expiry alert: an item (certificate, anchor or partner certificate, by id) crossing a
/// threshold; claimed in a change transaction before it is sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AlertRecord {
    /// `certificate:NAME:ID`, `anchor:NAME:ID` or `partner:DESTINATION:ID`.
    pub item: String,
    /// Days before expiry (0 = on expiry).
    pub threshold: i64,
    pub kind: String,
    pub name: String,
    /// `sending`, `sent` or `failed`.
    pub state: String,
    pub attempts: i64,
    pub next_attempt_at: i64,
    pub last_error: Option<String>,
    /// The node that claimed it last.
    pub node: String,
    pub claimed_at: i64,
    pub sent_at: Option<i64>,
}

/// Destination -> certificate (or none), with the partner's trust policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BindingRecord {
    /// Canonical destination key: `host`, `host:port`, `*.domain` or `service:NAME`.
    pub destination: String,
    /// Certificate name (the first candidate); None = send no certificate.
    pub certificate: Option<CertificateName>,
    /// Further candidates in order of preference (`bind DEST A,B,C`: `B`, `C`); empty when the
    /// binding names one certificate or none. Stored in `binding_certificates`.
    pub alternates: Vec<CertificateName>,
    /// How the partner is verified (stored as its text: `public`, `private`, `ca:NAME[,NAME]`).
    pub trust: TrustPolicy,
    pub sni: Option<String>,
    /// SPKI pins (stored as `sha256/BASE64` texts).
    pub pins: Vec<Pin>,
    /// The partner may renegotiate (TLS 1.2) or ask for the certificate after the handshake
    /// (TLS 1.3 post-handshake auth): the route uses the OpenSSL engine.
    pub allow_renegotiation: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

impl BindingRecord {
    /// No certificate, public trust, no options: what applies where nothing is bound.
    pub fn unbound(destination: String) -> Self {
        BindingRecord {
            destination,
            certificate: None,
            alternates: Vec::new(),
            trust: TrustPolicy::Public,
            sni: None,
            pins: Vec::new(),
            allow_renegotiation: false,
            created_at: 0,
            updated_at: 0,
        }
    }

    /// Every certificate the binding names, in order of preference (empty for no-cert).
    pub fn candidates(&self) -> impl Iterator<Item = &str> {
        self.certificate.iter().chain(self.alternates.iter()).map(CertificateName::as_str)
    }

    /// The same candidates, as names.
    pub fn candidates_named(&self) -> impl Iterator<Item = &CertificateName> {
        self.certificate.iter().chain(self.alternates.iter())
    }

    /// The `certgate bind DESTINATION ...` arguments after the destination that recreate this
    /// binding: `CERT[,CERT]...` or `--no-cert`, then `--trust`, `--sni` and `--pin` when set (for
    /// remedies that change one option and keep the rest). `--allow-renegotiation` is left to the
    /// caller.
    pub fn bind_args(&self) -> String {
        let names: Vec<&str> = self.candidates().collect();
        let mut args = vec![if names.is_empty() { "--no-cert".to_string() } else { names.join(",") }];
        if self.trust != TrustPolicy::Public {
            args.push(format!("--trust {}", self.trust));
        }
        if let Some(sni) = &self.sni {
            args.push(format!("--sni {sni}"));
        }
        for pin in &self.pins {
            args.push(format!("--pin {pin}"));
        }
        args.join(" ")
    }
}

/// A named service: NAME -> upstream base URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceRecord {
    pub name: String,
    pub url: String,
    pub created_at: i64,
    pub updated_at: i64,
}

/// The whole store at one revision.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub revision: i64,
    pub certificates: Vec<CertificateRecord>,
    pub anchors: Vec<AnchorRecord>,
    pub bindings: Vec<BindingRecord>,
    pub services: Vec<ServiceRecord>,
    pub apps: Vec<AppRecord>,
    pub grants: Vec<GrantRecord>,
}

/// What changed in route inputs after a revision (see `Store::route_changes`): each changed key
/// with its row now, `None` when it was deleted.
#[derive(Clone, Debug, Default)]
pub struct RouteDelta {
    /// The revision it brings a reader to.
    pub revision: i64,
    pub bindings: Vec<(String, Option<BindingRecord>)>,
    pub certificates: Vec<(CertificateName, Option<CertificateRecord>)>,
    /// Certificates named by the changed bindings and grants that did not change themselves (a
    /// binding may start to present a certificate nothing presented before).
    pub named: Vec<CertificateRecord>,
    /// Changed trust anchors, by name.
    pub anchors: Vec<String>,
    pub services: Vec<(String, Option<ServiceRecord>)>,
    /// Changed apps with their grants now.
    pub apps: Vec<(AppName, Option<AppGrants>)>,
}

/// An app and the certificates it is granted.
pub type AppGrants = (AppRecord, Vec<GrantRecord>);

impl RouteDelta {
    pub fn is_empty(&self) -> bool {
        self.bindings.is_empty()
            && self.certificates.is_empty()
            && self.anchors.is_empty()
            && self.services.is_empty()
            && self.apps.is_empty()
    }
}

/// An admin API / console token: name, role, and the SHA-256 of the secret (never the secret).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenRecord {
    pub name: String,
    /// `viewer`, `operator` or `admin`.
    pub role: String,
    pub hash: String,
    pub created_at: i64,
}

/// A calling application with its proxy credential (stored as SHA-256, never in the clear).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppRecord {
    pub name: AppName,
    pub hash: String,
    pub created_at: i64,
}

/// An app may present a certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GrantRecord {
    pub app: AppName,
    pub certificate: CertificateName,
    pub created_at: i64,
}

/// Who changes what: written to the audit log in the same transaction as the change.
#[derive(Clone, Debug)]
pub struct Change {
    pub actor: String,
    pub action: String,
    pub target: String,
    pub detail: String,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct AuditRecord {
    pub seq: i64,
    /// Unix seconds.
    pub at: i64,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub result: String,
    pub detail: String,
    pub revision: i64,
}

/// Concatenate DER certificates (DER is self-delimiting).
pub fn join_der(certs: &[Vec<u8>]) -> Vec<u8> {
    certs.concat()
}

/// Split concatenated DER certificates. Damaged data yields what could be read.
pub fn split_der(mut data: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    while data.len() >= 2 {
        let first = data[1] as usize;
        let (len, header) = if first < 0x80 {
            (first, 2)
        } else {
            let n = first & 0x7f;
            if n == 0 || n > 4 || data.len() < 2 + n {
                break;
            }
            (data[2..2 + n].iter().fold(0usize, |acc, b| (acc << 8) | *b as usize), 2 + n)
        };
        let end = header + len;
        if end > data.len() {
            break;
        }
        out.push(data[..end].to_vec());
        data = &data[end..];
    }
    out
}
