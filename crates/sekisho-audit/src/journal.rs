//! The audit journal: durable events written ahead of the database.
//!
//! A durable event ([`crate::Auditor::record_durable`]: a stream's `opened` event, a refusal) must
//! be on disk before the caller goes on. Waiting for a database commit made every new connection
//! wait for a transaction (and, on a busy two-core relay, for the database's thread to be
//! scheduled); appending one line to a file is a single `write` on the caller's task. The line
//! holds the event as it will be chained, numbered; the writer commits journaled events at once
//! with whatever else is queued (the caller does not wait for that) and records, in the same transaction, the highest number it committed (table
//! `audit_journal`, one row per relay). A segment whose events are all committed is deleted.
//!
//! **Durability** is the database's own: the file is written without `fsync`, as SQLite's WAL
//! with `synchronous = NORMAL` commits without one. Both survive the relay being killed or
//! crashing; neither survives the machine losing power before the kernel wrote its pages.
//!
//! **After a crash** the relay, when it starts, commits every journaled event numbered above the
//! committed mark (in journal order, chained as usual) before it forwards anything, then deletes
//! the segments. A line cut short by the crash was never acknowledged (the caller hears of its
//! event only after the whole line is written) and is skipped.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use sekisho_store::AuditRecord;
use serde::{Deserialize, Serialize};

/// A segment is closed and a new one started past this size; closed segments whose events are
/// all committed are deleted.
const SEGMENT_BYTES: u64 = 1 << 20;

/// Where a relay keeps its journal, and the name its committed mark is stored under.
#[derive(Debug, Clone)]
pub struct JournalConfig {
    pub dir: PathBuf,
    pub relay: String,
}

#[derive(Deserialize)]
struct Line {
    /// The event's number in this relay's journal.
    j: u64,
    r: AuditRecord,
}

/// A [`Line`] as written (the record borrowed).
#[derive(Serialize)]
struct LineRef<'a> {
    j: u64,
    r: &'a AuditRecord,
}

/// The events found in a journal when the relay started: numbered, in order.
pub(crate) struct Found {
    pub records: Vec<(u64, AuditRecord)>,
    /// Lines that could not be read (cut short by a crash, or damaged), by file.
    pub unreadable: Vec<String>,
    pub segments: Vec<PathBuf>,
}

/// Reads every segment of `dir` in order.
pub(crate) fn read(dir: &Path) -> std::io::Result<Found> {
    let mut found = Found { records: Vec::new(), unreadable: Vec::new(), segments: segments(dir)? };
    for path in &found.segments {
        let text = std::fs::read(path)?;
        for (n, line) in text.split(|b| *b == b'\n').enumerate() {
            if line.is_empty() {
                continue;
            }
            match serde_json::from_slice::<Line>(line) {
                Ok(l) => found.records.push((l.j, l.r)),
                Err(e) => found.unreadable.push(format!("{} line {}: {e}", path.display(), n + 1)),
            }
        }
    }
    found.records.sort_by_key(|(j, _)| *j);
    Ok(found)
}

/// The segment files of `dir`, oldest first.
fn segments(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut out: Vec<(u64, PathBuf)> = Vec::new();
    match std::fs::read_dir(dir) {
        Ok(entries) => {
            for e in entries {
                let path = e?.path();
                let number = path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .and_then(|n| n.strip_suffix(".jsonl"))
                    .and_then(|n| n.parse::<u64>().ok());
                if let Some(number) = number {
                    out.push((number, path));
                }
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    out.sort();
    Ok(out.into_iter().map(|(_, p)| p).collect())
}

/// The open journal: the segment being appended to and the closed ones not yet deleted.
#[derive(Debug)]
pub(crate) struct Journal {
    dir: PathBuf,
    file: File,
    segment: u64,
    bytes: u64,
    /// The number the next event gets.
    next: u64,
    /// Closed segments and the highest event number in each.
    closed: VecDeque<(PathBuf, u64)>,
}

impl Journal {
    /// Starts an empty journal in `dir` (created, private to the relay's user) whose first event
    /// is numbered `next`. The caller has committed and deleted whatever was there.
    pub(crate) fn start(dir: &Path, next: u64) -> std::io::Result<Journal> {
        std::fs::create_dir_all(dir)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
        }
        let segment = next;
        let file = open_segment(dir, segment)?;
        Ok(Journal { dir: dir.to_owned(), file, segment, bytes: 0, next, closed: VecDeque::new() })
    }

    /// Appends one event; returns its number once the whole line is written.
    pub(crate) fn append(&mut self, record: &AuditRecord) -> std::io::Result<u64> {
        if self.bytes >= SEGMENT_BYTES {
            let segment = self.next;
            let file = open_segment(&self.dir, segment)?;
            let old = std::mem::replace(&mut self.file, file);
            drop(old);
            self.closed.push_back((segment_path(&self.dir, self.segment), self.next - 1));
            self.segment = segment;
            self.bytes = 0;
        }
        let j = self.next;
        let mut line = serde_json::to_vec(&LineRef { j, r: record }).map_err(std::io::Error::other)?;
        line.push(b'\n');
        self.file.write_all(&line)?;
        self.next += 1;
        self.bytes += line.len() as u64;
        Ok(j)
    }

    /// Every event up to `upto` is committed: deletes the closed segments that hold nothing newer.
    pub(crate) fn committed(&mut self, upto: u64) {
        while let Some((path, last)) = self.closed.front() {
            if *last > upto {
                break;
            }
            if let Err(e) = std::fs::remove_file(path) {
                tracing::warn!(error = %e, file = %path.display(), "cannot delete a committed audit journal segment");
            }
            self.closed.pop_front();
        }
    }
}

fn segment_path(dir: &Path, segment: u64) -> PathBuf {
    dir.join(format!("{segment:020}.jsonl"))
}

fn open_segment(dir: &Path, segment: u64) -> std::io::Result<File> {
    let mut o = OpenOptions::new();
    o.create(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    o.open(segment_path(dir, segment))
}
