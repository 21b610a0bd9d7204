//! Telnet targets: the bastion bridges the user's SSH terminal to a Telnet connection (RFC 854),
//! answers the basic options (terminal type, window size, echo, suppress-go-ahead; everything
//! else refused), types the target's sealed login when asked, and records the session like an
//! SSH shell.
//!
//! The login: what the user types is held back until the bastion has typed the stored login and
//! password at the target's prompts (so early keystrokes never land in the login prompt), then
//! passed on. If the target answers the password with a refusal or asks again, the user is told
//! and the session ends. If no prompt comes within [`PROMPT_WAIT`], the bastion stops waiting,
//! types nothing and lets the user's keystrokes through.

use std::sync::Arc;
use std::time::Duration;

use russh::server::Msg;
use russh::{Channel, ChannelMsg};
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

use super::channel::{Chan, Kind, refuse};
use super::target::Connected;

const IAC: u8 = 255;
const DONT: u8 = 254;
const DO: u8 = 253;
const WONT: u8 = 252;
const WILL: u8 = 251;
const SB: u8 = 250;
const SE: u8 = 240;
const ECHO: u8 = 1;
const SGA: u8 = 3;
const TTYPE: u8 = 24;
const NAWS: u8 = 31;
const CR: u8 = b'\r';
const LF: u8 = b'\n';
/// Longest subnegotiation kept; longer ones are cut (they are never ours to answer).
const MAX_SB: usize = 64;
/// How long the bastion waits for each login prompt before it gives up typing the login.
const PROMPT_WAIT: Duration = Duration::from_secs(15);
/// After the password: how long, and over how much output, a refusal is looked for.
const CHECK_WAIT: Duration = Duration::from_secs(20);
const CHECK_BYTES: usize = 4096;
/// What the user types before the login is done is kept up to this size (the rest is dropped).
const MAX_HELD: usize = 16 << 10;
/// The prompt text kept to find a prompt split across reads.
const MAX_SEEN: usize = 256;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum St {
    Data,
    Iac,
    Opt(u8),
    Sb,
    SbIac,
}

/// The Telnet option state machine: splits what the target sends into terminal data and the
/// answers owed to it. Options are tracked as in RFC 1143, so a request is answered only when
/// it changes something and the two sides never loop.
pub(super) struct Telnet {
    st: St,
    /// The last data byte was CR (a following NUL is dropped: NVT's CR NUL is a bare CR).
    cr: bool,
    sb: Vec<u8>,
    term: String,
    size: (u16, u16),
    /// Options enabled on our side (WILL) and on the target's (DO).
    us: [bool; 256],
    him: [bool; 256],
}

impl Telnet {
    pub(super) fn new(term: &str, cols: u16, rows: u16) -> Self {
        let term = if term.trim().is_empty() { "XTERM".to_owned() } else { term.trim().to_ascii_uppercase() };
        Telnet {
            st: St::Data,
            cr: false,
            sb: Vec::new(),
            term,
            size: (cols, rows),
            us: [false; 256],
            him: [false; 256],
        }
    }

    /// Feeds bytes from the target; returns (terminal data, bytes to send back).
    pub(super) fn receive(&mut self, input: &[u8]) -> (Vec<u8>, Vec<u8>) {
        let (mut data, mut reply) = (Vec::with_capacity(input.len()), Vec::new());
        for &b in input {
            self.st = match (self.st, b) {
                (St::Data, IAC) => St::Iac,
                (St::Data, 0) if self.cr => {
                    self.cr = false;
                    St::Data
                }
                (St::Data, _) => {
                    data.push(b);
                    self.cr = b == CR;
                    St::Data
                }
                (St::Iac, IAC) => {
                    data.push(IAC);
                    self.cr = false;
                    St::Data
                }
                (St::Iac, DO | DONT | WILL | WONT) => St::Opt(b),
                (St::Iac, SB) => {
                    self.sb.clear();
                    St::Sb
                }
                // NOP, GA, DM and the other commands carry nothing for a terminal.
                (St::Iac, _) => St::Data,
                (St::Opt(verb), opt) => {
                    self.answer(verb, opt, &mut reply);
                    St::Data
                }
                (St::Sb, IAC) => St::SbIac,
                (St::Sb, _) => {
                    self.keep_sb(b);
                    St::Sb
                }
                (St::SbIac, SE) => {
                    // TTYPE SEND: answer with our terminal type.
                    if self.sb.as_slice() == [TTYPE, 1] {
                        reply.extend_from_slice(&[IAC, SB, TTYPE, 0]);
                        reply.extend_from_slice(self.term.as_bytes());
                        reply.extend_from_slice(&[IAC, SE]);
                    }
                    St::Data
                }
                (St::SbIac, _) => {
                    // IAC IAC inside a subnegotiation is a data byte 255.
                    self.keep_sb(b);
                    St::Sb
                }
            };
        }
        (data, reply)
    }

    fn keep_sb(&mut self, b: u8) {
        if self.sb.len() < MAX_SB {
            self.sb.push(b);
        }
    }

    fn answer(&mut self, verb: u8, opt: u8, reply: &mut Vec<u8>) {
        let o = usize::from(opt);
        match verb {
            DO if matches!(opt, TTYPE | NAWS | SGA) => {
                if !self.us[o] {
                    self.us[o] = true;
                    reply.extend_from_slice(&[IAC, WILL, opt]);
                }
                // The size goes with the agreement, and again whenever the target asks.
                if opt == NAWS {
                    reply.extend_from_slice(&self.naws_bytes());
                }
            }
            DO => reply.extend_from_slice(&[IAC, WONT, opt]),
            DONT if self.us[o] => {
                self.us[o] = false;
                reply.extend_from_slice(&[IAC, WONT, opt]);
            }
            WILL if !matches!(opt, ECHO | SGA) => reply.extend_from_slice(&[IAC, DONT, opt]),
            WILL if !self.him[o] => {
                self.him[o] = true;
                reply.extend_from_slice(&[IAC, DO, opt]);
            }
            WONT if self.him[o] => {
                self.him[o] = false;
                reply.extend_from_slice(&[IAC, DONT, opt]);
            }
            _ => {}
        }
    }

    fn naws_bytes(&self) -> Vec<u8> {
        let mut out = vec![IAC, SB, NAWS];
        for b in self.size.0.to_be_bytes().into_iter().chain(self.size.1.to_be_bytes()) {
            out.push(b);
            if b == IAC {
                out.push(IAC);
            }
        }
        out.extend_from_slice(&[IAC, SE]);
        out
    }

    /// The window-size update to send after a resize (once the target asked for it).
    pub(super) fn resize(&mut self, cols: u16, rows: u16) -> Vec<u8> {
        self.size = (cols, rows);
        if self.us[usize::from(NAWS)] { self.naws_bytes() } else { Vec::new() }
    }
}

/// User bytes as Telnet data (NVT): IAC doubled, and a CR not followed by LF sent as CR NUL
/// (RFC 854; a terminal's Enter key is a bare CR, which some servers otherwise hold back).
pub(super) fn to_net(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 8);
    for (i, &b) in data.iter().enumerate() {
        out.push(b);
        match b {
            IAC => out.push(IAC),
            CR if data.get(i + 1) != Some(&LF) => out.push(0),
            _ => {}
        }
    }
    out
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for the login and password prompts; the user's input is held.
    Prompts,
    /// The password was typed: a refusal or a new prompt means the login failed.
    Checking {
        output: bool,
        bytes: usize,
    },
    Done,
}

#[derive(Debug, PartialEq, Eq)]
enum Step {
    Wait,
    /// Type this at the target.
    Type(String),
    /// The target refused the stored login.
    Refused,
}

/// Lines that mean the target refused a login (lower case), as login(1), BusyBox and common
/// network devices print them.
const REFUSALS: &[&str] = &[
    "login incorrect",
    "incorrect login",
    "incorrect password",
    "password incorrect",
    "login invalid",
    "invalid login",
    "invalid password",
    "authentication failed",
    "access denied",
    "bad password",
];

/// How a target asks for the login name (lower case, at the end of the last line).
const LOGIN_PROMPTS: &[&str] = &["login:", "username:", "user name:"];

/// Types the stored login at the target's prompts, once each, and watches the answer.
struct AutoLogin {
    login: Option<String>,
    password: Option<String>,
    /// The password once typed, to keep a target's echo of it from the user and the recording.
    typed: Option<String>,
    seen: String,
    phase: Phase,
    until: Instant,
}

impl AutoLogin {
    fn new(login: Option<String>, password: Option<String>, now: Instant) -> Self {
        let phase = if login.is_none() && password.is_none() { Phase::Done } else { Phase::Prompts };
        AutoLogin { login, password, typed: None, seen: String::new(), phase, until: now + PROMPT_WAIT }
    }

    /// Whether the user's input waits (the login is being typed).
    fn holding(&self) -> bool {
        self.phase == Phase::Prompts
    }

    /// When [`AutoLogin::expire`] is due, while there is something to wait for.
    fn deadline(&self) -> Option<Instant> {
        (self.phase != Phase::Done).then_some(self.until)
    }

    /// Past the deadline: stops waiting. True when no prompt came, so nothing was typed.
    fn expire(&mut self, now: Instant) -> bool {
        if now < self.until {
            return false;
        }
        let gave_up = self.holding();
        self.phase = Phase::Done;
        gave_up
    }

    /// The user typed at the terminal: once the target has answered the password, what she
    /// types is hers and no longer watched.
    fn user_typed(&mut self) {
        if let Phase::Checking { output: true, .. } = self.phase {
            self.phase = Phase::Done;
        }
    }

    /// Output of the target with an echo of the typed password masked (a target should not
    /// echo it; one that does must not show it to the user or the recording).
    fn mask(&self, data: Vec<u8>) -> Vec<u8> {
        let (Phase::Checking { .. }, Some(pw)) = (self.phase, &self.typed) else { return data };
        let pw = pw.as_bytes();
        if pw.len() < 4 || data.len() < pw.len() {
            return data;
        }
        let mut out = Vec::with_capacity(data.len());
        let mut i = 0;
        while i < data.len() {
            if data[i..].starts_with(pw) {
                out.extend(std::iter::repeat_n(b'*', pw.len()));
                i += pw.len();
            } else {
                out.push(data[i]);
                i += 1;
            }
        }
        out
    }

    /// Reads the target's terminal output: what to type, if anything.
    fn output(&mut self, data: &[u8], now: Instant) -> Step {
        match self.phase {
            Phase::Done => Step::Wait,
            Phase::Prompts => {
                self.see(data);
                let line = last_line(&self.seen);
                let (login_prompt, password_prompt) = (is_prompt(line, LOGIN_PROMPTS), is_prompt(line, &["password:"]));
                let text = if self.login.is_some() && login_prompt {
                    self.login.take()
                } else if self.password.is_some() && password_prompt {
                    // A target that asks for a password first has no login name to ask for.
                    self.login = None;
                    self.typed = self.password.take();
                    self.typed.clone()
                } else {
                    None
                };
                let Some(text) = text else { return Step::Wait };
                self.seen.clear();
                if self.login.is_none() && self.password.is_none() {
                    self.phase =
                        if self.typed.is_some() { Phase::Checking { output: false, bytes: 0 } } else { Phase::Done };
                    self.until = now + CHECK_WAIT;
                } else {
                    self.until = now + PROMPT_WAIT;
                }
                Step::Type(format!("{text}\r\n"))
            }
            Phase::Checking { bytes, .. } => {
                self.see(data);
                let line = last_line(&self.seen);
                if REFUSALS.iter().any(|r| self.seen.contains(r))
                    || is_prompt(line, LOGIN_PROMPTS)
                    || is_prompt(line, &["password:"])
                {
                    self.phase = Phase::Done;
                    return Step::Refused;
                }
                let bytes = bytes + data.len();
                self.phase = if bytes > CHECK_BYTES { Phase::Done } else { Phase::Checking { output: true, bytes } };
                Step::Wait
            }
        }
    }

    fn see(&mut self, data: &[u8]) {
        self.seen.push_str(&String::from_utf8_lossy(data).to_lowercase());
        if self.seen.len() > MAX_SEEN {
            let cut = self.seen.len() - MAX_SEEN;
            let cut = (cut..self.seen.len()).find(|i| self.seen.is_char_boundary(*i)).unwrap_or(0);
            self.seen.drain(..cut);
        }
    }
}

/// The text after the last line break, trimmed (empty right after a line break).
fn last_line(seen: &str) -> &str {
    seen.rsplit(['\r', '\n']).next().unwrap_or_default().trim_matches(|c: char| c.is_whitespace() || c == '\0')
}

/// Whether a line is a prompt ending in one of `words` (and not, say, "Last login: …").
fn is_prompt(line: &str, words: &[&str]) -> bool {
    !line.starts_with("last ") && words.iter().any(|w| line.ends_with(w))
}

/// Passes on what the user typed before the login was done.
async fn release(chan: &Chan, held: &mut Vec<u8>, wr: &mut (impl AsyncWrite + Unpin)) -> std::io::Result<()> {
    if held.is_empty() {
        return Ok(());
    }
    chan.record_input(held);
    let bytes = to_net(held);
    held.clear();
    wr.write_all(&bytes).await
}

/// Runs the user's terminal against the Telnet target until either side ends.
/// Bridges the user's channel to the Telnet target; `ahead` is what she typed ahead in the menu
/// after her choice, sent as if typed now (held back, like any key, while the login is typed).
pub(super) async fn run(chan: Arc<Chan>, t: Arc<Connected>, mut channel: Channel<Msg>, ahead: Vec<u8>) {
    let mut started = chan.started.subscribe();
    let kind = match tokio::time::timeout(Duration::from_secs(60), started.wait_for(Option::is_some)).await {
        Ok(Ok(k)) => k.clone(),
        _ => None,
    };
    if kind != Some(Kind::Shell) {
        return refuse(channel, "a Telnet target offers an interactive terminal only".into()).await;
    }
    let Some((io, cred)) = t.take_telnet().await else {
        return refuse(channel, "the Telnet connection is already in use".into()).await;
    };
    let target = t.service.name.clone();
    let pty = chan.pty_size();
    let (cols, rows) = pty.as_ref().map_or((80, 24), |p| (p.cols.min(9999) as u16, p.rows.min(9999) as u16));
    let term = pty.as_ref().map_or("xterm".to_owned(), |p| p.term.clone());
    chan.begin_recording(&t, &Kind::Shell).await;
    let secret = chan.b.state.master.open(&cred.secret).unwrap_or_default();
    let mut auto = AutoLogin::new(
        (!cred.login.is_empty()).then(|| cred.login.clone()),
        (cred.secret_kind == "password").then(|| String::from_utf8_lossy(&secret).into_owned()),
        Instant::now(),
    );
    let mut telnet = Telnet::new(&term, cols, rows);
    let (mut rd, mut wr) = tokio::io::split(io);
    let mut resized = chan.resized.subscribe();
    let cancel = chan.cancel.clone();
    let mut buf = vec![0u8; 16 << 10];
    let mut held: Vec<u8> = ahead;
    if !auto.holding() && release(&chan, &mut held, &mut wr).await.is_err() {
        return refuse(channel, "the Telnet target closed the connection".into()).await;
    }
    // The user's EOF (stdin closed, as with `ssh -tt < file`) ends nothing: Telnet has no
    // half-close, so the session goes on until the target closes it (as after `exit`).
    let mut user_eof = false;
    let mut status = None;
    let closed = "target closed the connection".to_owned();
    let ended = loop {
        let wake = auto.deadline();
        tokio::select! {
            n = rd.read(&mut buf) => {
                let n = match n { Ok(0) | Err(_) => break closed, Ok(n) => n };
                let (data, reply) = telnet.receive(&buf[..n]);
                if !reply.is_empty() && wr.write_all(&reply).await.is_err() {
                    break closed;
                }
                if data.is_empty() {
                    continue;
                }
                let data = auto.mask(data);
                chan.record_output(&data);
                if channel.data(&data[..]).await.is_err() {
                    break "user closed the channel".to_owned();
                }
                match auto.output(&data, Instant::now()) {
                    Step::Wait => {}
                    Step::Type(text) => {
                        if wr.write_all(&to_net(text.as_bytes())).await.is_err() {
                            break closed;
                        }
                        if !auto.holding() && release(&chan, &mut held, &mut wr).await.is_err() {
                            break closed;
                        }
                    }
                    Step::Refused => {
                        status = Some(1);
                        let why = format!(
                            "target_login_failed: `{target}` refused the bastion's login `{}`; an admin must check \
                             the credential (`sekisho ctl service login {target}`)",
                            cred.login
                        );
                        let text = format!(
                            "\r\nsekisho: {why}\r\nsekisho: ターゲット `{target}` が保存済みのログイン `{}` を拒否しました。\
                             管理者が認証情報を確認する必要があります\r\n",
                            cred.login
                        );
                        tracing::warn!(target = %target, login = %cred.login, "the Telnet target refused the stored login");
                        let _ = channel.extended_data(1, text.as_bytes()).await;
                        break why;
                    }
                }
            }
            msg = channel.wait() => match msg {
                Some(ChannelMsg::Data { data }) if !user_eof => {
                    if auto.holding() {
                        let room = MAX_HELD.saturating_sub(held.len());
                        held.extend_from_slice(&data[..data.len().min(room)]);
                        continue;
                    }
                    auto.user_typed();
                    // A window change the user made before typing reaches the target first
                    // (both wake this loop; `select!` may pick either).
                    if resized.has_changed().unwrap_or(false) {
                        let (c, r) = *resized.borrow_and_update();
                        let _ = wr.write_all(&telnet.resize(c.min(9999) as u16, r.min(9999) as u16)).await;
                    }
                    chan.record_input(&data);
                    if wr.write_all(&to_net(&data)).await.is_err() {
                        break closed;
                    }
                }
                Some(ChannelMsg::Eof) => user_eof = true,
                Some(ChannelMsg::Close) | None => break "user closed the channel".to_owned(),
                Some(_) => {}
            },
            () = tokio::time::sleep_until(wake.unwrap_or_else(Instant::now)), if wake.is_some() => {
                if auto.expire(Instant::now()) {
                    tracing::info!(target = %target, "no login prompt from the Telnet target; the stored login was not typed");
                    let text = format!(
                        "\r\nsekisho: `{target}` showed no login prompt; the stored login was not typed / \
                         `{target}` がログインプロンプトを表示しなかったため、保存済みのログインは入力されていません\r\n"
                    );
                    let _ = channel.extended_data(1, text.as_bytes()).await;
                    if release(&chan, &mut held, &mut wr).await.is_err() {
                        break closed;
                    }
                }
            }
            r = resized.changed() => {
                if r.is_ok() {
                    let (c, r) = *resized.borrow_and_update();
                    let _ = wr.write_all(&telnet.resize(c.min(9999) as u16, r.min(9999) as u16)).await;
                }
            }
            () = cancel.cancelled() => {
                status = Some(1);
                let by = chan.ended_by();
                let _ = channel.extended_data(1, format!("\r\nsekisho: {by}\r\n").as_bytes()).await;
                break by;
            }
        }
    };
    tracing::debug!(target = %target, ended = %ended, user_eof, "Telnet session ended");
    let _ = wr.shutdown().await;
    // The exit status goes before EOF and close, so an OpenSSH client reports it.
    let _ = channel.exit_status(status.unwrap_or(0)).await;
    let _ = channel.eof().await;
    let _ = channel.close().await;
    chan.finish(status, &ended).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_are_answered_and_data_is_unescaped() {
        let mut t = Telnet::new("xterm", 80, 24);
        let (data, reply) = t.receive(&[IAC, DO, TTYPE, b'h', IAC, IAC, b'i', IAC, WILL, ECHO, IAC, DO, 99]);
        assert_eq!(data, [b'h', IAC, b'i']);
        assert_eq!(reply, [IAC, WILL, TTYPE, IAC, DO, ECHO, IAC, WONT, 99]);
        let (_, reply) = t.receive(&[IAC, SB, TTYPE, 1, IAC, SE]);
        assert_eq!(reply, [&[IAC, SB, TTYPE, 0][..], b"XTERM", &[IAC, SE]].concat());
        let (_, reply) = t.receive(&[IAC, DO, NAWS]);
        assert_eq!(reply, [IAC, WILL, NAWS, IAC, SB, NAWS, 0, 80, 0, 24, IAC, SE]);
        assert_eq!(t.resize(255, 50), [IAC, SB, NAWS, 0, 255, 255, 0, 50, IAC, SE]);
    }

    /// What inetutils telnetd (Debian) sends on connect, and the answers it gets.
    #[test]
    fn a_real_telnetd_negotiation_is_answered_once_and_never_loops() {
        let mut t = Telnet::new("", 100, 30);
        let first = [IAC, WILL, 37, IAC, WILL, 38, IAC, DO, TTYPE, IAC, DO, 32, IAC, DO, 35, IAC, DO, 39, IAC, DO, 36];
        let (data, reply) = t.receive(&first);
        assert!(data.is_empty());
        let want = [IAC, DONT, 37, IAC, DONT, 38, IAC, WILL, TTYPE, IAC, WONT, 32, IAC, WONT, 35, IAC, WONT, 39];
        assert_eq!(reply, [&want[..], &[IAC, WONT, 36]].concat());
        let (_, reply) = t.receive(&[IAC, SB, TTYPE, 1, IAC, SE, IAC, WILL, SGA, IAC, DO, ECHO, IAC, DO, NAWS]);
        let want = [&[IAC, SB, TTYPE, 0][..], b"XTERM", &[IAC, SE, IAC, DO, SGA, IAC, WONT, ECHO, IAC, WILL, NAWS]];
        assert_eq!(reply, [&want.concat()[..], &[IAC, SB, NAWS, 0, 100, 0, 30, IAC, SE]].concat());
        // Asked again: no second agreement (the size is sent again), nothing for a repeated WILL.
        let (_, reply) = t.receive(&[IAC, WILL, ECHO, IAC, WILL, ECHO, IAC, DO, SGA, IAC, DO, SGA]);
        assert_eq!(reply, [IAC, DO, ECHO, IAC, WILL, SGA]);
        // Switched off: acknowledged once; NAWS updates stop after DONT NAWS.
        let (_, reply) = t.receive(&[IAC, WONT, ECHO, IAC, WONT, ECHO, IAC, DONT, NAWS, IAC, DONT, NAWS]);
        assert_eq!(reply, [IAC, DONT, ECHO, IAC, WONT, NAWS]);
        assert!(t.resize(120, 40).is_empty());
    }

    #[test]
    fn cr_nul_is_a_bare_cr_both_ways() {
        let mut t = Telnet::new("vt100", 80, 24);
        let (data, _) = t.receive(b"a\r\0b\r\nc\0");
        assert_eq!(data, b"a\rb\r\nc\0");
        // Split between reads.
        assert_eq!(t.receive(b"x\r").0, b"x\r");
        assert_eq!(t.receive(b"\0y").0, b"y");
        assert_eq!(to_net(b"ls\r"), b"ls\r\0");
        assert_eq!(to_net(b"ls\r\nls\n\xff"), b"ls\r\nls\n\xff\xff");
    }

    #[test]
    fn split_sequences_and_garbage_never_panic() {
        let mut t = Telnet::new("vt100", 80, 24);
        let mut data = Vec::new();
        for b in [IAC, SB, TTYPE, 1, IAC, SE, b'x'] {
            data.extend(t.receive(&[b]).0);
        }
        assert_eq!(data, b"x");
        let long: Vec<u8> =
            std::iter::once(IAC).chain(std::iter::once(SB)).chain(std::iter::repeat_n(7, 10_000)).collect();
        let (d, r) = t.receive(&long);
        assert!(d.is_empty() && r.is_empty());
        assert_eq!(to_net(&[1, IAC, 2]), [1, IAC, IAC, 2]);
    }

    fn auto(login: &str, pw: &str) -> AutoLogin {
        AutoLogin::new(Some(login.into()), Some(pw.into()), Instant::now())
    }

    #[test]
    fn the_login_is_typed_once_at_each_prompt() {
        let now = Instant::now();
        let mut a = auto("root", "pw");
        assert!(a.holding());
        assert_eq!(a.output(b"Debian GNU/Linux\r\nhost lo", now), Step::Wait);
        assert_eq!(a.output(b"gin: ", now), Step::Type("root\r\n".into()));
        assert!(a.holding());
        assert_eq!(a.output(b"root\r\n", now), Step::Wait);
        assert_eq!(a.output(b"Pass", now), Step::Wait);
        assert_eq!(a.output(b"word: ", now), Step::Type("pw\r\n".into()));
        assert!(!a.holding());
        assert_eq!(a.output(b"\r\nLast login: Mon", now), Step::Wait);
        assert_eq!(a.output(b" from 10.0.0.1\r\n$ ", now), Step::Wait);
        a.user_typed();
        assert_eq!(a.deadline(), None);
        assert_eq!(a.output(b"login: ", now), Step::Wait);
    }

    #[test]
    fn a_refused_login_is_seen() {
        let now = Instant::now();
        for answer in [&b"\r\nLogin incorrect\r\n"[..], b"\r\n% Authentication failed\r\n", b"\r\nhost login: "] {
            let mut a = auto("root", "pw");
            assert_eq!(a.output(b"login: ", now), Step::Type("root\r\n".into()));
            assert_eq!(a.output(b"Password:", now), Step::Type("pw\r\n".into()));
            assert_eq!(a.output(answer, now), Step::Refused, "{}", String::from_utf8_lossy(answer));
        }
        // Only a password asked for: no login name is typed.
        let mut a = auto("admin", "secret");
        assert_eq!(a.output(b"\r\nUser Access Verification\r\n\r\nPassword: ", now), Step::Type("secret\r\n".into()));
        assert_eq!(a.output(b"\r\n% Bad passwords\r\n", now), Step::Refused);
    }

    #[test]
    fn without_a_prompt_the_bastion_stops_waiting() {
        let now = Instant::now();
        let mut a = AutoLogin::new(Some("root".into()), Some("pw".into()), now);
        assert!(!a.expire(now));
        assert!(a.holding());
        assert!(a.expire(now + PROMPT_WAIT));
        assert!(!a.holding());
        assert_eq!(a.output(b"Password: ", now), Step::Wait, "nothing is typed after giving up");
        let none = AutoLogin::new(None, None, now);
        assert!(!none.holding() && none.deadline().is_none());
    }

    #[test]
    fn an_echoed_password_is_masked() {
        let now = Instant::now();
        let mut a = auto("root", "hunter22");
        let _ = a.output(b"login: ", now);
        let _ = a.output(b"Password: ", now);
        assert_eq!(a.mask(b"hunter22\r\n$ ".to_vec()), b"********\r\n$ ");
        a.output(b"$ ", now);
        a.user_typed();
        assert_eq!(a.mask(b"hunter22".to_vec()), b"hunter22", "the user's own text later is hers");
    }
}
