//! Telnet targets: the bastion bridges the user's SSH terminal to a Telnet connection (RFC 854),
//! answers the basic options (terminal type, window size, echo, suppress-go-ahead; everything
//! else refused), types the target's sealed login when asked, and records the session like an
//! SSH shell.
//!
//! The login: what the user types is held back until the bastion has typed the stored login and
//! password at the target's prompts (so early keystrokes never land in the login prompt), then
//! passed on. If the target answers the password with a refusal or asks again, the user is told
//! and the session ends. If no prompt comes within [`autologin::PROMPT_WAIT`], the bastion stops waiting,
//! types nothing and lets the user's keystrokes through.

use std::sync::Arc;
use std::time::Duration;

use russh::server::Msg;
use russh::{Channel, ChannelMsg};
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

use super::channel::{Chan, Kind, refuse};
use super::target::Connected;

mod autologin;

use autologin::{AutoLogin, Step};

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
/// What the user types before the login is done is kept up to this size (the rest is dropped).
const MAX_HELD: usize = 16 << 10;

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

/// The way to the target. Once it stops taking data (it closed, say after `exit`), nothing more
/// is sent, but the session goes on until everything the target sent before closing has been
/// read and shown.
struct ToTarget<W> {
    wr: W,
    gone: bool,
}

impl<W: AsyncWrite + Unpin> ToTarget<W> {
    async fn send(&mut self, bytes: &[u8]) {
        if !self.gone && !bytes.is_empty() && self.wr.write_all(bytes).await.is_err() {
            self.gone = true;
        }
    }

    /// Passes on what the user typed before the login was done.
    async fn release(&mut self, chan: &Chan, held: &mut Vec<u8>) {
        if held.is_empty() {
            return;
        }
        chan.record_input(held);
        let bytes = to_net(held);
        held.clear();
        self.send(&bytes).await;
    }
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
    // A stored password is unsealed or refused by name, never typed as empty.
    let password = match cred.secret_kind.as_str() {
        "password" => match chan.b.state.master.open(&cred.secret) {
            Some(secret) => Some(String::from_utf8_lossy(&secret).into_owned()),
            None => {
                let why = format!(
                    "bad_credential: the stored login of `{target}` cannot be unsealed with this relay's master key"
                );
                return refuse(channel, why).await;
            }
        },
        _ => None,
    };
    chan.begin_recording(&t, &Kind::Shell).await;
    let mut auto = AutoLogin::new((!cred.login.is_empty()).then(|| cred.login.clone()), password, Instant::now());
    let mut telnet = Telnet::new(&term, cols, rows);
    let (mut rd, wr) = tokio::io::split(io);
    let mut to = ToTarget { wr, gone: false };
    let mut resized = chan.resized.subscribe();
    let cancel = chan.cancel.clone();
    let mut buf = vec![0u8; 16 << 10];
    let mut held: Vec<u8> = ahead;
    if !auto.holding() {
        to.release(&chan, &mut held).await;
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
                to.send(&reply).await;
                if data.is_empty() {
                    continue;
                }
                let data = bytes::Bytes::from(auto.mask(data));
                chan.record_output(&data);
                if channel.data_bytes(data.clone()).await.is_err() {
                    break "user closed the channel".to_owned();
                }
                match auto.output(&data, Instant::now()) {
                    Step::Wait => {}
                    Step::Type(text) => {
                        to.send(&to_net(text.as_bytes())).await;
                        if !auto.holding() {
                            to.release(&chan, &mut held).await;
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
                        to.send(&telnet.resize(c.min(9999) as u16, r.min(9999) as u16)).await;
                    }
                    chan.record_input(&data);
                    to.send(&to_net(&data)).await;
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
                    to.release(&chan, &mut held).await;
                }
            }
            r = resized.changed() => {
                if r.is_ok() {
                    let (c, r) = *resized.borrow_and_update();
                    to.send(&telnet.resize(c.min(9999) as u16, r.min(9999) as u16)).await;
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
    let _ = to.wr.shutdown().await;
    // The exit status goes before EOF and close, so an OpenSSH client reports it.
    let _ = channel.exit_status(status.unwrap_or(0)).await;
    let _ = channel.eof().await;
    // Evidence first, as for SSH targets: stored before the client sees the close.
    chan.finish(status, &ended).await;
    let _ = channel.close().await;
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
}
