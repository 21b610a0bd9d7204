//! The audit log's rows: chaining, search, pruning, batch inserts.

use super::*;

#[tokio::test]
async fn audit_rows_chain_search_and_prune() {
    for (_d, s) in stores().await {
        let rows: Vec<AuditRow> =
            (1..=5).map(|i| row(i, record("default", i * 10, if i % 2 == 0 { "deny" } else { "allow" }))).collect();
        s.insert_audit(&rows[..3]).await.unwrap();
        s.insert_audit(&rows[3..]).await.unwrap();
        s.insert_audit(&[row(1, record("acme", 5, "allow"))]).await.unwrap();
        // A second writer reusing a sequence number loses the whole batch.
        let clash = [row(6, record("default", 60, "allow")), row(5, record("default", 61, "allow"))];
        assert!(matches!(s.insert_audit(&clash).await, Err(StoreError::Conflict { .. })));
        assert_eq!(s.audit_head(&TenantId::from("default")).await.unwrap(), Some((5, "h5".into())));
        let mut heads = s.audit_heads().await.unwrap();
        heads.sort();
        assert_eq!(heads, [("acme".into(), 1, "h1".into()), ("default".into(), 5, "h5".into())]);
        assert_eq!(s.audit_page(&TenantId::from("default"), 2, 2).await.unwrap(), rows[2..4].to_vec());

        let denied = AuditFilter { decision: Some("deny".into()), ..Default::default() };
        assert_eq!(
            s.search_audit(&TenantId::from("default"), &denied)
                .await
                .unwrap()
                .iter()
                .map(|r| r.seq)
                .collect::<Vec<_>>(),
            [4, 2]
        );
        let window = AuditFilter { from: Some(20), to: Some(40), country: Some("JP".into()), ..Default::default() };
        assert_eq!(
            s.search_audit(&TenantId::from("default"), &window)
                .await
                .unwrap()
                .iter()
                .map(|r| r.seq)
                .collect::<Vec<_>>(),
            [3, 2]
        );
        let other = s.search_audit(&TenantId::from("acme"), &AuditFilter::default()).await.unwrap();
        assert_eq!(other.len(), 1, "search never crosses tenants");

        assert_eq!(s.audit_seq_before(&TenantId::from("default"), 31).await.unwrap(), Some(3));
        let anchor = Checkpoint {
            tenant_id: "default".into(),
            seq: 3,
            hash: "h3".into(),
            at: 100,
            kind: "prune".into(),
            key_id: "k".into(),
            signature: "s".into(),
        };
        assert_eq!(s.prune_audit(&anchor).await.unwrap(), 3);
        assert_eq!(s.audit_page(&TenantId::from("default"), 0, 100).await.unwrap().first().map(|r| r.seq), Some(4));
        assert_eq!(s.list_checkpoints(&TenantId::from("default")).await.unwrap(), [anchor]);
        let mut tenants = s.audit_tenants().await.unwrap();
        tenants.sort();
        assert_eq!(tenants, ["acme", "default"]);
    }
}

#[test]
fn audit_inserts_use_eight_statement_sizes_one_per_bit() {
    for n in 1..=1000 {
        let (mut rest, mut sizes) = (n, Vec::new());
        while rest > 0 {
            let c = crate::audit::insert_chunk(rest);
            sizes.push(c);
            rest -= c;
        }
        assert!(sizes.iter().all(|c| [128, 64, 32, 16, 8, 4, 2, 1].contains(c)), "{n}: {sizes:?}");
        // After the 128s, one statement per one-bit of what is left.
        assert_eq!(sizes.len(), n / 128 + (n % 128).count_ones() as usize, "{n} rows: {sizes:?}");
    }
}

#[tokio::test]
async fn a_large_audit_batch_is_stored_whole_and_in_order() {
    for (_d, s) in stores().await {
        // 300 = 2 × 128 + 32 + 8 + 4: several statement sizes, in one transaction.
        let rows: Vec<AuditRow> = (1..=300).map(|i| row(i, record("default", i, "allow"))).collect();
        s.insert_audit(&rows).await.unwrap();
        assert_eq!(s.audit_page(&TenantId::from("default"), 0, 1000).await.unwrap(), rows);
        assert_eq!(s.audit_head(&TenantId::from("default")).await.unwrap(), Some((300, "h300".into())));
    }
}

#[tokio::test]
async fn audit_search_by_domain_finds_the_domain_and_its_subdomains() {
    for (_d, s) in stores().await {
        let targets =
            ["deepseek.com:443", "chat.deepseek.com:80", "notdeepseek.com:443", "deepseek.com.evil:443", "wiki"];
        let rows: Vec<AuditRow> = targets
            .iter()
            .enumerate()
            .map(|(i, t)| row(i as i64 + 1, AuditRecord { target: (*t).into(), ..record("default", 10, "allow") }))
            .collect();
        s.insert_audit(&rows).await.unwrap();
        let found = |d: &str| {
            let f = AuditFilter { domain: Some(d.into()), ..Default::default() };
            let s = &s;
            async move {
                s.search_audit(&TenantId::from("default"), &f)
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|r| r.record.target)
                    .collect::<Vec<_>>()
            }
        };
        assert_eq!(found("DeepSeek.com").await, ["chat.deepseek.com:80", "deepseek.com:443"]);
        assert!(found("%").await.is_empty(), "LIKE wildcards in the filter are literal");
    }
}

#[tokio::test]
async fn open_streams_follow_their_opened_and_closed_events_in_the_same_transaction() {
    for (_d, s) in stores().await {
        let event = |seq: i64, stream: &str, phase: &str| {
            let mut r = record("default", seq * 10, "allow");
            r.stream_id = stream.into();
            r.phase = phase.into();
            row(seq, r)
        };
        let open = |relay: Option<&'static str>| {
            let s = s.clone();
            async move {
                let rows = s.open_streams(Some(&TenantId::from("default")), relay, 100).await.unwrap();
                rows.into_iter().map(|o| (o.stream_id, o.relay, o.seq)).collect::<Vec<_>>()
            }
        };
        // Opened in one batch: listed, with its relay; opened and closed in one batch: never.
        s.insert_audit(&[event(1, "r1:a:1", "opened"), event(2, "r2:a:1", "opened"), event(3, "r1:a:2", "opened")])
            .await
            .unwrap();
        s.insert_audit(&[event(4, "r1:a:3", "opened"), event(5, "r1:a:3", "closed"), event(6, "r1:a:1", "closed")])
            .await
            .unwrap();
        assert_eq!(
            open(None).await,
            [("r2:a:1".into(), "r2".into(), 2), ("r1:a:2".into(), "r1".into(), 3)],
            "closed streams leave the index"
        );
        assert_eq!(open(Some("r1")).await, [("r1:a:2".into(), "r1".into(), 3)]);
        // A batch whose events conflict leaves the index as it was.
        let clash = [event(7, "r1:a:4", "opened"), event(6, "r1:a:2", "closed")];
        assert!(matches!(s.insert_audit(&clash).await, Err(StoreError::Conflict { .. })));
        assert_eq!(open(Some("r1")).await, [("r1:a:2".into(), "r1".into(), 3)]);
        assert!(s.open_streams(Some(&TenantId::from("acme")), None, 100).await.unwrap().is_empty());
        assert_eq!(s.stream_events(&TenantId::from("default"), "r1:a:3").await.unwrap().len(), 2);
    }
}

/// The dashboard's numbers per hour, reason and country, and the audit page's cursor.
#[tokio::test]
async fn summaries_per_hour_and_pages_by_cursor() {
    const HOUR: i64 = 3_600_000;
    for (_d, s) in stores().await {
        let access = |at: i64, decision: &str, country: &str, policy: &str| AuditRecord {
            kind: "access".into(),
            country: country.into(),
            policy_id: policy.into(),
            ..record("default", at, decision)
        };
        let rows = [
            row(1, access(HOUR + 10, "allow", "JP", "wiki/required")),
            row(2, access(HOUR + 20, "deny", "JP", "wiki/deny/0")),
            row(3, access(HOUR + 30, "deny", "US", "wiki/deny/0")),
            row(4, access(3 * HOUR, "allow", "US", "wiki/required")),
            row(5, access(3 * HOUR + 5, "deny", "", "route_not_found")),
        ];
        s.insert_audit(&rows).await.unwrap();
        let sum = s.audit_summary(&TenantId::from("default"), 0).await.unwrap();
        assert_eq!(sum.hourly, [(HOUR, 1, 2), (3 * HOUR, 1, 1)]);
        assert_eq!(sum.top_deny_reasons, [("wiki/deny/0".to_owned(), 2), ("route_not_found".to_owned(), 1)]);
        assert_eq!(sum.countries, [("JP".to_owned(), 2), ("US".to_owned(), 2)], "no country is left out");
        let later = s.audit_summary(&TenantId::from("default"), 2 * HOUR).await.unwrap();
        assert_eq!(later.hourly, [(3 * HOUR, 1, 1)]);

        // Agents online: each relay's most in the hour, added up over the relays; old samples go.
        let t = TenantId::from("default");
        s.record_agent_samples("r1", HOUR + 1, &[(t.clone(), 2)], 0).await.unwrap();
        s.record_agent_samples("r1", HOUR + 2, &[(t.clone(), 3)], 0).await.unwrap();
        s.record_agent_samples("r2", HOUR + 3, &[(t.clone(), 4)], 0).await.unwrap();
        s.record_agent_samples("r1", 3 * HOUR, &[(t.clone(), 1), (TenantId::from("acme"), 9)], 0).await.unwrap();
        assert_eq!(s.audit_summary(&t, 0).await.unwrap().agents_online, [(HOUR, 7), (3 * HOUR, 1)]);
        s.record_agent_samples("r1", 3 * HOUR + 1, &[], 2 * HOUR).await.unwrap();
        assert_eq!(s.audit_summary(&t, 0).await.unwrap().agents_online, [(3 * HOUR, 1)], "older than the cut: gone");

        let seqs = |f: AuditFilter| {
            let s = &s;
            async move {
                s.search_audit(&TenantId::from("default"), &f).await.unwrap().iter().map(|r| r.seq).collect::<Vec<_>>()
            }
        };
        assert_eq!(seqs(AuditFilter { limit: Some(2), ..Default::default() }).await, [5, 4]);
        assert_eq!(seqs(AuditFilter { before: Some(4), limit: Some(2), ..Default::default() }).await, [3, 2]);
        assert_eq!(seqs(AuditFilter { before: Some(2), limit: Some(2), ..Default::default() }).await, [1]);
    }
}
