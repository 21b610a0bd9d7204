//! File-operation evidence from SFTP ([`SftpTracker`]) and legacy scp ([`ScpTracker`]) sessions.
//!
//! Both trackers read the bytes the bastion forwards in each direction, in any split, and emit
//! one [`FileOp`] per operation once its outcome is known. Content is hashed as it streams past
//! and never buffered. Anything a tracker cannot parse ends its tracking of that stream with
//! one `"malformed"` record rather than a guess.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

mod scp;
mod sftp;

pub use scp::ScpTracker;
pub use sftp::SftpTracker;

/// One file operation seen in a session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileOp {
    /// Seconds since the session started when the outcome became known (the reply, the end of
    /// the transfer, or the end of the session for operations left open).
    pub t: f64,
    /// `read`, `write`, `open` (opened, nothing moved), `remove`, `rename`, `mkdir`, `rmdir`,
    /// `setstat`, `symlink`, `link`, `error` (a message from scp, in `path`) or `malformed`
    /// (the tracker stopped; why is in `path`).
    pub op: String,
    /// The file or directory; for `symlink` and `link`, the new link.
    pub path: String,
    /// The new name of a `rename`; the existing target of a `symlink` or `link`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// Bytes moved, or the size set by `setstat`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// Hex SHA-256 of the content moved, when it moved in order from offset 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// Whether the server reported success; `None` when no answer was seen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ok: Option<bool>,
}

impl FileOp {
    fn new(t: f64, op: &str, path: impl Into<String>) -> Self {
        FileOp { t, op: op.to_owned(), path: path.into(), to: None, size: None, sha256: None, ok: None }
    }
}

/// Bytes moved for one file, hashed while they arrive in order from offset 0.
#[derive(Debug, Clone, Default)]
struct Progress {
    bytes: u64,
    next: u64,
    hash: Sha256,
    out_of_order: bool,
}

impl Progress {
    fn add(&mut self, offset: u64, data: &[u8]) {
        self.bytes = self.bytes.saturating_add(data.len() as u64);
        if offset != self.next {
            self.out_of_order = true;
        }
        if !self.out_of_order {
            self.hash.update(data);
            self.next = offset.saturating_add(data.len() as u64);
        }
    }

    /// Gives up on the hash: some bytes moved that the tracker did not see.
    fn lose(&mut self) {
        self.out_of_order = true;
    }

    fn sha256(&self) -> Option<String> {
        (!self.out_of_order).then(|| hex::encode(self.hash.clone().finalize()))
    }
}
