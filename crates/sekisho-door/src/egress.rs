//! The one rule for every address the relay dials itself: the gateway's direct egress, bastion
//! targets without an agent, a tenant's OpenID Connect provider, and whatever comes later.
//!
//! A tenant names these destinations, so without a rule a tenant admin could read services on the
//! relay's own host or network (`telnet://127.0.0.1:5432`, the cloud metadata address). The relay
//! refuses every address of its own networks (loopback, private, link-local, shared address space,
//! unique-local; unspecified, broadcast and multicast, which name no single remote host; and IPv6
//! forms that embed such an IPv4 address) unless the operator allows the range with
//! `--egress-allow`. The check is made on each *resolved* address, and the connection goes to the
//! address that was checked, never to the name again, so a name that resolves differently the
//! second time (DNS rebinding) gains nothing.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;
use tokio::net::TcpStream;

/// How long a name may take to resolve.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);

/// Why the relay did not connect. [`EgressError::code`] is the stable word for audit events.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EgressError {
    #[error("`{name}` could not be resolved: {reason}")]
    Dns { name: String, reason: String },
    #[error("`{name}` has no address")]
    NoAddress { name: String },
    #[error(
        "{ip} is on a network next to the relay (loopback, private or link-local); the operator has not allowed \
         it with --egress-allow"
    )]
    Refused { ip: IpAddr },
    #[error("`{addr}`: {reason}")]
    Connect { addr: String, reason: String, kind: std::io::ErrorKind },
}

impl EgressError {
    /// `dns_failed`, `private_destination` or `target_unreachable`.
    pub fn code(&self) -> &'static str {
        match self {
            EgressError::Dns { .. } | EgressError::NoAddress { .. } => "dns_failed",
            EgressError::Refused { .. } => "private_destination",
            EgressError::Connect { .. } => "target_unreachable",
        }
    }

    /// The I/O error kind behind a failed connection (for a SOCKS reply), if that is what it was.
    pub fn io_kind(&self) -> Option<std::io::ErrorKind> {
        match self {
            EgressError::Connect { kind, .. } => Some(*kind),
            _ => None,
        }
    }
}

/// The operator's egress rule: the relay's own networks are refused, except the ranges allowed.
#[derive(Debug, Clone, Default)]
pub struct EgressRule {
    allow: Vec<IpNet>,
}

impl EgressRule {
    /// Refuse the relay's own networks, except `allow`.
    pub fn new(allow: Vec<IpNet>) -> Self {
        EgressRule { allow: allow.into_iter().map(|n| n.trunc()).collect() }
    }

    /// Every range this rule refuses by default, allowed (the old `--socks-allow-private`).
    pub fn allow_all() -> Self {
        let all = ["0.0.0.0/0", "::/0"].iter().filter_map(|n| n.parse().ok()).collect();
        EgressRule { allow: all }
    }

    /// Whether the relay may connect to `ip`.
    pub fn allows(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        !is_relay_network(ip) || self.allow.iter().any(|n| n.contains(&ip))
    }

    /// Checks `ip`, naming the refusal.
    pub fn check(&self, ip: IpAddr) -> Result<(), EgressError> {
        if self.allows(ip) { Ok(()) } else { Err(EgressError::Refused { ip }) }
    }

    /// The addresses of `host` the relay may connect to: `hosts` (an operator's hosts file) first,
    /// then DNS. Refused when every address is refused; the first refused address is named.
    pub async fn resolve(
        &self,
        host: &str,
        port: u16,
        hosts: Option<&HashMap<String, Vec<IpAddr>>>,
    ) -> Result<Vec<SocketAddr>, EgressError> {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let addrs: Vec<SocketAddr> = if let Ok(ip) = host.parse::<IpAddr>() {
            vec![SocketAddr::new(ip, port)]
        } else if let Some(ips) = hosts.and_then(|h| h.get(host)) {
            ips.iter().map(|ip| SocketAddr::new(*ip, port)).collect()
        } else {
            let dns = |reason: String| EgressError::Dns { name: host.to_owned(), reason };
            match tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host((host, port))).await {
                Ok(Ok(found)) => found.collect(),
                Ok(Err(e)) => return Err(dns(e.to_string())),
                Err(_) => return Err(dns("timed out".into())),
            }
        };
        let Some(first) = addrs.first() else { return Err(EgressError::NoAddress { name: host.to_owned() }) };
        let first = first.ip();
        let allowed: Vec<SocketAddr> = addrs.into_iter().filter(|a| self.allows(a.ip())).collect();
        if allowed.is_empty() {
            return Err(EgressError::Refused { ip: first });
        }
        Ok(allowed)
    }

    /// Connects to the first of `addrs` (already checked by [`EgressRule::resolve`]) that answers
    /// within `timeout`; each address is checked again, so no caller can skip the rule.
    pub async fn connect_checked(&self, addrs: &[SocketAddr], timeout: Duration) -> Result<TcpStream, EgressError> {
        let mut last = None;
        for addr in addrs {
            self.check(addr.ip())?;
            let failed = |reason: String, kind| EgressError::Connect { addr: addr.to_string(), reason, kind };
            match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
                Ok(Ok(s)) => return Ok(s),
                Ok(Err(e)) => last = Some(failed(e.to_string(), e.kind())),
                Err(_) => last = Some(failed("did not answer".into(), std::io::ErrorKind::TimedOut)),
            }
        }
        Err(last.unwrap_or(EgressError::NoAddress { name: String::new() }))
    }

    /// Resolves `host` and connects to an allowed address of it.
    pub async fn connect(&self, host: &str, port: u16, timeout: Duration) -> Result<TcpStream, EgressError> {
        let addrs = self.resolve(host, port, None).await?;
        self.connect_checked(&addrs, timeout).await
    }

    /// A resolver for HTTP clients that gives them only the addresses this rule allows.
    pub fn resolver(self: &Arc<Self>) -> Arc<Resolver> {
        Arc::new(Resolver { rule: self.clone() })
    }
}

/// [`EgressRule::resolver`]: reqwest's DNS step with the egress rule applied.
pub struct Resolver {
    rule: Arc<EgressRule>,
}

impl reqwest::dns::Resolve for Resolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let rule = self.rule.clone();
        let fut: Pin<Box<dyn Future<Output = _> + Send>> = Box::pin(async move {
            match rule.resolve(name.as_str(), 0, None).await {
                Ok(addrs) => Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs),
                Err(e) => Err(Box::new(e) as Box<dyn std::error::Error + Send + Sync>),
            }
        });
        fut
    }
}

/// IPv4-mapped IPv6 addresses as IPv4 (one form per address, for every comparison the relay makes).
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Whether `ip` belongs to networks next to the relay rather than to one host on the internet.
pub fn is_relay_network(ip: IpAddr) -> bool {
    match canonical(ip) {
        IpAddr::V4(v4) => is_relay_v4(v4),
        IpAddr::V6(v6) => is_relay_v6(v6),
    }
}

fn is_relay_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    let shared = a == 100 && (b & 0b1100_0000) == 64; // 100.64.0.0/10, carrier-grade NAT
    let benchmarking = a == 198 && (b & 0xfe) == 18; // 198.18.0.0/15
    a == 0
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || shared
        || benchmarking
        || ip.is_broadcast()
        || ip.is_multicast()
        || a >= 240
}

fn is_relay_v6(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    let embedded_v4 = |hi: u16, lo: u16| Ipv4Addr::new((hi >> 8) as u8, hi as u8, (lo >> 8) as u8, lo as u8);
    // Forms that reach an IPv4 address: NAT64 (64:ff9b::/96), 6to4 (2002::/16), IPv4-compatible.
    let v4_inside = if s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0] {
        Some(embedded_v4(s[6], s[7]))
    } else if s[0] == 0x2002 {
        Some(embedded_v4(s[1], s[2]))
    } else if s[..6] == [0, 0, 0, 0, 0, 0] && !ip.is_loopback() && !ip.is_unspecified() {
        Some(embedded_v4(s[6], s[7]))
    } else {
        None
    };
    ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        || (s[0] & 0xfe00) == 0xfc00 // unique local
        || (s[0] & 0xffc0) == 0xfe80 // link local
        || (s[0] & 0xffc0) == 0xfec0 // site local (deprecated, still routed by some)
        || v4_inside.is_some_and(is_relay_v4)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
    }

    #[test]
    fn the_relays_own_networks_are_refused() {
        let rule = EgressRule::default();
        for refused in [
            "127.0.0.1",
            "127.9.9.9",
            "0.0.0.0",
            "0.1.2.3",
            "10.0.0.5",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "198.18.0.1",
            "255.255.255.255",
            "224.0.0.1",
            "240.0.0.1",
            "::1",
            "::",
            "::ffff:127.0.0.1",
            "::127.0.0.1",
            "64:ff9b::a00:1",
            "2002:7f00:1::",
            "fd00::1",
            "fe80::1",
            "fec0::1",
            "ff02::1",
        ] {
            assert!(!rule.allows(ip(refused)), "{refused} allowed");
            assert_eq!(rule.check(ip(refused)), Err(EgressError::Refused { ip: ip(refused) }));
        }
        for allowed in ["93.184.216.34", "203.0.113.7", "2606:4700::1111", "64:ff9b::5db8:d822", "::ffff:8.8.8.8"] {
            assert!(rule.allows(ip(allowed)), "{allowed} refused");
        }
    }

    #[test]
    fn the_operator_allows_named_ranges_only() {
        let rule = EgressRule::new(vec![
            "10.1.0.0/16".parse().unwrap_or(IpNet::default()),
            "::1/128".parse().unwrap_or(IpNet::default()),
        ]);
        assert!(rule.allows(ip("10.1.2.3")));
        assert!(rule.allows(ip("::1")));
        assert!(!rule.allows(ip("10.2.0.1")));
        assert!(!rule.allows(ip("127.0.0.1")));
        assert!(EgressRule::allow_all().allows(ip("127.0.0.1")));
        // Host bits of an allowed range are ignored, as `ip route` would.
        let rule = EgressRule::new(vec!["127.0.0.9/8".parse().unwrap_or(IpNet::default())]);
        assert!(rule.allows(ip("127.1.1.1")));
    }

    #[tokio::test]
    async fn names_are_checked_on_every_resolved_address() {
        let rule = EgressRule::default();
        let mut hosts = HashMap::new();
        hosts.insert("inside.test".to_owned(), vec![ip("127.0.0.1"), ip("10.0.0.1")]);
        hosts.insert("mixed.test".to_owned(), vec![ip("127.0.0.1"), ip("203.0.113.7")]);
        assert_eq!(
            rule.resolve("inside.test", 80, Some(&hosts)).await,
            Err(EgressError::Refused { ip: ip("127.0.0.1") })
        );
        assert_eq!(
            rule.resolve("mixed.test", 80, Some(&hosts)).await,
            Ok(vec![SocketAddr::new(ip("203.0.113.7"), 80)])
        );
        assert_eq!(rule.resolve("[::1]", 22, None).await, Err(EgressError::Refused { ip: ip("::1") }));
        // `localhost` resolves through the system, and is refused like its addresses.
        assert_eq!(rule.resolve("localhost", 22, None).await.map_err(|e| e.code()), Err("private_destination"));
        // A caller cannot skip the rule by connecting to addresses it made itself.
        let refused = rule.connect_checked(&[SocketAddr::new(ip("127.0.0.1"), 9)], RESOLVE_TIMEOUT).await;
        assert_eq!(refused.map(|_| ()), Err(EgressError::Refused { ip: ip("127.0.0.1") }));
    }
}
