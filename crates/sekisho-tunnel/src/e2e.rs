//! End-to-end encryption between two agents, which the relay forwards but cannot read.
//!
//! A front agent and a back agent run one Noise `KK` handshake per pair (both static keys are
//! known from enrollment, distributed by the relay) on a dedicated handshake stream, which then
//! stays open as the session's lifetime anchor. Each data stream is sealed with keys derived from
//! the session's (below) in Noise's stateless transport mode, with an explicit nonce of
//! `stream index << 32 | record number`: a new stream costs no handshake and no public-key
//! operation, so opening many short connections stays cheap, and records cannot be reordered,
//! dropped or moved between streams without failing authentication. The responder refuses a
//! stream index it has seen before, so the relay cannot replay a recorded stream.
//!
//! Records on a sealed stream are `u16 length || ciphertext || tag` (at most 65,535 bytes).
//!
//! **Keys per stream (keying 2).** The initiator offers [`KEYING_PER_STREAM`] in the payload of
//! its first handshake message (a space-separated list, so later keyings can be offered beside it)
//! and the responder echoes the one it takes. Each stream and direction then starts from the secret
//! `HKDF-Expand(split secret, "sekisho e2e stream" || u32be(index), 32)` and seals under the
//! AES-256-GCM key `HKDF-Expand(secret, "sekisho e2e key", 32)`; every [`EPOCH_RECORDS`] records
//! the secret moves to `HKDF-Expand(secret, "sekisho e2e next", 32)`, the old one forgotten, and a
//! new key is derived from it. (HKDF-Expand with the 32-byte secret as its PRK, SHA-256.) So no key seals more than 4 GiB, however long the pair stays up
//! and however much it moves; one key for the whole session would pass AES-GCM's data limit
//! (RFC 8446 §5.5) after a few hundred gigabytes. An agent that offers or answers nothing
//! (keying 1, before this) gets the session's two keys for every stream, as before, so agents can
//! be upgraded in either order. The offer travels inside the Noise handshake, which authenticates
//! it: nobody in the middle can strip it.
//!
//! **A sealed end (keying 3).** On keyings 1 and 2 the end of a stream is the multiplexer's
//! plaintext FIN, so a relay that dropped a stream's last records and sent FIN would cut an upload
//! or an HTTP/1.0 body short with the receiver seeing a clean end. Keying 3 ([`KEYING_SEALED_END`],
//! offered before keying 2 and taken by agents that know it) keys streams as keying 2 and ends each
//! direction with an *end record*: a record with no plaintext, sealed with the associated data
//! `"sekisho e2e end"` (data records have none) at the next record number. A receiver on keying 3
//! treats a FIN without a valid end record before it, or anything after one, as an error (the
//! stream is reset, the application sees a failure); data records are never empty there, so the
//! record of exactly a tag's length is always the end. Keying 3 also binds each stream to its
//! service: its first secret is `HKDF-Expand(split secret, "sekisho e2e stream" || u32be(index) ||
//! service name, 32)`, so a stream the relay hands to another service of the same back agent fails.
//! The whole format, with test vectors: `docs/SEALING.md`.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use bytes::{Buf, BytesMut};
use parking_lot::Mutex;
use snow::resolvers::{DefaultResolver, FallbackResolver, RingResolver};
use snow::{Builder, HandshakeState};
use zeroize::Zeroize;

pub use self::stream::{Opener, RECORD_OVERHEAD, Sealer};
use crate::aead::{Key, TAG_LEN};

mod stream;

/// The Noise protocol: KK handshake, X25519, AES-256-GCM (hardware accelerated through
/// aws-lc-rs), SHA-256.
pub const NOISE_PARAMS: &str = "Noise_KK_25519_AESGCM_SHA256";
/// Largest Noise message.
const MAX_RECORD: usize = 65_535;
/// Largest plaintext carried in one record.
pub const MAX_PLAIN: usize = MAX_RECORD - TAG_LEN;
/// Stream indices this far below the highest seen are refused outright.
const REPLAY_WINDOW: u32 = 1 << 16;
/// Records per key on a stream of keying 2: at most 4 GiB under one key.
pub const EPOCH_RECORDS: u32 = 1 << 16;
/// Stream indices a pair session hands out before its initiator makes a new session: half of the
/// index space, far before the end, which is permanent (an index is never handed out twice).
pub const REHANDSHAKE_AFTER: u32 = 1 << 31;
/// Records a keying-1 session (older agents: one key per direction for every stream) seals and
/// opens in all before its initiator makes a new session for new streams; at twice this a stream
/// still on it is refused more records. 2^22 records of at most 2^12 AES blocks keep each of its
/// two keys near 2^34 blocks, inside RFC 8446 §5.5's 2^34.5.
pub const KEYING_1_RECORDS: u64 = 1 << 22;
/// The handshake payload by which both ends agree on keys per stream.
pub const KEYING_PER_STREAM: &[u8] = b"sekisho-e2e/2";
/// The handshake payload by which both ends agree on keys per stream and a sealed end.
pub const KEYING_SEALED_END: &[u8] = b"sekisho-e2e/3";
/// What an initiator of this version offers: the newest keying first.
const OFFER: &[u8] = b"sekisho-e2e/3 sekisho-e2e/2";
/// What a responder of this version takes, in order of preference.
const KNOWN: &[&[u8]] = &[KEYING_SEALED_END, KEYING_PER_STREAM];
/// The associated data of an end record (data records have none).
const END_AAD: &[u8] = b"sekisho e2e end";
const STREAM_LABEL: &[u8] = b"sekisho e2e stream";
const KEY_LABEL: &[u8] = b"sekisho e2e key";
const NEXT_LABEL: &[u8] = b"sekisho e2e next";

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
    #[error("an empty data record cannot be sealed on keying 3 (it would read as the end)")]
    EmptyRecord,
    #[error("the stream ended without its sealed end record: it was cut short on the way")]
    Truncated,
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
    initiate_offering(local_secret, remote_public, OFFER)
}

fn initiate_offering(
    local_secret: &[u8; 32],
    remote_public: &[u8; 32],
    offer: &[u8],
) -> Result<(Initiator, Vec<u8>), E2eError> {
    let mut state =
        builder().local_private_key(local_secret).remote_public_key(remote_public).build_initiator().map_err(noise)?;
    let mut msg = vec![0u8; 256];
    let n = state.write_message(offer, &mut msg).map_err(noise)?;
    msg.truncate(n);
    Ok((Initiator { state }, msg))
}

impl Initiator {
    /// Completes the handshake with the responder's answer.
    pub fn finish(mut self, reply: &[u8]) -> Result<PairSession, E2eError> {
        let mut payload = vec![0u8; 256];
        let n = self.state.read_message(reply, &mut payload).map_err(noise)?;
        // Keying 2 or 3 only if the answer is exactly one that was offered and taken.
        let keying = match &payload[..n] {
            a if a == KEYING_SEALED_END => Keying::SealedEnd,
            a if a == KEYING_PER_STREAM => Keying::PerStream,
            _ => Keying::Session,
        };
        PairSession::new(self.state, keying)
    }
}

/// Answers a handshake from `remote_public`; returns the session and the reply to send.
pub fn respond(
    local_secret: &[u8; 32],
    remote_public: &[u8; 32],
    first: &[u8],
) -> Result<(PairSession, Vec<u8>), E2eError> {
    respond_knowing(local_secret, remote_public, first, KNOWN)
}

/// Answers with the first of `known` that the offer lists, or keying 1 when none (tests pass
/// fewer to answer as an agent of an earlier version).
fn respond_knowing(
    local_secret: &[u8; 32],
    remote_public: &[u8; 32],
    first: &[u8],
    known: &[&[u8]],
) -> Result<(PairSession, Vec<u8>), E2eError> {
    let mut state =
        builder().local_private_key(local_secret).remote_public_key(remote_public).build_responder().map_err(noise)?;
    let mut payload = vec![0u8; 256];
    let n = state.read_message(first, &mut payload).map_err(noise)?;
    let offered = |k: &[u8]| payload[..n].split(|b| *b == b' ').any(|token| token == k);
    let (keying, answer): (Keying, &[u8]) = match known.iter().find(|k| offered(k)) {
        Some(k) if *k == KEYING_SEALED_END => (Keying::SealedEnd, KEYING_SEALED_END),
        Some(k) if *k == KEYING_PER_STREAM => (Keying::PerStream, KEYING_PER_STREAM),
        _ => (Keying::Session, &[]),
    };
    let mut reply = vec![0u8; 256];
    let n = state.write_message(answer, &mut reply).map_err(noise)?;
    reply.truncate(n);
    Ok((PairSession::new(state, keying)?, reply))
}

/// How a session keys its streams (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Keying {
    /// Keying 1: the session's two keys seal every stream.
    Session,
    /// Keying 2: a key per stream and direction, moved every [`EPOCH_RECORDS`] records.
    PerStream,
    /// Keying 3: keys as keying 2, and each direction ends with a sealed end record.
    SealedEnd,
}

/// The keys shared by one front agent and one back agent.
///
/// The handshake is snow's; the transport is Noise's AESGCM cipher (4 zero bytes and a 64-bit
/// big-endian nonce, empty associated data) applied in place ([`crate::aead`]), so records are sealed in
/// the buffer the socket was read into and opened in the buffer they arrived in: no extra copies on
/// the per-byte path. The session keeps only the two secrets of Noise's split (wiped when it is
/// dropped); each stream derives its keys from them on its first record.
pub struct PairSession {
    send: [u8; 32],
    recv: [u8; 32],
    keying: Keying,
    /// Records per key on keying 2 ([`EPOCH_RECORDS`]; fewer in tests).
    epoch: u32,
    /// Records sealed and opened on keying 1, every stream together, and where the count stops
    /// ([`KEYING_1_RECORDS`]; fewer in tests).
    keying1_records: AtomicU64,
    keying1_limit: u64,
    next_index: AtomicU32,
    seen: Mutex<Seen>,
}

impl Drop for PairSession {
    fn drop(&mut self) {
        self.send.zeroize();
        self.recv.zeroize();
    }
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

fn aead_key(bytes: &[u8; 32]) -> Result<Key, E2eError> {
    Key::new(bytes).map_err(|e| E2eError::Noise(e.to_string()))
}

fn expand(secret: &[u8; 32], info: &[&[u8]]) -> Result<[u8; 32], E2eError> {
    crate::aead::expand(secret, info).map_err(|e| E2eError::Noise(e.to_string()))
}

impl PairSession {
    fn new(mut state: HandshakeState, keying: Keying) -> Result<Self, E2eError> {
        if !state.is_handshake_finished() {
            return Err(E2eError::Noise("handshake not finished".into()));
        }
        let (mut i2r, mut r2i) = state.dangerously_get_raw_split();
        let (send, recv) = if state.is_initiator() { (i2r, r2i) } else { (r2i, i2r) };
        i2r.zeroize();
        r2i.zeroize();
        Ok(PairSession {
            send,
            recv,
            keying,
            epoch: EPOCH_RECORDS,
            keying1_records: AtomicU64::new(0),
            keying1_limit: KEYING_1_RECORDS,
            next_index: AtomicU32::new(1),
            seen: Mutex::new(Seen::default()),
        })
    }

    /// How this session keys its streams, as both ends agreed in the handshake.
    pub fn keying(&self) -> Keying {
        self.keying
    }

    /// A fresh stream index for the initiator. Once the indices run out the session stays
    /// exhausted: it never wraps to indices (and so keys and nonces) it handed out before. An index
    /// whose stream then fails to open is simply never used.
    pub fn next_index(&self) -> Result<u32, E2eError> {
        self.next_index
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |i| i.checked_add(1))
            .map_err(|_| E2eError::Exhausted)
    }

    /// Whether the initiator should make a new session for its next streams
    /// ([`REHANDSHAKE_AFTER`] indices handed out).
    pub fn wants_rehandshake(&self) -> bool {
        self.next_index.load(Ordering::Relaxed) > REHANDSHAKE_AFTER
            || self.keying1_records.load(Ordering::Relaxed) >= self.keying1_limit
    }

    /// Counts one record under keying 1's session keys; refuses it past twice the limit (a stream
    /// that outlived the re-handshake its session asked for).
    fn count_keying1_record(&self) -> Result<(), E2eError> {
        if self.keying1_records.fetch_add(1, Ordering::Relaxed) >= 2 * self.keying1_limit {
            return Err(E2eError::Exhausted);
        }
        Ok(())
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
mod tests;
