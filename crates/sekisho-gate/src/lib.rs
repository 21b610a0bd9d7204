//! The access gate: the one place where an access on any path (tunnel, relay edge port, browser,
//! SSH bastion, SOCKS gateway, and what comes later) is decided and left as evidence.
//!
//! A front door describes the access with typed parts ([`Attempt`]: tenant, [`AccessPath`],
//! [`AuthMethod`], [`Subject`], source, time; [`Resource`]: service and destination) and asks
//! [`Gate::decide`]. The gate alone builds the policy engine's request, asks the tenant's Cedar
//! policy, and builds the access event; the door gets a [`Verdict`] (`#[must_use]`): a [`Permit`],
//! which the door opens ([`Permit::open`]: the stream's `opened` event is committed) before it
//! forwards a byte, and whose `closed` event is recorded when the door closes the [`Opened`]
//! access (with bytes and duration) or drops it, or a
//! [`Denial`], recorded when the door records it (durably, before telling the client) or drops it.
//! Refusals before policy (no such route, agent offline, a fact the store could not give) go
//! through [`Gate::refuse`], so every access event on every path has one shape.
//!
//! **Fail closed.** A fact the door could not read arrives as [`Unreadable`] and denies with its
//! code (`store_unavailable`); a stored policy that cannot be used denies its service
//! (`policy_unreadable`); a request Cedar cannot evaluate denies. No default stands in for an
//! error.
//!
//! **Live re-decision.** Every open permit is registered with what it was decided from; when a
//! policy or a user's groups change, [`Gate::redecide`] decides them again and ends those now
//! denied (their [`Opened::revoked`] fires), with an event naming the new reason.
//!
//! This crate does no network or database I/O: doors read the store, the gate decides and records.

mod input;
mod live;
mod verdict;

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::RwLock;
use sekisho_audit::{Auditor, Decision as AuditDecision, Event};
pub use sekisho_policy::{AccessPath, AgentInfo, AuthMethod, Decision, Destination, ServiceInfo, UnknownWord};
use sekisho_policy::{AccessRequest, CompiledPolicy, Engine, PolicyError, Principal, ServicePolicy};
use tokio_util::sync::CancellationToken;

pub use input::{Attempt, Resource, Subject, Unreadable};
use input::{Kept, KeptPrincipal};
pub use verdict::{Denial, Opened, Permit, Reporter, Verdict};

/// The access gate of one relay. Shared by every front door (`Arc<Gate>`).
pub struct Gate {
    engine: RwLock<Engine>,
    auditor: Auditor,
    live: live::Registry,
    /// Accesses refused because the audit queue was full, per tenant: counted while it is full,
    /// recorded as one event per tenant once it drains.
    backlog: parking_lot::Mutex<HashMap<String, u64>>,
    /// `<relay>:<run>:`, the prefix of this relay's stream ids, and the next number.
    stream_prefix: String,
    next_stream: std::sync::atomic::AtomicU64,
    counters: Arc<Counters>,
}

/// What the gate has done since the relay started, for `/metrics`.
#[derive(Debug, Default)]
pub struct Counters {
    /// Per access path ([`AccessPath::ALL`] order): allowed, denied.
    decisions: [[std::sync::atomic::AtomicU64; 2]; AccessPath::ALL.len()],
    /// Bytes of closed accesses, from the client and to it.
    bytes_in: std::sync::atomic::AtomicU64,
    bytes_out: std::sync::atomic::AtomicU64,
}

impl Counters {
    fn count(&self, path: AccessPath, allowed: bool) {
        let i = AccessPath::ALL.iter().position(|p| *p == path).unwrap_or(0);
        self.decisions[i][usize::from(!allowed)].fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// The code of a refusal because the audit log cannot keep up.
pub const AUDIT_BACKLOG: &str = "audit_backlog";

impl std::fmt::Debug for Gate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gate").field("live", &self.live.len()).finish_non_exhaustive()
    }
}

/// Users whose groups were read again for a re-decision: (tenant, user name) → groups.
pub type FreshGroups = HashMap<(sekisho_store::TenantId, String), Result<Vec<String>, Unreadable>>;

impl Gate {
    /// A gate with no policies (every decision `default-deny`) that records to `auditor`. Its
    /// streams are named `<relay>:<run>:<n>`: `relay` is this relay's lasting id (it closes its
    /// own streams left open by a crash when it starts again), `<run>` this process's start.
    pub fn new(auditor: Auditor, relay: &str) -> Self {
        let run = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis());
        Gate {
            engine: RwLock::new(Engine::new()),
            auditor,
            live: live::Registry::default(),
            backlog: parking_lot::Mutex::new(HashMap::new()),
            stream_prefix: format!("{relay}:{run:x}:"),
            next_stream: std::sync::atomic::AtomicU64::new(1),
            counters: Arc::default(),
        }
    }

    /// A new stream id of this relay.
    fn stream_id(&self) -> String {
        let n = self.next_stream.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        format!("{}{n}", self.stream_prefix)
    }

    /// Decisions since start: (access path, `allow`/`deny`, count), every pair.
    pub fn decision_counts(&self) -> Vec<(&'static str, &'static str, u64)> {
        let mut out = Vec::new();
        for (path, counts) in AccessPath::ALL.iter().zip(&self.counters.decisions) {
            for (word, n) in ["allow", "deny"].iter().zip(counts) {
                out.push((path.as_str(), *word, n.load(std::sync::atomic::Ordering::Relaxed)));
            }
        }
        out
    }

    /// Bytes of closed accesses since start: (from clients, to clients).
    pub fn byte_counts(&self) -> (u64, u64) {
        let load = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
        (load(&self.counters.bytes_in), load(&self.counters.bytes_out))
    }

    /// The audit writer the gate records to.
    pub fn auditor(&self) -> &Auditor {
        &self.auditor
    }

    /// Compiles `policy` for `service` (changes nothing).
    pub fn compile(&self, service: &str, policy: &ServicePolicy) -> Result<CompiledPolicy, PolicyError> {
        self.engine.read().compile(service, policy)
    }

    /// The policy deciding `tenant`'s `service`, if it has one.
    pub fn policy(&self, tenant: &str, service: &str) -> Option<Arc<CompiledPolicy>> {
        self.engine.read().get(tenant, service).cloned()
    }

    /// Changes the policies in force (insert, remove, mark unreadable).
    pub fn change_policies(&self, change: impl FnOnce(&mut Engine)) {
        change(&mut self.engine.write());
    }

    /// Replaces every policy at once (a reload from the store).
    pub fn replace_policies(&self, engine: Engine) {
        *self.engine.write() = engine;
    }

    /// Decides one access and returns the verdict, whose event is recorded when the door is done
    /// with it. The permit is registered for live re-decision until it (or its open access) is closed or dropped.
    pub fn decide(&self, attempt: &Attempt, resource: &Resource) -> Verdict {
        self.decide_within(attempt, resource, None)
    }

    /// [`Gate::decide`], with the open access's [`Opened::revoked`] also firing when `scope` is
    /// cancelled (a route or service removed).
    pub fn decide_within(&self, attempt: &Attempt, resource: &Resource, scope: Option<&CancellationToken>) -> Verdict {
        // No access goes ahead whose evidence could not be kept: while the audit queue is full,
        // new accesses are refused (and counted, so the refusals do not fill it further).
        if self.auditor.saturated() {
            self.counters.count(attempt.path, false);
            *self.backlog.lock().entry(attempt.tenant.to_string()).or_default() += 1;
            let reason = format!("{AUDIT_BACKLOG}: the audit log cannot keep up; new accesses wait until it does");
            return Verdict::Deny(Denial::counted(AUDIT_BACKLOG.to_owned(), reason, self.auditor.clone()));
        }
        self.record_backlog();
        let decision = self.evaluate(attempt, resource);
        self.counters.count(attempt.path, decision.allowed);
        // A policy denial's event says so in its first word, like every refusal's
        // (`policy_denied: <condition>`); reasons that already lead with their code stay.
        let event = if decision.allowed || decision.reason.starts_with(decision.policy_id.as_str()) {
            self.event(attempt, &resource.label(), &decision, Some(resource))
        } else {
            let shown = Decision { reason: format!("policy_denied: {}", decision.reason), ..decision.clone() };
            self.event(attempt, &resource.label(), &shown, Some(resource))
        };
        if decision.allowed {
            let revoked = scope.map_or_else(CancellationToken::new, CancellationToken::child_token);
            let id = self.live.add(attempt.clone(), resource.clone(), revoked.clone());
            let live = Some((self.live.handle(), id));
            let counters = self.counters.clone();
            Verdict::Permit(Permit::new(
                event,
                decision,
                self.auditor.clone(),
                revoked,
                live,
                self.stream_id(),
                counters,
            ))
        } else {
            Verdict::Deny(Denial::new(event, decision.policy_id, decision.reason, self.auditor.clone()))
        }
    }

    /// Records, per tenant, how many accesses were refused while the audit queue was full.
    fn record_backlog(&self) {
        let counts: Vec<(String, u64)> = {
            let mut backlog = self.backlog.lock();
            if backlog.is_empty() {
                return;
            }
            backlog.drain().collect()
        };
        for (tenant, n) in counts {
            #[expect(clippy::disallowed_methods, reason = "the gate builds every access event")]
            let event = Event::access(&tenant, AuditDecision::Deny)
                .policy(AUDIT_BACKLOG)
                .reason(format!("{AUDIT_BACKLOG}: {n} accesses were refused while the audit log could not keep up"));
            self.auditor.record(event);
        }
    }

    /// What the gate would decide, without evidence and without registering anything: for
    /// `ctl policy test` and for listing what a user may reach (a menu). Never used to let an
    /// access through.
    pub fn dry_run(&self, attempt: &Attempt, resource: &Resource) -> Decision {
        self.evaluate(attempt, resource)
    }

    /// Refuses an access before (or instead of) policy: `code` is the stable reason code
    /// (`route_not_found`, `agent_offline`, `private_destination`, …), kept as the event's policy
    /// id, `reason` what people read.
    pub fn refuse(&self, attempt: &Attempt, target: &str, code: &str, reason: impl Into<String>) -> Denial {
        let reason = reason.into();
        self.counters.count(attempt.path, false);
        let decision = Decision {
            allowed: false,
            policy_id: code.to_owned(),
            reason: reason.clone(),
            policy_version: String::new(),
        };
        let event = self.event(attempt, target, &decision, None);
        Denial::new(event, code.to_owned(), reason, self.auditor.clone())
    }

    /// Decides again every open permit (after a policy, group, key or membership change), with
    /// `groups` read afresh for the users among them ([`Gate::live_users`]); ends those now denied
    /// and records why. Returns how many were ended.
    pub fn redecide(&self, groups: &FreshGroups, dead_credentials: &std::collections::HashSet<String>) -> usize {
        let mut ended = 0;
        for (attempt, resource, revoked) in self.live.snapshot() {
            let mut attempt = attempt;
            if let Subject::User { name, groups: g, .. } = &mut attempt.subject
                && let Some(fresh) = groups.get(&(attempt.tenant.clone(), name.clone()))
            {
                *g = fresh.clone();
            }
            let decision = match &attempt.credential {
                Some(id) if dead_credentials.contains(id) => Decision {
                    allowed: false,
                    policy_id: "credential_revoked".into(),
                    reason: format!("credential_revoked: the key `{id}` was revoked, expired or removed"),
                    policy_version: String::new(),
                },
                _ => self.evaluate(&attempt, &resource),
            };
            if decision.allowed || revoked.is_cancelled() {
                continue;
            }
            let reason = format!("access ended by a change: {}", decision.reason);
            let ended_decision = Decision { reason, ..decision };
            let event = self.event(&attempt, &resource.label(), &ended_decision, Some(&resource));
            self.auditor.record(event.detail("revoked: the open access was decided again and ended"));
            revoked.cancel();
            ended += 1;
        }
        ended
    }

    /// The credentials (API key ids) of open permits, by tenant: whose validity [`Gate::redecide`]
    /// needs.
    pub fn live_credentials(&self) -> Vec<(sekisho_store::TenantId, String)> {
        self.live.credentials()
    }

    /// The users with open permits, by (tenant, name): whose groups [`Gate::redecide`] needs.
    pub fn live_users(&self) -> Vec<(sekisho_store::TenantId, String)> {
        self.live.users()
    }

    /// How many permits are open.
    pub fn live_count(&self) -> usize {
        self.live.len()
    }

    fn evaluate(&self, attempt: &Attempt, resource: &Resource) -> Decision {
        let deny = |code: &str, reason: String| Decision {
            allowed: false,
            policy_id: code.to_owned(),
            reason,
            policy_version: String::new(),
        };
        let (principal, via_agent) = match &attempt.subject {
            Subject::User { groups: Err(e), .. } => return deny(e.code, format!("{}: {}", e.code, e.message)),
            Subject::User { name, groups: Ok(groups), via_agent } => {
                (Principal::User { name: name.clone(), groups: groups.clone() }, via_agent.clone())
            }
            Subject::Agent(a) => {
                (Principal::Agent { name: a.name.clone(), site: a.site.clone(), role: a.role.clone() }, None)
            }
            Subject::Visitor => (Principal::Visitor { ip: attempt.source_ip.to_string() }, None),
            Subject::Named { name, .. } => {
                return deny("unknown_subject", format!("unknown_subject: `{name}` is not a known principal"));
            }
        };
        let request = AccessRequest {
            tenant: attempt.tenant.to_string(),
            principal,
            via_agent,
            service: resource.service.clone(),
            source_ip: attempt.source_ip,
            country: attempt.country.clone(),
            at: attempt.at,
            auth_method: attempt.auth,
            path: attempt.path,
            destination: resource.destination.clone(),
        };
        #[expect(clippy::disallowed_methods, reason = "the gate is the one caller of the policy engine")]
        self.engine.read().decide(&request)
    }

    /// The access event of a decision, with the decision's whole input kept in its detail.
    fn event(&self, attempt: &Attempt, target: &str, decision: &Decision, resource: Option<&Resource>) -> Event {
        let (kind, name) = attempt.subject.label(attempt.source_ip);
        let verdict = if decision.allowed { AuditDecision::Allow } else { AuditDecision::Deny };
        #[expect(clippy::disallowed_methods, reason = "the gate builds every access event")]
        let event = Event::access(&attempt.tenant, verdict);
        let (user, agent) = attempt.subject.principal();
        let mut event = event
            .subject(kind, name)
            .principal(user, agent)
            .path(attempt.path.as_str())
            .target(target.to_owned())
            .policy(decision.policy_id.clone())
            .reason(decision.reason.clone())
            .auth(attempt.auth.as_str())
            .source(attempt.source_ip, attempt.country.clone());
        if let Some(resource) = resource {
            event.input = kept(attempt, resource, &decision.policy_version);
        }
        event
    }
}

/// The JSON of a decision's input (see [`Kept`]).
fn kept(attempt: &Attempt, resource: &Resource, policy_version: &str) -> String {
    let principal = match &attempt.subject {
        Subject::User { name, groups, via_agent } => KeptPrincipal::User {
            name,
            groups: groups.as_deref().unwrap_or(&[]),
            agent: via_agent.as_ref().map(|a| a.name.as_str()),
        },
        Subject::Agent(a) => KeptPrincipal::Agent { name: &a.name, site: &a.site, role: &a.role },
        Subject::Visitor | Subject::Named { .. } => KeptPrincipal::Visitor,
    };
    let dest = resource.destination.as_ref();
    let kept = Kept {
        path: attempt.path,
        auth_method: attempt.auth,
        principal,
        service: &resource.service.name,
        protocol: &resource.service.protocol,
        domain: dest.map(|d| d.domain.as_str()).filter(|d| !d.is_empty()),
        port: dest.map(|d| d.port),
        dest_ip: dest.and_then(|d| d.ip),
        source_ip: attempt.source_ip,
        country: &attempt.country,
        at: attempt.at.format(&time::format_description::well_known::Rfc3339).unwrap_or_default(),
        policy_version,
    };
    serde_json::to_string(&kept).unwrap_or_default()
}

#[cfg(test)]
mod tests;
