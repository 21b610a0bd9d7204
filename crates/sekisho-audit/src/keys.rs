//! The relay's audit signing key: an Ed25519 seed in `audit-key.json` (mode 0600) beside the
//! database, and its public half in `audit.pub` for whoever verifies the log later.

use std::path::{Path, PathBuf};

use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use sekisho_store::Checkpoint;

use crate::chain::checkpoint_message;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read or write audit key `{path}`: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("audit key `{0}` is malformed")]
    Malformed(PathBuf),
}

/// The key that signs checkpoints.
#[derive(Clone)]
pub struct AuditKey {
    key: SigningKey,
}

impl std::fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AuditKey({})", self.key_id())
    }
}

impl AuditKey {
    pub fn generate() -> Self {
        AuditKey { key: SigningKey::generate(&mut rand::rngs::OsRng) }
    }

    /// Loads `dir/audit-key.json`, creating it (and `dir/audit.pub`) on first use.
    pub fn load_or_create(dir: &Path) -> Result<Self, KeyError> {
        let path = dir.join("audit-key.json");
        let io = |source| KeyError::Io { path: path.clone(), source };
        let key = match std::fs::read_to_string(&path) {
            Ok(text) => {
                let seed = serde_json::from_str::<serde_json::Value>(&text)
                    .ok()
                    .and_then(|v| v.get("seed").and_then(|s| s.as_str()).and_then(|s| hex::decode(s).ok()))
                    .and_then(|b| <[u8; 32]>::try_from(b).ok())
                    .ok_or_else(|| KeyError::Malformed(path.clone()))?;
                AuditKey { key: SigningKey::from_bytes(&seed) }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = AuditKey::generate();
                let body = serde_json::json!({ "seed": hex::encode(key.key.to_bytes()) }).to_string();
                write_private(&path, body.as_bytes()).map_err(io)?;
                key
            }
            Err(e) => return Err(io(e)),
        };
        let pub_path = dir.join("audit.pub");
        std::fs::write(&pub_path, format!("{}\n", key.key_id()))
            .map_err(|source| KeyError::Io { path: pub_path, source })?;
        Ok(key)
    }

    /// The public half, hex: how checkpoints name their signer.
    pub fn key_id(&self) -> String {
        hex::encode(self.key.verifying_key().to_bytes())
    }

    pub fn verifying_key(&self) -> VerifyingKey {
        self.key.verifying_key()
    }

    /// Fills in `key_id` and `signature`.
    pub fn sign(&self, c: &mut Checkpoint) {
        c.key_id = self.key_id();
        c.signature = hex::encode(self.key.sign(&checkpoint_message(c)).to_bytes());
    }
}

/// Reads a public key written as hex (the content of `audit.pub`).
pub fn load_public_key(path: &Path) -> Result<VerifyingKey, KeyError> {
    let text = std::fs::read_to_string(path).map_err(|source| KeyError::Io { path: path.to_owned(), source })?;
    parse_public_key(text.trim()).ok_or_else(|| KeyError::Malformed(path.to_owned()))
}

pub(crate) fn parse_public_key(hex_text: &str) -> Option<VerifyingKey> {
    let bytes = <[u8; 32]>::try_from(hex::decode(hex_text).ok()?).ok()?;
    VerifyingKey::from_bytes(&bytes).ok()
}

fn write_private(path: &Path, body: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    opts.open(path)?.write_all(body)
}
