//! The front role: one local listener per route assigned to this agent. A connection accepted
//! there becomes a stream to the relay, sealed end to end to the service's back agent.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use sekisho_tunnel::Connection;
use sekisho_tunnel::proto::{self, E2eOpen, OpenRoute, RouteConfig};
use sekisho_tunnel::pump::{Seal, Totals, abort, bridge};
use sekisho_wire::ResetCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::pairs::{Failure, Pairs};
use crate::relay::{Link, RouteReports, report};
use crate::{AgentEvent, Events};

struct Listener {
    config: RouteConfig,
    bound: Result<String, String>,
    cancel: CancellationToken,
}

pub(crate) struct Front {
    routes: Mutex<HashMap<String, Listener>>,
    /// The active relay link: new connections go through it.
    link: watch::Receiver<Option<Link>>,
    /// Every relay link, told about each listener.
    links: Arc<dyn RouteReports>,
    pairs: Arc<Pairs>,
    events: Events,
    shutdown: CancellationToken,
}

impl Front {
    pub(crate) fn new(
        link: watch::Receiver<Option<Link>>,
        links: Arc<dyn RouteReports>,
        pairs: Arc<Pairs>,
        events: Events,
        shutdown: CancellationToken,
    ) -> Self {
        Front { routes: Mutex::new(HashMap::new()), link, links, pairs, events, shutdown }
    }

    /// Re-reports every listener's state (the relay may have restarted and forgotten).
    pub(crate) fn report_all(&self, conn: &Connection) {
        for (id, l) in self.routes.lock().iter() {
            match &l.bound {
                Ok(addr) => report(conn, id, Some(addr.clone()), None),
                Err(e) => report(conn, id, None, Some(e.clone())),
            }
        }
    }

    /// Makes the listeners match `routes`: new ones open, removed or changed ones close (and
    /// their connections are reset), unchanged ones keep running. Every connected relay is told.
    pub(crate) async fn apply(&self, routes: Vec<RouteConfig>) {
        let wanted: HashMap<String, RouteConfig> = routes.into_iter().map(|r| (r.id.clone(), r)).collect();
        let to_open: Vec<RouteConfig> = {
            let mut current = self.routes.lock();
            current.retain(|id, l| {
                let keep = wanted.get(id) == Some(&l.config);
                if !keep {
                    l.cancel.cancel();
                    tracing::info!(route = %id, "route listener closed");
                    let _ = self.events.send(AgentEvent::RouteClosed { route_id: id.clone() });
                }
                keep
            });
            wanted.into_values().filter(|r| !current.contains_key(&r.id)).collect()
        };
        for route in to_open {
            let cancel = self.shutdown.child_token();
            let bound = match sekisho_tunnel::dial::listen_str(&route.listen) {
                Ok(listener) => {
                    let addr = listener.local_addr().map(|a| a.to_string()).unwrap_or_default();
                    tracing::info!(route = %route.id, service = %route.service, %addr, "route listening");
                    let _ = self.events.send(AgentEvent::RouteListening {
                        route_id: route.id.clone(),
                        service: route.service.clone(),
                        addr: addr.clone(),
                    });
                    self.links.report(&route.id, Some(addr.clone()), None);
                    let ctx =
                        Ctx { route: Arc::new(route.clone()), link: self.link.clone(), pairs: self.pairs.clone() };
                    tokio::spawn(accept_loop(listener, ctx, cancel.clone()));
                    Ok(addr)
                }
                Err(e) => {
                    let error = format!("cannot listen on `{}`: {e}", route.listen);
                    tracing::warn!(route = %route.id, %error, "route listener failed");
                    let _ =
                        self.events.send(AgentEvent::RouteFailed { route_id: route.id.clone(), error: error.clone() });
                    self.links.report(&route.id, None, Some(error.clone()));
                    Err(error)
                }
            };
            self.routes.lock().insert(route.id.clone(), Listener { config: route, bound, cancel });
        }
    }
}

#[derive(Clone)]
struct Ctx {
    route: Arc<RouteConfig>,
    link: watch::Receiver<Option<Link>>,
    pairs: Arc<Pairs>,
}

async fn accept_loop(listener: TcpListener, ctx: Ctx, cancel: CancellationToken) {
    loop {
        let (sock, peer) = tokio::select! {
            a = listener.accept() => match a {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = cancel.cancelled() => return,
        };
        let _ = sock.set_nodelay(true);
        let ctx = ctx.clone();
        let cancel = cancel.clone();
        tokio::spawn(async move {
            if let Err(e) = handle(sock, &ctx, &cancel).await {
                tracing::info!(route = %ctx.route.id, %peer, error = %e, "connection ended with an error");
            }
        });
    }
}

async fn handle(mut sock: TcpStream, ctx: &Ctx, cancel: &CancellationToken) -> Result<(), String> {
    let totals = Totals::default();
    let result = tokio::select! {
        r = forward(&mut sock, ctx, &totals) => r,
        () = cancel.cancelled() => Err(Failure::Reset(ResetCode::ROUTE_REMOVED, "route removed by administrator".into())),
    };
    let Err(failure) = result else { return Ok(()) };
    // An HTTP client that has had no answer yet gets one that says why; others see a reset.
    if ctx.route.protocol == "http" && totals.get().1 == 0 {
        explain_http(&mut sock, &failure, totals.get().0 > 0).await;
    } else {
        abort(&sock);
    }
    Err(failure.to_string())
}

async fn forward(sock: &mut TcpStream, ctx: &Ctx, totals: &Totals) -> Result<(), Failure> {
    let link = ctx.link.borrow().clone().ok_or_else(|| Failure::Other("not connected to the relay".into()))?;
    let session = ctx.pairs.get(&link, &ctx.route).await?;
    let index = session.session.next_index().map_err(|e| Failure::Other(e.to_string()))?;
    let open = OpenRoute { route: ctx.route.id.clone(), e2e: Some(E2eOpen::Stream { session: session.id, index }) };
    let stream = link.conn.open(proto::encode(&open)).map_err(|e| Failure::Other(e.to_string()))?;
    let (sealer, opener) =
        session.session.stream(index, &ctx.route.service).map_err(|e| Failure::Other(e.to_string()))?;
    Ok(bridge(sock, stream, Seal::Sealed(sealer, opener), totals).await?)
}

/// Answers an HTTP client with a short bilingual error page, then closes gracefully.
///
/// A refusal can come back before the client has written its request; an HTTP client that
/// reads a response it has not asked for yet drops the connection as a protocol error. So when
/// nothing has come from the client, wait (briefly) for its first bytes before answering.
async fn explain_http(sock: &mut TcpStream, failure: &Failure, client_spoke: bool) {
    if !client_spoke {
        // Buffers here are on the heap: kept across a wait, an array would make the future of
        // every connection 4 KiB larger for a path few of them take.
        let mut first = vec![0u8; 4096];
        let _ = tokio::time::timeout(std::time::Duration::from_secs(1), sock.read(&mut first)).await;
    }
    let (status, ja, en) = match failure {
        Failure::Reset(code, reason) if *code == ResetCode::REFUSED && reason.starts_with("agent_offline") => {
            ("503 Service Unavailable", "サービスが現在利用できません", "the service is unavailable right now")
        }
        Failure::Reset(code, _) if *code == ResetCode::REFUSED => {
            ("403 Forbidden", "このアクセスは許可されていません", "this access is not allowed")
        }
        _ => ("502 Bad Gateway", "サービスに接続できません", "the service could not be reached"),
    };
    let body = format!("Sekisho: {ja} / {en}\n{failure}\n");
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = sock.write_all(head.as_bytes()).await;
    let _ = sock.write_all(body.as_bytes()).await;
    let _ = sock.shutdown().await;
    // Drain what the client still sends so closing does not reset away our answer.
    let mut sink = vec![0u8; 4096];
    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), async {
        while matches!(sock.read(&mut sink).await, Ok(n) if n > 0) {}
    })
    .await;
}

#[cfg(test)]
mod tests {
    fn size_of_output<A, B, C, F: std::future::Future>(_: fn(A, B, C) -> F) -> usize {
        std::mem::size_of::<F>()
    }

    /// An agent keeps one of these futures per open connection (a thousand connections, a
    /// thousand of them). The front's was 4.5 KiB while an error page's 4 KiB read buffer and the
    /// end-to-end handshake were kept inside it.
    #[test]
    fn the_tasks_of_open_connections_stay_small() {
        let front = size_of_output(super::handle);
        assert!(front <= 1536, "front connection future is {front} bytes");
        let back = size_of_output(crate::back::Back::serve);
        assert!(back <= 1536, "back stream future is {back} bytes");
    }
}
