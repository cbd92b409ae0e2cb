use clap::Args;

use crate::control::{split_candidates, BindRequest, BindingView, ControlError};

use super::{open, output, Settings};

#[derive(Debug, Args)]
pub struct BindArgs {
    /// host, host:port, *.domain, or a URL (reduced to host[:port]).
    pub destination: String,
    /// The certificate to present, or several in order of preference (CERT1,CERT2): at each
    /// handshake the first that chains to a CA the partner names is sent, or the first when
    /// the partner names none (omit with --no-cert).
    #[arg(required_unless_present = "no_cert", conflicts_with = "no_cert", value_name = "CERT[,CERT]...")]
    pub certificate: Option<String>,
    /// Send no certificate, even when the partner asks for one.
    #[arg(long)]
    pub no_cert: bool,
    /// How to verify the partner: public (OS roots + anchors), private (anchors only), ca:NAME[,NAME].
    #[arg(long, value_name = "POLICY")]
    pub trust: Option<String>,
    /// Server name to send and verify instead of the host's name.
    #[arg(long, value_name = "NAME")]
    pub sni: Option<String>,
    /// Pin the partner's public key: sha256/BASE64 of its SPKI (repeatable).
    #[arg(long = "pin", value_name = "sha256/BASE64")]
    pub pins: Vec<String>,
    /// The partner asks for the certificate after the request (IIS/SAP per-path client
    /// certificates): allow one TLS 1.2 renegotiation per connection and offer TLS 1.3
    /// post-handshake authentication (OpenSSL engine, HTTP/1.1).
    #[arg(long)]
    pub allow_renegotiation: bool,
}

pub fn print_binding(v: &BindingView) {
    let cert = if v.certificates.is_empty() { "(no certificate)".to_string() } else { v.certificates.join(",") };
    println!("{:<32} -> {:<24} trust {}{}", v.destination, cert, v.trust, options_text(v));
}

/// What a binding sets beyond certificate and trust, for listings: `  sni N  pins 2  renegotiation ...`.
pub fn options_text(v: &BindingView) -> String {
    let sni = v.sni.as_ref().map(|s| format!("  sni {s}")).unwrap_or_default();
    let pins = if v.pins.is_empty() { String::new() } else { format!("  pins {}", v.pins.len()) };
    let reneg = if v.allow_renegotiation { "  renegotiation allowed (OpenSSL)" } else { "" };
    format!("{sni}{pins}{reneg}")
}

pub async fn bind(args: BindArgs, settings: &Settings) -> Result<u8, ControlError> {
    let control = open(settings).await?;
    let result = control
        .bind(BindRequest {
            destination: args.destination,
            certificates: match args.certificate {
                Some(list) if !args.no_cert => split_candidates(&list),
                _ => Vec::new(),
            },
            trust: args.trust,
            sni: args.sni,
            pins: args.pins,
            allow_renegotiation: args.allow_renegotiation,
        })
        .await;
    control.close().await;
    let v = result?;
    if settings.json {
        output::json(&v);
    } else {
        if let Some(url) = &v.reduced_from {
            println!("note: '{url}' is a URL; bound its destination '{}'", v.destination);
        }
        print!("{}", if v.replaced == Some(true) { "replaced  " } else { "bound     " });
        print_binding(&v);
    }
    Ok(0)
}

pub async fn unbind(destination: &str, settings: &Settings) -> Result<u8, ControlError> {
    let control = open(settings).await?;
    let result = control.unbind(destination).await;
    control.close().await;
    result?;
    if settings.json {
        output::json(&serde_json::json!({"unbound": destination}));
    } else {
        println!("unbound {destination}");
    }
    Ok(0)
}

pub async fn list(settings: &Settings) -> Result<u8, ControlError> {
    let control = open(settings).await?;
    let result = control.bindings().await;
    control.close().await;
    let list = result?;
    if settings.json {
        output::json(&list);
    } else if list.is_empty() {
        println!("no bindings yet: certgate bind HOST CERT");
    } else {
        for v in &list {
            print_binding(v);
        }
    }
    Ok(0)
}
