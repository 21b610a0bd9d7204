//! Secrets: high-entropy tokens and API keys (random, shown once, stored as SHA-256), passwords
//! (argon2id), and the master key that seals settings secrets such as TOTP seeds at rest.

use std::path::{Path, PathBuf};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use base64::Engine;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use sekisho_store::{ApiKey, Store, StoreError, now_ms};
use sha2::{Digest, Sha256};

/// 256 random bits, base64url without padding.
pub fn random_secret() -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
}

/// A short random id with a readable prefix, e.g. `ag_3f9c1a2b7d`.
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", hex::encode(rand::random::<[u8; 5]>()))
}

/// SHA-256 of a secret, hex.
pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// A new API key in its shown-once form.
pub fn new_api_key() -> String {
    format!("sk_{}", random_secret())
}

/// Scopes of the relay operator's key: everything in every tenant.
pub const OPERATOR_SCOPES: &str = "* system";

/// Creates the first admin API key if the store has none; returns it so it can be shown once.
pub async fn bootstrap_admin_key(store: &Store) -> Result<Option<String>, StoreError> {
    if store.api_key_count().await? > 0 {
        return Ok(None);
    }
    issue_api_key(store, "admin").await.map(Some)
}

/// Stores a new relay-operator API key and returns it.
pub async fn issue_api_key(store: &Store, name: &str) -> Result<String, StoreError> {
    store_key(store, "default", name, OPERATOR_SCOPES, None, None, "").await.map(|(_, key)| key)
}

/// Stores a new API key and returns its id and the key (the only time it is seen).
pub async fn store_key(
    store: &Store,
    tenant: &str,
    name: &str,
    scopes: &str,
    expires_at: Option<i64>,
    user_id: Option<String>,
    allowed_ips: &str,
) -> Result<(String, String), StoreError> {
    store_key_idle(store, tenant, name, scopes, expires_at, user_id, allowed_ips, None, None).await
}

/// [`store_key`] for a session: it also ends after `idle_ms` without use, and remembers how its
/// user signed in.
#[expect(clippy::too_many_arguments, reason = "the columns of one row")]
pub async fn store_key_idle(
    store: &Store,
    tenant: &str,
    name: &str,
    scopes: &str,
    expires_at: Option<i64>,
    user_id: Option<String>,
    allowed_ips: &str,
    idle_ms: Option<i64>,
    auth_method: Option<&str>,
) -> Result<(String, String), StoreError> {
    let key = new_api_key();
    let id = new_id("key");
    store
        .insert_api_key(&ApiKey {
            id: id.clone(),
            tenant_id: tenant.into(),
            name: name.into(),
            key_hash: hash_secret(&key),
            scopes: scopes.into(),
            created_at: now_ms(),
            expires_at,
            user_id: user_id.map(Into::into),
            allowed_ips: allowed_ips.into(),
            last_used_at: None,
            revoked_at: None,
            idle_ms,
            parent_id: None,
            bound_host: None,
            auth_method: auth_method.map(str::to_owned),
        })
        .await?;
    Ok((id, key))
}

/// argon2id PHC string of a password (run off the async threads: it is slow on purpose).
pub fn hash_password(password: &str) -> String {
    let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
    argon2::Argon2::default().hash_password(password.as_bytes(), &salt).map(|h| h.to_string()).unwrap_or_default()
}

pub fn verify_password(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|h| argon2::Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
}

#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("cannot read or write master key `{path}`: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("master key `{0}` is malformed (expected 32 bytes)")]
    Malformed(PathBuf),
}

/// The relay's master key (`master.key`, 32 random bytes, mode 0600): seals settings secrets
/// with AES-256-GCM.
pub struct MasterKey {
    key: LessSafeKey,
    /// Derived from the master key for sealing bastion recordings.
    recordings: [u8; 32],
}

impl MasterKey {
    pub fn load_or_create(dir: &Path) -> Result<Self, SealError> {
        let path = dir.join("master.key");
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let b = rand::random::<[u8; 32]>().to_vec();
                sekisho_tunnel::identity::write_private(&path, &b)
                    .map_err(|source| SealError::Io { path: path.clone(), source })?;
                b
            }
            Err(source) => return Err(SealError::Io { path, source }),
        };
        let key = UnboundKey::new(&AES_256_GCM, &bytes).map_err(|_| SealError::Malformed(path.clone()))?;
        let recordings = sekisho_audit::recording::sealed::recording_key(&bytes);
        Ok(MasterKey { key: LessSafeKey::new(key), recordings })
    }

    /// The key that seals bastion recordings.
    pub fn recording_key(&self) -> [u8; 32] {
        self.recordings
    }

    /// base64(nonce ‖ ciphertext ‖ tag).
    pub fn seal(&self, plain: &[u8]) -> String {
        let nonce = rand::random::<[u8; 12]>();
        let mut buf = plain.to_vec();
        if self.key.seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::empty(), &mut buf).is_err() {
            return String::new();
        }
        let mut out = nonce.to_vec();
        out.extend_from_slice(&buf);
        base64::engine::general_purpose::STANDARD.encode(out)
    }

    pub fn open(&self, sealed: &str) -> Option<Vec<u8>> {
        let raw = base64::engine::general_purpose::STANDARD.decode(sealed).ok()?;
        if raw.len() < 12 {
            return None;
        }
        let (nonce, ct) = raw.split_at(12);
        let mut buf = ct.to_vec();
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let plain = self.key.open_in_place(nonce, Aad::empty(), &mut buf).ok()?;
        Some(plain.to_vec())
    }
}
