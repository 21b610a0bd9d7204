//! Signing in and out of the console (password + TOTP, or an API key for scripts), the hand-over
//! to a service host after sign-in, and the language switch.

#![allow(clippy::wildcard_imports)]

use super::*;

// --- Sign-in --------------------------------------------------------------------------------

#[derive(serde::Deserialize)]
pub(super) struct Rd {
    rd: Option<String>,
}

pub(super) async fn login_page(
    console: &Console,
    lang: Lang,
    rd: Option<&str>,
    error: Option<&str>,
    fields: &Fields,
) -> Response {
    // Single sign-on only where a tenant has a provider (a store error hides it: the password
    // form still works, and the provider's flow would need the store anyway).
    let sso = console.state.store.oidc_provider_count().await.is_ok_and(|n| n > 0);
    let v = |k: &str| fields.get(k).cloned().unwrap_or_default();
    let tenant = fields.get("tenant").cloned().unwrap_or_else(|| "default".to_owned());
    let target = rd.and_then(|r| r.strip_prefix("https://")).map(|r| r.split('/').next().unwrap_or(r).to_owned());
    let body = html! {
        @if let Some(e) = error {
            div.flash.error role="alert" { strong { (lang.t("login.failed")) } br; (e) }
        }
        @if let Some(t) = &target {
            p.muted { (lang.t("login.continue")) " " strong { (t) } }
        }
        form method="post" action="/login" {
            @if let Some(r) = rd { input type="hidden" name="rd" value=(r); }
            label for="tenant" { (lang.t("login.tenant")) }
            input #tenant type="text" name="tenant" value=(tenant) autocomplete="organization" required;
            label for="user" { (lang.t("login.user")) }
            input #user type="text" name="user" value=(v("user")) autocomplete="username" required autofocus;
            label for="password" { (lang.t("login.password")) }
            input #password type="password" name="password" autocomplete="current-password" required;
            label for="totp" { (lang.t("login.totp")) }
            input #totp type="text" name="totp" inputmode="numeric" autocomplete="one-time-code" required;
            button #login type="submit" { (lang.t("login.submit")) }
        }
        @if sso {
            h2 { (lang.t("login.sso")) }
            form method="get" action="/oidc/start" {
                @if let Some(r) = rd { input type="hidden" name="rd" value=(r); }
                label for="sso-tenant" { (lang.t("login.tenant")) }
                input #sso-tenant type="text" name="tenant" value=(fields.get("tenant").cloned().unwrap_or_else(|| "default".to_owned())) required;
                button #sso type="submit" { (lang.t("login.sso_submit")) }
            }
        }
    };
    let status = if error.is_some() { StatusCode::UNAUTHORIZED } else { StatusCode::OK };
    page::html_response(status, page::bare(lang, lang.t("login.title"), body), &console.edge_sources())
}

impl Console {
    /// The CSP form-action source for service hosts (sign-in ends with a redirect to one).
    fn edge_sources(&self) -> String {
        let origin = self.state.web.console_origin();
        origin.replacen("https://", "https://*.", 1)
    }
}

pub(super) async fn login_form(AxState(console): AxState<C>, Query(q): Query<Rd>, req: Request) -> Response {
    let lang = Lang::from_headers(req.headers());
    let peer = peer_of(req.extensions());
    // Already signed in: go on at once.
    if let Ok(c) = Ctx::load(&console, req.headers(), peer, "/").await {
        return continue_to(&c, q.rd.as_deref()).await;
    }
    login_page(&console, lang, q.rd.as_deref(), None, &Fields::new()).await
}

pub(super) async fn login_submit(
    AxState(console): AxState<C>,
    headers: HeaderMap,
    req_ext: axum::http::Extensions,
    Form(f): Form<Fields>,
) -> Response {
    let lang = Lang::from_headers(&headers);
    let rd = f.get("rd").cloned();
    if !same_origin(&headers, &console.state.web.console_origin()) {
        return refused(lang, "csrf_failed", "the sign-in form came from another site");
    }
    let peer = peer_of(&req_ext);
    let code = f.get("totp").map_or("", |s| s.trim());
    let mut body = json!({
        "tenant": f.get("tenant").map_or("default", |s| s.trim()),
        "user": f.get("user").map_or("", |s| s.trim()),
        "password": f.get("password").cloned().unwrap_or_default(),
        "idle_timeout_secs": session::IDLE_MS / 1000,
        "require_totp": true,
    });
    // Six digits are a TOTP code; anything else is tried as a recovery code.
    if code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit()) {
        body["totp"] = json!(code);
    } else {
        body["recovery_code"] = json!(code);
    }
    let (status, _, resp_body) = call_api(&console, None, peer, Method::POST, "/api/v1/login", Some(body)).await;
    let answer = json_of(status, resp_body).await;
    let Some(key) = answer.body["key"].as_str().filter(|_| answer.ok()).map(str::to_owned) else {
        let msg = match answer.body["error"]["code"].as_str() {
            // Said in the visitor's language: nothing they typed was wrong.
            Some("store_unavailable") => lang.t("login.store_unavailable").to_owned(),
            _ => answer.body["error"]["message"].as_str().unwrap_or("sign-in failed").to_owned(),
        };
        return login_page(&console, lang, rd.as_deref(), Some(&msg), &f).await;
    };
    login_with_key(&console, &headers, peer, &key, rd.as_deref()).await
}

/// A fresh session key becomes the console cookie, then on to where the visitor was going.
pub(super) async fn login_with_key(
    console: &C,
    headers: &HeaderMap,
    peer: Option<sekisho_door::credentials::PeerAddr>,
    key: &str,
    rd: Option<&str>,
) -> Response {
    let mut with_cookie = headers.clone();
    if let Ok(v) = HeaderValue::from_str(&format!("{CONSOLE_COOKIE}={key}")) {
        with_cookie.insert(header::COOKIE, v);
    }
    let mut resp = match Ctx::load(console, &with_cookie, peer, "/").await {
        Ok(c) => continue_to(&c, rd).await,
        Err(r) => r,
    };
    resp.headers_mut().append(header::SET_COOKIE, session::set_cookie(CONSOLE_COOKIE, key));
    resp
}

/// After sign-in: a console path, or a service host (by a one-time ticket). Anything else is
/// an open redirect and goes to the dashboard instead.
async fn continue_to(c: &Ctx, rd: Option<&str>) -> Response {
    let Some(rd) = rd.filter(|r| !r.is_empty()) else { return see_other("/") };
    if rd.starts_with('/') {
        return see_other(if crate::safe_path(rd) { rd } else { "/" });
    }
    let state = &c.console.state;
    let Some(rest) = rd.strip_prefix("https://") else { return see_other("/") };
    let (authority, path) = rest.find(['/', '?']).map_or((rest, "/"), |i| (&rest[..i], &rest[i..]));
    let path = if path.starts_with('?') { format!("/{path}") } else { path.to_owned() };
    let path = if crate::safe_path(&path) { path } else { "/".to_owned() };
    let host = authority.to_ascii_lowercase();
    let host_only = host.rsplit_once(':').map_or(host.as_str(), |(h, _)| h);
    if state.web.host_origin(host_only) != format!("https://{host}") {
        return see_other("/");
    }
    let topo = state.topology();
    let service =
        state.web.edge_labels(host_only).and_then(|l| topo.browser_hosts.get(l)).and_then(|id| topo.services.get(id));
    if service.is_none_or(|s| s.tenant_id != c.tenant_id) {
        return see_other("/");
    }
    let parent = match state.store.get_api_key(&c.key_id).await {
        Ok(k) => k.filter(|k| k.user_id.is_some()),
        Err(e) => {
            tracing::error!(error = %e, "cannot read the console session to hand it to a service");
            return refused(c.lang, "store_unavailable", "the relay cannot read its database now; try again shortly");
        }
    };
    let Some((parent, auth_method)) =
        parent.and_then(|k| session::web_auth_method(k.auth_method.as_deref()).map(|m| (k, m)))
    else {
        return see_other("/login");
    };
    let ticket = state.tickets.mint(Ticket {
        tenant: c.tenant_id.clone(),
        user_id: parent.user_id.clone().unwrap_or_default(),
        parent_id: parent.id.clone(),
        parent_expires: parent.expires_at,
        auth_method: auth_method.to_owned(),
        host: host_only.to_owned(),
        path,
    });
    let q = serde_urlencoded::to_string([("ticket", ticket.as_str())]).unwrap_or_default();
    see_other(&format!("{}/.sekisho/auth?{q}", state.web.host_origin(host_only)))
}

pub(super) async fn logout_form(AxState(console): AxState<C>, req: Request) -> Response {
    let peer = peer_of(req.extensions());
    let lang = Lang::from_headers(req.headers());
    match Ctx::load(&console, req.headers(), peer, "/").await {
        Ok(c) => {
            let body = html! {
                form method="post" action="/logout" {
                    (c.csrf_field())
                    button #logout type="submit" { (lang.t("nav.logout")) }
                }
            };
            page::html_response(StatusCode::OK, page::bare(lang, lang.t("nav.logout"), body), "")
        }
        Err(_) => see_other("/login"),
    }
}

pub(super) async fn logout_submit(
    AxState(console): AxState<C>,
    headers: HeaderMap,
    req_ext: axum::http::Extensions,
    Form(f): Form<Fields>,
) -> Response {
    let peer = peer_of(&req_ext);
    let c = match ctx_post(&console, &headers, peer, "/", &f).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let answer = c.api(Method::POST, "/api/v1/logout", None).await;
    let lang = c.lang;
    let body = html! {
        @if answer.ok() { p.flash role="status" { (lang.t("logout.done")) } } @else { (flash(lang, Some(&answer))) }
        p { a.button href="/login" { (lang.t("login.title")) } }
    };
    let mut resp = page::html_response(StatusCode::OK, page::bare(lang, lang.t("nav.logout"), body), "");
    resp.headers_mut().append(header::SET_COOKIE, session::clear_cookie(CONSOLE_COOKIE));
    resp
}

#[derive(serde::Deserialize)]
pub(super) struct To {
    to: String,
}

/// The language switch: remembered in a cookie, then back where the visitor was.
pub(super) async fn set_lang(Query(q): Query<To>, headers: HeaderMap) -> Response {
    let lang = if q.to == "ja" { "ja" } else { "en" };
    let back = headers
        .get(header::REFERER)
        .and_then(|v| v.to_str().ok())
        .and_then(|r| r.strip_prefix("https://"))
        .and_then(|r| r.find('/').map(|i| r[i..].to_owned()))
        .filter(|p| crate::safe_path(p) && !p.starts_with("/lang"))
        .unwrap_or_else(|| "/".to_owned());
    let mut resp = see_other(&back);
    let cookie = format!("{LANG_COOKIE}={lang}; Path=/; Secure; SameSite=Lax; Max-Age=31536000");
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp
}
