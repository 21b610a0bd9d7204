//! The tunnel pages: dashboard, agents, services and routes.

use axum::Router;
use axum::extract::{Form, State as AxState};
use axum::http::{Extensions, HeaderMap, Method};
use axum::response::Response;
use axum::routing::get;
use maud::{Markup, html};
use serde_json::{Value, json};

use super::{Answer, C, Ctx, Fields, ctx_post, flash, peer_of};

pub(super) fn routes() -> Router<C> {
    Router::new()
        .route("/", get(dashboard))
        .route("/agents", get(agents).post(agents_post))
        .route("/services", get(services).post(services_post))
        .route("/routes", get(routes_page).post(routes_post))
}

/// The signed-in context of a GET, or return the sign-in redirect.
macro_rules! signed_in {
    ($c:expr, $h:expr, $e:expr, $here:expr) => {
        match crate::console::Ctx::load(&$c, &$h, peer_of(&$e), $here).await {
            Ok(x) => x,
            Err(r) => return r,
        }
    };
}

/// The signed-in context of a form post (CSRF checked), or return the refusal.
macro_rules! posted {
    ($c:expr, $h:expr, $e:expr, $here:expr, $f:expr) => {
        match ctx_post(&$c, &$h, peer_of(&$e), $here, &$f).await {
            Ok(x) => x,
            Err(r) => return r,
        }
    };
}
pub(super) use {posted, signed_in};

pub(super) fn list(a: &Answer) -> Vec<Value> {
    a.body.as_array().cloned().unwrap_or_default()
}

pub(super) fn s(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

pub(super) fn f<'a>(fields: &'a Fields, k: &str) -> &'a str {
    fields.get(k).map_or("", |s| s.trim())
}

fn status_badge(c: &Ctx, online: bool) -> Markup {
    html! {
        @if online { span.ok { "● " (c.t("online")) } } @else { span.bad { "○ " (c.t("offline")) } }
    }
}

async fn dashboard(AxState(con): AxState<C>, h: HeaderMap, e: Extensions) -> Response {
    let c = signed_in!(con, h, e, "/");
    let agents = if c.may("agents:read") { list(&c.get("/api/v1/agents").await) } else { Vec::new() };
    let online = agents.iter().filter(|a| a["online"] == Value::Bool(true)).count();
    let streams: u64 = agents
        .iter()
        .filter(|a| matches!(a["role"].as_str(), Some("back" | "both")))
        .filter_map(|a| a["streams"].as_u64())
        .sum();
    let summary = if c.may("audit:read") { Some(c.get("/api/v1/audit/summary?hours=24").await.body) } else { None };
    let card = |id: &str, n: String, label: &'static str| {
        html! { div.card #(id) { div.n { (n) } div.l { (c.t(label)) } } }
    };
    let top = |list: &Value, title: &'static str| {
        html! {
            h2 { (c.t(title)) }
            @let rows = list.as_array().cloned().unwrap_or_default();
            @if rows.is_empty() { p.muted { (c.t("none")) } } @else {
                table { thead { tr { th { (c.t("name")) } th { (c.t("dash.count")) } } }
                    tbody { @for r in &rows { tr { td { (s(&r[0])) } td { (s(&r[1])) } } } } }
            }
        }
    };
    let body = html! {
        div.cards {
            @if c.may("agents:read") {
                (card("agents-online", online.to_string(), "dash.agents_online"))
                (card("agents-offline", (agents.len() - online).to_string(), "dash.agents_offline"))
                (card("streams-now", streams.to_string(), "dash.streams"))
            }
            @if let Some(sum) = &summary {
                (card("allowed-24h", s(&sum["allowed"]), "dash.allowed"))
                (card("denied-24h", s(&sum["denied"]), "dash.denied"))
            }
        }
        @if let Some(sum) = &summary {
            h2 { (c.t("dash.accesses_24h")) }
            (super::charts::hourly(&c, &sum["hourly"], sekisho_store::now_ms(), 24))
            h2 { (c.t("dash.agents_24h")) }
            (super::charts::agents(&c, &sum["agents_online"], sekisho_store::now_ms(), 24))
            h2 { (c.t("dash.top_services")) }
            (chart_or_none(&c, "chart-services", &sum["top_targets"], "allow"))
            h2 { (c.t("dash.top_reasons")) }
            (chart_or_none(&c, "chart-reasons", &sum["top_deny_reasons"], "deny"))
            h2 { (c.t("dash.countries")) }
            (chart_or_none(&c, "chart-countries", &sum["countries"], "allow"))
            (top(&sum["top_denied_users"], "dash.top_denied"))
        }
    };
    c.page("/", c.t("nav.dashboard"), body)
}

/// A top list as bars, or 「なし」 when it is empty.
fn chart_or_none(c: &Ctx, id: &str, list: &Value, class: &str) -> Markup {
    if list.as_array().is_none_or(Vec::is_empty) {
        return html! { p.muted { (c.t("none")) } };
    }
    super::charts::bars(id, list, class)
}

// --- Agents ---------------------------------------------------------------------------------

async fn agents(AxState(con): AxState<C>, h: HeaderMap, e: Extensions) -> Response {
    let c = signed_in!(con, h, e, "/agents");
    agents_view(&c, None, None).await
}

async fn agents_post(AxState(con): AxState<C>, h: HeaderMap, e: Extensions, Form(fs): Form<Fields>) -> Response {
    let c = posted!(con, h, e, "/agents", fs);
    match f(&fs, "do") {
        "revoke" => {
            let a = c.api(Method::DELETE, &format!("/api/v1/agents/{}", enc(f(&fs, "id"))), None).await;
            agents_view(&c, Some(&a), None).await
        }
        _ => {
            let body =
                json!({ "name": f(&fs, "name"), "role": f(&fs, "role"), "site": f(&fs, "site"), "ttl_secs": 3600 });
            let a = c.api(Method::POST, "/api/v1/enrollment-tokens", Some(body)).await;
            let command = a.ok().then(|| s(&a.body["command"]));
            agents_view(&c, Some(&a), command).await
        }
    }
}

async fn agents_view(c: &Ctx, answer: Option<&Answer>, command: Option<String>) -> Response {
    let agents = list(&c.get("/api/v1/agents").await);
    let body = html! {
        (flash(c.lang, answer))
        @if let Some(cmd) = &command {
            p { (c.t("agents.enroll_hint")) }
            pre.cmd #enroll-command { (cmd) }
            button.small type="button" data-copy="enroll-command" data-done=(c.t("copied")) { (c.t("copy")) }
        }
        div.scroll { table #agents {
            thead { tr {
                th { (c.t("name")) } th { (c.t("agents.role")) } th { (c.t("agents.site")) } th { (c.t("status")) }
                th { (c.t("agents.version")) } th { (c.t("agents.address")) } th { (c.t("agents.last_seen")) }
                th { (c.t("actions")) }
            } }
            tbody {
                @for a in agents.iter().filter(|a| a["revoked"] != Value::Bool(true)) {
                    tr {
                        td translate="no" { (s(&a["name"])) } td { (c.lang.word(&s(&a["role"]))) } td translate="no" { (s(&a["site"])) }
                        td { (status_badge(c, a["online"] == Value::Bool(true))) }
                        td { (s(&a["version"])) } td { (s(&a["address"])) }
                        td { @if let Some(t) = a["last_seen"].as_i64() { (c.ago(t)) } }
                        td { @if c.may("agents:write") {
                            (c.row_action("/agents", "revoke", "id", &s(&a["id"]), "revoke", true))
                        } }
                    }
                }
            }
        } }
        @if c.may("agents:write") {
            h2 { (c.t("agents.enroll")) }
            form.box method="post" action="/agents" {
                (c.csrf_field())
                input type="hidden" name="do" value="enroll";
                div.row {
                    div { label for="agent-name" { (c.t("name")) } input #agent-name type="text" name="name" required; }
                    div { label for="agent-role" { (c.t("agents.role")) }
                        select #agent-role name="role" {
                            @for r in ["back", "front", "both"] { option value=(r) { (c.lang.word(r)) } }
                        } }
                    div { label for="agent-site" { (c.t("agents.site")) } input #agent-site type="text" name="site"; }
                }
                button #enroll type="submit" { (c.t("agents.enroll_submit")) }
            }
        }
    };
    c.page("/agents", c.t("nav.agents"), body)
}

/// A path segment, percent-encoded.
pub(super) fn enc(s: &str) -> String {
    serde_urlencoded::to_string([("", s)]).map(|q| q.trim_start_matches('=').replace('+', "%20")).unwrap_or_default()
}

// --- Services -------------------------------------------------------------------------------

async fn services(AxState(con): AxState<C>, h: HeaderMap, e: Extensions) -> Response {
    let c = signed_in!(con, h, e, "/services");
    services_view(&c, None).await
}

async fn services_post(AxState(con): AxState<C>, h: HeaderMap, e: Extensions, Form(fs): Form<Fields>) -> Response {
    let c = posted!(con, h, e, "/services", fs);
    let a = match f(&fs, "do") {
        "delete" => c.api(Method::DELETE, &format!("/api/v1/services/{}", enc(f(&fs, "name"))), None).await,
        _ => {
            let mut body =
                json!({ "name": f(&fs, "name"), "target": f(&fs, "target"), "browser": fs.contains_key("browser") });
            if !f(&fs, "agent").is_empty() {
                body["agent"] = json!(f(&fs, "agent"));
            }
            c.api(Method::POST, "/api/v1/services", Some(body)).await
        }
    };
    services_view(&c, Some(&a)).await
}

async fn services_view(c: &Ctx, answer: Option<&Answer>) -> Response {
    let services = list(&c.get("/api/v1/services").await);
    let agents = if c.may("agents:read") { list(&c.get("/api/v1/agents").await) } else { Vec::new() };
    // Which services have a policy: one without denies everything, so it is shown as such.
    let policies: Option<std::collections::HashSet<String>> = if c.may("policies:read") {
        Some(list(&c.get("/api/v1/policies").await).iter().map(|p| s(&p["service"])).collect())
    } else {
        None
    };
    let body = html! {
        (flash(c.lang, answer))
        div.scroll { table #services {
            thead { tr {
                th { (c.t("name")) } th { (c.t("services.protocol")) } th { (c.t("services.target")) }
                th { (c.t("services.agent")) } @if policies.is_some() { th { (c.t("services.policy")) } }
                th { (c.t("services.browser")) } th { (c.t("actions")) }
            } }
            tbody { @for sv in &services { tr {
                td { (s(&sv["name"])) } td { (s(&sv["protocol"])) } td { code { (s(&sv["target"])) } }
                td { (s(&sv["agent_name"])) }
                @if let Some(with) = &policies {
                    @let name = s(&sv["name"]);
                    td { a href={ "/policies?service=" (enc(&name)) } {
                        @if with.contains(&name) { span.ok { (c.t("services.policy_set")) } }
                        @else { span.bad.no-policy { (c.t("services.no_policy")) } }
                    } }
                }
                td { @if let Some(url) = sv["browser_url"].as_str() {
                    a href=(url) target="_blank" rel="noopener" { (url) }
                } }
                td { @if c.may("services:write") {
                    (c.row_action("/services", "delete", "name", &s(&sv["name"]), "delete", true))
                } }
            } } }
        } }
        @if c.may("services:write") {
            h2 { (c.t("services.new")) }
            form.box method="post" action="/services" {
                (c.csrf_field())
                div.row {
                    div { label for="svc-name" { (c.t("name")) } input #svc-name type="text" name="name" required; }
                    div { label for="svc-target" { (c.t("services.target")) }
                        input #svc-target type="text" name="target" placeholder="http://127.0.0.1:8080" required; }
                    div { label for="svc-agent" { (c.t("services.agent")) }
                        select #svc-agent name="agent" {
                            option value="" { "—" }
                            @for a in agents.iter().filter(|a| matches!(a["role"].as_str(), Some("back" | "both"))) {
                                option value=(s(&a["name"])) { (s(&a["name"])) }
                            }
                        } }
                }
                label { input #svc-browser type="checkbox" name="browser" value="1"; " " (c.t("services.browser_hint")) }
                button #create-service type="submit" { (c.t("create")) }
            }
        }
    };
    c.page("/services", c.t("nav.services"), body)
}

// --- Routes ---------------------------------------------------------------------------------

async fn routes_page(AxState(con): AxState<C>, h: HeaderMap, e: Extensions) -> Response {
    let c = signed_in!(con, h, e, "/routes");
    routes_view(&c, None).await
}

async fn routes_post(AxState(con): AxState<C>, h: HeaderMap, e: Extensions, Form(fs): Form<Fields>) -> Response {
    let c = posted!(con, h, e, "/routes", fs);
    let a = match f(&fs, "do") {
        "delete" => c.api(Method::DELETE, &format!("/api/v1/routes/{}", enc(f(&fs, "id"))), None).await,
        _ => {
            let body = json!({ "agent": f(&fs, "agent"), "listen": f(&fs, "listen"), "service": f(&fs, "service") });
            c.api(Method::POST, "/api/v1/routes", Some(body)).await
        }
    };
    routes_view(&c, Some(&a)).await
}

async fn routes_view(c: &Ctx, answer: Option<&Answer>) -> Response {
    let routes = list(&c.get("/api/v1/routes").await);
    let services = if c.may("services:read") { list(&c.get("/api/v1/services").await) } else { Vec::new() };
    let agents = if c.may("agents:read") { list(&c.get("/api/v1/agents").await) } else { Vec::new() };
    let back_of = |svc: &str| {
        services.iter().find(|x| x["name"].as_str() == Some(svc)).map(|x| s(&x["agent_name"])).unwrap_or_default()
    };
    let body = html! {
        (flash(c.lang, answer))
        div.scroll { table #routes {
            thead { tr {
                th { (c.t("routes.front")) } th { (c.t("routes.listen")) } th { (c.t("routes.service")) }
                th { (c.t("status")) } th { (c.t("actions")) }
            } }
            tbody { @for r in &routes { tr {
                td { (s(&r["agent_name"])) } td { code { (s(&r["listen"])) } } td { (s(&r["service_name"])) }
                td { @if let Some(b) = r["bound"].as_str() { span.ok { (b) } } @else { span.bad { (s(&r["error"])) } } }
                td { @if c.may("routes:write") {
                    (c.row_action("/routes", "delete", "id", &s(&r["id"]), "delete", true))
                } }
            } } }
        } }
        @if !routes.is_empty() {
            h2 { (c.t("routes.diagram")) }
            div.diagram role="list" {
                @for r in &routes {
                    span.node role="listitem" { (s(&r["agent_name"])) " " code { (s(&r["listen"])) } }
                    span.arrow aria-hidden="true" { "→" }
                    span.node { (s(&r["service_name"])) }
                    span.arrow aria-hidden="true" { "→" }
                    span.node { (back_of(r["service_name"].as_str().unwrap_or(""))) }
                }
            }
        }
        @if c.may("routes:write") {
            h2 { (c.t("routes.new")) }
            form.box method="post" action="/routes" {
                (c.csrf_field())
                div.row {
                    div { label for="route-agent" { (c.t("routes.front")) }
                        select #route-agent name="agent" {
                            @for a in agents.iter().filter(|a| matches!(a["role"].as_str(), Some("front" | "both"))) {
                                option value=(s(&a["name"])) { (s(&a["name"])) }
                            }
                        } }
                    div { label for="route-listen" { (c.t("routes.listen")) }
                        input #route-listen type="text" name="listen" placeholder="127.0.0.1:18080" required; }
                    div { label for="route-service" { (c.t("routes.service")) }
                        select #route-service name="service" {
                            @for sv in &services { option value=(s(&sv["name"])) { (s(&sv["name"])) } }
                        } }
                }
                button #create-route type="submit" { (c.t("create")) }
            }
        }
    };
    c.page("/routes", c.t("nav.routes"), body)
}
