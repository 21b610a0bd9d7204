use super::*;

mod audit;
mod bastion;

/// Every backend the tests run on: SQLite always; PostgreSQL when `SEKISHO_TEST_PG` names a
/// server (the README test command starts a throw-away cluster and sets it). With
/// `SEKISHO_REQUIRE_PG=1` (set by that command) a missing server fails the tests instead of
/// quietly testing SQLite alone.
async fn stores() -> Vec<(Option<tempfile::TempDir>, Store)> {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = Store::open(&dir.path().join("t.db")).await.unwrap();
    let mut all = vec![(Some(dir), sqlite)];
    match std::env::var("SEKISHO_TEST_PG") {
        Ok(base) => all.push((None, pg_store(&base).await)),
        Err(_) => assert!(
            std::env::var("SEKISHO_REQUIRE_PG").is_err(),
            "SEKISHO_REQUIRE_PG is set but SEKISHO_TEST_PG names no PostgreSQL server"
        ),
    }
    all
}

/// A fresh database on the PostgreSQL server at `base` (`postgres://user@host:port`, optionally
/// with `?host=/socket/dir`).
pub(crate) async fn pg_store(base: &str) -> Store {
    sqlx::any::install_default_drivers();
    let name = format!("sekisho_t_{}", rand_suffix());
    let (server, query) = base.split_once('?').map_or((base, String::new()), |(s, q)| (s, format!("?{q}")));
    let url = |db: &str| format!("{}/{db}{query}", server.trim_end_matches('/'));
    let mut admin = <sqlx::AnyConnection as sqlx::Connection>::connect(&url("postgres")).await.unwrap();
    sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut admin).await.unwrap();
    Store::connect(&url(&name)).await.unwrap()
}

fn rand_suffix() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos());
    format!("{:016x}", h.finish())
}

fn token(hash: &str, expires_at: i64) -> EnrollmentToken {
    EnrollmentToken {
        id: format!("tok-{hash}"),
        tenant_id: "default".into(),
        token_hash: hash.into(),
        name: "site-a".into(),
        role: Role::Back,
        site: String::new(),
        created_at: now_ms(),
        expires_at,
        used_at: None,
        agent_id: None,
        owner_user_id: None,
    }
}

fn agent(id: &str) -> NewAgent {
    NewAgent {
        id: id.into(),
        sign_pub: "aa".into(),
        noise_pub: "bb".into(),
        version: "0.1.0".into(),
        hostname: "h".into(),
    }
}

fn service(id: &str, tenant: &str, name: &str, agent: &str) -> Service {
    Service {
        id: id.into(),
        tenant_id: tenant.into(),
        name: name.into(),
        agent_id: Some(agent.into()),
        target: "tcp://127.0.0.1:80".into(),
        protocol: Protocol::Tcp,
        edge_listen: None,
        created_at: now_ms(),
        browser: false,
    }
}

fn user(id: &str, tenant: &str, name: &str) -> User {
    User {
        id: id.into(),
        tenant_id: tenant.into(),
        name: name.into(),
        display_name: String::new(),
        password_hash: "$argon2id$x".into(),
        totp_secret: None,
        totp_enabled: false,
        failed_logins: 0,
        locked_until: None,
        disabled_at: None,
        created_at: 1,
        time_zone: String::new(),
    }
}

fn tenant(id: &str, max_agents: i64) -> Tenant {
    Tenant {
        id: id.into(),
        name: id.into(),
        max_agents,
        retention_days: 30,
        utc_offset_minutes: 540,
        created_at: 1,
        time_zone: "Asia/Tokyo".into(),
    }
}

fn record(tenant: &str, at: i64, decision: &str) -> AuditRecord {
    AuditRecord {
        tenant_id: tenant.into(),
        at,
        kind: "stream".into(),
        subject: "alice".into(),
        target: "wiki".into(),
        decision: decision.into(),
        source_ip: "10.0.0.1".into(),
        country: "JP".into(),
        ..Default::default()
    }
}

fn row(seq: i64, record: AuditRecord) -> AuditRow {
    AuditRow { seq, record, prev_hash: format!("h{}", seq - 1), hash: format!("h{seq}") }
}

#[tokio::test]
async fn the_cluster_generation_only_moves_forward() {
    for (_d, s) in stores().await {
        let start = s.generation().await.unwrap();
        assert_eq!(s.bump_generation().await.unwrap(), start + 1);
        assert_eq!(s.bump_generation().await.unwrap(), start + 2);
        assert_eq!(s.generation().await.unwrap(), start + 2);
    }
}

#[tokio::test]
async fn tokens_enroll_once_and_expire() {
    for (_d, s) in stores().await {
        s.insert_token(&token("h1", now_ms() + 60_000)).await.unwrap();
        s.insert_token(&token("h2", now_ms() - 1)).await.unwrap();
        let t = s.enroll("h1", &agent("ag1")).await.unwrap().unwrap();
        assert_eq!(t.name, "site-a");
        let a = s.get_agent(&AgentId::from("ag1")).await.unwrap().unwrap();
        assert_eq!((a.name.as_str(), a.role.as_str()), ("site-a", "back"));
        assert_eq!(s.enroll("h1", &agent("ag2")).await.unwrap().unwrap_err(), TokenRejection::Used);
        assert_eq!(s.enroll("h2", &agent("ag3")).await.unwrap().unwrap_err(), TokenRejection::Expired);
        assert_eq!(s.enroll("nope", &agent("ag4")).await.unwrap().unwrap_err(), TokenRejection::Unknown);
        assert!(s.get_agent(&AgentId::from("ag2")).await.unwrap().is_none());
    }
}

/// A word outside its closed set (a hand edit, a newer relay's value) fails the row by name; it
/// is never read as some default role or protocol.
#[tokio::test]
async fn a_row_with_an_unknown_word_fails_to_load_by_name() {
    for (_d, s) in stores().await {
        s.insert_token(&token("h1", now_ms() + 60_000)).await.unwrap();
        s.enroll("h1", &agent("ag1")).await.unwrap().unwrap();
        assert!(s.get_agent(&AgentId::from("ag1")).await.unwrap().unwrap().serves_back());
        sqlx::query("UPDATE agents SET role = 'sideways' WHERE id = 'ag1'").execute(&s.pool).await.unwrap();
        let e = s.get_agent(&AgentId::from("ag1")).await.unwrap_err().to_string();
        assert!(e.contains("role") && e.contains("`sideways` is not a known agent role"), "{e}");
        s.insert_service(&service("sv1", "default", "web", "ag1")).await.unwrap();
        sqlx::query("UPDATE services SET protocol = 'gopher' WHERE id = 'sv1'").execute(&s.pool).await.unwrap();
        let e = s.list_services(&TenantId::from("default")).await.unwrap_err().to_string();
        assert!(e.contains("`gopher` is not a known service protocol"), "{e}");
    }
}

#[tokio::test]
async fn enrollment_respects_the_tenants_agent_limit() {
    for (_d, s) in stores().await {
        s.insert_tenant(&tenant("acme", 1)).await.unwrap();
        for h in ["a1", "a2"] {
            s.insert_token(&EnrollmentToken { tenant_id: "acme".into(), ..token(h, now_ms() + 60_000) }).await.unwrap();
        }
        s.enroll("a1", &agent("ag1")).await.unwrap().unwrap();
        assert_eq!(s.enroll("a2", &agent("ag2")).await.unwrap().unwrap_err(), TokenRejection::AgentLimit(1));
        assert_eq!(s.list_agents(&TenantId::from("acme")).await.unwrap().len(), 1);
        assert!(s.list_agents(&TenantId::from("default")).await.unwrap().is_empty());
    }
}

/// Every connection of the SQLite pool gets the setup, not only the first: the cache limit and the
/// busy timeout hold on connections opened under load too.
#[tokio::test]
async fn every_sqlite_connection_has_the_small_cache_and_the_busy_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(&dir.path().join("t.db")).await.unwrap();
    let mut held = Vec::new();
    for _ in 0..4 {
        let mut conn = s.pool.acquire().await.unwrap();
        let cache: i64 = sqlx::query_scalar("PRAGMA cache_size").fetch_one(&mut *conn).await.unwrap();
        let busy: i64 = sqlx::query_scalar("PRAGMA busy_timeout").fetch_one(&mut *conn).await.unwrap();
        assert_eq!((cache, busy), (-1024, 5000));
        held.push(conn);
    }
}

/// Agents enrolling at the same moment (the quickstart's two agents, a fleet after a relay
/// restart) all get in: a write transaction that began by reading must not fail with SQLite's
/// "database is locked" when another connection writes first.
#[tokio::test]
async fn concurrent_enrollments_all_succeed() {
    for (_d, s) in stores().await {
        let s = std::sync::Arc::new(s);
        const N: usize = 24;
        for i in 0..N {
            s.insert_token(&token(&format!("c{i}"), now_ms() + 60_000)).await.unwrap();
        }
        let tasks: Vec<_> = (0..N)
            .map(|i| {
                let s = s.clone();
                tokio::spawn(async move { s.enroll(&format!("c{i}"), &agent(&format!("agc{i}"))).await })
            })
            .collect();
        for t in tasks {
            t.await.unwrap().expect("no store error").expect("token accepted");
        }
        assert_eq!(s.list_agents(&TenantId::from("default")).await.unwrap().len(), N);
    }
}

/// Migration 3 rebuilt `services` on SQLite: a gateway needs no agent, a missing agent is still
/// refused by the foreign key, and policies (with domain lists) still cascade with their service.
#[tokio::test]
async fn gateways_need_no_agent_and_keys_still_hold_after_the_rebuild() {
    for (_d, s) in stores().await {
        let gateway = Service {
            agent_id: None,
            target: "direct".into(),
            protocol: Protocol::Socks,
            ..service("gw1", "default", "internet", "")
        };
        s.insert_service(&gateway).await.unwrap();
        assert!(s.insert_service(&service("sv9", "default", "ghost", "no-such-agent")).await.is_err());
        let lists = PolicyLists {
            required: vec!["true".into()],
            deny_domains: vec!["deepseek.com".into()],
            ..PolicyLists::default()
        };
        s.put_policy(&"gw1".into(), &"default".into(), &lists, now_ms(), "test").await.unwrap();
        let stored = s.list_policies_all().await.unwrap();
        let lists: Vec<PolicyLists> = stored.iter().map(|p| p.lists.clone().unwrap()).collect();
        assert_eq!(lists.iter().map(|l| l.deny_domains.clone()).collect::<Vec<_>>(), [vec!["deepseek.com".to_owned()]]);
        // A list the store cannot read is carried as such, with why; the others still load.
        sqlx::query("UPDATE service_policies SET deny = '[\"principal ==' ").execute(&s.pool).await.unwrap();
        let why = s.list_policies_all().await.unwrap()[0].lists.clone().unwrap_err();
        assert!(why.starts_with("the stored deny list is not readable"), "{why}");
        let listed = s.list_services(&TenantId::from("default")).await.unwrap();
        assert_eq!(listed.iter().map(|s| s.agent_id.clone()).collect::<Vec<_>>(), [None]);
        s.delete_service(&TenantId::from("default"), "internet").await.unwrap();
        assert!(s.list_policies_all().await.unwrap().is_empty(), "the policy goes with its service");
    }
}

#[tokio::test]
async fn services_in_use_cannot_be_deleted_and_names_are_unique() {
    for (_d, s) in stores().await {
        s.insert_token(&token("h1", now_ms() + 60_000)).await.unwrap();
        s.enroll("h1", &agent("ag1")).await.unwrap().unwrap();
        let svc = service("sv1", "default", "wiki", "ag1");
        s.insert_service(&svc).await.unwrap();
        let dup = Service { id: "sv2".into(), ..svc.clone() };
        assert!(matches!(s.insert_service(&dup).await, Err(StoreError::Conflict { .. })));
        let route = Route {
            id: "rt1".into(),
            tenant_id: "default".into(),
            front_agent_id: "ag1".into(),
            listen: "127.0.0.1:0".into(),
            service_id: "sv1".into(),
            created_at: now_ms(),
        };
        s.insert_route(&route).await.unwrap();
        assert!(matches!(s.delete_service(&TenantId::from("default"), "wiki").await, Err(StoreError::InUse { .. })));
        assert!(matches!(
            s.revoke_agent(&TenantId::from("default"), "ag1", false).await,
            Err(StoreError::InUse { .. })
        ));
        assert!(matches!(s.delete_route(&TenantId::from("other"), "rt1").await, Err(StoreError::NotFound { .. })));
        s.delete_route(&TenantId::from("default"), "rt1").await.unwrap();
        assert!(matches!(s.delete_route(&TenantId::from("default"), "rt1").await, Err(StoreError::NotFound { .. })));
        assert!(matches!(s.delete_service(&TenantId::from("other"), "wiki").await, Err(StoreError::NotFound { .. })));
        s.delete_service(&TenantId::from("default"), "wiki").await.unwrap();
        assert!(matches!(
            s.revoke_agent(&TenantId::from("other"), "ag1", false).await,
            Err(StoreError::NotFound { .. })
        ));
        assert_eq!(s.revoke_agent(&TenantId::from("default"), "ag1", false).await.unwrap(), Detached::default());
        assert!(s.get_agent(&AgentId::from("ag1")).await.unwrap().unwrap().revoked_at.is_some());

        // Forced (incident response): its routes go with it, its services stay, named.
        s.insert_token(&token("h2", now_ms() + 60_000)).await.unwrap();
        s.enroll("h2", &agent("ag2")).await.unwrap().unwrap();
        s.insert_service(&service("sv3", "default", "files", "ag2")).await.unwrap();
        s.insert_route(&Route { id: "rt2".into(), front_agent_id: "ag2".into(), service_id: "sv3".into(), ..route })
            .await
            .unwrap();
        let other = s.revoke_agent(&TenantId::from("other"), "ag2", true).await;
        assert!(matches!(other, Err(StoreError::NotFound { .. })), "{other:?}");
        assert!(s.list_routes(&TenantId::from("default")).await.unwrap().iter().any(|r| r.id == "rt2"));
        let detached = s.revoke_agent(&TenantId::from("default"), "ag2", true).await.unwrap();
        assert_eq!(detached, Detached { routes: vec!["rt2".into()], services: vec!["files".into()] });
        assert!(s.list_routes(&TenantId::from("default")).await.unwrap().is_empty());
        assert!(s.get_agent(&AgentId::from("ag2")).await.unwrap().unwrap().revoked_at.is_some());
    }
}

#[tokio::test]
async fn users_groups_and_lockout() {
    for (_d, s) in stores().await {
        s.insert_tenant(&tenant("acme", 5)).await.unwrap();
        let user = User { display_name: "Alice".into(), ..user("u1", "acme", "alice") };
        s.insert_user(&user).await.unwrap();
        assert!(matches!(
            s.insert_user(&User { id: "u2".into(), ..user.clone() }).await,
            Err(StoreError::Conflict { .. })
        ));
        assert!(
            s.get_user(&TenantId::from("default"), "alice").await.unwrap().is_none(),
            "tenants never see each other's users"
        );
        let g = Group {
            id: "g1".into(),
            tenant_id: "acme".into(),
            name: "ops".into(),
            role: "operator".into(),
            created_at: 1,
        };
        s.insert_group(&g).await.unwrap();
        s.add_member("g1", &UserId::from("u1")).await.unwrap();
        assert!(matches!(s.add_member("g1", &UserId::from("u1")).await, Err(StoreError::Conflict { .. })));
        assert_eq!(s.groups_of(&UserId::from("u1")).await.unwrap()[0].name, "ops");
        assert_eq!(s.list_members(&TenantId::from("acme")).await.unwrap(), [("g1".to_owned(), "u1".to_owned())]);
        assert!(s.list_members(&TenantId::from("default")).await.unwrap().is_empty());

        let wait = |n: i64| (n >= 3).then_some(n * 10);
        assert_eq!(s.login_failed(&UserId::from("u1"), 1000, wait).await.unwrap(), 1);
        assert_eq!(s.login_failed(&UserId::from("u1"), 1000, wait).await.unwrap(), 2);
        assert_eq!(s.get_user(&TenantId::from("acme"), "alice").await.unwrap().unwrap().locked_until, None);
        assert_eq!(s.login_failed(&UserId::from("u1"), 1000, wait).await.unwrap(), 3);
        assert_eq!(s.get_user(&TenantId::from("acme"), "alice").await.unwrap().unwrap().locked_until, Some(1030));
        // The count goes on growing (the wait with it) until a success or an unlock.
        assert_eq!(s.login_failed(&UserId::from("u1"), 2000, wait).await.unwrap(), 4);
        assert_eq!(s.get_user(&TenantId::from("acme"), "alice").await.unwrap().unwrap().locked_until, Some(2040));
        s.login_succeeded(&UserId::from("u1")).await.unwrap();
        assert_eq!(s.get_user(&TenantId::from("acme"), "u1").await.unwrap().unwrap().locked_until, None);

        s.set_totp(&UserId::from("u1"), "sealed", &["c1".into(), "c2".into()]).await.unwrap();
        assert!(s.use_recovery_code(&UserId::from("u1"), "c1").await.unwrap());
        assert!(!s.use_recovery_code(&UserId::from("u1"), "c1").await.unwrap(), "a recovery code works once");
        assert!(!s.use_recovery_code(&UserId::from("u1"), "zz").await.unwrap());
        s.delete_user(&TenantId::from("acme"), "u1").await.unwrap();
        assert!(s.groups_of(&UserId::from("u1")).await.unwrap().is_empty());
    }
}

#[tokio::test]
async fn api_keys_are_found_by_hash_and_revoked_per_tenant() {
    for (_d, s) in stores().await {
        let key = ApiKey {
            id: "k1".into(),
            tenant_id: "default".into(),
            name: "ci".into(),
            key_hash: "abc".into(),
            scopes: "agents:read".into(),
            created_at: 1,
            expires_at: Some(2),
            user_id: None,
            allowed_ips: "10.0.0.0/8".into(),
            last_used_at: None,
            revoked_at: None,
            idle_ms: None,
            parent_id: None,
            bound_host: None,
            auth_method: None,
        };
        s.insert_api_key(&key).await.unwrap();
        let found = s.find_api_key("abc").await.unwrap().unwrap();
        assert_eq!((found.scopes.as_str(), found.allowed_ips.as_str()), ("agents:read", "10.0.0.0/8"));
        assert!(matches!(s.revoke_api_key(&TenantId::from("other"), "k1").await, Err(StoreError::NotFound { .. })));
        s.revoke_api_key(&TenantId::from("default"), "k1").await.unwrap();
        assert!(s.find_api_key("abc").await.unwrap().unwrap().revoked_at.is_some());
    }
}

/// Upgrading a version-2 SQLite database with routes and policies keeps every row (migration 3
/// rebuilds `services`, which routes and policies point at).
#[tokio::test]
async fn migration_3_keeps_routes_and_policies_of_an_existing_database() {
    let dir = tempfile::tempdir().unwrap();
    let old = dir.path().join("migrations");
    std::fs::create_dir(&old).unwrap();
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations/sqlite");
    for name in ["0001_init.sql", "0002_identity_audit.sql"] {
        std::fs::copy(src.join(name), old.join(name)).unwrap();
    }
    let db = dir.path().join("v2.db");
    sqlx::any::install_default_drivers();
    let pool = sqlx::any::AnyPoolOptions::new()
        .max_connections(1)
        .connect(&format!("sqlite://{}?mode=rwc", db.display()))
        .await
        .unwrap();
    sqlx::migrate::Migrator::new(old.as_path()).await.unwrap().run(&pool).await.unwrap();
    for sql in [
        "PRAGMA foreign_keys = ON",
        "INSERT INTO agents (id, name, role, sign_pub, noise_pub, created_at) VALUES ('ag1', 'site', 'back', 's', 'n', 1)",
        "INSERT INTO services (id, name, agent_id, target, protocol, created_at) \
         VALUES ('sv1', 'wiki', 'ag1', 'tcp://127.0.0.1:80', 'tcp', 1)",
        "INSERT INTO routes (id, front_agent_id, listen, service_id, created_at) VALUES ('rt1', 'ag1', '127.0.0.1:0', 'sv1', 1)",
        "INSERT INTO service_policies (service_id, tenant_id, required, deny, updated_at, updated_by) \
         VALUES ('sv1', 'default', '[\"true\"]', '[]', 1, 'admin')",
    ] {
        sqlx::query(sql).execute(&pool).await.unwrap();
    }
    pool.close().await;

    let s = Store::open(&db).await.unwrap();
    let services = s.list_services(&TenantId::from("default")).await.unwrap();
    assert_eq!(
        services.iter().map(|s| (s.id.as_str(), s.agent_id.as_deref())).collect::<Vec<_>>(),
        [("sv1", Some("ag1"))]
    );
    assert_eq!(s.list_routes(&TenantId::from("default")).await.unwrap().len(), 1);
    let policies = s.list_policies_all().await.unwrap();
    let lists: Vec<PolicyLists> = policies.iter().map(|p| p.lists.clone().unwrap()).collect();
    assert_eq!(lists, [PolicyLists { required: vec!["true".to_owned()], ..PolicyLists::default() }]);
    assert!(matches!(s.delete_service(&TenantId::from("default"), "wiki").await, Err(StoreError::InUse { .. })));
}
