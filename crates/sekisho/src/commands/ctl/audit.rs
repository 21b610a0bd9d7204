//! The audit log through the API: search and export, and chain verification.

use std::path::Path;

use anyhow::anyhow;
use serde_json::Value;

use super::{Ctx, parse, print_json, table};
use crate::cli::{AuditFormat, AuditQuery, CtlAuditCmd};
use crate::i18n::Lang;

pub(super) async fn run(ctx: &Ctx, cmd: CtlAuditCmd) -> anyhow::Result<()> {
    match cmd {
        CtlAuditCmd::Search { query, format, output, tz } => search(ctx, &query, format, output.as_deref(), tz).await,
        CtlAuditCmd::Verify { all } => verify(ctx, all).await,
    }
}

/// The old `ctl events`: the newest events as a table (or JSON).
pub(super) async fn events(ctx: &Ctx, limit: u32) -> anyhow::Result<()> {
    let query = AuditQuery { limit: Some(limit), ..AuditQuery::default() };
    search(ctx, &query, AuditFormat::Table, None, None).await
}

async fn search(
    ctx: &Ctx,
    q: &AuditQuery,
    format: AuditFormat,
    output: Option<&Path>,
    tz: Option<String>,
) -> anyhow::Result<()> {
    let lang = ctx.lang;
    let format = if ctx.json && format == AuditFormat::Table { AuditFormat::Json } else { format };
    let zone = match &tz {
        Some(text) => parse::parse_zone(text).ok_or_else(|| {
            anyhow!(
                "{} `{text}`",
                lang.pick(
                    "--tz must be a time zone such as Asia/Tokyo, or an offset such as +09:00:",
                    "--tz には Asia/Tokyo のようなタイムゾーンか、+09:00 のようなオフセットを指定してください:"
                )
            )
        })?,
        None => ctx.zone().await,
    };
    let (from, to) = (time_param(q.from.as_deref(), lang, &zone)?, time_param(q.to.as_deref(), lang, &zone)?);
    let wire_format = match format {
        AuditFormat::Table | AuditFormat::Json => "json",
        AuditFormat::Jsonl => "jsonl",
        AuditFormat::Csv => "csv",
    };
    let query = [
        ("from", from),
        ("to", to),
        ("subject", q.user.clone()),
        ("target", q.service.clone()),
        ("decision", q.decision.clone()),
        ("source_ip", q.ip.clone()),
        ("country", q.country.clone()),
        ("kind", q.kind.clone()),
        ("path", q.path.clone()),
        ("domain", q.domain.clone()),
        ("limit", q.limit.map(|n| n.to_string())),
        ("format", Some(wire_format.to_owned())),
    ];
    // An export to a file is written as it arrives, with a byte counter on a terminal.
    if let (Some(path), AuditFormat::Jsonl | AuditFormat::Csv) = (output, format) {
        let resp = ctx.client.stream_query("/api/v1/audit", &query).await?;
        super::download(ctx, resp, path).await?;
        return Ok(());
    }
    let text = match format {
        AuditFormat::Jsonl | AuditFormat::Csv => ctx.client.get_text("/api/v1/audit", &query).await?,
        AuditFormat::Json => {
            let v = ctx.client.get_query("/api/v1/audit", &query).await?;
            format!("{}\n", serde_json::to_string_pretty(&v)?)
        }
        AuditFormat::Table => render_table(&ctx.client.get_query("/api/v1/audit", &query).await?, &zone),
    };
    match output {
        Some(path) => std::fs::write(path, text).map_err(|e| ctx.lang.file_error(true, path, &e)),
        None => {
            print!("{text}");
            Ok(())
        }
    }
}

/// `--from`/`--to` → ms since the epoch, as the query wants it.
/// Without an offset, times are on `zone`'s clock.
pub(super) fn time_param(text: Option<&str>, lang: Lang, zone: &jiff::tz::TimeZone) -> anyhow::Result<Option<String>> {
    let Some(text) = text else { return Ok(None) };
    let ms = parse::parse_time_ms(text, zone).ok_or_else(|| {
        anyhow!(
            "{} `{text}`",
            lang.pick(
                "times look like 2026-11-23T09:00+09:00, 2026-11-23 09:00 (your zone), 2026-11-23 or ms since the epoch:",
                "時刻は 2026-11-23T09:00+09:00、2026-11-23 09:00 (自分のタイムゾーン)、2026-11-23、またはエポックからのミリ秒で指定してください:"
            )
        )
    })?;
    Ok(Some(ms.to_string()))
}

fn render_table(rows: &Value, zone: &jiff::tz::TimeZone) -> String {
    let headers = ["AT", "KIND", "DECISION", "SUBJECT", "TARGET", "REQUEST", "POLICY", "REASON", "SOURCE", "COUNTRY"];
    let cells = table::rows_of(rows, |e| {
        let at = e["at"].as_i64().map_or_else(|| "-".to_owned(), |ms| parse::format_time(ms, zone));
        let mut row = vec![at];
        row.extend(["kind", "decision", "subject", "target"].iter().map(|k| table::cell(&e[*k])));
        row.push(request_cell(e));
        row.extend(["policy_id", "reason", "source_ip", "country"].iter().map(|k| table::cell(&e[*k])));
        row
    });
    table::render(&headers, &cells)
}

/// A browser request's `METHOD /path STATUS` from the event's detail; `-` for other events.
fn request_cell(e: &Value) -> String {
    let detail: Value = e["detail"].as_str().and_then(|d| serde_json::from_str(d).ok()).unwrap_or(Value::Null);
    match (detail["method"].as_str(), detail["path"].as_str()) {
        (Some(method), Some(path)) => match detail["status"].as_u64() {
            Some(status) => format!("{method} {path} {status}"),
            None => format!("{method} {path}"),
        },
        _ => "-".to_owned(),
    }
}

async fn verify(ctx: &Ctx, all: bool) -> anyhow::Result<()> {
    let lang = ctx.lang;
    let zone = ctx.zone().await;
    let path = if all { "/api/v1/audit/verify?all=true" } else { "/api/v1/audit/verify" };
    let report = ctx.client.post(path, &serde_json::json!({})).await?;
    if ctx.json {
        print_json(&report);
    } else {
        for t in report["tenants"].as_array().into_iter().flatten() {
            println!("{}", tenant_line(t, lang));
            for line in stream_lines(t, lang, &zone) {
                println!("{line}");
            }
        }
    }
    if report["ok"] == true {
        Ok(())
    } else {
        Err(anyhow!(lang.pick(
            "the audit log failed verification: events were altered, inserted or deleted",
            "監査ログの検証に失敗しました: イベントが改ざん・挿入・削除されています"
        )))
    }
}

/// The streams a verification report found open (opened, never closed) and those closed as
/// open at a crash, one line each after the tenant's line.
pub(crate) fn stream_lines(t: &Value, lang: Lang, zone: &jiff::tz::TimeZone) -> Vec<String> {
    let mut lines = Vec::new();
    let crashed = t["closed_at_crash"].as_i64().unwrap_or(0);
    if crashed > 0 {
        lines.push(format!(
            "  {crashed} {}",
            lang.pick(
                "streams were open when a relay stopped (killed or crashed); it closed them as open_at_crash when it started again",
                "件のストリームはリレー停止時（強制終了・クラッシュ）に開いたままで、再起動時に open_at_crash として閉じられました"
            )
        ));
    }
    for s in t["open_streams"].as_array().into_iter().flatten() {
        let at = s["at"].as_i64().map_or_else(|| "-".to_owned(), |ms| parse::format_time(ms, zone));
        lines.push(format!(
            "  {} {} #{} {} {} {} → {} ({})",
            lang.pick("OPEN", "開いたまま"),
            s["stream_id"].as_str().unwrap_or_default(),
            s["seq"].as_i64().unwrap_or(0),
            at,
            s["path"].as_str().unwrap_or_default(),
            s["subject"].as_str().unwrap_or_default(),
            s["target"].as_str().unwrap_or_default(),
            lang.pick(
                "opened and not closed: open now, or its relay stopped and has not started again",
                "開始後に終了の記録なし: 現在も接続中か、リレーが停止したまま"
            ),
        ));
    }
    lines
}

/// One tenant of a verification report, as `ctl`'s offline twin (`sekisho audit verify`) prints it.
pub(crate) fn tenant_line(t: &Value, lang: Lang) -> String {
    let n = |k: &str| t[k].as_i64().unwrap_or(0);
    let tenant = t["tenant"].as_str().unwrap_or_default();
    let unchecked = match n("recordings_unchecked") {
        0 => String::new(),
        u => format!(
            " ({u} {})",
            lang.pick("not checked: no master key and no sealed hash", "件は未検証: マスターキーも封印ハッシュもなし")
        ),
    };
    match &t["problem"] {
        Value::Null => format!(
            "{} {tenant}: {} {} (#{}..#{}), {} {}, {} {}, {} {}{unchecked}",
            lang.pick("OK", "正常"),
            n("events"),
            lang.pick("events", "件のイベント"),
            n("first_seq"),
            n("last_seq"),
            n("checkpoints"),
            lang.pick("signed checkpoints", "個の署名付きチェックポイント"),
            n("unsigned_tail"),
            lang.pick("events after the last checkpoint", "件は最後のチェックポイント以降"),
            n("recordings_checked"),
            lang.pick("recordings checked", "件の録画を検証"),
        ),
        p => format!(
            "{} {tenant}: #{} {}: {}",
            // Events after the last signature are not proof of tampering (a crash leaves some).
            if p["kind"] == "unsigned" {
                lang.pick("UNSIGNED", "未署名")
            } else {
                lang.pick("TAMPERED", "改ざん検出")
            },
            p["seq"].as_i64().unwrap_or(0),
            p["kind"].as_str().unwrap_or_default(),
            p["message"].as_str().unwrap_or_default()
        ),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn verify_lines_name_the_problem() {
        let ok = json!({"tenant": "tn_1", "events": 3, "first_seq": 1, "last_seq": 3, "checkpoints": 1,
            "unsigned_tail": 0, "problem": null});
        assert!(tenant_line(&ok, Lang::En).starts_with("OK tn_1: 3 events (#1..#3)"));
        let bad = json!({"tenant": "tn_1", "problem": {"kind": "deleted", "seq": 7, "message": "gap"}});
        assert_eq!(tenant_line(&bad, Lang::En), "TAMPERED tn_1: #7 deleted: gap");
    }

    #[test]
    fn event_tables_format_times() {
        let rows = json!([{"at": 0, "kind": "access", "decision": "deny", "subject": "alice", "target": "web",
            "policy_id": "web/deny/0", "reason": "r", "source_ip": "10.0.0.1", "country": "JP"}]);
        let text = render_table(&rows, &parse::parse_zone("Asia/Tokyo").unwrap());
        assert!(text.lines().nth(1).unwrap_or_default().starts_with("1970-01-01 09:00:00+09:00  access  deny"));
    }

    #[test]
    fn browser_requests_show_method_path_and_status() {
        let e = json!({"detail": "{\"method\":\"GET\",\"path\":\"/a b\",\"status\":403,\"session\":\"s\"}"});
        assert_eq!(request_cell(&e), "GET /a b 403");
        assert_eq!(request_cell(&json!({"detail": "{\"host\":\"x\"}"})), "-");
        assert_eq!(request_cell(&json!({"detail": "not json"})), "-");
    }
}
