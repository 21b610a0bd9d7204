//! Unauthenticated noise: refusals of clients nobody knows (no API key, a SOCKS greeting without
//! authentication, a browser without a session, an agent that cannot log in) are counted per source,
//! path and reason, and only the first few of each minute are recorded one by one (then one in a
//! hundred); the rest become one summary event per source and reason when the minute ends. One
//! address can no longer write thousands of durable rows a second into the default tenant's chain,
//! and what it did is still in the log, counted.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// Refusals of one source, path and reason recorded one by one per window.
const FIRST: u64 = 10;
/// After the first few, one refusal in this many is recorded one by one.
const SAMPLE: u64 = 100;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    path: &'static str,
    ip: IpAddr,
    code: String,
}

#[derive(Debug)]
struct Window {
    start: Instant,
    seen: u64,
    recorded: u64,
}

/// Counts unauthenticated refusals; see the module docs.
#[derive(Debug)]
pub struct Noise {
    window: Duration,
    counts: Mutex<HashMap<Key, Window>>,
}

/// One summary: refusals of a source, path and reason in a window that were not recorded alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    pub path: &'static str,
    pub ip: IpAddr,
    pub code: String,
    pub unrecorded: u64,
    pub seen: u64,
}

impl Noise {
    pub fn new(window: Duration) -> Self {
        Noise { window, counts: Mutex::new(HashMap::new()) }
    }

    /// How long refusals are counted before their summary is recorded.
    pub fn window(&self) -> Duration {
        self.window
    }

    /// Counts one refusal; true if it should be recorded on its own.
    pub fn admit(&self, path: &'static str, ip: IpAddr, code: &str) -> bool {
        let mut counts = self.counts.lock();
        // A flood of many sources: forget the oldest finished windows rather than grow without
        // bound (their summaries are lost only beyond 100,000 sources in one window).
        if counts.len() >= 100_000 {
            counts.retain(|_, w| w.start.elapsed() < self.window);
        }
        let w = counts.entry(Key { path, ip, code: code.to_owned() }).or_insert(Window {
            start: Instant::now(),
            seen: 0,
            recorded: 0,
        });
        w.seen += 1;
        let alone = w.seen <= FIRST || (w.seen - FIRST).is_multiple_of(SAMPLE);
        if alone {
            w.recorded += 1;
        }
        alone
    }

    /// The windows that ended (all of them when `all`), as summaries of what was not recorded alone.
    pub fn take_ended(&self, all: bool) -> Vec<Summary> {
        let mut counts = self.counts.lock();
        let ended: Vec<Key> =
            counts.iter().filter(|(_, w)| all || w.start.elapsed() >= self.window).map(|(k, _)| k.clone()).collect();
        let mut out = Vec::new();
        for key in ended {
            if let Some(w) = counts.remove(&key)
                && w.seen > w.recorded
            {
                out.push(Summary {
                    path: key.path,
                    ip: key.ip,
                    code: key.code,
                    unrecorded: w.seen - w.recorded,
                    seen: w.seen,
                });
            }
        }
        out.sort_by(|a, b| (a.path, a.ip, &a.code).cmp(&(b.path, b.ip, &b.code)));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_few_are_recorded_then_one_in_a_hundred_and_the_rest_are_counted() {
        let noise = Noise::new(Duration::from_secs(60));
        let ip: IpAddr = "203.0.113.7".parse().unwrap_or(IpAddr::from([0, 0, 0, 0]));
        let alone = (0..250).filter(|_| noise.admit("api", ip, "unauthenticated")).count();
        assert_eq!(alone, 10 + 2, "ten, then the 110th and the 210th");
        // Another source or reason has its own count.
        assert!(noise.admit("api", "203.0.113.8".parse().unwrap_or(ip), "unauthenticated"));
        assert!(noise.admit("socks", ip, "unauthenticated"));
        assert!(noise.take_ended(false).is_empty(), "the window has not ended");
        let all = noise.take_ended(true);
        assert_eq!(
            all,
            [Summary { path: "api", ip, code: "unauthenticated".into(), unrecorded: 238, seen: 250 }],
            "sources that were recorded in full need no summary"
        );
        assert!(noise.take_ended(true).is_empty());
    }

    #[test]
    fn windows_end() {
        let noise = Noise::new(Duration::from_millis(1));
        let ip: IpAddr = "203.0.113.7".parse().unwrap_or(IpAddr::from([0, 0, 0, 0]));
        for _ in 0..20 {
            noise.admit("api", ip, "x");
        }
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(noise.take_ended(false).len(), 1);
        assert!(noise.admit("api", ip, "x"), "a new window starts over");
    }
}
