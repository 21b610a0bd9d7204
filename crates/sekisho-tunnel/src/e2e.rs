//! End-to-end encryption between two agents, which the relay forwards but cannot read.
//!
//! A front agent and a back agent run one Noise `KK` handshake per pair (both static keys are
//! known from enrollment, distributed by the relay) on a dedicated handshake stream, which then
//! stays open as the session's lifetime anchor. Each data stream is sealed with the session's
//! keys in Noise's stateless transport mode, with an explicit nonce of
//! `stream index << 32 | record number`: a new stream costs no handshake and no public-key
//! operation, so opening many short connections stays cheap, and records cannot be reordered,
//! dropped or moved between streams without failing authentication. The responder refuses a
//! stream index it has seen before, so the relay cannot replay a recorded stream.
//!
//! Records on a sealed stream are `u16 length || ciphertext || tag` (at most 65,535 bytes).

use std::collections::HashSet;
use std::sync::atomic::{AtomicU32, Ordering};

use aws_lc_rs::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey};
use bytes::{Buf, BufMut, Bytes, BytesMut};
use parking_lot::Mutex;
use snow::resolvers::{DefaultResolver, FallbackResolver, RingResolver};
use snow::{Builder, HandshakeState};

/// The Noise protocol: KK handshake, X25519, AES-256-GCM (hardware accelerated through
/// aws-lc-rs), SHA-256.
pub const NOISE_PARAMS: &str = "Noise_KK_25519_AESGCM_SHA256";
/// Largest Noise message.
const MAX_RECORD: usize = 65_535;
const TAG_LEN: usize = 16;
/// Largest plaintext carried in one record.
pub const MAX_PLAIN: usize = MAX_RECORD - TAG_LEN;
/// Stream indices this far below the highest seen are refused outright.
const REPLAY_WINDOW: u32 = 1 << 16;

#[derive(Debug, thiserror::Error)]
pub enum E2eError {
    #[error("noise: {0}")]
    Noise(String),
    #[error("record failed authentication (tampered, reordered or replayed)")]
    BadRecord,
    #[error("stream index {0} was already used in this session")]
    Replay(u32),
    #[error("stream indices of this session are exhausted")]
    Exhausted,
    #[error("record length {0} exceeds the maximum")]
    Oversized(usize),
}

fn noise(e: snow::Error) -> E2eError {
    E2eError::Noise(e.to_string())
}

fn builder() -> Builder<'static> {
    #[expect(clippy::unwrap_used, reason = "the protocol name is a valid constant")]
    let params = NOISE_PARAMS.parse().unwrap();
    Builder::with_resolver(params, Box::new(FallbackResolver::new(Box::new(RingResolver), Box::new(DefaultResolver))))
}

/// Generates an X25519 static key pair: `(secret, public)`.
pub fn generate_static() -> Result<([u8; 32], [u8; 32]), E2eError> {
    let kp = builder().generate_keypair().map_err(noise)?;
    let secret = kp.private.try_into().map_err(|_| E2eError::Noise("bad key length".into()))?;
    let public = kp.public.try_into().map_err(|_| E2eError::Noise("bad key length".into()))?;
    Ok((secret, public))
}

/// The initiator's half-done handshake.
pub struct Initiator {
    state: HandshakeState,
}

/// Starts a handshake towards `remote_public`; returns the first message to send.
pub fn initiate(local_secret: &[u8; 32], remote_public: &[u8; 32]) -> Result<(Initiator, Vec<u8>), E2eError> {
    let mut state =
        builder().local_private_key(local_secret).remote_public_key(remote_public).build_initiator().map_err(noise)?;
    let mut msg = vec![0u8; 256];
    let n = state.write_message(&[], &mut msg).map_err(noise)?;
    msg.truncate(n);
    Ok((Initiator { state }, msg))
}

impl Initiator {
    /// Completes the handshake with the responder's answer.
    pub fn finish(mut self, reply: &[u8]) -> Result<PairSession, E2eError> {
        let mut payload = vec![0u8; 256];
        self.state.read_message(reply, &mut payload).map_err(noise)?;
        PairSession::new(self.state)
    }
}

/// Answers a handshake from `remote_public`; returns the session and the reply to send.
pub fn respond(
    local_secret: &[u8; 32],
    remote_public: &[u8; 32],
    first: &[u8],
) -> Result<(PairSession, Vec<u8>), E2eError> {
    let mut state =
        builder().local_private_key(local_secret).remote_public_key(remote_public).build_responder().map_err(noise)?;
    let mut payload = vec![0u8; 256];
    state.read_message(first, &mut payload).map_err(noise)?;
    let mut reply = vec![0u8; 256];
    let n = state.write_message(&[], &mut reply).map_err(noise)?;
    reply.truncate(n);
    Ok((PairSession::new(state)?, reply))
}

/// The keys shared by one front agent and one back agent.
///
/// The handshake is snow's; the transport is Noise's AESGCM cipher (4 zero bytes and a 64-bit
/// big-endian nonce, empty associated data) applied in place with aws-lc-rs, so records are sealed in
/// the buffer the socket was read into and opened in the buffer they arrived in: no extra copies on
/// the per-byte path.
pub struct PairSession {
    send: LessSafeKey,
    recv: LessSafeKey,
    next_index: AtomicU32,
    seen: Mutex<Seen>,
}

#[derive(Default)]
struct Seen {
    max: u32,
    set: HashSet<u32>,
}

impl std::fmt::Debug for PairSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PairSession").finish_non_exhaustive()
    }
}

fn key(bytes: &[u8; 32]) -> Result<LessSafeKey, E2eError> {
    let unbound =
        UnboundKey::new(&aead::AES_256_GCM, bytes).map_err(|_| E2eError::Noise("bad transport key".into()))?;
    Ok(LessSafeKey::new(unbound))
}

impl PairSession {
    fn new(mut state: HandshakeState) -> Result<Self, E2eError> {
        if !state.is_handshake_finished() {
            return Err(E2eError::Noise("handshake not finished".into()));
        }
        let (i2r, r2i) = state.dangerously_get_raw_split();
        let (send, recv) = if state.is_initiator() { (i2r, r2i) } else { (r2i, i2r) };
        Ok(PairSession {
            send: key(&send)?,
            recv: key(&recv)?,
            next_index: AtomicU32::new(1),
            seen: Mutex::new(Seen::default()),
        })
    }

    /// A fresh stream index for the initiator.
    pub fn next_index(&self) -> Result<u32, E2eError> {
        let i = self.next_index.fetch_add(1, Ordering::Relaxed);
        if i == u32::MAX { Err(E2eError::Exhausted) } else { Ok(i) }
    }

    /// Records that the responder accepted stream `index`; refuses one seen before.
    pub fn accept_index(&self, index: u32) -> Result<(), E2eError> {
        let mut seen = self.seen.lock();
        if index == 0 || index.saturating_add(REPLAY_WINDOW) <= seen.max || !seen.set.insert(index) {
            return Err(E2eError::Replay(index));
        }
        if index > seen.max {
            seen.max = index;
            if seen.set.len() > 2 * REPLAY_WINDOW as usize {
                let floor = seen.max.saturating_sub(REPLAY_WINDOW);
                seen.set.retain(|i| *i > floor);
            }
        }
        Ok(())
    }

    /// The sealing and opening halves of stream `index`.
    pub fn stream(self: &std::sync::Arc<Self>, index: u32) -> (Sealer, Opener) {
        (
            Sealer { session: self.clone(), index, seq: 0 },
            Opener { session: self.clone(), index, seq: 0, buf: BytesMut::new() },
        )
    }
}

fn nonce(index: u32, seq: u32) -> Nonce {
    let mut n = [0u8; 12];
    n[4..].copy_from_slice(&((u64::from(index) << 32) | u64::from(seq)).to_be_bytes());
    Nonce::assume_unique_for_key(n)
}

/// Bytes a record adds around its plaintext: the length prefix and the tag.
pub const RECORD_OVERHEAD: usize = 2 + TAG_LEN;

/// Seals the outgoing bytes of one stream.
pub struct Sealer {
    session: std::sync::Arc<PairSession>,
    index: u32,
    seq: u32,
}

impl Sealer {
    /// Seals a record in place. `record[2..2 + plain_len]` holds the plaintext; `record` must have
    /// room for the tag after it. Returns the record's total length (prefix, ciphertext, tag).
    pub fn seal_in_place(&mut self, record: &mut [u8], plain_len: usize) -> Result<usize, E2eError> {
        if plain_len > MAX_PLAIN || record.len() < plain_len + RECORD_OVERHEAD {
            return Err(E2eError::Oversized(plain_len));
        }
        if self.seq == u32::MAX {
            return Err(E2eError::Exhausted);
        }
        record[..2].copy_from_slice(&((plain_len + TAG_LEN) as u16).to_be_bytes());
        let (body, rest) = record[2..].split_at_mut(plain_len);
        let tag = self
            .session
            .send
            .seal_in_place_separate_tag(nonce(self.index, self.seq), Aad::empty(), body)
            .map_err(|_| E2eError::Noise("seal failed".into()))?;
        rest[..TAG_LEN].copy_from_slice(tag.as_ref());
        self.seq += 1;
        Ok(plain_len + RECORD_OVERHEAD)
    }

    /// Appends `plain` (at most [`MAX_PLAIN`] bytes) to `out` as one record.
    pub fn seal(&mut self, plain: &[u8], out: &mut BytesMut) -> Result<(), E2eError> {
        let start = out.len();
        out.put_u16(0);
        out.extend_from_slice(plain);
        out.put_bytes(0, TAG_LEN);
        self.seal_in_place(&mut out[start..], plain.len())?;
        Ok(())
    }
}

/// Opens the incoming records of one stream.
pub struct Opener {
    session: std::sync::Arc<PairSession>,
    index: u32,
    seq: u32,
    buf: BytesMut,
}

impl Opener {
    /// Adds received ciphertext bytes.
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// The next complete record's plaintext, if one has fully arrived.
    pub fn next_record(&mut self) -> Result<Option<Bytes>, E2eError> {
        if self.buf.len() < 2 {
            return Ok(None);
        }
        let len = u16::from_be_bytes([self.buf[0], self.buf[1]]) as usize;
        if len < TAG_LEN {
            return Err(E2eError::BadRecord);
        }
        if self.buf.len() < 2 + len {
            return Ok(None);
        }
        self.buf.advance(2);
        let mut record = self.buf.split_to(len);
        let plain_len = self
            .session
            .recv
            .open_in_place(nonce(self.index, self.seq), Aad::empty(), &mut record)
            .map_err(|_| E2eError::BadRecord)?
            .len();
        record.truncate(plain_len);
        self.seq = self.seq.checked_add(1).ok_or(E2eError::Exhausted)?;
        Ok(Some(record.freeze()))
    }

    /// Bytes of an incomplete record still waiting for the rest.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }
}

/// Frames a handshake message for the handshake stream.
pub fn frame_handshake(msg: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(2 + msg.len());
    out.extend_from_slice(&(msg.len() as u16).to_be_bytes());
    out.extend_from_slice(msg);
    out
}

/// Takes one framed handshake message off `buf`, if complete.
pub fn take_handshake(buf: &mut BytesMut) -> Option<Vec<u8>> {
    if buf.len() < 2 {
        return None;
    }
    let len = u16::from_be_bytes([buf[0], buf[1]]) as usize;
    if buf.len() < 2 + len {
        return None;
    }
    buf.advance(2);
    Some(buf.split_to(len).to_vec())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn pair() -> (Arc<PairSession>, Arc<PairSession>) {
        let (a_sec, a_pub) = generate_static().unwrap();
        let (b_sec, b_pub) = generate_static().unwrap();
        let (init, m1) = initiate(&a_sec, &b_pub).unwrap();
        let (resp, m2) = respond(&b_sec, &a_pub, &m1).unwrap();
        (Arc::new(init.finish(&m2).unwrap()), Arc::new(resp))
    }

    #[test]
    fn records_roundtrip_and_hide_the_plaintext() {
        let (a, b) = pair();
        let (mut seal, _) = a.stream(7);
        let (_, mut open) = b.stream(7);
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
        let (mut seal, _) = a.stream(1);
        let mut r1 = BytesMut::new();
        seal.seal(b"first", &mut r1).unwrap();
        let mut r2 = BytesMut::new();
        seal.seal(b"second", &mut r2).unwrap();
        let (_, mut other_stream) = b.stream(2);
        other_stream.push(&r1);
        assert!(matches!(other_stream.next_record(), Err(E2eError::BadRecord)));
        let (_, mut same_stream) = b.stream(1);
        same_stream.push(&r2);
        assert!(matches!(same_stream.next_record(), Err(E2eError::BadRecord)));
    }

    #[test]
    fn sealing_in_place_matches_sealing_by_copy() {
        let (a, b) = pair();
        let (mut by_copy, _) = a.stream(3);
        let (mut in_place, _) = a.stream(4);
        let plain = b"in the buffer the socket filled";
        let mut record = vec![0u8; 2 + plain.len() + TAG_LEN + 7];
        record[2..2 + plain.len()].copy_from_slice(plain);
        let len = in_place.seal_in_place(&mut record, plain.len()).unwrap();
        assert_eq!(len, plain.len() + RECORD_OVERHEAD);
        let mut copied = BytesMut::new();
        by_copy.seal(plain, &mut copied).unwrap();
        assert_eq!(copied.len(), len);
        for (index, wire) in [(4, &record[..len]), (3, &copied[..])] {
            let (_, mut open) = b.stream(index);
            open.push(wire);
            assert_eq!(&open.next_record().unwrap().unwrap()[..], plain);
        }
        let mut small = vec![0u8; 10];
        assert!(in_place.seal_in_place(&mut small, 9).is_err(), "no room for the tag");
    }

    #[test]
    fn tampered_records_fail() {
        let (a, b) = pair();
        let (mut seal, _) = a.stream(1);
        let mut wire = BytesMut::new();
        seal.seal(b"payload", &mut wire).unwrap();
        let last = wire.len() - 1;
        wire[last] ^= 1;
        let (_, mut open) = b.stream(1);
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
}
