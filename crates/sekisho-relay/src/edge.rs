//! Relay-edge ports: a service may also be published as a TCP port on the relay, the way
//! frp/rathole expose a port. Connections there are carried to the service's back agent.
//! This leg terminates at the relay, so it is not end-to-end encrypted (the agent leg is TLS).

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use sekisho_store::NewEvent;
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
                () = serve(state, &service_id, sock, peer.to_string()) => {}
                () = cancel.cancelled() => {}
            }
        });
    }
}

async fn serve(state: Arc<State>, service_id: &str, sock: TcpStream, peer: String) {
    let topo = state.topology();
    let Some(svc) = topo.services.get(service_id) else {
        return;
    };
    let deny = |reason: String| {
        state.record(NewEvent {
            kind: "edge".into(),
            target: Some(svc.name.clone()),
            decision: "deny".into(),
            reason,
            source: Some(peer.clone()),
            ..Default::default()
        });
        abort(&sock);
    };
    let Some(conn) = state.hub.conn(&svc.agent_id) else {
        return deny(format!("agent_offline: service `{}` is unavailable: its agent is offline", svc.name));
    };
    let open = OpenService { service: svc.id.clone(), from_agent: None, from_key: None, e2e: None };
    let stream = match conn.open(proto::encode(&open)) {
        Ok(s) => s,
        Err(e) => return deny(format!("agent_offline: {e}")),
    };
    let totals = Totals::default();
    let mut sock = sock;
    let result = bridge(&mut sock, stream, Seal::Plain, &totals).await;
    if result.is_err() {
        abort(&sock);
    }
    let (up, down) = totals.get();
    state.record(NewEvent {
        kind: "edge".into(),
        target: Some(svc.name.clone()),
        decision: "allow".into(),
        reason: match result {
            Ok(()) => format!("edge port of service {}", svc.name),
            Err(e) => format!("edge port of service {}; ended: {e}", svc.name),
        },
        source: Some(peer),
        bytes_up: Some(up as i64),
        bytes_down: Some(down as i64),
        ..Default::default()
    });
}
