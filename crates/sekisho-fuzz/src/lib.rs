//! The bodies of Sekisho's fuzz targets: each takes arbitrary bytes and feeds them to one parser
//! that reads the network or a tenant's text. A body must never panic, hang or overflow its stack
//! on any input; errors are the parsers' answer to bad input and are ignored here.
//!
//! `fuzz/` (a cargo-fuzz project outside the workspace, nightly) runs each body coverage-guided
//! (`scripts/fuzz.sh`); `tests/corpora.rs` replays the kept corpora `fuzz/corpus/<target>/` as an
//! ordinary test, so every input that ever found a bug stays a regression test.

use std::sync::{Arc, LazyLock};

use bytes::BytesMut;

/// A target's body.
pub type Body = fn(&[u8]);

/// Every target: its name (the corpus directory and the cargo-fuzz target) and its body.
pub const TARGETS: &[(&str, Body)] = &[
    ("frame", frame),
    ("sealed_link", sealed_link),
    ("e2e_records", e2e_records),
    ("e2e_handshake", e2e_handshake),
    ("socks5", socks5),
    ("policy", policy),
    ("sftp", sftp),
    ("scp", scp),
    ("asciicast", asciicast),
    ("http_headers", http_headers),
];

/// The mux frame decoder, fed the bytes in two pieces (a frame split across reads).
pub fn frame(data: &[u8]) {
    let decoder = sekisho_wire::Decoder::new(sekisho_wire::DEFAULT_MAX_FRAME_PAYLOAD);
    let split = data.first().map_or(0, |b| usize::from(*b)).min(data.len());
    let mut buf = BytesMut::from(&data[..split]);
    for more in [&data[split..], &[][..]] {
        while let Ok(Some(_)) = decoder.decode(&mut buf) {}
        buf.extend_from_slice(more);
    }
    while let Ok(Some(_)) = decoder.decode(&mut buf) {}
}

/// A back agent's side of a pair: its session, its secret and the front agent's public key.
type BackSide = (Arc<sekisho_tunnel::e2e::PairSession>, [u8; 32], [u8; 32]);

/// The relay's side of a sealed agent link (`sekisho/2`) reading what an agent sent.
pub fn sealed_link(data: &[u8]) {
    sekisho_tunnel::link::fuzz_relay_reads(data);
}

/// Two agents' pair session, made once: a responder's view of records a relay could send.
static PAIR: LazyLock<Option<BackSide>> = LazyLock::new(|| {
    use sekisho_tunnel::e2e;
    let (a_sec, a_pub) = e2e::generate_static().ok()?;
    let (b_sec, b_pub) = e2e::generate_static().ok()?;
    let (init, first) = e2e::initiate(&a_sec, &b_pub).ok()?;
    let (resp, reply) = e2e::respond(&b_sec, &a_pub, &first).ok()?;
    drop(init.finish(&reply).ok()?);
    Some((Arc::new(resp), b_sec, a_pub))
});

/// The E2E record layer: arbitrary bytes as the sealed records of a stream (its index from the
/// first four bytes), pushed in two pieces, then the end of the stream.
pub fn e2e_records(data: &[u8]) {
    let Some((session, _, _)) = PAIR.as_ref() else { return };
    let Some((head, rest)) = data.split_first_chunk::<4>() else { return };
    let Ok((_, mut opener)) = session.stream(u32::from_be_bytes(*head), "fuzz") else { return };
    let half = rest.len() / 2;
    for piece in [&rest[..half], &rest[half..]] {
        opener.push(piece);
        while let Ok(Some(_)) = opener.next_record() {}
    }
    let _ = opener.check_end();
}

/// The E2E handshake: arbitrary bytes as the first handshake message a back agent receives,
/// framed and unframed.
pub fn e2e_handshake(data: &[u8]) {
    let Some((_, b_sec, a_pub)) = PAIR.as_ref() else { return };
    let mut framed = BytesMut::from(data);
    while let Some(msg) = sekisho_tunnel::e2e::take_handshake(&mut framed) {
        let _ = sekisho_tunnel::e2e::respond(b_sec, a_pub, &msg);
    }
    let _ = sekisho_tunnel::e2e::respond(b_sec, a_pub, data);
}

/// The SOCKS5 greeting, RFC 1929 credentials and request parsers, each on the bytes and on every
/// prefix a slow client could send.
pub fn socks5(data: &[u8]) {
    sekisho_gateway::fuzzing::socks5(data);
}

/// A tenant's policy text: the bytes as a required condition, a deny condition and domain lists.
pub fn policy(data: &[u8]) {
    let text = String::from_utf8_lossy(data).into_owned();
    let engine = sekisho_policy::Engine::new();
    let lists = [
        sekisho_policy::ServicePolicy { required: vec![text.clone()], ..Default::default() },
        sekisho_policy::ServicePolicy { deny: text.lines().map(str::to_owned).collect(), ..Default::default() },
        sekisho_policy::ServicePolicy {
            allow_domains: text.split_whitespace().map(str::to_owned).collect(),
            deny_domains: vec![text.clone()],
            ..Default::default()
        },
    ];
    for p in &lists {
        let _ = engine.compile("fuzz", p);
    }
}

/// The SFTP tracker, the bytes split between client and server by the first byte.
pub fn sftp(data: &[u8]) {
    let mut t = sekisho_audit::recording::files::SftpTracker::new();
    let (client, server) = split(data);
    t.client(0.0, client);
    t.server(0.1, server);
    t.client(0.2, server);
    t.server(0.3, client);
    t.finish(0.4);
    let _ = t.take();
}

/// The SCP tracker: the first line is the command, the rest split between client and server.
pub fn scp(data: &[u8]) {
    let (line, rest) = match data.iter().position(|b| *b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let Some(mut t) = sekisho_audit::recording::files::ScpTracker::new(&String::from_utf8_lossy(line)) else {
        return;
    };
    let (client, server) = split(rest);
    t.client(0.0, client);
    t.server(0.1, server);
    t.finish(0.2);
    let _ = t.take();
}

/// An asciicast v2 recording as the replay reads it.
pub fn asciicast(data: &[u8]) {
    let _ = sekisho_audit::recording::cast::parse(&String::from_utf8_lossy(data));
}

/// The browser edge's reading of request heads: host, cookies, redirect targets, locations.
pub fn http_headers(data: &[u8]) {
    sekisho_web::fuzzing::headers(data);
}

/// The bytes after the first in two parts, cut where the first byte says.
fn split(data: &[u8]) -> (&[u8], &[u8]) {
    let Some((cut, rest)) = data.split_first() else { return (&[], &[]) };
    rest.split_at(usize::from(*cut).min(rest.len()))
}
