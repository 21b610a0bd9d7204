//! The audit log's rows: chained events, signed checkpoints, search and pruning. The hashing and
//! signing live in `sekisho-audit`; this module only stores what it is given.

use sqlx::Row;

use crate::domain::TenantId;
use crate::{AuditRow, Checkpoint, Store, StoreError};

/// The phase of a stream's first event: committed before its first byte is forwarded.
pub const PHASE_OPENED: &str = "opened";
/// The phase of a stream's last event: its bytes and duration.
pub const PHASE_CLOSED: &str = "closed";

/// What to look for in the audit log. Empty fields match everything.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub from: Option<i64>,
    pub to: Option<i64>,
    pub subject: Option<String>,
    pub target: Option<String>,
    pub decision: Option<String>,
    pub source_ip: Option<String>,
    pub country: Option<String>,
    pub kind: Option<String>,
    pub path: Option<String>,
    /// Gateway connections to this domain or its subdomains (targets `domain:port`).
    pub domain: Option<String>,
    /// Paging: only events before this one (`seq`), i.e. the page after one ending at it.
    pub before: Option<i64>,
    pub limit: Option<i64>,
}

/// Counts of access decisions since a time, for the console's dashboard.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct AuditSummary {
    pub allowed: i64,
    pub denied: i64,
    /// The most used targets (allowed accesses), most first.
    pub top_targets: Vec<(String, i64)>,
    /// The users denied most often, most first.
    pub top_denied_users: Vec<(String, i64)>,
    /// The policies and reasons that denied most often (`policy_id`), most first.
    pub top_deny_reasons: Vec<(String, i64)>,
    /// Where accesses came from (country codes), most first.
    pub countries: Vec<(String, i64)>,
    /// Per hour since `from`: (the hour's start, ms since the epoch; allowed; denied), oldest
    /// first, hours without accesses left out.
    pub hourly: Vec<(i64, i64, i64)>,
    /// Per hour since `from`: (the hour's start; the most agents online then, summed over the
    /// relays of a cluster), oldest first, hours without samples left out.
    pub agents_online: Vec<(i64, i64)>,
}

/// `INSERT INTO audit_events (…) VALUES ($1, …, $25), ($26, …)` for `rows` rows (plain `?` on
/// SQLite, whose driver resolves `$n` names one parameter at a time).
fn audit_insert_sql(rows: usize, backend: crate::Backend) -> String {
    values_sql(
        "INSERT INTO audit_events (tenant_id, seq, at, kind, subject_kind, subject, path, target, decision, \
         reason, policy_id, auth_method, source_ip, country, bytes_in, bytes_out, duration_ms, detail, \
         input, principal_user, principal_agent, stream_id, phase, prev_hash, hash) VALUES ",
        rows,
        25,
        backend,
    )
}

/// `head` followed by `rows` groups of `columns` placeholders: `($1, $2), ($3, $4)`.
fn values_sql(head: &str, rows: usize, columns: usize, backend: crate::Backend) -> String {
    let mut sql = String::from(head);
    for r in 0..rows {
        sql.push_str(if r == 0 { "(" } else { ", (" });
        for c in 0..columns {
            if c > 0 {
                sql.push_str(", ");
            }
            match backend {
                crate::Backend::Sqlite => sql.push('?'),
                crate::Backend::Postgres => sql.push_str(&format!("${}", r * columns + c + 1)),
            }
        }
        sql.push(')');
    }
    sql
}

/// Rows per INSERT statement. Only these sizes are used, so each database connection caches at
/// most eight prepared statements for events. (One statement per batch length filled sqlx's cache
/// of 100 statements per connection, and a 200-row insert is some 150 KB of SQLite program: the
/// relay grew by megabytes under many short connections.) Powers of two, so a batch of n < 256
/// events takes as many statements as n has one-bits (with 128, 32, 8 and 1 a batch of 70 took
/// eight round trips to the database's thread; measured alone, the change made no difference to
/// new connections, see bench/README). 25 parameters a row keeps 128 rows far below both
/// backends' parameter limits.
const INSERT_CHUNKS: [usize; 8] = [128, 64, 32, 16, 8, 4, 2, 1];

/// How many of `rest` rows the next INSERT takes: the largest size in [`INSERT_CHUNKS`] that fits.
pub(crate) fn insert_chunk(rest: usize) -> usize {
    INSERT_CHUNKS.into_iter().find(|&c| c <= rest).unwrap_or(rest)
}

impl Store {
    /// Appends chained events in one transaction. A duplicate `(tenant, seq)` (another writer got
    /// there first) fails the whole batch with [`StoreError::Conflict`].
    pub async fn insert_audit(&self, rows: &[AuditRow]) -> Result<(), StoreError> {
        self.insert_audit_journaled(rows, None).await
    }

    /// [`Store::insert_audit`], also moving relay `mark.0`'s journal mark to `mark.1` in the same
    /// transaction: every journaled event up to that number is committed.
    pub async fn insert_audit_journaled(&self, rows: &[AuditRow], mark: Option<(&str, i64)>) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        let mut rest = rows;
        while !rest.is_empty() {
            let (chunk, tail) = rest.split_at(insert_chunk(rest.len()));
            rest = tail;
            let sql = audit_insert_sql(chunk.len(), self.backend);
            let mut q = sqlx::query(&sql);
            for r in chunk {
                let e = &r.record;
                q = q
                    .bind(&e.tenant_id)
                    .bind(r.seq)
                    .bind(e.at)
                    .bind(&e.kind)
                    .bind(&e.subject_kind)
                    .bind(&e.subject)
                    .bind(&e.path)
                    .bind(&e.target)
                    .bind(&e.decision)
                    .bind(&e.reason)
                    .bind(&e.policy_id)
                    .bind(&e.auth_method)
                    .bind(&e.source_ip)
                    .bind(&e.country)
                    .bind(e.bytes_in)
                    .bind(e.bytes_out)
                    .bind(e.duration_ms)
                    .bind(&e.detail)
                    .bind(&e.input)
                    .bind(&e.principal_user)
                    .bind(&e.principal_agent)
                    .bind(&e.stream_id)
                    .bind(&e.phase)
                    .bind(&r.prev_hash)
                    .bind(&r.hash);
            }
            q.execute(&mut *tx).await.map_err(|err| {
                let first = &chunk[0];
                crate::conflict(err, "audit event", &format!("{}#{}", first.record.tenant_id, first.seq))
            })?;
        }
        // The index of open streams follows in the same statements (the database's triggers,
        // migration 10): a stream opened and closed within this batch leaves no row.
        if let Some((relay, upto)) = mark {
            sqlx::query(
                "INSERT INTO audit_journal (relay, upto) VALUES ($1, $2) \
                 ON CONFLICT (relay) DO UPDATE SET upto = excluded.upto",
            )
            .bind(relay)
            .bind(upto)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The highest journal number of relay `relay` whose event is committed (0: none yet).
    pub async fn journal_mark(&self, relay: &str) -> Result<i64, StoreError> {
        let upto: Option<i64> = sqlx::query_scalar("SELECT upto FROM audit_journal WHERE relay = $1")
            .bind(relay)
            .fetch_optional(&self.pool)
            .await?;
        Ok(upto.unwrap_or(0))
    }

    /// Streams opened and not closed: of one relay (`relay`), or of one tenant, oldest first.
    pub async fn open_streams(
        &self,
        tenant: Option<&TenantId>,
        relay: Option<&str>,
        limit: i64,
    ) -> Result<Vec<crate::OpenStream>, StoreError> {
        let rows = sqlx::query_as::<_, crate::OpenStream>(
            "SELECT stream_id, relay, tenant_id, seq, at FROM audit_open_streams \
             WHERE ($1 IS NULL OR tenant_id = $1) AND ($2 IS NULL OR relay = $2) ORDER BY at, stream_id LIMIT $3",
        )
        .bind(tenant.map(TenantId::as_str))
        .bind(relay)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows)
    }

    /// The stored events of streams (their `opened` events, to describe open streams).
    pub async fn stream_events(&self, tenant: &TenantId, stream_id: &str) -> Result<Vec<AuditRow>, StoreError> {
        let rows = sqlx::query_as::<_, AuditRow>(
            "SELECT * FROM audit_events WHERE tenant_id = $1 AND stream_id = $2 ORDER BY seq",
        )
        .bind(tenant.as_str())
        .bind(stream_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows)
    }

    /// The newest stored event of each tenant: `(tenant, seq, hash)`.
    pub async fn audit_heads(&self) -> Result<Vec<(String, i64, String)>, StoreError> {
        let rows = sqlx::query(
            "SELECT e.tenant_id, e.seq, e.hash FROM audit_events e \
             JOIN (SELECT tenant_id, MAX(seq) AS seq FROM audit_events GROUP BY tenant_id) m \
             ON m.tenant_id = e.tenant_id AND m.seq = e.seq",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?))).collect()
    }

    /// The newest event of one tenant: `(seq, hash)`.
    pub async fn audit_head(&self, tenant: &TenantId) -> Result<Option<(i64, String)>, StoreError> {
        let row = sqlx::query("SELECT seq, hash FROM audit_events WHERE tenant_id = $1 ORDER BY seq DESC LIMIT 1")
            .bind(tenant)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).transpose()
    }

    /// Tenants that have audit events or checkpoints.
    pub async fn audit_tenants(&self) -> Result<Vec<TenantId>, StoreError> {
        let rows =
            sqlx::query("SELECT tenant_id FROM audit_events UNION SELECT tenant_id FROM audit_checkpoints ORDER BY 1")
                .fetch_all(&self.pool)
                .await?;
        rows.iter().map(|r| Ok(TenantId::new(r.try_get::<String, _>(0)?))).collect()
    }

    /// Up to `limit` events of a tenant with `seq > after`, in stored order of `seq`.
    pub async fn audit_page(&self, tenant: &TenantId, after: i64, limit: i64) -> Result<Vec<AuditRow>, StoreError> {
        Ok(sqlx::query_as::<_, AuditRow>(
            "SELECT * FROM audit_events WHERE tenant_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
        )
        .bind(tenant)
        .bind(after)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }

    /// The chained event that ended bastion recording `id` (its detail names the recording).
    pub async fn recording_event(&self, tenant: &TenantId, id: &str) -> Result<Option<AuditRow>, StoreError> {
        let escaped = id.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
        Ok(sqlx::query_as::<_, AuditRow>(
            "SELECT * FROM audit_events WHERE tenant_id = $1 AND path = 'ssh' AND detail LIKE $2 ESCAPE '\\' \
             ORDER BY seq DESC LIMIT 1",
        )
        .bind(tenant)
        .bind(format!("%\"recording\":\"{escaped}\"%"))
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Searches a tenant's events, newest first.
    /// Access decisions of a tenant since `from` (ms): counts and the top five of each list.
    pub async fn audit_summary(&self, tenant: &TenantId, from: i64) -> Result<AuditSummary, StoreError> {
        let mut out = AuditSummary::default();
        let rows = sqlx::query(
            "SELECT decision, COUNT(*) FROM audit_events WHERE tenant_id = $1 AND kind = 'access' AND phase <> 'closed' AND at >= $2 \
             GROUP BY decision",
        )
        .bind(tenant)
        .bind(from)
        .fetch_all(&self.pool)
        .await?;
        for r in rows {
            let (decision, n): (String, i64) = (r.try_get(0)?, r.try_get(1)?);
            match decision.as_str() {
                "allow" => out.allowed += n,
                _ => out.denied += n,
            }
        }
        let top = |decision: &'static str, column: &'static str, users_only: bool| {
            let users = if users_only { " AND subject_kind = 'user'" } else { "" };
            format!(
                "SELECT {column}, COUNT(*) AS n FROM audit_events WHERE tenant_id = $1 AND kind = 'access' AND phase <> 'closed' \
                 AND at >= $2 AND decision = '{decision}'{users} GROUP BY {column} ORDER BY n DESC, {column} LIMIT 5"
            )
        };
        let countries = "SELECT country, COUNT(*) AS n FROM audit_events WHERE tenant_id = $1 AND kind = 'access' \
             AND phase <> 'closed' AND at >= $2 AND country <> '' GROUP BY country ORDER BY n DESC, country LIMIT 5";
        for (sql, list) in [
            (top("allow", "target", false), &mut out.top_targets),
            (top("deny", "subject", true), &mut out.top_denied_users),
            (top("deny", "policy_id", false), &mut out.top_deny_reasons),
            (countries.to_owned(), &mut out.countries),
        ] {
            for r in sqlx::query(&sql).bind(tenant).bind(from).fetch_all(&self.pool).await? {
                list.push((r.try_get(0)?, r.try_get(1)?));
            }
        }
        let hours = sqlx::query(
            "SELECT at / 3600000 AS h, decision, COUNT(*) FROM audit_events WHERE tenant_id = $1 AND kind = 'access' \
             AND phase <> 'closed' AND at >= $2 GROUP BY h, decision ORDER BY h",
        )
        .bind(tenant)
        .bind(from)
        .fetch_all(&self.pool)
        .await?;
        for r in hours {
            let (h, decision, n): (i64, String, i64) = (r.try_get(0)?, r.try_get(1)?, r.try_get(2)?);
            let start = h * 3_600_000;
            if out.hourly.last().is_none_or(|(at, _, _)| *at != start) {
                out.hourly.push((start, 0, 0));
            }
            if let Some(last) = out.hourly.last_mut() {
                if decision == "allow" {
                    last.1 += n;
                } else {
                    last.2 += n;
                }
            }
        }
        let samples = sqlx::query(
            "SELECT at / 3600000 AS h, relay, MAX(online) FROM agent_samples WHERE tenant_id = $1 AND at >= $2 \
             GROUP BY h, relay ORDER BY h",
        )
        .bind(tenant)
        .bind(from)
        .fetch_all(&self.pool)
        .await?;
        for r in samples {
            let (h, _relay, n): (i64, String, i64) = (r.try_get(0)?, r.try_get(1)?, r.try_get(2)?);
            let start = h * 3_600_000;
            match out.agents_online.last_mut() {
                Some((at, sum)) if *at == start => *sum += n,
                _ => out.agents_online.push((start, n)),
            }
        }
        Ok(out)
    }

    /// Keeps how many agents of each tenant are online at `at` through `relay`, and forgets
    /// samples older than `keep_from` (ms).
    pub async fn record_agent_samples(
        &self,
        relay: &str,
        at: i64,
        online: &[(TenantId, i64)],
        keep_from: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        for (tenant, n) in online {
            sqlx::query("INSERT INTO agent_samples (tenant_id, relay, at, online) VALUES ($1, $2, $3, $4)")
                .bind(tenant)
                .bind(relay)
                .bind(at)
                .bind(*n)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query("DELETE FROM agent_samples WHERE at < $1").bind(keep_from).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(())
    }

    /// One event of a tenant's chain by its place in it.
    pub async fn get_audit_event(&self, tenant: &TenantId, seq: i64) -> Result<Option<AuditRow>, StoreError> {
        Ok(sqlx::query_as::<_, AuditRow>("SELECT * FROM audit_events WHERE tenant_id = $1 AND seq = $2")
            .bind(tenant)
            .bind(seq)
            .fetch_optional(&self.pool)
            .await?)
    }

    pub async fn search_audit(&self, tenant: &TenantId, f: &AuditFilter) -> Result<Vec<AuditRow>, StoreError> {
        let mut sql = String::from("SELECT * FROM audit_events WHERE tenant_id = $1");
        let mut n = 1;
        let mut next = |sql: &mut String, clause: &str| {
            n += 1;
            sql.push_str(&clause.replace('?', &format!("${n}")));
        };
        if f.from.is_some() {
            next(&mut sql, " AND at >= ?");
        }
        if f.to.is_some() {
            next(&mut sql, " AND at < ?");
        }
        if f.before.is_some() {
            next(&mut sql, " AND seq < ?");
        }
        let texts = [
            // A user's name finds what the user did through their own agents (devices), and an
            // agent's what was done through it.
            (&f.subject, " AND (subject = ? OR principal_user = ? OR principal_agent = ?)"),
            (&f.target, " AND target = ?"),
            (&f.decision, " AND decision = ?"),
            (&f.source_ip, " AND source_ip = ?"),
            (&f.country, " AND country = ?"),
            (&f.kind, " AND kind = ?"),
            (&f.path, " AND path = ?"),
        ];
        for (v, clause) in &texts {
            if v.is_some() {
                next(&mut sql, clause);
            }
        }
        // `example.com` finds `example.com:443` and `www.example.com:80`.
        let domain = f.domain.as_deref().map(|d| {
            let d = d.trim().trim_end_matches('.').to_ascii_lowercase();
            let escaped = d.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
            (format!("{escaped}:%"), format!("%.{escaped}:%"))
        });
        if domain.is_some() {
            next(&mut sql, " AND (target LIKE ? ESCAPE '\\'");
            next(&mut sql, " OR target LIKE ? ESCAPE '\\')");
        }
        next(&mut sql, " ORDER BY seq DESC LIMIT ?");
        let mut q = sqlx::query_as::<_, AuditRow>(&sql).bind(tenant);
        for t in [f.from, f.to, f.before].into_iter().flatten() {
            q = q.bind(t);
        }
        for (v, _) in texts {
            if let Some(v) = v {
                q = q.bind(v.clone());
            }
        }
        if let Some((exact, sub)) = domain {
            q = q.bind(exact).bind(sub);
        }
        q = q.bind(f.limit.unwrap_or(100).clamp(1, 100_000));
        Ok(q.fetch_all(&self.pool).await?)
    }

    pub async fn insert_checkpoint(&self, c: &Checkpoint) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO audit_checkpoints (tenant_id, seq, hash, at, kind, key_id, signature) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&c.tenant_id)
        .bind(c.seq)
        .bind(&c.hash)
        .bind(c.at)
        .bind(&c.kind)
        .bind(&c.key_id)
        .bind(&c.signature)
        .execute(&self.pool)
        .await
        .map_err(|e| crate::conflict(e, "checkpoint", &format!("{}#{}", c.tenant_id, c.seq)))?;
        Ok(())
    }

    pub async fn list_checkpoints(&self, tenant: &TenantId) -> Result<Vec<Checkpoint>, StoreError> {
        Ok(sqlx::query_as::<_, Checkpoint>("SELECT * FROM audit_checkpoints WHERE tenant_id = $1 ORDER BY seq, kind")
            .bind(tenant)
            .fetch_all(&self.pool)
            .await?)
    }

    /// The highest `seq` of a tenant's events older than `before` (ms).
    pub async fn audit_seq_before(&self, tenant: &TenantId, before: i64) -> Result<Option<i64>, StoreError> {
        let row = sqlx::query("SELECT MAX(seq) FROM audit_events WHERE tenant_id = $1 AND at < $2")
            .bind(tenant)
            .bind(before)
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get::<Option<i64>, _>(0)?)
    }

    /// Removes a tenant's events up to and including `anchor.seq` and stores `anchor` (a signed
    /// `prune` checkpoint of the last removed event) in the same transaction, so the remaining
    /// chain still verifies from the anchor.
    pub async fn prune_audit(&self, anchor: &Checkpoint) -> Result<u64, StoreError> {
        let mut tx = self.begin_write().await?;
        let r = sqlx::query("DELETE FROM audit_events WHERE tenant_id = $1 AND seq <= $2")
            .bind(&anchor.tenant_id)
            .bind(anchor.seq)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM audit_checkpoints WHERE tenant_id = $1 AND seq < $2")
            .bind(&anchor.tenant_id)
            .bind(anchor.seq)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO audit_checkpoints (tenant_id, seq, hash, at, kind, key_id, signature) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&anchor.tenant_id)
        .bind(anchor.seq)
        .bind(&anchor.hash)
        .bind(anchor.at)
        .bind(&anchor.kind)
        .bind(&anchor.key_id)
        .bind(&anchor.signature)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(r.rows_affected())
    }
}
