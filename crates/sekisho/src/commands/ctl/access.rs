//! Groups (roles for their members) and API keys.

use anyhow::anyhow;
use serde_json::{Value, json};

use super::{Ctx, parse, print_json, seg, table, time_cell};
use crate::cli::{ApiKeyCmd, GroupCmd, MemberCmd, OidcCmd};

pub(super) async fn group(ctx: &Ctx, cmd: GroupCmd) -> anyhow::Result<()> {
    match cmd {
        GroupCmd::Add { name, role } => {
            let v = ctx.client.post("/api/v1/groups", &json!({"name": name, "role": role})).await?;
            ctx.print_one(&v, "id");
        }
        GroupCmd::List => {
            ctx.list("/api/v1/groups", &[("NAME", "name"), ("ROLE", "role"), ("MEMBERS", "members")]).await?;
        }
        GroupCmd::Rm { name } => {
            ctx.client.delete(&format!("/api/v1/groups/{}", seg(&name))).await?;
            ctx.done();
        }
        GroupCmd::Member(MemberCmd::Add { group, user }) => {
            ctx.client.put(&member_path(&group, &user), &json!({})).await?;
            ctx.done();
        }
        GroupCmd::Member(MemberCmd::Rm { group, user }) => {
            ctx.client.delete(&member_path(&group, &user)).await?;
            ctx.done();
        }
    }
    Ok(())
}

fn member_path(group: &str, user: &str) -> String {
    format!("/api/v1/groups/{}/members/{}", seg(group), seg(user))
}

pub(super) async fn apikey(ctx: &Ctx, cmd: ApiKeyCmd) -> anyhow::Result<()> {
    let lang = ctx.lang;
    match cmd {
        ApiKeyCmd::Create { name, scopes, ttl, allow_ips, user } => {
            let zone = ctx.zone().await;
            let secs = match &ttl {
                Some(text) => Some(parse::parse_lifetime(text).ok_or_else(|| {
                    anyhow!(
                        "{} `{text}`",
                        lang.pick(
                            "a lifetime needs a unit: 30m, 12h, 30d or 2w:",
                            "有効期間は単位を付けて 30m、12h、30d、2w のように指定してください:"
                        )
                    )
                })?),
                None => None,
            };
            let scopes: Vec<&str> = scopes.iter().map(|s| s.trim()).filter(|s| !s.is_empty()).collect();
            let body = json!({
                "name": name, "scopes": scopes, "expires_in_secs": secs, "allowed_ips": allow_ips, "user": user,
            });
            let v = ctx.client.post("/api/v1/api-keys", &body).await?;
            if ctx.json {
                print_json(&v);
                return Ok(());
            }
            println!("{}", v["key"].as_str().unwrap_or_default());
            let expiry = match v["expires_at"] {
                Value::Null => lang.pick("never expires", "無期限").to_owned(),
                ref t => format!("{} {}", lang.pick("expires at", "有効期限:"), time_cell(t, &zone)),
            };
            eprintln!(
                "{} ({expiry}). {}",
                lang.pick("API key created", "API キーを作成しました"),
                lang.pick(
                    "It is shown only this once: store it safely now.",
                    "表示は今回限りです。今すぐ安全な場所に保管してください。"
                )
            );
        }
        ApiKeyCmd::List => {
            let zone = ctx.zone().await;
            let headers = ["ID", "NAME", "SCOPES", "EXPIRES", "ALLOWED IPS", "LAST USED", "REVOKED"];
            ctx.list_with("/api/v1/api-keys", &headers, |k| {
                vec![
                    table::cell(&k["id"]),
                    table::cell(&k["name"]),
                    table::cell(&k["scopes"]),
                    time_cell(&k["expires_at"], &zone),
                    table::cell(&k["allowed_ips"]),
                    time_cell(&k["last_used_at"], &zone),
                    time_cell(&k["revoked_at"], &zone),
                ]
            })
            .await?;
        }
        ApiKeyCmd::Revoke { id } => {
            ctx.client.delete(&format!("/api/v1/api-keys/{}", seg(&id))).await?;
            ctx.done();
        }
    }
    Ok(())
}

pub(super) async fn oidc(ctx: &Ctx, cmd: OidcCmd) -> anyhow::Result<()> {
    match cmd {
        OidcCmd::Set { issuer, client_id, claim, label } => {
            let mut secret = String::new();
            std::io::stdin().read_line(&mut secret)?;
            let body = json!({
                "issuer": issuer, "client_id": client_id, "client_secret": secret.trim(),
                "username_claim": claim, "label": label,
            });
            let v = ctx.client.put("/api/v1/oidc", &body).await?;
            ctx.print_one(&v, "issuer");
        }
        OidcCmd::Show => print_json(&ctx.client.get("/api/v1/oidc").await?),
        OidcCmd::Rm => {
            ctx.client.delete("/api/v1/oidc").await?;
            ctx.done();
        }
    }
    Ok(())
}
