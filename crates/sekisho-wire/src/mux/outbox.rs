//! The frames a multiplexer has queued for writing, in order. Small frames are encoded into one
//! growing buffer; a large owned payload is queued as it is, after what that buffer held, so the
//! driver writes it without a copy.

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};

use crate::frame::{StreamId, put_data_header};

/// Owned payloads at least this large are queued as they are ([`Outbox::data`]); smaller ones are
/// copied next to their frame header, where one copy is cheaper than one more write slice.
pub(super) const OWN_FROM: usize = 2048;

#[derive(Debug, Default)]
pub(super) struct Outbox {
    /// Written after everything in `queued`.
    tail: BytesMut,
    queued: VecDeque<Bytes>,
    queued_len: usize,
}

impl Outbox {
    /// Where the next small frame is encoded.
    pub(super) fn tail(&mut self) -> &mut BytesMut {
        &mut self.tail
    }

    /// A DATA frame whose payload is copied.
    pub(super) fn copy_data(&mut self, id: StreamId, payload: &[u8]) {
        put_data_header(&mut self.tail, id, payload.len());
        self.tail.extend_from_slice(payload);
    }

    /// A DATA frame whose payload is queued as it is when it is large.
    pub(super) fn data(&mut self, id: StreamId, payload: Bytes) {
        if payload.len() < OWN_FROM {
            return self.copy_data(id, &payload);
        }
        put_data_header(&mut self.tail, id, payload.len());
        self.seal_tail();
        self.push(payload);
    }

    /// Bytes waiting to be written.
    pub(super) fn len(&self) -> usize {
        self.queued_len + self.tail.len()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.tail.is_empty() && self.queued.is_empty()
    }

    /// Moves everything, in order, to the end of `dst`, without copying.
    pub(super) fn take_chunks(&mut self, dst: &mut VecDeque<Bytes>) {
        self.seal_tail();
        dst.extend(self.queued.drain(..));
        self.queued_len = 0;
    }

    /// Moves everything into `dst`, copying the queued payloads.
    pub(super) fn take_into(&mut self, dst: &mut BytesMut) {
        for chunk in self.queued.drain(..) {
            dst.extend_from_slice(&chunk);
        }
        self.queued_len = 0;
        if dst.is_empty() {
            std::mem::swap(dst, &mut self.tail);
        } else {
            dst.extend_from_slice(&self.tail);
            self.tail.clear();
        }
    }

    /// Moves what `tail` holds to the end of `queued`.
    fn seal_tail(&mut self) {
        if !self.tail.is_empty() {
            let frames = self.tail.split().freeze();
            self.push(frames);
        }
    }

    fn push(&mut self, chunk: Bytes) {
        self.queued_len += chunk.len();
        self.queued.push_back(chunk);
    }
}
