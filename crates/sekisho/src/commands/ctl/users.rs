//! Users, their passwords and TOTP, and logging in as one.
//!
//! Passwords never come from the command line (where `ps` and shell history would see them): they
//! are read as one line from stdin, with a prompt when stdin is a terminal.

use std::io::{BufRead, IsTerminal, Write};

use anyhow::anyhow;
use serde_json::json;

use super::client::ApiError;
use super::{Ctx, print_json, seg, table, time_cell};
use crate::cli::{SshKeyCmd, UserCmd};
use crate::i18n::Lang;

pub(super) async fn run(ctx: &Ctx, cmd: UserCmd) -> anyhow::Result<()> {
    let lang = ctx.lang;
    match cmd {
        UserCmd::Add { name, display_name, groups, password_stdin } => {
            let password = read_password(!password_stdin, lang)?;
            let body = json!({"name": name, "display_name": display_name, "password": password, "groups": groups});
            let v = ctx.client.post("/api/v1/users", &body).await?;
            ctx.print_one(&v, "id");
        }
        UserCmd::List => {
            ctx.list_with("/api/v1/users", &["NAME", "GROUPS", "TOTP", "LOCKED"], |u| {
                let totp = u["totp_enabled"].as_i64().is_some_and(|t| t != 0);
                vec![table::cell(&u["name"]), table::cell(&u["groups"]), totp.to_string(), table::cell(&u["locked"])]
            })
            .await?;
        }
        UserCmd::Rm { name } => {
            ctx.client.delete(&user_path(&name, "")).await?;
            ctx.done();
        }
        UserCmd::Passwd { name } => {
            let password = read_password(true, lang)?;
            ctx.client.post(&user_path(&name, "/password"), &json!({ "password": password })).await?;
            ctx.done();
        }
        UserCmd::Totp { name } => {
            let v = ctx.client.post(&user_path(&name, "/totp"), &json!({})).await?;
            if ctx.json {
                print_json(&v);
                return Ok(());
            }
            println!("{} {}", lang.pick("secret:     ", "シークレット:"), v["secret"].as_str().unwrap_or_default());
            println!(
                "{} {}",
                lang.pick("otpauth URL:", "otpauth URL: "),
                v["otpauth_url"].as_str().unwrap_or_default()
            );
            println!("{}", lang.pick("recovery codes (each works once):", "リカバリーコード (各一回のみ有効):"));
            for code in v["recovery_codes"].as_array().into_iter().flatten() {
                println!("  {}", code.as_str().unwrap_or_default());
            }
            eprintln!(
                "{}",
                lang.pick(
                    "These are shown only this once: add the secret to the user's authenticator app and keep the \
                     recovery codes somewhere safe.",
                    "これらは今回限りの表示です。シークレットを認証アプリに登録し、リカバリーコードは安全な場所に保管してください。"
                )
            );
        }
        UserCmd::Unlock { name } => {
            ctx.client.post(&user_path(&name, "/unlock"), &json!({})).await?;
            ctx.done();
        }
        UserCmd::SshKey(SshKeyCmd::Add { user, key_file, name }) => {
            let key = std::fs::read_to_string(&key_file).map_err(|e| ctx.lang.file_error(false, &key_file, &e))?;
            let v = ctx.client.post(&user_path(&user, "/ssh-keys"), &json!({"public_key": key, "name": name})).await?;
            ctx.print_one(&v, "fingerprint");
        }
        UserCmd::SshKey(SshKeyCmd::List { user }) => {
            ctx.list(&user_path(&user, "/ssh-keys"), &[("ID", "id"), ("NAME", "name"), ("FINGERPRINT", "fingerprint")])
                .await?;
        }
        UserCmd::SshKey(SshKeyCmd::Rm { user, key }) => {
            ctx.client.delete(&user_path(&user, &format!("/ssh-keys/{}", seg(&key)))).await?;
            ctx.done();
        }
    }
    Ok(())
}

fn user_path(name: &str, rest: &str) -> String {
    format!("/api/v1/users/{}{rest}", seg(name))
}

/// `ctl login`: password from stdin, then a session key on stdout.
pub(super) async fn login(
    ctx: &Ctx,
    tenant: &str,
    user: &str,
    totp: Option<String>,
    recovery_code: Option<String>,
) -> anyhow::Result<()> {
    let lang = ctx.lang;
    let password = read_password(true, lang)?;
    let body =
        json!({"tenant": tenant, "user": user, "password": password, "totp": totp, "recovery_code": recovery_code});
    let v = ctx.client.post("/api/v1/login", &body).await.map_err(|e| match e.downcast_ref::<ApiError>() {
        Some(api) if api.code == "totp_required" => anyhow!(
            "{e}; {}",
            lang.pick(
                "pass --totp CODE or --recovery-code CODE",
                "--totp CODE か --recovery-code CODE を指定してください"
            )
        ),
        _ => e,
    })?;
    if ctx.json {
        print_json(&v);
        return Ok(());
    }
    let key = v["key"].as_str().unwrap_or_default();
    println!("{key}");
    // Not signed in until now: the relay's default zone (Japan's).
    let zone = sekisho_store::zone::or_default(None);
    eprintln!(
        "{} `{}` ({}); {} {}. {}",
        lang.pick("Logged in as", "ログインしました:"),
        v["user"].as_str().unwrap_or(user),
        v["auth_method"].as_str().unwrap_or_default(),
        lang.pick("the session key expires at", "セッションキーの有効期限は"),
        time_cell(&v["expires_at"], &zone),
        lang.pick("To use it:", "使うには:")
    );
    eprintln!("  export SEKISHO_API_KEY={key}");
    Ok(())
}

/// Reads one line from stdin as a password (prompting on a terminal when `prompt`).
pub(crate) fn read_password(prompt: bool, lang: Lang) -> anyhow::Result<String> {
    let stdin = std::io::stdin();
    if prompt && stdin.is_terminal() {
        eprint!("{}", lang.pick("Password (shown as you type): ", "パスワード (入力は表示されます): "));
        let _ = std::io::stderr().flush();
    }
    let mut line = String::new();
    stdin.lock().read_line(&mut line)?;
    let password = line.trim_end_matches(['\n', '\r']);
    if password.is_empty() {
        return Err(anyhow!(lang.pick(
            "no password on stdin (give it as one line)",
            "標準入力にパスワードがありません (1 行で入力してください)"
        )));
    }
    Ok(password.to_owned())
}
