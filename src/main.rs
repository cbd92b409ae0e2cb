use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = certgate::cli::Cli::parse();
    // `serve` tells what it does; one-shot commands only warn. sqlx's own "slow statement"
    // warnings (a busy machine, a lock held by another writer) are not the user's to act on, and
    // on a one-shot command they would break `--json`'s one-object stderr; CERTGATE_LOG brings
    // them back.
    let default_filter =
        if matches!(cli.command, certgate::cli::Command::Serve(_)) { "certgate=info,warn" } else { "warn,sqlx=error" };
    let filter =
        || tracing_subscriber::EnvFilter::try_from_env("CERTGATE_LOG").unwrap_or_else(|_| default_filter.into());
    let log_format = cli.log_format();
    certgate::cli::set_log_format(log_format);
    match log_format {
        certgate::cli::LogFormat::Text => tracing_subscriber::fmt()
            .with_env_filter(filter())
            .with_writer(std::io::stderr)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
        // One object per line; a span's fields come with it when it closes (one line per proxied
        // request), and with every event inside it.
        certgate::cli::LogFormat::Json => tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter())
            .with_writer(std::io::stderr)
            .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
            .with_current_span(true)
            .with_span_list(false)
            .init(),
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    ExitCode::from(runtime.block_on(certgate::cli::run(cli)))
}
