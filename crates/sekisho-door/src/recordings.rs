//! Recorded sessions (the bastion's): where their sealed files are, and the ones in progress, for
//! the API's live view and termination.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

/// The sealed recording file of `id`.
pub fn cast_path(recordings: &std::path::Path, id: &str) -> std::path::PathBuf {
    recordings.join(format!("{id}.cast.sealed"))
}

/// A session in progress, as auditors see it: its lines as they are recorded, and a way to end it.
pub struct Live {
    pub id: String,
    pub tenant: String,
    /// The asciicast header line, for viewers joining late.
    pub header: Vec<u8>,
    pub lines: broadcast::Sender<Bytes>,
    pub cancel: CancellationToken,
    ended_by: parking_lot::Mutex<String>,
}

impl Live {
    /// A session in progress; `cancel` ends it.
    pub fn new(id: String, tenant: String, header: Vec<u8>, cancel: CancellationToken) -> Self {
        Live {
            id,
            tenant,
            header,
            lines: broadcast::channel(1024).0,
            cancel,
            ended_by: parking_lot::Mutex::new("session terminated".into()),
        }
    }

    /// Ends the session, saying who did.
    pub fn terminate(&self, by: &str) {
        *self.ended_by.lock() = format!("session terminated by auditor {by}");
        self.cancel.cancel();
    }

    /// Ends the session when the gate revokes its permit (a change denies the user the target).
    pub fn end_when_revoked(self: &Arc<Self>, revoked: CancellationToken) {
        let live = self.clone();
        tokio::spawn(async move {
            tokio::select! {
                () = revoked.cancelled() => {
                    *live.ended_by.lock() = "access ended by a change: the policy or the user's groups deny it now".into();
                    live.cancel.cancel();
                }
                () = live.cancel.cancelled() => {}
            }
        });
    }

    pub fn ended_by(&self) -> String {
        self.ended_by.lock().clone()
    }
}

/// Sessions in progress, by recording id, for live view and termination.
#[derive(Default)]
pub struct LiveSessions {
    live: parking_lot::Mutex<HashMap<String, Arc<Live>>>,
}

impl LiveSessions {
    pub fn get(&self, tenant: &str, id: &str) -> Option<Arc<Live>> {
        self.live.lock().get(id).filter(|l| l.tenant == tenant).cloned()
    }

    pub fn insert(&self, live: Arc<Live>) {
        self.live.lock().insert(live.id.clone(), live);
    }

    pub fn remove(&self, id: &str) {
        self.live.lock().remove(id);
    }
}
