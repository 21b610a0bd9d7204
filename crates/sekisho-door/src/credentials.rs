//! Credentials every front door checks the same way: API keys (expiry, revocation, idle timeout,
//! address allow-lists), the roles and scopes they carry, and the per-address limiter for failed
//! attempts. The door turns a [`KeyProblem`] into its own answer (an HTTP error, a SOCKS reply,
//! an SSH refusal).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use sekisho_store::{ApiKey, now_ms};

pub use crate::egress::canonical;

/// The TCP peer of an API connection (set per connection by the listener).
#[derive(Debug, Clone, Copy)]
pub struct PeerAddr(pub SocketAddr);

/// Every scope a tenant key can hold.
pub const TENANT_SCOPES: [&str; 17] = [
    "agents:read",
    "agents:write",
    "services:read",
    "services:write",
    "routes:read",
    "routes:write",
    "policies:read",
    "policies:write",
    "users:read",
    "users:write",
    "apikeys:read",
    "apikeys:write",
    "audit:read",
    // Bastion recordings: search, replay and live view; terminating a session.
    "recordings:read",
    "recordings:write",
    // Using the SOCKS5 gateway (the key is the proxy password).
    "gateway:use",
    // Acting as a user: API keys and enrollment tokens (personal agents) of a user. Only the
    // admin role holds it (through `*`).
    "users:act",
];

/// Scopes of the roles groups can carry.
pub fn role_scopes(role: &str) -> &'static [&'static str] {
    match role {
        "admin" => &["*"],
        "operator" => &[
            "agents:read",
            "agents:write",
            "services:read",
            "services:write",
            "routes:read",
            "routes:write",
            "policies:read",
            "policies:write",
            "users:read",
            "gateway:use",
        ],
        "auditor" => &[
            "agents:read",
            "services:read",
            "routes:read",
            "policies:read",
            "users:read",
            "audit:read",
            "recordings:read",
            "recordings:write",
            "gateway:use",
        ],
        _ => &["gateway:use"],
    }
}

pub const ROLES: [&str; 4] = ["admin", "operator", "auditor", "member"];

/// Per source IP: failed authentications in the current minute.
pub struct Limiter {
    max_per_minute: u32,
    failures: Mutex<HashMap<IpAddr, (Instant, u32)>>,
}

/// Failed attempts one IP may make per minute on the API and login before it is refused.
pub const MAX_FAILURES_PER_MINUTE: u32 = 10;

impl Default for Limiter {
    fn default() -> Self {
        Limiter::new(MAX_FAILURES_PER_MINUTE)
    }
}

impl Limiter {
    pub fn new(max_per_minute: u32) -> Self {
        Limiter { max_per_minute, failures: Mutex::new(HashMap::new()) }
    }

    /// True if `ip` has used up its failures for this minute.
    pub fn blocked(&self, ip: IpAddr) -> bool {
        let map = self.failures.lock();
        map.get(&ip).is_some_and(|(start, n)| start.elapsed() < Duration::from_secs(60) && *n >= self.max_per_minute)
    }

    pub fn failed(&self, ip: IpAddr) {
        let mut map = self.failures.lock();
        if map.len() > 100_000 {
            map.retain(|_, (start, _)| start.elapsed() < Duration::from_secs(60));
        }
        let entry = map.entry(ip).or_insert((Instant::now(), 0));
        if entry.0.elapsed() >= Duration::from_secs(60) {
            *entry = (Instant::now(), 0);
        }
        entry.1 += 1;
    }
}

fn ip_allowed(list: &str, ip: IpAddr) -> bool {
    let list = list.trim();
    list.is_empty() || list.split(',').map(str::trim).any(|entry| ip_in(entry, ip))
}

/// Whether `ip` is `entry` (an address) or inside it (a CIDR).
pub fn ip_in(entry: &str, ip: IpAddr) -> bool {
    let ip = canonical(ip);
    let (addr, bits) = match entry.split_once('/') {
        Some((a, b)) => (a, b.parse::<u32>().ok()),
        None => (entry, None),
    };
    let Ok(net) = addr.parse::<IpAddr>().map(canonical) else { return false };
    match (net, ip) {
        (IpAddr::V4(n), IpAddr::V4(i)) => {
            let bits = bits.unwrap_or(32).min(32);
            let mask = if bits == 0 { 0 } else { u32::MAX << (32 - bits) };
            u32::from(n) & mask == u32::from(i) & mask
        }
        (IpAddr::V6(n), IpAddr::V6(i)) => {
            let bits = bits.unwrap_or(128).min(128);
            let mask = if bits == 0 { 0 } else { u128::MAX << (128 - bits) };
            u128::from(n) & mask == u128::from(i) & mask
        }
        _ => false,
    }
}

/// Checks `allowed_ips` entries for syntax.
pub fn valid_ip_entry(entry: &str) -> bool {
    let (addr, bits) = match entry.split_once('/') {
        Some((a, b)) => (a, Some(b)),
        None => (entry, None),
    };
    let Ok(ip) = addr.parse::<IpAddr>() else { return false };
    let max = if ip.is_ipv4() { 32 } else { 128 };
    bits.is_none_or(|b| b.parse::<u32>().is_ok_and(|b| b <= max))
}

/// Why a known key may not be used from `ip` now, if it may not: revoked, expired or outside its
/// address allow-list.
pub fn key_problem(key: &ApiKey, ip: IpAddr) -> Option<KeyProblem> {
    let unauthenticated = |message: &str| Some(KeyProblem { code: "unauthenticated", message: message.to_owned() });
    if key.revoked_at.is_some() {
        unauthenticated("API key has been revoked")
    } else if key.expires_at.is_some_and(|t| t <= now_ms()) {
        unauthenticated("API key has expired")
    } else if idle_expired(key, now_ms()) {
        unauthenticated("the session ended after a time without use; log in again")
    } else if key.bound_host.is_some() {
        unauthenticated("a browser session of a service cannot call the admin API")
    } else if !ip_allowed(&key.allowed_ips, ip) {
        Some(KeyProblem { code: "ip_not_allowed", message: format!("API key may not be used from `{ip}`") })
    } else {
        None
    }
}

/// Why a key may not be used: a stable code (`unauthenticated`, `ip_not_allowed`) and words for
/// people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyProblem {
    pub code: &'static str,
    pub message: String,
}

/// Whether a session key has gone unused for longer than its idle timeout.
pub fn idle_expired(key: &ApiKey, now: i64) -> bool {
    key.idle_ms.is_some_and(|idle| now - key.last_used_at.unwrap_or(key.created_at) > idle)
}
