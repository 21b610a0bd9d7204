//! Recordings at rest: AES-256-GCM in chunks, written as the session goes, so memory stays
//! bounded and a crash loses at most the chunk being written.
//!
//! A sealed file is `"SKREC1\n" ‖ prefix(8)` followed by chunks `len(u32 BE) ‖ ciphertext ‖ tag`,
//! `len` counting ciphertext and tag. Chunk `n` uses nonce `prefix ‖ n (u32 BE)` and associated
//! data `n (u32 BE) ‖ last (1 byte)`, so a chunk moved, dropped, or presented as the final one
//! fails authentication, and a file cut after any chunk but the final one opens as incomplete.
//! The prefix is random per recording; with one key for all recordings, nonces stay unique while
//! fewer than about 2³² recordings are sealed under it. What this cannot show alone is that an
//! incomplete file was cut short on purpose: the session's audit event should record the sealed
//! length and hash when the session ends.

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use ring::hkdf;

/// The file magic.
pub const MAGIC: &[u8; 7] = b"SKREC1\n";
/// The largest plaintext one chunk may hold.
pub const MAX_CHUNK: usize = 1 << 20;
const PREFIX_LEN: usize = 8;
const TAG_LEN: usize = 16;
const HEADER_LEN: usize = MAGIC.len() + PREFIX_LEN;
const INFO: &[u8] = b"sekisho recordings v1";

/// The recording key: HKDF-SHA256 of the relay's master key bytes (no salt), info
/// `"sekisho recordings v1"`.
#[expect(clippy::expect_used, reason = "HKDF-SHA256 can always produce 32 bytes")]
pub fn recording_key(master: &[u8]) -> [u8; 32] {
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, &[]).extract(master);
    let mut key = [0; 32];
    prk.expand(&[INFO], hkdf::HKDF_SHA256).and_then(|okm| okm.fill(&mut key)).expect("32-byte HKDF output");
    key
}

#[expect(clippy::expect_used, reason = "any 32 bytes are an AES-256 key")]
fn aes_key(key: &[u8; 32]) -> LessSafeKey {
    LessSafeKey::new(UnboundKey::new(&AES_256_GCM, key).expect("32-byte AES key"))
}

fn nonce(prefix: &[u8; PREFIX_LEN], counter: u32) -> Nonce {
    let mut n = [0; 12];
    n[..PREFIX_LEN].copy_from_slice(prefix);
    n[PREFIX_LEN..].copy_from_slice(&counter.to_be_bytes());
    Nonce::assume_unique_for_key(n)
}

fn aad(counter: u32, last: bool) -> [u8; 5] {
    let c = counter.to_be_bytes();
    [c[0], c[1], c[2], c[3], u8::from(last)]
}

/// Why a chunk could not be sealed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealChunkError {
    #[error("recording already sealed with its final chunk")]
    Finished,
    #[error("chunk of {len} bytes is larger than the {max}-byte maximum")]
    TooLarge { len: usize, max: usize },
    #[error("recording has used all 2^32 chunk numbers")]
    Exhausted,
}

/// Seals one recording, chunk by chunk.
pub struct Sealer {
    key: LessSafeKey,
    prefix: [u8; PREFIX_LEN],
    next: u32,
    finished: bool,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealer").field("chunks", &self.next).field("finished", &self.finished).finish_non_exhaustive()
    }
}

impl Sealer {
    /// A new recording with a fresh random nonce prefix.
    pub fn new(key: &[u8; 32]) -> Sealer {
        Sealer { key: aes_key(key), prefix: rand::random(), next: 0, finished: false }
    }

    /// The file header; it goes first.
    pub fn header(&self) -> Vec<u8> {
        [MAGIC.as_slice(), &self.prefix].concat()
    }

    /// Encrypts the next chunk; `last` marks the end of the recording. After the last chunk
    /// every call fails with [`SealChunkError::Finished`].
    pub fn seal_chunk(&mut self, plain: &[u8], last: bool) -> Result<Vec<u8>, SealChunkError> {
        if self.finished {
            return Err(SealChunkError::Finished);
        }
        if plain.len() > MAX_CHUNK {
            return Err(SealChunkError::TooLarge { len: plain.len(), max: MAX_CHUNK });
        }
        let counter = self.next;
        // Chunk u32::MAX is left unused so that `next` cannot wrap.
        self.next = counter.checked_add(1).ok_or(SealChunkError::Exhausted)?;
        let mut out = Vec::with_capacity(4 + plain.len() + TAG_LEN);
        // At most MAX_CHUNK + TAG_LEN, well inside u32.
        out.extend_from_slice(&((plain.len() + TAG_LEN) as u32).to_be_bytes());
        out.extend_from_slice(plain);
        let nonce = nonce(&self.prefix, counter);
        // Sealing fails only past GCM's 64 GiB-per-nonce limit, far above MAX_CHUNK.
        let tag = self
            .key
            .seal_in_place_separate_tag(nonce, Aad::from(aad(counter, last)), &mut out[4..])
            .map_err(|_| SealChunkError::TooLarge { len: plain.len(), max: MAX_CHUNK })?;
        out.extend_from_slice(tag.as_ref());
        self.finished = last;
        Ok(out)
    }
}

/// A recording opened by [`open`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opened {
    /// Every authenticated chunk's plaintext, in order.
    pub plain: Vec<u8>,
    /// Whether the final chunk was present. `false` means the session was still running or
    /// the writer crashed (or someone cut the file at a chunk boundary).
    pub complete: bool,
    /// Bytes of a partly written chunk at the end of an incomplete file, left out.
    pub torn_tail: usize,
}

/// Why a sealed recording could not be opened; offsets are bytes from the start of the file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealedError {
    #[error("not a sealed recording: the file does not start with `SKREC1`")]
    BadMagic,
    #[error("sealed recording is {len} bytes, shorter than its {HEADER_LEN}-byte header")]
    TooShort { len: usize },
    #[error("chunk {chunk} at byte {offset}: length {len} is outside {TAG_LEN}..={max}", max = MAX_CHUNK + TAG_LEN)]
    BadLength { chunk: u32, offset: usize, len: u32 },
    #[error(
        "chunk {chunk} at byte {offset} failed authentication: wrong key, or chunks were altered, reordered, dropped or spliced"
    )]
    BadTag { chunk: u32, offset: usize },
    #[error("{len} bytes of trailing data after the final chunk, at byte {offset}")]
    TrailingData { offset: usize, len: usize },
    #[error("more than 2^32 chunks")]
    TooManyChunks,
}

/// Decrypts and authenticates a whole sealed recording.
pub fn open(key: &[u8; 32], bytes: &[u8]) -> Result<Opened, SealedError> {
    if bytes.len() < HEADER_LEN {
        return Err(if MAGIC.starts_with(bytes) || bytes.starts_with(MAGIC) {
            SealedError::TooShort { len: bytes.len() }
        } else {
            SealedError::BadMagic
        });
    }
    let (magic, rest) = bytes.split_at(MAGIC.len());
    if magic != MAGIC {
        return Err(SealedError::BadMagic);
    }
    let (prefix, mut rest) =
        rest.split_first_chunk::<PREFIX_LEN>().ok_or(SealedError::TooShort { len: bytes.len() })?;
    let key = aes_key(key);
    let mut plain = Vec::new();
    let mut chunk: u32 = 0;
    loop {
        let offset = bytes.len() - rest.len();
        let Some((len, body)) = rest.split_first_chunk::<4>() else {
            return Ok(Opened { plain, complete: false, torn_tail: rest.len() });
        };
        let len = u32::from_be_bytes(*len);
        let size = len as usize;
        if !(TAG_LEN..=MAX_CHUNK + TAG_LEN).contains(&size) {
            return Err(SealedError::BadLength { chunk, offset, len });
        }
        if body.len() < size {
            return Ok(Opened { plain, complete: false, torn_tail: rest.len() });
        }
        let (sealed, after) = body.split_at(size);
        // Only the file's final chunk should carry the last flag; try that guess first.
        let at_end = after.is_empty();
        let (text, last) = [at_end, !at_end]
            .into_iter()
            .find_map(|last| {
                let mut buf = sealed.to_vec();
                let n = key.open_in_place(nonce(prefix, chunk), Aad::from(aad(chunk, last)), &mut buf).ok()?.len();
                buf.truncate(n);
                Some((buf, last))
            })
            .ok_or(SealedError::BadTag { chunk, offset })?;
        plain.extend_from_slice(&text);
        match (last, at_end) {
            (true, true) => return Ok(Opened { plain, complete: true, torn_tail: 0 }),
            (true, false) => {
                return Err(SealedError::TrailingData { offset: bytes.len() - after.len(), len: after.len() });
            }
            (false, true) => return Ok(Opened { plain, complete: false, torn_tail: 0 }),
            (false, false) => {}
        }
        rest = after;
        chunk = chunk.checked_add(1).ok_or(SealedError::TooManyChunks)?;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;

    const KEY: [u8; 32] = [7; 32];

    /// A three-chunk recording and where its chunks start.
    fn sealed() -> (Vec<u8>, Vec<usize>) {
        let mut s = Sealer::new(&KEY);
        let mut file = s.header();
        let mut starts = Vec::new();
        for (text, last) in [(&b"first "[..], false), (b"second ", false), (b"third", true)] {
            starts.push(file.len());
            file.extend(s.seal_chunk(text, last).unwrap());
        }
        (file, starts)
    }

    #[test]
    fn key_derivation_is_stable_and_separated() {
        let k = recording_key(b"master");
        assert_eq!(k, recording_key(b"master"));
        assert_ne!(k, recording_key(b"master2"));
        assert_ne!(k.as_slice(), &[0; 32]);
    }

    #[test]
    fn round_trip() {
        let (file, _) = sealed();
        assert!(file.starts_with(MAGIC));
        let opened = open(&KEY, &file).unwrap();
        assert_eq!(opened, Opened { plain: b"first second third".to_vec(), complete: true, torn_tail: 0 });
    }

    #[test]
    fn empty_and_large_chunks() {
        let mut s = Sealer::new(&KEY);
        let mut file = s.header();
        assert!(open(&KEY, &file).unwrap() == Opened { plain: vec![], complete: false, torn_tail: 0 });
        let big = vec![0xab; MAX_CHUNK];
        file.extend(s.seal_chunk(&big, false).unwrap());
        file.extend(s.seal_chunk(b"", true).unwrap());
        assert_eq!(open(&KEY, &file).unwrap().plain, big);
        assert_eq!(s.seal_chunk(b"more", false), Err(SealChunkError::Finished));
        let mut s = Sealer::new(&KEY);
        assert_eq!(
            s.seal_chunk(&vec![0; MAX_CHUNK + 1], false),
            Err(SealChunkError::TooLarge { len: MAX_CHUNK + 1, max: MAX_CHUNK })
        );
    }

    #[test]
    fn nonce_prefix_differs_per_recording() {
        assert_ne!(Sealer::new(&KEY).header(), Sealer::new(&KEY).header());
    }

    #[test]
    fn tampering_is_detected() {
        let (file, _) = sealed();
        for i in HEADER_LEN..file.len() {
            let mut bad = file.clone();
            bad[i] ^= 0x01;
            // Either an error, or (a final chunk's length made longer) a torn, incomplete file.
            if let Ok(opened) = open(&KEY, &bad) {
                assert!(!opened.complete && opened.torn_tail > 0, "byte {i}");
                assert!(b"first second third".starts_with(&opened.plain), "byte {i}");
            }
        }
        let mut bad = file.clone();
        bad[MAGIC.len()] ^= 1; // the nonce prefix
        assert_eq!(open(&KEY, &bad), Err(SealedError::BadTag { chunk: 0, offset: HEADER_LEN }));
        bad = file.clone();
        bad[0] = b'X';
        assert_eq!(open(&KEY, &bad), Err(SealedError::BadMagic));
        assert_eq!(open(&KEY, b"SKREC"), Err(SealedError::TooShort { len: 5 }));
        assert_eq!(open(&KEY, b"hello"), Err(SealedError::BadMagic));
    }

    #[test]
    fn swapped_and_dropped_chunks_fail() {
        let (file, s) = sealed();
        let chunk = |i: usize| &file[s[i]..s.get(i + 1).copied().unwrap_or(file.len())];
        let swapped = [&file[..s[0]], chunk(1), chunk(0), chunk(2)].concat();
        assert_eq!(open(&KEY, &swapped), Err(SealedError::BadTag { chunk: 0, offset: s[0] }));
        let dropped = [&file[..s[0]], chunk(0), chunk(2)].concat();
        assert_eq!(open(&KEY, &dropped), Err(SealedError::BadTag { chunk: 1, offset: s[1] }));
    }

    #[test]
    fn truncation_opens_incomplete() {
        let (file, s) = sealed();
        let cut = open(&KEY, &file[..s[2]]).unwrap();
        assert_eq!(cut, Opened { plain: b"first second ".to_vec(), complete: false, torn_tail: 0 });
        let torn = open(&KEY, &file[..s[2] + 7]).unwrap();
        assert_eq!(torn, Opened { plain: b"first second ".to_vec(), complete: false, torn_tail: 7 });
        let torn = open(&KEY, &file[..s[1] + 2]).unwrap();
        assert_eq!(torn, Opened { plain: b"first ".to_vec(), complete: false, torn_tail: 2 });
        // A non-final chunk presented as the end is not the final chunk.
        let mut s2 = Sealer::new(&KEY);
        let mut f = s2.header();
        f.extend(s2.seal_chunk(b"a", false).unwrap());
        assert!(!open(&KEY, &f).unwrap().complete);
    }

    #[test]
    fn trailing_data_and_bad_lengths() {
        let (file, _) = sealed();
        let mut more = file.clone();
        more.extend_from_slice(&[0, 0, 0, 20, 1, 2]);
        assert_eq!(open(&KEY, &more), Err(SealedError::TrailingData { offset: file.len(), len: 6 }));
        let mut zero = file[..HEADER_LEN].to_vec();
        zero.extend_from_slice(&[0, 0, 0, 3]);
        assert_eq!(open(&KEY, &zero), Err(SealedError::BadLength { chunk: 0, offset: HEADER_LEN, len: 3 }));
        let mut huge = file[..HEADER_LEN].to_vec();
        huge.extend_from_slice(&u32::MAX.to_be_bytes());
        let err = open(&KEY, &huge).unwrap_err();
        assert!(err.to_string().contains("outside 16..=1048592"), "{err}");
    }

    #[test]
    fn wrong_key_fails() {
        let (file, _) = sealed();
        assert_eq!(open(&[8; 32], &file), Err(SealedError::BadTag { chunk: 0, offset: HEADER_LEN }));
    }
}
