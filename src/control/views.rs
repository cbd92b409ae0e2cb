//! What the CLI, the API and the console show: serialisable views built from stored records.
//! Never holds key material.

use serde::Serialize;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::model::{CertificateId, CertificateName};
use crate::pki::assess::{self, Warning};
use crate::pki::{CertFacts, ChainPath, Origin, PathEnd};

pub fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

pub fn rfc3339_unix(ts: i64) -> String {
    rfc3339(OffsetDateTime::from_unix_timestamp(ts).unwrap_or(OffsetDateTime::UNIX_EPOCH))
}

/// A CA certificate that came with a client certificate.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct ChainEntry {
    pub subject: String,
    pub issuer: String,
    pub id: CertificateId,
    pub self_signed: bool,
    #[schema(format = DateTime)]
    pub not_after: String,
}

impl ChainEntry {
    pub fn of(f: &CertFacts) -> Self {
        ChainEntry {
            subject: f.subject.clone(),
            issuer: f.issuer.clone(),
            id: f.id.clone(),
            self_signed: f.self_signed,
            not_after: rfc3339(f.not_after),
        }
    }
}

/// A stored certificate (public facts only; never the key).
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
#[schema(as = Certificate)]
pub struct CertificateView {
    pub name: CertificateName,
    /// SHA-256 of the leaf DER, lowercase hex.
    pub id: CertificateId,
    pub subject: String,
    pub issuer: String,
    pub serial: String,
    /// RFC 3339, UTC.
    #[schema(format = DateTime)]
    pub not_before: String,
    /// RFC 3339, UTC.
    #[schema(format = DateTime)]
    pub not_after: String,
    pub days_left: i64,
    /// rsa, ec-p256, ec-p384 or ed25519.
    pub key_type: String,
    pub key_bits: usize,
    /// null: the certificate has no EKU extension.
    #[schema(required = true)]
    pub client_auth_eku: Option<bool>,
    pub alt_names: Vec<String>,
    pub chain: Vec<ChainEntry>,
    /// Warning codes: expired, not-yet-valid, expires-soon, no-client-auth-eku, incomplete-chain,
    /// weak-key, sha1-signature; after an import or rotation also already-stored.
    #[schema(value_type = Vec<String>)]
    pub warnings: Vec<&'static str>,
    pub warning_details: Vec<Warning>,
    #[schema(required = true)]
    pub owner: Option<String>,
    /// Where expiry alerts go: e-mail addresses and/or webhook:NAME.
    #[schema(required = true)]
    pub contact: Option<String>,
    /// Destinations bound to this certificate.
    pub bindings: Vec<String>,
    /// A renewal request waiting for its issued certificate (the current one keeps serving).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pending_request: Option<PendingView>,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub updated_at: String,
    /// Only after an import or rotation, when there is something to say.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schema(required = false)]
    pub notes: Vec<String>,
}

pub struct CertificateParts<'a> {
    pub name: &'a str,
    pub leaf: &'a CertFacts,
    pub chain: &'a [CertFacts],
    pub path: &'a ChainPath,
    pub owner: Option<String>,
    pub contact: Option<String>,
    pub bindings: Vec<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub now: OffsetDateTime,
}

impl CertificateView {
    pub fn build(p: CertificateParts<'_>) -> Self {
        let warnings = assess::assess(p.leaf, p.path, p.now);
        CertificateView {
            name: CertificateName::stored(p.name.to_string()),
            id: p.leaf.id.clone(),
            subject: p.leaf.subject.clone(),
            issuer: p.leaf.issuer.clone(),
            serial: p.leaf.serial.clone(),
            not_before: rfc3339(p.leaf.not_before),
            not_after: rfc3339(p.leaf.not_after),
            days_left: assess::days_left(p.leaf, p.now),
            key_type: p.leaf.key.type_name().to_string(),
            key_bits: p.leaf.key.bits(),
            client_auth_eku: p.leaf.client_auth_eku,
            alt_names: p.leaf.alt_names.clone(),
            chain: p.chain.iter().map(ChainEntry::of).collect(),
            warnings: warnings.iter().map(|w| w.code).collect(),
            warning_details: warnings,
            owner: p.owner,
            contact: p.contact,
            bindings: p.bindings,
            pending_request: None,
            created_at: rfc3339_unix(p.created_at),
            updated_at: rfc3339_unix(p.updated_at),
            notes: Vec::new(),
        }
    }
}

impl CertificateView {
    /// The import/rotate answer's warning `already-stored` when the same certificate (same id) is
    /// stored under other names too. Only in that answer: the import still succeeds.
    pub fn warn_already_stored(&mut self, names: &[String]) {
        if names.is_empty() {
            return;
        }
        let quoted: Vec<String> = names.iter().map(|n| format!("'{n}'")).collect();
        self.warnings.push(ALREADY_STORED);
        self.warning_details.push(Warning {
            code: ALREADY_STORED,
            message: format!(
                "this certificate (id {}) is already stored as {}: both names now hold the same identity",
                self.id,
                quoted.join(" and ")
            ),
            remedy: format!(
                "if it was imported twice by mistake, remove '{}' or the other name, so that only one identity needs rotating",
                self.name
            ),
        });
    }
}

/// The warning code of [`CertificateView::warn_already_stored`].
pub const ALREADY_STORED: &str = "already-stored";

/// One certificate on the path from the leaf to a root.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct PathLink {
    pub subject: String,
    pub issuer: String,
    pub id: CertificateId,
    pub self_signed: bool,
    /// Where certgate found this CA certificate.
    pub source: String,
}

/// Whether the private key is there and matches the certificate.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct KeyCheck {
    pub present: bool,
    pub matches: bool,
    pub detail: String,
}

/// `cert check` for one certificate: key, path to a root, validity, purpose, and the problems.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct CheckReport {
    pub name: CertificateName,
    pub id: CertificateId,
    pub subject: String,
    pub key: KeyCheck,
    /// Leaf first, then each issuer.
    pub path: Vec<PathLink>,
    /// `root`, or the name of the issuer that is missing.
    pub path_end: String,
    #[schema(required = true)]
    pub missing_issuer: Option<String>,
    pub signatures: String,
    #[schema(format = DateTime)]
    pub not_before: String,
    #[schema(format = DateTime)]
    pub not_after: String,
    pub days_left: i64,
    #[schema(required = true)]
    pub client_auth_eku: Option<bool>,
    pub problems: Vec<Warning>,
    pub ok: bool,
}

impl CheckReport {
    pub fn path_links(leaf: &CertFacts, path: &ChainPath) -> (Vec<PathLink>, String, Option<String>) {
        let mut links = vec![PathLink {
            subject: leaf.subject.clone(),
            issuer: leaf.issuer.clone(),
            id: leaf.id.clone(),
            self_signed: leaf.self_signed,
            source: "the certificate".into(),
        }];
        for l in &path.links {
            links.push(PathLink {
                subject: l.facts.subject.clone(),
                issuer: l.facts.issuer.clone(),
                id: l.facts.id.clone(),
                self_signed: l.facts.self_signed,
                source: match &l.origin {
                    Origin::Own => "came with the certificate".into(),
                    other => other.describe(),
                },
            });
        }
        let (end, missing) = match &path.end {
            PathEnd::Root => ("root".to_string(), None),
            PathEnd::MissingIssuer(n) => (format!("missing issuer {n}"), Some(n.clone())),
            PathEnd::TooLong => ("the path is longer than 8 certificates".to_string(), None),
        };
        (links, end, missing)
    }
}

/// One CA certificate of a trust anchor.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
#[schema(as = AnchorCertificate)]
pub struct AnchorCertView {
    pub subject: String,
    pub issuer: String,
    pub id: CertificateId,
    #[schema(format = DateTime)]
    pub not_after: String,
    pub self_signed: bool,
    pub is_ca: bool,
}

/// A named trust anchor: CA certificates trusted for verifying partner servers.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
#[schema(as = TrustAnchor)]
pub struct AnchorView {
    pub name: String,
    pub certificates: Vec<AnchorCertView>,
    pub warnings: Vec<String>,
    #[schema(required = true)]
    pub owner: Option<String>,
    #[schema(required = true)]
    pub contact: Option<String>,
    #[schema(format = DateTime)]
    pub created_at: String,
}

/// A pending certificate request: the key is made and sealed, the issued certificate not yet in.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct PendingView {
    pub name: CertificateName,
    pub subject: String,
    pub key_type: String,
    #[schema(format = DateTime)]
    pub created_at: String,
    pub age_seconds: i64,
    /// Whether a certificate under this name serves meanwhile (a renewal).
    pub renewal: bool,
    #[schema(required = true)]
    pub owner: Option<String>,
    #[schema(required = true)]
    pub contact: Option<String>,
}

/// One row of the audit log.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
#[schema(as = AuditEntry)]
pub struct AuditView {
    pub seq: i64,
    #[schema(format = DateTime)]
    pub at: String,
    /// api:TOKEN-NAME for API changes, cli:USER for the CLI.
    pub actor: String,
    pub action: String,
    pub target: String,
    pub result: String,
    pub detail: String,
    pub revision: i64,
}
