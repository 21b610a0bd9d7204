//! `sekisho audit verify`: checks the audit log straight from the database, without the relay.

use crate::cli::AuditCmd;
use crate::i18n::Lang;

pub(crate) async fn run(cmd: AuditCmd, lang: Lang) -> anyhow::Result<()> {
    let AuditCmd::Verify { data_dir, database, keys, tenant, json } = cmd;
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
    let report = sekisho_audit::verify(&store, &trusted, tenant.as_deref()).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        for t in &report.tenants {
            match &t.problem {
                None => println!(
                    "{} {}: {} {} (#{}..#{}), {} {}, {} {}",
                    lang.pick("OK", "正常"),
                    t.tenant,
                    t.events,
                    lang.pick("events", "件のイベント"),
                    t.first_seq.unwrap_or(0),
                    t.last_seq.unwrap_or(0),
                    t.checkpoints,
                    lang.pick("signed checkpoints", "個の署名付きチェックポイント"),
                    t.unsigned_tail,
                    lang.pick("events after the last checkpoint", "件は最後のチェックポイント以降"),
                ),
                Some(p) => println!(
                    "{} {}: #{} {:?}: {}",
                    lang.pick("TAMPERED", "改ざん検出"),
                    t.tenant,
                    p.seq,
                    p.kind,
                    p.message
                ),
            }
        }
    }
    store.close().await;
    if !report.ok {
        std::process::exit(1);
    }
    Ok(())
}
