//! Audit export to a SIEM, received by Debian's rsyslog over TLS (imtcp with the gtls driver):
//! every event arrives as RFC 5424 (app `sekisho`, the kind as MSGID, facility `audit` (13),
//! warning for a denial) with the event as JSON; events made while the collector is down arrive
//! when it is back, and a relay restart goes on from where it was, without starting over.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use tokio::process::{Child, Command};

use crate::harness::{Relay, test_dir};

/// A CA and a certificate for `localhost` signed by it, made with the openssl tool.
fn certificates(dir: &Path) {
    let run = |args: &str| {
        let out = std::process::Command::new("sh").arg("-c").arg(args).current_dir(dir).output().unwrap();
        assert!(out.status.success(), "{args}: {}", String::from_utf8_lossy(&out.stderr));
    };
    run(
        "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.pem -days 2 -subj /CN=siem-ca",
    );
    run(
        "openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout srv.key -out srv.csr -subj /CN=localhost",
    );
    std::fs::write(dir.join("san.ext"), "subjectAltName=DNS:localhost,IP:127.0.0.1\n").unwrap();
    run("openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out srv.pem -days 2 -extfile san.ext");
}

/// rsyslogd in the foreground, receiving syslog over TLS on `port` into `out.log`.
struct Rsyslog {
    child: Child,
    out: PathBuf,
}

impl Rsyslog {
    async fn start(dir: &Path, port: u16) -> Rsyslog {
        let d = dir.display();
        let conf = format!(
            r#"global(workDirectory="{d}" defaultNetstreamDriver="gtls" defaultNetstreamDriverCAFile="{d}/ca.pem"
       defaultNetstreamDriverCertFile="{d}/srv.pem" defaultNetstreamDriverKeyFile="{d}/srv.key")
module(load="imtcp" streamDriver.name="gtls" streamDriver.mode="1" streamDriver.authMode="anon")
input(type="imtcp" port="{port}" address="127.0.0.1")
template(name="fields" type="string" string="%app-name%|%msgid%|%syslogseverity-text%|%syslogfacility-text%|%msg%\n")
action(type="omfile" file="{d}/out.log" template="fields")
"#
        );
        std::fs::write(dir.join("rsyslog.conf"), conf).unwrap();
        let child = Command::new("rsyslogd")
            .args(["-n", "-f"])
            .arg(dir.join("rsyslog.conf"))
            .arg("-i")
            .arg(dir.join("rsyslogd.pid"))
            .kill_on_drop(true)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("rsyslogd (Debian's rsyslog, installed by the test command)");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
            assert!(tokio::time::Instant::now() < deadline, "rsyslogd did not listen on {port}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Rsyslog { child, out: dir.join("out.log") }
    }

    async fn stop(mut self) {
        let _ = self.child.kill().await;
        let _ = self.child.wait().await;
    }

    /// The events received: (app, msgid, severity, facility, the event).
    fn received(&self) -> Vec<(String, String, String, String, Value)> {
        let text = std::fs::read_to_string(&self.out).unwrap_or_default();
        text.lines()
            .filter_map(|l| {
                let mut parts = l.splitn(5, '|');
                let (app, msgid, sev, fac, msg) =
                    (parts.next()?, parts.next()?, parts.next()?, parts.next()?, parts.next()?);
                let json = serde_json::from_str(msg.trim_start_matches('\u{feff}').trim()).ok()?;
                Some((app.into(), msgid.into(), sev.into(), fac.into(), json))
            })
            .collect()
    }

    /// Waits until every sequence number of the default tenant's log up to `head` has arrived.
    async fn wait_for(&self, head: i64) -> Vec<(String, String, String, String, Value)> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let got = self.received();
            let seqs: BTreeSet<i64> = got.iter().filter_map(|e| e.4["seq"].as_i64()).collect();
            if (1..=head).all(|s| seqs.contains(&s)) {
                return got;
            }
            assert!(tokio::time::Instant::now() < deadline, "events 1..={head} did not all arrive: {seqs:?}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// The default tenant's newest sequence number.
async fn head(relay: &Relay) -> i64 {
    let (_, events) = relay.api("GET", "/api/v1/audit?limit=1", None, &relay.admin_key).await;
    events[0]["seq"].as_i64().unwrap()
}

async fn failed_login(relay: &Relay) {
    let body = serde_json::json!({ "user": "nobody", "password": "wrong password" });
    let (status, _) = relay.api("POST", "/api/v1/login", Some(body), "").await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn audit_events_reach_rsyslog_over_tls_and_survive_outages() {
    let dir = test_dir();
    certificates(dir.path());
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let ca = dir.path().join("ca.pem").display().to_string();
    let collector = format!("localhost:{port}");
    // The collector is down when the relay starts.
    let mut relay = Relay::start_with(&["--siem-syslog", &collector, "--siem-ca", &ca, "--siem-poll-ms", "100"]).await;
    relay.ctl(&["group", "add", "ops", "--role", "operator"]).await.unwrap();
    failed_login(&relay).await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    let syslog = Rsyslog::start(dir.path(), port).await;
    let got = syslog.wait_for(head(&relay).await).await;
    assert!(got.iter().all(|e| e.0 == "sekisho" && e.3 == "audit"), "{got:?}");
    let login = got.iter().find(|e| e.1 == "login" && e.4["decision"] == "deny").expect("the failed login");
    assert_eq!(login.2, "warning", "a denial is a warning");
    let admin = got.iter().find(|e| e.1 == "admin").expect("the group's creation");
    assert_eq!(admin.2, "notice");
    assert!(admin.4["hash"].as_str().is_some_and(|h| h.len() == 64) && admin.4["time"].is_string(), "{:?}", admin.4);

    // Down again: what happens meanwhile arrives when it is back.
    syslog.stop().await;
    relay.ctl(&["group", "add", "auditors", "--role", "auditor"]).await.unwrap();
    failed_login(&relay).await;
    let syslog = Rsyslog::start(dir.path(), port).await;
    let got = syslog.wait_for(head(&relay).await).await;
    let groups = got
        .iter()
        .filter(|e| e.4["target"] == "POST /groups")
        .filter_map(|e| e.4["seq"].as_i64())
        .collect::<BTreeSet<_>>();
    assert_eq!(groups.len(), 2, "the group made while it was down arrived too: {got:?}");

    // A restart goes on from where the export was.
    let before = got.len();
    relay.restart_with(&["--siem-syslog", &collector, "--siem-ca", &ca, "--siem-poll-ms", "100"]).await;
    failed_login(&relay).await;
    let now = head(&relay).await;
    let got = syslog.wait_for(now).await;
    let resent = got.len() - before;
    assert!(resent < 10, "the restart did not send the log again from the start ({resent} more lines)");
    syslog.stop().await;
}
