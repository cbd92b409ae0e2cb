//! The one SQL store: every query, for SQLite and PostgreSQL alike, over sqlx's generic
//! database traits. What really differs between the two sits in a [`Dialect`]: how a change
//! transaction begins, how it is announced, how a snapshot is isolated, the schema steps, and
//! which failures mean "the server cannot be reached".
//!
//! Every write is an operation on a [`ChangeTx`]: [`SqlStore::begin_change`] opens the
//! transaction and bumps the revision first (on PostgreSQL that row lock is what serialises
//! writers; on SQLite `BEGIN IMMEDIATE` takes the write lock), the operations check and write
//! inside it, and [`ChangeTx::commit`] appends one audit row per [`Change`] (all with the same
//! revision), announces the revision and commits once. Dropping it without commit rolls back.
//!
//! Rows are read by column name. One SQL text serves both databases: sqlx binds SQLite's `$N`
//! parameters by number, as PostgreSQL does, and `RETURNING` tells whether a row was touched.

use std::future::Future;

use sqlx::error::ErrorKind;
use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Pool, Row, Transaction, Type};

use super::copy::CopyPlan;
use super::model::{
    join_der, split_der, AlertRecord, AnchorRecord, AppRecord, AuditRecord, BindingRecord, CertificateRecord, Change,
    GrantRecord, PartnerRecord, RequestRecord, RouteDelta, ServiceRecord, Snapshot, TokenRecord,
};
use super::{now_unix, StoreError};
use crate::model::{AppName, CertificateId, CertificateName, Pin, TrustPolicy};

/// What differs between the databases the store runs on.
pub trait Dialect: Send + Sync + 'static {
    type Db: Database;
    /// The statement that opens a change transaction.
    const BEGIN_CHANGE: &'static str;
    /// The statement that opens a read of the whole store at one revision.
    const BEGIN_SNAPSHOT: &'static str;
    /// The schema steps, applied in order.
    const MIGRATIONS: &'static [(i64, &'static str)];

    /// Keep other processes from migrating at the same time (inside the migration transaction,
    /// after [`Self::BEGIN_CHANGE`]; by default that statement is lock enough).
    fn lock_schema(_tx: &mut Transaction<'_, Self::Db>) -> impl Future<Output = Result<(), sqlx::Error>> + Send {
        async { Ok(()) }
    }

    /// Tell other nodes about a committed revision (delivered at commit). By default nobody
    /// listens: the other processes poll the revision.
    fn announce(
        _tx: &mut Transaction<'_, Self::Db>,
        _revision: i64,
    ) -> impl Future<Output = Result<(), sqlx::Error>> + Send {
        async { Ok(()) }
    }

    /// Turn failures that mean "the server cannot be reached" into a message naming it.
    fn explain(&self, e: StoreError) -> StoreError {
        e
    }
}

const CERTIFICATES: &str = "SELECT name, id, leaf_der, chain_der, sealed_key, key_format, owner, contact, created_at, updated_at FROM certificates ORDER BY name";
const ANCHORS: &str = "SELECT name, certs_der, owner, contact, created_at FROM trust_anchors ORDER BY name";
const BINDINGS: &str =
    "SELECT destination, certificate, trust, sni, pins, allow_renegotiation, created_at, updated_at FROM bindings ORDER BY destination";
const BINDING_CERTIFICATES: &str =
    "SELECT destination, position, certificate FROM binding_certificates ORDER BY destination, position";
const SERVICES: &str = "SELECT name, url, created_at, updated_at FROM services ORDER BY name";
const APPS: &str = "SELECT name, hash, created_at FROM apps ORDER BY name";
const GRANTS: &str = "SELECT app, certificate, created_at FROM grants ORDER BY app, certificate";

/// How many revisions of the route change log are kept (older ones are pruned, and a node
/// further behind reads the whole store), and how often pruning runs (every this many changes).
const ROUTE_LOG_KEEP: i64 = 10_000;
const ROUTE_LOG_PRUNE_EVERY: i64 = 500;

/// The schema steps of a backend, `migrations/BACKEND_NNN_WHAT.sql`: the same steps for each.
macro_rules! schema_steps {
    ($backend:literal) => {
        &[
            (1, include_str!(concat!("migrations/", $backend, "_001_initial.sql"))),
            (2, include_str!(concat!("migrations/", $backend, "_002_bindings.sql"))),
            (3, include_str!(concat!("migrations/", $backend, "_003_access.sql"))),
            (4, include_str!(concat!("migrations/", $backend, "_004_binding_anchors.sql"))),
            (5, include_str!(concat!("migrations/", $backend, "_005_expiry.sql"))),
            (6, include_str!(concat!("migrations/", $backend, "_006_binding_certificates.sql"))),
            (7, include_str!(concat!("migrations/", $backend, "_007_renegotiation.sql"))),
            (8, include_str!(concat!("migrations/", $backend, "_008_route_changes.sql"))),
        ]
    };
}
pub(super) use schema_steps;

/// The anchors a binding's trust policy names (none for `public` and `private`).
pub fn anchor_names(trust: &TrustPolicy) -> &[String] {
    match trust {
        TrustPolicy::Anchors(names) => names,
        _ => &[],
    }
}

pub struct SqlStore<D: Dialect> {
    pub(super) pool: Pool<D::Db>,
    pub(super) dialect: D,
}

/// One change in progress: operations, then [`ChangeTx::commit`]. Dropped, it rolls back.
pub struct ChangeTx<'s, D: Dialect> {
    store: &'s SqlStore<D>,
    tx: Transaction<'static, D::Db>,
    revision: i64,
}

impl<D: Dialect> SqlStore<D> {
    pub fn explain(&self, e: StoreError) -> StoreError {
        self.dialect.explain(e)
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

impl<'s, D: Dialect> ChangeTx<'s, D> {
    pub fn explain(&self, e: StoreError) -> StoreError {
        self.store.dialect.explain(e)
    }

    /// The revision this change will commit.
    pub fn revision(&self) -> i64 {
        self.revision
    }
}

/// A unique violation means the name is taken; anything else stays a database error.
fn taken(e: sqlx::Error, message: impl FnOnce() -> String) -> StoreError {
    refused(e, ErrorKind::UniqueViolation, || StoreError::Conflict(message()))
}

fn refused(e: sqlx::Error, kind: ErrorKind, then: impl FnOnce() -> StoreError) -> StoreError {
    match &e {
        sqlx::Error::Database(d) if d.kind() == kind => then(),
        _ => StoreError::Database(e),
    }
}

impl<D: Dialect> SqlStore<D>
where
    for<'c> &'c mut <D::Db as Database>::Connection: Executor<'c, Database = D::Db>,
    <D::Db as Database>::Arguments: IntoArguments<D::Db>,
    <D::Db as Database>::Row: Columns,
    for<'q> &'q str: Encode<'q, D::Db> + Type<D::Db>,
    for<'q> i64: Encode<'q, D::Db> + Type<D::Db>,
    for<'q> String: Encode<'q, D::Db> + Type<D::Db>,
    for<'q> Option<String>: Encode<'q, D::Db>,
    for<'q> Vec<u8>: Encode<'q, D::Db> + Type<D::Db>,
{
    /// Apply the schema steps the store lacks, in one transaction.
    pub(super) async fn migrate(conn: &mut <D::Db as Database>::Connection) -> Result<(), StoreError> {
        use sqlx::Connection;
        let mut tx = conn.begin_with(sqlx::AssertSqlSafe(D::BEGIN_CHANGE)).await?;
        D::lock_schema(&mut tx).await?;
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS schema_version (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)",
        )
        .execute(&mut *tx)
        .await?;
        let current: i64 = sqlx::query("SELECT COALESCE(MAX(version), 0) AS version FROM schema_version")
            .fetch_one(&mut *tx)
            .await?
            .int("version")?;
        let newest = D::MIGRATIONS.last().map(|m| m.0).unwrap_or(0);
        if current > newest {
            return Err(StoreError::Unavailable(format!(
                "the store has schema version {current}, newer than this certgate knows ({newest}): upgrade certgate"
            )));
        }
        for (version, sql) in D::MIGRATIONS.iter().filter(|(v, _)| *v > current) {
            sqlx::raw_sql(sqlx::AssertSqlSafe(*sql)).execute(&mut *tx).await?;
            sqlx::query("INSERT INTO schema_version (version, applied_at) VALUES ($1, $2)")
                .bind(*version)
                .bind(now_unix())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Open a change: the transaction holds the store's write lock and the revision is bumped.
    pub async fn begin_change(&self) -> Result<ChangeTx<'_, D>, StoreError> {
        let mut tx = self.pool.begin_with(sqlx::AssertSqlSafe(D::BEGIN_CHANGE)).await?;
        let revision: i64 = sqlx::query("UPDATE revision SET value = value + 1 WHERE id = 1 RETURNING value")
            .fetch_one(&mut *tx)
            .await?
            .int("value")?;
        if revision % ROUTE_LOG_PRUNE_EVERY == 0 && revision > ROUTE_LOG_KEEP {
            // The log is complete above the floor: move the floor up with what is pruned.
            let floor = revision - ROUTE_LOG_KEEP;
            sqlx::query("DELETE FROM route_changes WHERE revision <= $1").bind(floor).execute(&mut *tx).await?;
            sqlx::query("UPDATE route_changes_floor SET revision = $1 WHERE id = 1 AND revision < $1")
                .bind(floor)
                .execute(&mut *tx)
                .await?;
        }
        Ok(ChangeTx { store: self, tx, revision })
    }

    pub async fn revision(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query("SELECT value FROM revision WHERE id = 1").fetch_one(&self.pool).await?.int("value")?)
    }

    pub async fn meta(&self, key: &str) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT value FROM meta WHERE key = $1").bind(key).fetch_optional(&self.pool).await?;
        Ok(row.map(|r| r.text("value")).transpose()?)
    }

    /// Every meta row, ordered by key.
    pub async fn meta_all(&self) -> Result<Vec<(String, String)>, StoreError> {
        let rows = sqlx::query("SELECT key, value FROM meta ORDER BY key").fetch_all(&self.pool).await?;
        Ok(rows.iter().map(|r| Ok((r.text("key")?, r.text("value")?))).collect::<Result<_, sqlx::Error>>()?)
    }

    /// Set a meta value unless one is there; returns the value in force. Two processes opening
    /// an empty store at once agree: the second insert does nothing and both read the first.
    pub async fn meta_init(&self, key: &str, value: &str) -> Result<String, StoreError> {
        sqlx::query("INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING")
            .bind(key)
            .bind(value)
            .execute(&self.pool)
            .await?;
        Ok(self.meta(key).await?.unwrap_or_default())
    }

    /// Every row of a listing query, read with `read`.
    async fn rows<'e, T>(
        exec: impl Executor<'e, Database = D::Db>,
        sql: &'static str,
        read: fn(&<D::Db as Database>::Row) -> Result<T, sqlx::Error>,
    ) -> Result<Vec<T>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).fetch_all(exec).await?;
        Ok(rows.iter().map(read).collect::<Result<_, _>>()?)
    }

    pub async fn certificates(&self) -> Result<Vec<CertificateRecord>, StoreError> {
        Self::rows(&self.pool, CERTIFICATES, cert_from_row).await
    }

    pub async fn certificate(&self, name: &str) -> Result<Option<CertificateRecord>, StoreError> {
        let row = sqlx::query("SELECT name, id, leaf_der, chain_der, sealed_key, key_format, owner, contact, created_at, updated_at FROM certificates WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(cert_from_row).transpose()?)
    }

    pub async fn anchors(&self) -> Result<Vec<AnchorRecord>, StoreError> {
        Self::rows(&self.pool, ANCHORS, anchor_from_row).await
    }

    pub async fn anchor(&self, name: &str) -> Result<Option<AnchorRecord>, StoreError> {
        let row = sqlx::query("SELECT name, certs_der, owner, contact, created_at FROM trust_anchors WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(anchor_from_row).transpose()?)
    }

    pub async fn requests(&self) -> Result<Vec<RequestRecord>, StoreError> {
        Self::rows(&self.pool, "SELECT name, subject, key_type, sealed_key, key_format, csr_der, owner, contact, created_at FROM certificate_requests ORDER BY name", request_from_row).await
    }

    pub async fn partner_certificates(&self) -> Result<Vec<PartnerRecord>, StoreError> {
        Self::rows(&self.pool, "SELECT destination, subject, issuer, not_after, pin, trust, seen_at FROM partner_certificates ORDER BY destination", partner_from_row).await
    }

    /// Record what the gateway saw of a partner: an observation, not configuration, so it is
    /// written outside change transactions (no revision bump, no route reload).
    pub async fn record_partner(&self, rec: &PartnerRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO partner_certificates (destination, subject, issuer, not_after, pin, trust, seen_at) VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (destination) DO UPDATE SET subject = excluded.subject, issuer = excluded.issuer, not_after = excluded.not_after, \
             pin = excluded.pin, trust = excluded.trust, seen_at = excluded.seen_at",
        )
        .bind(&rec.destination)
        .bind(&rec.subject)
        .bind(&rec.issuer)
        .bind(rec.not_after)
        .bind(&rec.pin)
        .bind(&rec.trust)
        .bind(rec.seen_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn alerts(&self) -> Result<Vec<AlertRecord>, StoreError> {
        Self::rows(&self.pool, "SELECT item, threshold, kind, name, state, attempts, next_attempt_at, last_error, node, claimed_at, sent_at FROM alerts ORDER BY claimed_at DESC, item, threshold", alert_from_row).await
    }

    pub async fn bindings(&self) -> Result<Vec<BindingRecord>, StoreError> {
        let mut tx = self.pool.begin_with(sqlx::AssertSqlSafe(D::BEGIN_SNAPSHOT)).await?;
        let bindings = Self::rows(&mut *tx, BINDINGS, binding_from_row).await?;
        let alternates = Self::rows(&mut *tx, BINDING_CERTIFICATES, alternate_from_row).await?;
        tx.rollback().await?;
        Ok(with_alternates(bindings, alternates))
    }

    pub async fn services(&self) -> Result<Vec<ServiceRecord>, StoreError> {
        Self::rows(&self.pool, SERVICES, service_from_row).await
    }

    pub async fn tokens(&self) -> Result<Vec<TokenRecord>, StoreError> {
        Self::rows(&self.pool, "SELECT name, role, hash, created_at FROM tokens ORDER BY name", token_from_row).await
    }

    pub async fn apps(&self) -> Result<Vec<AppRecord>, StoreError> {
        Self::rows(&self.pool, APPS, app_from_row).await
    }

    pub async fn grants(&self) -> Result<Vec<GrantRecord>, StoreError> {
        Self::rows(&self.pool, GRANTS, grant_from_row).await
    }

    pub async fn audit(&self, limit: i64) -> Result<Vec<AuditRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT seq, at, actor, action, target, result, detail, revision FROM audit ORDER BY seq DESC LIMIT $1",
        )
        .bind(limit.max(0))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(audit_from_row).collect::<Result<_, _>>()?)
    }

    /// Everything the gateway needs, read in one transaction so it is one consistent revision
    /// even while others write.
    pub async fn snapshot(&self) -> Result<Snapshot, StoreError> {
        let mut tx = self.pool.begin_with(sqlx::AssertSqlSafe(D::BEGIN_SNAPSHOT)).await?;
        let revision =
            sqlx::query("SELECT value FROM revision WHERE id = 1").fetch_one(&mut *tx).await?.int("value")?;
        let snapshot = Snapshot {
            revision,
            certificates: Self::rows(&mut *tx, CERTIFICATES, cert_from_row).await?,
            anchors: Self::rows(&mut *tx, ANCHORS, anchor_from_row).await?,
            bindings: with_alternates(
                Self::rows(&mut *tx, BINDINGS, binding_from_row).await?,
                Self::rows(&mut *tx, BINDING_CERTIFICATES, alternate_from_row).await?,
            ),
            services: Self::rows(&mut *tx, SERVICES, service_from_row).await?,
            apps: Self::rows(&mut *tx, APPS, app_from_row).await?,
            grants: Self::rows(&mut *tx, GRANTS, grant_from_row).await?,
        };
        tx.rollback().await?;
        Ok(snapshot)
    }

    /// What changed in route inputs after revision `since`, read in one transaction: the keys
    /// the change log names, each with its row now (`None`: deleted), and the certificates
    /// that changed bindings and grants name. `None` when only a whole read is safe: `since` is
    /// below the log's floor (pruned, or before the log existed) or above the revision (another
    /// store), more than `limit` keys changed, or the log names a kind this code does not know.
    pub async fn route_changes(&self, since: i64, limit: usize) -> Result<Option<RouteDelta>, StoreError> {
        let mut tx = self.pool.begin_with(sqlx::AssertSqlSafe(D::BEGIN_SNAPSHOT)).await?;
        let revision =
            sqlx::query("SELECT value FROM revision WHERE id = 1").fetch_one(&mut *tx).await?.int("value")?;
        let mut delta = RouteDelta { revision, ..RouteDelta::default() };
        if revision == since {
            tx.rollback().await?;
            return Ok(Some(delta));
        }
        let floor = sqlx::query("SELECT revision FROM route_changes_floor WHERE id = 1")
            .fetch_one(&mut *tx)
            .await?
            .int("revision")?;
        if since < floor || since > revision {
            tx.rollback().await?;
            return Ok(None);
        }
        let keys = sqlx::query(
            "SELECT DISTINCT kind, key FROM route_changes WHERE revision >= $1 AND revision <= $2 ORDER BY kind, key LIMIT $3",
        )
        .bind(since)
        .bind(revision)
        .bind(limit as i64 + 1)
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(|r| Ok((r.text("kind")?, r.text("key")?)))
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
        if keys.len() > limit {
            tx.rollback().await?;
            return Ok(None);
        }
        // From the reader's own revision on: a key logged at it again is read again (harmless),
        // and a change that wrote before it bumped the revision (a hand edit) logged its keys
        // at the revision before its own.
        let mut named: Vec<String> = Vec::new();
        for (kind, key) in keys {
            match kind.as_str() {
                "binding" => {
                    let b = Self::one(&mut tx, BINDING, &key, binding_from_row).await?;
                    let b = match b {
                        Some(b) => {
                            let alternates =
                                Self::rows_for(&mut tx, BINDING_ALTERNATES, &key, alternate_from_row).await?;
                            let b = with_alternates(vec![b], alternates).pop();
                            named.extend(b.iter().flat_map(|b| b.candidates()).map(|c| c.to_string()));
                            b
                        }
                        None => None,
                    };
                    delta.bindings.push((key, b));
                }
                "certificate" => {
                    let c = Self::one(&mut tx, CERTIFICATE, &key, cert_from_row).await?;
                    delta.certificates.push((CertificateName::stored(key), c));
                }
                "anchor" => delta.anchors.push(key),
                "service" => {
                    let s = Self::one(&mut tx, SERVICE, &key, service_from_row).await?;
                    delta.services.push((key, s));
                }
                "app" => {
                    let a = match Self::one(&mut tx, APP, &key, app_from_row).await? {
                        Some(a) => {
                            let grants = Self::rows_for(&mut tx, APP_GRANTS, &key, grant_from_row).await?;
                            named.extend(grants.iter().map(|g| g.certificate.to_string()));
                            Some((a, grants))
                        }
                        None => None,
                    };
                    delta.apps.push((AppName::stored(key), a));
                }
                _ => {
                    tx.rollback().await?;
                    return Ok(None);
                }
            }
        }
        named.sort();
        named.dedup();
        for name in named {
            if delta.certificates.iter().any(|(n, _)| n.as_str() == name) {
                continue;
            }
            if let Some(c) = Self::one(&mut tx, CERTIFICATE, &name, cert_from_row).await? {
                delta.named.push(c);
            }
        }
        tx.rollback().await?;
        Ok(Some(delta))
    }

    /// The row a one-key query finds, read with `read`.
    async fn one<T>(
        tx: &mut Transaction<'static, D::Db>,
        sql: &'static str,
        key: &str,
        read: fn(&<D::Db as Database>::Row) -> Result<T, sqlx::Error>,
    ) -> Result<Option<T>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(key).fetch_optional(&mut **tx).await?;
        Ok(row.as_ref().map(read).transpose()?)
    }

    /// Every row a one-key query finds, read with `read`.
    async fn rows_for<T>(
        tx: &mut Transaction<'static, D::Db>,
        sql: &'static str,
        key: &str,
        read: fn(&<D::Db as Database>::Row) -> Result<T, sqlx::Error>,
    ) -> Result<Vec<T>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(key).fetch_all(&mut **tx).await?;
        Ok(rows.iter().map(read).collect::<Result<_, _>>()?)
    }
}

const BINDING: &str = "SELECT destination, certificate, trust, sni, pins, allow_renegotiation, created_at, updated_at FROM bindings WHERE destination = $1";
const BINDING_ALTERNATES: &str =
    "SELECT destination, position, certificate FROM binding_certificates WHERE destination = $1 ORDER BY position";
const CERTIFICATE: &str = "SELECT name, id, leaf_der, chain_der, sealed_key, key_format, owner, contact, created_at, updated_at FROM certificates WHERE name = $1";
const SERVICE: &str = "SELECT name, url, created_at, updated_at FROM services WHERE name = $1";
const APP: &str = "SELECT name, hash, created_at FROM apps WHERE name = $1";
const APP_GRANTS: &str = "SELECT app, certificate, created_at FROM grants WHERE app = $1 ORDER BY certificate";

impl<D: Dialect> ChangeTx<'_, D>
where
    for<'c> &'c mut <D::Db as Database>::Connection: Executor<'c, Database = D::Db>,
    <D::Db as Database>::Arguments: IntoArguments<D::Db>,
    <D::Db as Database>::Row: Columns,
    for<'q> &'q str: Encode<'q, D::Db> + Type<D::Db>,
    for<'q> i64: Encode<'q, D::Db> + Type<D::Db>,
    for<'q> String: Encode<'q, D::Db> + Type<D::Db>,
    for<'q> Option<String>: Encode<'q, D::Db>,
    for<'q> Vec<u8>: Encode<'q, D::Db> + Type<D::Db>,
{
    /// Write one audit row per change (all at this revision), announce, commit. Without any
    /// change nothing is written: the transaction rolls back and the revision stays.
    pub async fn commit(self, changes: &[Change]) -> Result<i64, StoreError> {
        let store = self.store;
        self.finish(changes).await.map_err(|e| store.explain(e))
    }

    async fn finish(mut self, changes: &[Change]) -> Result<i64, StoreError> {
        if changes.is_empty() {
            self.tx.rollback().await?;
            return Ok(self.revision - 1);
        }
        let at = now_unix();
        for change in changes {
            self.audit_row(&AuditRecord {
                seq: 0,
                at,
                actor: change.actor.clone(),
                action: change.action.clone(),
                target: change.target.clone(),
                result: "ok".into(),
                detail: change.detail.clone(),
                revision: self.revision,
            })
            .await?;
        }
        D::announce(&mut self.tx, self.revision).await?;
        self.tx.commit().await?;
        Ok(self.revision)
    }

    async fn audit_row(&mut self, row: &AuditRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO audit (at, actor, action, target, result, detail, revision) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(row.at)
        .bind(&row.actor)
        .bind(&row.action)
        .bind(&row.target)
        .bind(&row.result)
        .bind(&row.detail)
        .bind(row.revision)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    async fn exists(&mut self, sql: &'static str, key: &str) -> Result<bool, StoreError> {
        Ok(sqlx::query(sql).bind(key).fetch_optional(&mut *self.tx).await?.is_some())
    }

    /// Run a `DELETE ... RETURNING` with one key; whether a row went.
    async fn delete(&mut self, sql: &'static str, key: &str) -> Result<bool, StoreError> {
        Ok(!sqlx::query(sql).bind(key).fetch_all(&mut *self.tx).await?.is_empty())
    }

    pub async fn insert_certificate(&mut self, rec: &CertificateRecord) -> Result<(), StoreError> {
        let message = || format!("a certificate named '{}' exists already", rec.name);
        self.write_certificate(rec, "").await.map_err(|e| taken(e, message))
    }

    /// Insert a certificate row; `on_conflict` empty (a taken name fails) or an upsert clause.
    async fn write_certificate(
        &mut self,
        rec: &CertificateRecord,
        on_conflict: &'static str,
    ) -> Result<(), sqlx::Error> {
        let sql = format!("INSERT INTO certificates (name, id, leaf_der, chain_der, sealed_key, key_format, owner, contact, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $10, $8, $9) {on_conflict}");
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(rec.name.as_str())
            .bind(rec.id.as_str())
            .bind(&rec.leaf_der)
            .bind(join_der(&rec.chain_der))
            .bind(&rec.sealed_key)
            .bind(&rec.key_format)
            .bind(&rec.owner)
            .bind(rec.created_at)
            .bind(rec.updated_at)
            .bind(&rec.contact)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    /// Replace the material of an existing certificate (rotation); the name stays, and so does
    /// the owner unless a new one is given.
    pub async fn replace_certificate(&mut self, rec: &CertificateRecord) -> Result<(), StoreError> {
        let done = sqlx::query("UPDATE certificates SET id = $1, leaf_der = $2, chain_der = $3, sealed_key = $4, key_format = $5, owner = COALESCE($6, owner), contact = COALESCE($9, contact), updated_at = $7 WHERE name = $8 RETURNING name")
            .bind(rec.id.as_str())
            .bind(&rec.leaf_der)
            .bind(join_der(&rec.chain_der))
            .bind(&rec.sealed_key)
            .bind(&rec.key_format)
            .bind(&rec.owner)
            .bind(rec.updated_at)
            .bind(rec.name.as_str())
            .bind(&rec.contact)
            .fetch_optional(&mut *self.tx)
            .await?;
        match done {
            Some(_) => Ok(()),
            None => Err(StoreError::NotFound(format!("certificate '{}'", rec.name))),
        }
    }

    /// Remove a certificate and its grants. Bindings that name it (as any candidate) block the
    /// removal unless `drop_bindings`, which removes them too.
    pub async fn delete_certificate(&mut self, name: &str, drop_bindings: bool) -> Result<(), StoreError> {
        let bound: Vec<String> =
            sqlx::query("SELECT destination FROM bindings WHERE certificate = $1 UNION SELECT destination FROM binding_certificates WHERE certificate = $1 ORDER BY destination")
                .bind(name)
                .fetch_all(&mut *self.tx)
                .await?
                .iter()
                .map(|r| r.text("destination"))
                .collect::<Result<_, _>>()?;
        if !bound.is_empty() && !drop_bindings {
            return Err(StoreError::StillBound(bound));
        }
        self.delete(
            "DELETE FROM bindings WHERE certificate = $1 OR destination IN (SELECT destination FROM binding_certificates WHERE certificate = $1) RETURNING destination",
            name,
        )
        .await?;
        self.delete("DELETE FROM grants WHERE certificate = $1 RETURNING app", name).await?;
        let gone = sqlx::query("DELETE FROM certificates WHERE name = $1 RETURNING name")
            .bind(name)
            .fetch_optional(&mut *self.tx)
            .await
            .map_err(|e| refused(e, ErrorKind::ForeignKeyViolation, || StoreError::StillBound(Vec::new())))?;
        if gone.is_none() {
            return Err(StoreError::NotFound(format!("certificate '{name}'")));
        }
        Ok(())
    }

    pub async fn insert_anchor(&mut self, rec: &AnchorRecord) -> Result<(), StoreError> {
        let message = || format!("a trust anchor named '{}' exists already", rec.name);
        self.write_anchor(rec, "").await.map_err(|e| taken(e, message))?;
        Ok(())
    }

    /// Replace the certificates of an existing trust anchor; bindings that name it keep it.
    pub async fn replace_anchor(&mut self, rec: &AnchorRecord) -> Result<(), StoreError> {
        let done = sqlx::query("UPDATE trust_anchors SET certs_der = $1 WHERE name = $2 RETURNING name")
            .bind(join_der(&rec.certs_der))
            .bind(&rec.name)
            .fetch_optional(&mut *self.tx)
            .await?;
        match done {
            Some(_) => Ok(()),
            None => Err(StoreError::NotFound(format!("trust anchor '{}'", rec.name))),
        }
    }

    /// Set or clear the owner of an existing certificate (its material stays).
    pub async fn set_certificate_owner(&mut self, name: &str, owner: Option<&str>) -> Result<(), StoreError> {
        let done = sqlx::query("UPDATE certificates SET owner = $1, updated_at = $2 WHERE name = $3 RETURNING name")
            .bind(owner.map(str::to_string))
            .bind(now_unix())
            .bind(name)
            .fetch_optional(&mut *self.tx)
            .await?;
        match done {
            Some(_) => Ok(()),
            None => Err(StoreError::NotFound(format!("certificate '{name}'"))),
        }
    }

    /// Remove a trust anchor. The bindings that name it (`binding_anchors`) block the removal;
    /// the foreign key refuses it even if a binding was written after the check.
    pub async fn delete_anchor(&mut self, name: &str) -> Result<(), StoreError> {
        let users: Vec<String> =
            sqlx::query("SELECT destination FROM binding_anchors WHERE anchor = $1 ORDER BY destination")
                .bind(name)
                .fetch_all(&mut *self.tx)
                .await?
                .iter()
                .map(|r| r.text("destination"))
                .collect::<Result<_, _>>()?;
        if !users.is_empty() {
            return Err(StoreError::StillBound(users));
        }
        let gone = sqlx::query("DELETE FROM trust_anchors WHERE name = $1 RETURNING name")
            .bind(name)
            .fetch_optional(&mut *self.tx)
            .await
            .map_err(|e| refused(e, ErrorKind::ForeignKeyViolation, || StoreError::StillBound(Vec::new())))?;
        if gone.is_none() {
            return Err(StoreError::NotFound(format!("trust anchor '{name}'")));
        }
        Ok(())
    }

    /// Set the owner and contact of a certificate (`kind` "certificate") or trust anchor
    /// ("anchor"); `None` leaves a field as it is, `Some("")` clears it.
    pub async fn set_owner(
        &mut self,
        kind: &str,
        name: &str,
        owner: Option<&str>,
        contact: Option<&str>,
    ) -> Result<(), StoreError> {
        let (table, what) = match kind {
            "certificate" => ("certificates", "certificate"),
            _ => ("trust_anchors", "trust anchor"),
        };
        if !self
            .exists(
                if table == "certificates" {
                    "SELECT 1 FROM certificates WHERE name = $1"
                } else {
                    "SELECT 1 FROM trust_anchors WHERE name = $1"
                },
                name,
            )
            .await?
        {
            return Err(StoreError::NotFound(format!("{what} '{name}'")));
        }
        for (column, value) in [("owner", owner), ("contact", contact)] {
            if let Some(value) = value {
                let sql = format!("UPDATE {table} SET {column} = NULLIF($1, '') WHERE name = $2");
                sqlx::query(sqlx::AssertSqlSafe(sql)).bind(value).bind(name).execute(&mut *self.tx).await?;
            }
        }
        Ok(())
    }

    /// Store a pending request, replacing an earlier one under the same name.
    pub async fn put_request(&mut self, rec: &RequestRecord) -> Result<(), StoreError> {
        self.delete("DELETE FROM certificate_requests WHERE name = $1 RETURNING name", &rec.name).await?;
        sqlx::query("INSERT INTO certificate_requests (name, subject, key_type, sealed_key, key_format, csr_der, owner, contact, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)")
            .bind(rec.name.as_str())
            .bind(&rec.subject)
            .bind(&rec.key_type)
            .bind(&rec.sealed_key)
            .bind(&rec.key_format)
            .bind(&rec.csr_der)
            .bind(&rec.owner)
            .bind(&rec.contact)
            .bind(rec.created_at)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    /// Remove a pending request; `Ok(false)` when there was none.
    pub async fn delete_request(&mut self, name: &str) -> Result<bool, StoreError> {
        self.delete("DELETE FROM certificate_requests WHERE name = $1 RETURNING name", name).await
    }

    /// Claim an alert: `Ok(true)` when this transaction may send it (a new row, or a failed one
    /// whose retry time has come, or one left `sending` longer than `stale_before` by a node that
    /// died). Another node's claim blocks until it commits (the change lock), then is seen.
    pub async fn claim_alert(&mut self, rec: &AlertRecord, stale_before: i64) -> Result<bool, StoreError> {
        let inserted = sqlx::query(
            "INSERT INTO alerts (item, threshold, kind, name, state, attempts, next_attempt_at, last_error, node, claimed_at, sent_at) \
             VALUES ($1, $2, $3, $4, 'sending', 0, $5, NULL, $6, $7, NULL) ON CONFLICT (item, threshold) DO NOTHING RETURNING item",
        )
        .bind(&rec.item)
        .bind(rec.threshold)
        .bind(&rec.kind)
        .bind(&rec.name)
        .bind(rec.next_attempt_at)
        .bind(&rec.node)
        .bind(rec.claimed_at)
        .fetch_optional(&mut *self.tx)
        .await?;
        if inserted.is_some() {
            return Ok(true);
        }
        let retried = sqlx::query(
            "UPDATE alerts SET state = 'sending', node = $3, claimed_at = $4 WHERE item = $1 AND threshold = $2 \
             AND ((state = 'failed' AND next_attempt_at <= $4) OR (state = 'sending' AND claimed_at < $5)) RETURNING item",
        )
        .bind(&rec.item)
        .bind(rec.threshold)
        .bind(&rec.node)
        .bind(rec.claimed_at)
        .bind(stale_before)
        .fetch_optional(&mut *self.tx)
        .await?;
        Ok(retried.is_some())
    }

    /// Record how sending a claimed alert went.
    pub async fn finish_alert(
        &mut self,
        item: &str,
        threshold: i64,
        outcome: Result<i64, (String, i64)>,
    ) -> Result<(), StoreError> {
        let q = match &outcome {
            Ok(at) => sqlx::query(
                "UPDATE alerts SET state = 'sent', sent_at = $3, last_error = NULL, attempts = attempts + 1 WHERE item = $1 AND threshold = $2",
            )
            .bind(item)
            .bind(threshold)
            .bind(*at),
            Err((error, retry_at)) => sqlx::query(
                "UPDATE alerts SET state = 'failed', last_error = $3, next_attempt_at = $4, attempts = attempts + 1 WHERE item = $1 AND threshold = $2",
            )
            .bind(item)
            .bind(threshold)
            .bind(error.clone())
            .bind(*retry_at),
        };
        q.execute(&mut *self.tx).await?;
        Ok(())
    }

    /// Create or replace a binding; `Ok(replaced)`. Its certificate and the trust anchors its
    /// policy names must exist.
    pub async fn put_binding(&mut self, rec: &BindingRecord) -> Result<bool, StoreError> {
        self.check_candidates(rec).await?;
        // A named service's binding (`service:NAME`) exists only beside its service.
        if let Some(name) = rec.destination.strip_prefix("service:") {
            if !self.exists("SELECT 1 FROM services WHERE name = $1", name).await? {
                return Err(StoreError::NotFound(format!("service '{name}'")));
            }
        }
        self.upsert_binding(rec, false).await
    }

    /// Every certificate a binding names must be stored.
    async fn check_candidates(&mut self, rec: &BindingRecord) -> Result<(), StoreError> {
        for cert in rec.candidates() {
            if !self.exists("SELECT 1 FROM certificates WHERE name = $1", cert).await? {
                return Err(StoreError::NotFound(format!("certificate '{cert}'")));
            }
        }
        Ok(())
    }

    /// Write a binding and its anchor references. `copied`: the creation time is the record's
    /// (a copy), not kept from the row being replaced.
    async fn upsert_binding(&mut self, rec: &BindingRecord, copied: bool) -> Result<bool, StoreError> {
        const KEEP: &str = "INSERT INTO bindings (destination, certificate, trust, sni, pins, created_at, updated_at, allow_renegotiation) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (destination) DO UPDATE SET certificate = excluded.certificate, trust = excluded.trust, sni = excluded.sni, pins = excluded.pins, allow_renegotiation = excluded.allow_renegotiation, updated_at = excluded.updated_at";
        const COPY: &str = "INSERT INTO bindings (destination, certificate, trust, sni, pins, created_at, updated_at, allow_renegotiation) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (destination) DO UPDATE SET certificate = excluded.certificate, trust = excluded.trust, sni = excluded.sni, pins = excluded.pins, allow_renegotiation = excluded.allow_renegotiation, \
             created_at = excluded.created_at, updated_at = excluded.updated_at";
        let replaced = self.exists("SELECT 1 FROM bindings WHERE destination = $1", &rec.destination).await?;
        sqlx::query(if copied { COPY } else { KEEP })
            .bind(&rec.destination)
            .bind(rec.certificate.as_ref().map(|c| c.to_string()))
            .bind(rec.trust.to_string())
            .bind(&rec.sni)
            .bind(pins_text(&rec.pins))
            .bind(rec.created_at)
            .bind(rec.updated_at)
            .bind(i64::from(rec.allow_renegotiation))
            .execute(&mut *self.tx)
            .await?;
        self.delete("DELETE FROM binding_anchors WHERE destination = $1 RETURNING anchor", &rec.destination).await?;
        for anchor in anchor_names(&rec.trust) {
            sqlx::query("INSERT INTO binding_anchors (destination, anchor) VALUES ($1, $2)")
                .bind(&rec.destination)
                .bind(anchor)
                .execute(&mut *self.tx)
                .await
                .map_err(|e| {
                    refused(e, ErrorKind::ForeignKeyViolation, || {
                        StoreError::NotFound(format!("trust anchor '{anchor}'"))
                    })
                })?;
        }
        self.delete("DELETE FROM binding_certificates WHERE destination = $1 RETURNING certificate", &rec.destination)
            .await?;
        for (i, cert) in rec.alternates.iter().enumerate() {
            sqlx::query("INSERT INTO binding_certificates (destination, position, certificate) VALUES ($1, $2, $3)")
                .bind(&rec.destination)
                .bind(i as i64 + 1)
                .bind(cert.as_str())
                .execute(&mut *self.tx)
                .await
                .map_err(|e| {
                    refused(e, ErrorKind::ForeignKeyViolation, || StoreError::NotFound(format!("certificate '{cert}'")))
                })?;
        }
        Ok(replaced)
    }

    pub async fn delete_binding(&mut self, destination: &str) -> Result<(), StoreError> {
        if !self.delete("DELETE FROM bindings WHERE destination = $1 RETURNING destination", destination).await? {
            return Err(StoreError::NotFound(format!("binding for '{destination}'")));
        }
        Ok(())
    }

    /// Create or replace a named service, with its `service:NAME` binding when one is given
    /// (without one, the binding of the URL's host applies). `Ok(replaced)`.
    pub async fn put_service(
        &mut self,
        svc: &ServiceRecord,
        binding: Option<&BindingRecord>,
    ) -> Result<bool, StoreError> {
        if let Some(b) = binding {
            self.check_candidates(b).await?;
        }
        let replaced = self.exists("SELECT 1 FROM services WHERE name = $1", &svc.name).await?;
        self.upsert_service(svc, "updated_at = excluded.updated_at").await?;
        match binding {
            Some(b) => {
                self.upsert_binding(b, false).await?;
            }
            None => {
                let key = format!("service:{}", svc.name);
                self.delete("DELETE FROM bindings WHERE destination = $1 RETURNING destination", &key).await?;
            }
        }
        Ok(replaced)
    }

    async fn upsert_service(&mut self, svc: &ServiceRecord, times: &'static str) -> Result<(), StoreError> {
        let sql = format!(
            "INSERT INTO services (name, url, created_at, updated_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (name) DO UPDATE SET url = excluded.url, {times}"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(&svc.name)
            .bind(&svc.url)
            .bind(svc.created_at)
            .bind(svc.updated_at)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    pub async fn delete_service(&mut self, name: &str) -> Result<(), StoreError> {
        if !self.delete("DELETE FROM services WHERE name = $1 RETURNING name", name).await? {
            return Err(StoreError::NotFound(format!("service '{name}'")));
        }
        let key = format!("service:{name}");
        self.delete("DELETE FROM bindings WHERE destination = $1 RETURNING destination", &key).await?;
        Ok(())
    }

    pub async fn insert_token(&mut self, rec: &TokenRecord) -> Result<(), StoreError> {
        let message = || format!("a token named '{}' exists already", rec.name);
        self.write_token(rec, "").await.map_err(|e| taken(e, message))
    }

    pub async fn delete_token(&mut self, name: &str) -> Result<(), StoreError> {
        if !self.delete("DELETE FROM tokens WHERE name = $1 RETURNING name", name).await? {
            return Err(StoreError::NotFound(format!("token '{name}'")));
        }
        Ok(())
    }

    pub async fn insert_app(&mut self, rec: &AppRecord) -> Result<(), StoreError> {
        let message = || format!("an app named '{}' exists already", rec.name);
        self.write_app(rec, "").await.map_err(|e| taken(e, message))
    }

    /// Remove an app and its grants.
    pub async fn delete_app(&mut self, name: &str) -> Result<(), StoreError> {
        if !self.delete("DELETE FROM apps WHERE name = $1 RETURNING name", name).await? {
            return Err(StoreError::NotFound(format!("app '{name}'")));
        }
        self.delete("DELETE FROM grants WHERE app = $1 RETURNING app", name).await?;
        Ok(())
    }

    /// Grant an app the use of a certificate; both must exist. `Ok(new)`.
    pub async fn put_grant(&mut self, rec: &GrantRecord) -> Result<bool, StoreError> {
        if !self.exists("SELECT 1 FROM apps WHERE name = $1", &rec.app).await? {
            return Err(StoreError::NotFound(format!("app '{}'", rec.app)));
        }
        if !self.exists("SELECT 1 FROM certificates WHERE name = $1", &rec.certificate).await? {
            return Err(StoreError::NotFound(format!("certificate '{}'", rec.certificate)));
        }
        Ok(self.write_grant(rec, "ON CONFLICT (app, certificate) DO NOTHING").await? > 0)
    }

    pub async fn delete_grant(&mut self, app: &str, certificate: &str) -> Result<(), StoreError> {
        let gone = sqlx::query("DELETE FROM grants WHERE app = $1 AND certificate = $2 RETURNING app")
            .bind(app)
            .bind(certificate)
            .fetch_optional(&mut *self.tx)
            .await?;
        if gone.is_none() {
            return Err(StoreError::NotFound(format!("grant of certificate '{certificate}' to app '{app}'")));
        }
        Ok(())
    }

    async fn write_anchor(&mut self, rec: &AnchorRecord, on_conflict: &'static str) -> Result<(), sqlx::Error> {
        let sql = format!("INSERT INTO trust_anchors (name, certs_der, owner, contact, created_at) VALUES ($1, $2, $3, $4, $5) {on_conflict}");
        let q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(&rec.name).bind(join_der(&rec.certs_der));
        q.bind(&rec.owner).bind(&rec.contact).bind(rec.created_at).execute(&mut *self.tx).await?;
        Ok(())
    }

    async fn write_token(&mut self, rec: &TokenRecord, on_conflict: &'static str) -> Result<(), sqlx::Error> {
        let sql = format!("INSERT INTO tokens (name, role, hash, created_at) VALUES ($1, $2, $3, $4) {on_conflict}");
        let q =
            sqlx::query(sqlx::AssertSqlSafe(sql)).bind(&rec.name).bind(&rec.role).bind(&rec.hash).bind(rec.created_at);
        q.execute(&mut *self.tx).await?;
        Ok(())
    }

    async fn write_app(&mut self, rec: &AppRecord, on_conflict: &'static str) -> Result<(), sqlx::Error> {
        let sql = format!("INSERT INTO apps (name, hash, created_at) VALUES ($1, $2, $3) {on_conflict}");
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(rec.name.as_str())
            .bind(&rec.hash)
            .bind(rec.created_at)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    /// How many grant rows were written (0 when `on_conflict` left an existing one alone).
    async fn write_grant(&mut self, rec: &GrantRecord, on_conflict: &'static str) -> Result<u64, sqlx::Error> {
        let sql = format!(
            "INSERT INTO grants (app, certificate, created_at) VALUES ($1, $2, $3) {on_conflict} RETURNING app"
        );
        let q = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(rec.app.as_str())
            .bind(rec.certificate.as_str())
            .bind(rec.created_at);
        Ok(q.fetch_all(&mut *self.tx).await?.len() as u64)
    }

    /// Write a whole-store copy: upserts by name or key, meta only where missing, the copied
    /// audit rows as they are, and the revision moved past `plan.revision_floor`.
    pub async fn write_copy(&mut self, plan: &CopyPlan) -> Result<(), StoreError> {
        if self.revision <= plan.revision_floor {
            self.revision = plan.revision_floor + 1;
            sqlx::query("UPDATE revision SET value = $1 WHERE id = 1")
                .bind(self.revision)
                .execute(&mut *self.tx)
                .await?;
        }
        for (k, v) in &plan.meta {
            sqlx::query("INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING")
                .bind(k)
                .bind(v)
                .execute(&mut *self.tx)
                .await?;
        }
        for c in &plan.certificates {
            let set = "ON CONFLICT (name) DO UPDATE SET id = excluded.id, leaf_der = excluded.leaf_der, chain_der = excluded.chain_der, sealed_key = excluded.sealed_key, key_format = excluded.key_format, owner = excluded.owner, contact = excluded.contact, created_at = excluded.created_at, updated_at = excluded.updated_at";
            self.write_certificate(c, set).await?;
        }
        for a in &plan.anchors {
            let set = "ON CONFLICT (name) DO UPDATE SET certs_der = excluded.certs_der, owner = excluded.owner, contact = excluded.contact, created_at = excluded.created_at";
            self.write_anchor(a, set).await?;
        }
        for b in &plan.bindings {
            self.upsert_binding(b, true).await?;
        }
        for s in &plan.services {
            self.upsert_service(s, "created_at = excluded.created_at, updated_at = excluded.updated_at").await?;
        }
        for t in &plan.tokens {
            let set = "ON CONFLICT (name) DO UPDATE SET role = excluded.role, hash = excluded.hash, created_at = excluded.created_at";
            self.write_token(t, set).await?;
        }
        for a in &plan.apps {
            self.write_app(
                a,
                "ON CONFLICT (name) DO UPDATE SET hash = excluded.hash, created_at = excluded.created_at",
            )
            .await?;
        }
        for g in &plan.grants {
            self.write_grant(g, "ON CONFLICT (app, certificate) DO UPDATE SET created_at = excluded.created_at")
                .await?;
        }
        for row in &plan.audit {
            self.audit_row(row).await?;
        }
        Ok(())
    }
}

/// A column by name, on a row of either database.
pub trait Columns {
    fn int(&self, column: &'static str) -> Result<i64, sqlx::Error>;
    fn text(&self, column: &'static str) -> Result<String, sqlx::Error>;
    fn text_or_null(&self, column: &'static str) -> Result<Option<String>, sqlx::Error>;
    fn bytes(&self, column: &'static str) -> Result<Vec<u8>, sqlx::Error>;
    fn int_or_null(&self, column: &'static str) -> Result<Option<i64>, sqlx::Error>;
}

impl<R: Row> Columns for R
where
    &'static str: ColumnIndex<R>,
    for<'q> i64: Decode<'q, R::Database> + Type<R::Database>,
    for<'q> String: Decode<'q, R::Database> + Type<R::Database>,
    for<'q> Option<String>: Decode<'q, R::Database>,
    for<'q> Option<i64>: Decode<'q, R::Database>,
    for<'q> Vec<u8>: Decode<'q, R::Database> + Type<R::Database>,
{
    fn int(&self, column: &'static str) -> Result<i64, sqlx::Error> {
        self.try_get(column)
    }
    fn text(&self, column: &'static str) -> Result<String, sqlx::Error> {
        self.try_get(column)
    }
    fn text_or_null(&self, column: &'static str) -> Result<Option<String>, sqlx::Error> {
        self.try_get(column)
    }
    fn bytes(&self, column: &'static str) -> Result<Vec<u8>, sqlx::Error> {
        self.try_get(column)
    }
    fn int_or_null(&self, column: &'static str) -> Result<Option<i64>, sqlx::Error> {
        self.try_get(column)
    }
}

/// A record field read from the column of the same name; its type says how.
trait FromColumn: Sized {
    fn from_column(r: &impl Columns, column: &'static str) -> Result<Self, sqlx::Error>;
}

macro_rules! from_column {
    ($($t:ty => |$r:ident, $c:ident| $e:expr;)*) => {$(
        impl FromColumn for $t {
            fn from_column($r: &impl Columns, $c: &'static str) -> Result<Self, sqlx::Error> {
                Ok($e)
            }
        }
    )*};
}

from_column! {
    i64 => |r, c| r.int(c)?;
    Option<i64> => |r, c| r.int_or_null(c)?;
    String => |r, c| r.text(c)?;
    Option<String> => |r, c| r.text_or_null(c)?;
    Vec<u8> => |r, c| r.bytes(c)?;
    // Concatenated DER certificates.
    Vec<Vec<u8>> => |r, c| split_der(&r.bytes(c)?);
    CertificateName => |r, c| CertificateName::stored(r.text(c)?);
    CertificateId => |r, c| CertificateId::stored(r.text(c)?);
    AppName => |r, c| AppName::stored(r.text(c)?);
}

/// Readers of records whose fields are all columns of the same names (each field's type says
/// how its column is read).
macro_rules! readers {
    ($($name:ident -> $t:ident { $($f:ident),* $(,)? })*) => {$(
        fn $name(r: &impl Columns) -> Result<$t, sqlx::Error> {
            Ok($t { $($f: FromColumn::from_column(r, stringify!($f))?),* })
        }
    )*};
}

readers! {
    cert_from_row -> CertificateRecord { name, id, leaf_der, chain_der, sealed_key, key_format, owner, contact, created_at, updated_at }
    anchor_from_row -> AnchorRecord { name, certs_der, owner, contact, created_at }
    service_from_row -> ServiceRecord { name, url, created_at, updated_at }
    token_from_row -> TokenRecord { name, role, hash, created_at }
    app_from_row -> AppRecord { name, hash, created_at }
    grant_from_row -> GrantRecord { app, certificate, created_at }
    audit_from_row -> AuditRecord { seq, at, actor, action, target, result, detail, revision }
    request_from_row -> RequestRecord { name, subject, key_type, sealed_key, key_format, csr_der, owner, contact, created_at }
    alert_from_row -> AlertRecord { item, threshold, kind, name, state, attempts, next_attempt_at, last_error, node, claimed_at, sent_at }
    partner_from_row -> PartnerRecord { destination, subject, issuer, not_after, pin, trust, seen_at }
}

/// Pins as stored: a JSON array of `sha256/BASE64` texts.
fn pins_text(pins: &[Pin]) -> String {
    serde_json::Value::from(pins.iter().map(Pin::to_string).collect::<Vec<_>>()).to_string()
}

/// Certgate writes only canonical policy and pin texts (parsed before they are stored); a row
/// that does not parse was edited by hand, and reading it says which one and why.
fn binding_from_row(r: &impl Columns) -> Result<BindingRecord, sqlx::Error> {
    let destination = r.text("destination")?;
    let bad = |column: &str, why: String| sqlx::Error::ColumnDecode {
        index: column.to_string(),
        source: format!("binding '{destination}': {why}").into(),
    };
    let trust = TrustPolicy::parse(&r.text("trust")?).map_err(|e| bad("trust", e))?;
    let pin_texts: Vec<String> =
        serde_json::from_str(&r.text("pins")?).map_err(|e| bad("pins", format!("not a JSON list of pins: {e}")))?;
    let pins = pin_texts.iter().map(|p| Pin::parse(p)).collect::<Result<Vec<_>, _>>().map_err(|e| bad("pins", e))?;
    Ok(BindingRecord {
        destination,
        certificate: r.text_or_null("certificate")?.map(CertificateName::stored),
        alternates: Vec::new(),
        trust,
        sni: r.text_or_null("sni")?,
        pins,
        allow_renegotiation: r.int("allow_renegotiation")? != 0,
        created_at: r.int("created_at")?,
        updated_at: r.int("updated_at")?,
    })
}

/// One further candidate of a binding: (destination, certificate), read in position order.
fn alternate_from_row(r: &impl Columns) -> Result<(String, CertificateName), sqlx::Error> {
    Ok((r.text("destination")?, CertificateName::stored(r.text("certificate")?)))
}

/// Attach the further candidates (read in position order) to their bindings.
fn with_alternates(mut bindings: Vec<BindingRecord>, alternates: Vec<(String, CertificateName)>) -> Vec<BindingRecord> {
    let mut by_destination: std::collections::HashMap<String, Vec<CertificateName>> = std::collections::HashMap::new();
    for (destination, cert) in alternates {
        by_destination.entry(destination).or_default().push(cert);
    }
    for b in &mut bindings {
        if let Some(certs) = by_destination.remove(&b.destination) {
            b.alternates = certs;
        }
    }
    bindings
}
