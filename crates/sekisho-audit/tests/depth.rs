//! Recursive input at depth 10,000 for the parsers of recordings that read what a session sent:
//! asciicast lines (JSON, bounded by serde_json's recursion limit of 128), and the SFTP and
//! command trackers, which do not recurse at all. Each runs on a 256 KiB stack, an eighth of a
//! worker thread's, so a recursion that a bound does not stop would abort this test.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "a failing test should panic with the cause")]

use sekisho_audit::recording::cast;
use sekisho_audit::recording::commands::CommandExtractor;
use sekisho_audit::recording::files::SftpTracker;

fn on_small_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::Builder::new().stack_size(256 * 1024).spawn(f).unwrap().join().unwrap()
}

const HEADER: &str = r#"{"version": 2, "width": 80, "height": 24}"#;

#[test]
fn asciicast_lines_nested_ten_thousand_deep_are_errors() {
    for line in [
        format!("{}1{}", "[".repeat(10_000), "]".repeat(10_000)),
        format!("[0.5, \"o\", {}\"x\"{}]", "[".repeat(10_000), "]".repeat(10_000)),
    ] {
        let text = format!("{HEADER}\n{line}\n");
        let err = on_small_stack(move || cast::parse(&text).map(|_| ()).unwrap_err().to_string());
        assert!(err.contains("line 2"), "{err}");
    }
    let header = format!("{{\"version\": 2, \"env\": {}1{}}}\n", "{\"a\":".repeat(10_000), "}".repeat(10_000));
    let err = on_small_stack(move || cast::parse(&header).map(|_| ()).unwrap_err().to_string());
    assert!(err.contains("line 1") && err.contains("recursion limit"), "{err}");
}

#[test]
fn sftp_and_command_trackers_take_ten_thousand_nested_looking_packets() {
    on_small_stack(|| {
        // SFTP packets whose lengths claim to hold each other: length prefixes 10,000 deep.
        let mut bytes = Vec::new();
        for i in 0..10_000u32 {
            bytes.extend_from_slice(&(40_000 - i * 4).to_be_bytes());
        }
        let mut sftp = SftpTracker::new();
        sftp.client(0.0, &bytes);
        sftp.server(0.0, &bytes);
        sftp.finish(1.0);
        let _ = sftp.take();
        // A command line of 10,000 nested subshells and escapes.
        let line = format!("{}echo x{}\r", "$(".repeat(10_000), ")".repeat(10_000));
        let mut commands = CommandExtractor::new();
        let _ = commands.feed(line.as_bytes());
        let _ = commands.feed(&"\x1b[".repeat(10_000).into_bytes());
    });
}
