//! Audit export to a SIEM: every chained audit event of every tenant, as it is committed, sent
//! as syslog (RFC 5424) over TLS (RFC 5425, octet-counted frames) to a collector such as
//! rsyslog, syslog-ng, Splunk or Elastic.
//!
//! Delivery is at least once and in order per tenant: the position reached (the last sequence
//! number delivered, per tenant) is kept in `siem-cursor.json` in the data directory. Syslog
//! over TLS has no acknowledgement, so a batch counts as delivered once the connection has
//! stayed up for 5 s after it; when the collector goes away, what was sent since is sent again
//! (the tenant and sequence number in each message let a collector drop repeats). A new
//! export starts at the beginning of each tenant's log. In a cluster, run it on one relay.
//!
//! Each message: `<PRI>1 TIME HOST sekisho - KIND - BOM{json}`, where PRI is facility 13 (log
//! audit) with severity warning for a denial and notice otherwise, TIME the event's time (UTC),
//! KIND the event kind (`access`, `login`, …) and the JSON the event as the JSON-lines export
//! writes it (with `seq`, `hash` and `tenant_id`).

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::{CertificateDer, ServerName};
use sekisho_store::{AuditRow, Store};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Where the audit log goes.
#[derive(Debug, Clone)]
pub struct SiemConfig {
    /// The collector, `host:port`.
    pub addr: String,
    /// CA certificates (PEM) that sign the collector's certificate; none: the public web roots.
    pub ca: Option<PathBuf>,
    /// How often the log is looked at when nothing new was found.
    pub poll: Duration,
}

/// Events sent per tenant and round.
const BATCH: i64 = 500;
const CURSOR_FILE: &str = "siem-cursor.json";
/// How long a connection must stay up after events were sent before they count as delivered.
const GRACE: Duration = Duration::from_secs(5);

/// Why the export cannot start (a bad setting, said at start rather than in a loop).
#[derive(Debug, thiserror::Error)]
pub enum SiemError {
    #[error("SIEM address `{0}`: expected host:port")]
    Addr(String),
    #[error("SIEM CA `{path}`: {why}")]
    Ca { path: String, why: String },
}

/// Checks the settings and starts the export in the background.
pub(crate) fn start(
    config: SiemConfig,
    store: Store,
    data_dir: PathBuf,
    host: String,
    shutdown: CancellationToken,
) -> Result<(), SiemError> {
    let (name, _) = config.addr.rsplit_once(':').ok_or_else(|| SiemError::Addr(config.addr.clone()))?;
    let name = name.trim_start_matches('[').trim_end_matches(']').to_owned();
    let server_name = ServerName::try_from(name).map_err(|_| SiemError::Addr(config.addr.clone()))?;
    let tls = tls_config(config.ca.as_deref())?;
    let exporter = Exporter { config, store, cursor_path: data_dir.join(CURSOR_FILE), host, server_name, tls };
    tokio::spawn(async move { exporter.run(shutdown).await });
    Ok(())
}

fn tls_config(ca: Option<&std::path::Path>) -> Result<Arc<rustls::ClientConfig>, SiemError> {
    let mut roots = rustls::RootCertStore::empty();
    match ca {
        Some(path) => {
            let bad = |why: String| SiemError::Ca { path: path.display().to_string(), why };
            let pem = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
            let certs: Vec<CertificateDer<'static>> =
                rustls_pemfile::certs(&mut pem.as_slice()).collect::<Result<_, _>>().map_err(|e| bad(e.to_string()))?;
            if certs.is_empty() {
                return Err(bad("no certificate in it".into()));
            }
            for c in certs {
                roots.add(c).map_err(|e| bad(e.to_string()))?;
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let config = rustls::ClientConfig::builder_with_provider(sekisho_tunnel::tls::provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| SiemError::Ca { path: String::new(), why: e.to_string() })?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

struct Exporter {
    config: SiemConfig,
    store: Store,
    cursor_path: PathBuf,
    host: String,
    server_name: ServerName<'static>,
    tls: Arc<rustls::ClientConfig>,
}

impl Exporter {
    async fn run(self, shutdown: CancellationToken) {
        let mut cursor = self.load_cursor();
        let mut backoff = Duration::from_millis(500);
        loop {
            let began = Instant::now();
            let result = tokio::select! {
                () = shutdown.cancelled() => return,
                r = self.session(&mut cursor) => r,
            };
            // A connection that held a while starts the waiting over.
            if began.elapsed() > Duration::from_secs(10) {
                backoff = Duration::from_millis(500);
            }
            if let Err(e) = result {
                tracing::warn!(collector = %self.config.addr, error = %e, retry_in = ?backoff, "audit export to the SIEM interrupted");
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(Duration::from_secs(30));
        }
    }

    /// One connection: sends what is new until an error. A position counts as delivered (and
    /// is kept in the cursor file) only once the connection has stayed up for [`GRACE`] after
    /// it was sent: a collector that dies takes what its socket held with it, and that is sent
    /// again on the next connection.
    async fn session(&self, committed: &mut BTreeMap<String, i64>) -> std::io::Result<()> {
        let tcp = tokio::time::timeout(Duration::from_secs(10), tokio::net::TcpStream::connect(&self.config.addr))
            .await
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "connecting timed out"))??;
        let connector = tokio_rustls::TlsConnector::from(self.tls.clone());
        let tls = connector.connect(self.server_name.clone(), tcp).await?;
        tracing::info!(collector = %self.config.addr, "audit export to the SIEM connected");
        let (mut rd, mut wr) = tokio::io::split(tls);
        let mut sent = committed.clone();
        let mut pending: VecDeque<(Instant, String, i64)> = VecDeque::new();
        let mut scratch = [0u8; 512];
        loop {
            let now = Instant::now();
            let mut moved = false;
            while pending.front().is_some_and(|(at, _, _)| now.duration_since(*at) >= GRACE) {
                if let Some((_, tenant, seq)) = pending.pop_front() {
                    committed.insert(tenant, seq);
                    moved = true;
                }
            }
            if moved {
                self.save_cursor(committed);
            }
            let mut count = 0;
            for tenant in self.store.audit_tenants().await.map_err(std::io::Error::other)? {
                let after = sent.get(tenant.as_str()).copied().unwrap_or(0);
                let rows = self.store.audit_page(&tenant, after, BATCH).await.map_err(std::io::Error::other)?;
                let Some(last) = rows.last().map(|r| r.seq) else { continue };
                let mut frames = Vec::new();
                for row in &rows {
                    frames.extend_from_slice(&frame(&message(row, &self.host)));
                }
                wr.write_all(&frames).await?;
                wr.flush().await?;
                count += rows.len();
                sent.insert(tenant.to_string(), last);
                pending.push_back((Instant::now(), tenant.to_string(), last));
            }
            if count == 0 {
                // Nothing new: wait, and notice meanwhile when the collector goes away.
                tokio::select! {
                    r = rd.read(&mut scratch) => match r {
                        Ok(0) => return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "the collector closed the connection")),
                        Ok(_) => {}
                        Err(e) => return Err(e),
                    },
                    () = tokio::time::sleep(self.config.poll) => {}
                }
            }
        }
    }

    /// The position kept; none (a first export) or one that cannot be read starts each log from
    /// its beginning: repeats, never a gap.
    fn load_cursor(&self) -> BTreeMap<String, i64> {
        let text = match std::fs::read(&self.cursor_path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return BTreeMap::new(),
            Err(e) => {
                tracing::warn!(error = %e, file = %self.cursor_path.display(), "cannot read the SIEM export's position; sending every log from its start");
                return BTreeMap::new();
            }
        };
        serde_json::from_slice(&text).unwrap_or_else(|e| {
            tracing::warn!(error = %e, file = %self.cursor_path.display(), "the SIEM export's position is unreadable; sending every log from its start");
            BTreeMap::new()
        })
    }

    fn save_cursor(&self, cursor: &BTreeMap<String, i64>) {
        let tmp = self.cursor_path.with_extension("part");
        let written = serde_json::to_vec(cursor)
            .map_err(std::io::Error::other)
            .and_then(|b| std::fs::write(&tmp, b))
            .and_then(|()| std::fs::rename(&tmp, &self.cursor_path));
        if let Err(e) = written {
            tracing::warn!(error = %e, file = %self.cursor_path.display(), "cannot keep the SIEM export's position");
        }
    }
}

/// An RFC 5424 message for one event.
fn message(row: &AuditRow, host: &str) -> String {
    let r = &row.record;
    // Facility 13 (log audit); warning (4) for a denial, notice (5) otherwise.
    let pri = 13 * 8 + if r.decision == "deny" { 4 } else { 5 };
    let time = jiff::Timestamp::from_millisecond(r.at).map(|t| t.to_string()).unwrap_or_else(|_| "-".into());
    let mut json = serde_json::to_value(row).unwrap_or_default();
    if let Some(o) = json.as_object_mut() {
        o.insert("time".into(), time.clone().into());
    }
    let msgid = if r.kind.is_empty() { "-".to_owned() } else { printable(&r.kind, 32) };
    format!("<{pri}>1 {time} {} sekisho - {msgid} - \u{feff}{json}", printable(host, 255))
}

/// A header field as RFC 5424 allows it: printable ASCII, no spaces, bounded, `-` when empty.
fn printable(s: &str, max: usize) -> String {
    let clean: String = s.chars().filter(|c| c.is_ascii_graphic()).take(max).collect();
    if clean.is_empty() { "-".into() } else { clean }
}

/// RFC 5425 framing: the length in octets, a space, the message.
fn frame(msg: &str) -> Vec<u8> {
    let mut out = format!("{} ", msg.len()).into_bytes();
    out.extend_from_slice(msg.as_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_octet_counted_rfc5424() {
        let row = AuditRow {
            seq: 7,
            record: sekisho_store::AuditRecord {
                tenant_id: "t1".into(),
                at: 1_765_000_000_000,
                kind: "access".into(),
                decision: "deny".into(),
                target: "wiki".into(),
                ..Default::default()
            },
            prev_hash: String::new(),
            hash: "h".into(),
        };
        let msg = message(&row, "relay one");
        assert!(msg.starts_with("<108>1 2025-12-06T05:46:40Z relayone sekisho - access - \u{feff}{"), "{msg}");
        assert!(msg.contains("\"seq\":7") && msg.contains("\"target\":\"wiki\""), "{msg}");
        let f = frame("héllo");
        assert_eq!(f, b"6 h\xc3\xa9llo");
    }
}
