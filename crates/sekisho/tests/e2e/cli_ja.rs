//! The command line in Japanese (`--lang ja`): every command's `--help`, argument errors and
//! the errors of a real relay's API are free of English outside names, ids and what people type.

use tokio::process::Command;

use crate::harness::{BIN, Relay};
use crate::latin::english_words;

/// Runs `sekisho ARGS` with the environment's language unset; (status ok, stdout, stderr).
async fn run(args: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
    let mut cmd = Command::new(BIN);
    cmd.args(args).env_remove("LANG").env_remove("LC_ALL").env_remove("LC_MESSAGES").env_remove("SEKISHO_LANG");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().await.unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Help text without what is typed: the usage line, the names that start list entries
/// (subcommands, options and arguments) and the notes of values (`[値: a, b]`, `[既定: x]`,
/// `[環境変数: X]`).
fn prose_of_help(help: &str) -> String {
    let mut prose: String = help
        .lines()
        .filter(|l| !l.starts_with("使い方:"))
        .map(|l| if l.starts_with("  ") { l.trim_start().split_once("  ").map_or("", |(_, rest)| rest) } else { l })
        .collect::<Vec<_>>()
        .join("\n");
    for note in ["[値: ", "[既定: ", "[環境変数: "] {
        while let Some(start) = prose.find(note) {
            let end = prose[start..].find(']').map_or(prose.len(), |e| start + e + 1);
            prose.replace_range(start..end, "");
        }
    }
    prose
}

/// The subcommands a help text lists.
fn subcommands(help: &str) -> Vec<String> {
    let Some((_, rest)) = help.split_once("コマンド:\n") else { return Vec::new() };
    rest.lines()
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn every_help_is_japanese() {
    let mut queue = vec![Vec::<String>::new()];
    let mut seen = 0;
    let mut leaks = Vec::new();
    while let Some(path) = queue.pop() {
        let mut args: Vec<&str> = vec!["--lang", "ja"];
        args.extend(path.iter().map(String::as_str));
        args.push("--help");
        let (ok, help, err) = run(&args, &[]).await;
        assert!(ok, "{path:?}: {err}");
        seen += 1;
        assert!(help.contains("使い方:") && help.contains("オプション:"), "{path:?}:\n{help}");
        let words = english_words(&prose_of_help(&help), &[]);
        if !words.is_empty() {
            leaks.push(format!("{}: {words:?}", path.join(" ")));
        }
        for sub in subcommands(&help) {
            let mut next = path.clone();
            next.push(sub);
            queue.push(next);
        }
    }
    assert!(seen > 60, "the walk reached every command: {seen}");
    assert!(leaks.is_empty(), "English in Japanese help:\n{}", leaks.join("\n"));

    // LANG=ja_JP.UTF-8 chooses Japanese too, and English stays English.
    let (_, help, _) = run(&["ctl", "agent", "revoke", "--help"], &[("LANG", "ja_JP.UTF-8")]).await;
    assert!(help.contains("エージェント (ID か名前) を失効させます"), "{help}");
    let (_, help, _) = run(&["ctl", "agent", "revoke", "--help"], &[]).await;
    assert!(help.contains("Revoke an agent") && help.contains("Usage:"), "{help}");
}

/// Environment variables of a command.
type Env<'a> = [(&'a str, &'a str)];

#[tokio::test]
async fn errors_are_japanese() {
    let relay = Relay::start().await;
    let ctl = |args: &[&str]| {
        let mut v = vec!["--lang", "ja", "ctl"];
        v.extend_from_slice(args);
        v.into_iter().map(str::to_owned).collect::<Vec<_>>()
    };
    let with_relay = [
        ("SEKISHO_URL", relay.api_url.as_str()),
        ("SEKISHO_CA", relay.ca_file.as_str()),
        ("SEKISHO_API_KEY", relay.admin_key.as_str()),
    ];
    let no_key = [with_relay[0], with_relay[1]];
    // (arguments, environment, a phrase the error must say)
    let cases: Vec<(Vec<String>, &Env, &str)> = vec![
        (ctl(&["agent", "list", "--bogus"]), &[], "引数 `--bogus` はこのコマンドにはありません"),
        (ctl(&["group", "add", "x", "--role", "boss"]), &[], "使える値: `admin`、`operator`"),
        (ctl(&["route", "create"]), &[], "必要な引数がありません"),
        (ctl(&["nothing"]), &[], "サブコマンド `nothing` はありません"),
        (ctl(&["policy", "test", "--service", "a", "--user", "b", "--ip", "not-an-ip"]), &[], "正しくありません"),
        (ctl(&["agent", "revok", "x"]), &[], "ヒント"),
        (ctl(&["agent", "list"]), &[], "API キーがありません"),
        (
            ctl(&["--url", "http://127.0.0.1:1", "--api-key", "k", "--ca", "/nonexistent.pem", "agent", "list"]),
            &[],
            "HTTPS のみ",
        ),
        (ctl(&["--api-key", "k", "--ca", "/nonexistent.pem", "agent", "list"]), &[], "ファイルがありません"),
        (ctl(&["service", "rm", "nosuch"]), &with_relay, "見つかりません"),
        (ctl(&["group", "add", "bad name!", "--role", "admin"]), &with_relay, "名前は"),
        (ctl(&["policy", "set", "nosuch", "--require", "(("]), &with_relay, "見つかりません"),
        (ctl(&["apikey", "create", "k", "--scope", "agents:read", "--ttl", "1y"]), &with_relay, "期間"),
        (ctl(&["--api-key", "sk_wrong", "agent", "list"]), &no_key, "認証されていません"),
    ];
    let mut leaks = Vec::new();
    for (args, env, phrase) in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (ok, _, err) = run(&args, env).await;
        assert!(!ok, "{args:?} failed");
        assert!(err.contains("エラー") && err.contains(phrase), "{args:?}: {err}");
        let prose: String = err.lines().filter(|l| !l.starts_with("使い方:")).collect::<Vec<_>>().join("\n");
        let words = english_words(&prose, &[]);
        if !words.is_empty() {
            leaks.push(format!("{}: {words:?}\n{err}", args.join(" ")));
        }
    }
    assert!(leaks.is_empty(), "English in Japanese errors:\n{}", leaks.join("\n"));
}
