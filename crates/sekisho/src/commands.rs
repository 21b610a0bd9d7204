//! One module per subcommand.

mod agent;
mod audit;
mod backup;
mod ctl;
mod quickstart;
mod relay;

use crate::cli::Command;
use crate::i18n::Lang;

pub(crate) async fn run(command: Command, lang: Lang) -> anyhow::Result<()> {
    match command {
        Command::Relay(args) => relay::run(args, lang).await,
        Command::Agent(args) => agent::run(args, lang).await,
        Command::Ctl(args) => ctl::run(args, lang).await,
        Command::Quickstart(args) => quickstart::run(args, lang).await,
        Command::Audit(cmd) => audit::run(cmd, lang).await,
        Command::Backup(args) => backup::backup(args, lang).await,
        Command::Restore(args) => backup::restore(args, lang).await,
    }
}
