//! `sekisho quickstart`: a relay, a back agent, a front agent and a demo page in one process,
//! wired together through the real protocol, so a newcomer sees the whole path in seconds.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, anyhow};
use sekisho_agent::{AgentEvent, AgentOptions};
use serde_json::json;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio_util::sync::CancellationToken;

use super::ctl::ApiClient;
use crate::cli::QuickstartArgs;
use crate::i18n::Lang;
use crate::output::{json_event, stop_signal};

const DEMO_PAGE: &str = include_str!("quickstart/demo.html");

/// The demo service's one required condition (Cedar): only the demo front agent gets in.
const DEMO_POLICY: &str = r#"principal == Agent::"demo-front" || principal in Group::"admins""#;
/// The console's demo user (group `admins`, role admin).
const DEMO_USER: &str = "demo";

pub(crate) async fn run(args: QuickstartArgs, lang: Lang) -> anyhow::Result<()> {
    let temp;
    let data_dir = match &args.data_dir {
        Some(d) => d.clone(),
        None => {
            temp = tempfile::Builder::new().prefix("sekisho-demo-").tempdir()?;
            temp.path().to_path_buf()
        }
    };
    let relay = sekisho_relay::start(sekisho_relay::RelayConfig {
        data_dir: data_dir.join("relay"),
        listen: "127.0.0.1:0".parse()?,
        hostnames: vec![],
        debug_tap: None,
        database: None,
        geoip: None,
        audit_anchors: None,
        local_country: "LOCAL".into(),
        gateway: None,
        bastion: None,
        web_domain: "localhost".into(),
        egress: sekisho_relay::EgressRule::default(),
        noise_window: std::time::Duration::from_secs(60),
        limits: sekisho_relay::LimitsConfig::default(),
        http_header_timeout: std::time::Duration::from_secs(10),
        metrics: None,
        siem: None,
        agent_sample_interval: std::time::Duration::from_secs(60),
    })
    .await?;
    let api_key = relay.issue_api_key("quickstart").await?;
    let api = ApiClient::new(&format!("https://{}", relay.addr), &api_key, &relay.ca_path, lang)?;

    let demo = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let demo_addr = demo.local_addr()?;
    let page =
        axum::Router::new().route("/", axum::routing::get(|h: axum::http::HeaderMap| async move { demo_page(&h) }));
    tokio::spawn(async move { axum::serve(demo, page).await });

    let shutdown = CancellationToken::new();
    let mut back = start_agent(&relay, &data_dir, "demo-back", sekisho_store::Role::Back, &shutdown).await?;
    let mut front = start_agent(&relay, &data_dir, "demo-front", sekisho_store::Role::Front, &shutdown).await?;
    let back_id = wait_connected(&mut back).await?;
    let front_id = wait_connected(&mut front).await?;

    let _ = api.delete("/api/v1/routes/demo").await;
    let services = api.get("/api/v1/services").await?;
    if !services.as_array().is_some_and(|a| a.iter().any(|s| s["name"] == "demo")) {
        api.post(
            "/api/v1/services",
            &json!({"name": "demo", "agent": back_id, "target": format!("http://{demo_addr}"), "browser": true}),
        )
        .await?;
    }
    // No policy, no access: allow the demo front agent, and say so.
    let policy = json!({"required": [DEMO_POLICY], "deny": []});
    api.put("/api/v1/policies/demo", &policy).await?;
    let login = demo_user(&api).await?;
    let browser_url = relay.console_url.replacen("https://", "https://demo.default.", 1);
    let listen = free_or_any(args.port);
    api.post("/api/v1/routes", &json!({"agent": front_id, "listen": listen.to_string(), "service": "demo"})).await?;
    let url = loop {
        match tokio::time::timeout(Duration::from_secs(20), front.recv()).await {
            Ok(Some(AgentEvent::RouteListening { addr, .. })) => break format!("http://{addr}/"),
            Ok(Some(AgentEvent::RouteFailed { error, .. })) => return Err(anyhow!(error)),
            Ok(Some(_)) => continue,
            _ => return Err(anyhow!("the demo route did not open in time")),
        }
    };

    if args.json_events {
        json_event(&json!({
            "event": "ready", "url": url, "relay": relay.addr.to_string(),
            "data_dir": data_dir, "api_key": api_key, "ca_file": relay.ca_path,
            "console_url": relay.console_url, "browser_url": browser_url,
            "user": DEMO_USER, "password": login.password, "totp_secret": login.totp_secret,
        }));
    } else {
        println!();
        println!("{}", lang.pick("Sekisho quickstart is running.", "Sekisho クイックスタートが起動しました。"));
        println!("  {} {url}", lang.pick("Open:", "ブラウザで開く:"));
        println!(
            "  {} {url} → {} → {} {} → {} → {demo_addr}",
            lang.pick("Path:", "経路:"),
            lang.pick("front agent", "フロントエージェント"),
            lang.pick("relay", "リレー"),
            relay.addr,
            lang.pick("back agent", "バックエンドエージェント"),
        );
        println!("  {} https://{}", lang.pick("Admin API:", "管理 API:"), relay.addr);
        println!(
            "    export SEKISHO_URL=https://{} SEKISHO_CA={} SEKISHO_API_KEY={api_key}",
            relay.addr,
            relay.ca_path.display()
        );
        println!();
        println!("  {} {}", lang.pick("Web console:", "Web コンソール:"), relay.console_url);
        println!("  {} {browser_url}", lang.pick("The demo in a browser:", "ブラウザーから直接:"));
        println!(
            "    {} {DEMO_USER} / {} {} / {} {}",
            lang.pick("user", "ユーザー"),
            lang.pick("password", "パスワード"),
            login.password,
            lang.pick("TOTP secret", "TOTP シークレット"),
            login.totp_secret
        );
        println!(
            "    {}",
            lang.pick(
                "(add the secret to an authenticator app, or: oathtool --totp -b SECRET; the certificate is from the relay's own CA)",
                "(シークレットを認証アプリに登録するか oathtool --totp -b SECRET。証明書はリレー自身の CA のものです)"
            )
        );
        println!("  {} {DEMO_POLICY}", lang.pick("Policy of `demo` (required):", "`demo` のポリシー (必須条件):"));
        println!("  {} {}", lang.pick("State:", "状態の保存先:"), data_dir.display());
        println!("{}", lang.pick("Stop with Ctrl-C.", "Ctrl-C で停止します。"));
    }
    stop_signal().await;
    shutdown.cancel();
    relay.shutdown().await;
    Ok(())
}

struct DemoLogin {
    password: String,
    totp_secret: String,
}

/// The demo page, saying what is true of the path it came by: through a front agent's route the
/// two agents encrypt end to end and the relay forwards ciphertext; through the browser edge the
/// relay ends the browser's TLS (it must read the request to check the sign-in and the policy).
fn demo_page(headers: &axum::http::HeaderMap) -> axum::response::Html<String> {
    // Set by the edge on every request it forwards (and stripped from what the browser sent).
    let edge = headers.contains_key("x-sekisho-user") && headers.contains_key("x-forwarded-host");
    let (ja, en, path) = if edge {
        (
            "ブラウザーエッジ経由で届きました。ブラウザーとの TLS はリレーで終端され、リレーがサインインとポリシーを確かめてから、\
             バックエンドエージェントへの TLS 接続で転送しています。この経路ではリレーが内容を読めます (エンドツーエンド暗号化ではありません)。",
            "it came through the browser edge. Your browser's TLS ends at the relay, which checks your sign-in and \
             the policy, then forwards the request over the back agent's TLS link. On this path the relay can read the \
             content (it is not end-to-end encrypted).",
            "browser ⇄ relay (TLS ends here: sign-in, policy) ⇄ back agent → demo server",
        )
    } else {
        (
            "フロントエージェント → リレー → バックエンドエージェントの経路を通り、エージェント間はエンドツーエンドで暗号化されています。\
             リレーが見たのは暗号文だけです。",
            "it travelled front agent → relay → back agent, encrypted end to end between the two agents. The relay \
             only saw ciphertext.",
            "browser → front agent (127.0.0.1) ⇄ relay ⇄ back agent → demo server",
        )
    };
    axum::response::Html(DEMO_PAGE.replace("{{JA}}", ja).replace("{{EN}}", en).replace("{{PATH}}", path))
}

/// The console's demo user, an admin with a fresh password and TOTP secret on every start.
async fn demo_user(api: &ApiClient) -> anyhow::Result<DemoLogin> {
    let password = format!("demo-{}", hex_token());
    let groups = api.get("/api/v1/groups").await?;
    if !groups.as_array().is_some_and(|a| a.iter().any(|g| g["name"] == "admins")) {
        api.post("/api/v1/groups", &json!({"name": "admins", "role": "admin"})).await?;
    }
    let users = api.get("/api/v1/users").await?;
    if users.as_array().is_some_and(|a| a.iter().any(|u| u["name"] == DEMO_USER)) {
        api.post(&format!("/api/v1/users/{DEMO_USER}/password"), &json!({"password": password})).await?;
    } else {
        let user = json!({"name": DEMO_USER, "display_name": "Demo", "password": password, "groups": ["admins"]});
        api.post("/api/v1/users", &user).await?;
    }
    let totp = api.post(&format!("/api/v1/users/{DEMO_USER}/totp"), &json!({})).await?;
    let totp_secret = totp["secret"].as_str().unwrap_or_default().to_owned();
    Ok(DemoLogin { password, totp_secret })
}

fn hex_token() -> String {
    rand::random::<[u8; 8]>().iter().map(|b| format!("{b:02x}")).collect()
}

async fn start_agent(
    relay: &sekisho_relay::RelayHandle,
    data_dir: &std::path::Path,
    name: &str,
    role: sekisho_store::Role,
    shutdown: &CancellationToken,
) -> anyhow::Result<UnboundedReceiver<AgentEvent>> {
    let state_dir = data_dir.join(name);
    let enrolled = state_dir.join("agent.json").exists();
    let token = if enrolled { None } else { Some(relay.create_enrollment_token(name, role, 600).await?) };
    let opts = AgentOptions { relay: relay.addr.to_string(), token, state_dir, proxy: None };
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let shutdown = shutdown.clone();
    let name = name.to_owned();
    tokio::spawn(async move {
        if let Err(e) = sekisho_agent::run(opts, tx, shutdown).await {
            tracing::error!(agent = %name, error = %e, "demo agent stopped");
        }
    });
    Ok(rx)
}

async fn wait_connected(rx: &mut UnboundedReceiver<AgentEvent>) -> anyhow::Result<String> {
    loop {
        match tokio::time::timeout(Duration::from_secs(20), rx.recv()).await.context("agent did not connect in time")? {
            Some(AgentEvent::Connected { agent_id, .. }) => return Ok(agent_id),
            Some(_) => continue,
            None => return Err(anyhow!("agent stopped before connecting")),
        }
    }
}

fn free_or_any(port: u16) -> SocketAddr {
    let wanted = SocketAddr::from(([127, 0, 0, 1], port));
    match std::net::TcpListener::bind(wanted) {
        Ok(l) => {
            drop(l);
            wanted
        }
        Err(_) => SocketAddr::from(([127, 0, 0, 1], 0)),
    }
}
