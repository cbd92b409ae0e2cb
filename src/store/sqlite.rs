//! The embedded default: one SQLite file in WAL mode. What SQLite does its own way: a change
//! takes the write lock up front (`BEGIN IMMEDIATE`), so two writers queue on the busy
//! timeout instead of one failing when it upgrades a read lock; nobody is told of changes
//! (writers are on the same machine and are found by polling).

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::Sqlite;

use super::core::{schema_steps, Dialect, SqlStore};
use super::StoreError;

pub struct SqliteDialect;

/// `BEGIN IMMEDIATE` takes the write lock, for changes and migrations alike.
impl Dialect for SqliteDialect {
    type Db = Sqlite;
    const BEGIN_CHANGE: &'static str = "BEGIN IMMEDIATE";
    const BEGIN_SNAPSHOT: &'static str = "BEGIN";
    const MIGRATIONS: &'static [(i64, &'static str)] = schema_steps!("sqlite");
}

impl SqlStore<SqliteDialect> {
    /// Open (creating the file and its folder, mode 0700, if needed) and bring the schema up
    /// to date. Foreign keys are enforced on every connection.
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
        Self::migrate(&mut *pool.acquire().await?).await?;
        Ok(SqlStore { pool, dialect: SqliteDialect })
    }
}
