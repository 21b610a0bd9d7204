//! The HTML around every page: layout, navigation, the stylesheet and script (served by the
//! relay itself: no CDN, works offline), and the plain message pages of the edge.
//!
//! maud escapes every value put into a page, so names, descriptions and policy text an admin
//! typed are shown as text, never run as markup.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use maud::{DOCTYPE, Markup, html};

use super::i18n::Lang;

pub(crate) const CSS: &str = include_str!("sekisho.css");
pub(crate) const JS: &str = include_str!("sekisho.js");
/// The recording player (asciinema-player, vendored: `vendor/asciinema-player/README.md`).
pub(crate) const PLAYER_JS: &str = include_str!("../vendor/asciinema-player/asciinema-player.min.js");
pub(crate) const PLAYER_CSS: &str = include_str!("../vendor/asciinema-player/asciinema-player.css");

/// The signed-in visitor, as the layout shows them.
pub(crate) struct Who<'a> {
    pub(crate) name: &'a str,
    pub(crate) tenant: &'a str,
    pub(crate) csrf: &'a str,
    pub(crate) scopes: &'a [String],
}

impl Who<'_> {
    pub(crate) fn may(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == "*" || s == scope)
    }
}

/// Navigation entries: (path, label key, scope needed to see it).
const NAV: &[(&str, &str, &str)] = &[
    ("/", "nav.dashboard", ""),
    ("/agents", "nav.agents", "agents:read"),
    ("/services", "nav.services", "services:read"),
    ("/routes", "nav.routes", "routes:read"),
    ("/policies", "nav.policies", "policies:read"),
    ("/users", "nav.users", "users:read"),
    ("/groups", "nav.groups", "users:read"),
    ("/api-keys", "nav.keys", "apikeys:read"),
    ("/live", "nav.live", "recordings:read"),
    ("/audit", "nav.audit", "audit:read"),
    ("/recordings", "nav.recordings", "recordings:read"),
    ("/settings", "nav.settings", ""),
];

/// Where the console's own stylesheet and script are served on the console's host.
pub(crate) const CONSOLE_ASSETS: &str = "/static/";
/// Where they are served on a service host: the edge's reserved path, answered by the relay
/// itself, never decided by the service's policy nor sent to the service (so a refusal page
/// leaves one audit event, not one more for each file it loads).
pub(crate) const EDGE_ASSETS: &str = "/.sekisho/static/";

/// The file names under either asset root: (name, content type, body).
pub(crate) const ASSETS: &[(&str, &str, &str)] =
    &[("sekisho.css", "text/css; charset=utf-8", CSS), ("sekisho.js", "text/javascript; charset=utf-8", JS)];

fn head(lang: Lang, title: &str, assets: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            title { (title) " · " (lang.t("app")) }
            // No icon: a browser would otherwise ask the service host for /favicon.ico.
            link rel="icon" href="data:,";
            link rel="stylesheet" href={ (assets) "sekisho.css" };
            script src={ (assets) "sekisho.js" } defer {}
        }
    }
}

fn lang_switch(lang: Lang) -> Markup {
    let other = if lang == Lang::Ja { "en" } else { "ja" };
    html! {
        a.lang href={ "/lang?to=" (other) } lang=(other) hreflang=(other) { (lang.t("lang.switch")) }
    }
}

/// A console page: header, navigation, then `body`.
pub(crate) fn layout(lang: Lang, who: &Who<'_>, active: &str, title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang=(lang.code()) {
            (head(lang, title, CONSOLE_ASSETS))
            body {
                a.skip href="#main" { (title) }
                header.top {
                    a.brand href="/" { "関所 " span { "Sekisho" } }
                    span.who { (lang.t("signed_in_as")) " " strong translate="no" { (who.name) } " @ " span translate="no" { (who.tenant) } }
                    (lang_switch(lang))
                    form.inline method="post" action="/logout" {
                        input type="hidden" name="csrf" value=(who.csrf);
                        button.link type="submit" { (lang.t("nav.logout")) }
                    }
                }
                div.frame {
                    nav aria-label=(lang.t("nav.menu")) {
                        ul {
                            @for (path, key, scope) in NAV {
                                @if scope.is_empty() || who.may(scope) {
                                    li { a href=(path) aria-current=[(*path == active).then_some("page")] { (lang.t(key)) } }
                                }
                            }
                        }
                    }
                    main #main {
                        h1 { (title) }
                        (body)
                    }
                }
            }
        }
    }
}

/// A page without navigation (sign-in, messages) on the console's host.
pub(crate) fn bare(lang: Lang, title: &str, body: Markup) -> Markup {
    bare_at(lang, title, body, CONSOLE_ASSETS)
}

/// [`bare`] with its assets at `assets` ([`CONSOLE_ASSETS`] or [`EDGE_ASSETS`]).
fn bare_at(lang: Lang, title: &str, body: Markup, assets: &str) -> Markup {
    html! {
        (DOCTYPE)
        html lang=(lang.code()) {
            (head(lang, title, assets))
            body.bare {
                header.top {
                    span.brand { "関所 " span { "Sekisho" } }
                    (lang_switch(lang))
                }
                main #main.narrow {
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

/// An HTML response with the console's security headers. `edge_origins` is the form-action
/// source for the service hosts (a sign-in form ends with a redirect to one).
pub(crate) fn html_response(status: StatusCode, markup: Markup, edge_origins: &str) -> Response {
    html_response_scripts(status, markup, edge_origins, "")
}

/// [`html_response`] whose scripts may also do `extra` (`'wasm-unsafe-eval'` for the recording
/// player's terminal, which is WebAssembly; still only the relay's own scripts).
pub(crate) fn html_response_scripts(status: StatusCode, markup: Markup, edge_origins: &str, extra: &str) -> Response {
    let mut resp = (status, markup.into_string()).into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    let csp = format!(
        "default-src 'self'; script-src 'self'{extra}; style-src 'self'; img-src 'self' data:; object-src 'none'; \
         base-uri 'none'; frame-ancestors 'none'; form-action 'self' {edge_origins}",
        extra = if extra.is_empty() { String::new() } else { format!(" {extra}") }
    );
    if let Ok(v) = HeaderValue::from_str(&csp) {
        h.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    resp
}

/// A message page on the console's host: a title, a sentence, and the reason id when there is one.
pub(crate) fn message(
    lang: Lang,
    status: StatusCode,
    title: &'static str,
    text: &'static str,
    reason: Option<(&str, &str)>,
    link: Option<(&str, &'static str)>,
) -> Response {
    message_at(CONSOLE_ASSETS, lang, status, title, text, reason, link)
}

/// [`message`] on a service host: its assets come from the edge's reserved path.
pub(crate) fn edge_message(
    lang: Lang,
    status: StatusCode,
    title: &'static str,
    text: &'static str,
    reason: Option<(&str, &str)>,
    link: Option<(&str, &'static str)>,
) -> Response {
    message_at(EDGE_ASSETS, lang, status, title, text, reason, link)
}

fn message_at(
    assets: &str,
    lang: Lang,
    status: StatusCode,
    title: &'static str,
    text: &'static str,
    reason: Option<(&str, &str)>,
    link: Option<(&str, &'static str)>,
) -> Response {
    let body = html! {
        p { (lang.t(text)) }
        @if let Some((id, why)) = reason {
            dl.reason {
                dt { (lang.t("edge.reason_id")) }
                dd { code #reason-id { (id) } }
                @if !why.is_empty() {
                    dt { (lang.t("reason")) }
                    dd { (crate::reasons::markup(lang, id, why)) }
                }
            }
        }
        @if let Some((href, label)) = link {
            p { a.button href=(href) { (lang.t(label)) } }
        }
    };
    html_response(status, bare_at(lang, lang.t(title), body, assets), "")
}
