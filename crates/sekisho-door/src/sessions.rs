//! Signing people in, the same on every front door: a session key with the scopes of the user's
//! roles, the second factor's time step, and the lockout after failed passwords.

use sekisho_store::{StoreError, now_ms};

use crate::credentials::role_scopes;
use crate::secrets::store_key_idle;
use crate::state::State;

/// How long a session key lives.
const SESSION_TTL_MS: i64 = 12 * 3600 * 1000;
/// Consecutive failed logins an account may make before it slows down: every login surface
/// (API, console, bastion) shares the count.
pub const FREE_FAILURES: i64 = 5;
/// The first wait, after [`FREE_FAILURES`] failures; it doubles with each further failure.
const FIRST_WAIT_MS: i64 = 2_000;
/// The longest wait between two attempts at one account.
pub const MAX_WAIT_MS: i64 = 15 * 60 * 1000;
// Fewer guesses a day at the cap than the old lockout's 5 per 15 minutes allowed.
const _: () = assert!(86_400_000 / MAX_WAIT_MS < 5 * 96);

/// How long an account with `failures` consecutive failed logins is not heard before its next
/// attempt: nothing for the first few, then 2 s doubling per failure up to 15 minutes. A person
/// who mistyped five times waits seconds, not a quarter of an hour (no hard lockout anyone can
/// cause by typing a name), while a guesser is held to one try per 15 minutes after about fifteen
/// (fewer tries a day than the old "5 per 15 minutes" lockout allowed). A success or an admin's
/// unlock resets the count.
pub fn login_wait_ms(failures: i64) -> Option<i64> {
    if failures < FREE_FAILURES {
        return None;
    }
    let doublings = (failures - FREE_FAILURES).min(32) as u32;
    Some(FIRST_WAIT_MS.saturating_mul(1i64 << doublings).min(MAX_WAIT_MS))
}

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
        Some(user.id.to_string()),
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
    fn an_account_slows_down_and_never_locks_for_longer_than_the_cap() {
        assert_eq!((0..FREE_FAILURES).filter_map(login_wait_ms).count(), 0, "the first failures are free");
        assert_eq!(login_wait_ms(5), Some(2_000));
        assert_eq!(login_wait_ms(6), Some(4_000));
        assert_eq!(login_wait_ms(9), Some(32_000));
        assert_eq!(login_wait_ms(14), Some(MAX_WAIT_MS), "the cap after about fifteen failures");
        assert_eq!(login_wait_ms(1_000_000), Some(MAX_WAIT_MS), "no overflow however many");
    }

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
