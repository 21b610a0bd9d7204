//! The running data plane: everything between a socket and `sekisho-wire`'s state machines.
//!
//! - [`aead`]: AES-GCM from aws-lc or ring, whichever is faster on this CPU.
//! - [`conn`]: a tokio driver that runs one [`sekisho_wire::Mux`] over any byte stream (a TLS
//!   connection to the relay in practice), with per-stream handles that implement
//!   `AsyncRead`/`AsyncWrite`, heartbeats, and clean failure of every stream when the peer goes.
//! - [`link`]: an agent link after its TLS handshake: records sealed with keys from the
//!   handshake, or (for earlier versions) rustls's own records.
//! - [`transport`]: what a driver runs on (any byte stream, or a sealed link).
//! - [`tls`]: the local CA, relay certificates, and the agent's pinned-CA verifier.
//! - [`e2e`]: Noise KK sessions between two agents and the per-stream sealing the relay cannot read.
//! - [`proto`]: the control and open-request messages exchanged over the mux.
//! - [`pump`]: moving bytes between TCP sockets and streams, preserving half-close.
//! - [`dial`]: outbound connections, through an HTTP CONNECT proxy when configured, and backoff.
//!
//! Policy, storage and routing decisions live in `sekisho-relay`; this crate only moves bytes.

pub mod aead;
pub mod conn;
pub mod dial;
pub mod e2e;
pub mod identity;
pub mod link;
pub mod proto;
pub mod pump;
pub mod tls;
pub mod transport;

pub use conn::{Connection, Driver, MuxStream};
pub use link::{AGENT_ALPN, AGENT_ALPN_V1, AGENT_ALPNS, Link};
pub use transport::Transport;
