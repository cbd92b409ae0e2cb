use std::io::Read;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand, ValueEnum};

use crate::control::{Control, ControlError, ExportFormat, ImportRequest, InputFile};
use crate::pki::{bundle, Code};

use super::password::{self, PasswordArgs};
use super::{open, output, Settings};

#[derive(Debug, Subcommand)]
pub enum CertCommand {
    /// Import a client certificate with its private key (PKCS#12, PEM or DER, by content).
    Import(ImportArgs),
    /// Replace a certificate's material under the same name; bindings and grants stay.
    Rotate(ImportArgs),
    /// List every certificate with its expiry and status.
    List,
    /// Show one certificate's facts, chain and warnings.
    Show { name: String },
    /// Check key, chain path, validity and purpose; exit 1 when any certificate has a problem.
    Check { name: Option<String> },
    /// Export the public part (never the key): PEM or DER, optionally with the chain.
    Export(ExportArgs),
    /// Make a key inside certgate (sealed at once, never exported) and a PKCS#10 CSR for it; with
    /// an existing NAME this is a renewal and the current certificate keeps serving.
    Request(RequestArgs),
    /// Make the certificate the CA issued for a pending request the identity under NAME.
    Complete {
        name: String,
        /// The issued certificate: PEM, DER or PKCS#7 (.p7b), with or without its chain.
        file: PathBuf,
    },
    /// List pending certificate requests with their age.
    Requests,
    /// Change who owns a certificate and whom its expiry alerts reach.
    Owner(OwnerArgs),
    /// Remove a certificate and its sealed key.
    Remove {
        name: String,
        /// Remove even when destinations are bound to it (their bindings go too).
        #[arg(long)]
        force: bool,
    },
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// Name to import under: letters, digits, '.', '_' or '-' (1-128).
    pub name: String,
    /// The certificate file: .pfx/.p12, PEM or DER.
    pub file: PathBuf,
    /// The private key, when it is in a file of its own.
    #[arg(long, value_name = "FILE")]
    pub key: Option<PathBuf>,
    /// Intermediate CA certificates, when they are in files of their own (repeatable).
    #[arg(long, value_name = "FILE")]
    pub chain: Vec<PathBuf>,
    #[command(flatten)]
    pub password: PasswordArgs,
    /// Who owns this certificate (team, contact), shown in listings.
    #[arg(long, value_name = "TEXT")]
    pub owner: Option<String>,
    /// Whom expiry alerts reach: e-mail addresses and/or webhook:NAME, comma-separated.
    #[arg(long, value_name = "EMAIL|webhook:NAME")]
    pub contact: Option<String>,
}

#[derive(Debug, Args)]
pub struct RequestArgs {
    pub name: String,
    /// The subject, e.g. "CN=billing-client,O=Example Ltd,C=NL".
    #[arg(long, value_name = "DN")]
    pub subject: String,
    /// A DNS name for the subjectAltName (repeatable).
    #[arg(long, value_name = "NAME")]
    pub dns: Vec<String>,
    /// Key type: ec-p256 (default), ec-p384, rsa-2048, rsa-3072, rsa-4096.
    #[arg(long, value_name = "TYPE", default_value = "ec-p256")]
    pub key: String,
    /// Write the CSR (PEM) to FILE instead of standard output.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,
    #[arg(long, value_name = "TEXT")]
    pub owner: Option<String>,
    #[arg(long, value_name = "EMAIL|webhook:NAME")]
    pub contact: Option<String>,
}

#[derive(Debug, Args)]
pub struct OwnerArgs {
    pub name: String,
    /// The new owner (an empty value clears it).
    #[arg(long, value_name = "TEXT")]
    pub owner: Option<String>,
    /// The new contact: e-mail addresses and/or webhook:NAME (an empty value clears it).
    #[arg(long, value_name = "EMAIL|webhook:NAME")]
    pub contact: Option<String>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum FormatArg {
    Pem,
    Der,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    pub name: String,
    #[arg(long, value_enum, default_value = "pem")]
    pub format: FormatArg,
    /// Add the issuing CA certificates (PEM only).
    #[arg(long)]
    pub with_chain: bool,
    /// Write to FILE instead of standard output.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,
}

/// Read a user's file, refusing a huge one before reading it all.
pub fn read_input(path: &Path) -> Result<InputFile, ControlError> {
    let label = path.display().to_string();
    let file = std::fs::File::open(path).map_err(|e| ControlError::NotFound {
        what: format!("file {label}"),
        hint: format!("check the path ({e})").into(),
    })?;
    let mut data = Vec::new();
    file.take(bundle::MAX_INPUT_BYTES as u64 + 1).read_to_end(&mut data).map_err(|e| {
        ControlError::usage("usage", format!("cannot read {label}: {e}"), "check the file's permissions")
    })?;
    if data.len() > bundle::MAX_INPUT_BYTES {
        let size = std::fs::metadata(path).map(|m| m.len() as usize).unwrap_or(data.len());
        return Err(bundle::too_large(size).in_file(&label).into());
    }
    Ok(InputFile { label, data })
}

pub async fn run(cmd: CertCommand, settings: &Settings) -> Result<u8, ControlError> {
    // Read every input before touching the store: a bad path changes nothing.
    let control = open(settings).await?;
    let result = run_open(cmd, settings, &control).await;
    control.close().await;
    result
}

async fn run_open(cmd: CertCommand, settings: &Settings, control: &Control) -> Result<u8, ControlError> {
    match cmd {
        CertCommand::Import(args) => import(args, settings, control, false).await,
        CertCommand::Rotate(args) => import(args, settings, control, true).await,
        CertCommand::List => {
            let list = control.list_certificates().await?;
            if settings.json {
                output::json(&list);
            } else {
                output::certificate_table(&list);
            }
            Ok(0)
        }
        CertCommand::Show { name } => {
            let view = control.show_certificate(&name).await?;
            if settings.json {
                output::json(&view);
            } else {
                output::certificate(&view, "certificate");
            }
            Ok(0)
        }
        CertCommand::Check { name } => {
            let reports = control.check_certificates(name.as_deref()).await?;
            let problems = reports.iter().filter(|r| !r.ok).count();
            if settings.json {
                output::json(&reports);
            } else {
                for r in &reports {
                    output::check(r);
                }
                if reports.is_empty() {
                    println!("no certificates to check");
                } else {
                    println!("{} checked, {} with problems", reports.len(), problems);
                }
            }
            Ok(if problems > 0 { 1 } else { 0 })
        }
        CertCommand::Export(args) => {
            let format = match args.format {
                FormatArg::Pem => ExportFormat::Pem,
                FormatArg::Der => ExportFormat::Der,
            };
            let bytes = control.export_certificate(&args.name, format, args.with_chain).await?;
            match &args.output {
                Some(path) => {
                    std::fs::write(path, &bytes).map_err(|e| {
                        ControlError::usage(
                            "usage",
                            format!("cannot write {}: {e}", path.display()),
                            "check the directory",
                        )
                    })?;
                    if !settings.json {
                        eprintln!("wrote the public certificate of '{}' to {}", args.name, path.display());
                    }
                }
                None => {
                    use std::io::Write;
                    let _ = std::io::stdout().write_all(&bytes);
                }
            }
            Ok(0)
        }
        CertCommand::Request(args) => {
            let view = control
                .request_certificate(crate::control::CertificateRequest {
                    name: args.name.clone(),
                    subject: args.subject.clone(),
                    dns: args.dns.clone(),
                    key_type: Some(args.key.clone()),
                    owner: args.owner.clone(),
                    contact: args.contact.clone(),
                })
                .await?;
            if let Some(path) = &args.output {
                std::fs::write(path, &view.csr).map_err(|e| {
                    ControlError::usage("usage", format!("cannot write {}: {e}", path.display()), "check the directory")
                })?;
            }
            if settings.json {
                output::json(&view);
            } else {
                if args.output.is_none() {
                    print!("{}", view.csr);
                }
                eprintln!(
                    "made a {} key for '{}' inside certgate (sealed; it never leaves the store){}; send the CSR{} to your CA, then: certgate cert complete {} ISSUED-CERTIFICATE",
                    view.key_type,
                    view.name,
                    if view.renewal { ", the current certificate keeps serving until then" } else { "" },
                    args.output.as_ref().map(|p| format!(" ({})", p.display())).unwrap_or_default(),
                    view.name
                );
            }
            Ok(0)
        }
        CertCommand::Complete { name, file } => {
            let input = read_input(&file)?;
            let view = control.complete_certificate(&name, vec![input]).await?;
            if settings.json {
                output::json(&view);
            } else {
                output::certificate(&view, "completed");
            }
            Ok(0)
        }
        CertCommand::Requests => {
            let list = control.pending_requests().await?;
            if settings.json {
                output::json(&list);
            } else if list.is_empty() {
                println!("no pending certificate requests");
            } else {
                for p in &list {
                    println!(
                        "{}  {}  {}  pending {} day(s) {}h  {}",
                        p.name,
                        p.key_type,
                        p.subject,
                        p.age_seconds / 86_400,
                        (p.age_seconds % 86_400) / 3600,
                        if p.renewal { "(renewal: the current certificate serves)" } else { "(new)" }
                    );
                }
            }
            Ok(0)
        }
        CertCommand::Owner(args) => {
            control.set_owner("certificate", &args.name, args.owner.as_deref(), args.contact.as_deref()).await?;
            let view = control.show_certificate(&args.name).await?;
            if settings.json {
                output::json(&view);
            } else {
                output::certificate(&view, "certificate");
            }
            Ok(0)
        }
        CertCommand::Remove { name, force } => {
            control.remove_certificate(&name, force).await?;
            if settings.json {
                output::json(&serde_json::json!({"removed": name}));
            } else {
                println!("removed certificate '{name}' and its sealed key");
            }
            Ok(0)
        }
    }
}

async fn import(args: ImportArgs, settings: &Settings, control: &Control, rotate: bool) -> Result<u8, ControlError> {
    let mut files = vec![read_input(&args.file)?];
    if let Some(key) = &args.key {
        files.push(read_input(key)?);
    }
    for chain in &args.chain {
        files.push(read_input(chain)?);
    }
    let mut req = ImportRequest {
        name: args.name.clone(),
        files,
        password: args.password.read()?,
        owner: args.owner.clone(),
        contact: args.contact.clone(),
    };
    // With no password option and a terminal attached, ask once when the file needs one.
    if !args.password.given() {
        if let Err(ControlError::Refused(r)) = Control::read_identity(&req) {
            if r.code == Code::PasswordRequired {
                if let Some(pw) = password::prompt(&args.file.display().to_string()) {
                    req.password = Some(pw);
                }
            }
        }
    }
    let view = if rotate { control.rotate_certificate(req).await? } else { control.import_certificate(req).await? };
    if settings.json {
        output::json(&view);
    } else {
        output::certificate(&view, if rotate { "rotated" } else { "imported" });
    }
    Ok(0)
}
