//! Bastion recordings: search, details, replay in the terminal, live view and termination.

use std::io::Write;

use anyhow::anyhow;
use serde_json::Value;

use super::{Ctx, print_json, seg, table, time_cell};
use crate::cli::RecordingCmd;

pub(super) async fn run(ctx: &Ctx, cmd: RecordingCmd) -> anyhow::Result<()> {
    let lang = ctx.lang;
    match cmd {
        RecordingCmd::List { user, target, source_ip, protocol, command, since, until, limit } => {
            let zone = ctx.zone().await;
            let query: &super::client::Query<'_> = &[
                ("user", user),
                ("target", target),
                ("source_ip", source_ip),
                ("protocol", protocol),
                ("command", command),
                ("since", super::audit::time_param(since.as_deref(), lang, &zone)?),
                ("until", super::audit::time_param(until.as_deref(), lang, &zone)?),
                ("limit", Some(limit.to_string())),
            ];
            let v = ctx.client.get_query("/api/v1/recordings", query).await?;
            if ctx.json {
                print_json(&v);
                return Ok(());
            }
            let headers = ["ID", "STARTED", "USER", "TARGET", "KIND", "SOURCE", "COMMANDS"];
            let rows = table::rows_of(&v, |r| {
                let cmds = serde_json::from_str::<Value>(r["commands"].as_str().unwrap_or("[]")).unwrap_or_default();
                let mut listed: Vec<String> = cmds
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|c| c["cmd"].as_str().map(str::to_owned))
                    .collect();
                if let Some(c) = r["command"].as_str().filter(|c| !c.is_empty()) {
                    listed.insert(0, c.to_owned());
                }
                let kind = if r["live"].as_bool() == Some(true) {
                    format!("{} (live)", table::cell(&r["kind"]))
                } else {
                    table::cell(&r["kind"])
                };
                vec![
                    table::cell(&r["id"]),
                    time_cell(&r["started_at"], &zone),
                    table::cell(&r["user_name"]),
                    table::cell(&r["target"]),
                    kind,
                    table::cell(&r["source_ip"]),
                    listed.join("; "),
                ]
            });
            print!("{}", table::render(&headers, &rows));
        }
        RecordingCmd::Show { id } => {
            let zone = ctx.zone().await;
            let v = ctx.client.get(&format!("/api/v1/recordings/{}", seg(&id))).await?;
            if ctx.json {
                print_json(&v);
                return Ok(());
            }
            for k in ["id", "session_id", "user_name", "target", "protocol", "kind", "command", "source_ip", "sha256"] {
                println!("{k:11} {}", v[k].as_str().unwrap_or_default());
            }
            println!("{:11} {} .. {}", "time", time_cell(&v["started_at"], &zone), time_cell(&v["ended_at"], &zone));
            let parse = |k: &str| serde_json::from_str::<Value>(v[k].as_str().unwrap_or("[]")).unwrap_or_default();
            println!("{}", lang.pick("commands:", "コマンド:"));
            for c in parse("commands").as_array().into_iter().flatten() {
                println!("  {:>9.3}s  {}", c["t"].as_f64().unwrap_or_default(), c["cmd"].as_str().unwrap_or_default());
            }
            println!("{}", lang.pick("file operations:", "ファイル操作:"));
            for f in parse("files").as_array().into_iter().flatten() {
                println!(
                    "  {:>9.3}s  {:8} {} {} {} {}",
                    f["t"].as_f64().unwrap_or_default(),
                    f["op"].as_str().unwrap_or_default(),
                    f["path"].as_str().unwrap_or_default(),
                    f["to"].as_str().map(|t| format!("-> {t}")).unwrap_or_default(),
                    f["size"].as_u64().map(|s| format!("{s} B")).unwrap_or_default(),
                    f["sha256"].as_str().unwrap_or_default(),
                );
            }
        }
        RecordingCmd::Play { id, speed, max_wait, raw } => {
            let cast = ctx.client.get_text(&format!("/api/v1/recordings/{}/cast", seg(&id)), &[]).await?;
            if raw {
                print!("{cast}");
                return Ok(());
            }
            play(&cast, speed, max_wait).await?;
        }
        RecordingCmd::Watch { id, raw } => {
            let mut resp = ctx.client.stream(&format!("/api/v1/recordings/{}/live", seg(&id))).await?;
            let mut pending = Vec::new();
            let mut first = true;
            while let Some(chunk) = resp.chunk().await? {
                pending.extend_from_slice(&chunk);
                while let Some(i) = pending.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = pending.drain(..=i).collect();
                    let mut out = std::io::stdout().lock();
                    if raw {
                        out.write_all(&line)?;
                    } else if !first {
                        show_event(&mut out, &line)?;
                    }
                    out.flush()?;
                    first = false;
                }
            }
        }
        RecordingCmd::Kill { id } => {
            ctx.client.post(&format!("/api/v1/recordings/{}/terminate", seg(&id)), &Value::Null).await?;
            ctx.done();
        }
        RecordingCmd::Export { ids, output, passphrase_stdin, recipients } => {
            let mut body = serde_json::json!({ "ids": ids });
            if passphrase_stdin {
                body["passphrase"] = super::users::read_password(false, lang)?.into();
            } else {
                body["recipients"] = recipients.into();
            }
            let resp = ctx.client.stream_post("/api/v1/recordings/export", &body).await?;
            let bytes = super::download(ctx, resp, &output).await?;
            if ctx.json {
                print_json(&serde_json::json!({ "file": output.display().to_string(), "bytes": bytes }));
            } else {
                println!("{} {} ({bytes} bytes)", lang.pick("Wrote", "書き出しました:"), output.display());
            }
        }
    }
    Ok(())
}

/// Writes an output event's text (other events are not shown).
fn show_event(out: &mut impl Write, line: &[u8]) -> anyhow::Result<()> {
    let Ok(Value::Array(ev)) = serde_json::from_slice::<Value>(line) else { return Ok(()) };
    if ev.get(1).and_then(Value::as_str) == Some("o") {
        out.write_all(ev.get(2).and_then(Value::as_str).unwrap_or_default().as_bytes())?;
    }
    Ok(())
}

/// Replays an asciicast v2 file's output with its timing.
async fn play(cast: &str, speed: f64, max_wait: f64) -> anyhow::Result<()> {
    let speed = if speed > 0.0 { speed } else { 1.0 };
    let mut lines = cast.lines();
    let header: Value = serde_json::from_str(lines.next().unwrap_or_default())
        .map_err(|e| anyhow!("not an asciicast v2 recording: {e}"))?;
    if header["version"] != 2 {
        return Err(anyhow!("not an asciicast v2 recording (version {})", header["version"]));
    }
    let mut last = 0.0f64;
    for line in lines {
        let Ok(Value::Array(ev)) = serde_json::from_str::<Value>(line) else { continue };
        let t = ev.first().and_then(Value::as_f64).unwrap_or(last);
        let wait = ((t - last) / speed).clamp(0.0, max_wait.max(0.0));
        last = t;
        if wait > 0.0 {
            tokio::time::sleep(std::time::Duration::from_secs_f64(wait)).await;
        }
        let mut out = std::io::stdout().lock();
        show_event(&mut out, line.as_bytes())?;
        out.flush()?;
    }
    Ok(())
}
