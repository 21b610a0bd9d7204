#![allow(clippy::unwrap_used, reason = "tests")]

use proptest::prelude::*;
use sha2::{Digest, Sha256};

use super::*;

/// A packet field.
enum F<'a> {
    U32(u32),
    U64(u64),
    S(&'a [u8]),
}

fn packet(kind: u8, fields: &[F<'_>]) -> Vec<u8> {
    let mut body = vec![kind];
    for f in fields {
        match f {
            F::U32(v) => body.extend(v.to_be_bytes()),
            F::U64(v) => body.extend(v.to_be_bytes()),
            F::S(s) => {
                body.extend((s.len() as u32).to_be_bytes());
                body.extend(*s);
            }
        }
    }
    [(body.len() as u32).to_be_bytes().to_vec(), body].concat()
}

fn status(id: u32, code: u32) -> Vec<u8> {
    packet(STATUS, &[F::U32(id), F::U32(code), F::S(b"msg"), F::S(b"")])
}

fn sha(data: &[u8]) -> Option<String> {
    Some(hex::encode(Sha256::digest(data)))
}

fn op(op: &str, path: &str) -> FileOp {
    FileOp::new(0.0, op, path)
}

const RW: u32 = 0x02 | 0x08 | 0x10;

/// A short session as alternating client and server turns.
fn session() -> Vec<(Dir, Vec<u8>)> {
    use F::*;
    let turns = [
        (Dir::Client, vec![packet(1, &[U32(3)])]),
        (Dir::Server, vec![packet(VERSION, &[U32(3), S(b"posix-rename@openssh.com"), S(b"1")])]),
        (Dir::Client, vec![packet(OPEN, &[U32(1), S(b"/home/alice/up.txt"), U32(RW), U32(0)])]),
        (Dir::Server, vec![packet(HANDLE, &[U32(1), S(b"h1")])]),
        (
            Dir::Client,
            vec![
                packet(WRITE, &[U32(2), S(b"h1"), U64(0), S(b"hello ")]),
                packet(WRITE, &[U32(3), S(b"h1"), U64(6), S(b"world")]),
            ],
        ),
        (Dir::Server, vec![status(2, 0), status(3, 0)]),
        (
            Dir::Client,
            vec![packet(CLOSE, &[U32(4), S(b"h1")]), packet(OPEN, &[U32(5), S(b"/etc/hostname"), U32(1), U32(0)])],
        ),
        (Dir::Server, vec![status(4, 0), packet(HANDLE, &[U32(5), S(b"h1")])]),
        (
            Dir::Client,
            vec![
                packet(READ, &[U32(6), S(b"h1"), U64(0), U32(4096)]),
                packet(READ, &[U32(7), S(b"h1"), U64(4096), U32(4096)]),
            ],
        ),
        (Dir::Server, vec![packet(DATA, &[U32(6), S(b"db1\n")]), status(7, FX_EOF)]),
        (
            Dir::Client,
            vec![
                packet(CLOSE, &[U32(8), S(b"h1")]),
                packet(RENAME, &[U32(9), S(b"/tmp/a"), S(b"/tmp/b")]),
                packet(EXTENDED, &[U32(10), S(b"posix-rename@openssh.com"), S(b"/tmp/c"), S(b"/tmp/d")]),
                packet(REMOVE, &[U32(11), S(b"/etc/shadow")]),
                packet(MKDIR, &[U32(12), S(b"/tmp/x"), U32(0)]),
                packet(RMDIR, &[U32(13), S(b"/tmp/y")]),
                packet(SETSTAT, &[U32(14), S(b"/tmp/f"), U32(ATTR_SIZE), U64(10)]),
                packet(SYMLINK, &[U32(15), S(b"/etc/passwd"), S(b"/tmp/link")]),
                packet(OPEN, &[U32(16), S(b"/root/secret"), U32(1), U32(0)]),
                packet(16, &[U32(17), S(b".")]), // REALPATH: not tracked
            ],
        ),
        (
            Dir::Server,
            vec![
                status(8, 0),
                status(9, 0),
                status(10, 0),
                status(11, 3),
                status(12, 0),
                status(13, 4),
                status(14, 0),
                status(15, 0),
                status(16, 3),
                packet(104, &[U32(17), U32(1), S(b"/root"), S(b"/root"), U32(0)]),
            ],
        ),
    ];
    turns.into_iter().map(|(dir, packets)| (dir, packets.concat())).collect()
}

fn expected() -> Vec<FileOp> {
    let moved = |o: &str, path: &str, to: &str| FileOp { to: Some(to.into()), ok: Some(true), ..op(o, path) };
    vec![
        FileOp { size: Some(11), sha256: sha(b"hello world"), ok: Some(true), ..op("write", "/home/alice/up.txt") },
        FileOp { size: Some(4), sha256: sha(b"db1\n"), ok: Some(true), ..op("read", "/etc/hostname") },
        moved("rename", "/tmp/a", "/tmp/b"),
        moved("rename", "/tmp/c", "/tmp/d"),
        FileOp { ok: Some(false), ..op("remove", "/etc/shadow") },
        FileOp { ok: Some(true), ..op("mkdir", "/tmp/x") },
        FileOp { ok: Some(false), ..op("rmdir", "/tmp/y") },
        FileOp { size: Some(10), ok: Some(true), ..op("setstat", "/tmp/f") },
        moved("symlink", "/tmp/link", "/etc/passwd"),
        FileOp { ok: Some(false), ..op("read", "/root/secret") },
    ]
}

/// Runs `turns`, each split into pieces by `split`, with `t` = the turn number.
fn run(turns: &[(Dir, Vec<u8>)], split: impl Fn(&[u8]) -> Vec<&[u8]>) -> Vec<FileOp> {
    let mut tracker = SftpTracker::new();
    for (i, (dir, bytes)) in turns.iter().enumerate() {
        for piece in split(bytes) {
            match dir {
                Dir::Client => tracker.client(i as f64, piece),
                Dir::Server => tracker.server(i as f64, piece),
            }
        }
    }
    tracker.finish(99.0);
    tracker.take()
}

fn without_time(ops: Vec<FileOp>) -> Vec<FileOp> {
    ops.into_iter().map(|o| FileOp { t: 0.0, ..o }).collect()
}

#[test]
fn a_session_yields_its_operations() {
    let ops = run(&session(), |b| vec![b]);
    assert_eq!(
        ops.iter().map(|o| o.t).collect::<Vec<_>>(),
        [7.0, 11.0, 11.0, 11.0, 11.0, 11.0, 11.0, 11.0, 11.0, 11.0]
    );
    assert_eq!(without_time(ops), expected());
}

#[test]
fn any_split_gives_the_same_operations() {
    let turns = session();
    let whole = run(&turns, |b| vec![b]);
    let longest = turns.iter().map(|(_, b)| b.len()).max().unwrap();
    for at in 0..=longest {
        let ops = run(&turns, |b| {
            let (a, c) = b.split_at(at.min(b.len()));
            vec![a, c]
        });
        assert_eq!(ops, whole, "split at {at}");
    }
    assert_eq!(run(&turns, |b| b.chunks(1).collect()), whole);
}

#[test]
fn out_of_order_and_failed_writes() {
    use F::*;
    let mut s = SftpTracker::new();
    s.client(0.0, &packet(OPEN, &[U32(1), S(b"/a"), U32(RW), U32(0)]));
    s.server(0.1, &packet(HANDLE, &[U32(1), S(b"h")]));
    s.client(0.2, &packet(WRITE, &[U32(2), S(b"h"), U64(6), S(b"world")]));
    s.client(0.2, &packet(WRITE, &[U32(3), S(b"h"), U64(0), S(b"hello ")]));
    s.server(0.3, &[status(2, 0), status(3, 4)].concat());
    s.client(0.4, &packet(CLOSE, &[U32(4), S(b"h")]));
    s.server(0.5, &status(4, 0));
    assert_eq!(s.take(), [FileOp { t: 0.5, size: Some(11), ok: Some(false), ..op("write", "/a") }]);
}

#[test]
fn empty_upload_opened_only_and_left_open() {
    use F::*;
    let mut s = SftpTracker::new();
    s.client(0.0, &packet(OPEN, &[U32(1), S(b"/empty"), U32(RW), U32(0)]));
    s.client(0.0, &packet(OPEN, &[U32(2), S(b"/peek"), U32(1), U32(0)]));
    s.client(0.0, &packet(OPEN, &[U32(3), S(b"/open"), U32(RW), U32(0)]));
    s.server(1.0, &[packet(HANDLE, &[U32(1), S(b"a")]), packet(HANDLE, &[U32(2), S(b"b")])].concat());
    s.server(1.0, &packet(HANDLE, &[U32(3), S(b"c")]));
    s.client(2.0, &[packet(CLOSE, &[U32(4), S(b"a")]), packet(CLOSE, &[U32(5), S(b"b")])].concat());
    s.client(2.0, &packet(WRITE, &[U32(6), S(b"c"), U64(0), S(b"part")]));
    s.server(3.0, &[status(4, 0), status(5, 0)].concat());
    s.client(3.5, &packet(REMOVE, &[U32(7), S(b"/gone")]));
    s.finish(4.0);
    assert_eq!(
        s.take(),
        [
            FileOp { t: 3.0, size: Some(0), sha256: sha(b""), ok: Some(true), ..op("write", "/empty") },
            FileOp { t: 3.0, ok: Some(true), ..op("open", "/peek") },
            FileOp { t: 4.0, ..op("remove", "/gone") },
            FileOp { t: 4.0, size: Some(4), sha256: sha(b"part"), ..op("write", "/open") },
        ]
    );
}

#[test]
fn pending_requests_are_bounded() {
    use F::*;
    let mut s = SftpTracker::new();
    let n = MAX_PENDING as u32 + 10;
    for id in 0..n {
        s.client(1.0, &packet(REMOVE, &[U32(id), S(format!("/f{id}").as_bytes())]));
    }
    let forgotten = s.take();
    assert_eq!(forgotten.len(), 10);
    assert_eq!(forgotten[0], FileOp { t: 1.0, ..op("remove", "/f0") });
    s.server(2.0, &status(n - 1, 0));
    assert_eq!(s.take(), [FileOp { t: 2.0, ok: Some(true), ..op("remove", &format!("/f{}", n - 1)) }]);
    s.server(2.0, &status(3, 0)); // forgotten: ignored
    assert!(s.take().is_empty());
    s.finish(3.0);
    assert_eq!(s.take().len(), MAX_PENDING - 1);
    s.finish(4.0);
    assert!(s.take().is_empty());
}

#[test]
fn malformed_streams_stop_with_one_record() {
    use F::*;
    let mut s = SftpTracker::new();
    s.client(1.0, &(MAX_PACKET as u32 + 1).to_be_bytes());
    s.client(1.5, &packet(REMOVE, &[U32(1), S(b"/x")]));
    s.server(1.6, &status(1, 0));
    assert_eq!(
        s.take(),
        [op("malformed", "sftp client stream: packet length 270337 is outside 1..=270336; not followed further")]
            .map(|o| FileOp { t: 1.0, ..o })
    );

    let mut s = SftpTracker::new();
    let mut open = packet(OPEN, &[U32(1), S(b"/etc/passwd")]);
    open[9] = 0xff; // the filename's length now overruns the packet
    s.client(2.0, &open);
    let ops = s.take();
    assert_eq!(ops[0].path, "sftp client stream: OPEN packet ends inside its `filename`; not followed further");

    let mut s = SftpTracker::new();
    s.client(0.0, &packet(1, &[U32(6)]));
    s.server(0.1, &packet(VERSION, &[U32(6)]));
    s.client(0.2, &packet(REMOVE, &[U32(1), S(b"/x")]));
    s.server(0.3, &status(1, 0));
    let ops = s.take();
    assert_eq!(ops.len(), 1);
    assert!(ops[0].path.contains("SFTP version 6"), "{}", ops[0].path);
    // Unknown packet types, even empty ones, are skipped.
    let mut s = SftpTracker::new();
    s.client(0.0, &[0, 0, 0, 1, 99, 0, 0, 0, 1, VERSION]);
    assert!(s.take().is_empty() && !s.streams[0].stopped);
}

#[test]
fn op_json_leaves_out_unknowns() {
    let json = serde_json::to_string(&FileOp { ok: Some(true), ..op("remove", "/x") }).unwrap();
    assert_eq!(json, r#"{"t":0.0,"op":"remove","path":"/x","ok":true}"#);
    assert_eq!(serde_json::from_str::<FileOp>(&json).unwrap(), FileOp { ok: Some(true), ..op("remove", "/x") });
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(chunks in proptest::collection::vec((any::<bool>(), proptest::collection::vec(any::<u8>(), 0..64)), 0..16)) {
        let mut s = SftpTracker::new();
        for (client, bytes) in &chunks {
            if *client { s.client(0.0, bytes) } else { s.server(0.0, bytes) }
        }
        s.finish(1.0);
        s.take();
    }

    #[test]
    fn plausible_packets_never_panic(
        packets in proptest::collection::vec(
            (any::<bool>(), prop::sample::select(vec![1u8, 2, 3, 4, 5, 6, 9, 10, 13, 18, 20, 101, 102, 103, 200]),
             0u32..4, prop::sample::select(vec![&b"h"[..], b"posix-rename@openssh.com", b""]), 0u64..3, proptest::collection::vec(any::<u8>(), 0..12)),
            0..40),
    ) {
        let mut s = SftpTracker::new();
        for (client, kind, id, handle, offset, tail) in packets {
            let bytes = [packet(kind, &[F::U32(id), F::S(handle), F::U64(offset)]), tail].concat();
            let len = (bytes.len() - 4) as u32;
            let bytes = [len.to_be_bytes().as_slice(), &bytes[4..]].concat();
            if client { s.client(0.0, &bytes) } else { s.server(0.0, &bytes) }
        }
        s.finish(1.0);
        s.take();
    }
}
