//! `certgate expiry` and `certgate alert`.

use clap::{Args, Subcommand};

use crate::control::{parse_window, ControlError};

use super::{open, output, Settings};

#[derive(Debug, Args)]
pub struct ExpiryArgs {
    /// The window: days (30d), weeks (2w) or hours (48h). Exit 1 when anything expires within it.
    #[arg(long, default_value = "30d", value_name = "DURATION")]
    pub within: String,
}

#[derive(Debug, Subcommand)]
pub enum AlertCommand {
    /// Send a test message on every configured alert channel.
    Test,
}

pub async fn run(args: ExpiryArgs, settings: &Settings) -> Result<u8, ControlError> {
    let days = parse_window(&args.within)?;
    let control = open(settings).await?;
    let report = control.expiry(days).await;
    control.close().await;
    let report = report?;
    if settings.json {
        output::json(&report);
    } else {
        output::expiry(&report);
    }
    Ok(if report.items.is_empty() { 0 } else { 1 })
}

pub async fn alert(cmd: AlertCommand, settings: &Settings) -> Result<u8, ControlError> {
    match cmd {
        AlertCommand::Test => {
            let _ = settings;
            Err(ControlError::usage(
                "usage",
                "alert channels are not built yet in this version",
                "use 'certgate expiry' from cron meanwhile",
            ))
        }
    }
}
