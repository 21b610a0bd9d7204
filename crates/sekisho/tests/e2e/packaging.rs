//! The systemd units in `packaging/systemd/`: `systemd-analyze verify` finds nothing to say about
//! them, and the relay unit's `ExecStart`, with its `Environment=` settings, run as an unprivileged
//! service user with the unit's umask, starts a relay that becomes ready and keeps its data
//! directory to itself.

use std::path::PathBuf;
use std::time::Duration;

use crate::harness::{BIN, test_dir};

fn unit(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../packaging/systemd").join(name);
    std::fs::read_to_string(path).unwrap()
}

/// The values of `key=` lines of a unit.
fn values<'a>(text: &'a str, key: &str) -> Vec<&'a str> {
    text.lines().filter_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix('='))).collect()
}

#[tokio::test]
async fn systemd_units_verify_and_the_relay_unit_starts_as_its_user() {
    let dir = test_dir();
    for name in ["sekisho-relay.service", "sekisho-agent.service"] {
        // Verified with the binary path pointing at an executable that exists here.
        let text = unit(name).replace("/usr/bin/sekisho", "/bin/true");
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        let out = std::process::Command::new("systemd-analyze").arg("verify").arg(&path).output().unwrap();
        let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success() && said.trim().is_empty(), "{name}: {said}");
        for hardening in ["NoNewPrivileges=yes", "ProtectSystem=strict", "ProtectHome=yes", "PrivateTmp=yes"] {
            assert!(unit(name).contains(hardening), "{name} lacks {hardening}");
        }
    }

    // The relay unit's command and environment, as its service user (created here, as the
    // package's postinst would), in a state directory of its own.
    let relay = unit("sekisho-relay.service");
    let user = values(&relay, "User")[0];
    let exists = std::process::Command::new("id").arg(user).output().unwrap().status.success();
    if !exists {
        let made = std::process::Command::new("useradd")
            .args(["--system", "--no-create-home", "--shell", "/usr/sbin/nologin", user])
            .status()
            .unwrap();
        assert!(made.success(), "useradd {user} (the tests run as root)");
    }
    let state = dir.path().join("state");
    std::fs::create_dir(&state).unwrap();
    let chown = std::process::Command::new("chown").arg(format!("{user}:{user}")).arg(&state).status().unwrap();
    assert!(chown.success());
    // The binary where the service user may run it (the build tree may be private).
    let bin = dir.path().join("sekisho");
    std::fs::copy(BIN, &bin).unwrap();
    std::process::Command::new("chmod").args(["755"]).arg(dir.path()).arg(&bin).status().unwrap();
    let exec = values(&relay, "ExecStart")[0].replace("/usr/bin/sekisho", bin.to_str().unwrap());
    assert_eq!(values(&relay, "UMask"), ["0077"]);
    let mut cmd = tokio::process::Command::new("runuser");
    // With the unit's umask, as systemd would set it.
    cmd.args(["-u", user, "--", "sh", "-c", "umask 0077; exec \"$@\"", "sh"]).args(exec.split_whitespace());
    for env in values(&relay, "Environment") {
        let (k, v) = env.split_once('=').unwrap();
        cmd.env(k, v);
    }
    // The state directory systemd would make, and a free port: the rest as the unit says.
    cmd.env("SEKISHO_DATA_DIR", &state).env("SEKISHO_LISTEN", "127.0.0.1:0").arg("--json-events");
    cmd.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).kill_on_drop(true);
    let mut child = cmd.spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(stdout));
    let ready = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
            if v["event"] == "ready" {
                return v;
            }
        }
        panic!("the relay ended before it was ready");
    })
    .await
    .expect("ready within a minute");
    assert!(ready["admin_key"].is_string(), "{ready}");
    // Its files belong to the service user.
    let owner = std::process::Command::new("stat").args(["-c", "%U"]).arg(state.join("master.key")).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&owner.stdout).trim(), user);
    let _ = child.kill().await;
}
