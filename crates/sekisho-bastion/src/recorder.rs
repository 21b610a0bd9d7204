//! A channel's recording: sealed asciicast v2 in the data directory, the command list, file
//! operations, and — when the channel ends — the summary row and the audit event that carries
//! the recording's SHA-256 into the hash chain.
//!
//! Interactive sessions record output, input and resizes, with a marker per command typed.
//! Exec channels record their output. SFTP and SCP channels record their file operations
//! (path, size, SHA-256 of the content moved), not the content. The sealed file grows in chunks
//! as the session goes, so memory stays bounded and a crash loses at most one chunk.

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use sekisho_audit::recording::cast::CastWriter;
use sekisho_audit::recording::commands::CommandExtractor;
use sekisho_audit::recording::files::{FileOp, ScpTracker, SftpTracker};
use sekisho_audit::recording::sealed::Sealer;
use sekisho_door::recordings::Live;
use sekisho_store::{Recording, now_ms};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::Bastion;
use super::channel::{Chan, Kind, PtySize};
use super::target::Connected;

/// Plaintext gathered before it is sealed and written.
const CHUNK: usize = 64 << 10;
/// A quiet session is still written out this often.
const FLUSH_EVERY: Duration = Duration::from_secs(5);
/// A recording stops growing here (a marker says so); the session goes on.
const MAX_CAST: u64 = 1 << 30;

#[derive(Serialize)]
struct Command {
    t: f64,
    cmd: String,
}

struct Cast {
    writer: CastWriter,
    sealer: Sealer,
    file: std::fs::File,
    pending: Vec<u8>,
    sha: Sha256,
    bytes: u64,
    /// SHA-256 of the sealed file as written, so `audit verify` can check it without the key.
    sealed_sha: Sha256,
    last_flush: Instant,
    full: bool,
}

enum Tracker {
    None,
    Sftp(SftpTracker),
    Scp(ScpTracker),
}

pub(super) struct Recorder {
    b: Arc<Bastion>,
    row: Recording,
    started: Instant,
    cast: Option<Cast>,
    /// Interactive sessions only: what is typed at the prompt.
    typed: Option<CommandExtractor>,
    commands: Vec<Command>,
    tracker: Tracker,
    files: Vec<FileOp>,
    pub(super) live: Arc<Live>,
    error: Option<String>,
    /// How the target was reached: `relay` or `agent NAME`.
    via: String,
    /// Reports this channel's end as a part of the gate's permit for the target.
    reporter: Option<sekisho_gate::Reporter>,
}

impl Recorder {
    /// Starts recording a channel that runs `kind` on the connected target.
    pub(super) async fn begin(chan: &Chan, target: &Connected, kind: &Kind, pty: Option<&PtySize>) -> Recorder {
        let b = chan.b.clone();
        let id = sekisho_door::secrets::new_id("rec");
        let (kind_name, command, tracker, with_cast) = match kind {
            Kind::Shell => ("shell", String::new(), Tracker::None, true),
            Kind::Exec(cmd) => match ScpTracker::new(cmd) {
                Some(mut t) => {
                    // Where a legacy upload's files land depends on whether its target is a
                    // directory there: asked before the channel starts.
                    if let Some(path) = t.unknown_target().map(str::to_owned)
                        && let Some(is_dir) = target.is_dir(&path).await
                    {
                        t.set_target_is_dir(is_dir);
                    }
                    ("scp", cmd.clone(), Tracker::Scp(t), false)
                }
                None => ("exec", cmd.clone(), Tracker::None, true),
            },
            Kind::Subsystem(name) if name == "sftp" => {
                ("sftp", String::new(), Tracker::Sftp(SftpTracker::default()), false)
            }
            Kind::Subsystem(name) => ("subsystem", name.clone(), Tracker::None, false),
        };
        let row = Recording {
            id: id.clone(),
            tenant_id: chan.authed.tenant.clone().into(),
            session_id: chan.session_id.clone(),
            user_name: chan.authed.user.clone(),
            target: target.service.name.clone(),
            protocol: target.service.protocol.into(),
            kind: kind_name.into(),
            command,
            source_ip: chan.authed.ip.to_string(),
            started_at: now_ms(),
            ended_at: None,
            bytes: 0,
            sha256: String::new(),
            commands: "[]".into(),
            files: "[]".into(),
        };
        let (cols, rows, term) = pty.map_or((80, 24, "xterm".to_owned()), |p| (p.cols, p.rows, p.term.clone()));
        let title = format!("{}@{} ({})", row.user_name, row.target, kind_name);
        let writer = CastWriter::new(cells(cols, 80), cells(rows, 24), row.started_at / 1000, &title, &term);
        let header = writer.header_line();
        let mut error = None;
        let cast = if with_cast {
            match open_cast(&b, &id, writer, &header) {
                Ok(c) => Some(c),
                Err(e) => {
                    tracing::error!(recording = %id, error = %e, "cannot write the recording; the session goes on unrecorded");
                    error = Some(format!("recording_failed: {e}"));
                    None
                }
            }
        } else {
            None
        };
        if let Err(e) = b.state.store.insert_recording(&row).await {
            tracing::error!(recording = %id, error = %e, "cannot store the recording's row");
        }
        let live = Arc::new(Live::new(id.clone(), row.tenant_id.to_string(), header, chan.cancel.clone()));
        b.state.live_sessions.insert(live.clone());
        if let Some(permit) = &target.permit {
            live.end_when_revoked(permit.revoked().clone());
        }
        Recorder {
            b,
            row,
            started: Instant::now(),
            cast,
            typed: (*kind == Kind::Shell).then(CommandExtractor::default),
            commands: Vec::new(),
            tracker,
            files: Vec::new(),
            live,
            error,
            via: target.via.clone(),
            reporter: target.permit.as_ref().map(sekisho_gate::Opened::reporter),
        }
    }

    fn t(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    /// Bytes the user sent.
    pub(super) fn input(&mut self, data: &[u8]) {
        let t = self.t();
        match &mut self.tracker {
            Tracker::Sftp(s) => s.client(t, data),
            Tracker::Scp(s) => s.client(t, data),
            Tracker::None => {}
        }
        if let Some(typed) = &mut self.typed {
            let done = typed.feed(data);
            let line = self.cast.as_mut().map(|c| c.writer.input(t, data)).unwrap_or_default();
            self.emit(line);
            for cmd in done {
                let marker = self.cast.as_mut().map(|c| c.writer.marker(t, &cmd)).unwrap_or_default();
                self.emit(marker);
                self.commands.push(Command { t: round_ms(t), cmd });
            }
        }
        self.drain_files();
    }

    /// Bytes the target sent (stdout and stderr).
    pub(super) fn output(&mut self, data: &[u8]) {
        let t = self.t();
        match &mut self.tracker {
            Tracker::Sftp(s) => s.server(t, data),
            Tracker::Scp(s) => s.server(t, data),
            Tracker::None => {}
        }
        let line = self.cast.as_mut().map(|c| c.writer.output(t, data)).unwrap_or_default();
        self.emit(line);
        self.drain_files();
    }

    /// The target's stderr: shown in the terminal recording, but never fed to the SFTP/SCP
    /// trackers (a line such as "Could not chdir to home directory" is not protocol).
    pub(super) fn stderr(&mut self, data: &[u8]) {
        let t = self.t();
        let line = self.cast.as_mut().map(|c| c.writer.output(t, data)).unwrap_or_default();
        self.emit(line);
    }

    pub(super) fn resize(&mut self, cols: u32, rows: u32) {
        let t = self.t();
        let line = self.cast.as_mut().map(|c| c.writer.resize(t, cells(cols, 80), cells(rows, 24))).unwrap_or_default();
        self.emit(line);
    }

    fn drain_files(&mut self) {
        let ops = match &mut self.tracker {
            Tracker::Sftp(s) => s.take(),
            Tracker::Scp(s) => s.take(),
            Tracker::None => return,
        };
        self.files.extend(ops);
    }

    /// Adds recorded lines to the cast, writing a sealed chunk when enough has gathered.
    fn emit(&mut self, line: Vec<u8>) {
        if line.is_empty() {
            return;
        }
        if self.live.lines.receiver_count() > 0 {
            let _ = self.live.lines.send(Bytes::from(line.clone()));
        }
        let Some(c) = &mut self.cast else { return };
        if c.full {
            return;
        }
        c.sha.update(&line);
        c.bytes += line.len() as u64;
        c.pending.extend_from_slice(&line);
        if c.bytes >= MAX_CAST {
            let t = self.started.elapsed().as_secs_f64();
            let note = c.writer.marker(t, "recording size limit reached; the rest of the session is not recorded");
            c.sha.update(&note);
            c.bytes += note.len() as u64;
            c.pending.extend_from_slice(&note);
            c.full = true;
        }
        if (c.pending.len() >= CHUNK || c.last_flush.elapsed() >= FLUSH_EVERY)
            && let Err(e) = c.flush(false)
        {
            tracing::error!(recording = %self.row.id, error = %e, "cannot write the recording");
            self.error = Some(format!("recording_failed: {e}"));
            self.cast = None;
        }
    }

    /// Seals the last chunk, stores the summary and records the audit event with the hash.
    pub(super) async fn finish(mut self, exit: Option<u32>, ended: &str) {
        let t = self.t();
        match &mut self.tracker {
            Tracker::Sftp(s) => s.finish(t),
            Tracker::Scp(s) => s.finish(t),
            Tracker::None => {}
        }
        self.drain_files();
        let state = &self.b.state;
        state.live_sessions.remove(&self.row.id);
        let mut sealed_sha256 = None;
        if let Some(mut c) = self.cast.take() {
            // Bytes still waiting to complete a character.
            let tail = if c.full { Vec::new() } else { c.writer.finish(t) };
            c.sha.update(&tail);
            c.bytes += tail.len() as u64;
            c.pending.extend_from_slice(&tail);
            match c.flush(true) {
                Ok(()) => {
                    self.row.sha256 = hex::encode(c.sha.finalize());
                    self.row.bytes = c.bytes as i64;
                    sealed_sha256 = Some(hex::encode(c.sealed_sha.finalize()));
                }
                Err(e) => self.error = Some(format!("recording_failed: {e}")),
            }
        }
        self.row.ended_at = Some(now_ms());
        self.row.commands = serde_json::to_string(&self.commands).unwrap_or_else(|_| "[]".into());
        self.row.files = serde_json::to_string(&self.files).unwrap_or_else(|_| "[]".into());
        if let Err(e) = state.store.finish_recording(&self.row).await {
            tracing::error!(recording = %self.row.id, error = %e, "cannot store the recording's summary");
        }
        let detail = serde_json::json!({
            "session": self.row.session_id,
            "recording": self.row.id,
            "kind": self.row.kind,
            "command": self.row.command,
            "sha256": self.row.sha256,
            "cast_bytes": self.row.bytes,
            "sealed_sha256": sealed_sha256,
            "commands": self.commands.len(),
            "files": self.files,
            "exit_status": exit,
            "ended": ended,
            "via": self.via,
            "error": self.error,
        });
        let duration = (self.row.ended_at.unwrap_or_default() - self.row.started_at).max(0) as u64;
        let reason = format!("{} session ended: {ended}", self.row.kind);
        let Some(reporter) = &self.reporter else {
            tracing::error!(recording = %self.row.id, "a bastion channel without the gate's permit");
            return;
        };
        let reported = reporter.report(|e| e.reason(reason).detail(detail.to_string()).traffic(0, 0, duration)).await;
        if let Err(e) = reported {
            tracing::error!(error = %e, "cannot record the end of a bastion session");
        }
    }
}

impl Cast {
    fn flush(&mut self, last: bool) -> std::io::Result<()> {
        let chunk = self.sealer.seal_chunk(&self.pending, last).map_err(std::io::Error::other)?;
        self.pending.clear();
        self.last_flush = Instant::now();
        self.sealed_sha.update(&chunk);
        self.file.write_all(&chunk)?;
        if last {
            self.file.sync_data()?;
        }
        Ok(())
    }
}

fn open_cast(b: &Bastion, id: &str, writer: CastWriter, header: &[u8]) -> std::io::Result<Cast> {
    let path = b.recordings.join(format!("{id}.cast.sealed"));
    let mut file = std::fs::OpenOptions::new().create_new(true).write(true).open(path)?;
    let sealer = Sealer::new(&b.key);
    let sealed_header = sealer.header();
    file.write_all(&sealed_header)?;
    let mut sha = Sha256::new();
    sha.update(header);
    Ok(Cast {
        writer,
        sealer,
        file,
        pending: header.to_vec(),
        sha,
        bytes: header.len() as u64,
        sealed_sha: Sha256::new_with_prefix(&sealed_header),
        last_flush: Instant::now(),
        full: false,
    })
}

/// A terminal dimension for the recording: 0 (a client with no terminal to measure, such as
/// `ssh -tt` from a pipe, asks for a 0×0 pty) is recorded as the usual default, so a player shows
/// the session in 80×24 rather than in one cell.
fn cells(v: u32, default: u16) -> u16 {
    if v == 0 { default } else { v.min(10_000) as u16 }
}

fn round_ms(t: f64) -> f64 {
    (t * 1000.0).round() / 1000.0
}
