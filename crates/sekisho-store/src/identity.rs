//! Tenants, users, groups (roles), recovery codes and API keys.

use sqlx::Row;

use crate::domain::{TenantId, UserId};
use crate::{ApiKey, Group, OidcProvider, Store, StoreError, Tenant, User, conflict, not_found, now_ms};

impl Store {
    // --- Tenants --------------------------------------------------------------------------

    pub async fn insert_tenant(&self, t: &Tenant) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO tenants (id, name, max_agents, retention_days, utc_offset_minutes, created_at, time_zone) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&t.id)
        .bind(&t.name)
        .bind(t.max_agents)
        .bind(t.retention_days)
        .bind(t.utc_offset_minutes)
        .bind(t.created_at)
        .bind(&t.time_zone)
        .execute(&self.pool)
        .await
        .map_err(|e| conflict(e, "tenant", &t.name))?;
        Ok(())
    }

    pub async fn update_tenant(&self, t: &Tenant) -> Result<(), StoreError> {
        let r = sqlx::query(
            "UPDATE tenants SET max_agents = $1, retention_days = $2, utc_offset_minutes = $3, time_zone = $4 \
             WHERE id = $5",
        )
        .bind(t.max_agents)
        .bind(t.retention_days)
        .bind(t.utc_offset_minutes)
        .bind(&t.time_zone)
        .bind(&t.id)
        .execute(&self.pool)
        .await?;
        if r.rows_affected() == 0 {
            return Err(not_found("tenant", &t.name));
        }
        Ok(())
    }

    pub async fn list_tenants(&self) -> Result<Vec<Tenant>, StoreError> {
        Ok(sqlx::query_as::<_, Tenant>("SELECT * FROM tenants ORDER BY name").fetch_all(&self.pool).await?)
    }

    /// A tenant by id or name.
    pub async fn get_tenant(&self, key: &str) -> Result<Option<Tenant>, StoreError> {
        Ok(sqlx::query_as::<_, Tenant>("SELECT * FROM tenants WHERE id = $1 OR name = $1")
            .bind(key)
            .fetch_optional(&self.pool)
            .await?)
    }

    // --- Users ----------------------------------------------------------------------------

    pub async fn insert_user(&self, u: &User) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO users (id, tenant_id, name, display_name, password_hash, totp_secret, totp_enabled, created_at, \
             time_zone) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&u.id)
        .bind(&u.tenant_id)
        .bind(&u.name)
        .bind(&u.display_name)
        .bind(&u.password_hash)
        .bind(&u.totp_secret)
        .bind(i64::from(u.totp_enabled))
        .bind(u.created_at)
        .bind(&u.time_zone)
        .execute(&self.pool)
        .await
        .map_err(|e| conflict(e, "user", &u.name))?;
        Ok(())
    }

    /// Sets a user's own time zone (`""`: the tenant's). The caller checked the name.
    pub async fn set_user_time_zone(&self, tenant: &TenantId, user: &UserId, zone: &str) -> Result<(), StoreError> {
        let r = sqlx::query("UPDATE users SET time_zone = $1 WHERE id = $2 AND tenant_id = $3")
            .bind(zone)
            .bind(user)
            .bind(tenant)
            .execute(&self.pool)
            .await?;
        if r.rows_affected() == 0 {
            return Err(not_found("user", user.as_ref()));
        }
        Ok(())
    }

    /// A tenant's user by name or id.
    pub async fn get_user(&self, tenant: &TenantId, key: &str) -> Result<Option<User>, StoreError> {
        Ok(sqlx::query_as::<_, User>("SELECT * FROM users WHERE (name = $1 OR id = $1) AND tenant_id = $2")
            .bind(key)
            .bind(tenant)
            .fetch_optional(&self.pool)
            .await?)
    }

    pub async fn get_user_by_id(&self, id: &UserId) -> Result<Option<User>, StoreError> {
        Ok(sqlx::query_as::<_, User>("SELECT * FROM users WHERE id = $1").bind(id).fetch_optional(&self.pool).await?)
    }

    pub async fn list_users(&self, tenant: &TenantId) -> Result<Vec<User>, StoreError> {
        Ok(sqlx::query_as::<_, User>("SELECT * FROM users WHERE tenant_id = $1 ORDER BY name")
            .bind(tenant)
            .fetch_all(&self.pool)
            .await?)
    }

    pub async fn delete_user(&self, tenant: &TenantId, id: &str) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query("DELETE FROM api_keys WHERE user_id = $1 AND tenant_id = $2")
            .bind(id)
            .bind(tenant)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM group_members WHERE user_id = $1").bind(id).execute(&mut *tx).await?;
        sqlx::query("DELETE FROM recovery_codes WHERE user_id = $1").bind(id).execute(&mut *tx).await?;
        let r = sqlx::query("DELETE FROM users WHERE id = $1 AND tenant_id = $2")
            .bind(id)
            .bind(tenant)
            .execute(&mut *tx)
            .await?;
        if r.rows_affected() == 0 {
            return Err(not_found("user", id));
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn set_password(&self, user_id: &UserId, password_hash: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE users SET password_hash = $1, failed_logins = 0, locked_until = NULL WHERE id = $2")
            .bind(password_hash)
            .bind(user_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Turns on TOTP with a (sealed) secret and replaces the recovery codes, atomically.
    pub async fn set_totp(
        &self,
        user_id: &UserId,
        sealed_secret: &str,
        code_hashes: &[String],
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query("UPDATE users SET totp_secret = $1, totp_enabled = 1 WHERE id = $2")
            .bind(sealed_secret)
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM recovery_codes WHERE user_id = $1").bind(user_id).execute(&mut *tx).await?;
        for h in code_hashes {
            sqlx::query("INSERT INTO recovery_codes (user_id, code_hash) VALUES ($1, $2)")
                .bind(user_id)
                .bind(h)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Spends a recovery code; true if it existed and was unused.
    pub async fn use_recovery_code(&self, user_id: &UserId, code_hash: &str) -> Result<bool, StoreError> {
        let r = sqlx::query(
            "UPDATE recovery_codes SET used_at = $1 WHERE user_id = $2 AND code_hash = $3 AND used_at IS NULL",
        )
        .bind(now_ms())
        .bind(user_id)
        .bind(code_hash)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Counts a failed login of `user_id` (the count is never reset here, only by a success or
    /// an unlock) and, when `wait_ms` says so for the new count, keeps the account from being
    /// heard until `now + wait`. Returns the count.
    pub async fn login_failed(
        &self,
        user_id: &UserId,
        now: i64,
        wait_ms: impl FnOnce(i64) -> Option<i64>,
    ) -> Result<i64, StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query("UPDATE users SET failed_logins = failed_logins + 1 WHERE id = $1")
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        let n: i64 = sqlx::query("SELECT failed_logins FROM users WHERE id = $1")
            .bind(user_id)
            .fetch_one(&mut *tx)
            .await?
            .try_get(0)?;
        if let Some(wait) = wait_ms(n) {
            sqlx::query("UPDATE users SET locked_until = $1 WHERE id = $2")
                .bind(now.saturating_add(wait))
                .bind(user_id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(n)
    }

    pub async fn login_succeeded(&self, user_id: &UserId) -> Result<(), StoreError> {
        sqlx::query("UPDATE users SET failed_logins = 0, locked_until = NULL WHERE id = $1")
            .bind(user_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    // --- Groups ---------------------------------------------------------------------------

    pub async fn insert_group(&self, g: &Group) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO user_groups (id, tenant_id, name, role, created_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(&g.id)
            .bind(&g.tenant_id)
            .bind(&g.name)
            .bind(&g.role)
            .bind(g.created_at)
            .execute(&self.pool)
            .await
            .map_err(|e| conflict(e, "group", &g.name))?;
        Ok(())
    }

    pub async fn get_group(&self, tenant: &TenantId, key: &str) -> Result<Option<Group>, StoreError> {
        Ok(sqlx::query_as::<_, Group>("SELECT * FROM user_groups WHERE (name = $1 OR id = $1) AND tenant_id = $2")
            .bind(key)
            .bind(tenant)
            .fetch_optional(&self.pool)
            .await?)
    }

    pub async fn list_groups(&self, tenant: &TenantId) -> Result<Vec<Group>, StoreError> {
        Ok(sqlx::query_as::<_, Group>("SELECT * FROM user_groups WHERE tenant_id = $1 ORDER BY name")
            .bind(tenant)
            .fetch_all(&self.pool)
            .await?)
    }

    pub async fn delete_group(&self, tenant: &TenantId, id: &str) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query("DELETE FROM group_members WHERE group_id = $1").bind(id).execute(&mut *tx).await?;
        let r = sqlx::query("DELETE FROM user_groups WHERE id = $1 AND tenant_id = $2")
            .bind(id)
            .bind(tenant)
            .execute(&mut *tx)
            .await?;
        if r.rows_affected() == 0 {
            return Err(not_found("group", id));
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn add_member(&self, group_id: &str, user_id: &UserId) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO group_members (group_id, user_id) VALUES ($1, $2)")
            .bind(group_id)
            .bind(user_id)
            .execute(&self.pool)
            .await
            .map_err(|e| conflict(e, "group membership", user_id))?;
        Ok(())
    }

    pub async fn remove_member(&self, group_id: &str, user_id: &UserId) -> Result<(), StoreError> {
        let r = sqlx::query("DELETE FROM group_members WHERE group_id = $1 AND user_id = $2")
            .bind(group_id)
            .bind(user_id)
            .execute(&self.pool)
            .await?;
        if r.rows_affected() == 0 {
            return Err(not_found("group membership", user_id));
        }
        Ok(())
    }

    /// The groups a user belongs to.
    pub async fn groups_of(&self, user_id: &UserId) -> Result<Vec<Group>, StoreError> {
        Ok(sqlx::query_as::<_, Group>(
            "SELECT g.* FROM user_groups g JOIN group_members m ON m.group_id = g.id WHERE m.user_id = $1 ORDER BY g.name",
        )
        .bind(user_id)
        .fetch_all(&self.pool)
        .await?)
    }

    /// (group id, user id) for every membership of a tenant.
    pub async fn list_members(&self, tenant: &TenantId) -> Result<Vec<(String, String)>, StoreError> {
        let rows = sqlx::query(
            "SELECT m.group_id, m.user_id FROM group_members m JOIN user_groups g ON g.id = m.group_id \
             WHERE g.tenant_id = $1",
        )
        .bind(tenant)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).collect()
    }

    // --- OpenID Connect providers -----------------------------------------------------------

    pub async fn get_oidc(&self, tenant: &TenantId) -> Result<Option<OidcProvider>, StoreError> {
        Ok(sqlx::query_as::<_, OidcProvider>("SELECT * FROM oidc_providers WHERE tenant_id = $1")
            .bind(tenant)
            .fetch_optional(&self.pool)
            .await?)
    }

    pub async fn put_oidc(&self, p: &OidcProvider) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query("DELETE FROM oidc_providers WHERE tenant_id = $1").bind(&p.tenant_id).execute(&mut *tx).await?;
        sqlx::query(
            "INSERT INTO oidc_providers (tenant_id, issuer, client_id, client_secret, username_claim, label, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&p.tenant_id)
        .bind(&p.issuer)
        .bind(&p.client_id)
        .bind(&p.client_secret)
        .bind(&p.username_claim)
        .bind(&p.label)
        .bind(p.updated_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// How many tenants sign in through an OpenID Connect provider (the sign-in page offers
    /// single sign-on only when some do).
    pub async fn oidc_provider_count(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query("SELECT COUNT(*) FROM oidc_providers").fetch_one(&self.pool).await?.try_get(0)?)
    }

    pub async fn delete_oidc(&self, tenant: &TenantId) -> Result<bool, StoreError> {
        let r = sqlx::query("DELETE FROM oidc_providers WHERE tenant_id = $1").bind(tenant).execute(&self.pool).await?;
        Ok(r.rows_affected() > 0)
    }

    // --- API keys -------------------------------------------------------------------------

    pub async fn api_key_count(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query("SELECT COUNT(*) FROM api_keys").fetch_one(&self.pool).await?.try_get(0)?)
    }

    pub async fn insert_api_key(&self, k: &ApiKey) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO api_keys (id, tenant_id, name, key_hash, scopes, created_at, expires_at, user_id, allowed_ips, \
             idle_ms, parent_id, bound_host, auth_method) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        )
        .bind(&k.id)
        .bind(&k.tenant_id)
        .bind(&k.name)
        .bind(&k.key_hash)
        .bind(&k.scopes)
        .bind(k.created_at)
        .bind(k.expires_at)
        .bind(&k.user_id)
        .bind(&k.allowed_ips)
        .bind(k.idle_ms)
        .bind(&k.parent_id)
        .bind(&k.bound_host)
        .bind(&k.auth_method)
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

    pub async fn get_api_key(&self, id: &str) -> Result<Option<ApiKey>, StoreError> {
        Ok(sqlx::query_as::<_, ApiKey>("SELECT * FROM api_keys WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?)
    }

    pub async fn list_api_keys(&self, tenant: &TenantId) -> Result<Vec<ApiKey>, StoreError> {
        Ok(sqlx::query_as::<_, ApiKey>("SELECT * FROM api_keys WHERE tenant_id = $1 ORDER BY created_at, id")
            .bind(tenant)
            .fetch_all(&self.pool)
            .await?)
    }

    /// Revokes a key and the browser sessions minted from it.
    pub async fn revoke_api_key(&self, tenant: &TenantId, id: &str) -> Result<(), StoreError> {
        let now = now_ms();
        let r =
            sqlx::query("UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND tenant_id = $3 AND revoked_at IS NULL")
                .bind(now)
                .bind(id)
                .bind(tenant)
                .execute(&self.pool)
                .await?;
        if r.rows_affected() == 0 {
            return Err(not_found("api key", id));
        }
        sqlx::query(
            "UPDATE api_keys SET revoked_at = $1 WHERE parent_id = $2 AND tenant_id = $3 AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(id)
        .bind(tenant)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn api_key_used(&self, id: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE api_keys SET last_used_at = $1 WHERE id = $2")
            .bind(now_ms())
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
