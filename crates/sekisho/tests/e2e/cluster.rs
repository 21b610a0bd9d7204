//! Two relays sharing one PostgreSQL database (a cluster) and agents given both: a change made
//! through either relay's API reaches the other relay's decisions and the agents within seconds,
//! and when the relay the agents use dies, their routes go on through the other one.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::{Relay, pg_database};
use crate::targets;

/// The status of a GET through a route, or 0 when the connection failed.
async fn status(addr: SocketAddr) -> u16 {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
    match client.get(format!("http://{addr}/")).send().await {
        Ok(r) => r.status().as_u16(),
        Err(_) => 0,
    }
}

/// Waits until a GET through `addr` answers `want`; returns how long it took.
async fn until_status(addr: SocketAddr, want: u16, what: &str) -> Duration {
    let start = Instant::now();
    loop {
        let got = status(addr).await;
        if got == want {
            return start.elapsed();
        }
        assert!(start.elapsed() < Duration::from_secs(15), "{what}: still {got}, not {want}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The allowed accesses to `wiki` in the (shared) audit log, newest first.
async fn allowed(relay: &Relay) -> Vec<Value> {
    let (_, events) = relay.api("GET", "/api/v1/audit?limit=500", None, &relay.admin_key).await;
    let events = events.as_array().cloned().unwrap_or_default();
    events
        .into_iter()
        .filter(|e| e["target"] == "wiki" && e["decision"] == "allow" && e["bytes_out"].is_number())
        .collect()
}

/// Waits until `relay` lists `names` as online.
async fn online_at(relay: &Relay, names: &[&str]) {
    let start = Instant::now();
    loop {
        let agents = relay.ctl(&["agent", "list"]).await.unwrap();
        let online = |n: &str| agents.as_array().unwrap().iter().any(|a| a["name"] == n && a["online"] == true);
        if names.iter().all(|n| online(n)) {
            return;
        }
        assert!(start.elapsed() < Duration::from_secs(15), "not all of {names:?} online at {}: {agents}", relay.addr);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_two_relay_cluster_shares_changes_and_agents_fail_over() {
    let Some(url) = pg_database().await else { return };
    let mut a = Relay::start_with(&["--database", &url]).await;
    let b = Relay::join(&a, &url).await;
    let relays = format!("{},{}", a.addr, b.addr);
    let back = a.agent_at(&relays, "site", "back").await;
    let mut front = a.agent_at(&relays, "laptop", "front").await;
    online_at(&a, &["site", "laptop"]).await;
    online_at(&b, &["site", "laptop"]).await;

    // The service and its policy are made through relay B; the route through relay A. The front
    // agent uses A (first in its list), so A decides with B's policy.
    let web = targets::http().await;
    b.service("wiki", &back, &format!("http://{web}")).await;
    let (route, addr) = a.route(&mut front, "wiki").await;
    until_status(addr, 200, "the policy set through B allows at A").await;
    // The front agent tells every relay where it listens.
    let start = Instant::now();
    loop {
        let routes = b.ctl(&["route", "list"]).await.unwrap();
        let bound = routes.as_array().unwrap().iter().find(|r| r["id"] == route.as_str()).map(|r| r["bound"].clone());
        if bound.as_ref().and_then(Value::as_str) == Some(addr.to_string().as_str()) {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(15), "relay B never learnt the listener: {routes}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    b.policy("wiki", &["true"], &["true"]).await;
    let took = until_status(addr, 403, "a deny condition set through B").await;
    eprintln!("a policy change through B reached A's decisions in {took:?}");
    let denied = a.wait_event(|e| e["policy_id"] == "wiki/deny/0" && e["decision"] == "deny").await;
    assert_eq!(denied["target"], "wiki");
    b.policy("wiki", &["true"], &[]).await;
    until_status(addr, 200, "the deny condition removed through B").await;

    // Relay A dies: the agents' links to B take over, and the route answers again. The audit
    // log is shared, so B's decisions are the allowed accesses that appear after A's death.
    let allowed_before = allowed(&b).await;
    a.proc.kill().await;
    let killed = Instant::now();
    let took = until_status(addr, 200, "the route after relay A died").await;
    eprintln!("the route answered through relay B {took:?} after A died");
    assert!(killed.elapsed() < Duration::from_secs(10), "failover took {:?}", killed.elapsed());
    let start = Instant::now();
    while allowed(&b).await.len() <= allowed_before.len() {
        assert!(start.elapsed() < Duration::from_secs(15), "relay B recorded no access after the failover");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let newest = &allowed(&b).await[0];
    assert_eq!((newest["subject"].as_str(), newest["path"].as_str()), (Some("laptop"), Some("tunnel")), "{newest}");

    // A route made through B now reaches the front agent (its configuration comes from B).
    let (_, addr2) = b.route(&mut front, "wiki").await;
    until_status(addr2, 200, "a route created through B after the failover").await;
}
