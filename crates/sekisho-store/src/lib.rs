//! Sekisho's persistent state behind one type, [`Store`].
//!
//! SQLite (through sqlx) is the embedded default; queries are written in the portable subset with
//! `$n` placeholders so the same code can later run on PostgreSQL. Migrations are versioned files
//! under `migrations/`, embedded in the binary and applied on open.
//!
//! Secrets never reach this crate in clear: API keys and enrollment tokens arrive as SHA-256 hashes.
//! Relayed payload is never stored.

mod rows;

use std::path::Path;
use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

pub use rows::*;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("{kind} `{name}` already exists")]
    Conflict { kind: &'static str, name: String },
    #[error("{kind} `{name}` not found")]
    NotFound { kind: &'static str, name: String },
    #[error("{kind} `{name}` is still used by {used_by}")]
    InUse { kind: &'static str, name: String, used_by: String },
}

/// Why an enrollment token was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenRejection {
    #[error("enrollment token is not known to this relay")]
    Unknown,
    #[error("enrollment token was already used")]
    Used,
    #[error("enrollment token has expired")]
    Expired,
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

/// The relay's database.
#[derive(Clone, Debug)]
pub struct Store {
    pool: SqlitePool,
}

impl Store {
    /// Opens (creating if needed) the SQLite database at `path` and applies migrations.
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        let opts = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(std::time::Duration::from_secs(5));
        let pool = SqlitePoolOptions::new().max_connections(4).connect_with(opts).await?;
        sqlx::migrate!("./migrations").run(&pool).await?;
        Ok(Store { pool })
    }

    // --- API keys -------------------------------------------------------------------------

    pub async fn api_key_count(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query("SELECT COUNT(*) FROM api_keys").fetch_one(&self.pool).await?.try_get(0)?)
    }

    pub async fn insert_api_key(&self, k: &ApiKey) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO api_keys (id, tenant_id, name, key_hash, scopes, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&k.id)
        .bind(&k.tenant_id)
        .bind(&k.name)
        .bind(&k.key_hash)
        .bind(&k.scopes)
        .bind(k.created_at)
        .bind(k.expires_at)
        .execute(&self.pool)
        .await
        .map_err(|e| conflict(e, "api key", &k.name))?;
        Ok(())
    }

    pub async fn find_api_key(&self, key_hash: &str) -> Result<Option<ApiKey>, StoreError> {
        Ok(sqlx::query_as::<_, ApiKey>("SELECT * FROM api_keys WHERE key_hash = $1")
            .bind(key_hash)
            .fetch_optional(&self.pool)
            .await?)
    }

    // --- Enrollment tokens ----------------------------------------------------------------

    pub async fn insert_token(&self, t: &EnrollmentToken) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO enrollment_tokens (id, tenant_id, token_hash, name, role, site, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&t.id)
        .bind(&t.tenant_id)
        .bind(&t.token_hash)
        .bind(&t.name)
        .bind(&t.role)
        .bind(&t.site)
        .bind(t.created_at)
        .bind(t.expires_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Marks the token used and creates the agent it enrolls, atomically. A token can be spent
    /// once, before it expires.
    pub async fn enroll(
        &self,
        token_hash: &str,
        agent: &Agent,
    ) -> Result<Result<EnrollmentToken, TokenRejection>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let Some(token) = sqlx::query_as::<_, EnrollmentToken>("SELECT * FROM enrollment_tokens WHERE token_hash = $1")
            .bind(token_hash)
            .fetch_optional(&mut *tx)
            .await?
        else {
            return Ok(Err(TokenRejection::Unknown));
        };
        if token.used_at.is_some() {
            return Ok(Err(TokenRejection::Used));
        }
        let now = now_ms();
        if token.expires_at <= now {
            return Ok(Err(TokenRejection::Expired));
        }
        let updated =
            sqlx::query("UPDATE enrollment_tokens SET used_at = $1, agent_id = $2 WHERE id = $3 AND used_at IS NULL")
                .bind(now)
                .bind(&agent.id)
                .bind(&token.id)
                .execute(&mut *tx)
                .await?;
        if updated.rows_affected() != 1 {
            return Ok(Err(TokenRejection::Used));
        }
        sqlx::query(
            "INSERT INTO agents (id, tenant_id, name, role, site, sign_pub, noise_pub, created_at, hostname, version) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(&agent.id)
        .bind(&token.tenant_id)
        .bind(&token.name)
        .bind(&token.role)
        .bind(&token.site)
        .bind(&agent.sign_pub)
        .bind(&agent.noise_pub)
        .bind(now)
        .bind(&agent.hostname)
        .bind(&agent.version)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Ok(token))
    }

    // --- Agents ---------------------------------------------------------------------------

    pub async fn get_agent(&self, id: &str) -> Result<Option<Agent>, StoreError> {
        Ok(sqlx::query_as::<_, Agent>("SELECT * FROM agents WHERE id = $1").bind(id).fetch_optional(&self.pool).await?)
    }

    pub async fn list_agents(&self) -> Result<Vec<Agent>, StoreError> {
        Ok(sqlx::query_as::<_, Agent>("SELECT * FROM agents ORDER BY created_at, id").fetch_all(&self.pool).await?)
    }

    /// Records that an agent connected or was last heard from.
    pub async fn touch_agent(&self, id: &str, addr: &str, version: &str, hostname: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE agents SET last_seen = $1, last_addr = $2, version = $3, hostname = $4 WHERE id = $5")
            .bind(now_ms())
            .bind(addr)
            .bind(version)
            .bind(hostname)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn seen_agent(&self, id: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE agents SET last_seen = $1 WHERE id = $2")
            .bind(now_ms())
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Revokes an agent: its key is refused from now on. Its services and routes must be
    /// removed first.
    pub async fn revoke_agent(&self, id: &str) -> Result<(), StoreError> {
        let used: i64 = sqlx::query(
            "SELECT (SELECT COUNT(*) FROM services WHERE agent_id = $1) + (SELECT COUNT(*) FROM routes WHERE front_agent_id = $1)",
        )
        .bind(id)
        .fetch_one(&self.pool)
        .await?
        .try_get(0)?;
        if used > 0 {
            return Err(StoreError::InUse {
                kind: "agent",
                name: id.to_owned(),
                used_by: format!("{used} services or routes"),
            });
        }
        let r = sqlx::query("UPDATE agents SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
            .bind(now_ms())
            .bind(id)
            .execute(&self.pool)
            .await?;
        if r.rows_affected() == 0 {
            return Err(StoreError::NotFound { kind: "agent", name: id.to_owned() });
        }
        Ok(())
    }

    // --- Services -------------------------------------------------------------------------

    pub async fn insert_service(&self, s: &Service) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO services (id, tenant_id, name, agent_id, target, protocol, edge_listen, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&s.id)
        .bind(&s.tenant_id)
        .bind(&s.name)
        .bind(&s.agent_id)
        .bind(&s.target)
        .bind(&s.protocol)
        .bind(&s.edge_listen)
        .bind(s.created_at)
        .execute(&self.pool)
        .await
        .map_err(|e| conflict(e, "service", &s.name))?;
        Ok(())
    }

    pub async fn list_services(&self) -> Result<Vec<Service>, StoreError> {
        Ok(sqlx::query_as::<_, Service>("SELECT * FROM services ORDER BY name").fetch_all(&self.pool).await?)
    }

    /// Deletes a service by name or id; refuses while routes lead to it.
    pub async fn delete_service(&self, name_or_id: &str) -> Result<Service, StoreError> {
        let Some(svc) = sqlx::query_as::<_, Service>("SELECT * FROM services WHERE name = $1 OR id = $1")
            .bind(name_or_id)
            .fetch_optional(&self.pool)
            .await?
        else {
            return Err(StoreError::NotFound { kind: "service", name: name_or_id.to_owned() });
        };
        let routes: i64 = sqlx::query("SELECT COUNT(*) FROM routes WHERE service_id = $1")
            .bind(&svc.id)
            .fetch_one(&self.pool)
            .await?
            .try_get(0)?;
        if routes > 0 {
            return Err(StoreError::InUse { kind: "service", name: svc.name, used_by: format!("{routes} routes") });
        }
        sqlx::query("DELETE FROM services WHERE id = $1").bind(&svc.id).execute(&self.pool).await?;
        Ok(svc)
    }

    // --- Routes ---------------------------------------------------------------------------

    pub async fn insert_route(&self, r: &Route) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO routes (id, tenant_id, front_agent_id, listen, service_id, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&r.id)
        .bind(&r.tenant_id)
        .bind(&r.front_agent_id)
        .bind(&r.listen)
        .bind(&r.service_id)
        .bind(r.created_at)
        .execute(&self.pool)
        .await
        .map_err(|e| conflict(e, "route on listen address", &r.listen))?;
        Ok(())
    }

    pub async fn list_routes(&self) -> Result<Vec<Route>, StoreError> {
        Ok(sqlx::query_as::<_, Route>("SELECT * FROM routes ORDER BY created_at, id").fetch_all(&self.pool).await?)
    }

    pub async fn delete_route(&self, id: &str) -> Result<(), StoreError> {
        let r = sqlx::query("DELETE FROM routes WHERE id = $1").bind(id).execute(&self.pool).await?;
        if r.rows_affected() == 0 {
            return Err(StoreError::NotFound { kind: "route", name: id.to_owned() });
        }
        Ok(())
    }

    // --- Events ---------------------------------------------------------------------------

    pub async fn insert_event(&self, e: &NewEvent) -> Result<(), StoreError> {
        self.insert_events(std::slice::from_ref(e)).await
    }

    /// Inserts a batch of events in one transaction.
    pub async fn insert_events(&self, events: &[NewEvent]) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        for e in events {
            sqlx::query(
                "INSERT INTO events (tenant_id, at, kind, agent_id, subject, target, decision, reason, source, bytes_up, bytes_down) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            )
            .bind("default")
            .bind(e.at)
            .bind(&e.kind)
            .bind(&e.agent_id)
            .bind(&e.subject)
            .bind(&e.target)
            .bind(&e.decision)
            .bind(&e.reason)
            .bind(&e.source)
            .bind(e.bytes_up)
            .bind(e.bytes_down)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn list_events(&self, limit: i64) -> Result<Vec<Event>, StoreError> {
        Ok(sqlx::query_as::<_, Event>("SELECT * FROM events ORDER BY id DESC LIMIT $1")
            .bind(limit)
            .fetch_all(&self.pool)
            .await?)
    }
}

#[cfg(test)]
mod tests;
