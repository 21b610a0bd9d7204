//! Legacy scp (the rcp protocol), run as `scp -t TARGET` (the server receives: an upload) or
//! `scp -f PATH…` (the server sends: a download).
//!
//! The sending side's stream carries control records — `C<mode> <size> <name>`, `D<mode> 0
//! <name>`, `E`, `T<times>`, each ending in `\n` — and after an accepted `C`, exactly `size`
//! bytes and one status byte. The receiving side answers each record and each file with `\0`,
//! or `\x01`/`\x02` and a message line. Where a file landed is reconstructed from the target
//! and the `D`/`E` nesting. One case is ambiguous without looking at the server's disk:
//! `scp -t /dir/x` (no `-d`, no trailing `/`) receiving a file writes `/dir/x` if `x` is not a
//! directory and `/dir/x/name` if it is. The bastion looks (it asks the target, before the
//! channel starts, whether the target is a directory) and says so with
//! [`ScpTracker::set_target_is_dir`]; a tracker that was not told reports the latter when the name
//! differs.

use std::collections::VecDeque;
use std::mem;

use super::{FileOp, Progress};

/// The longest control or message line accepted.
const MAX_LINE: usize = 4096;
/// The deepest directory nesting followed.
const MAX_DEPTH: usize = 256;
/// The most records awaiting an answer remembered.
const MAX_EXPECT: usize = 1024;

/// Follows one `scp -t`/`scp -f` exec channel.
#[derive(Debug)]
pub struct ScpTracker {
    mode: Mode,
    sender: Sender,
    /// A message being read from the receiving side, after its `\x01` or `\x02`.
    answer: Option<Vec<u8>>,
    expect: VecDeque<Expect>,
    dirs: Vec<String>,
    ops: Vec<FileOp>,
    stopped: bool,
}

#[derive(Debug)]
enum Mode {
    /// `target_is_dir`: `Some` once known (`-d`, a trailing `/`, or the target's answer).
    Upload {
        target: String,
        target_is_dir: Option<bool>,
    },
    Download {
        sources: Vec<String>,
    },
}

/// Where the sending side's stream is.
#[derive(Debug)]
enum Sender {
    Line(Vec<u8>),
    /// A `C` record was sent; its data follows once the receiver accepts it.
    Offered(File),
    Data(File),
    /// All data moved; the status byte (and any message) follows.
    Status(File, Option<Vec<u8>>),
}

impl Default for Sender {
    fn default() -> Self {
        Sender::Line(Vec::new())
    }
}

#[derive(Debug)]
struct File {
    path: String,
    size: u64,
    moved: Progress,
}

/// What the receiving side's next answer is about.
#[derive(Debug)]
enum Expect {
    Start,
    Record,
    Dir(String),
    File,
    /// A file's data was sent; `bool` is whether the sender reported success.
    Done(FileOp, bool),
}

#[derive(Debug, thiserror::Error)]
enum Malformed {
    #[error("line longer than {MAX_LINE} bytes")]
    LongLine,
    #[error("unexpected control record `{0}`")]
    Record(String),
    #[error("directories nested deeper than {MAX_DEPTH}")]
    TooDeep,
    #[error("answer byte {0:#04x} is not 0, 1 or 2")]
    Answer(u8),
    #[error("status byte {0:#04x} after file data is not 0, 1 or 2")]
    Status(u8),
}

impl ScpTracker {
    /// A tracker for the exec `command_line`, if it runs scp's server side: `scp`, flags among
    /// `-t`/`-f` (exactly one), `-r -p -d -v -q`, an optional `--`, then one target for `-t` or
    /// at least one path for `-f`. Words may be quoted as in `sh`.
    pub fn new(command_line: &str) -> Option<Self> {
        let words = split_words(command_line)?;
        let (program, mut args) = words.split_first()?;
        if basename(program) != "scp" {
            return None;
        }
        let (mut sink, mut source, mut dir) = (false, false, false);
        while let Some((arg, rest)) = args.split_first() {
            let flags = match arg.strip_prefix('-') {
                Some("-") => {
                    args = rest;
                    break;
                }
                Some(flags) if !flags.is_empty() => flags,
                _ => break,
            };
            for c in flags.chars() {
                match c {
                    't' => sink = true,
                    'f' => source = true,
                    'd' => dir = true,
                    'r' | 'p' | 'v' | 'q' => {}
                    _ => return None,
                }
            }
            args = rest;
        }
        let mode = match (sink, source, args) {
            (true, false, [target]) => {
                Mode::Upload { target: target.clone(), target_is_dir: (dir || target.ends_with('/')).then_some(true) }
            }
            (false, true, [_, ..]) => Mode::Download { sources: args.to_vec() },
            _ => return None,
        };
        Some(ScpTracker {
            mode,
            sender: Sender::default(),
            answer: None,
            expect: VecDeque::from([Expect::Start]),
            dirs: Vec::new(),
            ops: Vec::new(),
            stopped: false,
        })
    }

    /// An upload's target whose kind is not known yet (no `-d`, no trailing `/`): whether it is a
    /// directory decides where the files land.
    pub fn unknown_target(&self) -> Option<&str> {
        match &self.mode {
            Mode::Upload { target, target_is_dir: None } => Some(target),
            _ => None,
        }
    }

    /// Says whether an upload's target is a directory on the server (asked there before the
    /// channel started).
    pub fn set_target_is_dir(&mut self, is_dir: bool) {
        if let Mode::Upload { target_is_dir, .. } = &mut self.mode {
            *target_is_dir = Some(is_dir);
        }
    }

    /// Client-to-server bytes at `t` seconds into the session.
    pub fn client(&mut self, t: f64, bytes: &[u8]) {
        let upload = matches!(self.mode, Mode::Upload { .. });
        self.feed(t, bytes, upload);
    }

    /// Server-to-client bytes at `t` seconds into the session.
    pub fn server(&mut self, t: f64, bytes: &[u8]) {
        let upload = matches!(self.mode, Mode::Upload { .. });
        self.feed(t, bytes, !upload);
    }

    /// The operations completed since the last call.
    pub fn take(&mut self) -> Vec<FileOp> {
        mem::take(&mut self.ops)
    }

    /// The session ended at `t`: reports transfers without an answer (`ok: None`) and a file
    /// cut off mid-data (`ok: Some(false)`, no hash).
    pub fn finish(&mut self, t: f64) {
        while let Some(e) = self.expect.pop_front() {
            self.unanswered(t, e);
        }
        let op = match mem::take(&mut self.sender) {
            Sender::Line(_) => return,
            Sender::Offered(file) => FileOp::new(t, self.verb(), file.path),
            Sender::Data(file) => {
                FileOp { size: Some(file.moved.bytes), ok: Some(false), ..FileOp::new(t, self.verb(), file.path) }
            }
            Sender::Status(file, _) => self.file_op(t, file),
        };
        self.ops.push(op);
    }

    fn feed(&mut self, t: f64, bytes: &[u8], from_sender: bool) {
        if self.stopped {
            return;
        }
        let fed = if from_sender { self.sender_bytes(t, bytes) } else { self.answer_bytes(t, bytes) };
        if let Err(e) = fed {
            let side = if from_sender { "sending" } else { "receiving" };
            self.ops.push(FileOp::new(t, "malformed", format!("scp {side} side: {e}; not followed further")));
            self.stopped = true;
        }
    }

    fn verb(&self) -> &'static str {
        if matches!(self.mode, Mode::Upload { .. }) { "write" } else { "read" }
    }

    fn file_op(&self, t: f64, file: File) -> FileOp {
        FileOp { size: Some(file.moved.bytes), sha256: file.moved.sha256(), ..FileOp::new(t, self.verb(), file.path) }
    }

    fn sender_bytes(&mut self, t: f64, mut bytes: &[u8]) -> Result<(), Malformed> {
        while let Some((&first, after)) = bytes.split_first() {
            self.sender = match mem::take(&mut self.sender) {
                Sender::Line(mut line) => match read_line(&mut line, &mut bytes)? {
                    true => self.record(t, &line)?,
                    false => Sender::Line(line),
                },
                // Data before the receiver's answer: the answer was fed late; assume it accepted.
                Sender::Offered(file) => Sender::Data(file),
                Sender::Data(mut file) => {
                    let left = file.size - file.moved.bytes;
                    let n = bytes.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                    let (data, rest) = bytes.split_at(n);
                    file.moved.add(file.moved.bytes, data);
                    bytes = rest;
                    if file.moved.bytes == file.size { Sender::Status(file, None) } else { Sender::Data(file) }
                }
                Sender::Status(file, None) => {
                    bytes = after;
                    match first {
                        0 => self.sent(t, file, None),
                        1 | 2 => Sender::Status(file, Some(Vec::new())),
                        b => return Err(Malformed::Status(b)),
                    }
                }
                Sender::Status(file, Some(mut message)) => match read_line(&mut message, &mut bytes)? {
                    true => self.sent(t, file, Some(&message)),
                    false => Sender::Status(file, Some(message)),
                },
            };
        }
        Ok(())
    }

    /// A file's data and status were sent; its answer settles it.
    fn sent(&mut self, t: f64, file: File, error: Option<&[u8]>) -> Sender {
        if let Some(message) = error {
            self.error(t, message);
        }
        let op = self.file_op(t, file);
        self.expect(t, Expect::Done(op, error.is_none()));
        Sender::default()
    }

    /// Handles one control record (without its `\n`); returns the sender's next state.
    fn record(&mut self, t: f64, line: &[u8]) -> Result<Sender, Malformed> {
        let bad = || Malformed::Record(String::from_utf8_lossy(&line[..line.len().min(80)]).into_owned());
        match line.split_first() {
            Some((b'C' | b'D', rest)) => {
                let (size, name) = entry(rest).ok_or_else(bad)?;
                let path = match self.dirs.last() {
                    Some(dir) => join(dir, &name),
                    None => self.top_level(&name),
                };
                if line[0] == b'C' {
                    self.expect(t, Expect::File);
                    return Ok(Sender::Offered(File { path, size, moved: Progress::default() }));
                }
                if self.dirs.len() >= MAX_DEPTH {
                    return Err(Malformed::TooDeep);
                }
                self.dirs.push(path.clone());
                self.expect(t, Expect::Dir(path));
            }
            Some((b'E', [])) => {
                self.dirs.pop();
                self.expect(t, Expect::Record);
            }
            Some((b'T', times)) if times.iter().all(|b| b.is_ascii_digit() || *b == b' ') => {
                self.expect(t, Expect::Record);
            }
            // The sender could not send something; the receiver does not answer this.
            Some((1 | 2, message)) => self.error(t, message),
            _ => return Err(bad()),
        }
        Ok(Sender::default())
    }

    fn answer_bytes(&mut self, t: f64, mut bytes: &[u8]) -> Result<(), Malformed> {
        while let Some((&b, rest)) = bytes.split_first() {
            match self.answer.take() {
                None => {
                    bytes = rest;
                    match b {
                        0 => self.answered(t, true),
                        1 | 2 => self.answer = Some(Vec::new()),
                        _ => return Err(Malformed::Answer(b)),
                    }
                }
                Some(mut message) => {
                    if read_line(&mut message, &mut bytes)? {
                        self.error(t, &message);
                        self.answered(t, false);
                    } else {
                        self.answer = Some(message);
                    }
                }
            }
        }
        Ok(())
    }

    fn answered(&mut self, t: f64, ok: bool) {
        match self.expect.pop_front() {
            Some(Expect::Start | Expect::Record) | None => {}
            Some(Expect::Dir(path)) => {
                if matches!(self.mode, Mode::Upload { .. }) {
                    self.ops.push(FileOp { ok: Some(ok), ..FileOp::new(t, "mkdir", path) });
                }
                if !ok {
                    self.dirs.pop();
                }
            }
            Some(Expect::File) => {
                self.sender = match mem::take(&mut self.sender) {
                    Sender::Offered(file) if ok => Sender::Data(file),
                    Sender::Offered(file) => {
                        self.ops.push(FileOp { ok: Some(false), ..FileOp::new(t, self.verb(), file.path) });
                        Sender::default()
                    }
                    // The data already started (answers fed late); the file's own answer decides.
                    other => other,
                };
            }
            Some(Expect::Done(op, sent)) => self.ops.push(FileOp { t, ok: Some(sent && ok), ..op }),
        }
    }

    fn expect(&mut self, t: f64, e: Expect) {
        if self.expect.len() >= MAX_EXPECT
            && let Some(oldest) = self.expect.pop_front()
        {
            self.unanswered(t, oldest);
        }
        self.expect.push_back(e);
    }

    /// Settles a record whose answer will not be seen.
    fn unanswered(&mut self, t: f64, e: Expect) {
        match e {
            Expect::Done(op, sent) => self.ops.push(FileOp { t, ok: (!sent).then_some(false), ..op }),
            Expect::Dir(path) if matches!(self.mode, Mode::Upload { .. }) => {
                self.ops.push(FileOp::new(t, "mkdir", path))
            }
            _ => {}
        }
    }

    fn error(&mut self, t: f64, message: &[u8]) {
        self.ops.push(FileOp::new(t, "error", String::from_utf8_lossy(message).trim_end()));
    }

    /// Where a top-level file or directory called `name` goes (upload) or comes from (download).
    fn top_level(&self, name: &str) -> String {
        match &self.mode {
            Mode::Upload { target, target_is_dir } => match target_is_dir {
                Some(true) => join(target, name),
                Some(false) => target.clone(),
                None if basename(target) == name => target.clone(),
                None => join(target, name),
            },
            Mode::Download { sources } => match sources.iter().find(|s| basename(s) == name) {
                Some(source) => source.clone(),
                // A glob the remote shell expanded: the file is beside the pattern.
                None => sources.first().and_then(|s| parent(s)).map_or_else(|| name.to_owned(), |dir| join(dir, name)),
            },
        }
    }
}

/// Moves bytes up to and including `\n` from `bytes` into `line`; true when the line is whole
/// (the `\n` is not kept).
fn read_line(line: &mut Vec<u8>, bytes: &mut &[u8]) -> Result<bool, Malformed> {
    let (taken, whole) = match bytes.iter().position(|&b| b == b'\n') {
        Some(i) => (i, true),
        None => (bytes.len(), false),
    };
    if line.len() + taken > MAX_LINE {
        return Err(Malformed::LongLine);
    }
    line.extend_from_slice(&bytes[..taken]);
    *bytes = &bytes[taken + usize::from(whole)..];
    Ok(whole)
}

/// `<octal mode> <decimal size> <name>` of a `C` or `D` record.
fn entry(rest: &[u8]) -> Option<(u64, String)> {
    let text = std::str::from_utf8(rest).ok()?;
    let (mode, text) = text.split_once(' ')?;
    let (size, name) = text.split_once(' ')?;
    let octal = !mode.is_empty() && mode.bytes().all(|b| (b'0'..=b'7').contains(&b));
    let decimal = !size.is_empty() && size.bytes().all(|b| b.is_ascii_digit());
    if !octal || !decimal || name.is_empty() {
        return None;
    }
    Some((size.parse().ok()?, name.to_owned()))
}

fn basename(path: &str) -> &str {
    let path = path.trim_end_matches('/');
    path.rsplit('/').next().unwrap_or(path)
}

fn parent(path: &str) -> Option<&str> {
    path.rfind('/').map(|i| if i == 0 { "/" } else { &path[..i] })
}

fn join(dir: &str, name: &str) -> String {
    match dir {
        "" => name.to_owned(),
        _ if dir.ends_with('/') => format!("{dir}{name}"),
        _ => format!("{dir}/{name}"),
    }
}

/// Splits a command line into words as `sh` would, without expansions; `None` if a quote is
/// left open.
fn split_words(line: &str) -> Option<Vec<String>> {
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' | '\n' => words.extend(word.take()),
            '\'' => {
                let w = word.get_or_insert_with(String::new);
                loop {
                    match chars.next()? {
                        '\'' => break,
                        c => w.push(c),
                    }
                }
            }
            '"' => {
                let w = word.get_or_insert_with(String::new);
                loop {
                    match chars.next()? {
                        '"' => break,
                        '\\' => match chars.next()? {
                            c @ ('"' | '\\' | '$' | '`') => w.push(c),
                            '\n' => {}
                            c => w.extend(['\\', c]),
                        },
                        c => w.push(c),
                    }
                }
            }
            '\\' => match chars.next() {
                Some('\n') => {}
                Some(c) => word.get_or_insert_with(String::new).push(c),
                None => word.get_or_insert_with(String::new).push('\\'),
            },
            c => word.get_or_insert_with(String::new).push(c),
        }
    }
    words.extend(word);
    Some(words)
}

#[cfg(test)]
mod tests;
