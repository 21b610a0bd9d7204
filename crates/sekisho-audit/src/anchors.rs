//! Anchors outside the database: every signed checkpoint (periodic and prune) is also appended,
//! one JSON line each, to a file the operator can ship elsewhere (`<data-dir>/audit-anchors.jsonl`
//! by default). Someone who can edit the database can delete the newest events together with
//! their checkpoints, and `audit verify` over the database alone could not tell; the anchor file
//! still names the newest signed `(seq, hash)`, so the cut is found.
//!
//! The file is opened for appending only, written whole lines at a time and synced before the
//! writer goes on. A line that does not parse is reported by its number; a line whose signature
//! does not verify is a problem of its tenant.

use std::io::Write;
use std::path::{Path, PathBuf};

use sekisho_store::Checkpoint;

/// The anchor file as read for `audit verify`.
#[derive(Debug, Clone)]
pub struct Anchors {
    /// Where it was read from (for messages).
    pub path: PathBuf,
    /// False when there is no file there: then a tenant with checkpoints in the database is a
    /// problem (the file was deleted).
    pub exists: bool,
    pub checkpoints: Vec<Checkpoint>,
}

impl Anchors {
    /// Reads the file at `path`; a missing file is `exists: false`, not an error.
    pub fn read(path: &Path) -> Result<Anchors, String> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Anchors { path: path.to_owned(), exists: false, checkpoints: Vec::new() });
            }
            Err(e) => return Err(format!("cannot read the anchor file {}: {e}", path.display())),
        };
        let mut checkpoints = Vec::new();
        for (n, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let c: Checkpoint = serde_json::from_str(line).map_err(|e| {
                format!("line {} of the anchor file {} is not a checkpoint: {e}", n + 1, path.display())
            })?;
            checkpoints.push(c);
        }
        Ok(Anchors { path: path.to_owned(), exists: true, checkpoints })
    }

    /// The newest anchor of `tenant` (highest sequence number).
    pub fn newest(&self, tenant: &str) -> Option<&Checkpoint> {
        self.checkpoints.iter().filter(|c| c.tenant_id == tenant).max_by_key(|c| (c.seq, c.at))
    }
}

/// The writer's end: appends checkpoints, one synced line each.
#[derive(Debug, Clone)]
pub struct AnchorLog {
    path: PathBuf,
}

impl AnchorLog {
    pub fn at(path: impl Into<PathBuf>) -> AnchorLog {
        AnchorLog { path: path.into() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn exists(&self) -> bool {
        self.path.exists()
    }

    /// Appends `checkpoints` and syncs them to disk.
    pub fn append(&self, checkpoints: &[Checkpoint]) -> std::io::Result<()> {
        if checkpoints.is_empty() {
            return Ok(());
        }
        let mut text = String::new();
        for c in checkpoints {
            text.push_str(&serde_json::to_string(c).map_err(std::io::Error::other)?);
            text.push('\n');
        }
        let mut options = std::fs::OpenOptions::new();
        options.append(true).create(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&self.path)?;
        file.write_all(text.as_bytes())?;
        file.sync_data()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checkpoint(tenant: &str, seq: i64) -> Checkpoint {
        Checkpoint {
            tenant_id: tenant.into(),
            seq,
            hash: format!("{seq:064x}"),
            at: seq,
            kind: "periodic".into(),
            key_id: "k".into(),
            signature: "s".into(),
        }
    }

    #[test]
    fn appended_lines_read_back_and_the_newest_per_tenant_is_found() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit-anchors.jsonl");
        assert!(!Anchors::read(&path).unwrap().exists, "no file yet");
        let log = AnchorLog::at(&path);
        log.append(&[checkpoint("a", 3), checkpoint("b", 9)]).unwrap();
        log.append(&[checkpoint("a", 7)]).unwrap();
        let read = Anchors::read(&path).unwrap();
        assert!(read.exists);
        assert_eq!(read.newest("a").map(|c| c.seq), Some(7));
        assert_eq!(read.newest("b").map(|c| c.seq), Some(9));
        assert!(read.newest("c").is_none());
        std::fs::write(&path, "{\"tenant_id\": 1}\n").unwrap();
        let e = Anchors::read(&path).unwrap_err();
        assert!(e.contains("line 1 of the anchor file"), "{e}");
    }
}
