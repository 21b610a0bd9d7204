//! Sign-in through the tenant's OpenID Connect provider, as an alternative to the password and
//! TOTP: the authorization code flow with PKCE and a nonce (the `openidconnect` crate). The
//! flow's state is kept here for 10 minutes and bound to the browser by a cookie, so a callback
//! from another browser (login CSRF) is refused. The ID token's `preferred_username`, `email`
//! (verified) or `sub` names an existing Sekisho user of the tenant; nobody is created.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use axum::extract::{Query, State as AxState};
use axum::http::{Extensions, HeaderMap, StatusCode, header};
use axum::response::Response;
use axum::routing::get;
use openidconnect::core::{CoreAuthenticationFlow, CoreClient, CoreIdTokenClaims, CoreProviderMetadata};
use openidconnect::{
    AsyncHttpClient, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointMaybeSet, EndpointNotSet,
    EndpointSet, HttpClientError, HttpRequest, HttpResponse, IssuerUrl, Nonce, PkceCodeChallenge, PkceCodeVerifier,
    RedirectUrl, Scope, TokenResponse,
};
use parking_lot::Mutex;
use sekisho_audit::{Decision, Event, EventKind, SubjectKind};

use super::{C, Console, login_with_key, peer_of};
use crate::i18n::Lang;
use crate::session::{self, IDLE_MS};

const FLOW_COOKIE: &str = "__Host-sekisho-oidc";
const FLOW_TTL: Duration = Duration::from_secs(600);
/// Sign-ins under way at once, at most (each costs a little memory until it ends or expires).
const MAX_FLOWS: usize = 10_000;

pub(super) fn routes() -> axum::Router<C> {
    axum::Router::new().route("/oidc/start", get(start)).route("/oidc/callback", get(callback))
}

struct Pending {
    tenant_id: sekisho_store::TenantId,
    verifier: String,
    nonce: String,
    rd: Option<String>,
    at: Instant,
}

/// Sign-ins under way, by their `state`.
#[derive(Default)]
pub(crate) struct Flows {
    open: Mutex<HashMap<String, Pending>>,
}

/// The HTTP client for a tenant's provider: every address it connects to passes the relay's
/// egress rule (a tenant admin names the issuer, and the discovery document names the rest).
struct Http {
    client: reqwest::Client,
    rule: std::sync::Arc<sekisho_door::egress::EgressRule>,
}

fn http_client(state: &sekisho_door::State) -> Result<Http, String> {
    // No redirects: the provider's answers are read as they are (SSRF guidance of the crate).
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .dns_resolver(state.egress.resolver())
        .build()
        .map_err(|e| e.to_string())?;
    Ok(Http { client, rule: state.egress.clone() })
}

impl<'c> AsyncHttpClient<'c> for Http {
    type Error = HttpClientError<reqwest::Error>;
    type Future =
        std::pin::Pin<Box<dyn std::future::Future<Output = Result<HttpResponse, Self::Error>> + Send + Sync + 'c>>;

    fn call(&'c self, request: HttpRequest) -> Self::Future {
        // Names go through the rule in the resolver; an address in the URL is never resolved.
        let literal = match request.uri().host().map(|h| h.trim_start_matches('[').trim_end_matches(']')) {
            Some(h) => h.parse::<std::net::IpAddr>().ok(),
            None => None,
        };
        if let Some(Err(e)) = literal.map(|ip| self.rule.check(ip)) {
            return Box::pin(std::future::ready(Err(HttpClientError::Other(e.to_string()))));
        }
        self.client.call(request)
    }
}

#[derive(serde::Deserialize)]
struct StartQuery {
    #[serde(default = "default_tenant")]
    tenant: String,
    rd: Option<String>,
}

fn default_tenant() -> String {
    "default".into()
}

/// The sign-in page again with `key`'s sentence in the visitor's language, and `detail` (what the
/// provider or the library said, as it said it) after it when there is one.
async fn failed(console: &Console, lang: Lang, key: &'static str, detail: &str) -> Response {
    let fields = super::Fields::new();
    let text = if detail.is_empty() { lang.t(key).to_owned() } else { format!("{} ({detail})", lang.t(key)) };
    super::login_page(console, lang, None, Some(&text), &fields).await
}

async fn audit(console: &Console, tenant: &str, user: &str, ip: std::net::IpAddr, decision: Decision, reason: &str) {
    let state = &console.state;
    let event = Event::new(tenant, EventKind::Login, decision)
        .subject(SubjectKind::User, user.to_owned())
        .path("web")
        .reason(reason.to_owned())
        .auth("oidc")
        .source(ip, state.geo.country(ip));
    if let Err(e) = state.auditor.record_durable(event).await {
        tracing::error!(error = %e, "cannot record an SSO sign-in");
    }
}

/// The client a provider's discovery document gives (authorization endpoint set; token and
/// user-info endpoints as the document says).
type Client =
    CoreClient<EndpointSet, EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointMaybeSet, EndpointMaybeSet>;

/// The client for a tenant's provider (discovery each time: one request, and keys rotate).
async fn client_for(
    console: &Console,
    tenant_id: &sekisho_store::TenantId,
    http: &Http,
) -> Result<(Client, sekisho_store::OidcProvider), String> {
    let state = &console.state;
    let provider = state
        .store
        .get_oidc(tenant_id)
        .await
        .map_err(|e| e.to_string())?
        .ok_or("this organisation has no single sign-on; sign in with a password")?;
    let issuer = IssuerUrl::new(provider.issuer.clone()).map_err(|e| format!("issuer: {e}"))?;
    let meta = CoreProviderMetadata::discover_async(issuer, http)
        .await
        .map_err(|e| format!("cannot read the provider's discovery document: {e}"))?;
    let secret = state.master.open(&provider.client_secret).and_then(|s| String::from_utf8(s).ok()).unwrap_or_default();
    let redirect =
        RedirectUrl::new(format!("{}/oidc/callback", state.web.console_origin())).map_err(|e| e.to_string())?;
    let client = CoreClient::from_provider_metadata(
        meta,
        ClientId::new(provider.client_id.clone()),
        Some(ClientSecret::new(secret)),
    )
    .set_redirect_uri(redirect);
    Ok((client, provider))
}

/// The URL to send the browser to, with the flow's state, nonce and PKCE verifier.
fn authorize(client: &Client) -> (String, String, String, String) {
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, state, nonce) = client
        .authorize_url(CoreAuthenticationFlow::AuthorizationCode, CsrfToken::new_random, Nonce::new_random)
        .add_scope(Scope::new("profile".into()))
        .add_scope(Scope::new("email".into()))
        .set_pkce_challenge(challenge)
        .url();
    (url.to_string(), state.secret().clone(), nonce.secret().clone(), verifier.secret().clone())
}

/// Trades the code for tokens and checks the ID token (signature, issuer, audience, expiry,
/// nonce); returns its claims.
async fn verify(
    client: &Client,
    code: String,
    verifier: String,
    nonce: &str,
    http: &Http,
) -> Result<CoreIdTokenClaims, String> {
    let token = client
        .exchange_code(AuthorizationCode::new(code))
        .map_err(|e| format!("the provider has no token endpoint: {e}"))?
        .set_pkce_verifier(PkceCodeVerifier::new(verifier))
        .request_async(http)
        .await
        .map_err(|e| format!("the provider refused the code: {e}"))?;
    let id_token = token.id_token().ok_or("the provider sent no ID token")?;
    id_token
        .claims(&client.id_token_verifier(), &Nonce::new(nonce.to_owned()))
        .cloned()
        .map_err(|e| format!("the ID token is not valid: {e}"))
}

/// `/oidc/start?tenant=…&rd=…`: off to the provider.
async fn start(AxState(console): AxState<C>, h: HeaderMap, Query(q): Query<StartQuery>) -> Response {
    let lang = Lang::from_headers(&h);
    let state = &console.state;
    let tenant = match state.store.get_tenant(q.tenant.trim()).await {
        Ok(Some(t)) => t,
        _ => return failed(&console, lang, "sso.no_tenant", "").await,
    };
    let http = match http_client(&console.state) {
        Ok(c) => c,
        Err(e) => return failed(&console, lang, "sso.provider_error", &e).await,
    };
    let (client, _) = match client_for(&console, &tenant.id, &http).await {
        Ok(c) => c,
        Err(e) => return failed(&console, lang, "sso.provider_error", &e).await,
    };
    let (url, flow_state, nonce, verifier) = authorize(&client);
    let admitted = {
        let mut open = console.flows.open.lock();
        if open.len() >= MAX_FLOWS {
            open.retain(|_, p| p.at.elapsed() < FLOW_TTL);
        }
        let admitted = open.len() < MAX_FLOWS;
        if admitted {
            let pending = Pending { tenant_id: tenant.id, verifier, nonce, rd: q.rd, at: Instant::now() };
            open.insert(flow_state.clone(), pending);
        }
        admitted
    };
    if !admitted {
        return failed(&console, lang, "sso.busy", "").await;
    }
    // A page that moves on by itself rather than a redirect: the sign-in form's
    // `form-action` policy would stop a redirect to the provider's origin.
    let body = maud::html! {
        (maud::DOCTYPE)
        html lang=(lang.code()) {
            head { meta charset="utf-8"; meta http-equiv="refresh" content={ "0;url=" (url) }; title { "Sekisho" } }
            body { p { a #continue href=(url) { (lang.t("login.sso_continue")) } } }
        }
    };
    let mut resp = crate::page::html_response(StatusCode::OK, body, "");
    resp.headers_mut().append(header::SET_COOKIE, session::set_cookie(FLOW_COOKIE, &flow_state));
    resp
}

#[derive(serde::Deserialize)]
struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// `/oidc/callback?code=…&state=…`: the provider's answer becomes a console session.
async fn callback(
    AxState(console): AxState<C>,
    h: HeaderMap,
    e: Extensions,
    Query(q): Query<CallbackQuery>,
) -> Response {
    let lang = Lang::from_headers(&h);
    let peer = peer_of(&e);
    let ip = peer.map_or(std::net::IpAddr::from([127, 0, 0, 1]), |p| sekisho_door::credentials::canonical(p.0.ip()));
    let refuse = |key: &'static str, why: String| {
        let console = console.clone();
        async move {
            audit(&console, "default", "", ip, Decision::Deny, &format!("oidc_failed: {why}")).await;
            failed(&console, lang, key, if key == "sso.provider_refused" { &why } else { "" }).await
        }
    };
    if let Some(err) = &q.error {
        return refuse("sso.provider_refused", format!("{err}: {}", q.error_description.clone().unwrap_or_default()))
            .await;
    }
    let (Some(code), Some(flow_state)) = (q.code, q.state) else {
        return refuse("sso.bad_answer", "the provider's answer lacks the code or state".into()).await;
    };
    // The flow must have started in this browser.
    if crate::cookie(&h, FLOW_COOKIE).as_deref() != Some(flow_state.as_str()) {
        return refuse("sso.other_browser", "this sign-in did not start in this browser; start it again".into()).await;
    }
    let Some(pending) = console.flows.open.lock().remove(&flow_state).filter(|p| p.at.elapsed() < FLOW_TTL) else {
        return refuse("sso.expired", "the sign-in took too long or was already used; start it again".into()).await;
    };
    let http = match http_client(&console.state) {
        Ok(c) => c,
        Err(e) => return failed(&console, lang, "sso.provider_error", &e).await,
    };
    let verified = async {
        let (client, provider) = client_for(&console, &pending.tenant_id, &http).await?;
        let claims = verify(&client, code, pending.verifier.clone(), &pending.nonce, &http).await?;
        let name = match provider.username_claim.as_str() {
            "sub" => claims.subject().as_str().to_owned(),
            _ => claims
                .preferred_username()
                .map(|u| u.as_str().to_owned())
                .ok_or("the ID token has no preferred_username")?,
        };
        Ok::<String, String>(name)
    }
    .await;
    let state = &console.state;
    let name = match verified {
        Ok(n) => n,
        Err(why) => {
            audit(&console, &pending.tenant_id, "", ip, Decision::Deny, &format!("oidc_failed: {why}")).await;
            return failed(&console, lang, "sso.provider_error", &why).await;
        }
    };
    let user = match state.store.get_user(&pending.tenant_id, &name).await {
        Ok(u) => u,
        Err(e) => {
            let why = format!("store_unavailable: cannot read user `{name}`: {e}");
            audit(&console, &pending.tenant_id, &name, ip, Decision::Deny, &why).await;
            return failed(&console, lang, "sso.store", "").await;
        }
    };
    let Some(user) = user.filter(|u| u.disabled_at.is_none()) else {
        audit(&console, &pending.tenant_id, &name, ip, Decision::Deny, "oidc_unknown_user").await;
        return failed(&console, lang, "sso.unknown_user", &name).await;
    };
    if user.locked_until.is_some_and(|t| t > sekisho_store::now_ms()) {
        audit(&console, &pending.tenant_id, &name, ip, Decision::Deny, "locked").await;
        return failed(&console, lang, "sso.locked", "").await;
    }
    let issued = match sekisho_door::sessions::issue_session(state, &user, "oidc", Some(IDLE_MS)).await {
        Ok(i) => i,
        Err(e) => return failed(&console, lang, "sso.provider_error", &e.to_string()).await,
    };
    audit(&console, &pending.tenant_id, &user.name, ip, Decision::Allow, "login succeeded").await;
    let mut resp = login_with_key(&console, &h, peer, &issued.key, pending.rd.as_deref()).await;
    resp.headers_mut().append(header::SET_COOKIE, session::clear_cookie(FLOW_COOKIE));
    resp
}
