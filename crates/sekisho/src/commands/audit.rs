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
    let mut report = sekisho_audit::verify(&store, &trusted, tenant.as_deref()).await?;
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
        for t in &report.tenants {
            println!("{}", super::ctl::audit::tenant_line(&serde_json::to_value(t)?, lang));
        }
    }
    store.close().await;
    if !report.ok {
        std::process::exit(1);
    }
    Ok(())
}
