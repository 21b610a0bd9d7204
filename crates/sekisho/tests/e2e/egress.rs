//! The relay's egress rule as a tenant admin would attack it: bastion targets without an agent
//! that name the relay's own host (by address, by name, as an IPv4-mapped IPv6 address) are
//! refused with `private_destination`, audited, and never connected to; the operator's
//! `--egress-allow` opens exactly the named range.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

use crate::harness::Relay;
use crate::ssh_util::{bastion_user, run, s, ssh_opts, totp_now};

/// A service on the relay's own host that a tenant must not read: counts its connections.
async fn relay_host_service() -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            let _ = sock.write_all(b"relay-host-secret\r\n").await;
        }
    });
    (port, accepted)
}

/// Creates a Telnet/SSH target without an agent, with a login so the bastion gets as far as dialling.
async fn direct_target(relay: &Relay, name: &str, target: &str) {
    relay.ctl(&["service", "create", name, "--target", target]).await.unwrap();
    relay.policy(name, &["true"], &[]).await;
    let mut child = relay
        .ctl_command(&relay.admin_key)
        .args(["service", "login", name, "--login", "root", "--password-stdin"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"hunter2-hunter2\n").await.unwrap();
    let out = child.wait_with_output().await.unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[tokio::test]
async fn bastion_targets_cannot_reach_the_relays_own_network_unless_the_operator_allows_it() {
    let (port, accepted) = relay_host_service().await;
    let relay = Relay::start_with(&["--ssh-listen", "127.0.0.1:0"]).await;
    let bastion = relay.ssh.unwrap();
    let dir = relay.dir.path().to_owned();
    let targets = [
        ("loop1", format!("telnet://127.0.0.1:{port}")),
        ("loop2", format!("ssh://localhost:{port}")),
        ("loop3", format!("telnet://[::ffff:127.0.0.1]:{port}")),
        ("loop4", format!("ssh://127.1.2.3:{port}")),
    ];
    for (name, target) in &targets {
        direct_target(&relay, name, target).await;
    }
    // The target is part of the SSH user name, so each attempt is its own login (its own user,
    // as a TOTP code is good for one login).
    for (i, (name, _)) in targets.iter().enumerate() {
        let user = format!("mallory{i}");
        let (secret, key) = bastion_user(&relay, &dir, &user, "ops").await;
        let code = totp_now(&secret, 0);
        let opts = ssh_opts(&dir, bastion, &key, &code, None);
        let (rc, out, err) =
            run("ssh", &[opts, s(&["-tt", &format!("{user}+{name}@127.0.0.1")])].concat(), &dir, &code, b"").await;
        assert_ne!(rc, 0, "{name}: {out}");
        assert!(err.contains("private_destination") && err.contains(&format!("`{name}`")), "{name}: {err}");
        assert!(!out.contains("relay-host-secret"), "{name}: {out}");
        let e = relay.wait_event(|e| e["target"] == *name && e["policy_id"] == "private_destination").await;
        assert_eq!((e["decision"].as_str(), e["subject"].as_str()), (Some("deny"), Some(user.as_str())), "{e}");
        assert!(e["reason"].as_str().unwrap().contains("--egress-allow"), "{e}");
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 0, "the relay dialled its own host");

    // The operator allows one address: that target is dialled, the rest of loopback still is not.
    let allowed = Relay::start_with(&["--ssh-listen", "127.0.0.1:0", "--egress-allow", "127.0.0.1/32"]).await;
    let dir = allowed.dir.path().to_owned();
    direct_target(&allowed, "loop1", &targets[0].1).await;
    direct_target(&allowed, "loop4", &targets[3].1).await;
    let (secret, key) = bastion_user(&allowed, &dir, "olga", "ops").await;
    let code = totp_now(&secret, 0);
    let opts = ssh_opts(&dir, allowed.ssh.unwrap(), &key, &code, None);
    let _ = run("ssh", &[opts.clone(), s(&["-tt", "olga+loop1@127.0.0.1"])].concat(), &dir, &code, b"").await;
    assert_eq!(accepted.load(Ordering::SeqCst), 1, "the allowed address is dialled");
    let (secret, key) = bastion_user(&allowed, &dir, "oscar", "ops").await;
    let code = totp_now(&secret, 0);
    let opts = ssh_opts(&dir, allowed.ssh.unwrap(), &key, &code, None);
    let (_, _, err) = run("ssh", &[opts, s(&["-tt", "oscar+loop4@127.0.0.1"])].concat(), &dir, &code, b"").await;
    assert!(err.contains("private_destination"), "127.1.2.3 is outside 127.0.0.1/32: {err}");
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
}
