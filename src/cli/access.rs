//! `certgate token ...` (admin API / console tokens) and `certgate app ...` (calling
//! applications, their proxy credentials and grants).

use clap::Subcommand;

use crate::control::{AppView, ControlError};

use super::{open, output, Settings};

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token for the admin API and console; it is shown once.
    Create {
        name: String,
        /// viewer (read), operator (bindings, services, apps, grants) or admin (everything).
        #[arg(long)]
        role: String,
    },
    /// List the tokens (names and roles; the secrets are not stored).
    List,
    /// Revoke a token; sessions signed in with it end.
    Revoke { name: String },
}

#[derive(Debug, Subcommand)]
pub enum AppCommand {
    /// Add a calling application; its proxy credential is shown once.
    Add { name: String },
    /// Let an app present a certificate.
    Grant { name: String, certificate: String },
    /// Stop an app from presenting a certificate.
    Revoke { name: String, certificate: String },
    /// List the apps and their grants.
    List,
    /// Remove an app (and its grants).
    Remove { name: String },
}

pub async fn token(cmd: TokenCommand, settings: &Settings) -> Result<u8, ControlError> {
    let control = open(settings).await?;
    let result = async {
        match cmd {
            TokenCommand::Create { name, role } => {
                let t = control.create_token(&name, &role).await?;
                if settings.json {
                    output::json(&t);
                } else {
                    println!("created token '{}' with role {} (shown once, keep it safe):", t.name, t.role.as_str());
                    println!("{}", t.token);
                    eprintln!("use it as 'Authorization: Bearer TOKEN' on the admin API, or paste it into the console's sign-in");
                }
            }
            TokenCommand::List => {
                let list = control.tokens().await?;
                if settings.json {
                    output::json(&list);
                } else if list.is_empty() {
                    println!("no tokens yet: certgate token create admin --role admin");
                } else {
                    for t in &list {
                        println!("{:<32} {:<9} created {}", t.name, t.role.as_str(), t.created_at);
                    }
                }
            }
            TokenCommand::Revoke { name } => {
                control.revoke_token(&name).await?;
                if settings.json {
                    output::json(&serde_json::json!({"revoked": name}));
                } else {
                    println!("revoked token '{name}'");
                }
            }
        }
        Ok::<_, ControlError>(())
    }
    .await;
    control.close().await;
    result.map(|_| 0)
}

fn print_app(a: &AppView) {
    let grants = if a.grants.is_empty() { "(no grants)".to_string() } else { a.grants.join(", ") };
    println!("{:<32} may present: {grants}", a.name);
}

pub async fn app(cmd: AppCommand, settings: &Settings) -> Result<u8, ControlError> {
    let control = open(settings).await?;
    let result = async {
        match cmd {
            AppCommand::Add { name } => {
                let a = control.add_app(&name).await?;
                if settings.json {
                    output::json(&a);
                } else {
                    println!("added app '{}'; its proxy credential (shown once, keep it safe):", a.name);
                    println!("{}", a.credential);
                    eprintln!(
                        "the app sends it as Proxy-Authorization: Basic base64({}:CREDENTIAL), e.g. HTTP_PROXY=http://{}:CREDENTIAL@127.0.0.1:9780",
                        a.name, a.name
                    );
                    eprintln!("from now on every caller of the proxy must authenticate; grant certificates with: certgate app grant {} CERT", a.name);
                }
            }
            AppCommand::Grant { name, certificate } => {
                let a = control.grant(&name, &certificate).await?;
                if settings.json {
                    output::json(&a);
                } else {
                    print_app(&a);
                }
            }
            AppCommand::Revoke { name, certificate } => {
                let a = control.revoke_grant(&name, &certificate).await?;
                if settings.json {
                    output::json(&a);
                } else {
                    print_app(&a);
                }
            }
            AppCommand::List => {
                let list = control.apps().await?;
                if settings.json {
                    output::json(&list);
                } else if list.is_empty() {
                    println!("no apps: loopback callers may use every binding (certgate app add NAME to require credentials)");
                } else {
                    for a in &list {
                        print_app(a);
                    }
                }
            }
            AppCommand::Remove { name } => {
                control.remove_app(&name).await?;
                if settings.json {
                    output::json(&serde_json::json!({"removed": name}));
                } else {
                    println!("removed app '{name}'");
                }
            }
        }
        Ok::<_, ControlError>(())
    }
    .await;
    control.close().await;
    result.map(|_| 0)
}
