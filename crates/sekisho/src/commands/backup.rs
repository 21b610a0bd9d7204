//! `sekisho backup` and `sekisho restore`: the whole relay in one encrypted file.
//!
//! A backup is an [age](https://age-encryption.org/v1) file (to a passphrase or to X25519
//! recipients, as evidence exports are) holding a tar of:
//! - `data/…`: every file of the data directory (CA, master and audit keys, relay id, audit
//!   anchors and journal, sealed recordings) but the SQLite files themselves;
//! - `database/sekisho.db`: a consistent snapshot of SQLite (`VACUUM INTO`, taken while the
//!   relay runs), or `database/dump.sql`: PostgreSQL's `pg_dump`;
//! - `backup.json`, last: the format, when, the relay version, the database kind and the
//!   SHA-256 of every other file.
//!
//! `restore` unpacks into a data directory that is new or empty (and, for PostgreSQL, an empty
//! database), checks every file against the manifest before anything is put in place, and
//! leaves nothing behind when a check fails.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use age::secrecy::SecretString;
use anyhow::{Context, anyhow, bail};
use sekisho_audit::archive::{Seal, Unlock};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::cli::{BackupArgs, RestoreArgs};
use crate::i18n::Lang;

const FORMAT: &str = "sekisho-backup-v1";
const MANIFEST: &str = "backup.json";
const SQLITE: &str = "database/sekisho.db";
const DUMP: &str = "database/dump.sql";

#[derive(Serialize, Deserialize)]
struct Manifest {
    format: String,
    created_at: String,
    version: String,
    /// `sqlite` or `postgres`.
    database: String,
    files: BTreeMap<String, String>,
}

/// The data directory's files that are not copied as they are: the live SQLite files (a
/// snapshot stands for them) and what a running relay leaves for a moment.
fn skipped(name: &str) -> bool {
    name.starts_with("sekisho.db") || name == ".sekisho-write-check" || name.ends_with(".part")
}

pub(crate) async fn backup(args: BackupArgs, lang: Lang) -> anyhow::Result<()> {
    let data = &args.data_dir;
    if !data.join("ca.pem").is_file() {
        bail!(
            "{}",
            lang.pick(
                format!("`{}` is not a relay's data directory (no ca.pem)", data.display()),
                format!("`{}` はリレーのデータディレクトリではありません (ca.pem がありません)", data.display())
            )
        );
    }
    let seal = seal_of(&args.recipients, args.passphrase_stdin, lang)?;
    let part = args.output.with_extension("part");
    let out = std::fs::File::create(&part).map_err(|e| lang.file_error(true, &part, &e))?;
    let (count, bytes, kind) = match write_backup(&args, &seal, out, lang).await {
        Ok(w) => w,
        Err(e) => {
            let _ = std::fs::remove_file(&part);
            return Err(e);
        }
    };
    std::fs::rename(&part, &args.output).map_err(|e| lang.file_error(true, &args.output, &e))?;
    println!(
        "{}",
        lang.pick(
            format!("backed up {count} files ({bytes} bytes, {kind} database) to {}", args.output.display()),
            format!(
                "{count} 個のファイル ({bytes} バイト、{kind} のデータベース) を {} にバックアップしました",
                args.output.display()
            )
        )
    );
    Ok(())
}

/// Writes the backup to `out`: the data directory's files first, then the database's snapshot
/// (so the audit anchors copied never name a checkpoint the snapshot lacks), then the manifest.
/// Returns the files, their bytes and the database's kind.
async fn write_backup(
    args: &BackupArgs,
    seal: &Seal,
    out: std::fs::File,
    lang: Lang,
) -> anyhow::Result<(usize, u64, &'static str)> {
    let postgres = args.database.as_deref().filter(|url| !url.starts_with("sqlite:"));
    let store = match (postgres, &args.database) {
        (Some(url), _) => sekisho_store::Store::connect(url).await?,
        (None, database) => {
            let live = match database {
                Some(url) => PathBuf::from(url.trim_start_matches("sqlite://").split('?').next().unwrap_or_default()),
                None => args.data_dir.join("sekisho.db"),
            };
            if !live.is_file() {
                bail!("{} `{}`", lang.pick("no database at", "データベースがありません:"), live.display());
            }
            sekisho_store::Store::open(&live).await?
        }
    };
    // Signed first, then the files (whose audit anchors then name that checkpoint), then the
    // database (which has it, and what came since).
    wait_for_signed_heads(&store).await?;
    let mut tar =
        tar::Builder::new(sekisho_audit::archive::encryptor(seal)?.wrap_output(std::io::BufWriter::new(out))?);
    let mut files = BTreeMap::new();
    let mut bytes = 0;
    for (path, name) in walk(&args.data_dir)? {
        bytes += add_file(&mut tar, &path, &format!("data/{name}"), &mut files)?;
    }
    let scratch = tempfile::tempdir()?;
    let (kind, db_file, db_name) = match postgres {
        Some(url) => {
            let dump = scratch.path().join("dump.sql");
            let status = pg_tool("pg_dump", lang)?
                .args(["--no-owner", "--no-privileges", "--format=plain", "--file"])
                .arg(&dump)
                .arg(format!("--dbname={url}"))
                .status()
                .map_err(|e| anyhow!("pg_dump: {e}"))?;
            if !status.success() {
                bail!("pg_dump: {status}");
            }
            ("postgres", dump, DUMP)
        }
        None => {
            let snapshot = scratch.path().join("sekisho.db");
            store.snapshot_sqlite(&snapshot).await?;
            ("sqlite", snapshot, SQLITE)
        }
    };
    store.close().await;
    bytes += add_file(&mut tar, &db_file, db_name, &mut files)?;
    let count = files.len();
    let manifest = Manifest {
        format: FORMAT.into(),
        created_at: jiff::Timestamp::now().to_string(),
        version: env!("CARGO_PKG_VERSION").into(),
        database: kind.into(),
        files,
    };
    let text = serde_json::to_vec_pretty(&manifest)?;
    tar.append_data(&mut header(text.len() as u64), MANIFEST, text.as_slice())?;
    let mut buffered = tar.into_inner()?.finish()?;
    buffered.flush()?;
    buffered.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    Ok((count, bytes, kind))
}

pub(crate) async fn restore(args: RestoreArgs, lang: Lang) -> anyhow::Result<()> {
    let target = &args.data_dir;
    if target.exists() && std::fs::read_dir(target).map(|mut d| d.next().is_some()).unwrap_or(true) {
        bail!(
            "{}",
            lang.pick(
                format!("`{}` is not empty: restore into a new or empty data directory", target.display()),
                format!("`{}` は空ではありません。新しいか空のデータディレクトリに復元してください", target.display())
            )
        );
    }
    let unlock = match &args.identity {
        Some(path) => Unlock::Identities(std::fs::read_to_string(path).map_err(|e| lang.file_error(false, path, &e))?),
        None if args.passphrase_stdin => Unlock::Passphrase(super::ctl::users::read_password(false, lang)?.into()),
        None => bail!(
            "{}",
            lang.pick(
                "give --passphrase-stdin or --identity FILE to open the backup",
                "バックアップを開くには --passphrase-stdin か --identity FILE を指定してください"
            )
        ),
    };
    let parent = target.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(|e| lang.file_error(true, parent, &e))?;
    // Unpacked beside the target and moved into place only when every file checks out.
    let staging = tempfile::Builder::new().prefix(".sekisho-restore-").tempdir_in(parent)?;
    let input = std::fs::File::open(&args.input).map_err(|e| lang.file_error(false, &args.input, &e))?;
    let manifest = unpack(std::io::BufReader::new(input), &unlock, staging.path(), lang)?;
    let data = staging.path().join("data");
    std::fs::create_dir_all(&data)?;
    match (manifest.database.as_str(), &args.database) {
        ("sqlite", None) => std::fs::rename(staging.path().join(SQLITE), data.join("sekisho.db"))?,
        ("postgres", Some(url)) if !url.starts_with("sqlite:") => {
            let status = pg_tool("psql", lang)?
                .args(["--quiet", "--no-psqlrc", "--set=ON_ERROR_STOP=1", "--single-transaction", "--output=/dev/null"])
                .arg(format!("--dbname={url}"))
                .arg("--file")
                .arg(staging.path().join(DUMP))
                .status()
                .map_err(|e| anyhow!("psql: {e}"))?;
            if !status.success() {
                bail!(
                    "{}",
                    lang.pick(
                        "psql could not load the dump: restore into an empty PostgreSQL database",
                        "psql がダンプを読み込めませんでした。空の PostgreSQL データベースに復元してください"
                    )
                );
            }
        }
        ("postgres", _) => bail!(
            "{}",
            lang.pick(
                "this backup holds a PostgreSQL database: give --database postgres://… of an empty database",
                "このバックアップは PostgreSQL のデータベースです。空のデータベースを --database postgres://… で指定してください"
            )
        ),
        (kind, _) => bail!(
            "{}",
            lang.pick(
                format!("this backup holds a {kind} database; it is restored into the same kind only"),
                format!("このバックアップは {kind} のデータベースです。同じ種類にだけ復元できます")
            )
        ),
    }
    if target.exists() {
        std::fs::remove_dir(target).map_err(|e| lang.file_error(true, target, &e))?;
    }
    std::fs::rename(&data, target).map_err(|e| lang.file_error(true, target, &e))?;
    private(target)?;
    println!(
        "{}",
        lang.pick(
            format!(
                "restored {} files from the backup of {} into {}; start the relay with --data-dir {}",
                manifest.files.len(),
                manifest.created_at,
                target.display(),
                target.display()
            ),
            format!(
                "{} のバックアップから {} 個のファイルを {} に復元しました。リレーを --data-dir {} で起動してください",
                manifest.created_at,
                manifest.files.len(),
                target.display(),
                target.display()
            )
        )
    );
    Ok(())
}

fn seal_of(recipients: &[String], passphrase_stdin: bool, lang: Lang) -> anyhow::Result<Seal> {
    if !recipients.is_empty() {
        return Ok(Seal::Recipients(recipients.to_vec()));
    }
    if !passphrase_stdin {
        bail!(
            "{}",
            lang.pick(
                "give --passphrase-stdin or --recipient age1… to encrypt the backup",
                "バックアップを暗号化するには --passphrase-stdin か --recipient age1… を指定してください"
            )
        );
    }
    let pass = super::ctl::users::read_password(false, lang)?;
    if pass.chars().count() < 8 {
        bail!(
            "{}",
            lang.pick("the passphrase must have at least 8 characters", "パスフレーズは 8 文字以上にしてください")
        );
    }
    Ok(Seal::Passphrase(SecretString::from(pass)))
}

/// A running relay signs a checkpoint of each tenant's chain at least every 5 s: wait (7 s at
/// most) until the events there are now are signed, so a backup of a quiet relay verifies
/// whole. What comes after, or a relay that is not running, leaves an unsigned tail that `audit
/// verify` reports and the restored relay signs when it starts (as after a crash).
async fn wait_for_signed_heads(store: &sekisho_store::Store) -> anyhow::Result<()> {
    let heads = store.audit_heads().await?;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(7);
    'wait: while tokio::time::Instant::now() < deadline {
        for (tenant, seq, _) in &heads {
            let signed = store
                .list_checkpoints(&sekisho_store::TenantId::new(tenant.as_str()))
                .await?
                .iter()
                .map(|c| c.seq)
                .max();
            if signed.unwrap_or(0) < *seq {
                tokio::time::sleep(std::time::Duration::from_millis(250)).await;
                continue 'wait;
            }
        }
        return Ok(());
    }
    Ok(())
}

/// Every regular file under `dir` (recursively) but the skipped ones, with its name relative
/// to `dir`, sorted.
fn walk(dir: &Path) -> anyhow::Result<Vec<(PathBuf, String)>> {
    let mut out = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for entry in std::fs::read_dir(&d).with_context(|| d.display().to_string())? {
            let entry = entry?;
            let kind = entry.file_type()?;
            let path = entry.path();
            let name = path.strip_prefix(dir)?.to_string_lossy().into_owned();
            if kind.is_dir() {
                dirs.push(path);
            } else if kind.is_file() && !skipped(&entry.file_name().to_string_lossy()) {
                out.push((path, name));
            }
        }
    }
    out.sort_by(|a, b| a.1.cmp(&b.1));
    Ok(out)
}

fn header(size: u64) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_size(size);
    h.set_mode(0o600);
    h.set_mtime(jiff::Timestamp::now().as_second().max(0) as u64);
    h.set_entry_type(tar::EntryType::Regular);
    h
}

/// Adds `path` as `name`, as long as it was when this began (a journal that grows meanwhile is
/// cut at that length), hashing what went in. Returns its size.
fn add_file<W: Write>(
    tar: &mut tar::Builder<W>,
    path: &Path,
    name: &str,
    files: &mut BTreeMap<String, String>,
) -> anyhow::Result<u64> {
    let file = std::fs::File::open(path).with_context(|| path.display().to_string())?;
    let size = file.metadata()?.len();
    let mut reader = Hashing { inner: file.take(size), sha: Sha256::new(), read: 0 };
    tar.append_data(&mut header(size), name, &mut reader)?;
    if reader.read != size {
        bail!("`{}` shrank while it was backed up", path.display());
    }
    files.insert(name.to_owned(), hex::encode(reader.sha.finalize()));
    Ok(size)
}

struct Hashing<R> {
    inner: R,
    sha: Sha256,
    read: u64,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.sha.update(&buf[..n]);
        self.read += n as u64;
        Ok(n)
    }
}

/// Decrypts and unpacks into `dir`, then checks the manifest (the last entry) against every
/// file: the same names, the same hashes, nothing more.
fn unpack(input: impl Read, unlock: &Unlock, dir: &Path, lang: Lang) -> anyhow::Result<Manifest> {
    let reader = sekisho_audit::archive::decrypt(input, unlock)
        .map_err(|e| anyhow!("{}: {e}", lang.pick("cannot open the backup", "バックアップを開けません")))?;
    let mut tar = tar::Archive::new(reader);
    let mut seen = BTreeMap::new();
    let mut manifest: Option<Manifest> = None;
    let damaged =
        |what: String| anyhow!("{}: {what}", lang.pick("the backup is damaged", "バックアップが壊れています"));
    for entry in tar.entries()? {
        let mut entry = entry.map_err(|e| damaged(e.to_string()))?;
        let name = entry.path()?.to_string_lossy().into_owned();
        if manifest.is_some() {
            return Err(damaged(format!("`{name}` after {MANIFEST}")));
        }
        if name == MANIFEST {
            let mut text = Vec::new();
            entry.by_ref().take(1 << 20).read_to_end(&mut text)?;
            manifest = Some(serde_json::from_slice(&text).map_err(|e| damaged(format!("{MANIFEST}: {e}")))?);
            continue;
        }
        let safe = (name.starts_with("data/") || name.starts_with("database/"))
            && entry.header().entry_type() == tar::EntryType::Regular
            && Path::new(&name).components().all(|c| matches!(c, std::path::Component::Normal(_)));
        if !safe || seen.contains_key(&name) {
            return Err(damaged(format!("unexpected entry `{name}`")));
        }
        let dest = dir.join(&name);
        if let Some(p) = dest.parent() {
            std::fs::create_dir_all(p)?;
        }
        let mut out = std::fs::File::create(&dest)?;
        let mut hashing = Hashing { inner: &mut entry, sha: Sha256::new(), read: 0 };
        std::io::copy(&mut hashing, &mut out).map_err(|e| damaged(e.to_string()))?;
        out.sync_all()?;
        seen.insert(name, hex::encode(hashing.sha.finalize()));
    }
    let manifest = manifest.ok_or_else(|| damaged(format!("no {MANIFEST}")))?;
    if manifest.format != FORMAT {
        return Err(damaged(format!("format `{}`, expected `{FORMAT}`", manifest.format)));
    }
    if manifest.files != seen {
        return Err(damaged("its files do not match its manifest".into()));
    }
    Ok(manifest)
}

/// The data directory and everything in it readable by the relay's user only.
fn private(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    for (path, _) in walk(dir)? {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    }
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(d) = dirs.pop() {
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o700))?;
        for entry in std::fs::read_dir(&d)? {
            let entry = entry?;
            if entry.file_type()?.is_dir() {
                dirs.push(entry.path());
            }
        }
    }
    Ok(())
}

/// A PostgreSQL client tool: on the PATH, else the newest of Debian's installed versions.
fn pg_tool(name: &str, lang: Lang) -> anyhow::Result<std::process::Command> {
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join(name))
        .find(|p| p.is_file());
    let debian = || {
        let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path().join("bin").join(name))
            .filter(|p| p.is_file())
            .collect();
        found.sort_by_key(|p| {
            p.components().nth(4).and_then(|c| c.as_os_str().to_str()?.parse::<u32>().ok()).unwrap_or(0)
        });
        found.pop()
    };
    let tool = on_path.or_else(debian).ok_or_else(|| {
        anyhow!(lang.pick(
            format!("`{name}` is not installed (apt-get install postgresql-client)"),
            format!("`{name}` がインストールされていません (apt-get install postgresql-client)")
        ))
    })?;
    Ok(std::process::Command::new(tool))
}
