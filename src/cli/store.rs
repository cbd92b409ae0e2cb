//! `certgate store copy`: move a whole store to another backend (SQLite -> PostgreSQL when one
//! machine is outgrown, and back).

use clap::{Args, Subcommand};

use crate::control::StoreUrl;
use crate::control::{copy_store, ControlError, CopyOptions, CopyReport};

use super::{os_user, output, Settings};

#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// Copy every certificate (private keys stay sealed), trust anchor, binding, service, token,
    /// app, grant and audit row into another store. Safe to run again: only what differs is
    /// written. Exit 0 when the destination was verified to hold everything, 1 otherwise.
    Copy(CopyArgs),
}

/// (`Debug` by hand: the URLs may carry passwords.)
#[derive(Args)]
pub struct CopyArgs {
    /// The store to copy: sqlite://PATH or postgres://...
    #[arg(long, value_name = "URL")]
    pub from: String,
    /// The store to fill (created when it does not exist; a PostgreSQL database must exist).
    #[arg(long, value_name = "URL")]
    pub to: String,
}

impl std::fmt::Debug for CopyArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CopyArgs")
            .field("from", &StoreUrl::redact_text(&self.from))
            .field("to", &StoreUrl::redact_text(&self.to))
            .finish()
    }
}

fn url(text: &str, flag: &str) -> Result<StoreUrl, ControlError> {
    StoreUrl::parse(text).map_err(|e| {
        ControlError::usage(
            "usage",
            format!("--{flag}: {e}"),
            "e.g. --from sqlite:///var/lib/certgate/certgate.db --to postgres://certgate@db.internal/certgate",
        )
    })
}

pub async fn run(cmd: StoreCommand, settings: &Settings) -> Result<u8, ControlError> {
    match cmd {
        StoreCommand::Copy(args) => {
            let report = copy_store(CopyOptions {
                from: url(&args.from, "from")?,
                to: url(&args.to, "to")?,
                master_key: Some(settings.master_key.clone()),
                actor: os_user(),
            })
            .await?;
            if settings.json {
                output::json(&serde_json::json!({
                    "verified": report.verified(),
                    "report": report,
                }));
            } else {
                print(&report);
            }
            Ok(if report.verified() { 0 } else { 1 })
        }
    }
}

fn print(r: &CopyReport) {
    match r.revision {
        Some(rev) => println!("copied {} -> {} (destination revision {rev})", r.from, r.to),
        None => println!("nothing to copy: {} already holds everything in {}", r.to, r.from),
    }
    println!();
    println!("  {:<14} {:>8} {:>12} {:>8}", "", "source", "destination", "written");
    for c in &r.counts {
        println!("  {:<14} {:>8} {:>12} {:>8}", c.kind, c.source, c.destination, c.written);
    }
    println!();
    let n = r.certificates.len();
    if n <= 20 {
        for c in &r.certificates {
            println!("  certificate {:<30} id {}", c.name, c.id);
        }
    }
    println!("  certificate ids: sha256 of the sorted name=id list {}", r.certificate_ids_sha256);
    for o in &r.only_in_destination {
        println!("  kept (only in the destination): {o}");
    }
    if r.verified() {
        println!("verified: all {n} certificate(s) and every other object of the source are in the destination, equal");
    } else {
        for p in &r.problems {
            eprintln!("not copied: {p}");
        }
        eprintln!("error: the copy could not be verified ({} problem(s)); run it again, and if it persists check the destination", r.problems.len());
    }
}
