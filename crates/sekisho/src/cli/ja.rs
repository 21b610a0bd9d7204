//! The command line in Japanese: the help of every command and option from the catalogue
//! `help.ja` (the English is the grammar's own doc comments), clap's headings and built-in
//! flags in Japanese, and clap's errors rendered as Japanese sentences.
//!
//! The catalogue's keys are the command path (`sekisho ctl agent revoke`), with an option
//! (`… --force`) or an argument (`… <agent>`, the field's name). A test fails when a visible
//! command or option lacks its text in either language, or the catalogue names one that is gone.

use std::collections::HashMap;

use clap::builder::StyledStr;
use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{Arg, ArgAction, Command};

const CATALOGUE: &str = include_str!("help.ja");

/// The catalogue: key → Japanese text.
fn catalogue() -> HashMap<&'static str, &'static str> {
    CATALOGUE
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once(" = "))
        .map(|(k, v)| (k.trim(), v.trim()))
        .collect()
}

/// The key of an argument of the command at `path`.
fn arg_key(path: &str, arg: &Arg) -> String {
    match arg.get_long() {
        Some(long) => format!("{path} --{long}"),
        None => format!("{path} <{}>", arg.get_id()),
    }
}

/// Whether the help lists it (hidden ones, and the built-in help and version flags, are not ours).
fn shown(arg: &Arg) -> bool {
    !arg.is_hide_set() && !matches!(arg.get_id().as_str(), "help" | "version")
}

/// `cmd` with Japanese help throughout (before clap builds it, so global options carry their
/// Japanese text to every subcommand).
pub(crate) fn localise(cmd: Command) -> Command {
    let text = catalogue();
    let mut cmd = walk(cmd, "sekisho", &text);
    cmd = cmd
        .disable_version_flag(true)
        .arg(Arg::new("version").short('V').long("version").action(ArgAction::Version).help("バージョンを表示します"));
    cmd.build();
    // The built-in `help` subcommand exists only now.
    localise_help_subcommand(cmd)
}

fn localise_help_subcommand(cmd: Command) -> Command {
    let has_help = cmd.get_subcommands().any(|c| c.get_name() == "help");
    let mut cmd = cmd.mut_subcommands(localise_help_subcommand);
    if has_help {
        cmd = cmd.mut_subcommand("help", |h| h.about("このヘルプか、指定したサブコマンドのヘルプを表示します"));
    }
    cmd
}

fn walk(cmd: Command, path: &str, text: &HashMap<&'static str, &'static str>) -> Command {
    let about = text.get(path).copied();
    let mut cmd = cmd.mut_args(|arg| {
        if !shown(&arg) {
            return arg;
        }
        let key = arg_key(path, &arg);
        let Some(help) = text.get(key.as_str()) else { return arg };
        let mut help = help.to_string();
        // clap's own notes ([default: …], [env: …], [possible values: …]) in Japanese.
        let defaults: Vec<String> = arg
            .get_default_values()
            .iter()
            .map(|v| v.to_string_lossy().into_owned())
            .filter(|v| !v.is_empty())
            .collect();
        let values: Vec<String> =
            arg.get_possible_values().iter().filter(|v| !v.is_hide_set()).map(|v| v.get_name().to_owned()).collect();
        let takes_value = arg.get_action().takes_values();
        if takes_value && !values.is_empty() {
            help.push_str(&format!(" [値: {}]", values.join(", ")));
        }
        if takes_value && !defaults.is_empty() {
            help.push_str(&format!(" [既定: {}]", defaults.join(",")));
        }
        let env = arg.get_env().map(|e| e.to_string_lossy().into_owned());
        if let Some(env) = &env {
            help.push_str(&format!(" [環境変数: {env}]"));
        }
        let mut arg = arg.help(help).long_help(None::<&str>);
        if takes_value {
            arg = arg.hide_default_value(true).hide_possible_values(true);
        }
        if env.is_some() {
            arg = arg.hide_env(true);
        }
        arg
    });
    if let Some(about) = about {
        cmd = cmd.about(about).long_about(None::<&str>);
    }
    let sections = template(&cmd);
    cmd = cmd
        .help_template(sections)
        .subcommand_value_name("コマンド")
        .subcommand_help_heading("コマンド")
        .disable_help_flag(true)
        .arg(Arg::new("help").short('h').long("help").action(ArgAction::Help).help("ヘルプを表示します"));
    cmd.mut_subcommands(|sub| {
        let sub_path = format!("{path} {}", sub.get_name());
        walk(sub, &sub_path, text)
    })
}

/// clap's help layout with Japanese headings, only for the sections the command has.
fn template(cmd: &Command) -> String {
    let mut t = String::from("{before-help}{about-with-newline}\n使い方: {usage}\n");
    if cmd.get_subcommands().any(|s| !s.is_hide_set()) {
        t.push_str("\nコマンド:\n{subcommands}\n");
    }
    if cmd.get_positionals().any(|a| !a.is_hide_set()) {
        t.push_str("\n引数:\n{positionals}\n");
    }
    t.push_str("\nオプション:\n{options}{after-help}");
    t
}

/// A parse error in Japanese: what is wrong, the usage line, and where help is.
pub(crate) fn error(e: &clap::Error) -> String {
    let get = |k| e.get(k).map(value).unwrap_or_default();
    let arg = get(ContextKind::InvalidArg);
    let value_text = get(ContextKind::InvalidValue);
    let mut out = String::from("エラー: ");
    out.push_str(&match e.kind() {
        ErrorKind::UnknownArgument => format!("引数 `{arg}` はこのコマンドにはありません。"),
        ErrorKind::InvalidSubcommand => {
            format!("サブコマンド `{}` はありません。", get(ContextKind::InvalidSubcommand))
        }
        ErrorKind::InvalidValue => {
            let valid = match e.get(ContextKind::ValidValue) {
                Some(ContextValue::Strings(v)) => v.iter().map(|x| format!("`{x}`")).collect::<Vec<_>>().join("、"),
                _ => String::new(),
            };
            let mut s = format!("`{value_text}` は {arg} の値として使えません。");
            if !valid.is_empty() {
                s.push_str(&format!("使える値: {valid}"));
            }
            s
        }
        ErrorKind::ValueValidation => {
            // Our own validators explain in both languages; the standard library's parsers in English only.
            let why = std::error::Error::source(e).map(|s| s.to_string()).filter(|s| !s.is_ascii());
            format!(
                "{arg} の値 `{value_text}` が正しくありません{}",
                why.map(|w| format!(": {w}")).unwrap_or("。".into())
            )
        }
        ErrorKind::MissingRequiredArgument => format!("必要な引数がありません: {arg}"),
        ErrorKind::MissingSubcommand => "サブコマンドを指定してください。".to_owned(),
        ErrorKind::ArgumentConflict => {
            format!("{arg} と {} は同時に指定できません。", get(ContextKind::PriorArg))
        }
        ErrorKind::NoEquals => format!("{arg} には `=` で値を続けてください。"),
        ErrorKind::TooManyValues => format!("{arg} への値 `{value_text}` は多すぎます。"),
        ErrorKind::TooFewValues | ErrorKind::WrongNumberOfValues => format!("{arg} の値の数が合いません。"),
        _ => "引数を解釈できません。".to_owned(),
    });
    for kind in [ContextKind::SuggestedArg, ContextKind::SuggestedSubcommand, ContextKind::SuggestedValue] {
        let suggestion = get(kind);
        if !suggestion.is_empty() {
            out.push_str(&format!("\n  ヒント: `{suggestion}` のことですか?"));
        }
    }
    let usage = get(ContextKind::Usage);
    if let Some(usage) = usage.strip_prefix("Usage: ") {
        out.push_str(&format!("\n\n使い方: {usage}"));
    }
    out.push_str("\n\n詳しくは --help を付けて実行してください。\n");
    out
}

fn value(v: &ContextValue) -> String {
    match v {
        ContextValue::String(s) => s.clone(),
        ContextValue::Strings(v) => v.join(", "),
        ContextValue::StyledStr(s) => plain(s),
        ContextValue::StyledStrs(v) => v.iter().map(plain).collect::<Vec<_>>().join(", "),
        ContextValue::Number(n) => n.to_string(),
        ContextValue::Bool(b) => b.to_string(),
        _ => String::new(),
    }
}

fn plain(s: &StyledStr) -> String {
    s.to_string()
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;
    use crate::cli::Cli;

    /// Every visible command and option has its text in English (the doc comment) and in
    /// Japanese (the catalogue), and the catalogue names nothing that is gone.
    #[test]
    fn every_command_and_option_speaks_both_languages() {
        let text = catalogue();
        let mut keys = Vec::new();
        let mut missing = Vec::new();
        fn visit(cmd: &Command, path: &str, keys: &mut Vec<String>, missing: &mut Vec<String>) {
            if cmd.get_about().is_none() {
                missing.push(format!("en: {path}"));
            }
            keys.push(path.to_owned());
            for arg in cmd.get_arguments().filter(|a| shown(a)) {
                let key = arg_key(path, arg);
                if arg.get_help().is_none() {
                    missing.push(format!("en: {key}"));
                }
                keys.push(key);
            }
            for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
                visit(sub, &format!("{path} {}", sub.get_name()), keys, missing);
            }
        }
        let cmd = Cli::command();
        visit(&cmd, "sekisho", &mut keys, &mut missing);
        for key in &keys {
            if !text.contains_key(key.as_str()) {
                missing.push(format!("ja: {key}"));
            }
        }
        for key in text.keys() {
            if !keys.iter().any(|k| k == key) {
                missing.push(format!("gone: {key}"));
            }
        }
        assert!(missing.is_empty(), "help texts missing or stale:\n{}", missing.join("\n"));
    }
}
