#![allow(clippy::unwrap_used, clippy::expect_used, reason = "a failing test should panic with the cause")]

use sekisho_audit::{AuditConfig, AuditKey, SubjectKind};
use sekisho_store::{AuditRow, Store};
use time::macros::datetime;

use super::*;

struct Fixture {
    gate: Gate,
    store: Store,
    _dir: tempfile::TempDir,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("s.db")).await.unwrap();
    let (auditor, _) = Auditor::start(store.clone(), AuditKey::generate(), AuditConfig::default()).await.unwrap();
    let gate = Gate::new(auditor, "r1");
    gate.change_policies(|e| {
        let policy = ServicePolicy { required: vec![r#"principal in Group::"staff""#.into()], ..Default::default() };
        let compiled = e.compile("wiki", &policy).unwrap();
        e.insert("acme", "wiki", compiled);
    });
    Fixture { gate, store, _dir: dir }
}

fn alice(groups: &[&str]) -> Attempt {
    Attempt {
        tenant: "acme".into(),
        path: AccessPath::Browser,
        auth: AuthMethod::PasswordTotp,
        subject: Subject::user("alice", groups.iter().map(|g| (*g).to_owned()).collect()),
        source_ip: "203.0.113.7".parse().unwrap(),
        country: "JP".into(),
        at: datetime!(2026-12-07 09:00 +09:00),
        credential: None,
    }
}

fn wiki() -> Resource {
    Resource::service("wiki", "http")
}

async fn events(f: &Fixture) -> Vec<AuditRow> {
    f.gate.auditor().flush().await.unwrap();
    f.store.audit_page(&sekisho_store::TenantId::from("acme"), 0, 100).await.unwrap()
}

#[tokio::test]
async fn an_access_is_on_record_as_opened_before_it_is_forwarded_and_closed_after() {
    let f = fixture().await;
    let Verdict::Permit(permit) = f.gate.decide(&alice(&["staff"]), &wiki()) else { panic!("denied") };
    assert_eq!(permit.policy_id(), "wiki/required");
    assert_eq!(f.gate.live_count(), 1);
    assert!(events(&f).await.is_empty(), "nothing is recorded before the access is opened");
    let stream = permit.stream_id().to_owned();
    assert!(stream.starts_with("r1:") && stream.ends_with(":1"), "{stream}");
    let opened = permit.open().await.unwrap();
    // Committed when `open` returns, without a flush.
    let rows = f.store.audit_page(&sekisho_store::TenantId::from("acme"), 0, 100).await.unwrap();
    assert_eq!(rows.len(), 1, "the opened event is committed before the door forwards a byte");
    let e = &rows[0].record;
    assert_eq!((e.phase.as_str(), e.stream_id.as_str(), e.bytes_in), ("opened", stream.as_str(), None));
    assert_eq!((e.kind.as_str(), e.decision.as_str(), e.path.as_str()), ("access", "allow", "browser"));
    assert_eq!((e.subject.as_str(), e.auth_method.as_str()), ("alice", "password+totp"));
    let input: serde_json::Value = serde_json::from_str(&e.input).unwrap();
    assert_eq!(input["principal"]["groups"][0], "staff", "{input}");
    assert_eq!(input["at"], "2026-12-07T09:00:00+09:00");
    let version = f.gate.policy("acme", "wiki").unwrap().version().to_owned();
    assert_eq!(input["policy_version"], version.as_str());
    assert_eq!(version.len(), 16);
    let open = f.store.open_streams(Some(&"acme".into()), None, 10).await.unwrap();
    assert_eq!(
        open.iter().map(|s| (s.stream_id.as_str(), s.relay.as_str(), s.seq)).collect::<Vec<_>>(),
        [(stream.as_str(), "r1", 1)]
    );

    opened.close(10, 20, 30, "done");
    assert_eq!(f.gate.live_count(), 0);
    let rows = events(&f).await;
    let e = &rows[1].record;
    assert_eq!((e.phase.as_str(), e.stream_id.as_str()), ("closed", stream.as_str()));
    assert_eq!((e.bytes_in, e.bytes_out, e.duration_ms, e.detail.as_str()), (Some(10), Some(20), Some(30), "done"));
    assert!(e.input.is_empty(), "the input is kept once, in the opened event");
    assert!(f.store.open_streams(Some(&"acme".into()), None, 10).await.unwrap().is_empty());
}

#[tokio::test]
async fn an_access_whose_opening_cannot_be_committed_is_refused_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("s.db")).await.unwrap();
    // One queued event fills the queue; a durable caller waits 100 ms for room.
    let config = AuditConfig {
        max_queued: 1,
        batch_window: std::time::Duration::from_secs(60),
        durable_wait: std::time::Duration::from_millis(100),
        ..AuditConfig::default()
    };
    let (auditor, _) = Auditor::start(store.clone(), AuditKey::generate(), config).await.unwrap();
    let gate = Gate::new(auditor.clone(), "r1");
    gate.change_policies(|e| {
        let compiled =
            e.compile("wiki", &ServicePolicy { required: vec!["true".into()], ..Default::default() }).unwrap();
        e.insert("acme", "wiki", compiled);
    });
    let Verdict::Permit(p) = gate.decide(&alice(&["staff"]), &wiki()) else { panic!("denied") };
    drop(gate.refuse(&alice(&[]), "wiki", "agent_offline", "agent_offline: fills the queue"));
    let denial = p.open().await.unwrap_err();
    assert_eq!(denial.code, "audit_unavailable");
    assert!(
        denial.message().starts_with("audit_unavailable: the access was not forwarded: audit log unavailable"),
        "{}",
        denial.message()
    );
    denial.record().await.unwrap();
    auditor.flush().await.unwrap();
    let rows = store.audit_page(&sekisho_store::TenantId::from("acme"), 0, 100).await.unwrap();
    let last = &rows.last().unwrap().record;
    assert_eq!(
        (last.phase.as_str(), last.decision.as_str(), last.policy_id.as_str()),
        ("closed", "deny", "audit_unavailable")
    );
    assert_eq!(last.bytes_in, Some(0));
}

#[tokio::test]
async fn a_denial_is_recorded_even_when_the_door_forgets_it() {
    let f = fixture().await;
    let Verdict::Deny(denial) = f.gate.decide(&alice(&["guests"]), &wiki()) else { panic!("allowed") };
    assert_eq!(denial.code, "wiki/required/0");
    assert!(denial.message().starts_with("denied by policy `wiki/required/0`: required condition not met"));
    drop(denial);
    let rows = events(&f).await;
    assert_eq!((rows.len(), rows[0].record.decision.as_str()), (1, "deny"));
    // A permit dropped unopened is recorded too, and says nothing was forwarded.
    let Verdict::Permit(permit) = f.gate.decide(&alice(&["staff"]), &wiki()) else { panic!("denied") };
    drop(permit);
    let rows = events(&f).await;
    assert!(rows[1].record.detail.contains("not forwarded"), "{:?}", rows[1].record);
    // An open access dropped without a report is closed, and says so.
    let Verdict::Permit(permit) = f.gate.decide(&alice(&["staff"]), &wiki()) else { panic!("denied") };
    drop(permit.open().await.unwrap());
    let rows = events(&f).await;
    assert_eq!(rows[3].record.phase, "closed");
    assert!(rows[3].record.detail.contains("without a report"), "{:?}", rows[3].record);
}

#[tokio::test]
async fn facts_that_could_not_be_read_deny_with_their_code() {
    let f = fixture().await;
    let mut attempt = alice(&["staff"]);
    attempt.subject = Subject::User {
        name: "alice".into(),
        groups: Err(Unreadable::store("the groups of `alice`", "database is locked")),
        via_agent: None,
    };
    let Verdict::Deny(d) = f.gate.decide(&attempt, &wiki()) else { panic!("unreadable groups allowed") };
    assert_eq!(d.code, "store_unavailable");
    assert_eq!(d.message(), "store_unavailable: cannot read the groups of `alice`: database is locked");
    d.record().await.unwrap();

    f.gate.change_policies(|e| e.insert_unreadable("acme", "wiki", "the stored deny list is not JSON"));
    let Verdict::Deny(d) = f.gate.decide(&alice(&["staff"]), &wiki()) else { panic!("unreadable policy allowed") };
    assert_eq!(
        (d.code.as_str(), d.reason.as_str()),
        ("policy_unreadable", "policy_unreadable: the stored deny list is not JSON")
    );
    d.record().await.unwrap();

    let named = Attempt { subject: Subject::Named { kind: SubjectKind::Agent, name: "ag_x".into() }, ..alice(&[]) };
    let Verdict::Deny(d) = f.gate.decide(&named, &wiki()) else { panic!("an unknown subject allowed") };
    assert_eq!(d.code, "unknown_subject");
    d.record().await.unwrap();
    assert_eq!(events(&f).await.len(), 3);
}

#[tokio::test]
async fn refusals_before_policy_have_the_same_shape() {
    let f = fixture().await;
    let d = f.gate.refuse(&alice(&["staff"]), "wiki", "agent_offline", "agent_offline: the agent of `wiki` is offline");
    assert_eq!(d.message(), "agent_offline: the agent of `wiki` is offline");
    d.detail("route rt_1").record().await.unwrap();
    let rows = events(&f).await;
    let e = &rows[0].record;
    assert_eq!((e.policy_id.as_str(), e.detail.as_str(), e.path.as_str()), ("agent_offline", "route rt_1", "browser"));
}

#[tokio::test]
async fn a_change_ends_the_open_accesses_it_now_denies() {
    let f = fixture().await;
    let Verdict::Permit(alice_permit) = f.gate.decide(&alice(&["staff"]), &wiki()) else { panic!() };
    let alice_permit = alice_permit.open().await.unwrap();
    let bob = Attempt { subject: Subject::user("bob", vec!["staff".into()]), ..alice(&[]) };
    let Verdict::Permit(bob_permit) = f.gate.decide(&bob, &wiki()) else { panic!() };
    let bob_permit = bob_permit.open().await.unwrap();
    assert_eq!(f.gate.live_users(), vec![("acme".into(), "alice".into()), ("acme".into(), "bob".into())]);

    // Nothing changed: nothing ends.
    assert_eq!(f.gate.redecide(&FreshGroups::new(), &Default::default()), 0);
    // Bob leaves `staff`: only his access ends.
    let mut fresh = FreshGroups::new();
    fresh.insert(("acme".into(), "bob".into()), Ok(vec![]));
    assert_eq!(f.gate.redecide(&fresh, &Default::default()), 1);
    assert!(bob_permit.revoked().is_cancelled() && !alice_permit.revoked().is_cancelled());
    // A policy that denies everyone ends alice's too; bob's is not ended twice.
    f.gate.change_policies(|e| e.remove("acme", "wiki"));
    assert_eq!(f.gate.redecide(&FreshGroups::new(), &Default::default()), 1);
    assert!(alice_permit.revoked().is_cancelled());
    drop((alice_permit, bob_permit));
    let rows = events(&f).await;
    let revoked: Vec<&str> =
        rows.iter().filter(|r| r.record.detail.starts_with("revoked")).map(|r| r.record.subject.as_str()).collect();
    assert_eq!(revoked, ["bob", "alice"]);
    assert!(rows.iter().any(|r| r.record.reason.contains("access ended by a change: no policy for service `wiki`")));
    assert_eq!(f.gate.live_count(), 0);
}

#[tokio::test]
async fn a_scope_ending_revokes_the_permit() {
    let f = fixture().await;
    let scope = CancellationToken::new();
    let Verdict::Permit(p) = f.gate.decide_within(&alice(&["staff"]), &wiki(), Some(&scope)) else { panic!() };
    let p = p.open().await.unwrap();
    scope.cancel();
    assert!(p.revoked().is_cancelled());
    p.close(0, 0, 0, "route removed");
}

#[tokio::test]
async fn no_access_goes_ahead_while_its_evidence_could_not_be_kept() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("s.db")).await.unwrap();
    // One queued event fills this queue; buffered events wait a minute for company.
    let config =
        AuditConfig { max_queued: 1, batch_window: std::time::Duration::from_secs(60), ..AuditConfig::default() };
    let (auditor, _) = Auditor::start(store.clone(), AuditKey::generate(), config).await.unwrap();
    let gate = Gate::new(auditor.clone(), "r1");
    gate.change_policies(|e| {
        let compiled =
            e.compile("wiki", &ServicePolicy { required: vec!["true".into()], ..Default::default() }).unwrap();
        e.insert("acme", "wiki", compiled);
    });
    drop(gate.refuse(&alice(&[]), "wiki", "agent_offline", "agent_offline: queued"));
    assert!(auditor.saturated());
    for _ in 0..3 {
        let Verdict::Deny(d) = gate.decide(&alice(&["staff"]), &wiki()) else { panic!("allowed with a full queue") };
        assert_eq!(d.code, AUDIT_BACKLOG);
        d.record().await.unwrap();
    }
    auditor.flush().await.unwrap();
    // The queue drained: accesses go ahead again, and the refusals were counted in one event.
    let Verdict::Permit(p) = gate.decide(&alice(&["staff"]), &wiki()) else { panic!("still refused") };
    // (The count just queued fills this one-event queue again.)
    auditor.flush().await.unwrap();
    p.open().await.unwrap().close(0, 0, 0, "");
    auditor.flush().await.unwrap();
    let rows = store.audit_page(&sekisho_store::TenantId::from("acme"), 0, 100).await.unwrap();
    let reasons: Vec<&str> = rows.iter().map(|r| r.record.reason.as_str()).collect();
    assert_eq!(
        reasons,
        [
            "agent_offline: queued",
            "audit_backlog: 3 accesses were refused while the audit log could not keep up",
            "all required conditions hold",
            "all required conditions hold"
        ]
    );
}

#[tokio::test]
async fn revoking_the_key_of_an_open_access_ends_it() {
    let f = fixture().await;
    let with_key = Attempt { credential: Some("key_1".into()), ..alice(&["staff"]) };
    let Verdict::Permit(p) = f.gate.decide(&with_key, &wiki()) else { panic!() };
    let p = p.open().await.unwrap();
    let Verdict::Permit(other) = f.gate.decide(&alice(&["staff"]), &wiki()) else { panic!() };
    let other = other.open().await.unwrap();
    assert_eq!(f.gate.live_credentials(), vec![("acme".into(), "key_1".to_owned())]);
    let dead: std::collections::HashSet<String> = ["key_1".to_owned()].into();
    assert_eq!(f.gate.redecide(&FreshGroups::new(), &dead), 1);
    assert!(p.revoked().is_cancelled() && !other.revoked().is_cancelled());
    drop((p, other));
    let rows = events(&f).await;
    assert!(rows.iter().any(|r| r.record.policy_id == "credential_revoked"), "{rows:?}");
}
