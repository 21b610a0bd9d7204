//! Tenants: created and sized by the relay operator.

use anyhow::anyhow;
use serde_json::{Map, Value, json};

use super::{Ctx, parse, print_json, seg, time_cell};
use crate::cli::{TenantCmd, TenantPlan};
use crate::i18n::Lang;

pub(super) async fn run(ctx: &Ctx, cmd: TenantCmd) -> anyhow::Result<()> {
    let lang = ctx.lang;
    match cmd {
        TenantCmd::Create { name, plan } => {
            let mut body = plan_body(&plan, lang)?;
            body.insert("name".into(), json!(name));
            let v = ctx.client.post("/api/v1/tenants", &Value::Object(body)).await?;
            if ctx.json {
                print_json(&v);
                return Ok(());
            }
            println!("{}", v["admin_key"].as_str().unwrap_or_default());
            eprintln!(
                "{} `{name}` ({}). {}",
                lang.pick("Created tenant", "テナントを作成しました:"),
                v["tenant"]["id"].as_str().unwrap_or_default(),
                lang.pick(
                    "Above is its first admin key: it is shown only this once, so store it safely now.",
                    "上がその最初の管理者キーです。表示は今回限りなので、今すぐ安全な場所に保管してください。"
                )
            );
        }
        TenantCmd::List => {
            let zone = ctx.zone().await;
            ctx.list_with(
                "/api/v1/tenants",
                &["ID", "NAME", "MAX AGENTS", "RETENTION DAYS", "TIME ZONE", "CREATED"],
                |t| {
                    vec![
                        super::table::cell(&t["id"]),
                        super::table::cell(&t["name"]),
                        super::table::cell(&t["max_agents"]),
                        super::table::cell(&t["retention_days"]),
                        super::table::cell(&t["time_zone"]),
                        time_cell(&t["created_at"], &zone),
                    ]
                },
            )
            .await?;
        }
        TenantCmd::Set { name, plan } => {
            let body = plan_body(&plan, lang)?;
            if body.is_empty() {
                return Err(anyhow!(lang.pick(
                    "nothing to change: give --max-agents, --retention-days or --time-zone",
                    "変更内容がありません: --max-agents、--retention-days、--time-zone のいずれかを指定してください"
                )));
            }
            let v = ctx.client.patch(&format!("/api/v1/tenants/{}", seg(&name)), &Value::Object(body)).await?;
            if ctx.json {
                print_json(&v);
            } else {
                ctx.done();
            }
        }
    }
    Ok(())
}

/// The given plan fields as a JSON object (absent ones left out).
fn plan_body(plan: &TenantPlan, lang: Lang) -> anyhow::Result<Map<String, Value>> {
    let mut body = Map::new();
    if let Some(n) = plan.max_agents {
        body.insert("max_agents".into(), json!(n));
    }
    if let Some(d) = plan.retention_days {
        body.insert("retention_days".into(), json!(d));
    }
    if let Some(zone) = &plan.time_zone {
        body.insert("time_zone".into(), json!(zone));
    }
    if let Some(text) = &plan.utc_offset {
        let minutes = parse::parse_utc_offset(text).ok_or_else(|| {
            anyhow!(
                "{} `{text}`",
                lang.pick(
                    "UTC offset must look like +09:00 or -05:30 (between -12:00 and +14:00):",
                    "UTC オフセットは +09:00 や -05:30 の形式 (-12:00 から +14:00) で指定してください:"
                )
            )
        })?;
        body.insert("utc_offset_minutes".into(), json!(minutes));
    }
    Ok(body)
}
