//! The multi-node backend: one PostgreSQL database shared by every gateway node. What
//! PostgreSQL does its own way:
//!
//! - Writers are serialised by the single `revision` row: every change transaction starts
//!   with `UPDATE revision ... RETURNING value` (see [`super::core`]), which holds that row's
//!   lock until commit, so checks made after it (name taken, still bound) see every earlier
//!   change and two nodes changing the store at once both land, one after the other.
//! - Each change sends `pg_notify('certgate_revision', revision)` inside its transaction:
//!   delivered at commit, it tells every node's gateway to reload at once (see
//!   [`SqlStore::revision_events`]).
//! - A snapshot is one REPEATABLE READ transaction; migrations hold an advisory lock so that
//!   nodes starting together do not race; a lost or refused connection is reported as the
//!   store being unavailable, naming the server.

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgConnection, PgListener, PgPool, PgPoolOptions};
use sqlx::{Connection, Postgres, Transaction};
use tokio::sync::mpsc;

use super::core::{schema_steps, Dialect, SqlStore};
use super::{StoreError, StoreEvent};

/// The LISTEN/NOTIFY channel every change is announced on, with the new revision as payload.
pub const CHANNEL: &str = "certgate_revision";
/// How long an operation waits for a connection before the store counts as unreachable.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Key of the advisory lock that keeps two nodes from migrating the schema at the same time.
const MIGRATION_LOCK: i64 = 0x6365_7274_6761_7465; // "certgate"

pub struct PgDialect {
    /// `host:port/database`, for messages (never the password).
    target: String,
}

impl Dialect for PgDialect {
    type Db = Postgres;
    const BEGIN_CHANGE: &'static str = "BEGIN";
    const BEGIN_SNAPSHOT: &'static str = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY";
    const MIGRATIONS: &'static [(i64, &'static str)] = schema_steps!("postgres");

    async fn lock_schema(tx: &mut Transaction<'_, Postgres>) -> Result<(), sqlx::Error> {
        sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(MIGRATION_LOCK).execute(&mut **tx).await?;
        Ok(())
    }

    async fn announce(tx: &mut Transaction<'_, Postgres>, revision: i64) -> Result<(), sqlx::Error> {
        sqlx::query("SELECT pg_notify($1, $2)").bind(CHANNEL).bind(revision.to_string()).execute(&mut **tx).await?;
        Ok(())
    }

    /// Turn a lost or refused connection into a message that says so and names the server.
    fn explain(&self, e: StoreError) -> StoreError {
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
}

impl SqlStore<PgDialect> {
    /// Connect, bring the schema up to date, and keep a lazy pool.
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
        Self::migrate(&mut conn).await.map_err(|e| match e {
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
        Ok(SqlStore { pool, dialect: PgDialect { target } })
    }

    /// `host:port/database` of the store, for messages.
    pub fn target(&self) -> &str {
        &self.dialect.target
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
}

async fn listen(pool: &PgPool) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.eager_reconnect(false);
    listener.listen(CHANNEL).await?;
    Ok(listener)
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
