//! The systemd units in `packaging/systemd/`: `systemd-analyze verify` finds nothing to say about
//! them; the Debian package (cargo-deb, from the dev profile) passes lintian without errors and
//! installs with dpkg; the installed relay unit's `ExecStart`, with its `Environment=` settings,
//! run as the package's service user with the unit's umask, starts a relay that becomes ready and
//! keeps its data directory to itself; the package purges cleanly.

use std::path::PathBuf;
use std::time::Duration;

use crate::harness::test_dir;

fn unit(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../packaging/systemd").join(name);
    std::fs::read_to_string(path).unwrap()
}

/// The values of `key=` lines of a unit.
fn values<'a>(text: &'a str, key: &str) -> Vec<&'a str> {
    text.lines().filter_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix('='))).collect()
}

#[tokio::test]
async fn systemd_units_verify_and_the_debian_package_installs_a_relay_that_starts() {
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

    // The Debian package, built from the dev profile the tests have: lintian finds no error, and
    // dpkg installs the binary, the units and the service user.
    let deb = dir.path().join("sekisho.deb");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let built = std::process::Command::new(cargo)
        .args(["deb", "-p", "sekisho", "--no-build", "--profile", "dev", "--output"])
        .arg(&deb)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo-deb (installed by the test command)");
    assert!(built.status.success(), "cargo deb: {}", String::from_utf8_lossy(&built.stderr));
    let lint = std::process::Command::new("lintian").args(["--fail-on", "error"]).arg(&deb).output().unwrap();
    let said = String::from_utf8_lossy(&lint.stdout);
    assert!(lint.status.success() && !said.lines().any(|l| l.starts_with("E:")), "lintian: {said}");
    let installed = std::process::Command::new("dpkg").arg("-i").arg(&deb).output().unwrap();
    assert!(installed.status.success(), "dpkg -i: {}", String::from_utf8_lossy(&installed.stderr));
    let relay = std::fs::read_to_string("/lib/systemd/system/sekisho-relay.service").unwrap();
    assert_eq!(relay, unit("sekisho-relay.service"), "the package installs the unit as it is");
    let version = std::process::Command::new("/usr/bin/sekisho").arg("--version").output().unwrap();
    assert!(String::from_utf8_lossy(&version.stdout).starts_with("sekisho "), "the installed binary runs");

    // The installed relay unit's command and environment, as its service user (made by the
    // package), in a state directory of its own.
    let user = values(&relay, "User")[0];
    assert!(std::process::Command::new("id").arg(user).output().unwrap().status.success(), "postinst made {user}");
    let state = dir.path().join("state");
    std::fs::create_dir(&state).unwrap();
    let chown = std::process::Command::new("chown").arg(format!("{user}:{user}")).arg(&state).status().unwrap();
    assert!(chown.success());
    std::process::Command::new("chmod").args(["755"]).arg(dir.path()).status().unwrap();
    let exec = values(&relay, "ExecStart")[0].to_owned();
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
    let _ = child.wait().await;

    // Removed (and purged), the binary and units go; the evidence in the state directory stays.
    let purged = std::process::Command::new("dpkg").args(["--purge", "sekisho"]).output().unwrap();
    assert!(purged.status.success(), "dpkg --purge: {}", String::from_utf8_lossy(&purged.stderr));
    assert!(!std::path::Path::new("/usr/bin/sekisho").exists());
    assert!(state.join("master.key").exists());
}
