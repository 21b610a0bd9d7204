//! Subcommands of the SSH bastion: users' SSH keys and session recordings.

use std::path::PathBuf;

use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub(crate) enum SshKeyCmd {
    /// Register a public key (`~/.ssh/id_ed25519.pub`) for a user.
    Add {
        /// The user's name.
        user: String,
        /// The public key's file.
        #[arg(long)]
        key_file: PathBuf,
        /// A label; default: the key's comment.
        #[arg(long, default_value = "")]
        name: String,
    },
    /// List a user's SSH public keys.
    List {
        /// The user's name.
        user: String,
    },
    /// Remove a key by id or fingerprint.
    Rm {
        /// The user's name.
        user: String,
        /// The key's id or fingerprint.
        key: String,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum RecordingCmd {
    /// Search recordings, newest first.
    List {
        /// The user's name.
        #[arg(long)]
        user: Option<String>,
        /// The target service.
        #[arg(long)]
        target: Option<String>,
        /// The source IP address.
        #[arg(long)]
        source_ip: Option<String>,
        /// ssh, telnet, or a kind: shell, exec, sftp, scp.
        #[arg(long)]
        protocol: Option<String>,
        /// Text of a command typed or run (e.g. "systemctl restart").
        #[arg(long)]
        command: Option<String>,
        /// Start of the period (RFC 3339 or ms since the epoch).
        #[arg(long)]
        since: Option<String>,
        /// End of the period (RFC 3339 or ms since the epoch).
        #[arg(long)]
        until: Option<String>,
        /// Most recordings to return.
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// One recording: its commands and file operations.
    Show {
        /// The recording's id.
        id: String,
    },
    /// Replay a recording in this terminal (or print its asciicast with --raw).
    Play {
        /// The recording's id.
        id: String,
        /// Playback speed factor.
        #[arg(long, default_value_t = 1.0)]
        speed: f64,
        /// Longest pause between events, in seconds.
        #[arg(long, default_value_t = 2.0)]
        max_wait: f64,
        /// Print the asciicast v2 file instead of playing it.
        #[arg(long)]
        raw: bool,
    },
    /// Watch a session in progress.
    Watch {
        /// The recording's id.
        id: String,
        /// Print the asciicast lines instead of the terminal output.
        #[arg(long)]
        raw: bool,
    },
    /// Terminate a session in progress.
    Kill {
        /// The recording's id.
        id: String,
    },
    /// Export recordings and the audit events that vouch for them as one encrypted archive
    /// (age format); check it with `sekisho audit verify --archive FILE`.
    Export {
        /// Recording ids.
        #[arg(required = true)]
        ids: Vec<String>,
        /// Where to write the archive.
        #[arg(short, long)]
        output: std::path::PathBuf,
        /// Encrypt to a passphrase read as one line from stdin (at least 8 characters).
        #[arg(long, conflicts_with = "recipients")]
        passphrase_stdin: bool,
        /// Encrypt to an age X25519 recipient (`age1…`, from `age-keygen`); repeatable.
        #[arg(long = "recipient", required_unless_present = "passphrase_stdin")]
        recipients: Vec<String>,
    },
}
