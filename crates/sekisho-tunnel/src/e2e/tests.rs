//! The handshake, the two keyings and the records, tested against each other and against known answers.

use std::sync::Arc;

use super::stream::{StreamKeys, nonce};
use super::*;

fn pair() -> (Arc<PairSession>, Arc<PairSession>) {
    let (a_sec, a_pub) = generate_static().unwrap();
    let (b_sec, b_pub) = generate_static().unwrap();
    let (init, m1) = initiate(&a_sec, &b_pub).unwrap();
    let (resp, m2) = respond(&b_sec, &a_pub, &m1).unwrap();
    (Arc::new(init.finish(&m2).unwrap()), Arc::new(resp))
}

fn pair_offering(offer: &[u8], known: &[u8], epoch: u32) -> (Arc<PairSession>, Arc<PairSession>) {
    let (a_sec, a_pub) = generate_static().unwrap();
    let (b_sec, b_pub) = generate_static().unwrap();
    let (init, m1) = initiate_offering(&a_sec, &b_pub, offer).unwrap();
    let known: &[&[u8]] = if known.is_empty() { &[] } else { &[known] };
    let (mut resp, m2) = respond_knowing(&b_sec, &a_pub, &m1, known).unwrap();
    let mut init = init.finish(&m2).unwrap();
    init.epoch = epoch;
    resp.epoch = epoch;
    (Arc::new(init), Arc::new(resp))
}

/// The session of the known-answer tests: fixed split secrets, epochs of 2 records.
fn fixed_session(keying: Keying) -> Arc<PairSession> {
    Arc::new(PairSession {
        send: [0x11; 32],
        recv: [0x22; 32],
        keying,
        epoch: 2,
        keying1_records: AtomicU64::new(0),
        keying1_limit: KEYING_1_RECORDS,
        next_index: AtomicU32::new(1),
        seen: Mutex::new(Seen::default()),
    })
}

fn seal_n(seal: &mut Sealer, n: u32) -> BytesMut {
    let mut wire = BytesMut::new();
    for i in 0..n {
        seal.seal(format!("record {i}").as_bytes(), &mut wire).unwrap();
    }
    wire
}

/// Opens records until one fails; returns how many opened.
fn open_all(open: &mut Opener, wire: &[u8]) -> (u32, Option<E2eError>) {
    open.push(wire);
    let mut n = 0;
    loop {
        match open.next_record() {
            Ok(Some(p)) => {
                assert_eq!(p, format!("record {n}").as_bytes());
                n += 1;
            }
            Ok(None) => return (n, None),
            Err(e) => return (n, Some(e)),
        }
    }
}

#[test]
fn both_ends_of_this_version_agree_on_keys_per_stream_and_a_sealed_end() {
    let (a, b) = pair();
    assert_eq!((a.keying(), b.keying()), (Keying::SealedEnd, Keying::SealedEnd));
    assert_eq!(a.epoch, EPOCH_RECORDS);
    // With an agent that knows keying 2 only, either way round: keying 2.
    let (a, b) = pair_offering(OFFER, KEYING_PER_STREAM, 3);
    assert_eq!((a.keying(), b.keying()), (Keying::PerStream, Keying::PerStream));
    let (a, b) = pair_offering(KEYING_PER_STREAM, KEYING_SEALED_END, 3);
    assert_eq!((a.keying(), b.keying()), (Keying::Session, Keying::Session), "3 alone does not answer an offer of 2");
}

fn sealed_end_pair() -> (Sealer, Opener) {
    let (a, b) = pair();
    (a.stream(7, "").unwrap().0, b.stream(7, "").unwrap().1)
}

#[test]
fn a_stream_of_keying_3_ends_only_with_its_sealed_end_record() {
    // The whole stream, end record included: a clean end.
    let (mut seal, mut open) = sealed_end_pair();
    let mut wire = seal_n(&mut seal, 3);
    assert!(seal.seal_end(&mut wire).unwrap());
    assert!(!seal.seal_end(&mut wire).unwrap(), "one end record only");
    assert!(matches!(open_all(&mut open, &wire), (3, None)));
    open.check_end().unwrap();

    // The relay drops the last record and the end record and sends FIN: the receiver sees a cut.
    let (mut seal, mut open) = sealed_end_pair();
    let mut wire = seal_n(&mut seal, 3);
    let record = "record 0".len() + RECORD_OVERHEAD;
    seal.seal_end(&mut wire).unwrap();
    assert!(matches!(open_all(&mut open, &wire[..2 * record]), (2, None)));
    assert!(matches!(open.check_end(), Err(E2eError::Truncated)));

    // FIN right after whole data records, no end record: cut.
    let (mut seal, mut open) = sealed_end_pair();
    let wire = seal_n(&mut seal, 2);
    assert!(matches!(open_all(&mut open, &wire), (2, None)));
    assert!(matches!(open.check_end(), Err(E2eError::Truncated)));

    // Data after the end record is refused.
    let (mut seal, mut open) = sealed_end_pair();
    let mut wire = seal_n(&mut seal, 1);
    seal.seal_end(&mut wire).unwrap();
    wire.extend_from_slice(&wire.clone()[..]);
    assert!(matches!(open_all(&mut open, &wire), (1, Some(E2eError::BadRecord))));
}

#[test]
fn an_end_record_cannot_be_forged_from_an_empty_data_record() {
    // Keying 3 never seals an empty data record (it would read as the end).
    let (mut seal, _) = sealed_end_pair();
    assert!(matches!(seal.seal(b"", &mut BytesMut::new()), Err(E2eError::EmptyRecord)));
    // On keying 2, where an empty record is data, an end record is not recognised as anything
    // but a record that fails to open (its associated data differs), and a FIN alone ends cleanly.
    let (a, b) = pair_offering(KEYING_PER_STREAM, KEYING_PER_STREAM, 3);
    let (mut seal, mut open) = (a.stream(1, "").unwrap().0, b.stream(1, "").unwrap().1);
    let mut wire = BytesMut::new();
    assert!(!seal.seal_end(&mut wire).unwrap(), "keying 2 has no end record");
    seal.seal(b"", &mut wire).unwrap();
    open.push(&wire);
    assert_eq!(open.next_record().unwrap().as_deref(), Some(&b""[..]));
    open.check_end().unwrap();
    // An end record moved to another record number fails to open: here the end sealed as
    // record 0 of a stream, sent after that stream's record 0.
    let (a, b) = pair();
    let (mut data, mut open) = (a.stream(9, "").unwrap().0, b.stream(9, "").unwrap().1);
    let mut end = BytesMut::new();
    a.stream(9, "").unwrap().0.seal_end(&mut end).unwrap();
    let mut wire = seal_n(&mut data, 1);
    wire.extend_from_slice(&end);
    assert!(matches!(open_all(&mut open, &wire), (1, Some(E2eError::BadRecord))));
    assert!(open.check_end().is_err());
}

#[test]
fn each_stream_and_direction_has_a_key_of_its_own() {
    fn secret(seal: &mut Sealer) -> [u8; 32] {
        seal.keys.for_record(seal.index, 0, true).unwrap();
        match &seal.keys {
            StreamKeys::Keyed(k) => k.secret,
            StreamKeys::Pending(_) => panic!("no key after the first record"),
        }
    }
    let (a, b) = pair();
    let secrets = [
        secret(&mut a.stream(1, "").unwrap().0),
        secret(&mut a.stream(2, "").unwrap().0),
        secret(&mut b.stream(1, "").unwrap().0),
        a.send,
        a.recv,
    ];
    for (i, x) in secrets.iter().enumerate() {
        for y in &secrets[i + 1..] {
            assert_ne!(x, y);
        }
    }
}

#[test]
fn keys_move_every_epoch_and_both_ends_follow() {
    let (a, b) = pair_offering(KEYING_PER_STREAM, KEYING_PER_STREAM, 3);
    let (mut seal, _) = a.stream(9, "").unwrap();
    let wire = seal_n(&mut seal, 10);
    let (_, mut open) = b.stream(9, "").unwrap();
    let (opened, err) = open_all(&mut open, &wire);
    assert_eq!((opened, err.is_none()), (10, true));
    // An end that keeps its key one record longer fails exactly where the sender's key moved:
    // the key really changes at each epoch.
    let mut lagging = Arc::try_unwrap(b).unwrap();
    lagging.epoch = 4;
    let (_, mut open) = Arc::new(lagging).stream(9, "").unwrap();
    let (opened, err) = open_all(&mut open, &wire);
    assert_eq!(opened, 3);
    assert!(matches!(err, Some(E2eError::BadRecord)));
}

#[test]
fn an_agent_of_keying_1_on_either_side_gets_the_session_keys_it_knows() {
    // An older initiator offers nothing; an older responder answers nothing.
    for (offer, known) in [(&[][..], KEYING_PER_STREAM), (KEYING_PER_STREAM, &[][..])] {
        let (a, b) = pair_offering(offer, known, 3);
        assert_eq!((a.keying(), b.keying()), (Keying::Session, Keying::Session));
        let (mut seal, _) = a.stream(4, "").unwrap();
        let wire = seal_n(&mut seal, 10);
        let (_, mut open) = b.stream(4, "").unwrap();
        assert_eq!(open_all(&mut open, &wire).0, 10);
        // Every record, past the epoch length too, is what an agent of keying 1 seals: the
        // session key, nonce index‖seq.
        let old = aead_key(&a.send).unwrap();
        let mut at = 0;
        for seq in 0..10u32 {
            let mut body = format!("record {seq}").into_bytes();
            let tag = old.seal(nonce(4, seq), &[], &mut body).unwrap();
            body.extend_from_slice(&tag);
            assert_eq!(&wire[at + 2..at + 2 + body.len()], &body[..], "record {seq}");
            at += 2 + body.len();
        }
    }
}

#[test]
fn an_offer_among_others_is_taken_and_an_unknown_one_is_not() {
    let (a, b) = pair_offering(b"sekisho-e2e/9 sekisho-e2e/2", KEYING_PER_STREAM, 3);
    assert_eq!((a.keying(), b.keying()), (Keying::PerStream, Keying::PerStream));
    let (a, b) = pair_offering(b"sekisho-e2e/9", KEYING_PER_STREAM, 3);
    assert_eq!((a.keying(), b.keying()), (Keying::Session, Keying::Session));
}

/// Known answers, computed apart from this code (Python's `cryptography`: HKDFExpand with
/// SHA-256 and AESGCM), so a change to a label, the index's encoding or the epoch chain, which
/// would break agents of different versions, fails here. Epochs of 2 records: records 0, 2 and
/// 4 are each under a new key.
#[test]
fn keying_2_records_match_known_answers() {
    let session = fixed_session(Keying::PerStream);
    let (mut seal, _) = session.stream(7, "").unwrap();
    let wire = seal_n(&mut seal, 5);
    let expected = [
        "0018fcc876ebc7ed6dfc18f2206efaf1777272bd0ebf2939f925",
        "0018120a54db14f77b781f991d8662071554f46d6bea6aadb769",
        "0018b036d70326df8f76f5cdf8e88defeb9a89b59a0e3e8d8179",
        "00183d3c851bfd993306ced2253e2fc023cc0d1c96982b90df5a",
        "0018d2ebd71d4cedff0e6c538a149a409f5bff1f7b1dbe53fbe2",
    ];
    assert_eq!(hex::encode(&wire[..]), expected.concat());
}

/// The same for keying 3 (docs/SEALING.md): stream 7 of the service `wiki`, whose name is in the
/// stream's first secret; two data records, then the end record (no plaintext, associated data
/// "sekisho e2e end") as record 2, under the next epoch's key.
#[test]
fn keying_3_records_match_known_answers() {
    let session = fixed_session(Keying::SealedEnd);
    let (mut seal, _) = session.stream(7, "wiki").unwrap();
    let mut wire = seal_n(&mut seal, 2);
    assert!(seal.seal_end(&mut wire).unwrap());
    let expected = [
        "00189b5970567e4cf1062b37cee6a773171f1594bfbaa18307f1",
        "00183397a221f2e839a4c2a8a5633c90bafa188f27ebf39f9bf4",
        "00104a2ef57eb8000b9510a5000276434340",
    ];
    assert_eq!(hex::encode(&wire[..]), expected.concat());
}

#[test]
fn a_stream_handed_to_another_service_fails_its_first_record_on_keying_3() {
    let (a, b) = pair();
    let (mut seal, _) = a.stream(5, "wiki").unwrap();
    let wire = seal_n(&mut seal, 1);
    // The relay opened it at the back agent as `mail`: the back agent's keys differ.
    let (_, mut open) = b.stream(5, "mail").unwrap();
    assert!(matches!(open_all(&mut open, &wire), (0, Some(E2eError::BadRecord))));
    let (_, mut open) = b.stream(5, "wiki").unwrap();
    assert!(matches!(open_all(&mut open, &wire), (1, None)));
    // Keying 2 (agents of the earlier version) does not bind the service.
    let (a, b) = pair_offering(KEYING_PER_STREAM, KEYING_PER_STREAM, 3);
    let wire = seal_n(&mut a.stream(5, "wiki").unwrap().0, 1);
    assert!(matches!(open_all(&mut b.stream(5, "mail").unwrap().1, &wire), (1, None)));
}

#[test]
fn a_record_that_cannot_be_sealed_leaves_no_plaintext_behind() {
    let (a, _) = pair();
    let (mut seal, _) = a.stream(1, "").unwrap();
    let mut out = BytesMut::from(&b"earlier "[..]);
    assert!(seal.seal(&vec![b'S'; MAX_PLAIN + 1], &mut out).is_err());
    assert_eq!(&out[..], b"earlier ", "the output is as it was");
}

#[test]
fn records_roundtrip_and_hide_the_plaintext() {
    let (a, b) = pair();
    let (mut seal, _) = a.stream(7, "").unwrap();
    let (_, mut open) = b.stream(7, "").unwrap();
    let mut wire = BytesMut::new();
    seal.seal(b"SECRET-MARKER one", &mut wire).unwrap();
    seal.seal(b"two", &mut wire).unwrap();
    assert!(!wire.windows(13).any(|w| w == b"SECRET-MARKER"));
    // Deliver byte by byte: records reassemble.
    let mut got = Vec::new();
    for byte in wire.iter() {
        open.push(&[*byte]);
        while let Some(p) = open.next_record().unwrap() {
            got.extend_from_slice(&p);
        }
    }
    assert_eq!(got, b"SECRET-MARKER onetwo");
}

#[test]
fn records_cannot_move_between_streams_or_be_reordered() {
    let (a, b) = pair();
    let (mut seal, _) = a.stream(1, "").unwrap();
    let mut r1 = BytesMut::new();
    seal.seal(b"first", &mut r1).unwrap();
    let mut r2 = BytesMut::new();
    seal.seal(b"second", &mut r2).unwrap();
    let (_, mut other_stream) = b.stream(2, "").unwrap();
    other_stream.push(&r1);
    assert!(matches!(other_stream.next_record(), Err(E2eError::BadRecord)));
    let (_, mut same_stream) = b.stream(1, "").unwrap();
    same_stream.push(&r2);
    assert!(matches!(same_stream.next_record(), Err(E2eError::BadRecord)));
}

#[test]
fn sealing_in_place_matches_sealing_by_copy() {
    let (a, b) = pair();
    let (mut by_copy, _) = a.stream(3, "").unwrap();
    let (mut in_place, _) = a.stream(4, "").unwrap();
    let plain = b"in the buffer the socket filled";
    let mut record = vec![0u8; 2 + plain.len() + TAG_LEN + 7];
    record[2..2 + plain.len()].copy_from_slice(plain);
    let len = in_place.seal_in_place(&mut record, plain.len()).unwrap();
    assert_eq!(len, plain.len() + RECORD_OVERHEAD);
    let mut copied = BytesMut::new();
    by_copy.seal(plain, &mut copied).unwrap();
    assert_eq!(copied.len(), len);
    for (index, wire) in [(4, &record[..len]), (3, &copied[..])] {
        let (_, mut open) = b.stream(index, "").unwrap();
        open.push(wire);
        assert_eq!(&open.next_record().unwrap().unwrap()[..], plain);
    }
    let mut small = vec![0u8; 10];
    assert!(in_place.seal_in_place(&mut small, 9).is_err(), "no room for the tag");
}

#[test]
fn tampered_records_fail() {
    let (a, b) = pair();
    let (mut seal, _) = a.stream(1, "").unwrap();
    let mut wire = BytesMut::new();
    seal.seal(b"payload", &mut wire).unwrap();
    let last = wire.len() - 1;
    wire[last] ^= 1;
    let (_, mut open) = b.stream(1, "").unwrap();
    open.push(&wire);
    assert!(matches!(open.next_record(), Err(E2eError::BadRecord)));
}

#[test]
fn replayed_stream_indices_are_refused() {
    let (_, b) = pair();
    b.accept_index(5).unwrap();
    b.accept_index(3).unwrap();
    assert!(matches!(b.accept_index(5), Err(E2eError::Replay(5))));
    assert!(b.accept_index(0).is_err());
    b.accept_index(REPLAY_WINDOW + 10).unwrap();
    assert!(b.accept_index(2).is_err(), "far below the window");
}

#[test]
fn wrong_static_key_fails_the_handshake() {
    let (a_sec, _) = generate_static().unwrap();
    let (b_sec, b_pub) = generate_static().unwrap();
    let (_, mallory_pub) = generate_static().unwrap();
    let (_, m1) = initiate(&a_sec, &b_pub).unwrap();
    assert!(respond(&b_sec, &mallory_pub, &m1).is_err());
}

/// Keying 1 (older agents) shares two keys among every stream: the session counts their records,
/// asks for a new session at the limit, and refuses records at twice it.
#[test]
fn a_keying_1_session_asks_for_a_new_one_after_a_bounded_amount() {
    let (a, b) = pair_offering(KEYING_PER_STREAM, &[], 3);
    assert_eq!(a.keying(), Keying::Session);
    let (mut a, mut b) = (Arc::into_inner(a).unwrap(), Arc::into_inner(b).unwrap());
    a.keying1_limit = 4;
    b.keying1_limit = 4;
    let (a, b) = (Arc::new(a), Arc::new(b));
    let (mut seal, _) = a.stream(1, "").unwrap();
    let (_, mut open) = b.stream(1, "").unwrap();
    assert!(matches!(open_all(&mut open, &seal_n(&mut seal, 3)), (3, None)));
    assert!(!a.wants_rehandshake());
    let (mut seal2, _) = a.stream(2, "").unwrap();
    seal_n(&mut seal2, 1);
    assert!(a.wants_rehandshake(), "four records sealed under the session's keys");
    // A stream that stays on it past twice the limit is refused more.
    seal_n(&mut seal2, 4);
    assert!(matches!(seal2.seal(b"more", &mut BytesMut::new()), Err(E2eError::Exhausted)));
    // Keyings 2 and 3 keep no such count: their keys are per stream and epoch.
    let (c, _) = pair();
    let (mut seal, _) = c.stream(1, "").unwrap();
    seal_n(&mut seal, 10);
    assert!(!c.wants_rehandshake());
}

/// The stream index never wraps: at the end of its space the session stays exhausted (a wrap
/// would hand out indices, and so keys and nonces, a second time), and it asks for a new session
/// long before that.
#[test]
fn stream_indices_never_wrap_and_ask_for_a_new_session_first() {
    let session = PairSession {
        send: [0x11; 32],
        recv: [0x22; 32],
        keying: Keying::PerStream,
        epoch: 2,
        keying1_records: AtomicU64::new(0),
        keying1_limit: KEYING_1_RECORDS,
        next_index: AtomicU32::new(REHANDSHAKE_AFTER),
        seen: Mutex::new(Seen::default()),
    };
    assert!(!session.wants_rehandshake());
    assert_eq!(session.next_index().ok(), Some(REHANDSHAKE_AFTER));
    assert!(session.wants_rehandshake());
    session.next_index.store(u32::MAX - 1, std::sync::atomic::Ordering::Relaxed);
    assert_eq!(session.next_index().ok(), Some(u32::MAX - 1));
    for _ in 0..3 {
        assert!(matches!(session.next_index(), Err(E2eError::Exhausted)), "an index was handed out past the end");
    }
}
