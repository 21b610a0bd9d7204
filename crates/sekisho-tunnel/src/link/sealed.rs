//! The sealed link's record layer (`sekisho/2`); the format is described in [`super`].

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite};
use zeroize::Zeroize;

use crate::aead::{Key, NONCE_LEN};
use crate::transport::Transport;

/// Exporter label of the two record secrets.
const SECRETS_LABEL: &[u8] = b"EXPORTER-sekisho-link-records";
const HEADER: usize = 4;
const TAG: usize = crate::aead::TAG_LEN;
/// Largest plaintext in one record.
pub const MAX_PLAIN: usize = 128 << 10;
const MAX_SEALED: usize = MAX_PLAIN + TAG;
/// Bytes asked of the socket per read.
const READ_CHUNK: usize = 256 << 10;
/// Sealed bytes gathered before they are written (one system call).
const WRITE_BATCH: usize = 256 << 10;
/// Largest output buffer kept once written.
const OUT_KEEP: usize = 32 << 10;
/// Records sealed with one key before the direction moves to the next.
pub const EPOCH_RECORDS: u64 = 1 << 20;

const KEY_LABEL: &[u8] = b"sekisho link key";
const IV_LABEL: &[u8] = b"sekisho link iv";
const NEXT_LABEL: &[u8] = b"sekisho link next";

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

fn bad_record() -> io::Error {
    invalid("sealed link: a record failed authentication (tampered, reordered or cut)".to_owned())
}

/// The two record secrets of one link, from the TLS handshake.
pub struct LinkSecrets {
    client: [u8; 32],
    server: [u8; 32],
}

impl std::fmt::Debug for LinkSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkSecrets").finish_non_exhaustive()
    }
}

impl Drop for LinkSecrets {
    fn drop(&mut self) {
        self.client.zeroize();
        self.server.zeroize();
    }
}

impl LinkSecrets {
    /// Derives the secrets from a finished TLS 1.3 handshake (either side gets the same two).
    pub fn export<D>(tls: &rustls::ConnectionCommon<D>) -> Result<Self, rustls::Error> {
        let mut both = tls.export_keying_material([0u8; 64], SECRETS_LABEL, None)?;
        let mut secrets = LinkSecrets { client: [0; 32], server: [0; 32] };
        let (client, server) = both.split_at(32);
        secrets.client.copy_from_slice(client);
        secrets.server.copy_from_slice(server);
        // The exporter's output is the two secrets: no copy of them stays behind.
        both.zeroize();
        Ok(secrets)
    }
}

fn expand<const N: usize>(secret: &[u8; 32], label: &[u8]) -> io::Result<[u8; N]> {
    crate::aead::expand(secret, &[label]).map_err(|e| invalid(format!("sealed link: {e}")))
}

/// One direction's key, IV and record counter.
struct Direction {
    secret: [u8; 32],
    key: Key,
    iv: [u8; NONCE_LEN],
    seq: u64,
    /// Records per key ([`EPOCH_RECORDS`]; fewer in tests).
    epoch: u64,
}

impl Direction {
    fn new(secret: [u8; 32], epoch: u64) -> io::Result<Self> {
        let mut key: [u8; 16] = expand(&secret, KEY_LABEL)?;
        let made = Key::new(&key);
        key.zeroize();
        let key = made.map_err(|e| invalid(format!("sealed link: {e}")))?;
        Ok(Direction { key, iv: expand(&secret, IV_LABEL)?, secret, seq: 0, epoch })
    }

    /// The next record's nonce, moving to the next key at the end of an epoch.
    fn next_nonce(&mut self) -> io::Result<[u8; NONCE_LEN]> {
        if self.seq == self.epoch {
            *self = Direction::new(expand(&self.secret, NEXT_LABEL)?, self.epoch)?;
        }
        let mut nonce = self.iv;
        for (b, s) in nonce[NONCE_LEN - 8..].iter_mut().zip(self.seq.to_be_bytes()) {
            *b ^= s;
        }
        self.seq += 1;
        Ok(nonce)
    }
}

impl Drop for Direction {
    /// The secret the next keys come from is wiped; the key schedule it made lives in aws-lc (which
    /// cleanses it when freed) or in ring (which does not).
    fn drop(&mut self) {
        self.secret.zeroize();
        self.iv.zeroize();
    }
}

/// A link whose bytes are sealed in [`MAX_PLAIN`]-sized records (see the module docs).
pub struct SealedLink<IO> {
    io: IO,
    tx: Direction,
    rx: Direction,
    /// Ciphertext read and not yet opened.
    rbuf: BytesMut,
    /// Sealed bytes not yet written.
    out: BytesMut,
}

impl<IO> std::fmt::Debug for SealedLink<IO> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealedLink").finish_non_exhaustive()
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin> SealedLink<IO> {
    fn new(io: IO, tx: [u8; 32], rx: [u8; 32], epoch: u64) -> io::Result<Self> {
        Ok(SealedLink {
            io,
            tx: Direction::new(tx, epoch)?,
            rx: Direction::new(rx, epoch)?,
            rbuf: BytesMut::new(),
            out: BytesMut::new(),
        })
    }

    /// The relay's end. Its first record, empty, tells the agent that it may send.
    pub fn server(io: IO, secrets: LinkSecrets) -> io::Result<Self> {
        Self::server_with_epoch(io, secrets, EPOCH_RECORDS)
    }

    fn server_with_epoch(io: IO, secrets: LinkSecrets, epoch: u64) -> io::Result<Self> {
        let mut link = SealedLink::new(io, secrets.server, secrets.client, epoch)?;
        link.seal(&VecDeque::new())?;
        Ok(link)
    }

    /// The agent's end: waits for the relay's first record, which must be empty.
    pub async fn client(io: IO, secrets: LinkSecrets) -> io::Result<Self> {
        Self::client_with_epoch(io, secrets, EPOCH_RECORDS).await
    }

    async fn client_with_epoch(io: IO, secrets: LinkSecrets, epoch: u64) -> io::Result<Self> {
        let mut link = SealedLink::new(io, secrets.client, secrets.server, epoch)?;
        match std::future::poll_fn(|cx| link.poll_record(cx)).await? {
            Some(first) if first.is_empty() => Ok(link),
            Some(_) => Err(invalid("sealed link: the relay's first record was not the empty one".to_owned())),
            None => Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "sealed link: the relay closed the connection before its first record",
            )),
        }
    }

    /// The next record, opened; `None` at a clean end of the stream (between records).
    fn poll_record(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<Option<BytesMut>>> {
        loop {
            match self.record_len()? {
                Some(len) if self.rbuf.len() >= HEADER + len => return Poll::Ready(self.open(len).map(Some)),
                Some(len) => {
                    let missing = HEADER + len - self.rbuf.len();
                    if self.rbuf.capacity() - self.rbuf.len() < missing {
                        self.rbuf.reserve(missing.max(READ_CHUNK));
                    }
                }
                None if self.rbuf.capacity() - self.rbuf.len() < READ_CHUNK / 4 => self.rbuf.reserve(READ_CHUNK),
                None => {}
            }
            match ready!(tokio_util::io::poll_read_buf(Pin::new(&mut self.io), cx, &mut self.rbuf))? {
                0 if self.rbuf.is_empty() => return Poll::Ready(Ok(None)),
                0 => {
                    return Poll::Ready(Err(invalid(
                        "sealed link: the connection closed in the middle of a record".to_owned(),
                    )));
                }
                _ => {}
            }
        }
    }

    /// The socket under the records (tests of bad input write past them).
    pub fn get_mut(&mut self) -> &mut IO {
        &mut self.io
    }

    /// The length of the next record's sealed body, once its header has arrived.
    fn record_len(&self) -> io::Result<Option<usize>> {
        let Some(header) = self.rbuf.get(..HEADER) else { return Ok(None) };
        let len = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
        if len > MAX_SEALED {
            return Err(invalid(format!(
                "sealed link: a record of {len} bytes exceeds the largest allowed ({MAX_SEALED})"
            )));
        }
        if len < TAG {
            return Err(invalid(format!("sealed link: a record of {len} bytes is shorter than its tag")));
        }
        Ok(Some(len))
    }

    /// Opens the next record (`len` sealed bytes after the header) in place.
    fn open(&mut self, len: usize) -> io::Result<BytesMut> {
        let mut record = self.rbuf.split_to(HEADER + len);
        let header = [record[0], record[1], record[2], record[3]];
        let nonce = self.rx.next_nonce()?;
        let plain = self.rx.key.open(nonce, &header, &mut record[HEADER..]).map_err(|_| bad_record())?;
        record.advance(HEADER);
        record.truncate(plain);
        Ok(record)
    }

    /// Seals the front of `chunks` (up to [`MAX_PLAIN`] bytes) as one record into the output
    /// buffer; returns how many plaintext bytes it took. The record ends at the end of a
    /// multiplexer frame where one fits, so the receiver hands it on without a copy.
    fn seal(&mut self, chunks: &VecDeque<Bytes>) -> io::Result<usize> {
        let mut plain = sekisho_wire::whole_frames(chunks.iter().map(|c| &c[..]), MAX_PLAIN);
        if plain == 0 {
            for chunk in chunks {
                plain += chunk.len().min(MAX_PLAIN - plain);
                if plain == MAX_PLAIN {
                    break;
                }
            }
        }
        let start = self.out.len();
        self.out.reserve(HEADER + plain + TAG);
        self.out.put_u32((plain + TAG) as u32);
        let mut left = plain;
        for chunk in chunks {
            if left == 0 {
                break;
            }
            let take = chunk.len().min(left);
            self.out.extend_from_slice(&chunk[..take]);
            left -= take;
        }
        let record = &mut self.out[start..];
        let header = [record[0], record[1], record[2], record[3]];
        let sealed = self.tx.next_nonce().and_then(|nonce| {
            self.tx.key.seal(nonce, &header, &mut record[HEADER..]).map_err(|e| invalid(format!("sealed link: {e}")))
        });
        match sealed {
            Ok(tag) => {
                self.out.extend_from_slice(tag.as_ref());
                Ok(plain)
            }
            Err(e) => {
                // Never leave plaintext where it could be written out.
                self.out.truncate(start);
                Err(e)
            }
        }
    }

    /// Writes out what is sealed. Ready once the output buffer is empty.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.out.is_empty() {
            let n = ready!(Pin::new(&mut self.io).poll_write(cx, &self.out))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.out.advance(n);
        }
        // A bulk batch's buffer is not kept once written: an idle link holds none.
        if self.out.capacity() > OUT_KEEP {
            self.out = BytesMut::new();
        } else {
            self.out.clear();
        }
        Poll::Ready(Ok(()))
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin> Transport for SealedLink<IO> {
    fn poll_read_into(&mut self, cx: &mut Context<'_>, dst: &mut BytesMut) -> Poll<io::Result<usize>> {
        loop {
            let Some(plain) = ready!(self.poll_record(cx))? else { return Poll::Ready(Ok(0)) };
            let n = plain.len();
            if n == 0 {
                continue;
            }
            // Whole frames per record (the usual case) leave `dst` empty between records, so
            // the record itself becomes the buffer: no copy.
            if dst.is_empty() {
                *dst = plain;
            } else {
                dst.extend_from_slice(&plain);
            }
            return Poll::Ready(Ok(n));
        }
    }

    /// Seals one record; the records go out together, [`WRITE_BATCH`] at a time or when the
    /// driver flushes (it does once the multiplexer has nothing more queued).
    fn poll_write_chunks(&mut self, cx: &mut Context<'_>, chunks: &VecDeque<Bytes>) -> Poll<io::Result<usize>> {
        if self.out.len() >= WRITE_BATCH {
            match self.poll_drain(cx) {
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending if self.out.len() >= WRITE_BATCH => return Poll::Pending,
                _ => {}
            }
        }
        Poll::Ready(self.seal(chunks))
    }

    fn poll_flush_link(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_drain(cx))?;
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown_link(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_drain(cx))?;
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// Entry point for the fuzz target `sealed_link` (`crates/sekisho-fuzz`); not an interface to
/// build on. `data` is what an agent sent on a relay's sealed link after the handshake (the
/// secrets are fixed, so what the fuzzer finds is the header and length handling: a record it
/// cannot seal fails authentication), read until the link ends or fails.
#[doc(hidden)]
pub fn fuzz_relay_reads(data: &[u8]) {
    use std::future::poll_fn;
    let Ok(rt) = tokio::runtime::Builder::new_current_thread().build() else { return };
    rt.block_on(async {
        let (near, mut far) = tokio::io::duplex(1 << 20);
        let Ok(mut link) = SealedLink::server(near, LinkSecrets { client: [1; 32], server: [2; 32] }) else { return };
        let _ = tokio::io::AsyncWriteExt::write_all(&mut far, data).await;
        let _ = tokio::io::AsyncWriteExt::shutdown(&mut far).await;
        let mut dst = BytesMut::new();
        while let Ok(n) = poll_fn(|cx| link.poll_read_into(cx, &mut dst)).await {
            if n == 0 {
                break;
            }
            dst.clear();
        }
    });
}

#[cfg(test)]
mod tests {
    use std::future::poll_fn;

    use tokio::io::{AsyncReadExt, DuplexStream};

    use super::*;

    fn secrets() -> LinkSecrets {
        LinkSecrets { client: [1; 32], server: [2; 32] }
    }

    /// Known answers, computed apart from this code (Python's `cryptography`; docs/SEALING.md,
    /// "Test vectors"): a direction's secret `0x33`×32, epochs of 2 records, so the third record
    /// is under the next secret's key and IV with its counter back at 0.
    #[test]
    fn records_match_known_answers() {
        let mut d = Direction::new([0x33; 32], 2).unwrap();
        let mut wire = String::new();
        for plain in [&b"hello"[..], b"", b"sekisho"] {
            let header = ((plain.len() + TAG) as u32).to_be_bytes();
            let mut body = plain.to_vec();
            let nonce = d.next_nonce().unwrap();
            let tag = d.key.seal(nonce, &header, &mut body).unwrap();
            wire += &(hex::encode(header) + &hex::encode(&body) + &hex::encode(tag));
        }
        let expected = [
            "00000015fcbf1e765a662b11f9dae059c842d2f96e94c3db9c",
            "000000106ca71e0468a26e5deec65a6f19e0b915",
            "00000017f2fbea03556ef390e8a28e1d08b0edacf0da90c0b23956",
        ];
        assert_eq!(wire, expected.concat());
    }

    async fn pair(epoch: u64) -> (SealedLink<DuplexStream>, SealedLink<DuplexStream>) {
        let (a, b) = tokio::io::duplex(1 << 20);
        let mut server = SealedLink::server_with_epoch(a, secrets(), epoch).unwrap();
        poll_fn(|cx| server.poll_flush_link(cx)).await.unwrap();
        let client = SealedLink::client_with_epoch(b, secrets(), epoch).await.unwrap();
        (server, client)
    }

    async fn send(link: &mut SealedLink<DuplexStream>, chunks: &[&[u8]]) -> usize {
        let queue: VecDeque<Bytes> = chunks.iter().map(|c| Bytes::copy_from_slice(c)).collect();
        let n = poll_fn(|cx| link.poll_write_chunks(cx, &queue)).await.unwrap();
        poll_fn(|cx| link.poll_flush_link(cx)).await.unwrap();
        n
    }

    async fn recv(link: &mut SealedLink<DuplexStream>, dst: &mut BytesMut) -> io::Result<usize> {
        poll_fn(|cx| link.poll_read_into(cx, dst)).await
    }

    #[tokio::test]
    async fn records_cross_both_ways_and_a_whole_record_becomes_the_buffer_without_a_copy() {
        let (mut server, mut client) = pair(EPOCH_RECORDS).await;
        assert_eq!(send(&mut client, &[b"hello ", b"relay"]).await, 11);
        let mut got = BytesMut::new();
        assert_eq!(recv(&mut server, &mut got).await.unwrap(), 11);
        assert_eq!(&got[..], b"hello relay");
        // The plaintext sits in the buffer the ciphertext was read into, after its header.
        let read_at = server.rbuf.as_ptr() as usize;
        assert_eq!(send(&mut client, &[b"second"]).await, 6);
        let mut second = BytesMut::new();
        recv(&mut server, &mut second).await.unwrap();
        assert_eq!(&second[..], b"second");
        assert_eq!(second.as_ptr() as usize, read_at + HEADER, "opened in place, handed over as is");
        // Something already in `dst` (a frame cut by a record boundary) gets the next record appended.
        send(&mut server, &[b"abc"]).await;
        send(&mut server, &[b"def"]).await;
        let mut acc = BytesMut::new();
        recv(&mut client, &mut acc).await.unwrap();
        recv(&mut client, &mut acc).await.unwrap();
        assert_eq!(&acc[..], b"abcdef");
    }

    #[tokio::test]
    async fn a_queue_larger_than_a_record_is_split_at_the_limit_in_order() {
        let (mut server, mut client) = pair(EPOCH_RECORDS).await;
        let big: Vec<u8> = (0..MAX_PLAIN + 1000).map(|i| (i % 251) as u8).collect();
        let queue: VecDeque<Bytes> = [Bytes::from(big[..1000].to_vec()), Bytes::from(big[1000..].to_vec())].into();
        let first = poll_fn(|cx| client.poll_write_chunks(cx, &queue)).await.unwrap();
        assert_eq!(first, MAX_PLAIN, "one record holds at most MAX_PLAIN bytes, cutting the last chunk");
        let rest: VecDeque<Bytes> = [Bytes::from(big[first..].to_vec())].into();
        assert_eq!(poll_fn(|cx| client.poll_write_chunks(cx, &rest)).await.unwrap(), 1000);
        poll_fn(|cx| client.poll_flush_link(cx)).await.unwrap();
        let mut got = BytesMut::new();
        while got.len() < big.len() {
            recv(&mut server, &mut got).await.unwrap();
        }
        assert_eq!(&got[..], &big[..]);
    }

    #[tokio::test]
    async fn records_end_at_a_frame_so_each_arrives_as_whole_frames() {
        let (mut server, mut client) = pair(EPOCH_RECORDS).await;
        // Two full-size DATA frames, queued as the multiplexer queues them: header, then payload.
        let payload = vec![5u8; sekisho_wire::DEFAULT_MAX_FRAME_PAYLOAD as usize];
        let mut queue = VecDeque::new();
        for stream in [1, 3] {
            let mut frame = BytesMut::new();
            sekisho_wire::Frame::Data { stream: sekisho_wire::StreamId(stream), payload: Bytes::from(payload.clone()) }
                .encode(&mut frame);
            let frame = frame.freeze();
            queue.push_back(frame.slice(..sekisho_wire::HEADER_LEN));
            queue.push_back(frame.slice(sekisho_wire::HEADER_LEN..));
        }
        let frame = sekisho_wire::HEADER_LEN + payload.len();
        // Both frames do not fit in one record; the record holds the first one whole.
        assert_eq!(poll_fn(|cx| client.poll_write_chunks(cx, &queue)).await.unwrap(), frame);
        poll_fn(|cx| client.poll_flush_link(cx)).await.unwrap();
        let mut got = BytesMut::new();
        assert_eq!(recv(&mut server, &mut got).await.unwrap(), frame);
        let decoder = sekisho_wire::Decoder::new(sekisho_wire::DEFAULT_MAX_FRAME_PAYLOAD);
        assert!(matches!(decoder.decode(&mut got), Ok(Some(sekisho_wire::Frame::Data { .. }))));
        assert!(got.is_empty(), "nothing of the next frame came with it");
    }

    #[tokio::test]
    async fn keys_move_on_each_epoch_and_both_ends_follow() {
        let (mut server, mut client) = pair(3).await;
        for i in 0..10u8 {
            send(&mut client, &[&[i; 5]]).await;
            let mut got = BytesMut::new();
            recv(&mut server, &mut got).await.unwrap();
            assert_eq!(&got[..], &[i; 5]);
        }
        assert_eq!(client.tx.seq, 1, "ten records with three per key: the fourth key, one record in");
        // An end that does not move on at the same record fails there: the key really changed.
        let (a, b) = tokio::io::duplex(1 << 20);
        let mut server = SealedLink::server_with_epoch(a, secrets(), 3).unwrap();
        poll_fn(|cx| server.poll_flush_link(cx)).await.unwrap();
        let mut client = SealedLink::client_with_epoch(b, secrets(), 4).await.unwrap();
        let mut results = Vec::new();
        for _ in 0..4 {
            send(&mut server, &[b"x"]).await;
            let mut got = BytesMut::new();
            results.push(recv(&mut client, &mut got).await.is_ok());
        }
        // The empty first record and two more used the first key; the fourth record is sealed
        // with the second.
        assert_eq!(results, [true, true, false, false]);
    }

    #[tokio::test]
    async fn tampered_reordered_oversized_and_cut_records_end_the_link_with_a_reason() {
        // Tampered: one bit of the ciphertext flipped.
        let (a, mut wire) = tokio::io::duplex(1 << 20);
        let mut server = SealedLink::server(a, secrets()).unwrap();
        poll_fn(|cx| server.poll_flush_link(cx)).await.unwrap();
        let queue: VecDeque<Bytes> = [Bytes::from_static(b"payload")].into();
        poll_fn(|cx| server.poll_write_chunks(cx, &queue)).await.unwrap();
        poll_fn(|cx| server.poll_flush_link(cx)).await.unwrap();
        let mut sealed = vec![0u8; HEADER + TAG + HEADER + 7 + TAG];
        wire.read_exact(&mut sealed).await.unwrap();
        let (first, second) = sealed.split_at(HEADER + TAG);
        let mut flipped = second.to_vec();
        flipped[HEADER + 2] ^= 1;
        for (bytes, reason) in [
            ([first, &flipped].concat(), "failed authentication"),
            // Reordered: the second record where the first belongs.
            ([second, first].concat(), "failed authentication"),
            ([first, &[0xff, 0xff, 0xff, 0xff]].concat(), "exceeds the largest allowed"),
            ([first, &[0, 0, 0, 3]].concat(), "shorter than its tag"),
            ([first, &second[..10]].concat(), "closed in the middle of a record"),
        ] {
            let (mut feed, b) = tokio::io::duplex(1 << 20);
            tokio::io::AsyncWriteExt::write_all(&mut feed, &bytes).await.unwrap();
            drop(feed);
            let result = match SealedLink::client(b, secrets()).await {
                Err(e) => Err(e),
                Ok(mut client) => recv(&mut client, &mut BytesMut::new()).await,
            };
            let err = result.expect_err(reason).to_string();
            assert!(err.contains(reason), "{err} should say {reason}");
        }
    }

    #[tokio::test]
    async fn the_agent_waits_for_an_empty_first_record() {
        let (a, b) = tokio::io::duplex(1 << 20);
        let mut server = SealedLink::new(a, secrets().server, secrets().client, EPOCH_RECORDS).unwrap();
        send(&mut server, &[b"early"]).await;
        let err = SealedLink::client(b, secrets()).await.unwrap_err().to_string();
        assert!(err.contains("first record was not the empty one"), "{err}");
        let (a, b) = tokio::io::duplex(64);
        drop(a);
        let err = SealedLink::client(b, secrets()).await.unwrap_err().to_string();
        assert!(err.contains("before its first record"), "{err}");
        // Different secrets on the two ends never open a record.
        let (a, b) = tokio::io::duplex(1 << 20);
        let mut server = SealedLink::server(a, LinkSecrets { client: [3; 32], server: [4; 32] }).unwrap();
        poll_fn(|cx| server.poll_flush_link(cx)).await.unwrap();
        let err = SealedLink::client(b, secrets()).await.unwrap_err().to_string();
        assert!(err.contains("failed authentication"), "{err}");
    }
}
