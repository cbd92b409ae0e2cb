//! The store: one interface, one backend per URL scheme. Every change is one transaction that
//! also appends its audit row and bumps the store revision.
//!
//! Backends: `sqlite://PATH` (embedded default, WAL) and `postgres://...` (several gateway
//! nodes on one database; changes are announced with LISTEN/NOTIFY). Both behind the same
//! [`Store`] enum, with the same semantics and errors.

mod copy;
mod model;
mod postgres;
pub mod seal;
mod sqlite;

pub use copy::{CopyPlan, Dump};
pub use model::{
    split_der, AnchorRecord, AppRecord, AuditRecord, BindingRecord, CertificateRecord, Change, GrantRecord,
    ServiceRecord, Snapshot, TokenRecord,
};
pub use postgres::PgStore;
pub use seal::{MasterKey, SealError};
pub use sqlite::SqliteStore;

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("still used by {}", .0.join(", "))]
    StillBound(Vec<String>),
    #[error("the store is unavailable: {0}")]
    Unavailable(String),
    #[error("store error: {0}")]
    Database(#[from] sqlx::Error),
}

/// Where the store lives, parsed from `--store` / `CERTGATE_STORE`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreUrl {
    Sqlite(PathBuf),
    Postgres(String),
}

impl StoreUrl {
    pub fn parse(url: &str) -> Result<Self, String> {
        if let Some(path) = url.strip_prefix("sqlite://") {
            if path.is_empty() {
                return Err("a sqlite:// store URL needs a path, e.g. sqlite:///var/lib/certgate/certgate.db".into());
            }
            Ok(StoreUrl::Sqlite(PathBuf::from(path)))
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(StoreUrl::Postgres(url.to_string()))
        } else {
            Err(format!("the store URL '{url}' is neither sqlite://PATH nor postgres://..."))
        }
    }

    /// For messages: never shows a password in a postgres URL.
    pub fn redacted(&self) -> String {
        match self {
            StoreUrl::Sqlite(p) => format!("sqlite://{}", p.display()),
            StoreUrl::Postgres(u) => match (u.find("://"), u.rfind('@')) {
                (Some(s), Some(at)) if at > s => format!("{}://***@{}", &u[..s], &u[at + 1..]),
                _ => u.clone(),
            },
        }
    }
}

/// The store in use. An enum rather than a trait object: two backends, known at compile time.
pub enum Store {
    Sqlite(SqliteStore),
    Postgres(PgStore),
}

/// Call the same method on either backend. PostgreSQL errors that mean "the server cannot be
/// reached" become [`StoreError::Unavailable`] naming the server.
macro_rules! dispatch {
    ($self:ident, $s:ident => $call:expr) => {
        match $self {
            Store::Sqlite($s) => $call,
            Store::Postgres($s) => $call.map_err(|e| $s.explain(e)),
        }
    };
}

/// What the change announcements of a store say (PostgreSQL only; see
/// [`Store::revision_events`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreEvent {
    /// A change committed this revision (`-1` when the payload could not be read).
    Changed(i64),
    /// The listening connection is (again) open: changes made while it was away were not
    /// announced, so the revision must be read.
    Listening,
    /// The listening connection was lost or could not be opened; it is retried every second.
    Lost(String),
}

impl Store {
    pub async fn open(url: &StoreUrl) -> Result<Self, StoreError> {
        match url {
            StoreUrl::Sqlite(path) => Ok(Store::Sqlite(SqliteStore::open(path).await?)),
            StoreUrl::Postgres(url) => Ok(Store::Postgres(PgStore::open(url).await?)),
        }
    }

    /// Whether other processes announce their changes (PostgreSQL LISTEN/NOTIFY).
    pub fn is_shared(&self) -> bool {
        matches!(self, Store::Postgres(_))
    }

    /// Change announcements, for the gateway to reload at once instead of at its next poll.
    /// `None` for SQLite, whose writers are on the same machine and are found by polling.
    pub fn revision_events(&self) -> Option<tokio::sync::mpsc::Receiver<StoreEvent>> {
        match self {
            Store::Sqlite(_) => None,
            Store::Postgres(s) => Some(s.revision_events()),
        }
    }

    pub async fn revision(&self) -> Result<i64, StoreError> {
        dispatch!(self, s => s.revision().await)
    }
    pub async fn meta(&self, key: &str) -> Result<Option<String>, StoreError> {
        dispatch!(self, s => s.meta(key).await)
    }
    pub async fn meta_init(&self, key: &str, value: &str) -> Result<String, StoreError> {
        dispatch!(self, s => s.meta_init(key, value).await)
    }
    pub async fn certificates(&self) -> Result<Vec<CertificateRecord>, StoreError> {
        dispatch!(self, s => s.certificates().await)
    }
    pub async fn certificate(&self, name: &str) -> Result<Option<CertificateRecord>, StoreError> {
        dispatch!(self, s => s.certificate(name).await)
    }
    pub async fn insert_certificate(&self, rec: &CertificateRecord, change: &Change) -> Result<i64, StoreError> {
        dispatch!(self, s => s.insert_certificate(rec, change).await)
    }
    pub async fn replace_certificate(&self, rec: &CertificateRecord, change: &Change) -> Result<i64, StoreError> {
        dispatch!(self, s => s.replace_certificate(rec, change).await)
    }
    pub async fn delete_certificate(
        &self,
        name: &str,
        drop_bindings: bool,
        change: &Change,
    ) -> Result<i64, StoreError> {
        dispatch!(self, s => s.delete_certificate(name, drop_bindings, change).await)
    }
    pub async fn bindings(&self) -> Result<Vec<BindingRecord>, StoreError> {
        dispatch!(self, s => s.bindings().await)
    }
    pub async fn put_binding(&self, rec: &BindingRecord, change: &Change) -> Result<(i64, bool), StoreError> {
        dispatch!(self, s => s.put_binding(rec, change).await)
    }
    pub async fn delete_binding(&self, destination: &str, change: &Change) -> Result<i64, StoreError> {
        dispatch!(self, s => s.delete_binding(destination, change).await)
    }
    pub async fn services(&self) -> Result<Vec<ServiceRecord>, StoreError> {
        dispatch!(self, s => s.services().await)
    }
    pub async fn put_service(
        &self,
        svc: &ServiceRecord,
        binding: Option<&BindingRecord>,
        change: &Change,
    ) -> Result<(i64, bool), StoreError> {
        dispatch!(self, s => s.put_service(svc, binding, change).await)
    }
    pub async fn delete_service(&self, name: &str, change: &Change) -> Result<i64, StoreError> {
        dispatch!(self, s => s.delete_service(name, change).await)
    }
    pub async fn anchors(&self) -> Result<Vec<AnchorRecord>, StoreError> {
        dispatch!(self, s => s.anchors().await)
    }
    pub async fn anchor(&self, name: &str) -> Result<Option<AnchorRecord>, StoreError> {
        dispatch!(self, s => s.anchor(name).await)
    }
    pub async fn insert_anchor(&self, rec: &AnchorRecord, change: &Change) -> Result<i64, StoreError> {
        dispatch!(self, s => s.insert_anchor(rec, change).await)
    }
    pub async fn delete_anchor(&self, name: &str, change: &Change) -> Result<i64, StoreError> {
        dispatch!(self, s => s.delete_anchor(name, change).await)
    }
    pub async fn tokens(&self) -> Result<Vec<TokenRecord>, StoreError> {
        dispatch!(self, s => s.tokens().await)
    }
    pub async fn insert_token(&self, rec: &TokenRecord, change: &Change) -> Result<i64, StoreError> {
        dispatch!(self, s => s.insert_token(rec, change).await)
    }
    pub async fn delete_token(&self, name: &str, change: &Change) -> Result<i64, StoreError> {
        dispatch!(self, s => s.delete_token(name, change).await)
    }
    pub async fn apps(&self) -> Result<Vec<AppRecord>, StoreError> {
        dispatch!(self, s => s.apps().await)
    }
    pub async fn grants(&self) -> Result<Vec<GrantRecord>, StoreError> {
        dispatch!(self, s => s.grants().await)
    }
    pub async fn insert_app(&self, rec: &AppRecord, change: &Change) -> Result<i64, StoreError> {
        dispatch!(self, s => s.insert_app(rec, change).await)
    }
    pub async fn delete_app(&self, name: &str, change: &Change) -> Result<i64, StoreError> {
        dispatch!(self, s => s.delete_app(name, change).await)
    }
    pub async fn put_grant(&self, rec: &GrantRecord, change: &Change) -> Result<(i64, bool), StoreError> {
        dispatch!(self, s => s.put_grant(rec, change).await)
    }
    pub async fn delete_grant(&self, app: &str, certificate: &str, change: &Change) -> Result<i64, StoreError> {
        dispatch!(self, s => s.delete_grant(app, certificate, change).await)
    }
    pub async fn snapshot(&self) -> Result<Snapshot, StoreError> {
        dispatch!(self, s => s.snapshot().await)
    }
    pub async fn audit(&self, limit: i64) -> Result<Vec<AuditRecord>, StoreError> {
        dispatch!(self, s => s.audit(limit).await)
    }
    pub async fn close(&self) {
        match self {
            Store::Sqlite(s) => s.close().await,
            Store::Postgres(s) => s.close().await,
        }
    }
}

pub fn now_unix() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}
