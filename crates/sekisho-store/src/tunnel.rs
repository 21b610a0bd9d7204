//! Enrollment tokens, agents, services, routes and service policies.
//!
//! Listing without a tenant (`*_all`) is for the relay's own topology; everything the admin API
//! calls takes the tenant.

use sqlx::Row;

use crate::domain::{AgentId, ServiceId, TenantId};
use crate::{
    Agent, Detached, EnrollmentToken, NewAgent, PolicyLists, PolicyRow, Route, Service, Store, StoreError,
    TokenRejection, conflict, not_found, now_ms,
};

impl Store {
    // --- Cluster ----------------------------------------------------------------------------

    /// Records that this relay changed the topology or a policy; returns the new generation.
    pub async fn bump_generation(&self) -> Result<i64, StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query("UPDATE cluster_state SET generation = generation + 1 WHERE id = 1").execute(&mut *tx).await?;
        let generation: i64 =
            sqlx::query("SELECT generation FROM cluster_state WHERE id = 1").fetch_one(&mut *tx).await?.try_get(0)?;
        tx.commit().await?;
        Ok(generation)
    }

    /// The cluster's change counter (see [`Store::bump_generation`]).
    pub async fn generation(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query("SELECT generation FROM cluster_state WHERE id = 1").fetch_one(&self.pool).await?.try_get(0)?)
    }

    // --- Enrollment tokens ----------------------------------------------------------------

    pub async fn insert_token(&self, t: &EnrollmentToken) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO enrollment_tokens (id, tenant_id, token_hash, name, role, site, created_at, expires_at, owner_user_id) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&t.id)
        .bind(&t.tenant_id)
        .bind(&t.token_hash)
        .bind(&t.name)
        .bind(t.role.as_str())
        .bind(&t.site)
        .bind(t.created_at)
        .bind(t.expires_at)
        .bind(&t.owner_user_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Marks the token used and creates the agent it enrolls, atomically. A token can be spent
    /// once, before it expires, while the tenant is under its agent limit.
    pub async fn enroll(
        &self,
        token_hash: &str,
        agent: &NewAgent,
    ) -> Result<Result<EnrollmentToken, TokenRejection>, StoreError> {
        let mut tx = self.begin_write().await?;
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
        let row = sqlx::query(
            "SELECT t.max_agents, (SELECT COUNT(*) FROM agents a WHERE a.tenant_id = t.id AND a.revoked_at IS NULL) \
             FROM tenants t WHERE t.id = $1",
        )
        .bind(&token.tenant_id)
        .fetch_one(&mut *tx)
        .await?;
        let (max, count): (i64, i64) = (row.try_get(0)?, row.try_get(1)?);
        if count >= max {
            return Ok(Err(TokenRejection::AgentLimit(max)));
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
            "INSERT INTO agents (id, tenant_id, name, role, site, sign_pub, noise_pub, created_at, hostname, version, owner_user_id) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(&agent.id)
        .bind(&token.tenant_id)
        .bind(&token.name)
        .bind(token.role.as_str())
        .bind(&token.site)
        .bind(&agent.sign_pub)
        .bind(&agent.noise_pub)
        .bind(now)
        .bind(&agent.hostname)
        .bind(&agent.version)
        .bind(&token.owner_user_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Ok(token))
    }

    // --- Agents ---------------------------------------------------------------------------

    pub async fn get_agent(&self, id: &AgentId) -> Result<Option<Agent>, StoreError> {
        Ok(sqlx::query_as::<_, Agent>("SELECT * FROM agents WHERE id = $1").bind(id).fetch_optional(&self.pool).await?)
    }

    /// Every tenant's agents (for the relay's topology).
    pub async fn list_agents_all(&self) -> Result<Vec<Agent>, StoreError> {
        Ok(sqlx::query_as::<_, Agent>("SELECT * FROM agents ORDER BY created_at, id").fetch_all(&self.pool).await?)
    }

    pub async fn list_agents(&self, tenant: &TenantId) -> Result<Vec<Agent>, StoreError> {
        Ok(sqlx::query_as::<_, Agent>("SELECT * FROM agents WHERE tenant_id = $1 ORDER BY created_at, id")
            .bind(tenant)
            .fetch_all(&self.pool)
            .await?)
    }

    /// Records that an agent connected or was last heard from.
    pub async fn touch_agent(&self, id: &AgentId, addr: &str, version: &str, hostname: &str) -> Result<(), StoreError> {
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

    pub async fn seen_agent(&self, id: &AgentId) -> Result<(), StoreError> {
        sqlx::query("UPDATE agents SET last_seen = $1 WHERE id = $2")
            .bind(now_ms())
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Revokes a tenant's agent: its key is refused from now on. Its services and routes must
    /// be removed first.
    /// Revokes agent `id`. Refused (`InUse`) while it serves services or fronts routes, unless
    /// `force`: then, in the same transaction, the routes it fronts are deleted and the services
    /// it serves are left without a usable agent (every stream to them is refused until they are
    /// deleted or re-created on another agent). Returns what was detached.
    pub async fn revoke_agent(&self, tenant: &TenantId, id: &str, force: bool) -> Result<Detached, StoreError> {
        let mut tx = self.begin_write().await?;
        let mut used = Vec::new();
        for sql in [
            "SELECT id FROM routes WHERE front_agent_id = $1 AND tenant_id = $2 ORDER BY id",
            "SELECT name FROM services WHERE agent_id = $1 AND tenant_id = $2 ORDER BY name",
        ] {
            let rows = sqlx::query(sql).bind(id).bind(tenant).fetch_all(&mut *tx).await?;
            used.push(rows.iter().map(|r| r.try_get(0)).collect::<Result<Vec<String>, _>>()?);
        }
        let (services, routes) = (used.pop().unwrap_or_default(), used.pop().unwrap_or_default());
        let in_use = !routes.is_empty() || !services.is_empty();
        if in_use && !force {
            return Err(StoreError::InUse {
                kind: "agent",
                name: id.to_owned(),
                used_by: format!("{} services or routes", routes.len() + services.len()),
            });
        }
        let r =
            sqlx::query("UPDATE agents SET revoked_at = $1 WHERE id = $2 AND tenant_id = $3 AND revoked_at IS NULL")
                .bind(now_ms())
                .bind(id)
                .bind(tenant)
                .execute(&mut *tx)
                .await?;
        if r.rows_affected() == 0 {
            return Err(not_found("agent", id));
        }
        sqlx::query("DELETE FROM routes WHERE front_agent_id = $1 AND tenant_id = $2")
            .bind(id)
            .bind(tenant)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Detached { routes, services })
    }

    // --- Services -------------------------------------------------------------------------

    pub async fn insert_service(&self, s: &Service) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO services (id, tenant_id, name, agent_id, target, protocol, edge_listen, created_at, browser) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&s.id)
        .bind(&s.tenant_id)
        .bind(&s.name)
        .bind(&s.agent_id)
        .bind(&s.target)
        .bind(s.protocol.as_str())
        .bind(&s.edge_listen)
        .bind(s.created_at)
        .bind(i64::from(s.browser))
        .execute(&self.pool)
        .await
        .map_err(|e| conflict(e, "service", &s.name))?;
        Ok(())
    }

    pub async fn list_services_all(&self) -> Result<Vec<Service>, StoreError> {
        Ok(sqlx::query_as::<_, Service>("SELECT * FROM services ORDER BY tenant_id, name")
            .fetch_all(&self.pool)
            .await?)
    }

    pub async fn list_services(&self, tenant: &TenantId) -> Result<Vec<Service>, StoreError> {
        Ok(sqlx::query_as::<_, Service>("SELECT * FROM services WHERE tenant_id = $1 ORDER BY name")
            .bind(tenant)
            .fetch_all(&self.pool)
            .await?)
    }

    /// Deletes a tenant's service by name or id; refuses while routes lead to it.
    pub async fn delete_service(&self, tenant: &TenantId, name_or_id: &str) -> Result<Service, StoreError> {
        let Some(svc) =
            sqlx::query_as::<_, Service>("SELECT * FROM services WHERE (name = $1 OR id = $1) AND tenant_id = $2")
                .bind(name_or_id)
                .bind(tenant)
                .fetch_optional(&self.pool)
                .await?
        else {
            return Err(not_found("service", name_or_id));
        };
        let routes: i64 = sqlx::query("SELECT COUNT(*) FROM routes WHERE service_id = $1")
            .bind(&svc.id)
            .fetch_one(&self.pool)
            .await?
            .try_get(0)?;
        if routes > 0 {
            return Err(StoreError::InUse { kind: "service", name: svc.name, used_by: format!("{routes} routes") });
        }
        let mut tx = self.begin_write().await?;
        sqlx::query("DELETE FROM service_policies WHERE service_id = $1").bind(&svc.id).execute(&mut *tx).await?;
        sqlx::query("DELETE FROM services WHERE id = $1").bind(&svc.id).execute(&mut *tx).await?;
        tx.commit().await?;
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

    pub async fn list_routes_all(&self) -> Result<Vec<Route>, StoreError> {
        Ok(sqlx::query_as::<_, Route>("SELECT * FROM routes ORDER BY created_at, id").fetch_all(&self.pool).await?)
    }

    pub async fn list_routes(&self, tenant: &TenantId) -> Result<Vec<Route>, StoreError> {
        Ok(sqlx::query_as::<_, Route>("SELECT * FROM routes WHERE tenant_id = $1 ORDER BY created_at, id")
            .bind(tenant)
            .fetch_all(&self.pool)
            .await?)
    }

    pub async fn delete_route(&self, tenant: &TenantId, id: &str) -> Result<(), StoreError> {
        let r = sqlx::query("DELETE FROM routes WHERE id = $1 AND tenant_id = $2")
            .bind(id)
            .bind(tenant)
            .execute(&self.pool)
            .await?;
        if r.rows_affected() == 0 {
            return Err(not_found("route", id));
        }
        Ok(())
    }

    // --- Service policies -----------------------------------------------------------------

    /// Sets (replaces) a service's policy.
    pub async fn put_policy(
        &self,
        service_id: &ServiceId,
        tenant_id: &TenantId,
        lists: &PolicyLists,
        updated_at: i64,
        updated_by: &str,
    ) -> Result<(), StoreError> {
        let json = |l: &Vec<String>| serde_json::Value::from(l.clone()).to_string();
        let mut tx = self.begin_write().await?;
        sqlx::query("DELETE FROM service_policies WHERE service_id = $1").bind(service_id).execute(&mut *tx).await?;
        sqlx::query(
            "INSERT INTO service_policies \
             (service_id, tenant_id, required, deny, allow_domains, deny_domains, updated_at, updated_by) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(service_id)
        .bind(tenant_id)
        .bind(json(&lists.required))
        .bind(json(&lists.deny))
        .bind(json(&lists.allow_domains))
        .bind(json(&lists.deny_domains))
        .bind(updated_at)
        .bind(updated_by)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn delete_policy(&self, tenant: &TenantId, service_id: &ServiceId) -> Result<bool, StoreError> {
        let r = sqlx::query("DELETE FROM service_policies WHERE service_id = $1 AND tenant_id = $2")
            .bind(service_id)
            .bind(tenant)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() > 0)
    }

    pub async fn list_policies_all(&self) -> Result<Vec<PolicyRow>, StoreError> {
        Ok(sqlx::query_as::<_, PolicyRow>("SELECT * FROM service_policies").fetch_all(&self.pool).await?)
    }
}
