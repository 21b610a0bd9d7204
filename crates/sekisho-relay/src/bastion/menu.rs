//! Menu mode (`ssh alice@relay`): a numbered list of the targets the user's policies allow now,
//! filtered by typing, in Japanese or English (from the client's `LANG`). `ssh alice@relay list`
//! prints the list and exits.

use std::sync::Arc;
use std::time::Duration;

use russh::server::{Handle, Msg};
use russh::{Channel, ChannelMsg};

use super::channel::{Chan, Kind};
use super::{Bastion, channel, target, telnet};

/// Longest line the menu reads; more is garbage.
const MAX_LINE: usize = 256;

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
    let targets = target::allowed_targets(&b.state, &chan.authed);
    match kind {
        Some(Kind::Shell) => {}
        Some(Kind::Exec(_)) => {
            let mut out = String::new();
            for s in &targets {
                out.push_str(&format!("{}\t{}\n", s.name, s.protocol));
            }
            let _ = channel.data(out.as_bytes()).await;
            let _ = channel.exit_status(0).await;
            let _ = channel.eof().await;
            let _ = channel.close().await;
            return;
        }
        _ => {
            let why = text.pick(
                "the menu needs a terminal: use `ssh -t`, or `ssh user+target@relay`",
                "メニューには端末が必要です: `ssh -t` か `ssh user+target@relay` を使ってください",
            );
            return channel::refuse(channel, why.to_owned()).await;
        }
    }
    let mut filter = String::new();
    loop {
        let shown: Vec<&sekisho_store::Service> =
            targets.iter().filter(|s| filter.is_empty() || s.name.contains(filter.as_str())).collect();
        let mut screen = format!(
            "\r\n{} {}\r\n",
            text.pick("Sekisho bastion - targets for", "Sekisho 踏み台 - 接続先:"),
            chan.authed.user
        );
        if shown.is_empty() {
            screen.push_str(text.pick("  (no target matches)\r\n", "  (該当する接続先はありません)\r\n"));
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
        let Some(line) = read_line(&mut channel).await else {
            let _ = channel.close().await;
            return;
        };
        let line = line.trim().to_owned();
        if line == "q" || line == "quit" || line == "exit" {
            let _ = channel.data(&b"\r\n"[..]).await;
            let _ = channel.exit_status(0).await;
            let _ = channel.eof().await;
            let _ = channel.close().await;
            return;
        }
        let chosen = match line.parse::<usize>() {
            Ok(n) if n >= 1 && n <= shown.len() => shown[n - 1].name.clone(),
            Ok(_) => {
                let msg = text.pick("No such number.\r\n", "その番号はありません。\r\n");
                let _ = channel.data(msg.as_bytes()).await;
                continue;
            }
            Err(_) => {
                filter = line.chars().filter(|c| c.is_alphanumeric() || "-_.".contains(*c)).collect();
                continue;
            }
        };
        match target::open(&b, &chan.authed, &chosen).await {
            Ok(t) => {
                let t = Arc::new(t);
                let _ = channel.data(format!("\r\n-> {chosen}\r\n").as_bytes()).await;
                if t.is_telnet() {
                    return telnet::run(chan, t, channel).await;
                }
                match t.open_channel().await {
                    Ok(tc) => return chan.attach(t, tc, handle, channel),
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

/// Reads one line, echoing it; `None` when the user leaves (Ctrl-C, Ctrl-D, close).
async fn read_line(channel: &mut Channel<Msg>) -> Option<String> {
    let mut line = String::new();
    loop {
        let data = match channel.wait().await? {
            ChannelMsg::Data { data } => data,
            ChannelMsg::Eof | ChannelMsg::Close => return None,
            _ => continue,
        };
        let mut echo = Vec::new();
        for &byte in data.iter() {
            match byte {
                b'\r' | b'\n' => {
                    let _ = channel.data(&b"\r\n"[..]).await;
                    return Some(line);
                }
                3 | 4 => return None,
                8 | 127 if line.pop().is_some() => echo.extend_from_slice(b"\x08 \x08"),
                b' '..=b'~' if line.len() < MAX_LINE => {
                    line.push(byte as char);
                    echo.push(byte);
                }
                _ => {}
            }
        }
        if !echo.is_empty() {
            let _ = channel.data(&echo[..]).await;
        }
    }
}
