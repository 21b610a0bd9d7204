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
//! - events deleted from the end *together with their checkpoints*: the anchor file outside the
//!   database ([`crate::anchors`]) names a later signed event → [`ProblemKind::Cut`]; a deleted
//!   or emptied anchor file while the database has checkpoints → [`ProblemKind::AnchorMissing`];
//! - events after the newest signed checkpoint (the last seconds before a crash, or rows added
//!   since by someone with database access) → [`ProblemKind::Unsigned`]: reported, never passed.
//!   The relay signs at least every 5 s and every [`crate::CHECKPOINT_EVENTS`] events of a
//!   tenant, so a crash leaves at most that many unsigned.

use std::collections::BTreeMap;

use ed25519_dalek::{Signature, VerifyingKey};
use sekisho_store::{Checkpoint, Store, StoreError, TenantId};
use serde::Serialize;

use crate::anchors::Anchors;
use crate::chain::{GENESIS, checkpoint_message, event_hash};
use crate::keys::parse_public_key;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemKind {
    Altered,
    Inserted,
    Deleted,
    BadCheckpoint,
    /// A bastion recording named by a chained event is missing from the recordings directory.
    RecordingMissing,
    /// A bastion recording's sealed file does not open to the SHA-256 its chained event states.
    RecordingAltered,
    /// The chain ends before the newest anchor kept outside the database: its tail was cut.
    Cut,
    /// The anchor file is gone or holds nothing of a tenant whose database has checkpoints.
    AnchorMissing,
    /// Events after the newest signed checkpoint.
    Unsigned,
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
    /// Recordings whose chained hash was checked against their sealed file
    /// ([`check_recordings`]).
    pub recordings_checked: u64,
    /// Recordings that could not be checked (no master key to open them, and no hash of the
    /// sealed file in their event).
    pub recordings_unchecked: u64,
    /// Recordings named by chained events, for [`check_recordings`].
    #[serde(skip)]
    pub recording_refs: Vec<RecordingRef>,
    /// Streams whose `opened` event has no `closed` event: open now, or on a relay that stopped
    /// (killed, crashed) and has not started again to close them. Not a fault of the log.
    pub open_streams: Vec<OpenStreamRef>,
    /// Streams a relay closed as `open_at_crash` when it started again.
    pub closed_at_crash: u64,
    pub problem: Option<Problem>,
}

/// The reason code of a stream's `closed` event written by a relay that found it open when it
/// started (it was killed or crashed while forwarding it).
pub const OPEN_AT_CRASH: &str = "open_at_crash";

/// A stream opened and not closed, as its `opened` event describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OpenStreamRef {
    pub stream_id: String,
    /// Its `opened` event.
    pub seq: i64,
    pub at: i64,
    pub path: String,
    pub subject: String,
    pub target: String,
}

impl OpenStreamRef {
    pub fn of(row: &sekisho_store::AuditRow) -> OpenStreamRef {
        let e = &row.record;
        OpenStreamRef {
            stream_id: e.stream_id.clone(),
            seq: row.seq,
            at: e.at,
            path: e.path.clone(),
            subject: e.subject.clone(),
            target: e.target.clone(),
        }
    }
}

/// A bastion recording as its chained event describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordingRef {
    pub seq: i64,
    pub id: String,
    /// SHA-256 of the plaintext asciicast.
    pub sha256: String,
    /// SHA-256 of the sealed file, in events written since it was recorded.
    pub sealed_sha256: Option<String>,
}

impl RecordingRef {
    /// The recording an `ssh` event names, if it has an asciicast.
    pub fn of(row: &sekisho_store::AuditRow) -> Option<RecordingRef> {
        if row.record.path != "ssh" || !row.record.detail.contains("\"recording\"") {
            return None;
        }
        let d: serde_json::Value = serde_json::from_str(&row.record.detail).ok()?;
        let sha256 = d["sha256"].as_str().filter(|s| !s.is_empty())?.to_owned();
        Some(RecordingRef {
            seq: row.seq,
            id: d["recording"].as_str()?.to_owned(),
            sha256,
            sealed_sha256: d["sealed_sha256"].as_str().map(str::to_owned),
        })
    }
}

/// Checks each verified tenant's recordings in `dir` (`<id>.cast.sealed`): the sealed file's
/// hash where the event has one, and, with the recording `key`, that it opens complete to the
/// chained SHA-256. The first failure becomes the tenant's problem.
pub fn check_recordings(report: &mut Report, dir: &std::path::Path, key: Option<&[u8; 32]>) {
    use sha2::{Digest, Sha256};
    for t in &mut report.tenants {
        if t.problem.is_some() {
            continue;
        }
        for r in &t.recording_refs {
            let path = dir.join(format!("{}.cast.sealed", r.id));
            let fail = |kind, message: String| Some(Problem { kind, seq: r.seq, message });
            let bytes = match std::fs::read(&path) {
                Ok(b) => b,
                Err(e) => {
                    let msg =
                        format!("recording {} of event #{} cannot be read ({}): {e}", r.id, r.seq, path.display());
                    t.problem = fail(ProblemKind::RecordingMissing, msg);
                    break;
                }
            };
            let mut checked = false;
            if let Some(want) = &r.sealed_sha256 {
                if hex::encode(Sha256::digest(&bytes)) != *want {
                    let msg = format!("recording {} differs from the sealed file hash in event #{}", r.id, r.seq);
                    t.problem = fail(ProblemKind::RecordingAltered, msg);
                    break;
                }
                checked = true;
            }
            if let Some(key) = key {
                let problem = match crate::recording::sealed::open(key, &bytes) {
                    Err(e) => Some(format!("recording {} does not open: {e}", r.id)),
                    Ok(o) if !o.complete => {
                        Some(format!("recording {} is cut short (its final chunk is missing)", r.id))
                    }
                    Ok(o) if hex::encode(Sha256::digest(&o.plain)) != r.sha256 => {
                        Some(format!("recording {} differs from the SHA-256 chained in event #{}", r.id, r.seq))
                    }
                    Ok(_) => None,
                };
                if let Some(msg) = problem {
                    t.problem = fail(ProblemKind::RecordingAltered, msg);
                    break;
                }
                checked = true;
            }
            if checked {
                t.recordings_checked += 1;
            } else {
                t.recordings_unchecked += 1;
            }
        }
    }
    report.ok = report.tenants.iter().all(|t| t.problem.is_none());
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub ok: bool,
    pub tenants: Vec<TenantReport>,
}

/// Verifies the chains of `tenant` (or every tenant) against checkpoints signed by one of
/// `trusted` keys.
pub async fn verify(
    store: &Store,
    trusted: &[VerifyingKey],
    tenant: Option<&TenantId>,
    anchors: Option<&Anchors>,
) -> Result<Report, StoreError> {
    verify_with_progress(store, trusted, tenant, anchors, &|_| {}).await
}

/// [`verify`], telling `progress` how many more events were checked after each page of them
/// (for a progress bar over millions of events).
pub async fn verify_with_progress(
    store: &Store,
    trusted: &[VerifyingKey],
    tenant: Option<&TenantId>,
    anchors: Option<&Anchors>,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<Report, StoreError> {
    let tenants = match tenant {
        Some(t) => vec![t.clone()],
        None => store.audit_tenants().await?,
    };
    let mut reports = Vec::new();
    for t in tenants {
        let mut report = verify_tenant(store, trusted, &t, progress).await?;
        if report.problem.is_none()
            && let Some(anchors) = anchors
        {
            report.problem = check_anchor(&report, anchors, trusted, store, &t).await?;
        }
        if report.problem.is_none() && report.unsigned_tail > 0 {
            let first = report.last_seq.unwrap_or(0) - report.unsigned_tail as i64 + 1;
            report.problem = Some(Problem {
                kind: ProblemKind::Unsigned,
                seq: first,
                message: format!(
                    "events #{first}..#{} are not covered by a signed checkpoint (written just before a crash, \
                     or added since by someone with access to the database)",
                    report.last_seq.unwrap_or(0)
                ),
            });
        }
        reports.push(report);
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

/// A time in ms since the epoch as RFC 3339 (UTC), for messages.
fn rfc3339(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_else(|| format!("{ms} ms"))
}

/// The tenant's chain against the newest anchor kept outside the database.
async fn check_anchor(
    report: &TenantReport,
    anchors: &Anchors,
    trusted: &[VerifyingKey],
    store: &Store,
    tenant: &TenantId,
) -> Result<Option<Problem>, StoreError> {
    let file = anchors.path.display();
    let Some(anchor) = anchors.newest(tenant) else {
        // In a cluster each relay keeps its own file, so one file may lack a tenant another
        // relay wrote; a file that is gone, or holds nothing at all, while the database has
        // checkpoints was deleted or emptied.
        if report.checkpoints == 0 || !anchors.checkpoints.is_empty() {
            return Ok(None);
        }
        let message = if anchors.exists {
            format!(
                "the anchor file {file} is empty, but the database has {} checkpoints of this tenant: it was emptied or replaced",
                report.checkpoints
            )
        } else {
            format!(
                "the anchor file {file} is missing, but the database has {} checkpoints of this tenant: it was deleted",
                report.checkpoints
            )
        };
        return Ok(Some(Problem { kind: ProblemKind::AnchorMissing, seq: 0, message }));
    };
    if let Err(why) = check_signature(anchor, trusted) {
        let message = format!("the newest anchor of this tenant in {file} (event #{}): {why}", anchor.seq);
        return Ok(Some(Problem { kind: ProblemKind::BadCheckpoint, seq: anchor.seq, message }));
    }
    let last = report.last_seq.unwrap_or(0);
    if last < anchor.seq {
        let message = format!(
            "events #{}..#{} are missing: the anchor file {file} names event #{} (signed {}), the database ends at #{last}; the log was cut short",
            last + 1,
            anchor.seq,
            anchor.seq,
            rfc3339(anchor.at),
        );
        return Ok(Some(Problem { kind: ProblemKind::Cut, seq: last + 1, message }));
    }
    // The anchored event is stored (the chain verified up to `last`): it must have the anchored
    // hash. A pruned anchor names the newest pruned event, which is no longer stored.
    if anchor.kind != "prune" {
        let row = store.audit_page(tenant, anchor.seq - 1, 1).await?.into_iter().next();
        if let Some(row) = row.filter(|r| r.seq == anchor.seq)
            && row.hash != anchor.hash
        {
            let message =
                format!("event #{} differs from the anchor file {file} (the chain was rewritten)", anchor.seq);
            return Ok(Some(Problem { kind: ProblemKind::Altered, seq: anchor.seq, message }));
        }
    }
    Ok(None)
}

async fn verify_tenant(
    store: &Store,
    trusted: &[VerifyingKey],
    tenant: &TenantId,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<TenantReport, StoreError> {
    let checkpoints = store.list_checkpoints(tenant).await?;
    let mut report = TenantReport {
        tenant: tenant.to_string(),
        events: 0,
        first_seq: None,
        last_seq: None,
        checkpoints: checkpoints.len(),
        unsigned_tail: 0,
        recordings_checked: 0,
        recordings_unchecked: 0,
        recording_refs: Vec::new(),
        open_streams: Vec::new(),
        closed_at_crash: 0,
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
    let mut open: std::collections::HashMap<String, OpenStreamRef> = std::collections::HashMap::new();
    loop {
        let page = store.audit_page(tenant, after, 10_000).await?;
        if page.is_empty() {
            break;
        }
        progress(page.len() as u64);
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
            if let Some(r) = RecordingRef::of(&row) {
                report.recording_refs.push(r);
            }
            let e = &row.record;
            if !e.stream_id.is_empty() {
                if e.phase == sekisho_store::PHASE_OPENED {
                    open.insert(e.stream_id.clone(), OpenStreamRef::of(&row));
                } else if e.phase == sekisho_store::PHASE_CLOSED {
                    open.remove(&e.stream_id);
                    if e.reason.starts_with(OPEN_AT_CRASH) {
                        report.closed_at_crash += 1;
                    }
                }
            }
            prev = row.hash;
            expect_seq += 1;
        }
    }
    report.open_streams = open.into_values().collect();
    report.open_streams.sort_by_key(|s| s.seq);
    if newest_pin >= expect_seq {
        report.problem = problem(
            ProblemKind::Deleted,
            expect_seq,
            format!("events #{expect_seq}..#{newest_pin} are missing (a signed checkpoint covers them)"),
        );
    }
    Ok(report)
}
