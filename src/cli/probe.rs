//! `certgate probe`: why does the partner refuse us? See `gateway::probe`.

use clap::Args;

use crate::control::ControlError;
use crate::gateway::probe::{self, ProbeReport, ProbeRequest};
use crate::model::TrustPolicy;
use crate::routes::CompileOptions;

use super::{open, Settings};

#[derive(Debug, Args)]
pub struct ProbeArgs {
    /// https://partner[:port]/path, partner, or partner:port.
    pub target: String,
    /// Present this certificate instead of the binding's (or several candidates, CERT1,CERT2:
    /// the partner's CA names pick one, as they would for such a binding).
    #[arg(long, value_name = "NAME[,NAME]")]
    pub cert: Option<String>,
    /// Send and verify this server name instead of the binding's (or the host).
    #[arg(long, value_name = "NAME")]
    pub sni: Option<String>,
    /// Verify the partner with this trust policy instead of the binding's.
    #[arg(long, value_name = "public|private|ca:NAME[,NAME]")]
    pub trust: Option<String>,
    /// The path of the request sent once the handshake works (default: the URL's path, or /).
    #[arg(long, value_name = "/x")]
    pub path: Option<String>,
}

fn usage(message: String, hint: &str) -> ControlError {
    ControlError::usage("usage", message, hint)
}

/// Exit 0 when the path works end to end, 1 otherwise.
pub async fn run(args: ProbeArgs, settings: &Settings) -> Result<u8, ControlError> {
    let trust = match &args.trust {
        Some(t) => Some(TrustPolicy::parse(t).map_err(|e| usage(e, "e.g. --trust public or --trust ca:partner-root"))?),
        None => None,
    };
    let req = ProbeRequest { target: args.target, cert: args.cert, sni: args.sni, trust, path: args.path };
    let control = open(settings).await?;
    let gathered = control.probe_inputs(req.cert.as_deref()).await;
    control.close().await;
    let (inputs, stored) = gathered?;
    let cfg = &settings.gateway;
    let options =
        CompileOptions { settings: std::sync::Arc::new(cfg.upstream()), allow_unbound: false, partners: None };
    let report = probe::probe(&req, inputs, &stored, &options, cfg.gateway().response_header_timeout)
        .await
        .map_err(|e| usage(e, "give https://partner[:port]/path, partner or partner:port"))?;
    if settings.json {
        println!("{}", serde_json::to_string_pretty(&report).unwrap_or_default());
    } else {
        print!("{}", render(&report));
    }
    Ok(if report.ok { 0 } else { 1 })
}

/// The report in plain words.
pub fn render(r: &ProbeReport) -> String {
    use std::fmt::Write;
    let mut o = String::new();
    let _ = writeln!(o, "probe {}:{}", r.host, r.port);
    match &r.binding {
        Some(b) => {
            let _ = writeln!(
                o,
                "  binding      {} -> {} (trust {}{})",
                b.destination,
                if b.certificates.is_empty() { "no certificate".to_string() } else { b.certificates.join(",") },
                b.trust,
                b.sni.as_ref().map(|s| format!(", sni {s}")).unwrap_or_default()
            );
        }
        None => {
            let _ = writeln!(o, "  binding      none: the gateway refuses requests to this destination");
        }
    }
    let p = &r.probed_with;
    let probed = if p.certificates.is_empty() { "no certificate".to_string() } else { p.certificates.join(",") };
    let _ = writeln!(o, "  probed with  {probed} (trust {})", p.trust);
    if let Some(c) = &r.connect {
        let _ = writeln!(o, "  connect      {} in {} ms", c.address, c.millis);
    }
    if let Some(t) = &r.tls {
        let _ = writeln!(
            o,
            "  tls          {} {} alpn {}",
            t.version.as_deref().unwrap_or("?"),
            t.cipher.as_deref().unwrap_or("?"),
            t.alpn.as_deref().unwrap_or("none")
        );
    }
    if let Some(pi) = &r.partner {
        let _ = writeln!(o, "  partner      {}", if pi.trusted { "trusted" } else { "NOT trusted" });
        for c in &pi.chain {
            let _ = writeln!(
                o,
                "    {}  issued by {}  valid until {} ({} days){}",
                c.subject,
                c.issuer,
                c.not_after,
                c.days_left,
                if c.names.is_empty() { String::new() } else { format!("  names {}", c.names.join(", ")) }
            );
        }
        if let Some(pin) = &pi.pin {
            let _ = writeln!(o, "    pin {pin}");
        }
    }
    let cc = &r.client_certificate;
    if cc.requested {
        let cas = if cc.acceptable_cas.is_empty() {
            "any CA (it named none)".to_string()
        } else {
            cc.acceptable_cas.join("; ")
        };
        let _ = writeln!(o, "  client cert  asked for; accepts {cas}");
        if !cc.matching.is_empty() {
            let _ = writeln!(o, "    stored certificates that chain to one of them: {}", cc.matching.join(", "));
        }
    } else {
        let _ = writeln!(o, "  client cert  not asked for during the handshake");
    }
    let _ = writeln!(
        o,
        "    sent: {}{}",
        cc.sent.as_deref().unwrap_or("none"),
        match cc.sent_acceptable {
            Some(true) => " (acceptable)",
            Some(false) => " (NOT among the CAs it accepts)",
            None => "",
        }
    );
    if cc.candidates.len() > 1 {
        let _ = writeln!(o, "    candidates: {} (the partner's CA names pick one)", cc.candidates.join(", "));
    }
    if let Some(p) = &cc.presented {
        let _ = writeln!(o, "    presented in the handshake: {p}");
    }
    let _ = writeln!(
        o,
        "  outcome      {}{}",
        if r.outcome.accepted { "answered: " } else { "failed: " },
        r.outcome.message
    );
    for pr in &r.problems {
        let _ = writeln!(o, "  problem      ({}) {}", pr.code, pr.message);
        match &pr.command {
            Some(c) => {
                let _ = writeln!(o, "    remedy     {}: {c}", pr.hint);
            }
            None => {
                let _ = writeln!(o, "    remedy     {}", pr.hint);
            }
        }
    }
    let _ = writeln!(o, "  result       {}", if r.ok { "the path works end to end" } else { "the path does not work" });
    o
}
