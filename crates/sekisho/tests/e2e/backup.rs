//! `sekisho backup` / `restore`: a running relay backed up into one age file (opened by the
//! reference `age` tool), restored into a fresh data directory where `audit verify` passes and
//! the agents reconnect to the restored relay; a non-empty directory, a wrong key and a damaged
//! file are refused and leave nothing behind. On PostgreSQL too (`pg_dump`, `psql`).

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::Command;

use crate::harness::{Relay, pg_database, sekisho_with_stdin, test_dir};
use crate::targets;

/// Connects to `addr` and checks that it echoes (retrying while a route comes back).
async fn echoes(addr: SocketAddr) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(Ok(mut sock)) = tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(addr)).await {
            let mut buf = [0u8; 4];
            if sock.write_all(b"ping").await.is_ok()
                && matches!(tokio::time::timeout(Duration::from_secs(3), sock.read_exact(&mut buf)).await, Ok(Ok(_)))
                && &buf == b"ping"
            {
                return;
            }
        }
        assert!(tokio::time::Instant::now() < deadline, "{addr} does not echo");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Runs `sekisho ARGS`; (success, stdout + stderr).
async fn sekisho(args: &[&str]) -> (bool, String) {
    sekisho_with_stdin(args, b"").await
}

/// An age key pair made by the reference tool: (identity file, recipient).
async fn age_key(dir: &Path) -> (String, String) {
    let file = dir.join("key.txt");
    let out = Command::new("age-keygen").arg("-o").arg(&file).output().await.unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = std::fs::read_to_string(&file).unwrap();
    let recipient = text.lines().find_map(|l| l.strip_prefix("# public key: ")).unwrap().to_owned();
    (file.display().to_string(), recipient)
}

/// What the reference `age` and `tar` see inside a backup.
async fn listing(backup: &str, identity: &str) -> String {
    let out =
        Command::new("sh").arg("-c").arg(format!("age -d -i '{identity}' '{backup}' | tar -t")).output().await.unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
async fn backup_of_a_running_relay_restores_into_a_new_directory() {
    let mut relay = Relay::start().await;
    let back = relay.agent("site-b", "back").await;
    let mut front = relay.agent("pc-f", "front").await;
    let echo = targets::echo_stream().await;
    relay.service("echo", &back, &format!("tcp://{echo}")).await;
    let (_, addr) = relay.route(&mut front, "echo").await;
    echoes(addr).await;
    relay.ctl(&["group", "add", "ops", "--role", "operator"]).await.unwrap();

    // Backed up while the relay runs.
    let work = test_dir();
    let (identity, recipient) = age_key(work.path()).await;
    let backup = work.path().join("relay.age").display().to_string();
    let data = relay.dir.path().join("data").display().to_string();
    let (ok, said) = sekisho(&["backup", "--data-dir", &data, "--output", &backup, "--recipient", &recipient]).await;
    assert!(ok && said.contains("backed up"), "{said}");
    assert!(!Path::new(&format!("{}.part", backup.trim_end_matches(".age"))).exists());
    let files = listing(&backup, &identity).await;
    for name in ["data/ca.pem", "data/master.key", "data/audit.pub", "database/sekisho.db", "backup.json"] {
        assert!(files.lines().any(|l| l == name), "{name} in:\n{files}");
    }
    assert!(!files.contains("data/sekisho.db"), "the live SQLite files are not copied: {files}");
    assert_eq!(files.lines().last(), Some("backup.json"), "the manifest comes last");

    relay.proc.kill().await;

    // Refused, and nothing left behind: a directory that holds something, no key, a wrong key,
    // a damaged file.
    let fresh = test_dir();
    let target = fresh.path().join("data");
    let target_s = target.display().to_string();
    let (ok, said) = sekisho(&["restore", "--input", &backup, "--data-dir", &data, "--identity", &identity]).await;
    assert!(!ok && said.contains("is not empty"), "{said}");
    let (ok, said) = sekisho(&["restore", "--input", &backup, "--data-dir", &target_s]).await;
    assert!(!ok && said.contains("--identity"), "{said}");
    let wrong = work.path().join("wrong");
    std::fs::create_dir_all(&wrong).unwrap();
    let (wrong_identity, _) = age_key(&wrong).await;
    let (ok, said) =
        sekisho(&["restore", "--input", &backup, "--data-dir", &target_s, "--identity", &wrong_identity]).await;
    assert!(!ok && said.contains("cannot open the backup"), "{said}");
    let mut bytes = std::fs::read(&backup).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    let damaged = work.path().join("damaged.age").display().to_string();
    std::fs::write(&damaged, bytes).unwrap();
    let (ok, said) = sekisho(&["restore", "--input", &damaged, "--data-dir", &target_s, "--identity", &identity]).await;
    assert!(!ok, "{said}");
    let left: Vec<_> = std::fs::read_dir(fresh.path()).unwrap().flatten().map(|e| e.file_name()).collect();
    assert!(!target.exists() && left.iter().all(|n| n != "data"), "nothing restored: {left:?}");
    assert!(left.iter().all(|n| !n.to_string_lossy().starts_with(".sekisho-restore")), "no staging left: {left:?}");

    // Restored: private, its audit log verifies, and the agents come back to it.
    let (ok, said) = sekisho(&["restore", "--input", &backup, "--data-dir", &target_s, "--identity", &identity]).await;
    assert!(ok && said.contains("restored"), "{said}");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&target).unwrap().permissions().mode() & 0o777, 0o700);
    assert_eq!(std::fs::metadata(target.join("master.key")).unwrap().permissions().mode() & 0o777, 0o600);
    let (ok, said) = sekisho(&["audit", "verify", "--data-dir", &target_s]).await;
    assert!(ok, "the restored audit log verifies: {said}");
    let restored = Relay::start_from(fresh, &relay.addr.to_string(), &[], &relay.admin_key).await;
    let groups = restored.ctl(&["group", "list"]).await.unwrap();
    assert!(groups.to_string().contains("ops"), "{groups}");
    // Both agents come back; the front agent's route (kept open meanwhile) leads through again.
    front.proc.wait_new("connected", |e| e["event"] == "connected").await;
    echoes(addr).await;
    drop(back);
}

#[tokio::test]
async fn backup_of_postgresql_restores_into_an_empty_database() {
    let Some(database) = pg_database().await else { return };
    let relay = Relay::start_with(&["--database", &database]).await;
    relay.ctl(&["group", "add", "ops", "--role", "operator"]).await.unwrap();
    let work = test_dir();
    let backup = work.path().join("relay.age").display().to_string();
    let data = relay.dir.path().join("data").display().to_string();
    let pass = b"correct horse battery\n";
    let args = ["backup", "--data-dir", &data, "--database", &database, "--output", &backup, "--passphrase-stdin"];
    let said = sekisho_with_stdin(&args, pass).await;
    assert!(said.0, "{}", said.1);
    let fresh = test_dir();
    let target = fresh.path().join("data").display().to_string();
    let empty = pg_database().await.unwrap();
    // A PostgreSQL backup needs a database to go into.
    let said =
        sekisho_with_stdin(&["restore", "--input", &backup, "--data-dir", &target, "--passphrase-stdin"], pass).await;
    assert!(!said.0 && said.1.contains("--database"), "{}", said.1);
    let args = ["restore", "--input", &backup, "--data-dir", &target, "--database", &empty, "--passphrase-stdin"];
    let said = sekisho_with_stdin(&args, pass).await;
    assert!(said.0, "{}", said.1);
    let (ok, said) = sekisho(&["audit", "verify", "--data-dir", &target, "--database", &empty]).await;
    assert!(ok, "{said}");
    let restored = Relay::start_from(fresh, "127.0.0.1:0", &["--database", &empty], &relay.admin_key).await;
    let groups = restored.ctl(&["group", "list"]).await.unwrap();
    assert!(groups.to_string().contains("ops"), "{groups}");
}
