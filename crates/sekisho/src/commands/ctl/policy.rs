//! Service policies: set (with Cedar diagnostics on error), show, list, remove and dry-run tests.

use std::path::Path;

use anyhow::{Context, anyhow};
use serde_json::{Map, Value, json};

use super::client::ApiError;
use super::{Ctx, print_json, seg, table, time_cell};
use crate::cli::PolicyCmd;
use crate::i18n::Lang;

pub(super) async fn run(ctx: &Ctx, cmd: PolicyCmd) -> anyhow::Result<()> {
    let lang = ctx.lang;
    match cmd {
        PolicyCmd::Set { service, required, deny, allow_domains, deny_domains, file } => {
            let mut lists = match &file {
                Some(path) => read_file(path, lang)?,
                None => Lists::default(),
            };
            lists.required.extend(required);
            lists.deny.extend(deny);
            lists.allow_domains.extend(allow_domains);
            lists.deny_domains.extend(deny_domains);
            if lists.required.is_empty() && lists.deny.is_empty() && lists.deny_domains.is_empty() {
                return Err(anyhow!(lang.pick(
                    "no conditions: give --require, --deny, --deny-domain or --file (`policy rm` denies everyone)",
                    "条件がありません: --require、--deny、--deny-domain、--file のいずれかを指定してください (全員拒否は `policy rm`)"
                )));
            }
            let body = json!({
                "required": lists.required,
                "deny": lists.deny,
                "allow_domains": lists.allow_domains,
                "deny_domains": lists.deny_domains,
            });
            match ctx.client.put(&policy_path(&service), &body).await {
                Ok(v) if ctx.json => print_json(&v),
                Ok(v) => {
                    print_cedar(&v);
                    eprintln!("{} `{service}`", lang.pick("saved the policy of", "ポリシーを保存しました:"));
                }
                Err(e) => return Err(invalid_policy(ctx, e)),
            }
        }
        PolicyCmd::Show { service } => {
            let v = ctx.client.get(&policy_path(&service)).await?;
            if ctx.json {
                print_json(&v);
            } else {
                show(&v, lang, &ctx.zone().await);
            }
        }
        PolicyCmd::List => {
            let zone = ctx.zone().await;
            let conditions = |v: &Value| {
                let all: Vec<&str> = v.as_array().into_iter().flatten().filter_map(Value::as_str).collect();
                if all.is_empty() { "-".to_owned() } else { all.join(" | ") }
            };
            ctx.list_with("/api/v1/policies", &["SERVICE", "REQUIRED", "DENY", "UPDATED", "BY"], |p| {
                vec![
                    table::cell(&p["service"]),
                    conditions(&p["required"]),
                    conditions(&p["deny"]),
                    time_cell(&p["updated_at"], &zone),
                    table::cell(&p["updated_by"]),
                ]
            })
            .await?;
        }
        PolicyCmd::Rm { service } => {
            ctx.client.delete(&policy_path(&service)).await?;
            ctx.done();
        }
        PolicyCmd::Test { service, user, agent, ip, at, path, auth_method, domain, port, dest_ip } => {
            let mut body = Map::new();
            body.insert("service".into(), json!(service));
            body.insert("ip".into(), json!(ip.to_string()));
            if let Some(port) = port {
                body.insert("port".into(), json!(port));
            }
            let dest_ip = dest_ip.map(|ip| ip.to_string());
            for (k, v) in [("domain", domain), ("dest_ip", dest_ip)] {
                if let Some(v) = v {
                    body.insert(k.into(), json!(v));
                }
            }
            for (k, v) in [("user", user), ("agent", agent), ("at", at), ("path", path), ("auth_method", auth_method)] {
                if let Some(v) = v {
                    body.insert(k.into(), json!(v));
                }
            }
            // A dry run: a denial is an answer, not an error, so both exit 0.
            let v = ctx.client.post("/api/v1/policies/test", &Value::Object(body)).await?;
            if ctx.json {
                print_json(&v);
            } else {
                let verdict =
                    if v["allowed"] == true { lang.pick("ALLOW", "許可") } else { lang.pick("DENY", "拒否") };
                println!("{verdict}  {}  {}", table::cell(&v["policy_id"]), table::cell(&v["reason"]));
                println!(
                    "{} {}  {} {}",
                    lang.pick("country:", "国:"),
                    table::cell(&v["country"]),
                    lang.pick("at:", "時刻:"),
                    table::cell(&v["at"])
                );
            }
        }
    }
    Ok(())
}

fn policy_path(service: &str) -> String {
    format!("/api/v1/policies/{}", seg(service))
}

/// The lists of a policy.
#[derive(Debug, Default, PartialEq, Eq)]
struct Lists {
    required: Vec<String>,
    deny: Vec<String>,
    allow_domains: Vec<String>,
    deny_domains: Vec<String>,
}

const FIELDS: [&str; 4] = ["required", "deny", "allow_domains", "deny_domains"];

/// A policy file `{"required": [...], "deny": [...], "allow_domains": [...], "deny_domains": [...]}`.
fn read_file(path: &Path, lang: Lang) -> anyhow::Result<Lists> {
    let text = std::fs::read_to_string(path).map_err(|e| lang.file_error(false, path, &e))?;
    parse_policy_json(&text).map_err(|why| anyhow!("`{}`: {why}", path.display())).context(lang.pick(
        "a policy file holds {\"required\": [..], \"deny\": [..]}",
        "ポリシーファイルの形式は {\"required\": [..], \"deny\": [..]} です",
    ))
}

fn parse_policy_json(text: &str) -> Result<Lists, String> {
    let v: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let obj = v.as_object().ok_or("not a JSON object")?;
    if let Some(k) = obj.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err(format!("unknown field `{k}`"));
    }
    let list = |key: &str| -> Result<Vec<String>, String> {
        match obj.get(key) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(a)) => a
                .iter()
                .map(|c| c.as_str().map(str::to_owned).ok_or_else(|| format!("`{key}` must hold strings")))
                .collect(),
            Some(_) => Err(format!("`{key}` must be a list of strings")),
        }
    };
    Ok(Lists {
        required: list("required")?,
        deny: list("deny")?,
        allow_domains: list("allow_domains")?,
        deny_domains: list("deny_domains")?,
    })
}

/// Prints the diagnostics of an `invalid_policy` answer and turns it into a short error.
fn invalid_policy(ctx: &Ctx, e: anyhow::Error) -> anyhow::Error {
    let Some(api) = e.downcast_ref::<ApiError>().filter(|a| a.code == "invalid_policy") else { return e };
    let lines = format_diagnostics(&api.error, ctx.lang);
    if lines.is_empty() {
        return e;
    }
    if ctx.json {
        print_json(&json!({ "error": api.error }));
    }
    for line in &lines {
        eprintln!("{line}");
    }
    anyhow!(
        "{} [invalid_policy]",
        ctx.lang
            .pick("the policy does not compile; nothing was saved", "ポリシーをコンパイルできません。保存していません")
    )
}

/// `error.diagnostics` → `required condition 0, line 2, column 5: message` (+ an indented help
/// line). Condition numbers are 0-based, like the `<service>/deny/<k>` policy ids.
fn format_diagnostics(error: &Value, lang: Lang) -> Vec<String> {
    let mut out = Vec::new();
    for d in error["diagnostics"].as_array().into_iter().flatten() {
        let kind = d["kind"].as_str().unwrap_or("?");
        let (index, line, column) = (table::cell(&d["index"]), table::cell(&d["line"]), table::cell(&d["column"]));
        let message = d["message"].as_str().unwrap_or_default();
        out.push(match lang {
            Lang::En => format!("{kind} condition {index}, line {line}, column {column}: {message}"),
            Lang::Ja => {
                let kind = match kind {
                    "required" => "必須",
                    "deny" => "拒否",
                    other => other,
                };
                format!("{kind}条件 {index}、{line} 行 {column} 列: {message}")
            }
        });
        if let Some(help) = d["help"].as_str() {
            out.push(format!("  {} {help}", lang.pick("help:", "ヒント:")));
        }
    }
    out
}

fn show(v: &Value, lang: Lang, zone: &jiff::tz::TimeZone) {
    println!("{} {}", lang.pick("service:", "サービス:"), table::cell(&v["service"]));
    let list = |title: &str, items: &Value| {
        println!("{title}");
        let items = items.as_array().cloned().unwrap_or_default();
        if items.is_empty() {
            println!("  {}", lang.pick("(none)", "(なし)"));
        }
        for (i, c) in items.iter().enumerate() {
            println!("  [{i}] {}", c.as_str().unwrap_or_default());
        }
    };
    list(lang.pick("required (all must hold):", "必須条件 (すべて満たす必要あり):"), &v["required"]);
    list(lang.pick("deny (any one denies):", "拒否条件 (一つでも満たせば拒否):"), &v["deny"]);
    for (key, title) in [
        ("allow_domains", lang.pick("allowed domains (gateway):", "許可ドメイン (ゲートウェイ):")),
        ("deny_domains", lang.pick("denied domains (gateway):", "拒否ドメイン (ゲートウェイ):")),
    ] {
        if v[key].as_array().is_some_and(|a| !a.is_empty()) {
            list(title, &v[key]);
        }
    }
    println!(
        "{} {} ({})",
        lang.pick("updated:", "更新:"),
        time_cell(&v["updated_at"], zone),
        table::cell(&v["updated_by"])
    );
    println!("{}", lang.pick("cedar:", "Cedar:"));
    print_cedar(v);
}

fn print_cedar(v: &Value) {
    let cedar = v["cedar"].as_str().unwrap_or_default();
    println!("{}", cedar.trim_end_matches('\n'));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diagnostics_format_per_condition() {
        let error = json!({"code": "invalid_policy", "message": "…", "diagnostics": [
            {"kind": "required", "index": 1, "line": 2, "column": 5, "message": "unexpected token", "help": null},
            {"kind": "deny", "index": 0, "line": 1, "column": 1, "message": "unknown", "help": "try `context`"},
        ]});
        assert_eq!(
            format_diagnostics(&error, Lang::En),
            [
                "required condition 1, line 2, column 5: unexpected token",
                "deny condition 0, line 1, column 1: unknown",
                "  help: try `context`",
            ]
        );
        assert_eq!(format_diagnostics(&error, Lang::Ja)[0], "必須条件 1、2 行 5 列: unexpected token");
        assert!(format_diagnostics(&json!({"code": "x"}), Lang::En).is_empty());
    }

    #[test]
    fn policy_files_parse() {
        let Lists { required: r, deny: d, .. } =
            parse_policy_json(r#"{"required": ["true"], "deny": ["false", "x"]}"#).unwrap_or_default();
        assert_eq!((r, d), (vec!["true".to_owned()], vec!["false".to_owned(), "x".to_owned()]));
        assert_eq!(
            parse_policy_json(r#"{"required": ["a"]}"#),
            Ok(Lists { required: vec!["a".to_owned()], ..Lists::default() })
        );
        let domains = parse_policy_json(r#"{"deny_domains": ["deepseek.com"]}"#).unwrap_or_default();
        assert_eq!(domains.deny_domains, ["deepseek.com"]);
        assert!(parse_policy_json(r#"{"require": ["a"]}"#).is_err());
        assert!(parse_policy_json(r#"{"required": [1]}"#).is_err());
        assert!(parse_policy_json("[]").is_err());
    }
}
