use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    // Logs go to stderr; stdout carries only the CLI's output (text or JSON lines).
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn")))
        .with_writer(std::io::stderr)
        .init();
    raise_descriptor_limit();
    let args = partyline::cli::with_join_for_links(std::env::args_os().collect());
    let cli = partyline::cli::Cli::parse_from(args);
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = match runtime.block_on(partyline::cli::plan(cli)) {
        partyline::cli::Plan::Exit(code) => code,
        #[cfg(feature = "overlay")]
        partyline::cli::Plan::Start(start) if start.overlay() => partyline::overlay::run(&runtime, start),
        partyline::cli::Plan::Start(start) => runtime.block_on(start.run_headless()),
    };
    // Do not wait for the thread blocked reading stdin.
    runtime.shutdown_background();
    code
}

/// Lifts the soft limit on open files to the hard one: every peer, stream and transfer holds
/// descriptors, and the usual soft limit (1024) is the first thing a crowd of peers runs out of.
fn raise_descriptor_limit() {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    if limit.current < limit.maximum
        && let Err(e) =
            setrlimit(Resource::Nofile, rustix::process::Rlimit { current: limit.maximum, ..limit })
    {
        eprintln!("warning: cannot raise the open-file limit: {e}");
    }
}
