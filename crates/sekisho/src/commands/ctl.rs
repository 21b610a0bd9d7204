//! `sekisho ctl`: the admin API from the command line. This file dispatches; each area lives in
//! `ctl/<area>.rs`.

mod access;
pub(crate) mod audit;
mod client;
mod parse;
mod policy;
mod recording;
mod table;
mod tenant;
mod tunnel;
pub(crate) mod users;

pub(crate) use client::ApiClient;
use serde_json::Value;

use crate::cli::{CtlArgs, CtlCommand};
use crate::i18n::Lang;

/// What every ctl command needs: the client and how to speak.
struct Ctx {
    client: ApiClient,
    json: bool,
    lang: Lang,
    /// The zone table times are shown in, asked of the relay once (see [`Ctx::zone`]).
    zone: tokio::sync::OnceCell<jiff::tz::TimeZone>,
}

pub(crate) async fn run(args: CtlArgs, lang: Lang) -> anyhow::Result<()> {
    // `login` is how one gets a key, so it must work without one.
    let client = match args.command {
        CtlCommand::Login { .. } => ApiClient::anonymous(&args, lang)?,
        _ => ApiClient::from_args(&args, lang)?,
    };
    let ctx = Ctx { client, json: args.json, lang, zone: tokio::sync::OnceCell::new() };
    match args.command {
        CtlCommand::Token(cmd) => tunnel::token(&ctx, cmd).await,
        CtlCommand::Agent(cmd) => tunnel::agent(&ctx, cmd).await,
        CtlCommand::Service(cmd) => tunnel::service(&ctx, cmd).await,
        CtlCommand::Route(cmd) => tunnel::route(&ctx, cmd).await,
        CtlCommand::Tenant(cmd) => tenant::run(&ctx, cmd).await,
        CtlCommand::User(cmd) => users::run(&ctx, cmd).await,
        CtlCommand::Login { tenant, user, totp, recovery_code } => {
            users::login(&ctx, &tenant, &user, totp, recovery_code).await
        }
        CtlCommand::Group(cmd) => access::group(&ctx, cmd).await,
        CtlCommand::Apikey(cmd) => access::apikey(&ctx, cmd).await,
        CtlCommand::Policy(cmd) => policy::run(&ctx, cmd).await,
        CtlCommand::Audit(cmd) => audit::run(&ctx, cmd).await,
        CtlCommand::Recording(cmd) => recording::run(&ctx, cmd).await,
        CtlCommand::Oidc(cmd) => access::oidc(&ctx, cmd).await,
        CtlCommand::Events { limit } => audit::events(&ctx, limit).await,
    }
}

impl Ctx {
    /// The zone times are shown in: the signed-in user's own, else the tenant's (the relay's
    /// `/session` says which); Japan's if the relay cannot say.
    async fn zone(&self) -> jiff::tz::TimeZone {
        self.zone
            .get_or_init(|| async {
                let session = self.client.get("/api/v1/session").await.unwrap_or_default();
                sekisho_store::zone::or_default(session["time_zone"].as_str())
            })
            .await
            .clone()
    }

    /// Prints a listing as JSON or as a table of (header, key) columns.
    async fn list(&self, path: &str, columns: &[(&str, &str)]) -> anyhow::Result<()> {
        let v = self.client.get(path).await?;
        if self.json {
            print_json(&v);
        } else {
            table::print(&v, columns);
        }
        Ok(())
    }

    /// Prints a listing as JSON or as a table whose cells `row` computes.
    async fn list_with(&self, path: &str, headers: &[&str], row: impl Fn(&Value) -> Vec<String>) -> anyhow::Result<()> {
        let v = self.client.get(path).await?;
        if self.json {
            print_json(&v);
        } else {
            print!("{}", table::render(headers, &table::rows_of(&v, row)));
        }
        Ok(())
    }

    /// Prints one field of an answer (or all of it as JSON).
    fn print_one(&self, v: &Value, key: &str) {
        if self.json {
            print_json(v);
        } else {
            println!("{}", v[key].as_str().unwrap_or_default());
        }
    }

    fn done(&self) {
        if self.json {
            println!("{{\"ok\":true}}");
        } else {
            println!("{}", self.lang.pick("done", "完了"));
        }
    }
}

fn print_json(v: &Value) {
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

/// Writes a download (an export) to `path` as it arrives: beside it as `.part`, renamed when
/// complete (a cut download leaves no file that looks whole), with a byte counter on a terminal.
/// Returns the bytes written.
async fn download(ctx: &Ctx, mut resp: reqwest::Response, path: &std::path::Path) -> anyhow::Result<u64> {
    use std::io::Write;
    let part = path.with_extension("part");
    let mut file = std::fs::File::create(&part).map_err(|e| ctx.lang.file_error(true, &part, &e))?;
    let bar = progress(ctx, ctx.lang.pick("exporting", "書き出し中"), resp.content_length());
    let mut bytes = 0u64;
    while let Some(chunk) = resp.chunk().await? {
        file.write_all(&chunk)?;
        bytes += chunk.len() as u64;
        bar.set_position(bytes);
    }
    bar.finish_and_clear();
    file.sync_all()?;
    std::fs::rename(&part, path)?;
    Ok(bytes)
}

/// A byte counter for a long download (exports): drawn on a terminal only, never with `--json`
/// (indicatif also draws nothing when stderr is no terminal: pipes and log files stay clean).
fn progress(ctx: &Ctx, what: &'static str, total: Option<u64>) -> indicatif::ProgressBar {
    if ctx.json {
        return indicatif::ProgressBar::hidden();
    }
    let bar = match total {
        Some(n) => indicatif::ProgressBar::new(n),
        None => indicatif::ProgressBar::no_length(),
    };
    let template = match total {
        Some(_) => "{msg} {wide_bar} {bytes}/{total_bytes} ({bytes_per_sec}, {eta})",
        None => "{msg} {spinner} {bytes} ({bytes_per_sec})",
    };
    if let Ok(style) = indicatif::ProgressStyle::with_template(template) {
        bar.set_style(style);
    }
    bar.set_message(what);
    bar
}

/// An optional millisecond timestamp as a table cell, in `zone`.
fn time_cell(v: &Value, zone: &jiff::tz::TimeZone) -> String {
    v.as_i64().map_or_else(|| "-".to_owned(), |ms| parse::format_time(ms, zone))
}

/// A path segment, percent-encoded so names cannot change the path.
fn seg(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn path_segments_are_encoded() {
        assert_eq!(super::seg("web-1_a.b"), "web-1_a.b");
        assert_eq!(super::seg("a/b c?"), "a%2Fb%20c%3F");
        assert_eq!(super::seg("関"), "%E9%96%A2");
    }
}
