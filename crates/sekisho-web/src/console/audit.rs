//! The audit log page: filters, pages of 100 events (newest first, a cursor to the older ones),
//! readable columns (the browser request's method, path and status; bytes; files), one event's
//! detail with its place in the hash chain, the open streams, and the exports.

use axum::Router;
use axum::extract::{Path, Query, State as AxState};
use axum::http::{Extensions, HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use maud::{Markup, html};
use serde_json::Value;

use super::pages::{enc, list, s, signed_in};
use super::{C, Ctx, flash, peer_of};

/// Events on one page.
const PAGE: usize = 100;

pub(super) fn routes() -> Router<C> {
    Router::new()
        .route("/audit", get(audit))
        .route("/audit/export", get(audit_export))
        .route("/audit/event/{seq}", get(event))
}

#[derive(serde::Deserialize, Default)]
struct AuditQuery {
    subject: Option<String>,
    target: Option<String>,
    decision: Option<String>,
    path: Option<String>,
    domain: Option<String>,
    hours: Option<i64>,
    /// Paging: the events before this `seq`.
    before: Option<i64>,
}

impl AuditQuery {
    /// The API query string for these filters.
    fn api_query(&self, format: &str, limit: i64) -> String {
        let hours = self.hours.unwrap_or(24).clamp(1, 24 * 400);
        let from = sekisho_store::now_ms() - hours * 3600 * 1000;
        let mut q: Vec<(&str, String)> = vec![("from", from.to_string()), ("limit", limit.to_string())];
        for (k, v) in [
            ("subject", &self.subject),
            ("target", &self.target),
            ("decision", &self.decision),
            ("path", &self.path),
            ("domain", &self.domain),
        ] {
            if let Some(v) = v.as_ref().map(|v| v.trim()).filter(|v| !v.is_empty()) {
                q.push((k, v.to_owned()));
            }
        }
        if !format.is_empty() {
            q.push(("format", format.to_owned()));
        }
        if let Some(before) = self.before {
            q.push(("before", before.to_string()));
        }
        serde_urlencoded::to_string(q).unwrap_or_default()
    }

    fn console_query(&self) -> String {
        let q: Vec<(&str, String)> = [
            ("subject", &self.subject),
            ("target", &self.target),
            ("decision", &self.decision),
            ("path", &self.path),
            ("domain", &self.domain),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.clone().filter(|v| !v.is_empty()).map(|v| (k, v)))
        .chain(self.hours.map(|h| ("hours", h.to_string())))
        .collect();
        serde_urlencoded::to_string(q).unwrap_or_default()
    }
}

async fn audit(
    AxState(con): AxState<C>,
    h: HeaderMap,
    e: Extensions,
    q: Result<Query<AuditQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let c = signed_in!(con, h, e, "/audit");
    let q = q.map(|Query(q)| q).unwrap_or_default();
    let a = c.get(&format!("/api/v1/audit?{}", q.api_query("", PAGE as i64))).await;
    let rows = list(&a);
    let open = c.get("/api/v1/audit/streams").await;
    let open_rows = list(&open);
    let v = |o: &Option<String>| o.clone().unwrap_or_default();
    let phase = |r: &serde_json::Value| match r["phase"].as_str() {
        Some("opened") => c.t("audit.phase.opened"),
        Some("closed") => c.t("audit.phase.closed"),
        _ => "",
    };
    let body = html! {
        @if !a.ok() { (flash(c.lang, Some(&a))) }
        @if !open_rows.is_empty() {
            section.box #open-streams {
                h2 { (c.t("audit.open_streams")) " (" (open_rows.len()) ")" }
                p.muted { (c.t("audit.open_streams_help")) }
                div.scroll { table {
                    thead { tr {
                        th { (c.t("time")) } th { (c.t("audit.stream")) } th { (c.t("audit.subject")) }
                        th { (c.t("audit.path")) } th { (c.t("audit.target")) } th { (c.t("audit.source")) }
                    } }
                    tbody { @for r in &open_rows { tr {
                        td { (r["at"].as_i64().map(|t| c.when(t)).unwrap_or_default()) } td { code { (s(&r["stream_id"])) } }
                        td translate="no" { (s(&r["subject"])) } td { (c.lang.word(&s(&r["path"]))) } td translate="no" { (s(&r["target"])) } td { (s(&r["source_ip"])) }
                    } } }
                } }
            }
        }
        form.box method="get" action="/audit" {
            div.row {
                div { label for="f-subject" { (c.t("audit.subject")) } input #f-subject type="text" name="subject" value=(v(&q.subject)); }
                div { label for="f-target" { (c.t("audit.target")) } input #f-target type="text" name="target" value=(v(&q.target)); }
                div { label for="f-domain" { (c.t("audit.domain")) } input #f-domain type="text" name="domain" value=(v(&q.domain)); }
                div { label for="f-decision" { (c.t("audit.decision")) }
                    select #f-decision name="decision" {
                        option value="" { (c.t("audit.any")) }
                        @for d in ["allow", "deny"] { option value=(d) selected[q.decision.as_deref() == Some(d)] { (c.t(if d == "allow" { "decision.allow" } else { "decision.deny" })) } }
                    } }
                div { label for="f-path" { (c.t("audit.path")) }
                    select #f-path name="path" {
                        option value="" { (c.t("audit.any")) }
                        @for p in ["browser", "tunnel", "edge", "ssh", "socks", "api"] { option value=(p) selected[q.path.as_deref() == Some(p)] { (c.lang.word(p)) } }
                    } }
                div { label for="f-hours" { (c.t("audit.since_hours")) } input #f-hours type="number" name="hours" min="1" value=(q.hours.unwrap_or(24)); }
            }
            button #filter type="submit" { (c.t("audit.filter")) }
            " " a.button href={ "/audit/export?format=csv&" (q.console_query()) } { (c.t("audit.export_csv")) }
            " " a.button href={ "/audit/export?format=jsonl&" (q.console_query()) } { (c.t("audit.export_jsonl")) }
        }
        @if rows.is_empty() { p.muted { (c.t("none")) } } @else {
            div.scroll { table #audit {
                thead { tr {
                    th { (c.t("time")) } th { (c.t("audit.kind")) } th { (c.t("audit.subject")) } th { (c.t("audit.path")) }
                    th { (c.t("audit.target")) } th { (c.t("audit.request")) } th { (c.t("audit.decision")) }
                    th { (c.t("reason")) } th { (c.t("audit.bytes")) } th { (c.t("audit.source")) } th { (c.t("audit.detail")) }
                } }
                tbody { @for r in &rows { tr {
                    td { (r["at"].as_i64().map(|t| c.when(t)).unwrap_or_default()) }
                    td { (kind(&c, r)) @if !phase(r).is_empty() { " " span.muted title=(s(&r["stream_id"])) { (phase(r)) } } }
                    td translate="no" { (s(&r["subject"])) }
                    td { (c.lang.word(&s(&r["path"]))) } td translate="no" { (s(&r["target"])) }
                    td { (request(r)) }
                    td { (decision(&c, r)) }
                    td title=(s(&r["reason"])) { code { (s(&r["policy_id"])) } " " (why(&c, r)) }
                    td.num { (bytes(r)) }
                    td { (s(&r["source_ip"])) " " (s(&r["country"])) }
                    td { a href={ "/audit/event/" (s(&r["seq"])) } { (c.t("audit.open")) } }
                } } }
            } }
            @if rows.len() >= PAGE {
                @if let Some(last) = rows.last().and_then(|r| r["seq"].as_i64()) {
                    p { a.button #older href={ "/audit?" (q.console_query()) "&before=" (last) } { (c.t("audit.older")) } }
                }
            }
        }
    };
    c.page("/audit", c.t("nav.audit"), body)
}

#[derive(serde::Deserialize)]
struct ExportQuery {
    format: String,
    #[serde(flatten)]
    filter: AuditQueryFlat,
}

/// `AuditQuery` again, for `flatten` (whose values arrive as strings).
#[derive(serde::Deserialize, Default)]
struct AuditQueryFlat {
    subject: Option<String>,
    target: Option<String>,
    decision: Option<String>,
    path: Option<String>,
    domain: Option<String>,
    hours: Option<String>,
}

async fn audit_export(AxState(con): AxState<C>, h: HeaderMap, e: Extensions, Query(q): Query<ExportQuery>) -> Response {
    let c = signed_in!(con, h, e, "/audit");
    let format = if q.format == "jsonl" { "jsonl" } else { "csv" };
    let flat = q.filter;
    let filter = AuditQuery {
        subject: flat.subject,
        target: flat.target,
        decision: flat.decision,
        path: flat.path,
        domain: flat.domain,
        hours: flat.hours.and_then(|h| h.parse().ok()),
        before: None,
    };
    let (status, headers, body) = c.raw(&format!("/api/v1/audit?{}", filter.api_query(format, 100_000))).await;
    let mut resp = (status, body).into_response();
    if let Some(t) = headers.get(header::CONTENT_TYPE) {
        resp.headers_mut().insert(header::CONTENT_TYPE, t.clone());
    }
    if status.is_success() {
        let name = format!("attachment; filename=\"sekisho-audit.{format}\"");
        if let Ok(v) = HeaderValue::from_str(&name) {
            resp.headers_mut().insert(header::CONTENT_DISPOSITION, v);
        }
    }
    resp
}

/// The event's reason as a sentence in the visitor's language.
fn why(c: &Ctx, r: &Value) -> Markup {
    crate::reasons::markup(c.lang, &s(&r["policy_id"]), &s(&r["reason"]))
}

/// The event kind in the visitor's language (the stored word when the catalogue has none).
fn kind(c: &Ctx, r: &Value) -> String {
    let word = s(&r["kind"]);
    match KINDS.iter().find(|(k, _)| *k == word) {
        Some((_, key)) => c.t(key).to_owned(),
        None => word,
    }
}

/// The stored kinds and their catalogue keys.
const KINDS: &[(&str, &str)] = &[
    ("access", "kind.access"),
    ("admin", "kind.admin"),
    ("login", "kind.login"),
    ("system", "kind.system"),
    ("agent_enroll", "kind.agent_enroll"),
    ("agent_auth", "kind.agent_auth"),
];

fn decision(c: &Ctx, r: &Value) -> Markup {
    html! {
        @match r["decision"].as_str() {
            Some("allow") => span.ok { (c.t("decision.allow")) },
            Some("deny") => span.bad { (c.t("decision.deny")) },
            _ => span.bad { (s(&r["decision"])) },
        }
    }
}

/// A browser request's `METHOD /path → STATUS`, or the files a transfer moved; empty otherwise.
fn request(r: &Value) -> Markup {
    let detail: Value = r["detail"].as_str().and_then(|d| serde_json::from_str(d).ok()).unwrap_or(Value::Null);
    html! {
        @if let (Some(m), Some(p)) = (detail["method"].as_str(), detail["path"].as_str()) {
            code { (m) " " (p) } @if let Some(st) = detail["status"].as_u64() { " → " (st) }
        } @else if let Some(files) = detail["files"].as_array() {
            @for f in files { code { (f.as_str().map(str::to_owned).unwrap_or_else(|| f.to_string())) } " " }
        } @else if let Some(cmd) = detail["command"].as_str() {
            code { (cmd) }
        }
    }
}

/// Bytes up and down, as people read them.
fn bytes(r: &Value) -> String {
    match (r["bytes_in"].as_i64(), r["bytes_out"].as_i64()) {
        (None, None) => String::new(),
        (i, o) => format!("↑{} ↓{}", size(i.unwrap_or(0)), size(o.unwrap_or(0))),
    }
}

/// A byte count with a binary unit (`512 B`, `1.5 MiB`).
pub(crate) fn size(n: i64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 { format!("{n} B") } else { format!("{v:.1} {}", UNITS[u]) }
}

/// `/audit/event/{seq}`: one event, every field, its place in the chain, its neighbours, and the
/// recording it names.
async fn event(AxState(con): AxState<C>, h: HeaderMap, e: Extensions, Path(seq): Path<i64>) -> Response {
    let c = signed_in!(con, h, e, "/audit");
    let a = c.get(&format!("/api/v1/audit/events/{seq}")).await;
    let title = format!("{} #{seq}", c.t("audit.event"));
    if !a.ok() {
        return c.page("/audit", &title, flash(c.lang, Some(&a)));
    }
    let ev = &a.body["event"];
    let chain = &a.body["chain"];
    let yes_no = |v: &Value| match v.as_bool() {
        Some(true) => html! { span.ok { (c.t("audit.chain_ok")) } },
        Some(false) => html! { span.bad { (c.t("audit.chain_bad")) } },
        None => html! { span.muted { (c.t("audit.chain_unknown")) } },
    };
    // Each field: its text and how it is shown (words to read, a name, or a value as stored).
    let (text, name, stored) = (Show::Text, Show::Name, Show::Stored);
    let fields = [
        ("audit.kind", kind(&c, ev), text),
        ("audit.subject", s(&ev["subject"]), name),
        ("audit.subject_kind", c.lang.word(&s(&ev["subject_kind"])), text),
        ("audit.path", c.lang.word(&s(&ev["path"])), text),
        ("audit.target", s(&ev["target"]), name),
        ("audit.policy_id", s(&ev["policy_id"]), stored),
        ("audit.stored_reason", s(&ev["reason"]), stored),
        ("audit.auth_method", s(&ev["auth_method"]), stored),
        ("audit.source", format!("{} {}", s(&ev["source_ip"]), s(&ev["country"])), text),
        ("audit.bytes", bytes(ev), text),
        (
            "audit.duration",
            ev["duration_ms"].as_i64().map(|d| format!("{:.1} s", d as f64 / 1000.0)).unwrap_or_default(),
            text,
        ),
        ("audit.stream", format!("{} {}", s(&ev["stream_id"]), s(&ev["phase"])), stored),
    ];
    let body = html! {
        dl.reason #event {
            dt { (c.t("time")) } dd { (ev["at"].as_i64().map(|t| c.when(t)).unwrap_or_default()) " · " code { (s(&a.body["time"])) } }
            dt { (c.t("audit.decision")) } dd { (decision(&c, ev)) }
            @if !s(&ev["reason"]).is_empty() { dt { (c.t("reason")) } dd { (why(&c, ev)) } }
            @for (key, value, show) in &fields {
                @if !value.trim().is_empty() {
                    dt { (c.t(key)) }
                    @match show {
                        Show::Text => dd { (value) },
                        Show::Name => dd translate="no" { (value) },
                        Show::Stored => dd { code { (value) } },
                    }
                }
            }
            @if let Some(rec) = a.body["recording"].as_str() {
                dt { (c.t("nav.recordings")) } dd { a href={ "/recordings/" (enc(rec)) } { (rec) } }
            }
        }
        @if !s(&ev["detail"]).is_empty() {
            h2 { (c.t("audit.detail")) }
            pre.cmd #event-detail { (pretty(&s(&ev["detail"]))) }
        }
        h2 { (c.t("audit.chain")) }
        dl.reason #chain {
            dt { (c.t("audit.place")) } dd { "#" (s(&chain["seq"])) }
            dt { (c.t("audit.hash")) } dd { code { (s(&chain["hash"])) } " " (yes_no(&chain["hash_ok"])) }
            dt { (c.t("audit.prev_hash")) } dd { code { (s(&chain["prev_hash"])) } " " (yes_no(&chain["linked"])) }
        }
        @let (before, after) = c.t("audit.chain_text").split_once("{cmd}").unwrap_or((c.t("audit.chain_text"), ""));
        p.hint { (before) code { "sekisho ctl audit verify" } (after) }
        p {
            @if let Some(p) = chain["previous_seq"].as_i64() { a.button #previous href={ "/audit/event/" (p) } { "← #" (p) } " " }
            @if let Some(n) = chain["next_seq"].as_i64() { a.button #next href={ "/audit/event/" (n) } { "#" (n) " →" } }
        }
    };
    c.page("/audit", &title, body)
}

/// How a field of the detail view is shown.
#[derive(Clone, Copy)]
enum Show {
    /// Words people read (translated).
    Text,
    /// A name or id as it was given (`translate="no"`).
    Name,
    /// A value as it is stored (code).
    Stored,
}

/// The event's detail (JSON text) indented for reading; as it is when it is no JSON.
fn pretty(detail: &str) -> String {
    serde_json::from_str::<Value>(detail)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or_else(|| detail.to_owned())
}
