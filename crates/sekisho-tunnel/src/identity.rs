//! An agent's long-lived identity: an Ed25519 key that proves the agent to the relay, and an
//! X25519 static key that other agents use for end-to-end Noise sessions.

use std::fmt;
use std::path::Path;

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};

/// Label for the TLS keying-material exporter that binds an agent's signature to one connection.
pub const EXPORTER_LABEL: &[u8] = b"EXPORTER-sekisho-agent-auth";

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("cannot read identity file `{path}`: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("cannot write identity file `{path}`: {source}")]
    Write { path: String, source: std::io::Error },
    #[error("identity file `{0}` is corrupt")]
    Corrupt(String),
    #[error("cannot generate noise key: {0}")]
    Noise(String),
}

/// The agent's two secret keys. `Debug` never prints them.
pub struct AgentKeys {
    signing: SigningKey,
    noise_secret: [u8; 32],
    noise_public: [u8; 32],
}

impl fmt::Debug for AgentKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AgentKeys")
            .field("sign_pub", &hex::encode(self.signing.verifying_key().as_bytes()))
            .field("noise_pub", &hex::encode(self.noise_public))
            .field("secrets", &"MASKED")
            .finish()
    }
}

#[derive(Serialize, Deserialize)]
struct KeyFile {
    sign_secret: String,
    noise_secret: String,
    noise_public: String,
}

impl Drop for AgentKeys {
    /// The Noise secret is wiped (the signing key wipes itself).
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.noise_secret);
    }
}

impl AgentKeys {
    pub fn generate() -> Result<Self, IdentityError> {
        let signing = SigningKey::generate(&mut rand::rngs::OsRng);
        let kp = crate::e2e::generate_static().map_err(|e| IdentityError::Noise(e.to_string()))?;
        Ok(AgentKeys { signing, noise_secret: kp.0, noise_public: kp.1 })
    }

    /// Loads the keys from `path`, or generates and saves new ones (mode 0600) if it is absent.
    pub fn load_or_generate(path: &Path) -> Result<Self, IdentityError> {
        let shown = path.display().to_string();
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let file: KeyFile = serde_json::from_str(&text).map_err(|_| IdentityError::Corrupt(shown.clone()))?;
                let sign: [u8; 32] =
                    decode32(&file.sign_secret).ok_or_else(|| IdentityError::Corrupt(shown.clone()))?;
                let noise_secret = decode32(&file.noise_secret).ok_or_else(|| IdentityError::Corrupt(shown.clone()))?;
                let noise_public = decode32(&file.noise_public).ok_or(IdentityError::Corrupt(shown))?;
                Ok(AgentKeys { signing: SigningKey::from_bytes(&sign), noise_secret, noise_public })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let keys = Self::generate()?;
                let file = KeyFile {
                    sign_secret: hex::encode(keys.signing.to_bytes()),
                    noise_secret: hex::encode(keys.noise_secret),
                    noise_public: hex::encode(keys.noise_public),
                };
                let text = serde_json::to_string_pretty(&file).map_err(|_| IdentityError::Corrupt(shown.clone()))?;
                write_private(path, text.as_bytes()).map_err(|source| IdentityError::Write { path: shown, source })?;
                Ok(keys)
            }
            Err(source) => Err(IdentityError::Read { path: shown, source }),
        }
    }

    pub fn sign_public(&self) -> [u8; 32] {
        self.signing.verifying_key().to_bytes()
    }

    pub fn noise_public(&self) -> [u8; 32] {
        self.noise_public
    }

    pub fn noise_secret(&self) -> &[u8; 32] {
        &self.noise_secret
    }

    pub fn sign(&self, msg: &[u8]) -> [u8; 64] {
        self.signing.sign(msg).to_bytes()
    }
}

/// Checks an agent's signature over the connection's exported keying material.
pub fn verify(sign_public: &[u8], msg: &[u8], signature: &[u8]) -> bool {
    let Ok(pk) = <[u8; 32]>::try_from(sign_public) else {
        return false;
    };
    let Ok(key) = VerifyingKey::from_bytes(&pk) else {
        return false;
    };
    let Ok(sig) = <[u8; 64]>::try_from(signature) else {
        return false;
    };
    key.verify(msg, &Signature::from_bytes(&sig)).is_ok()
}

pub fn decode32(s: &str) -> Option<[u8; 32]> {
    hex::decode(s).ok()?.try_into().ok()
}

/// Writes a file readable only by its owner.
pub fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    opts.mode(0o600);
    let mut f = opts.open(path)?;
    f.write_all(data)?;
    f.sync_all()
}

/// An enrollment token as given to `sekisho agent --token`: `skt1.<secret>.<CA fingerprint>`.
/// One string both authorises the agent once and tells it which relay CA to trust.
#[derive(Clone)]
pub struct EnrollmentToken {
    pub secret: String,
    pub ca_fingerprint: [u8; 32],
}

impl fmt::Debug for EnrollmentToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EnrollmentToken").field("secret", &"MASKED").finish_non_exhaustive()
    }
}

impl EnrollmentToken {
    pub fn format(secret: &str, ca_fingerprint: &[u8; 32]) -> String {
        use base64::Engine;
        format!("skt1.{secret}.{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(ca_fingerprint))
    }

    /// Parses a token; `None` if it is not in the `skt1.` format.
    pub fn parse(text: &str) -> Option<Self> {
        use base64::Engine;
        let mut parts = text.trim().split('.');
        if parts.next()? != "skt1" {
            return None;
        }
        let secret = parts.next()?.to_owned();
        let fp = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(parts.next()?).ok()?;
        if parts.next().is_some() || secret.len() < 32 {
            return None;
        }
        Some(EnrollmentToken { secret, ca_fingerprint: fp.try_into().ok()? })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_roundtrip_and_reject_garbage() {
        let fp = [7u8; 32];
        let text = EnrollmentToken::format("abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG", &fp);
        let t = EnrollmentToken::parse(&text).unwrap();
        assert_eq!(t.ca_fingerprint, fp);
        assert!(!format!("{t:?}").contains("abcdef"));
        assert!(EnrollmentToken::parse("hello").is_none());
        assert!(EnrollmentToken::parse("skt1.short.AAAA").is_none());
        assert!(EnrollmentToken::parse(&format!("{text}.extra")).is_none());
    }

    #[test]
    fn signatures_verify_only_with_the_right_key_and_message() {
        let k = AgentKeys::generate().unwrap();
        let sig = k.sign(b"exporter");
        assert!(verify(&k.sign_public(), b"exporter", &sig));
        assert!(!verify(&k.sign_public(), b"other", &sig));
        assert!(!verify(&[0u8; 31], b"exporter", &sig));
    }
}
