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
mod session;

use std::net::IpAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State as AxState};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::Response;
use sekisho_store::Service;

pub(crate) use session::{EdgeCache, Tickets};

use crate::state::State;
use crate::topology::Topology;

/// Where browsers find the relay's web front door.
#[derive(Debug, Clone)]
pub struct WebConfig {
    /// The base domain: the console is at `https://<domain>`, services at
    /// `https://<service>.<tenant>.<domain>`. `localhost` works on loopback without DNS.
    pub domain: String,
    /// The port browsers use (the relay's port, or 443 behind a port forward).
    pub port: u16,
}

/// The web front door's shared state.
pub(crate) struct Web {
    domain: String,
    /// `:port`, or empty for 443.
    port_suffix: String,
    pub(crate) tickets: Tickets,
    pub(crate) sessions: EdgeCache,
}

impl Web {
    pub(crate) fn new(config: &WebConfig) -> Self {
        let port_suffix = if config.port == 443 { String::new() } else { format!(":{}", config.port) };
        Web {
            domain: config.domain.trim_end_matches('.').to_ascii_lowercase(),
            port_suffix,
            tickets: Tickets::default(),
            sessions: EdgeCache::default(),
        }
    }

    /// The console's origin, e.g. `https://localhost:8443`.
    pub(crate) fn console_origin(&self) -> String {
        format!("https://{}{}", self.domain, self.port_suffix)
    }

    /// The origin of a service host.
    pub(crate) fn host_origin(&self, host: &str) -> String {
        format!("https://{host}{}", self.port_suffix)
    }

    /// The browser URL of a service published for browsers.
    pub(crate) fn service_url(&self, topo: &Topology, svc: &Service) -> Option<String> {
        if svc.browser == 0 {
            return None;
        }
        let tenant = topo.tenants.get(&svc.tenant_id).map_or(svc.tenant_id.as_str(), |t| t.name.as_str());
        Some(format!("{}/", self.host_origin(&format!("{}.{tenant}.{}", svc.name, self.domain))))
    }

    /// `<service>.<tenant>` when `host` (lower case, no port) is a service host.
    fn edge_labels<'h>(&self, host: &'h str) -> Option<&'h str> {
        let labels = host.strip_suffix(&self.domain)?.strip_suffix('.')?;
        let (svc, tenant) = labels.split_once('.')?;
        (is_host_label(svc) && is_host_label(tenant)).then_some(labels)
    }
}

/// A DNS label we accept in service hostnames: lower-case letters, digits and inner `-`.
pub(crate) fn is_host_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && !s.starts_with('-')
        && !s.ends_with('-')
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
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
        .get::<crate::api::PeerAddr>()
        .map_or(IpAddr::from([127, 0, 0, 1]), |p| crate::api::canonical(p.0.ip()))
}

/// The admin API and the console, with service hosts sent to the edge first.
pub(crate) fn router(state: Arc<State>, api: Router) -> Router {
    api.clone().merge(console::router(state.clone(), api)).layer(axum::middleware::from_fn_with_state(state, dispatch))
}

async fn dispatch(AxState(state): AxState<Arc<State>>, req: Request, next: Next) -> Response {
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

    fn web() -> Web {
        Web::new(&WebConfig { domain: "Localhost".into(), port: 8443 })
    }

    #[test]
    fn service_hosts_are_two_labels_under_the_domain() {
        let w = web();
        assert_eq!(w.edge_labels("wiki.acme.localhost"), Some("wiki.acme"));
        assert_eq!(w.edge_labels("localhost"), None);
        assert_eq!(w.edge_labels("acme.localhost"), None);
        assert_eq!(w.edge_labels("a.wiki.acme.localhost"), None, "a third label is not a service host");
        assert_eq!(w.edge_labels("wiki.acme.evillocalhost"), None);
        assert_eq!(w.edge_labels("wiki_x.acme.localhost"), None);
        assert_eq!(w.console_origin(), "https://localhost:8443");
        let w443 = Web::new(&WebConfig { domain: "sekisho.example.jp".into(), port: 443 });
        assert_eq!(w443.host_origin("wiki.acme.sekisho.example.jp"), "https://wiki.acme.sekisho.example.jp");
    }

    #[test]
    fn labels_are_lower_case_letters_digits_and_inner_dashes() {
        assert!(is_host_label("wiki-2"));
        for bad in ["", "-a", "a-", "Wiki", "a_b", "a.b", "日本", &"a".repeat(64)] {
            assert!(!is_host_label(bad), "{bad}");
        }
    }

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
