//! Relay-edge ports: a service may also be published as a TCP port on the relay, the way
//! frp/rathole expose a port. Connections there are carried to the service's back agent.
//! This leg terminates at the relay, so it is not end-to-end encrypted (the agent leg is TLS).

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use sekisho_audit::Event;
use sekisho_tunnel::proto::{self, OpenService};
use sekisho_tunnel::pump::{Seal, Totals, abort, bridge};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use crate::state::State;
use crate::topology::Topology;

struct Edge {
    listen: String,
    bound: Result<String, String>,
    cancel: CancellationToken,
}

#[derive(Default)]
pub(crate) struct Edges {
    by_service: Mutex<HashMap<String, Edge>>,
}

impl Edges {
    /// The bound address (or the bind error) of a service's edge port.
    pub(crate) fn status(&self, service_id: &str) -> Option<Result<String, String>> {
        self.by_service.lock().get(service_id).map(|e| e.bound.clone())
    }
}

/// Opens edge listeners for new services with `edge_listen`, closes those of removed ones.
pub(crate) async fn sync(state: &Arc<State>, topo: &Topology) {
    let wanted: HashMap<String, String> =
        topo.services.values().filter_map(|s| s.edge_listen.clone().map(|l| (s.id.clone(), l))).collect();
    let to_open: Vec<(String, String)> = {
        let mut edges = state.edges.by_service.lock();
        edges.retain(|id, e| {
            let keep = wanted.get(id) == Some(&e.listen);
            if !keep {
                e.cancel.cancel();
            }
            keep
        });
        wanted.into_iter().filter(|(id, _)| !edges.contains_key(id)).collect()
    };
    for (id, listen) in to_open {
        let cancel = state.stream_scope(&id);
        let bound = match sekisho_tunnel::dial::listen_str(&listen) {
            Ok(l) => {
                let addr = l.local_addr().map(|a| a.to_string()).unwrap_or_default();
                tracing::info!(service = %id, %addr, "edge port open");
                tokio::spawn(accept_loop(state.clone(), id.clone(), l, cancel.clone()));
                Ok(addr)
            }
            Err(e) => {
                tracing::warn!(service = %id, %listen, error = %e, "cannot open edge port");
                Err(format!("cannot listen on `{listen}`: {e}"))
            }
        };
        state.edges.by_service.lock().insert(id, Edge { listen, bound, cancel });
    }
}

async fn accept_loop(state: Arc<State>, service_id: String, listener: TcpListener, cancel: CancellationToken) {
    loop {
        let (sock, peer) = tokio::select! {
            a = listener.accept() => match a {
                Ok(a) => a,
                Err(_) => { tokio::time::sleep(std::time::Duration::from_millis(50)).await; continue; }
            },
            () = cancel.cancelled() => return,
        };
        let _ = sock.set_nodelay(true);
        let state = state.clone();
        let service_id = service_id.clone();
        let cancel = cancel.clone();
        tokio::spawn(async move {
            tokio::select! {
                () = serve(state, &service_id, sock, peer) => {}
                () = cancel.cancelled() => {}
            }
        });
    }
}

async fn serve(state: Arc<State>, service_id: &str, sock: TcpStream, peer: std::net::SocketAddr) {
    let topo = state.topology();
    let Some(svc) = topo.services.get(service_id) else {
        return;
    };
    let (decision, event) = crate::decide::edge(&state, &topo, svc, peer.ip());
    let deny = |code: &str, reason: String, event: Event| {
        let state = state.clone();
        let sock = &sock;
        let event = event.reason(format!("{code}: {reason}"));
        async move {
            if let Err(e) = state.auditor.record_durable(event).await {
                tracing::error!(error = %e, "cannot record refusal");
            }
            abort(sock);
        }
    };
    if !decision.allowed {
        return deny("policy_denied", decision.reason.clone(), event).await;
    }
    let Some(conn) = svc.agent_id.as_deref().and_then(|id| state.hub.conn(id)) else {
        let why = format!("service `{}` is unavailable: its agent is offline", svc.name);
        return deny("agent_offline", why, event.policy("agent_offline")).await;
    };
    let open = OpenService { service: svc.id.clone(), from_agent: None, from_key: None, e2e: None, dest: None };
    let stream = match conn.open(proto::encode(&open)) {
        Ok(s) => s,
        Err(e) => return deny("agent_offline", e.to_string(), event.policy("agent_offline")).await,
    };
    let totals = Totals::default();
    let started = std::time::Instant::now();
    let mut sock = sock;
    let result = bridge(&mut sock, stream, Seal::Plain, &totals).await;
    if result.is_err() {
        abort(&sock);
    }
    let (up, down) = totals.get();
    let detail = match result {
        Ok(()) => format!("edge port {}", peer),
        Err(e) => format!("edge port; ended: {e}"),
    };
    state.auditor.record(event.traffic(up, down, started.elapsed().as_millis() as u64).detail(detail));
}
