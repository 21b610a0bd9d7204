//! The multiplexer driven through a simulated pair of endpoints, with no sockets: every byte one
//! side transmits is fed to the other when the test says so, so each edge case is deterministic.

use bytes::{Bytes, BytesMut};

use super::outbox::OWN_FROM;
use super::*;

struct Pair {
    client: Mux,
    server: Mux,
    client_events: Vec<Event>,
    server_events: Vec<Event>,
}

impl Pair {
    fn new(config: Config) -> Self {
        Pair {
            client: Mux::new(Side::Client, config.clone()),
            server: Mux::new(Side::Server, config),
            client_events: Vec::new(),
            server_events: Vec::new(),
        }
    }

    /// Delivers everything in flight in both directions until both sides are quiet. The client's
    /// bytes are taken as chunks (as the driver does), the server's as one copied buffer.
    fn drive(&mut self) {
        loop {
            let mut chunks = VecDeque::new();
            self.client.take_chunks(&mut chunks);
            let mut c2s: BytesMut = chunks.iter().flat_map(|c| c.iter().copied()).collect();
            let mut s2c = BytesMut::new();
            self.server.take_transmit(&mut s2c);
            if c2s.is_empty() && s2c.is_empty() {
                break;
            }
            self.server.feed(&mut c2s).unwrap();
            self.client.feed(&mut s2c).unwrap();
        }
        while let Some(e) = self.client.poll_event() {
            self.client_events.push(e);
        }
        while let Some(e) = self.server.poll_event() {
            self.server_events.push(e);
        }
    }

    fn open(&mut self, payload: &'static [u8]) -> (StreamId, StreamId) {
        let c = self.client.open(Bytes::from_static(payload)).unwrap();
        self.drive();
        let s = self
            .server_events
            .iter()
            .find_map(|e| match e {
                Event::Opened { stream, payload: p } if p == payload => Some(*stream),
                _ => None,
            })
            .unwrap();
        (c, s)
    }
}

fn read_all(m: &mut Mux, id: StreamId) -> (Vec<u8>, bool) {
    let mut out = Vec::new();
    loop {
        match m.recv(id, usize::MAX).unwrap() {
            Recv::Data(b) => out.extend_from_slice(&b),
            Recv::Fin => return (out, true),
            Recv::Blocked => return (out, false),
        }
    }
}

fn small() -> Config {
    Config { initial_window: 1000, max_frame_payload: 16 << 10, max_streams: 4, out_high_water: 1 << 20 }
}

#[test]
fn open_send_and_half_close_in_both_directions() {
    let mut p = Pair::new(Config::default());
    let (c, s) = p.open(b"route-1");
    assert_eq!(c, s);
    assert_eq!(p.client.send(c, b"ping").unwrap(), 4);
    p.client.finish(c).unwrap();
    p.drive();
    assert_eq!(read_all(&mut p.server, s), (b"ping".to_vec(), true));
    // The server can still answer after the client half-closed.
    assert_eq!(p.server.send(s, b"pong").unwrap(), 4);
    p.server.finish(s).unwrap();
    p.drive();
    assert_eq!(read_all(&mut p.client, c), (b"pong".to_vec(), true));
    p.client.release(c);
    p.server.release(s);
    p.drive();
    assert_eq!(p.client.stream_count(), 0);
    assert_eq!(p.server.stream_count(), 0);
}

#[test]
fn window_exhaustion_blocks_then_resumes_when_reader_consumes() {
    let mut p = Pair::new(small());
    let (c, s) = p.open(b"x");
    let data = vec![7u8; 2500];
    assert_eq!(p.client.send(c, &data).unwrap(), 1000);
    assert_eq!(p.client.send(c, &data[1000..]).unwrap(), 0, "window is exhausted");
    p.drive();
    assert!(!p.client_events.contains(&Event::Writable(c)));
    // Reading half the window returns credit to the sender.
    let Recv::Data(chunk) = p.server.recv(s, 600).unwrap() else { panic!() };
    assert_eq!(chunk.len(), 600);
    p.drive();
    assert!(p.client_events.contains(&Event::Writable(c)));
    assert_eq!(p.client.send(c, &data[1000..]).unwrap(), 600);
    p.drive();
    let (rest, fin) = read_all(&mut p.server, s);
    assert_eq!(rest.len(), 400 + 600);
    assert!(!fin);
}

#[test]
fn a_stalled_stream_does_not_stall_its_neighbour() {
    let mut p = Pair::new(small());
    let (slow_c, _slow_s) = p.open(b"slow");
    let (fast_c, fast_s) = p.open(b"fast");
    assert_eq!(p.client.send(slow_c, &[1u8; 1000]).unwrap(), 1000);
    assert_eq!(p.client.send(slow_c, &[1u8; 10]).unwrap(), 0);
    for _ in 0..10 {
        assert_eq!(p.client.send(fast_c, &[2u8; 500]).unwrap(), 500);
        p.drive();
        assert_eq!(read_all(&mut p.server, fast_s).0.len(), 500);
        p.drive();
    }
}

#[test]
fn peer_exceeding_the_window_gets_its_stream_reset_not_the_connection() {
    let mut p = Pair::new(small());
    let (c, s) = p.open(b"x");
    let (c2, s2) = p.open(b"y");
    // Bypass the sender's own accounting to act as a misbehaving peer.
    let mut raw = BytesMut::new();
    Frame::Data { stream: c, payload: Bytes::from(vec![0u8; 1500]) }.encode(&mut raw);
    p.server.feed(&mut raw).unwrap();
    p.drive();
    assert!(matches!(p.server.recv(s, 10), Err(StreamError::Reset { code: ResetCode::FLOW_CONTROL, .. })));
    assert!(matches!(p.client.send(c, b"more"), Err(StreamError::Reset { .. })));
    // The other stream is untouched.
    assert_eq!(p.client.send(c2, b"fine").unwrap(), 4);
    p.drive();
    assert_eq!(read_all(&mut p.server, s2).0, b"fine");
}

#[test]
fn reset_mid_stream_reaches_the_reader_with_its_reason() {
    let mut p = Pair::new(Config::default());
    let (c, s) = p.open(b"x");
    p.client.send(c, b"partial").unwrap();
    p.drive();
    p.server.reset(s, ResetCode::TARGET_UNREACHABLE, "connection refused by 10.0.0.5:22");
    p.drive();
    match p.client.recv(c, 100) {
        Err(StreamError::Reset { code, reason }) => {
            assert_eq!(code, ResetCode::TARGET_UNREACHABLE);
            assert!(reason.contains("refused"));
        }
        other => panic!("expected reset, got {other:?}"),
    }
    assert!(p.client_events.contains(&Event::Readable(c)));
    assert!(p.client_events.contains(&Event::Writable(c)));
    p.client.release(c);
    p.server.release(s);
    p.drive();
    assert_eq!(p.client.stream_count() + p.server.stream_count(), 0);
}

#[test]
fn releasing_an_unfinished_stream_cancels_it_at_the_peer() {
    let mut p = Pair::new(Config::default());
    let (c, s) = p.open(b"x");
    p.client.release(c);
    p.drive();
    assert!(matches!(p.server.recv(s, 1), Err(StreamError::Reset { code: ResetCode::CANCEL, .. })));
}

/// A writer that sends, finishes and lets go at once (before the reader got to it) loses
/// nothing: its reset only tells the reader's side to stop sending.
#[test]
fn a_stream_finished_and_released_early_still_delivers_everything_it_sent() {
    let mut p = Pair::new(Config::default());
    let (c, s) = p.open(b"x");
    p.client.send(c, b"the last words").unwrap();
    p.client.finish(c).unwrap();
    p.client.release(c);
    p.drive();
    assert_eq!(p.client.stream_count(), 0, "the writer forgets the stream at once");
    assert!(p.server_events.contains(&Event::Writable(s)), "the other side's writer is woken");
    match p.server.send(s, b"answer") {
        Err(StreamError::Reset { code, .. }) => assert_eq!(code, ResetCode::CANCEL),
        other => panic!("sending to a reader that left must fail, got {other:?}"),
    }
    assert_eq!(read_all(&mut p.server, s), (b"the last words".to_vec(), true));
    p.server.finish(s).unwrap();
    p.server.release(s);
    let mut sent = BytesMut::new();
    p.server.take_transmit(&mut sent);
    assert!(sent.is_empty(), "nothing more goes to a peer that forgot the stream: {sent:?}");
    assert_eq!(p.server.stream_count(), 0);
}

/// A reset before the FIN is an abort: unread data goes, and both directions fail.
#[test]
fn a_reset_without_a_finish_still_aborts_both_directions() {
    let mut p = Pair::new(Config::default());
    let (c, s) = p.open(b"x");
    p.client.send(c, b"half a request").unwrap();
    p.client.release(c);
    p.drive();
    assert!(matches!(p.server.recv(s, 100), Err(StreamError::Reset { code: ResetCode::CANCEL, .. })));
    assert!(matches!(p.server.send(s, b"y"), Err(StreamError::Reset { .. })));
}

/// When the connection goes after a stream's FIN arrived, what arrived can still be read.
#[test]
fn data_that_fully_arrived_survives_the_connection_going() {
    let mut p = Pair::new(Config::default());
    let (c, s) = p.open(b"x");
    let (c2, s2) = p.open(b"y");
    p.client.send(c, b"complete").unwrap();
    p.client.finish(c).unwrap();
    p.client.send(c2, b"incomplete").unwrap();
    p.drive();
    p.server.connection_lost("heartbeat timeout");
    assert!(matches!(p.server.send(s, b"z"), Err(StreamError::Reset { code: ResetCode::CONNECTION_LOST, .. })));
    assert_eq!(read_all(&mut p.server, s), (b"complete".to_vec(), true));
    assert!(matches!(p.server.recv(s2, 100), Err(StreamError::Reset { code: ResetCode::CONNECTION_LOST, .. })));
}

#[test]
fn peer_gone_ends_every_stream_with_an_error() {
    let mut p = Pair::new(Config::default());
    let (a, _) = p.open(b"a");
    let (b, _) = p.open(b"b");
    p.client.connection_lost("heartbeat timeout");
    for id in [a, b] {
        assert!(matches!(p.client.recv(id, 1), Err(StreamError::Reset { code: ResetCode::CONNECTION_LOST, .. })));
    }
    assert!(matches!(p.client.open(Bytes::new()), Err(MuxError::Closed(_))));
}

#[test]
fn go_away_closes_the_peer() {
    let mut p = Pair::new(Config::default());
    let (_, s) = p.open(b"a");
    p.client.go_away(0, "agent shutting down");
    p.drive();
    assert!(p.server_events.iter().any(|e| matches!(e, Event::GoAway { .. })));
    assert!(matches!(p.server.recv(s, 1), Err(StreamError::Reset { .. })));
    assert!(p.server.closed().is_some());
}

#[test]
fn unknown_stream_ids_get_a_reset_and_do_not_hurt_others() {
    let mut p = Pair::new(Config::default());
    let (c, s) = p.open(b"a");
    let mut raw = BytesMut::new();
    Frame::Data { stream: StreamId(99), payload: Bytes::from_static(b"junk") }.encode(&mut raw);
    p.server.feed(&mut raw).unwrap();
    let mut out = BytesMut::new();
    p.server.take_transmit(&mut out);
    let frame = Decoder::new(1 << 16).decode(&mut out).unwrap().unwrap();
    assert!(matches!(frame, Frame::Reset { stream: StreamId(99), code: ResetCode::UNKNOWN_STREAM, .. }));
    p.client.send(c, b"ok").unwrap();
    p.drive();
    assert_eq!(read_all(&mut p.server, s).0, b"ok");
}

#[test]
fn malformed_bytes_close_the_connection_with_a_reason() {
    let mut p = Pair::new(Config::default());
    let (_, s) = p.open(b"a");
    let mut junk = BytesMut::from(&b"GET / HTTP/1.1\r\n\r\n"[..]);
    let err = p.server.feed(&mut junk).unwrap_err();
    assert!(matches!(err, MuxError::Closed(ref r) if r.contains("malformed frame")), "{err}");
    assert!(p.server.recv(s, 1).is_err());
}

#[test]
fn too_many_streams_are_refused() {
    let mut p = Pair::new(small());
    for _ in 0..4 {
        p.open(b"ok");
    }
    let c = p.client.open(Bytes::from_static(b"one too many")).unwrap();
    p.drive();
    assert!(matches!(p.client.recv(c, 1), Err(StreamError::Reset { code: ResetCode::REFUSED, .. })));
}

#[test]
fn reused_stream_id_is_refused() {
    let mut p = Pair::new(Config::default());
    let (c, _) = p.open(b"a");
    let mut raw = BytesMut::new();
    Frame::Open { stream: c, payload: Bytes::new() }.encode(&mut raw);
    p.server.feed(&mut raw).unwrap();
    p.drive();
    assert_eq!(p.server_events.iter().filter(|e| matches!(e, Event::Opened { .. })).count(), 1);
}

#[test]
fn full_output_buffer_pushes_back_until_drained() {
    let config = Config { out_high_water: 100, ..Config::default() };
    let mut p = Pair::new(config);
    let (c, _) = p.open(b"a");
    assert_eq!(p.client.send(c, &[0u8; 300]).unwrap(), 100);
    assert_eq!(p.client.send(c, &[0u8; 10]).unwrap(), 0);
    let mut out = BytesMut::new();
    p.client.take_transmit(&mut out);
    assert_eq!(p.client.poll_event(), Some(Event::Writable(c)));
}

#[test]
fn owned_payloads_are_queued_uncopied_between_the_frames_around_them() {
    let mut p = Pair::new(Config::default());
    let (c, s) = p.open(b"a");
    let big = Bytes::from(vec![7u8; 100 << 10]);
    assert_eq!(p.client.send(c, b"head").unwrap(), 4);
    let mut rest = big.clone();
    assert_eq!(p.client.send_bytes(c, &mut rest).unwrap(), big.len());
    assert!(rest.is_empty());
    let mut tiny = Bytes::from_static(b"tail");
    assert_eq!(p.client.send_bytes(c, &mut tiny).unwrap(), 4);
    p.client.finish(c).unwrap();

    let mut chunks = VecDeque::new();
    p.client.take_chunks(&mut chunks);
    assert!(!p.client.has_transmit());
    // The 100 KiB payload went out as two frames (64 KiB max) whose payloads are slices of the
    // caller's buffer, not copies.
    let shared: Vec<&Bytes> = chunks.iter().filter(|b| b.len() >= OWN_FROM).collect();
    assert_eq!(shared.len(), 2);
    assert_eq!(shared[0].as_ptr(), big.as_ptr());
    assert_eq!(shared[1].as_ptr(), big[64 << 10..].as_ptr());

    let mut wire: BytesMut = chunks.iter().flat_map(|b| b.iter().copied()).collect();
    p.server.feed(&mut wire).unwrap();
    let (got, fin) = read_all(&mut p.server, s);
    let mut want = b"head".to_vec();
    want.extend_from_slice(&big);
    want.extend_from_slice(b"tail");
    assert_eq!(got, want);
    assert!(fin);
}

#[test]
fn owned_send_takes_what_the_window_allows_and_leaves_the_rest() {
    let mut p = Pair::new(small());
    let (c, s) = p.open(b"a");
    let data = Bytes::from((0..3000u32).map(|i| i as u8).collect::<Vec<u8>>());
    let mut rest = data.clone();
    assert_eq!(p.client.send_bytes(c, &mut rest).unwrap(), 1000);
    assert_eq!(&rest[..], &data[1000..]);
    assert_eq!(p.client.send_bytes(c, &mut rest).unwrap(), 0);
    p.drive();
    assert_eq!(read_all(&mut p.server, s).0, &data[..1000]);
    // Reading granted more window (at half the initial window); the rest goes out.
    p.drive();
    assert!(p.client_events.contains(&Event::Writable(c)));
    assert_eq!(p.client.send_bytes(c, &mut rest).unwrap(), 1000);
    assert_eq!(&rest[..], &data[2000..]);
}

#[test]
fn copied_and_chunked_transmit_are_the_same_bytes() {
    let build = || {
        let mut m = Mux::new(Side::Client, Config::default());
        let id = m.open(Bytes::from_static(b"x")).unwrap();
        m.send(id, b"small").unwrap();
        let mut big = Bytes::from(vec![1u8; 5000]);
        m.send_bytes(id, &mut big).unwrap();
        m.send_control(Bytes::from_static(b"ctl")).unwrap();
        m.finish(id).unwrap();
        m
    };
    let mut copied = BytesMut::new();
    build().take_transmit(&mut copied);
    let mut chunks = VecDeque::new();
    build().take_chunks(&mut chunks);
    assert!(chunks.len() > 1);
    let joined: Vec<u8> = chunks.iter().flat_map(|b| b.iter().copied()).collect();
    assert_eq!(joined, copied.to_vec());
}

#[test]
fn owned_payloads_count_against_the_output_high_water() {
    let config = Config { out_high_water: 10_000, ..Config::default() };
    let mut p = Pair::new(config);
    let (c, _) = p.open(b"a");
    let mut data = Bytes::from(vec![0u8; 30_000]);
    assert_eq!(p.client.send_bytes(c, &mut data).unwrap(), 10_000);
    assert_eq!(p.client.send_bytes(c, &mut data).unwrap(), 0);
    let mut chunks = VecDeque::new();
    p.client.take_chunks(&mut chunks);
    assert_eq!(p.client.poll_event(), Some(Event::Writable(c)));
}

#[test]
fn pings_are_answered() {
    let mut p = Pair::new(Config::default());
    p.client.ping(77);
    p.drive();
    assert!(p.client_events.contains(&Event::Pong(77)));
}

#[test]
fn control_messages_are_delivered_in_order() {
    let mut p = Pair::new(Config::default());
    p.server.send_control(Bytes::from_static(b"one")).unwrap();
    p.server.send_control(Bytes::from_static(b"two")).unwrap();
    p.drive();
    let got: Vec<_> =
        p.client_events.iter().filter_map(|e| if let Event::Control(b) = e { Some(b.clone()) } else { None }).collect();
    assert_eq!(got, vec![Bytes::from_static(b"one"), Bytes::from_static(b"two")]);
}

#[test]
fn large_transfer_is_split_into_frames_and_reassembled() {
    let mut p = Pair::new(Config::default());
    let (c, s) = p.open(b"bulk");
    let data: Vec<u8> = (0..5_000_000u32).map(|i| (i % 251) as u8).collect();
    let mut sent = 0;
    let mut got = Vec::new();
    while sent < data.len() || got.len() < data.len() {
        sent += p.client.send(c, &data[sent..]).unwrap();
        p.drive();
        got.extend(read_all(&mut p.server, s).0);
        p.drive();
    }
    assert_eq!(got, data);
}

mod model {
    //! Random operation sequences on a simulated pair: whatever the interleaving, each stream's
    //! receiver sees exactly a prefix of what its sender sent, in order, and never more than the
    //! window allows to pile up.

    use proptest::prelude::*;

    use super::*;

    #[derive(Debug, Clone)]
    enum Op {
        Open,
        Send { stream: usize, len: usize, owned: bool },
        Read { stream: usize, max: usize },
        Finish { stream: usize },
        Reset { stream: usize },
        Deliver,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            1 => Just(Op::Open),
            6 => (0usize..4, 1usize..5000, any::<bool>()).prop_map(|(stream, len, owned)| Op::Send { stream, len, owned }),
            6 => (0usize..4, 1usize..5000).prop_map(|(stream, max)| Op::Read { stream, max }),
            1 => (0usize..4).prop_map(|stream| Op::Finish { stream }),
            1 => (0usize..4).prop_map(|stream| Op::Reset { stream }),
            4 => Just(Op::Deliver),
        ]
    }

    struct Track {
        client: StreamId,
        server: Option<StreamId>,
        sent: Vec<u8>,
        received: Vec<u8>,
        finished: bool,
        reset: bool,
        saw_fin: bool,
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]
        #[test]
        fn receivers_see_a_prefix_of_what_was_sent(ops in proptest::collection::vec(op(), 1..120)) {
            let config = Config { initial_window: 4096, max_frame_payload: 1024, max_streams: 16, out_high_water: 8192 };
            let mut p = Pair::new(config);
            let mut streams: Vec<Track> = Vec::new();
            let mut counter = 0u8;
            for op in ops {
                match op {
                    Op::Open => {
                        if streams.len() < 4 {
                            let id = p.client.open(Bytes::from(vec![streams.len() as u8])).unwrap();
                            streams.push(Track { client: id, server: None, sent: vec![], received: vec![], finished: false, reset: false, saw_fin: false });
                        }
                    }
                    Op::Send { stream, len, owned } => {
                        let Some(t) = streams.get_mut(stream) else { continue };
                        let data: Vec<u8> = (0..len).map(|_| { counter = counter.wrapping_add(1); counter }).collect();
                        let sent = if owned {
                            let mut rest = Bytes::from(data.clone());
                            p.client.send_bytes(t.client, &mut rest).inspect(|&n| {
                                assert_eq!(&rest[..], &data[n..], "send_bytes leaves what it did not take");
                            })
                        } else {
                            p.client.send(t.client, &data)
                        };
                        match sent {
                            Ok(n) => t.sent.extend_from_slice(&data[..n]),
                            Err(_) => prop_assert!(t.finished || t.reset),
                        }
                    }
                    Op::Read { stream, max } => {
                        let Some(t) = streams.get_mut(stream) else { continue };
                        let Some(sid) = t.server else { continue };
                        match p.server.recv(sid, max) {
                            Ok(Recv::Data(b)) => {
                                prop_assert!(b.len() <= max);
                                t.received.extend_from_slice(&b);
                            }
                            Ok(Recv::Fin) => t.saw_fin = true,
                            Ok(Recv::Blocked) => {}
                            Err(StreamError::Reset { .. }) => prop_assert!(t.reset),
                            Err(e) => prop_assert!(false, "unexpected {e:?}"),
                        }
                        prop_assert!(t.sent.starts_with(&t.received), "received bytes are not a prefix of sent bytes");
                    }
                    Op::Finish { stream } => {
                        if let Some(t) = streams.get_mut(stream)
                            && p.client.finish(t.client).is_ok() {
                                t.finished = true;
                            }
                    }
                    Op::Reset { stream } => {
                        if let Some(t) = streams.get_mut(stream) {
                            p.client.reset(t.client, ResetCode::CANCEL, "test");
                            t.reset = true;
                        }
                    }
                    Op::Deliver => p.drive(),
                }
                for e in p.server_events.drain(..) {
                    if let Event::Opened { stream, payload } = e {
                        let idx = payload[0] as usize;
                        streams[idx].server = Some(stream);
                    }
                }
                for t in &streams {
                    if let Some(sid) = t.server {
                        prop_assert!(p.server.buffered(sid) <= 4096, "buffered beyond the window");
                    }
                }
            }
            // Drain everything: finished, unreset streams arrive whole.
            for _ in 0..1000 {
                p.drive();
                for e in p.server_events.drain(..) {
                    if let Event::Opened { stream, payload } = e {
                        streams[payload[0] as usize].server = Some(stream);
                    }
                }
                let mut progress = false;
                for t in streams.iter_mut().filter(|t| !t.reset && !t.saw_fin) {
                    let Some(sid) = t.server else { continue };
                    loop {
                        match p.server.recv(sid, usize::MAX) {
                            Ok(Recv::Data(b)) => { t.received.extend_from_slice(&b); progress = true; }
                            Ok(Recv::Fin) => { t.saw_fin = true; progress = true; break; }
                            _ => break,
                        }
                    }
                }
                if !progress && !p.client.has_transmit() && !p.server.has_transmit() {
                    break;
                }
            }
            for t in &streams {
                if !t.reset {
                    prop_assert_eq!(&t.received, &t.sent);
                    prop_assert_eq!(t.saw_fin, t.finished);
                }
            }
        }
    }
}
