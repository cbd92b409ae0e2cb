//! The store: one interface, one backend per URL scheme. Every change is one transaction that
//! also appends its audit rows and bumps the store revision once.
//!
//! Backends: `sqlite://PATH` (embedded default, WAL) and `postgres://...` (several gateway
//! nodes on one database; changes are announced with LISTEN/NOTIFY). Both are the one SQL core
//! ([`SqlStore`], in `core.rs`) over a small [`Dialect`] each (`sqlite.rs`, `postgres.rs`),
//! behind the same [`Store`] enum, with the same semantics and errors.
//!
//! Writes: [`Store::begin_change`] gives a [`StoreTx`]; any number of operations on it, then
//! one [`StoreTx::commit`]. The single-operation methods (`insert_certificate(rec, change)`
//! ...) are that with one operation. Referential integrity is the database's: a binding's
//! trust anchors are rows of `binding_anchors` with foreign keys, so a binding to a missing
//! anchor, or the removal of an anchor still named, is refused even when the two race.

mod copy;
mod core;
mod model;
mod postgres;
pub mod seal;
mod sqlite;

pub use copy::{CopyPlan, Dump};
pub use core::{anchor_names, ChangeTx, Dialect, SqlStore};
pub use model::{
    split_der, AlertRecord, AnchorRecord, AppRecord, AuditRecord, BindingRecord, CertificateRecord, Change,
    GrantRecord, PartnerRecord, RequestRecord, RouteDelta, ServiceRecord, Snapshot, TokenRecord,
};
pub use postgres::PgDialect;
pub use seal::{MasterKey, SealError};
pub use sqlite::SqliteDialect;

/// The store on one SQLite file.
pub type SqliteStore = SqlStore<SqliteDialect>;
/// The store on a PostgreSQL database shared by several nodes.
pub type PgStore = SqlStore<PgDialect>;

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

/// Where the store lives, parsed from `--store` / `CERTGATE_STORE`. `Debug` shows the
/// redacted form (a PostgreSQL URL may carry a password).
#[derive(Clone, PartialEq, Eq)]
pub enum StoreUrl {
    Sqlite(PathBuf),
    Postgres(String),
}

impl std::fmt::Debug for StoreUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StoreUrl({})", self.redacted())
    }
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

    /// For messages: never shows a password in a postgres URL (user info, or a `password=`
    /// query parameter). The user info ends at the *last* '@': a password typed with '/', '?',
    /// '#' or '@' unencoded must not leak through a split at the first of them (found by the
    /// fuzz target `parsers`); an '@' in the query only hides a little more.
    pub fn redacted(&self) -> String {
        match self {
            StoreUrl::Sqlite(p) => format!("sqlite://{}", p.display()),
            StoreUrl::Postgres(u) => {
                let (scheme, rest) = u.split_once("://").unwrap_or(("postgres", u.as_str()));
                let (mut out, rest) = match rest.rfind('@') {
                    Some(at) => (format!("{scheme}://***@"), &rest[at + 1..]),
                    None => (format!("{scheme}://"), rest),
                };
                let (base, query) = match rest.split_once('?') {
                    Some((b, q)) => (b, Some(q)),
                    None => (rest, None),
                };
                out.push_str(base);
                if let Some(q) = query {
                    let params: Vec<String> = q
                        .split('&')
                        .map(|kv| match kv.split_once('=') {
                            Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
                            _ => kv.to_string(),
                        })
                        .collect();
                    out.push('?');
                    out.push_str(&params.join("&"));
                }
                out
            }
        }
    }

    /// A store URL as text, redacted for `Debug` and messages (unparsable text is not shown).
    pub fn redact_text(text: &str) -> String {
        StoreUrl::parse(text).map(|u| u.redacted()).unwrap_or_else(|_| "<not a store URL>".into())
    }
}

/// The store in use. An enum rather than a trait object: two backends, known at compile time,
/// each the same [`SqlStore`] core over its own [`Dialect`].
pub enum Store {
    Sqlite(SqliteStore),
    Postgres(PgStore),
}

/// Call the same method on either backend. PostgreSQL errors that mean "the server cannot be
/// reached" become [`StoreError::Unavailable`] naming the server.
macro_rules! dispatch {
    ($self:ident, $s:ident => $call:expr) => {
        match $self {
            Store::Sqlite($s) => $call.map_err(|e| $s.explain(e)),
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

/// One change in progress on either backend (see [`Store::begin_change`]): any number of
/// operations, then [`StoreTx::commit`] with the changes to audit. Dropped without commit, it
/// rolls back and nothing was written.
pub enum StoreTx<'s> {
    Sqlite(ChangeTx<'s, SqliteDialect>),
    Postgres(ChangeTx<'s, PgDialect>),
}

/// The operations of a change, each forwarded to the backend's [`ChangeTx`].
macro_rules! tx_operations {
    ($($(#[$doc:meta])* $name:ident($($arg:ident: $ty:ty),*) -> $out:ty;)*) => {
        impl StoreTx<'_> {
            $(
                $(#[$doc])*
                pub async fn $name(&mut self, $($arg: $ty),*) -> Result<$out, StoreError> {
                    match self {
                        StoreTx::Sqlite(t) => { let r = t.$name($($arg),*).await; r.map_err(|e| t.explain(e)) }
                        StoreTx::Postgres(t) => { let r = t.$name($($arg),*).await; r.map_err(|e| t.explain(e)) }
                    }
                }
            )*
        }
    };
}

tx_operations! {
    insert_certificate(rec: &CertificateRecord) -> ();
    /// Rotation: new material, same name (the owner stays unless a new one is given).
    replace_certificate(rec: &CertificateRecord) -> ();
    /// Bindings that present it block the removal unless `drop_bindings`; grants go with it.
    delete_certificate(name: &str, drop_bindings: bool) -> ();
    insert_anchor(rec: &AnchorRecord) -> ();
    /// New certificates for an existing anchor; bindings that name it keep it.
    replace_anchor(rec: &AnchorRecord) -> ();
    /// Set or clear the owner of an existing certificate.
    set_certificate_owner(name: &str, owner: Option<&str>) -> ();
    /// Refused with [`StoreError::StillBound`] while a binding names it.
    delete_anchor(name: &str) -> ();
    /// Create or replace; `true` when it replaced one. Its certificate and anchors must exist.
    put_binding(rec: &BindingRecord) -> bool;
    delete_binding(destination: &str) -> ();
    /// Create or replace, with its own `service:NAME` binding or none; `true` when replaced.
    put_service(svc: &ServiceRecord, binding: Option<&BindingRecord>) -> bool;
    delete_service(name: &str) -> ();
    insert_token(rec: &TokenRecord) -> ();
    delete_token(name: &str) -> ();
    insert_app(rec: &AppRecord) -> ();
    delete_app(name: &str) -> ();
    /// `true` when the grant is new.
    put_grant(rec: &GrantRecord) -> bool;
    delete_grant(app: &str, certificate: &str) -> ();
    write_copy(plan: &CopyPlan) -> ();
    /// Owner and contact of a certificate or anchor (`None` keeps, `Some("")` clears).
    set_owner(kind: &str, name: &str, owner: Option<&str>, contact: Option<&str>) -> ();
    put_request(rec: &RequestRecord) -> ();
    /// `true` when a pending request went.
    delete_request(name: &str) -> bool;
    /// `true` when this change may send the alert (see [`ChangeTx::claim_alert`]).
    claim_alert(rec: &AlertRecord, stale_before: i64) -> bool;
    /// `Ok(sent_at)` or `Err((error, retry_at))`.
    finish_alert(item: &str, threshold: i64, outcome: Result<i64, (String, i64)>) -> ();
}

impl StoreTx<'_> {
    /// The revision this change will commit (the store's revision before it, plus one).
    pub fn revision(&self) -> i64 {
        match self {
            StoreTx::Sqlite(t) => t.revision(),
            StoreTx::Postgres(t) => t.revision(),
        }
    }

    /// One audit row per change, all at this change's revision; one revision bump, announced;
    /// one commit. Returns the revision.
    pub async fn commit(self, changes: &[Change]) -> Result<i64, StoreError> {
        match self {
            StoreTx::Sqlite(t) => t.commit(changes).await,
            StoreTx::Postgres(t) => t.commit(changes).await,
        }
    }
}

/// One operation in a change of its own, audited as `change`.
macro_rules! single {
    ($self:ident, $change:ident, $tx:ident => $op:expr) => {{
        let mut $tx = $self.begin_change().await?;
        let out = $op.await?;
        $tx.commit(std::slice::from_ref($change)).await.map(|revision| (revision, out))
    }};
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

    /// Open a change: it holds the store's write lock until committed or dropped, so checks
    /// made in it see every earlier change.
    pub async fn begin_change(&self) -> Result<StoreTx<'_>, StoreError> {
        match self {
            Store::Sqlite(s) => s.begin_change().await.map(StoreTx::Sqlite).map_err(|e| s.explain(e)),
            Store::Postgres(s) => s.begin_change().await.map(StoreTx::Postgres).map_err(|e| s.explain(e)),
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
        single!(self, change, tx => tx.insert_certificate(rec)).map(|r| r.0)
    }
    pub async fn replace_certificate(&self, rec: &CertificateRecord, change: &Change) -> Result<i64, StoreError> {
        single!(self, change, tx => tx.replace_certificate(rec)).map(|r| r.0)
    }
    pub async fn delete_certificate(
        &self,
        name: &str,
        drop_bindings: bool,
        change: &Change,
    ) -> Result<i64, StoreError> {
        single!(self, change, tx => tx.delete_certificate(name, drop_bindings)).map(|r| r.0)
    }
    pub async fn bindings(&self) -> Result<Vec<BindingRecord>, StoreError> {
        dispatch!(self, s => s.bindings().await)
    }
    pub async fn put_binding(&self, rec: &BindingRecord, change: &Change) -> Result<(i64, bool), StoreError> {
        single!(self, change, tx => tx.put_binding(rec))
    }
    pub async fn delete_binding(&self, destination: &str, change: &Change) -> Result<i64, StoreError> {
        single!(self, change, tx => tx.delete_binding(destination)).map(|r| r.0)
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
        single!(self, change, tx => tx.put_service(svc, binding))
    }
    pub async fn delete_service(&self, name: &str, change: &Change) -> Result<i64, StoreError> {
        single!(self, change, tx => tx.delete_service(name)).map(|r| r.0)
    }
    pub async fn anchors(&self) -> Result<Vec<AnchorRecord>, StoreError> {
        dispatch!(self, s => s.anchors().await)
    }
    pub async fn anchor(&self, name: &str) -> Result<Option<AnchorRecord>, StoreError> {
        dispatch!(self, s => s.anchor(name).await)
    }
    pub async fn insert_anchor(&self, rec: &AnchorRecord, change: &Change) -> Result<i64, StoreError> {
        single!(self, change, tx => tx.insert_anchor(rec)).map(|r| r.0)
    }
    pub async fn delete_anchor(&self, name: &str, change: &Change) -> Result<i64, StoreError> {
        single!(self, change, tx => tx.delete_anchor(name)).map(|r| r.0)
    }
    pub async fn tokens(&self) -> Result<Vec<TokenRecord>, StoreError> {
        dispatch!(self, s => s.tokens().await)
    }
    pub async fn insert_token(&self, rec: &TokenRecord, change: &Change) -> Result<i64, StoreError> {
        single!(self, change, tx => tx.insert_token(rec)).map(|r| r.0)
    }
    pub async fn delete_token(&self, name: &str, change: &Change) -> Result<i64, StoreError> {
        single!(self, change, tx => tx.delete_token(name)).map(|r| r.0)
    }
    pub async fn apps(&self) -> Result<Vec<AppRecord>, StoreError> {
        dispatch!(self, s => s.apps().await)
    }
    pub async fn grants(&self) -> Result<Vec<GrantRecord>, StoreError> {
        dispatch!(self, s => s.grants().await)
    }
    pub async fn insert_app(&self, rec: &AppRecord, change: &Change) -> Result<i64, StoreError> {
        single!(self, change, tx => tx.insert_app(rec)).map(|r| r.0)
    }
    pub async fn delete_app(&self, name: &str, change: &Change) -> Result<i64, StoreError> {
        single!(self, change, tx => tx.delete_app(name)).map(|r| r.0)
    }
    pub async fn put_grant(&self, rec: &GrantRecord, change: &Change) -> Result<(i64, bool), StoreError> {
        single!(self, change, tx => tx.put_grant(rec))
    }
    pub async fn delete_grant(&self, app: &str, certificate: &str, change: &Change) -> Result<i64, StoreError> {
        single!(self, change, tx => tx.delete_grant(app, certificate)).map(|r| r.0)
    }
    pub async fn requests(&self) -> Result<Vec<RequestRecord>, StoreError> {
        dispatch!(self, s => s.requests().await)
    }
    pub async fn partner_certificates(&self) -> Result<Vec<PartnerRecord>, StoreError> {
        dispatch!(self, s => s.partner_certificates().await)
    }
    pub async fn record_partner(&self, rec: &PartnerRecord) -> Result<(), StoreError> {
        dispatch!(self, s => s.record_partner(rec).await)
    }
    pub async fn alerts(&self) -> Result<Vec<AlertRecord>, StoreError> {
        dispatch!(self, s => s.alerts().await)
    }
    pub async fn snapshot(&self) -> Result<Snapshot, StoreError> {
        dispatch!(self, s => s.snapshot().await)
    }
    /// What changed in route inputs after revision `since` (at most `limit` keys), or `None`
    /// when only a whole read is safe.
    pub async fn route_changes(&self, since: i64, limit: usize) -> Result<Option<RouteDelta>, StoreError> {
        dispatch!(self, s => s.route_changes(since, limit).await)
    }
    pub async fn audit(&self, limit: i64) -> Result<Vec<AuditRecord>, StoreError> {
        dispatch!(self, s => s.audit(limit).await)
    }
    /// Every `meta` row, ordered by key.
    pub async fn meta_all(&self) -> Result<Vec<(String, String)>, StoreError> {
        dispatch!(self, s => s.meta_all().await)
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

#[cfg(test)]
mod tests {
    use super::StoreUrl;

    /// Found by fuzz/fuzz_targets/parsers.rs: a '?' in the password (unencoded) ended the part
    /// that was redacted, and what came before it was shown.
    #[test]
    fn redaction_hides_a_password_holding_url_delimiters() {
        for (url, password) in [
            ("postgres://certgate:n\0\0<?PW>PW@12Ϣ0.0t@12Ϣ0.0te", "n\0\0<?PW>PW@12Ϣ0.0t"),
            ("postgres://certgate:pa?ss@db.example/certgate", "pa?ss"),
            ("postgres://certgate:pa/ss@db.example/certgate", "pa/ss"),
            ("postgres://certgate:pa#ss@db.example/certgate?sslmode=require", "pa#ss"),
            ("postgresql://certgate:p@ss@db.example/certgate", "p@ss"),
        ] {
            let shown = StoreUrl::parse(url).unwrap().redacted();
            assert!(!shown.contains(password), "{shown} shows {password}");
            assert!(!shown.contains("pa") && !shown.contains("n\0"), "{shown}");
        }
        let shown = StoreUrl::parse("postgres://u:S3CRET@h:5432/d?sslmode=disable&password=S3CRET").unwrap().redacted();
        assert_eq!(shown, "postgres://***@h:5432/d?sslmode=disable&password=***");
        assert_eq!(StoreUrl::parse("postgres://h/d").unwrap().redacted(), "postgres://h/d");
    }
}
