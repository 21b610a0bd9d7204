//! Prometheus metrics (`--metrics-listen`): plain HTTP on a listener of its own, as Prometheus
//! expects; bind it to loopback or a monitoring network (it shows counts, never names, keys or
//! tenants' data). Rendered from the relay's live state at each scrape with `prometheus-client`.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::http::header;
use axum::response::IntoResponse;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use sekisho_door::State;
use tokio_util::sync::CancellationToken;

type Labels = Vec<(String, String)>;

/// Binds `addr` and serves `GET /metrics` until `shutdown`; returns the bound address.
pub(crate) async fn serve(
    addr: SocketAddr,
    state: Arc<State>,
    shutdown: CancellationToken,
) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let state = state.clone();
            async move {
                ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], render(&state)).into_response()
            }
        }),
    );
    tokio::spawn(async move {
        let stop = shutdown.clone();
        if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(async move { stop.cancelled().await }).await {
            tracing::error!(error = %e, "metrics listener stopped");
        }
    });
    Ok(bound)
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

/// The text exposition of the relay's state now.
pub(crate) fn render(state: &State) -> String {
    let mut reg = Registry::with_prefix("sekisho");

    let decisions = Family::<Labels, Counter>::default();
    for (door, decision, n) in state.gate.decision_counts() {
        decisions.get_or_create(&labels(&[("door", door), ("decision", decision)])).inc_by(n);
    }
    reg.register("decisions", "Access decisions, by front door and result", decisions);

    let bytes = Family::<Labels, Counter>::default();
    let (up, down) = state.gate.byte_counts();
    bytes.get_or_create(&labels(&[("direction", "in")])).inc_by(up);
    bytes.get_or_create(&labels(&[("direction", "out")])).inc_by(down);
    reg.register("stream_bytes", "Bytes carried by closed accesses (in: from the client)", bytes);

    let gauge = |v: u64| {
        let g = Gauge::<i64>::default();
        g.set(i64::try_from(v).unwrap_or(i64::MAX));
        g
    };
    reg.register("agents_online", "Agents connected to this relay", gauge(state.hub.online_count() as u64));
    reg.register("streams_open", "Streams open through this relay", gauge(state.hub.stream_count() as u64));
    reg.register(
        "accesses_live",
        "Open accesses the gate decides again on every change",
        gauge(state.gate.live_count() as u64),
    );
    let audit = state.auditor.health();
    reg.register("audit_queue_depth", "Audit events waiting to be committed", gauge(audit.queued as u64));
    reg.register("audit_failing", "1 while the audit log cannot be written", gauge(u64::from(audit.failing)));
    reg.register(
        "audit_saturated",
        "1 while new accesses are refused because the audit queue is full",
        gauge(u64::from(audit.saturated)),
    );

    reg.register(
        "audit_commit_lag_milliseconds",
        "How old the oldest event of the last audit commit was when it was committed",
        gauge(audit.lag_ms),
    );
    let logins = Family::<Labels, Counter>::default();
    let (allowed, denied) = state.auditor.login_counts();
    logins.get_or_create(&labels(&[("result", "allow")])).inc_by(allowed);
    logins.get_or_create(&labels(&[("result", "deny")])).inc_by(denied);
    reg.register("logins", "Sign-ins (console, API, browser, bastion, single sign-on), by result", logins);

    let open = Family::<Labels, Gauge>::default();
    let refused = Family::<Labels, Counter>::default();
    for (listener, o, r) in state.connection_counts() {
        open.get_or_create(&labels(&[("listener", listener)])).set(i64::try_from(o).unwrap_or(i64::MAX));
        refused.get_or_create(&labels(&[("listener", listener)])).inc_by(r);
    }
    reg.register("connections_open", "Connections open, per listener", open);
    reg.register("connections_refused", "Connections refused by the per-address or total caps, per listener", refused);

    let mut out = String::new();
    if let Err(e) = encode(&mut out, &reg) {
        tracing::error!(error = %e, "cannot encode metrics");
    }
    out
}
