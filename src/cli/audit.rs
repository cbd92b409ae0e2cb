use clap::Args;

use crate::control::ControlError;

use super::{open, output, Settings};

#[derive(Debug, Args)]
pub struct AuditArgs {
    /// How many entries, newest first.
    #[arg(long, default_value_t = 50)]
    pub limit: i64,
}

pub async fn run(args: AuditArgs, settings: &Settings) -> Result<u8, ControlError> {
    let control = open(settings).await?;
    let entries = control.audit(args.limit).await?;
    control.close().await;
    if settings.json {
        output::json(&entries);
    } else {
        for e in &entries {
            let detail = if e.detail.is_empty() { String::new() } else { format!("  {}", e.detail) };
            println!(
                "{}  rev {:>4}  {:<14} {:<14} {:<24} {}{}",
                e.at, e.revision, e.actor, e.action, e.target, e.result, detail
            );
        }
        if entries.is_empty() {
            println!("the audit log is empty");
        }
    }
    Ok(0)
}
