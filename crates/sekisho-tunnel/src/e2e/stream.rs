//! Sealing one stream: its keys (derived on the first record, moved every epoch) and its records.

use std::sync::Arc;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use zeroize::Zeroize;

use super::{E2eError, END_AAD, KEY_LABEL, Keying, MAX_PLAIN, NEXT_LABEL, PairSession, STREAM_LABEL, aead_key, expand};
use crate::aead::{Key, NONCE_LEN, TAG_LEN};

impl PairSession {
    /// The sealing and opening halves of stream `index` of `service` (its name, which both agents
    /// know: the front from its route, the back from its own services). Keying 3 binds the keys
    /// to the service, so a stream the relay hands to another service of the same back agent
    /// fails its first record; its keys are made here. Keyings 1 and 2 ignore the service and
    /// make their keys on the first record.
    pub fn stream(self: &Arc<Self>, index: u32, service: &str) -> Result<(Sealer, Opener), E2eError> {
        let ends = self.keying == Keying::SealedEnd;
        let keys = |secret: &[u8; 32]| -> Result<StreamKeys, E2eError> {
            if !ends {
                return Ok(StreamKeys::Pending(self.clone()));
            }
            let first = expand(secret, &[STREAM_LABEL, &index.to_be_bytes(), service.as_bytes()])?;
            Ok(StreamKeys::Keyed(EpochKey::new(first, Some(self.epoch), 0)?))
        };
        Ok((
            Sealer { keys: keys(&self.send)?, index, seq: 0, ends },
            Opener { keys: keys(&self.recv)?, index, seq: 0, buf: BytesMut::new(), ends, ended: false },
        ))
    }
}

/// One direction of one stream: the session until the first record, then the key of the current
/// epoch, boxed (with ring the key schedule is about half a KiB), so a stream that waits costs a
/// pointer and the session stays shared.
pub(super) enum StreamKeys {
    Pending(Arc<PairSession>),
    Keyed(Box<EpochKey>),
}

pub(super) struct EpochKey {
    /// The secret `key` comes from (on keying 1 the session's key itself).
    pub(super) secret: [u8; 32],
    /// Keying 1: the session whose two keys every stream shares, counting their records.
    shared: Option<Arc<PairSession>>,
    key: Key,
    /// Records per key; `None` on keying 1, whose key never moves.
    epoch: Option<u32>,
    /// Which epoch of the stream `key` belongs to: records `generation * epoch ..` on.
    generation: u32,
}

impl EpochKey {
    fn new(mut secret: [u8; 32], epoch: Option<u32>, generation: u32) -> Result<Box<EpochKey>, E2eError> {
        Self::made(secret, epoch, generation, None).inspect_err(|_| secret.zeroize())
    }

    fn made(
        mut secret: [u8; 32],
        epoch: Option<u32>,
        generation: u32,
        shared: Option<Arc<PairSession>>,
    ) -> Result<Box<EpochKey>, E2eError> {
        let key = match epoch {
            None => aead_key(&secret),
            Some(_) => expand(&secret, &[KEY_LABEL]).and_then(|mut bytes| {
                let key = aead_key(&bytes);
                bytes.zeroize();
                key
            }),
        };
        match key {
            Ok(key) => Ok(Box::new(EpochKey { secret, key, epoch, generation, shared })),
            Err(e) => {
                secret.zeroize();
                Err(e)
            }
        }
    }
}

impl Drop for EpochKey {
    /// The secret the next keys come from is wiped; the key schedule it made lives in aws-lc (which
    /// cleanses it when freed) or in ring (which does not).
    fn drop(&mut self) {
        self.secret.zeroize();
    }
}

impl StreamKeys {
    /// The key for record `seq` of stream `index` in direction `send`: derived at the first record,
    /// moved when `seq` enters the next epoch. Both ends count `seq` the same way (it only moves
    /// after a record was sealed or opened), so they move keys at the same record.
    pub(super) fn for_record(&mut self, index: u32, seq: u32, send: bool) -> Result<&Key, E2eError> {
        let fresh = match self {
            StreamKeys::Pending(session) => {
                let secret = if send { &session.send } else { &session.recv };
                Some(match session.keying {
                    Keying::Session => {
                        session.count_keying1_record()?;
                        EpochKey::made(*secret, None, 0, Some(session.clone()))?
                    }
                    // Keying 3's keys are made with the stream (bound to its service).
                    Keying::SealedEnd => return Err(E2eError::Noise("stream keys of keying 3 missing".into())),
                    Keying::PerStream => {
                        EpochKey::new(expand(secret, &[STREAM_LABEL, &index.to_be_bytes()])?, Some(session.epoch), 0)?
                    }
                })
            }
            StreamKeys::Keyed(k) => match k.epoch {
                None => {
                    if let Some(session) = &k.shared {
                        session.count_keying1_record()?;
                    }
                    None
                }
                Some(epoch) if seq / epoch != k.generation => {
                    Some(EpochKey::new(expand(&k.secret, &[NEXT_LABEL])?, k.epoch, k.generation + 1)?)
                }
                _ => None,
            },
        };
        if let Some(fresh) = fresh {
            *self = StreamKeys::Keyed(fresh);
        }
        match self {
            StreamKeys::Keyed(k) => Ok(&k.key),
            StreamKeys::Pending(_) => Err(E2eError::Noise("stream key missing".into())),
        }
    }
}

pub(super) fn nonce(index: u32, seq: u32) -> [u8; NONCE_LEN] {
    let mut n = [0u8; NONCE_LEN];
    n[4..].copy_from_slice(&((u64::from(index) << 32) | u64::from(seq)).to_be_bytes());
    n
}

/// Bytes a record adds around its plaintext: the length prefix and the tag.
pub const RECORD_OVERHEAD: usize = 2 + TAG_LEN;

/// Seals the outgoing bytes of one stream.
pub struct Sealer {
    pub(super) keys: StreamKeys,
    pub(super) index: u32,
    seq: u32,
    /// Keying 3: the direction ends with a sealed end record, and data records are never empty.
    ends: bool,
}

impl Sealer {
    /// Seals a record in place. `record[2..2 + plain_len]` holds the plaintext; `record` must have
    /// room for the tag after it. Returns the record's total length (prefix, ciphertext, tag).
    pub fn seal_in_place(&mut self, record: &mut [u8], plain_len: usize) -> Result<usize, E2eError> {
        if self.ends && plain_len == 0 {
            return Err(E2eError::EmptyRecord);
        }
        self.seal_record(record, plain_len, &[])
    }

    /// Appends the end record to `out` when the session's keying has one (keying 3); says whether
    /// it did. Sent once, after the last data record and before the stream's FIN.
    pub fn seal_end(&mut self, out: &mut BytesMut) -> Result<bool, E2eError> {
        if !self.ends {
            return Ok(false);
        }
        let start = out.len();
        out.put_u16(0);
        out.put_bytes(0, TAG_LEN);
        self.seal_record(&mut out[start..], 0, END_AAD)?;
        self.ends = false;
        Ok(true)
    }

    fn seal_record(&mut self, record: &mut [u8], plain_len: usize, aad: &[u8]) -> Result<usize, E2eError> {
        if plain_len > MAX_PLAIN || record.len() < plain_len + RECORD_OVERHEAD {
            return Err(E2eError::Oversized(plain_len));
        }
        if self.seq == u32::MAX {
            return Err(E2eError::Exhausted);
        }
        record[..2].copy_from_slice(&((plain_len + TAG_LEN) as u16).to_be_bytes());
        let (body, rest) = record[2..].split_at_mut(plain_len);
        let tag = self
            .keys
            .for_record(self.index, self.seq, true)?
            .seal(nonce(self.index, self.seq), aad, body)
            .map_err(|e| E2eError::Noise(e.to_string()))?;
        rest[..TAG_LEN].copy_from_slice(&tag);
        self.seq += 1;
        Ok(plain_len + RECORD_OVERHEAD)
    }

    /// Appends `plain` (at most [`MAX_PLAIN`] bytes) to `out` as one record; on error `out` is
    /// left as it was (no plaintext where ciphertext would have been).
    pub fn seal(&mut self, plain: &[u8], out: &mut BytesMut) -> Result<(), E2eError> {
        let start = out.len();
        out.put_u16(0);
        out.extend_from_slice(plain);
        out.put_bytes(0, TAG_LEN);
        if let Err(e) = self.seal_in_place(&mut out[start..], plain.len()) {
            out.truncate(start);
            return Err(e);
        }
        Ok(())
    }
}

/// Opens the incoming records of one stream.
pub struct Opener {
    keys: StreamKeys,
    index: u32,
    seq: u32,
    buf: BytesMut,
    /// Keying 3: the direction must end with a sealed end record.
    ends: bool,
    /// The end record has been opened: nothing may follow it.
    ended: bool,
}

impl Opener {
    /// Adds received ciphertext bytes.
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// The next complete record's plaintext, if one has fully arrived. On keying 3 the end record
    /// is taken here too (it has no plaintext; see [`Self::check_end`]), and anything after it is
    /// an error.
    pub fn next_record(&mut self) -> Result<Option<Bytes>, E2eError> {
        if self.ended && !self.buf.is_empty() {
            return Err(E2eError::BadRecord);
        }
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
        // On keying 3 a record of no plaintext is the end, sealed with its own associated data.
        let end = self.ends && len == TAG_LEN;
        let plain_len = self
            .keys
            .for_record(self.index, self.seq, false)?
            .open(nonce(self.index, self.seq), if end { END_AAD } else { &[] }, &mut record)
            .map_err(|_| E2eError::BadRecord)?;
        record.truncate(plain_len);
        self.seq = self.seq.checked_add(1).ok_or(E2eError::Exhausted)?;
        if end {
            self.ended = true;
            return if self.buf.is_empty() { Ok(None) } else { Err(E2eError::BadRecord) };
        }
        Ok(Some(record.freeze()))
    }

    /// Whether the stream may end here (its transport has ended): no record is half received,
    /// and on keying 3 the end record has arrived. Otherwise the stream was cut short on the way.
    pub fn check_end(&self) -> Result<(), E2eError> {
        if !self.buf.is_empty() || (self.ends && !self.ended) {
            return Err(E2eError::Truncated);
        }
        Ok(())
    }

    /// Bytes of an incomplete record still waiting for the rest.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }
}
