//! The SSH bastion's edges with Debian's OpenSSH clients: the menu typed at like a user would
//! (garbage, escape sequences, a filter, a choice by number, typed-ahead input, Japanese), an
//! unknown target, a key that is not registered, a wrong TOTP code, a live session watched and
//! ended by an auditor, absurd terminal sizes, and malformed SFTP.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, ChildStdin, Command};

use crate::harness::{Agent, Relay};
use crate::ssh_util::{Sshd, bastion_user, keygen, run, s, ssh_opts, start_sshd, totp_now};

/// A relay with its bastion, one back agent and one sshd published as several targets.
struct Site {
    relay: Relay,
    bastion: SocketAddr,
    dir: PathBuf,
    _back: Agent,
    _sshd: Sshd,
}

async fn site(targets: &[&str]) -> Site {
    let relay = Relay::start_with(&["--ssh-listen", "127.0.0.1:0"]).await;
    let bastion = relay.ssh.expect("the ready line names the bastion");
    let dir = relay.dir.path().to_owned();
    let back = relay.agent("site-a", "both").await;
    let target_key = dir.join("target_key");
    keygen(&target_key);
    let sshd = start_sshd(&dir, &target_key.with_extension("pub")).await;
    let me = String::from_utf8(std::process::Command::new("id").arg("-un").output().unwrap().stdout).unwrap();
    for t in targets {
        relay.service(t, &back, &format!("ssh://127.0.0.1:{}", sshd.port)).await;
        let key = target_key.to_str().unwrap();
        relay.ctl(&["service", "login", t, "--login", me.trim(), "--key-file", key]).await.unwrap();
    }
    Site { relay, bastion, dir, _back: back, _sshd: sshd }
}

/// An OpenSSH client (or anything else) whose stdin is written to as it runs and whose output
/// is read as it comes.
struct Term {
    child: Child,
    stdin: Option<ChildStdin>,
    out: Arc<std::sync::Mutex<Vec<u8>>>,
    err: Arc<std::sync::Mutex<Vec<u8>>>,
}

fn collect(mut from: impl AsyncRead + Unpin + Send + 'static) -> Arc<std::sync::Mutex<Vec<u8>>> {
    let buf = Arc::new(std::sync::Mutex::new(Vec::new()));
    let to = buf.clone();
    tokio::spawn(async move {
        let mut chunk = [0u8; 8192];
        while let Ok(n) = from.read(&mut chunk).await {
            if n == 0 {
                break;
            }
            to.lock().unwrap().extend_from_slice(&chunk[..n]);
        }
    });
    buf
}

/// A client command with the TOTP code `code` in its askpass script (see `ssh_opts`).
fn client(program: &str, args: &[String], dir: &Path, code: &str) -> Command {
    let mut cmd = Command::new(program);
    cmd.args(args)
        .env("SSH_ASKPASS", dir.join(format!("askpass-{code}.sh")))
        .env("SSH_ASKPASS_REQUIRE", "force")
        .env("DISPLAY", ":0")
        .env("LANG", "C.UTF-8");
    cmd
}

impl Term {
    fn spawn(mut cmd: Command) -> Term {
        let mut child =
            cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true).spawn().unwrap();
        let stdin = child.stdin.take();
        let out = collect(child.stdout.take().unwrap());
        let err = collect(child.stderr.take().unwrap());
        Term { child, stdin, out, err }
    }

    fn out(&self) -> String {
        String::from_utf8_lossy(&self.out.lock().unwrap()).into_owned()
    }

    fn err(&self) -> String {
        String::from_utf8_lossy(&self.err.lock().unwrap()).into_owned()
    }

    async fn send(&mut self, bytes: &[u8]) {
        let stdin = self.stdin.as_mut().expect("stdin is open");
        stdin.write_all(bytes).await.unwrap();
        stdin.flush().await.unwrap();
    }

    /// Waits until `needle` appears in the output at or after byte `from`; returns the offset
    /// just after it.
    async fn expect(&self, needle: &str, from: usize) -> usize {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            {
                let out = self.out.lock().unwrap();
                let hay = out.get(from..).unwrap_or_default();
                if let Some(i) = hay.windows(needle.len()).position(|w| w == needle.as_bytes()) {
                    return from + i + needle.len();
                }
            }
            assert!(
                Instant::now() < deadline,
                "no {needle:?} after byte {from} in output:\n{}\nstderr:\n{}",
                self.out(),
                self.err()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Closes stdin and waits (at most `within`) for the exit; returns the exit code.
    async fn finish(&mut self, within: Duration) -> i32 {
        drop(self.stdin.take());
        let status = tokio::time::timeout(within, self.child.wait()).await;
        let status =
            status.unwrap_or_else(|_| panic!("did not exit; output:\n{}\nstderr:\n{}", self.out(), self.err()));
        // Let the readers take the last bytes.
        tokio::time::sleep(Duration::from_millis(50)).await;
        status.unwrap().code().unwrap_or(-1)
    }
}

/// A TOTP code that is valid at no step near now.
fn wrong_code(secret: &str) -> String {
    let near: Vec<String> = (-2..=2).map(|k| totp_now(secret, k)).collect();
    ["123456", "654321", "111111"].into_iter().find(|c| !near.iter().any(|n| n == c)).unwrap().to_owned()
}

/// The recording `id` once it is finished.
async fn finished_recording(relay: &Relay, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let row = relay.ctl(&["recording", "show", id]).await.unwrap();
        if !row["ended_at"].is_null() {
            return row;
        }
        assert!(Instant::now() < deadline, "recording {id} never finished: {row}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn bastion_edges_menu_input_unknown_target_and_refused_logins() {
    let site = site(&["db01", "web01", "web02"]).await;
    let (relay, dir, bastion) = (&site.relay, site.dir.as_path(), site.bastion);
    let (secret, alice_key) = bastion_user(relay, dir, "alice", "ops").await;
    let (bob_secret, bob_key) = bastion_user(relay, dir, "bob", "ops").await;

    // Menu mode, typed at line by line as a user would, over one authenticated connection.
    let code = totp_now(&secret, 0);
    let control = dir.join("alice.sock");
    // The control master sends LANG for every session it carries.
    let opts = [ssh_opts(dir, bastion, &alice_key, &code, Some(&control)), s(&["-o", "SendEnv=LANG"])].concat();
    let mut t = Term::spawn(client("ssh", &[opts.clone(), s(&["-tt", "alice@127.0.0.1"])].concat(), dir, &code));
    const PROMPT: &str = "Number to connect, text to filter, q to quit: ";
    let mut at = t.expect(PROMPT, 0).await;
    let first = t.out();
    assert!(first.contains("1) db01 [ssh]") && first.contains("3) web02 [ssh]"), "{first}");
    t.send(b"xyz\n").await;
    at = t.expect("no target matches `xyz`", at).await;
    at = t.expect(PROMPT, at).await;
    t.send(b"99\n").await;
    at = t.expect("No such number", at).await;
    at = t.expect(PROMPT, at).await;
    // Arrow keys, a function key, Alt+x and a control character are ignored, and said so.
    t.send(b"\x1b[A\x1bOB\x1b[15~\x1bx\x01\n").await;
    at = t.expect("Only a number or part of a name can be typed here", at).await;
    at = t.expect(PROMPT, at).await;
    let screen = t.out()[at - PROMPT.len()..].to_owned();
    t.send(b"web\n").await;
    let before = at;
    at = t.expect(PROMPT, at).await;
    let filtered = t.out()[before..at].to_owned();
    assert!(filtered.contains("1) web01") && filtered.contains("2) web02"), "{filtered}");
    assert!(!filtered.contains("db01"), "the filter narrows the list: {filtered} (before: {screen})");
    t.send(b"2\n").await;
    at = t.expect("-> web02", at).await;
    t.send(b"echo menu-marker-$((40+2)); exit\n").await;
    t.expect("menu-marker-42", at).await;
    let rc = t.finish(Duration::from_secs(20)).await;
    assert_eq!(rc, 0, "the shell's exit status: {}\n{}", t.out(), t.err());
    let rec = relay.ctl(&["recording", "list", "--user", "alice", "--target", "web02"]).await.unwrap();
    assert_eq!(rec.as_array().unwrap().len(), 1, "{rec}");
    let row = finished_recording(relay, rec[0]["id"].as_str().unwrap()).await;
    assert_eq!(row["kind"], "shell");
    assert!(row["commands"].as_str().unwrap().contains("echo menu-marker-$((40+2)); exit"), "{row}");

    // In Japanese, with everything typed ahead at once (the rest of the line after a choice
    // reaches the target's shell).
    let mut ja = client("ssh", &[opts.clone(), s(&["-tt", "alice@127.0.0.1"])].concat(), dir, &code);
    ja.env("LANG", "ja_JP.UTF-8");
    let mut t = Term::spawn(ja);
    t.send(b"9\nweb02\n1\necho ja-marker-$((40+2)); exit\n").await;
    t.expect("ja-marker-42", 0).await;
    let rc = t.finish(Duration::from_secs(20)).await;
    let out = t.out();
    assert_eq!(rc, 0, "{out}\n{}", t.err());
    assert!(out.contains("Sekisho 踏み台 - 接続先:") && out.contains("その番号はありません"), "{out}");
    assert!(out.contains("番号で接続、文字で絞り込み、q で終了"), "{out}");

    // Leaving the menu with q ends with status 0.
    let mut t = Term::spawn(client("ssh", &[opts.clone(), s(&["-tt", "alice@127.0.0.1"])].concat(), dir, &code));
    t.send(b"q\n").await;
    assert_eq!(t.finish(Duration::from_secs(20)).await, 0, "{}", t.err());
    let _ = run("ssh", &[opts.clone(), s(&["-O", "exit", "alice@127.0.0.1"])].concat(), dir, &code, b"").await;

    // An unknown target: the reason id on stderr, a failing exit, an audited refusal.
    let code1 = totp_now(&secret, 1);
    let fresh = ssh_opts(dir, bastion, &alice_key, &code1, None);
    let (rc, _, err) = run("ssh", &[fresh, s(&["alice+nope@127.0.0.1", "true"])].concat(), dir, &code1, b"").await;
    assert_ne!(rc, 0);
    assert!(err.contains("アクセスは拒否されました: unknown_target") && err.contains("`nope`"), "{err}");
    let denied = relay.wait_event(|e| e["path"] == "ssh" && e["decision"] == "deny" && e["target"] == "nope").await;
    assert_eq!((denied["subject"].as_str(), denied["policy_id"].as_str()), (Some("alice"), Some("unknown_target")));

    // A key that is not registered: refused before any TOTP prompt, and audited.
    let stray = dir.join("stray_key");
    keygen(&stray);
    let never = "000000";
    let wrong_key = ssh_opts(dir, bastion, &stray, never, None);
    let (rc, _, err) = run("ssh", &[wrong_key, s(&["alice+web01@127.0.0.1", "true"])].concat(), dir, never, b"").await;
    assert_eq!(rc, 255, "{err}");
    assert!(err.contains("Permission denied"), "{err}");
    let ev =
        relay.wait_event(|e| e["path"] == "ssh" && e["reason"].as_str().unwrap_or("").starts_with("unknown_key")).await;
    assert_eq!((ev["subject"].as_str(), ev["decision"].as_str()), (Some("alice"), Some("deny")), "{ev}");
    let fp = String::from_utf8(
        std::process::Command::new("ssh-keygen").arg("-lf").arg(stray.with_extension("pub")).output().unwrap().stdout,
    )
    .unwrap();
    let fp = fp.split_whitespace().nth(1).unwrap();
    assert!(ev["reason"].as_str().unwrap().contains(fp), "the key's fingerprint is recorded: {ev}");

    // A user who does not exist, offering a key: audited too.
    let (rc, _, err) = run(
        "ssh",
        &[ssh_opts(dir, bastion, &stray, never, None), s(&["nobody@127.0.0.1", "true"])].concat(),
        dir,
        never,
        b"",
    )
    .await;
    assert_eq!(rc, 255, "{err}");
    let ev = relay.wait_event(|e| e["path"] == "ssh" && e["subject"] == "nobody").await;
    assert!(ev["reason"].as_str().unwrap().starts_with("unknown_user"), "{ev}");

    // A wrong TOTP code after the right key: refused and audited.
    let bad = wrong_code(&bob_secret);
    let bob = ssh_opts(dir, bastion, &bob_key, &bad, None);
    let (rc, _, err) = run("ssh", &[bob, s(&["bob+web01@127.0.0.1", "true"])].concat(), dir, &bad, b"").await;
    assert_eq!(rc, 255, "{err}");
    let ev = relay.wait_event(|e| e["path"] == "ssh" && e["subject"] == "bob" && e["reason"] == "bad_totp").await;
    assert_eq!(ev["decision"], "deny");
    assert_eq!(relay.health().await["status"], "ok", "the relay is still up");
}

#[tokio::test]
async fn bastion_edges_live_view_terminate_huge_windows_and_malformed_sftp() {
    let site = site(&["web01"]).await;
    let (relay, dir, bastion) = (&site.relay, site.dir.as_path(), site.bastion);
    let (secret, key) = bastion_user(relay, dir, "erin", "ops").await;
    let code = totp_now(&secret, 0);
    let control = dir.join("erin.sock");
    let opts = ssh_opts(dir, bastion, &key, &code, Some(&control));
    let target = "erin+web01@127.0.0.1";

    // A long PTY session, watched live, then ended by an auditor.
    let mut t = Term::spawn(client("ssh", &[opts.clone(), s(&["-tt", target])].concat(), dir, &code));
    t.send(b"echo ready-$((1+1))\n").await;
    let at = t.expect("ready-2", 0).await;
    let list = relay.ctl(&["recording", "list", "--user", "erin"]).await.unwrap();
    let live: Vec<&Value> = list.as_array().unwrap().iter().filter(|r| r["live"] == true).collect();
    assert_eq!(live.len(), 1, "{list}");
    let id = live[0]["id"].as_str().unwrap().to_owned();
    let mut watch = relay.ctl_command(&relay.admin_key);
    watch.args(["recording", "watch", &id, "--raw"]);
    let mut w = Term::spawn(watch);
    let wat = w.expect("\"version\":2", 0).await;
    t.send(b"echo live-marker-$((40+2)); sleep 37\n").await;
    t.expect("live-marker-42", at).await;
    w.expect("live-marker-42", wat).await;
    // Seen and ended on the console's live-sessions page by an auditor (the same API
    // `ctl recording kill` calls).
    let auditor = crate::web::web_user(relay, "kansa", "auditors", "auditor", "Kansa").await;
    let mut v = crate::web::Visitor::new(relay, &[]);
    v.sign_in(&v.url("localhost", "/login"), "kansa", &auditor, 0).await;
    let page = v.get(&v.url("localhost", "/live")).await;
    assert!(page.body.contains(&format!("href=\"/recordings/{id}\"")) && page.body.contains("erin"), "{}", page.body);
    assert!(page.body.contains("id=\"live-streams\""), "the open streams are listed too: {}", page.body);
    let csrf = crate::web::Visitor::csrf(&page);
    let killed_at = Instant::now();
    let ended = v
        .post(&v.url("localhost", "/live"), &[("csrf", csrf.as_str()), ("do", "terminate"), ("id", id.as_str())])
        .await;
    assert!(ended.status == 200 && ended.body.contains("Done."), "{}", ended.body);
    let rc = t.finish(Duration::from_secs(10)).await;
    let ended_in = killed_at.elapsed();
    assert!(ended_in < Duration::from_secs(5), "the client ended {ended_in:?} after the kill");
    assert_ne!(rc, 0);
    let err = t.err();
    let who = err.lines().find_map(|l| l.trim().strip_prefix("sekisho: session terminated by auditor "));
    let who = who.unwrap_or_else(|| panic!("stderr says who ended the session: {err}")).to_owned();
    assert!(!who.is_empty(), "{err}");
    assert_eq!(w.finish(Duration::from_secs(10)).await, 0, "the live view ends with the session: {}", w.err());
    let ev = relay.wait_event(|e| e["path"] == "ssh" && e["detail"].as_str().unwrap_or("").contains(&id)).await;
    assert!(ev["reason"].as_str().unwrap().contains("session terminated by auditor"), "{ev}");
    let detail: Value = serde_json::from_str(ev["detail"].as_str().unwrap()).unwrap();
    assert_eq!(detail["ended"], format!("session terminated by auditor {who}").as_str(), "{detail}");
    let row = finished_recording(relay, &id).await;
    assert!(row["commands"].as_str().unwrap().contains("sleep 37"), "{row}");
    // The target's shell is gone too, while the user's connection (the control master) stays.
    let gone = "for i in $(seq 100); do pgrep -f 'sleep 3[7]' >/dev/null || { echo gone; exit 0; }; sleep 0.1; done; \
                echo still-running";
    let (rc, out, err) = run("ssh", &[opts.clone(), vec![target.into(), gone.into()]].concat(), dir, &code, b"").await;
    assert_eq!((rc, out.trim()), (0, "gone"), "{err}");

    // Absurd terminal sizes from a real client: the largest a tty holds, then a window change.
    let tty_file = dir.join("tty");
    let quoted: Vec<String> = [opts.clone(), s(&["-tt", target])].concat().iter().map(|a| format!("'{a}'")).collect();
    let inner = format!("stty cols 65535 rows 65535; tty > '{}'; exec ssh {}", tty_file.display(), quoted.join(" "));
    let mut script = client("script", &s(&["-qec", &inner, "/dev/null"]), dir, &code);
    script.env("TERM", "xterm");
    let mut t = Term::spawn(script);
    t.send(b"stty size; echo sized-$((1+1))\n").await;
    let at = t.expect("sized-2", 0).await;
    assert!(t.out().contains("65535 65535"), "{}", t.out());
    let tty = std::fs::read_to_string(&tty_file).unwrap();
    let st = std::process::Command::new("stty").args(["-F", tty.trim(), "cols", "65000", "rows", "65001"]).status();
    assert!(st.unwrap().success());
    // The window change travels on its own; ask until the target sees it.
    let mut seen = false;
    for _ in 0..50 {
        t.send(b"stty size\n").await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        if t.out()[at..].contains("65001 65000") {
            seen = true;
            break;
        }
    }
    assert!(seen, "the window change reached the target: {}", t.out());
    t.send(b"echo still-$((2+2)); exit\n").await;
    t.expect("still-4", at).await;
    assert_eq!(t.finish(Duration::from_secs(20)).await, 0, "{}\n{}", t.out(), t.err());
    let rec = relay.ctl(&["recording", "list", "--user", "erin", "--command", "stty size"]).await.unwrap();
    let huge = rec[0]["id"].as_str().unwrap().to_owned();
    finished_recording(relay, &huge).await;
    let cast = relay.ctl_command(&relay.admin_key).args(["recording", "play", &huge, "--raw"]).output().await.unwrap();
    let cast = String::from_utf8_lossy(&cast.stdout).into_owned();
    let header: Value = serde_json::from_str(cast.lines().next().unwrap()).unwrap();
    let (w, h) = (header["width"].as_u64().unwrap(), header["height"].as_u64().unwrap());
    assert!((1..=10_000).contains(&w) && (1..=10_000).contains(&h), "the recorded size is clamped: {header}");
    assert!(cast.contains("\"r\""), "the resize is recorded: {cast}");

    // Malformed SFTP: random bytes, a length of 0xFFFFFFFF, a zero length, a truncated packet.
    let random: Vec<u8> = (0..65_536).map(|_| rand::random::<u8>()).collect();
    let init = [&5u32.to_be_bytes()[..], &[1u8], &3u32.to_be_bytes()].concat();
    let truncated_open = [&init[..], &100u32.to_be_bytes(), &[3u8], &7u32.to_be_bytes(), &[0, 0]].concat();
    let garbage: [Vec<u8>; 4] = [
        random,
        [&[0xff, 0xff, 0xff, 0xff][..], b"more"].concat(),
        [&init[..], &0u32.to_be_bytes()].concat(),
        truncated_open,
    ];
    for input in &garbage {
        let args = [opts.clone(), s(&["-s", target, "sftp"])].concat();
        let started = Instant::now();
        let (rc, _, err) = run("ssh", &args, dir, &code, input).await;
        assert!(started.elapsed() < Duration::from_secs(10), "malformed sftp ended in {:?}", started.elapsed());
        assert_ne!(rc, 255, "the channel ends with the target's exit status, not a dropped connection: {err}");
    }
    let rows = relay.ctl(&["recording", "list", "--user", "erin"]).await.unwrap();
    let sftp: Vec<String> = rows
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["kind"] == "sftp")
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(sftp.len(), garbage.len(), "{rows}");
    let mut malformed = 0;
    for id in &sftp {
        let row = finished_recording(relay, id).await;
        malformed += row["files"].as_str().unwrap().matches("\"malformed\"").count();
    }
    assert!(malformed >= 3, "the trackers say where they stopped: {rows}");

    // The same connection still carries a normal SFTP session and an exec; a new one logs in.
    let remote = dir.join("remote");
    std::fs::create_dir_all(&remote).unwrap();
    let local = dir.join("up.txt");
    std::fs::write(&local, b"after the garbage\n").unwrap();
    let batch = dir.join("batch");
    std::fs::write(&batch, format!("put {} {}/up.txt\n", local.display(), remote.display())).unwrap();
    let sftp = [opts.clone(), s(&["-b"]), vec![batch.display().to_string(), target.into()]].concat();
    let (rc, _, err) = run("sftp", &sftp, dir, &code, b"").await;
    assert_eq!(rc, 0, "sftp after malformed sftp: {err}");
    assert_eq!(std::fs::read(remote.join("up.txt")).unwrap(), b"after the garbage\n");
    let (rc, out, err) =
        run("ssh", &[opts.clone(), s(&[target, "echo exec-$((6*7))"])].concat(), dir, &code, b"").await;
    assert_eq!((rc, out.trim()), (0, "exec-42"), "{err}");
    let _ = run("ssh", &[opts.clone(), s(&["-O", "exit", target])].concat(), dir, &code, b"").await;
    let code1 = totp_now(&secret, 1);
    let fresh = ssh_opts(dir, bastion, &key, &code1, None);
    let (rc, out, err) = run("ssh", &[fresh, s(&[target, "echo fresh-$((6*7))"])].concat(), dir, &code1, b"").await;
    assert_eq!((rc, out.trim()), (0, "fresh-42"), "{err}");
}

/// `ssh-agent` on a socket of its own, holding `key`.
struct SshAgent {
    child: Child,
    sock: PathBuf,
}

impl Drop for SshAgent {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

async fn ssh_agent(dir: &Path, name: &str, key: &Path) -> SshAgent {
    let sock = dir.join(format!("{name}.agent"));
    let child = Command::new("ssh-agent")
        .arg("-D")
        .arg("-a")
        .arg(&sock)
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("ssh-agent comes with openssh-client");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !sock.exists() {
        assert!(Instant::now() < deadline, "ssh-agent did not create {}", sock.display());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let added = Command::new("ssh-add").arg(key).env("SSH_AUTH_SOCK", &sock).output().await.unwrap();
    assert!(added.status.success(), "ssh-add: {}", String::from_utf8_lossy(&added.stderr));
    SshAgent { child, sock }
}

/// A target whose credential is the user's own forwarded agent (`ssh -A`), as the operator
/// chose: the bastion logs in with the key her agent holds (a key the relay never sees), a
/// session without forwarding is refused with the reason, an agent without a key the target
/// takes is told so, and a Telnet target or a secret next to the flag is refused by the API.
#[tokio::test]
async fn bastion_agent_forwarding_logs_in_to_the_target_with_the_users_own_key() {
    let site = site(&["db01"]).await;
    let (relay, dir, bastion) = (&site.relay, site.dir.as_path(), site.bastion);
    let me = String::from_utf8(std::process::Command::new("id").arg("-un").output().unwrap().stdout).unwrap();
    let v = relay.ctl(&["service", "login", "db01", "--agent-forwarding", "--login", me.trim()]).await.unwrap();
    assert_eq!((v["secret_kind"].as_str(), v["login"].as_str()), (Some("agent"), Some(me.trim())), "{v}");
    let body = serde_json::json!({"login": "x", "agent_forwarding": true, "password": "secret"});
    let (status, err) = relay.api("PUT", "/api/v1/services/db01/login", Some(body), &relay.admin_key).await;
    assert_eq!((status, err["error"]["code"].as_str()), (400, Some("invalid_login")), "{err}");

    // The key the target accepts is in alice's agent only.
    let (alice_secret, alice_key) = bastion_user(relay, dir, "alice", "ops").await;
    let agent = ssh_agent(dir, "alice", &dir.join("target_key")).await;
    let code = totp_now(&alice_secret, 0);
    let opts = ssh_opts(dir, bastion, &alice_key, &code, None);
    let mut cmd =
        client("ssh", &[opts, s(&["-A", "alice+db01@127.0.0.1", "echo agent-$((6*7))"])].concat(), dir, &code);
    let out = cmd.env("SSH_AUTH_SOCK", &agent.sock).stdin(Stdio::null()).output().await.unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && stdout.contains("agent-42"), "with -A: {stdout} {stderr}");
    let rec = relay.ctl(&["recording", "list", "--user", "alice", "--target", "db01"]).await.unwrap();
    assert_eq!(rec[0]["command"], "echo agent-$((6*7))", "{rec}");

    // Without -A: refused with the reason, before anything reaches the target.
    let (bob_secret, bob_key) = bastion_user(relay, dir, "bob", "ops").await;
    let code = totp_now(&bob_secret, 0);
    let opts = ssh_opts(dir, bastion, &bob_key, &code, None);
    let (rc, out, err) = run("ssh", &[opts, s(&["bob+db01@127.0.0.1", "echo never"])].concat(), dir, &code, b"").await;
    assert_ne!(rc, 0, "{out}");
    assert!(err.contains("agent_required") && err.contains("ssh -A"), "{err}");
    assert!(!out.contains("never"), "{out}");
    let refused =
        relay.wait_event(|e| e["path"] == "ssh" && e["subject"] == "bob" && e["policy_id"] == "agent_required").await;
    assert_eq!((refused["decision"].as_str(), refused["target"].as_str()), (Some("deny"), Some("db01")));

    // An agent holding only a key the target does not take.
    let (carol_secret, carol_key) = bastion_user(relay, dir, "carol", "ops").await;
    let stranger = dir.join("stranger_key");
    keygen(&stranger);
    let agent = ssh_agent(dir, "carol", &stranger).await;
    let code = totp_now(&carol_secret, 0);
    let opts = ssh_opts(dir, bastion, &carol_key, &code, None);
    let mut cmd = client("ssh", &[opts, s(&["-A", "carol+db01@127.0.0.1", "echo never"])].concat(), dir, &code);
    let out = cmd.env("SSH_AUTH_SOCK", &agent.sock).stdin(Stdio::null()).output().await.unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("target_login_failed"), "{err}");
    assert!(err.contains("forwarded agent"), "{err}");

    // Telnet targets cannot use it.
    relay.service("tn01", &site._back, "telnet://127.0.0.1:23").await;
    let body = serde_json::json!({"agent_forwarding": true});
    let (status, err) = relay.api("PUT", "/api/v1/services/tn01/login", Some(body), &relay.admin_key).await;
    assert_eq!((status, err["error"]["code"].as_str()), (400, Some("invalid_login")), "{err}");
}
