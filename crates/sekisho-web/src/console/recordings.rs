//! Bastion recordings: search (user, target, source, protocol, command text), one recording's
//! commands and file operations, and a player for its asciicast (asciinema-player, vendored and
//! served by the relay; `sekisho.js` starts it, and seeks to a command's time when one is clicked;
//! the cast is fetched through the API like everything else).

use axum::Router;
use axum::extract::{Path, Query, State as AxState};
use axum::http::{Extensions, HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use maud::html;
use serde_json::Value;

use super::pages::{enc, list, s, signed_in};
use super::{C, flash, peer_of};

pub(super) fn routes() -> Router<C> {
    Router::new()
        .route("/recordings", get(search))
        .route("/recordings/{id}", get(one))
        .route("/recordings/{id}/cast", get(cast))
}

#[derive(serde::Deserialize, Default)]
struct Filter {
    user: Option<String>,
    target: Option<String>,
    source_ip: Option<String>,
    protocol: Option<String>,
    command: Option<String>,
}

async fn search(
    AxState(con): AxState<C>,
    h: HeaderMap,
    e: Extensions,
    q: Result<Query<Filter>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let c = signed_in!(con, h, e, "/recordings");
    let q = q.map(|Query(q)| q).unwrap_or_default();
    let fields = [
        ("user", &q.user, "audit.subject"),
        ("target", &q.target, "audit.target"),
        ("source_ip", &q.source_ip, "audit.source"),
        ("protocol", &q.protocol, "services.protocol"),
        ("command", &q.command, "rec.command"),
    ];
    let query: Vec<(&str, String)> =
        fields.iter().filter_map(|(k, v, _)| (*v).clone().filter(|v| !v.trim().is_empty()).map(|v| (*k, v))).collect();
    let a = c.get(&format!("/api/v1/recordings?{}", serde_urlencoded::to_string(&query).unwrap_or_default())).await;
    let rows = list(&a);
    let body = html! {
        @if !a.ok() { (flash(c.lang, Some(&a))) }
        form.box method="get" action="/recordings" {
            div.row {
                @for (k, v, label) in &fields {
                    div { label for={ "r-" (k) } { (c.t(label)) }
                        input id={ "r-" (k) } type="text" name=(k) value=((*v).clone().unwrap_or_default()); }
                }
            }
            button #search type="submit" { (c.t("audit.filter")) }
        }
        @if rows.is_empty() { p.muted { (c.t("none")) } } @else {
            div.scroll { table #recordings {
                thead { tr {
                    th { (c.t("time")) } th { (c.t("audit.subject")) } th { (c.t("audit.target")) } th { (c.t("audit.kind")) }
                    th { (c.t("rec.command")) } th { (c.t("audit.source")) } th { (c.t("status")) }
                } }
                tbody { @for r in &rows { tr {
                    td { a href={ "/recordings/" (enc(&s(&r["id"]))) } { (r["started_at"].as_i64().map(|t| c.when(t)).unwrap_or_default()) } }
                    td translate="no" { (s(&r["user_name"])) } td translate="no" { (s(&r["target"])) } td { (c.lang.word(&s(&r["kind"]))) }
                    td { code { (commands(r)) } } td { (s(&r["source_ip"])) }
                    td { @if r["live"] == Value::Bool(true) { span.bad { (c.t("rec.live")) } }
                         @else if let (Some(a), Some(b)) = (r["started_at"].as_i64(), r["ended_at"].as_i64()) {
                             (c.t("rec.ended")) " · " (duration(b - a))
                         } }
                } } }
            } }
        }
    };
    c.page("/recordings", c.t("nav.recordings"), body)
}

/// Seconds since the session started, to a tenth.
fn secs(t: &Value) -> String {
    t.as_f64().map(|t| format!("{t:.1}")).unwrap_or_default()
}

async fn one(AxState(con): AxState<C>, h: HeaderMap, e: Extensions, Path(id): Path<String>) -> Response {
    let here = format!("/recordings/{}", enc(&id));
    let c = signed_in!(con, h, e, &here);
    let a = c.get(&format!("/api/v1/recordings/{}", enc(&id))).await;
    if !a.ok() {
        return c.page("/recordings", c.t("nav.recordings"), flash(c.lang, Some(&a)));
    }
    let r = &a.body;
    let parsed = |k: &str| serde_json::from_str::<Value>(r[k].as_str().unwrap_or("[]")).unwrap_or(Value::Null);
    let commands = parsed("commands").as_array().cloned().unwrap_or_default();
    let files = parsed("files").as_array().cloned().unwrap_or_default();
    let terminal = matches!(r["kind"].as_str(), Some("shell" | "exec"));
    let body = html! {
        dl.reason {
            dt { (c.t("audit.subject")) } dd { span translate="no" { (s(&r["user_name"])) } " · " (s(&r["source_ip"])) }
            dt { (c.t("audit.target")) } dd { span translate="no" { (s(&r["target"])) } " (" (c.lang.word(&s(&r["protocol"]))) (c.t("list.sep")) (c.lang.word(&s(&r["kind"]))) ")" }
            dt { (c.t("time")) } dd { (r["started_at"].as_i64().map(|t| c.when(t)).unwrap_or_default()) " → "
                (r["ended_at"].as_i64().map(|t| c.when(t)).unwrap_or_else(|| c.t("rec.live").to_owned())) }
            dt { "SHA-256" } dd { code { (s(&r["sha256"])) } }
        }
        @if terminal {
            h2 { (c.t("rec.replay")) }
            link rel="stylesheet" href="/static/asciinema-player.css";
            script src="/static/asciinema-player.min.js" defer {}
            div.player #player data-cast={ "/recordings/" (enc(&id)) "/cast" } {
                div.controls {
                    @for speed in ["1", "2", "4", "8"] {
                        button.small type="button" data-speed=(speed) { (speed) "×" } " "
                    }
                    a href={ "/recordings/" (enc(&id)) "/cast" } download { (c.t("rec.download")) }
                }
                div.screen translate="no" {}
            }
        }
        h2 { (c.t("rec.commands")) }
        @if commands.is_empty() { p.muted { (c.t("none")) } } @else {
            table #commands { thead { tr { th { (c.t("rec.offset")) } th { (c.t("rec.command")) } } }
                tbody { @for cmd in &commands { tr {
                    td { @if terminal { button.small.seek type="button" data-seek=(s(&cmd["t"])) { (s(&cmd["t"])) } }
                         @else { (s(&cmd["t"])) } }
                    td { code { (s(&cmd["cmd"])) } }
                } } } }
        }
        @if !files.is_empty() {
            h2 { (c.t("rec.files")) }
            div.scroll { table #files {
                thead { tr {
                    th { (c.t("rec.offset")) } th { (c.t("rec.file_op")) } th { (c.t("rec.file_path")) }
                    th { (c.t("audit.bytes")) } th { "SHA-256" } th { (c.t("status")) }
                } }
                tbody { @for f in &files { tr {
                    td { @if terminal { button.small.seek type="button" data-seek=(f["t"]) { (secs(&f["t"])) } } @else { (secs(&f["t"])) } }
                    td { (c.lang.word(&s(&f["op"]))) }
                    td { code { (s(&f["path"])) } @if let Some(to) = f["to"].as_str() { " → " code { (to) } } }
                    td { @if let Some(n) = f["size"].as_u64() { (super::audit::size(i64::try_from(n).unwrap_or(i64::MAX))) } }
                    td { @if let Some(h) = f["sha256"].as_str() { code title=(h) { (h.get(..16).unwrap_or(h)) "…" } } }
                    td { @match f["ok"].as_bool() {
                        Some(true) => span.ok { (c.t("rec.file_ok")) },
                        Some(false) => span.bad { (c.t("rec.file_failed")) },
                        None => span.muted { (c.t("rec.file_unknown")) },
                    } }
                } } }
            } }
        }
    };
    if terminal {
        c.player_page("/recordings", c.t("nav.recordings"), body)
    } else {
        c.page("/recordings", c.t("nav.recordings"), body)
    }
}

/// The asciicast, passed through from the API (for the player and for download).
async fn cast(AxState(con): AxState<C>, h: HeaderMap, e: Extensions, Path(id): Path<String>) -> Response {
    let c = signed_in!(con, h, e, "/recordings");
    let (status, headers, body) = c.raw(&format!("/api/v1/recordings/{}/cast", enc(&id))).await;
    let mut resp = (status, body).into_response();
    if let Some(t) = headers.get(header::CONTENT_TYPE) {
        resp.headers_mut().insert(header::CONTENT_TYPE, t.clone());
    }
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{}.cast\"", enc(&id))) {
        resp.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    resp
}

/// What was run: an exec's command, or a shell's commands (the first few, then how many more).
fn commands(r: &Value) -> String {
    let typed: Vec<String> = serde_json::from_str::<Value>(r["commands"].as_str().unwrap_or("[]"))
        .unwrap_or_default()
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["cmd"].as_str().map(str::to_owned))
        .collect();
    let mut all: Vec<String> = Vec::new();
    if let Some(c) = r["command"].as_str().filter(|c| !c.is_empty()) {
        all.push(c.to_owned());
    }
    all.extend(typed);
    match all.len() {
        0..=3 => all.join("; "),
        n => format!("{}; … (+{})", all[..3].join("; "), n - 3),
    }
}

/// A session's length as people read it: `42 s`, `3 min 5 s`, `1 h 2 min`.
fn duration(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min {} s", s / 60, s % 60),
        _ => format!("{} h {} min", s / 3600, s / 60 % 60),
    }
}
