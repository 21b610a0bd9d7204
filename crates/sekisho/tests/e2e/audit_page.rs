//! The console's audit page as an auditor uses it: pages of 100 events with a cursor to older
//! ones (no event twice, none skipped), readable columns in Japanese, and one event's detail with
//! its place in the hash chain, which notices an altered event.

use crate::harness::Relay;
use crate::web::{Visitor, web_user};

#[tokio::test]
async fn audit_pages_and_one_events_place_in_the_chain() {
    let relay = Relay::start().await;
    let secret = web_user(&relay, "kansa", "auditors", "auditor", "監査 太郎").await;
    // Enough events for three pages: each read of the log is itself on record.
    for _ in 0..230 {
        assert_eq!(relay.api("GET", "/api/v1/audit?limit=1", None, &relay.admin_key).await.0, 200);
    }
    let mut v = Visitor::new(&relay, &[]);
    v.lang = "ja";
    v.sign_in(&v.url("localhost", "/login"), "kansa", &secret, 0).await;

    let mut seen: Vec<i64> = Vec::new();
    let mut url = v.url("localhost", "/audit?hours=1");
    for page in 0..3 {
        let p = v.get(&url).await;
        assert_eq!(p.status, 200, "{}", p.body);
        let seqs: Vec<i64> = p
            .body
            .split("href=\"/audit/event/")
            .skip(1)
            .map(|rest| rest.split('"').next().unwrap().parse().unwrap())
            .collect();
        assert!(!seqs.is_empty() && seqs.windows(2).all(|w| w[0] > w[1]), "newest first: {seqs:?}");
        if page < 2 {
            assert_eq!(seqs.len(), 100, "a full page");
            assert!(p.body.contains("さらに古いイベント") && p.body.contains("管理操作"), "{}", p.body);
            let at = p.body.find("id=\"older\" href=\"").expect("a link to older events") + 17;
            url = v.url("localhost", &p.body[at..].split('"').next().unwrap().replace("&amp;", "&"));
        } else {
            assert!(!p.body.contains("id=\"older\""), "the last page has no older link");
        }
        if let Some(last) = seen.last() {
            assert_eq!(seqs[0], last - 1, "the next page starts right after the last: none skipped");
        }
        seen.extend(seqs);
    }
    let before = seen.len();
    seen.dedup();
    assert_eq!(seen.len(), before, "no event twice");

    // One event: every field, its hash checked, its neighbours.
    let seq = seen[50];
    let p = v.get(&v.url("localhost", &format!("/audit/event/{seq}"))).await;
    assert_eq!(p.status, 200, "{}", p.body);
    assert!(p.body.contains(&format!("監査イベント #{seq}")), "{}", p.body);
    assert!(p.body.contains("ハッシュチェーン上の位置") && p.body.matches(">一致<").count() == 2, "{}", p.body);
    assert!(p.body.contains(&format!("href=\"/audit/event/{}\"", seq - 1)), "a link to the event before");
    assert!(p.body.contains(&format!("href=\"/audit/event/{}\"", seq + 1)), "and to the one after");
    assert!(
        p.body.contains("<dd translate=\"no\">GET /audit</dd>") && p.body.contains("管理操作"),
        "what was done: {}",
        p.body
    );
    let api = relay.api("GET", &format!("/api/v1/audit/events/{seq}"), None, &relay.admin_key).await.1;
    assert_eq!(
        (api["chain"]["hash_ok"].as_bool(), api["chain"]["linked"].as_bool()),
        (Some(true), Some(true)),
        "{api}"
    );
    assert!(api["time"].as_str().unwrap().ends_with("+09:00"), "{api}");
    // Another tenant's auditor finds nothing at that number of this tenant.
    let (s, _) = relay.api("GET", "/api/v1/audit/events/999999", None, &relay.admin_key).await;
    assert_eq!(s, 404);

    // An event altered in the database (the sqlite3 tool, which the test command installs): its
    // detail page says so.
    let db = relay.dir.path().join("data").join("sekisho.db");
    let sql =
        format!("UPDATE audit_events SET reason = 'nothing happened' WHERE seq = {seq} AND tenant_id = 'default'");
    let out = std::process::Command::new("sqlite3").arg(&db).arg(&sql).output().expect("sqlite3");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let p = v.get(&v.url("localhost", &format!("/audit/event/{seq}"))).await;
    assert!(p.body.contains("不一致: 改ざんされています"), "{}", p.body);
    let api = relay.api("GET", &format!("/api/v1/audit/events/{seq}"), None, &relay.admin_key).await.1;
    assert_eq!(api["chain"]["hash_ok"], false, "{api}");
}
