//! Frame layout and codec.
//!
//! Every frame has a fixed 12-byte header followed by `len` bytes of payload:
//!
//! ```text
//!  0        1        2        4                 8                 12
//!  +--------+--------+--------+-----------------+-----------------+------------
//!  |  type  | flags  |reserved|   stream id     |  payload length | payload...
//!  +--------+--------+--------+-----------------+-----------------+------------
//! ```
//!
//! All integers are big-endian. The decoder never trusts a length before checking it against its
//! configured maximum, so a hostile peer cannot make it allocate more than one maximum-size frame.

use std::fmt;

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// Size of the fixed frame header in bytes.
pub const HEADER_LEN: usize = 12;

/// Hard upper bound on a frame payload, whatever the configuration says (16 MiB).
pub const MAX_PAYLOAD_LIMIT: u32 = 16 << 20;

/// Identifies one stream inside a connection. Stream 0 is the connection itself.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamId(pub u32);

impl StreamId {
    /// The connection-level pseudo stream.
    pub const CONNECTION: StreamId = StreamId(0);
}

impl fmt::Debug for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "s{}", self.0)
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Why a stream was reset. Carried in `Reset` frames so the far side can tell its user.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ResetCode(pub u16);

impl ResetCode {
    /// The local application dropped or aborted the stream.
    pub const CANCEL: ResetCode = ResetCode(1);
    /// The route, service or agent the stream asked for is not allowed or does not exist.
    pub const REFUSED: ResetCode = ResetCode(2);
    /// The target behind the back agent could not be reached.
    pub const TARGET_UNREACHABLE: ResetCode = ResetCode(3);
    /// The peer sent more than the window allowed.
    pub const FLOW_CONTROL: ResetCode = ResetCode(4);
    /// The stream id was not known to the receiver.
    pub const UNKNOWN_STREAM: ResetCode = ResetCode(5);
    /// The connection carrying the stream went away.
    pub const CONNECTION_LOST: ResetCode = ResetCode(6);
    /// The stream's route was removed by an administrator.
    pub const ROUTE_REMOVED: ResetCode = ResetCode(7);
    /// End-to-end encryption failed (bad handshake, bad record, replay).
    pub const CRYPTO: ResetCode = ResetCode(8);
    /// Any other protocol violation on this stream.
    pub const PROTOCOL: ResetCode = ResetCode(9);

    /// A short stable name for logs and user messages.
    pub fn name(self) -> &'static str {
        match self.0 {
            1 => "cancelled",
            2 => "refused",
            3 => "target_unreachable",
            4 => "flow_control",
            5 => "unknown_stream",
            6 => "connection_lost",
            7 => "route_removed",
            8 => "crypto",
            9 => "protocol",
            _ => "other",
        }
    }
}

/// Frame type byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum FrameType {
    Data = 0,
    Window = 1,
    Open = 2,
    Fin = 3,
    Reset = 4,
    Ping = 5,
    Pong = 6,
    Control = 7,
    GoAway = 8,
}

impl FrameType {
    fn from_u8(b: u8) -> Option<Self> {
        Some(match b {
            0 => Self::Data,
            1 => Self::Window,
            2 => Self::Open,
            3 => Self::Fin,
            4 => Self::Reset,
            5 => Self::Ping,
            6 => Self::Pong,
            7 => Self::Control,
            8 => Self::GoAway,
            _ => return None,
        })
    }
}

/// One decoded frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    /// Stream payload bytes.
    Data {
        stream: StreamId,
        payload: Bytes,
    },
    /// The sender may send `increment` more bytes on `stream`.
    Window {
        stream: StreamId,
        increment: u32,
    },
    /// Open a new stream; the payload is the opaque open request of the layer above.
    Open {
        stream: StreamId,
        payload: Bytes,
    },
    /// The sender will send no more data on `stream` (TCP half-close).
    Fin {
        stream: StreamId,
    },
    /// Abort `stream` in both directions.
    Reset {
        stream: StreamId,
        code: ResetCode,
        reason: String,
    },
    /// Liveness probe; the peer answers with `Pong` carrying the same value.
    Ping {
        opaque: u64,
    },
    Pong {
        opaque: u64,
    },
    /// Connection-level message of the layer above (agent control protocol).
    Control {
        payload: Bytes,
    },
    /// The sender is closing the connection.
    GoAway {
        code: u16,
        reason: String,
    },
}

impl Frame {
    pub fn frame_type(&self) -> FrameType {
        match self {
            Frame::Data { .. } => FrameType::Data,
            Frame::Window { .. } => FrameType::Window,
            Frame::Open { .. } => FrameType::Open,
            Frame::Fin { .. } => FrameType::Fin,
            Frame::Reset { .. } => FrameType::Reset,
            Frame::Ping { .. } => FrameType::Ping,
            Frame::Pong { .. } => FrameType::Pong,
            Frame::Control { .. } => FrameType::Control,
            Frame::GoAway { .. } => FrameType::GoAway,
        }
    }

    /// Appends the encoded frame to `out`.
    pub fn encode(&self, out: &mut BytesMut) {
        match self {
            Frame::Data { stream, payload } | Frame::Open { stream, payload } => {
                put_header(out, self.frame_type(), *stream, payload.len());
                out.extend_from_slice(payload);
            }
            Frame::Control { payload } => {
                put_header(out, FrameType::Control, StreamId::CONNECTION, payload.len());
                out.extend_from_slice(payload);
            }
            Frame::Window { stream, increment } => {
                put_header(out, FrameType::Window, *stream, 4);
                out.put_u32(*increment);
            }
            Frame::Fin { stream } => put_header(out, FrameType::Fin, *stream, 0),
            Frame::Reset { stream, code, reason } => {
                let reason = truncate_utf8(reason, 1024);
                put_header(out, FrameType::Reset, *stream, 2 + reason.len());
                out.put_u16(code.0);
                out.extend_from_slice(reason.as_bytes());
            }
            Frame::Ping { opaque } | Frame::Pong { opaque } => {
                put_header(out, self.frame_type(), StreamId::CONNECTION, 8);
                out.put_u64(*opaque);
            }
            Frame::GoAway { code, reason } => {
                let reason = truncate_utf8(reason, 1024);
                put_header(out, FrameType::GoAway, StreamId::CONNECTION, 2 + reason.len());
                out.put_u16(*code);
                out.extend_from_slice(reason.as_bytes());
            }
        }
    }
}

/// The length of the longest run of whole frames at the front of `chunks` (encoded frames, in
/// order, cut anywhere) that is at most `limit` bytes long; 0 if the first frame alone is longer
/// or incomplete. A transport that groups frames into records uses it to end each record at a
/// frame, so the receiver can hand each record to the decoder as a buffer of its own.
pub fn whole_frames<'a>(chunks: impl IntoIterator<Item = &'a [u8]>, limit: usize) -> usize {
    let mut chunks = chunks.into_iter();
    let mut cur: &[u8] = &[];
    let mut done = 0;
    loop {
        let mut header = [0u8; HEADER_LEN];
        let mut got = 0;
        while got < HEADER_LEN {
            if cur.is_empty() {
                let Some(next) = chunks.next() else { return done };
                cur = next;
                continue;
            }
            let k = (HEADER_LEN - got).min(cur.len());
            header[got..got + k].copy_from_slice(&cur[..k]);
            cur = &cur[k..];
            got += k;
        }
        let len = u32::from_be_bytes([header[8], header[9], header[10], header[11]]) as usize;
        let end = done + HEADER_LEN + len;
        if end > limit {
            return done;
        }
        let mut skip = len;
        while skip > 0 {
            if cur.is_empty() {
                let Some(next) = chunks.next() else { return done };
                cur = next;
                continue;
            }
            let k = skip.min(cur.len());
            cur = &cur[k..];
            skip -= k;
        }
        done = end;
    }
}

/// Writes a DATA header for `len` payload bytes; the caller sends the payload right after it
/// (copied into `out`, or queued on its own). Lets the multiplexer send user bytes without
/// building a `Frame`.
pub(crate) fn put_data_header(out: &mut BytesMut, stream: StreamId, len: usize) {
    out.reserve(HEADER_LEN);
    write_header(out, FrameType::Data, stream, len);
}

/// Writes a frame header, with room reserved for the payload that follows.
fn put_header(out: &mut BytesMut, ty: FrameType, stream: StreamId, len: usize) {
    out.reserve(HEADER_LEN + len);
    write_header(out, ty, stream, len);
}

fn write_header(out: &mut BytesMut, ty: FrameType, stream: StreamId, len: usize) {
    out.put_u8(ty as u8);
    out.put_u8(0);
    out.put_u16(0);
    out.put_u32(stream.0);
    // Lengths are bounded by the encoder's callers (max frame payload, truncated reasons).
    out.put_u32(u32::try_from(len).unwrap_or(u32::MAX));
}

fn truncate_utf8(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Why bytes from the peer could not be decoded. Any of these ends the connection: the byte
/// stream can no longer be trusted to be aligned on frame boundaries.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("unknown frame type {0}")]
    UnknownType(u8),
    #[error("frame of {len} bytes exceeds the limit of {max} bytes")]
    Oversized { len: u32, max: u32 },
    #[error("{ty:?} frame has invalid length {len}")]
    BadLength { ty: FrameType, len: u32 },
    #[error("{0:?} frame must be sent on stream 0")]
    NeedsConnectionStream(FrameType),
    #[error("{0:?} frame must not be sent on stream 0")]
    NeedsStream(FrameType),
    #[error("flags and reserved header bytes must be zero")]
    ReservedBits,
    #[error("reason text is not valid UTF-8")]
    BadUtf8,
}

/// Incremental frame decoder.
#[derive(Clone, Debug)]
pub struct Decoder {
    max_payload: u32,
}

impl Decoder {
    /// A decoder that refuses payloads over `max_payload` bytes (capped at [`MAX_PAYLOAD_LIMIT`]).
    pub fn new(max_payload: u32) -> Self {
        Decoder { max_payload: max_payload.min(MAX_PAYLOAD_LIMIT) }
    }

    /// Takes one frame off the front of `buf`, or returns `Ok(None)` if more bytes are needed.
    /// Payloads are split off `buf` without copying.
    pub fn decode(&self, buf: &mut BytesMut) -> Result<Option<Frame>, DecodeError> {
        if buf.len() < HEADER_LEN {
            return Ok(None);
        }
        let ty_byte = buf[0];
        let stream = StreamId(u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]));
        let len = u32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]);
        let ty = FrameType::from_u8(ty_byte).ok_or(DecodeError::UnknownType(ty_byte))?;
        if buf[1] != 0 || buf[2] != 0 || buf[3] != 0 {
            return Err(DecodeError::ReservedBits);
        }
        if len > self.max_payload {
            return Err(DecodeError::Oversized { len, max: self.max_payload });
        }
        check_shape(ty, stream, len)?;
        let total = HEADER_LEN + len as usize;
        if buf.len() < total {
            buf.reserve(total - buf.len());
            return Ok(None);
        }
        buf.advance(HEADER_LEN);
        let mut payload = buf.split_to(len as usize).freeze();
        let frame = match ty {
            FrameType::Data => Frame::Data { stream, payload },
            FrameType::Open => Frame::Open { stream, payload },
            FrameType::Control => Frame::Control { payload },
            FrameType::Window => Frame::Window { stream, increment: payload.get_u32() },
            FrameType::Fin => Frame::Fin { stream },
            FrameType::Reset => {
                let code = ResetCode(payload.get_u16());
                let reason = utf8(payload)?;
                Frame::Reset { stream, code, reason }
            }
            FrameType::Ping => Frame::Ping { opaque: payload.get_u64() },
            FrameType::Pong => Frame::Pong { opaque: payload.get_u64() },
            FrameType::GoAway => {
                let code = payload.get_u16();
                let reason = utf8(payload)?;
                Frame::GoAway { code, reason }
            }
        };
        Ok(Some(frame))
    }
}

fn check_shape(ty: FrameType, stream: StreamId, len: u32) -> Result<(), DecodeError> {
    let on_connection = stream == StreamId::CONNECTION;
    match ty {
        FrameType::Ping | FrameType::Pong | FrameType::Control | FrameType::GoAway => {
            if !on_connection {
                return Err(DecodeError::NeedsConnectionStream(ty));
            }
        }
        _ => {
            if on_connection {
                return Err(DecodeError::NeedsStream(ty));
            }
        }
    }
    let ok = match ty {
        FrameType::Window => len == 4,
        FrameType::Fin => len == 0,
        FrameType::Ping | FrameType::Pong => len == 8,
        FrameType::Reset | FrameType::GoAway => (2..=2 + 1024).contains(&len),
        FrameType::Data | FrameType::Open | FrameType::Control => true,
    };
    if ok { Ok(()) } else { Err(DecodeError::BadLength { ty, len }) }
}

fn utf8(b: Bytes) -> Result<String, DecodeError> {
    String::from_utf8(b.to_vec()).map_err(|_| DecodeError::BadUtf8)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn roundtrip(f: Frame) {
        let mut buf = BytesMut::new();
        f.encode(&mut buf);
        let d = Decoder::new(1 << 20);
        assert_eq!(d.decode(&mut buf).unwrap(), Some(f));
        assert!(buf.is_empty());
    }

    #[test]
    fn every_frame_type_roundtrips() {
        let s = StreamId(7);
        roundtrip(Frame::Data { stream: s, payload: Bytes::from_static(b"hello") });
        roundtrip(Frame::Window { stream: s, increment: 65536 });
        roundtrip(Frame::Open { stream: s, payload: Bytes::from_static(b"{}") });
        roundtrip(Frame::Fin { stream: s });
        roundtrip(Frame::Reset { stream: s, code: ResetCode::REFUSED, reason: "no route".into() });
        roundtrip(Frame::Ping { opaque: 42 });
        roundtrip(Frame::Pong { opaque: 42 });
        roundtrip(Frame::Control { payload: Bytes::from_static(b"{\"type\":\"x\"}") });
        roundtrip(Frame::GoAway { code: 3, reason: "bye".into() });
    }

    #[test]
    fn partial_input_waits_for_more() {
        let mut full = BytesMut::new();
        Frame::Data { stream: StreamId(1), payload: Bytes::from(vec![9u8; 100]) }.encode(&mut full);
        let d = Decoder::new(1024);
        let mut buf = BytesMut::new();
        for (i, b) in full.iter().enumerate() {
            buf.put_u8(*b);
            let r = d.decode(&mut buf).unwrap();
            assert_eq!(r.is_some(), i == full.len() - 1);
        }
    }

    #[test]
    fn oversized_frame_is_refused_before_buffering() {
        let mut buf = BytesMut::new();
        put_header(&mut buf, FrameType::Data, StreamId(1), 5000);
        let err = Decoder::new(4096).decode(&mut buf).unwrap_err();
        assert_eq!(err, DecodeError::Oversized { len: 5000, max: 4096 });
    }

    #[test]
    fn malformed_headers_are_refused() {
        let d = Decoder::new(4096);
        let mut buf = BytesMut::from(&[99u8, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0][..]);
        assert_eq!(d.decode(&mut buf).unwrap_err(), DecodeError::UnknownType(99));
        let mut buf = BytesMut::new();
        put_header(&mut buf, FrameType::Window, StreamId(1), 3);
        buf.put_slice(&[0, 0, 1]);
        assert!(matches!(d.decode(&mut buf), Err(DecodeError::BadLength { .. })));
        let mut buf = BytesMut::new();
        put_header(&mut buf, FrameType::Data, StreamId(0), 0);
        assert_eq!(d.decode(&mut buf).unwrap_err(), DecodeError::NeedsStream(FrameType::Data));
        let mut buf = BytesMut::new();
        put_header(&mut buf, FrameType::Ping, StreamId(3), 8);
        buf.put_u64(1);
        assert_eq!(d.decode(&mut buf).unwrap_err(), DecodeError::NeedsConnectionStream(FrameType::Ping));
        let mut buf = BytesMut::new();
        put_header(&mut buf, FrameType::Reset, StreamId(3), 4);
        buf.put_u16(1);
        buf.put_slice(&[0xff, 0xfe]);
        assert_eq!(d.decode(&mut buf).unwrap_err(), DecodeError::BadUtf8);
    }

    #[test]
    fn long_reasons_are_truncated_on_a_char_boundary() {
        let reason = "関".repeat(600);
        let mut buf = BytesMut::new();
        Frame::Reset { stream: StreamId(1), code: ResetCode::CANCEL, reason }.encode(&mut buf);
        let Some(Frame::Reset { reason, .. }) = Decoder::new(4096).decode(&mut buf).unwrap() else {
            panic!("not a reset")
        };
        assert!(reason.len() <= 1024 && reason.chars().all(|c| c == '関'));
    }

    proptest! {
        /// The decoder never panics on arbitrary input and never yields a frame it cannot
        /// re-encode to the same bytes.
        #[test]
        fn decoder_is_total_and_canonical(data in proptest::collection::vec(any::<u8>(), 0..256)) {
            let d = Decoder::new(128);
            let mut buf = BytesMut::from(&data[..]);
            let before = buf.clone();
            if let Ok(Some(frame)) = d.decode(&mut buf) {
                let consumed = before.len() - buf.len();
                let mut again = BytesMut::new();
                frame.encode(&mut again);
                prop_assert_eq!(&again[..], &before[..consumed]);
            }
        }

        #[test]
        fn data_frames_roundtrip(stream in 1u32.., payload in proptest::collection::vec(any::<u8>(), 0..512)) {
            roundtrip(Frame::Data { stream: StreamId(stream), payload: Bytes::from(payload) });
        }
    }

    #[test]
    fn whole_frames_ends_at_the_last_frame_that_fits_wherever_the_chunks_are_cut() {
        let mut encoded = BytesMut::new();
        Frame::Data { stream: StreamId(1), payload: Bytes::from(vec![7u8; 100]) }.encode(&mut encoded);
        Frame::Fin { stream: StreamId(1) }.encode(&mut encoded);
        Frame::Data { stream: StreamId(3), payload: Bytes::from(vec![9u8; 50]) }.encode(&mut encoded);
        let (a, b, c) = (HEADER_LEN + 100, HEADER_LEN, HEADER_LEN + 50);
        // Cut into chunks at every pair of places, headers included.
        for i in 0..encoded.len() {
            for j in i..encoded.len() {
                let chunks = [&encoded[..i], &encoded[i..j], &encoded[j..]];
                assert_eq!(whole_frames(chunks, usize::MAX), a + b + c);
                assert_eq!(whole_frames(chunks, a + b + c - 1), a + b);
                assert_eq!(whole_frames(chunks, a + b), a + b);
                assert_eq!(whole_frames(chunks, a), a);
                assert_eq!(whole_frames(chunks, a - 1), 0);
            }
        }
        // An incomplete last frame is not counted.
        assert_eq!(whole_frames([&encoded[..a + b + 5]], usize::MAX), a + b);
        assert_eq!(whole_frames([&encoded[..a - 1]], usize::MAX), 0);
    }
}
