//! Whole-store copies (`certgate store copy`), between any two backends: what a store holds,
//! read as plain records, and one transaction that upserts a set of them into another store.
//! Private keys move sealed, exactly as stored; the decisions (what to write, the master key
//! check, verification) are made in `control::copy`.

use sqlx::Row;

use super::model::{
    join_der, AnchorRecord, AppRecord, AuditRecord, BindingRecord, CertificateRecord, Change, GrantRecord,
    ServiceRecord, TokenRecord,
};
use super::{now_unix, postgres, Store, StoreError};

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
        let pair = |k: String, v: String| (k, v);
        let meta: Vec<(String, String)> = match self {
            Store::Sqlite(s) => sqlx::query("SELECT key, value FROM meta ORDER BY key")
                .fetch_all(s.pool())
                .await?
                .iter()
                .map(|r| pair(r.get(0), r.get(1)))
                .collect(),
            Store::Postgres(s) => sqlx::query("SELECT key, value FROM meta ORDER BY key")
                .fetch_all(s.pool())
                .await
                .map_err(|e| s.explain(e.into()))?
                .iter()
                .map(|r| pair(r.get(0), r.get(1)))
                .collect(),
        };
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
        match self {
            Store::Sqlite(s) => sqlite_apply(s.pool(), plan, change).await.map(Some),
            Store::Postgres(s) => postgres_apply(s.pool(), plan, change).await.map(Some).map_err(|e| s.explain(e)),
        }
    }
}

/// The same statements for both backends (sqlx binds SQLite's `$N` parameters by number too).
macro_rules! write_plan {
    ($tx:expr, $plan:expr, $change:expr, $revision:expr) => {{
        let tx = $tx;
        let plan = $plan;
        for (k, v) in &plan.meta {
            sqlx::query("INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING")
                .bind(k)
                .bind(v)
                .execute(&mut **tx)
                .await?;
        }
        for c in &plan.certificates {
            sqlx::query("INSERT INTO certificates (name, id, leaf_der, chain_der, sealed_key, key_format, owner, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
                 ON CONFLICT (name) DO UPDATE SET id = excluded.id, leaf_der = excluded.leaf_der, chain_der = excluded.chain_der, sealed_key = excluded.sealed_key, \
                 key_format = excluded.key_format, owner = excluded.owner, created_at = excluded.created_at, updated_at = excluded.updated_at")
                .bind(&c.name)
                .bind(&c.id)
                .bind(&c.leaf_der)
                .bind(join_der(&c.chain_der))
                .bind(&c.sealed_key)
                .bind(&c.key_format)
                .bind(&c.owner)
                .bind(c.created_at)
                .bind(c.updated_at)
                .execute(&mut **tx)
                .await?;
        }
        for a in &plan.anchors {
            sqlx::query("INSERT INTO trust_anchors (name, certs_der, created_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (name) DO UPDATE SET certs_der = excluded.certs_der, created_at = excluded.created_at")
                .bind(&a.name)
                .bind(join_der(&a.certs_der))
                .bind(a.created_at)
                .execute(&mut **tx)
                .await?;
        }
        for b in &plan.bindings {
            sqlx::query("INSERT INTO bindings (destination, certificate, trust, sni, pins, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7) \
                 ON CONFLICT (destination) DO UPDATE SET certificate = excluded.certificate, trust = excluded.trust, sni = excluded.sni, pins = excluded.pins, \
                 created_at = excluded.created_at, updated_at = excluded.updated_at")
                .bind(&b.destination)
                .bind(&b.certificate)
                .bind(&b.trust)
                .bind(&b.sni)
                .bind(serde_json::to_string(&b.pins).unwrap_or_else(|_| "[]".into()))
                .bind(b.created_at)
                .bind(b.updated_at)
                .execute(&mut **tx)
                .await?;
        }
        for s in &plan.services {
            sqlx::query("INSERT INTO services (name, url, created_at, updated_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (name) DO UPDATE SET url = excluded.url, created_at = excluded.created_at, updated_at = excluded.updated_at")
                .bind(&s.name)
                .bind(&s.url)
                .bind(s.created_at)
                .bind(s.updated_at)
                .execute(&mut **tx)
                .await?;
        }
        for t in &plan.tokens {
            sqlx::query("INSERT INTO tokens (name, role, hash, created_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (name) DO UPDATE SET role = excluded.role, hash = excluded.hash, created_at = excluded.created_at")
                .bind(&t.name)
                .bind(&t.role)
                .bind(&t.hash)
                .bind(t.created_at)
                .execute(&mut **tx)
                .await?;
        }
        for a in &plan.apps {
            sqlx::query("INSERT INTO apps (name, hash, created_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (name) DO UPDATE SET hash = excluded.hash, created_at = excluded.created_at")
                .bind(&a.name)
                .bind(&a.hash)
                .bind(a.created_at)
                .execute(&mut **tx)
                .await?;
        }
        for g in &plan.grants {
            sqlx::query("INSERT INTO grants (app, certificate, created_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (app, certificate) DO UPDATE SET created_at = excluded.created_at")
                .bind(&g.app)
                .bind(&g.certificate)
                .bind(g.created_at)
                .execute(&mut **tx)
                .await?;
        }
        let own = AuditRecord {
            seq: 0,
            at: now_unix(),
            actor: $change.actor.clone(),
            action: $change.action.clone(),
            target: $change.target.clone(),
            result: "ok".into(),
            detail: $change.detail.clone(),
            revision: $revision,
        };
        for row in plan.audit.iter().chain(std::iter::once(&own)) {
            sqlx::query("INSERT INTO audit (at, actor, action, target, result, detail, revision) VALUES ($1, $2, $3, $4, $5, $6, $7)")
                .bind(row.at)
                .bind(&row.actor)
                .bind(&row.action)
                .bind(&row.target)
                .bind(&row.result)
                .bind(&row.detail)
                .bind(row.revision)
                .execute(&mut **tx)
                .await?;
        }
    }};
}

async fn sqlite_apply(pool: &sqlx::SqlitePool, plan: &CopyPlan, change: &Change) -> Result<i64, StoreError> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let revision: i64 = sqlx::query("UPDATE revision SET value = MAX(value, ?) + 1 WHERE id = 1 RETURNING value")
        .bind(plan.revision_floor)
        .fetch_one(&mut *tx)
        .await?
        .get(0);
    write_plan!(&mut tx, plan, change, revision);
    tx.commit().await?;
    Ok(revision)
}

async fn postgres_apply(pool: &sqlx::PgPool, plan: &CopyPlan, change: &Change) -> Result<i64, StoreError> {
    let mut tx = pool.begin().await?;
    let revision: i64 = sqlx::query("UPDATE revision SET value = GREATEST(value, $1) + 1 WHERE id = 1 RETURNING value")
        .bind(plan.revision_floor)
        .fetch_one(&mut *tx)
        .await?
        .get(0);
    write_plan!(&mut tx, plan, change, revision);
    postgres::notify(&mut tx, revision).await?;
    tx.commit().await?;
    Ok(revision)
}
