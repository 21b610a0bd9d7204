//! Sekisho's persistent state behind one type, [`Store`].
//!
//! The same code runs on SQLite (the embedded default, one file in the data directory) and on
//! PostgreSQL (several relays sharing one database), through sqlx's `Any` driver. Queries are
//! written in the portable subset (`$n` placeholders, `BIGINT` times in ms, no booleans, no
//! `RETURNING`); each backend has its own copy of the versioned migrations under `migrations/`.
//!
//! Every row belongs to a tenant and every tenant-facing query takes the tenant id, so one
//! tenant's admin API cannot name another tenant's rows. Secrets never reach this crate in
//! clear: API keys, tokens and recovery codes arrive as SHA-256 hashes, passwords as argon2id
//! PHC strings, TOTP secrets sealed. Relayed payload is never stored.

mod audit;
mod bastion;
pub mod domain;
mod identity;
mod rows;
mod tunnel;
pub mod zone;

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub use audit::{AuditFilter, AuditSummary, PHASE_CLOSED, PHASE_OPENED};
pub use domain::{AgentId, Protocol, Role, RouteId, ServiceId, TenantId, UnknownWord, UserId};
pub use rows::*;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Executor};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("unsupported database url `{0}`: use sqlite://PATH or postgres://…")]
    Url(String),
    #[error("{kind} `{name}` already exists")]
    Conflict { kind: &'static str, name: String },
    #[error("{kind} `{name}` not found")]
    NotFound { kind: &'static str, name: String },
    #[error("{kind} `{name}` is still used by {used_by}")]
    InUse { kind: &'static str, name: String, used_by: String },
    #[error("tenant `{tenant}` has reached its plan limit of {limit} {what}")]
    Limit { tenant: String, what: &'static str, limit: i64 },
}

/// Why an enrollment token was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenRejection {
    #[error("enrollment token is not known to this relay")]
    Unknown,
    #[error("enrollment token was already used")]
    Used,
    #[error("enrollment token has expired")]
    Expired,
    #[error("tenant has reached its plan limit of {0} agents")]
    AgentLimit(i64),
}

/// Which database a store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

fn conflict(e: sqlx::Error, kind: &'static str, name: &str) -> StoreError {
    match &e {
        sqlx::Error::Database(d) if d.is_unique_violation() => StoreError::Conflict { kind, name: name.to_owned() },
        _ => StoreError::Db(e),
    }
}

fn not_found(kind: &'static str, name: &str) -> StoreError {
    StoreError::NotFound { kind, name: name.to_owned() }
}

/// Set on every SQLite connection. The page cache is 1 MiB per connection (SQLite's default is 2
/// MiB) and the pool holds four: audit writes fill the caches with index pages that the OS page
/// cache holds anyway, and a relay that has served a burst of new connections keeps them full
/// (bench/README.md, "Memory: one jemalloc arena").
/// How long a query waits for a PostgreSQL connection before it fails.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

const SQLITE_SETUP: &str = "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
                            PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 5000; \
                            PRAGMA cache_size = -1024;";

/// The relay's database.
#[derive(Clone, Debug)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
}

impl Store {
    /// Begins a transaction that will write. On SQLite it takes the write lock at once (`BEGIN
    /// IMMEDIATE`), waiting up to the busy timeout for it: a deferred transaction that reads first
    /// cannot wait when it later needs to write and another connection has written meanwhile, and
    /// fails with "database is locked" (two agents enrolling at the same moment did).
    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>, sqlx::Error> {
        match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await,
            Backend::Postgres => self.pool.begin().await,
        }
    }

    /// Opens (creating if needed) the SQLite database at `path` and applies migrations.
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        Self::connect(&format!("sqlite://{}?mode=rwc", path.display())).await
    }

    /// Connects to `sqlite://PATH` or `postgres://USER@HOST:PORT/DB` and applies migrations.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            return Err(StoreError::Url(url.to_owned()));
        };
        let opts: AnyConnectOptions = url.parse()?;
        let pool = match backend {
            Backend::Sqlite => {
                AnyPoolOptions::new()
                    .max_connections(4)
                    // A file the process holds open cannot go away between uses: no ping (one
                    // more round trip to the database's thread) before each query.
                    .test_before_acquire(false)
                    .after_connect(|conn, _| {
                        Box::pin(async move {
                            conn.execute(SQLITE_SETUP).await?;
                            Ok(())
                        })
                    })
                    .connect_with(opts)
                    .await?
            }
            Backend::Postgres => {
                AnyPoolOptions::new()
                    .max_connections(8)
                    // A database that does not answer is an error within 5 s, so a decision that
                    // needs it is refused (`store_unavailable`) before the client's own timeouts
                    // (an agent waits 10 s for its hello to be answered) turn it into silence.
                    .acquire_timeout(ACQUIRE_TIMEOUT)
                    .connect_with(opts)
                    .await?
            }
        };
        match backend {
            Backend::Sqlite => sqlx::migrate!("./migrations/sqlite").run(&pool).await?,
            Backend::Postgres => sqlx::migrate!("./migrations/postgres").run(&pool).await?,
        }
        Ok(Store { pool, backend })
    }

    /// A consistent copy of this SQLite database in the new file `dest` (`VACUUM INTO`: one read
    /// transaction, so a running relay goes on writing meanwhile). PostgreSQL is copied with
    /// `pg_dump` instead (this fails there).
    pub async fn snapshot_sqlite(&self, dest: &Path) -> Result<(), StoreError> {
        sqlx::query("VACUUM INTO ?").bind(dest.display().to_string()).execute(&self.pool).await?;
        Ok(())
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Closes the pool (waits for connections to be returned).
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

#[cfg(test)]
mod tests;
