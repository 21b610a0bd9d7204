//! Evidence archives: chosen bastion recordings with the audit events that vouch for them, as
//! one tar encrypted with [age](https://age-encryption.org/v1) to a passphrase or to X25519
//! recipients, so they can leave the relay and still be checked anywhere.
//!
//! Inside the age file is a tar with:
//! - `recordings/<id>.cast`: each recording's asciicast, decrypted from its sealed file;
//! - `events.jsonl`: each recording's chained `access` event, and the chain from it up to the
//!   first signed checkpoint after it (the events in between vouch for the link);
//! - `checkpoints.jsonl`: those signed checkpoints;
//! - `manifest.json`, last: what was exported, by whom, the relay's audit key, and the SHA-256
//!   of every other file.
//!
//! [`verify_archive`] trusts nothing in the archive but the checkpoint key given to it: it checks
//! every file against the manifest, every event against its hash and its predecessor, that each
//! recording's event is linked to a checkpoint signed by a trusted key, and that each cast's
//! SHA-256 is the one in its chained event.

use std::collections::BTreeMap;
use std::io::{Read, Write};

use age::secrecy::SecretString;
use ed25519_dalek::{Signature, VerifyingKey};
use sekisho_store::{AuditRow, Checkpoint};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::chain::{checkpoint_message, event_hash};
use crate::keys::parse_public_key;

/// The manifest's `format`.
pub const FORMAT: &str = "sekisho-evidence-v1";
/// The manifest's name inside the tar.
pub const MANIFEST: &str = "manifest.json";
/// The chained events' file.
pub const EVENTS: &str = "events.jsonl";
/// The signed checkpoints' file.
pub const CHECKPOINTS: &str = "checkpoints.jsonl";

/// How an archive is encrypted.
#[derive(Clone)]
pub enum Seal {
    /// scrypt, as `age -p`.
    Passphrase(SecretString),
    /// X25519 recipients (`age1…`), as `age -r`.
    Recipients(Vec<String>),
}

/// How an archive is opened.
#[derive(Clone)]
pub enum Unlock {
    Passphrase(SecretString),
    /// The text of an age identity file (`AGE-SECRET-KEY-1…` lines, as `age-keygen` writes).
    Identities(String),
}

/// What went wrong writing or reading an archive; the message is for the person at the CLI.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("invalid recipient `{0}`: expected an age X25519 recipient (`age1…`)")]
    BadRecipient(String),
    #[error("no recipient or passphrase given")]
    NoRecipient,
    #[error("cannot encrypt: {0}")]
    Encrypt(String),
    #[error("cannot decrypt the archive: {0}")]
    Decrypt(String),
    #[error("not a Sekisho evidence archive: {0}")]
    Format(String),
    #[error("the archive is larger than {0} bytes once decrypted")]
    TooLarge(u64),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// One recording in the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestRecording {
    pub id: String,
    pub user: String,
    pub target: String,
    pub protocol: String,
    pub kind: String,
    pub command: String,
    pub source_ip: String,
    pub started_at: i64,
    pub ended_at: Option<i64>,
    /// The sequence number of the chained event that ends the session.
    pub event_seq: i64,
    /// SHA-256 of the asciicast, as in that event; empty for transfers without a terminal.
    pub sha256: String,
    /// The asciicast's name in the tar, or empty.
    pub file: String,
}

/// `manifest.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    pub created_at: i64,
    pub tenant: String,
    pub exported_by: String,
    /// The relay's audit public key (hex) as the relay states it; [`verify_archive`] trusts it
    /// only when no trusted key is given, and says so.
    pub audit_key: String,
    pub recordings: Vec<ManifestRecording>,
    /// Every other file in the tar and its SHA-256 (hex).
    pub files: BTreeMap<String, String>,
}

/// Writes an archive: add files, then [`ArchiveWriter::finish`] with the manifest.
pub struct ArchiveWriter<W: Write> {
    tar: tar::Builder<age::stream::StreamWriter<W>>,
    files: BTreeMap<String, String>,
    at: u64,
}

/// The age encryptor `seal` asks for (the backups' too).
pub fn encryptor(seal: &Seal) -> Result<age::Encryptor, ArchiveError> {
    Ok(match seal {
        Seal::Passphrase(p) => age::Encryptor::with_user_passphrase(p.clone()),
        Seal::Recipients(list) => {
            let parsed = list
                .iter()
                .map(|r| r.trim().parse::<age::x25519::Recipient>().map_err(|_| ArchiveError::BadRecipient(r.clone())))
                .collect::<Result<Vec<_>, _>>()?;
            if parsed.is_empty() {
                return Err(ArchiveError::NoRecipient);
            }
            age::Encryptor::with_recipients(parsed.iter().map(|r| r as &dyn age::Recipient))
                .map_err(|e| ArchiveError::Encrypt(e.to_string()))?
        }
    })
}

fn sha_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

impl<W: Write> ArchiveWriter<W> {
    /// Starts an archive written to `out`, encrypted as `seal` says; `created_at_secs` dates the
    /// tar entries.
    pub fn new(out: W, seal: &Seal, created_at_secs: u64) -> Result<Self, ArchiveError> {
        let stream = encryptor(seal)?.wrap_output(out)?;
        Ok(ArchiveWriter { tar: tar::Builder::new(stream), files: BTreeMap::new(), at: created_at_secs })
    }

    fn append(&mut self, name: &str, data: &[u8]) -> Result<(), ArchiveError> {
        let mut header = tar::Header::new_ustar();
        header.set_size(data.len() as u64);
        header.set_mode(0o600);
        header.set_mtime(self.at);
        header.set_entry_type(tar::EntryType::Regular);
        self.tar.append_data(&mut header, name, data)?;
        Ok(())
    }

    /// Adds a file and remembers its hash for the manifest.
    pub fn add(&mut self, name: &str, data: &[u8]) -> Result<(), ArchiveError> {
        self.append(name, data)?;
        self.files.insert(name.to_owned(), sha_hex(data));
        Ok(())
    }

    /// Writes the manifest (with the hashes of every file added) and ends the encryption.
    pub fn finish(mut self, mut manifest: Manifest) -> Result<W, ArchiveError> {
        manifest.format = FORMAT.to_owned();
        manifest.files = std::mem::take(&mut self.files);
        let text = serde_json::to_vec_pretty(&manifest).map_err(|e| ArchiveError::Format(e.to_string()))?;
        self.append(MANIFEST, &text)?;
        let stream = self.tar.into_inner()?;
        Ok(stream.finish()?)
    }
}

/// Events and checkpoints as JSON lines, for [`ArchiveWriter::add`].
pub fn json_lines<T: Serialize>(items: &[T]) -> Vec<u8> {
    let mut out = Vec::new();
    for i in items {
        if let Ok(line) = serde_json::to_vec(i) {
            out.extend_from_slice(&line);
            out.push(b'\n');
        }
    }
    out
}

/// An archive's decrypted content.
#[derive(Debug)]
pub struct Contents {
    pub manifest: Manifest,
    /// Every file but the manifest.
    pub files: BTreeMap<String, Vec<u8>>,
}

/// Decrypts and unpacks an archive, refusing more than `max_bytes` of content.
pub fn open_archive(input: impl Read, unlock: &Unlock, max_bytes: u64) -> Result<Contents, ArchiveError> {
    let reader = decrypt(input, unlock)?;
    read_tar(reader, max_bytes)
}

/// The decrypted stream of an age file (the backups' too), opened as `unlock` says.
pub fn decrypt<R: Read>(input: R, unlock: &Unlock) -> Result<impl Read + use<R>, ArchiveError> {
    let decryptor = age::Decryptor::new(input).map_err(|e| ArchiveError::Decrypt(e.to_string()))?;
    let reader = match unlock {
        Unlock::Passphrase(p) => {
            if !decryptor.is_scrypt() {
                return Err(ArchiveError::Decrypt(
                    "it is encrypted to recipients, not a passphrase: give an identity file".into(),
                ));
            }
            let identity = age::scrypt::Identity::new(p.clone());
            decryptor.decrypt(std::iter::once(&identity as &dyn age::Identity))
        }
        Unlock::Identities(text) => {
            if decryptor.is_scrypt() {
                return Err(ArchiveError::Decrypt("it is encrypted to a passphrase, not to a recipient".into()));
            }
            let ids = age::IdentityFile::from_buffer(text.as_bytes())
                .map_err(|e| ArchiveError::Decrypt(format!("identity file: {e}")))?
                .into_identities()
                .map_err(|e| ArchiveError::Decrypt(format!("identity file: {e}")))?;
            decryptor.decrypt(ids.iter().map(|i| i.as_ref() as &dyn age::Identity))
        }
    }
    .map_err(|e| ArchiveError::Decrypt(e.to_string()))?;
    Ok(reader)
}

fn read_tar(reader: impl Read, max_bytes: u64) -> Result<Contents, ArchiveError> {
    let mut tar = tar::Archive::new(reader);
    let mut files = BTreeMap::new();
    let mut manifest = None;
    // Each entry costs its size and its 512-byte header, so many empty entries are bounded too.
    let mut total: u64 = 0;
    for entry in tar.entries().map_err(|e| ArchiveError::Format(e.to_string()))? {
        let mut entry = entry.map_err(|e| ArchiveError::Format(e.to_string()))?;
        total = total.saturating_add(entry.size()).saturating_add(512);
        if total > max_bytes {
            return Err(ArchiveError::TooLarge(max_bytes));
        }
        let name = entry.path().map_err(|e| ArchiveError::Format(e.to_string()))?.to_string_lossy().into_owned();
        let mut data = Vec::new();
        entry.read_to_end(&mut data).map_err(|e| ArchiveError::Decrypt(e.to_string()))?;
        if name == MANIFEST {
            manifest = Some(
                serde_json::from_slice::<Manifest>(&data)
                    .map_err(|e| ArchiveError::Format(format!("{MANIFEST}: {e}")))?,
            );
        } else if files.insert(name.clone(), data).is_some() {
            return Err(ArchiveError::Format(format!("`{name}` appears twice")));
        }
    }
    let manifest = manifest.ok_or_else(|| ArchiveError::Format(format!("no {MANIFEST}")))?;
    if manifest.format != FORMAT {
        return Err(ArchiveError::Format(format!("format `{}`, expected `{FORMAT}`", manifest.format)));
    }
    Ok(Contents { manifest, files })
}

/// One recording's result.
#[derive(Debug, Clone, Serialize)]
pub struct RecordingCheck {
    pub id: String,
    pub ok: bool,
    pub message: String,
}

/// What [`verify_archive`] found.
#[derive(Debug, Clone, Serialize)]
pub struct ArchiveReport {
    pub ok: bool,
    pub tenant: String,
    pub created_at: i64,
    pub exported_by: String,
    /// Whether checkpoints were checked against a key given by the verifier (not only the key
    /// the archive names).
    pub key_trusted: bool,
    pub events: usize,
    pub checkpoints: usize,
    pub recordings: Vec<RecordingCheck>,
    /// Problems with the archive as a whole.
    pub problems: Vec<String>,
}

fn parse_lines<T: for<'de> Deserialize<'de>>(name: &str, data: &[u8]) -> Result<Vec<T>, String> {
    let text = std::str::from_utf8(data).map_err(|_| format!("{name} is not UTF-8"))?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, l)| serde_json::from_str(l).map_err(|e| format!("{name} line {}: {e}", i + 1)))
        .collect()
}

/// The JSON lines of file `name` (none if it is absent); a malformed line is a problem.
fn lines_of<T: for<'de> Deserialize<'de>>(c: &Contents, name: &str, problems: &mut Vec<String>) -> Vec<T> {
    match c.files.get(name).map(|d| parse_lines(name, d)) {
        Some(Ok(items)) => items,
        Some(Err(e)) => {
            problems.push(e);
            Vec::new()
        }
        None => Vec::new(),
    }
}

/// Checks an opened archive against `trusted` checkpoint keys (or, when none is given, the key
/// the manifest names, reported as not independently trusted).
pub fn verify_archive(c: &Contents, trusted: &[VerifyingKey]) -> ArchiveReport {
    let m = &c.manifest;
    let mut report = ArchiveReport {
        ok: false,
        tenant: m.tenant.clone(),
        created_at: m.created_at,
        exported_by: m.exported_by.clone(),
        key_trusted: !trusted.is_empty(),
        events: 0,
        checkpoints: 0,
        recordings: Vec::new(),
        problems: Vec::new(),
    };
    // Every file is listed with its hash, and nothing else is in the tar.
    for (name, want) in &m.files {
        match c.files.get(name) {
            None => report.problems.push(format!("`{name}` is listed in the manifest but missing")),
            Some(data) if sha_hex(data) != *want => {
                report.problems.push(format!("`{name}` does not match its SHA-256 in the manifest"));
            }
            Some(_) => {}
        }
    }
    for name in c.files.keys() {
        if !m.files.contains_key(name) {
            report.problems.push(format!("`{name}` is in the archive but not in the manifest"));
        }
    }
    let events: Vec<AuditRow> = lines_of(c, EVENTS, &mut report.problems);
    let checkpoints: Vec<Checkpoint> = lines_of(c, CHECKPOINTS, &mut report.problems);
    report.events = events.len();
    report.checkpoints = checkpoints.len();

    let own_key: Vec<VerifyingKey> = parse_public_key(&m.audit_key).into_iter().collect();
    let keys = if trusted.is_empty() { &own_key[..] } else { trusted };
    // Events by sequence number, each matching its own hash and of the archive's tenant.
    let mut by_seq: BTreeMap<i64, &AuditRow> = BTreeMap::new();
    for row in &events {
        if row.record.tenant_id != m.tenant {
            report.problems.push(format!("event #{} belongs to another tenant", row.seq));
        } else if event_hash(&row.prev_hash, row.seq, &row.record) != row.hash {
            report.problems.push(format!("event #{} does not match its hash (it was altered)", row.seq));
        } else {
            by_seq.insert(row.seq, row);
        }
    }
    // Checkpoints signed by a trusted key, of this tenant, that match the event at their place.
    let mut signed: BTreeMap<i64, &Checkpoint> = BTreeMap::new();
    for cp in &checkpoints {
        let key = parse_public_key(&cp.key_id).filter(|k| keys.contains(k));
        let sig = hex::decode(&cp.signature).ok().and_then(|b| Signature::from_slice(&b).ok());
        let good = match (key, sig) {
            (Some(k), Some(s)) => k.verify_strict(&checkpoint_message(cp), &s).is_ok(),
            _ => false,
        };
        if !good || cp.tenant_id != m.tenant {
            report.problems.push(format!("checkpoint at #{} is not signed by a trusted key", cp.seq));
        } else if by_seq.get(&cp.seq).is_some_and(|row| row.hash != cp.hash) {
            report.problems.push(format!("event #{} differs from the signed checkpoint", cp.seq));
        } else {
            signed.insert(cp.seq, cp);
        }
    }
    for r in &m.recordings {
        let check = check_recording(r, c, &by_seq, &signed);
        report.recordings.push(RecordingCheck {
            id: r.id.clone(),
            ok: check.is_ok(),
            message: check.unwrap_or_else(|e| e),
        });
    }
    if m.recordings.is_empty() {
        report.problems.push("the archive holds no recordings".into());
    }
    report.ok = report.problems.is_empty() && report.recordings.iter().all(|r| r.ok);
    report
}

/// Ok(summary) when the recording's event is chained to a signed checkpoint and its cast has
/// the hash that event states.
fn check_recording(
    r: &ManifestRecording,
    c: &Contents,
    by_seq: &BTreeMap<i64, &AuditRow>,
    signed: &BTreeMap<i64, &Checkpoint>,
) -> Result<String, String> {
    let event = by_seq.get(&r.event_seq).ok_or_else(|| format!("its event #{} is missing or altered", r.event_seq))?;
    let detail: serde_json::Value = serde_json::from_str(&event.record.detail).unwrap_or_default();
    if detail["recording"].as_str() != Some(r.id.as_str()) {
        return Err(format!("event #{} is not this recording's event", r.event_seq));
    }
    let chained_sha = detail["sha256"].as_str().unwrap_or_default();
    if chained_sha != r.sha256 {
        return Err(format!("the manifest's SHA-256 differs from the one in event #{}", r.event_seq));
    }
    if !r.file.is_empty() {
        let data = c.files.get(&r.file).ok_or_else(|| format!("`{}` is missing", r.file))?;
        if sha_hex(data) != chained_sha {
            return Err(format!("`{}` differs from the SHA-256 chained in event #{}", r.file, r.event_seq));
        }
    }
    // Follow the chain from the event to the first signed checkpoint at or after it.
    let Some((&cp_seq, _)) = signed.range(r.event_seq..).next() else {
        return Err(format!("event #{} is not covered by a signed checkpoint in the archive", r.event_seq));
    };
    let mut prev = &event.hash;
    for seq in r.event_seq + 1..=cp_seq {
        let row = by_seq
            .get(&seq)
            .ok_or_else(|| format!("event #{seq} between the recording and its checkpoint is missing or altered"))?;
        if &row.prev_hash != prev {
            return Err(format!("event #{seq} does not follow event #{}", seq - 1));
        }
        prev = &row.hash;
    }
    Ok(format!("event #{} chained to the checkpoint at #{cp_seq}", r.event_seq))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::AuditKey;
    use sekisho_store::AuditRecord;

    fn chain(tenant: &str, details: &[String]) -> Vec<AuditRow> {
        let mut prev = crate::chain::GENESIS.to_owned();
        details
            .iter()
            .enumerate()
            .map(|(i, d)| {
                let record = AuditRecord {
                    tenant_id: tenant.into(),
                    at: 1_000 + i as i64,
                    kind: "access".into(),
                    path: "ssh".into(),
                    detail: d.clone(),
                    ..AuditRecord::default()
                };
                let seq = i as i64 + 1;
                let hash = event_hash(&prev, seq, &record);
                let row = AuditRow { seq, record, prev_hash: prev.clone(), hash: hash.clone() };
                prev = hash;
                row
            })
            .collect()
    }

    struct Fixture {
        key: AuditKey,
        cast: Vec<u8>,
        events: Vec<AuditRow>,
        checkpoint: Checkpoint,
        manifest: Manifest,
    }

    fn fixture() -> Fixture {
        let key = AuditKey::generate();
        let cast = b"{\"version\":2,\"width\":80,\"height\":24}\n[0.1,\"o\",\"hello\"]\n".to_vec();
        let detail = serde_json::json!({"recording": "rec_1", "sha256": sha_hex(&cast)}).to_string();
        let events = chain("t1", &["{}".into(), detail, "{}".into(), "{}".into()]);
        let mut checkpoint = Checkpoint {
            tenant_id: "t1".into(),
            seq: 4,
            hash: events[3].hash.clone(),
            at: 2_000,
            kind: "periodic".into(),
            key_id: String::new(),
            signature: String::new(),
        };
        key.sign(&mut checkpoint);
        let manifest = Manifest {
            format: String::new(),
            created_at: 3_000,
            tenant: "t1".into(),
            exported_by: "auditor".into(),
            audit_key: key.key_id(),
            recordings: vec![ManifestRecording {
                id: "rec_1".into(),
                user: "alice".into(),
                target: "web01".into(),
                protocol: "ssh".into(),
                kind: "shell".into(),
                command: String::new(),
                source_ip: "127.0.0.1".into(),
                started_at: 1,
                ended_at: Some(2),
                event_seq: 2,
                sha256: sha_hex(&cast),
                file: "recordings/rec_1.cast".into(),
            }],
            files: BTreeMap::new(),
        };
        Fixture { key, cast, events, checkpoint, manifest }
    }

    fn write(f: &Fixture, seal: &Seal, cast: &[u8], events: &[AuditRow]) -> Vec<u8> {
        let mut w = ArchiveWriter::new(Vec::new(), seal, 3).unwrap();
        w.add("recordings/rec_1.cast", cast).unwrap();
        w.add(EVENTS, &json_lines(events)).unwrap();
        w.add(CHECKPOINTS, &json_lines(std::slice::from_ref(&f.checkpoint))).unwrap();
        w.finish(f.manifest.clone()).unwrap()
    }

    fn passphrase() -> SecretString {
        SecretString::from("correct horse battery staple".to_owned())
    }

    #[test]
    fn an_archive_to_a_recipient_round_trips_and_verifies_against_the_trusted_key() {
        let f = fixture();
        let id = age::x25519::Identity::generate();
        let sealed = write(&f, &Seal::Recipients(vec![id.to_public().to_string()]), &f.cast, &f.events);
        let unlock =
            Unlock::Identities(format!("# test\n{}\n", age::secrecy::ExposeSecret::expose_secret(&id.to_string())));
        let c = open_archive(&sealed[..], &unlock, 1 << 20).unwrap();
        let r = verify_archive(&c, &[f.key.verifying_key()]);
        assert!(r.ok && r.key_trusted, "{r:?}");
        assert_eq!((r.events, r.checkpoints, r.recordings.len()), (4, 1, 1));
        assert!(r.recordings[0].message.contains("#2") && r.recordings[0].message.contains("#4"), "{r:?}");
        // Without a trusted key the archive's own key is used, and the report says so.
        let r = verify_archive(&c, &[]);
        assert!(r.ok && !r.key_trusted);
        // A key the verifier trusts that did not sign the checkpoint fails.
        let r = verify_archive(&c, &[AuditKey::generate().verifying_key()]);
        assert!(!r.ok && r.problems.iter().any(|p| p.contains("not signed by a trusted key")), "{r:?}");
        assert!(matches!(open_archive(&sealed[..], &unlock, 600), Err(ArchiveError::TooLarge(600))));
        // The wrong identity cannot open it.
        let other = age::x25519::Identity::generate();
        let wrong = Unlock::Identities(age::secrecy::ExposeSecret::expose_secret(&other.to_string()).to_owned());
        assert!(matches!(open_archive(&sealed[..], &wrong, 1 << 20), Err(ArchiveError::Decrypt(_))));
    }

    #[test]
    fn a_passphrase_archive_opens_only_with_the_passphrase() {
        let f = fixture();
        let sealed = write(&f, &Seal::Passphrase(passphrase()), &f.cast, &f.events);
        let c = open_archive(&sealed[..], &Unlock::Passphrase(passphrase()), 1 << 20).unwrap();
        assert!(verify_archive(&c, &[f.key.verifying_key()]).ok);
        let bad = Unlock::Passphrase(SecretString::from("wrong".to_owned()));
        assert!(matches!(open_archive(&sealed[..], &bad, 1 << 20), Err(ArchiveError::Decrypt(_))));
        assert!(matches!(
            open_archive(&sealed[..], &Unlock::Identities(String::new()), 1 << 20),
            Err(ArchiveError::Decrypt(_))
        ));
    }

    #[test]
    fn an_altered_cast_or_event_or_a_broken_link_is_named() {
        let f = fixture();
        let key = [f.key.verifying_key()];
        let id = age::x25519::Identity::generate();
        let to = Seal::Recipients(vec![id.to_public().to_string()]);
        let unlock = Unlock::Identities(age::secrecy::ExposeSecret::expose_secret(&id.to_string()).to_owned());
        let open = |bytes: Vec<u8>| open_archive(&bytes[..], &unlock, 1 << 20).unwrap();
        // A cast changed before the manifest was written (the manifest hash matches, the chain does not).
        let mut cast = f.cast.clone();
        cast.extend_from_slice(b"[0.2,\"o\",\"rm -rf\"]\n");
        let r = verify_archive(&open(write(&f, &to, &cast, &f.events)), &key);
        assert!(!r.ok && r.recordings[0].message.contains("differs from the SHA-256 chained"), "{r:?}");
        // The recording's event edited.
        let mut events = f.events.clone();
        events[1].record.subject = "mallory".into();
        let r = verify_archive(&open(write(&f, &to, &f.cast, &events)), &key);
        assert!(!r.ok && r.problems.iter().any(|p| p.contains("event #2 does not match")), "{r:?}");
        // An event between the recording and the checkpoint left out.
        let mut events = f.events.clone();
        events.remove(2);
        let r = verify_archive(&open(write(&f, &to, &f.cast, &events)), &key);
        assert!(!r.ok && r.recordings[0].message.contains("#3"), "{r:?}");
        // A file swapped after the manifest: its hash no longer matches.
        let mut c = open(write(&f, &to, &f.cast, &f.events));
        c.files.insert("recordings/rec_1.cast".into(), b"other".to_vec());
        c.files.insert("extra.txt".into(), b"x".to_vec());
        let r = verify_archive(&c, &key);
        assert!(r.problems.iter().any(|p| p.contains("does not match its SHA-256")), "{r:?}");
        assert!(r.problems.iter().any(|p| p.contains("`extra.txt` is in the archive but not in the manifest")));
    }

    #[test]
    fn garbage_is_refused_with_a_clear_error() {
        let unlock = Unlock::Passphrase(passphrase());
        let e = open_archive(&b"not an age file"[..], &unlock, 1 << 20).unwrap_err();
        assert!(e.to_string().starts_with("cannot decrypt the archive"), "{e}");
        let e = ArchiveWriter::new(Vec::new(), &Seal::Recipients(vec!["age1nope".into()]), 0).err().unwrap();
        assert!(e.to_string().contains("age1nope"), "{e}");
        assert!(matches!(ArchiveWriter::new(Vec::new(), &Seal::Recipients(vec![]), 0), Err(ArchiveError::NoRecipient)));
    }
}
