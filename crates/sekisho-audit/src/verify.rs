//! `audit verify`: recompute every tenant's chain and check its signed checkpoints.
//!
//! What is caught, and how:
//! - an event whose content, sequence number or hash was edited, or that was moved to another
//!   place (the hash covers `seq`): its recomputed hash differs → [`ProblemKind::Altered`];
//! - an event inserted or replaced with a self-consistent hash: it does not link to the event
//!   before it → [`ProblemKind::Inserted`];
//! - events deleted from the middle: a gap in `seq` → [`ProblemKind::Deleted`]; from the end: a
//!   signed checkpoint names a later event than the newest stored → [`ProblemKind::Deleted`];
//! - a rewritten chain (every hash recomputed): it no longer matches the signed checkpoints →
//!   [`ProblemKind::Altered`];
//! - a forged or foreign checkpoint → [`ProblemKind::BadCheckpoint`].
//!
//! Events after the newest checkpoint are covered by the chain but not yet by a signature; the
//! report says how many (the relay checkpoints every few seconds and on shutdown).

use std::collections::BTreeMap;

use ed25519_dalek::{Signature, VerifyingKey};
use sekisho_store::{Checkpoint, Store, StoreError};
use serde::Serialize;

use crate::chain::{GENESIS, checkpoint_message, event_hash};
use crate::keys::parse_public_key;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemKind {
    Altered,
    Inserted,
    Deleted,
    BadCheckpoint,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub kind: ProblemKind,
    /// The first event (sequence number) that is wrong or missing.
    pub seq: i64,
    pub message: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct TenantReport {
    pub tenant: String,
    pub events: u64,
    pub first_seq: Option<i64>,
    pub last_seq: Option<i64>,
    pub checkpoints: usize,
    /// Events newer than the newest checkpoint (chained, not yet signed).
    pub unsigned_tail: u64,
    pub problem: Option<Problem>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub ok: bool,
    pub tenants: Vec<TenantReport>,
}

/// Verifies the chains of `tenant` (or every tenant) against checkpoints signed by one of
/// `trusted` keys.
pub async fn verify(store: &Store, trusted: &[VerifyingKey], tenant: Option<&str>) -> Result<Report, StoreError> {
    let tenants = match tenant {
        Some(t) => vec![t.to_owned()],
        None => store.audit_tenants().await?,
    };
    let mut reports = Vec::new();
    for t in tenants {
        reports.push(verify_tenant(store, trusted, &t).await?);
    }
    Ok(Report { ok: reports.iter().all(|r| r.problem.is_none()), tenants: reports })
}

fn check_signature(c: &Checkpoint, trusted: &[VerifyingKey]) -> Result<(), String> {
    let Some(key) = parse_public_key(&c.key_id) else {
        return Err("checkpoint names a malformed key".into());
    };
    if !trusted.contains(&key) {
        return Err(format!("checkpoint is signed by key `{}`, which is not trusted", c.key_id));
    }
    let sig = hex::decode(&c.signature).ok().and_then(|b| Signature::from_slice(&b).ok());
    match sig {
        Some(sig) if key.verify_strict(&checkpoint_message(c), &sig).is_ok() => Ok(()),
        _ => Err("checkpoint signature does not verify".into()),
    }
}

async fn verify_tenant(store: &Store, trusted: &[VerifyingKey], tenant: &str) -> Result<TenantReport, StoreError> {
    let checkpoints = store.list_checkpoints(tenant).await?;
    let mut report = TenantReport {
        tenant: tenant.to_owned(),
        events: 0,
        first_seq: None,
        last_seq: None,
        checkpoints: checkpoints.len(),
        unsigned_tail: 0,
        problem: None,
    };
    let problem = |kind, seq, message: String| Some(Problem { kind, seq, message });
    for c in &checkpoints {
        if let Err(msg) = check_signature(c, trusted) {
            report.problem = problem(ProblemKind::BadCheckpoint, c.seq, msg);
            return Ok(report);
        }
    }
    // The newest prune anchor is where the stored chain starts; periodic checkpoints after it
    // pin the hash at their sequence number.
    let anchor = checkpoints.iter().filter(|c| c.kind == "prune").max_by_key(|c| c.seq);
    let (mut expect_seq, mut prev) = anchor.map_or((1, GENESIS.to_owned()), |a| (a.seq + 1, a.hash.clone()));
    let pins: BTreeMap<i64, &str> = checkpoints
        .iter()
        .filter(|c| c.kind == "periodic" && c.seq >= expect_seq)
        .map(|c| (c.seq, c.hash.as_str()))
        .collect();
    let newest_pin = pins.keys().next_back().copied().or(anchor.map(|a| a.seq)).unwrap_or(0);

    let mut after = expect_seq - 1;
    loop {
        let page = store.audit_page(tenant, after, 10_000).await?;
        if page.is_empty() {
            break;
        }
        for row in page {
            after = row.seq;
            report.first_seq.get_or_insert(row.seq);
            report.last_seq = Some(row.seq);
            report.events += 1;
            if row.seq != expect_seq {
                report.problem = problem(
                    ProblemKind::Deleted,
                    expect_seq,
                    format!("events #{expect_seq}..#{} are missing", row.seq - 1),
                );
                return Ok(report);
            }
            if event_hash(&row.prev_hash, row.seq, &row.record) != row.hash {
                report.problem = problem(
                    ProblemKind::Altered,
                    row.seq,
                    format!("event #{} does not match its hash (its content or place was changed)", row.seq),
                );
                return Ok(report);
            }
            if row.prev_hash != prev {
                report.problem = problem(
                    ProblemKind::Inserted,
                    row.seq,
                    format!("event #{} does not follow event #{} (inserted or replaced)", row.seq, row.seq - 1),
                );
                return Ok(report);
            }
            if let Some(pinned) = pins.get(&row.seq)
                && *pinned != row.hash
            {
                report.problem = problem(
                    ProblemKind::Altered,
                    row.seq,
                    format!("event #{} differs from the signed checkpoint (the chain was rewritten)", row.seq),
                );
                return Ok(report);
            }
            if row.seq > newest_pin {
                report.unsigned_tail += 1;
            }
            prev = row.hash;
            expect_seq += 1;
        }
    }
    if newest_pin >= expect_seq {
        report.problem = problem(
            ProblemKind::Deleted,
            expect_seq,
            format!("events #{expect_seq}..#{newest_pin} are missing (a signed checkpoint covers them)"),
        );
    }
    Ok(report)
}
