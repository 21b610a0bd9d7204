//! The identity, policy and evidence pages: users, groups, API keys, policies, audit log,
//! settings.

use std::collections::HashMap;

use axum::Router;
use axum::extract::{Form, Query, State as AxState};
use axum::http::{Extensions, HeaderMap, Method};
use axum::response::Response;
use axum::routing::get;
use maud::html;
use serde_json::{Value, json};

use super::pages::{enc, f, list, posted, s, signed_in};
use super::{Answer, C, Ctx, Fields, ctx_post, flash, peer_of};

pub(super) fn routes() -> Router<C> {
    Router::new()
        .route("/users", get(users).post(users_post))
        .route("/groups", get(groups).post(groups_post))
        .route("/api-keys", get(keys).post(keys_post))
        .route("/policies", get(policies).post(policies_post))
}

fn lines(text: &str) -> Vec<String> {
    text.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_owned).collect()
}

// --- Users ----------------------------------------------------------------------------------

async fn users(AxState(con): AxState<C>, h: HeaderMap, e: Extensions) -> Response {
    let c = signed_in!(con, h, e, "/users");
    users_view(&c, None, None).await
}

async fn users_post(AxState(con): AxState<C>, h: HeaderMap, e: Extensions, Form(fs): Form<Fields>) -> Response {
    let c = posted!(con, h, e, "/users", fs);
    let name = enc(f(&fs, "name"));
    match f(&fs, "do") {
        "delete" => {
            let a = c.api(Method::DELETE, &format!("/api/v1/users/{name}"), None).await;
            users_view(&c, Some(&a), None).await
        }
        "totp" => {
            let a = c.api(Method::POST, &format!("/api/v1/users/{name}/totp"), Some(json!({}))).await;
            let secret = a.ok().then(|| a.body.clone());
            users_view(&c, Some(&a), secret).await
        }
        _ => {
            let groups: Vec<String> =
                f(&fs, "groups").split(',').map(str::trim).filter(|g| !g.is_empty()).map(str::to_owned).collect();
            let body = json!({
                "name": f(&fs, "name"), "display_name": f(&fs, "display_name"),
                "password": fs.get("password").cloned().unwrap_or_default(), "groups": groups,
            });
            let a = c.api(Method::POST, "/api/v1/users", Some(body)).await;
            users_view(&c, Some(&a), None).await
        }
    }
}

async fn users_view(c: &Ctx, answer: Option<&Answer>, totp: Option<Value>) -> Response {
    let users = list(&c.get("/api/v1/users").await);
    let write = c.may("users:write");
    let body = html! {
        (flash(c.lang, answer))
        @if let Some(t) = &totp {
            div.flash role="status" {
                p { (c.t("users.totp_secret")) }
                pre.cmd #totp-secret { (s(&t["secret"])) }
                p { code { (s(&t["otpauth_url"])) } }
                p { @for code in t["recovery_codes"].as_array().cloned().unwrap_or_default() { code { (s(&code)) } " " } }
            }
        }
        div.scroll { table #users {
            thead { tr {
                th { (c.t("name")) } th { (c.t("users.display")) } th { (c.t("users.groups")) }
                th { (c.t("users.totp")) } th { (c.t("users.locked")) } th { (c.t("actions")) }
            } }
            tbody { @for u in &users { tr {
                td { (s(&u["name"])) } td { (s(&u["display_name"])) }
                td { (u["groups"].as_array().map(|g| g.iter().map(s).collect::<Vec<_>>().join(", ")).unwrap_or_default()) }
                td { @if u["totp_enabled"].as_i64() == Some(1) { "✓" } }
                td { @if u["locked"] == Value::Bool(true) { span.bad { "✓" } } }
                td { @if write {
                    (c.row_action("/users", "totp", "name", &s(&u["name"]), "users.enroll_totp", false))
                    " "
                    (c.row_action("/users", "delete", "name", &s(&u["name"]), "delete", true))
                } }
            } } }
        } }
        @if write {
            h2 { (c.t("users.new")) }
            form.box method="post" action="/users" {
                (c.csrf_field())
                div.row {
                    div { label for="user-name" { (c.t("name")) } input #user-name type="text" name="name" required; }
                    div { label for="user-display" { (c.t("users.display")) } input #user-display type="text" name="display_name"; }
                    div { label for="user-password" { (c.t("login.password")) }
                        input #user-password type="password" name="password" autocomplete="new-password" required; }
                    div { label for="user-groups" { (c.t("users.groups")) } input #user-groups type="text" name="groups" placeholder="ops, partners"; }
                }
                button #create-user type="submit" { (c.t("create")) }
            }
        }
    };
    c.page("/users", c.t("nav.users"), body)
}

// --- Groups ---------------------------------------------------------------------------------

async fn groups(AxState(con): AxState<C>, h: HeaderMap, e: Extensions) -> Response {
    let c = signed_in!(con, h, e, "/groups");
    groups_view(&c, None).await
}

async fn groups_post(AxState(con): AxState<C>, h: HeaderMap, e: Extensions, Form(fs): Form<Fields>) -> Response {
    let c = posted!(con, h, e, "/groups", fs);
    let name = enc(f(&fs, "name"));
    let a = match f(&fs, "do") {
        "delete" => c.api(Method::DELETE, &format!("/api/v1/groups/{name}"), None).await,
        "member" => {
            let path = format!("/api/v1/groups/{name}/members/{}", enc(f(&fs, "user")));
            c.api(Method::PUT, &path, None).await
        }
        _ => {
            c.api(Method::POST, "/api/v1/groups", Some(json!({ "name": f(&fs, "name"), "role": f(&fs, "role") }))).await
        }
    };
    groups_view(&c, Some(&a)).await
}

async fn groups_view(c: &Ctx, answer: Option<&Answer>) -> Response {
    let groups = list(&c.get("/api/v1/groups").await);
    let write = c.may("users:write");
    let body = html! {
        (flash(c.lang, answer))
        div.scroll { table #groups {
            thead { tr { th { (c.t("name")) } th { (c.t("groups.role")) } th { (c.t("groups.members")) } th { (c.t("actions")) } } }
            tbody { @for g in &groups { tr {
                td translate="no" { (s(&g["name"])) } td { (c.lang.word(&s(&g["role"]))) }
                td { (g["members"].as_array().map(|m| m.iter().map(s).collect::<Vec<_>>().join(", ")).unwrap_or_default()) }
                td { @if write {
                    form.inline method="post" action="/groups" {
                        (c.csrf_field())
                        input type="hidden" name="do" value="member";
                        input type="hidden" name="name" value=(s(&g["name"]));
                        input type="text" name="user" aria-label=(c.t("groups.add_member")) size="10";
                        button.small type="submit" { (c.t("groups.add_member")) }
                    }
                    " "
                    (c.row_action("/groups", "delete", "name", &s(&g["name"]), "delete", true))
                } }
            } } }
        } }
        @if write {
            h2 { (c.t("groups.new")) }
            form.box method="post" action="/groups" {
                (c.csrf_field())
                div.row {
                    div { label for="group-name" { (c.t("name")) } input #group-name type="text" name="name" required; }
                    div { label for="group-role" { (c.t("groups.role")) }
                        select #group-role name="role" { @for r in sekisho_door::credentials::ROLES { option value=(r) selected[r == "member"] { (c.lang.word(r)) } } } }
                }
                button #create-group type="submit" { (c.t("create")) }
            }
        }
    };
    c.page("/groups", c.t("nav.groups"), body)
}

// --- API keys -------------------------------------------------------------------------------

async fn keys(AxState(con): AxState<C>, h: HeaderMap, e: Extensions) -> Response {
    let c = signed_in!(con, h, e, "/api-keys");
    keys_view(&c, None, None).await
}

async fn keys_post(AxState(con): AxState<C>, h: HeaderMap, e: Extensions, Form(fs): Form<Fields>) -> Response {
    let c = posted!(con, h, e, "/api-keys", fs);
    match f(&fs, "do") {
        "revoke" => {
            let a = c.api(Method::DELETE, &format!("/api/v1/api-keys/{}", enc(f(&fs, "id"))), None).await;
            keys_view(&c, Some(&a), None).await
        }
        _ => {
            let scopes: Vec<&str> = f(&fs, "scopes").split([' ', ',']).filter(|x| !x.is_empty()).collect();
            let mut body = json!({ "name": f(&fs, "name"), "scopes": scopes });
            if let Ok(days) = f(&fs, "days").parse::<i64>() {
                body["expires_in_days"] = json!(days);
            }
            let a = c.api(Method::POST, "/api/v1/api-keys", Some(body)).await;
            let key = a.ok().then(|| s(&a.body["key"]));
            keys_view(&c, Some(&a), key).await
        }
    }
}

async fn keys_view(c: &Ctx, answer: Option<&Answer>, new_key: Option<String>) -> Response {
    let all = list(&c.get("/api/v1/api-keys").await);
    // Sign-in sessions (console, and the browser sessions minted from them) are keys too, but
    // nobody made them by hand: listed apart, under who they belong to.
    let (sessions, keys): (Vec<Value>, Vec<Value>) =
        all.into_iter().filter(|k| k["revoked_at"].is_null()).partition(|k| !k["auth_method"].is_null());
    let users: HashMap<String, String> = if c.may("users:read") {
        list(&c.get("/api/v1/users").await).iter().map(|u| (s(&u["id"]), s(&u["name"]))).collect()
    } else {
        HashMap::new()
    };
    let write = c.may("apikeys:write");
    let body = html! {
        (flash(c.lang, answer))
        @if let Some(k) = &new_key {
            p { (c.t("keys.shown_once")) }
            pre.cmd #new-key { (k) }
            button.small type="button" data-copy="new-key" data-done=(c.t("copied")) { (c.t("copy")) }
        }
        div.scroll { table #api-keys {
            thead { tr {
                th { (c.t("name")) } th { (c.t("keys.scopes")) } th { (c.t("keys.created")) } th { (c.t("keys.expires")) }
                th { (c.t("keys.last_used")) } th { (c.t("actions")) }
            } }
            tbody { @for k in &keys { tr {
                td translate="no" { (s(&k["name"])) } td { code { (s(&k["scopes"])) } }
                td { (k["created_at"].as_i64().map(|t| c.when(t)).unwrap_or_default()) }
                td { @if let Some(t) = k["expires_at"].as_i64() { (c.ago(t)) } }
                td { @if let Some(t) = k["last_used_at"].as_i64() { (c.ago(t)) } }
                td { @if write {
                    (c.row_action("/api-keys", "revoke", "id", &s(&k["id"]), "revoke", true))
                } }
            } } }
        } }
        h2 { (c.t("keys.sessions")) }
        p.hint { (c.t("keys.sessions_text")) }
        div.scroll { table #sessions {
            thead { tr {
                th { (c.t("keys.user")) } th { (c.t("keys.kind")) } th { (c.t("keys.method")) }
                th { (c.t("keys.signed_in")) } th { (c.t("keys.last_used")) } th { (c.t("actions")) }
            } }
            tbody { @for k in &sessions { tr {
                @let user = s(&k["user_id"]);
                td { (users.get(&user).cloned().unwrap_or(user)) }
                td { @match k["bound_host"].as_str() {
                    Some(host) => { (c.t("keys.kind_browser")) " " code { (host) } }
                    None => { (c.t("keys.kind_console")) }
                } }
                td { (c.t(auth_method_key(k["auth_method"].as_str().unwrap_or_default()))) }
                td { (k["created_at"].as_i64().map(|t| c.when(t)).unwrap_or_default()) }
                td { @if let Some(t) = k["last_used_at"].as_i64() { (c.ago(t)) } }
                td { @if write {
                    (c.row_action("/api-keys", "revoke", "id", &s(&k["id"]), "keys.end_session", true))
                } }
            } } }
        } }
        @if write {
            h2 { (c.t("keys.new")) }
            form.box method="post" action="/api-keys" {
                (c.csrf_field())
                div.row {
                    div { label for="key-name" { (c.t("name")) } input #key-name type="text" name="name" required; }
                    div { label for="key-scopes" { (c.t("keys.scopes")) } input #key-scopes type="text" name="scopes" placeholder="agents:read audit:read" required; }
                    div { label for="key-days" { (c.t("keys.expires")) } input #key-days type="number" name="days" min="1" placeholder="90"; }
                }
                button #create-key type="submit" { (c.t("create")) }
            }
        }
    };
    c.page("/api-keys", c.t("nav.keys"), body)
}

/// The catalogue key of how a session's user signed in.
fn auth_method_key(method: &str) -> &'static str {
    match method {
        "password" => "auth.password",
        "password+totp" => "auth.password_totp",
        "oidc" => "auth.oidc",
        _ => "auth.other",
    }
}

// --- Policies -------------------------------------------------------------------------------

#[derive(serde::Deserialize)]
struct PolicyQuery {
    service: Option<String>,
}

async fn policies(AxState(con): AxState<C>, h: HeaderMap, e: Extensions, Query(q): Query<PolicyQuery>) -> Response {
    let c = signed_in!(con, h, e, "/policies");
    policies_view(&c, q.service.as_deref(), None, None, None).await
}

async fn policies_post(AxState(con): AxState<C>, h: HeaderMap, e: Extensions, Form(fs): Form<Fields>) -> Response {
    let c = posted!(con, h, e, "/policies", fs);
    let service = f(&fs, "service").to_owned();
    match f(&fs, "do") {
        "test" => {
            let mut body =
                json!({ "service": service, "user": f(&fs, "user"), "ip": f(&fs, "ip"), "path": f(&fs, "path") });
            if f(&fs, "ip").is_empty() {
                body["ip"] = json!("127.0.0.1");
            }
            let a = c.api(Method::POST, "/api/v1/policies/test", Some(body)).await;
            policies_view(&c, Some(&service), None, Some(&a), None).await
        }
        _ => {
            let body = json!({ "required": lines(f(&fs, "required")), "deny": lines(f(&fs, "deny")) });
            let a = c.api(Method::PUT, &format!("/api/v1/policies/{}", enc(&service)), Some(body)).await;
            // A refused text stays in the form, to be fixed.
            let typed = (!a.ok()).then(|| (f(&fs, "required").to_owned(), f(&fs, "deny").to_owned()));
            policies_view(&c, Some(&service), Some(&a), None, typed).await
        }
    }
}

async fn policies_view(
    c: &Ctx,
    chosen: Option<&str>,
    saved: Option<&Answer>,
    tested: Option<&Answer>,
    typed: Option<(String, String)>,
) -> Response {
    let services = list(&c.get("/api/v1/services").await);
    let policies = list(&c.get("/api/v1/policies").await);
    let chosen =
        chosen.filter(|x| !x.is_empty()).map(str::to_owned).or_else(|| services.first().map(|x| s(&x["name"])));
    let current = chosen.as_ref().and_then(|name| policies.iter().find(|p| p["service"].as_str() == Some(name)));
    let join = |v: &Value| v.as_array().map(|a| a.iter().map(s).collect::<Vec<_>>().join("\n")).unwrap_or_default();
    let (required, deny) = typed.unwrap_or_else(|| {
        current.map_or((String::new(), String::new()), |p| (join(&p["required"]), join(&p["deny"])))
    });
    let write = c.may("policies:write");
    let body = html! {
        form method="get" action="/policies" {
            label for="policy-service" { (c.t("policies.service")) }
            select #policy-service name="service" {
                @for sv in &services { @let n = s(&sv["name"]); option value=(n) selected[chosen.as_deref() == Some(n.as_str())] { (n) } }
            }
            " " button.small type="submit" { "→" }
        }
        @if let Some(a) = saved {
            @if a.ok() { p.flash role="status" { (c.t("policies.saved")) } }
            @else { div.flash.error #policy-errors role="alert" { strong { (c.t("policies.invalid")) } br;
                (a.error(c.lang)) } }
        }
        @if let Some(svc) = &chosen {
            @if current.is_none() { p.muted { (c.t("policies.none")) } }
            form.box method="post" action="/policies" {
                (c.csrf_field())
                input type="hidden" name="service" value=(svc);
                label for="policy-required" { (c.t("policies.required")) }
                textarea #policy-required name="required" readonly[!write] { (required) }
                label for="policy-deny" { (c.t("policies.deny")) }
                textarea #policy-deny name="deny" readonly[!write] { (deny) }
                p.muted { (c.t("policies.examples")) ": " code { "principal in Group::\"ops\"" } " · "
                    code { "context.country == \"JP\"" } " · " code { "context.hour < 8 || context.hour >= 20" } }
                @if write { button #save-policy type="submit" { (c.t("save")) } }
            }
            @if let Some(p) = current { details { summary { "Cedar" } pre { (s(&p["cedar"])) } } }
            h2 { (c.t("policies.test")) }
            form.box method="post" action="/policies" {
                (c.csrf_field())
                input type="hidden" name="do" value="test";
                input type="hidden" name="service" value=(svc);
                div.row {
                    div { label for="test-user" { (c.t("policies.test_user")) } input #test-user type="text" name="user" required; }
                    div { label for="test-ip" { (c.t("policies.test_ip")) } input #test-ip type="text" name="ip" placeholder="203.0.113.7"; }
                    div { label for="test-path" { (c.t("policies.test_path")) }
                        select #test-path name="path" { @for p in ["browser", "tunnel", "ssh", "socks"] { option value=(p) { (c.lang.word(p)) } } } }
                }
                button #test-policy type="submit" { (c.t("policies.test_submit")) }
            }
            @if let Some(t) = tested {
                @if !t.ok() { (flash(c.lang, Some(t))) }
                @else if t.body["allowed"] == Value::Bool(true) { p #test-result.ok { (c.t("policies.allowed")) " — " (crate::reasons::markup(c.lang, &s(&t.body["policy_id"]), &s(&t.body["reason"]))) } }
                @else { p #test-result.bad { (c.t("policies.denied")) " — " code { (s(&t.body["policy_id"])) } " " (crate::reasons::markup(c.lang, &s(&t.body["policy_id"]), &s(&t.body["reason"]))) } }
            }
        } @else { p.muted { (c.t("none")) } }
    };
    c.page("/policies", c.t("nav.policies"), body)
}
