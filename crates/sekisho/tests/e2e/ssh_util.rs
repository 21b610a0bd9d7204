//! Helpers for tests of the SSH bastion: keys, a real `sshd` on a free port, TOTP codes,
//! bastion users, OpenSSH client options and running the clients.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use crate::harness::Relay;

pub fn keygen(path: &Path) {
    let out = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "test", "-f"])
        .arg(path)
        .output()
        .expect("ssh-keygen is installed by the README's test command");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// A real sshd on a free loopback port that accepts `client_pub` for the current user.
pub struct Sshd {
    pub child: tokio::process::Child,
    pub port: u16,
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

pub async fn start_sshd(dir: &Path, client_pub: &Path) -> Sshd {
    let _ = std::fs::create_dir_all("/run/sshd");
    let host = dir.join("sshd_host");
    keygen(&host);
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let config = dir.join("sshd_config");
    std::fs::write(
        &config,
        format!(
            "ListenAddress 127.0.0.1\nPort {port}\nHostKey {}\nAuthorizedKeysFile {}\nPidFile none\nStrictModes no\n\
             UsePAM no\nPermitRootLogin prohibit-password\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n\
             Subsystem sftp internal-sftp\nLogLevel ERROR\n",
            host.display(),
            client_pub.display()
        ),
    )
    .unwrap();
    let child = Command::new("/usr/sbin/sshd")
        .args(["-D", "-e", "-f"])
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("sshd.log")).unwrap())
        .kill_on_drop(true)
        .spawn()
        .expect("openssh-server is installed by the README's test command");
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            return Sshd { child, port };
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("sshd did not start: {}", std::fs::read_to_string(dir.join("sshd.log")).unwrap_or_default());
}

pub fn totp_now(secret: &str, offset_steps: i64) -> String {
    let bytes = totp_rs::Secret::Encoded(secret.to_owned()).to_bytes().unwrap();
    let totp = totp_rs::TOTP::new(totp_rs::Algorithm::SHA1, 6, 1, 30, bytes).unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    totp.generate((now + offset_steps * 30).max(0) as u64)
}

/// A user with a password, TOTP and an SSH key; returns (TOTP secret, private key path).
pub async fn bastion_user(relay: &Relay, dir: &Path, name: &str, group: &str) -> (String, PathBuf) {
    let ok = |(s, v): (u16, Value)| {
        assert!((200..300).contains(&s), "{v}");
        v
    };
    let _ = relay.api("POST", "/api/v1/groups", Some(json!({"name": group, "role": "member"})), &relay.admin_key).await;
    let user = json!({"name": name, "password": "correct horse battery", "groups": [group]});
    ok(relay.api("POST", "/api/v1/users", Some(user), &relay.admin_key).await);
    let totp = ok(relay.api("POST", &format!("/api/v1/users/{name}/totp"), None, &relay.admin_key).await);
    let key = dir.join(format!("{name}_key"));
    keygen(&key);
    let pubfile = key.with_extension("pub");
    let added = relay.ctl(&["user", "ssh-key", "add", name, "--key-file", pubfile.to_str().unwrap()]).await.unwrap();
    assert!(added["fingerprint"].as_str().unwrap().starts_with("SHA256:"), "{added}");
    (totp["secret"].as_str().unwrap().to_owned(), key)
}

/// OpenSSH client options for the bastion: this key only, the TOTP code from an askpass script,
/// and (for `control`) one authenticated connection shared by later commands.
pub fn ssh_opts(dir: &Path, bastion: SocketAddr, key: &Path, code: &str, control: Option<&Path>) -> Vec<String> {
    let askpass = dir.join(format!("askpass-{code}.sh"));
    std::fs::write(&askpass, format!("#!/bin/sh\necho {code}\n")).unwrap();
    std::process::Command::new("chmod").arg("+x").arg(&askpass).status().unwrap();
    let mut o: Vec<String> = [
        "-F",
        "/dev/null",
        "-o",
        "StrictHostKeyChecking=no",
        "-o",
        "UserKnownHostsFile=/dev/null",
        "-o",
        "IdentitiesOnly=yes",
        "-o",
        "PreferredAuthentications=publickey,keyboard-interactive",
        "-o",
        "LogLevel=ERROR",
        "-o",
        "ConnectTimeout=10",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    o.extend(["-o".into(), format!("Port={}", bastion.port()), "-i".into(), key.display().to_string()]);
    if let Some(c) = control {
        o.extend(["-o".into(), "ControlMaster=auto".into(), "-o".into(), format!("ControlPath={}", c.display())]);
        o.extend(["-o".into(), "ControlPersist=60".into()]);
    }
    o
}

pub async fn run(
    program: &str,
    args: &[String],
    askpass_dir: &Path,
    code: &str,
    stdin: &[u8],
) -> (i32, String, String) {
    run_with_env(program, args, askpass_dir, code, stdin, &[]).await
}

/// [`run`] with extra environment variables (e.g. a terminal type).
pub async fn run_with_env(
    program: &str,
    args: &[String],
    askpass_dir: &Path,
    code: &str,
    stdin: &[u8],
    env: &[(&str, &str)],
) -> (i32, String, String) {
    let mut child = Command::new(program)
        .args(args)
        .envs(env.iter().copied())
        .env("SSH_ASKPASS", askpass_dir.join(format!("askpass-{code}.sh")))
        .env("SSH_ASKPASS_REQUIRE", "force")
        .env("DISPLAY", ":0")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin).await.unwrap();
    drop(input);
    let out =
        tokio::time::timeout(std::time::Duration::from_secs(60), child.wait_with_output()).await.unwrap().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

pub fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| (*x).to_owned()).collect()
}
