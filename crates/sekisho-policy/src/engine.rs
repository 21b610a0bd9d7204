//! The decision: one [`AccessRequest`] in, one [`Decision`] out, decided by Cedar.
//!
//! The engine holds the schema's validator and every tenant's compiled service policies. It builds the
//! request's entities and context itself (`engine/request.rs`) from what the caller already knows (who,
//! through which agent, from where, when), so it does no I/O. Swapping policies in and out is the
//! caller's concurrency problem (`insert`/`remove` take `&mut self`); `decide` takes `&self`.

mod request;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use cedar_policy::{
    AuthorizationError, Authorizer, Decision as CedarDecision, Diagnostics, Entities, PolicyId, Request, Schema,
    Validator,
};
use serde::Serialize;
use time::OffsetDateTime;

use crate::access::{AccessPath, AuthMethod};
use crate::compile::{self, CompiledPolicy, PolicyError, ServicePolicy};
use crate::schema::SCHEMA;

/// Policy id of a denial because the tenant has no policy for the service.
pub const DEFAULT_DENY: &str = "default-deny";
/// Policy id of a denial because the request itself could not be put to Cedar.
pub const REQUEST_ERROR: &str = "request-error";
/// Policy id of a denial because the service's stored policy could not be read or compiled.
pub const POLICY_UNREADABLE: &str = "policy_unreadable";

/// Who is asking.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Principal {
    /// A person, with the names of the groups they belong to.
    User { name: String, groups: Vec<String> },
    /// An agent acting on its own behalf.
    Agent { name: String, site: String, role: String },
    /// An unauthenticated client of a relay edge port, known only by its address
    /// (`Visitor::"203.0.113.7"`).
    Visitor { ip: String },
}

/// An agent, as seen by policies (`context.agent` or an `Agent` principal).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AgentInfo {
    pub name: String,
    pub site: String,
    pub role: String,
}

/// The service being accessed.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ServiceInfo {
    pub name: String,
    pub protocol: String,
}

/// Everything a decision is made from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessRequest {
    pub tenant: String,
    pub principal: Principal,
    /// The front agent the user came through, if any (`context.agent`).
    pub via_agent: Option<AgentInfo>,
    pub service: ServiceInfo,
    pub source_ip: IpAddr,
    /// ISO country code of `source_ip` (see [`crate::geo::Geo::country`]).
    pub country: String,
    /// When, already in the tenant's UTC offset: `context.hour`, `minute_of_day` and `weekday` come from it.
    pub at: OffsetDateTime,
    pub auth_method: AuthMethod,
    pub path: AccessPath,
    /// Where a gateway connection goes (`context.domain`, `port`, `dest_ip`).
    pub destination: Option<Destination>,
}

/// The destination of a gateway connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    /// Lower-case, no trailing dot; empty when the client asked for an address.
    pub domain: String,
    /// The address, when known before connecting.
    pub ip: Option<IpAddr>,
    pub port: u16,
}

/// The outcome of one decision. `policy_id` and `reason` go to the audit log and deny pages:
///
/// | outcome | `policy_id` | `reason` |
/// |---|---|---|
/// | allowed | `<service>/required` | `all required conditions hold` |
/// | a deny condition holds | `<service>/deny/<k>` | the condition's text |
/// | a required condition does not hold | `<service>/required/<i>` | `required condition not met: <text>` |
/// | no required conditions at all | `<service>/required` | `no required conditions are set` |
/// | a condition failed to evaluate | that condition's id | `policy error: <message>` |
/// | no policy for the service | `default-deny` | ``no policy for service `<name>` `` |
/// | the request could not be built | `request-error` | `request error: <message>` |
/// | the stored policy is unreadable | `policy_unreadable` | `policy_unreadable: <why>` |
///
/// `policy_version` is [`CompiledPolicy::version`] of the policy that decided (empty if none).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    pub allowed: bool,
    pub policy_id: String,
    pub reason: String,
    pub policy_version: String,
}

impl Decision {
    fn deny(policy_id: impl Into<String>, reason: impl Into<String>) -> Self {
        Decision { allowed: false, policy_id: policy_id.into(), reason: reason.into(), policy_version: String::new() }
    }

    fn policy_error(policy_id: &PolicyId, message: String) -> Self {
        Decision::deny(id_str(policy_id), format!("policy error: {message}"))
    }
}

fn id_str(id: &PolicyId) -> &str {
    id.as_ref()
}

/// The decision plane: the schema plus each tenant's compiled service policies.
pub struct Engine {
    validator: Validator,
    authorizer: Authorizer,
    requests: request::Builder,
    /// tenant → service name → policy.
    policies: HashMap<String, HashMap<String, Arc<CompiledPolicy>>>,
    /// tenant → service name → why its stored policy could not be used: such a service denies
    /// everything with `policy_unreadable` (not `default-deny`, which would say it has none).
    unreadable: HashMap<String, HashMap<String, String>>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("tenants", &self.policies.len())
            .field("services", &self.policies.values().map(HashMap::len).sum::<usize>())
            .finish_non_exhaustive()
    }
}

impl Default for Engine {
    fn default() -> Self {
        Engine::new()
    }
}

impl Engine {
    /// An engine with no policies: every decision is `default-deny` until policies are inserted.
    #[expect(clippy::expect_used, reason = "SCHEMA and the type names are constants, checked by every test")]
    pub fn new() -> Engine {
        let (schema, _warnings) = Schema::from_cedarschema_str(SCHEMA).expect("SCHEMA is valid Cedar");
        let requests = request::Builder::new().expect("entity type names are valid Cedar");
        Engine {
            validator: Validator::new(schema),
            authorizer: Authorizer::new(),
            requests,
            policies: HashMap::new(),
            unreadable: HashMap::new(),
        }
    }

    /// Compiles `policy` for `service` and validates it strictly against [`SCHEMA`].
    ///
    /// Changes nothing: a policy that does not compile leaves the running one in place.
    pub fn compile(&self, service: &str, policy: &ServicePolicy) -> Result<CompiledPolicy, PolicyError> {
        compile::compile(&self.validator, service, policy)
    }

    /// Makes `compiled` decide accesses to `tenant`'s `service`, replacing any previous policy.
    /// `compiled` must have been compiled for the same service name.
    pub fn insert(&mut self, tenant: &str, service: &str, compiled: CompiledPolicy) {
        debug_assert_eq!(compiled.service(), service, "policy compiled for another service");
        self.clear_unreadable(tenant, service);
        self.policies.entry(tenant.to_owned()).or_default().insert(service.to_owned(), Arc::new(compiled));
    }

    /// Marks `tenant`'s `service` as having a stored policy that cannot be used (it does not
    /// parse, or no longer compiles): every access to it is denied with `policy_unreadable`.
    pub fn insert_unreadable(&mut self, tenant: &str, service: &str, why: impl Into<String>) {
        if let Some(services) = self.policies.get_mut(tenant) {
            services.remove(service);
        }
        self.unreadable.entry(tenant.to_owned()).or_default().insert(service.to_owned(), why.into());
    }

    fn clear_unreadable(&mut self, tenant: &str, service: &str) {
        if let Some(services) = self.unreadable.get_mut(tenant) {
            services.remove(service);
            if services.is_empty() {
                self.unreadable.remove(tenant);
            }
        }
    }

    /// Forgets `tenant`'s policy for `service`: accesses to it are denied again.
    pub fn remove(&mut self, tenant: &str, service: &str) {
        self.clear_unreadable(tenant, service);
        if let Some(services) = self.policies.get_mut(tenant) {
            services.remove(service);
            if services.is_empty() {
                self.policies.remove(tenant);
            }
        }
    }

    /// The policy deciding accesses to `tenant`'s `service`, if any.
    pub fn get(&self, tenant: &str, service: &str) -> Option<&Arc<CompiledPolicy>> {
        self.policies.get(tenant)?.get(service)
    }

    /// Decides one access. Fails closed: no policy, an unbuildable request or any evaluation error denies.
    pub fn decide(&self, req: &AccessRequest) -> Decision {
        if let Some(why) = self.unreadable.get(&req.tenant).and_then(|s| s.get(&req.service.name)) {
            return Decision::deny(POLICY_UNREADABLE, format!("policy_unreadable: {why}"));
        }
        let Some(policy) = self.get(&req.tenant, &req.service.name) else {
            return Decision::deny(DEFAULT_DENY, format!("no policy for service `{}`", req.service.name));
        };
        Decision { policy_version: policy.version().to_owned(), ..self.decide_with(policy, req) }
    }

    fn decide_with(&self, policy: &CompiledPolicy, req: &AccessRequest) -> Decision {
        let (request, entities) = match self.requests.build(req, None) {
            Ok(built) => built,
            Err(message) => return Decision::deny(REQUEST_ERROR, format!("request error: {message}")),
        };
        let entities = entities.as_ref();
        let response = self.authorizer.is_authorized(&request, &policy.main, entities);
        let diagnostics = response.diagnostics();

        if let Some(hit) = policy.deny.iter().find(|c| diagnostics.reason().any(|id| *id == c.id)) {
            return Decision::deny(id_str(&hit.id), hit.text.clone());
        }
        // Cedar skips a policy that fails to evaluate; for a forbid that would let the access through.
        if let Some(first) = diagnostics.errors().next() {
            if let Some((id, message)) = policy.deny.iter().find_map(|c| error_message(diagnostics, &c.id)) {
                return Decision::policy_error(id, message);
            }
            // The permit failed: name the required condition that did.
            let fallback = match first {
                AuthorizationError::PolicyEvaluationError(e) => {
                    Decision::policy_error(e.policy_id(), e.inner().to_string())
                }
            };
            return self.explain(policy, &request, entities, fallback);
        }
        if response.decision() == CedarDecision::Allow {
            return Decision {
                allowed: true,
                policy_id: id_str(&policy.permit_id).to_owned(),
                reason: "all required conditions hold".to_owned(),
                policy_version: String::new(),
            };
        }
        let fallback = Decision::deny(id_str(&policy.permit_id), "required conditions not met");
        self.explain(policy, &request, entities, fallback)
    }

    /// Finds the first required condition that did not hold (or failed), evaluating each on its own.
    fn explain(&self, policy: &CompiledPolicy, request: &Request, entities: &Entities, fallback: Decision) -> Decision {
        if policy.required.is_empty() {
            return Decision::deny(id_str(&policy.permit_id), "no required conditions are set");
        }
        let response = self.authorizer.is_authorized(request, &policy.explain, entities);
        let diagnostics = response.diagnostics();
        for condition in &policy.required {
            if let Some((id, message)) = error_message(diagnostics, &condition.id) {
                return Decision::policy_error(id, message);
            }
            if !diagnostics.reason().any(|id| *id == condition.id) {
                return Decision::deny(
                    id_str(&condition.id),
                    format!("required condition not met: {}", condition.text),
                );
            }
        }
        fallback
    }
}

/// The message of the evaluation error `id` reported, if it did.
fn error_message<'a>(diagnostics: &'a Diagnostics, id: &'a PolicyId) -> Option<(&'a PolicyId, String)> {
    diagnostics.errors().find_map(|error| match error {
        AuthorizationError::PolicyEvaluationError(e) => (e.policy_id() == id).then(|| (id, e.inner().to_string())),
    })
}
