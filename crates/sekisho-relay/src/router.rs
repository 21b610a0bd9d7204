//! Agent sessions on the relay: authentication, and the routing of every stream an agent opens.
//!
//! A stream is forwarded only along a route an administrator defined: the route must exist, be
//! assigned to the agent that opened the stream, lead to an existing service, and the service's
//! back agent must be online, and the tenant's policy for the service must allow it (see
//! [`sekisho_door::decide`]). Anything else is refused with a reason; a refusal is in the audit log
//! before the stream is reset, an allowed stream is logged when it ends.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use sekisho_audit::{Decision as AuditDecision, Event, EventKind, SubjectKind};
use sekisho_gate::{Denial, Opened, Permit, Resource, Verdict};
use sekisho_store::{Agent, AgentId, NewAgent, TokenRejection};
use sekisho_tunnel::conn::Heartbeat;
use sekisho_tunnel::identity;
use sekisho_tunnel::proto::{self, AgentMsg, Hello, OpenRoute, OpenService, RelayMsg};
use sekisho_tunnel::pump::{Totals, splice};
use sekisho_tunnel::{Connection, Link, MuxStream};
use sekisho_wire::{Config, ResetCode, Side};
use tracing::Instrument;

use sekisho_door::State;
use sekisho_door::secrets::{hash_secret, new_id};

const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs one agent connection from hello to close.
pub(crate) async fn serve_agent(state: Arc<State>, link: Link, mut exporter: [u8; 32], peer: SocketAddr) {
    let protocol = link.protocol();
    let (conn, driver) = Connection::new(link, Side::Server, Config::default(), Heartbeat::default());
    let driver = tokio::spawn(driver);
    let outcome = if state.agent_limiter.blocked(peer.ip()) {
        Err(("rate_limited", "too many failed agent logins from this address; try again in a minute".to_owned()))
    } else {
        authenticate(&state, &conn, &exporter, peer).await
    };
    // Only the login's signature covers it: nothing of it stays once that is checked.
    zeroize::Zeroize::zeroize(&mut exporter);
    let agent = match outcome {
        Ok(agent) => agent,
        Err((code, message)) => {
            tracing::info!(code, %message, "agent refused");
            // A store that does not answer is not the agent's failure: not counted against its
            // address, and its event is queued rather than awaited (the write would fail as the
            // read did; the writer keeps it until the store is back) so the agent hears why
            // within its own wait.
            let unavailable = code == "store_unavailable";
            if !unavailable {
                state.agent_limiter.failed(peer.ip());
            }
            if unavailable || state.noise.admit("agent", peer.ip(), code) {
                let event = Event::new("default", EventKind::AgentAuth, AuditDecision::Deny)
                    .path("agent")
                    .reason(format!("{code}: {message}"))
                    .auth("agent_key")
                    .source(peer.ip(), state.geo.country(peer.ip()));
                if unavailable {
                    state.auditor.record(event);
                } else if let Err(e) = state.auditor.record_durable(event).await {
                    tracing::error!(error = %e, "cannot record agent refusal");
                }
            }
            let _ = conn.send_control(proto::encode(&RelayMsg::Error { code: code.into(), message: message.clone() }));
            conn.close(&message);
            let _ = driver.await;
            return;
        }
    };
    let span = tracing::info_span!("agent", id = %agent.id, agent = %agent.name);
    async {
        tracing::info!(link = protocol, "agent connected");
        let _ = conn.send_control(proto::encode(&RelayMsg::Welcome {
            agent_id: agent.id.to_string(),
            name: agent.name.clone(),
            role: agent.role.into(),
        }));
        let version = agent.version.clone().unwrap_or_default();
        state.hub.register(&agent.id, conn.clone(), peer, version.clone(), protocol, || state.topology());
        // Bookkeeping (where and which version the agent is), not a decision.
        let host = agent.hostname.as_deref().unwrap_or("");
        if let Err(e) = state.store.touch_agent(&agent.id, &peer.to_string(), &version, host).await {
            tracing::warn!(error = %e, "cannot note the agent's address and version");
        }
        loop {
            tokio::select! {
                accepted = conn.accept() => {
                    let Some((stream, payload)) = accepted else { break };
                    let state = state.clone();
                    let from = agent.id.to_string();
                    tokio::spawn(route_stream(state, from, peer, stream, payload).in_current_span());
                }
                msg = conn.recv_control() => {
                    let Some(msg) = msg else { break };
                    on_control(&state, &msg).await;
                }
            }
        }
        let reason = conn.closed().await;
        state.hub.unregister(&agent.id, &conn);
        if let Err(e) = state.store.seen_agent(&agent.id).await {
            tracing::warn!(error = %e, "cannot note when the agent was last seen");
        }
        tracing::info!(%reason, "agent disconnected");
    }
    .instrument(span)
    .await;
    let _ = driver.await;
}

type Refusal = (&'static str, String);

async fn authenticate(
    state: &Arc<State>,
    conn: &Connection,
    exporter: &[u8],
    peer: SocketAddr,
) -> Result<Agent, Refusal> {
    let hello = tokio::time::timeout(HELLO_TIMEOUT, conn.recv_control())
        .await
        .map_err(|_| ("hello_timeout", "no hello within 10 s".to_owned()))?
        .ok_or_else(|| {
            let why = conn.closed_reason().unwrap_or_else(|| "connection dropped".to_owned());
            ("hello_missing", format!("connection closed before hello: {why}"))
        })?;
    let hello: Hello = serde_json::from_slice(&hello).map_err(|e| ("bad_hello", format!("malformed hello: {e}")))?;
    match hello {
        Hello::Enroll { token, version, hostname, sign_pub, noise_pub, signature } => {
            let (Some(sp), Some(np)) = (identity::decode32(&sign_pub), identity::decode32(&noise_pub)) else {
                return Err(("bad_hello", "malformed agent keys".into()));
            };
            let Ok(sig) = hex::decode(&signature) else {
                return Err(("bad_signature", "the enrolling signature is not hex".into()));
            };
            if !identity::verify(&sp, exporter, &sig) {
                return Err(("bad_signature", "signature does not match the enrolling key".into()));
            }
            let Some(parsed) = identity::EnrollmentToken::parse(&token) else {
                return Err(("token_malformed", "enrollment token is malformed".into()));
            };
            let agent = NewAgent {
                id: new_id("ag").into(),
                sign_pub: hex::encode(sp),
                noise_pub: hex::encode(np),
                hostname,
                version,
            };
            // A store that does not answer is said as such; the agent retries with its token.
            let outcome = state.store.enroll(&hash_secret(&parsed.secret), &agent).await.map_err(|e| {
                tracing::error!(error = %e, "enrollment failed");
                ("store_unavailable", format!("cannot enroll now: {e}; the agent will retry"))
            })?;
            match outcome {
                Ok(token) => {
                    let event = Event::new(&token.tenant_id, EventKind::AgentEnroll, AuditDecision::Allow)
                        .subject(SubjectKind::Agent, token.name.clone())
                        .path("agent")
                        .target(agent.id.clone())
                        .reason(format!("enrolled with token {}", token.id))
                        .auth("enrollment_token")
                        .source(peer.ip(), state.geo.country(peer.ip()));
                    if let Err(e) = state.auditor.record_durable(event).await {
                        tracing::error!(error = %e, "cannot record enrollment");
                    }
                    let _ = state.refresh().await;
                    let agent = state
                        .store
                        .get_agent(&agent.id)
                        .await
                        .map_err(|e| ("store_unavailable", format!("cannot read the enrolled agent now: {e}")))?
                        .ok_or(("internal", "the enrolled agent vanished".to_owned()))?;
                    Ok(agent)
                }
                Err(r) => Err((
                    match r {
                        TokenRejection::Unknown => "token_unknown",
                        TokenRejection::Used => "token_used",
                        TokenRejection::Expired => "token_expired",
                        TokenRejection::AgentLimit(_) => "agent_limit",
                    },
                    r.to_string(),
                )),
            }
        }
        Hello::Login { agent_id, version, hostname, signature } => {
            let agent_id = AgentId::from(agent_id);
            // A store that does not answer is said as such, never as "not enrolled".
            let agent = state.store.get_agent(&agent_id).await.map_err(|e| {
                ("store_unavailable", format!("cannot check agent `{agent_id}` now: {e}; the agent will retry"))
            })?;
            let Some(mut agent) = agent else {
                return Err(("unknown_agent", format!("agent `{agent_id}` is not enrolled on this relay")));
            };
            if agent.revoked_at.is_some() {
                return Err(("revoked", format!("agent `{agent_id}` has been revoked")));
            }
            // Undecodable text is refused by name, not read as an empty key or signature.
            let (Ok(sig), Ok(pk)) = (hex::decode(&signature), hex::decode(&agent.sign_pub)) else {
                return Err(("bad_signature", "the login signature or the stored agent key is not hex".into()));
            };
            if !identity::verify(&pk, exporter, &sig) {
                return Err(("bad_signature", "agent key does not match the enrolled key".into()));
            }
            agent.version = Some(version);
            agent.hostname = Some(hostname);
            Ok(agent)
        }
    }
}

async fn on_control(state: &Arc<State>, msg: &Bytes) {
    match serde_json::from_slice::<AgentMsg>(msg) {
        Ok(AgentMsg::RouteStatus { route_id, bound, error }) => {
            // A route made through another relay of the cluster may be news here: look once.
            if !state.topology().routes.contains_key(route_id.as_str()) {
                state.catch_up().await;
            }
            if state.topology().routes.contains_key(route_id.as_str()) {
                state.route_status.lock().insert(route_id, sekisho_door::state::RouteStatus { bound, error });
            }
        }
        Err(e) => tracing::info!(error = %e, "ignoring malformed control message"),
    }
}

/// Decides and forwards one stream opened by agent `from`, connected from `peer`.
///
/// [`admit`] decides without waiting on anything; a refused stream is refused here (on record),
/// an admitted one is relayed by a task of its own. That task is the relay's memory per open
/// stream for as long as the stream lives, so it holds only what relaying needs (see [`relay`]).
async fn route_stream(state: Arc<State>, from: String, peer: SocketAddr, stream: MuxStream, payload: Bytes) {
    match admit(&state, &from, peer, &payload) {
        Ok(Admitted { back, permit, route_id, handshake }) => match permit.open().await {
            // On record as opened: only now is a byte forwarded.
            Ok(permit) => {
                tracing::debug!(stream = permit.stream_id(), route = %route_id, "stream opened");
                tokio::spawn(relay(state, stream, Admitted { back, permit, route_id, handshake }).in_current_span());
            }
            Err(denial) => {
                let message = denial.message();
                back.reset(ResetCode::REFUSED, &message);
                refuse(&stream, StreamRefusal { code: denial.code.clone(), message, denial }).await;
            }
        },
        Err(refusal) => refuse(&stream, *refusal).await,
    }
}

/// A stream the relay lets through: the back stream it was joined to and the gate's permit
/// ([`Permit`] as decided; [`Opened`] once its `opened` event is committed: that one records the
/// stream when it is closed, and is revoked when its route is removed or a change denies it).
struct Admitted<P = Opened> {
    back: MuxStream,
    permit: P,
    route_id: String,
    handshake: bool,
}

/// A stream the relay refuses: the code and message the agent is told, and the gate's denial.
struct StreamRefusal {
    code: String,
    message: String,
    denial: Denial,
}

/// Decides one stream: opens its back stream, or says why not.
fn admit(state: &State, from: &str, peer: SocketAddr, payload: &[u8]) -> Result<Admitted<Permit>, Box<StreamRefusal>> {
    let topo = state.topology();
    let front = topo.agents.get(from);
    let attempt = sekisho_door::decide::tunnel(state, &topo, front, from, peer.ip());
    let refusal = |code: &'static str, message: String, target: &str| {
        let denial = state.gate.refuse(&attempt, target, code, message.clone());
        Box::new(StreamRefusal { code: code.to_owned(), message, denial })
    };
    let req: OpenRoute = match serde_json::from_slice(payload) {
        Ok(r) => r,
        Err(e) => return Err(refusal("bad_request", format!("malformed open request: {e}"), "")),
    };
    let Some(route) = topo.routes.get(req.route.as_str()) else {
        return Err(refusal("route_not_found", format!("no route `{}`", req.route), &req.route));
    };
    let (Some(front), true) = (front, route.front_agent_id == from) else {
        return Err(refusal(
            "route_not_assigned",
            format!("route `{}` is not assigned to this agent", route.id),
            &route.id,
        ));
    };
    let Some(svc) = topo.services.get(&route.service_id) else {
        return Err(refusal("service_not_found", format!("route `{}` leads to no service", route.id), &route.id));
    };
    let scope = state.stream_scope(&route.id);
    let resource = Resource::service(svc.name.clone(), svc.protocol);
    let permit = match state.gate.decide_within(&attempt, &resource, Some(&scope)) {
        Verdict::Permit(p) => p,
        Verdict::Deny(denial) => {
            let message = format!("access to `{}` {}", svc.name, denial.message());
            return Err(Box::new(StreamRefusal { code: "policy_denied".into(), message, denial }));
        }
    };
    // Policy allowed it, but it cannot happen: the permit is withdrawn and the refusal says why.
    let offline = |permit: Permit, detail: String| {
        permit.withdraw();
        refusal("agent_offline", format!("service `{}` is unavailable: {detail}", svc.name), &svc.name)
    };
    let Some(back_id) = svc.agent_id.as_deref() else {
        return Err(offline(permit, "it has no back agent (a gateway is reached at the relay's SOCKS port)".into()));
    };
    let back_name = topo.agents.get(back_id).map_or(back_id, |a| a.name.as_str());
    let Some(back_conn) = state.hub.conn(back_id) else {
        return Err(offline(permit, format!("its agent `{back_name}` is offline")));
    };
    let open = OpenService {
        service: svc.id.to_string(),
        from_agent: Some(from.to_owned()),
        from_key: Some(front.noise_pub.clone()),
        e2e: req.e2e,
        dest: None,
    };
    let handshake = matches!(open.e2e, Some(sekisho_tunnel::proto::E2eOpen::Handshake { .. }));
    match back_conn.open(proto::encode(&open)) {
        Ok(back) => Ok(Admitted { back, permit, route_id: route.id.to_string(), handshake }),
        Err(e) => Err(offline(permit, format!("agent `{back_name}`: {e}"))),
    }
}

/// Refuses a stream: the refusal is on disk before the agent is told.
async fn refuse(stream: &MuxStream, refusal: StreamRefusal) {
    let StreamRefusal { code, message, denial } = refusal;
    tracing::info!(code, %message, "stream refused");
    if let Err(e) = denial.record().await {
        tracing::error!(error = %e, "cannot record refusal");
    }
    stream.reset(ResetCode::REFUSED, &format!("{code}: {message}"));
}

/// Relays an admitted stream until either side ends it, its route is removed or a change denies
/// it, then closes its permit with the byte counts.
///
/// An `async` block, not an `async fn`: an `async fn` keeps a second copy of its arguments in
/// its future (rust-lang/rust#62958), and there is one of these futures per open stream.
#[allow(clippy::manual_async_fn, reason = "an async fn would store its arguments twice")]
fn relay(state: Arc<State>, stream: MuxStream, admitted: Admitted) -> impl Future<Output = ()> {
    async move {
        let Admitted { back, permit, route_id, handshake } = admitted;
        let totals = Totals::default();
        let started = std::time::Instant::now();
        let outcome = tokio::select! {
            r = splice(&stream, &back, state.tap.as_ref(), &totals) => r.err().map(|e| e.to_string()),
            () = permit.revoked().cancelled() => {
                let why = if state.topology().routes.contains_key(route_id.as_str()) {
                    "access ended: a change to the policy or the user's groups denies it now"
                } else {
                    "route removed by administrator"
                };
                let code = if why.starts_with("route") { ResetCode::ROUTE_REMOVED } else { ResetCode::REFUSED };
                stream.reset(code, why);
                back.reset(code, why);
                Some(why.to_owned())
            }
        };
        let (up, down) = totals.get();
        tracing::debug!(stream = permit.stream_id(), up, down, ?outcome, "stream ended");
        let mut detail = format!("route {route_id}");
        if handshake {
            detail.push_str("; end-to-end key exchange");
        }
        if let Some(e) = outcome {
            detail.push_str(&format!("; ended: {e}"));
        }
        permit.close(up, down, started.elapsed().as_millis() as u64, detail);
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;

    fn size_of_output<A, B, C, F: Future>(_: fn(A, B, C) -> F) -> usize {
        std::mem::size_of::<F>()
    }

    /// The relay keeps one of these futures per open stream (1,000 connections, 1,000 of them):
    /// it was 1,688 bytes when the decision, the refusal and the relaying were one `async fn`.
    #[test]
    fn the_task_of_an_open_stream_stays_small() {
        let relay = size_of_output(super::relay);
        assert!(relay <= 768, "relay future is {relay} bytes");
    }
}
