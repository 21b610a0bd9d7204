//! One session channel: the user's side, the target's side, and the recording between them.
//!
//! Each direction has its own task, so a user who stops reading never blocks what she types
//! (and the other way round); both feed the channel's [`Recorder`].

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use russh::client::Msg as ClientMsg;
use russh::server::{Handle, Msg};
use russh::{Channel, ChannelId, ChannelMsg, ChannelReadHalf, ChannelWriteHalf, Pty, Sig};

use super::Bastion;
use super::auth::Authed;
use super::recorder::Recorder;
use super::target::Connected;

/// What the channel runs, from its first request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Kind {
    Shell,
    Exec(String),
    Subsystem(String),
}

#[derive(Debug, Clone)]
pub(super) struct PtySize {
    pub(super) term: String,
    pub(super) cols: u32,
    pub(super) rows: u32,
    pub(super) pix_width: u32,
    pub(super) pix_height: u32,
}

impl PtySize {
    /// The size as a terminal can hold it: `struct winsize` has 16-bit fields, while the SSH
    /// protocol carries 32 bits, so anything larger is clamped before the target, the recording
    /// or a Telnet target sees it.
    pub(super) fn clamped(mut self) -> Self {
        (self.cols, self.rows) = (winsize(self.cols), winsize(self.rows));
        (self.pix_width, self.pix_height) = (winsize(self.pix_width), winsize(self.pix_height));
        self
    }
}

/// One terminal dimension, at most `u16::MAX`.
pub(super) fn winsize(v: u32) -> u32 {
    v.min(u32::from(u16::MAX))
}

type TargetWriter = Arc<ChannelWriteHalf<ClientMsg>>;

#[derive(Default)]
struct Setup {
    pty: Option<(PtySize, Vec<(Pty, u32)>)>,
    env: Vec<(String, String)>,
    kind: Option<Kind>,
}

pub(super) struct Chan {
    pub(super) b: Arc<Bastion>,
    pub(super) authed: Arc<Authed>,
    pub(super) session_id: String,
    id: ChannelId,
    setup: Mutex<Setup>,
    /// The target channel once attached. Requests are stored in `setup` and forwarded while
    /// this lock is held, and `attach` replays `setup` under it, so each request reaches the
    /// target exactly once and in order (sshd drops the connection on a second pty-req).
    target: tokio::sync::Mutex<Option<(TargetWriter, Arc<Connected>)>>,
    recorder: Mutex<Option<Recorder>>,
    /// Ends the channel when an auditor terminates the session.
    pub(super) cancel: tokio_util::sync::CancellationToken,
    /// Menu mode: the user's first request (shell or exec) wakes the menu.
    pub(super) started: tokio::sync::watch::Sender<Option<Kind>>,
    /// The terminal size after each window change (columns, rows), for Telnet targets.
    pub(super) resized: tokio::sync::watch::Sender<(u32, u32)>,
    /// Whether the user forwarded her agent on the connection (`ssh -A`).
    pub(super) agent_forwarded: tokio::sync::watch::Receiver<bool>,
}

impl Chan {
    pub(super) fn new(
        b: Arc<Bastion>,
        authed: Arc<Authed>,
        session_id: String,
        id: ChannelId,
        agent_forwarded: tokio::sync::watch::Receiver<bool>,
    ) -> Self {
        Chan {
            b,
            authed,
            session_id,
            id,
            setup: Mutex::default(),
            target: tokio::sync::Mutex::default(),
            recorder: Mutex::default(),
            cancel: tokio_util::sync::CancellationToken::new(),
            started: tokio::sync::watch::Sender::new(None),
            resized: tokio::sync::watch::Sender::new((80, 24)),
            agent_forwarded,
        }
    }

    /// The client's language (`LANG` or `LC_ALL` as sent with `SendEnv`), or empty.
    pub(super) fn lang(&self) -> String {
        let setup = self.setup.lock();
        let get = |n: &str| setup.env.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
        get("LC_ALL").or_else(|| get("LANG")).unwrap_or_default()
    }

    /// Starts recording what the channel runs on `t` (directly, for a Telnet target).
    pub(super) async fn begin_recording(&self, t: &Connected, kind: &Kind) {
        let pty = self.pty_size();
        let rec = Recorder::begin(self, t, kind, pty.as_ref()).await;
        *self.recorder.lock() = Some(rec);
    }

    pub(super) fn record_input(&self, data: &[u8]) {
        self.record(|r| r.input(data));
    }

    pub(super) fn record_output(&self, data: &[u8]) {
        self.record(|r| r.output(data));
    }

    /// Who ended the session, for the user's last line.
    pub(super) fn ended_by(&self) -> String {
        self.recorder.lock().as_ref().map(|r| r.live.ended_by()).unwrap_or_else(|| "session terminated".into())
    }

    /// Finishes the recording, if one runs.
    pub(super) async fn finish(&self, status: Option<u32>, ended: &str) {
        let rec = self.recorder.lock().take();
        if let Some(rec) = rec {
            rec.finish(status, ended).await;
        }
    }

    pub(super) fn pty_size(&self) -> Option<PtySize> {
        self.setup.lock().pty.as_ref().map(|(p, _)| p.clone())
    }

    pub(super) async fn pty(&self, size: PtySize, modes: Vec<(Pty, u32)>) {
        let size = size.clamped();
        let target = self.target.lock().await;
        self.setup.lock().pty = Some((size.clone(), modes.clone()));
        if let Some((w, _)) = target.as_ref() {
            let _ =
                w.request_pty(false, &size.term, size.cols, size.rows, size.pix_width, size.pix_height, &modes).await;
        }
    }

    pub(super) async fn env(&self, name: &str, value: &str) {
        let target = self.target.lock().await;
        self.setup.lock().env.push((name.to_owned(), value.to_owned()));
        if let Some((w, _)) = target.as_ref() {
            let _ = w.set_env(false, name, value).await;
        }
    }

    /// The user's shell, exec or subsystem request: passed on to an attached target (and
    /// recorded from here on), or handed to the menu.
    pub(super) async fn start(&self, kind: Kind) {
        let target = self.target.lock().await;
        self.setup.lock().kind = Some(kind.clone());
        match target.as_ref() {
            Some((w, t)) => self.begin(w, t, kind).await,
            None => {
                self.started.send_replace(Some(kind));
            }
        }
    }

    async fn begin(&self, w: &TargetWriter, t: &Connected, kind: Kind) {
        self.begin_recording(t, &kind).await;
        let _ = match kind {
            Kind::Shell => w.request_shell(false).await,
            Kind::Exec(cmd) => w.exec(false, cmd.into_bytes()).await,
            Kind::Subsystem(name) => w.request_subsystem(false, name).await,
        };
    }

    pub(super) async fn resize(&self, cols: u32, rows: u32, pix_width: u32, pix_height: u32) {
        let (cols, rows, pix_width, pix_height) =
            (winsize(cols), winsize(rows), winsize(pix_width), winsize(pix_height));
        if let Some((p, _)) = self.setup.lock().pty.as_mut() {
            (p.cols, p.rows) = (cols, rows);
        }
        if let Some(r) = self.recorder.lock().as_mut() {
            r.resize(cols, rows);
        }
        self.resized.send_replace((cols, rows));
        if let Some((w, _)) = self.target.lock().await.as_ref() {
            let _ = w.window_change(cols, rows, pix_width, pix_height).await;
        }
    }

    pub(super) async fn signal(&self, sig: Sig) {
        if let Some((w, _)) = self.target.lock().await.as_ref() {
            let _ = w.signal(sig).await;
        }
    }

    /// Connects the user's channel to a target channel: replays what the user asked for so far
    /// and what she typed ahead (in the menu, after her choice), then bridges both ways until
    /// either side closes.
    pub(super) fn attach(
        self: &Arc<Self>,
        t: Arc<Connected>,
        tc: Channel<ClientMsg>,
        handle: Handle,
        user: Channel<Msg>,
        typed: Vec<u8>,
    ) {
        let (read, write) = tc.split();
        let write = Arc::new(write);
        let chan = self.clone();
        tokio::spawn(async move {
            let mut target = chan.target.lock().await;
            let (pty, env, kind) = {
                let s = chan.setup.lock();
                (s.pty.clone(), s.env.clone(), s.kind.clone())
            };
            if let Some((size, modes)) = pty {
                let _ = write
                    .request_pty(false, &size.term, size.cols, size.rows, size.pix_width, size.pix_height, &modes)
                    .await;
            }
            for (n, v) in env {
                let _ = write.set_env(false, n, v).await;
            }
            let started = kind.is_some();
            if let Some(kind) = kind {
                chan.begin(&write, &t, kind).await;
            }
            if started && !typed.is_empty() {
                chan.record(|r| r.input(&typed));
                let _ = write.data(&typed[..]).await;
            }
            *target = Some((write.clone(), t));
            drop(target);
            pump(chan, user, read, write, handle).await;
        });
    }

    fn record(&self, f: impl FnOnce(&mut Recorder)) {
        if let Some(r) = self.recorder.lock().as_mut() {
            f(r);
        }
    }
}

/// Bridges the channel both ways, then finishes its recording.
async fn pump(
    chan: Arc<Chan>,
    user: Channel<Msg>,
    mut from_target: ChannelReadHalf,
    to_target: TargetWriter,
    handle: Handle,
) {
    let (mut from_user, to_user) = user.split();
    let id = chan.id;
    let up = async {
        while let Some(msg) = from_user.wait().await {
            match msg {
                ChannelMsg::Data { data } => {
                    chan.record(|r| r.input(&data));
                    if to_target.data_bytes(data).await.is_err() {
                        break;
                    }
                }
                ChannelMsg::ExtendedData { data, ext } => {
                    let _ = to_target.extended_data_bytes(ext, data).await;
                }
                ChannelMsg::Eof => {
                    let _ = to_target.eof().await;
                }
                ChannelMsg::Close => break,
                // Requests reach the target through the connection's handler, in order.
                _ => {}
            }
        }
        let _ = to_target.close().await;
    };
    let down = async {
        let mut status = None;
        // The target's EOF is held back until its exit status (or close): an OpenSSH client
        // closes the channel once EOF went both ways, and an exit status that arrives after
        // that close is lost (ssh then exits 255, scp 1). sshd often sends EOF first.
        let mut eof_held = false;
        while let Some(msg) = from_target.wait().await {
            match msg {
                ChannelMsg::Data { data } => {
                    chan.record(|r| r.output(&data));
                    if to_user.data_bytes(data).await.is_err() {
                        break;
                    }
                }
                ChannelMsg::ExtendedData { data, ext } => {
                    chan.record(|r| r.stderr(&data));
                    let _ = to_user.extended_data_bytes(ext, data).await;
                }
                ChannelMsg::ExitStatus { exit_status } => {
                    status = Some(exit_status);
                    let _ = to_user.exit_status(exit_status).await;
                    if std::mem::take(&mut eof_held) {
                        let _ = to_user.eof().await;
                    }
                }
                ChannelMsg::ExitSignal { signal_name, core_dumped, error_message, lang_tag } => {
                    let _ = handle.exit_signal_request(id, signal_name, core_dumped, error_message, lang_tag).await;
                    if std::mem::take(&mut eof_held) {
                        let _ = to_user.eof().await;
                    }
                }
                ChannelMsg::Eof => eof_held = true,
                ChannelMsg::Close => break,
                ChannelMsg::Failure => tracing::debug!("the target refused a channel request"),
                _ => {}
            }
        }
        status
    };
    let cancel = chan.cancel.clone();
    tokio::pin!(up, down);
    let (status, ended) = tokio::select! {
        s = &mut down => (s, "target closed the channel".to_owned()),
        () = &mut up => (tokio::time::timeout(Duration::from_secs(5), down).await.ok().flatten(), "user closed the channel".to_owned()),
        () = cancel.cancelled() => {
            let by = chan.ended_by();
            let _ = to_user.extended_data(1, format!("\r\nsekisho: {by}\r\n").as_bytes()).await;
            // The target's side ends too: its shell would otherwise run on (and on the target's
            // connection, which other channels of the user's connection may still use).
            let _ = to_target.close().await;
            (None, by)
        }
    };
    let _ = to_user.eof().await;
    // The evidence is stored before the client sees the close: once ssh has exited, the
    // recording's summary (commands, files, hash) can be searched.
    chan.finish(status, &ended).await;
    let _ = to_user.close().await;
}

/// Shows the user why she may not go on (in English and Japanese), then closes the channel.
pub(super) async fn refuse(channel: Channel<Msg>, why: String) {
    let text = format!("sekisho: access denied / アクセスは拒否されました: {why}\r\n");
    let _ = channel.extended_data(1, text.as_bytes()).await;
    let _ = channel.exit_status(1).await;
    let _ = channel.eof().await;
    // Give the client a moment to ask for its shell, so the message is shown before the close.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let _ = channel.close().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_sizes_are_clamped_to_what_a_terminal_holds() {
        let huge = PtySize { term: "xterm".into(), cols: u32::MAX, rows: 70_000, pix_width: u32::MAX, pix_height: 0 };
        let p = huge.clamped();
        assert_eq!((p.cols, p.rows, p.pix_width, p.pix_height), (65_535, 65_535, 65_535, 0));
        assert_eq!((winsize(0), winsize(80), winsize(65_535), winsize(65_536)), (0, 80, 65_535, 65_535));
    }
}
