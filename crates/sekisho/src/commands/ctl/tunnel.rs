//! Enrollment tokens, agents, services and routes.

use serde_json::json;

use super::{Ctx, parse, print_json, seg};
use crate::cli::{AgentCmd, RouteCmd, ServiceCmd, TokenCmd};

pub(super) async fn token(ctx: &Ctx, cmd: TokenCmd) -> anyhow::Result<()> {
    let lang = ctx.lang;
    let TokenCmd::Create { name, role, site, ttl, user } = cmd;
    let ttl_secs = parse::parse_duration(&ttl)
        .ok_or_else(|| anyhow::anyhow!("{} `{ttl}`", lang.pick("invalid duration", "期間の形式が不正です")))?;
    let v = ctx
        .client
        .post(
            "/api/v1/enrollment-tokens",
            &json!({"name": name, "role": role, "site": site, "ttl_secs": ttl_secs, "user": user}),
        )
        .await?;
    if ctx.json {
        print_json(&v);
    } else {
        println!("{}", v["token"].as_str().unwrap_or_default());
        if let Some(user) = &user {
            eprintln!(
                "{} `{user}`.",
                lang.pick("The device will act for user", "このデバイスは次のユーザーとして動作します:")
            );
        }
        eprintln!(
            "{}",
            lang.pick(
                "Run this on the agent's machine (the token works once):",
                "エージェント側で実行してください (トークンは一度だけ有効):"
            )
        );
        eprintln!("  {}", v["command"].as_str().unwrap_or_default());
    }
    Ok(())
}

pub(super) async fn agent(ctx: &Ctx, cmd: AgentCmd) -> anyhow::Result<()> {
    match cmd {
        AgentCmd::List => {
            let zone = ctx.zone().await;
            let headers = ["ID", "NAME", "ROLE", "ONLINE", "VERSION", "LINK", "ADDRESS", "LAST SEEN"];
            ctx.list_with("/api/v1/agents", &headers, |a| {
                let mut row: Vec<String> = ["id", "name", "role", "online", "version", "link", "address"]
                    .iter()
                    .map(|k| super::table::cell(&a[*k]))
                    .collect();
                row.push(super::time_cell(&a["last_seen"], &zone));
                row
            })
            .await
        }
        AgentCmd::Revoke { agent, force: false } => {
            ctx.client.delete(&format!("/api/v1/agents/{}", seg(&agent))).await?;
            ctx.done();
            Ok(())
        }
        AgentCmd::Revoke { agent, force: true } => {
            let detached = ctx.client.delete(&format!("/api/v1/agents/{}?force=true", seg(&agent))).await?;
            if ctx.json {
                print_json(&detached);
                return Ok(());
            }
            let names = |k: &str| -> Vec<String> {
                detached[k].as_array().into_iter().flatten().filter_map(|v| v.as_str().map(str::to_owned)).collect()
            };
            let lang = ctx.lang;
            println!("{}", lang.pick("revoked; its streams were ended", "失効させ、ストリームを終了しました"));
            for id in names("routes_deleted") {
                println!("  {} {id}", lang.pick("route deleted:", "削除したルート:"));
            }
            for name in names("services_without_agent") {
                println!(
                    "  {} {name} ({})",
                    lang.pick("service without an agent:", "エージェントのないサービス:"),
                    lang.pick(
                        "every access is refused until it is deleted or created on another agent",
                        "削除するか別のエージェントで作り直すまで、すべてのアクセスが拒否されます"
                    )
                );
            }
            Ok(())
        }
    }
}

pub(super) async fn service(ctx: &Ctx, cmd: ServiceCmd) -> anyhow::Result<()> {
    match cmd {
        ServiceCmd::Create { name, agent, target, edge_listen, browser } => {
            let body =
                json!({"name": name, "agent": agent, "target": target, "edge_listen": edge_listen, "browser": browser});
            let v = ctx.client.post("/api/v1/services", &body).await?;
            ctx.print_one(&v, "id");
        }
        ServiceCmd::List => {
            ctx.list(
                "/api/v1/services",
                &[
                    ("ID", "id"),
                    ("NAME", "name"),
                    ("AGENT", "agent_name"),
                    ("TARGET", "target"),
                    ("EDGE", "edge_bound"),
                ],
            )
            .await?;
        }
        ServiceCmd::Rm { name } => {
            ctx.client.delete(&format!("/api/v1/services/{}", seg(&name))).await?;
            ctx.done();
        }
        ServiceCmd::Login { name, login, password_stdin, key_file, agent_forwarding, host_key, show } => {
            let path = format!("/api/v1/services/{}/login", seg(&name));
            let v = if show {
                ctx.client.get(&path).await?
            } else {
                let login = login.unwrap_or_default();
                let mut body =
                    serde_json::json!({ "login": login, "host_key": host_key, "agent_forwarding": agent_forwarding });
                if password_stdin {
                    let mut line = String::new();
                    std::io::stdin().read_line(&mut line)?;
                    body["password"] = line.trim_end_matches(['\r', '\n']).into();
                }
                if let Some(f) = key_file {
                    body["private_key"] =
                        std::fs::read_to_string(&f).map_err(|e| ctx.lang.file_error(false, &f, &e))?.into();
                }
                ctx.client.put(&path, &body).await?
            };
            if ctx.json {
                super::print_json(&v);
            } else {
                for k in ["service", "login", "secret_kind", "host_key"] {
                    println!("{k:12} {}", v[k].as_str().unwrap_or_default());
                }
            }
        }
    }
    Ok(())
}

pub(super) async fn route(ctx: &Ctx, cmd: RouteCmd) -> anyhow::Result<()> {
    match cmd {
        RouteCmd::Create { agent, listen, service } => {
            let body = json!({"agent": agent, "listen": listen, "service": service});
            let v = ctx.client.post("/api/v1/routes", &body).await?;
            ctx.print_one(&v, "id");
        }
        RouteCmd::List => {
            ctx.list(
                "/api/v1/routes",
                &[
                    ("ID", "id"),
                    ("AGENT", "agent_name"),
                    ("LISTEN", "listen"),
                    ("BOUND", "bound"),
                    ("SERVICE", "service_name"),
                    ("ERROR", "error"),
                ],
            )
            .await?;
        }
        RouteCmd::Rm { id } => {
            ctx.client.delete(&format!("/api/v1/routes/{}", seg(&id))).await?;
            ctx.done();
        }
    }
    Ok(())
}
