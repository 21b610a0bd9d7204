//! An agent link after its TLS 1.3 handshake: the records that carry the multiplexer.
//!
//! Agents and the relay negotiate one of two ALPN ids on the relay's port:
//!
//! - [`AGENT_ALPN`] (`sekisho/2`, preferred): rustls runs the handshake (the relay's certificate,
//!   the agent's pin, the exporter the agent login signs), then both ends derive two keys from
//!   the handshake with the TLS exporter (RFC 8446 §7.5, as NTS does in RFC 8915) and seal the
//!   link's bytes themselves ([`SealedLink`]): records of up to 128 KiB, read 256 KiB per system
//!   call and opened in place in the buffer they arrived in, so the multiplexer's frames and the
//!   payloads inside them reach the streams without a copy. rustls's record layer reads one
//!   16 KiB record per call and copies each record's plaintext twice.
//! - [`AGENT_ALPN_V1`] (`sekisho/1`): the multiplexer runs inside rustls's own records. Relays
//!   keep accepting it, and agents keep offering it, so a relay and its agents can be upgraded in
//!   either order.
//!
//! A sealed record is `u32 length || AES-128-GCM(plaintext) || tag`, the length (of ciphertext
//! and tag) being the associated data. Each direction has its own key; the nonce is the
//! direction's IV XOR a record counter, as in TLS 1.3. Every [`EPOCH_RECORDS`] records a
//! direction moves to a key derived from the previous secret with HKDF and forgets the old one
//! (TLS 1.3's key update, made implicit: both ends count the same records), which keeps each key
//! under AES-GCM's usage limits: 2^33 AES blocks at most against the 2^34.5 of RFC 8446 §5.5, a
//! margin of about 2.8 (see ARCHITECTURE, "Link records"). A record that fails authentication, is out of order, too
//! large, or cut short ends the link; the streams on it end with an error, never with a clean end
//! of data, because a stream's end is itself a frame inside an authenticated record.
//!
//! The relay speaks first: its first record is empty, and the agent sends nothing until it has
//! read it, so no byte of the sealed link can reach rustls's buffers on the relay's side during
//! the handshake.

use std::collections::VecDeque;
use std::io;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use tokio::net::TcpStream;

use crate::transport::Transport;

mod sealed;

pub use sealed::{EPOCH_RECORDS, LinkSecrets, MAX_PLAIN, SealedLink, fuzz_relay_reads};

/// ALPN id of the sealed link (preferred).
pub const AGENT_ALPN: &[u8] = b"sekisho/2";
/// ALPN id of the link inside rustls's records, kept for agents and relays of earlier versions.
pub const AGENT_ALPN_V1: &[u8] = b"sekisho/1";
/// What agents offer, best first.
pub const AGENT_ALPNS: [&[u8]; 2] = [AGENT_ALPN, AGENT_ALPN_V1];

/// An agent link, relay side or agent side, in whichever form the handshake chose.
#[allow(clippy::large_enum_variant, reason = "one per agent link, and the sealed link is the usual one")]
pub enum Link {
    /// `sekisho/1`: the multiplexer inside rustls's records.
    Tls(Box<tokio_rustls::TlsStream<TcpStream>>),
    /// `sekisho/2`: the sealed link.
    Sealed(SealedLink<TcpStream>),
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Link::Tls(_) => "Link::Tls",
            Link::Sealed(_) => "Link::Sealed",
        })
    }
}

fn tls_error(e: rustls::Error) -> io::Error {
    io::Error::other(format!("agent link: {e}"))
}

impl Link {
    /// The relay's end of a finished handshake.
    pub fn server(mut tls: tokio_rustls::server::TlsStream<TcpStream>) -> io::Result<Link> {
        if tls.get_ref().1.alpn_protocol() == Some(AGENT_ALPN) {
            let secrets = LinkSecrets::export(tls.get_ref().1).map_err(tls_error)?;
            let (tcp, _) = tls.into_inner();
            return Ok(Link::Sealed(SealedLink::server(tcp, secrets)?));
        }
        crate::tls::tune_link(tls.get_mut().1);
        Ok(Link::Tls(Box::new(tls.into())))
    }

    /// The agent's end of a finished handshake; on `sekisho/2`, waits for the relay's first record.
    pub async fn client(mut tls: tokio_rustls::client::TlsStream<TcpStream>) -> io::Result<Link> {
        if tls.get_ref().1.alpn_protocol() == Some(AGENT_ALPN) {
            let secrets = LinkSecrets::export(tls.get_ref().1).map_err(tls_error)?;
            let (tcp, _) = tls.into_inner();
            return Ok(Link::Sealed(SealedLink::client(tcp, secrets).await?));
        }
        crate::tls::tune_link(tls.get_mut().1);
        Ok(Link::Tls(Box::new(tls.into())))
    }

    /// The ALPN id of this link's form: `sekisho/2` or `sekisho/1`.
    pub fn protocol(&self) -> &'static str {
        match self {
            Link::Tls(_) => "sekisho/1",
            Link::Sealed(_) => "sekisho/2",
        }
    }
}

impl Transport for Link {
    fn poll_read_into(&mut self, cx: &mut Context<'_>, dst: &mut BytesMut) -> Poll<io::Result<usize>> {
        match self {
            Link::Tls(tls) => tls.poll_read_into(cx, dst),
            Link::Sealed(link) => link.poll_read_into(cx, dst),
        }
    }

    fn poll_write_chunks(&mut self, cx: &mut Context<'_>, chunks: &VecDeque<Bytes>) -> Poll<io::Result<usize>> {
        match self {
            Link::Tls(tls) => tls.poll_write_chunks(cx, chunks),
            Link::Sealed(link) => link.poll_write_chunks(cx, chunks),
        }
    }

    fn poll_flush_link(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self {
            Link::Tls(tls) => tls.poll_flush_link(cx),
            Link::Sealed(link) => link.poll_flush_link(cx),
        }
    }

    fn poll_shutdown_link(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self {
            Link::Tls(tls) => tls.poll_shutdown_link(cx),
            Link::Sealed(link) => link.poll_shutdown_link(cx),
        }
    }
}
