//! Whole-store copies (`certgate store copy`), between any two backends: what a store holds,
//! read as plain records, and one change that upserts a set of them into another store
//! (`ChangeTx::write_copy` in `core.rs`).
//! Private keys move sealed, exactly as stored; the decisions (what to write, the master key
//! check, verification) are made in `control::copy`.

use super::model::{
    AnchorRecord, AppRecord, AuditRecord, BindingRecord, CertificateRecord, Change, GrantRecord, ServiceRecord,
    TokenRecord,
};
use super::{Store, StoreError};

/// Everything a store holds.
#[derive(Debug, Default)]
pub struct Dump {
    pub revision: i64,
    /// Every `meta` row (the master key check among them).
    pub meta: Vec<(String, String)>,
    pub certificates: Vec<CertificateRecord>,
    pub anchors: Vec<AnchorRecord>,
    pub bindings: Vec<BindingRecord>,
    pub services: Vec<ServiceRecord>,
    pub tokens: Vec<TokenRecord>,
    pub apps: Vec<AppRecord>,
    pub grants: Vec<GrantRecord>,
    /// Oldest first.
    pub audit: Vec<AuditRecord>,
}

/// What to write into the destination, in one transaction.
#[derive(Debug, Default)]
pub struct CopyPlan {
    /// Inserted only where the destination has no row with that key.
    pub meta: Vec<(String, String)>,
    /// Upserted (inserted, or replacing the row with the same name / key).
    pub certificates: Vec<CertificateRecord>,
    pub anchors: Vec<AnchorRecord>,
    pub bindings: Vec<BindingRecord>,
    pub services: Vec<ServiceRecord>,
    pub tokens: Vec<TokenRecord>,
    pub apps: Vec<AppRecord>,
    pub grants: Vec<GrantRecord>,
    /// Appended as they are (new sequence numbers, original time, actor and revision).
    pub audit: Vec<AuditRecord>,
    /// The destination's revision becomes `max(its own, this) + 1`, so it never goes back and
    /// the copied audit rows stay below it.
    pub revision_floor: i64,
}

impl CopyPlan {
    /// Rows to write (meta included).
    pub fn len(&self) -> usize {
        self.meta.len()
            + self.certificates.len()
            + self.anchors.len()
            + self.bindings.len()
            + self.services.len()
            + self.tokens.len()
            + self.apps.len()
            + self.grants.len()
            + self.audit.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Store {
    /// Read the whole store. Each part is read on its own (the route snapshot in one
    /// transaction): copy from a store nobody changes meanwhile, or run the copy again.
    pub async fn dump(&self) -> Result<Dump, StoreError> {
        let snap = self.snapshot().await?;
        let meta = self.meta_all().await?;
        let mut audit = self.audit(i64::MAX).await?;
        audit.reverse();
        Ok(Dump {
            revision: snap.revision,
            meta,
            certificates: snap.certificates,
            anchors: snap.anchors,
            bindings: snap.bindings,
            services: snap.services,
            tokens: self.tokens().await?,
            apps: snap.apps,
            grants: snap.grants,
            audit,
        })
    }

    /// Write `plan` in one transaction with its own audit row (`change`); returns the new
    /// revision. An empty plan writes nothing (the revision stays).
    pub async fn apply_copy(&self, plan: &CopyPlan, change: &Change) -> Result<Option<i64>, StoreError> {
        if plan.is_empty() {
            return Ok(None);
        }
        let mut tx = self.begin_change().await?;
        tx.write_copy(plan).await?;
        tx.commit(std::slice::from_ref(change)).await.map(Some)
    }
}
