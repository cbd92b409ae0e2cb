use std::path::PathBuf;

use clap::Subcommand;

use crate::control::ControlError;

use super::{cert::read_input, open, output, Settings};

#[derive(Debug, Subcommand)]
pub enum TrustCommand {
    /// Trust the CA certificate(s) in FILE (PEM or DER) for verifying partners, under NAME.
    Add {
        name: String,
        file: PathBuf,
        /// Who owns this anchor (the team that talks to the partner).
        #[arg(long, value_name = "TEXT")]
        owner: Option<String>,
        /// Whom expiry alerts reach: e-mail addresses and/or webhook:NAME.
        #[arg(long, value_name = "EMAIL|webhook:NAME")]
        contact: Option<String>,
    },
    /// Change who owns a trust anchor and whom its expiry alerts reach (empty clears).
    Owner {
        name: String,
        #[arg(long, value_name = "TEXT")]
        owner: Option<String>,
        #[arg(long, value_name = "EMAIL|webhook:NAME")]
        contact: Option<String>,
    },
    /// List the trust anchors.
    List,
    /// Show one trust anchor's certificates.
    Show { name: String },
    /// Stop trusting a trust anchor.
    Remove { name: String },
}

pub async fn run(cmd: TrustCommand, settings: &Settings) -> Result<u8, ControlError> {
    let control = open(settings).await?;
    let result = run_open(cmd, settings, &control).await;
    control.close().await;
    result
}

async fn run_open(
    cmd: TrustCommand,
    settings: &Settings,
    control: &crate::control::Control,
) -> Result<u8, ControlError> {
    match cmd {
        TrustCommand::Owner { name, owner, contact } => {
            control.set_owner("trust-anchor", &name, owner.as_deref(), contact.as_deref()).await?;
            let view = control.show_anchor(&name).await?;
            if settings.json {
                output::json(&view);
            } else {
                output::anchor(&view, "anchor");
            }
        }
        TrustCommand::Add { name, file, owner, contact } => {
            let input = read_input(&file)?;
            let view = control
                .add_anchor_owned(&name, &input.label, &input.data, owner.as_deref(), contact.as_deref())
                .await?;
            if settings.json {
                output::json(&view);
            } else {
                output::anchor(&view, "trusted");
            }
        }
        TrustCommand::List => {
            let list = control.list_anchors().await?;
            if settings.json {
                output::json(&list);
            } else if list.is_empty() {
                println!("no trust anchors yet: add one with 'certgate trust add NAME FILE'");
            } else {
                for v in &list {
                    output::anchor(v, "anchor");
                }
            }
        }
        TrustCommand::Show { name } => {
            let view = control.show_anchor(&name).await?;
            if settings.json {
                output::json(&view);
            } else {
                output::anchor(&view, "anchor");
            }
        }
        TrustCommand::Remove { name } => {
            control.remove_anchor(&name).await?;
            if settings.json {
                output::json(&serde_json::json!({"removed": name}));
            } else {
                println!("removed trust anchor '{name}'");
            }
        }
    }
    Ok(0)
}
