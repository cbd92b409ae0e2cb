//! What the CLI, the API and the console show: serialisable views built from stored records.
//! Never holds key material.

use serde::Serialize;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::pki::assess::{self, Warning};
use crate::pki::{CertFacts, ChainPath, Origin, PathEnd};

pub fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

pub fn rfc3339_unix(ts: i64) -> String {
    rfc3339(OffsetDateTime::from_unix_timestamp(ts).unwrap_or(OffsetDateTime::UNIX_EPOCH))
}

#[derive(Clone, Debug, Serialize)]
pub struct ChainEntry {
    pub subject: String,
    pub issuer: String,
    pub id: String,
    pub self_signed: bool,
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

#[derive(Clone, Debug, Serialize)]
pub struct CertificateView {
    pub name: String,
    pub id: String,
    pub subject: String,
    pub issuer: String,
    pub serial: String,
    pub not_before: String,
    pub not_after: String,
    pub days_left: i64,
    pub key_type: String,
    pub key_bits: usize,
    pub client_auth_eku: Option<bool>,
    pub alt_names: Vec<String>,
    pub chain: Vec<ChainEntry>,
    pub warnings: Vec<&'static str>,
    pub warning_details: Vec<Warning>,
    pub owner: Option<String>,
    pub contact: Option<String>,
    pub bindings: Vec<String>,
    /// A renewal request waiting for its issued certificate (the current one keeps serving).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pending_request: Option<PendingView>,
    pub created_at: String,
    pub updated_at: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
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
            name: p.name.to_string(),
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

#[derive(Clone, Debug, Serialize)]
pub struct PathLink {
    pub subject: String,
    pub issuer: String,
    pub id: String,
    pub self_signed: bool,
    /// Where certgate found this CA certificate.
    pub source: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct KeyCheck {
    pub present: bool,
    pub matches: bool,
    pub detail: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct CheckReport {
    pub name: String,
    pub id: String,
    pub subject: String,
    pub key: KeyCheck,
    /// Leaf first, then each issuer.
    pub path: Vec<PathLink>,
    /// `root`, or the name of the issuer that is missing.
    pub path_end: String,
    pub missing_issuer: Option<String>,
    pub signatures: String,
    pub not_before: String,
    pub not_after: String,
    pub days_left: i64,
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

#[derive(Clone, Debug, Serialize)]
pub struct AnchorCertView {
    pub subject: String,
    pub issuer: String,
    pub id: String,
    pub not_after: String,
    pub self_signed: bool,
    pub is_ca: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct AnchorView {
    pub name: String,
    pub certificates: Vec<AnchorCertView>,
    pub warnings: Vec<String>,
    pub owner: Option<String>,
    pub contact: Option<String>,
    pub created_at: String,
}

/// A pending certificate request: the key is made and sealed, the issued certificate not yet in.
#[derive(Clone, Debug, Serialize)]
pub struct PendingView {
    pub name: String,
    pub subject: String,
    pub key_type: String,
    pub created_at: String,
    pub age_seconds: i64,
    /// Whether a certificate under this name serves meanwhile (a renewal).
    pub renewal: bool,
    pub owner: Option<String>,
    pub contact: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct AuditView {
    pub seq: i64,
    pub at: String,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub result: String,
    pub detail: String,
    pub revision: i64,
}
