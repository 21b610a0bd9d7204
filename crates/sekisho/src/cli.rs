//! Command-line grammar.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

mod bastion;
mod ctl;
mod ja;
mod relay;
pub(crate) use bastion::{RecordingCmd, SshKeyCmd};
pub(crate) use ctl::*;
pub(crate) use relay::RelayArgs;

/// `--lang`: `ja` or `en`, with a region or encoding (`ja_JP.UTF-8`, `en-US`); anything else is
/// refused rather than silently shown in English.
fn parse_lang(s: &str) -> Result<String, String> {
    let base = s.split(['_', '-', '.']).next().unwrap_or("").to_ascii_lowercase();
    match base.as_str() {
        "ja" | "en" => Ok(base),
        _ => Err(format!("unknown language `{s}`: use ja or en (言語は ja か en を指定してください)")),
    }
}

/// Parses the command line, with help and errors in `lang` (see `ja.rs`).
pub(crate) fn parse(lang: crate::i18n::Lang) -> Cli {
    use clap::{CommandFactory, FromArgMatches};
    let cmd = Cli::command();
    let mut cmd = match lang {
        crate::i18n::Lang::Ja => ja::localise(cmd),
        crate::i18n::Lang::En => cmd,
    };
    let parsed = cmd.try_get_matches_from_mut(std::env::args_os()).and_then(|m| Cli::from_arg_matches(&m));
    match parsed {
        Ok(cli) => cli,
        Err(e) if lang == crate::i18n::Lang::Ja && e.use_stderr() => {
            eprint!("{}", ja::error(&e));
            std::process::exit(2);
        }
        Err(e) => e.format(&mut cmd).exit(),
    }
}

#[derive(Debug, Parser)]
#[command(name = "sekisho", version, about = "Sekisho (関所): zero-trust access without open ports or VPNs")]
pub(crate) struct Cli {
    /// Language of messages: ja or en (default: from LANG).
    #[arg(long, global = true, env = "SEKISHO_LANG", value_parser = parse_lang)]
    pub lang: Option<String>,
    /// Log level or filter for stderr logs (e.g. info, debug, sekisho_relay=debug).
    #[arg(long, global = true)]
    pub log: Option<String>,
    /// Log line format on stderr: text (for people) or json (one object per line, for a log
    /// collector: time, level, message and fields).
    #[arg(long, global = true, env = "SEKISHO_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run a relay: the TLS port agents dial out to, and the admin API.
    Relay(RelayArgs),
    /// Run an agent (front, back or both roles, as enrolled).
    Agent(AgentArgs),
    /// Administer a relay through its admin API.
    Ctl(CtlArgs),
    /// Start a relay, two agents and a demo web page, and print the URL to open.
    Quickstart(QuickstartArgs),
    /// Work with the tamper-evident audit log directly (offline, from the data directory).
    #[command(subcommand)]
    Audit(AuditCmd),
    /// Back up a relay (its database and key files) into one encrypted file; the relay may run.
    Backup(BackupArgs),
    /// Restore a backup into a new data directory (and, for PostgreSQL, an empty database).
    Restore(RestoreArgs),
}

#[derive(Debug, Args)]
pub(crate) struct BackupArgs {
    /// The relay's data directory.
    #[arg(long, env = "SEKISHO_DATA_DIR", default_value = "./sekisho-data")]
    pub data_dir: PathBuf,
    /// The relay's database, if not the data directory's SQLite file (postgres://… is copied
    /// with pg_dump).
    #[arg(long, env = "SEKISHO_DATABASE_URL")]
    pub database: Option<String>,
    /// Where to write the backup.
    #[arg(short, long)]
    pub output: PathBuf,
    /// Encrypt to a passphrase read as one line from stdin (at least 8 characters).
    #[arg(long, conflicts_with = "recipients")]
    pub passphrase_stdin: bool,
    /// Encrypt to an age X25519 recipient (`age1…`, from `age-keygen`); repeatable.
    #[arg(long = "recipient")]
    pub recipients: Vec<String>,
}

#[derive(Debug, Args)]
pub(crate) struct RestoreArgs {
    /// The backup file.
    #[arg(short, long)]
    pub input: PathBuf,
    /// The data directory to create (it must not exist, or be empty).
    #[arg(long)]
    pub data_dir: PathBuf,
    /// An empty PostgreSQL database to load a PostgreSQL backup into.
    #[arg(long)]
    pub database: Option<String>,
    /// The backup's passphrase, read as one line from stdin.
    #[arg(long, conflicts_with = "identity")]
    pub passphrase_stdin: bool,
    /// An age identity file (`age-keygen` output) for a backup encrypted to a recipient.
    #[arg(long)]
    pub identity: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum AuditCmd {
    /// Recompute every tenant's hash chain and check the signed checkpoints; exit 1 on the first
    /// altered, inserted, reordered or deleted event.
    Verify {
        /// The relay's data directory (its database and `audit.pub`).
        #[arg(long, env = "SEKISHO_DATA_DIR", default_value = "./sekisho-data")]
        data_dir: PathBuf,
        /// The database, if not the data directory's SQLite file.
        #[arg(long, env = "SEKISHO_DATABASE_URL")]
        database: Option<String>,
        /// Trusted checkpoint key files (hex public keys); default: DATA_DIR/audit.pub.
        #[arg(long = "key")]
        keys: Vec<PathBuf>,
        /// Only this tenant (id).
        #[arg(long)]
        tenant: Option<String>,
        /// The audit anchor file (a copy shipped elsewhere is best); default:
        /// DATA_DIR/audit-anchors.jsonl. The chain is checked against its newest signed entries.
        #[arg(long)]
        anchors: Option<PathBuf>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
        /// Check an evidence archive (from `ctl recording export`) instead of the database:
        /// every file against the manifest, every event against the chain, the checkpoints
        /// against the trusted key (--key, else DATA_DIR/audit.pub if present, else only the
        /// key the archive names, which is reported), and each recording against its event.
        #[arg(long, value_name = "FILE")]
        archive: Option<PathBuf>,
        /// The archive's passphrase, read as one line from stdin.
        #[arg(long, requires = "archive", conflicts_with = "identity")]
        passphrase_stdin: bool,
        /// An age identity file (`age-keygen` output) for an archive encrypted to a recipient.
        #[arg(long, requires = "archive")]
        identity: Option<PathBuf>,
    },
}

#[derive(Debug, Args)]
pub(crate) struct AgentArgs {
    /// Relay address, host:port; the relays of a cluster separated by commas (the first
    /// reachable one is used, the others take over when it goes). Stored at enrollment;
    /// overrides the stored one when given.
    #[arg(long, env = "SEKISHO_RELAY", default_value = "")]
    pub relay: String,
    /// One-time enrollment token (only for the first start).
    #[arg(long, env = "SEKISHO_TOKEN")]
    pub token: Option<String>,
    /// Directory for the agent's keys and enrollment.
    #[arg(long, env = "SEKISHO_STATE_DIR", default_value = "./sekisho-agent")]
    pub state_dir: PathBuf,
    /// HTTP CONNECT proxy to reach the relay through (default: HTTPS_PROXY).
    #[arg(long)]
    pub proxy: Option<String>,
    /// Print status as JSON lines on stdout.
    #[arg(long)]
    pub json_events: bool,
}

#[derive(Debug, Args)]
pub(crate) struct QuickstartArgs {
    /// Keep state here instead of a temporary directory.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Local port for the demo route (falls back to a free port if taken).
    #[arg(long, default_value_t = 18080)]
    pub port: u16,
    /// Print status as JSON lines on stdout.
    #[arg(long)]
    pub json_events: bool,
}

#[cfg(test)]
mod lang_tests {
    use clap::Parser;

    use super::{Cli, parse_lang};

    #[test]
    fn lang_is_ja_or_en_and_anything_else_is_refused() {
        assert_eq!(parse_lang("ja").as_deref(), Ok("ja"));
        assert_eq!(parse_lang("ja_JP.UTF-8").as_deref(), Ok("ja"));
        assert_eq!(parse_lang("EN-us").as_deref(), Ok("en"));
        for bad in ["fr", "", "japanese", "c"] {
            let err = parse_lang(bad).unwrap_err();
            assert!(err.contains("use ja or en") && err.contains("言語は"), "{bad}: {err}");
        }
        let refused = Cli::try_parse_from(["sekisho", "--lang", "fr", "ctl", "agent", "list"]).unwrap_err();
        assert!(refused.to_string().contains("unknown language `fr`"), "{refused}");
    }
}
