use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    // Logs go to stderr; stdout carries only the CLI's output (text or JSON lines).
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn")))
        .with_writer(std::io::stderr)
        .init();
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
        partyline::cli::Plan::Start(start) if start.overlay() => partyline::overlay::run(&runtime, start),
        partyline::cli::Plan::Start(start) => runtime.block_on(start.run_headless()),
    };
    // Do not wait for the thread blocked reading stdin.
    runtime.shutdown_background();
    code
}
