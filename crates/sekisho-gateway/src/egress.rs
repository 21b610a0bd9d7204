//! Where an allowed connection goes: straight from the relay (splice(2) on Linux, copy loops
//! elsewhere), or through the gateway's back agent, which answers with one status byte first.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::BytesMut;
use sekisho_store::Service;
use sekisho_tunnel::proto::{self, OpenService};
use sekisho_tunnel::pump::{Seal, Totals, abort, bridge};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::Dialect;
use super::socks5::{Reply, Target};
use sekisho_door::State;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Per direction, a direct connection's buffer starts small (most connections move little) and
/// grows while reads keep filling it, so bulk transfers make few system calls.
const COPY_START: usize = 16 << 10;

const COPY_MAX: usize = 256 << 10;

fn reply_for(e: &std::io::Error) -> Reply {
    match e.kind() {
        std::io::ErrorKind::ConnectionRefused => Reply::ConnectionRefused,
        std::io::ErrorKind::TimedOut => Reply::TtlExpired,
        std::io::ErrorKind::NetworkUnreachable => Reply::NetworkUnreachable,
        std::io::ErrorKind::HostUnreachable => Reply::HostUnreachable,
        _ => Reply::GeneralFailure,
    }
}

/// Connects to the first reachable address (each checked against the egress rule), answers the
/// client, and copies both ways.
pub(super) async fn direct(
    state: &State,
    sock: &mut TcpStream,
    addrs: &[SocketAddr],
    early: BytesMut,
    totals: &Totals,
    dialect: Dialect,
) -> Result<String, String> {
    let mut out = match state.egress.connect_checked(addrs, CONNECT_TIMEOUT).await {
        Ok(out) => out,
        Err(e) => {
            let reply = match e.io_kind() {
                Some(kind) => reply_for(&std::io::Error::from(kind)),
                None => Reply::NotAllowed,
            };
            let why = format!("connect failed: {e}");
            let _ = sock.write_all(&dialect.reply(reply, None, &why)).await;
            return Err(why);
        }
    };
    let _ = out.set_nodelay(true);
    let bound = out.local_addr().ok();
    let peer = out.peer_addr().map(|a| a.to_string()).unwrap_or_default();
    sock.write_all(&dialect.reply(Reply::Succeeded, bound, "")).await.map_err(|e| e.to_string())?;
    if !early.is_empty() {
        out.write_all(&early).await.map_err(|e| e.to_string())?;
        totals.up.fetch_add(early.len() as u64, std::sync::atomic::Ordering::Relaxed);
    }
    let copied = relay_bytes(sock, &mut out, totals).await;
    match copied {
        Ok(_) => Ok(peer),
        Err(e) => {
            abort(sock);
            Err(e.to_string())
        }
    }
}

/// Moves bytes both ways until both sides have finished, counting them in `totals`.
async fn relay_bytes(client: &mut TcpStream, target: &mut TcpStream, totals: &Totals) -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    if let (Ok(up), Ok(down)) = (SplicePipe::new(), SplicePipe::new()) {
        let (client, target) = (&*client, &*target);
        tokio::try_join!(up.run(client, target, &totals.up), down.run(target, client, &totals.down))?;
        return Ok(());
    }
    let (client_read, client_write) = client.split();
    let (target_read, target_write) = target.split();
    tokio::try_join!(pipe(client_read, target_write, &totals.up), pipe(target_read, client_write, &totals.down))?;
    Ok(())
}

/// Linux: bytes go socket → pipe → socket with splice(2), never through user space (about half the
/// CPU per byte of copying). Two pipe descriptors per direction; when they cannot be had (descriptor
/// limit), the copy loop below is used.
#[cfg(target_os = "linux")]
struct SplicePipe {
    read_end: std::os::fd::OwnedFd,
    write_end: std::os::fd::OwnedFd,
}

#[cfg(target_os = "linux")]
impl SplicePipe {
    /// Bytes asked of one splice call (the pipe takes what fits).
    const CHUNK: usize = 1 << 20;

    fn new() -> std::io::Result<Self> {
        use nix::fcntl::{FcntlArg, OFlag, fcntl};
        let (read_end, write_end) = nix::unistd::pipe2(OFlag::O_NONBLOCK | OFlag::O_CLOEXEC)?;
        // A larger pipe means fewer system calls; the default 64 KiB still works if refused.
        let _ = fcntl(&write_end, FcntlArg::F_SETPIPE_SZ(Self::CHUNK as i32));
        Ok(SplicePipe { read_end, write_end })
    }

    /// Moves `from` into `to` until end of stream, then half-closes `to`.
    async fn run(
        &self,
        from: &TcpStream,
        to: &TcpStream,
        counter: &std::sync::atomic::AtomicU64,
    ) -> std::io::Result<()> {
        use nix::fcntl::{SpliceFFlags, splice};
        use tokio::io::Interest;
        let flags = SpliceFFlags::SPLICE_F_MOVE | SpliceFFlags::SPLICE_F_NONBLOCK;
        loop {
            // The pipe is empty here, so "would block" can only mean the socket has nothing yet.
            let n = from
                .async_io(Interest::READABLE, || Ok(splice(from, None, &self.write_end, None, Self::CHUNK, flags)?))
                .await?;
            if n == 0 {
                return socket2::SockRef::from(to).shutdown(std::net::Shutdown::Write);
            }
            counter.fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
            let mut left = n;
            while left > 0 {
                left -= to
                    .async_io(Interest::WRITABLE, || Ok(splice(&self.read_end, None, to, None, left, flags)?))
                    .await?;
            }
        }
    }
}

/// Copies `from` into `to` until end of stream, then half-closes `to`; counts bytes in `counter`.
/// The buffer is never zeroed (reads go into spare capacity) and grows 4× whenever a read fills it.
async fn pipe<R, W>(mut from: R, mut to: W, counter: &std::sync::atomic::AtomicU64) -> std::io::Result<()>
where
    R: tokio::io::AsyncRead + Unpin,
    W: tokio::io::AsyncWrite + Unpin,
{
    let mut size = COPY_START;
    let mut buf = BytesMut::with_capacity(size);
    loop {
        buf.clear();
        buf.reserve(size);
        let n = from.read_buf(&mut buf).await?;
        if n == 0 {
            return to.shutdown().await;
        }
        counter.fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
        to.write_all(&buf).await?;
        if n >= size && size < COPY_MAX {
            size = (size * 4).min(COPY_MAX);
        }
    }
}

/// Opens an egress stream on the gateway's back agent, which dials and reports back with one
/// status byte (0 connected, else a SOCKS5 reply code) before any data.
pub(super) async fn via_agent(
    state: &State,
    svc: &Service,
    sock: &mut TcpStream,
    target: &Target,
    early: BytesMut,
    totals: &Totals,
    dialect: Dialect,
) -> Result<String, String> {
    let agent_id = svc.agent_id.as_deref().unwrap_or_default();
    let agent_name = state.topology().agents.get(agent_id).map_or_else(|| agent_id.to_owned(), |a| a.name.clone());
    let Some(conn) = state.hub.conn(agent_id) else {
        let why = format!("agent_offline: the gateway's agent `{agent_name}` is offline");
        let _ = sock.write_all(&dialect.reply(Reply::NetworkUnreachable, None, &why)).await;
        return Err(why);
    };
    let open = OpenService {
        service: svc.id.to_string(),
        from_agent: None,
        from_key: None,
        e2e: None,
        dest: Some(target.to_string()),
    };
    let stream = conn.open(proto::encode(&open)).map_err(|e| e.to_string())?;
    let first = match tokio::time::timeout(CONNECT_TIMEOUT + Duration::from_secs(2), stream.read_chunk()).await {
        Ok(Ok(Some(chunk))) if !chunk.is_empty() => chunk,
        Ok(Err(e)) => {
            let _ = sock.write_all(&dialect.reply(Reply::HostUnreachable, None, &e.to_string())).await;
            return Err(e.to_string());
        }
        _ => {
            let _ = sock.write_all(&dialect.reply(Reply::TtlExpired, None, "the agent did not answer")).await;
            stream.reset(sekisho_wire::ResetCode::CANCEL, "no answer from the agent");
            return Err("the agent did not answer".into());
        }
    };
    if first[0] != 0 {
        let why = format!("agent `{agent_name}` could not connect (SOCKS reply {})", first[0]);
        let _ = sock.write_all(&dialect.reply(reply_code(first[0]), None, &why)).await;
        return Err(why);
    }
    sock.write_all(&dialect.reply(Reply::Succeeded, None, "")).await.map_err(|e| e.to_string())?;
    if first.len() > 1 {
        sock.write_all(&first[1..]).await.map_err(|e| e.to_string())?;
        totals.down.fetch_add(first.len() as u64 - 1, std::sync::atomic::Ordering::Relaxed);
    }
    if !early.is_empty() {
        stream.write_all(&early).await.map_err(|e| e.to_string())?;
        totals.up.fetch_add(early.len() as u64, std::sync::atomic::Ordering::Relaxed);
    }
    match bridge(sock, stream, Seal::Plain, totals).await {
        Ok(()) => Ok(agent_name),
        Err(e) => {
            abort(sock);
            Err(e.to_string())
        }
    }
}

fn reply_code(status: u8) -> Reply {
    match status {
        3 => Reply::NetworkUnreachable,
        4 => Reply::HostUnreachable,
        5 => Reply::ConnectionRefused,
        6 => Reply::TtlExpired,
        _ => Reply::GeneralFailure,
    }
}
