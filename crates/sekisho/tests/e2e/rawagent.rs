//! A hand-driven agent speaking the wire protocol with sekisho-tunnel, for inputs the real agent
//! would never send (unknown routes, malformed frames, forged logins).

use std::net::SocketAddr;

use bytes::Bytes;
use rustls::pki_types::ServerName;
use sekisho_tunnel::conn::Heartbeat;
use sekisho_tunnel::identity::{AgentKeys, EXPORTER_LABEL, EnrollmentToken};
use sekisho_tunnel::proto::{self, Hello, RelayMsg};
use sekisho_tunnel::tls::{self, Pin};
use sekisho_tunnel::{AGENT_ALPN, Connection, Link};
use sekisho_wire::{Config, Side};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

pub async fn tls_connect(relay: SocketAddr, ca_file: &str, alpn: &[u8]) -> std::io::Result<TlsStream<TcpStream>> {
    let pem = std::fs::read_to_string(ca_file).unwrap();
    let config = tls::client_config(Pin::Ca(tls::first_cert(&pem).unwrap()), vec![alpn.to_vec()]).unwrap();
    let tcp = TcpStream::connect(relay).await?;
    TlsConnector::from(config).connect(ServerName::try_from("localhost").unwrap(), tcp).await
}

/// Connects and sends `hello` built from the connection's exporter; returns the connection and
/// the relay's first answer.
pub async fn hello(relay: SocketAddr, ca_file: &str, make: impl FnOnce(&[u8]) -> Hello) -> (Connection, RelayMsg) {
    hello_over(relay, ca_file, AGENT_ALPN, make).await
}

/// [`hello`] on a link of the given ALPN (`sekisho/2` sealed, or `sekisho/1` inside TLS).
pub async fn hello_over(
    relay: SocketAddr,
    ca_file: &str,
    alpn: &[u8],
    make: impl FnOnce(&[u8]) -> Hello,
) -> (Connection, RelayMsg) {
    let tls = tls_connect(relay, ca_file, alpn).await.unwrap();
    let mut exporter = [0u8; 32];
    tls.get_ref().1.export_keying_material(&mut exporter, EXPORTER_LABEL, None).unwrap();
    let link = Link::client(tls).await.unwrap();
    let (conn, driver) = Connection::new(link, Side::Client, Config::default(), Heartbeat::default());
    tokio::spawn(driver);
    conn.send_control(proto::encode(&make(&exporter))).unwrap();
    let reply = conn.recv_control().await.expect("relay answers the hello");
    (conn, serde_json::from_slice(&reply).unwrap())
}

/// Enrolls a raw agent with `token`; returns its connection and keys.
pub async fn enroll(relay: SocketAddr, ca_file: &str, token: &str) -> (Connection, AgentKeys, RelayMsg) {
    enroll_over(relay, ca_file, token, AGENT_ALPN).await
}

/// [`enroll`] on a link of the given ALPN.
pub async fn enroll_over(
    relay: SocketAddr,
    ca_file: &str,
    token: &str,
    alpn: &[u8],
) -> (Connection, AgentKeys, RelayMsg) {
    let keys = AgentKeys::generate().unwrap();
    let t = EnrollmentToken::parse(token).unwrap();
    let (conn, reply) = hello_over(relay, ca_file, alpn, |exp| Hello::Enroll {
        token: EnrollmentToken::format(&t.secret, &t.ca_fingerprint),
        version: "test".into(),
        hostname: "raw".into(),
        sign_pub: hex::encode(keys.sign_public()),
        noise_pub: hex::encode(keys.noise_public()),
        signature: hex::encode(keys.sign(exp)),
    })
    .await;
    (conn, keys, reply)
}

pub fn open_route(route: &str) -> Bytes {
    proto::encode(&proto::OpenRoute { route: route.into(), e2e: None })
}
