//! Browser sessions: cookies, CSRF tokens, one-time tickets and the service hosts' session cache.
//!
//! Both kinds of session are API keys, so revocation, expiry, listing and the audit trail are
//! the API's own. The console's key is what `POST /api/v1/login` returned, with an idle timeout.
//! A service host never sees that key: after login the console mints a one-time ticket (60 s,
//! for one host), the host redeems it at `/.sekisho/auth` for its own key, bound to the host,
//! with no scopes, and a child of the console key (revoking the console key revokes it).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::HeaderValue;
use parking_lot::Mutex;
use sekisho_store::{ApiKey, now_ms};
use sha2::{Digest, Sha256};

use sekisho_door::State;
use sekisho_door::secrets::{hash_secret, new_api_key, new_id, random_secret};

/// The console session cookie (host-only, Secure, `/`: the `__Host-` prefix makes browsers insist).
pub(crate) const CONSOLE_COOKIE: &str = "__Host-sekisho";
/// A service host's session cookie.
pub(crate) const EDGE_COOKIE: &str = "__Host-sekisho-edge";
/// The language chosen with the switch.
pub(crate) const LANG_COOKIE: &str = "sekisho_lang";
/// Sessions end after this long without a request.
pub(crate) const IDLE_MS: i64 = 30 * 60 * 1000;
/// A ticket must be redeemed this soon.
const TICKET_TTL: Duration = Duration::from_secs(60);
/// How long a checked browser session is trusted without reading the store again. Admin
/// changes and logouts clear the cache at once on this relay.
const CACHE_TTL: Duration = Duration::from_secs(10);
/// How often a session's last use is written back.
const TOUCH_EVERY: Duration = Duration::from_secs(60);

pub(crate) fn set_cookie(name: &str, value: &str) -> HeaderValue {
    let v = format!("{name}={value}; Path=/; Secure; HttpOnly; SameSite=Lax");
    HeaderValue::from_str(&v).unwrap_or_else(|_| HeaderValue::from_static(""))
}

pub(crate) fn clear_cookie(name: &str) -> HeaderValue {
    let v = format!("{name}=; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age=0");
    HeaderValue::from_str(&v).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// The CSRF token of a console session: only someone holding the (HttpOnly) session key can
/// compute it, and it needs no server state, so any relay of a cluster accepts it.
pub(crate) fn csrf_token(session_key: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"sekisho-csrf\n");
    h.update(session_key.as_bytes());
    hex::encode(&h.finalize()[..16])
}

pub(crate) fn csrf_ok(session_key: &str, token: &str) -> bool {
    let want = csrf_token(session_key);
    want.len() == token.len() && want.bytes().zip(token.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
}

/// Why a session key may not be used now, if it may not.
pub(crate) fn session_problem(key: &ApiKey, now: i64) -> Option<&'static str> {
    if key.revoked_at.is_some() {
        Some("session_ended")
    } else if key.expires_at.is_some_and(|t| t <= now) {
        Some("session_expired")
    } else if sekisho_door::credentials::idle_expired(key, now) {
        Some("session_idle")
    } else {
        None
    }
}

/// The sign-ins that open the console and browser hosts: TOTP or single sign-on, never a
/// password alone or a key made with the API.
pub(crate) fn web_auth_method(method: Option<&str>) -> Option<&'static str> {
    match method {
        Some("password+totp") => Some("password+totp"),
        Some("oidc") => Some("oidc"),
        _ => None,
    }
}

/// A login handed from the console to one service host.
#[derive(Debug, Clone)]
pub(crate) struct Ticket {
    pub(crate) tenant: String,
    pub(crate) user_id: sekisho_store::UserId,
    pub(crate) parent_id: String,
    pub(crate) parent_expires: Option<i64>,
    /// How the console session was signed in (`password+totp` or `oidc`).
    pub(crate) auth_method: String,
    pub(crate) host: String,
    /// Where on the host to go after (a path, never another origin).
    pub(crate) path: String,
}

#[derive(Default)]
pub(crate) struct Tickets {
    open: Mutex<HashMap<String, (Ticket, Instant)>>,
}

impl Tickets {
    pub(crate) fn mint(&self, ticket: Ticket) -> String {
        let token = random_secret();
        let mut open = self.open.lock();
        if open.len() > 10_000 {
            open.retain(|_, (_, at)| at.elapsed() < TICKET_TTL);
        }
        open.insert(hash_secret(&token), (ticket, Instant::now()));
        token
    }

    /// The ticket, once, if it is fresh and for `host`.
    pub(crate) fn redeem(&self, token: &str, host: &str) -> Option<Ticket> {
        let (ticket, at) = self.open.lock().remove(&hash_secret(token))?;
        (at.elapsed() < TICKET_TTL && ticket.host == host).then_some(ticket)
    }
}

/// Issues a service host's own session key for a redeemed ticket.
pub(crate) async fn issue_edge_key(state: &State, t: &Ticket) -> Result<(String, String), sekisho_store::StoreError> {
    let key = new_api_key();
    let id = new_id("key");
    state
        .store
        .insert_api_key(&ApiKey {
            id: id.clone(),
            tenant_id: t.tenant.clone().into(),
            name: format!("browser {}", t.host),
            key_hash: hash_secret(&key),
            scopes: String::new(),
            created_at: now_ms(),
            expires_at: t.parent_expires,
            user_id: Some(t.user_id.clone()),
            allowed_ips: String::new(),
            last_used_at: None,
            revoked_at: None,
            idle_ms: Some(IDLE_MS),
            parent_id: Some(t.parent_id.clone()),
            bound_host: Some(t.host.clone()),
            auth_method: Some(t.auth_method.clone()),
        })
        .await?;
    Ok((id, key))
}

/// Who a service host's session belongs to.
#[derive(Debug)]
pub(crate) struct EdgeUser {
    pub(crate) key_id: String,
    pub(crate) parent_id: String,
    pub(crate) tenant: String,
    pub(crate) name: String,
    pub(crate) groups: Vec<String>,
    /// How the console session was signed in: `password+totp` or `oidc`.
    pub(crate) auth_method: &'static str,
}

struct Cached {
    user: Arc<EdgeUser>,
    host: String,
    fetched: Instant,
    touched: Instant,
}

/// Recently checked service-host sessions, by the SHA-256 of their key.
#[derive(Default)]
pub(crate) struct EdgeCache {
    /// The cached sessions, and the credential epoch they were checked in: after any admin
    /// change (keys, users or groups may differ, see `State::changed`) they are forgotten.
    map: Mutex<(u64, HashMap<String, Cached>)>,
}

impl EdgeCache {
    /// The session's user, or why there is none (a stable reason code).
    pub(crate) async fn check(&self, state: &State, token: &str, host: &str) -> Result<Arc<EdgeUser>, &'static str> {
        let hash = hash_secret(token);
        let epoch = state.credential_epoch();
        let touch = {
            let mut guard = self.map.lock();
            if guard.0 != epoch {
                *guard = (epoch, HashMap::new());
            }
            let map = &mut guard.1;
            match map.get_mut(&hash) {
                Some(c) if c.fetched.elapsed() < CACHE_TTL && c.host == host => {
                    let touch = c.touched.elapsed() >= TOUCH_EVERY;
                    if touch {
                        c.touched = Instant::now();
                    }
                    Some((c.user.clone(), touch))
                }
                _ => None,
            }
        };
        if let Some((user, touch)) = touch {
            if touch {
                touch_keys(state, &user);
            }
            return Ok(user);
        }
        let user = Arc::new(load(state, &hash, host).await?);
        touch_keys(state, &user);
        let mut guard = self.map.lock();
        // Kept only if nothing changed while it was loaded.
        if guard.0 == epoch && state.credential_epoch() == epoch {
            let map = &mut guard.1;
            if map.len() > 10_000 {
                map.retain(|_, c| c.fetched.elapsed() < CACHE_TTL);
            }
            let now = Instant::now();
            map.insert(hash, Cached { user: user.clone(), host: host.to_owned(), fetched: now, touched: now });
        }
        Ok(user)
    }
}

fn touch_keys(state: &State, user: &EdgeUser) {
    let store = state.store.clone();
    let ids = [user.key_id.clone(), user.parent_id.clone()];
    tokio::spawn(async move {
        for id in ids {
            // Bookkeeping, not a decision.
            if let Err(e) = store.api_key_used(&id).await {
                tracing::warn!(error = %e, "cannot note a browser session's last use");
            }
        }
    });
}

async fn load(state: &State, hash: &str, host: &str) -> Result<EdgeUser, &'static str> {
    let store_err = |e: sekisho_store::StoreError| {
        tracing::error!(error = %e, "cannot check a browser session");
        "store_unavailable"
    };
    let key = state.store.find_api_key(hash).await.map_err(store_err)?.ok_or("session_unknown")?;
    if key.bound_host.as_deref() != Some(host) {
        return Err("session_unknown");
    }
    let now = now_ms();
    if let Some(why) = session_problem(&key, now) {
        return Err(why);
    }
    let parent_id = key.parent_id.clone().ok_or("session_unknown")?;
    let parent = state.store.get_api_key(&parent_id).await.map_err(store_err)?.ok_or("session_ended")?;
    if let Some(why) = session_problem(&parent, now) {
        return Err(why);
    }
    let user_id = key.user_id.clone().ok_or("session_unknown")?;
    let user = state.store.get_user_by_id(&user_id).await.map_err(store_err)?.ok_or("user_disabled")?;
    if user.disabled_at.is_some() {
        return Err("user_disabled");
    }
    let groups = state.store.groups_of(&user.id).await.map_err(store_err)?.into_iter().map(|g| g.name).collect();
    let auth_method = web_auth_method(parent.auth_method.as_deref()).ok_or("session_unknown")?;
    Ok(EdgeUser { key_id: key.id, parent_id, tenant: key.tenant_id.to_string(), name: user.name, groups, auth_method })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ticket(host: &str) -> Ticket {
        Ticket {
            tenant: "t".into(),
            user_id: "u".into(),
            parent_id: "k".into(),
            parent_expires: None,
            auth_method: "password+totp".into(),
            host: host.into(),
            path: "/".into(),
        }
    }

    #[test]
    fn a_ticket_is_redeemed_once_and_only_on_its_host() {
        let t = Tickets::default();
        let token = t.mint(ticket("wiki.acme.localhost"));
        assert!(t.redeem(&token, "evil.acme.localhost").is_none(), "another host");
        assert!(t.redeem(&token, "wiki.acme.localhost").is_none(), "a failed redemption spends it too");
        let token = t.mint(ticket("wiki.acme.localhost"));
        assert_eq!(t.redeem(&token, "wiki.acme.localhost").map(|t| t.user_id), Some("u".into()));
        assert!(t.redeem(&token, "wiki.acme.localhost").is_none(), "second use");
        assert!(t.redeem("made-up", "wiki.acme.localhost").is_none());
    }

    #[test]
    fn csrf_tokens_belong_to_one_session() {
        let a = csrf_token("sk_a");
        assert!(csrf_ok("sk_a", &a));
        assert!(!csrf_ok("sk_b", &a));
        assert!(!csrf_ok("sk_a", ""));
        assert!(!csrf_ok("sk_a", &a[..31]));
    }

    #[test]
    fn cookies_are_host_only_secure_and_http_only() {
        let c = set_cookie(CONSOLE_COOKIE, "v");
        assert_eq!(c.to_str().unwrap(), "__Host-sekisho=v; Path=/; Secure; HttpOnly; SameSite=Lax");
        assert!(clear_cookie(EDGE_COOKIE).to_str().unwrap().contains("Max-Age=0"));
    }
}
