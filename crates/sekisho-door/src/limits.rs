//! Connection caps for every listener (the TLS port of agents, the API and the console; the SOCKS
//! gateway; the SSH bastion; relay edge ports): at most so many open connections from one address,
//! and so many in all. A connection over a cap is closed at once, before any handshake, and
//! counted. Each listener has its own [`ConnLimits`], so a flood on one does not close another.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

/// What the operator set (`--conn-per-ip`, `--conn-max`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitsConfig {
    /// Open connections one source address may hold on one listener.
    pub per_ip: usize,
    /// Open connections one listener holds in all.
    pub total: usize,
}

impl Default for LimitsConfig {
    /// Generous enough for an office of hundreds behind one NAT using the gateway.
    fn default() -> Self {
        LimitsConfig { per_ip: 1024, total: 50_000 }
    }
}

/// The caps and counts of one listener.
#[derive(Debug)]
pub struct ConnLimits {
    name: &'static str,
    config: LimitsConfig,
    open: Mutex<HashMap<IpAddr, usize>>,
    total: AtomicU64,
    refused: AtomicU64,
}

/// An admitted connection: its slot is given back when this is dropped.
#[derive(Debug)]
pub struct Slot {
    limits: Arc<ConnLimits>,
    ip: IpAddr,
}

impl ConnLimits {
    pub fn new(name: &'static str, config: LimitsConfig) -> Arc<Self> {
        Arc::new(ConnLimits {
            name,
            config,
            open: Mutex::new(HashMap::new()),
            total: AtomicU64::new(0),
            refused: AtomicU64::new(0),
        })
    }

    /// A slot for a connection from `ip`, or `None` (counted, and logged once in a while) when a
    /// cap is reached.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<Slot> {
        let mut open = self.open.lock();
        let total = self.total.load(Ordering::Relaxed) as usize;
        let mine = open.get(&ip).copied().unwrap_or(0);
        if total >= self.config.total || mine >= self.config.per_ip {
            let n = self.refused.fetch_add(1, Ordering::Relaxed) + 1;
            if n.is_power_of_two() {
                tracing::warn!(listener = self.name, %ip, refused = n, "connection cap reached; closing new connections");
            }
            return None;
        }
        *open.entry(ip).or_default() += 1;
        self.total.fetch_add(1, Ordering::Relaxed);
        Some(Slot { limits: self.clone(), ip })
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    /// (open, refused so far).
    pub fn counts(&self) -> (u64, u64) {
        (self.total.load(Ordering::Relaxed), self.refused.load(Ordering::Relaxed))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.limits.open.lock();
        if let Some(n) = open.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
        self.limits.total.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_per_address_and_in_all_and_slots_come_back() {
        let limits = ConnLimits::new("test", LimitsConfig { per_ip: 2, total: 3 });
        let a: IpAddr = [203, 0, 113, 1].into();
        let b: IpAddr = [203, 0, 113, 2].into();
        let a1 = limits.admit(a);
        let a2 = limits.admit(a);
        assert!(a1.is_some() && a2.is_some());
        assert!(limits.admit(a).is_none(), "a third from one address");
        let b1 = limits.admit(b);
        assert!(b1.is_some());
        assert!(limits.admit(b).is_none(), "a fourth in all");
        assert_eq!(limits.counts(), (3, 2));
        drop(a1);
        assert!(limits.admit(b).is_some(), "a slot given back is usable");
    }
}
