//! Background evidence chores: retention pruning per tenant plan, the summaries of unauthenticated
//! noise (see [`crate::noise`]), and the test-only tap.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use sekisho_store::now_ms;
use tokio::io::AsyncWriteExt;

use sekisho_audit::{Decision, Event, EventKind, SubjectKind};

use crate::noise::Summary;
use crate::state::State;

const DAY_MS: i64 = 86_400_000;

/// Prunes each tenant's audit events older than its plan's retention, hourly (and at start).
pub fn spawn_retention(state: &Arc<State>) {
    let state = Arc::downgrade(state);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(3600));
        loop {
            tick.tick().await;
            let Some(state) = state.upgrade() else { return };
            if state.shutdown.is_cancelled() {
                return;
            }
            enforce_retention(&state).await;
        }
    });
}

/// What a retention pass did: events removed, and tenants whose log was not pruned because it
/// does not verify (name, why).
#[derive(Debug, Default, serde::Serialize)]
pub struct Retention {
    pub removed: u64,
    pub refused: Vec<RetentionRefusal>,
}

#[derive(Debug, serde::Serialize)]
pub struct RetentionRefusal {
    pub tenant: String,
    pub reason: String,
}

/// Applies every tenant's retention now. A tenant whose log does not verify is not pruned (that
/// would launder what is wrong): it is refused, logged, and recorded in its chain. What a prune
/// removed is recorded as a summary (count, first and last event and hash) next to the signed
/// prune anchor.
pub async fn enforce_retention(state: &State) -> Retention {
    let mut done = Retention::default();
    let tenants = match state.store.list_tenants().await {
        Ok(t) => t,
        Err(e) => {
            tracing::error!(error = %e, "retention: cannot list tenants");
            return done;
        }
    };
    for t in tenants {
        let before = now_ms() - t.retention_days.max(1) * DAY_MS;
        let event = |decision, reason: String| {
            sekisho_audit::Event::new(&t.id, sekisho_audit::EventKind::System, decision)
                .subject(sekisho_audit::SubjectKind::System, "retention")
                .reason(reason)
        };
        match state.auditor.prune(&t.id, before).await {
            Ok(None) => {}
            Ok(Some(p)) => {
                done.removed += p.count;
                tracing::info!(tenant = %t.name, removed = p.count, days = t.retention_days, "audit retention applied");
                state.auditor.record(event(
                    sekisho_audit::Decision::Allow,
                    format!(
                        "removed {} events older than {} days: #{}..#{} (first hash {}, last hash {})",
                        p.count, t.retention_days, p.first_seq, p.last_seq, p.first_hash, p.last_hash
                    ),
                ));
            }
            Err(sekisho_audit::AuditError::Unverified(why)) => {
                tracing::error!(tenant = %t.name, error = %why, "retention refused: the audit log does not verify");
                state.auditor.record(event(sekisho_audit::Decision::Deny, format!("audit_unverified: {why}")));
                done.refused.push(RetentionRefusal { tenant: t.name.clone(), reason: why });
            }
            Err(e) => tracing::error!(tenant = %t.name, error = %e, "retention: prune failed"),
        }
    }
    done
}

/// Test-only tap: forwards copies of spliced bytes to a TCP listener at `addr`.
pub fn start_tap(addr: SocketAddr) -> sekisho_tunnel::pump::Tap {
    tracing::warn!(%addr, "debug tap enabled: spliced agent-to-agent bytes are copied to this address");
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<bytes::Bytes>();
    tokio::spawn(async move {
        let Ok(mut sock) = tokio::net::TcpStream::connect(addr).await else {
            tracing::error!(%addr, "cannot connect to debug tap");
            return;
        };
        while let Some(chunk) = rx.recv().await {
            if sock.write_all(&chunk).await.is_err() {
                return;
            }
        }
    });
    tx
}

/// Records the summaries of ended windows every window, in the default tenant's chain.
pub fn spawn_noise_summaries(state: &Arc<State>) {
    let state = Arc::downgrade(state);
    tokio::spawn(async move {
        loop {
            let Some(window) = state.upgrade().map(|s| s.noise.window()) else { return };
            tokio::time::sleep(window / 2).await;
            let Some(state) = state.upgrade() else { return };
            let all = state.shutdown.is_cancelled();
            record_noise(&state, state.noise.take_ended(all));
            if all {
                return;
            }
        }
    });
}

fn record_noise(state: &State, summaries: Vec<Summary>) {
    for s in summaries {
        let event = Event::new("default", EventKind::System, Decision::Deny)
            .subject(SubjectKind::Anonymous, s.ip.to_string())
            .path(s.path)
            .policy("noise")
            .reason(format!(
                "noise: {} more `{}` refusals of {} (of {} in all), counted, not recorded one by one",
                s.unrecorded, s.code, s.ip, s.seen
            ))
            .source(s.ip, state.geo.country(s.ip));
        state.auditor.record(event);
    }
}
