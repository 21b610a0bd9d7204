//! `sekisho relay`.

use serde_json::json;

use crate::cli::RelayArgs;
use crate::i18n::Lang;
use crate::output::{json_event, stop_signal};

pub(crate) async fn run(args: RelayArgs, lang: Lang) -> anyhow::Result<()> {
    let handle = sekisho_relay::start(sekisho_relay::RelayConfig {
        data_dir: args.data_dir.clone(),
        listen: args.listen,
        hostnames: args.hostnames,
        debug_tap: args.debug_tap,
        database: args.database,
        geoip: args.geoip,
        audit_anchors: args.audit_anchors,
        local_country: args.local_country,
        gateway: args.socks_listen.map(|listen| sekisho_relay::GatewayConfig { listen, hosts_file: args.socks_hosts }),
        bastion: args.ssh_listen.map(|listen| sekisho_relay::BastionConfig {
            listen,
            login_window: std::time::Duration::from_millis(args.ssh_login_window_ms),
        }),
        web_domain: args.web_domain,
        egress: if args.socks_allow_private {
            sekisho_relay::EgressRule::allow_all()
        } else {
            sekisho_relay::EgressRule::new(args.egress_allow)
        },
        noise_window: std::time::Duration::from_millis(args.noise_window_ms),
        limits: sekisho_relay::LimitsConfig { per_ip: args.conn_per_ip, total: args.conn_max },
        http_header_timeout: std::time::Duration::from_millis(args.http_header_timeout_ms),
        metrics: args.metrics_listen,
        siem: args.siem_syslog.map(|addr| sekisho_relay::SiemConfig {
            addr,
            ca: args.siem_ca,
            poll: std::time::Duration::from_millis(args.siem_poll_ms),
        }),
        agent_sample_interval: std::time::Duration::from_millis(args.agent_sample_ms),
    })
    .await?;
    let api_url = format!("https://{}", handle.public_addr());
    if args.json_events {
        json_event(&json!({
            "event": "ready",
            "listen": handle.addr.to_string(),
            "socks": handle.gateway_addr.map(|a| a.to_string()),
            "ssh": handle.bastion_addr.map(|a| a.to_string()),
            "metrics": handle.metrics_addr.map(|a| a.to_string()),
            "api_url": api_url,
            "console_url": handle.console_url,
            "ca_file": handle.ca_path,
            "ca_fingerprint": handle.ca_fingerprint,
            "admin_key": handle.admin_key,
            "aead": sekisho_tunnel::aead::Backend::current().name(),
        }));
    } else {
        println!("{} {}", lang.pick("Sekisho relay listening on", "Sekisho リレー待ち受け中:"), handle.addr);
        if let Some(socks) = handle.gateway_addr {
            println!("{} {socks}", lang.pick("SOCKS5 gateway listening on", "SOCKS5 ゲートウェイ待ち受け中:"));
        }
        if let Some(ssh) = handle.bastion_addr {
            println!("{} {ssh}", lang.pick("SSH bastion listening on", "SSH 踏み台待ち受け中:"));
        }
        if let Some(m) = handle.metrics_addr {
            println!("{} http://{m}/metrics", lang.pick("Prometheus metrics at", "Prometheus メトリクス:"));
        }
        println!("{} {}", lang.pick("Web console:", "Web コンソール:"), handle.console_url);
        println!(
            "{} {}",
            lang.pick("CA fingerprint (SHA-256):", "CA フィンガープリント (SHA-256):"),
            handle.ca_fingerprint
        );
        if let Some(key) = &handle.admin_key {
            println!();
            println!(
                "{}",
                lang.pick(
                    "Admin API key (shown only once, store it now):",
                    "管理 API キー (一度だけ表示します。今すぐ保管してください):"
                )
            );
            println!("  {key}");
            println!();
            println!("{}", lang.pick("Use it with sekisho ctl:", "sekisho ctl で使うには:"));
            println!("  export SEKISHO_URL={api_url} SEKISHO_CA={} SEKISHO_API_KEY={key}", handle.ca_path.display());
        }
        println!("{}", lang.pick("Press Ctrl-C to stop.", "Ctrl-C で停止します。"));
    }
    stop_signal().await;
    handle.shutdown().await;
    Ok(())
}
