//! High-entropy secrets (API keys, enrollment tokens): generated from the OS RNG, shown once,
//! stored only as SHA-256.

use base64::Engine;
use sekisho_store::{ApiKey, Store, StoreError, now_ms};
use sha2::{Digest, Sha256};

/// 256 random bits, base64url without padding.
pub(crate) fn random_secret() -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
}

/// A short random id with a readable prefix, e.g. `ag_3f9c1a2b7d`.
pub(crate) fn new_id(prefix: &str) -> String {
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

/// Creates the first admin API key if the store has none; returns it so it can be shown once.
pub(crate) async fn bootstrap_admin_key(store: &Store) -> Result<Option<String>, StoreError> {
    if store.api_key_count().await? > 0 {
        return Ok(None);
    }
    issue_api_key(store, "admin").await.map(Some)
}

/// Stores a new full-scope API key and returns it.
pub(crate) async fn issue_api_key(store: &Store, name: &str) -> Result<String, StoreError> {
    let key = new_api_key();
    store
        .insert_api_key(&ApiKey {
            id: new_id("key"),
            tenant_id: "default".into(),
            name: name.into(),
            key_hash: hash_secret(&key),
            scopes: "*".into(),
            created_at: now_ms(),
            expires_at: None,
        })
        .await?;
    Ok(key)
}
