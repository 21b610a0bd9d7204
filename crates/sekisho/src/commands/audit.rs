//! `sekisho audit verify`: checks the audit log straight from the database, without the relay.

use std::path::{Path, PathBuf};

use sekisho_audit::archive::Unlock;

use crate::cli::AuditCmd;
use crate::i18n::Lang;

pub(crate) async fn run(cmd: AuditCmd, lang: Lang) -> anyhow::Result<()> {
    let AuditCmd::Verify { data_dir, database, keys, tenant, anchors, json, archive, passphrase_stdin, identity } = cmd;
    if let Some(file) = archive {
        let unlock = match identity {
            Some(path) => {
                Unlock::Identities(std::fs::read_to_string(&path).map_err(|e| lang.file_error(false, &path, &e))?)
            }
            None if passphrase_stdin => Unlock::Passphrase(super::ctl::users::read_password(false, lang)?.into()),
            None => anyhow::bail!(
                "{}",
                lang.pick(
                    "give --passphrase-stdin or --identity FILE to open the archive",
                    "アーカイブを開くには --passphrase-stdin か --identity FILE を指定してください"
                )
            ),
        };
        return verify_archive(&file, &unlock, &data_dir, &keys, json, lang);
    }
    let store = match &database {
        Some(url) => sekisho_store::Store::connect(url).await?,
        None => {
            let path = data_dir.join("sekisho.db");
            if !path.exists() {
                anyhow::bail!("{} `{}`", lang.pick("no database at", "データベースがありません:"), path.display());
            }
            sekisho_store::Store::open(&path).await?
        }
    };
    let key_files = if keys.is_empty() { vec![data_dir.join("audit.pub")] } else { keys };
    let trusted = key_files.iter().map(|p| sekisho_audit::load_public_key(p)).collect::<Result<Vec<_>, _>>()?;
    let anchors = sekisho_audit::Anchors::read(&anchors.unwrap_or_else(|| data_dir.join("audit-anchors.jsonl")))
        .map_err(|e| anyhow::anyhow!(e))?;
    let tenant = tenant.map(sekisho_store::TenantId::from);
    // A bar over the events on a terminal (a log of millions takes a while), never with --json.
    let total: i64 = store.audit_heads().await?.iter().map(|(_, seq, _)| *seq).sum();
    let bar = if json || !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        indicatif::ProgressBar::hidden()
    } else {
        indicatif::ProgressBar::new(u64::try_from(total).unwrap_or(0))
    };
    if let Ok(style) = indicatif::ProgressStyle::with_template("{msg} {wide_bar} {pos}/{len} ({per_sec}, {eta})") {
        bar.set_style(style);
    }
    bar.set_message(lang.pick("verifying", "検証中"));
    let mut report =
        sekisho_audit::verify_with_progress(&store, &trusted, tenant.as_ref(), Some(&anchors), &|n| bar.inc(n)).await?;
    bar.finish_and_clear();
    // Recordings are checked with the master key when it is at hand (the relay's own data
    // directory), else against the sealed files' hashes the events carry.
    let key = std::fs::read(data_dir.join("master.key"))
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b.as_slice()).ok())
        .map(|m| sekisho_audit::recording::sealed::recording_key(&m));
    sekisho_audit::check_recordings(&mut report, &data_dir.join("recordings"), key.as_ref());
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        // Times in each tenant's own zone.
        let zones: std::collections::HashMap<String, jiff::tz::TimeZone> =
            store.list_tenants().await?.iter().map(|t| (t.id.to_string(), t.zone())).collect();
        for t in &report.tenants {
            let t = serde_json::to_value(t)?;
            println!("{}", super::ctl::audit::tenant_line(&t, lang));
            let zone = t["tenant"]
                .as_str()
                .and_then(|id| zones.get(id).cloned())
                .unwrap_or_else(|| sekisho_store::zone::or_default(None));
            for line in super::ctl::audit::stream_lines(&t, lang, &zone) {
                println!("{line}");
            }
        }
    }
    store.close().await;
    if !report.ok {
        std::process::exit(1);
    }
    Ok(())
}

/// Largest archive content `verify --archive` unpacks (recordings are capped at 1 GiB each).
const MAX_ARCHIVE: u64 = 64 << 30;

fn verify_archive(
    file: &Path,
    unlock: &Unlock,
    data_dir: &Path,
    keys: &[PathBuf],
    json: bool,
    lang: Lang,
) -> anyhow::Result<()> {
    let key_files: Vec<PathBuf> = if keys.is_empty() {
        Some(data_dir.join("audit.pub")).filter(|p| p.exists()).into_iter().collect()
    } else {
        keys.to_vec()
    };
    let trusted = key_files.iter().map(|p| sekisho_audit::load_public_key(p)).collect::<Result<Vec<_>, _>>()?;
    let input = std::fs::File::open(file).map_err(|e| lang.file_error(false, file, &e))?;
    let contents = sekisho_audit::archive::open_archive(std::io::BufReader::new(input), unlock, MAX_ARCHIVE)?;
    let report = sekisho_audit::archive::verify_archive(&contents, &trusted);
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "{} {} ({} {}, {} {}, {} {})",
            lang.pick("Archive of tenant", "テナントのアーカイブ:"),
            report.tenant,
            report.recordings.len(),
            lang.pick("recordings", "件の録画"),
            report.events,
            lang.pick("events", "件のイベント"),
            report.checkpoints,
            lang.pick("signed checkpoints", "個の署名付きチェックポイント"),
        );
        if !report.key_trusted {
            println!(
                "{}",
                lang.pick(
                    "WARNING: no trusted key given (--key); checkpoints were checked only against the key the archive names",
                    "警告: 信頼する鍵 (--key) がありません。チェックポイントはアーカイブ自身が示す鍵でのみ検証しました"
                )
            );
        }
        for r in &report.recordings {
            let verdict = if r.ok { lang.pick("OK", "正常") } else { lang.pick("TAMPERED", "改ざん検出") };
            println!("{verdict} {}: {}", r.id, r.message);
        }
        for p in &report.problems {
            println!("{} {p}", lang.pick("TAMPERED", "改ざん検出"));
        }
    }
    if !report.ok {
        std::process::exit(1);
    }
    Ok(())
}
