//! The SSH bastion with Debian's OpenSSH clients against a real `sshd` behind a back agent:
//! key + TOTP login, a spent code refused, exec, a PTY session whose commands are found by
//! search, SFTP and SCP (both protocols) with their file operations, a denied user with the
//! reason, the menu, the recording's replay, and `audit verify` over the recordings.

use serde_json::Value;

use crate::harness::{Agent, Relay};
use crate::ssh_util::{bastion_user, keygen, run, s, ssh_opts, start_sshd, totp_now};

#[tokio::test]
async fn openssh_clients_reach_sshd_through_the_bastion_and_every_session_is_recorded() {
    let relay = Relay::start_with(&["--ssh-listen", "127.0.0.1:0"]).await;
    let bastion = relay.ssh.expect("the ready line names the bastion");
    let dir = relay.dir.path().to_owned();
    let back: Agent = relay.agent("site-a", "both").await;
    let target_key = dir.join("target_key");
    keygen(&target_key);
    let sshd = start_sshd(&dir, &target_key.with_extension("pub")).await;
    let me = String::from_utf8(std::process::Command::new("id").arg("-un").output().unwrap().stdout).unwrap();
    let me = me.trim();

    relay.service("web01", &back, &format!("ssh://127.0.0.1:{}", sshd.port)).await;
    let err =
        relay.ctl(&["route", "create", "--agent", &back.id, "--listen", "127.0.0.1:0", "--service", "web01"]).await;
    assert!(err.unwrap_err().contains("bastion"), "no route may bypass the bastion's recording");
    relay.ctl(&["service", "login", "web01", "--login", me, "--key-file", target_key.to_str().unwrap()]).await.unwrap();
    let (secret, alice_key) = bastion_user(&relay, &dir, "alice", "ops").await;
    let (bob_secret, bob_key) = bastion_user(&relay, &dir, "bob", "interns").await;
    relay.policy("web01", &["true"], &[r#"principal in Group::"interns""#]).await;

    // One authenticated connection (key + TOTP) carries every channel below.
    let code = totp_now(&secret, 0);
    let control = dir.join("cm.sock");
    let opts = ssh_opts(&dir, bastion, &alice_key, &code, Some(&control));
    let target = "alice+web01@127.0.0.1".to_owned();
    let exec = [opts.clone(), vec![target.clone(), "echo exec-$((6*7))".into()]].concat();
    let (rc, out, err) = run("ssh", &exec, &dir, &code, b"").await;
    assert_eq!((rc, out.trim()), (0, "exec-42"), "exec through the bastion: {err}");
    let v = relay.ctl(&["service", "login", "web01", "--show"]).await.unwrap();
    assert!(v["host_key"].as_str().unwrap().starts_with("ssh-ed25519 "), "host key pinned on first use: {v}");

    // A PTY session: what is typed is found by search, and the replay shows it.
    let pty = [opts.clone(), s(&["-tt"]), vec![target.clone()]].concat();
    let typed = b"echo pty-marker-$((40+2))\nsudo systemctl restart nginx 2>/dev/null; true\nexit\n";
    let (rc, out, err) = run("ssh", &pty, &dir, &code, typed).await;
    assert_eq!(rc, 0, "pty session: {out} {err}");
    assert!(out.contains("pty-marker-42"), "{out}");

    // SFTP and both SCP protocols, each way.
    let local = dir.join("up.bin");
    let content: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(&local, &content).unwrap();
    let remote_dir = dir.join("remote");
    std::fs::create_dir_all(&remote_dir).unwrap();
    let batch = dir.join("batch");
    std::fs::write(
        &batch,
        format!(
            "put {} {}/sftp.bin\nget {}/sftp.bin {}/back.bin\nmkdir {}/made\nrename {}/sftp.bin {}/moved.bin\n",
            local.display(),
            remote_dir.display(),
            remote_dir.display(),
            dir.display(),
            remote_dir.display(),
            remote_dir.display(),
            remote_dir.display()
        ),
    )
    .unwrap();
    let sftp = [opts.clone(), s(&["-b"]), vec![batch.display().to_string(), target.clone()]].concat();
    let (rc, _, err) = run("sftp", &sftp, &dir, &code, b"").await;
    assert_eq!(rc, 0, "sftp: {err}");
    assert_eq!(std::fs::read(dir.join("back.bin")).unwrap(), content);
    for (proto, flag) in [("legacy", "-O"), ("sftp", "-s")] {
        let up = [
            opts.clone(),
            s(&[flag]),
            vec![local.display().to_string(), format!("{target}:{}/scp-{proto}.bin", remote_dir.display())],
        ]
        .concat();
        let (rc, _, err) = run("scp", &up, &dir, &code, b"").await;
        assert_eq!(rc, 0, "scp {proto} upload: {err} dir={}", dir.display());
        let down_to = dir.join(format!("down-{proto}.bin"));
        let down = [
            opts.clone(),
            s(&[flag]),
            vec![format!("{target}:{}/scp-{proto}.bin", remote_dir.display()), down_to.display().to_string()],
        ]
        .concat();
        let (rc, _, err) = run("scp", &down, &dir, &code, b"").await;
        assert_eq!(rc, 0, "scp {proto} download: {err} dir={}", dir.display());
        assert_eq!(std::fs::read(&down_to).unwrap(), content, "scp {proto} round trip");
    }
    // Directory copies to a new name, and a file into an existing directory, both protocols:
    // the evidence names where each file landed (legacy scp asks the target what the path is).
    let tree = dir.join("tree");
    std::fs::create_dir_all(tree.join("sub")).unwrap();
    std::fs::write(tree.join("a.txt"), b"alpha").unwrap();
    std::fs::write(tree.join("sub/b.txt"), b"beta").unwrap();
    for (proto, flag) in [("legacy", "-O"), ("sftp", "-s")] {
        let remote = remote_dir.display();
        let copy = [
            opts.clone(),
            s(&[flag, "-r"]),
            vec![tree.display().to_string(), format!("{target}:{remote}/tree-{proto}")],
        ]
        .concat();
        let (rc, _, err) = run("scp", &copy, &dir, &code, b"").await;
        assert_eq!(rc, 0, "scp {proto} -r: {err}");
        assert_eq!(std::fs::read(remote_dir.join(format!("tree-{proto}/sub/b.txt"))).unwrap(), b"beta");
        std::fs::create_dir_all(remote_dir.join(format!("into-{proto}"))).unwrap();
        let into =
            [opts.clone(), s(&[flag]), vec![local.display().to_string(), format!("{target}:{remote}/into-{proto}")]]
                .concat();
        let (rc, _, err) = run("scp", &into, &dir, &code, b"").await;
        assert_eq!(rc, 0, "scp {proto} into a directory: {err}");
        assert_eq!(std::fs::read(remote_dir.join(format!("into-{proto}/up.bin"))).unwrap(), content);
    }
    let _ = run("ssh", &[opts.clone(), s(&["-O", "exit"]), vec![target.clone()]].concat(), &dir, &code, b"").await;

    // A spent code is refused, and so is a user the policy denies (who is told why).
    let fresh = ssh_opts(&dir, bastion, &alice_key, &code, None);
    let (rc, _, _) = run("ssh", &[fresh, vec![target.clone(), "true".into()]].concat(), &dir, &code, b"").await;
    assert_ne!(rc, 0, "a TOTP code works once");
    let bob_code = totp_now(&bob_secret, 0);
    let bob = ssh_opts(&dir, bastion, &bob_key, &bob_code, None);
    let (rc, _, err) =
        run("ssh", &[bob, vec!["bob+web01@127.0.0.1".into(), "true".into()]].concat(), &dir, &bob_code, b"").await;
    assert_ne!(rc, 0);
    assert!(err.contains("web01/deny/0"), "the denied user sees the reason id: {err}");

    // Menu mode: the list of allowed targets, then a choice by number.
    let menu_code = totp_now(&secret, 1);
    let menu = ssh_opts(&dir, bastion, &alice_key, &menu_code, None);
    let (rc, out, err) =
        run("ssh", &[menu.clone(), vec!["alice@127.0.0.1".into(), "list".into()]].concat(), &dir, &menu_code, b"")
            .await;
    assert_eq!((rc, out.trim()), (0, "web01\tssh"), "{err}");

    // Evidence: search by command, the command list, the replay, file operations, the chain.
    let found = relay.ctl(&["recording", "list", "--command", "systemctl restart nginx"]).await.unwrap();
    let found = found.as_array().unwrap();
    assert_eq!(found.len(), 1, "{found:?}");
    let id = found[0]["id"].as_str().unwrap();
    let commands: Value = serde_json::from_str(found[0]["commands"].as_str().unwrap()).unwrap();
    let cmds: Vec<&str> = commands.as_array().unwrap().iter().map(|c| c["cmd"].as_str().unwrap()).collect();
    assert_eq!(cmds[0], "echo pty-marker-$((40+2))");
    let cast = relay.ctl_command(&relay.admin_key).args(["recording", "play", id, "--raw"]).output().await.unwrap();
    let cast = String::from_utf8_lossy(&cast.stdout);
    assert!(cast.lines().next().unwrap().contains("\"version\":2"), "{cast}");
    assert!(cast.contains("pty-marker-42") && cast.contains("\"i\""), "output and input are recorded");
    console_shows_the_recording(&relay, id).await;
    let exec_rec = relay.ctl(&["recording", "list", "--command", "echo exec"]).await.unwrap();
    assert_eq!(exec_rec[0]["command"], "echo exec-$((6*7))", "exec commands are logged exactly");
    let all = relay.ctl(&["recording", "list", "--user", "alice"]).await.unwrap();
    let files: Vec<Value> = all
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| serde_json::from_str::<Vec<Value>>(r["files"].as_str().unwrap()).unwrap())
        .collect();
    let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&content));
    let writes = files.iter().filter(|f| f["op"] == "write" && f["sha256"] == sha.as_str()).count();
    let reads = files.iter().filter(|f| f["op"] == "read" && f["sha256"] == sha.as_str()).count();
    assert_eq!((writes, reads), (5, 3), "sftp + scp both protocols, each way, and into directories: {files:?}");
    // Each file is named where it was written or read, in every form.
    let paths = |op: &str| -> std::collections::BTreeSet<String> {
        files.iter().filter(|f| f["op"] == op).map(|f| f["path"].as_str().unwrap().to_owned()).collect()
    };
    let r = remote_dir.display();
    let want_writes: std::collections::BTreeSet<String> = [
        format!("{r}/sftp.bin"),
        format!("{r}/scp-legacy.bin"),
        format!("{r}/scp-sftp.bin"),
        format!("{r}/tree-legacy/a.txt"),
        format!("{r}/tree-legacy/sub/b.txt"),
        format!("{r}/tree-sftp/a.txt"),
        format!("{r}/tree-sftp/sub/b.txt"),
        format!("{r}/into-legacy/up.bin"),
        format!("{r}/into-sftp/up.bin"),
    ]
    .into();
    assert_eq!(paths("write"), want_writes, "{files:#?}");
    let want_reads: std::collections::BTreeSet<String> =
        [format!("{r}/sftp.bin"), format!("{r}/scp-legacy.bin"), format!("{r}/scp-sftp.bin")].into();
    assert_eq!(paths("read"), want_reads, "{files:#?}");
    for made in ["tree-legacy", "tree-legacy/sub", "tree-sftp", "tree-sftp/sub"] {
        assert!(paths("mkdir").contains(&format!("{r}/{made}")), "mkdir {made}: {files:#?}");
    }
    assert!(files.iter().any(|f| f["op"] == "mkdir" && f["path"].as_str().unwrap().ends_with("/made")));
    assert!(files.iter().any(|f| f["op"] == "rename" && f["to"].as_str().unwrap().ends_with("/moved.bin")));
    sftp_page_lists_the_files(&relay, &all).await;
    let ended = relay.wait_event(|e| e["path"] == "ssh" && e["detail"].as_str().unwrap_or("").contains(id)).await;
    assert!(ended["detail"].as_str().unwrap().contains(found[0]["sha256"].as_str().unwrap()));
    let denied = relay.wait_event(|e| e["path"] == "ssh" && e["decision"] == "deny" && e["subject"] == "bob").await;
    assert_eq!(denied["policy_id"], "web01/deny/0");
    let replayed = relay
        .wait_event(|e| e["path"] == "ssh" && e["reason"].as_str().unwrap_or("").starts_with("totp_replayed"))
        .await;
    assert_eq!(replayed["subject"], "alice");

    // `audit verify` opens each chained recording and compares its hash.
    let report = relay.ctl(&["audit", "verify"]).await.unwrap();
    let checked = report["tenants"][0]["recordings_checked"].as_i64().unwrap();
    assert_eq!(checked, 2, "the shell and exec recordings are checked (transfers have no cast): {report}");
    export_and_verify(&relay, &dir, id, exec_rec[0]["id"].as_str().unwrap()).await;

    // Offline, from the data directory: a sealed recording changed on disk is named. (The relay
    // signs what it wrote since its last checkpoint first: an offline check of a live database
    // reports unsigned events as such.)
    relay.ctl(&["audit", "verify"]).await.unwrap();
    let data = dir.join("data");
    let (ok, text) = offline_verify(&["--data-dir", data.to_str().unwrap()], b"").await;
    assert!(ok && text.contains("2 recordings checked"), "{text}");
    let sealed = data.join(format!("recordings/{id}.cast.sealed"));
    let mut bytes = std::fs::read(&sealed).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 1;
    std::fs::write(&sealed, &bytes).unwrap();
    let (ok, text) = offline_verify(&["--data-dir", data.to_str().unwrap()], b"").await;
    assert!(!ok && text.contains("recording_altered") && text.contains(id), "{text}");
    drop(sshd);
}

/// `sekisho audit verify` with extra arguments; (passed, stdout + stderr).
async fn offline_verify(args: &[&str], stdin: &[u8]) -> (bool, String) {
    crate::harness::sekisho_with_stdin(&[&["audit", "verify"], args].concat(), stdin).await
}

/// Exports two recordings to an age recipient and to a passphrase; the reference `age` tool
/// opens the archive, `audit verify --archive` passes it, and a cast edited inside it fails.
async fn export_and_verify(relay: &Relay, dir: &std::path::Path, shell: &str, exec: &str) {
    let key = dir.join("auditor.agekey");
    let out = std::process::Command::new("age-keygen").arg("-o").arg(&key).output().expect("age is installed");
    assert!(out.status.success());
    let recipient = String::from_utf8_lossy(&out.stderr).trim().trim_start_matches("Public key: ").to_owned();
    let archive = dir.join("evidence.age");
    let a = archive.to_str().unwrap();
    let v = relay.ctl(&["recording", "export", shell, exec, "-o", a, "--recipient", &recipient]).await.unwrap();
    assert!(v["bytes"].as_u64().unwrap() > 0, "{v}");
    let trusted = dir.join("data/audit.pub");
    let (k, t) = (key.to_str().unwrap(), trusted.to_str().unwrap());
    let (ok, text) = offline_verify(&["--archive", a, "--identity", k, "--key", t], b"").await;
    assert!(ok, "{text}");
    assert!(text.contains(&format!("OK {shell}")) && text.contains(&format!("OK {exec}")), "{text}");
    assert!(!text.contains("WARNING"), "checked against the trusted key: {text}");

    // The reference tool opens it: a tar with the casts, the events and the manifest.
    let plain = std::process::Command::new("age").args(["-d", "-i", k, a]).output().unwrap();
    assert!(plain.status.success(), "{}", String::from_utf8_lossy(&plain.stderr));
    let unpacked = dir.join("unpacked");
    std::fs::create_dir_all(&unpacked).unwrap();
    std::fs::write(dir.join("evidence.tar"), &plain.stdout).unwrap();
    let tar = |args: &[&str]| {
        let out = std::process::Command::new("tar").args(args).current_dir(&unpacked).output().unwrap();
        assert!(out.status.success(), "tar {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let listing = tar(&["-tf", "../evidence.tar"]);
    for f in ["manifest.json", "events.jsonl", "checkpoints.jsonl", &format!("recordings/{shell}.cast")] {
        assert!(listing.lines().any(|l| l == f), "{f} in {listing}");
    }
    // Edit the shell's cast, pack and encrypt it again: the archive no longer verifies.
    tar(&["-xf", "../evidence.tar"]);
    let cast = unpacked.join(format!("recordings/{shell}.cast"));
    let edited = std::fs::read_to_string(&cast).unwrap().replace("pty-marker-42", "pty-marker-43");
    std::fs::write(&cast, edited).unwrap();
    let names: Vec<&str> = listing.lines().collect();
    tar(&[&["-cf", "../edited.tar"], &names[..]].concat());
    let forged = dir.join("forged.age");
    let out = std::process::Command::new("age")
        .args(["-r", &recipient, "-o", forged.to_str().unwrap(), dir.join("edited.tar").to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success());
    let (ok, text) = offline_verify(&["--archive", forged.to_str().unwrap(), "--identity", k, "--key", t], b"").await;
    assert!(!ok, "an edited cast fails: {text}");
    assert!(text.contains(&format!("TAMPERED {shell}")) && text.contains(&format!("OK {exec}")), "{text}");

    // A passphrase works the same way; the wrong one does not open it.
    let p = dir.join("evidence-p.age");
    let out = relay
        .ctl_command(&relay.admin_key)
        .args(["recording", "export", exec, "-o", p.to_str().unwrap(), "--passphrase-stdin"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut child = out;
    tokio::io::AsyncWriteExt::write_all(&mut child.stdin.take().unwrap(), b"kura no kagi 2026\n").await.unwrap();
    assert!(child.wait().await.unwrap().success());
    let pa = p.to_str().unwrap();
    let (ok, text) = offline_verify(&["--archive", pa, "--passphrase-stdin", "--key", t], b"kura no kagi 2026\n").await;
    assert!(ok, "{text}");
    let (ok, text) = offline_verify(&["--archive", pa, "--passphrase-stdin"], b"wrong passphrase\n").await;
    assert!(!ok && text.contains("cannot decrypt"), "{text}");
}

/// An SFTP session's page lists each file operation with its time, what was done, the path, the
/// size, the hash and the answer, in the auditor's language.
async fn sftp_page_lists_the_files(relay: &Relay, recordings: &Value) {
    use crate::web::{Visitor, web_user};
    let sftp = recordings
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["kind"] == "sftp" && r["files"].as_str().unwrap().contains("moved.bin"));
    let id = sftp.expect("the sftp session's recording")["id"].as_str().unwrap().to_owned();
    let secret = web_user(relay, "sachiko", "auditors-ja", "auditor", "Sachiko").await;
    let mut v = Visitor::new(relay, &[]);
    v.lang = "ja";
    let login = v.url("localhost", &format!("/login?rd=%2Frecordings%2F{id}"));
    let (page, _) = v.sign_in(&login, "sachiko", &secret, 0).await;
    let table = page.body.split("id=\"files\"").nth(1).unwrap_or_default().split("</table>").next().unwrap_or_default();
    assert!(table.contains("経過 (秒)") && table.contains("操作") && table.contains("SHA-256"), "{}", page.body);
    let rows: Vec<&str> = table.split("<tr>").skip(2).collect();
    let write = rows.iter().find(|r| r.contains("書き込み") && r.contains("/sftp.bin")).expect("the upload's row");
    assert!(write.contains("成功") && write.contains(" KiB<") && write.contains("…</code>"), "{write}");
    let time: f64 = write.split("<td>").nth(1).unwrap().split('<').next().unwrap().trim().parse().expect("its time");
    assert!(time >= 0.0, "{write}");
    assert!(rows.iter().any(|r| r.contains("名前の変更") && r.contains("moved.bin")), "{table}");
}

/// The web console finds the recording by command and serves its page, commands and cast.
async fn console_shows_the_recording(relay: &Relay, id: &str) {
    use crate::web::{Visitor, web_user};
    let secret = web_user(relay, "audrey", "auditors", "auditor", "Audrey").await;
    let mut v = Visitor::new(relay, &[]);
    let login = v.url("localhost", "/login?rd=%2Frecordings");
    let (list, _) = v.sign_in(&login, "audrey", &secret, 0).await;
    assert!(list.body.contains("Recordings"), "{}", list.body);
    let found = v.get(&v.url("localhost", "/recordings?command=systemctl+restart+nginx")).await;
    assert!(found.body.contains(&format!("/recordings/{id}")), "{}", found.body);
    // A shell's row says what was typed and that it ended, and how long it took.
    let row = found.body.split(&format!("/recordings/{id}")).nth(1).unwrap_or_default();
    let row = row.split("</tr>").next().unwrap_or_default();
    assert!(row.contains("systemctl restart nginx") && row.contains("ended · "), "{row}");
    let page = v.get(&v.url("localhost", &format!("/recordings/{id}"))).await;
    assert!(page.body.contains("systemctl restart nginx") && page.body.contains("data-cast"), "{}", page.body);
    let cast = v.get(&v.url("localhost", &format!("/recordings/{id}/cast"))).await;
    assert_eq!(cast.status, 200);
    assert!(cast.body.contains("pty-marker-42"));
    player_shows_the_session(relay, id).await;
}

/// The replay as an auditor sees it in Chromium: the player's screen shows what the session
/// printed for what was typed (`pty-marker-42` is only ever output: the typed command was
/// `echo pty-marker-$((40+2))`; the pty of `ssh -tt` from a pipe does not echo the typing).
async fn player_shows_the_session(relay: &Relay, id: &str) {
    use crate::browser_util::Browser;
    use crate::web::{PASSWORD, web_user};
    let secret = web_user(relay, "kenji", "auditors", "auditor", "Kenji").await;
    let b = Browser::start("ja").await;
    let origin = format!("https://localhost:{}", relay.addr.port());
    b.goto(&format!("{origin}/recordings/{id}")).await;
    b.wait_url("/login").await;
    let english = b.english_words(&[]).await;
    assert!(english.is_empty(), "English on the Japanese sign-in page: {english:?}");
    b.fill("#user", "kenji").await.fill("#password", PASSWORD).await;
    b.fill("#totp", &totp_now(&secret, 0)).await.click("#login").await;
    b.wait_url(&format!("/recordings/{id}")).await;
    b.wait_css("#player .ap-term").await;
    let screen = "return document.querySelector('#player .screen').innerText;";
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    let shown = loop {
        let text = b.execute(screen).await.as_str().unwrap_or("").to_owned();
        if text.contains("pty-marker-42") || tokio::time::Instant::now() > deadline {
            break text;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    b.screenshot("recording-ja").await;
    let page = b.page_text().await;
    assert!(page.contains("再生") && page.contains(".cast をダウンロード"), "the page in Japanese: {page}");
    let english = b.english_words(&["kenji", "Kenji", "alice"]).await;
    assert!(english.is_empty(), "English on the Japanese recording page: {english:?}");
    if !shown.contains("pty-marker-42") {
        let player = b.execute("return document.querySelector('#player').outerHTML.slice(0, 3000);").await;
        panic!("the player's screen: {shown:?}; the player: {player}");
    }
    assert!(!shown.contains("ooooo"), "the player shows the data, not the event type: {shown:?}");
    // `ssh -tt` from a pipe asks for a 0×0 terminal: recorded, and shown, as 80 columns.
    let cols = b
        .execute("return getComputedStyle(document.querySelector('#player .ap-term')).getPropertyValue('--term-cols');")
        .await;
    assert_eq!(cols.as_str().map(str::trim), Some("80"), "the player's terminal width");
    // Seeking by a command's time in the table.
    b.click("[data-seek]").await;
    b.close().await;
}
