//! Live sessions: what is open through the relay now. Bastion sessions (SSH, Telnet) can be
//! watched (their recording page plays what has been recorded so far) and ended, as the scope
//! table says (`recordings:read` to see, `recordings:write` to end); every stream opened and not yet
//! closed (tunnel, edge port, browser request, SOCKS, SSH) is listed from the audit log's index.

use axum::Router;
use axum::extract::{Form, State as AxState};
use axum::http::{Extensions, HeaderMap, Method};
use axum::response::Response;
use axum::routing::get;
use maud::html;
use serde_json::Value;

use super::pages::{enc, f, list, posted, s, signed_in};
use super::{Answer, C, Ctx, Fields, ctx_post, flash, peer_of};

pub(super) fn routes() -> Router<C> {
    Router::new().route("/live", get(live).post(live_post))
}

async fn live(AxState(con): AxState<C>, h: HeaderMap, e: Extensions) -> Response {
    let c = signed_in!(con, h, e, "/live");
    view(&c, None).await
}

async fn live_post(AxState(con): AxState<C>, h: HeaderMap, e: Extensions, Form(fs): Form<Fields>) -> Response {
    let c = posted!(con, h, e, "/live", fs);
    let path = format!("/api/v1/recordings/{}/terminate", enc(f(&fs, "id")));
    let a = c.api(Method::POST, &path, Some(serde_json::json!({}))).await;
    view(&c, Some(&a)).await
}

async fn view(c: &Ctx, answer: Option<&Answer>) -> Response {
    // Recent sessions, of which the live ones.
    let sessions: Vec<Value> = if c.may("recordings:read") {
        list(&c.get("/api/v1/recordings?limit=500").await)
            .into_iter()
            .filter(|r| r["live"] == Value::Bool(true))
            .collect()
    } else {
        Vec::new()
    };
    let streams = if c.may("audit:read") { list(&c.get("/api/v1/audit/streams").await) } else { Vec::new() };
    let end = c.may("recordings:write");
    let body = html! {
        (flash(c.lang, answer))
        @if c.may("recordings:read") {
            h2 { (c.t("live.sessions")) " (" (sessions.len()) ")" }
            @if sessions.is_empty() { p.muted { (c.t("none")) } } @else {
                div.scroll { table #live-sessions {
                    thead { tr {
                        th { (c.t("time")) } th { (c.t("audit.subject")) } th { (c.t("audit.target")) }
                        th { (c.t("audit.kind")) } th { (c.t("audit.source")) } th { (c.t("actions")) }
                    } }
                    tbody { @for r in &sessions { tr {
                        td { @if let Some(t) = r["started_at"].as_i64() { (c.ago(t)) } }
                        td { (s(&r["user_name"])) } td { (s(&r["target"])) } td { (s(&r["kind"])) } td { (s(&r["source_ip"])) }
                        td {
                            a.button.small href={ "/recordings/" (enc(&s(&r["id"]))) } { (c.t("live.watch")) }
                            @if end { " " (c.row_action("/live", "terminate", "id", &s(&r["id"]), "live.end", true)) }
                        }
                    } } }
                } }
            }
        }
        @if c.may("audit:read") {
            h2 { (c.t("live.streams")) " (" (streams.len()) ")" }
            p.hint { (c.t("live.streams_text")) }
            @if streams.is_empty() { p.muted { (c.t("none")) } } @else {
                div.scroll { table #live-streams {
                    thead { tr {
                        th { (c.t("time")) } th { (c.t("audit.subject")) } th { (c.t("audit.path")) }
                        th { (c.t("audit.target")) } th { (c.t("audit.source")) } th { (c.t("audit.stream")) }
                    } }
                    tbody { @for r in &streams { tr {
                        td { @if let Some(t) = r["at"].as_i64() { (c.ago(t)) } }
                        td { (s(&r["subject"])) } td { (s(&r["path"])) } td { (s(&r["target"])) }
                        td { (s(&r["source_ip"])) }
                        td { a href={ "/audit/event/" (s(&r["seq"])) } { code { (s(&r["stream_id"])) } } }
                    } } }
                } }
            }
        }
    };
    c.page("/live", c.t("nav.live"), body)
}
