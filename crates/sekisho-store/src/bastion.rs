//! The SSH bastion's rows: users' SSH keys, target credentials, the TOTP replay guard and
//! session recordings.

use crate::domain::{ServiceId, TenantId, UserId};
use crate::{Recording, RecordingFilter, SshKey, SshTarget, Store, StoreError, conflict, not_found};

impl Store {
    // --- Users' SSH keys --------------------------------------------------------------------

    pub async fn insert_ssh_key(&self, k: &SshKey) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO user_ssh_keys (id, tenant_id, user_id, name, public_key, fingerprint, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&k.id)
        .bind(&k.tenant_id)
        .bind(&k.user_id)
        .bind(&k.name)
        .bind(&k.public_key)
        .bind(&k.fingerprint)
        .bind(k.created_at)
        .execute(&self.pool)
        .await
        .map_err(|e| conflict(e, "ssh key", &k.fingerprint))?;
        Ok(())
    }

    /// A tenant's SSH keys, or one user's.
    pub async fn list_ssh_keys(&self, tenant: &TenantId, user_id: Option<&str>) -> Result<Vec<SshKey>, StoreError> {
        Ok(sqlx::query_as::<_, SshKey>(
            "SELECT * FROM user_ssh_keys WHERE tenant_id = $1 AND ($2 = '' OR user_id = $2) ORDER BY created_at, id",
        )
        .bind(tenant)
        .bind(user_id.unwrap_or_default())
        .fetch_all(&self.pool)
        .await?)
    }

    /// The key with this fingerprint, if a user of the tenant registered it.
    pub async fn find_ssh_key(&self, tenant: &TenantId, fingerprint: &str) -> Result<Option<SshKey>, StoreError> {
        Ok(sqlx::query_as::<_, SshKey>("SELECT * FROM user_ssh_keys WHERE tenant_id = $1 AND fingerprint = $2")
            .bind(tenant)
            .bind(fingerprint)
            .fetch_optional(&self.pool)
            .await?)
    }

    /// Removes a key by id or fingerprint.
    pub async fn delete_ssh_key(&self, tenant: &TenantId, key: &str) -> Result<(), StoreError> {
        let r = sqlx::query("DELETE FROM user_ssh_keys WHERE tenant_id = $1 AND (id = $2 OR fingerprint = $2)")
            .bind(tenant)
            .bind(key)
            .execute(&self.pool)
            .await?;
        if r.rows_affected() == 0 {
            return Err(not_found("ssh key", key));
        }
        Ok(())
    }

    /// Spends a TOTP time step: true only if it is later than the last one this user spent, so
    /// a code seen once cannot be replayed.
    pub async fn use_totp_step(&self, user_id: &UserId, step: i64) -> Result<bool, StoreError> {
        let r = sqlx::query(
            "UPDATE users SET totp_last_step = $1 WHERE id = $2 AND (totp_last_step IS NULL OR totp_last_step < $1)",
        )
        .bind(step)
        .bind(user_id)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    // --- Target credentials -----------------------------------------------------------------

    /// Creates or replaces a target's credential.
    pub async fn put_ssh_target(&self, t: &SshTarget) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query("DELETE FROM ssh_targets WHERE service_id = $1").bind(&t.service_id).execute(&mut *tx).await?;
        sqlx::query(
            "INSERT INTO ssh_targets (service_id, tenant_id, login, secret_kind, secret, host_key, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&t.service_id)
        .bind(&t.tenant_id)
        .bind(&t.login)
        .bind(&t.secret_kind)
        .bind(&t.secret)
        .bind(&t.host_key)
        .bind(t.updated_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn get_ssh_target(&self, service_id: &ServiceId) -> Result<Option<SshTarget>, StoreError> {
        Ok(sqlx::query_as::<_, SshTarget>("SELECT * FROM ssh_targets WHERE service_id = $1")
            .bind(service_id)
            .fetch_optional(&self.pool)
            .await?)
    }

    /// Pins a target's host key the first time it is seen; false if another key got there first.
    pub async fn pin_host_key(&self, service_id: &ServiceId, host_key: &str) -> Result<bool, StoreError> {
        let r = sqlx::query("UPDATE ssh_targets SET host_key = $1 WHERE service_id = $2 AND host_key = ''")
            .bind(host_key)
            .bind(service_id)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() == 1)
    }

    // --- Recordings -------------------------------------------------------------------------

    pub async fn insert_recording(&self, r: &Recording) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO recordings (id, tenant_id, session_id, user_name, target, protocol, kind, command, \
             source_ip, started_at, ended_at, bytes, sha256, commands, files) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
        )
        .bind(&r.id)
        .bind(&r.tenant_id)
        .bind(&r.session_id)
        .bind(&r.user_name)
        .bind(&r.target)
        .bind(&r.protocol)
        .bind(&r.kind)
        .bind(&r.command)
        .bind(&r.source_ip)
        .bind(r.started_at)
        .bind(r.ended_at)
        .bind(r.bytes)
        .bind(&r.sha256)
        .bind(&r.commands)
        .bind(&r.files)
        .execute(&self.pool)
        .await
        .map_err(|e| conflict(e, "recording", &r.id))?;
        Ok(())
    }

    /// Stores a finished recording's summary.
    pub async fn finish_recording(&self, r: &Recording) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE recordings SET ended_at = $1, bytes = $2, sha256 = $3, commands = $4, files = $5 WHERE id = $6",
        )
        .bind(r.ended_at)
        .bind(r.bytes)
        .bind(&r.sha256)
        .bind(&r.commands)
        .bind(&r.files)
        .bind(&r.id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn get_recording(&self, tenant: &TenantId, id: &str) -> Result<Option<Recording>, StoreError> {
        Ok(sqlx::query_as::<_, Recording>("SELECT * FROM recordings WHERE tenant_id = $1 AND id = $2")
            .bind(tenant)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?)
    }

    /// Every finished recording of every tenant, for `audit verify`.
    pub async fn all_recordings(&self) -> Result<Vec<Recording>, StoreError> {
        Ok(sqlx::query_as::<_, Recording>("SELECT * FROM recordings ORDER BY tenant_id, started_at, id")
            .fetch_all(&self.pool)
            .await?)
    }

    /// Searches a tenant's recordings, newest first.
    pub async fn search_recordings(
        &self,
        tenant: &TenantId,
        f: &RecordingFilter,
    ) -> Result<Vec<Recording>, StoreError> {
        let like = |s: &str| {
            let escaped = s.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
            format!("%{escaped}%")
        };
        let mut sql = String::from("SELECT * FROM recordings WHERE tenant_id = $1");
        let mut binds: Vec<String> = Vec::new();
        // Each `?` of a clause takes the next placeholder number and its value.
        let mut add = |sql: &mut String, clause: &str, values: &[&str]| {
            let mut parts = clause.split('?');
            sql.push_str(parts.next().unwrap_or_default());
            for (part, v) in parts.zip(values) {
                binds.push((*v).to_owned());
                sql.push_str(&format!("${}{part}", binds.len() + 1));
            }
        };
        if let Some(v) = &f.user {
            add(&mut sql, " AND user_name = ?", &[v]);
        }
        if let Some(v) = &f.target {
            add(&mut sql, " AND target = ?", &[v]);
        }
        if let Some(v) = &f.source_ip {
            add(&mut sql, " AND source_ip = ?", &[v]);
        }
        if let Some(v) = &f.protocol {
            add(&mut sql, " AND (protocol = ? OR kind = ?)", &[v, v]);
        }
        if let Some(v) = &f.command {
            let pattern = like(v);
            add(&mut sql, " AND (commands LIKE ? ESCAPE '\\' OR command LIKE ? ESCAPE '\\')", &[&pattern, &pattern]);
        }
        let n = binds.len();
        if f.since.is_some() {
            sql.push_str(&format!(" AND started_at >= ${}", n + 2));
        }
        if f.until.is_some() {
            let k = n + 2 + usize::from(f.since.is_some());
            sql.push_str(&format!(" AND started_at < ${k}"));
        }
        let k = n + 2 + usize::from(f.since.is_some()) + usize::from(f.until.is_some());
        sql.push_str(&format!(" ORDER BY started_at DESC, id LIMIT ${k}"));
        let mut q = sqlx::query_as::<_, Recording>(&sql).bind(tenant);
        for b in binds {
            q = q.bind(b);
        }
        for t in [f.since, f.until].into_iter().flatten() {
            q = q.bind(t);
        }
        q = q.bind(if f.limit <= 0 { 100 } else { f.limit.min(10_000) });
        Ok(q.fetch_all(&self.pool).await?)
    }
}
