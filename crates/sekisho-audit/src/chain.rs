//! The hash chain and checkpoint statements: what is hashed and signed, byte for byte.
//!
//! `hash(n) = SHA-256("sekisho-audit-v1\n" ‖ prev_hash ‖ "\n" ‖ seq ‖ "\n" ‖ JSON(record))`, hex,
//! where `prev_hash` is the hex hash of event `n-1` of the same tenant ([`GENESIS`] before the
//! first, or the hash in the newest `prune` checkpoint once old events were removed) and the JSON
//! is the record's fields in their fixed declaration order. A checkpoint signs
//! `"sekisho-checkpoint-v1\n" tenant \n seq \n hash \n at \n kind` with Ed25519.

use sekisho_store::{AuditRecord, Checkpoint};
use sha2::{Digest, Sha256};

/// The `prev_hash` of a tenant's first event.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The chain hash of `record` at `seq` after `prev_hash`.
pub fn event_hash(prev_hash: &str, seq: i64, record: &AuditRecord) -> String {
    let mut h = Sha256::new();
    h.update(b"sekisho-audit-v1\n");
    h.update(prev_hash.as_bytes());
    h.update(format!("\n{seq}\n").as_bytes());
    // Serialising a plain struct of strings and integers cannot fail.
    h.update(serde_json::to_vec(record).unwrap_or_default());
    hex::encode(h.finalize())
}

/// The bytes a checkpoint's signature covers.
pub fn checkpoint_message(c: &Checkpoint) -> Vec<u8> {
    format!("sekisho-checkpoint-v1\n{}\n{}\n{}\n{}\n{}", c.tenant_id, c.seq, c.hash, c.at, c.kind).into_bytes()
}
