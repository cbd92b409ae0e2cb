//! The command line: global options, configuration, and one file per noun.

mod access;
mod apply;
mod audit;
mod bind;
mod call;
mod cert;
mod config;
mod expiry;
mod generate;
mod output;
mod password;
mod probe;
mod serve;
mod service;
mod store;
mod trust;

use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand};

use crate::control::StoreUrl;
use crate::control::{Control, ControlError, MasterKeySource, OpenOptions, Redacted};

#[doc(hidden)]
pub use config::fuzz_config;
pub use output::Failure;
pub use serve::{serve_on, ServeArgs};

/// certgate: client certificates (mutual TLS) for the applications that call partners.
/// (`Debug` by hand: `--store` may carry a password.)
#[derive(Parser)]
#[command(name = "certgate", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    /// Data directory (SQLite store and master key file). Default: $XDG_DATA_HOME/certgate.
    #[arg(long, global = true, env = "CERTGATE_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Store URL: sqlite://PATH (default sqlite://<data-dir>/certgate.db) or postgres://...
    #[arg(long, global = true, env = "CERTGATE_STORE", value_name = "URL")]
    pub store: Option<String>,
    /// Configuration file (TOML). Flags beat environment variables, which beat the file.
    #[arg(long, global = true, env = "CERTGATE_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Machine-readable output (JSON) on stdout; refusals as JSON on stderr.
    #[arg(long, global = true)]
    pub json: bool,
    /// Log lines on stderr: text for people, json (one object per line) for log shippers.
    /// Default: the config file's log_format, else text.
    #[arg(long, global = true, env = "CERTGATE_LOG_FORMAT", value_name = "FORMAT")]
    pub log_format: Option<LogFormat>,
    #[command(subcommand)]
    pub command: Command,
}

impl std::fmt::Debug for Cli {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cli")
            .field("data_dir", &self.data_dir)
            .field("store", &self.store.as_deref().map(StoreUrl::redact_text))
            .field("config", &self.config)
            .field("json", &self.json)
            .field("command", &self.command)
            .finish()
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Client certificates: import, rotate, list, show, check, export, remove.
    #[command(subcommand)]
    Cert(cert::CertCommand),
    /// Trust anchors: CA certificates trusted for verifying partner servers.
    #[command(subcommand)]
    Trust(trust::TrustCommand),
    /// The audit log of every change, newest first.
    Audit(audit::AuditArgs),
    /// Bind a destination (host, host:port, *.domain, or a URL) to a certificate or to none.
    Bind(bind::BindArgs),
    /// Remove the binding of a destination.
    Unbind { destination: String },
    /// List the bindings.
    Bindings,
    /// Named services: NAME -> partner base URL, called as /svc/NAME/... on the proxy.
    #[command(subcommand)]
    Service(service::ServiceCommand),
    /// Run the gateway: the proxy listener for applications and the admin listener.
    Serve(serve::ServeArgs),
    /// Perform one request through the gateway's code path, with the bindings applied.
    Call(call::CallArgs),
    /// Diagnose a partner: its certificate and our trust in it, the client certificate it asks
    /// for, and whether it accepts the one bound (exit 0 when the path works end to end).
    Probe(probe::ProbeArgs),
    /// Tokens for the admin API and the web console.
    #[command(subcommand)]
    Token(access::TokenCommand),
    /// Calling applications: proxy credentials and which certificates each may present.
    #[command(subcommand)]
    App(access::AppCommand),
    /// What expires within a window (certificates, trust anchors, partner certificates); exit 1 when anything does.
    Expiry(expiry::ExpiryArgs),
    /// Expiry alerts: send a test message on every configured channel.
    #[command(subcommand)]
    Alert(expiry::AlertCommand),
    /// The store itself: copy it to another backend (SQLite <-> PostgreSQL).
    #[command(subcommand)]
    Store(store::StoreCommand),
    /// Make the store match a declarative file (TOML or YAML): plan, then one transaction.
    Apply(apply::ApplyArgs),
    /// Write the store as an apply file (certificates by id; never keys or passwords).
    ExportConfig(apply::ExportArgs),
    /// Move a Mendix app's ClientCertificates / ClientCertificatePasswords /
    /// ClientCertificateUsages settings into certgate, through the same plan as apply.
    ImportMendix(apply::MendixArgs),
    /// Shell completions and man pages from this command line's definition (for packagers).
    #[command(subcommand, hide = true)]
    Generate(generate::GenerateCommand),
}

/// How log lines are written (`--log-format`, `log_format` in the config file).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line; each proxied request closes a `request` span with its fields.
    Json,
}

/// Settings after flags, environment and the config file are combined.
pub struct Settings {
    pub gateway: config::GatewayConfig,
    pub data_dir: PathBuf,
    pub store: StoreUrl,
    pub master_key: MasterKeySource,
    pub json: bool,
    /// Who acts, for the audit log (`cli:USER` from the command line).
    pub actor: String,
    /// `[alerts]`: thresholds and channels.
    pub alerts: config::AlertsConfig,
    /// A fixed "now" for tests (hidden: env `CERTGATE_TEST_NOW` or the config key `test_now`,
    /// RFC 3339). Certgate otherwise always uses the system clock.
    pub now: Option<time::OffsetDateTime>,
}

static JSON_LOGS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Tell the CLI that log lines are JSON (`main` does, after installing the subscriber), so that
/// `serve` logs its messages instead of printing plain lines among them.
pub fn set_log_format(format: LogFormat) {
    JSON_LOGS.store(format == LogFormat::Json, std::sync::atomic::Ordering::Relaxed);
    crate::gateway::set_request_spans(format == LogFormat::Json);
}

fn json_logs() -> bool {
    JSON_LOGS.load(std::sync::atomic::Ordering::Relaxed)
}

impl Cli {
    /// The log format: flag or environment, else the config file's `log_format`, else text. A
    /// config file that cannot be read gives text here; the command then reports the file.
    pub fn log_format(&self) -> LogFormat {
        if let Some(f) = self.log_format {
            return f;
        }
        self.config
            .as_deref()
            .and_then(|p| config::ConfigFile::read(p).ok())
            .and_then(|f| f.log_format)
            .unwrap_or_default()
    }

    pub fn settings(&self) -> Result<Settings, ControlError> {
        let file = match &self.config {
            Some(path) => config::ConfigFile::read(path)?,
            None => config::ConfigFile::default(),
        };
        let data_dir = self.data_dir.clone().or(file.data_dir.clone()).unwrap_or_else(default_data_dir);
        let master_key = if let Ok(inline) = std::env::var("CERTGATE_MASTER_KEY") {
            Some(MasterKeySource::Inline(Redacted(zeroize::Zeroizing::new(inline))))
        } else {
            std::env::var_os("CERTGATE_MASTER_KEY_FILE").map(|p| MasterKeySource::File(PathBuf::from(p)))
        };
        let mut settings = Settings::combine(file, data_dir, self.store.as_deref(), master_key, self.json, os_user())?;
        if let Ok(text) = std::env::var("CERTGATE_TEST_NOW") {
            settings.now = Some(config::parse_now(&text)?);
        }
        Ok(settings)
    }
}

impl Settings {
    /// Settings for running `serve` inside another program (the integration tests run many in
    /// one process): every input is given, no environment variable is read. `store` and
    /// `master_key` beat the config file, as their flags and variables do on the command line;
    /// `None` falls back to the file, then to the data directory.
    pub fn explicit(
        data_dir: PathBuf,
        store: Option<&str>,
        master_key: Option<MasterKeySource>,
        config: Option<&Path>,
        actor: &str,
    ) -> Result<Settings, ControlError> {
        let file = match config {
            Some(path) => config::ConfigFile::read(path)?,
            None => config::ConfigFile::default(),
        };
        Settings::combine(file, data_dir, store, master_key, false, actor.to_string())
    }

    fn combine(
        file: config::ConfigFile,
        data_dir: PathBuf,
        store: Option<&str>,
        master_key: Option<MasterKeySource>,
        json: bool,
        actor: String,
    ) -> Result<Settings, ControlError> {
        let store = match store.map(str::to_string).or(file.store.clone()) {
            Some(url) => StoreUrl::parse(&url)
                .map_err(|e| ControlError::usage("usage", e, "e.g. --store sqlite:///var/lib/certgate/certgate.db"))?,
            None => StoreUrl::Sqlite(data_dir.join("certgate.db")),
        };
        let master_key = master_key
            .or_else(|| file.master_key_file.clone().map(MasterKeySource::File))
            .unwrap_or_else(|| MasterKeySource::DataDir(data_dir.join("master.key")));
        let now = file.test_now.as_deref().map(config::parse_now).transpose()?;
        Ok(Settings { gateway: file.gateway, data_dir, store, master_key, json, actor, alerts: file.alerts, now })
    }
}

fn default_data_dir() -> PathBuf {
    if let Some(x) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(x).join("certgate");
    }
    if let Some(home) = std::env::var_os("HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(home).join(".local/share/certgate");
    }
    PathBuf::from("certgate-data")
}

/// Who runs the CLI, for the audit log: `cli:NAME` with the name the system's user database
/// (/etc/passwd, or NSS) gives the process's real uid, so `sudo` shows as `cli:root` and a
/// changed `$USER` changes nothing. `cli:uid-N` only when the uid has no name.
pub fn os_user() -> String {
    // SAFETY: getuid cannot fail and touches no memory of ours.
    let uid = unsafe { libc::getuid() };
    match user_name(uid) {
        Some(n) => format!("cli:{n}"),
        None => format!("cli:uid-{uid}"),
    }
}

/// The user database's name for `uid` (getpwuid_r: thread-safe, works with NSS sources).
fn user_name(uid: libc::uid_t) -> Option<String> {
    let mut buf = vec![0u8; 4096];
    for _ in 0..4 {
        let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
        let mut found: *mut libc::passwd = std::ptr::null_mut();
        // SAFETY: pwd, buf and found outlive the call; buf.len() is the size we pass; on success
        // pw_name points into buf, which we read before buf is dropped or reused.
        let rc = unsafe { libc::getpwuid_r(uid, &mut pwd, buf.as_mut_ptr().cast(), buf.len(), &mut found) };
        if rc == libc::ERANGE && buf.len() < 1 << 20 {
            buf.resize(buf.len() * 4, 0);
            continue;
        }
        if rc != 0 || found.is_null() || pwd.pw_name.is_null() {
            return None;
        }
        // SAFETY: pw_name is a NUL-terminated string inside buf (see above).
        let name = unsafe { std::ffi::CStr::from_ptr(pwd.pw_name) };
        return name.to_str().ok().filter(|n| !n.is_empty()).map(str::to_string);
    }
    None
}

pub async fn open(settings: &Settings) -> Result<Control, ControlError> {
    let control = Control::open(OpenOptions {
        store: settings.store.clone(),
        master_key: settings.master_key.clone(),
        actor: settings.actor.clone(),
    })
    .await?;
    Ok(match settings.now {
        Some(at) => control.with_fixed_now(at),
        None => control,
    })
}

/// Run one command; the result is the process exit code.
pub async fn run(cli: Cli) -> u8 {
    let json = cli.json;
    if let Command::Generate(cmd) = &cli.command {
        return generate::run(cmd);
    }
    let result = async {
        let settings = cli.settings()?;
        match cli.command {
            Command::Cert(cmd) => cert::run(cmd, &settings).await,
            Command::Trust(cmd) => trust::run(cmd, &settings).await,
            Command::Audit(args) => audit::run(args, &settings).await,
            Command::Bind(args) => bind::bind(args, &settings).await,
            Command::Unbind { destination } => bind::unbind(&destination, &settings).await,
            Command::Bindings => bind::list(&settings).await,
            Command::Service(cmd) => service::run(cmd, &settings).await,
            Command::Serve(args) => serve::run(args, &settings).await,
            Command::Call(args) => call::run(args, &settings).await,
            Command::Probe(args) => probe::run(args, &settings).await,
            Command::Token(cmd) => access::token(cmd, &settings).await,
            Command::App(cmd) => access::app(cmd, &settings).await,
            Command::Store(cmd) => store::run(cmd, &settings).await,
            Command::Apply(args) => apply::apply(args, &settings).await,
            Command::ExportConfig(args) => apply::export(args, &settings).await,
            Command::ImportMendix(args) => apply::import_mendix(args, &settings).await,
            Command::Expiry(args) => expiry::run(args, &settings).await,
            Command::Alert(cmd) => expiry::alert(cmd, &settings).await,
            Command::Generate(_) => unreachable!("handled above: needs no settings"),
        }
    }
    .await;
    match result {
        Ok(code) => code,
        Err(e) => {
            output::print_error(&e, json);
            e.exit_code()
        }
    }
}
