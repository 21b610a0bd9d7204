//! An immutable snapshot of agents, services and routes, and what each agent must be told.

use std::collections::HashMap;

use sekisho_store::{Agent, Route, Service, Store, StoreError};
use sekisho_tunnel::proto::{AgentConfig, RouteConfig, ServiceConfig};

#[derive(Debug, Default)]
pub(crate) struct Topology {
    /// Enrolled, non-revoked agents by id.
    pub(crate) agents: HashMap<String, Agent>,
    pub(crate) services: HashMap<String, Service>,
    pub(crate) routes: HashMap<String, Route>,
}

impl Topology {
    pub(crate) async fn load(store: &Store) -> Result<Self, StoreError> {
        let agents = store
            .list_agents()
            .await?
            .into_iter()
            .filter(|a| a.revoked_at.is_none())
            .map(|a| (a.id.clone(), a))
            .collect();
        let services = store.list_services().await?.into_iter().map(|s| (s.id.clone(), s)).collect();
        let routes = store.list_routes().await?.into_iter().map(|r| (r.id.clone(), r)).collect();
        Ok(Topology { agents, services, routes })
    }

    /// The configuration agent `id` needs: the routes it fronts and the services it serves.
    pub(crate) fn config_for(&self, id: &str) -> AgentConfig {
        let mut routes: Vec<RouteConfig> = self
            .routes
            .values()
            .filter(|r| r.front_agent_id == id)
            .filter_map(|r| {
                let svc = self.services.get(&r.service_id)?;
                let back = self.agents.get(&svc.agent_id)?;
                Some(RouteConfig {
                    id: r.id.clone(),
                    listen: r.listen.clone(),
                    service: svc.name.clone(),
                    protocol: svc.protocol.clone(),
                    peer_agent: back.id.clone(),
                    peer_key: back.noise_pub.clone(),
                })
            })
            .collect();
        routes.sort_by(|a, b| a.id.cmp(&b.id));
        let mut services: Vec<ServiceConfig> = self
            .services
            .values()
            .filter(|s| s.agent_id == id)
            .map(|s| ServiceConfig {
                id: s.id.clone(),
                name: s.name.clone(),
                target: s.target.clone(),
                protocol: s.protocol.clone(),
            })
            .collect();
        services.sort_by(|a, b| a.id.cmp(&b.id));
        AgentConfig { routes, services }
    }

    /// Finds an agent by id or unique name.
    pub(crate) fn find_agent(&self, key: &str) -> Result<&Agent, String> {
        if let Some(a) = self.agents.get(key) {
            return Ok(a);
        }
        let mut named = self.agents.values().filter(|a| a.name == key);
        match (named.next(), named.next()) {
            (Some(a), None) => Ok(a),
            (Some(_), Some(_)) => Err(format!("agent name `{key}` is ambiguous; use the agent id")),
            (None, _) => Err(format!("agent `{key}` not found")),
        }
    }

    /// Finds a service by id or name.
    pub(crate) fn find_service(&self, key: &str) -> Option<&Service> {
        self.services.get(key).or_else(|| self.services.values().find(|s| s.name == key))
    }
}
