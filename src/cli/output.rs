//! Printing: human tables and blocks, JSON, and the one-line refusal.

use serde::Serialize;

use crate::control::views::{AnchorView, CertificateView, CheckReport};
use crate::control::ControlError;

/// An error as printed: code, message, next step.
#[derive(Debug, Serialize)]
pub struct Failure {
    pub error: String,
    pub message: String,
    pub hint: String,
}

pub fn print_error(e: &ControlError, json: bool) {
    let f = Failure { error: e.code().to_string(), message: e.message(), hint: e.hint() };
    if json {
        eprintln!("{}", serde_json::to_string(&f).unwrap_or_default());
    } else if f.hint.is_empty() {
        eprintln!("error ({}): {}", f.error, f.message);
    } else {
        eprintln!("error ({}): {} — {}", f.error, f.message, f.hint);
    }
}

pub fn json<T: Serialize + ?Sized>(value: &T) {
    println!("{}", serde_json::to_string_pretty(value).unwrap_or_default());
}

fn date(rfc: &str) -> &str {
    rfc.get(..10).unwrap_or(rfc)
}

pub fn certificate(v: &CertificateView, heading: &str) {
    println!("{heading} '{}'  (id {})", v.name, v.id);
    println!("  subject      {}", v.subject);
    println!("  issuer       {}", v.issuer);
    println!("  serial       {}", v.serial);
    println!(
        "  valid        {} to {} ({})",
        date(&v.not_before),
        date(&v.not_after),
        if v.days_left < 0 {
            format!("expired {} days ago", -v.days_left)
        } else {
            format!("{} days left", v.days_left)
        }
    );
    let key = match v.key_type.as_str() {
        "rsa" => format!("RSA {} bits", v.key_bits),
        "ec-p256" => "ECDSA P-256".into(),
        "ec-p384" => "ECDSA P-384".into(),
        other => other.to_string(),
    };
    println!("  key          {key} (sealed)");
    match &v.engine_reason {
        Some(why) => println!("  engine       {}: {why}", v.engine),
        None => println!("  engine       {}", v.engine),
    }
    println!(
        "  clientAuth   {}",
        match v.client_auth_eku {
            Some(true) => "yes",
            Some(false) => "NO (extended key usage lacks clientAuth)",
            None => "not restricted (no extended key usage)",
        }
    );
    if !v.alt_names.is_empty() {
        println!("  alt names    {}", v.alt_names.join(", "));
    }
    if v.chain.is_empty() {
        println!("  chain        (none came with it)");
    }
    for (i, c) in v.chain.iter().enumerate() {
        let label = if i == 0 { "chain" } else { "" };
        let root = if c.self_signed { "  [root]" } else { "" };
        println!("  {label:<12} {}{root}", c.subject);
    }
    println!("  owner        {}", v.owner.as_deref().unwrap_or("(none: set one so that expiry alerts reach someone)"));
    if let Some(contact) = &v.contact {
        println!("  contact      {contact}");
    }
    if let Some(p) = &v.pending_request {
        println!(
            "  renewal      request pending since {} ({}, {}): the current certificate serves until it is completed",
            date(&p.created_at),
            p.key_type,
            p.subject
        );
    }
    if !v.bindings.is_empty() {
        println!("  bound to     {}", v.bindings.join(", "));
    }
    if v.warning_details.is_empty() {
        println!("  warnings     none");
    }
    for w in &v.warning_details {
        println!("  warning      {} ({}): {}", w.message, w.code, w.remedy);
    }
    for n in &v.notes {
        println!("note: {n}");
    }
}

pub fn certificate_table(list: &[CertificateView]) {
    if list.is_empty() {
        println!("no certificates yet: import one with 'certgate cert import NAME FILE'");
        return;
    }
    let width = list.iter().map(|v| v.name.len()).max().unwrap_or(4).max(4);
    println!("{:<width$}  {:<10}  {:>5}  {:<8}  {:<24}  SUBJECT", "NAME", "EXPIRES", "DAYS", "KEY", "STATUS");
    for v in list {
        let status = if v.warnings.is_empty() { "ok".to_string() } else { v.warnings.join(",") };
        let key = if v.key_type == "rsa" { format!("rsa{}", v.key_bits) } else { v.key_type.clone() };
        println!(
            "{:<width$}  {:<10}  {:>5}  {:<8}  {:<24}  {}",
            v.name,
            date(&v.not_after),
            v.days_left,
            key,
            status,
            v.subject
        );
    }
}

pub fn check(r: &CheckReport) {
    println!("{}  {}  (id {})", if r.ok { "OK     " } else { "PROBLEM" }, r.name, r.id);
    println!("  key        {}", r.key.detail);
    match &r.engine_reason {
        Some(why) => println!("  engine     {}: {why}", r.engine),
        None => println!("  engine     {}", r.engine),
    }
    for (i, link) in r.path.iter().enumerate() {
        if i == 0 {
            println!("  path       {}", link.subject);
        } else {
            let root = if link.self_signed { " [root]" } else { "" };
            println!("             <- {}{root}  ({})", link.subject, link.source);
        }
    }
    if let Some(missing) = &r.missing_issuer {
        println!("             <- MISSING: {missing} (not in the file, not in the store)");
    }
    println!("  signatures {}", r.signatures);
    println!(
        "  validity   {} to {} ({})",
        date(&r.not_before),
        date(&r.not_after),
        if r.days_left < 0 {
            format!("expired {} days ago", -r.days_left)
        } else {
            format!("{} days left", r.days_left)
        }
    );
    println!(
        "  purpose    {}",
        match r.client_auth_eku {
            Some(true) => "clientAuth",
            Some(false) => "clientAuth MISSING from the extended key usage",
            None => "not restricted",
        }
    );
    for p in &r.problems {
        println!("  problem    {} ({})", p.message, p.code);
        println!("    remedy   {}", p.remedy);
    }
}

pub fn anchor(v: &AnchorView, heading: &str) {
    println!(
        "{heading} '{}' ({} certificate{})",
        v.name,
        v.certificates.len(),
        if v.certificates.len() == 1 { "" } else { "s" }
    );
    for c in &v.certificates {
        let kind = if c.self_signed {
            "root"
        } else if c.is_ca {
            "intermediate"
        } else {
            "certificate"
        };
        println!("  {kind:<12} {}  (until {}, id {})", c.subject, date(&c.not_after), c.id);
    }
    if let Some(owner) = &v.owner {
        println!("  owner        {owner}");
    }
    if let Some(contact) = &v.contact {
        println!("  contact      {contact}");
    }
    for w in &v.warnings {
        println!("  warning      {w}");
    }
}

pub fn expiry(r: &crate::control::ExpiryReport) {
    if r.items.is_empty() {
        println!("nothing expires within {} days", r.within_days);
        return;
    }
    println!("{} item(s) expire within {} days (as of {}):", r.items.len(), r.within_days, date(&r.now));
    for i in &r.items {
        let when = if i.days_left < 0 {
            format!("EXPIRED {} days ago", -i.days_left)
        } else {
            format!("{} days left", i.days_left)
        };
        let mark = if i.loud { "!!! " } else { "" };
        println!("{mark}{:<19} {}  {}  ({when})", i.kind, i.name, date(&i.not_after));
        println!("    subject  {}", i.subject);
        println!(
            "    owner    {}{}",
            i.owner.as_deref().unwrap_or("(none)"),
            i.contact.as_deref().map(|c| format!(" <{c}>")).unwrap_or_default()
        );
        println!("    action   {}", i.action);
    }
}
