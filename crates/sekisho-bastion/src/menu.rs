//! Menu mode (`ssh alice@relay`): a numbered list of the targets the user's policies allow now,
//! filtered by typing, in Japanese or English (from the client's `LANG`). `ssh alice@relay list`
//! prints the list and exits.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use russh::server::{Handle, Msg};
use russh::{Channel, ChannelMsg};

use super::channel::{Chan, Kind};
use super::{Bastion, channel, target, telnet};

/// Longest line the menu reads; more is garbage.
const MAX_LINE: usize = 256;
/// Most bytes typed ahead that are kept for the target once one is chosen.
const MAX_AHEAD: usize = 64 << 10;

struct Text {
    ja: bool,
}

impl Text {
    fn pick<'a>(&self, en: &'a str, ja: &'a str) -> &'a str {
        if self.ja { ja } else { en }
    }
}

pub(super) async fn run(b: Arc<Bastion>, chan: Arc<Chan>, mut channel: Channel<Msg>, handle: Handle) {
    let mut started = chan.started.subscribe();
    let kind = match tokio::time::timeout(Duration::from_secs(60), started.wait_for(Option::is_some)).await {
        Ok(Ok(k)) => k.clone(),
        _ => None,
    };
    let text = Text { ja: chan.lang().starts_with("ja") };
    match kind {
        Some(Kind::Shell) => {}
        Some(Kind::Exec(_)) => {
            let mut out = String::new();
            for s in &target::allowed_targets(&b.state, &chan.authed) {
                out.push_str(&format!("{}\t{}\n", s.name, s.protocol));
            }
            let _ = channel.data(out.as_bytes()).await;
            return leave(channel, "").await;
        }
        _ => {
            let why = text.pick(
                "the menu needs a terminal: use `ssh -t`, or `ssh user+target@relay`",
                "メニューには端末が必要です: `ssh -t` か `ssh user+target@relay` を使ってください",
            );
            return channel::refuse(channel, why.to_owned()).await;
        }
    }
    let mut keys = Keys::default();
    let mut filter = String::new();
    loop {
        // Decided again each time: policies may depend on the time of day.
        let targets = target::allowed_targets(&b.state, &chan.authed);
        let shown: Vec<&sekisho_store::Service> =
            targets.iter().filter(|s| filter.is_empty() || s.name.contains(filter.as_str())).collect();
        let mut screen = format!(
            "\r\n{} {}\r\n",
            text.pick("Sekisho bastion - targets for", "Sekisho 踏み台 - 接続先:"),
            chan.authed.user
        );
        if shown.is_empty() && filter.is_empty() {
            screen
                .push_str(text.pick("  (no target is open to you now)\r\n", "  (今接続できる接続先はありません)\r\n"));
        } else if shown.is_empty() {
            screen.push_str(&format!(
                "{}`{filter}`{}\r\n",
                text.pick("  (no target matches ", "  ("),
                text.pick("; Enter shows all)", " に該当する接続先はありません。Enter で全件表示)"),
            ));
        }
        for (i, s) in shown.iter().enumerate() {
            screen.push_str(&format!("  {:>3}) {} [{}]\r\n", i + 1, s.name, s.protocol));
        }
        screen.push_str(
            text.pick("Number to connect, text to filter, q to quit: ", "番号で接続、文字で絞り込み、q で終了: "),
        );
        if channel.data(screen.as_bytes()).await.is_err() {
            return;
        }
        let (line, ignored) = match keys.read_line(&mut channel).await {
            Some(Key::Line(line, ignored)) => (line.trim().to_owned(), ignored),
            Some(Key::Leave) => return leave(channel, "\r\n").await,
            None => return leave(channel, "").await,
        };
        if line == "q" || line == "quit" || line == "exit" {
            return leave(channel, "\r\n").await;
        }
        let Ok(number) = line.parse::<usize>() else {
            // A filter, of the characters names have; an empty one shows all targets again.
            filter = line.chars().filter(|c| c.is_alphanumeric() || "-_.".contains(*c)).collect();
            if filter.is_empty() && (ignored || !line.is_empty()) {
                let msg = text.pick(
                    "Only a number or part of a name can be typed here; other keys do nothing.\r\n",
                    "ここでは番号か名前の一部だけを入力できます (ほかのキーは使えません)。\r\n",
                );
                let _ = channel.data(msg.as_bytes()).await;
            }
            continue;
        };
        let Some(chosen) = number.checked_sub(1).and_then(|i| shown.get(i)).map(|s| s.name.clone()) else {
            let msg = match shown.len() {
                0 => text.pick("No such number.\r\n", "その番号はありません。\r\n").to_owned(),
                n => format!("{} (1-{n})\r\n", text.pick("No such number.", "その番号はありません。")),
            };
            let _ = channel.data(msg.as_bytes()).await;
            continue;
        };
        match target::open(&b, target::UserAgent { handle: &handle, chan: &chan }, &chosen).await {
            Ok(t) => {
                let t = Arc::new(t);
                let _ = channel.data(format!("\r\n-> {chosen}\r\n").as_bytes()).await;
                if t.is_telnet() {
                    return telnet::run(chan, t, channel, keys.ahead()).await;
                }
                match t.open_channel().await {
                    Ok(tc) => return chan.attach(t, tc, handle, channel, keys.ahead()),
                    Err(e) => {
                        let _ = channel.data(format!("sekisho: {e}\r\n").as_bytes()).await;
                    }
                }
            }
            Err(why) => {
                let _ = channel.data(format!("\r\nsekisho: {why}\r\n").as_bytes()).await;
            }
        }
    }
}

/// Ends the menu as the user asked: `last` shown, exit status 0.
async fn leave(channel: Channel<Msg>, last: &str) {
    if !last.is_empty() {
        let _ = channel.data(last.as_bytes()).await;
    }
    let _ = channel.exit_status(0).await;
    let _ = channel.eof().await;
    let _ = channel.close().await;
}

enum Key {
    /// A line, and whether keys were left out of it (escape sequences, control characters).
    Line(String, bool),
    /// Ctrl-C or Ctrl-D.
    Leave,
}

/// Where the reader is inside an escape sequence (arrow, function and Alt keys).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum Esc {
    #[default]
    None,
    /// After ESC.
    Start,
    /// Inside `ESC [` up to its final byte.
    Csi,
    /// After `ESC O`: one more byte.
    Ss3,
}

/// What the user typed, read a line at a time. Bytes after a line stay for the next line or,
/// once a target is chosen, for the target: input typed ahead (or pasted) is not lost.
#[derive(Default)]
struct Keys {
    pending: VecDeque<u8>,
    /// The line so far, and whether keys were left out of it.
    line: String,
    ignored: bool,
    esc: Esc,
    /// The last line ended with CR: a LF right after it belongs to the same line end.
    after_cr: bool,
}

impl Keys {
    /// Reads one line, echoing it; `None` when the channel ends.
    async fn read_line(&mut self, channel: &mut Channel<Msg>) -> Option<Key> {
        let mut echo = Vec::new();
        loop {
            let key = self.next(&mut echo);
            if !echo.is_empty() {
                let _ = channel.data(&echo[..]).await;
                echo.clear();
            }
            if key.is_some() {
                return key;
            }
            match channel.wait().await? {
                ChannelMsg::Data { data } => self.push(&data),
                ChannelMsg::Eof | ChannelMsg::Close => return None,
                _ => {}
            }
        }
    }

    fn push(&mut self, data: &[u8]) {
        let room = MAX_AHEAD.saturating_sub(self.pending.len());
        self.pending.extend(data.iter().take(room));
    }

    /// The next line or leave from what is pending, adding what to echo; `None` if more is needed.
    fn next(&mut self, echo: &mut Vec<u8>) -> Option<Key> {
        while let Some(byte) = self.pending.pop_front() {
            if std::mem::take(&mut self.after_cr) && byte == b'\n' {
                continue;
            }
            // Escape sequences (arrow, function and Alt keys) are left out whole; a control
            // character inside one ends it and counts as itself.
            let printable = (0x20..=0x7e).contains(&byte);
            let in_sequence = match self.esc {
                Esc::None => false,
                Esc::Start => {
                    self.esc = match byte {
                        b'[' => Esc::Csi,
                        b'O' => Esc::Ss3,
                        _ => Esc::None,
                    };
                    printable
                }
                Esc::Csi => {
                    if !(0x20..=0x3f).contains(&byte) {
                        self.esc = Esc::None;
                    }
                    printable
                }
                Esc::Ss3 => {
                    self.esc = Esc::None;
                    printable
                }
            };
            if in_sequence {
                continue;
            }
            match byte {
                0x1b => {
                    self.esc = Esc::Start;
                    self.ignored = true;
                }
                b'\r' | b'\n' => {
                    self.after_cr = byte == b'\r';
                    echo.extend_from_slice(b"\r\n");
                    let line = std::mem::take(&mut self.line);
                    return Some(Key::Line(line, std::mem::take(&mut self.ignored)));
                }
                3 | 4 => return Some(Key::Leave),
                8 | 127 => {
                    if self.line.pop().is_some() {
                        echo.extend_from_slice(b"\x08 \x08");
                    }
                }
                b' '..=b'~' if self.line.len() < MAX_LINE => {
                    self.line.push(byte as char);
                    echo.push(byte);
                }
                _ => self.ignored = true,
            }
        }
        None
    }

    /// What was typed after the last line read, for the chosen target.
    fn ahead(mut self) -> Vec<u8> {
        if self.after_cr && self.pending.front() == Some(&b'\n') {
            self.pending.pop_front();
        }
        self.pending.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(input: &[&[u8]]) -> (Vec<(String, bool)>, Vec<u8>, Keys) {
        let mut keys = Keys::default();
        let (mut out, mut echo) = (Vec::new(), Vec::new());
        for chunk in input {
            keys.push(chunk);
            while let Some(key) = keys.next(&mut echo) {
                match key {
                    Key::Line(l, ignored) => out.push((l, ignored)),
                    Key::Leave => out.push(("<leave>".into(), false)),
                }
            }
        }
        (out, echo, keys)
    }

    #[test]
    fn lines_keep_what_follows_and_echo_what_is_typed() {
        let (out, echo, keys) = lines(&[b"xyz\n9", b"9\r\n2\necho hi\n"]);
        assert_eq!(out, [("xyz".into(), false), ("99".into(), false), ("2".into(), false), ("echo hi".into(), false)]);
        assert_eq!(echo, b"xyz\r\n99\r\n2\r\necho hi\r\n");
        assert!(keys.ahead().is_empty());
        let mut keys = Keys::default();
        keys.push(b"1\r\nls -l\r");
        assert!(matches!(keys.next(&mut Vec::new()), Some(Key::Line(l, false)) if l == "1"));
        assert_eq!(keys.ahead(), b"ls -l\r", "typed ahead for the target, CR LF taken as one line end");
    }

    #[test]
    fn escape_sequences_and_control_keys_are_left_out_whole() {
        // Up, SS3 down, F5, Ctrl-Right, Alt+x, Ctrl-A, a sequence split across reads, a lone ESC
        // before Enter.
        let (out, echo, _) = lines(&[b"\x1b[A\x1bOBw\x1b[15~e\x1b[1;5Cb\x1bx\x01\x1b", b"[", b"Z\n\x1b\n"]);
        assert_eq!(out, [("web".into(), true), (String::new(), true)]);
        assert_eq!(echo, b"web\r\n\r\n");
        let (out, echo, _) = lines(&[b"wex\x7f\x08b\x7f\x7f\x7f\x7f\n", "ウェブ\n".as_bytes()]);
        assert_eq!(out, [(String::new(), false), (String::new(), true)]);
        assert_eq!(&echo[..5], b"wex\x08 ");
    }

    #[test]
    fn control_c_and_d_leave_and_long_lines_stop_growing() {
        let (out, _, _) = lines(&[b"abc\x03"]);
        assert_eq!(out, [("<leave>".into(), false)]);
        let (out, _, _) = lines(&[b"\x04"]);
        assert_eq!(out, [("<leave>".into(), false)]);
        let long = vec![b'a'; 10_000];
        let (out, echo, _) = lines(&[&long, b"\n"]);
        assert_eq!(out[0].0.len(), MAX_LINE);
        assert!(out[0].1, "the rest is left out, and said so");
        assert_eq!(echo.len(), MAX_LINE + 2);
        let mut keys = Keys::default();
        keys.push(&vec![b'x'; 2 * MAX_AHEAD]);
        assert_eq!(keys.pending.len(), MAX_AHEAD, "typed-ahead input is bounded");
    }
}
