//! What an agent keeps in its state directory: its keys (`keys.json`, mode 0600) and, once
//! enrolled, its id, the relay it belongs to and the relay's CA (`agent.json`).

use std::path::{Path, PathBuf};

use sekisho_tunnel::identity::{AgentKeys, IdentityError, write_private};
use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot create state directory `{path}`: {source}")]
    Dir { path: String, source: std::io::Error },
    #[error(transparent)]
    Identity(#[from] IdentityError),
    #[error("state file `{0}` is corrupt; remove it to enroll again")]
    Corrupt(String),
    #[error("cannot write `{path}`: {source}")]
    Write { path: String, source: std::io::Error },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Enrollment {
    pub agent_id: String,
    pub name: String,
    pub relay: String,
    pub ca_pem: String,
}

pub struct AgentState {
    pub keys: AgentKeys,
    pub enrollment: Option<Enrollment>,
    path: PathBuf,
}

impl AgentState {
    pub fn load(dir: &Path) -> Result<Self, StateError> {
        std::fs::create_dir_all(dir).map_err(|source| StateError::Dir { path: dir.display().to_string(), source })?;
        let keys = AgentKeys::load_or_generate(&dir.join("keys.json"))?;
        let path = dir.join("agent.json");
        let enrollment = match std::fs::read_to_string(&path) {
            Ok(text) => Some(serde_json::from_str(&text).map_err(|_| StateError::Corrupt(path.display().to_string()))?),
            Err(_) => None,
        };
        Ok(AgentState { keys, enrollment, path })
    }

    pub fn save_enrollment(&mut self, e: Enrollment) -> Result<(), StateError> {
        let text =
            serde_json::to_string_pretty(&e).map_err(|_| StateError::Corrupt(self.path.display().to_string()))?;
        write_private(&self.path, text.as_bytes())
            .map_err(|source| StateError::Write { path: self.path.display().to_string(), source })?;
        self.enrollment = Some(e);
        Ok(())
    }
}
