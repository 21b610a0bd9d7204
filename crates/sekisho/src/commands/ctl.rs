//! `sekisho ctl`: the admin API from the command line.

mod client;
mod table;

pub(crate) use client::ApiClient;
use serde_json::{Value, json};

use crate::cli::{AgentCmd, CtlArgs, CtlCommand, RouteCmd, ServiceCmd, TokenCmd};
use crate::i18n::Lang;

pub(crate) async fn run(args: CtlArgs, lang: Lang) -> anyhow::Result<()> {
    let client = ApiClient::from_args(&args, lang)?;
    let json_out = args.json;
    match args.command {
        CtlCommand::Token(TokenCmd::Create { name, role, site, ttl }) => {
            let ttl_secs = parse_duration(&ttl)
                .ok_or_else(|| anyhow::anyhow!("{} `{ttl}`", lang.pick("invalid duration", "期間の形式が不正です")))?;
            let v = client
                .post(
                    "/api/v1/enrollment-tokens",
                    &json!({"name": name, "role": role, "site": site, "ttl_secs": ttl_secs}),
                )
                .await?;
            if json_out {
                print_json(&v);
            } else {
                println!("{}", v["token"].as_str().unwrap_or_default());
                eprintln!(
                    "{}",
                    lang.pick(
                        "Run this on the agent's machine (the token works once):",
                        "エージェント側で実行してください (トークンは一度だけ有効):"
                    )
                );
                eprintln!("  {}", v["command"].as_str().unwrap_or_default());
            }
        }
        CtlCommand::Agent(AgentCmd::List) => {
            list(
                &client,
                "/api/v1/agents",
                json_out,
                &[
                    ("ID", "id"),
                    ("NAME", "name"),
                    ("ROLE", "role"),
                    ("ONLINE", "online"),
                    ("VERSION", "version"),
                    ("ADDRESS", "address"),
                    ("LAST SEEN", "last_seen"),
                ],
            )
            .await?;
        }
        CtlCommand::Agent(AgentCmd::Revoke { agent }) => {
            client.delete(&format!("/api/v1/agents/{agent}")).await?;
            done(json_out, lang);
        }
        CtlCommand::Service(ServiceCmd::Create { name, agent, target, edge_listen }) => {
            let v = client
                .post(
                    "/api/v1/services",
                    &json!({"name": name, "agent": agent, "target": target, "edge_listen": edge_listen}),
                )
                .await?;
            print_one(&v, json_out, "id");
        }
        CtlCommand::Service(ServiceCmd::List) => {
            list(
                &client,
                "/api/v1/services",
                json_out,
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
        CtlCommand::Service(ServiceCmd::Rm { name }) => {
            client.delete(&format!("/api/v1/services/{name}")).await?;
            done(json_out, lang);
        }
        CtlCommand::Route(RouteCmd::Create { agent, listen, service }) => {
            let v =
                client.post("/api/v1/routes", &json!({"agent": agent, "listen": listen, "service": service})).await?;
            print_one(&v, json_out, "id");
        }
        CtlCommand::Route(RouteCmd::List) => {
            list(
                &client,
                "/api/v1/routes",
                json_out,
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
        CtlCommand::Route(RouteCmd::Rm { id }) => {
            client.delete(&format!("/api/v1/routes/{id}")).await?;
            done(json_out, lang);
        }
        CtlCommand::Events { limit } => {
            list(
                &client,
                &format!("/api/v1/audit?limit={limit}"),
                json_out,
                &[
                    ("AT", "at"),
                    ("KIND", "kind"),
                    ("DECISION", "decision"),
                    ("SUBJECT", "subject"),
                    ("TARGET", "target"),
                    ("REASON", "reason"),
                ],
            )
            .await?;
        }
    }
    Ok(())
}

/// Prints a listing as JSON or as a table.
async fn list(client: &ApiClient, path: &str, json_out: bool, columns: &[(&str, &str)]) -> anyhow::Result<()> {
    let v = client.get(path).await?;
    if json_out {
        print_json(&v);
    } else {
        table::print(&v, columns);
    }
    Ok(())
}

fn print_json(v: &Value) {
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

fn print_one(v: &Value, json_out: bool, key: &str) {
    if json_out {
        print_json(v);
    } else {
        println!("{}", v[key].as_str().unwrap_or_default());
    }
}

fn done(json_out: bool, lang: Lang) {
    if json_out {
        println!("{{\"ok\":true}}");
    } else {
        println!("{}", lang.pick("done", "完了"));
    }
}

/// `90`, `30s`, `15m`, `1h`, `2d` → seconds.
pub(crate) fn parse_duration(s: &str) -> Option<i64> {
    let s = s.trim();
    let (num, mult) = match s.chars().last()? {
        's' => (&s[..s.len() - 1], 1),
        'm' => (&s[..s.len() - 1], 60),
        'h' => (&s[..s.len() - 1], 3600),
        'd' => (&s[..s.len() - 1], 86_400),
        c if c.is_ascii_digit() => (s, 1),
        _ => return None,
    };
    num.parse::<i64>().ok().filter(|n| *n > 0)?.checked_mul(mult)
}

#[cfg(test)]
mod tests {
    #[test]
    fn durations_parse() {
        assert_eq!(super::parse_duration("90"), Some(90));
        assert_eq!(super::parse_duration("15m"), Some(900));
        assert_eq!(super::parse_duration("2d"), Some(172_800));
        assert_eq!(super::parse_duration("-1h"), None);
        assert_eq!(super::parse_duration("1y"), None);
    }
}
