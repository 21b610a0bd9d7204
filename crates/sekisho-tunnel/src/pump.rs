//! Moving bytes between a TCP socket and a stream, or between two streams, in both directions at
//! once. A half-close on one side becomes a half-close on the other; an error or reset on either
//! side aborts both, and the reason travels with the reset. One exception: a socket that stops
//! taking data (its peer closed) may still hold what the peer sent before closing, and that is
//! delivered before the stream is reset.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, ready};

use bytes::{BufMut, Bytes, BytesMut};
use sekisho_wire::{ResetCode, StreamError};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::conn::MuxStream;
use crate::e2e::{MAX_PLAIN, Opener, RECORD_OVERHEAD, Sealer};

/// Reads start small (a thousand idle connections cost little memory) and double, up to this,
/// while they keep filling the buffer: bulk flows get fewer syscalls and frames per byte than the
/// 8 KiB buffers many tunnels use.
const PLAIN_READ_MAX: usize = 256 << 10;
const READ_START: usize = 4 << 10;
/// Sealed reads are sized so that a whole record (prefix, ciphertext, tag) is one frame: a record
/// of the largest Noise size is 65,537 bytes, one more than a frame carries, and would cost a
/// second, one-byte frame at every hop.
const SEALED_READ_MAX: usize = sekisho_wire::DEFAULT_MAX_FRAME_PAYLOAD as usize - RECORD_OVERHEAD;
const _: () = assert!(SEALED_READ_MAX <= MAX_PLAIN);

/// Bytes moved in each direction.
#[derive(Debug, Default)]
pub struct Totals {
    /// From the socket (or first stream) into the other side.
    pub up: AtomicU64,
    /// Towards the socket (or first stream).
    pub down: AtomicU64,
}

impl Totals {
    pub fn get(&self) -> (u64, u64) {
        (self.up.load(Ordering::Relaxed), self.down.load(Ordering::Relaxed))
    }
}

/// Why a bridge ended early.
#[derive(Debug, thiserror::Error)]
pub enum BridgeError {
    #[error("{0}")]
    Stream(#[from] StreamError),
    #[error("socket error: {0}")]
    Io(#[from] std::io::Error),
    #[error("end-to-end: {0}")]
    E2e(#[from] crate::e2e::E2eError),
}

/// Sealing for a bridged stream, or none.
pub enum Seal {
    Plain,
    Sealed(Sealer, Opener),
}

/// Bridges a TCP connection and a stream until both directions end. On error the stream is
/// reset with the reason; the socket is left to the caller (see [`abort`]).
pub async fn bridge(tcp: &mut TcpStream, stream: MuxStream, seal: Seal, totals: &Totals) -> Result<(), BridgeError> {
    let (sealer, opener) = match seal {
        Seal::Plain => (None, None),
        Seal::Sealed(sealer, opener) => (Some(sealer), Some(opener)),
    };
    let result = {
        let (mut rd, mut wr) = tcp.split();
        let up = tcp_to_stream(&mut rd, &stream, sealer, totals);
        let down = stream_to_tcp(&stream, &mut wr, opener, totals);
        tokio::pin!(up, down);
        tokio::select! {
            r = &mut up => match r {
                Ok(()) => down.await,
                Err(e) => Err(e),
            },
            r = &mut down => match r {
                Ok(()) => up.await,
                // Writing to the socket failed: its peer closed (a target that answered and
                // exited, say). What it sent before is still in the socket: pass it on first.
                Err(BridgeError::Io(e)) => {
                    let _ = up.await;
                    Err(BridgeError::Io(e))
                }
                Err(e) => Err(e),
            },
        }
    };
    if let Err(e) = &result {
        match e {
            BridgeError::Stream(_) => {}
            BridgeError::Io(io) => stream.reset(ResetCode::CANCEL, &format!("client connection failed: {io}")),
            BridgeError::E2e(e) => stream.reset(ResetCode::CRYPTO, &e.to_string()),
        }
    }
    result
}

/// Makes closing the socket send a reset, so the application sees an error rather than a clean end.
pub fn abort(tcp: &TcpStream) {
    let _ = socket2::SockRef::from(tcp).set_linger(Some(std::time::Duration::ZERO));
}

async fn tcp_to_stream(
    rd: &mut tokio::net::tcp::ReadHalf<'_>,
    stream: &MuxStream,
    mut sealer: Option<Sealer>,
    totals: &Totals,
) -> Result<(), BridgeError> {
    // Sealed streams read straight into a record buffer (after the length prefix, before the
    // tag) and are sealed in place.
    let (max, head, tail) =
        if sealer.is_some() { (SEALED_READ_MAX, 2, RECORD_OVERHEAD - 2) } else { (PLAIN_READ_MAX, 0, 0) };
    let mut size = READ_START.min(max);
    let mut bufs = ReadBufs::default();
    loop {
        // Nothing is allocated before there is something to read.
        rd.readable().await?;
        let Some(mut buf) = bufs.try_read(rd, head, size, tail)? else {
            continue;
        };
        let n = buf.len() - head;
        if n == 0 {
            // Keying 3 seals the end, so a FIN alone cannot cut the stream short. Boxed: once per
            // stream, and kept out of the future every open connection holds.
            if let Some(s) = &mut sealer {
                Box::pin(send_end(stream, s)).await?;
            }
            stream.finish()?;
            return Ok(());
        }
        totals.up.fetch_add(n as u64, Ordering::Relaxed);
        if let Some(s) = &mut sealer {
            buf.put_bytes(0, tail);
            s.seal_in_place(&mut buf, n)?;
        }
        let chunk = bufs.hand_on(buf, size);
        stream.write_bytes(chunk).await?;
        if n == size && size < max {
            size = (size * 2).min(max);
        }
    }
}

/// Sends the sealed end record of a stream whose keying has one.
async fn send_end(stream: &MuxStream, sealer: &mut Sealer) -> Result<(), BridgeError> {
    let mut end = BytesMut::new();
    if sealer.seal_end(&mut end)? {
        stream.write_bytes(end.freeze()).await?;
    }
    Ok(())
}

/// The read buffers of one direction of a bridge. What is read is handed to the stream as it is,
/// so a buffer stays busy until the connection has written it. A flow that reads little at a time
/// (requests, keystrokes) reads on the stack and holds no buffer between reads; a bulk flow keeps
/// a few buffers and reuses them once free, so it does not allocate (and fault in) fresh memory
/// for every read.
#[derive(Default)]
struct ReadBufs {
    spare: Vec<BytesMut>,
}

impl ReadBufs {
    const KEEP: usize = 4;

    /// One non-blocking read of at most `size` bytes, into a buffer that has `head` zero bytes
    /// before them and room for `tail` more after. `None`: nothing to read after all.
    fn try_read(
        &mut self,
        rd: &tokio::net::tcp::ReadHalf<'_>,
        head: usize,
        size: usize,
        tail: usize,
    ) -> std::io::Result<Option<BytesMut>> {
        let would_block =
            |e: std::io::Error| if e.kind() == std::io::ErrorKind::WouldBlock { Ok(None) } else { Err(e) };
        if !Self::bulk(size) {
            self.spare.clear();
            let mut scratch = [0u8; READ_START];
            let n = match rd.try_read(&mut scratch[..size]) {
                Ok(n) => n,
                Err(e) => return would_block(e),
            };
            let mut buf = BytesMut::with_capacity(head + n + tail);
            buf.put_bytes(0, head);
            buf.extend_from_slice(&scratch[..n]);
            return Ok(Some(buf));
        }
        let mut buf = match self.spare.iter_mut().position(|b| b.try_reclaim(head + size + tail)) {
            Some(i) => self.spare.swap_remove(i),
            None => BytesMut::with_capacity(head + size + tail),
        };
        buf.put_bytes(0, head);
        match rd.try_read_buf(&mut (&mut buf).limit(size)) {
            Ok(_) => Ok(Some(buf)),
            Err(e) => {
                buf.clear();
                self.keep(buf);
                would_block(e)
            }
        }
    }

    /// What a read of at most `size` bytes read, to pass on. What is left of a bulk read's buffer
    /// (nothing, when the read filled it) still owns the whole allocation: it is kept, to be
    /// reclaimed once the chunk is written.
    fn hand_on(&mut self, mut buf: BytesMut, size: usize) -> Bytes {
        let chunk = buf.split().freeze();
        if Self::bulk(size) {
            self.keep(buf);
        }
        chunk
    }

    /// Reads larger than the stack buffer go to kept heap buffers.
    fn bulk(size: usize) -> bool {
        size > READ_START
    }

    /// Keeps an emptied buffer of a bulk flow (its memory may still be shared with data being
    /// written).
    fn keep(&mut self, buf: BytesMut) {
        if self.spare.len() == Self::KEEP {
            self.spare.remove(0);
        }
        self.spare.push(buf);
    }
}

async fn stream_to_tcp(
    stream: &MuxStream,
    wr: &mut tokio::net::tcp::WriteHalf<'_>,
    mut opener: Option<Opener>,
    totals: &Totals,
) -> Result<(), BridgeError> {
    // What has arrived by the time a chunk is read goes to the socket in one `writev`: a bulk
    // flow's 256 KiB reads arrive as several frames, and each `send` on loopback also wakes the
    // reader, so fewer and larger writes cost less on both ends.
    let mut chunks = Vec::new();
    let mut plain = Vec::new();
    loop {
        if !stream.read_chunks(&mut chunks, WRITE_BATCH).await? {
            if let Some(o) = &opener {
                o.check_end()?;
            }
            wr.shutdown().await?;
            return Ok(());
        }
        let out = match &mut opener {
            None => &mut chunks,
            Some(o) => {
                for c in chunks.drain(..) {
                    o.push(&c);
                }
                while let Some(p) = o.next_record()? {
                    plain.push(p);
                }
                &mut plain
            }
        };
        let n: usize = out.iter().map(Bytes::len).sum();
        totals.down.fetch_add(n as u64, Ordering::Relaxed);
        write_chunks(wr, out).await?;
    }
}

/// Bytes one batch of received chunks may add up to before it is written.
const WRITE_BATCH: usize = 256 << 10;
/// Chunks per `writev` call.
const WRITE_SLICES: usize = 64;

/// Writes all of `chunks` in order, several per system call, and empties it.
async fn write_chunks<W: tokio::io::AsyncWrite + Unpin>(wr: &mut W, chunks: &mut Vec<Bytes>) -> std::io::Result<()> {
    let mut first = 0;
    loop {
        while chunks.get(first).is_some_and(Bytes::is_empty) {
            first += 1;
        }
        if first == chunks.len() {
            break;
        }
        // The slices are made on each poll: kept across the wait they would take 1 KiB in the
        // future of every bridged connection.
        let mut n = std::future::poll_fn(|cx| {
            let mut slices = [std::io::IoSlice::new(&[]); WRITE_SLICES];
            let count = slices.iter_mut().zip(&chunks[first..]).map(|(s, c)| *s = std::io::IoSlice::new(c)).count();
            Pin::new(&mut *wr).poll_write_vectored(cx, &slices[..count])
        })
        .await?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        // Drop what was written: whole chunks, then the front of a partly written one.
        while n > 0 {
            let len = chunks[first].len();
            if n >= len {
                n -= len;
                first += 1;
            } else {
                bytes::Buf::advance(&mut chunks[first], n);
                n = 0;
            }
        }
    }
    chunks.clear();
    Ok(())
}

/// An observer of spliced bytes (used by tests to prove the relay only sees ciphertext).
pub type Tap = tokio::sync::mpsc::UnboundedSender<bytes::Bytes>;

/// Splices two streams (the relay joining a front agent's stream to a back agent's): ends when
/// both directions have, or at the first error (after passing a reset on to the other side).
///
/// A hand-written future rather than two `async` loops joined: the relay holds one per open
/// stream for the stream's whole life, and this one is a fifth of their size.
pub fn splice<'a>(a: &'a MuxStream, b: &'a MuxStream, tap: Option<&'a Tap>, totals: &'a Totals) -> Splice<'a> {
    Splice { a, b, tap, totals, up: Leg::default(), down: Leg::default() }
}

/// The future of [`splice`].
#[must_use = "futures do nothing unless polled"]
pub struct Splice<'a> {
    a: &'a MuxStream,
    b: &'a MuxStream,
    tap: Option<&'a Tap>,
    totals: &'a Totals,
    /// From `a` to `b`.
    up: Leg,
    /// From `b` to `a`.
    down: Leg,
}

/// One direction of a splice: the chunk read and not yet all written, and whether it ended.
#[derive(Default)]
struct Leg {
    pending: Bytes,
    done: bool,
}

impl Leg {
    /// Moves chunks from `from` to `to` until `from` ends (then half-closes `to`; ready with
    /// `Ok` from then on), either side fails (a reset is passed on to the other), or nothing can
    /// move now.
    fn poll(
        &mut self,
        cx: &mut Context<'_>,
        from: &MuxStream,
        to: &MuxStream,
        tap: Option<&Tap>,
        count: &AtomicU64,
    ) -> Poll<Result<(), StreamError>> {
        if self.done {
            return Poll::Ready(Ok(()));
        }
        loop {
            if let Err(e) = ready!(to.poll_write_bytes(cx, &mut self.pending)) {
                if let StreamError::Reset { code, reason } = &e {
                    from.reset(*code, reason);
                }
                return Poll::Ready(Err(e));
            }
            match ready!(from.poll_read_chunk(cx, usize::MAX)) {
                Ok(Some(chunk)) => {
                    count.fetch_add(chunk.len() as u64, Ordering::Relaxed);
                    if let Some(tap) = tap {
                        let _ = tap.send(chunk.clone());
                    }
                    self.pending = chunk;
                }
                Ok(None) => {
                    let _ = to.finish();
                    self.done = true;
                    return Poll::Ready(Ok(()));
                }
                Err(e) => {
                    if let StreamError::Reset { code, reason } = &e {
                        to.reset(*code, reason);
                    }
                    return Poll::Ready(Err(e));
                }
            }
        }
    }
}

impl Future for Splice<'_> {
    type Output = Result<(), StreamError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let up = this.up.poll(cx, this.a, this.b, this.tap, &this.totals.up)?;
        let down = this.down.poll(cx, this.b, this.a, this.tap, &this.totals.down)?;
        if up.is_ready() && down.is_ready() { Poll::Ready(Ok(())) } else { Poll::Pending }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_bulk_read_that_fills_its_buffer_is_reused_once_written() {
        const SIZE: usize = 16 << 10;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut a = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        let (mut b, _) = listener.accept().await.unwrap();
        a.write_all(&[7u8; 2 * SIZE]).await.unwrap();
        let mut peek = vec![0u8; 2 * SIZE];
        while b.peek(&mut peek).await.unwrap() < 2 * SIZE {
            tokio::task::yield_now().await;
        }
        let (rd, _wr) = b.split();
        let mut bufs = ReadBufs::default();

        let full = bufs.try_read(&rd, 0, SIZE, 0).unwrap().unwrap();
        assert_eq!(full.len(), SIZE, "all of it was there to read");
        let first = bufs.hand_on(full, SIZE);
        assert_eq!(bufs.spare.len(), 1, "the filled buffer is kept");

        // Not reusable while the chunk is still being written …
        assert!(!bufs.spare[0].try_reclaim(SIZE));
        drop(first);
        // … and reused, not reallocated, once it is.
        let again = bufs.try_read(&rd, 0, SIZE, 0).unwrap().unwrap();
        assert!(bufs.spare.is_empty(), "the second read took the kept buffer");
        assert_eq!(again.len(), SIZE);

        // Small reads (requests, keystrokes) hold no buffer between reads.
        let small = bufs.hand_on(BytesMut::from(&b"ls\n"[..]), READ_START);
        assert_eq!(&small[..], b"ls\n");
        assert!(bufs.spare.is_empty());
    }

    #[tokio::test]
    async fn a_sealed_bulk_flow_sends_about_one_frame_per_record() {
        use std::sync::Arc;

        use crate::conn::{Connection, Heartbeat};
        use crate::e2e;

        // The two agents' end-to-end session.
        let (a_sec, a_pub) = e2e::generate_static().unwrap();
        let (b_sec, b_pub) = e2e::generate_static().unwrap();
        let (init, m1) = e2e::initiate(&a_sec, &b_pub).unwrap();
        let (resp, m2) = e2e::respond(&b_sec, &a_pub, &m1).unwrap();
        let (a, b) = (Arc::new(init.finish(&m2).unwrap()), Arc::new(resp));
        // A multiplexed link between them, with the default (agent link) configuration.
        let (x, y) = tokio::io::duplex(1 << 20);
        let (near, driver) = Connection::new(x, sekisho_wire::Side::Client, Default::default(), Heartbeat::default());
        tokio::spawn(driver);
        let (far, driver) = Connection::new(y, sekisho_wire::Side::Server, Default::default(), Heartbeat::default());
        tokio::spawn(driver);
        let stream = near.open(Bytes::new()).unwrap();
        // A client socket whose bytes a sealed bridge carries.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        let (mut sock, _) = listener.accept().await.unwrap();
        let (sealer, opener) = a.stream(1, "svc").unwrap();
        tokio::spawn(async move {
            let totals = Totals::default();
            let _ = bridge(&mut sock, stream, Seal::Sealed(sealer, opener), &totals).await;
        });
        let sent: Vec<u8> = (0..4 << 20).map(|i: u32| (i % 251) as u8).collect();
        // Written from its own task: 4 MiB is more than the stream window and the socket
        // buffers hold on a host with smaller TCP buffers, so writing it all before reading
        // would never finish there.
        let writer = tokio::spawn({
            let sent = sent.clone();
            async move {
                client.write_all(&sent).await.unwrap();
                client.shutdown().await.unwrap();
            }
        });

        let (peer, _) = far.accept().await.unwrap();
        let (_, mut open) = b.stream(1, "svc").unwrap();
        let (mut got, mut frames, mut records) = (Vec::new(), 0, 0);
        while let Some(chunk) = peer.read_chunk().await.unwrap() {
            frames += 1;
            open.push(&chunk);
            while let Some(record) = open.next_record().unwrap() {
                records += 1;
                got.extend_from_slice(&record);
            }
        }
        writer.await.unwrap();
        assert!(got == sent, "every byte arrives, in order");
        // The socket's end became the sealed end record before the FIN (keying 3).
        open.check_end().unwrap();
        // A record is split only where the stream's window ran out, not at every record (a
        // record one byte longer than a frame made two frames of each).
        assert!(records >= sent.len() / SEALED_READ_MAX, "{records} records");
        assert!(frames * 4 < records * 5, "{frames} frames for {records} records");
    }

    #[tokio::test]
    async fn batched_chunks_reach_the_socket_whole_and_in_order_through_partial_writes() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        // A small send buffer, so `writev` takes only part of a batch at a time.
        sock.set_send_buffer_size(4096).unwrap();
        sock.connect(&listener.local_addr().unwrap().into()).unwrap();
        sock.set_nonblocking(true).unwrap();
        let mut a = TcpStream::from_std(sock.into()).unwrap();
        let (mut b, _) = listener.accept().await.unwrap();

        // More chunks than one `writev` takes, of every size from empty to 64 KiB.
        let mut expected = Vec::new();
        let mut chunks = Vec::new();
        for i in 0..(2 * WRITE_SLICES + 5) {
            let len = [0, 1, 7, 1500, 16 << 10, 64 << 10][i % 6];
            let chunk: Vec<u8> = (0..len).map(|j| (i * 31 + j) as u8).collect();
            expected.extend_from_slice(&chunk);
            chunks.push(Bytes::from(chunk));
        }
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            tokio::io::AsyncReadExt::read_to_end(&mut b, &mut got).await.unwrap();
            got
        });
        write_chunks(&mut a, &mut chunks).await.unwrap();
        assert!(chunks.is_empty(), "the batch is emptied once written");
        a.shutdown().await.unwrap();
        let got = reader.await.unwrap();
        assert_eq!(got.len(), expected.len());
        assert!(got == expected, "bytes arrive whole and in order");
    }

    /// One bridge future per bridged connection: it was 1.9 KiB while `write_chunks` kept its
    /// 64 `IoSlice`s across the wait for the socket; 1,024 bytes until keying 3 gave the sealer
    /// and opener their end-of-stream state (1,080).
    #[test]
    fn a_bridge_future_stays_small() {
        fn size_of_output<A, B, C, D, F: Future>(_: fn(A, B, C, D) -> F) -> usize {
            std::mem::size_of::<F>()
        }
        let bridge = size_of_output(bridge);
        assert!(bridge <= 1088, "bridge future is {bridge} bytes");
    }
}
