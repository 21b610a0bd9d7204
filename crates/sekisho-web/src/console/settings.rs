//! The settings page: language, the visitor's own time zone (the organisation's by default), who
//! they are signed in as.

use axum::Router;
use axum::extract::{Form, State as AxState};
use axum::http::{Extensions, HeaderMap, Method};
use axum::response::Response;
use axum::routing::get;
use maud::html;
use serde_json::json;

use super::pages::{f, posted, signed_in};
use super::{Answer, C, Ctx, Fields, ctx_post, flash, peer_of};

pub(super) fn routes() -> Router<C> {
    Router::new().route("/settings", get(settings).post(settings_post))
}

async fn settings(AxState(con): AxState<C>, h: HeaderMap, e: Extensions) -> Response {
    let c = signed_in!(con, h, e, "/settings");
    view(&c, None)
}

async fn settings_post(AxState(con): AxState<C>, h: HeaderMap, e: Extensions, Form(fs): Form<Fields>) -> Response {
    let c = posted!(con, h, e, "/settings", fs);
    let a = c.api(Method::PATCH, "/api/v1/session", Some(json!({ "time_zone": f(&fs, "time_zone") }))).await;
    if !a.ok() {
        return view(&c, Some(&a));
    }
    // Shown at once in the new zone.
    match Ctx::load(&con, &h, peer_of(&e), "/settings").await {
        Ok(c) => view(&c, Some(&a)),
        Err(r) => r,
    }
}

fn view(c: &Ctx, answer: Option<&Answer>) -> Response {
    let ja = c.lang == crate::i18n::Lang::Ja;
    let now = sekisho_store::now_ms();
    let body = html! {
        (flash(c.lang, answer))
        dl.reason {
            dt { (c.t("settings.language")) }
            dd { a href="/lang?to=en" aria-current=[(!ja).then_some("true")] { "English" } " · "
                 a href="/lang?to=ja" aria-current=[ja.then_some("true")] { "日本語" } }
            dt { (c.t("settings.time_zone")) }
            dd #time-zone { (c.zone_name) " · " (c.when(now)) }
            dt { (c.t("settings.tenant")) } dd { (c.tenant) " (" (c.tenant_zone) ")" }
            dt { (c.t("settings.session")) } dd { (c.name) }
            dt { (c.t("settings.scopes")) } dd { code { (c.scopes.join(" ")) } }
            dt { (c.t("settings.version")) } dd { (env!("CARGO_PKG_VERSION")) }
        }
        h2 { (c.t("settings.time_zone")) }
        p.hint { (c.t("settings.tz_text")) }
        form.box method="post" action="/settings" {
            (c.csrf_field())
            label for="tz" { (c.t("settings.time_zone")) }
            select #tz name="time_zone" translate="no" {
                option value="" selected[c.user_zone.is_empty()] {
                    (c.t("settings.tz_tenant")) " (" (c.tenant_zone) ")"
                }
                @for name in zones() {
                    option value=(name) selected[c.user_zone == name] { (name) }
                }
            }
            button #save-tz type="submit" { (c.t("settings.tz_save")) }
        }
    };
    c.page("/settings", c.t("nav.settings"), body)
}

/// The bundled database's zone names, sorted (the legacy aliases too: people look for them).
fn zones() -> Vec<String> {
    let mut names: Vec<String> = jiff::tz::db().available().map(|n| n.to_string()).collect();
    names.sort();
    names
}
