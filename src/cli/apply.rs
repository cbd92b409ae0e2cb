//! Declarative configuration on the command line: `apply FILE`, `export-config` and
//! `import-mendix`. The plan is printed first (like a `terraform plan`), then applied in one
//! change unless `--dry-run`.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use clap::Args;

use crate::control::{
    ApplyInput, CertificateDecl, Control, ControlError, Document, Format, MendixOptions, MendixSettings, PlanView,
    Prepared, Sources, StepAction,
};

use super::{open, output, Settings};

#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// The apply file: TOML (*.toml) or YAML (*.yaml, *.yml). See docs/apply-example.toml.
    pub file: PathBuf,
    /// Show the plan and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Also remove every certificate, trust anchor, binding, service, app and grant the file does
    /// not declare (API tokens are never touched). The plan lists them first.
    #[arg(long)]
    pub prune: bool,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// toml or yaml (default: from the -o file's extension, else toml).
    #[arg(long)]
    pub format: Option<String>,
    /// Write to this file instead of standard output.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct MendixArgs {
    /// Read the settings from the app's m2ee.yaml (its mxruntime: section).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["settings", "client_certificates"])]
    pub m2ee: Option<PathBuf>,
    /// Read the settings from a file of `Name = Value` lines, as Studio Pro shows them.
    #[arg(long, value_name = "FILE", conflicts_with = "client_certificates")]
    pub settings: Option<PathBuf>,
    /// ClientCertificates: comma-separated paths (backslashes single).
    #[arg(long, value_name = "LIST")]
    pub client_certificates: Option<String>,
    /// ClientCertificatePasswords, read from this environment variable (comma-separated, in
    /// the same order).
    #[arg(long, value_name = "VAR", conflicts_with = "client_certificate_passwords_file")]
    pub client_certificate_passwords_env: Option<String>,
    /// ClientCertificatePasswords, read from this file.
    #[arg(long, value_name = "FILE")]
    pub client_certificate_passwords_file: Option<PathBuf>,
    /// ClientCertificateUsages: the JSON object (backslashes doubled).
    #[arg(long, value_name = "JSON")]
    pub client_certificate_usages: Option<String>,
    /// The folder that holds the app's certificate files (looked up by file name; the app's
    /// paths are often Windows paths).
    #[arg(long, value_name = "DIR")]
    pub cert_dir: Option<PathBuf>,
    /// The partner base URL of a web service named in ClientCertificateUsages (repeatable).
    #[arg(long = "service-url", value_name = "NAME=URL")]
    pub service_urls: Vec<String>,
    /// Take this ClientCertificateUsages key as a host even if it looks like Module.Service.
    #[arg(long = "host", value_name = "KEY")]
    pub hosts: Vec<String>,
    /// Trust policy of the bindings and services made: public (default), private, ca:NAME[,NAME].
    #[arg(long)]
    pub trust: Option<String>,
    /// Show the plan and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Also write the equivalent apply file (certificates by id), to keep in version control.
    #[arg(long, value_name = "FILE")]
    pub write: Option<PathBuf>,
}

const HEADER: &str = "# certgate apply file (certgate apply FILE [--dry-run] [--prune]).\n\
# Certificates are referenced by id: the store must hold them under these names. To build another\n\
# store from this file, add file = \"PATH\" and password = \"env:VARIABLE\" next to each id.\n";

fn read_text(path: &Path) -> Result<String, ControlError> {
    std::fs::read_to_string(path).map_err(|e| ControlError::NotFound {
        what: format!("file {}", path.display()),
        hint: format!("check the path ({e})").into(),
    })
}

pub async fn apply(args: ApplyArgs, settings: &Settings) -> Result<u8, ControlError> {
    let format = Format::of_path(&args.file)?;
    let text = read_text(&args.file)?;
    let label = args.file.display().to_string();
    let document = Document::parse(&label, &text, format)?;
    let base = args.file.parent().map(Path::to_path_buf).unwrap_or_default();
    let input = ApplyInput { label, text: Some(text), document, sources: Sources::Local { base }, prune: args.prune };
    let control = open(settings).await?;
    let result = plan_and_apply(&control, &input, args.dry_run, settings.json).await;
    control.close().await;
    result.map(|_| 0)
}

/// Plan, print, apply unless a dry run, print the outcome.
async fn plan_and_apply(
    control: &Control,
    input: &ApplyInput,
    dry_run: bool,
    json: bool,
) -> Result<Prepared, ControlError> {
    let prepared = control.plan(input).await?;
    if !json {
        print_plan(&prepared.view, &input.label);
    }
    if dry_run {
        if json {
            output::json(&prepared.view);
        } else {
            println!("Dry run: nothing was changed.");
        }
        return Ok(prepared);
    }
    let changes = prepared.view.changes();
    if changes > 0 {
        // Said before the transaction starts (scripts and tests can tell the phases apart).
        eprintln!("applying {changes} change(s) in one transaction (apply id {})", prepared.view.apply_id);
    }
    let ids = prepared.ids.clone();
    let view = control.apply_plan(prepared).await?;
    if json {
        output::json(&view);
    } else if changes == 0 {
        println!("No changes: the store already matches {}.", input.label);
    } else {
        println!(
            "Applied {changes} change(s) in one transaction: store revision {} -> {} (apply id {}).",
            view.revision,
            view.revision_after.unwrap_or(view.revision),
            view.apply_id
        );
        for c in &view.credentials {
            println!("app {} credential (shown once, store it now): {}", c.name, c.credential);
        }
    }
    // Hand back what the caller may still need (the ids), with the applied view.
    Ok(Prepared::applied(view, ids))
}

fn print_plan(view: &PlanView, label: &str) {
    println!("Plan for {label} (store revision {}, apply id {}):", view.revision, view.apply_id);
    let mut unchanged = 0;
    for s in &view.steps {
        if s.action == StepAction::Unchanged {
            unchanged += 1;
            continue;
        }
        let detail = if s.detail.is_empty() { String::new() } else { format!("  ({})", s.detail) };
        println!("  {} {:<9} {} {}{detail}", s.action.sign(), s.action.as_str(), s.kind, s.name);
    }
    if unchanged > 0 {
        println!("    {unchanged} object(s) unchanged");
    }
    let m = &view.summary;
    println!(
        "Plan: {} to create, {} to replace, {} to remove, {} unchanged{}.",
        m.create,
        m.replace,
        m.remove,
        m.unchanged,
        if view.prune { " (with --prune)" } else { "" }
    );
}

fn render(doc: &Document, format: Format) -> Result<String, ControlError> {
    Ok(format!("{HEADER}{}", doc.render(format)?))
}

fn write_file(path: &Path, text: &str) -> Result<(), ControlError> {
    let mut f = std::fs::File::create(path).map_err(|e| {
        ControlError::usage(
            "usage",
            format!("cannot write {}: {e}", path.display()),
            "check the folder and its permissions",
        )
    })?;
    f.write_all(text.as_bytes()).map_err(|e| {
        ControlError::usage("usage", format!("cannot write {}: {e}", path.display()), "check the free space")
    })
}

pub async fn export(args: ExportArgs, settings: &Settings) -> Result<u8, ControlError> {
    let format = match (&args.format, &args.output) {
        (Some(f), _) => Format::parse(f).ok_or_else(|| {
            ControlError::usage("usage", format!("'{f}' is not a format"), "use --format toml or --format yaml")
        })?,
        (None, Some(path)) => Format::of_path(path).unwrap_or(Format::Toml),
        (None, None) => Format::Toml,
    };
    let control = open(settings).await?;
    let doc = control.export_document().await;
    control.close().await;
    let text = render(&doc?, format)?;
    match &args.output {
        Some(path) => {
            write_file(path, &text)?;
            eprintln!("wrote {}", path.display());
        }
        None => print!("{text}"),
    }
    Ok(0)
}

pub async fn import_mendix(args: MendixArgs, settings: &Settings) -> Result<u8, ControlError> {
    let mendix = if let Some(path) = &args.m2ee {
        MendixSettings::from_m2ee(&path.display().to_string(), &read_text(path)?)?
    } else if let Some(path) = &args.settings {
        MendixSettings::from_settings(&path.display().to_string(), &read_text(path)?)?
    } else if args.client_certificates.is_some() || args.client_certificate_usages.is_some() {
        let passwords = if let Some(var) = &args.client_certificate_passwords_env {
            Some(std::env::var(var).map_err(|_| {
                ControlError::usage(
                    "usage",
                    format!("the environment variable {var} is not set"),
                    "export it before running certgate",
                )
            })?)
        } else if let Some(path) = &args.client_certificate_passwords_file {
            Some(read_text(path)?.trim_end_matches(['\r', '\n']).to_string())
        } else {
            None
        };
        let usages = match &args.client_certificate_usages {
            Some(text) => Some(crate::control::parse_usages("--client-certificate-usages", text)?),
            None => None,
        };
        MendixSettings {
            label: "the settings given".into(),
            certificates: args.client_certificates.clone(),
            passwords: passwords.map(zeroize::Zeroizing::new),
            usages,
        }
    } else {
        return Err(ControlError::usage(
            "usage",
            "no Mendix settings given",
            "give --m2ee FILE, --settings FILE, or --client-certificates with --client-certificate-usages",
        ));
    };
    let mut service_urls = BTreeMap::new();
    for pair in &args.service_urls {
        let (name, url) = pair.split_once('=').ok_or_else(|| {
            ControlError::usage(
                "usage",
                format!("--service-url {pair} is not NAME=URL"),
                "e.g. --service-url Module.WebService1=https://partner.example/ws",
            )
        })?;
        service_urls.insert(name.to_string(), url.to_string());
    }
    let opts = MendixOptions {
        cert_dir: args.cert_dir.clone(),
        service_urls,
        hosts: args.hosts.clone(),
        trust: args.trust.clone(),
    };
    let write_format = args.write.as_deref().map(Format::of_path).transpose()?;
    let document = mendix.to_document(&opts)?;
    let input = ApplyInput {
        label: mendix.label.clone(),
        text: None,
        document: document.clone(),
        sources: Sources::Local { base: std::env::current_dir().unwrap_or_default() },
        prune: false,
    };
    let control = open(settings).await?;
    let result = plan_and_apply(&control, &input, args.dry_run, settings.json).await;
    control.close().await;
    let prepared = result?;
    if let (Some(path), Some(format)) = (&args.write, write_format) {
        let mut written = document;
        written.certificates = written
            .certificates
            .iter()
            .map(|c| CertificateDecl {
                name: c.name.clone(),
                id: prepared.ids.get(&c.name).cloned(),
                ..Default::default()
            })
            .collect();
        write_file(path, &render(&written, format)?)?;
        eprintln!("wrote {} (certificates by id)", path.display());
    }
    Ok(0)
}
