//! SFTP version 3 (draft-ietf-secsh-filexfer-02) as OpenSSH speaks it, including its
//! `posix-rename`, `hardlink` and `lsetstat` extensions and its SYMLINK argument order.
//!
//! Requests are remembered by id until the reply that settles them: HANDLE for OPEN, DATA for
//! READ, STATUS for everything else. A file's reads and writes accumulate under its handle and
//! become one [`FileOp`] when its CLOSE is answered. Directory listings, `stat` and `realpath`
//! are not evidence of a change or a transfer and are not reported.

use std::mem;

use self::bounded::Bounded;
use super::{FileOp, Progress};

mod bounded;

/// The largest packet accepted: OpenSSH's 256 KiB limit plus room for other implementations.
const MAX_PACKET: usize = 264 * 1024;
/// The most unanswered requests, and the most open files, remembered.
const MAX_PENDING: usize = 4096;

const VERSION: u8 = 2;
const OPEN: u8 = 3;
const CLOSE: u8 = 4;
const READ: u8 = 5;
const WRITE: u8 = 6;
const SETSTAT: u8 = 9;
const FSETSTAT: u8 = 10;
const REMOVE: u8 = 13;
const MKDIR: u8 = 14;
const RMDIR: u8 = 15;
const RENAME: u8 = 18;
const SYMLINK: u8 = 20;
const STATUS: u8 = 101;
const HANDLE: u8 = 102;
const DATA: u8 = 103;
const EXTENDED: u8 = 200;
/// The requests that can change or move a file.
const TRACKED: [u8; 12] =
    [OPEN, CLOSE, READ, WRITE, SETSTAT, FSETSTAT, REMOVE, MKDIR, RMDIR, RENAME, SYMLINK, EXTENDED];

const FX_OK: u32 = 0;
const FX_EOF: u32 = 1;
const FXF_WRITE: u32 = 0x02;
const FXF_TRUNC: u32 = 0x10;
const ATTR_SIZE: u32 = 0x01;

/// Follows one SFTP subsystem channel.
#[derive(Debug, Default)]
pub struct SftpTracker {
    streams: [Stream; 2],
    requests: Bounded<u32, Request>,
    files: Bounded<Vec<u8>, OpenFile>,
    ops: Vec<FileOp>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dir {
    Client,
    Server,
}

#[derive(Debug, Default)]
struct Stream {
    buf: Vec<u8>,
    stopped: bool,
}

#[derive(Debug)]
enum Request {
    Open { path: String, pflags: u32 },
    Read { handle: Vec<u8>, offset: u64 },
    Write { handle: Vec<u8> },
    Close { handle: Vec<u8>, file: OpenFile },
    Op(FileOp),
}

#[derive(Debug)]
struct OpenFile {
    path: String,
    pflags: u32,
    read: Progress,
    written: Progress,
    /// A read or write was refused.
    failed: bool,
    /// A read or write reply was never seen.
    unsure: bool,
}

impl OpenFile {
    /// The record for the whole time the file was open; `closed` is the CLOSE's outcome.
    fn into_op(self, t: f64, closed: Option<bool>) -> FileOp {
        let ok = if self.failed {
            Some(false)
        } else if self.unsure {
            None
        } else {
            closed
        };
        let truncated = self.pflags & (FXF_WRITE | FXF_TRUNC) == FXF_WRITE | FXF_TRUNC;
        let (op, moved) = if self.written.bytes > 0 || truncated {
            ("write", Some(&self.written))
        } else if self.read.bytes > 0 {
            ("read", Some(&self.read))
        } else {
            ("open", None)
        };
        FileOp {
            size: moved.map(|p| p.bytes),
            sha256: moved.and_then(Progress::sha256),
            ok,
            ..FileOp::new(t, op, self.path)
        }
    }
}

/// What an OPEN was for, for when it never produced a handle.
fn intent(pflags: u32) -> &'static str {
    if pflags & FXF_WRITE != 0 { "write" } else { "read" }
}

#[derive(Debug, thiserror::Error)]
enum Malformed {
    #[error("packet length {0} is outside 1..={MAX_PACKET}")]
    Length(usize),
    #[error("{packet} packet ends inside its `{field}`")]
    Truncated { packet: &'static str, field: &'static str },
    #[error("server speaks SFTP version {0}; only version 3 is tracked")]
    Version(u32),
}

impl SftpTracker {
    /// A tracker for a channel that just started the `sftp` subsystem.
    pub fn new() -> Self {
        Self::default()
    }

    /// Client-to-server bytes at `t` seconds into the session.
    pub fn client(&mut self, t: f64, bytes: &[u8]) {
        self.feed(Dir::Client, t, bytes);
    }

    /// Server-to-client bytes at `t` seconds into the session.
    pub fn server(&mut self, t: f64, bytes: &[u8]) {
        self.feed(Dir::Server, t, bytes);
    }

    /// The operations completed since the last call.
    pub fn take(&mut self) -> Vec<FileOp> {
        mem::take(&mut self.ops)
    }

    /// The session ended at `t`: reports unanswered operations and files still open, with
    /// `ok: None` unless a failure was already seen.
    pub fn finish(&mut self, t: f64) {
        for request in self.requests.drain() {
            self.forget(t, request);
        }
        for file in self.files.drain() {
            self.ops.push(file.into_op(t, None));
        }
    }

    fn feed(&mut self, dir: Dir, t: f64, bytes: &[u8]) {
        let mut stream = mem::take(&mut self.streams[dir as usize]);
        if !stream.stopped {
            stream.buf.extend_from_slice(bytes);
            match self.packets(dir, t, &stream.buf) {
                Ok(used) => _ = stream.buf.drain(..used),
                Err(e) => {
                    let name = if dir == Dir::Client { "client" } else { "server" };
                    let message = format!("sftp {name} stream: {e}; not followed further");
                    self.ops.push(FileOp::new(t, "malformed", message));
                    stream = Stream { buf: Vec::new(), stopped: true };
                    if matches!(e, Malformed::Version(_)) {
                        self.streams[Dir::Client as usize] = Stream { buf: Vec::new(), stopped: true };
                    }
                }
            }
        }
        self.streams[dir as usize] = stream;
    }

    /// Handles the whole packets at the start of `buf`; returns how many bytes they took.
    fn packets(&mut self, dir: Dir, t: f64, buf: &[u8]) -> Result<usize, Malformed> {
        let mut used = 0;
        while let Some(len) = buf[used..].first_chunk::<4>() {
            let len = u32::from_be_bytes(*len) as usize;
            if len == 0 || len > MAX_PACKET {
                return Err(Malformed::Length(len));
            }
            let Some(packet) = buf.get(used + 4..used + 4 + len) else { break };
            used += 4 + len;
            match dir {
                Dir::Client => self.request_packet(t, packet)?,
                Dir::Server => self.reply_packet(t, packet)?,
            }
        }
        Ok(used)
    }

    fn request_packet(&mut self, t: f64, packet: &[u8]) -> Result<(), Malformed> {
        let (kind, mut r) = Reader::new(packet);
        if !TRACKED.contains(&kind) {
            return Ok(());
        }
        let id = r.u32("id")?;
        let request = match kind {
            OPEN => Request::Open { path: r.text("filename")?, pflags: r.u32("pflags")? },
            CLOSE => {
                let handle = r.bytes("handle")?;
                let Some(file) = self.files.remove(handle) else { return Ok(()) };
                Request::Close { handle: handle.to_vec(), file }
            }
            READ => {
                let (handle, offset) = (r.bytes("handle")?, r.u64("offset")?);
                if !self.files.contains(handle) {
                    return Ok(());
                }
                Request::Read { handle: handle.to_vec(), offset }
            }
            WRITE => {
                let (handle, offset, data) = (r.bytes("handle")?, r.u64("offset")?, r.bytes("data")?);
                let Some(file) = self.files.get_mut(handle) else { return Ok(()) };
                file.written.add(offset, data);
                Request::Write { handle: handle.to_vec() }
            }
            SETSTAT => {
                let path = r.text("path")?;
                Request::Op(FileOp { size: r.size_attr(), ..FileOp::new(t, "setstat", path) })
            }
            FSETSTAT => {
                let handle = r.bytes("handle")?;
                let Some(file) = self.files.get_mut(handle) else { return Ok(()) };
                Request::Op(FileOp { size: r.size_attr(), ..FileOp::new(t, "setstat", file.path.clone()) })
            }
            REMOVE => Request::Op(FileOp::new(t, "remove", r.text("filename")?)),
            MKDIR => Request::Op(FileOp::new(t, "mkdir", r.text("path")?)),
            RMDIR => Request::Op(FileOp::new(t, "rmdir", r.text("path")?)),
            RENAME => Request::Op(moved(t, "rename", r.text("oldpath")?, r.text("newpath")?)),
            // OpenSSH sends the target first and the new link second, unlike the draft.
            SYMLINK => {
                let target = r.text("targetpath")?;
                Request::Op(moved(t, "symlink", r.text("linkpath")?, target))
            }
            EXTENDED => match r.bytes("extension")? {
                b"posix-rename@openssh.com" => Request::Op(moved(t, "rename", r.text("oldpath")?, r.text("newpath")?)),
                b"hardlink@openssh.com" => {
                    let target = r.text("oldpath")?;
                    Request::Op(moved(t, "link", r.text("newpath")?, target))
                }
                b"lsetstat@openssh.com" => {
                    let path = r.text("path")?;
                    Request::Op(FileOp { size: r.size_attr(), ..FileOp::new(t, "setstat", path) })
                }
                _ => return Ok(()),
            },
            _ => return Ok(()),
        };
        if let Some(old) = self.requests.insert(id, request) {
            self.forget(t, old);
        }
        Ok(())
    }

    fn reply_packet(&mut self, t: f64, packet: &[u8]) -> Result<(), Malformed> {
        let (kind, mut r) = Reader::new(packet);
        match kind {
            VERSION => match r.u32("version")? {
                3 => {}
                v => return Err(Malformed::Version(v)),
            },
            STATUS => {
                let (id, code) = (r.u32("id")?, r.u32("code")?);
                self.status(t, id, code);
            }
            HANDLE => {
                let (id, handle) = (r.u32("id")?, r.bytes("handle")?);
                match self.requests.remove(&id) {
                    Some(Request::Open { path, pflags }) => {
                        let file = OpenFile {
                            path,
                            pflags,
                            read: Progress::default(),
                            written: Progress::default(),
                            failed: false,
                            unsure: false,
                        };
                        if let Some(old) = self.files.insert(handle.to_vec(), file) {
                            self.ops.push(old.into_op(t, None));
                        }
                    }
                    Some(other) => self.forget(t, other),
                    None => {}
                }
            }
            DATA => {
                let (id, data) = (r.u32("id")?, r.bytes("data")?);
                match self.requests.remove(&id) {
                    Some(Request::Read { handle, offset }) => {
                        if let Some(file) = self.file_mut(&handle) {
                            file.read.add(offset, data);
                        }
                    }
                    Some(other) => self.forget(t, other),
                    None => {}
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn status(&mut self, t: f64, id: u32, code: u32) {
        let ok = code == FX_OK;
        match self.requests.remove(&id) {
            Some(Request::Open { path, pflags }) => {
                self.ops.push(FileOp { ok: Some(ok), ..FileOp::new(t, intent(pflags), path) })
            }
            Some(Request::Read { handle, .. }) if !ok && code != FX_EOF => self.fail(&handle),
            Some(Request::Write { handle }) if !ok => self.fail(&handle),
            Some(Request::Close { file, .. }) => self.ops.push(file.into_op(t, Some(ok))),
            Some(Request::Op(op)) => self.ops.push(FileOp { t, ok: Some(ok), ..op }),
            Some(Request::Read { .. } | Request::Write { .. }) | None => {}
        }
    }

    fn fail(&mut self, handle: &[u8]) {
        if let Some(file) = self.file_mut(handle) {
            file.failed = true;
        }
    }

    /// Settles a request whose reply will not be seen (evicted, replaced, or session over).
    fn forget(&mut self, t: f64, request: Request) {
        match request {
            Request::Open { path, pflags } => self.ops.push(FileOp::new(t, intent(pflags), path)),
            Request::Read { handle, .. } => {
                if let Some(file) = self.file_mut(&handle) {
                    file.read.lose();
                    file.unsure = true;
                }
            }
            Request::Write { handle } => {
                if let Some(file) = self.file_mut(&handle) {
                    file.unsure = true;
                }
            }
            Request::Close { file, .. } => self.ops.push(file.into_op(t, None)),
            Request::Op(op) => self.ops.push(FileOp { t, ..op }),
        }
    }

    /// An open file, or one whose CLOSE is still unanswered (replies may trail it).
    fn file_mut(&mut self, handle: &[u8]) -> Option<&mut OpenFile> {
        if self.files.contains(handle) {
            return self.files.get_mut(handle);
        }
        self.requests.values_mut().find_map(|request| match request {
            Request::Close { handle: h, file } if h == handle => Some(file),
            _ => None,
        })
    }
}

fn moved(t: f64, op: &str, path: String, to: String) -> FileOp {
    FileOp { to: Some(to), ..FileOp::new(t, op, path) }
}

/// Reads the fields of one packet.
struct Reader<'a> {
    rest: &'a [u8],
    packet: &'static str,
}

impl<'a> Reader<'a> {
    /// The packet's type and a reader for its body; `packet` is never empty.
    fn new(packet: &'a [u8]) -> (u8, Self) {
        let (kind, rest) = packet.split_first().map_or((0, packet), |(k, rest)| (*k, rest));
        let name = match kind {
            VERSION => "VERSION",
            OPEN => "OPEN",
            CLOSE => "CLOSE",
            READ => "READ",
            WRITE => "WRITE",
            SETSTAT => "SETSTAT",
            FSETSTAT => "FSETSTAT",
            REMOVE => "REMOVE",
            MKDIR => "MKDIR",
            RMDIR => "RMDIR",
            RENAME => "RENAME",
            SYMLINK => "SYMLINK",
            STATUS => "STATUS",
            HANDLE => "HANDLE",
            DATA => "DATA",
            EXTENDED => "EXTENDED",
            _ => "unknown",
        };
        (kind, Reader { rest, packet: name })
    }

    fn take<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], Malformed> {
        let (head, rest) =
            self.rest.split_first_chunk::<N>().ok_or(Malformed::Truncated { packet: self.packet, field })?;
        self.rest = rest;
        Ok(*head)
    }

    fn u32(&mut self, field: &'static str) -> Result<u32, Malformed> {
        self.take(field).map(u32::from_be_bytes)
    }

    fn u64(&mut self, field: &'static str) -> Result<u64, Malformed> {
        self.take(field).map(u64::from_be_bytes)
    }

    fn bytes(&mut self, field: &'static str) -> Result<&'a [u8], Malformed> {
        let len = self.u32(field)? as usize;
        if self.rest.len() < len {
            return Err(Malformed::Truncated { packet: self.packet, field });
        }
        let (bytes, rest) = self.rest.split_at(len);
        self.rest = rest;
        Ok(bytes)
    }

    fn text(&mut self, field: &'static str) -> Result<String, Malformed> {
        self.bytes(field).map(|b| String::from_utf8_lossy(b).into_owned())
    }

    /// The size in a trailing ATTRS, if it sets one.
    fn size_attr(&mut self) -> Option<u64> {
        let flags = self.u32("flags").ok()?;
        if flags & ATTR_SIZE != 0 { self.u64("size").ok() } else { None }
    }
}

#[cfg(test)]
mod tests;
