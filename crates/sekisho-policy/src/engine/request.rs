//! Building the Cedar request and entities for one [`AccessRequest`].
//!
//! Only the principal, the front agent and the service are entities. Groups and the tenant are just
//! ancestors: `principal in Group::"ops"` needs the edge, not a `Group` entity. Three parts cost Cedar
//! far more than the rest of a decision, so they are remembered: the `ip("…")` value of a source
//! address (Cedar parses the name `ip` every time it builds one), the entity set of a principal, front
//! agent and service (Cedar recomputes the transitive closure every time), and the context (Cedar
//! evaluates every attribute of it; a client that opens many connections in one minute sends the same
//! one). All are pure functions of the request, so a cached value is never stale; each cache is simply
//! emptied when it fills up.

use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::hash::{Hash, Hasher};
use std::net::IpAddr;
use std::str::FromStr;
use std::sync::{Arc, RwLock};

use cedar_policy::{
    Context, Entities, Entity, EntityId, EntityTypeName, EntityUid, Request, RestrictedExpression, Schema,
};
use time::Weekday;

use super::{AccessRequest, AgentInfo, Principal, ServiceInfo};
use crate::access::{AccessPath, AuthMethod};

/// How many entries each cache holds before it starts over.
const CACHE_LIMIT: usize = 4096;

/// A map that forgets everything when it fills up; shared by concurrent decisions.
#[derive(Debug)]
struct Cache<K, V> {
    map: RwLock<HashMap<K, V>>,
}

impl<K: Hash + Eq, V: Clone> Cache<K, V> {
    fn new() -> Self {
        Cache { map: RwLock::new(HashMap::new()) }
    }

    fn get(&self, key: &K) -> Option<V> {
        self.map.read().ok()?.get(key).cloned()
    }

    fn put(&self, key: K, value: V) {
        if let Ok(mut map) = self.map.write() {
            if map.len() >= CACHE_LIMIT {
                map.clear();
            }
            map.insert(key, value);
        }
    }

    /// The value for `key` if `usable` accepts it, otherwise a new one from `build`, remembered.
    fn get_or_build<E>(
        &self,
        key: K,
        usable: impl Fn(&V) -> bool,
        build: impl FnOnce() -> Result<V, E>,
    ) -> Result<V, E> {
        if let Some(cached) = self.get(&key).filter(|v| usable(v)) {
            return Ok(cached);
        }
        let built = build()?;
        self.put(key, built.clone());
        Ok(built)
    }
}

/// The entity set of one (tenant, principal, front agent, service), with what it was built from so a
/// hash collision is noticed rather than answered.
#[derive(Debug)]
struct CachedEntities {
    tenant: String,
    principal: Principal,
    via_agent: Option<AgentInfo>,
    service: ServiceInfo,
    entities: Entities,
}

impl CachedEntities {
    fn matches(&self, req: &AccessRequest) -> bool {
        self.tenant == req.tenant
            && self.principal == req.principal
            && self.via_agent == req.via_agent
            && self.service == req.service
    }
}

/// Everything a request's context is built from.
#[derive(Debug, PartialEq, Eq, Hash)]
struct ContextKey {
    source_ip: IpAddr,
    country: String,
    hour: u8,
    minute: u8,
    weekday: Weekday,
    auth_method: AuthMethod,
    path: AccessPath,
    agent: Option<String>,
    domain: String,
    port: u16,
    dest_ip: Option<IpAddr>,
}

impl ContextKey {
    fn of(req: &AccessRequest) -> Self {
        let dest = req.destination.as_ref();
        ContextKey {
            source_ip: req.source_ip,
            country: req.country.clone(),
            hour: req.at.hour(),
            minute: req.at.minute(),
            weekday: req.at.weekday(),
            auth_method: req.auth_method,
            path: req.path,
            agent: req.via_agent.as_ref().map(|a| a.name.clone()),
            domain: dest.map(|d| d.domain.clone()).unwrap_or_default(),
            port: dest.map_or(0, |d| d.port),
            dest_ip: dest.and_then(|d| d.ip),
        }
    }
}

/// The entities of a request, shared with the cache.
#[derive(Debug, Clone)]
pub(crate) struct RequestEntities(Arc<CachedEntities>);

impl AsRef<Entities> for RequestEntities {
    fn as_ref(&self) -> &Entities {
        &self.0.entities
    }
}

/// Builds Cedar requests: the type names parsed once, plus the caches.
#[derive(Debug)]
pub(crate) struct Builder {
    tenant: EntityTypeName,
    group: EntityTypeName,
    user: EntityTypeName,
    agent: EntityTypeName,
    visitor: EntityTypeName,
    service: EntityTypeName,
    access: EntityUid,
    ips: Cache<IpAddr, RestrictedExpression>,
    entities: Cache<u64, RequestEntities>,
    contexts: Cache<ContextKey, Context>,
}

impl Builder {
    /// `None` only if the constant type names stopped being valid Cedar.
    pub(crate) fn new() -> Option<Self> {
        let name = |s: &str| EntityTypeName::from_str(s).ok();
        Some(Builder {
            tenant: name("Tenant")?,
            group: name("Group")?,
            user: name("User")?,
            agent: name("Agent")?,
            visitor: name("Visitor")?,
            service: name("Service")?,
            access: EntityUid::from_type_name_and_id(name("Action")?, EntityId::new("access")),
            ips: Cache::new(),
            entities: Cache::new(),
            contexts: Cache::new(),
        })
    }

    /// The Cedar request and entities for `req`.
    ///
    /// With a `schema`, both are checked against it and nothing is cached. Decisions pass none: the
    /// engine builds entities and context to the schema's shape itself, and checking them costs about as
    /// much as deciding. The tests below check the shape instead.
    pub(crate) fn build(
        &self,
        req: &AccessRequest,
        schema: Option<&Schema>,
    ) -> Result<(Request, RequestEntities), String> {
        let principal = match &req.principal {
            Principal::User { name, .. } => uid(&self.user, name),
            Principal::Agent { name, .. } => uid(&self.agent, name),
            Principal::Visitor { ip } => uid(&self.visitor, ip),
        };
        let service = uid(&self.service, &req.service.name);
        let agent = req.via_agent.as_ref().map(|a| uid(&self.agent, &a.name));

        let context = match schema {
            Some(_) => self.context(req, agent.as_ref())?,
            None => self.contexts.get_or_build(ContextKey::of(req), |_| true, || self.context(req, agent.as_ref()))?,
        };

        let entities = match schema {
            Some(_) => RequestEntities(Arc::new(self.entities(req, &principal, agent.as_ref(), &service, schema)?)),
            // A hash collision is noticed (the cached set is checked) and answered by building.
            None => self.entities.get_or_build(
                entities_key(req),
                |cached| cached.0.matches(req),
                || self.entities(req, &principal, agent.as_ref(), &service, None).map(|e| RequestEntities(Arc::new(e))),
            )?,
        };
        #[expect(clippy::disallowed_methods, reason = "this builder is where the gate's Cedar requests are made")]
        let request =
            Request::new(principal, self.access.clone(), service, context, schema).map_err(|e| e.to_string())?;
        Ok((request, entities))
    }

    /// The context of `req` (`agent`: the front agent's uid, if any).
    fn context(&self, req: &AccessRequest, agent: Option<&EntityUid>) -> Result<Context, String> {
        let hour = i64::from(req.at.hour());
        let mut context = Vec::with_capacity(11);
        context.extend([
            ("source_ip".to_owned(), self.ip(req.source_ip)),
            ("country".to_owned(), RestrictedExpression::new_string(req.country.clone())),
            ("hour".to_owned(), RestrictedExpression::new_long(hour)),
            ("minute_of_day".to_owned(), RestrictedExpression::new_long(hour * 60 + i64::from(req.at.minute()))),
            ("weekday".to_owned(), RestrictedExpression::new_string(weekday(req.at.weekday()).to_owned())),
            ("auth_method".to_owned(), RestrictedExpression::new_string(req.auth_method.as_str().to_owned())),
            ("path".to_owned(), RestrictedExpression::new_string(req.path.as_str().to_owned())),
        ]);
        if let Some(agent) = agent {
            context.push(("agent".to_owned(), RestrictedExpression::new_entity_uid(agent.clone())));
        }
        let (domain, port) = req.destination.as_ref().map_or((String::new(), 0), |d| (d.domain.clone(), d.port));
        context.push(("domain".to_owned(), RestrictedExpression::new_string(domain)));
        context.push(("port".to_owned(), RestrictedExpression::new_long(i64::from(port))));
        if let Some(ip) = req.destination.as_ref().and_then(|d| d.ip) {
            context.push(("dest_ip".to_owned(), self.ip(ip)));
        }
        Context::from_pairs(context).map_err(|e| e.to_string())
    }

    /// `ip("<addr>")`, from the cache when the address was seen recently.
    fn ip(&self, addr: IpAddr) -> RestrictedExpression {
        let Ok(expr) = self.ips.get_or_build(
            addr,
            |_| true,
            || Ok::<_, Infallible>(RestrictedExpression::new_ip(addr.to_string())),
        );
        expr
    }

    fn entities(
        &self,
        req: &AccessRequest,
        principal: &EntityUid,
        agent: Option<&EntityUid>,
        service: &EntityUid,
        schema: Option<&Schema>,
    ) -> Result<CachedEntities, String> {
        let tenant = uid(&self.tenant, &req.tenant);
        let mut entities = Vec::with_capacity(3);
        match &req.principal {
            Principal::User { name, groups } => {
                let mut parents: HashSet<EntityUid> = groups.iter().map(|g| uid(&self.group, g)).collect();
                parents.insert(tenant.clone());
                entities.push(entity(principal.clone(), &[("name", name)], parents)?);
            }
            Principal::Agent { name, site, role } => {
                let attrs = [("name", name.as_str()), ("site", site), ("role", role)];
                entities.push(entity(principal.clone(), &attrs, [tenant.clone()].into())?);
            }
            Principal::Visitor { ip } => {
                entities.push(entity(principal.clone(), &[("name", ip)], [tenant.clone()].into())?);
            }
        }
        if let (Some(a), Some(agent)) = (&req.via_agent, agent) {
            // An agent deciding for itself is already there as the principal.
            if agent != principal {
                let attrs = [("name", a.name.as_str()), ("site", &a.site), ("role", &a.role)];
                entities.push(entity(agent.clone(), &attrs, [tenant.clone()].into())?);
            }
        }
        let attrs = [("name", req.service.name.as_str()), ("protocol", &req.service.protocol)];
        entities.push(entity(service.clone(), &attrs, [tenant].into())?);
        Ok(CachedEntities {
            tenant: req.tenant.clone(),
            principal: req.principal.clone(),
            via_agent: req.via_agent.clone(),
            service: req.service.clone(),
            entities: Entities::from_entities(entities, schema).map_err(|e| e.to_string())?,
        })
    }
}

/// Hash of everything the entities are built from.
fn entities_key(req: &AccessRequest) -> u64 {
    let mut hasher = DefaultHasher::new();
    (&req.tenant, &req.principal, &req.via_agent, &req.service).hash(&mut hasher);
    hasher.finish()
}

fn uid(type_name: &EntityTypeName, id: &str) -> EntityUid {
    EntityUid::from_type_name_and_id(type_name.clone(), EntityId::new(id))
}

fn entity(uid: EntityUid, attrs: &[(&str, &str)], parents: HashSet<EntityUid>) -> Result<Entity, String> {
    let attrs = attrs
        .iter()
        .map(|&(k, v)| (k.to_owned(), RestrictedExpression::new_string(v.to_owned())))
        .collect::<HashMap<_, _>>();
    Entity::new(uid, attrs, parents).map_err(|e| e.to_string())
}

fn weekday(day: Weekday) -> &'static str {
    match day {
        Weekday::Monday => "mon",
        Weekday::Tuesday => "tue",
        Weekday::Wednesday => "wed",
        Weekday::Thursday => "thu",
        Weekday::Friday => "fri",
        Weekday::Saturday => "sat",
        Weekday::Sunday => "sun",
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;
    use crate::SCHEMA;

    fn alice() -> AccessRequest {
        AccessRequest {
            tenant: "acme".to_owned(),
            principal: Principal::User { name: "alice".to_owned(), groups: vec!["ops".to_owned(), "ops".to_owned()] },
            via_agent: Some(AgentInfo {
                name: "tokyo-pc".to_owned(),
                site: "tokyo".to_owned(),
                role: "front".to_owned(),
            }),
            service: ServiceInfo { name: "wiki".to_owned(), protocol: "http".to_owned() },
            source_ip: "2001:db8::1".parse().unwrap(),
            country: "DE".to_owned(),
            at: datetime!(2026-11-29 23:59 +09:00),
            auth_method: AuthMethod::PublicKeyTotp,
            path: AccessPath::Ssh,
            destination: None,
        }
    }

    /// What decisions skip at run time: the request and entities conform to [`SCHEMA`].
    #[test]
    fn built_requests_conform_to_the_schema() {
        let builder = Builder::new().unwrap();
        let schema = Schema::from_cedarschema_str(SCHEMA).unwrap().0;
        let direct = AccessRequest { via_agent: None, source_ip: "10.0.0.1".parse().unwrap(), ..alice() };
        let as_agent = AccessRequest {
            principal: Principal::Agent {
                name: "tokyo-pc".to_owned(),
                site: "tokyo".to_owned(),
                role: "front".to_owned(),
            },
            ..alice()
        };
        let socks = AccessRequest {
            path: AccessPath::Socks,
            destination: Some(super::super::Destination {
                domain: "example.com".to_owned(),
                ip: Some("93.184.216.34".parse().unwrap()),
                port: 443,
            }),
            ..alice()
        };
        for req in [alice(), direct, as_agent, socks] {
            let built = builder.build(&req, Some(&schema));
            assert!(built.is_ok(), "{req:?}: {built:?}");
        }
    }

    #[test]
    fn context_values() {
        let builder = Builder::new().unwrap();
        let (request, _) = builder.build(&alice(), None).unwrap();
        let context = request.context().unwrap();
        let get = |key: &str| context.get(key).map(|v| v.to_string());
        assert_eq!(get("hour").as_deref(), Some("23"));
        assert_eq!(get("minute_of_day").as_deref(), Some("1439"));
        assert_eq!(get("weekday").as_deref(), Some("\"sun\""));
        assert_eq!(get("path").as_deref(), Some("\"ssh\""));
        assert_eq!(get("agent").as_deref(), Some("Agent::\"tokyo-pc\""));
    }

    #[test]
    fn cached_entities_are_reused_only_for_the_same_request_parts() {
        let builder = Builder::new().unwrap();
        let (_, first) = builder.build(&alice(), None).unwrap();
        let later =
            AccessRequest { source_ip: "10.9.9.9".parse().unwrap(), at: datetime!(2026-11-30 10:00 UTC), ..alice() };
        let (_, second) = builder.build(&later, None).unwrap();
        assert!(Arc::ptr_eq(&first.0, &second.0), "time and address are not part of the entities");

        let other_groups =
            AccessRequest { principal: Principal::User { name: "alice".to_owned(), groups: vec![] }, ..alice() };
        let (_, third) = builder.build(&other_groups, None).unwrap();
        assert!(!Arc::ptr_eq(&first.0, &third.0));

        // A colliding key is answered by building, not by the other request's entities.
        builder.entities.put(entities_key(&other_groups), first.clone());
        let (_, fourth) = builder.build(&other_groups, None).unwrap();
        assert!(!Arc::ptr_eq(&first.0, &fourth.0));
        assert!(fourth.0.matches(&other_groups));
    }

    #[test]
    fn a_cached_context_is_used_only_for_the_same_inputs() {
        let builder = Builder::new().unwrap();
        let minute = |req: &AccessRequest| {
            let (request, _) = builder.build(req, None).unwrap();
            request.context().unwrap().get("minute_of_day").map(|v| v.to_string())
        };
        assert_eq!(minute(&alice()).as_deref(), Some("1439"));
        assert_eq!(builder.contexts.map.read().unwrap().len(), 1);
        assert_eq!(minute(&alice()).as_deref(), Some("1439"), "the same request is answered from the cache");
        assert_eq!(builder.contexts.map.read().unwrap().len(), 1);

        // Any input of the context makes a new one: the time, the address, the destination.
        let earlier = AccessRequest { at: datetime!(2026-11-29 23:58 +09:00), ..alice() };
        assert_eq!(minute(&earlier).as_deref(), Some("1438"));
        let (request, _) = builder
            .build(
                &AccessRequest {
                    destination: Some(crate::engine::Destination { domain: "example.com".into(), ip: None, port: 443 }),
                    ..alice()
                },
                None,
            )
            .unwrap();
        let context = request.context().unwrap();
        assert_eq!(context.get("domain").map(|v| v.to_string()).as_deref(), Some("\"example.com\""));
        assert_eq!(context.get("port").map(|v| v.to_string()).as_deref(), Some("443"));
        assert_eq!(builder.contexts.map.read().unwrap().len(), 3);
    }

    #[test]
    fn caches_start_over_when_full() {
        let cache = Cache::new();
        for i in 0..CACHE_LIMIT {
            cache.put(i, i);
        }
        assert_eq!(cache.get(&0), Some(0));
        cache.put(CACHE_LIMIT, CACHE_LIMIT);
        assert_eq!(cache.get(&0), None);
        assert_eq!(cache.get(&CACHE_LIMIT), Some(CACHE_LIMIT));
    }
}
