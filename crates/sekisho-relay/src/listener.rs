//! The relay's one TLS port: agents and HTTP clients, told apart by ALPN.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use sekisho_tunnel::identity::EXPORTER_LABEL;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::state::State;

const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

pub(crate) async fn run(
    tcp: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    state: Arc<State>,
    shutdown: CancellationToken,
) {
    let acceptor = TlsAcceptor::from(tls);
    let api = crate::web::router(state.clone(), crate::api::router(state.clone()))
        .layer(axum::middleware::from_fn_with_state(state.clone(), crate::guard::catch_panic));
    loop {
        let accepted = tokio::select! {
            a = tcp.accept() => a,
            () = shutdown.cancelled() => return,
        };
        let (sock, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = sock.set_nodelay(true);
        let acceptor = acceptor.clone();
        let state = state.clone();
        let api = api.clone();
        tokio::spawn(
            async move { handle(sock, peer, acceptor, state, api).await }
                .instrument(tracing::info_span!("conn", %peer)),
        );
    }
}

async fn handle(sock: TcpStream, peer: SocketAddr, acceptor: TlsAcceptor, state: Arc<State>, api: axum::Router) {
    let tls = match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(sock)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            tracing::info!(reason = %e, "tls handshake refused");
            return;
        }
        Err(_) => {
            tracing::info!("tls handshake timed out");
            return;
        }
    };
    let alpn = tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
    match alpn.as_deref() {
        Some(sekisho_tunnel::AGENT_ALPN | sekisho_tunnel::AGENT_ALPN_V1) => {
            let mut exporter = [0u8; 32];
            let session = tls.get_ref().1;
            if session.export_keying_material(&mut exporter, EXPORTER_LABEL, None).is_err() {
                return;
            }
            match sekisho_tunnel::Link::server(tls) {
                Ok(link) => crate::router::serve_agent(state, link, exporter, peer).await,
                Err(e) => tracing::info!(reason = %e, "agent link setup failed"),
            }
        }
        _ => {
            let service = TowerToHyperService::new(api.layer(axum::Extension(crate::api::PeerAddr(peer))));
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            if let Err(e) = builder.serve_connection_with_upgrades(TokioIo::new(tls), service).await {
                tracing::debug!(error = %e, "http connection ended with an error");
            }
        }
    }
}
