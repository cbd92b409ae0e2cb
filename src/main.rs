use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = certgate::cli::Cli::parse();
    // `serve` tells what it does; one-shot commands only warn.
    let default_filter =
        if matches!(cli.command, certgate::cli::Command::Serve(_)) { "certgate=info,warn" } else { "warn" };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("CERTGATE_LOG").unwrap_or_else(|_| default_filter.into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    ExitCode::from(runtime.block_on(certgate::cli::run(cli)))
}
