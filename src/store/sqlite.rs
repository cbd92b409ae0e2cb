//! The embedded default: one SQLite file in WAL mode.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, Sqlite, Transaction};

use super::model::{
    join_der, split_der, AnchorRecord, AppRecord, AuditRecord, BindingRecord, CertificateRecord, Change, GrantRecord,
    ServiceRecord, Snapshot, TokenRecord,
};
use super::{now_unix, StoreError};

/// Schema steps, applied in order, each in its own transaction.
const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("migrations/sqlite_001_initial.sql")),
    (2, include_str!("migrations/sqlite_002_bindings.sql")),
    (3, include_str!("migrations/sqlite_003_access.sql")),
];

pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|e| StoreError::Unavailable(format!("cannot create {}: {e}", dir.display())))?;
        }
        let options = SqliteConnectOptions::from_str("sqlite://")
            .map_err(|e| StoreError::Unavailable(e.to_string()))?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await
            .map_err(|e| StoreError::Unavailable(format!("cannot open {}: {e}", path.display())))?;
        let store = SqliteStore { pool };
        store.migrate().await?;
        Ok(store)
    }

    /// For whole-store copies (`super::copy`).
    pub(super) fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)",
        )
        .execute(&mut *tx)
        .await?;
        let current: i64 =
            sqlx::query("SELECT COALESCE(MAX(version), 0) FROM schema_version").fetch_one(&mut *tx).await?.get(0);
        let newest = MIGRATIONS.last().map(|m| m.0).unwrap_or(0);
        if current > newest {
            return Err(StoreError::Unavailable(format!(
                "the store has schema version {current}, newer than this certgate knows ({newest}): upgrade certgate"
            )));
        }
        for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > current) {
            sqlx::raw_sql(sqlx::AssertSqlSafe(*sql)).execute(&mut *tx).await?;
            sqlx::query("INSERT INTO schema_version (version, applied_at) VALUES (?, ?)")
                .bind(version)
                .bind(now_unix())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn begin(&self) -> Result<Transaction<'static, Sqlite>, StoreError> {
        // IMMEDIATE takes the write lock up front, so two writers queue on busy_timeout
        // instead of one failing when it upgrades a read lock.
        Ok(self.pool.begin_with("BEGIN IMMEDIATE").await?)
    }

    /// Append the audit row and bump the revision, inside the change's transaction.
    async fn finish(tx: &mut Transaction<'static, Sqlite>, change: &Change) -> Result<i64, StoreError> {
        let revision: i64 = sqlx::query("UPDATE revision SET value = value + 1 WHERE id = 1 RETURNING value")
            .fetch_one(&mut **tx)
            .await?
            .get(0);
        sqlx::query(
            "INSERT INTO audit (at, actor, action, target, result, detail, revision) VALUES (?, ?, ?, ?, 'ok', ?, ?)",
        )
        .bind(now_unix())
        .bind(&change.actor)
        .bind(&change.action)
        .bind(&change.target)
        .bind(&change.detail)
        .bind(revision)
        .execute(&mut **tx)
        .await?;
        Ok(revision)
    }

    pub async fn revision(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query("SELECT value FROM revision WHERE id = 1").fetch_one(&self.pool).await?.get(0))
    }

    pub async fn meta(&self, key: &str) -> Result<Option<String>, StoreError> {
        Ok(sqlx::query("SELECT value FROM meta WHERE key = ?")
            .bind(key)
            .fetch_optional(&self.pool)
            .await?
            .map(|r| r.get(0)))
    }

    /// Set a meta value unless one is there; returns the value in force.
    pub async fn meta_init(&self, key: &str, value: &str) -> Result<String, StoreError> {
        let mut tx = self.begin().await?;
        sqlx::query("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING")
            .bind(key)
            .bind(value)
            .execute(&mut *tx)
            .await?;
        let v: String = sqlx::query("SELECT value FROM meta WHERE key = ?").bind(key).fetch_one(&mut *tx).await?.get(0);
        tx.commit().await?;
        Ok(v)
    }

    pub async fn certificates(&self) -> Result<Vec<CertificateRecord>, StoreError> {
        let rows = sqlx::query("SELECT name, id, leaf_der, chain_der, sealed_key, key_format, owner, created_at, updated_at FROM certificates ORDER BY name")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(cert_from_row).collect())
    }

    pub async fn certificate(&self, name: &str) -> Result<Option<CertificateRecord>, StoreError> {
        let row = sqlx::query("SELECT name, id, leaf_der, chain_der, sealed_key, key_format, owner, created_at, updated_at FROM certificates WHERE name = ?")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(cert_from_row))
    }

    pub async fn insert_certificate(&self, rec: &CertificateRecord, change: &Change) -> Result<i64, StoreError> {
        let mut tx = self.begin().await?;
        let taken = sqlx::query("SELECT 1 FROM certificates WHERE name = ?")
            .bind(&rec.name)
            .fetch_optional(&mut *tx)
            .await?
            .is_some();
        if taken {
            return Err(StoreError::Conflict(format!("a certificate named '{}' exists already", rec.name)));
        }
        sqlx::query("INSERT INTO certificates (name, id, leaf_der, chain_der, sealed_key, key_format, owner, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)")
            .bind(&rec.name)
            .bind(&rec.id)
            .bind(&rec.leaf_der)
            .bind(join_der(&rec.chain_der))
            .bind(&rec.sealed_key)
            .bind(&rec.key_format)
            .bind(&rec.owner)
            .bind(rec.created_at)
            .bind(rec.updated_at)
            .execute(&mut *tx)
            .await?;
        let revision = Self::finish(&mut tx, change).await?;
        tx.commit().await?;
        Ok(revision)
    }

    /// Replace the material of an existing certificate (rotation); the name stays.
    pub async fn replace_certificate(&self, rec: &CertificateRecord, change: &Change) -> Result<i64, StoreError> {
        let mut tx = self.begin().await?;
        let done = sqlx::query("UPDATE certificates SET id = ?, leaf_der = ?, chain_der = ?, sealed_key = ?, key_format = ?, owner = COALESCE(?, owner), updated_at = ? WHERE name = ?")
            .bind(&rec.id)
            .bind(&rec.leaf_der)
            .bind(join_der(&rec.chain_der))
            .bind(&rec.sealed_key)
            .bind(&rec.key_format)
            .bind(&rec.owner)
            .bind(rec.updated_at)
            .bind(&rec.name)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if done == 0 {
            return Err(StoreError::NotFound(format!("certificate '{}'", rec.name)));
        }
        let revision = Self::finish(&mut tx, change).await?;
        tx.commit().await?;
        Ok(revision)
    }

    /// Remove a certificate. Bindings that present it block the removal unless `drop_bindings`.
    pub async fn delete_certificate(
        &self,
        name: &str,
        drop_bindings: bool,
        change: &Change,
    ) -> Result<i64, StoreError> {
        let mut tx = self.begin().await?;
        let bound: Vec<String> =
            sqlx::query("SELECT destination FROM bindings WHERE certificate = ? ORDER BY destination")
                .bind(name)
                .fetch_all(&mut *tx)
                .await?
                .iter()
                .map(|r| r.get(0))
                .collect();
        if !bound.is_empty() && !drop_bindings {
            return Err(StoreError::StillBound(bound));
        }
        sqlx::query("DELETE FROM bindings WHERE certificate = ?").bind(name).execute(&mut *tx).await?;
        sqlx::query("DELETE FROM grants WHERE certificate = ?").bind(name).execute(&mut *tx).await?;
        let done =
            sqlx::query("DELETE FROM certificates WHERE name = ?").bind(name).execute(&mut *tx).await?.rows_affected();
        if done == 0 {
            return Err(StoreError::NotFound(format!("certificate '{name}'")));
        }
        let revision = Self::finish(&mut tx, change).await?;
        tx.commit().await?;
        Ok(revision)
    }

    pub async fn anchors(&self) -> Result<Vec<AnchorRecord>, StoreError> {
        let rows = sqlx::query("SELECT name, certs_der, created_at FROM trust_anchors ORDER BY name")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(anchor_from_row).collect())
    }

    pub async fn anchor(&self, name: &str) -> Result<Option<AnchorRecord>, StoreError> {
        let row = sqlx::query("SELECT name, certs_der, created_at FROM trust_anchors WHERE name = ?")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(anchor_from_row))
    }

    pub async fn insert_anchor(&self, rec: &AnchorRecord, change: &Change) -> Result<i64, StoreError> {
        let mut tx = self.begin().await?;
        let taken = sqlx::query("SELECT 1 FROM trust_anchors WHERE name = ?")
            .bind(&rec.name)
            .fetch_optional(&mut *tx)
            .await?
            .is_some();
        if taken {
            return Err(StoreError::Conflict(format!("a trust anchor named '{}' exists already", rec.name)));
        }
        sqlx::query("INSERT INTO trust_anchors (name, certs_der, created_at) VALUES (?, ?, ?)")
            .bind(&rec.name)
            .bind(join_der(&rec.certs_der))
            .bind(rec.created_at)
            .execute(&mut *tx)
            .await?;
        let revision = Self::finish(&mut tx, change).await?;
        tx.commit().await?;
        Ok(revision)
    }

    pub async fn delete_anchor(&self, name: &str, change: &Change) -> Result<i64, StoreError> {
        let mut tx = self.begin().await?;
        let users: Vec<String> = sqlx::query("SELECT destination, trust FROM bindings ORDER BY destination")
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .filter(|r| {
                let trust: String = r.get(1);
                trust.strip_prefix("ca:").is_some_and(|names| names.split(',').any(|n| n == name))
            })
            .map(|r| r.get(0))
            .collect();
        if !users.is_empty() {
            return Err(StoreError::StillBound(users));
        }
        let done =
            sqlx::query("DELETE FROM trust_anchors WHERE name = ?").bind(name).execute(&mut *tx).await?.rows_affected();
        if done == 0 {
            return Err(StoreError::NotFound(format!("trust anchor '{name}'")));
        }
        let revision = Self::finish(&mut tx, change).await?;
        tx.commit().await?;
        Ok(revision)
    }

    pub async fn bindings(&self) -> Result<Vec<BindingRecord>, StoreError> {
        let rows = sqlx::query("SELECT destination, certificate, trust, sni, pins, created_at, updated_at FROM bindings ORDER BY destination")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(binding_from_row).collect())
    }

    /// Create or replace a binding; `Ok((revision, replaced))`. The certificate must exist.
    pub async fn put_binding(&self, rec: &BindingRecord, change: &Change) -> Result<(i64, bool), StoreError> {
        let mut tx = self.begin().await?;
        if let Some(cert) = &rec.certificate {
            let exists = sqlx::query("SELECT 1 FROM certificates WHERE name = ?")
                .bind(cert)
                .fetch_optional(&mut *tx)
                .await?
                .is_some();
            if !exists {
                return Err(StoreError::NotFound(format!("certificate '{cert}'")));
            }
        }
        let replaced = Self::upsert_binding(&mut tx, rec).await?;
        let revision = Self::finish(&mut tx, change).await?;
        tx.commit().await?;
        Ok((revision, replaced))
    }

    async fn upsert_binding(tx: &mut Transaction<'static, Sqlite>, rec: &BindingRecord) -> Result<bool, StoreError> {
        let replaced = sqlx::query("SELECT 1 FROM bindings WHERE destination = ?")
            .bind(&rec.destination)
            .fetch_optional(&mut **tx)
            .await?
            .is_some();
        sqlx::query("INSERT INTO bindings (destination, certificate, trust, sni, pins, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?) \
             ON CONFLICT (destination) DO UPDATE SET certificate = excluded.certificate, trust = excluded.trust, sni = excluded.sni, pins = excluded.pins, updated_at = excluded.updated_at")
            .bind(&rec.destination)
            .bind(&rec.certificate)
            .bind(&rec.trust)
            .bind(&rec.sni)
            .bind(serde_json::to_string(&rec.pins).unwrap_or_else(|_| "[]".into()))
            .bind(rec.created_at)
            .bind(rec.updated_at)
            .execute(&mut **tx)
            .await?;
        Ok(replaced)
    }

    pub async fn delete_binding(&self, destination: &str, change: &Change) -> Result<i64, StoreError> {
        let mut tx = self.begin().await?;
        let done = sqlx::query("DELETE FROM bindings WHERE destination = ?")
            .bind(destination)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if done == 0 {
            return Err(StoreError::NotFound(format!("binding for '{destination}'")));
        }
        let revision = Self::finish(&mut tx, change).await?;
        tx.commit().await?;
        Ok(revision)
    }

    pub async fn services(&self) -> Result<Vec<ServiceRecord>, StoreError> {
        let rows = sqlx::query("SELECT name, url, created_at, updated_at FROM services ORDER BY name")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .iter()
            .map(|r| ServiceRecord { name: r.get(0), url: r.get(1), created_at: r.get(2), updated_at: r.get(3) })
            .collect())
    }

    /// Create or replace a named service, with its `service:NAME` binding when one is given
    /// (without one, the binding of the URL's host applies). `Ok((revision, replaced))`.
    pub async fn put_service(
        &self,
        svc: &ServiceRecord,
        binding: Option<&BindingRecord>,
        change: &Change,
    ) -> Result<(i64, bool), StoreError> {
        let mut tx = self.begin().await?;
        if let Some(cert) = binding.and_then(|b| b.certificate.as_ref()) {
            let exists = sqlx::query("SELECT 1 FROM certificates WHERE name = ?")
                .bind(cert)
                .fetch_optional(&mut *tx)
                .await?
                .is_some();
            if !exists {
                return Err(StoreError::NotFound(format!("certificate '{cert}'")));
            }
        }
        let replaced = sqlx::query("SELECT 1 FROM services WHERE name = ?")
            .bind(&svc.name)
            .fetch_optional(&mut *tx)
            .await?
            .is_some();
        sqlx::query("INSERT INTO services (name, url, created_at, updated_at) VALUES (?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET url = excluded.url, updated_at = excluded.updated_at")
            .bind(&svc.name)
            .bind(&svc.url)
            .bind(svc.created_at)
            .bind(svc.updated_at)
            .execute(&mut *tx)
            .await?;
        let key = format!("service:{}", svc.name);
        match binding {
            Some(b) => {
                Self::upsert_binding(&mut tx, b).await?;
            }
            None => {
                sqlx::query("DELETE FROM bindings WHERE destination = ?").bind(&key).execute(&mut *tx).await?;
            }
        }
        let revision = Self::finish(&mut tx, change).await?;
        tx.commit().await?;
        Ok((revision, replaced))
    }

    pub async fn delete_service(&self, name: &str, change: &Change) -> Result<i64, StoreError> {
        let mut tx = self.begin().await?;
        let done =
            sqlx::query("DELETE FROM services WHERE name = ?").bind(name).execute(&mut *tx).await?.rows_affected();
        if done == 0 {
            return Err(StoreError::NotFound(format!("service '{name}'")));
        }
        sqlx::query("DELETE FROM bindings WHERE destination = ?")
            .bind(format!("service:{name}"))
            .execute(&mut *tx)
            .await?;
        let revision = Self::finish(&mut tx, change).await?;
        tx.commit().await?;
        Ok(revision)
    }

    /// Everything the gateway needs, read in one transaction so it is one consistent revision.
    pub async fn snapshot(&self) -> Result<Snapshot, StoreError> {
        let mut tx = self.pool.begin().await?;
        let revision: i64 = sqlx::query("SELECT value FROM revision WHERE id = 1").fetch_one(&mut *tx).await?.get(0);
        let certificates = sqlx::query("SELECT name, id, leaf_der, chain_der, sealed_key, key_format, owner, created_at, updated_at FROM certificates ORDER BY name")
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(cert_from_row)
            .collect();
        let anchors = sqlx::query("SELECT name, certs_der, created_at FROM trust_anchors ORDER BY name")
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(anchor_from_row)
            .collect();
        let bindings = sqlx::query("SELECT destination, certificate, trust, sni, pins, created_at, updated_at FROM bindings ORDER BY destination")
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(binding_from_row)
            .collect();
        let services = sqlx::query("SELECT name, url, created_at, updated_at FROM services ORDER BY name")
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(|r| ServiceRecord { name: r.get(0), url: r.get(1), created_at: r.get(2), updated_at: r.get(3) })
            .collect();
        let apps = sqlx::query("SELECT name, hash, created_at FROM apps ORDER BY name")
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(|r| AppRecord { name: r.get(0), hash: r.get(1), created_at: r.get(2) })
            .collect();
        let grants = sqlx::query("SELECT app, certificate, created_at FROM grants ORDER BY app, certificate")
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(|r| GrantRecord { app: r.get(0), certificate: r.get(1), created_at: r.get(2) })
            .collect();
        tx.rollback().await?;
        Ok(Snapshot { revision, certificates, anchors, bindings, services, apps, grants })
    }

    pub async fn tokens(&self) -> Result<Vec<TokenRecord>, StoreError> {
        let rows =
            sqlx::query("SELECT name, role, hash, created_at FROM tokens ORDER BY name").fetch_all(&self.pool).await?;
        Ok(rows
            .iter()
            .map(|r| TokenRecord { name: r.get(0), role: r.get(1), hash: r.get(2), created_at: r.get(3) })
            .collect())
    }

    pub async fn insert_token(&self, rec: &TokenRecord, change: &Change) -> Result<i64, StoreError> {
        let mut tx = self.begin().await?;
        let taken = sqlx::query("SELECT 1 FROM tokens WHERE name = ?")
            .bind(&rec.name)
            .fetch_optional(&mut *tx)
            .await?
            .is_some();
        if taken {
            return Err(StoreError::Conflict(format!("a token named '{}' exists already", rec.name)));
        }
        sqlx::query("INSERT INTO tokens (name, role, hash, created_at) VALUES (?, ?, ?, ?)")
            .bind(&rec.name)
            .bind(&rec.role)
            .bind(&rec.hash)
            .bind(rec.created_at)
            .execute(&mut *tx)
            .await?;
        let revision = Self::finish(&mut tx, change).await?;
        tx.commit().await?;
        Ok(revision)
    }

    pub async fn delete_token(&self, name: &str, change: &Change) -> Result<i64, StoreError> {
        let mut tx = self.begin().await?;
        let done = sqlx::query("DELETE FROM tokens WHERE name = ?").bind(name).execute(&mut *tx).await?.rows_affected();
        if done == 0 {
            return Err(StoreError::NotFound(format!("token '{name}'")));
        }
        let revision = Self::finish(&mut tx, change).await?;
        tx.commit().await?;
        Ok(revision)
    }

    pub async fn apps(&self) -> Result<Vec<AppRecord>, StoreError> {
        let rows = sqlx::query("SELECT name, hash, created_at FROM apps ORDER BY name").fetch_all(&self.pool).await?;
        Ok(rows.iter().map(|r| AppRecord { name: r.get(0), hash: r.get(1), created_at: r.get(2) }).collect())
    }

    pub async fn grants(&self) -> Result<Vec<GrantRecord>, StoreError> {
        let rows = sqlx::query("SELECT app, certificate, created_at FROM grants ORDER BY app, certificate")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(|r| GrantRecord { app: r.get(0), certificate: r.get(1), created_at: r.get(2) }).collect())
    }

    pub async fn insert_app(&self, rec: &AppRecord, change: &Change) -> Result<i64, StoreError> {
        let mut tx = self.begin().await?;
        let taken =
            sqlx::query("SELECT 1 FROM apps WHERE name = ?").bind(&rec.name).fetch_optional(&mut *tx).await?.is_some();
        if taken {
            return Err(StoreError::Conflict(format!("an app named '{}' exists already", rec.name)));
        }
        sqlx::query("INSERT INTO apps (name, hash, created_at) VALUES (?, ?, ?)")
            .bind(&rec.name)
            .bind(&rec.hash)
            .bind(rec.created_at)
            .execute(&mut *tx)
            .await?;
        let revision = Self::finish(&mut tx, change).await?;
        tx.commit().await?;
        Ok(revision)
    }

    pub async fn delete_app(&self, name: &str, change: &Change) -> Result<i64, StoreError> {
        let mut tx = self.begin().await?;
        let done = sqlx::query("DELETE FROM apps WHERE name = ?").bind(name).execute(&mut *tx).await?.rows_affected();
        if done == 0 {
            return Err(StoreError::NotFound(format!("app '{name}'")));
        }
        sqlx::query("DELETE FROM grants WHERE app = ?").bind(name).execute(&mut *tx).await?;
        let revision = Self::finish(&mut tx, change).await?;
        tx.commit().await?;
        Ok(revision)
    }

    /// Grant an app the use of a certificate; both must exist. `Ok((revision, new))`.
    pub async fn put_grant(&self, rec: &GrantRecord, change: &Change) -> Result<(i64, bool), StoreError> {
        let mut tx = self.begin().await?;
        if sqlx::query("SELECT 1 FROM apps WHERE name = ?").bind(&rec.app).fetch_optional(&mut *tx).await?.is_none() {
            return Err(StoreError::NotFound(format!("app '{}'", rec.app)));
        }
        if sqlx::query("SELECT 1 FROM certificates WHERE name = ?")
            .bind(&rec.certificate)
            .fetch_optional(&mut *tx)
            .await?
            .is_none()
        {
            return Err(StoreError::NotFound(format!("certificate '{}'", rec.certificate)));
        }
        let added = sqlx::query("INSERT INTO grants (app, certificate, created_at) VALUES (?, ?, ?) ON CONFLICT (app, certificate) DO NOTHING")
            .bind(&rec.app)
            .bind(&rec.certificate)
            .bind(rec.created_at)
            .execute(&mut *tx)
            .await?
            .rows_affected()
            > 0;
        let revision = Self::finish(&mut tx, change).await?;
        tx.commit().await?;
        Ok((revision, added))
    }

    pub async fn delete_grant(&self, app: &str, certificate: &str, change: &Change) -> Result<i64, StoreError> {
        let mut tx = self.begin().await?;
        let done = sqlx::query("DELETE FROM grants WHERE app = ? AND certificate = ?")
            .bind(app)
            .bind(certificate)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if done == 0 {
            return Err(StoreError::NotFound(format!("grant of certificate '{certificate}' to app '{app}'")));
        }
        let revision = Self::finish(&mut tx, change).await?;
        tx.commit().await?;
        Ok(revision)
    }

    pub async fn audit(&self, limit: i64) -> Result<Vec<AuditRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT seq, at, actor, action, target, result, detail, revision FROM audit ORDER BY seq DESC LIMIT ?",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| AuditRecord {
                seq: r.get(0),
                at: r.get(1),
                actor: r.get(2),
                action: r.get(3),
                target: r.get(4),
                result: r.get(5),
                detail: r.get(6),
                revision: r.get(7),
            })
            .collect())
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

fn cert_from_row(r: &sqlx::sqlite::SqliteRow) -> CertificateRecord {
    let chain: Vec<u8> = r.get(3);
    CertificateRecord {
        name: r.get(0),
        id: r.get(1),
        leaf_der: r.get(2),
        chain_der: split_der(&chain),
        sealed_key: r.get(4),
        key_format: r.get(5),
        owner: r.get(6),
        created_at: r.get(7),
        updated_at: r.get(8),
    }
}

fn binding_from_row(r: &sqlx::sqlite::SqliteRow) -> BindingRecord {
    let pins: String = r.get(4);
    BindingRecord {
        destination: r.get(0),
        certificate: r.get(1),
        trust: r.get(2),
        sni: r.get(3),
        pins: serde_json::from_str(&pins).unwrap_or_default(),
        created_at: r.get(5),
        updated_at: r.get(6),
    }
}

fn anchor_from_row(r: &sqlx::sqlite::SqliteRow) -> AnchorRecord {
    let certs: Vec<u8> = r.get(1);
    AnchorRecord { name: r.get(0), certs_der: split_der(&certs), created_at: r.get(2) }
}
