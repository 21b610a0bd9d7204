//! The audit chain against a real store: durability, tampering of every kind, pruning, and two
//! writers sharing one database.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "a failing test should panic with the cause")]

use std::time::Duration;

use sekisho_audit::{AuditConfig, AuditKey, Auditor, Decision, Event, EventKind, ProblemKind, SubjectKind, verify};
use sekisho_store::{AuditFilter, Store, now_ms};

struct Fixture {
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
    store: Store,
    key: AuditKey,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.db");
    let store = Store::open(&path).await.unwrap();
    Fixture { _dir: dir, path, store, key: AuditKey::generate() }
}

fn config() -> AuditConfig {
    // Checkpoints only when asked, so tests decide what is signed.
    AuditConfig { checkpoint_every: Duration::from_secs(3600), ..AuditConfig::default() }
}

fn event(tenant: &str, i: u64) -> Event {
    Event::new(tenant, EventKind::Access, if i.is_multiple_of(3) { Decision::Deny } else { Decision::Allow })
        .subject(SubjectKind::User, format!("user{}", i % 4))
        .path("tunnel")
        .target("wiki")
        .reason(format!("event {i}"))
        .source("10.0.0.1".parse().unwrap(), "JP")
        .traffic(i, 2 * i, 5)
}

/// Writes `n` events for tenant `default` (and a few for `acme`) and signs a checkpoint.
async fn populated(n: u64) -> Fixture {
    let f = fixture().await;
    let (auditor, task) = Auditor::start(f.store.clone(), f.key.clone(), config()).await.unwrap();
    for i in 1..=n {
        auditor.record(event("default", i));
    }
    auditor.record_durable(event("acme", 1)).await.unwrap();
    auditor.checkpoint().await.unwrap();
    drop(auditor);
    task.await.unwrap();
    f
}

async fn sql(f: &Fixture, statement: &str) {
    use sqlx::Connection;
    let mut c = sqlx::SqliteConnection::connect(&format!("sqlite://{}", f.path.display())).await.unwrap();
    let r = sqlx::query(statement).execute(&mut c).await.unwrap();
    assert!(r.rows_affected() > 0, "tampering statement changed nothing: {statement}");
}

async fn problem(f: &Fixture) -> (ProblemKind, i64) {
    let report = verify(&f.store, &[f.key.verifying_key()], Some(&sekisho_store::TenantId::from("default")), None)
        .await
        .unwrap();
    assert!(!report.ok, "tampering went unnoticed: {report:?}");
    let p = report.tenants[0].problem.clone().unwrap();
    (p.kind, p.seq)
}

#[tokio::test]
async fn an_untouched_log_verifies() {
    let f = populated(50).await;
    let report = verify(&f.store, &[f.key.verifying_key()], None, None).await.unwrap();
    assert!(report.ok, "{report:?}");
    assert_eq!(report.tenants.len(), 2);
    let d = report.tenants.iter().find(|t| t.tenant == "default").unwrap();
    assert_eq!((d.events, d.first_seq, d.last_seq, d.unsigned_tail), (50, Some(1), Some(50), 0));
}

#[tokio::test]
async fn edited_content_is_caught() {
    let f = populated(20).await;
    sql(&f, "UPDATE audit_events SET decision = 'allow' WHERE tenant_id = 'default' AND seq = 6").await;
    assert_eq!(problem(&f).await, (ProblemKind::Altered, 6));
}

#[tokio::test]
async fn a_deleted_event_is_caught() {
    let f = populated(20).await;
    sql(&f, "DELETE FROM audit_events WHERE tenant_id = 'default' AND seq = 7").await;
    assert_eq!(problem(&f).await, (ProblemKind::Deleted, 7));
}

#[tokio::test]
async fn deleting_the_newest_events_is_caught_by_the_checkpoint() {
    let f = populated(20).await;
    sql(&f, "DELETE FROM audit_events WHERE tenant_id = 'default' AND seq > 17").await;
    assert_eq!(problem(&f).await, (ProblemKind::Deleted, 18));
}

#[tokio::test]
async fn reordered_events_are_caught() {
    let f = populated(20).await;
    sql(&f, "UPDATE audit_events SET seq = -1 WHERE tenant_id = 'default' AND seq = 3").await;
    sql(&f, "UPDATE audit_events SET seq = 3 WHERE tenant_id = 'default' AND seq = 4").await;
    sql(&f, "UPDATE audit_events SET seq = 4 WHERE tenant_id = 'default' AND seq = -1").await;
    assert_eq!(problem(&f).await, (ProblemKind::Altered, 3));
}

#[tokio::test]
async fn a_replaced_event_with_a_consistent_hash_is_caught() {
    let f = populated(20).await;
    // Forge event 9 with a correct hash over a made-up predecessor.
    let rows = f.store.audit_page(&sekisho_store::TenantId::from("default"), 8, 1).await.unwrap();
    let mut forged = rows[0].clone();
    forged.record.reason = "nothing happened".into();
    forged.prev_hash = "ab".repeat(32);
    forged.hash = sekisho_audit::chain::event_hash(&forged.prev_hash, 9, &forged.record);
    sql(&f, "DELETE FROM audit_events WHERE tenant_id = 'default' AND seq = 9").await;
    f.store.insert_audit(&[forged]).await.unwrap();
    assert_eq!(problem(&f).await, (ProblemKind::Inserted, 9));
}

#[tokio::test]
async fn a_rewritten_chain_is_caught_by_the_signed_checkpoint() {
    let f = populated(10).await;
    // Rewrite everything from event 4 on with correct hashes: only the signature can tell.
    let mut rows = f.store.audit_page(&sekisho_store::TenantId::from("default"), 0, 100).await.unwrap();
    sql(&f, "DELETE FROM audit_events WHERE tenant_id = 'default' AND seq >= 4").await;
    let mut prev = rows[2].hash.clone();
    for r in rows.iter_mut().skip(3) {
        r.record.reason = "rewritten".into();
        r.prev_hash = prev.clone();
        r.hash = sekisho_audit::chain::event_hash(&r.prev_hash, r.seq, &r.record);
        prev = r.hash.clone();
    }
    f.store.insert_audit(&rows[3..]).await.unwrap();
    assert_eq!(problem(&f).await, (ProblemKind::Altered, 10));
}

#[tokio::test]
async fn a_checkpoint_from_another_key_is_refused() {
    let f = populated(5).await;
    let report = verify(
        &f.store,
        &[AuditKey::generate().verifying_key()],
        Some(&sekisho_store::TenantId::from("default")),
        None,
    )
    .await
    .unwrap();
    assert_eq!(report.tenants[0].problem.as_ref().unwrap().kind, ProblemKind::BadCheckpoint);
    sql(&f, "UPDATE audit_checkpoints SET seq = 4 WHERE tenant_id = 'default'").await;
    assert_eq!(problem(&f).await.0, ProblemKind::BadCheckpoint);
}

#[tokio::test]
async fn durable_events_are_committed_before_the_call_returns() {
    let f = fixture().await;
    let (auditor, _task) = Auditor::start(f.store.clone(), f.key.clone(), config()).await.unwrap();
    auditor.record_durable(event("default", 1).detail("deny")).await.unwrap();
    assert_eq!(f.store.audit_head(&sekisho_store::TenantId::from("default")).await.unwrap().map(|h| h.0), Some(1));
    auditor.record(event("default", 2));
    auditor.flush().await.unwrap();
    assert_eq!(f.store.audit_head(&sekisho_store::TenantId::from("default")).await.unwrap().map(|h| h.0), Some(2));
}

#[tokio::test]
async fn buffered_events_land_within_the_window() {
    let f = fixture().await;
    let cfg = AuditConfig { batch_window: Duration::from_millis(50), ..config() };
    let (auditor, _task) = Auditor::start(f.store.clone(), f.key.clone(), cfg).await.unwrap();
    auditor.record(event("default", 1));
    let started = std::time::Instant::now();
    while f.store.audit_head(&sekisho_store::TenantId::from("default")).await.unwrap().is_none() {
        assert!(started.elapsed() < Duration::from_secs(5), "buffered event never committed");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn pruning_keeps_the_rest_verifiable_and_the_chain_goes_on() {
    let f = fixture().await;
    let (auditor, task) = Auditor::start(f.store.clone(), f.key.clone(), config()).await.unwrap();
    let old = now_ms() - 40 * 86_400_000;
    for i in 1..=10 {
        auditor.record(event("default", i).at(old + i as i64));
    }
    for i in 11..=15 {
        auditor.record(event("default", i));
    }
    auditor.checkpoint().await.unwrap();
    assert_eq!(
        auditor
            .prune(&sekisho_store::TenantId::from("default"), now_ms() - 30 * 86_400_000)
            .await
            .unwrap()
            .map(|p| p.count),
        Some(10)
    );
    auditor.record_durable(event("default", 16)).await.unwrap();
    auditor.checkpoint().await.unwrap();
    let report = verify(&f.store, &[f.key.verifying_key()], Some(&sekisho_store::TenantId::from("default")), None)
        .await
        .unwrap();
    assert!(report.ok, "{report:?}");
    assert_eq!((report.tenants[0].first_seq, report.tenants[0].last_seq), (Some(11), Some(16)));
    // Pruning everything, then restarting, continues from the anchor.
    assert_eq!(
        auditor.prune(&sekisho_store::TenantId::from("default"), now_ms() + 1).await.unwrap().map(|p| p.count),
        Some(6)
    );
    drop(auditor);
    task.await.unwrap();
    let (auditor, _task) = Auditor::start(f.store.clone(), f.key.clone(), config()).await.unwrap();
    auditor.record_durable(event("default", 17)).await.unwrap();
    assert_eq!(f.store.audit_head(&sekisho_store::TenantId::from("default")).await.unwrap().map(|h| h.0), Some(17));
    auditor.checkpoint().await.unwrap();
    assert!(verify(&f.store, &[f.key.verifying_key()], None, None).await.unwrap().ok);
}

#[tokio::test]
async fn two_writers_sharing_a_database_keep_one_chain() {
    let f = fixture().await;
    let key2 = AuditKey::generate();
    let (a, _ta) = Auditor::start(f.store.clone(), f.key.clone(), config()).await.unwrap();
    let (b, _tb) = Auditor::start(f.store.clone(), key2.clone(), config()).await.unwrap();
    for i in 0..20 {
        let writer = if i % 2 == 0 { &a } else { &b };
        writer.record_durable(event("default", i)).await.unwrap();
    }
    a.checkpoint().await.unwrap();
    b.checkpoint().await.unwrap();
    let report = verify(&f.store, &[f.key.verifying_key(), key2.verifying_key()], None, None).await.unwrap();
    assert!(report.ok, "{report:?}");
    assert_eq!(report.tenants[0].events, 20);
}

#[tokio::test]
async fn search_and_export_see_what_was_written() {
    let f = populated(9).await;
    let denied = AuditFilter { decision: Some("deny".into()), ..Default::default() };
    let rows = f.store.search_audit(&sekisho_store::TenantId::from("default"), &denied).await.unwrap();
    assert_eq!(rows.iter().map(|r| r.seq).collect::<Vec<_>>(), [9, 6, 3]);
    let tokyo = sekisho_store::zone::parse("Asia/Tokyo").unwrap();
    let csv = sekisho_audit::export::to_csv(&rows, &tokyo);
    assert_eq!(csv.lines().count(), 4);
    assert!(csv.lines().next().unwrap().starts_with("tenant,seq,at,time,kind"), "{csv}");
    let first_row = csv.lines().nth(1).unwrap();
    assert!(first_row.starts_with("default,9,"), "{csv}");
    let time = sekisho_store::zone::iso(&tokyo, rows[0].record.at);
    assert!(time.ends_with("+09:00") && first_row.contains(&format!(",{time},")), "{first_row}");
    let json = sekisho_audit::export::to_json_lines(&rows, &tokyo);
    let first: serde_json::Value = serde_json::from_str(json.lines().next().unwrap()).unwrap();
    assert_eq!(first["reason"], "event 9");
    assert_eq!(first["seq"], 9);
    assert_eq!(first["time"], time.as_str());
}

/// Runs one statement that may change nothing (schema changes).
async fn ddl(f: &Fixture, statement: &str) {
    use sqlx::Connection;
    let mut c = sqlx::SqliteConnection::connect(&format!("sqlite://{}", f.path.display())).await.unwrap();
    sqlx::query(statement).execute(&mut c).await.unwrap();
}

#[tokio::test]
async fn a_store_that_fails_for_a_while_loses_no_event() {
    let f = fixture().await;
    let cfg =
        AuditConfig { batch_window: Duration::from_millis(20), durable_wait: Duration::from_millis(300), ..config() };
    let (auditor, task) = Auditor::start(f.store.clone(), f.key.clone(), cfg).await.unwrap();
    auditor.record_durable(event("default", 1)).await.unwrap();
    // A real failure of the store: the table is gone for a while.
    ddl(&f, "ALTER TABLE audit_events RENAME TO audit_events_away").await;
    for i in 2..=50 {
        auditor.record(event("default", i));
    }
    let waited = auditor.record_durable(event("default", 51)).await;
    assert!(matches!(waited, Err(sekisho_audit::AuditError::Unavailable(_))), "{waited:?}");
    let health = auditor.health();
    assert!(health.failing && health.queued == 50, "{health:?}");
    ddl(&f, "ALTER TABLE audit_events_away RENAME TO audit_events").await;
    // Once the store is back, everything recorded meanwhile is written, in order, on one chain.
    auditor.flush().await.unwrap();
    let health = auditor.health();
    assert!(!health.failing && health.queued == 0, "{health:?}");
    let rows = f.store.audit_page(&sekisho_store::TenantId::from("default"), 0, 100).await.unwrap();
    let reasons: Vec<String> = rows.iter().map(|r| r.record.reason.clone()).collect();
    assert_eq!(reasons, (1..=51).map(|i| format!("event {i}")).collect::<Vec<_>>());
    auditor.checkpoint().await.unwrap();
    let report = verify(&f.store, &[f.key.verifying_key()], None, None).await.unwrap();
    assert!(report.ok, "{report:?}");
    drop(auditor);
    task.await.unwrap();
}

#[tokio::test]
async fn a_full_queue_makes_durable_callers_wait_and_says_so() {
    let f = fixture().await;
    let cfg = AuditConfig { max_queued: 10, durable_wait: Duration::from_secs(20), ..config() };
    let (auditor, task) = Auditor::start(f.store.clone(), f.key.clone(), cfg).await.unwrap();
    ddl(&f, "ALTER TABLE audit_events RENAME TO audit_events_away").await;
    for i in 1..=10 {
        auditor.record(event("default", i));
    }
    assert!(auditor.saturated() && auditor.health().saturated);
    // A durable caller waits for room: it has not finished while the store is away.
    let waiting = tokio::spawn({
        let auditor = auditor.clone();
        async move { auditor.record_durable(event("default", 11)).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!waiting.is_finished(), "a durable caller went ahead of a full queue");
    ddl(&f, "ALTER TABLE audit_events_away RENAME TO audit_events").await;
    waiting.await.unwrap().unwrap();
    assert!(!auditor.saturated());
    assert_eq!(f.store.audit_page(&sekisho_store::TenantId::from("default"), 0, 100).await.unwrap().len(), 11);
    drop(auditor);
    task.await.unwrap();
}

fn anchored(f: &Fixture) -> AuditConfig {
    AuditConfig { anchors: Some(f.path.with_file_name("audit-anchors.jsonl")), ..config() }
}

fn read_anchors(f: &Fixture) -> sekisho_audit::Anchors {
    sekisho_audit::Anchors::read(&f.path.with_file_name("audit-anchors.jsonl")).unwrap()
}

async fn verify_anchored(f: &Fixture) -> sekisho_audit::Report {
    verify(&f.store, &[f.key.verifying_key()], None, Some(&read_anchors(f))).await.unwrap()
}

/// Someone with the database deletes the newest events *and* their checkpoints: the database
/// alone verifies (that is the gap), the anchor file outside it names the cut.
#[tokio::test]
async fn a_tail_cut_with_its_checkpoints_is_found_through_the_anchor_file() {
    let f = fixture().await;
    let (auditor, task) = Auditor::start(f.store.clone(), f.key.clone(), anchored(&f)).await.unwrap();
    for i in 1..=20 {
        auditor.record(event("default", i));
    }
    auditor.checkpoint().await.unwrap();
    for i in 21..=25 {
        auditor.record(event("default", i));
    }
    auditor.checkpoint().await.unwrap();
    drop(auditor);
    task.await.unwrap();
    assert!(verify_anchored(&f).await.ok, "an untouched log verifies with its anchors");

    sql(&f, "DELETE FROM audit_events WHERE tenant_id = 'default' AND seq > 20").await;
    sql(&f, "DELETE FROM audit_checkpoints WHERE tenant_id = 'default' AND seq > 20").await;
    let alone = verify(&f.store, &[f.key.verifying_key()], None, None).await.unwrap();
    assert!(alone.ok, "the database alone cannot tell: {alone:?}");
    let report = verify_anchored(&f).await;
    let p = report.tenants.iter().find(|t| t.tenant == "default").unwrap().problem.clone().expect("the cut is found");
    assert_eq!((p.kind, p.seq), (ProblemKind::Cut, 21));
    assert!(
        p.message.contains("events #21..#25 are missing") && p.message.contains("audit-anchors.jsonl"),
        "{}",
        p.message
    );
}

/// The anchor file itself deleted or emptied while the database has checkpoints: said so.
#[tokio::test]
async fn a_deleted_or_emptied_anchor_file_is_reported() {
    let f = fixture().await;
    let (auditor, task) = Auditor::start(f.store.clone(), f.key.clone(), anchored(&f)).await.unwrap();
    auditor.record_durable(event("default", 1)).await.unwrap();
    auditor.checkpoint().await.unwrap();
    drop(auditor);
    task.await.unwrap();
    let file = f.path.with_file_name("audit-anchors.jsonl");
    std::fs::write(&file, "").unwrap();
    let p = verify_anchored(&f).await.tenants[0].problem.clone().unwrap();
    assert_eq!(p.kind, ProblemKind::AnchorMissing);
    assert!(p.message.contains("is empty"), "{}", p.message);
    std::fs::remove_file(&file).unwrap();
    let p = verify_anchored(&f).await.tenants[0].problem.clone().unwrap();
    assert!(p.kind == ProblemKind::AnchorMissing && p.message.contains("is missing"), "{}", p.message);
    // A relay started without its file makes a new one, and says so in each chain.
    let (auditor, task) = Auditor::start(f.store.clone(), f.key.clone(), anchored(&f)).await.unwrap();
    auditor.checkpoint().await.unwrap();
    drop(auditor);
    task.await.unwrap();
    let rows = f.store.audit_page(&sekisho_store::TenantId::from("default"), 0, 10).await.unwrap();
    assert!(rows.iter().any(|r| r.record.reason.contains("audit anchor file") && r.record.reason.contains("created")));
    assert!(verify_anchored(&f).await.ok);
}

/// Events after the newest signed checkpoint (a crash before the next one) are reported, not
/// passed; the relay signs every `CHECKPOINT_EVENTS` events, which bounds them.
#[tokio::test]
async fn unsigned_events_at_the_tail_are_reported_and_bounded() {
    let f = fixture().await;
    let (auditor, task) = Auditor::start(f.store.clone(), f.key.clone(), config()).await.unwrap();
    for i in 1..=5 {
        auditor.record_durable(event("default", i)).await.unwrap();
    }
    let p = verify(&f.store, &[f.key.verifying_key()], None, None).await.unwrap().tenants[0].problem.clone().unwrap();
    assert_eq!(p.kind, ProblemKind::Unsigned);
    let unsigned = format!("events #{}..#5 are not covered by a signed checkpoint", p.seq);
    assert!(p.message.contains(&unsigned), "{}", p.message);
    // Past the bound, the writer signs without waiting for its interval (an hour here).
    for i in 0..sekisho_audit::CHECKPOINT_EVENTS as u64 {
        auditor.record(event("default", 10 + i));
    }
    auditor.flush().await.unwrap();
    auditor.record_durable(event("default", 0)).await.unwrap();
    let t = &verify(&f.store, &[f.key.verifying_key()], None, None).await.unwrap().tenants[0];
    assert!(t.unsigned_tail < sekisho_audit::CHECKPOINT_EVENTS as u64, "{t:?}");
    drop(auditor);
    task.await.unwrap();
}

/// An edited event cannot be pruned away: retention refuses a range that does not verify, and
/// the log still fails verification afterwards.
#[tokio::test]
async fn pruning_refuses_a_range_that_does_not_verify() {
    let f = fixture().await;
    let (auditor, task) = Auditor::start(f.store.clone(), f.key.clone(), anchored(&f)).await.unwrap();
    let old = now_ms() - 40 * 86_400_000;
    for i in 1..=10 {
        auditor.record(event("default", i).at(old + i as i64));
    }
    auditor.checkpoint().await.unwrap();
    sql(&f, "UPDATE audit_events SET reason = 'nothing to see' WHERE tenant_id = 'default' AND seq = 3").await;
    let tenant = sekisho_store::TenantId::from("default");
    let err = auditor.prune(&tenant, now_ms() - 30 * 86_400_000).await.unwrap_err();
    assert!(matches!(err, sekisho_audit::AuditError::Unverified(_)), "{err}");
    assert!(err.to_string().contains("refusing to prune") && err.to_string().contains("event #3"), "{err}");
    assert_eq!(f.store.audit_page(&tenant, 0, 100).await.unwrap().len(), 10, "nothing was removed");
    drop(auditor);
    task.await.unwrap();
    assert_eq!(verify_anchored(&f).await.tenants[0].problem.clone().unwrap().kind, ProblemKind::Altered);
}

/// A clean prune is summarised (count, first and last event) and its signed anchor is also in
/// the anchor file, so the rest still verifies against it.
#[tokio::test]
async fn a_clean_prune_says_what_it_removed_and_is_anchored_outside() {
    let f = fixture().await;
    let (auditor, task) = Auditor::start(f.store.clone(), f.key.clone(), anchored(&f)).await.unwrap();
    let old = now_ms() - 40 * 86_400_000;
    for i in 1..=10 {
        auditor.record(event("default", i).at(old + i as i64));
    }
    auditor.record_durable(event("default", 11)).await.unwrap();
    let tenant = sekisho_store::TenantId::from("default");
    let pruned = auditor.prune(&tenant, now_ms() - 30 * 86_400_000).await.unwrap().unwrap();
    assert_eq!((pruned.count, pruned.first_seq, pruned.last_seq), (10, 1, 10));
    assert!(
        read_anchors(&f).checkpoints.iter().any(|c| c.kind == "prune" && c.seq == 10 && c.hash == pruned.last_hash)
    );
    auditor.checkpoint().await.unwrap();
    drop(auditor);
    task.await.unwrap();
    assert!(verify_anchored(&f).await.ok);
}

fn journaled(f: &Fixture) -> AuditConfig {
    AuditConfig {
        journal: Some(sekisho_audit::JournalConfig { dir: f.path.with_file_name("journal"), relay: "r1".into() }),
        ..config()
    }
}

fn journal_segments(f: &Fixture) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(f.path.with_file_name("journal"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

async fn reasons(f: &Fixture) -> Vec<String> {
    let rows = f.store.audit_page(&sekisho_store::TenantId::from("default"), 0, 100).await.unwrap();
    rows.iter().map(|r| r.record.reason.clone()).collect()
}

#[tokio::test]
async fn journaled_events_return_before_their_commit_and_a_crash_loses_none() {
    let f = fixture().await;
    let (auditor, task) = Auditor::start(f.store.clone(), f.key.clone(), journaled(&f)).await.unwrap();
    auditor.record_durable(event("default", 1)).await.unwrap();
    auditor.flush().await.unwrap();
    // The store refuses for a while: on disk in the journal, not in the database.
    ddl(&f, "ALTER TABLE audit_events RENAME TO audit_events_away").await;
    auditor.record_durable(event("default", 2)).await.unwrap();
    auditor.record_durable(event("default", 3)).await.unwrap();
    let segments = journal_segments(&f);
    assert_eq!(segments.len(), 1, "{segments:?}");
    // The relay dies before the writer could commit them; the store comes back.
    task.abort();
    let _ = task.await;
    drop(auditor);
    ddl(&f, "ALTER TABLE audit_events_away RENAME TO audit_events").await;
    assert_eq!(reasons(&f).await, ["event 1"]);

    // The next start commits what the journal holds above the committed mark (event 1 was
    // committed with its mark: not again), says so in the chain, and starts an empty journal.
    let (auditor, task) = Auditor::start(f.store.clone(), f.key.clone(), journaled(&f)).await.unwrap();
    assert_eq!(reasons(&f).await, ["event 1", "event 2", "event 3"]);
    auditor.flush().await.unwrap();
    let all = reasons(&f).await;
    assert!(all[3..].iter().any(|r| r.starts_with("audit journal: 2 event(s)")), "{all:?}");
    // (Event 1 may also be reported as unsigned at start, depending on whether the first writer's
    // first checkpoint tick came before or after its commit.)
    assert_eq!(all.iter().filter(|r| r.starts_with("event ")).count(), 3, "{all:?}");
    let now = journal_segments(&f);
    assert_eq!(now.len(), 1, "the replayed segment is deleted: {now:?}");
    assert_ne!(now, segments, "a new segment is started past the replayed numbers");
    auditor.checkpoint().await.unwrap();
    let report = verify(&f.store, &[f.key.verifying_key()], None, None).await.unwrap();
    assert!(report.ok, "{report:?}");

    // Committed events left in the live segment (a kill after the commit) are not replayed.
    auditor.record_durable(event("default", 4)).await.unwrap();
    auditor.flush().await.unwrap();
    task.abort();
    let _ = task.await;
    drop(auditor);
    let (auditor, task) = Auditor::start(f.store.clone(), f.key.clone(), journaled(&f)).await.unwrap();
    auditor.flush().await.unwrap();
    let all = reasons(&f).await;
    assert_eq!(all.iter().filter(|r| *r == "event 4").count(), 1, "{all:?}");
    let said = all.iter().filter(|r| r.starts_with("audit journal:")).count();
    assert_eq!(said, 1, "nothing replayed the second time, nothing said: {all:?}");
    drop(auditor);
    task.await.unwrap();
}

#[tokio::test]
async fn journaled_events_go_on_while_the_store_is_away_and_land_in_order() {
    let f = fixture().await;
    let cfg = AuditConfig {
        batch_window: Duration::from_millis(20),
        max_queued: 20,
        durable_wait: Duration::from_millis(300),
        ..journaled(&f)
    };
    let (auditor, task) = Auditor::start(f.store.clone(), f.key.clone(), cfg).await.unwrap();
    ddl(&f, "ALTER TABLE audit_events RENAME TO audit_events_away").await;
    // On disk without the database, in order with the buffered events between them.
    for i in 1..=10 {
        if i % 2 == 0 {
            auditor.record_durable(event("default", i)).await.unwrap();
        } else {
            auditor.record(event("default", i));
        }
    }
    // The queue still bounds them: past max_queued a durable caller waits, then is refused.
    for i in 11..=20 {
        auditor.record(event("default", i));
    }
    let refused = auditor.record_durable(event("default", 21)).await;
    assert!(matches!(refused, Err(sekisho_audit::AuditError::Unavailable(_))), "{refused:?}");
    ddl(&f, "ALTER TABLE audit_events_away RENAME TO audit_events").await;
    auditor.flush().await.unwrap();
    assert_eq!(reasons(&f).await, (1..=20).map(|i| format!("event {i}")).collect::<Vec<_>>());
    drop(auditor);
    task.await.unwrap();
}

#[tokio::test]
async fn journaled_events_are_committed_at_once_not_after_the_batch_window() {
    let f = fixture().await;
    let cfg = AuditConfig { batch_window: Duration::from_secs(60), ..journaled(&f) };
    let (auditor, task) = Auditor::start(f.store.clone(), f.key.clone(), cfg).await.unwrap();
    auditor.record_durable(event("default", 1)).await.unwrap();
    // The caller did not wait for the commit, but the log shows the event within moments.
    let started = std::time::Instant::now();
    while reasons(&f).await.is_empty() {
        assert!(started.elapsed() < Duration::from_secs(5), "a journaled event waited for the batch window");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    drop(auditor);
    task.await.unwrap();
}
