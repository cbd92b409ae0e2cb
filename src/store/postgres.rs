//! The multi-node backend: one PostgreSQL database shared by every gateway node.
//!
//! Same semantics as [`super::SqliteStore`], method for method. Writers are serialised by the
//! single `revision` row: every change transaction starts with
//! `UPDATE revision SET value = value + 1 ... RETURNING value`, which holds that row's lock until
//! commit, so checks made after it (name taken, still bound) see every earlier change and two
//! nodes changing the store at once both land, one after the other. Each change also sends
//! `pg_notify('certgate_revision', revision)` inside its transaction: delivered at commit, it
//! tells every node's gateway to reload at once (see [`PgStore::revision_events`]).

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgConnection, PgListener, PgPool, PgPoolOptions, PgRow};
use sqlx::{Connection, Postgres, Row, Transaction};
use tokio::sync::mpsc;

use super::model::{
    join_der, split_der, AnchorRecord, AppRecord, AuditRecord, BindingRecord, CertificateRecord, Change, GrantRecord,
    ServiceRecord, Snapshot, TokenRecord,
};
use super::{now_unix, StoreError, StoreEvent};

/// Schema steps, applied in order, each in its own transaction (mirrors the SQLite ones).
const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("migrations/postgres_001_initial.sql")),
    (2, include_str!("migrations/postgres_002_bindings.sql")),
    (3, include_str!("migrations/postgres_003_access.sql")),
];

/// The LISTEN/NOTIFY channel every change is announced on, with the new revision as payload.
pub const CHANNEL: &str = "certgate_revision";
/// How long an operation waits for a connection before the store counts as unreachable.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Key of the advisory lock that keeps two nodes from migrating the schema at the same time.
const MIGRATION_LOCK: i64 = 0x6365_7274_6761_7465; // "certgate"

pub struct PgStore {
    pool: PgPool,
    /// `host:port/database`, for messages (never the password).
    target: String,
}

impl PgStore {
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let options = PgConnectOptions::from_str(url)
            .map_err(|e| StoreError::Unavailable(format!("the PostgreSQL URL is not valid: {e}")))?
            .application_name("certgate");
        let target = format!(
            "{}:{}/{}",
            options.get_host(),
            options.get_port(),
            options.get_database().unwrap_or(options.get_username())
        );
        // One direct connection first: it reports the real cause (refused, unknown database,
        // authentication) where a pool would only say that it timed out.
        let mut conn = match tokio::time::timeout(CONNECT_TIMEOUT, PgConnection::connect_with(&options)).await {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => {
                return Err(StoreError::Unavailable(format!("cannot connect to PostgreSQL at {target}: {e}")))
            }
            Err(_) => {
                return Err(StoreError::Unavailable(format!(
                    "cannot connect to PostgreSQL at {target}: no answer within {} s",
                    CONNECT_TIMEOUT.as_secs()
                )))
            }
        };
        migrate(&mut conn).await.map_err(|e| match e {
            StoreError::Database(e) => StoreError::Unavailable(format!("cannot prepare the schema at {target}: {e}")),
            other => other,
        })?;
        let _ = conn.close().await;
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .min_connections(0)
            .acquire_timeout(CONNECT_TIMEOUT)
            .idle_timeout(Duration::from_secs(300))
            .connect_lazy_with(options);
        Ok(PgStore { pool, target })
    }

    /// `host:port/database` of the store, for messages.
    pub fn target(&self) -> &str {
        &self.target
    }

    pub(super) fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Turn a lost or refused connection into a message that says so and names the server.
    pub(super) fn explain(&self, e: StoreError) -> StoreError {
        match e {
            StoreError::Database(err) if is_unreachable(&err) => StoreError::Unavailable(format!(
                "PostgreSQL at {} is unreachable ({}); changes are refused until it is back",
                self.target,
                match &err {
                    sqlx::Error::PoolTimedOut => format!("no connection within {} s", CONNECT_TIMEOUT.as_secs()),
                    other => other.to_string(),
                }
            )),
            other => other,
        }
    }

    /// Start a change: take the revision row (serialising writers) and return the new revision.
    async fn begin(&self) -> Result<(Transaction<'static, Postgres>, i64), StoreError> {
        let mut tx = self.pool.begin().await?;
        let revision: i64 = sqlx::query("UPDATE revision SET value = value + 1 WHERE id = 1 RETURNING value")
            .fetch_one(&mut *tx)
            .await?
            .get(0);
        Ok((tx, revision))
    }

    /// Append the audit row, announce the revision and commit.
    async fn finish(mut tx: Transaction<'static, Postgres>, revision: i64, change: &Change) -> Result<i64, StoreError> {
        sqlx::query(
            "INSERT INTO audit (at, actor, action, target, result, detail, revision) VALUES ($1, $2, $3, $4, 'ok', $5, $6)",
        )
        .bind(now_unix())
        .bind(&change.actor)
        .bind(&change.action)
        .bind(&change.target)
        .bind(&change.detail)
        .bind(revision)
        .execute(&mut *tx)
        .await?;
        notify(&mut tx, revision).await?;
        tx.commit().await?;
        Ok(revision)
    }

    pub async fn revision(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query("SELECT value FROM revision WHERE id = 1").fetch_one(&self.pool).await?.get(0))
    }

    pub async fn meta(&self, key: &str) -> Result<Option<String>, StoreError> {
        Ok(sqlx::query("SELECT value FROM meta WHERE key = $1")
            .bind(key)
            .fetch_optional(&self.pool)
            .await?
            .map(|r| r.get(0)))
    }

    /// Set a meta value unless one is there; returns the value in force. Two nodes opening an
    /// empty store at once agree: the second insert does nothing and both read the first value.
    pub async fn meta_init(&self, key: &str, value: &str) -> Result<String, StoreError> {
        sqlx::query("INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING")
            .bind(key)
            .bind(value)
            .execute(&self.pool)
            .await?;
        Ok(sqlx::query("SELECT value FROM meta WHERE key = $1").bind(key).fetch_one(&self.pool).await?.get(0))
    }

    pub async fn certificates(&self) -> Result<Vec<CertificateRecord>, StoreError> {
        let rows = sqlx::query("SELECT name, id, leaf_der, chain_der, sealed_key, key_format, owner, created_at, updated_at FROM certificates ORDER BY name")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(cert_from_row).collect())
    }

    pub async fn certificate(&self, name: &str) -> Result<Option<CertificateRecord>, StoreError> {
        let row = sqlx::query("SELECT name, id, leaf_der, chain_der, sealed_key, key_format, owner, created_at, updated_at FROM certificates WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(cert_from_row))
    }

    pub async fn insert_certificate(&self, rec: &CertificateRecord, change: &Change) -> Result<i64, StoreError> {
        let (mut tx, revision) = self.begin().await?;
        let taken = format!("a certificate named '{}' exists already", rec.name);
        if exists(&mut tx, "SELECT 1 FROM certificates WHERE name = $1", &rec.name).await? {
            return Err(StoreError::Conflict(taken));
        }
        sqlx::query("INSERT INTO certificates (name, id, leaf_der, chain_der, sealed_key, key_format, owner, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)")
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
            .await
            .map_err(|e| conflict(e, taken))?;
        Self::finish(tx, revision, change).await
    }

    /// Replace the material of an existing certificate (rotation); the name stays.
    pub async fn replace_certificate(&self, rec: &CertificateRecord, change: &Change) -> Result<i64, StoreError> {
        let (mut tx, revision) = self.begin().await?;
        let done = sqlx::query("UPDATE certificates SET id = $1, leaf_der = $2, chain_der = $3, sealed_key = $4, key_format = $5, owner = COALESCE($6, owner), updated_at = $7 WHERE name = $8")
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
        Self::finish(tx, revision, change).await
    }

    /// Remove a certificate. Bindings that present it block the removal unless `drop_bindings`.
    pub async fn delete_certificate(
        &self,
        name: &str,
        drop_bindings: bool,
        change: &Change,
    ) -> Result<i64, StoreError> {
        let (mut tx, revision) = self.begin().await?;
        let bound: Vec<String> =
            sqlx::query("SELECT destination FROM bindings WHERE certificate = $1 ORDER BY destination")
                .bind(name)
                .fetch_all(&mut *tx)
                .await?
                .iter()
                .map(|r| r.get(0))
                .collect();
        if !bound.is_empty() && !drop_bindings {
            return Err(StoreError::StillBound(bound));
        }
        sqlx::query("DELETE FROM bindings WHERE certificate = $1").bind(name).execute(&mut *tx).await?;
        sqlx::query("DELETE FROM grants WHERE certificate = $1").bind(name).execute(&mut *tx).await?;
        let done =
            sqlx::query("DELETE FROM certificates WHERE name = $1").bind(name).execute(&mut *tx).await?.rows_affected();
        if done == 0 {
            return Err(StoreError::NotFound(format!("certificate '{name}'")));
        }
        Self::finish(tx, revision, change).await
    }

    pub async fn anchors(&self) -> Result<Vec<AnchorRecord>, StoreError> {
        let rows = sqlx::query("SELECT name, certs_der, created_at FROM trust_anchors ORDER BY name")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(anchor_from_row).collect())
    }

    pub async fn anchor(&self, name: &str) -> Result<Option<AnchorRecord>, StoreError> {
        let row = sqlx::query("SELECT name, certs_der, created_at FROM trust_anchors WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(anchor_from_row))
    }

    pub async fn insert_anchor(&self, rec: &AnchorRecord, change: &Change) -> Result<i64, StoreError> {
        let (mut tx, revision) = self.begin().await?;
        let taken = format!("a trust anchor named '{}' exists already", rec.name);
        if exists(&mut tx, "SELECT 1 FROM trust_anchors WHERE name = $1", &rec.name).await? {
            return Err(StoreError::Conflict(taken));
        }
        sqlx::query("INSERT INTO trust_anchors (name, certs_der, created_at) VALUES ($1, $2, $3)")
            .bind(&rec.name)
            .bind(join_der(&rec.certs_der))
            .bind(rec.created_at)
            .execute(&mut *tx)
            .await
            .map_err(|e| conflict(e, taken))?;
        Self::finish(tx, revision, change).await
    }

    pub async fn delete_anchor(&self, name: &str, change: &Change) -> Result<i64, StoreError> {
        let (mut tx, revision) = self.begin().await?;
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
        let done = sqlx::query("DELETE FROM trust_anchors WHERE name = $1")
            .bind(name)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if done == 0 {
            return Err(StoreError::NotFound(format!("trust anchor '{name}'")));
        }
        Self::finish(tx, revision, change).await
    }

    pub async fn bindings(&self) -> Result<Vec<BindingRecord>, StoreError> {
        let rows = sqlx::query("SELECT destination, certificate, trust, sni, pins, created_at, updated_at FROM bindings ORDER BY destination")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(binding_from_row).collect())
    }

    /// Create or replace a binding; `Ok((revision, replaced))`. The certificate must exist.
    pub async fn put_binding(&self, rec: &BindingRecord, change: &Change) -> Result<(i64, bool), StoreError> {
        let (mut tx, revision) = self.begin().await?;
        if let Some(cert) = &rec.certificate {
            if !exists(&mut tx, "SELECT 1 FROM certificates WHERE name = $1", cert).await? {
                return Err(StoreError::NotFound(format!("certificate '{cert}'")));
            }
        }
        let replaced = upsert_binding(&mut tx, rec).await?;
        Ok((Self::finish(tx, revision, change).await?, replaced))
    }

    pub async fn delete_binding(&self, destination: &str, change: &Change) -> Result<i64, StoreError> {
        let (mut tx, revision) = self.begin().await?;
        let done = sqlx::query("DELETE FROM bindings WHERE destination = $1")
            .bind(destination)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if done == 0 {
            return Err(StoreError::NotFound(format!("binding for '{destination}'")));
        }
        Self::finish(tx, revision, change).await
    }

    pub async fn services(&self) -> Result<Vec<ServiceRecord>, StoreError> {
        let rows = sqlx::query("SELECT name, url, created_at, updated_at FROM services ORDER BY name")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(service_from_row).collect())
    }

    /// Create or replace a named service, with its `service:NAME` binding when one is given
    /// (without one, the binding of the URL's host applies). `Ok((revision, replaced))`.
    pub async fn put_service(
        &self,
        svc: &ServiceRecord,
        binding: Option<&BindingRecord>,
        change: &Change,
    ) -> Result<(i64, bool), StoreError> {
        let (mut tx, revision) = self.begin().await?;
        if let Some(cert) = binding.and_then(|b| b.certificate.as_ref()) {
            if !exists(&mut tx, "SELECT 1 FROM certificates WHERE name = $1", cert).await? {
                return Err(StoreError::NotFound(format!("certificate '{cert}'")));
            }
        }
        let replaced = exists(&mut tx, "SELECT 1 FROM services WHERE name = $1", &svc.name).await?;
        sqlx::query("INSERT INTO services (name, url, created_at, updated_at) VALUES ($1, $2, $3, $4) ON CONFLICT (name) DO UPDATE SET url = excluded.url, updated_at = excluded.updated_at")
            .bind(&svc.name)
            .bind(&svc.url)
            .bind(svc.created_at)
            .bind(svc.updated_at)
            .execute(&mut *tx)
            .await?;
        match binding {
            Some(b) => {
                upsert_binding(&mut tx, b).await?;
            }
            None => {
                sqlx::query("DELETE FROM bindings WHERE destination = $1")
                    .bind(format!("service:{}", svc.name))
                    .execute(&mut *tx)
                    .await?;
            }
        }
        Ok((Self::finish(tx, revision, change).await?, replaced))
    }

    pub async fn delete_service(&self, name: &str, change: &Change) -> Result<i64, StoreError> {
        let (mut tx, revision) = self.begin().await?;
        let done =
            sqlx::query("DELETE FROM services WHERE name = $1").bind(name).execute(&mut *tx).await?.rows_affected();
        if done == 0 {
            return Err(StoreError::NotFound(format!("service '{name}'")));
        }
        sqlx::query("DELETE FROM bindings WHERE destination = $1")
            .bind(format!("service:{name}"))
            .execute(&mut *tx)
            .await?;
        Self::finish(tx, revision, change).await
    }

    /// Everything the gateway needs, read in one REPEATABLE READ transaction so it is one
    /// consistent revision even while other nodes write.
    pub async fn snapshot(&self) -> Result<Snapshot, StoreError> {
        let mut tx = self.pool.begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY").await?;
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
            .map(service_from_row)
            .collect();
        let apps = sqlx::query("SELECT name, hash, created_at FROM apps ORDER BY name")
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(app_from_row)
            .collect();
        let grants = sqlx::query("SELECT app, certificate, created_at FROM grants ORDER BY app, certificate")
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(grant_from_row)
            .collect();
        tx.rollback().await?;
        Ok(Snapshot { revision, certificates, anchors, bindings, services, apps, grants })
    }

    pub async fn tokens(&self) -> Result<Vec<TokenRecord>, StoreError> {
        let rows =
            sqlx::query("SELECT name, role, hash, created_at FROM tokens ORDER BY name").fetch_all(&self.pool).await?;
        Ok(rows.iter().map(token_from_row).collect())
    }

    pub async fn insert_token(&self, rec: &TokenRecord, change: &Change) -> Result<i64, StoreError> {
        let (mut tx, revision) = self.begin().await?;
        let taken = format!("a token named '{}' exists already", rec.name);
        if exists(&mut tx, "SELECT 1 FROM tokens WHERE name = $1", &rec.name).await? {
            return Err(StoreError::Conflict(taken));
        }
        sqlx::query("INSERT INTO tokens (name, role, hash, created_at) VALUES ($1, $2, $3, $4)")
            .bind(&rec.name)
            .bind(&rec.role)
            .bind(&rec.hash)
            .bind(rec.created_at)
            .execute(&mut *tx)
            .await
            .map_err(|e| conflict(e, taken))?;
        Self::finish(tx, revision, change).await
    }

    pub async fn delete_token(&self, name: &str, change: &Change) -> Result<i64, StoreError> {
        let (mut tx, revision) = self.begin().await?;
        let done =
            sqlx::query("DELETE FROM tokens WHERE name = $1").bind(name).execute(&mut *tx).await?.rows_affected();
        if done == 0 {
            return Err(StoreError::NotFound(format!("token '{name}'")));
        }
        Self::finish(tx, revision, change).await
    }

    pub async fn apps(&self) -> Result<Vec<AppRecord>, StoreError> {
        let rows = sqlx::query("SELECT name, hash, created_at FROM apps ORDER BY name").fetch_all(&self.pool).await?;
        Ok(rows.iter().map(app_from_row).collect())
    }

    pub async fn grants(&self) -> Result<Vec<GrantRecord>, StoreError> {
        let rows = sqlx::query("SELECT app, certificate, created_at FROM grants ORDER BY app, certificate")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(grant_from_row).collect())
    }

    pub async fn insert_app(&self, rec: &AppRecord, change: &Change) -> Result<i64, StoreError> {
        let (mut tx, revision) = self.begin().await?;
        let taken = format!("an app named '{}' exists already", rec.name);
        if exists(&mut tx, "SELECT 1 FROM apps WHERE name = $1", &rec.name).await? {
            return Err(StoreError::Conflict(taken));
        }
        sqlx::query("INSERT INTO apps (name, hash, created_at) VALUES ($1, $2, $3)")
            .bind(&rec.name)
            .bind(&rec.hash)
            .bind(rec.created_at)
            .execute(&mut *tx)
            .await
            .map_err(|e| conflict(e, taken))?;
        Self::finish(tx, revision, change).await
    }

    pub async fn delete_app(&self, name: &str, change: &Change) -> Result<i64, StoreError> {
        let (mut tx, revision) = self.begin().await?;
        let done = sqlx::query("DELETE FROM apps WHERE name = $1").bind(name).execute(&mut *tx).await?.rows_affected();
        if done == 0 {
            return Err(StoreError::NotFound(format!("app '{name}'")));
        }
        sqlx::query("DELETE FROM grants WHERE app = $1").bind(name).execute(&mut *tx).await?;
        Self::finish(tx, revision, change).await
    }

    /// Grant an app the use of a certificate; both must exist. `Ok((revision, new))`.
    pub async fn put_grant(&self, rec: &GrantRecord, change: &Change) -> Result<(i64, bool), StoreError> {
        let (mut tx, revision) = self.begin().await?;
        if !exists(&mut tx, "SELECT 1 FROM apps WHERE name = $1", &rec.app).await? {
            return Err(StoreError::NotFound(format!("app '{}'", rec.app)));
        }
        if !exists(&mut tx, "SELECT 1 FROM certificates WHERE name = $1", &rec.certificate).await? {
            return Err(StoreError::NotFound(format!("certificate '{}'", rec.certificate)));
        }
        let added = sqlx::query(
            "INSERT INTO grants (app, certificate, created_at) VALUES ($1, $2, $3) ON CONFLICT (app, certificate) DO NOTHING",
        )
        .bind(&rec.app)
        .bind(&rec.certificate)
        .bind(rec.created_at)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            > 0;
        Ok((Self::finish(tx, revision, change).await?, added))
    }

    pub async fn delete_grant(&self, app: &str, certificate: &str, change: &Change) -> Result<i64, StoreError> {
        let (mut tx, revision) = self.begin().await?;
        let done = sqlx::query("DELETE FROM grants WHERE app = $1 AND certificate = $2")
            .bind(app)
            .bind(certificate)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if done == 0 {
            return Err(StoreError::NotFound(format!("grant of certificate '{certificate}' to app '{app}'")));
        }
        Self::finish(tx, revision, change).await
    }

    pub async fn audit(&self, limit: i64) -> Result<Vec<AuditRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT seq, at, actor, action, target, result, detail, revision FROM audit ORDER BY seq DESC LIMIT $1",
        )
        .bind(limit.max(0))
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

    /// Announcements of new revisions, from a task that keeps one LISTEN connection open and
    /// opens it again (every second at most) after it is lost. The task ends when the receiver
    /// is dropped or the store is closed. Every (re)connection is announced too, because
    /// changes made while the listener was away were not announced to it.
    pub fn revision_events(&self) -> mpsc::Receiver<StoreEvent> {
        let (tx, rx) = mpsc::channel(64);
        let pool = self.pool.clone();
        tokio::spawn(async move {
            while !tx.is_closed() && !pool.is_closed() {
                let mut listener = match listen(&pool).await {
                    Ok(l) => l,
                    Err(e) => {
                        if tx.send(StoreEvent::Lost(e.to_string())).await.is_err() {
                            return;
                        }
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        continue;
                    }
                };
                if tx.send(StoreEvent::Listening).await.is_err() {
                    return;
                }
                loop {
                    let next = tokio::select! {
                        _ = tx.closed() => return,
                        n = listener.try_recv() => n,
                    };
                    let event = match next {
                        Ok(Some(n)) => StoreEvent::Changed(n.payload().parse().unwrap_or(-1)),
                        Ok(None) => StoreEvent::Lost("the LISTEN connection was lost".into()),
                        Err(e) => StoreEvent::Lost(e.to_string()),
                    };
                    let lost = matches!(event, StoreEvent::Lost(_));
                    if tx.send(event).await.is_err() {
                        return;
                    }
                    if lost {
                        break;
                    }
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        });
        rx
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

async fn listen(pool: &PgPool) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.eager_reconnect(false);
    listener.listen(CHANNEL).await?;
    Ok(listener)
}

/// Apply the schema steps this store lacks, one transaction each, holding an advisory lock so
/// that nodes starting together do not race.
async fn migrate(conn: &mut PgConnection) -> Result<(), StoreError> {
    let newest = MIGRATIONS.last().map(|m| m.0).unwrap_or(0);
    let mut tx = conn.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(MIGRATION_LOCK).execute(&mut *tx).await?;
    sqlx::query("CREATE TABLE IF NOT EXISTS schema_version (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)")
        .execute(&mut *tx)
        .await?;
    let current: i64 =
        sqlx::query("SELECT COALESCE(MAX(version), 0)::BIGINT FROM schema_version").fetch_one(&mut *tx).await?.get(0);
    if current > newest {
        return Err(StoreError::Unavailable(format!(
            "the store has schema version {current}, newer than this certgate knows ({newest}): upgrade certgate"
        )));
    }
    for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > current) {
        sqlx::raw_sql(sqlx::AssertSqlSafe(*sql)).execute(&mut *tx).await?;
        sqlx::query("INSERT INTO schema_version (version, applied_at) VALUES ($1, $2)")
            .bind(version)
            .bind(now_unix())
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(())
}

pub(super) async fn notify(tx: &mut Transaction<'static, Postgres>, revision: i64) -> Result<(), StoreError> {
    sqlx::query("SELECT pg_notify($1, $2)").bind(CHANNEL).bind(revision.to_string()).execute(&mut **tx).await?;
    Ok(())
}

async fn exists(tx: &mut Transaction<'static, Postgres>, sql: &'static str, key: &str) -> Result<bool, StoreError> {
    Ok(sqlx::query(sql).bind(key).fetch_optional(&mut **tx).await?.is_some())
}

pub(super) async fn upsert_binding(
    tx: &mut Transaction<'static, Postgres>,
    rec: &BindingRecord,
) -> Result<bool, StoreError> {
    let replaced = exists(tx, "SELECT 1 FROM bindings WHERE destination = $1", &rec.destination).await?;
    sqlx::query("INSERT INTO bindings (destination, certificate, trust, sni, pins, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7) \
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

/// A unique violation is a name taken (the check before the insert normally catches it).
fn conflict(e: sqlx::Error, message: String) -> StoreError {
    match &e {
        sqlx::Error::Database(d) if d.is_unique_violation() => StoreError::Conflict(message),
        _ => StoreError::Database(e),
    }
}

/// Errors that mean "the server cannot be reached" rather than "the request was wrong":
/// I/O and TLS failures, pool timeouts, and the SQLSTATE classes 08 (connection exception) and
/// 57P (operator intervention: shutdown, crash, cannot connect now).
fn is_unreachable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Protocol(_) => true,
        sqlx::Error::Database(d) => d.code().is_some_and(|c| c.starts_with("08") || c.starts_with("57P")),
        _ => false,
    }
}

fn cert_from_row(r: &PgRow) -> CertificateRecord {
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

fn binding_from_row(r: &PgRow) -> BindingRecord {
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

fn anchor_from_row(r: &PgRow) -> AnchorRecord {
    let certs: Vec<u8> = r.get(1);
    AnchorRecord { name: r.get(0), certs_der: split_der(&certs), created_at: r.get(2) }
}

fn service_from_row(r: &PgRow) -> ServiceRecord {
    ServiceRecord { name: r.get(0), url: r.get(1), created_at: r.get(2), updated_at: r.get(3) }
}

fn token_from_row(r: &PgRow) -> TokenRecord {
    TokenRecord { name: r.get(0), role: r.get(1), hash: r.get(2), created_at: r.get(3) }
}

fn app_from_row(r: &PgRow) -> AppRecord {
    AppRecord { name: r.get(0), hash: r.get(1), created_at: r.get(2) }
}

fn grant_from_row(r: &PgRow) -> GrantRecord {
    GrantRecord { app: r.get(0), certificate: r.get(1), created_at: r.get(2) }
}
