//! The event writer (refusals, enrollments, stream ends into the store) and the test tap.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::AsyncWriteExt;

use crate::state::State;

/// Drains recorded events into the store in the background.
pub(crate) fn spawn_writer(state: &Arc<State>) {
    let Some(mut rx) = state.take_events_rx() else {
        return;
    };
    let store = state.store.clone();
    tokio::spawn(async move {
        let mut batch = Vec::with_capacity(512);
        while let Some(event) = rx.recv().await {
            batch.push(event);
            while batch.len() < 512 {
                match rx.try_recv() {
                    Ok(e) => batch.push(e),
                    Err(_) => break,
                }
            }
            if let Err(e) = store.insert_events(&batch).await {
                tracing::error!(error = %e, lost = batch.len(), "cannot record events");
            }
            batch.clear();
        }
    });
}

/// Test-only tap: forwards copies of spliced bytes to a TCP listener at `addr`.
pub(crate) fn start_tap(addr: SocketAddr) -> sekisho_tunnel::pump::Tap {
    tracing::warn!(%addr, "debug tap enabled: spliced agent-to-agent bytes are copied to this address");
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<bytes::Bytes>();
    tokio::spawn(async move {
        let Ok(mut sock) = tokio::net::TcpStream::connect(addr).await else {
            tracing::error!(%addr, "cannot connect to debug tap");
            return;
        };
        while let Some(chunk) = rx.recv().await {
            if sock.write_all(&chunk).await.is_err() {
                return;
            }
        }
    });
    tx
}
