//! The SSH bastion: operators reach SSH and Telnet targets only through the relay, and every
//! session leaves evidence.
//!
//! A user logs in with her registered public key or her password, then a TOTP code
//! (keyboard-interactive); a code is spent once. `ssh alice+web01@relay` goes straight to the
//! target `web01` (a service of protocol `ssh` or `telnet`); `ssh alice@relay` shows a menu of the
//! targets her policies allow. Users of other tenants write `alice+web01@tenant`.
//!
//! Each target is decided by its Cedar policy (path `ssh`). The bastion then logs in to the
//! target itself — over a tunnel stream to the target's back agent, or straight from the relay —
//! with the target's sealed credential, pinning the target's host key on first use. Channels are
//! bridged one to one (PTY, shell, exec, subsystems such as SFTP, window changes, signals, exit
//! status). Every channel becomes a recording ([`recorder`]): interactive sessions as sealed
//! asciicast v2 with their command list, exec commands exactly, SFTP and SCP as file operations
//! with sizes and SHA-256; the recording's hash goes into the audit chain.

mod auth;
mod channel;
mod conn;
mod menu;
mod recorder;
mod target;
mod telnet;

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use russh::keys::PrivateKey;
use russh::keys::ssh_key::private::Ed25519Keypair;
use tokio_util::sync::CancellationToken;

use sekisho_door::{DoorListener, FrontDoor, State};

/// Ciphers offered to users (russh's defaults plus aes128-gcm).
const USER_CIPHERS: &[russh::cipher::Name] = &[
    russh::cipher::CHACHA20_POLY1305,
    russh::cipher::AES_256_GCM,
    russh::cipher::AES_128_GCM,
    russh::cipher::AES_256_CTR,
    russh::cipher::AES_192_CTR,
    russh::cipher::AES_128_CTR,
];

/// Ciphers asked of targets, in order: the bastion decrypts and re-encrypts every byte, and AES-GCM
/// runs on the CPU's AES instructions, while the Poly1305 of chacha20-poly1305 is portable code
/// in the crypto library (it was a third of the relay's CPU in an scp, bench/README.md).
pub(crate) const TARGET_CIPHERS: &[russh::cipher::Name] = &[
    russh::cipher::AES_128_GCM,
    russh::cipher::AES_256_GCM,
    russh::cipher::CHACHA20_POLY1305,
    russh::cipher::AES_256_CTR,
    russh::cipher::AES_192_CTR,
    russh::cipher::AES_128_CTR,
];

/// How the operator runs the bastion.
#[derive(Debug, Clone)]
pub struct BastionConfig {
    pub listen: SocketAddr,
    /// How long a connection may take to log in (key or password, then TOTP) before it is closed.
    pub login_window: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum BastionError {
    #[error("cannot read or create the bastion host key `{path}`: {message}")]
    HostKey { path: PathBuf, message: String },
    #[error("cannot create the recordings directory `{path}`: {source}")]
    Recordings { path: PathBuf, source: std::io::Error },
    #[error("cannot listen on `{addr}`: {source}")]
    Listen { addr: SocketAddr, source: std::io::Error },
}

/// The bastion's shared parts.
pub(crate) struct Bastion {
    state: Arc<State>,
    recordings: PathBuf,
    key: [u8; 32],
}

/// The relay's SSH host key (`bastion_host_ed25519`, created on first start, mode 0600).
fn host_key(dir: &Path) -> Result<PrivateKey, BastionError> {
    let path = dir.join("bastion_host_ed25519");
    let err = |message: String| BastionError::HostKey { path: path.clone(), message };
    match std::fs::read_to_string(&path) {
        Ok(text) => PrivateKey::from_openssh(text).map_err(|e| err(e.to_string())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = PrivateKey::from(Ed25519Keypair::from_seed(&rand::random::<[u8; 32]>()));
            let text = key.to_openssh(russh::keys::ssh_key::LineEnding::LF).map_err(|e| err(e.to_string()))?;
            sekisho_tunnel::identity::write_private(&path, text.as_bytes()).map_err(|e| err(e.to_string()))?;
            Ok(key)
        }
        Err(e) => Err(err(e.to_string())),
    }
}

/// The bastion as a front door: its own listener.
pub struct BastionDoor {
    bastion: Arc<Bastion>,
    ssh: Arc<russh::server::Config>,
    login_window: Duration,
    listener: DoorListener,
}

impl FrontDoor for BastionDoor {
    fn name(&self) -> &'static str {
        "ssh"
    }

    fn local_addr(&self) -> Option<SocketAddr> {
        Some(self.listener.addr())
    }

    fn serve(self: Arc<Self>, shutdown: CancellationToken) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        let listener = self.listener.take();
        Box::pin(async move {
            if let Some(listener) = listener {
                serve(self.bastion.clone(), self.ssh.clone(), self.login_window, listener, shutdown).await;
            }
        })
    }
}

impl BastionDoor {
    /// Loads (or makes) the host key, prepares the recordings directory and binds the port.
    pub fn bind(state: Arc<State>, data_dir: &Path, config: &BastionConfig) -> Result<Self, BastionError> {
        let key = host_key(data_dir)?;
        let recordings = data_dir.join("recordings");
        std::fs::create_dir_all(&recordings)
            .map_err(|source| BastionError::Recordings { path: recordings.clone(), source })?;
        let listener =
            DoorListener::bind(config.listen).map_err(|source| BastionError::Listen { addr: config.listen, source })?;
        let ssh = russh::server::Config {
            server_id: russh::SshId::Standard(format!("SSH-2.0-Sekisho_{}", env!("CARGO_PKG_VERSION")).into()),
            methods: russh::MethodSet::from(
                &[russh::MethodKind::PublicKey, russh::MethodKind::Password, russh::MethodKind::KeyboardInteractive][..],
            ),
            keys: vec![key],
            auth_rejection_time: Duration::from_millis(300),
            auth_rejection_time_initial: Some(Duration::ZERO),
            max_auth_attempts: 6,
            inactivity_timeout: Some(Duration::from_secs(3600)),
            keepalive_interval: Some(Duration::from_secs(30)),
            keepalive_max: 4,
            nodelay: true,
            window_size: 8 << 20,
            maximum_packet_size: 65535,
            // The client picks (its first that the server offers); offering aes128-gcm too lets a
            // user choose the cheapest AEAD on hardware with AES instructions.
            preferred: russh::Preferred { cipher: std::borrow::Cow::Borrowed(USER_CIPHERS), ..Default::default() },
            ..Default::default()
        };
        let bastion = Arc::new(Bastion { key: state.master.recording_key(), state, recordings });
        Ok(BastionDoor { bastion, ssh: Arc::new(ssh), login_window: config.login_window, listener })
    }
}

async fn serve(
    bastion: Arc<Bastion>,
    config: Arc<russh::server::Config>,
    login_window: Duration,
    listener: tokio::net::TcpListener,
    shutdown: CancellationToken,
) {
    let limits = bastion.state.conn_limits("ssh");
    loop {
        let (sock, peer) = tokio::select! {
            a = listener.accept() => match a {
                Ok(a) => a,
                Err(_) => { tokio::time::sleep(Duration::from_millis(50)).await; continue; }
            },
            () = shutdown.cancelled() => return,
        };
        let Some(slot) = limits.admit(sekisho_door::credentials::canonical(peer.ip())) else { continue };
        let _ = sock.set_nodelay(true);
        let logged_in = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let handler = conn::Conn::new(bastion.clone(), peer, logged_in.clone());
        let config = config.clone();
        let shutdown = shutdown.clone();
        // A second descriptor of the socket, to close it from here whatever russh is doing.
        let Some((sock, closer)) = sock
            .into_std()
            .and_then(|s| Ok((s.try_clone()?, s)))
            .and_then(|(s, closer)| Ok((tokio::net::TcpStream::from_std(s)?, closer)))
            .ok()
        else {
            continue;
        };
        tokio::spawn(async move {
            // A connection that has not logged in within the window (the key exchange included) is
            // shut down; a logged-in one lives as long as its session.
            let login_deadline = async {
                tokio::time::sleep(login_window).await;
                if logged_in.load(std::sync::atomic::Ordering::Relaxed) {
                    std::future::pending::<()>().await;
                }
            };
            let connection = async {
                let session = match russh::server::run_stream(config, sock, handler).await {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::debug!(%peer, error = %e, "ssh handshake failed");
                        return;
                    }
                };
                if let Err(e) = session.await {
                    tracing::debug!(%peer, error = %e, "ssh session ended with an error");
                }
            };
            tokio::pin!(connection);
            tokio::select! {
                () = &mut connection => {}
                () = login_deadline => {
                    tracing::info!(%peer, "ssh connection closed: no login within the window");
                    let _ = closer.shutdown(std::net::Shutdown::Both);
                    // The session sees the end of its stream and finishes (and records what it must).
                    let _ = tokio::time::timeout(Duration::from_secs(5), connection).await;
                }
                () = shutdown.cancelled() => {}
            }
            drop(slot);
        });
    }
}
