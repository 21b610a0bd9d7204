use super::*;

async fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(&dir.path().join("t.db")).await.unwrap();
    (dir, s)
}

fn token(hash: &str, expires_at: i64) -> EnrollmentToken {
    EnrollmentToken {
        id: format!("tok-{hash}"),
        tenant_id: "default".into(),
        token_hash: hash.into(),
        name: "site-a".into(),
        role: "back".into(),
        site: String::new(),
        created_at: now_ms(),
        expires_at,
        used_at: None,
        agent_id: None,
    }
}

fn agent(id: &str) -> Agent {
    Agent {
        id: id.into(),
        tenant_id: "default".into(),
        name: String::new(),
        role: String::new(),
        site: String::new(),
        sign_pub: "aa".into(),
        noise_pub: "bb".into(),
        created_at: 0,
        last_seen: None,
        last_addr: None,
        version: Some("0.1.0".into()),
        hostname: Some("h".into()),
        revoked_at: None,
    }
}

#[tokio::test]
async fn tokens_enroll_once_and_expire() {
    let (_d, s) = store().await;
    s.insert_token(&token("h1", now_ms() + 60_000)).await.unwrap();
    s.insert_token(&token("h2", now_ms() - 1)).await.unwrap();
    let t = s.enroll("h1", &agent("ag1")).await.unwrap().unwrap();
    assert_eq!(t.name, "site-a");
    let a = s.get_agent("ag1").await.unwrap().unwrap();
    assert_eq!((a.name.as_str(), a.role.as_str()), ("site-a", "back"));
    assert_eq!(s.enroll("h1", &agent("ag2")).await.unwrap().unwrap_err(), TokenRejection::Used);
    assert_eq!(s.enroll("h2", &agent("ag3")).await.unwrap().unwrap_err(), TokenRejection::Expired);
    assert_eq!(s.enroll("nope", &agent("ag4")).await.unwrap().unwrap_err(), TokenRejection::Unknown);
    assert!(s.get_agent("ag2").await.unwrap().is_none());
}

#[tokio::test]
async fn services_in_use_cannot_be_deleted_and_names_are_unique() {
    let (_d, s) = store().await;
    s.insert_token(&token("h1", now_ms() + 60_000)).await.unwrap();
    s.enroll("h1", &agent("ag1")).await.unwrap().unwrap();
    let svc = Service {
        id: "sv1".into(),
        tenant_id: "default".into(),
        name: "wiki".into(),
        agent_id: "ag1".into(),
        target: "tcp://127.0.0.1:80".into(),
        protocol: "tcp".into(),
        edge_listen: None,
        created_at: now_ms(),
    };
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
    assert!(matches!(s.delete_service("wiki").await, Err(StoreError::InUse { .. })));
    assert!(matches!(s.revoke_agent("ag1").await, Err(StoreError::InUse { .. })));
    s.delete_route("rt1").await.unwrap();
    assert!(matches!(s.delete_route("rt1").await, Err(StoreError::NotFound { .. })));
    s.delete_service("wiki").await.unwrap();
    s.revoke_agent("ag1").await.unwrap();
    assert!(s.get_agent("ag1").await.unwrap().unwrap().revoked_at.is_some());
}

#[tokio::test]
async fn events_are_listed_newest_first() {
    let (_d, s) = store().await;
    for i in 0..3 {
        s.insert_event(&NewEvent {
            at: i,
            kind: "stream".into(),
            decision: "deny".into(),
            reason: format!("r{i}"),
            ..Default::default()
        })
        .await
        .unwrap();
    }
    let ev = s.list_events(2).await.unwrap();
    assert_eq!(ev.iter().map(|e| e.event.reason.as_str()).collect::<Vec<_>>(), ["r2", "r1"]);
}
