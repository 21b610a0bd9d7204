//! Browser access and the web console over real HTTPS (reqwest, no browser): the sign-in with
//! TOTP, the ticket hand-over to a service host, per-request policy and audit, WebSockets and
//! large uploads through the edge, and the console's CSRF, XSS and open-redirect defences.

use std::collections::HashMap;
use std::net::SocketAddr;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};

use crate::harness::{Agent, Relay};
use crate::ssh_util::totp_now;
use crate::targets;

pub const PASSWORD: &str = "correct horse battery";

/// A browser-like HTTPS client: resolves every host to the relay, keeps cookies per host,
/// follows no redirects (the tests read them).
pub struct Visitor {
    client: reqwest::Client,
    port: u16,
    pub jar: HashMap<String, HashMap<String, String>>,
    pub lang: &'static str,
}

pub struct Page {
    pub status: u16,
    pub location: Option<String>,
    pub body: String,
    pub set_cookies: Vec<String>,
}

impl Visitor {
    pub fn new(relay: &Relay, hosts: &[&str]) -> Visitor {
        Self::at(&relay.ca_file, relay.addr, hosts)
    }

    /// A visitor of the relay at `addr` whose CA is in `ca_file`.
    pub fn at(ca_file: &str, addr: SocketAddr, hosts: &[&str]) -> Visitor {
        let pem = std::fs::read(ca_file).unwrap();
        let mut b = reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
            .redirect(reqwest::redirect::Policy::none());
        for h in hosts.iter().chain(["localhost"].iter()) {
            b = b.resolve(h, addr);
        }
        Visitor { client: b.build().unwrap(), port: addr.port(), jar: HashMap::new(), lang: "en" }
    }

    pub fn url(&self, host: &str, path: &str) -> String {
        format!("https://{host}:{}{path}", self.port)
    }

    fn host_of(url: &str) -> String {
        let rest = url.trim_start_matches("https://").trim_start_matches("http://");
        rest.split(['/', ':']).next().unwrap().to_owned()
    }

    pub fn cookie(&self, host: &str, name: &str) -> Option<String> {
        self.jar.get(host).and_then(|c| c.get(name)).cloned()
    }

    pub async fn send(&mut self, method: &str, url: &str, form: Option<&[(&str, &str)]>) -> Page {
        let host = Self::host_of(url);
        let mut req = self.client.request(method.parse().unwrap(), url).header("accept-language", self.lang);
        if let Some(cookies) = self.jar.get(&host).filter(|c| !c.is_empty()) {
            let line: Vec<String> = cookies.iter().map(|(k, v)| format!("{k}={v}")).collect();
            req = req.header("cookie", line.join("; "));
        }
        if let Some(f) = form {
            req = req.header("origin", format!("https://{host}:{}", self.port)).form(f);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let location = resp.headers().get("location").map(|v| v.to_str().unwrap().to_owned());
        let set_cookies: Vec<String> =
            resp.headers().get_all("set-cookie").iter().map(|v| v.to_str().unwrap().to_owned()).collect();
        for c in &set_cookies {
            let (pair, attrs) = c.split_once(';').unwrap_or((c, ""));
            let (k, v) = pair.split_once('=').unwrap();
            let jar = self.jar.entry(host.clone()).or_default();
            if attrs.contains("Max-Age=0") {
                jar.remove(k);
            } else {
                jar.insert(k.to_owned(), v.to_owned());
            }
        }
        Page { status, location, body: resp.text().await.unwrap(), set_cookies }
    }

    pub async fn get(&mut self, url: &str) -> Page {
        self.send("GET", url, None).await
    }

    pub async fn post(&mut self, url: &str, form: &[(&str, &str)]) -> Page {
        self.send("POST", url, Some(form)).await
    }

    /// Follows redirects from `url` (as a browser would), returning the last page and its URL.
    pub async fn follow(&mut self, mut page: Page, mut url: String) -> (Page, String) {
        for _ in 0..10 {
            let Some(loc) = page.location.clone().filter(|_| (300..400).contains(&page.status)) else { break };
            url =
                if loc.starts_with('/') { format!("https://{}:{}{loc}", Self::host_of(&url), self.port) } else { loc };
            page = self.get(&url).await;
        }
        (page, url)
    }

    /// Signs in on the console form at `login_url` with the TOTP code `offset` steps from now.
    pub async fn sign_in(&mut self, login_url: &str, user: &str, secret: &str, offset: i64) -> (Page, String) {
        self.sign_in_with(login_url, user, PASSWORD, secret, offset).await
    }

    /// [`Self::sign_in`] with `password`.
    pub async fn sign_in_with(
        &mut self,
        login_url: &str,
        user: &str,
        password: &str,
        secret: &str,
        offset: i64,
    ) -> (Page, String) {
        let form = self.get(login_url).await;
        assert_eq!(form.status, 200, "{}", form.body);
        let rd = login_url.split_once("rd=").map(|(_, r)| urldecode(r)).unwrap_or_default();
        let code = totp_now(secret, offset);
        let mut fields = vec![("tenant", "default"), ("user", user), ("password", password), ("totp", code.as_str())];
        if !rd.is_empty() {
            fields.push(("rd", rd.as_str()));
        }
        let url = self.url("localhost", "/login");
        let page = self.post(&url, &fields).await;
        assert_eq!(page.status, 303, "sign-in refused: {}", page.body);
        self.follow(page, url).await
    }

    /// The CSRF token of a console page's forms.
    pub fn csrf(page: &Page) -> String {
        let at = page.body.find("name=\"csrf\" value=\"").expect("the page has a form") + 19;
        page.body[at..at + 32].to_owned()
    }
}

pub fn urldecode(s: &str) -> String {
    let url = reqwest::Url::parse(&format!("https://x/?x={s}")).unwrap();
    url.query_pairs().next().unwrap().1.into_owned()
}

/// A user of group `group` (role `role`) with TOTP; returns the TOTP secret.
pub async fn web_user(relay: &Relay, name: &str, group: &str, role: &str, display: &str) -> String {
    let key = &relay.admin_key;
    let _ = relay.api("POST", "/api/v1/groups", Some(json!({"name": group, "role": role})), key).await;
    let user = json!({"name": name, "display_name": display, "password": PASSWORD, "groups": [group]});
    let (s, v) = relay.api("POST", "/api/v1/users", Some(user), key).await;
    assert_eq!(s, 201, "{v}");
    let (s, v) = relay.api("POST", &format!("/api/v1/users/{name}/totp"), None, key).await;
    assert_eq!(s, 201, "{v}");
    v["secret"].as_str().unwrap().to_owned()
}

/// An HTTP app behind the back agent: `/headers` shows what it was sent, `/upload` counts the
/// body, `/moved` redirects to its own address, `/ws` is a WebSocket echo.
pub async fn app() -> SocketAddr {
    use axum::routing::{get, post};
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let app =
        axum::Router::new()
            .route("/", get(|| async { "hello through the browser edge" }))
            .route(
                "/headers",
                get(|h: axum::http::HeaderMap| async move {
                    let m: HashMap<String, String> =
                        h.iter().map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_owned())).collect();
                    axum::Json(m)
                }),
            )
            .route(
                "/upload",
                post(|body: axum::body::Body| async move {
                    let mut n = 0usize;
                    let mut s = body.into_data_stream();
                    while let Some(Ok(chunk)) = s.next().await {
                        n += chunk.len();
                    }
                    n.to_string()
                }),
            )
            .route(
                "/moved",
                get(move || async move {
                    (axum::http::StatusCode::FOUND, [("location", format!("http://{addr}/headers"))])
                }),
            );
    tokio::spawn(async move { axum::serve(l, app).await });
    addr
}

/// A relay with a back agent serving the app as `wiki`, published for browsers, guarded by
/// `principal in Group::"staff"`.
pub async fn setup() -> (Relay, Agent, String) {
    setup_with(&[]).await
}

/// [`setup`] with more relay arguments.
pub async fn setup_with(extra: &[&str]) -> (Relay, Agent, String) {
    let relay = Relay::start_with(extra).await;
    let back = relay.agent("site-a", "back").await;
    let app = app().await;
    let target = format!("http://{app}");
    let v =
        relay.ctl(&["service", "create", "wiki", "--agent", &back.id, "--target", &target, "--browser"]).await.unwrap();
    let url = v["browser_url"].as_str().unwrap().to_owned();
    relay.policy("wiki", &["principal in Group::\"staff\""], &[]).await;
    (relay, back, url)
}

#[tokio::test]
async fn browser_access_signs_in_decides_each_request_and_leaves_evidence() {
    let (relay, _back, url) = setup().await;
    let port = relay.addr.port();
    assert_eq!(url, format!("https://wiki.default.localhost:{port}/"));
    let secret = web_user(&relay, "alice", "staff", "member", "Alice").await;
    let wiki = "wiki.default.localhost";
    let mut v = Visitor::new(&relay, &[wiki]);

    // No session: the page load goes to the console's sign-in, carrying where to come back.
    let first = v.get(&v.url(wiki, "/headers?x=1")).await;
    assert_eq!(first.status, 303);
    let login = first.location.clone().unwrap();
    assert!(login.starts_with(&format!("https://localhost:{port}/login?rd=")), "{login}");
    assert_eq!(urldecode(login.split_once("rd=").unwrap().1), v.url(wiki, "/headers?x=1"));
    // A script's request is told, not redirected.
    let post = v.post(&v.url(wiki, "/upload"), &[("a", "b")]).await;
    assert_eq!(post.status, 401, "{}", post.body);
    assert!(post.body.contains("session_missing"));

    // Sign in with password and TOTP: a ticket brings us back with the host's own cookie.
    let (page, at) = v.sign_in(&login, "alice", &secret, -1).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(at, v.url(wiki, "/headers?x=1"));
    let seen: Value = serde_json::from_str(&page.body).unwrap();
    assert_eq!(seen["x-sekisho-user"], "alice");
    assert_eq!(seen["x-forwarded-proto"], "https");
    assert!(seen["cookie"].is_null(), "Sekisho's cookies never reach the service: {seen}");
    let edge_key = v.cookie(wiki, "__Host-sekisho-edge").expect("the service host's session");
    let console_key = v.cookie("localhost", "__Host-sekisho").expect("the console session");
    assert_ne!(edge_key, console_key, "each host has its own key");

    // The edge key is no API key, and the console's cookie flags are right.
    let (status, body) = relay.api("GET", "/api/v1/agents", None, &edge_key).await;
    assert_eq!(status, 401, "{body}");

    // Redirects to the target's own address are rewritten; uploads stream with no limit.
    let moved = v.get(&v.url(wiki, "/moved")).await;
    assert_eq!(moved.location.as_deref(), Some(v.url(wiki, "/headers").as_str()));
    let big = vec![b'z'; 24 << 20];
    let resp = v
        .client
        .post(v.url(wiki, "/upload"))
        .header("cookie", format!("__Host-sekisho-edge={edge_key}"))
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.text().await.unwrap(), (24 << 20).to_string());

    // A WebSocket through the edge, to a second service: the console session hands it a
    // ticket without asking again.
    let echo = targets::websocket_echo().await;
    let target = format!("http://{echo}");
    relay.ctl(&["service", "create", "chat", "--agent", "site-a", "--target", &target, "--browser"]).await.unwrap();
    relay.policy("chat", &["principal in Group::\"staff\""], &[]).await;
    let chat = "chat.default.localhost";
    let mut v = Visitor { client: Visitor::new(&relay, &[wiki, chat]).client, ..v };
    let first = v.get(&v.url(chat, "/")).await;
    let (_, _) = v.follow(first, v.url(chat, "/")).await;
    let chat_key = v.cookie(chat, "__Host-sekisho-edge").expect("a session for the second host");
    assert_ne!(chat_key, edge_key);
    let ws = websocket(&relay, chat, &chat_key).await;
    assert_eq!(ws, "ping through sekisho");
    // One host's cookie does not open another.
    let (ws_status, _) = {
        let r = v
            .client
            .get(v.url(chat, "/"))
            .header("cookie", format!("__Host-sekisho-edge={edge_key}"))
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), ())
    };
    assert_eq!(ws_status, 303);

    // Another site's page (a sibling service too) may not post with this host's cookie.
    let cross = v
        .client
        .post(v.url(wiki, "/upload"))
        .header("cookie", format!("__Host-sekisho-edge={edge_key}"))
        .header("origin", format!("https://evil.default.localhost:{port}"))
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(cross.status(), 403);
    assert!(cross.text().await.unwrap().contains("cross_site"));

    // A ticket works once.
    let (s, _) = (v.get(&v.url(wiki, "/.sekisho/auth?ticket=made-up")).await.status, ());
    assert_eq!(s, 400);

    // A new deny condition takes effect on the next request, with the reason id shown.
    relay.policy("wiki", &["principal in Group::\"staff\""], &["context.path == \"browser\""]).await;
    let denied = v.get(&v.url(wiki, "/")).await;
    assert_eq!(denied.status, 403);
    assert!(denied.body.contains("wiki/deny/0"), "{}", denied.body);
    // The reason as a sentence, the condition quoted (the id stays beside it).
    assert!(
        denied.body.contains("The deny condition “<code>context.path == &quot;browser&quot;</code>” holds"),
        "{}",
        denied.body
    );

    // Both are in the audit log, with method, path, status and the session they belong to.
    let allowed = relay
        .wait_event(|e| {
            e["path"] == "browser" && e["decision"] == "allow" && e["detail"].as_str().unwrap_or("").contains("/upload")
        })
        .await;
    let detail: Value = serde_json::from_str(allowed["detail"].as_str().unwrap()).unwrap();
    assert_eq!((detail["method"].as_str(), detail["status"].as_u64()), (Some("POST"), Some(200)));
    assert!(allowed["bytes_in"].as_i64().unwrap() >= 24 << 20, "{allowed}");
    assert_eq!(allowed["subject"], "alice");
    let refused = relay.wait_event(|e| e["path"] == "browser" && e["decision"] == "deny").await;
    assert_eq!(refused["policy_id"], "wiki/deny/0");
    let d2: Value = serde_json::from_str(refused["detail"].as_str().unwrap()).unwrap();
    assert_eq!(d2["session"], detail["session"], "grouped by session");
    // The CLI's table shows each browser request as method, path and status.
    let out = relay.ctl_text(&["audit", "search", "--path", "browser", "--limit", "50"]).await;
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.lines().next().unwrap_or_default().contains("REQUEST"), "{table}");
    assert!(table.contains("POST /upload 200") && table.contains("GET / 403"), "{table}");

    // Logging out of the console ends the service host's session too.
    relay.policy("wiki", &["principal in Group::\"staff\""], &[]).await;
    assert_eq!(v.get(&v.url(wiki, "/")).await.status, 200);
    let home = v.get(&v.url("localhost", "/")).await;
    let csrf = Visitor::csrf(&home);
    let out = v.post(&v.url("localhost", "/logout"), &[("csrf", &csrf)]).await;
    assert_eq!(out.status, 200, "{}", out.body);
    assert!(v.cookie("localhost", "__Host-sekisho").is_none());
    let after = v.get(&v.url(wiki, "/")).await;
    assert_eq!(after.status, 303, "the edge session ended with the console's");
}

/// Opens `wss://host/ws` with the session cookie and echoes one message.
async fn websocket(relay: &Relay, host: &str, key: &str) -> String {
    let pem = std::fs::read(&relay.ca_file).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pemfile_certs(&pem) {
        roots.add(c).unwrap();
    }
    let config =
        rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(relay.addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from(host.to_owned()).unwrap();
    let tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config)).connect(name, tcp).await.unwrap();
    let mut req = tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(format!(
        "wss://{host}:{}/ws",
        relay.addr.port()
    ))
    .unwrap();
    req.headers_mut().insert("cookie", format!("__Host-sekisho-edge={key}").parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::client_async(req, tls).await.unwrap();
    ws.send(tokio_tungstenite::tungstenite::Message::text("ping through sekisho")).await.unwrap();
    let msg = ws.next().await.unwrap().unwrap();
    msg.into_text().unwrap().to_string()
}

fn rustls_pemfile_certs(pem: &[u8]) -> Vec<rustls::pki_types::CertificateDer<'static>> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::pem_slice_iter(pem).map(Result::unwrap).collect()
}

#[tokio::test]
async fn the_console_refuses_forgeries_escapes_what_admins_type_and_speaks_japanese() {
    let (relay, _back, _) = setup().await;
    let secret = web_user(&relay, "root", "admins", "admin", "<script>alert('x')</script>").await;
    let mut v = Visitor::new(&relay, &[]);

    // Without a session every page goes to sign-in; a wrong code is refused with the reason.
    let home = v.get(&v.url("localhost", "/services")).await;
    assert_eq!(home.location.as_deref(), Some("/login?rd=%2Fservices"));
    let wrong = v
        .post(
            &v.url("localhost", "/login"),
            &[("user", "root"), ("password", PASSWORD), ("totp", "000000"), ("tenant", "default")],
        )
        .await;
    assert_eq!(wrong.status, 401);
    assert!(wrong.body.contains("TOTP"), "{}", wrong.body);

    // An open redirect after sign-in is refused: we land on the dashboard instead.
    let url = v.url("localhost", "/login");
    let code = totp_now(&secret, 0);
    let fields = [
        ("tenant", "default"),
        ("user", "root"),
        ("password", PASSWORD),
        ("totp", code.as_str()),
        ("rd", "https://evil.example/"),
    ];
    let page = v.post(&url, &fields).await;
    assert_eq!(page.location.as_deref(), Some("/"), "{}", page.body);
    let cookie = page.set_cookies.iter().find(|c| c.starts_with("__Host-sekisho=")).unwrap();
    assert!(cookie.ends_with("; Path=/; Secure; HttpOnly; SameSite=Lax"), "{cookie}");
    for evil in [
        "//evil.example/",
        "https://localhost.evil.example/",
        "javascript:alert(1)",
        "/\t/evil.example",
        "/\\evil.example",
    ] {
        let p = v.get(&v.url("localhost", &format!("/login?rd={}", crate::web::enc(evil)))).await;
        assert_eq!(p.location.as_deref(), Some("/"), "{evil}");
    }

    // A key from a password-only API login (no TOTP) does not open the console.
    let pw = json!({"name": "pat", "password": PASSWORD, "groups": ["admins"]});
    assert_eq!(relay.api("POST", "/api/v1/users", Some(pw), &relay.admin_key).await.0, 201);
    let (s, login) = relay.api("POST", "/api/v1/login", Some(json!({"user": "pat", "password": PASSWORD})), "").await;
    assert_eq!(s, 200, "{login}");
    let mut p = Visitor::new(&relay, &[]);
    p.jar.entry("localhost".into()).or_default().insert("__Host-sekisho".into(), login["key"].as_str().unwrap().into());
    let page = p.get(&p.url("localhost", "/")).await;
    assert_eq!(page.location.as_deref(), Some("/login?rd=%2F"), "a password alone is not a web sign-in");

    // The dashboard, in English and, by the browser's language, in Japanese.
    let dash = v.get(&v.url("localhost", "/")).await;
    assert!(dash.body.contains("Dashboard") && dash.body.contains("Agents online"), "{}", dash.body);
    v.lang = "ja-JP,ja;q=0.9";
    let ja = v.get(&v.url("localhost", "/")).await;
    assert!(ja.body.contains("ダッシュボード") && ja.body.contains("監査ログ"), "{}", ja.body);
    assert!(ja.body.contains("lang=\"ja\""));

    // What an admin typed is shown as text.
    let users = v.get(&v.url("localhost", "/users")).await;
    assert!(!users.body.contains("<script>alert"), "unescaped display name");
    assert!(users.body.contains("&lt;script&gt;alert('x')&lt;/script&gt;"), "{}", users.body);

    // A form without the session's CSRF token, or from another origin, changes nothing.
    let csrf = Visitor::csrf(&users);
    let forged = v.post(&v.url("localhost", "/services"), &[("name", "x1"), ("target", "http://127.0.0.1:1")]).await;
    assert_eq!(forged.status, 403, "{}", forged.body);
    let resp = v
        .client
        .post(v.url("localhost", "/services"))
        .header("cookie", format!("__Host-sekisho={}", v.cookie("localhost", "__Host-sekisho").unwrap()))
        .header("origin", "https://evil.example")
        .form(&[("csrf", csrf.as_str()), ("name", "x2"), ("target", "http://127.0.0.1:1")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    let (_, services) = relay.api("GET", "/api/v1/services", None, &relay.admin_key).await;
    assert_eq!(services.as_array().unwrap().len(), 1, "nothing was created: {services}");

    // With the token, the console creates through the API, which audits it as this user.
    let made = v
        .post(
            &v.url("localhost", "/services"),
            &[
                ("csrf", &csrf),
                ("name", "notes"),
                ("target", "http://127.0.0.1:9"),
                ("agent", "site-a"),
                ("browser", "1"),
            ],
        )
        .await;
    assert_eq!(made.status, 200);
    assert!(made.body.contains("notes.default.localhost"), "{}", made.body);
    let ev = relay.wait_event(|e| e["kind"] == "admin" && e["target"] == "POST /services").await;
    assert_eq!(ev["subject"], "root");

    // A bad policy is refused with Cedar's message inline and the text kept to fix.
    let bad = v
        .post(
            &v.url("localhost", "/policies"),
            &[
                ("csrf", &csrf),
                ("service", "wiki"),
                ("required", "principal in Group::\"staff\""),
                ("deny", "context.hour >"),
            ],
        )
        .await;
    assert!(
        bad.body.contains("policy-errors")
            && bad.body.contains("拒否条件 #1 1 行 15 列")
            && bad.body.contains("invalid_policy"),
        "{}",
        bad.body
    );
    assert!(bad.body.contains("context.hour &gt;"), "the typed text stays");

    // Too many headers are refused by the HTTP layer with 431, on the console and the edge (many
    // small ones: the whole request is read before the answer, so the answer cannot be lost to
    // a reset, as it can when a huge header is still being sent).
    for host in ["localhost", "wiki.default.localhost"] {
        let w = Visitor::new(&relay, &["wiki.default.localhost"]);
        let mut req = w.client.get(w.url(host, "/"));
        for i in 0..150 {
            req = req.header(format!("x-h{i}"), "1");
        }
        assert_eq!(req.send().await.unwrap().status(), 431, "{host}");
    }

    // Oversized forms are refused.
    let huge = "x".repeat(100 * 1024);
    let big = v.post(&v.url("localhost", "/services"), &[("csrf", &csrf), ("name", &huge)]).await;
    assert_eq!(big.status, 413);
}

/// A path segment or query value, percent-encoded (as the console does).
pub fn enc(s: &str) -> String {
    let url = reqwest::Url::parse_with_params("https://x/", &[("x", s)]).unwrap();
    url.query().unwrap().trim_start_matches("x=").to_owned()
}
