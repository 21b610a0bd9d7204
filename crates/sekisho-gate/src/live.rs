//! The open permits, with what each was decided from, for live re-decision.

use sekisho_store::TenantId;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;

use crate::input::{Attempt, Resource, Subject};

pub(crate) type LiveId = u64;

type Entries = HashMap<LiveId, (Attempt, Resource, CancellationToken)>;

#[derive(Debug, Default)]
pub(crate) struct Registry {
    entries: Arc<Mutex<Entries>>,
    next: AtomicU64,
}

/// Lets a permit remove itself when it ends.
#[derive(Debug, Clone)]
pub(crate) struct Handle(Arc<Mutex<Entries>>);

impl Handle {
    pub(crate) fn remove(&self, id: LiveId) {
        self.0.lock().remove(&id);
    }
}

impl Registry {
    pub(crate) fn add(&self, attempt: Attempt, resource: Resource, revoked: CancellationToken) -> LiveId {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        self.entries.lock().insert(id, (attempt, resource, revoked));
        id
    }

    pub(crate) fn handle(&self) -> Handle {
        Handle(self.entries.clone())
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.lock().len()
    }

    /// A copy of every entry, taken under the lock and decided outside it.
    pub(crate) fn snapshot(&self) -> Vec<(Attempt, Resource, CancellationToken)> {
        self.entries.lock().values().cloned().collect()
    }

    pub(crate) fn credentials(&self) -> Vec<(TenantId, String)> {
        let mut out: Vec<(TenantId, String)> = self
            .entries
            .lock()
            .values()
            .filter_map(|(a, _, _)| a.credential.clone().map(|c| (a.tenant.clone(), c)))
            .collect();
        out.sort();
        out.dedup();
        out
    }

    pub(crate) fn users(&self) -> Vec<(TenantId, String)> {
        let mut users: Vec<(TenantId, String)> = self
            .entries
            .lock()
            .values()
            .filter_map(|(a, _, _)| match &a.subject {
                Subject::User { name, .. } => Some((a.tenant.clone(), name.clone())),
                _ => None,
            })
            .collect();
        users.sort();
        users.dedup();
        users
    }
}
