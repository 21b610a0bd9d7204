//! The agents connected right now, and the pushing of configuration to them.

use std::collections::HashMap;
use std::net::SocketAddr;

use parking_lot::Mutex;
use sekisho_tunnel::Connection;
use sekisho_tunnel::proto::{self, AgentConfig, RelayMsg};

use crate::topology::Topology;

pub struct Online {
    pub conn: Connection,
    pub addr: SocketAddr,
    pub version: String,
    /// The link's form (`sekisho/2` sealed, `sekisho/1` inside TLS).
    pub link: &'static str,
    last_config: Option<AgentConfig>,
}

#[derive(Default)]
pub struct Hub {
    agents: Mutex<HashMap<String, Online>>,
}

impl Hub {
    /// Registers a freshly authenticated connection, replacing (and closing) an older one of the
    /// same agent, and sends it its configuration. The topology is read under the hub lock, so a
    /// concurrent refresh either sees this agent registered or this read sees the new topology.
    pub fn register(
        &self,
        id: &str,
        conn: Connection,
        addr: SocketAddr,
        version: String,
        link: &'static str,
        topology: impl Fn() -> std::sync::Arc<Topology>,
    ) {
        let mut agents = self.agents.lock();
        let config = topology().config_for(id);
        let _ = conn.send_control(proto::encode(&RelayMsg::Config(config.clone())));
        let online = Online { conn, addr, version, link, last_config: Some(config) };
        if let Some(old) = agents.insert(id.to_owned(), online) {
            old.conn.close("replaced by a newer connection of the same agent");
        }
    }

    /// Runs `f` while holding the hub lock.
    pub fn with_lock<R>(&self, f: impl FnOnce() -> R) -> R {
        let _guard = self.agents.lock();
        f()
    }

    /// Forgets `conn` if it is still the agent's current connection.
    pub fn unregister(&self, id: &str, conn: &Connection) {
        let mut agents = self.agents.lock();
        if agents.get(id).is_some_and(|o| o.conn.same(conn)) {
            agents.remove(id);
        }
    }

    pub fn conn(&self, id: &str) -> Option<Connection> {
        self.agents.lock().get(id).map(|o| o.conn.clone())
    }

    /// `(address, version, link protocol)` of an online agent.
    pub fn info(&self, id: &str) -> Option<(SocketAddr, String, &'static str)> {
        self.agents.lock().get(id).map(|o| (o.addr, o.version.clone(), o.link))
    }

    pub fn online_ids(&self) -> Vec<String> {
        self.agents.lock().keys().cloned().collect()
    }

    /// Streams open on all agent connections (a leak shows here first).
    pub fn stream_count(&self) -> usize {
        self.agents.lock().values().map(|o| o.conn.stream_count()).sum()
    }

    pub fn online_count(&self) -> usize {
        self.agents.lock().len()
    }

    /// Sends each online agent its configuration if it changed.
    pub fn push_configs(&self, topo: &Topology) {
        for (id, online) in self.agents.lock().iter_mut() {
            let config = topo.config_for(id);
            if online.last_config.as_ref() != Some(&config) {
                let _ = online.conn.send_control(proto::encode(&RelayMsg::Config(config.clone())));
                online.last_config = Some(config);
            }
        }
    }

    pub fn disconnect(&self, id: &str, reason: &str) {
        if let Some(o) = self.agents.lock().remove(id) {
            let _ =
                o.conn.send_control(proto::encode(&RelayMsg::Error { code: "revoked".into(), message: reason.into() }));
            o.conn.close(reason);
        }
    }

    pub fn close_all(&self, reason: &str) {
        for (_, o) in self.agents.lock().drain() {
            o.conn.close(reason);
        }
    }
}
