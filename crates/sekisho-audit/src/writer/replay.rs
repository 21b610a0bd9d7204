//! At start: the events a crash left in the relay's audit journal are committed before anything
//! else is recorded ([`crate::journal`]).

use sekisho_store::AuditRecord;

use super::{AuditError, Writer};
use crate::journal::{self, Journal, JournalConfig};

impl Writer {
    /// Commits the events a crash left in the journal of `jc` (those above the committed mark),
    /// deletes its segments and starts it again; says what it found, for the chains of the
    /// tenants concerned.
    pub(super) async fn replay_journal(
        &mut self,
        jc: &JournalConfig,
    ) -> Result<(Journal, Option<(Vec<String>, String)>), AuditError> {
        let unavailable = |e: std::io::Error| {
            AuditError::Unavailable(format!("cannot read the audit journal {}: {e}", jc.dir.display()))
        };
        let found = journal::read(&jc.dir).map_err(unavailable)?;
        let committed = self.store.journal_mark(&jc.relay).await?.max(0) as u64;
        let pending: Vec<(u64, AuditRecord)> = found.records.into_iter().filter(|(j, _)| *j > committed).collect();
        let last = pending.last().map(|(j, _)| *j).unwrap_or(committed);
        let mut tenants: Vec<String> = pending.iter().map(|(_, r)| r.tenant_id.clone()).collect();
        tenants.sort();
        tenants.dedup();
        let count = pending.len();
        for chunk in pending.chunks(self.config.max_batch.max(1)) {
            let mut batch: Vec<AuditRecord> = chunk.iter().map(|(_, r)| r.clone()).collect();
            self.mark = chunk.last().map(|(j, _)| *j);
            self.commit(&mut batch).await?;
        }
        for path in &found.segments {
            if let Err(e) = std::fs::remove_file(path) {
                return Err(unavailable(e));
            }
        }
        let journal = Journal::start(&jc.dir, last + 1).map_err(unavailable)?;
        if !found.unreadable.is_empty() {
            tracing::warn!(lines = ?found.unreadable, "audit journal lines that could not be read (cut short by a crash: never acknowledged)");
        }
        let report = (count > 0 || !found.unreadable.is_empty()).then(|| {
            (
                tenants,
                format!(
                    "audit journal: {count} event(s) written to the journal before the relay stopped were committed at start{}",
                    if found.unreadable.is_empty() {
                        String::new()
                    } else {
                        format!("; {} line(s) cut short were skipped (never acknowledged)", found.unreadable.len())
                    }
                ),
            )
        });
        Ok((journal, report))
    }
}
