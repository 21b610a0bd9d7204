//! Relay-edge ports: a service may also be published as a TCP port on the relay, the way
//! frp/rathole expose a port. Connections there are carried to the service's back agent.
//! This leg terminates at the relay, so it is not end-to-end encrypted (the agent leg is TLS).

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use parking_lot::Mutex;
use sekisho_gate::{AccessPath, AuthMethod, Opened, Resource, Subject, Verdict};
use sekisho_tunnel::MuxStream;
use sekisho_tunnel::proto::{self, OpenService};
use sekisho_tunnel::pump::{Seal, Totals, abort, bridge};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use sekisho_door::State;
use sekisho_door::limits::Slot;
use sekisho_door::topology::Topology;

struct Edge {
    listen: String,
    cancel: CancellationToken,
}

/// The open edge ports, by service id (their bound address or bind error is in the shared
/// state's `edge_status`, for the API).
#[derive(Default)]
pub(crate) struct Edges {
    by_service: Mutex<HashMap<String, Edge>>,
}

/// Opens edge listeners for new services with `edge_listen`, closes those of removed ones (after
/// every reload of the topology).
pub(crate) async fn sync(state: Arc<State>, edges: Arc<Edges>, topo: Arc<Topology>) {
    let wanted: HashMap<String, String> =
        topo.services.values().filter_map(|s| s.edge_listen.clone().map(|l| (s.id.to_string(), l))).collect();
    let to_open: Vec<(String, String)> = {
        let mut open = edges.by_service.lock();
        let mut status = state.edge_status.lock();
        open.retain(|id, e| {
            let keep = wanted.get(id) == Some(&e.listen);
            if !keep {
                e.cancel.cancel();
                status.remove(id);
            }
            keep
        });
        wanted.into_iter().filter(|(id, _)| !open.contains_key(id)).collect()
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
        state.edge_status.lock().insert(id.clone(), bound);
        edges.by_service.lock().insert(id, Edge { listen, cancel });
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
        let Some(slot) = state.edge_limits.admit(sekisho_door::credentials::canonical(peer.ip())) else { continue };
        let _ = sock.set_nodelay(true);
        tokio::spawn(serve(state.clone(), service_id.clone(), (sock, slot), peer, cancel.clone()));
    }
}

/// Decides one connection to a service's edge port: refuses it (on record) or hands it to a
/// task of its own, [`forward`], that holds only what forwarding needs (one per open connection).
async fn serve(
    state: Arc<State>,
    service_id: String,
    (sock, slot): (TcpStream, Slot),
    peer: SocketAddr,
    cancel: CancellationToken,
) {
    let admitted = {
        let topo = state.topology();
        let Some(svc) = topo.services.get(service_id.as_str()) else {
            return;
        };
        // The principal is the unauthenticated `Visitor::"<ip>"`: conditions on
        // `context.source_ip` and `context.country` are what guard edge ports.
        let attempt = sekisho_door::decide::attempt(
            &state,
            &topo,
            &svc.tenant_id,
            AccessPath::Edge,
            AuthMethod::None,
            Subject::Visitor,
            peer.ip(),
        );
        let resource = Resource::service(svc.name.clone(), svc.protocol);
        match state.gate.decide_within(&attempt, &resource, Some(&cancel)) {
            Verdict::Deny(denial) => Err(denial),
            Verdict::Permit(permit) => {
                let offline = |permit: sekisho_gate::Permit, why: String| {
                    permit.withdraw();
                    state.gate.refuse(&attempt, &svc.name, "agent_offline", format!("agent_offline: {why}"))
                };
                match svc.agent_id.as_deref().and_then(|id| state.hub.conn(id)) {
                    Some(conn) => {
                        let open = OpenService {
                            service: svc.id.to_string(),
                            from_agent: None,
                            from_key: None,
                            e2e: None,
                            dest: None,
                        };
                        match conn.open(proto::encode(&open)) {
                            Ok(stream) => Ok((stream, permit)),
                            Err(e) => Err(offline(permit, e.to_string())),
                        }
                    }
                    None => {
                        Err(offline(permit, format!("service `{}` is unavailable: its agent is offline", svc.name)))
                    }
                }
            }
        }
    };
    let denial = match admitted {
        // On record as opened before a byte is forwarded.
        Ok((stream, permit)) => match permit.open().await {
            Ok(opened) => {
                tokio::spawn(forward((sock, slot), peer, stream, opened));
                return;
            }
            Err(denial) => {
                stream.reset(sekisho_wire::ResetCode::REFUSED, &denial.message());
                denial
            }
        },
        Err(denial) => denial,
    };
    // The refusal is on disk before the connection is reset.
    if let Err(e) = denial.record().await {
        tracing::error!(error = %e, "cannot record refusal");
    }
    abort(&sock);
}

/// Forwards an admitted connection until both directions end, either fails, the edge port is
/// closed or a change denies it; then closes its permit with the byte counts.
///
/// An `async` block, not an `async fn`: an `async fn` keeps a second copy of its arguments in
/// its future (rust-lang/rust#62958), and there is one of these futures per open connection.
#[allow(clippy::manual_async_fn, reason = "an async fn would store its arguments twice")]
fn forward(
    (mut sock, slot): (TcpStream, Slot),
    peer: SocketAddr,
    stream: MuxStream,
    permit: Opened,
) -> impl Future<Output = ()> {
    async move {
        let _slot = slot;
        let totals = Totals::default();
        let started = std::time::Instant::now();
        let result = tokio::select! {
            r = bridge(&mut sock, stream, Seal::Plain, &totals) => r.map_err(|e| e.to_string()),
            () = permit.revoked().cancelled() => Err("edge port closed by administrator, or access ended by a change".to_owned()),
        };
        if result.is_err() {
            abort(&sock);
        }
        let (up, down) = totals.get();
        let detail = match result {
            Ok(()) => format!("edge port {peer}"),
            Err(e) => format!("edge port; ended: {e}"),
        };
        permit.close(up, down, started.elapsed().as_millis() as u64, detail);
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;

    fn size_of_output<A, B, C, D, F: Future>(_: fn(A, B, C, D) -> F) -> usize {
        std::mem::size_of::<F>()
    }

    /// The relay keeps one of these futures per open edge connection: it was 2,688 bytes when
    /// the decision, the refusal and the forwarding were one `async fn`.
    #[test]
    fn the_task_of_an_open_edge_connection_stays_small() {
        let forward = size_of_output(super::forward);
        assert!(forward <= 1664, "forward future is {forward} bytes");
    }
}
