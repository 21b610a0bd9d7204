//! The wire layer of Sekisho's data plane: the frame codec and the stream multiplexer.
//!
//! Everything here is a deterministic state machine with no networking, no clocks and no async
//! runtime, in the manner of `quinn-proto`: callers feed in bytes and frames, and take out bytes to
//! send and events to act on. `sekisho-tunnel` owns the sockets, TLS, timers and wakers around it.
//!
//! A connection carries many streams. Each stream has its own flow-control window in each
//! direction, so one slow reader holds back only its own stream, never its neighbours. Stream 0 is
//! reserved for connection-level frames (control messages, pings, go-away).

mod frame;
mod mux;

pub use frame::{
    DecodeError, Decoder, Frame, FrameType, HEADER_LEN, MAX_PAYLOAD_LIMIT, ResetCode, StreamId, whole_frames,
};
pub use mux::{Config, DEFAULT_MAX_FRAME_PAYLOAD, Event, Mux, MuxError, Recv, Side, StreamError};
