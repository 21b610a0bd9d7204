//! What the gate answers: a [`Permit`] to go ahead, or a [`Denial`]. Each holds its access event
//! and records it exactly once: when the door says (with what only the door knows: bytes,
//! duration, detail), or when it is dropped, so no decision leaves without evidence.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use sekisho_audit::{AuditError, Auditor, Decision as AuditDecision, Event};
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

    /// A denial counted rather than recorded one by one (see [`crate::Gate`]'s audit backlog).
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

/// An access allowed. Its event (decision `allow`, with the decision's input) is recorded when
/// the access ends ([`Permit::close`]) or, at the latest, when the permit is dropped. While it
/// lives it is registered for live re-decision: [`Permit::revoked`] fires when a change denies it
/// (or the door's scope, given to [`crate::Gate::decide_within`], ends).
#[must_use = "a permit must be closed when the access ends"]
#[derive(Debug)]
pub struct Permit {
    event: Option<Box<Event>>,
    policy_id: String,
    reason: String,
    auditor: Auditor,
    revoked: CancellationToken,
    live: Option<(Handle, LiveId)>,
    /// Set once a [`Reporter`] recorded a part of this access: the parts are its evidence.
    reported: Arc<AtomicBool>,
}

/// Records the parts of one permitted access as they end (the channels of a bastion session:
/// each shell, exec or file transfer), each as an allow event with the permit's subject, target
/// and decision input.
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

impl Permit {
    pub(crate) fn new(
        event: Event,
        decision: Decision,
        auditor: Auditor,
        revoked: CancellationToken,
        live: Option<(Handle, LiveId)>,
    ) -> Self {
        Permit {
            event: Some(Box::new(event)),
            policy_id: decision.policy_id,
            reason: decision.reason,
            auditor,
            revoked,
            live,
            reported: Arc::new(AtomicBool::new(false)),
        }
    }

    /// A handle that records parts of this access as they end ([`Reporter`]).
    pub fn reporter(&self) -> Reporter {
        #[expect(clippy::disallowed_methods, reason = "unreachable: a live permit holds its event")]
        let base = self.event.as_deref().cloned().unwrap_or_else(|| Event::access("", AuditDecision::Allow));
        Reporter { base: Arc::new(base), auditor: self.auditor.clone(), reported: self.reported.clone() }
    }

    /// The policy that allowed it (`<service>/required`).
    pub fn policy_id(&self) -> &str {
        &self.policy_id
    }

    /// Why it was allowed.
    pub fn reason(&self) -> &str {
        &self.reason
    }

    /// Fires when the access must end: a change denied it, or the door's scope ended.
    pub fn revoked(&self) -> &CancellationToken {
        &self.revoked
    }

    /// Ends the access: records its event with the bytes each way, its duration and `detail`.
    pub fn close(mut self, bytes_in: u64, bytes_out: u64, duration_ms: u64, detail: impl Into<String>) {
        if let Some(e) = self.event.take() {
            self.auditor.record(e.traffic(bytes_in, bytes_out, duration_ms).detail(detail));
        }
    }

    /// Ends the access without traffic to report (a request answered at once).
    pub fn close_with(mut self, change: impl FnOnce(Event) -> Event) {
        if let Some(e) = self.event.take() {
            self.auditor.record(change(*e));
        }
    }

    /// Withdraws a permit that could not be used (the service's agent is offline): nothing is
    /// recorded for it, because the door records the refusal that took its place
    /// ([`crate::Gate::refuse`]).
    pub fn withdraw(mut self) {
        self.event = None;
    }

    /// The allow event as it stands, for doors that record it durably themselves before
    /// forwarding (the browser edge); the permit then records nothing more.
    pub fn take_event(mut self) -> Event {
        match self.event.take() {
            Some(e) => *e,
            #[expect(clippy::disallowed_methods, reason = "unreachable: the event is taken once")]
            None => Event::access("", AuditDecision::Allow),
        }
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if let Some((handle, id)) = self.live.take() {
            handle.remove(id);
        }
        if let Some(e) = self.event.take()
            && !self.reported.load(Ordering::Relaxed)
        {
            self.auditor.record(e.detail("ended without a report from its front door"));
        }
    }
}
