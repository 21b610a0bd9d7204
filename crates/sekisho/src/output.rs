//! Logging to stderr, and status lines on stdout: human text, or one JSON object per line with
//! `--json-events` (what the test harness and scripts read as a readiness signal).

use serde::Serialize;

pub(crate) fn init_tracing(level: Option<&str>, format: crate::cli::LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(level.unwrap_or("info")))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colour only on a terminal, and never with NO_COLOR set (no escape codes in log files).
    use std::io::IsTerminal;
    let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let fmt = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_target(false);
    match format {
        crate::cli::LogFormat::Text => fmt.with_ansi(colour).init(),
        // One JSON object per line: `timestamp` (RFC 3339, UTC), `level`, `fields.message` and
        // the event's fields, for journald/rsyslog/Loki and the like.
        crate::cli::LogFormat::Json => fmt.json().with_ansi(false).init(),
    }
}

/// Prints a machine-readable event line.
pub(crate) fn json_event<T: Serialize>(event: &T) {
    if let Ok(line) = serde_json::to_string(event) {
        println!("{line}");
    }
}

/// Waits for Ctrl-C or SIGTERM.
pub(crate) async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
