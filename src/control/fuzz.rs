//! Entry points for the fuzz targets in `fuzz/` (docs/FUZZING.md); not part of the API. Each
//! runs the text a user or a document can hand over through the parsers that read it, and
//! checks what must hold for any input: what is accepted reads back to itself.

use super::bindings::{binding_parts, service_url, BindRequest};
use super::document::{line_of, Document, Format, PasswordSource};
use super::{parse_contact, parse_usages, parse_window, validate_name, StoreUrl};
use crate::model::{Destination, Pin, TrustPolicy};

/// One line of user text through every text parser of the control layer (fuzz target
/// `parsers`). Accepted values must be stable: parsing what was stored gives the same value.
pub fn text(input: &str) {
    if let Ok(p) = Destination::parse(input) {
        let key = p.destination.key();
        let again = Destination::parse(&key).unwrap_or_else(|e| panic!("destination {key:?} does not read back: {e}"));
        assert_eq!(again.destination, p.destination, "destination {key:?} reads back as another");
    }
    if let Ok(t) = TrustPolicy::parse(input) {
        let shown = t.to_string();
        assert_eq!(TrustPolicy::parse(&shown).as_ref(), Ok(&t), "trust policy {shown:?} does not read back");
    }
    if let Ok(pin) = Pin::parse(input) {
        assert_eq!(Pin::parse(&pin.to_string()), Ok(pin), "pin does not read back");
    }
    if let Ok(url) = service_url(input) {
        let again = service_url(&url).unwrap_or_else(|e| panic!("stored service URL {url:?} is refused: {e}"));
        assert_eq!(again, url, "service URL is not stable");
        assert!(url::Url::parse(&url).is_ok(), "route compilation cannot read the stored URL {url:?}");
    }
    if let Ok(c) = parse_contact(input) {
        assert_eq!(parse_contact(&c).ok().as_deref(), Some(c.as_str()), "contact {c:?} is not stable");
    }
    let _ = parse_window(input);
    let _ = validate_name("certificate", input);
    let _ = PasswordSource::parse(input);
    let _ = parse_usages("fuzz", input);
    if let Ok(store) = StoreUrl::parse(input) {
        redaction_hides_the_password(input, &store);
    }
    let _ = binding_parts(&BindRequest {
        destination: String::new(),
        certificates: Vec::new(),
        trust: Some(input.to_string()),
        sni: Some(input.to_string()),
        pins: vec![input.to_string()],
        allow_renegotiation: false,
    });
}

/// A PostgreSQL store URL's redacted form (messages, `Debug`) never shows its password,
/// wherever the password sits: it does not change when the password in the user info is
/// replaced. A `sqlite://` URL is a file path, shown as it is: it has no password, and an '@'
/// or ':' in it is part of the file's name (found by CI's 20 s run of this target).
fn redaction_hides_the_password(input: &str, store: &StoreUrl) {
    if !matches!(store, StoreUrl::Postgres(_)) {
        return;
    }
    let shown = store.redacted();
    let Some((scheme, rest)) = input.split_once("://") else { return };
    // The user info as PostgreSQL clients read it: up to the last '@' of the authority.
    let authority = rest.split('/').next().unwrap_or(rest);
    let Some((userinfo, _)) = authority.rsplit_once('@') else { return };
    let Some((user, password)) = userinfo.split_once(':') else { return };
    let other = if password == "pw" { "other" } else { "pw" };
    let replaced = format!("{scheme}://{user}:{other}{}", &rest[userinfo.len()..]);
    let Ok(replaced) = StoreUrl::parse(&replaced) else { return };
    assert_eq!(shown, replaced.redacted(), "the redacted form of {input:?} depends on its password");
}

/// An apply file (fuzz target `apply_document`): parsed; every declared value through the
/// checks `apply` makes before it plans; and what `export-config` would write from it reads
/// back as the same document.
pub fn apply_document(text: &str, format: Format) {
    let Ok(doc) = Document::parse("fuzz", text, format) else { return };
    for c in &doc.certificates {
        let _ = validate_name("certificate", &c.name);
        let _ = line_of(text, "name", &c.name, 0);
        if let Some(p) = &c.password {
            let _ = PasswordSource::parse(p);
        }
        if let Some(o) = &c.owner {
            let _ = parse_contact(o);
        }
    }
    for a in &doc.trust_anchors {
        let _ = validate_name("trust anchor", &a.name);
        if let Some(pem) = &a.pem {
            let _ = crate::pki::bundle::read(pem.as_bytes(), None);
        }
    }
    for b in &doc.bindings {
        let _ = Destination::parse(&b.destination);
        let _ = line_of(text, "destination", &b.destination, 0);
        let _ = binding_parts(&BindRequest {
            destination: b.destination.clone(),
            certificates: b.certificate.iter().chain(&b.certificates).cloned().collect(),
            trust: b.trust.clone(),
            sni: b.sni.clone(),
            pins: b.pins.clone(),
            allow_renegotiation: b.allow_renegotiation,
        });
    }
    for s in &doc.services {
        let _ = validate_name("service", &s.name);
        let _ = service_url(&s.url);
        if let Some(t) = &s.trust {
            let _ = TrustPolicy::parse(t);
        }
    }
    for a in &doc.apps {
        let _ = validate_name("app", &a.name);
        for g in &a.grants {
            let _ = validate_name("certificate", g);
        }
    }
    for out in [Format::Toml, Format::Yaml] {
        let written = doc.render(out).unwrap_or_else(|e| panic!("a parsed document cannot be written as {out:?}: {e}"));
        let again = Document::parse("fuzz", &written, out).unwrap_or_else(|e| {
            panic!("the {out:?} written from a parsed document does not read back: {e}\n{written}")
        });
        let rewritten = again.render(out).expect("written twice");
        assert_eq!(written, rewritten, "the {out:?} document changes when read back");
    }
}

#[cfg(test)]
mod tests {
    /// Inputs the fuzz targets failed on, kept so each stays fixed.
    #[test]
    fn found_inputs_pass() {
        // A SQLite path holding "user:password@": a file name, shown as typed.
        super::text("sqlite://u:p@h");
        assert_eq!(crate::store::StoreUrl::parse("sqlite://u:p@h").unwrap().redacted(), "sqlite://u:p@h");
        super::text("postgres://u:p@h/d@x?password=y");
    }
}
