use clap::{Args, Subcommand};

use crate::control::{split_candidates, BindingView, ControlError};

use super::{open, output, Settings};

#[derive(Debug, Subcommand)]
pub enum ServiceCommand {
    /// Add or replace a named service; callers use http://PROXY/svc/NAME/... as its endpoint.
    Add(ServiceAddArgs),
    /// List the named services.
    List,
    /// Remove a named service (and its binding).
    Remove { name: String },
}

#[derive(Debug, Args)]
pub struct ServiceAddArgs {
    /// e.g. Billing.InvoiceService
    pub name: String,
    /// The partner's base URL (https://host[:port]/path).
    #[arg(long)]
    pub url: String,
    /// The certificate to present for this service, or several in order of preference
    /// (CERT1,CERT2); without --cert/--no-cert the URL host's binding applies.
    #[arg(long, conflicts_with = "no_cert", value_name = "CERT[,CERT]...")]
    pub cert: Option<String>,
    /// Call this service without a certificate.
    #[arg(long)]
    pub no_cert: bool,
    /// How to verify the partner (with --cert or --no-cert): public, private, ca:NAME[,NAME].
    #[arg(long)]
    pub trust: Option<String>,
    /// The partner asks for the certificate after the request (IIS, SAP: TLS 1.2 renegotiation or
    /// TLS 1.3 post-handshake authentication): allow it once per connection (OpenSSL, HTTP/1.1).
    #[arg(long, requires = "cert")]
    pub allow_renegotiation: bool,
}

pub async fn run(cmd: ServiceCommand, settings: &Settings) -> Result<u8, ControlError> {
    let control = open(settings).await?;
    let result = match cmd {
        ServiceCommand::Add(a) => {
            let cert = match (a.cert, a.no_cert) {
                (Some(c), _) => Some(split_candidates(&c)),
                (None, true) => Some(Vec::new()),
                (None, false) => None,
            };
            control.add_service(&a.name, &a.url, cert, a.trust, a.allow_renegotiation).await.map(|v| {
                if settings.json {
                    output::json(&v);
                } else {
                    let via = match &v.binding {
                        Some(b) => candidates(b),
                        None => "the binding of its host".into(),
                    };
                    let verb = if v.replaced == Some(true) { "replaced" } else { "added" };
                    println!(
                        "{verb} service {} -> {} via {via}; call it as http://PROXY/svc/{}/...",
                        v.name, v.url, v.name
                    );
                }
            })
        }
        ServiceCommand::List => control.services().await.map(|list| {
            if settings.json {
                output::json(&list);
            } else if list.is_empty() {
                println!("no named services yet: certgate service add NAME --url URL --cert CERT");
            } else {
                for v in &list {
                    let via = match &v.binding {
                        Some(b) => format!("{} trust {}{}", candidates(b), b.trust, super::bind::options_text(b)),
                        None => "host binding".into(),
                    };
                    println!("{:<32} {:<48} {via}", v.name, v.url);
                }
            }
        }),
        ServiceCommand::Remove { name } => control.remove_service(&name).await.map(|_| {
            if settings.json {
                output::json(&serde_json::json!({"removed": name}));
            } else {
                println!("removed service {name}");
            }
        }),
    };
    control.close().await;
    result.map(|_| 0)
}

/// `a,b` or `(no certificate)`.
fn candidates(b: &BindingView) -> String {
    if b.certificates.is_empty() {
        "(no certificate)".into()
    } else {
        b.certificates.join(",")
    }
}
