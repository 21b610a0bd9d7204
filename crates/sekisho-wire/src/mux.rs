//! The stream multiplexer: streams, windows, half-close and resets over one ordered byte stream.
//!
//! [`Mux`] is fed decoded frames ([`Mux::handle_frame`]) and application calls (`open`, `send`,
//! `recv`, `finish`, `reset`, `release`); it answers with bytes to write ([`Mux::take_transmit`],
//! or [`Mux::take_chunks`] without copying the payloads handed over with [`Mux::send_bytes`])
//! and [`Event`]s that tell the driver which waiting tasks to wake. It never blocks and never
//! touches a socket.
//!
//! Flow control is credit based, per stream and per direction: a sender may have at most the
//! window the receiver granted in flight; the receiver grants more as its application consumes
//! bytes. The output buffer itself has a high-water mark so a slow connection pushes back on the
//! streams writing into it instead of growing without bound.

use std::collections::{HashMap, VecDeque};

use bytes::{Bytes, BytesMut};

use crate::frame::{Decoder, Frame, ResetCode, StreamId};
use outbox::Outbox;

mod outbox;

/// Which end of the connection this is. The client (an agent) opens odd stream ids, the server
/// (the relay) even ones, so both can open streams without coordination.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Client,
    Server,
}

/// Tunables of one multiplexed connection.
#[derive(Clone, Debug)]
pub struct Config {
    /// Receive window granted to the peer for each new stream, in bytes.
    pub initial_window: u32,
    /// Largest DATA payload this side sends, and the largest frame payload it accepts.
    pub max_frame_payload: u32,
    /// Most streams the peer may have open at once; more are refused.
    pub max_streams: usize,
    /// Output bytes queued before `send` stops accepting data until the driver drains them.
    pub out_high_water: usize,
}

/// The largest DATA payload of the default configuration (every agent link uses it).
pub const DEFAULT_MAX_FRAME_PAYLOAD: u32 = 64 << 10;

impl Default for Config {
    fn default() -> Self {
        Config {
            initial_window: 1 << 20,
            max_frame_payload: DEFAULT_MAX_FRAME_PAYLOAD,
            max_streams: 65_536,
            out_high_water: 1 << 20,
        }
    }
}

/// Something the driver must act on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// The peer opened a stream with this open request.
    Opened { stream: StreamId, payload: Bytes },
    /// Data, end of stream or a reset is ready to be read on this stream.
    Readable(StreamId),
    /// The stream may accept more data (window or buffer space came back, or it was reset).
    Writable(StreamId),
    /// A connection-level control message from the peer.
    Control(Bytes),
    /// An answer to one of our pings.
    Pong(u64),
    /// The peer is closing the connection.
    GoAway { code: u16, reason: String },
}

/// Errors of connection-level operations.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MuxError {
    #[error("connection closed: {0}")]
    Closed(String),
    #[error("too many open streams")]
    TooManyStreams,
    #[error("stream ids exhausted, reconnect")]
    IdsExhausted,
}

/// Errors of per-stream operations.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StreamError {
    #[error("stream reset ({}): {reason}", code.name())]
    Reset { code: ResetCode, reason: String },
    #[error("stream already finished for writing")]
    Finished,
    #[error("unknown stream")]
    Unknown,
}

/// What a read produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Recv {
    Data(Bytes),
    /// The peer half-closed: no more data will come.
    Fin,
    /// Nothing yet; an [`Event::Readable`] will follow.
    Blocked,
}

#[derive(Debug)]
struct Stream {
    send_window: u64,
    recv_window: u64,
    recv_buf: VecDeque<Bytes>,
    recv_buffered: usize,
    recv_unacked: u64,
    local_fin: bool,
    remote_fin: bool,
    reset: Option<(ResetCode, String)>,
    /// The peer finished sending and then stopped reading (it reset a stream whose data had all
    /// arrived): what it sent stays readable; only this side's sending ends, with this reason.
    stopped: Option<(ResetCode, String)>,
    want_write: bool,
    released: bool,
}

impl Stream {
    fn new(send_window: u64, recv_window: u64) -> Self {
        Stream {
            send_window,
            recv_window,
            recv_buf: VecDeque::new(),
            recv_buffered: 0,
            recv_unacked: 0,
            local_fin: false,
            remote_fin: false,
            reset: None,
            stopped: None,
            want_write: false,
            released: false,
        }
    }

    /// Both directions are over: aborted, or the peer's data all arrived and ours all went (or
    /// the peer no longer wants it).
    fn ended(&self) -> bool {
        self.reset.is_some() || (self.remote_fin && (self.local_fin || self.stopped.is_some()))
    }

    fn done(&self) -> bool {
        self.released && self.ended()
    }
}

/// Payloads smaller than this are copied out of the read buffer so a tiny retained chunk does not
/// pin a large receive allocation.
const COPY_BELOW: usize = 2048;
const MAX_WINDOW: u64 = 1 << 40;

/// One side of a multiplexed connection.
#[derive(Debug)]
pub struct Mux {
    side: Side,
    config: Config,
    decoder: Decoder,
    next_id: u32,
    max_peer_id: u32,
    streams: HashMap<StreamId, Stream>,
    peer_streams: usize,
    /// Frames waiting to be written.
    out: Outbox,
    events: VecDeque<Event>,
    blocked_on_buffer: Vec<StreamId>,
    closed: Option<String>,
}

impl Mux {
    pub fn new(side: Side, config: Config) -> Self {
        Mux {
            side,
            decoder: Decoder::new(config.max_frame_payload.max(16 << 10)),
            config,
            next_id: match side {
                Side::Client => 1,
                Side::Server => 2,
            },
            max_peer_id: 0,
            streams: HashMap::new(),
            peer_streams: 0,
            out: Outbox::default(),
            events: VecDeque::new(),
            blocked_on_buffer: Vec::new(),
            closed: None,
        }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Number of streams the multiplexer still tracks.
    pub fn stream_count(&self) -> usize {
        self.streams.len()
    }

    /// Why the connection closed, once it has.
    pub fn closed(&self) -> Option<&str> {
        self.closed.as_deref()
    }

    /// Opens a new stream carrying `payload` as its open request.
    pub fn open(&mut self, payload: Bytes) -> Result<StreamId, MuxError> {
        if let Some(reason) = &self.closed {
            return Err(MuxError::Closed(reason.clone()));
        }
        if self.streams.len() >= self.config.max_streams * 2 {
            return Err(MuxError::TooManyStreams);
        }
        let id = StreamId(self.next_id);
        self.next_id = self.next_id.checked_add(2).ok_or(MuxError::IdsExhausted)?;
        let window = u64::from(self.config.initial_window);
        self.streams.insert(id, Stream::new(window, window));
        Frame::Open { stream: id, payload }.encode(self.out.tail());
        Ok(id)
    }

    /// Queues up to the stream's send window of `data`. Returns how many bytes were taken; 0 means
    /// the stream is blocked and an [`Event::Writable`] will follow.
    pub fn send(&mut self, id: StreamId, data: &[u8]) -> Result<usize, StreamError> {
        let allowed = self.admit(id, data.len())?;
        let max_frame = self.config.max_frame_payload as usize;
        for chunk in data[..allowed].chunks(max_frame) {
            self.out.copy_data(id, chunk);
        }
        Ok(allowed)
    }

    /// Like [`Mux::send`], but takes the bytes it accepts off the front of `data` and, when they
    /// are large, queues them as they are instead of copying them.
    pub fn send_bytes(&mut self, id: StreamId, data: &mut Bytes) -> Result<usize, StreamError> {
        let allowed = self.admit(id, data.len())?;
        let max_frame = self.config.max_frame_payload as usize;
        let mut left = allowed;
        while left > 0 {
            let piece = data.split_to(left.min(max_frame));
            left -= piece.len();
            self.out.data(id, piece);
        }
        Ok(allowed)
    }

    /// How many of `len` bytes the stream may send now (its window and the output buffer's room).
    fn admit(&mut self, id: StreamId, len: usize) -> Result<usize, StreamError> {
        let buffer_room = self.config.out_high_water.saturating_sub(self.out.len());
        let s = self.streams.get_mut(&id).ok_or(StreamError::Unknown)?;
        if let Some((code, reason)) = s.reset.as_ref().or(s.stopped.as_ref()) {
            return Err(StreamError::Reset { code: *code, reason: reason.clone() });
        }
        if s.local_fin {
            return Err(StreamError::Finished);
        }
        let allowed = (s.send_window.min(buffer_room as u64) as usize).min(len);
        if allowed == 0 {
            if len > 0 {
                s.want_write = true;
                if buffer_room == 0 {
                    self.blocked_on_buffer.push(id);
                }
            }
            return Ok(0);
        }
        s.send_window -= allowed as u64;
        Ok(allowed)
    }

    /// Takes the next chunk of received data, at most `max` bytes.
    pub fn recv(&mut self, id: StreamId, max: usize) -> Result<Recv, StreamError> {
        let half_window = u64::from(self.config.initial_window / 2).max(1);
        let s = self.streams.get_mut(&id).ok_or(StreamError::Unknown)?;
        if let Some((code, reason)) = &s.reset {
            return Err(StreamError::Reset { code: *code, reason: reason.clone() });
        }
        let Some(front) = s.recv_buf.front_mut() else {
            return Ok(if s.remote_fin { Recv::Fin } else { Recv::Blocked });
        };
        let chunk = if front.len() > max { front.split_to(max) } else { s.recv_buf.pop_front().unwrap_or_default() };
        s.recv_buffered -= chunk.len();
        s.recv_unacked += chunk.len() as u64;
        if s.recv_unacked >= half_window && !s.remote_fin {
            let increment = u32::try_from(s.recv_unacked).unwrap_or(u32::MAX);
            s.recv_unacked -= u64::from(increment);
            s.recv_window += u64::from(increment);
            Frame::Window { stream: id, increment }.encode(self.out.tail());
        }
        Ok(Recv::Data(chunk))
    }

    /// Bytes received on the stream and not yet read.
    pub fn buffered(&self, id: StreamId) -> usize {
        self.streams.get(&id).map_or(0, |s| s.recv_buffered)
    }

    /// Half-closes the stream: the peer reads end-of-stream after the data already sent.
    pub fn finish(&mut self, id: StreamId) -> Result<(), StreamError> {
        let s = self.streams.get_mut(&id).ok_or(StreamError::Unknown)?;
        if let Some((code, reason)) = &s.reset {
            return Err(StreamError::Reset { code: *code, reason: reason.clone() });
        }
        if !s.local_fin {
            s.local_fin = true;
            // A peer that stopped reading has forgotten the stream; it needs no FIN.
            if s.stopped.is_none() {
                Frame::Fin { stream: id }.encode(self.out.tail());
            }
        }
        self.reap(id);
        Ok(())
    }

    /// Aborts the stream in both directions and tells the peer why.
    pub fn reset(&mut self, id: StreamId, code: ResetCode, reason: &str) {
        if self.streams.get(&id).is_some_and(|s| !s.ended()) {
            Frame::Reset { stream: id, code, reason: reason.to_owned() }.encode(self.out.tail());
        }
        self.mark_reset(id, code, reason);
        self.reap(id);
    }

    /// Records that a stream ended abnormally, drops its unread data and wakes its reader and
    /// writer so they see the error. The first reason wins.
    fn mark_reset(&mut self, id: StreamId, code: ResetCode, reason: &str) {
        if let Some(s) = self.streams.get_mut(&id)
            && s.reset.is_none()
        {
            s.reset = Some((code, reason.to_owned()));
            s.recv_buf.clear();
            s.recv_buffered = 0;
            self.events.push_back(Event::Readable(id));
            self.events.push_back(Event::Writable(id));
        }
    }

    /// The application is done with the stream. An unfinished stream is reset as cancelled.
    pub fn release(&mut self, id: StreamId) {
        let Some(s) = self.streams.get_mut(&id) else {
            return;
        };
        s.released = true;
        if !s.ended() {
            self.reset(id, ResetCode::CANCEL, "stream closed by application");
        }
        self.reap(id);
    }

    /// Sends a connection-level control message.
    pub fn send_control(&mut self, payload: Bytes) -> Result<(), MuxError> {
        if let Some(reason) = &self.closed {
            return Err(MuxError::Closed(reason.clone()));
        }
        Frame::Control { payload }.encode(self.out.tail());
        Ok(())
    }

    /// Sends a liveness probe.
    pub fn ping(&mut self, opaque: u64) {
        if self.closed.is_none() {
            Frame::Ping { opaque }.encode(self.out.tail());
        }
    }

    /// Announces that this side is closing the connection, and closes it locally.
    pub fn go_away(&mut self, code: u16, reason: &str) {
        if self.closed.is_none() {
            Frame::GoAway { code, reason: reason.to_owned() }.encode(self.out.tail());
        }
        self.connection_lost(reason);
    }

    /// The connection is gone (I/O error, heartbeat timeout, go-away): every stream ends with an
    /// error and no new stream can be opened.
    pub fn connection_lost(&mut self, reason: &str) {
        if self.closed.is_some() {
            return;
        }
        self.closed = Some(reason.to_owned());
        let ids: Vec<StreamId> = self.streams.keys().copied().collect();
        for id in ids {
            self.ended_by_peer(id, ResetCode::CONNECTION_LOST, reason);
        }
    }

    /// Decodes and handles every complete frame in `buf`. An error means the byte stream is
    /// corrupt; the connection is then closed and must be dropped by the driver.
    pub fn feed(&mut self, buf: &mut BytesMut) -> Result<(), MuxError> {
        loop {
            match self.decoder.decode(buf) {
                Ok(Some(frame)) => self.handle_frame(frame)?,
                Ok(None) => return Ok(()),
                Err(e) => {
                    let reason = format!("malformed frame from peer: {e}");
                    self.go_away(1, &reason);
                    return Err(MuxError::Closed(reason));
                }
            }
        }
    }

    /// Handles one frame from the peer.
    pub fn handle_frame(&mut self, frame: Frame) -> Result<(), MuxError> {
        if let Some(reason) = &self.closed {
            return Err(MuxError::Closed(reason.clone()));
        }
        match frame {
            Frame::Open { stream, payload } => self.on_open(stream, payload),
            Frame::Data { stream, payload } => self.on_data(stream, payload),
            Frame::Window { stream, increment } => self.on_window(stream, increment),
            Frame::Fin { stream } => self.on_fin(stream),
            Frame::Reset { stream, code, reason } => self.on_reset(stream, code, reason),
            Frame::Ping { opaque } => Frame::Pong { opaque }.encode(self.out.tail()),
            Frame::Pong { opaque } => self.events.push_back(Event::Pong(opaque)),
            Frame::Control { payload } => self.events.push_back(Event::Control(payload)),
            Frame::GoAway { code, reason } => {
                self.events.push_back(Event::GoAway { code, reason: reason.clone() });
                self.connection_lost(&format!("peer closed the connection: {reason}"));
            }
        }
        Ok(())
    }

    /// Moves the bytes waiting to be written into `dst` (copying owned payloads into it). Streams
    /// that were blocked on a full output buffer become writable again.
    pub fn take_transmit(&mut self, dst: &mut BytesMut) {
        self.out.take_into(dst);
        self.unblock();
    }

    /// Moves the bytes waiting to be written to the end of `dst`, in order, without copying
    /// them. Streams that were blocked on a full output buffer become writable again.
    pub fn take_chunks(&mut self, dst: &mut VecDeque<Bytes>) {
        self.out.take_chunks(dst);
        self.unblock();
    }

    fn unblock(&mut self) {
        for id in self.blocked_on_buffer.drain(..) {
            if let Some(s) = self.streams.get_mut(&id)
                && s.want_write
            {
                s.want_write = false;
                self.events.push_back(Event::Writable(id));
            }
        }
    }

    /// Whether there are bytes to write.
    pub fn has_transmit(&self) -> bool {
        !self.out.is_empty()
    }

    /// The next event to act on.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    fn is_peer_id(&self, id: StreamId) -> bool {
        let odd = id.0 % 2 == 1;
        match self.side {
            Side::Client => !odd,
            Side::Server => odd,
        }
    }

    fn on_open(&mut self, id: StreamId, payload: Bytes) {
        if !self.is_peer_id(id) || id.0 <= self.max_peer_id {
            self.refuse(id, ResetCode::PROTOCOL, "stream id reused or of the wrong side");
            return;
        }
        self.max_peer_id = id.0;
        if self.peer_streams >= self.config.max_streams {
            self.refuse(id, ResetCode::REFUSED, "too many open streams on this connection");
            return;
        }
        let window = u64::from(self.config.initial_window);
        self.streams.insert(id, Stream::new(window, window));
        self.peer_streams += 1;
        self.events.push_back(Event::Opened { stream: id, payload });
    }

    /// Answers a frame for a stream we cannot accept with a reset, without creating state.
    fn refuse(&mut self, id: StreamId, code: ResetCode, reason: &str) {
        Frame::Reset { stream: id, code, reason: reason.to_owned() }.encode(self.out.tail());
    }

    /// A frame for a stream we do not track: either one that already ended (ignore it) or one
    /// that never existed (tell the peer).
    fn on_unknown(&mut self, id: StreamId) {
        let never_opened = if self.is_peer_id(id) { id.0 > self.max_peer_id } else { id.0 >= self.next_id };
        if never_opened {
            self.refuse(id, ResetCode::UNKNOWN_STREAM, "unknown stream id");
        }
    }

    fn on_data(&mut self, id: StreamId, payload: Bytes) {
        let Some(s) = self.streams.get_mut(&id) else {
            self.on_unknown(id);
            return;
        };
        if s.reset.is_some() {
            return;
        }
        if s.remote_fin {
            self.reset(id, ResetCode::PROTOCOL, "data after end of stream");
            return;
        }
        let len = payload.len() as u64;
        if len > s.recv_window {
            self.reset(id, ResetCode::FLOW_CONTROL, "peer exceeded the stream window");
            return;
        }
        if payload.is_empty() {
            return;
        }
        s.recv_window -= len;
        s.recv_buffered += payload.len();
        let payload = if payload.len() < COPY_BELOW { Bytes::copy_from_slice(&payload) } else { payload };
        let was_empty = s.recv_buf.is_empty();
        s.recv_buf.push_back(payload);
        if was_empty {
            self.events.push_back(Event::Readable(id));
        }
    }

    fn on_window(&mut self, id: StreamId, increment: u32) {
        let Some(s) = self.streams.get_mut(&id) else {
            self.on_unknown(id);
            return;
        };
        if s.reset.is_some() {
            return;
        }
        s.send_window += u64::from(increment);
        if s.send_window > MAX_WINDOW {
            self.reset(id, ResetCode::FLOW_CONTROL, "window overflow");
            return;
        }
        if s.want_write && increment > 0 {
            s.want_write = false;
            self.events.push_back(Event::Writable(id));
        }
    }

    fn on_fin(&mut self, id: StreamId) {
        let Some(s) = self.streams.get_mut(&id) else {
            self.on_unknown(id);
            return;
        };
        if s.reset.is_some() || s.remote_fin {
            return;
        }
        s.remote_fin = true;
        self.events.push_back(Event::Readable(id));
        self.reap(id);
    }

    fn on_reset(&mut self, id: StreamId, code: ResetCode, reason: String) {
        self.ended_by_peer(id, code, &reason);
    }

    /// The peer reset the stream, or the connection is gone. If the peer's FIN had arrived, all
    /// it sent is here and stays readable (a reset after a FIN only says the peer stopped
    /// reading, as when it releases a stream it finished); only this side's sending ends.
    /// Otherwise the stream is aborted.
    fn ended_by_peer(&mut self, id: StreamId, code: ResetCode, reason: &str) {
        let Some(s) = self.streams.get_mut(&id) else {
            return;
        };
        match (s.ended(), s.remote_fin) {
            (true, _) => {}
            (false, true) => {
                s.stopped = Some((code, reason.to_owned()));
                self.events.push_back(Event::Writable(id));
            }
            (false, false) => self.mark_reset(id, code, reason),
        }
        self.reap(id);
    }

    /// Forgets a stream once the application released it and both directions ended.
    fn reap(&mut self, id: StreamId) {
        if self.streams.get(&id).is_some_and(Stream::done) {
            self.streams.remove(&id);
            if self.is_peer_id(id) {
                self.peer_streams -= 1;
            }
        }
    }
}

#[cfg(test)]
mod tests;
