//! What a [`crate::Driver`] runs on.

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite};

/// What a [`crate::Driver`] runs on: a byte stream that carries the multiplexer's frames.
///
/// Any `AsyncRead + AsyncWrite` stream is one (TLS, or an in-memory pipe in tests); an agent
/// link's [`crate::link::SealedLink`] is another, which hands over the buffers its records were
/// opened in instead of copying them.
pub trait Transport: Unpin {
    /// Appends what arrived to `dst`; `Ok(0)` is the end of the stream.
    fn poll_read_into(&mut self, cx: &mut Context<'_>, dst: &mut BytesMut) -> Poll<io::Result<usize>>;
    /// Takes bytes from the front of `chunks`; returns how many.
    fn poll_write_chunks(&mut self, cx: &mut Context<'_>, chunks: &VecDeque<Bytes>) -> Poll<io::Result<usize>>;
    /// Writes out whatever is buffered.
    fn poll_flush_link(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
    /// Flushes and closes the sending side.
    fn poll_shutdown_link(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
}

impl<T: AsyncRead + AsyncWrite + Unpin> Transport for T {
    fn poll_read_into(&mut self, cx: &mut Context<'_>, dst: &mut BytesMut) -> Poll<io::Result<usize>> {
        if dst.capacity() - dst.len() < READ_CHUNK / 4 {
            dst.reserve(READ_CHUNK);
        }
        tokio_util::io::poll_read_buf(Pin::new(self), cx, dst)
    }

    /// One vectored write of the front of the queue (TLS encrypts straight from the chunks).
    fn poll_write_chunks(&mut self, cx: &mut Context<'_>, chunks: &VecDeque<Bytes>) -> Poll<io::Result<usize>> {
        let mut slices = [IoSlice::new(&[]); WRITE_SLICES];
        for (slot, chunk) in slices.iter_mut().zip(chunks) {
            *slot = IoSlice::new(chunk);
        }
        let count = chunks.len().min(WRITE_SLICES);
        Pin::new(self).poll_write_vectored(cx, &slices[..count])
    }

    fn poll_flush_link(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(self).poll_flush(cx)
    }

    fn poll_shutdown_link(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(self).poll_shutdown(cx)
    }
}

const READ_CHUNK: usize = 256 << 10;
/// Most queued chunks handed to one vectored write.
const WRITE_SLICES: usize = 64;
