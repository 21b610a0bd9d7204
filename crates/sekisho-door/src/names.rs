//! Names the relay serves and checks: the web front door's addresses (the console's origin,
//! `<service>.<tenant>.<domain>` hosts), host labels, and domains as the policy compares them.

use sekisho_store::Service;

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

/// The web front door's addresses.
pub struct WebAddress {
    domain: String,
    /// `:port`, or empty for 443.
    port_suffix: String,
}

impl WebAddress {
    pub fn new(config: &WebConfig) -> Self {
        let port_suffix = if config.port == 443 { String::new() } else { format!(":{}", config.port) };
        WebAddress { domain: config.domain.trim_end_matches('.').to_ascii_lowercase(), port_suffix }
    }

    /// The console's origin, e.g. `https://localhost:8443`.
    pub fn console_origin(&self) -> String {
        format!("https://{}{}", self.domain, self.port_suffix)
    }

    /// The origin of a service host.
    pub fn host_origin(&self, host: &str) -> String {
        format!("https://{host}{}", self.port_suffix)
    }

    /// The browser URL of a service published for browsers.
    pub fn service_url(&self, topo: &Topology, svc: &Service) -> Option<String> {
        if !svc.browser {
            return None;
        }
        let tenant = topo.tenants.get(&svc.tenant_id).map_or(svc.tenant_id.as_str(), |t| t.name.as_str());
        Some(format!("{}/", self.host_origin(&format!("{}.{tenant}.{}", svc.name, self.domain))))
    }

    /// `<service>.<tenant>` when `host` (lower case, no port) is a service host.
    pub fn edge_labels<'h>(&self, host: &'h str) -> Option<&'h str> {
        let labels = host.strip_suffix(&self.domain)?.strip_suffix('.')?;
        let (svc, tenant) = labels.split_once('.')?;
        (is_host_label(svc) && is_host_label(tenant)).then_some(labels)
    }
}

/// A DNS label we accept in service hostnames: lower-case letters, digits and inner `-`.
pub fn is_host_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && !s.starts_with('-')
        && !s.ends_with('-')
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// Lower case, without the trailing dot of a fully qualified name.
pub fn normalize_domain(name: &str) -> String {
    name.trim().trim_end_matches('.').to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_hosts_are_two_labels_under_the_domain() {
        let w = WebAddress::new(&WebConfig { domain: "Localhost".into(), port: 8443 });
        assert_eq!(w.edge_labels("wiki.acme.localhost"), Some("wiki.acme"));
        assert_eq!(w.edge_labels("localhost"), None);
        assert_eq!(w.edge_labels("acme.localhost"), None);
        assert_eq!(w.edge_labels("a.wiki.acme.localhost"), None, "a third label is not a service host");
        assert_eq!(w.edge_labels("wiki.acme.evillocalhost"), None);
        assert_eq!(w.edge_labels("wiki_x.acme.localhost"), None);
        assert_eq!(w.console_origin(), "https://localhost:8443");
        let w443 = WebAddress::new(&WebConfig { domain: "sekisho.example.jp".into(), port: 443 });
        assert_eq!(w443.host_origin("wiki.acme.sekisho.example.jp"), "https://wiki.acme.sekisho.example.jp");
    }

    #[test]
    fn labels_are_lower_case_letters_digits_and_inner_dashes() {
        assert!(is_host_label("wiki-2"));
        for bad in ["", "-a", "a-", "Wiki", "a_b", "a.b", "日本", &"a".repeat(64)] {
            assert!(!is_host_label(bad), "{bad}");
        }
    }
}
