//! What the gate answers: a [`Permit`] to go ahead, or a [`Denial`]. Each holds its access event
//! and records it exactly once: when the door says (with what only the door knows: bytes,
//! duration, detail), or when it is dropped, so no decision leaves without evidence.
//!
//! **Opened before forwarded.** A permit does not forward anything: the door first calls
//! [`Permit::open`], which commits the stream's `opened` event (durably, with group commit) and
//! returns an [`Opened`] access: only then may the door forward the client's first byte. The
//! `closed` event (bytes, duration) follows when the door closes it or drops it, with the same
//! stream id. A crash between the two leaves the `opened` event, which the relay closes as
//! `open_at_crash` when it starts again, and which `audit verify` lists until then.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use sekisho_audit::{AuditError, Auditor, Decision as AuditDecision, Event, Phase};
use sekisho_policy::Decision;
use tokio_util::sync::CancellationToken;

use crate::live::{Handle, LiveId};

/// The gate's answer to one access.
#[must_use = "a verdict must be acted on: forward on a permit, refuse on a denial"]
#[derive(Debug)]
pub enum Verdict {
    Permit(Permit),
    Deny(Denial),
}

/// An access refused. Its event is recorded by [`Denial::record`] (durably, before the client
/// is told) or, at the latest, when the denial is dropped.
#[must_use = "a denial must be recorded and told to the client"]
#[derive(Debug)]
pub struct Denial {
    event: Option<Box<Event>>,
    /// The policy id or reason code: `wiki/deny/0`, `default-deny`, `agent_offline`, …
    pub code: String,
    /// What people read.
    pub reason: String,
    auditor: Auditor,
}

impl Denial {
    pub(crate) fn new(event: Event, code: String, reason: String, auditor: Auditor) -> Self {
        Denial { event: Some(Box::new(event)), code, reason, auditor }
    }

    /// A denial whose event is counted rather than recorded one by one (see [`crate::Gate`]'s
    /// audit backlog), or already queued by the gate.
    pub(crate) fn counted(code: String, reason: String, auditor: Auditor) -> Self {
        Denial { event: None, code, reason, auditor }
    }

    /// `denied by policy `<id>`: <reason>` for policy denials, `<reason>` for refusals whose
    /// reason already starts with its code.
    pub fn message(&self) -> String {
        if self.reason.starts_with(self.code.as_str()) {
            self.reason.clone()
        } else {
            format!("denied by policy `{}`: {}", self.code, self.reason)
        }
    }

    /// Adds a fact to the event (the gateway's name, the request line).
    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        if let Some(e) = self.event.take() {
            self.event = Some(Box::new(e.detail(detail)));
        }
        self
    }

    /// Records the event without waiting: it is committed within the audit writer's batch
    /// window. For refusals the client may hear of first (anonymous noise).
    pub fn record_soon(self) {}

    /// Records the event and returns once it is committed: the refusal is on record before the
    /// client hears of it.
    pub async fn record(mut self) -> Result<(), AuditError> {
        match self.event.take() {
            Some(e) => self.auditor.record_durable(*e).await,
            None => Ok(()),
        }
    }
}

impl Drop for Denial {
    fn drop(&mut self) {
        if let Some(e) = self.event.take() {
            self.auditor.record(*e);
        }
    }
}

/// An access allowed and not yet forwarded. [`Permit::open`] records its `opened` event and
/// gives the [`Opened`] access the door forwards; [`Permit::withdraw`] drops it when it cannot
/// happen (the door records the refusal that takes its place). A permit dropped unopened records
/// its decision with nothing forwarded.
#[must_use = "a permit must be opened (before forwarding) or withdrawn"]
#[derive(Debug)]
pub struct Permit {
    facts: Facts,
    /// Until it is opened, withdrawn or dropped.
    access: Option<Access>,
}

/// What a permitted access tells its door.
#[derive(Debug, Clone)]
struct Facts {
    policy_id: String,
    reason: String,
    /// `<relay>:<run>:<n>`: the id its `opened` and `closed` events share.
    stream: String,
    revoked: CancellationToken,
    auditor: Auditor,
    counters: Arc<crate::Counters>,
}

/// What a permitted access carries from decision to close: its event and its registration for
/// live re-decision (removed when it ends).
#[derive(Debug)]
struct Access {
    event: Box<Event>,
    live: Option<(Handle, LiveId)>,
}

impl Drop for Access {
    fn drop(&mut self) {
        if let Some((handle, id)) = self.live.take() {
            handle.remove(id);
        }
    }
}

impl Permit {
    pub(crate) fn new(
        event: Event,
        decision: Decision,
        auditor: Auditor,
        revoked: CancellationToken,
        live: Option<(Handle, LiveId)>,
        stream: String,
        counters: Arc<crate::Counters>,
    ) -> Self {
        Permit {
            facts: Facts { policy_id: decision.policy_id, reason: decision.reason, stream, revoked, auditor, counters },
            access: Some(Access { event: Box::new(event), live }),
        }
    }

    /// The policy that allowed it (`<service>/required`).
    pub fn policy_id(&self) -> &str {
        &self.facts.policy_id
    }

    /// Why it was allowed.
    pub fn reason(&self) -> &str {
        &self.facts.reason
    }

    /// The id its `opened` and `closed` events will share.
    pub fn stream_id(&self) -> &str {
        &self.facts.stream
    }

    /// Commits the stream's `opened` event and returns the access to forward. The door forwards
    /// nothing before this returns. When the audit log cannot commit it in time, the access is
    /// refused (`audit_unavailable`): its `opened` event stays queued, and a `closed` event
    /// saying it was not forwarded is queued after it (the returned denial has nothing more to
    /// record).
    pub async fn open(mut self) -> Result<Opened, Denial> {
        let facts = self.facts.clone();
        let Some(access) = self.access.take() else {
            let reason = "internal: the permit was already used".to_owned();
            return Err(Denial::counted("internal".into(), reason, facts.auditor));
        };
        let opened = (*access.event).clone().stream(&facts.stream, Phase::Opened);
        match facts.auditor.record_durable(opened).await {
            Ok(()) => Ok(Opened { facts, access: Some(access), reported: Arc::new(AtomicBool::new(false)) }),
            Err(e) => {
                let reason = format!("audit_unavailable: the access was not forwarded: {e}");
                let mut closing = closing(&access.event, &facts.stream).traffic(0, 0, 0).reason(reason.clone());
                closing.decision = AuditDecision::Deny;
                closing.policy_id = "audit_unavailable".into();
                facts.auditor.record(closing);
                Err(Denial::counted("audit_unavailable".into(), reason, facts.auditor))
            }
        }
    }

    /// Withdraws a permit that could not be used (the service's agent is offline): nothing is
    /// recorded for it, because the door records the refusal that took its place
    /// ([`crate::Gate::refuse`]).
    pub fn withdraw(mut self) {
        self.access = None;
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if let Some(a) = self.access.take() {
            self.facts
                .auditor
                .record((*a.event).clone().detail("allowed; not forwarded (the front door did not open it)"));
        }
    }
}

/// The `closed` event of a stream: the decision's event without its input (the `opened` event
/// keeps it), with the stream's id.
fn closing(event: &Event, stream: &str) -> Event {
    let mut e = event.clone().stream(stream, Phase::Closed);
    e.input = String::new();
    e
}

/// An access whose `opened` event is committed: the door forwards it. Its `closed` event is
/// recorded when the door closes it ([`Opened::close`]) or, at the latest, when it is dropped.
/// While it lives it is registered for live re-decision: [`Opened::revoked`] fires when a change
/// denies it (or the door's scope, given to [`crate::Gate::decide_within`], ends).
#[must_use = "an open access must be closed when it ends"]
#[derive(Debug)]
pub struct Opened {
    facts: Facts,
    /// Until it is closed or dropped.
    access: Option<Access>,
    /// Set once a [`Reporter`] recorded a part of this access.
    reported: Arc<AtomicBool>,
}

/// Records the parts of one open access as they end (the channels of a bastion session: each
/// shell, exec or file transfer), each as an allow event with the access's subject, target,
/// decision input and stream id.
#[derive(Debug, Clone)]
pub struct Reporter {
    base: Arc<Event>,
    auditor: Auditor,
    reported: Arc<AtomicBool>,
}

impl Reporter {
    /// Records one part, durably; `change` adds what only the door knows (reason, detail, traffic).
    pub async fn report(&self, change: impl FnOnce(Event) -> Event) -> Result<(), AuditError> {
        self.reported.store(true, Ordering::Relaxed);
        self.auditor.record_durable(change((*self.base).clone())).await
    }
}

impl Opened {
    /// A handle that records parts of this access as they end ([`Reporter`]).
    pub fn reporter(&self) -> Reporter {
        #[expect(clippy::disallowed_methods, reason = "the gate builds every access event")]
        let blank = || Event::access("", AuditDecision::Allow);
        let event = self.access.as_ref().map_or_else(blank, |a| (*a.event).clone());
        let base = event.stream(&self.facts.stream, Phase::Single);
        Reporter { base: Arc::new(base), auditor: self.facts.auditor.clone(), reported: self.reported.clone() }
    }

    /// The policy that allowed it (`<service>/required`).
    pub fn policy_id(&self) -> &str {
        &self.facts.policy_id
    }

    /// Why it was allowed.
    pub fn reason(&self) -> &str {
        &self.facts.reason
    }

    /// The id its `opened` and `closed` events share.
    pub fn stream_id(&self) -> &str {
        &self.facts.stream
    }

    /// Fires when the access must end: a change denied it, or the door's scope ended.
    pub fn revoked(&self) -> &CancellationToken {
        &self.facts.revoked
    }

    /// Ends the access: records its `closed` event with the bytes each way, its duration and
    /// `detail`.
    pub fn close(mut self, bytes_in: u64, bytes_out: u64, duration_ms: u64, detail: impl Into<String>) {
        self.facts.counters.bytes_in.fetch_add(bytes_in, Ordering::Relaxed);
        self.facts.counters.bytes_out.fetch_add(bytes_out, Ordering::Relaxed);
        if let Some(a) = self.access.take() {
            let e = closing(&a.event, &self.facts.stream).traffic(bytes_in, bytes_out, duration_ms).detail(detail);
            self.facts.auditor.record(e);
        }
    }
}

impl Drop for Opened {
    fn drop(&mut self) {
        if let Some(a) = self.access.take() {
            let detail = if self.reported.load(Ordering::Relaxed) {
                "ended; its parts are recorded with the same stream id"
            } else {
                "ended without a report from its front door"
            };
            self.facts.auditor.record(closing(&a.event, &self.facts.stream).detail(detail));
        }
    }
}
