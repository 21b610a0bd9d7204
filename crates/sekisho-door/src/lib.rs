//! The front-door layer: what every front door of the relay uses, and nothing of any one door.
//!
//! A front door is a way in: the admin API, the web console and browser edge, the SSH bastion,
//! the SOCKS5 gateway (and what comes: mail, L3 subnets, a SaaS sign-in). Each is a crate of its
//! own that depends on this layer and on the access gate (`sekisho-gate`), never on another door
//! (a test over `cargo metadata` in `sekisho-relay` keeps it so). The relay starts them
//! uniformly through [`FrontDoor`].
//!
//! What the layer owns:
//! - the relay's shared [`State`]: the store, the gate, the auditor, the agents online ([`hub`]),
//!   the [`topology`] snapshot and the one place changes take effect;
//! - caller [`credentials`] (API keys, scopes and roles, the per-address limiter), signing people
//!   in ([`sessions`]: session keys, TOTP, lockout), [`secrets`] (hashing and sealing);
//! - the [`egress`] rule for every address the relay dials itself, connection [`limits`] and
//!   unauthenticated [`noise`];
//! - typed [`decide`] attempts (what a door tells the gate), [`names`] (web addresses, host
//!   labels, domains) and [`recordings`] in progress.

pub mod credentials;
pub mod decide;
pub mod egress;
pub mod events;
pub mod hub;
pub mod limits;
pub mod names;
pub mod noise;
pub mod recordings;
pub mod secrets;
pub mod sessions;
pub mod state;
pub mod topology;

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

pub use state::State;

/// A door's own listener: bound when the door is built (so the relay can say where it listens
/// before anything is served), taken once when the door starts serving.
pub struct DoorListener {
    listener: parking_lot::Mutex<Option<tokio::net::TcpListener>>,
    addr: SocketAddr,
}

impl DoorListener {
    pub fn bind(addr: SocketAddr) -> std::io::Result<Self> {
        let listener = sekisho_tunnel::dial::listen(addr)?;
        let addr = listener.local_addr()?;
        Ok(DoorListener { listener: parking_lot::Mutex::new(Some(listener)), addr })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The listener, the first time it is asked for.
    pub fn take(&self) -> Option<tokio::net::TcpListener> {
        self.listener.lock().take()
    }
}

/// A front door as the relay starts it: a name, where it listens (when it has a listener of its
/// own), what it adds to the relay's HTTPS port, and a task that serves until shutdown.
///
/// Doors are started in order; [`FrontDoor::http`] receives the router the doors before it
/// built, so a door may wrap another's routes (the console calls the API in-process) without
/// depending on its crate.
pub trait FrontDoor: Send + Sync + 'static {
    /// A short name for logs and the health view (`api`, `web`, `ssh`, `socks`).
    fn name(&self) -> &'static str;

    /// The address of the door's own listener, if it has one.
    fn local_addr(&self) -> Option<SocketAddr> {
        None
    }

    /// The routes this door serves on the relay's HTTPS port, around `inner` (the routes of the
    /// doors started before it).
    fn http(&self, inner: axum::Router) -> axum::Router {
        inner
    }

    /// Serves until `shutdown` is cancelled, then ends the door's connections.
    fn serve(self: Arc<Self>, shutdown: CancellationToken) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        Box::pin(async move { shutdown.cancelled().await })
    }
}
