//! The browser access edge: `https://<service>.<tenant>.<domain>/…` behind the Sekisho login.
//!
//! Each request: the host's own session cookie (else a redirect to the console's sign-in, which
//! comes back with a one-time ticket), the service's Cedar policy with `path == "browser"`
//! (evaluated per request, so a new deny condition takes effect at once), then the request is
//! proxied over a tunnel stream to the service's back agent as HTTP/1.1 — bodies streamed both
//! ways with no size limit, WebSocket upgrades carried through. Every request leaves one audit
//! event (method, path, status, bytes, the session it belongs to); a refusal leaves it before
//! the visitor hears of it. This leg terminates TLS at the relay, so it is not end-to-end
//! encrypted (the agent leg is TLS).

use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::extract::Request;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use hyper_util::rt::TokioIo;
use parking_lot::Mutex;
use sekisho_audit::Event;
use sekisho_gate::{AccessPath, AuthMethod, Denial, Opened, Permit, Resource, Subject, Verdict};
use sekisho_store::Service;
use sekisho_tunnel::proto::{self, OpenService};
use serde_json::json;

use super::i18n::Lang;
use super::page;
use super::session::{self, EDGE_COOKIE, EdgeUser};
use sekisho_door::State;

use crate::WebState;

/// How long the service may take to start its answer.
const RESPONSE_HEAD_TIMEOUT: Duration = Duration::from_secs(300);
/// Where the edge's own endpoints live on a service host (never proxied).
const OWN_PREFIX: &str = "/.sekisho/";

/// The edge pages' stylesheet or script (`/.sekisho/static/<name>`), from the relay itself.
fn own_asset(own: &str) -> Option<Response> {
    let name = own.strip_prefix("static/")?;
    let (_, kind, body) = page::ASSETS.iter().find(|(n, _, _)| *n == name)?;
    Some(([(header::CONTENT_TYPE, *kind), (header::CACHE_CONTROL, "public, max-age=3600")], *body).into_response())
}

pub(crate) async fn serve(
    state: Arc<WebState>,
    host: String,
    service: Option<sekisho_store::ServiceId>,
    req: Request,
) -> Response {
    let lang = Lang::from_headers(req.headers());
    let peer = super::peer_ip(&req);
    let topo = state.topology();
    let Some(svc) = service.and_then(|id| topo.services.get(&id).cloned()) else {
        return page::edge_message(lang, StatusCode::NOT_FOUND, "edge.unknown", "edge.unknown_text", None, None);
    };
    drop(topo);
    let path = req.uri().path().to_owned();
    let method = req.method().to_string();
    if let Some(own) = path.strip_prefix(OWN_PREFIX) {
        return match own {
            "auth" => redeem(&state, &host, &svc, peer, lang, req.uri()).await,
            "logout" => redirect(&format!("{}/logout", state.web.console_origin())),
            _ => own_asset(own).unwrap_or_else(|| {
                page::edge_message(lang, StatusCode::NOT_FOUND, "not_found", "edge.unknown_text", None, None)
            }),
        };
    }
    let user = match super::cookie(req.headers(), EDGE_COOKIE) {
        Some(token) => state.sessions.check(&state, &token, &host).await,
        None => Err("session_missing"),
    };
    let user = match user {
        Ok(u) if u.tenant == svc.tenant_id => u,
        Ok(_) => return login_needed(&state, &host, &svc, peer, lang, &req, "session_unknown"),
        // The session could not be checked: refused by name, and the visitor keeps the cookie
        // (an outage is no sign-out, and the sign-in page could not help).
        Err(why @ "store_unavailable") => {
            let detail = json!({ "method": method, "path": path, "status": 503 }).to_string();
            anonymous_refusal(
                &state,
                &svc,
                peer,
                why,
                format!("{why}: the browser session cannot be checked now"),
                detail,
            )
            .record_soon();
            return page::edge_message(
                lang,
                StatusCode::SERVICE_UNAVAILABLE,
                "edge.unavailable",
                "edge.unavailable_text",
                Some((why, "")),
                None,
            );
        }
        Err(why) => return login_needed(&state, &host, &svc, peer, lang, &req, why),
    };
    // Another site's page (a sibling service host too: they share the domain, so SameSite does
    // not separate them) may not post or open a WebSocket with this host's cookie.
    let cross_site = req
        .headers()
        .get(header::ORIGIN)
        .and_then(|o| o.to_str().ok())
        .is_some_and(|o| !o.eq_ignore_ascii_case(&state.web.host_origin(&host)));
    let unsafe_method = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    let auth = user.auth_method.parse().unwrap_or(AuthMethod::Password);
    let attempt = {
        let topo = state.topology();
        let subject = Subject::user(user.name.clone(), user.groups.clone());
        sekisho_door::decide::attempt(&state, &topo, &svc.tenant_id, AccessPath::Browser, auth, subject, peer)
    };
    let detail = |status: u16| {
        json!({ "method": method, "path": path, "status": status, "session": user.parent_id }).to_string()
    };
    if cross_site && (unsafe_method || req.headers().contains_key(header::UPGRADE)) {
        // On record before the visitor hears of it.
        let refused =
            state.gate.refuse(&attempt, &svc.name, "cross_site", "cross_site: a request from another site's page");
        if let Err(e) = refused.detail(detail(403)).record().await {
            tracing::error!(error = %e, "cannot record a cross-site refusal");
        }
        return page::edge_message(
            lang,
            StatusCode::FORBIDDEN,
            "edge.denied",
            "edge.cross_site",
            Some(("cross_site", "")),
            None,
        );
    }
    let resource = Resource::service(svc.name.clone(), svc.protocol);
    let permit = match state.gate.decide(&attempt, &resource) {
        Verdict::Permit(p) => p,
        Verdict::Deny(denial) => {
            let (code, reason) = (denial.code.clone(), denial.reason.clone());
            if let Err(e) = denial.detail(detail(403)).record().await {
                tracing::error!(error = %e, "cannot record a browser refusal");
            }
            return page::edge_message(
                lang,
                StatusCode::FORBIDDEN,
                "edge.denied",
                "edge.denied_text",
                Some((&code, &reason)),
                None,
            );
        }
    };
    let mut permit = Some(permit);
    match proxy(&state, &svc, &host, &user, peer, req, &mut permit).await {
        Ok(resp) => resp,
        Err((code, why)) => {
            if let Some(p) = permit {
                p.withdraw();
            }
            // A request the audit log could not open is already on record (by the gate).
            if code != AUDIT_UNAVAILABLE {
                let refused = state.gate.refuse(&attempt, &svc.name, code, format!("{code}: {why}"));
                if let Err(e) = refused.detail(detail(502)).record().await {
                    tracing::error!(error = %e, "cannot record a browser failure");
                }
            }
            let status = if matches!(code, "agent_offline" | AUDIT_UNAVAILABLE) {
                StatusCode::SERVICE_UNAVAILABLE
            } else {
                StatusCode::BAD_GATEWAY
            };
            page::edge_message(lang, status, "edge.unavailable", "edge.unavailable_text", Some((code, &why)), None)
        }
    }
}

fn redirect(to: &str) -> Response {
    let mut resp = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(to) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// No valid session: a page load goes to the sign-in and comes back; anything else (a script's
/// request, a form post, a WebSocket) gets 401 and the reason.
/// A refusal of someone not signed in (yet), for the audit log.
fn anonymous_refusal(state: &State, svc: &Service, peer: IpAddr, code: &str, reason: String, detail: String) -> Denial {
    let attempt = sekisho_door::decide::attempt(
        state,
        &state.topology(),
        &svc.tenant_id,
        AccessPath::Browser,
        AuthMethod::None,
        Subject::Visitor,
        peer,
    );
    state.gate.refuse(&attempt, &svc.name, code, reason).detail(detail)
}

fn login_needed(
    state: &State,
    host: &str,
    svc: &Service,
    peer: IpAddr,
    lang: Lang,
    req: &Request,
    why: &'static str,
) -> Response {
    let origin = state.web.host_origin(host);
    let back = format!("{origin}{}", req.uri().path_and_query().map_or("/", |p| p.as_str()));
    let login = format!(
        "{}/login?{}",
        state.web.console_origin(),
        serde_urlencoded::to_string([("rd", back.as_str())]).unwrap_or_default()
    );
    let page_load = matches!(*req.method(), Method::GET | Method::HEAD) && !req.headers().contains_key(header::UPGRADE);
    let mut resp = if page_load {
        redirect(&login)
    } else {
        let detail = json!({ "method": req.method().as_str(), "path": req.uri().path(), "status": 401 });
        if state.noise.admit("browser", peer, why) {
            anonymous_refusal(state, svc, peer, "login_required", format!("login_required: {why}"), detail.to_string())
                .record_soon();
        }
        page::edge_message(
            lang,
            StatusCode::UNAUTHORIZED,
            "edge.login_needed",
            "edge.login_needed_text",
            Some((why, "")),
            Some((&login, "edge.back")),
        )
    };
    if why != "session_missing" {
        resp.headers_mut().append(header::SET_COOKIE, session::clear_cookie(EDGE_COOKIE));
    }
    resp
}

/// `/.sekisho/auth?ticket=…`: a ticket from the console becomes this host's session cookie.
async fn redeem(state: &WebState, host: &str, svc: &Service, peer: IpAddr, lang: Lang, uri: &Uri) -> Response {
    #[derive(serde::Deserialize)]
    struct Q {
        ticket: String,
    }
    let ticket = uri
        .query()
        .and_then(|q| serde_urlencoded::from_str::<Q>(q).ok())
        .and_then(|q| state.tickets.redeem(&q.ticket, host));
    let Some(ticket) = ticket else {
        let detail = json!({ "method": "GET", "path": uri.path(), "status": 400 }).to_string();
        if state.noise.admit("browser", peer, "ticket_invalid") {
            anonymous_refusal(state, svc, peer, "login_required", "ticket_invalid".into(), detail).record_soon();
        }
        let login = format!("{}/login", state.web.console_origin());
        return page::edge_message(
            lang,
            StatusCode::BAD_REQUEST,
            "edge.login_needed",
            "edge.login_needed_text",
            Some(("ticket_invalid", "")),
            Some((&login, "edge.back")),
        );
    };
    match session::issue_edge_key(state, &ticket).await {
        Ok((id, key)) => {
            // The user's name, for the record only (the session was issued above; a name that
            // cannot be read leaves the event naming the user's id).
            let user = match state.store.get_user_by_id(&ticket.user_id).await {
                Ok(Some(u)) => u.name,
                _ => ticket.user_id.to_string(),
            };
            let event = Event::new(&svc.tenant_id, sekisho_audit::EventKind::Login, sekisho_audit::Decision::Allow)
                .subject(sekisho_audit::SubjectKind::User, user)
                .path("browser")
                .target(svc.name.clone())
                .reason("browser session started")
                .auth(&ticket.auth_method)
                .source(peer, state.geo.country(peer))
                .detail(json!({ "host": host, "session": ticket.parent_id, "key": id }).to_string());
            state.auditor.record(event);
            let mut resp = redirect(if super::safe_path(&ticket.path) { &ticket.path } else { "/" });
            resp.headers_mut().append(header::SET_COOKIE, session::set_cookie(EDGE_COOKIE, &key));
            resp
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot store a browser session");
            page::edge_message(
                lang,
                StatusCode::SERVICE_UNAVAILABLE,
                "edge.unavailable",
                "edge.unavailable_text",
                Some(("store_unavailable", "")),
                None,
            )
        }
    }
}

/// Hop-by-hop headers (RFC 9110 §7.6.1): never forwarded.
const HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
];

fn strip_hop_by_hop(h: &mut HeaderMap) {
    let named: Vec<HeaderName> = h
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    for name in HOP.iter().chain(named.iter()) {
        h.remove(name);
    }
    h.remove(header::UPGRADE);
}

/// The Cookie header without Sekisho's own cookies (the service never sees a session key).
fn foreign_cookies(h: &HeaderMap) -> Option<String> {
    let kept: Vec<&str> = h
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .map(str::trim)
        .filter(|c| !c.is_empty() && !c.starts_with("__Host-sekisho"))
        .collect();
    (!kept.is_empty()).then(|| kept.join("; "))
}

/// Counts a body's bytes into its request's [`Meter`].
struct Metered<B> {
    inner: B,
    meter: Arc<Meter>,
    upload: bool,
}

impl<B> http_body::Body for Metered<B>
where
    B: http_body::Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(data) = frame.data_ref()
        {
            let counter = if self.upload { &self.meter.up } else { &self.meter.down };
            counter.fetch_add(data.len() as u64, Ordering::Relaxed);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// One request's evidence: written when the last of its bodies (or its upgraded connection) is
/// done with.
struct Meter {
    permit: Mutex<Option<Opened>>,
    method: String,
    path: String,
    session: String,
    status: AtomicU16,
    up: AtomicU64,
    down: AtomicU64,
    started: Instant,
}

impl Drop for Meter {
    fn drop(&mut self) {
        if let Some(permit) = self.permit.lock().take() {
            let detail = json!({
                "method": self.method,
                "path": self.path,
                "status": self.status.load(Ordering::Relaxed),
                "session": self.session,
            });
            let ms = self.started.elapsed().as_millis() as u64;
            let (up, down) = (self.up.load(Ordering::Relaxed), self.down.load(Ordering::Relaxed));
            permit.close(up, down, ms, detail.to_string());
        }
    }
}

type Failure = (&'static str, String);

/// The code of an access refused because its `opened` event could not be committed.
const AUDIT_UNAVAILABLE: &str = "audit_unavailable";

async fn proxy(
    state: &Arc<WebState>,
    svc: &Service,
    host: &str,
    user: &EdgeUser,
    peer: IpAddr,
    mut req: Request,
    permit: &mut Option<Permit>,
) -> Result<Response, Failure> {
    let agent_id = svc.agent_id.as_deref().ok_or(("agent_offline", "the service has no agent".to_owned()))?;
    let conn =
        state.hub.conn(agent_id).ok_or_else(|| ("agent_offline", format!("the agent of `{}` is offline", svc.name)))?;
    let open = OpenService { service: svc.id.to_string(), from_agent: None, from_key: None, e2e: None, dest: None };
    let stream = conn.open(proto::encode(&open)).map_err(|e| ("agent_offline", e.to_string()))?;
    let (mut sender, connection) = hyper::client::conn::http1::Builder::new()
        .handshake::<_, Metered<axum::body::Body>>(TokioIo::new(stream))
        .await
        .map_err(|e| ("target_unreachable", e.to_string()))?;
    tokio::spawn(async move {
        if let Err(e) = connection.with_upgrades().await {
            tracing::debug!(error = %e, "browser backend connection ended");
        }
    });

    // The request's decision is on record (its `opened` event committed) before the request
    // reaches the backend.
    let opened = match permit.take() {
        Some(p) => match p.open().await {
            Ok(o) => Some(o),
            // Already queued by the gate, with the refusal's reason.
            Err(denial) => return Err((AUDIT_UNAVAILABLE, denial.reason.clone())),
        },
        None => None,
    };
    let target = svc.target.split_once("://").map_or(svc.target.as_str(), |(_, r)| r).trim_end_matches('/');
    let websocket = req.headers().get(header::UPGRADE).cloned();
    let client_upgrade = websocket.as_ref().map(|_| hyper::upgrade::on(&mut req));
    let meter = Arc::new(Meter {
        permit: Mutex::new(opened),
        method: req.method().to_string(),
        path: req.uri().path().to_owned(),
        session: user.parent_id.clone(),
        status: AtomicU16::new(0),
        up: AtomicU64::new(0),
        down: AtomicU64::new(0),
        started: Instant::now(),
    });

    let (parts, body) = req.into_parts();
    let mut headers = parts.headers;
    let cookies = foreign_cookies(&headers);
    strip_hop_by_hop(&mut headers);
    headers.remove(header::COOKIE);
    headers.remove(header::HOST);
    let own: Vec<HeaderName> = headers.keys().filter(|k| k.as_str().starts_with("x-sekisho-")).cloned().collect();
    for k in own {
        headers.remove(k);
    }
    if let Some(c) = cookies.and_then(|c| HeaderValue::from_str(&c).ok()) {
        headers.insert(header::COOKIE, c);
    }
    let set = |headers: &mut HeaderMap, name: &'static str, value: &str| {
        if let Ok(v) = HeaderValue::from_str(value) {
            headers.insert(HeaderName::from_static(name), v);
        }
    };
    set(&mut headers, "x-forwarded-for", &peer.to_string());
    set(&mut headers, "x-forwarded-proto", "https");
    set(&mut headers, "x-forwarded-host", host);
    set(&mut headers, "x-sekisho-user", &user.name);
    if let Ok(v) = HeaderValue::from_str(target) {
        headers.insert(header::HOST, v);
    }
    if let Some(proto) = &websocket {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, proto.clone());
    }
    let mut out = hyper::Request::new(Metered { inner: body, meter: meter.clone(), upload: true });
    *out.method_mut() = parts.method;
    *out.uri_mut() = parts.uri.path_and_query().map_or("/", |p| p.as_str()).parse().unwrap_or_default();
    *out.headers_mut() = headers;

    let mut resp = tokio::time::timeout(RESPONSE_HEAD_TIMEOUT, sender.send_request(out))
        .await
        .map_err(|_| ("target_timeout", "the service did not answer in time".to_owned()))?
        .map_err(|e| ("target_unreachable", e.to_string()))?;
    meter.status.store(resp.status().as_u16(), Ordering::Relaxed);

    if resp.status() == StatusCode::SWITCHING_PROTOCOLS
        && let Some(client) = client_upgrade
    {
        let backend = hyper::upgrade::on(&mut resp);
        let meter = meter.clone();
        tokio::spawn(async move {
            if let (Ok(c), Ok(b)) = (client.await, backend.await) {
                let (mut c, mut b) = (TokioIo::new(c), TokioIo::new(b));
                if let Ok((up, down)) = tokio::io::copy_bidirectional(&mut c, &mut b).await {
                    meter.up.fetch_add(up, Ordering::Relaxed);
                    meter.down.fetch_add(down, Ordering::Relaxed);
                }
            }
        });
        let (parts, _) = resp.into_parts();
        return Ok(Response::from_parts(parts, axum::body::Body::empty()));
    }
    let (mut parts, body) = resp.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    keep_own_cookies(&mut parts.headers);
    rewrite_location(&mut parts.headers, target, &state.web.host_origin(host));
    Ok(Response::from_parts(parts, axum::body::Body::new(Metered { inner: body, meter, upload: false })))
}

/// The service may set cookies for its own host only: a `Domain` cookie would reach the other
/// service hosts (and tenants) under the web domain, and Sekisho's own names are not its to set.
fn keep_own_cookies(h: &mut HeaderMap) {
    let kept: Vec<HeaderValue> = h
        .get_all(header::SET_COOKIE)
        .iter()
        .filter(|v| {
            let text = v.to_str().unwrap_or("").to_ascii_lowercase();
            let name = text.split('=').next().unwrap_or("").trim();
            !name.starts_with("__host-sekisho")
                && !text.split(';').skip(1).any(|attr| attr.trim_start().starts_with("domain"))
        })
        .cloned()
        .collect();
    h.remove(header::SET_COOKIE);
    for v in kept {
        h.append(header::SET_COOKIE, v);
    }
}

/// A redirect to the target's own address becomes one to the service host.
pub(crate) fn rewrite_location(h: &mut HeaderMap, target: &str, origin: &str) {
    let Some(loc) = h.get(header::LOCATION).and_then(|v| v.to_str().ok()) else { return };
    let rest = loc.strip_prefix(&format!("http://{target}")).or_else(|| loc.strip_prefix(&format!("https://{target}")));
    if let Some(rest) = rest.filter(|r| r.is_empty() || r.starts_with('/') || r.starts_with('?'))
        && let Ok(v) = HeaderValue::from_str(&format!("{origin}{rest}"))
    {
        h.insert(header::LOCATION, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sekisho_cookies_never_reach_the_service() {
        let mut h = HeaderMap::new();
        h.append(header::COOKIE, "a=1; __Host-sekisho-edge=sk_x".parse().unwrap());
        h.append(header::COOKIE, "__Host-sekisho=sk_y; b=2".parse().unwrap());
        assert_eq!(foreign_cookies(&h).as_deref(), Some("a=1; b=2"));
        let mut only = HeaderMap::new();
        only.insert(header::COOKIE, "__Host-sekisho-edge=sk_x".parse().unwrap());
        assert_eq!(foreign_cookies(&only), None);
    }

    #[test]
    fn hop_by_hop_headers_and_those_named_in_connection_are_dropped() {
        let mut h = HeaderMap::new();
        h.insert(header::CONNECTION, "keep-alive, x-private".parse().unwrap());
        h.insert("x-private", "1".parse().unwrap());
        h.insert(header::TRANSFER_ENCODING, "chunked".parse().unwrap());
        h.insert(header::ACCEPT, "*/*".parse().unwrap());
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key(header::ACCEPT));
    }

    #[test]
    fn services_set_host_only_cookies_of_their_own() {
        let mut h = HeaderMap::new();
        for c in
            ["a=1; Path=/", "b=2; Domain=localhost", "__Host-sekisho-edge=x; Path=/; Secure", "c=3; path=/; DOMAIN=.x"]
        {
            h.append(header::SET_COOKIE, c.parse().unwrap());
        }
        keep_own_cookies(&mut h);
        let left: Vec<&str> = h.get_all(header::SET_COOKIE).iter().map(|v| v.to_str().unwrap()).collect();
        assert_eq!(left, ["a=1; Path=/"]);
    }

    #[test]
    fn redirects_to_the_target_are_rewritten_to_the_service_host() {
        let origin = "https://wiki.acme.localhost:8443";
        for (loc, want) in [
            ("http://127.0.0.1:8080/x?y=1", "https://wiki.acme.localhost:8443/x?y=1"),
            ("http://127.0.0.1:8080", "https://wiki.acme.localhost:8443"),
            ("http://127.0.0.1:80800/x", "http://127.0.0.1:80800/x"),
            ("https://elsewhere.example/", "https://elsewhere.example/"),
            ("/relative", "/relative"),
        ] {
            let mut h = HeaderMap::new();
            h.insert(header::LOCATION, loc.parse().unwrap());
            rewrite_location(&mut h, "127.0.0.1:8080", origin);
            assert_eq!(h[header::LOCATION], want, "{loc}");
        }
    }
}
