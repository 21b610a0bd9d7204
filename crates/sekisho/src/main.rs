//! `sekisho`: one binary for every role. This file only parses arguments and wires; each
//! subcommand lives in `commands/<name>.rs`.

mod cli;
mod commands;
mod i18n;
mod output;

/// jemalloc, tuned in `.cargo/config.toml`: it gives memory back after a burst, where glibc's
/// per-thread arenas kept it.
#[cfg(feature = "jemalloc")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
    quiet_broken_pipe();
    // The language first (help and argument errors are in it), then the arguments.
    let cli = cli::parse(i18n::Lang::from_args());
    let lang = i18n::Lang::detect(cli.lang.as_deref());
    output::init_tracing(cli.log.as_deref(), cli.log_format);
    // Every relayed connection holds sockets: lift the soft descriptor limit to the hard one.
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(commands::run(cli.command, lang)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{} {e:#}", lang.pick("error:", "エラー:"));
            std::process::ExitCode::FAILURE
        }
    }
}

/// `sekisho ctl … | head` closes stdout early, and `println!` then panics. Rust ignores SIGPIPE
/// (restoring it would need `unsafe`), so end the way a SIGPIPE'd tool does: quietly, status 141.
fn quiet_broken_pipe() {
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info.payload_as_str().unwrap_or_default();
        if message.starts_with("failed printing to stdout") && message.contains("Broken pipe") {
            std::process::exit(141);
        }
        default_hook(info);
    }));
}
