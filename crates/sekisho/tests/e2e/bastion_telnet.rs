//! The SSH bastion in front of a Telnet target: Debian's real telnetd (inetutils) behind a back
//! agent, started per connection by the test acting as inetd, runs a login program of the
//! test's own (prompts like login(1), checks the test's account, then runs a shell). Through
//! OpenSSH: the bastion types the stored login, what the user typed early waits for it, the
//! commands run, the password is never shown, the session is recorded; in a real terminal
//! (tmux) Enter and window changes reach the shell; a wrong stored password ends the session
//! with a clear message.

use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::AsyncWriteExt;
use tokio::process::{Child, Command};

use crate::harness::{Agent, Relay};
use crate::ssh_util::{bastion_user, s, ssh_opts, totp_now};

const LOGIN: &str = "operator";

/// A tiny inetd: each connection to `port` gets its own `/usr/sbin/telnetd` on the socket.
struct Inetd {
    port: u16,
    task: tokio::task::JoinHandle<()>,
    children: Arc<Mutex<Vec<Child>>>,
}

impl Drop for Inetd {
    fn drop(&mut self) {
        self.task.abort();
        for c in self.children.lock().unwrap().iter_mut() {
            let _ = c.start_kill();
        }
    }
}

async fn start_telnetd(dir: &Path, login_program: &Path) -> Inetd {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let children = Arc::new(Mutex::new(Vec::new()));
    let (kids, program, log) = (children.clone(), login_program.to_owned(), dir.join("telnetd.log"));
    let log = std::fs::File::create(log).unwrap();
    let task = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let stream = stream.into_std().unwrap();
            stream.set_nonblocking(false).unwrap();
            let socket = OwnedFd::from(stream);
            let child = Command::new("/usr/sbin/telnetd")
                .arg("--exec-login")
                .arg(&program)
                .stdin(Stdio::from(socket.try_clone().unwrap()))
                .stdout(Stdio::from(socket))
                .stderr(log.try_clone().unwrap())
                .kill_on_drop(true)
                .spawn()
                .expect("inetutils-telnetd is installed by scripts/test.sh");
            kids.lock().unwrap().push(child);
        }
    });
    Inetd { port, task, children }
}

/// The target's login program: asks like login(1) (the login prompt arrives in two pieces, as
/// from a slow device; echo is off before the password prompt, as getpass does), checks the
/// test's account, then runs a shell with the prompt `tn$ `.
fn login_program(dir: &Path, password: &str) -> PathBuf {
    let path = dir.join("telnet-login.sh");
    std::fs::write(
        &path,
        format!(
            "#!/bin/sh\n\
             tries=0\n\
             while [ \"$tries\" -lt 3 ]; do\n\
             \x20 printf 'sw01 log'; sleep 0.2; printf 'in: '\n\
             \x20 IFS= read -r name || exit 1\n\
             \x20 stty -echo; printf 'Password: '\n\
             \x20 IFS= read -r pw || exit 1\n\
             \x20 stty echo; printf '\\n'\n\
             \x20 if [ \"$name\" = '{LOGIN}' ] && [ \"$pw\" = '{password}' ]; then\n\
             \x20   printf 'Welcome %s TERM=%s size=%s\\n' \"$name\" \"$TERM\" \"$(stty size)\"\n\
             \x20   PS1='tn$ ' exec /bin/sh -i\n\
             \x20 fi\n\
             \x20 sleep 1; echo 'Login incorrect'\n\
             \x20 tries=$((tries+1))\n\
             done\n\
             exit 1\n"
        ),
    )
    .unwrap();
    std::process::Command::new("chmod").arg("+x").arg(&path).status().unwrap();
    path
}

async fn set_login(relay: &Relay, service: &str, password: &str) {
    let mut child = relay
        .ctl_command(&relay.admin_key)
        .args(["service", "login", service, "--login", LOGIN, "--password-stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(format!("{password}\n").as_bytes()).await.unwrap();
    let out = child.wait_with_output().await.unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["secret_kind"], "password", "{v}");
}

/// `ssh` with its whole input at once, with a known terminal type.
async fn ssh_piped(args: &[String], dir: &Path, code: &str, stdin: &[u8]) -> (i32, String, String) {
    crate::ssh_util::run_with_env("ssh", args, dir, code, stdin, &[("TERM", "vt220")]).await
}

/// One `ssh -tt` session through the bastion to `dest`, signed in with the user's key and current
/// TOTP code, with `typed` as its whole input.
async fn ssh_typed(
    dir: &Path,
    bastion: SocketAddr,
    (secret, key): &(String, PathBuf),
    dest: &str,
    typed: &[u8],
) -> (i32, String, String) {
    let code = totp_now(secret, 0);
    let args = [ssh_opts(dir, bastion, key, &code, None), s(&["-tt", dest])].concat();
    ssh_piped(&args, dir, &code, typed).await
}

/// A tmux server of the test's own: a real terminal to type at, resize and read.
struct Tmux {
    sock: PathBuf,
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = std::process::Command::new("tmux").arg("-S").arg(&self.sock).arg("kill-server").output();
    }
}

impl Tmux {
    async fn run(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .arg("-S")
            .arg(&self.sock)
            .args(args)
            .env("TERM", "xterm")
            .output()
            .await
            .expect("tmux is installed by scripts/test.sh");
        assert!(out.status.success(), "tmux {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    async fn screen(&self) -> String {
        self.run(&["capture-pane", "-p", "-J", "-S", "-", "-t", "t"]).await
    }

    /// Waits until the screen shows `want` `times` times; returns the screen.
    async fn wait_for(&self, want: &str, times: usize) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let screen = self.screen().await;
            if screen.matches(want).count() >= times {
                return screen;
            }
            assert!(Instant::now() < deadline, "the terminal never showed {want:?} {times}x:\n{screen}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn quote(a: &str) -> String {
    format!("'{}'", a.replace('\'', r"'\''"))
}

#[tokio::test]
async fn openssh_reaches_a_real_telnetd_through_the_bastion_which_types_the_login() {
    let started = Instant::now();
    let relay = Relay::start_with(&["--ssh-listen", "127.0.0.1:0"]).await;
    let bastion = relay.ssh.expect("the ready line names the bastion");
    let dir = relay.dir.path().to_owned();
    let back: Agent = relay.agent("site-a", "both").await;
    let password = format!("tpw-{:08x}", rand::random::<u32>());
    let telnetd = start_telnetd(&dir, &login_program(&dir, &password)).await;
    let url = format!("telnet://127.0.0.1:{}", telnetd.port);
    relay.service("sw01", &back, &url).await;
    relay.service("sw02", &back, &url).await;
    set_login(&relay, "sw01", &password).await;
    set_login(&relay, "sw02", "not-the-password").await;
    let alice = bastion_user(&relay, &dir, "alice", "ops").await;
    let (carol_secret, carol_key) = bastion_user(&relay, &dir, "carol", "ops").await;
    let dave = bastion_user(&relay, &dir, "dave", "ops").await;

    // Everything typed at once, before the target even asked for the login: it waits until the
    // bastion has logged in, then runs. The user's EOF right after does not end the session.
    // (`sleep` before `exit`: telnetd stops forwarding the shell's output as soon as the shell
    // exits, and on a busy machine a shell that runs everything typed ahead at once can exit
    // before telnetd has read what it printed.)
    let typed = b"echo telnet-marker-$((40+2))\nprintf 'bare-\\rcr-ok\\n'\nsleep 1; exit\n";
    let (rc, out, err) = ssh_typed(&dir, bastion, &alice, "alice+sw01@127.0.0.1", typed).await;
    assert_eq!(rc, 0, "telnet session: {out} {err}");
    assert!(out.contains(&format!("Welcome {LOGIN} TERM=vt220")), "logged in, terminal type passed on: {out}");
    assert!(out.contains("telnet-marker-42"), "{out}");
    assert!(out.contains("bare-\rcr-ok") && !out.contains('\0'), "CR NUL from the target is a bare CR: {out:?}");
    assert!(!out.contains(&password) && !err.contains(&password), "the target password is never shown: {out}");

    // From the menu: the choice and the lines typed after it, all at once; those lines reach
    // the target after the bastion's login, none lost.
    let erin = bastion_user(&relay, &dir, "erin", "ops").await;
    let typed = b"sw01\n1\necho menu-ahead-$((2+3))\nsleep 1; exit\n";
    let (rc, out, err) = ssh_typed(&dir, bastion, &erin, "erin@127.0.0.1", typed).await;
    assert_eq!(rc, 0, "menu to telnet: {out} {err}");
    assert!(out.contains("menu-ahead-5"), "typed ahead in the menu, run on the target: {out}");

    // The recording: protocol telnet, the typed command, the output, linked from the audit log.
    // Its summary is stored before the client sees the channel close, so it is there as soon
    // as ssh has exited.
    let recs = relay.ctl(&["recording", "list", "--protocol", "telnet", "--user", "alice"]).await.unwrap();
    assert_eq!(recs.as_array().unwrap().len(), 1, "{recs:?}");
    let rec = &recs[0];
    let id = rec["id"].as_str().unwrap();
    assert!(rec["ended_at"].is_number() && rec["sha256"].as_str().is_some_and(|h| h.len() == 64), "{rec}");
    let ended = relay.wait_event(|e| e["path"] == "ssh" && e["detail"].as_str().unwrap_or("").contains(id)).await;
    assert_eq!((rec["protocol"].as_str(), rec["target"].as_str()), (Some("telnet"), Some("sw01")), "{rec}");
    let commands: Value = serde_json::from_str(rec["commands"].as_str().unwrap()).unwrap();
    let cmds: Vec<&str> = commands.as_array().unwrap().iter().map(|c| c["cmd"].as_str().unwrap()).collect();
    assert!(cmds.contains(&"echo telnet-marker-$((40+2))"), "{cmds:?}");
    let found = relay.ctl(&["recording", "list", "--command", "telnet-marker"]).await.unwrap();
    assert_eq!(found[0]["id"].as_str(), Some(id), "found by the command typed");
    let cast = relay.ctl_command(&relay.admin_key).args(["recording", "play", id, "--raw"]).output().await.unwrap();
    let cast = String::from_utf8_lossy(&cast.stdout);
    assert!(cast.lines().next().unwrap().contains("\"version\":2"), "{cast}");
    assert!(cast.contains("telnet-marker-42") && cast.contains("\"i\""), "output and input are recorded: {cast}");
    assert!(!cast.contains(&password), "the password is not in the recording");
    let detail: Value = serde_json::from_str(ended["detail"].as_str().unwrap()).unwrap();
    assert_eq!(detail["sha256"], rec["sha256"], "{detail}");
    assert_eq!(detail["ended"], "target closed the connection", "{detail}");
    assert_eq!(ended["target"], "sw01");

    // A real terminal: Enter is a bare CR, and window changes reach the shell on the target.
    let tmux = Tmux { sock: dir.join("tmux.sock") };
    let code = totp_now(&carol_secret, 0);
    let opts = ssh_opts(&dir, bastion, &carol_key, &code, None);
    let args: Vec<String> = [opts, s(&["-tt", "carol+sw01@127.0.0.1"])].concat();
    let script = dir.join("tmux-ssh.sh");
    let rc_file = dir.join("tmux-ssh.rc");
    std::fs::write(
        &script,
        format!(
            "export SSH_ASKPASS={} SSH_ASKPASS_REQUIRE=force DISPLAY=:0\nssh {}\necho $? > {}\n",
            quote(&dir.join(format!("askpass-{code}.sh")).display().to_string()),
            args.iter().map(|a| quote(a)).collect::<Vec<_>>().join(" "),
            quote(&rc_file.display().to_string())
        ),
    )
    .unwrap();
    let script = script.display().to_string();
    tmux.run(&["-f", "/dev/null", "new-session", "-d", "-s", "t", "-x", "100", "-y", "30", "sh", &script]).await;
    let screen = tmux.wait_for("tn$ ", 1).await;
    assert!(screen.contains("size=30 100"), "the window size at login: {screen}");
    tmux.run(&["send-keys", "-t", "t", "stty size; echo enter-$((6*7))", "Enter"]).await;
    tmux.wait_for("enter-42", 1).await;
    tmux.run(&["resize-window", "-t", "t", "-x", "120", "-y", "40"]).await;
    tmux.run(&["send-keys", "-t", "t", "stty size", "Enter"]).await;
    let screen = tmux.wait_for("tn$ ", 3).await;
    assert!(screen.contains("40 120"), "the new window size reached the target: {screen}");
    assert!(!screen.contains(&password), "{screen}");
    tmux.run(&["send-keys", "-t", "t", "exit", "Enter"]).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let rc = loop {
        if let Ok(rc) = std::fs::read_to_string(&rc_file)
            && !rc.is_empty()
        {
            break rc;
        }
        assert!(Instant::now() < deadline, "ssh in tmux did not end: {}", tmux.screen().await);
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(rc.trim(), "0", "ssh in tmux");
    let recs = relay.ctl(&["recording", "list", "--protocol", "telnet", "--user", "carol"]).await.unwrap();
    let id = recs[0]["id"].as_str().unwrap().to_owned();
    let ended = relay.wait_event(|e| e["path"] == "ssh" && e["detail"].as_str().unwrap_or("").contains(&id)).await;
    assert!(ended["detail"].as_str().unwrap().contains("target closed the connection"), "{ended}");
    let recs = relay.ctl(&["recording", "list", "--protocol", "telnet", "--user", "carol"]).await.unwrap();
    let commands = recs[0]["commands"].as_str().unwrap();
    assert!(commands.contains("stty size; echo enter-$((6*7))"), "typed with Enter (CR): {commands}");

    // A wrong stored password: the user is told, and the session ends (no hang).
    let t0 = Instant::now();
    let (rc, out, err) = ssh_typed(&dir, bastion, &dave, "dave+sw02@127.0.0.1", b"").await;
    assert_eq!(rc, 1, "{out} {err}");
    assert!(t0.elapsed() < Duration::from_secs(20), "the refusal is seen at once: {:?}", t0.elapsed());
    let all = format!("{out}{err}");
    assert!(all.contains("target_login_failed") && all.contains("`sw02`"), "a clear message: {all}");
    assert!(all.contains("拒否しました"), "in Japanese too: {all}");
    assert!(!all.contains("not-the-password"), "{all}");
    let refused = relay
        .wait_event(|e| {
            e["path"] == "ssh"
                && e["subject"] == "dave"
                && e["reason"].as_str().unwrap_or("").contains("target_login_failed")
        })
        .await;
    assert_eq!(refused["target"], "sw02");
    eprintln!("bastion_telnet took {:?}", started.elapsed());
    drop(tmux);
    drop(telnetd);
}
