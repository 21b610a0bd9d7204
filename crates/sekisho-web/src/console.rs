//! The web console: sign-in, sign-out, the language switch, and the pages ([`pages`], [`admin`]).
//!
//! The console has no back door: every page reads and writes through the public admin API,
//! called in-process with the visitor's own session key (from the `__Host-sekisho` cookie) and
//! the visitor's address, so scopes, the audit trail and rate limits are exactly the API's.
//! What the console can do, `sekisho ctl` can do. State-changing forms carry the session's CSRF
//! token and are refused from another origin.

mod admin;
mod audit;
mod charts;
mod live;
mod login;
mod pages;
mod recordings;
mod settings;
mod sso;

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Form, Query, Request, State as AxState};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use maud::{Markup, html};
use serde_json::{Value, json};
use tower::ServiceExt;

use super::i18n::Lang;
use super::page::{self, Who};
use super::session::{self, CONSOLE_COOKIE, LANG_COOKIE, Ticket};

use crate::WebState;
use login::{login_form, login_page, login_submit, login_with_key, logout_form, logout_submit, set_lang};

/// Form posts larger than this are refused (413).
const MAX_FORM: usize = 64 * 1024;

pub(crate) struct Console {
    state: Arc<WebState>,
    api: Router,
    flows: sso::Flows,
}

type C = Arc<Console>;
/// A form's fields.
type Fields = HashMap<String, String>;

pub(crate) fn router(state: Arc<WebState>, api: Router) -> Router {
    let console = Arc::new(Console { state, api, flows: sso::Flows::default() });
    Router::new()
        .route("/login", get(login_form).post(login_submit))
        .route("/logout", get(logout_form).post(logout_submit))
        .route("/lang", get(set_lang))
        .route("/static/sekisho.css", get(|| async { asset("text/css; charset=utf-8", page::CSS) }))
        .route("/static/sekisho.js", get(|| async { asset("text/javascript; charset=utf-8", page::JS) }))
        .route(
            "/static/asciinema-player.min.js",
            get(|| async { asset("text/javascript; charset=utf-8", page::PLAYER_JS) }),
        )
        .route("/static/asciinema-player.css", get(|| async { asset("text/css; charset=utf-8", page::PLAYER_CSS) }))
        .merge(pages::routes())
        .merge(admin::routes())
        .merge(audit::routes())
        .merge(recordings::routes())
        .merge(settings::routes())
        .merge(live::routes())
        .merge(sso::routes())
        .layer(axum::extract::DefaultBodyLimit::max(MAX_FORM))
        .with_state(console)
}

fn asset(kind: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, kind), (header::CACHE_CONTROL, "public, max-age=3600")], body).into_response()
}

/// One signed-in request: who, in which language, and the API on their behalf.
pub(crate) struct Ctx {
    console: C,
    pub(crate) lang: Lang,
    key: String,
    peer: Option<sekisho_door::credentials::PeerAddr>,
    pub(crate) name: String,
    pub(crate) tenant: String,
    tenant_id: String,
    key_id: String,
    pub(crate) scopes: Vec<String>,
    pub(crate) csrf: String,
    /// Where times are shown: the user's own zone, else the tenant's.
    pub(crate) zone: jiff::tz::TimeZone,
    pub(crate) zone_name: String,
    /// The user's own zone (empty: the tenant's) and the tenant's.
    pub(crate) user_zone: String,
    pub(crate) tenant_zone: String,
}

/// What the API answered.
pub(crate) struct Answer {
    pub(crate) status: StatusCode,
    pub(crate) body: Value,
}

impl Answer {
    pub(crate) fn ok(&self) -> bool {
        self.status.is_success()
    }

    /// The API's error for a flash: its message in `lang` with the code, then one line per
    /// policy diagnostic (Cedar's own words, as code).
    pub(crate) fn error(&self, lang: Lang) -> Markup {
        let e = &self.body["error"];
        let said = |f: &str| e[f].as_str().filter(|m| !m.is_empty());
        let message = match lang {
            Lang::Ja => said("message_ja").or_else(|| said("message")),
            Lang::En => said("message"),
        };
        let fallback = format!("HTTP {}", self.status.as_u16());
        let diags = e["diagnostics"].as_array().cloned().unwrap_or_default();
        html! {
            (message.unwrap_or(&fallback)) " " code.error-code { (e["code"].as_str().unwrap_or("error")) }
            @for d in &diags {
                br;
                (lang.t(if d["kind"] == "deny" { "diag.deny" } else { "diag.required" }))
                " #" (d["index"].as_u64().unwrap_or(0) + 1) " "
                (lang.t("diag.at").replace("{line}", &d["line"].to_string()).replace("{column}", &d["column"].to_string()))
                ": " code { (d["message"].as_str().unwrap_or("")) }
            }
        }
    }
}

async fn call_api(
    console: &Console,
    key: Option<&str>,
    peer: Option<sekisho_door::credentials::PeerAddr>,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, HeaderMap, Body) {
    let mut req = Request::builder().method(method).uri(path);
    if let Some(k) = key {
        req = req.header(header::AUTHORIZATION, format!("Bearer {k}"));
    }
    let body = match body {
        Some(v) => {
            req = req.header(header::CONTENT_TYPE, "application/json");
            Body::from(v.to_string())
        }
        None => Body::empty(),
    };
    let Ok(mut req) = req.body(body) else {
        return (StatusCode::BAD_REQUEST, HeaderMap::new(), Body::empty());
    };
    if let Some(p) = peer {
        req.extensions_mut().insert(p);
    }
    match console.api.clone().oneshot(req).await {
        Ok(resp) => {
            let (parts, body) = resp.into_parts();
            (parts.status, parts.headers, body)
        }
        Err(never) => match never {},
    }
}

async fn json_of(status: StatusCode, body: Body) -> Answer {
    let bytes = axum::body::to_bytes(body, 64 << 20).await.unwrap_or_default();
    Answer { status, body: serde_json::from_slice(&bytes).unwrap_or(Value::Null) }
}

impl Ctx {
    /// The signed-in visitor, or the response that sends them to sign in.
    pub(crate) async fn load(
        console: &C,
        headers: &HeaderMap,
        peer: Option<sekisho_door::credentials::PeerAddr>,
        here: &str,
    ) -> Result<Ctx, Response> {
        let lang = Lang::from_headers(headers);
        let to_login = |clear: bool| {
            let q = serde_urlencoded::to_string([("rd", here)]).unwrap_or_default();
            let mut resp = see_other(&format!("/login?{q}"));
            if clear {
                resp.headers_mut().append(header::SET_COOKIE, session::clear_cookie(CONSOLE_COOKIE));
            }
            resp
        };
        let Some(key) = super::cookie(headers, CONSOLE_COOKIE) else { return Err(to_login(false)) };
        let (status, _, body) = call_api(console, Some(&key), peer, Method::GET, "/api/v1/session", None).await;
        let who = json_of(status, body).await;
        // Only a TOTP or SSO sign-in opens the console, not a password alone or an API key.
        let web = session::web_auth_method(who.body["auth_method"].as_str());
        if !who.ok() || who.body["user"] != Value::Bool(true) || web.is_none() {
            return Err(to_login(true));
        }
        let s = |k: &str| who.body[k].as_str().unwrap_or("").to_owned();
        let scopes = who.body["scopes"]
            .as_array()
            .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
            .unwrap_or_default();
        let zone_name = s("time_zone");
        let zone = sekisho_store::zone::or_default(Some(&zone_name));
        Ok(Ctx {
            console: console.clone(),
            lang,
            zone,
            zone_name,
            user_zone: s("user_time_zone"),
            tenant_zone: s("tenant_time_zone"),
            csrf: session::csrf_token(&key),
            key,
            peer,
            name: s("name"),
            tenant: s("tenant"),
            tenant_id: s("tenant_id"),
            key_id: s("key_id"),
            scopes,
        })
    }

    pub(crate) fn t(&self, key: &'static str) -> &'static str {
        self.lang.t(key)
    }

    /// `time_ms` in the visitor's zone: `2026-12-07 09:00:00 JST`.
    pub(crate) fn when(&self, time_ms: i64) -> String {
        sekisho_store::zone::human(&self.zone, time_ms)
    }

    /// `time_ms` as people say it (「5分前」, "in 3 days"), the exact time on hover and in the
    /// `datetime` attribute (ISO 8601 with the offset).
    pub(crate) fn ago(&self, time_ms: i64) -> Markup {
        let now = sekisho_store::now_ms();
        html! {
            time datetime=(sekisho_store::zone::iso(&self.zone, time_ms)) title=(self.when(time_ms)) {
                (self.lang.relative(now, time_ms).unwrap_or_else(|| self.when(time_ms)))
            }
        }
    }

    pub(crate) fn may(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == "*" || s == scope)
    }

    pub(crate) async fn api(&self, method: Method, path: &str, body: Option<Value>) -> Answer {
        let (status, _, body) = call_api(&self.console, Some(&self.key), self.peer, method, path, body).await;
        json_of(status, body).await
    }

    pub(crate) async fn get(&self, path: &str) -> Answer {
        self.api(Method::GET, path, None).await
    }

    /// The raw API response (exports are passed through as they stream).
    pub(crate) async fn raw(&self, path: &str) -> (StatusCode, HeaderMap, Body) {
        call_api(&self.console, Some(&self.key), self.peer, Method::GET, path, None).await
    }

    /// A full console page.
    pub(crate) fn page(&self, active: &str, title: &str, body: Markup) -> Response {
        let who = Who { name: &self.name, tenant: &self.tenant, csrf: &self.csrf, scopes: &self.scopes };
        page::html_response(StatusCode::OK, page::layout(self.lang, &who, active, title, body), "")
    }

    /// A page with the recording player (its terminal is WebAssembly: the page's policy allows
    /// compiling it; scripts still come only from the relay).
    pub(crate) fn player_page(&self, active: &str, title: &str, body: Markup) -> Response {
        let who = Who { name: &self.name, tenant: &self.tenant, csrf: &self.csrf, scopes: &self.scopes };
        let markup = page::layout(self.lang, &who, active, title, body);
        page::html_response_scripts(StatusCode::OK, markup, "", "'wasm-unsafe-eval'")
    }

    /// A one-button form in a table row: posts `do=<what>` and `<key>=<value>` to `action`
    /// (with the CSRF field); a `danger` one asks before it goes.
    pub(crate) fn row_action(
        &self,
        action: &str,
        what: &str,
        key: &str,
        value: &str,
        label: &'static str,
        danger: bool,
    ) -> Markup {
        html! {
            form.inline method="post" action=(action) data-confirm=[danger.then(|| self.t("confirm"))] {
                (self.csrf_field())
                input type="hidden" name="do" value=(what);
                input type="hidden" name=(key) value=(value);
                button.small.danger[danger] type="submit" { (self.t(label)) }
            }
        }
    }

    /// The hidden CSRF field every form carries.
    pub(crate) fn csrf_field(&self) -> Markup {
        html! { input type="hidden" name="csrf" value=(self.csrf); }
    }
}

/// A signed-in form post whose CSRF token and origin are right.
pub(crate) async fn ctx_post(
    console: &C,
    headers: &HeaderMap,
    peer: Option<sekisho_door::credentials::PeerAddr>,
    here: &str,
    fields: &Fields,
) -> Result<Ctx, Response> {
    let c = Ctx::load(console, headers, peer, here).await?;
    if !same_origin(headers, &console.state.web.console_origin())
        || !session::csrf_ok(&c.key, fields.get("csrf").map_or("", String::as_str))
    {
        return Err(refused(c.lang, "csrf_failed", "the form is stale or came from another site; reload the page"));
    }
    Ok(c)
}

/// An `Origin` header, when the browser sends one, must be this host (over HTTP/2, which has no
/// `Host` header, the console's own origin).
fn same_origin(headers: &HeaderMap, console_origin: &str) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else { return true };
    match (origin.strip_prefix("https://"), headers.get(header::HOST).and_then(|v| v.to_str().ok())) {
        (Some(o), Some(h)) => o.eq_ignore_ascii_case(h),
        (Some(_), None) => origin.eq_ignore_ascii_case(console_origin),
        _ => false,
    }
}

pub(crate) fn see_other(to: &str) -> Response {
    let mut resp = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(to) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp
}

fn refused(lang: Lang, code: &str, why: &str) -> Response {
    page::message(lang, StatusCode::FORBIDDEN, "bad_request", "forbidden_text", Some((code, why)), None)
}

/// A flash line above a page: success, or the API's error.
pub(crate) fn flash(lang: Lang, answer: Option<&Answer>) -> Markup {
    html! {
        @if let Some(a) = answer {
            @if a.ok() {
                p.flash role="status" { (lang.t("done")) }
            } @else {
                div.flash.error role="alert" {
                    strong { (lang.t("error")) } " "
                    (a.error(lang))
                }
            }
        }
    }
}

fn peer_of(req_ext: &axum::http::Extensions) -> Option<sekisho_door::credentials::PeerAddr> {
    req_ext.get::<sekisho_door::credentials::PeerAddr>().copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_origin_must_be_this_host_over_https() {
        let console = "https://localhost:8443";
        let mut h = HeaderMap::new();
        assert!(same_origin(&h, console), "no Origin header (older browsers, curl)");
        h.insert(header::ORIGIN, "https://evil.example".parse().unwrap());
        assert!(!same_origin(&h, console), "HTTP/2: no Host, so the console's origin");
        h.insert(header::ORIGIN, "https://localhost:8443".parse().unwrap());
        assert!(same_origin(&h, console));
        h.insert(header::HOST, "localhost:8443".parse().unwrap());
        assert!(same_origin(&h, console));
        h.insert(header::ORIGIN, "https://evil.example".parse().unwrap());
        assert!(!same_origin(&h, console));
        h.insert(header::ORIGIN, "null".parse().unwrap());
        assert!(!same_origin(&h, console));
        h.insert(header::ORIGIN, "http://localhost:8443".parse().unwrap());
        assert!(!same_origin(&h, console));
    }
}
