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
            let cfg = &settings.alerts;
            if cfg.webhooks.is_empty() && cfg.default_contact.is_none() && cfg.smtp.is_none() {
                return Err(ControlError::usage(
                    "usage",
                    "no alert channel is configured",
                    "add a webhook ([alerts.webhooks.NAME] with url and secret_file or secret_env), a mail server ([alerts.smtp]) or default_contact under [alerts] in the config file",
                ));
            }
            cfg.check()?;
            let control = open(settings).await?;
            let results = control.test_alerts(cfg).await;
            control.close().await;
            let mut failed = 0;
            for d in &results {
                match &d.result {
                    Ok(()) => println!("{}: test message sent", d.channel.label()),
                    Err(e) => {
                        failed += 1;
                        eprintln!("{}: not sent: {e}", d.channel.label());
                    }
                }
            }
            Ok(if failed == 0 { 0 } else { 1 })
        }
    }
}
