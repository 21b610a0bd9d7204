//! A tokio driver around [`sekisho_wire::Mux`].
//!
//! One [`Driver`] future owns the byte stream (a TLS connection) and moves bytes between it and
//! the multiplexer; [`Connection`] and [`MuxStream`] handles share the multiplexer behind a mutex
//! and are woken by the driver when their stream becomes readable or writable. I/O happens outside
//! the lock: the driver takes the queued frames out (payloads handed over as `Bytes` are not
//! copied), writes them with vectored writes, and feeds what it read back in.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use parking_lot::Mutex;
use sekisho_wire::{Config, Event, Mux, MuxError, Recv, ResetCode, Side, StreamError, StreamId};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::watch;
use tokio::time::{Instant, Sleep};

use crate::transport::Transport;

/// Heartbeat timing: a ping every `interval`, the peer declared dead after `timeout` of silence.
#[derive(Clone, Copy, Debug)]
pub struct Heartbeat {
    pub interval: Duration,
    pub timeout: Duration,
}

impl Default for Heartbeat {
    fn default() -> Self {
        // Silence is checked at each tick, so a dead peer is noticed 12–15 s after its last frame.
        Heartbeat { interval: Duration::from_secs(3), timeout: Duration::from_secs(12) }
    }
}

struct Inner {
    mux: Mux,
    read_wakers: HashMap<StreamId, Waker>,
    write_wakers: HashMap<StreamId, Waker>,
    incoming: VecDeque<(StreamId, Bytes)>,
    accept_waker: Option<Waker>,
    controls: VecDeque<Bytes>,
    control_waker: Option<Waker>,
    driver_waker: Option<Waker>,
    last_rx: Instant,
}

impl Inner {
    /// Wakes whoever waits on what the multiplexer just reported.
    fn dispatch(&mut self) {
        while let Some(event) = self.mux.poll_event() {
            match event {
                Event::Opened { stream, payload } => {
                    self.incoming.push_back((stream, payload));
                    wake(&mut self.accept_waker);
                }
                Event::Readable(id) => {
                    if let Some(w) = self.read_wakers.remove(&id) {
                        w.wake();
                    }
                }
                Event::Writable(id) => {
                    if let Some(w) = self.write_wakers.remove(&id) {
                        w.wake();
                    }
                }
                Event::Control(payload) => {
                    self.controls.push_back(payload);
                    wake(&mut self.control_waker);
                }
                Event::Pong(_) | Event::GoAway { .. } => {}
            }
        }
        if self.mux.closed().is_some() {
            wake(&mut self.accept_waker);
            wake(&mut self.control_waker);
            for (_, w) in self.read_wakers.drain().chain(self.write_wakers.drain()) {
                w.wake();
            }
        }
    }

    /// Wakes the driver if the multiplexer has bytes to write.
    fn kick(&mut self) {
        if self.mux.has_transmit() {
            wake(&mut self.driver_waker);
        }
    }
}

fn wake(w: &mut Option<Waker>) {
    if let Some(w) = w.take() {
        w.wake();
    }
}

struct Shared {
    inner: Mutex<Inner>,
    closed_tx: watch::Sender<Option<String>>,
}

/// A handle to one multiplexed connection. Cheap to clone.
#[derive(Clone)]
pub struct Connection {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection").finish_non_exhaustive()
    }
}

impl Connection {
    /// Wraps `io` in a multiplexed connection. The returned [`Driver`] must be spawned (or
    /// awaited); it completes when the connection ends.
    pub fn new<IO>(io: IO, side: Side, config: Config, heartbeat: Heartbeat) -> (Connection, Driver<IO>)
    where
        IO: Transport,
    {
        let (closed_tx, _) = watch::channel(None);
        let shared = Arc::new(Shared {
            inner: Mutex::new(Inner {
                mux: Mux::new(side, config),
                read_wakers: HashMap::new(),
                write_wakers: HashMap::new(),
                incoming: VecDeque::new(),
                accept_waker: None,
                controls: VecDeque::new(),
                control_waker: None,
                driver_waker: None,
                last_rx: Instant::now(),
            }),
            closed_tx,
        });
        let driver = Driver {
            io,
            shared: shared.clone(),
            rbuf: BytesMut::new(),
            wq: VecDeque::new(),
            heartbeat,
            timer: Box::pin(tokio::time::sleep(heartbeat.interval)),
            ping_seq: 0,
            done: false,
        };
        (Connection { shared }, driver)
    }

    /// Opens a stream whose open request is `payload`.
    pub fn open(&self, payload: Bytes) -> Result<MuxStream, MuxError> {
        let mut inner = self.shared.inner.lock();
        let id = inner.mux.open(payload)?;
        inner.kick();
        Ok(MuxStream::new(id, self.shared.clone()))
    }

    /// The next stream the peer opened, with its open request; `None` once the connection closed.
    pub async fn accept(&self) -> Option<(MuxStream, Bytes)> {
        std::future::poll_fn(|cx| {
            let mut inner = self.shared.inner.lock();
            if let Some((id, payload)) = inner.incoming.pop_front() {
                return Poll::Ready(Some((MuxStream::new(id, self.shared.clone()), payload)));
            }
            if inner.mux.closed().is_some() {
                return Poll::Ready(None);
            }
            inner.accept_waker = Some(cx.waker().clone());
            Poll::Pending
        })
        .await
    }

    /// Sends a control message to the peer.
    pub fn send_control(&self, payload: Bytes) -> Result<(), MuxError> {
        let mut inner = self.shared.inner.lock();
        inner.mux.send_control(payload)?;
        inner.kick();
        Ok(())
    }

    /// The next control message from the peer; `None` once the connection closed.
    pub async fn recv_control(&self) -> Option<Bytes> {
        std::future::poll_fn(|cx| {
            let mut inner = self.shared.inner.lock();
            if let Some(payload) = inner.controls.pop_front() {
                return Poll::Ready(Some(payload));
            }
            if inner.mux.closed().is_some() {
                return Poll::Ready(None);
            }
            inner.control_waker = Some(cx.waker().clone());
            Poll::Pending
        })
        .await
    }

    /// Says goodbye to the peer and ends every stream.
    pub fn close(&self, reason: &str) {
        let mut inner = self.shared.inner.lock();
        inner.mux.go_away(0, reason);
        inner.dispatch();
        wake(&mut inner.driver_waker);
    }

    /// Why the connection closed, once it has.
    pub fn closed_reason(&self) -> Option<String> {
        self.shared.inner.lock().mux.closed().map(str::to_owned)
    }

    /// Resolves when the connection has closed, with the reason.
    pub async fn closed(&self) -> String {
        let mut rx = self.shared.closed_tx.subscribe();
        loop {
            if let Some(reason) = rx.borrow_and_update().clone() {
                return reason;
            }
            if let Some(reason) = self.closed_reason() {
                return reason;
            }
            if rx.changed().await.is_err() {
                return "connection dropped".to_owned();
            }
        }
    }

    /// Number of streams currently tracked.
    pub fn stream_count(&self) -> usize {
        self.shared.inner.lock().mux.stream_count()
    }

    /// Whether both handles point at the same connection.
    pub fn same(&self, other: &Connection) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared)
    }
}

/// The future that runs a connection's I/O. Completes when the connection ends.
pub struct Driver<IO> {
    io: IO,
    shared: Arc<Shared>,
    rbuf: BytesMut,
    /// Frames taken from the multiplexer and not yet written.
    wq: VecDeque<Bytes>,
    heartbeat: Heartbeat,
    timer: Pin<Box<Sleep>>,
    ping_seq: u64,
    done: bool,
}

impl<IO: Transport> Driver<IO> {
    fn lost(&mut self, reason: &str) -> Poll<String> {
        let mut inner = self.shared.inner.lock();
        inner.mux.connection_lost(reason);
        inner.dispatch();
        let reason = inner.mux.closed().unwrap_or(reason).to_owned();
        drop(inner);
        self.done = true;
        self.shared.closed_tx.send_replace(Some(reason.clone()));
        Poll::Ready(reason)
    }

    fn poll_read_side(&mut self, cx: &mut Context<'_>) -> Option<String> {
        for _ in 0..32 {
            match self.io.poll_read_into(cx, &mut self.rbuf) {
                Poll::Ready(Ok(0)) => return Some("connection closed by peer".to_owned()),
                Poll::Ready(Ok(_)) => {
                    let mut inner = self.shared.inner.lock();
                    inner.last_rx = Instant::now();
                    let fed = inner.mux.feed(&mut self.rbuf);
                    inner.dispatch();
                    if let Err(e) = fed {
                        // The go-away explaining why is queued; try to send it before closing.
                        inner.mux.take_chunks(&mut self.wq);
                        drop(inner);
                        let _ = self.poll_write_queue(cx);
                        // A sealed link gathers records until it is flushed.
                        let _ = self.io.poll_flush_link(cx);
                        return Some(e.to_string());
                    }
                }
                Poll::Ready(Err(e)) => return Some(format!("read failed: {e}")),
                Poll::Pending => return None,
            }
        }
        // Yield to other tasks after a long burst, but come back at once.
        cx.waker().wake_by_ref();
        None
    }

    /// Writes what the multiplexer queued. Returns an error reason, or `None`.
    fn poll_write_side(&mut self, cx: &mut Context<'_>) -> Option<String> {
        loop {
            if self.wq.is_empty() {
                let mut inner = self.shared.inner.lock();
                inner.mux.take_chunks(&mut self.wq);
                inner.dispatch();
            }
            if self.wq.is_empty() {
                return match self.io.poll_flush_link(cx) {
                    Poll::Ready(Err(e)) => Some(format!("flush failed: {e}")),
                    _ => None,
                };
            }
            match self.poll_write_queue(cx) {
                Poll::Ready(Ok(0)) => return Some("connection closed while writing".to_owned()),
                Poll::Ready(Ok(n)) => self.consume(n),
                Poll::Ready(Err(e)) => return Some(format!("write failed: {e}")),
                Poll::Pending => return None,
            }
        }
    }

    /// Hands the front of the queue to the link.
    fn poll_write_queue(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        self.io.poll_write_chunks(cx, &self.wq)
    }

    /// Drops `n` written bytes off the front of the queue.
    fn consume(&mut self, mut n: usize) {
        while n > 0 {
            let Some(front) = self.wq.front_mut() else { return };
            if front.len() <= n {
                n -= front.len();
                self.wq.pop_front();
            } else {
                front.advance(n);
                n = 0;
            }
        }
    }

    fn poll_heartbeat(&mut self, cx: &mut Context<'_>) -> Option<String> {
        while self.timer.as_mut().poll(cx).is_ready() {
            let mut inner = self.shared.inner.lock();
            if inner.last_rx.elapsed() >= self.heartbeat.timeout {
                return Some(format!(
                    "heartbeat timeout: nothing heard from peer for {}s",
                    self.heartbeat.timeout.as_secs()
                ));
            }
            self.ping_seq += 1;
            inner.mux.ping(self.ping_seq);
            drop(inner);
            self.timer.as_mut().reset(Instant::now() + self.heartbeat.interval);
        }
        None
    }
}

impl<IO: Transport> Future for Driver<IO> {
    type Output = String;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<String> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready("connection already closed".to_owned());
        }
        loop {
            if let Some(reason) = this.poll_read_side(cx) {
                return this.lost(&reason);
            }
            if let Some(reason) = this.poll_write_side(cx) {
                return this.lost(&reason);
            }
            if let Some(reason) = this.poll_heartbeat(cx) {
                return this.lost(&reason);
            }
            let mut inner = this.shared.inner.lock();
            if let Some(reason) = inner.mux.closed()
                && this.wq.is_empty()
                && !inner.mux.has_transmit()
            {
                let reason = reason.to_owned();
                drop(inner);
                let _ = this.io.poll_shutdown_link(cx);
                return this.lost(&reason);
            }
            if inner.mux.has_transmit() && this.wq.is_empty() {
                // Streams queued more while we were writing; go round again.
                continue;
            }
            inner.driver_waker = Some(cx.waker().clone());
            return Poll::Pending;
        }
    }
}

/// One stream of a [`Connection`]. Dropping it releases the stream (resetting it if unfinished).
pub struct MuxStream {
    id: StreamId,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for MuxStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MuxStream").field("id", &self.id).finish()
    }
}

impl MuxStream {
    fn new(id: StreamId, shared: Arc<Shared>) -> Self {
        MuxStream { id, shared }
    }

    pub fn id(&self) -> StreamId {
        self.id
    }

    /// Polls for the next received chunk of at most `max` bytes; `None` is end of stream.
    pub fn poll_read_chunk(&self, cx: &mut Context<'_>, max: usize) -> Poll<Result<Option<Bytes>, StreamError>> {
        let mut inner = self.shared.inner.lock();
        match inner.mux.recv(self.id, max) {
            Ok(Recv::Data(b)) => {
                inner.kick();
                Poll::Ready(Ok(Some(b)))
            }
            Ok(Recv::Fin) => Poll::Ready(Ok(None)),
            Ok(Recv::Blocked) => {
                inner.read_wakers.insert(self.id, cx.waker().clone());
                Poll::Pending
            }
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    /// The next received chunk; `Ok(None)` is end of stream.
    pub async fn read_chunk(&self) -> Result<Option<Bytes>, StreamError> {
        std::future::poll_fn(|cx| self.poll_read_chunk(cx, usize::MAX)).await
    }

    /// Polls for received chunks: appends to `out` every chunk that has arrived, up to about
    /// `limit` bytes, and waits only while none has. `Ok(false)` is end of stream; an end or an
    /// error that comes after some chunks is reported by the next call.
    pub fn poll_read_chunks(
        &self,
        cx: &mut Context<'_>,
        out: &mut Vec<Bytes>,
        limit: usize,
    ) -> Poll<Result<bool, StreamError>> {
        let mut limit = limit.max(1);
        let mut inner = self.shared.inner.lock();
        let start = out.len();
        while limit > 0 {
            match inner.mux.recv(self.id, limit) {
                Ok(Recv::Data(b)) => {
                    limit = limit.saturating_sub(b.len());
                    out.push(b);
                }
                _ if out.len() > start => break,
                Ok(Recv::Fin) => return Poll::Ready(Ok(false)),
                Ok(Recv::Blocked) => {
                    inner.read_wakers.insert(self.id, cx.waker().clone());
                    return Poll::Pending;
                }
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
        inner.kick();
        Poll::Ready(Ok(true))
    }

    /// Appends the chunks that have arrived (at least one, up to about `limit` bytes) to `out`;
    /// `Ok(false)` is end of stream.
    pub async fn read_chunks(&self, out: &mut Vec<Bytes>, limit: usize) -> Result<bool, StreamError> {
        std::future::poll_fn(|cx| self.poll_read_chunks(cx, out, limit)).await
    }

    /// Queues as much of `data` as the stream's window allows.
    pub fn poll_write_some(&self, cx: &mut Context<'_>, data: &[u8]) -> Poll<Result<usize, StreamError>> {
        self.poll_send(cx, data.is_empty(), |mux, id| mux.send(id, data))
    }

    /// Writes all of `data`, waiting for window as needed.
    pub async fn write_all(&self, mut data: &[u8]) -> Result<(), StreamError> {
        while !data.is_empty() {
            let n = std::future::poll_fn(|cx| self.poll_write_some(cx, data)).await?;
            data = &data[n..];
        }
        Ok(())
    }

    /// Writes all of `data`, waiting for window as needed. Large payloads are handed to the
    /// connection as they are, not copied.
    pub async fn write_bytes(&self, mut data: Bytes) -> Result<(), StreamError> {
        std::future::poll_fn(|cx| self.poll_write_bytes(cx, &mut data)).await
    }

    /// Polls to write all of `data`, taking from its front what the stream's window allows
    /// (handed on as it is, not copied); ready once `data` is empty.
    pub fn poll_write_bytes(&self, cx: &mut Context<'_>, data: &mut Bytes) -> Poll<Result<(), StreamError>> {
        while !data.is_empty() {
            if let Err(e) = std::task::ready!(self.poll_send(cx, false, |mux, id| mux.send_bytes(id, data))) {
                return Poll::Ready(Err(e));
            }
        }
        Poll::Ready(Ok(()))
    }

    fn poll_send(
        &self,
        cx: &mut Context<'_>,
        empty: bool,
        send: impl FnOnce(&mut Mux, StreamId) -> Result<usize, StreamError>,
    ) -> Poll<Result<usize, StreamError>> {
        let mut inner = self.shared.inner.lock();
        match send(&mut inner.mux, self.id) {
            Ok(0) if !empty => {
                inner.write_wakers.insert(self.id, cx.waker().clone());
                // A full output buffer is drained by the driver; make sure it runs.
                wake(&mut inner.driver_waker);
                Poll::Pending
            }
            Ok(n) => {
                inner.kick();
                Poll::Ready(Ok(n))
            }
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    /// Half-closes the stream: the peer reads end of stream.
    pub fn finish(&self) -> Result<(), StreamError> {
        let mut inner = self.shared.inner.lock();
        let r = inner.mux.finish(self.id);
        inner.kick();
        r
    }

    /// Aborts the stream, telling the peer why.
    pub fn reset(&self, code: ResetCode, reason: &str) {
        let mut inner = self.shared.inner.lock();
        inner.mux.reset(self.id, code, reason);
        inner.dispatch();
        inner.kick();
    }
}

impl Drop for MuxStream {
    fn drop(&mut self) {
        let mut inner = self.shared.inner.lock();
        inner.read_wakers.remove(&self.id);
        inner.write_wakers.remove(&self.id);
        inner.mux.release(self.id);
        inner.dispatch();
        inner.kick();
    }
}

/// Maps a stream error to the `io::Error` a socket user expects.
pub fn io_error(e: StreamError) -> io::Error {
    let kind = match e {
        StreamError::Reset { .. } => io::ErrorKind::ConnectionReset,
        StreamError::Finished => io::ErrorKind::BrokenPipe,
        StreamError::Unknown => io::ErrorKind::NotConnected,
    };
    io::Error::new(kind, e)
}

impl AsyncRead for MuxStream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match this.poll_read_chunk(cx, buf.remaining()) {
            Poll::Ready(Ok(Some(b))) => {
                buf.put_slice(&b);
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Ok(None)) => Poll::Ready(Ok(())),
            Poll::Ready(Err(e)) => Poll::Ready(Err(io_error(e))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl AsyncWrite for MuxStream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.get_mut().poll_write_some(cx, buf).map_err(io_error)
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(self.finish().map_err(io_error))
    }
}
