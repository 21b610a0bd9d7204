//! Telnet targets: the bastion bridges the user's SSH terminal to a Telnet connection (RFC 854),
//! answers the basic options (terminal type, window size, echo, suppress-go-ahead; everything
//! else refused), types the target's sealed login when asked, and records the session like an
//! SSH shell.

use std::sync::Arc;
use std::time::Duration;

use russh::server::Msg;
use russh::{Channel, ChannelMsg};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

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
/// Longest subnegotiation kept; longer ones are cut (they are never ours to answer).
const MAX_SB: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum St {
    Data,
    Iac,
    Opt(u8),
    Sb,
    SbIac,
}

/// The Telnet option state machine: splits what the target sends into terminal data and the
/// answers owed to it.
pub(super) struct Telnet {
    st: St,
    sb: Vec<u8>,
    term: String,
    size: (u16, u16),
    naws: bool,
}

impl Telnet {
    pub(super) fn new(term: &str, cols: u16, rows: u16) -> Self {
        Telnet { st: St::Data, sb: Vec::new(), term: term.to_ascii_uppercase(), size: (cols, rows), naws: false }
    }

    /// Feeds bytes from the target; returns (terminal data, bytes to send back).
    pub(super) fn receive(&mut self, input: &[u8]) -> (Vec<u8>, Vec<u8>) {
        let (mut data, mut reply) = (Vec::with_capacity(input.len()), Vec::new());
        for &b in input {
            self.st = match (self.st, b) {
                (St::Data, IAC) => St::Iac,
                (St::Data, _) => {
                    data.push(b);
                    St::Data
                }
                (St::Iac, IAC) => {
                    data.push(IAC);
                    St::Data
                }
                (St::Iac, DO | DONT | WILL | WONT) => St::Opt(b),
                (St::Iac, SB) => {
                    self.sb.clear();
                    St::Sb
                }
                (St::Iac, _) => St::Data,
                (St::Opt(verb), opt) => {
                    self.answer(verb, opt, &mut reply);
                    St::Data
                }
                (St::Sb, IAC) => St::SbIac,
                (St::Sb, _) => {
                    if self.sb.len() < MAX_SB {
                        self.sb.push(b);
                    }
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
                (St::SbIac, _) => St::Sb,
            };
        }
        (data, reply)
    }

    fn answer(&mut self, verb: u8, opt: u8, reply: &mut Vec<u8>) {
        match (verb, opt) {
            (DO, TTYPE) => reply.extend_from_slice(&[IAC, WILL, TTYPE]),
            (DO, NAWS) => {
                reply.extend_from_slice(&[IAC, WILL, NAWS]);
                self.naws = true;
                reply.extend_from_slice(&self.naws_bytes());
            }
            (DO, _) => reply.extend_from_slice(&[IAC, WONT, opt]),
            (WILL, ECHO | SGA) => reply.extend_from_slice(&[IAC, DO, opt]),
            (WILL, _) => reply.extend_from_slice(&[IAC, DONT, opt]),
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
        if self.naws { self.naws_bytes() } else { Vec::new() }
    }
}

/// User bytes as Telnet data: IAC doubled.
pub(super) fn escape(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    for &b in data {
        out.push(b);
        if b == IAC {
            out.push(IAC);
        }
    }
    out
}

/// Types the stored login at the target's prompts, once each.
struct AutoLogin {
    login: Option<String>,
    password: Option<String>,
    seen: String,
}

impl AutoLogin {
    fn answer(&mut self, data: &[u8]) -> Option<String> {
        if self.login.is_none() && self.password.is_none() {
            return None;
        }
        self.seen.push_str(&String::from_utf8_lossy(data).to_lowercase());
        if self.seen.len() > 256 {
            let cut = self.seen.len() - 256;
            let cut = (cut..self.seen.len()).find(|i| self.seen.is_char_boundary(*i)).unwrap_or(0);
            self.seen.drain(..cut);
        }
        let tail = self.seen.trim_end();
        let out = if tail.ends_with("login:") || tail.ends_with("username:") {
            self.login.take()
        } else if tail.ends_with("password:") && self.login.is_none() {
            self.password.take()
        } else {
            None
        };
        if out.is_some() {
            self.seen.clear();
        }
        out.map(|s| format!("{s}\r\n"))
    }
}

/// Runs the user's terminal against the Telnet target until either side ends.
pub(super) async fn run(chan: Arc<Chan>, t: Arc<Connected>, mut channel: Channel<Msg>) {
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
    let pty = chan.pty_size();
    let (cols, rows) = pty.as_ref().map_or((80, 24), |p| (p.cols.min(9999) as u16, p.rows.min(9999) as u16));
    let term = pty.as_ref().map_or("xterm".to_owned(), |p| p.term.clone());
    chan.begin_recording(&t, &Kind::Shell).await;
    let secret = chan.b.state.master.open(&cred.secret).unwrap_or_default();
    let mut auto = AutoLogin {
        login: (!cred.login.is_empty()).then(|| cred.login.clone()),
        password: (cred.secret_kind == "password").then(|| String::from_utf8_lossy(&secret).into_owned()),
        seen: String::new(),
    };
    let mut telnet = Telnet::new(&term, cols, rows);
    let (mut rd, mut wr) = tokio::io::split(io);
    let mut resized = chan.resized.subscribe();
    let cancel = chan.cancel.clone();
    let mut buf = vec![0u8; 16 << 10];
    let mut status = None;
    let ended = loop {
        tokio::select! {
            n = rd.read(&mut buf) => {
                let n = match n { Ok(0) | Err(_) => break "target closed the connection".to_owned(), Ok(n) => n };
                let (data, reply) = telnet.receive(&buf[..n]);
                if !reply.is_empty() && wr.write_all(&reply).await.is_err() {
                    break "target closed the connection".to_owned();
                }
                if !data.is_empty() {
                    chan.record_output(&data);
                    if channel.data(&data[..]).await.is_err() {
                        break "user closed the channel".to_owned();
                    }
                    if let Some(answer) = auto.answer(&data) {
                        let _ = wr.write_all(answer.as_bytes()).await;
                    }
                }
            }
            msg = channel.wait() => match msg {
                Some(ChannelMsg::Data { data }) => {
                    chan.record_input(&data);
                    if wr.write_all(&escape(&data)).await.is_err() {
                        break "target closed the connection".to_owned();
                    }
                }
                Some(ChannelMsg::Eof | ChannelMsg::Close) | None => break "user closed the channel".to_owned(),
                Some(_) => {}
            },
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
    let _ = wr.shutdown().await;
    if let Some(s) = status {
        let _ = channel.exit_status(s).await;
    } else {
        let _ = channel.exit_status(0).await;
    }
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
        assert_eq!(escape(&[1, IAC, 2]), [1, IAC, IAC, 2]);
    }

    #[test]
    fn the_login_is_typed_once_at_each_prompt() {
        let mut a = AutoLogin { login: Some("root".into()), password: Some("pw".into()), seen: String::new() };
        assert_eq!(a.answer(b"Debian GNU/Linux\r\nhost lo"), None);
        assert_eq!(a.answer(b"gin: ").as_deref(), Some("root\r\n"));
        assert_eq!(a.answer(b"Password: ").as_deref(), Some("pw\r\n"));
        assert_eq!(a.answer(b"login: "), None);
    }
}
