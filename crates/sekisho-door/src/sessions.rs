//! Signing people in, the same on every front door: a session key with the scopes of the user's
//! roles, the second factor's time step, and the lockout after failed passwords.

use sekisho_store::{StoreError, now_ms};

use crate::credentials::role_scopes;
use crate::secrets::store_key_idle;
use crate::state::State;

/// How long a session key lives.
const SESSION_TTL_MS: i64 = 12 * 3600 * 1000;
/// Consecutive failed logins before a user is locked, and for how long: every login surface
/// shares them.
pub const LOCKOUT_AFTER: i64 = 5;
pub const LOCKOUT_MS: i64 = 15 * 60 * 1000;

/// A new session key.
pub struct Issued {
    pub id: String,
    pub key: String,
    pub expires_at: i64,
    pub scopes: Vec<&'static str>,
}

/// Issues a session key (12 hours, the scopes of the user's roles) for a user who has just
/// proved who they are by `method` (`password`, `password+totp`, `oidc`).
pub async fn issue_session(
    state: &State,
    user: &sekisho_store::User,
    method: &str,
    idle_ms: Option<i64>,
) -> Result<Issued, StoreError> {
    state.store.login_succeeded(&user.id).await?;
    let mut scopes: Vec<&'static str> = Vec::new();
    for g in state.store.groups_of(&user.id).await? {
        scopes.extend(role_scopes(&g.role));
    }
    scopes.sort_unstable();
    scopes.dedup();
    let expires_at = now_ms() + SESSION_TTL_MS;
    let (id, key) = store_key_idle(
        &state.store,
        &user.tenant_id,
        "session",
        &scopes.join(" "),
        Some(expires_at),
        Some(user.id.clone()),
        "",
        idle_ms,
        Some(method),
    )
    .await?;
    Ok(Issued { id, key, expires_at, scopes })
}

/// The TOTP time step `code` is valid for (one step of clock skew either way), if any.
pub fn totp_step(secret: Vec<u8>, code: &str, unix: u64) -> Option<i64> {
    let totp = totp_rs::TOTP::new(totp_rs::Algorithm::SHA1, 6, 1, 30, secret).ok()?;
    let code = code.trim();
    let now = unix / 30;
    [now.saturating_sub(1), now, now + 1].into_iter().find(|s| totp.generate(s * 30) == code).map(|s| s as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totp_steps_allow_one_step_of_skew() {
        let secret = b"12345678901234567890".to_vec();
        let totp = totp_rs::TOTP::new(totp_rs::Algorithm::SHA1, 6, 1, 30, secret.clone()).unwrap();
        let now = 1_900_000_000u64;
        let code = totp.generate(now);
        assert_eq!(totp_step(secret.clone(), &code, now), Some((now / 30) as i64));
        assert_eq!(totp_step(secret.clone(), &code, now + 30), Some((now / 30) as i64));
        assert_eq!(totp_step(secret.clone(), &code, now + 90), None);
        assert_eq!(totp_step(secret, "000000x", now), None);
    }
}
