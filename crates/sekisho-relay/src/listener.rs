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

use sekisho_door::State;

const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

pub(crate) async fn run(
    tcp: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    state: Arc<State>,
    http: axum::Router,
    shutdown: CancellationToken,
) {
    let acceptor = TlsAcceptor::from(tls);
    // A panic in any door's handler becomes an answer and an audit event.
    let api = http.layer(axum::middleware::from_fn_with_state(state.clone(), sekisho_api::catch_panic));
    let limits = state.conn_limits("tls");
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
        // Over a cap: closed before the TLS handshake costs anything.
        let Some(slot) = limits.admit(sekisho_door::credentials::canonical(peer.ip())) else { continue };
        let _ = sock.set_nodelay(true);
        let acceptor = acceptor.clone();
        let state = state.clone();
        let api = api.clone();
        tokio::spawn(
            async move {
                handle(sock, peer, acceptor, state, api).await;
                drop(slot);
            }
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
            let service =
                TowerToHyperService::new(api.layer(axum::Extension(sekisho_door::credentials::PeerAddr(peer))));
            // ALPN already said which HTTP it is (no sniffing of first bytes, which would wait for
            // a silent client). HTTP/1: a request head must arrive in full within the timeout, the
            // first one after the handshake and each next one on a kept-alive connection, so silent
            // and trickling clients are closed. HTTP/2: pinged, and closed when it stops answering.
            let io = TokioIo::new(tls);
            let served = if alpn.as_deref() == Some(b"h2") {
                hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .timer(hyper_util::rt::TokioTimer::new())
                    .keep_alive_interval(state.http_header_timeout)
                    .keep_alive_timeout(state.http_header_timeout)
                    .serve_connection(io, service)
                    .await
            } else {
                hyper::server::conn::http1::Builder::new()
                    .timer(hyper_util::rt::TokioTimer::new())
                    .header_read_timeout(state.http_header_timeout)
                    .serve_connection(io, service)
                    .with_upgrades()
                    .await
            };
            if let Err(e) = served {
                tracing::debug!(error = %e, "http connection ended with an error");
            }
        }
    }
}
