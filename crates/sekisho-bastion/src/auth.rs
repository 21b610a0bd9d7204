//! Who is logging in: the SSH user name (`alice`, `alice+web01`, `alice+web01@tenant`), the first
//! factor (a registered public key or the password) and the TOTP code, spent once.

use std::net::IpAddr;

use sekisho_audit::{Decision as AuditDecision, Event, EventKind, SubjectKind};
use sekisho_store::{User, now_ms};

use sekisho_door::State;

/// The parts of an SSH user name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct LoginName {
    pub(super) user: String,
    /// The target asked for directly; `None` shows the menu.
    pub(super) target: Option<String>,
    /// The tenant's name (`default` unless given after `@`).
    pub(super) tenant: String,
}

/// `alice`, `alice+web01`, `alice@acme`, `alice+web01@acme`.
pub(super) fn parse_login(name: &str) -> LoginName {
    let (rest, tenant) = match name.rsplit_once('@') {
        Some((r, t)) if !t.is_empty() => (r, t),
        _ => (name, "default"),
    };
    let (user, target) = match rest.split_once('+') {
        Some((u, t)) if !t.is_empty() => (u, Some(t.to_owned())),
        _ => (rest.trim_end_matches('+'), None),
    };
    LoginName { user: user.to_owned(), target, tenant: tenant.to_owned() }
}

/// A user who passed the first factor, as found in the store.
#[derive(Debug, Clone)]
pub(super) struct Candidate {
    pub(super) login: LoginName,
    pub(super) tenant_id: sekisho_store::TenantId,
    pub(super) user: User,
}

/// The logged-in user of a connection.
#[derive(Debug, Clone)]
pub(super) struct Authed {
    pub(super) tenant: String,
    pub(super) user: String,
    /// As read at login; `Err` (the store did not answer) denies every target at the gate.
    pub(super) groups: Result<Vec<String>, sekisho_gate::Unreadable>,
    /// `publickey+totp` or `password+totp`.
    pub(super) method: sekisho_gate::AuthMethod,
    pub(super) target: Option<String>,
    pub(super) ip: IpAddr,
    pub(super) country: String,
}

/// A login event of the bastion.
pub(super) fn login_event(
    state: &State,
    tenant: &str,
    user: &str,
    ip: IpAddr,
    method: &str,
    decision: AuditDecision,
    reason: &str,
) -> Event {
    Event::new(tenant, EventKind::Login, decision)
        .subject(SubjectKind::User, user.to_owned())
        .path("ssh")
        .reason(reason.to_owned())
        .auth(method)
        .source(ip, state.geo.country(ip))
}

/// Finds the enabled, unlocked user a login name names; Err is the refusal reason.
pub(super) async fn find_user(state: &State, name: &str) -> Result<Candidate, (String, String)> {
    let login = parse_login(name);
    let tenant = match state.store.get_tenant(&login.tenant).await {
        Ok(Some(t)) => t,
        Ok(None) => return Err(("default".into(), format!("unknown_tenant: there is no tenant `{}`", login.tenant))),
        Err(e) => return Err(("default".into(), format!("store_unavailable: {e}"))),
    };
    let user = match state.store.get_user(&tenant.id, &login.user).await {
        Ok(Some(u)) => u,
        Ok(None) => return Err((tenant.id.to_string(), format!("unknown_user: there is no user `{}`", login.user))),
        Err(e) => return Err((tenant.id.to_string(), format!("store_unavailable: {e}"))),
    };
    if user.disabled_at.is_some() {
        return Err((tenant.id.to_string(), format!("user_disabled: user `{}` is disabled", user.name)));
    }
    if user.locked_until.is_some_and(|t| t > now_ms()) {
        return Err((
            tenant.id.to_string(),
            format!("locked: user `{}` is locked after repeated failed logins", user.name),
        ));
    }
    Ok(Candidate { login, tenant_id: tenant.id, user })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    #[test]
    fn login_names() {
        let p = |s: &str| parse_login(s);
        assert_eq!(p("alice"), LoginName { user: "alice".into(), target: None, tenant: "default".into() });
        assert_eq!(p("alice+web01").target.as_deref(), Some("web01"));
        let full = p("alice+web01@acme");
        assert_eq!(
            (full.user.as_str(), full.target.as_deref(), full.tenant.as_str()),
            ("alice", Some("web01"), "acme")
        );
        assert_eq!(p("alice@acme").target, None);
        assert_eq!(p("alice+").user, "alice");
        assert_eq!(p("alice@").tenant, "default");
    }
}
