//! Gateway passwords: an API key of the named user with the `gateway:use` scope, checked against
//! the store and then remembered briefly (any admin change forgets them all).

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use sekisho_audit::{Decision as AuditDecision, Event, EventKind, SubjectKind};
use sekisho_gate::{AccessPath, AuthMethod, Subject, Unreadable};
use sekisho_store::now_ms;

use super::socks5::Credentials;
use super::{Client, GATEWAY_SCOPE};
use sekisho_door::State;
use sekisho_door::secrets::hash_secret;

/// How long a verified key is remembered (any admin change forgets them all at once).
const AUTH_TTL: Duration = Duration::from_secs(30);

/// A key that passed the checks that do not depend on the connection: it exists, holds the gateway
/// scope and belongs to an enabled user (with these groups).
#[derive(Clone)]
pub(crate) struct Authed {
    key: sekisho_store::ApiKey,
    user: String,
    groups: Result<Vec<String>, Unreadable>,
    at: Instant,
}

/// Verified keys by hash, so a browser's burst of connections does not cost three database reads
/// each. Only successes are kept; the admin API clears it after every change.
#[derive(Default)]
pub(crate) struct AuthCache {
    /// The keys, and the credential epoch they were verified in (`State::changed` moves it).
    map: parking_lot::Mutex<(u64, HashMap<String, Authed>)>,
}

impl AuthCache {
    fn get(&self, state: &State, hash: &str) -> Option<Authed> {
        let epoch = state.credential_epoch();
        let mut guard = self.map.lock();
        if guard.0 != epoch {
            *guard = (epoch, HashMap::new());
        }
        guard.1.get(hash).filter(|a| a.at.elapsed() < AUTH_TTL).cloned()
    }

    /// Remembers a key verified in `epoch`, unless something changed since.
    fn put(&self, state: &State, epoch: u64, hash: String, authed: Authed) {
        let mut guard = self.map.lock();
        if guard.0 != epoch || state.credential_epoch() != epoch {
            return;
        }
        let map = &mut guard.1;
        if map.len() >= 10_000 {
            map.retain(|_, a| a.at.elapsed() < AUTH_TTL);
        }
        map.insert(hash, authed);
    }
}

/// Looks the key up: Err((tenant, reason)) when it cannot be a gateway password.
async fn lookup(state: &State, hash: &str) -> Result<Authed, (String, String)> {
    let key = match state.store.find_api_key(hash).await {
        Ok(Some(k)) => k,
        Ok(None) => return Err(("default".into(), "unauthenticated: the password is not a valid API key".into())),
        Err(e) => return Err(("default".into(), format!("store_unavailable: {e}"))),
    };
    let tenant = key.tenant_id.clone();
    let scoped = key.scopes.split_whitespace().any(|s| s == "*" || s == GATEWAY_SCOPE);
    if !scoped {
        return Err((tenant.to_string(), format!("forbidden: the API key lacks scope `{GATEWAY_SCOPE}`")));
    }
    let user = match &key.user_id {
        // A store that does not answer is said as such (and refuses), not taken for "no user".
        Some(id) => {
            state.store.get_user_by_id(id).await.map_err(|e| (tenant.to_string(), format!("store_unavailable: {e}")))?
        }
        None => None,
    };
    let Some(user) = user.filter(|u| u.disabled_at.is_none()) else {
        return Err((tenant.to_string(), "unauthenticated: the API key belongs to no enabled user".into()));
    };
    if key.last_used_at.is_none_or(|t| now_ms() - t > 60_000) {
        // Bookkeeping, not a decision.
        if let Err(e) = state.store.api_key_used(&key.id).await {
            tracing::warn!(error = %e, "cannot note a proxy key's last use");
        }
    }
    // Groups that cannot be read deny at the gate (`store_unavailable`), never "no groups".
    let groups = state
        .store
        .groups_of(&user.id)
        .await
        .map(|gs| gs.into_iter().map(|g| g.name).collect())
        .map_err(|e| Unreadable::store(&format!("the groups of `{}`", user.name), e));
    Ok(Authed { key, user: user.name, groups, at: Instant::now() })
}

/// Checks the API key given as password: known, live, allowed from `ip`, with the gateway scope,
/// and belonging to the (enabled) user named.
pub(super) async fn authenticate(
    state: &State,
    cache: &AuthCache,
    ip: IpAddr,
    c: &Credentials,
) -> Result<Client, Event> {
    let country = state.geo.country(ip);
    let deny = |tenant: &str, subject: String, reason: String| {
        Event::new(tenant, EventKind::Login, AuditDecision::Deny)
            .subject(SubjectKind::User, subject)
            .path("socks")
            .reason(reason)
            .auth("api_key")
            .source(ip, country.clone())
    };
    let (user_name, gateway) = match c.user.split_once('+') {
        Some((u, g)) => (u.to_owned(), Some(g.to_owned())),
        None => (c.user.clone(), None),
    };
    if state.limiter.blocked(ip) {
        let why = "rate_limited: too many failed attempts from this address; try again in a minute";
        return Err(deny("default", user_name, why.to_owned()));
    }
    let hash = hash_secret(c.password.trim());
    let epoch = state.credential_epoch();
    let authed = match cache.get(state, &hash) {
        Some(a) => a,
        None => {
            let a = lookup(state, &hash).await.map_err(|(tenant, why)| deny(&tenant, user_name.clone(), why))?;
            // Only what was read completely is remembered.
            if a.groups.is_ok() {
                cache.put(state, epoch, hash, a.clone());
            }
            a
        }
    };
    let tenant = authed.key.tenant_id.clone();
    if let Some(problem) = sekisho_door::credentials::key_problem(&authed.key, ip) {
        return Err(deny(&tenant, user_name, format!("{}: {}", problem.code, problem.message)));
    }
    if authed.user != user_name {
        return Err(deny(&tenant, user_name, format!("unauthenticated: the API key is not `{}`'s", c.user)));
    }
    let topo = state.topology();
    let subject = Subject::User { name: authed.user, groups: authed.groups, via_agent: None };
    let mut attempt =
        sekisho_door::decide::attempt(state, &topo, &tenant, AccessPath::Socks, AuthMethod::ApiKey, subject, ip);
    // Revoking the key ends the connections made with it.
    attempt.credential = Some(authed.key.id.clone());
    Ok(Client { attempt, gateway })
}
