//! An immutable snapshot of agents, services and routes, and what each agent must be told.

use std::collections::HashMap;

use sekisho_store::{Agent, AgentId, Route, RouteId, Service, ServiceId, Store, StoreError, Tenant, TenantId, UserId};
use sekisho_tunnel::proto::{AgentConfig, RouteConfig, ServiceConfig};

#[derive(Debug, Default)]
pub struct Topology {
    /// Enrolled, non-revoked agents by id.
    pub agents: HashMap<AgentId, Agent>,
    pub services: HashMap<ServiceId, Service>,
    pub routes: HashMap<RouteId, Route>,
    pub tenants: HashMap<TenantId, Tenant>,
    /// Users that own agents (personal devices), by id, with their group names: the principals
    /// of the streams those agents open.
    pub owners: HashMap<UserId, Owner>,
    /// Services published for browsers, by `<service>.<tenant>` (the hostname's first labels).
    pub browser_hosts: HashMap<String, ServiceId>,
}

#[derive(Debug, Clone)]
pub struct Owner {
    pub name: String,
    pub groups: Vec<String>,
    pub disabled: bool,
}

impl Topology {
    pub async fn load(store: &Store) -> Result<Self, StoreError> {
        let agents = store
            .list_agents_all()
            .await?
            .into_iter()
            .filter(|a| a.revoked_at.is_none())
            .map(|a| (a.id.clone(), a))
            .collect();
        let agents: HashMap<AgentId, Agent> = agents;
        let services: HashMap<ServiceId, Service> =
            store.list_services_all().await?.into_iter().map(|s| (s.id.clone(), s)).collect();
        let routes = store.list_routes_all().await?.into_iter().map(|r| (r.id.clone(), r)).collect();
        let tenants: HashMap<TenantId, Tenant> =
            store.list_tenants().await?.into_iter().map(|t| (t.id.clone(), t)).collect();
        let mut owners = HashMap::new();
        for a in agents_owned(&agents) {
            if owners.contains_key(a) {
                continue;
            }
            if let Some(u) = store.get_user_by_id(a).await? {
                let groups = store.groups_of(&u.id).await?.into_iter().map(|g| g.name).collect();
                owners.insert(u.id.clone(), Owner { name: u.name, groups, disabled: u.disabled_at.is_some() });
            }
        }
        let browser_hosts = browser_hosts(&services, &tenants);
        Ok(Topology { agents, services, routes, tenants, owners, browser_hosts })
    }

    /// The tenant's time zone for time-of-day conditions (Japan's if the tenant is unknown).
    pub fn zone(&self, tenant: &str) -> jiff::tz::TimeZone {
        match self.tenants.get(tenant) {
            Some(t) => t.zone(),
            None => sekisho_store::zone::or_default(None),
        }
    }

    /// The configuration agent `id` needs: the routes it fronts and the services it serves.
    pub fn config_for(&self, id: &str) -> AgentConfig {
        let mut routes: Vec<RouteConfig> = self
            .routes
            .values()
            .filter(|r| r.front_agent_id == id)
            .filter_map(|r| {
                let svc = self.services.get(&r.service_id)?;
                let back = self.agents.get(svc.agent_id.as_ref()?)?;
                Some(RouteConfig {
                    id: r.id.to_string(),
                    listen: r.listen.clone(),
                    service: svc.name.clone(),
                    protocol: svc.protocol.as_str().to_owned(),
                    peer_agent: back.id.to_string(),
                    peer_key: back.noise_pub.clone(),
                })
            })
            .collect();
        routes.sort_by(|a, b| a.id.cmp(&b.id));
        let mut services: Vec<ServiceConfig> = self
            .services
            .values()
            .filter(|s| s.agent_id.as_deref() == Some(id))
            .map(|s| ServiceConfig {
                id: s.id.to_string(),
                name: s.name.clone(),
                target: s.target.clone(),
                protocol: s.protocol.as_str().to_owned(),
            })
            .collect();
        services.sort_by(|a, b| a.id.cmp(&b.id));
        AgentConfig { routes, services }
    }

    /// Finds a tenant's agent by id or unique name.
    pub fn find_agent(&self, tenant: &str, key: &str) -> Result<&Agent, String> {
        if let Some(a) = self.agents.get(key).filter(|a| a.tenant_id == tenant) {
            return Ok(a);
        }
        let mut named = self.agents.values().filter(|a| a.name == key && a.tenant_id == tenant);
        match (named.next(), named.next()) {
            (Some(a), None) => Ok(a),
            (Some(_), Some(_)) => Err(format!("agent name `{key}` is ambiguous; use the agent id")),
            (None, _) => Err(format!("agent `{key}` not found")),
        }
    }

    /// Finds a tenant's service by id or name.
    pub fn find_service(&self, tenant: &str, key: &str) -> Option<&Service> {
        self.services
            .get(key)
            .filter(|s| s.tenant_id == tenant)
            .or_else(|| self.services.values().find(|s| s.name == key && s.tenant_id == tenant))
    }
}

fn browser_hosts(
    services: &HashMap<ServiceId, Service>,
    tenants: &HashMap<TenantId, Tenant>,
) -> HashMap<String, ServiceId> {
    services
        .values()
        .filter(|s| s.browser)
        .filter_map(|s| {
            let tenant = tenants.get(&s.tenant_id).map_or(s.tenant_id.as_str(), |t| t.name.as_str());
            Some((format!("{}.{}", s.name, tenant).to_ascii_lowercase(), s.id.clone())).filter(|_| s.agent_id.is_some())
        })
        .collect()
}

fn agents_owned(agents: &HashMap<AgentId, Agent>) -> impl Iterator<Item = &UserId> {
    agents.values().filter_map(|a| a.owner_user_id.as_ref())
}
