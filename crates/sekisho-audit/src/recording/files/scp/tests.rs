#![allow(clippy::unwrap_used, reason = "tests")]

use proptest::prelude::*;
use sha2::{Digest, Sha256};

use super::*;

/// Who sent a turn.
#[derive(Clone, Copy)]
enum By {
    Client,
    Server,
}

fn sha(data: &[u8]) -> Option<String> {
    Some(hex::encode(Sha256::digest(data)))
}

fn op(t: f64, op: &str, path: &str) -> FileOp {
    FileOp::new(t, op, path)
}

fn run(command: &str, turns: &[(By, &[u8])], split: impl Fn(&[u8]) -> Vec<&[u8]>) -> Vec<FileOp> {
    let mut scp = ScpTracker::new(command).unwrap();
    for (i, (by, bytes)) in turns.iter().enumerate() {
        for piece in split(bytes) {
            match by {
                By::Client => scp.client(i as f64, piece),
                By::Server => scp.server(i as f64, piece),
            }
        }
    }
    scp.finish(99.0);
    scp.take()
}

fn whole(b: &[u8]) -> Vec<&[u8]> {
    vec![b]
}

/// `scp -r site host:/srv` with one refusal at the end.
const UPLOAD: &[(By, &[u8])] = &[
    (By::Server, b"\0"),
    (By::Client, b"D0755 0 site\n"),
    (By::Server, b"\0"),
    (By::Client, b"T1700000000 0 1700000000 0\n"),
    (By::Server, b"\0"),
    (By::Client, b"C0644 11 hello world.txt\n"),
    (By::Server, b"\0"),
    (By::Client, b"hello\nworld\0"),
    (By::Server, b"\0"),
    (By::Client, b"D0700 0 sub\n"),
    (By::Server, b"\0"),
    (By::Client, b"C0600 0 empty\n"),
    (By::Server, b"\0"),
    (By::Client, b"\0"),
    (By::Server, b"\0"),
    (By::Client, b"E\n"),
    (By::Server, b"\0"),
    (By::Client, b"E\n"),
    (By::Server, b"\0"),
    (By::Client, b"C0644 2 top\n"),
    (By::Server, b"\x01scp: /srv/top: Permission denied\n"),
];

fn upload_ops() -> Vec<FileOp> {
    vec![
        FileOp { ok: Some(true), ..op(2.0, "mkdir", "/srv/site") },
        FileOp {
            size: Some(11),
            sha256: sha(b"hello\nworld"),
            ok: Some(true),
            ..op(8.0, "write", "/srv/site/hello world.txt")
        },
        FileOp { ok: Some(true), ..op(10.0, "mkdir", "/srv/site/sub") },
        FileOp { size: Some(0), sha256: sha(b""), ok: Some(true), ..op(14.0, "write", "/srv/site/sub/empty") },
        op(20.0, "error", "scp: /srv/top: Permission denied"),
        FileOp { ok: Some(false), ..op(20.0, "write", "/srv/top") },
    ]
}

#[test]
fn recursive_upload() {
    assert_eq!(run("scp -r -p -d -t -- /srv", UPLOAD, whole), upload_ops());
}

#[test]
fn upload_split_anywhere() {
    let expected = upload_ops();
    let longest = UPLOAD.iter().map(|(_, b)| b.len()).max().unwrap();
    for at in 0..=longest {
        let ops = run("scp -r -d -t /srv", UPLOAD, |b| {
            let (a, c) = b.split_at(at.min(b.len()));
            vec![a, c]
        });
        assert_eq!(ops, expected, "split at {at}");
    }
    assert_eq!(run("scp -r -d -t /srv", UPLOAD, |b| b.chunks(1).collect()), expected);
}

#[test]
fn download_with_errors() {
    let turns: &[(By, &[u8])] = &[
        (By::Client, b"\0"),
        (By::Server, b"C0644 10 hosts\n"),
        (By::Client, b"\0"),
        (By::Server, b"127.0.0.1\n\0"),
        (By::Client, b"\0"),
        (By::Server, b"\x01scp: /etc/shadow: Permission denied\n"),
        (By::Server, b"C0644 5 group\n"),
        (By::Client, b"\0"),
        (By::Server, b"root:\x01scp: /etc/group: Input/output error\n"),
        (By::Client, b"\0"),
        (By::Server, b"C0644 4 passwd\n"),
        (By::Client, b"\0"),
        (By::Server, b"ro"),
    ];
    assert_eq!(
        run("/usr/bin/scp -v -f /etc/hosts /etc/shadow /etc/group /etc/passwd", turns, whole),
        [
            FileOp { size: Some(10), sha256: sha(b"127.0.0.1\n"), ok: Some(true), ..op(4.0, "read", "/etc/hosts") },
            op(5.0, "error", "scp: /etc/shadow: Permission denied"),
            op(8.0, "error", "scp: /etc/group: Input/output error"),
            FileOp { size: Some(5), sha256: sha(b"root:"), ok: Some(false), ..op(9.0, "read", "/etc/group") },
            FileOp { size: Some(2), ok: Some(false), ..op(99.0, "read", "/etc/passwd") },
        ]
    );
}

#[test]
fn download_directories_and_globs() {
    let turns: &[(By, &[u8])] = &[
        (By::Client, b"\0"),
        (By::Server, b"D0755 0 nginx\n"),
        (By::Client, b"\0"),
        (By::Server, b"C0644 1 a.conf\n"),
        (By::Client, b"\0"),
        (By::Server, b"a\0"),
        (By::Client, b"\0"),
        (By::Server, b"E\n"),
        (By::Client, b"\0"),
    ];
    let read = |t, path: &str| FileOp { size: Some(1), sha256: sha(b"a"), ok: Some(true), ..op(t, "read", path) };
    assert_eq!(run("scp -r -f /etc/nginx/", turns, whole), [read(6.0, "/etc/nginx/a.conf")]);
    let glob: &[(By, &[u8])] = &[(By::Client, b"\0"), (By::Server, b"C0644 1 syslog.log\na\0"), (By::Client, b"\0\0")];
    assert_eq!(run("scp -f '/var/log/*.log'", glob, whole), [read(2.0, "/var/log/syslog.log")]);
    assert_eq!(run("scp -f '*.log'", glob, whole), [read(2.0, "syslog.log")]);
}

#[test]
fn upload_targets() {
    let one = |target: &str, name: &str| {
        let c = format!("C0644 1 {name}\n");
        let turns = [(By::Server, &b"\0"[..]), (By::Client, c.as_bytes()), (By::Server, b"\0"), (By::Client, b"x\0")];
        let command = format!("scp -t {target}");
        run(&command, &turns, whole).remove(0).path
    };
    assert_eq!(one("/tmp/x", "x"), "/tmp/x");
    assert_eq!(one("/tmp/x", "y"), "/tmp/x/y");
    assert_eq!(one("/tmp/x/", "x"), "/tmp/x/x");
    assert_eq!(one(".", "f"), "./f");
    assert_eq!(one("'/home/a b/'", "f"), "/home/a b/f");
    assert_eq!(one("-d /", "f"), "/f");
}

#[test]
fn unanswered_at_the_end() {
    let turns: &[(By, &[u8])] = &[(By::Server, b"\0"), (By::Client, b"D0755 0 d\nC0644 1 f\n")];
    assert_eq!(run("scp -r -t /x", turns, whole), [op(99.0, "mkdir", "/x/d"), op(99.0, "write", "/x/d/f")]);
    let turns: &[(By, &[u8])] =
        &[(By::Server, b"\0"), (By::Client, b"C0644 1 f\n"), (By::Server, b"\0"), (By::Client, b"z\0")];
    let ops = run("scp -t /x", turns, whole);
    assert_eq!(ops, [FileOp { size: Some(1), sha256: sha(b"z"), ..op(99.0, "write", "/x/f") }]);
}

#[test]
fn malformed_streams_stop() {
    let ops = run("scp -t /x", &[(By::Server, b"\x07"), (By::Client, b"C0644 1 f\n")], whole);
    assert_eq!(
        ops,
        [op(0.0, "malformed", "scp receiving side: answer byte 0x07 is not 0, 1 or 2; not followed further")]
    );
    let ops = run("scp -t /x", &[(By::Server, b"\0"), (By::Client, b"X123\n")], whole);
    assert_eq!(ops[0].path, "scp sending side: unexpected control record `X123`; not followed further");
    for bad in [&b"C0644 1\n"[..], b"C0648 1 f\n", b"C0644 -1 f\n", b"C0644 1 \n", b"E1\n", b"Tx\n", b"\n"] {
        let ops = run("scp -t /x", &[(By::Server, b"\0"), (By::Client, bad)], whole);
        assert_eq!(ops.len(), 1, "{bad:?}");
        assert_eq!(ops[0].op, "malformed", "{bad:?}");
    }
    let ops = run("scp -t /x", &[(By::Server, b"\0"), (By::Client, &[b'C'; MAX_LINE + 1])], whole);
    assert!(ops[0].path.contains("line longer than 4096 bytes"));
    let ops = run(
        "scp -t /x",
        &[(By::Server, b"\0"), (By::Client, b"C0644 1 f\n"), (By::Server, b"\0"), (By::Client, b"a5")],
        whole,
    );
    assert!(ops[0].path.contains("status byte 0x35"), "{ops:?}");
    let deep = "D0755 0 d\n".repeat(MAX_DEPTH + 1);
    let ops = run("scp -r -t /x", &[(By::Client, deep.as_bytes())], whole);
    assert!(ops.iter().any(|o| o.path.contains("nested deeper")));
}

#[test]
fn command_lines() {
    let mode = |c: &str| ScpTracker::new(c).map(|s| s.mode);
    assert!(matches!(mode("scp -t /tmp"), Some(Mode::Upload { target, target_is_dir: None }) if target == "/tmp"));
    assert!(matches!(mode("scp -rt ."), Some(Mode::Upload { target, .. }) if target == "."));
    assert!(
        matches!(mode("scp -v -d -t -- -odd"), Some(Mode::Upload { target, target_is_dir: Some(true) }) if target == "-odd")
    );
    assert!(matches!(mode("scp -t \"/a \\\"b\\\"\""), Some(Mode::Upload { target, .. }) if target == "/a \"b\""));
    assert!(matches!(mode("scp -t /a\\ b"), Some(Mode::Upload { target, .. }) if target == "/a b"));
    assert!(
        matches!(mode("/usr/bin/scp -p -f /etc/passwd '/etc/gr'oup"), Some(Mode::Download { sources }) if sources == ["/etc/passwd", "/etc/group"])
    );
    for bad in [
        "",
        "scp",
        "scp /tmp",
        "scp -t",
        "scp -t a b",
        "scp -t -f x",
        "scp -x -t /tmp",
        "sftp -t /x",
        "scp -t 'open",
        "scp -f",
    ] {
        assert!(mode(bad).is_none(), "{bad}");
    }
}

/// `scp -O up.bin host:/srv/x`: the file lands as `/srv/x` when `x` is not a directory there, as
/// `/srv/x/up.bin` when it is; the tracker says what the server's disk says.
#[test]
fn a_single_file_lands_where_the_target_kind_says() {
    let turns: &[(By, &[u8])] = &[
        (By::Server, b"\0"),
        (By::Client, b"C0644 2 up.bin\n"),
        (By::Server, b"\0"),
        (By::Client, b"hi\0"),
        (By::Server, b"\0"),
    ];
    for (is_dir, want) in [(Some(false), "/srv/x"), (Some(true), "/srv/x/up.bin"), (None, "/srv/x/up.bin")] {
        let mut scp = ScpTracker::new("scp -t /srv/x").unwrap();
        assert_eq!(scp.unknown_target(), Some("/srv/x"));
        if let Some(d) = is_dir {
            scp.set_target_is_dir(d);
            assert_eq!(scp.unknown_target(), None);
        }
        for (by, bytes) in turns {
            match by {
                By::Client => scp.client(1.0, bytes),
                By::Server => scp.server(1.0, bytes),
            }
        }
        let ops = scp.take();
        assert_eq!(
            ops.iter().map(|o| o.path.as_str()).collect::<Vec<_>>(),
            [want],
            "target is a directory: {is_dir:?}"
        );
    }
    // `-d` and a trailing `/` say it already; a download has no target to ask about.
    assert_eq!(ScpTracker::new("scp -d -t /srv/x").unwrap().unknown_target(), None);
    assert_eq!(ScpTracker::new("scp -t /srv/x/").unwrap().unknown_target(), None);
    assert_eq!(ScpTracker::new("scp -f /srv/x").unwrap().unknown_target(), None);
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(
        command in prop::sample::select(vec!["scp -t /tmp", "scp -r -f /etc", "scp -r -d -t /"]),
        chunks in proptest::collection::vec((any::<bool>(), proptest::collection::vec(any::<u8>(), 0..48)), 0..16),
    ) {
        let mut scp = ScpTracker::new(command).unwrap();
        for (client, bytes) in &chunks {
            if *client { scp.client(0.0, bytes) } else { scp.server(0.0, bytes) }
        }
        scp.finish(1.0);
        scp.take();
    }

    #[test]
    fn plausible_streams_never_panic(
        records in proptest::collection::vec(prop::sample::select(vec![
            &b"\0"[..], b"\x01no\n", b"C0644 3 f\n", b"D0755 0 d\n", b"E\n", b"T1 0 1 0\n", b"abc", b"\x02x",
        ]), 0..40),
        sides in proptest::collection::vec(any::<bool>(), 40),
    ) {
        let mut scp = ScpTracker::new("scp -r -t /x").unwrap();
        for (record, client) in records.iter().zip(sides) {
            if client { scp.client(0.0, record) } else { scp.server(0.0, record) }
        }
        scp.finish(1.0);
        scp.take();
    }

    #[test]
    fn command_lines_never_panic(line in "\\PC{0,60}") {
        let _ = ScpTracker::new(&line);
    }
}
