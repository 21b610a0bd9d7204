//! `sekisho agent`.

use sekisho_agent::{AgentEvent, AgentOptions};
use sekisho_tunnel::dial::Proxy;
use tokio_util::sync::CancellationToken;

use crate::cli::AgentArgs;
use crate::i18n::Lang;
use crate::output::{json_event, stop_signal};

pub(crate) async fn run(args: AgentArgs, lang: Lang) -> anyhow::Result<()> {
    let proxy = match &args.proxy {
        Some(url) => Some(Proxy::parse(url)?),
        None => Proxy::from_env()?,
    };
    let opts = AgentOptions { relay: args.relay, token: args.token, state_dir: args.state_dir, proxy };
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let shutdown = CancellationToken::new();
    let json = args.json_events;
    let printer = tokio::spawn(async move {
        while let Some(event) = rx.recv().await {
            if json {
                json_event(&event);
            } else {
                println!("{}", describe(&event, lang));
            }
        }
    });
    let stopper = shutdown.clone();
    tokio::spawn(async move {
        stop_signal().await;
        stopper.cancel();
    });
    let result = sekisho_agent::run(opts, tx, shutdown).await;
    let _ = printer.await;
    Ok(result?)
}

pub(crate) fn describe(event: &AgentEvent, lang: Lang) -> String {
    match event {
        AgentEvent::Enrolled { agent_id, name } => {
            format!("{} {name} ({agent_id})", lang.pick("enrolled as", "登録完了:"))
        }
        AgentEvent::Connected { name, role, relay, .. } => {
            format!("{} {relay}: {name} [{role}]", lang.pick("connected to relay", "リレーに接続しました"))
        }
        AgentEvent::Disconnected { relay, reason, retry_in_ms } => format!(
            "{} {relay}: {reason} ({} {retry_in_ms} ms)",
            lang.pick("relay connection lost", "リレーとの接続が切れました"),
            lang.pick("retrying in", "再接続まで")
        ),
        AgentEvent::RouteListening { service, addr, .. } => {
            format!("{} {addr} → {service}", lang.pick("listening", "待ち受け開始"))
        }
        AgentEvent::RouteClosed { route_id } => {
            format!("{} {route_id}", lang.pick("route closed", "ルートを閉じました"))
        }
        AgentEvent::RouteFailed { route_id, error } => {
            format!("{} {route_id}: {error}", lang.pick("route failed", "ルートを開けません"))
        }
    }
}
