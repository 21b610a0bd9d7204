//! Agents online over time, for the dashboard's chart: every few minutes the relay notes how many
//! agents of each tenant are connected to it (each relay of a cluster its own; the summary adds
//! them up), and forgets samples older than eight days.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use sekisho_door::State;
use sekisho_store::TenantId;
use tokio_util::sync::CancellationToken;

const KEEP_MS: i64 = 8 * 86_400_000;

pub(crate) fn start(state: Arc<State>, relay: String, every: Duration, shutdown: CancellationToken) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            let topo = state.topology();
            // Every tenant with agents has a sample, zero included (a site that went dark shows).
            let mut online: BTreeMap<TenantId, i64> = topo.agents.values().map(|a| (a.tenant_id.clone(), 0)).collect();
            for id in state.hub.online_ids() {
                if let Some(a) = topo.agents.values().find(|a| a.id.as_str() == id) {
                    *online.entry(a.tenant_id.clone()).or_default() += 1;
                }
            }
            let now = sekisho_store::now_ms();
            let rows: Vec<(TenantId, i64)> = online.into_iter().collect();
            if let Err(e) = state.store.record_agent_samples(&relay, now, &rows, now - KEEP_MS).await {
                tracing::warn!(error = %e, "cannot keep the sample of agents online");
            }
        }
    });
}
