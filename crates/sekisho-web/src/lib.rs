//! The web front door: the browser access edge and the web console, on the relay's HTTPS port.
//!
//! A request is told apart by its host. `<service>.<tenant>.<web domain>` is a service published
//! for browsers: the [`edge`] checks the visitor's browser session, decides the request with the
//! service's Cedar policy (`context.path == "browser"`) and proxies it to the back agent. Every
//! other host gets the admin API (`/api/v1`) and the [`console`], which renders HTML from the
//! public admin API only, called in-process with the visitor's own session key.
//!
//! Sessions ([`session`]) are API keys: the console's is a login key with an idle timeout kept in
//! a `__Host-` cookie; a service host gets its own key, bound to that host and minted from the
//! console session through a one-time ticket, so no cookie is ever shared between hosts and a
//! logout ends them all. Pages are server-rendered (maud escapes every value) in Japanese or
//! English ([`i18n`]).

mod console;
mod edge;
mod i18n;
mod page;
mod reasons;
mod session;

use std::net::IpAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State as AxState};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::Response;

use sekisho_door::FrontDoor;
use session::{EdgeCache, Tickets};

use sekisho_door::State;

/// The web front door: the console and the browser edge on the relay's HTTPS port. The console
/// is a client of the admin API: it wraps the routes of the doors before it (the API's) and
/// calls them in-process, without depending on the API's crate.
pub struct WebDoor {
    state: Arc<WebState>,
}

impl WebDoor {
    pub fn new(core: Arc<State>) -> Self {
        WebDoor { state: Arc::new(WebState { core, tickets: Tickets::default(), sessions: EdgeCache::default() }) }
    }
}

impl FrontDoor for WebDoor {
    fn name(&self) -> &'static str {
        "web"
    }

    fn http(&self, api: Router) -> Router {
        router(self.state.clone(), api)
    }
}

/// The web door's own state beside the relay's shared one.
pub(crate) struct WebState {
    pub(crate) core: Arc<State>,
    /// One-time tickets that carry a console session to a service host.
    pub(crate) tickets: Tickets,
    /// Browser sessions of service hosts verified recently.
    pub(crate) sessions: EdgeCache,
}

/// The shared state's fields read through the door's (`state.store`, `state.gate`): the door adds
/// to the shared state, it does not wrap it in another interface.
impl std::ops::Deref for WebState {
    type Target = State;

    fn deref(&self) -> &State {
        &self.core
    }
}

/// A same-origin path that is safe to redirect to: one leading `/` (not `//` or `/\`, which
/// browsers read as another host), no backslash, no whitespace or control characters (browsers
/// drop tabs and newlines from URLs, so `/\t/evil.example` would become `//evil.example`).
pub(crate) fn safe_path(p: &str) -> bool {
    p.starts_with('/')
        && !p.starts_with("//")
        && p.len() <= 4096
        && !p.chars().any(|c| c == '\\' || c.is_whitespace() || c.is_control())
}

/// The host a request was sent to (HTTP/2 `:authority` or HTTP/1.1 `Host`), lower case, without
/// the port.
fn request_host(req: &Request) -> Option<String> {
    let raw = match req.uri().host() {
        Some(h) => h.to_owned(),
        None => req.headers().get(axum::http::header::HOST)?.to_str().ok()?.to_owned(),
    };
    let host = if raw.starts_with('[') {
        raw.split_once(']').map_or(raw.as_str(), |(h, _)| h).trim_start_matches('[').to_owned()
    } else {
        raw.rsplit_once(':').map_or(raw.as_str(), |(h, p)| if p.parse::<u16>().is_ok() { h } else { &raw }).to_owned()
    };
    Some(host.to_ascii_lowercase())
}

/// The value of cookie `name`, if the request carries it.
pub(crate) fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim().to_owned())
}

/// The client's address, as the listener saw it.
fn peer_ip(req: &Request) -> IpAddr {
    req.extensions()
        .get::<sekisho_door::credentials::PeerAddr>()
        .map_or(IpAddr::from([127, 0, 0, 1]), |p| sekisho_door::credentials::canonical(p.0.ip()))
}

/// The admin API and the console, with service hosts sent to the edge first.
fn router(state: Arc<WebState>, api: Router) -> Router {
    api.clone().merge(console::router(state.clone(), api)).layer(axum::middleware::from_fn_with_state(state, dispatch))
}

async fn dispatch(AxState(state): AxState<Arc<WebState>>, req: Request, next: Next) -> Response {
    if let Some(host) = request_host(&req)
        && let Some(labels) = state.web.edge_labels(&host)
    {
        let service = state.topology().browser_hosts.get(labels).cloned();
        return edge::serve(state, host, service, req).await;
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_same_origin_paths_are_redirect_targets() {
        for ok in ["/", "/audit?path=browser", "/recordings/rec_1"] {
            assert!(safe_path(ok), "{ok}");
        }
        for bad in
            ["", "//evil.example", "/\\evil.example", "/\t/evil.example", "/\n/x", "https://evil.example/", "/a b"]
        {
            assert!(!safe_path(bad), "{bad:?}");
        }
    }

    #[test]
    fn cookies_are_found_by_exact_name() {
        let mut h = HeaderMap::new();
        h.append("cookie", "a=1; __Host-sekisho=xyz".parse().unwrap());
        h.append("cookie", "b=2".parse().unwrap());
        assert_eq!(cookie(&h, "__Host-sekisho").as_deref(), Some("xyz"));
        assert_eq!(cookie(&h, "b").as_deref(), Some("2"));
        assert_eq!(cookie(&h, "sekisho"), None);
    }
}

/// Entry points for the fuzz targets (`crates/sekisho-fuzz`); not an interface to build on.
#[doc(hidden)]
pub mod fuzzing {
    use axum::http::{HeaderMap, HeaderValue, header};

    /// How the edge reads a request head from a visitor: `data` as the URI, the `Host` and
    /// `Cookie` headers, a redirect path and a target's `Location`.
    pub fn headers(data: &[u8]) {
        let text = String::from_utf8_lossy(data);
        let _ = super::safe_path(&text);
        let mut builder = axum::extract::Request::builder();
        if let Ok(v) = HeaderValue::from_bytes(data) {
            builder = builder.header(header::HOST, v.clone()).header(header::COOKIE, v);
        }
        if let Ok(req) = builder.body(axum::body::Body::empty()) {
            let _ = super::request_host(&req);
            let _ = super::cookie(req.headers(), "__Host-sekisho");
        }
        if let Ok(req) = axum::extract::Request::builder().uri(data).body(axum::body::Body::empty()) {
            let _ = super::request_host(&req);
        }
        if let Ok(v) = HeaderValue::from_bytes(data) {
            let mut h = HeaderMap::new();
            h.insert(header::LOCATION, v);
            super::edge::rewrite_location(&mut h, "10.0.0.1:8080", "https://wiki.acme.localhost:8443");
        }
    }
}
