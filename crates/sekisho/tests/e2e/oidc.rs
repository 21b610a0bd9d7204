//! Single sign-on with OpenID Connect: a small real provider started by the test (discovery,
//! JWKS, authorization with PKCE, a token endpoint issuing RS256 ID tokens signed with a key
//! made by `openssl`), and the relay's console as its relying party.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use openidconnect::core::{
    CoreIdToken, CoreIdTokenClaims, CoreJsonWebKeySet, CoreJwsSigningAlgorithm, CoreRsaPrivateSigningKey,
};
use openidconnect::{
    Audience, EmptyAdditionalClaims, EndUserEmail, EndUserUsername, IssuerUrl, JsonWebKeyId, Nonce, PkceCodeChallenge,
    PkceCodeVerifier, PrivateSigningKey, StandardClaims, SubjectIdentifier,
};
use serde_json::{Value, json};

use crate::harness::Relay;
use crate::web::{Visitor, setup_with, web_user};

const CLIENT_ID: &str = "sekisho-console";
const CLIENT_SECRET: &str = "s3cret-of-the-client";

/// The provider: who it signs in next, and the codes it has handed out.
struct Provider {
    issuer: String,
    key: CoreRsaPrivateSigningKey,
    user: Mutex<String>,
    codes: Mutex<HashMap<String, (String, String, String)>>,
}

async fn start_provider(dir: &std::path::Path) -> (Arc<Provider>, SocketAddr) {
    let pem = dir.join("idp.pem");
    let ok = std::process::Command::new("openssl")
        .args(["genrsa", "-traditional", "-out"])
        .arg(&pem)
        .arg("2048")
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(ok.success());
    let pem = std::fs::read_to_string(pem).unwrap();
    let key = CoreRsaPrivateSigningKey::from_pem(&pem, Some(JsonWebKeyId::new("k1".into()))).unwrap();
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let p = Arc::new(Provider {
        issuer: format!("http://{addr}"),
        key,
        user: Mutex::new("sso-alice".into()),
        codes: Mutex::new(HashMap::new()),
    });
    let app = axum::Router::new()
        .route("/.well-known/openid-configuration", get(discovery))
        .route("/jwks", get(jwks))
        .route("/authorize", get(authorize))
        .route("/token", post(token))
        .with_state(p.clone());
    tokio::spawn(async move { axum::serve(l, app).await });
    (p, addr)
}

async fn discovery(State(p): State<Arc<Provider>>) -> axum::Json<Value> {
    let i = &p.issuer;
    axum::Json(json!({
        "issuer": i,
        "authorization_endpoint": format!("{i}/authorize"),
        "token_endpoint": format!("{i}/token"),
        "jwks_uri": format!("{i}/jwks"),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "scopes_supported": ["openid", "profile", "email"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic"],
        "code_challenge_methods_supported": ["S256"],
    }))
}

async fn jwks(State(p): State<Arc<Provider>>) -> axum::Json<CoreJsonWebKeySet> {
    axum::Json(CoreJsonWebKeySet::new(vec![p.key.as_verification_key()]))
}

/// Signs in whoever the test chose, at once, and sends the browser back with a code.
async fn authorize(State(p): State<Arc<Provider>>, Query(q): Query<HashMap<String, String>>) -> impl IntoResponse {
    assert_eq!(q["client_id"], CLIENT_ID);
    assert_eq!(q["code_challenge_method"], "S256", "PKCE is used");
    let code = format!("code-{}", rand::random::<u64>());
    let user = p.user.lock().unwrap().clone();
    p.codes.lock().unwrap().insert(code.clone(), (q["nonce"].clone(), q["code_challenge"].clone(), user));
    let to = format!("{}?code={code}&state={}", q["redirect_uri"], crate::web::enc(&q["state"]));
    (StatusCode::FOUND, [("location", to)])
}

async fn token(
    State(p): State<Arc<Provider>>,
    headers: HeaderMap,
    Form(f): Form<HashMap<String, String>>,
) -> axum::response::Response {
    let auth = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("");
    let basic = format!("Basic {}", base64_std(&format!("{CLIENT_ID}:{CLIENT_SECRET}")));
    if auth != basic {
        return (StatusCode::UNAUTHORIZED, axum::Json(json!({"error": "invalid_client"}))).into_response();
    }
    let Some((nonce, challenge, user)) = p.codes.lock().unwrap().remove(&f["code"]) else {
        return (StatusCode::BAD_REQUEST, axum::Json(json!({"error": "invalid_grant"}))).into_response();
    };
    let verifier = PkceCodeVerifier::new(f["code_verifier"].clone());
    if PkceCodeChallenge::from_code_verifier_sha256(&verifier).as_str() != challenge {
        return (StatusCode::BAD_REQUEST, axum::Json(json!({"error": "invalid_grant"}))).into_response();
    }
    let now = chrono_now();
    let claims = CoreIdTokenClaims::new(
        IssuerUrl::new(p.issuer.clone()).unwrap(),
        vec![Audience::new(CLIENT_ID.into())],
        now + chrono::Duration::minutes(5),
        now,
        StandardClaims::new(SubjectIdentifier::new(format!("sub-{user}")))
            .set_preferred_username(Some(EndUserUsername::new(user.clone())))
            .set_email(Some(EndUserEmail::new(format!("{user}@example.jp")))),
        EmptyAdditionalClaims {},
    )
    .set_nonce(Some(Nonce::new(nonce)));
    let id_token = CoreIdToken::new(claims, &p.key, CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256, None, None).unwrap();
    axum::Json(json!({
        "access_token": "at-1", "token_type": "Bearer", "expires_in": 300, "id_token": id_token.to_string(),
    }))
    .into_response()
}

fn chrono_now() -> chrono::DateTime<chrono::Utc> {
    chrono::Utc::now()
}

fn base64_std(s: &str) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let b = s.as_bytes();
    let mut out = String::new();
    for chunk in b.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |acc, (i, x)| acc | (u32::from(*x) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[tokio::test]
async fn single_sign_on_with_an_openid_connect_provider() {
    let (relay, _back, _) = setup_with(&["--egress-allow", "127.0.0.1/32"]).await;
    let (idp, _) = start_provider(relay.dir.path()).await;
    // No provider yet: the sign-in page offers no single sign-on.
    let mut plain = Visitor::new(&relay, &[]);
    let form = plain.get(&plain.url("localhost", "/login")).await;
    assert!(form.body.contains("id=\"login\"") && !form.body.contains("/oidc/start"), "{}", form.body);
    // The Sekisho user the provider's `preferred_username` names; no TOTP needed with SSO.
    let _ = web_user(&relay, "sso-alice", "staff", "member", "Alice (SSO)").await;
    let cfg =
        json!({"issuer": idp.issuer, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "label": "Test IdP"});
    let (s, v) = relay.api("PUT", "/api/v1/oidc", Some(cfg), &relay.admin_key).await;
    assert_eq!(s, 200, "{v}");
    assert!(v.get("client_secret").is_none(), "the secret is never returned");
    let bad = json!({"issuer": "http://idp.example.com", "client_id": "x", "client_secret": "y"});
    assert_eq!(relay.api("PUT", "/api/v1/oidc", Some(bad), &relay.admin_key).await.0, 400, "plain http off loopback");

    let form = plain.get(&plain.url("localhost", "/login")).await;
    assert!(form.body.contains("/oidc/start"), "a tenant has a provider: single sign-on is offered");
    let wiki = "wiki.default.localhost";
    let mut v = Visitor::new(&relay, &[wiki]);
    let (page, at) = sso(&mut v, &relay, "/oidc/start?tenant=default&rd=%2Fsettings").await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(at, v.url("localhost", "/settings"));
    assert!(page.body.contains("sso-alice"), "{}", page.body);
    let login = relay.wait_event(|e| e["kind"] == "login" && e["auth_method"] == "oidc").await;
    assert_eq!((login["decision"].as_str(), login["subject"].as_str()), (Some("allow"), Some("sso-alice")));

    // The SSO session opens a browser host too; its requests say how she signed in.
    let first = v.get(&v.url(wiki, "/")).await;
    let (page, _) = v.follow(first, v.url(wiki, "/")).await;
    assert_eq!(page.body, "hello through the browser edge");
    let ev = relay.wait_event(|e| e["path"] == "browser" && e["subject"] == "sso-alice").await;
    assert_eq!(ev["auth_method"], "oidc");

    // Someone the provider knows but Sekisho does not is refused, and it is recorded.
    *idp.user.lock().unwrap() = "mallory".into();
    let mut m = Visitor::new(&relay, &[]);
    let (page, _) = sso(&mut m, &relay, "/oidc/start?tenant=default").await;
    assert_eq!(page.status, 401);
    assert!(page.body.contains("mallory") && page.body.contains("not a user here"), "{}", page.body);
    relay.wait_event(|e| e["kind"] == "login" && e["reason"] == "oidc_unknown_user").await;

    // A callback from another browser (no flow cookie) is refused.
    let idp_url = to_provider(&mut m, "/oidc/start?tenant=default").await;
    let auth = m.get(&idp_url).await;
    let callback = auth.location.unwrap();
    let mut other = Visitor::new(&relay, &[]);
    let stolen = other.get(&callback).await;
    assert_eq!(stolen.status, 401);
    assert!(stolen.body.contains("did not start in this browser"), "{}", stolen.body);
    // In Japanese for a Japanese browser.
    let mut ja = Visitor::new(&relay, &[]);
    ja.lang = "ja";
    let refused = ja.get(&callback).await;
    assert!(refused.body.contains("このサインインはこのブラウザーで始まっていません"), "{}", refused.body);
}

/// Follows the SSO flow from `start` through the provider and back.
async fn sso(v: &mut Visitor, _relay: &Relay, start: &str) -> (crate::web::Page, String) {
    let idp = to_provider(v, start).await;
    let page = v.get(&idp).await;
    assert_eq!(page.status, 302, "{}", page.body);
    v.follow(page, idp).await
}

/// `/oidc/start` answers with a page that moves on to the provider (a redirect would be
/// stopped by the sign-in form's `form-action` policy); returns the provider's URL.
async fn to_provider(v: &mut Visitor, start: &str) -> String {
    let page = v.get(&v.url("localhost", start)).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("http-equiv=\"refresh\""), "{}", page.body);
    let at = page.body.find("id=\"continue\" href=\"").expect("a link to the provider") + 20;
    let end = page.body[at..].find('"').unwrap();
    page.body[at..at + end].replace("&amp;", "&")
}
