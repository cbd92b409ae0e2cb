//! Owners and contacts, and what expires when: certificates, trust anchors and the partner
//! certificates the gateway saw. One list for `certgate expiry`, `GET /api/v1/expiry`, the console
//! and the alert loop.

use serde::Serialize;
use time::OffsetDateTime;

use crate::model::{Action, Remedy};

use super::views::{rfc3339, rfc3339_unix};
use super::{read_stored, validate_name, Control, ControlError};

/// One thing that expires.
#[derive(Clone, Debug, Serialize)]
pub struct ExpiryItem {
    /// `certificate`, `trust-anchor` or `partner-certificate`.
    pub kind: &'static str,
    /// The certificate or anchor name, or the partner's destination.
    pub name: String,
    pub subject: String,
    pub issuer: String,
    /// SHA-256 of the DER (certificates and anchors) or the SPKI pin (partners).
    pub id: String,
    pub not_after: String,
    /// Whole days left (negative once expired).
    pub days_left: i64,
    /// `expired`, `critical` (7 days or less), `warning` (within the window).
    pub status: &'static str,
    pub owner: Option<String>,
    pub contact: Option<String>,
    /// What to do, in words.
    pub action: String,
    /// Partner certificates trusted by a pin or a self-signed anchor break the day the partner
    /// renews, unless the pin or anchor is replaced: shown loudest.
    pub loud: bool,
    #[serde(skip)]
    pub not_after_unix: i64,
}

#[derive(Clone, Debug, Serialize)]
pub struct ExpiryReport {
    pub now: String,
    pub within_days: i64,
    pub items: Vec<ExpiryItem>,
}

/// `30d`, `12h`, `2w` or a bare number of days, as whole days (hours round up).
pub fn parse_window(text: &str) -> Result<i64, ControlError> {
    let t = text.trim();
    let bad = || {
        ControlError::usage(
            "usage",
            format!("'{text}' is not a duration"),
            "give days like 30d (also 2w or 48h), at most 3650 days",
        )
    };
    let (num, unit) = match t.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => (&t[..i], &t[i..]),
        None => (t, "d"),
    };
    let n: i64 = num.parse().map_err(|_| bad())?;
    let days = match unit {
        "d" | "day" | "days" => n,
        "w" | "week" | "weeks" => n.checked_mul(7).ok_or_else(bad)?,
        "h" | "hour" | "hours" => (n + 23) / 24,
        _ => return Err(bad()),
    };
    if !(0..=3650).contains(&days) {
        return Err(bad());
    }
    Ok(days)
}

/// Check a contact: e-mail addresses and/or `webhook:NAME`, comma-separated. Returns the
/// canonical text (entries trimmed, joined by ", "); empty clears.
pub fn parse_contact(text: &str) -> Result<String, ControlError> {
    let mut out = Vec::new();
    for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        if let Some(name) = entry.strip_prefix("webhook:") {
            validate_name("webhook", name)?;
        } else {
            let ok = entry.len() <= 254
                && !entry.chars().any(|c| c.is_whitespace() || c.is_control() || "<>\"".contains(c))
                && entry.split_once('@').is_some_and(|(l, d)| !l.is_empty() && d.contains('.') && !d.contains('@'));
            if !ok {
                return Err(ControlError::usage(
                    "usage",
                    format!("the contact '{entry}' is neither an e-mail address nor webhook:NAME"),
                    "give e-mail addresses (ops@example.com) and/or webhook:NAME, separated by commas",
                ));
            }
        }
        out.push(entry.to_string());
    }
    Ok(out.join(", "))
}

fn check_owner(owner: &str) -> Result<(), ControlError> {
    if owner.chars().count() > 200 || owner.chars().any(char::is_control) {
        return Err(ControlError::usage(
            "usage",
            "the owner is longer than 200 characters or holds control characters",
            "give a team or person's name on one line",
        ));
    }
    Ok(())
}

/// Validate an owner and a contact given at import or `trust add` (`None` when not given).
pub fn owner_fields(
    owner: Option<&str>,
    contact: Option<&str>,
) -> Result<(Option<String>, Option<String>), ControlError> {
    if let Some(o) = owner {
        check_owner(o)?;
    }
    let contact = contact.map(parse_contact).transpose()?;
    Ok((owner.map(str::trim).filter(|o| !o.is_empty()).map(String::from), contact.filter(|c| !c.is_empty())))
}

fn status(days_left: i64) -> &'static str {
    if days_left < 0 {
        "expired"
    } else if days_left <= 7 {
        "critical"
    } else {
        "warning"
    }
}

/// Whole days from `now` until `not_after` (floor; negative once passed).
pub fn days_until(not_after: i64, now: OffsetDateTime) -> i64 {
    (not_after - now.unix_timestamp()).div_euclid(86_400)
}

impl Control {
    /// Set who owns a certificate (`kind` "certificate") or trust anchor ("trust-anchor") and
    /// whom to tell; `None` keeps a field, `Some("")` clears it.
    pub async fn set_owner(
        &self,
        kind: &str,
        name: &str,
        owner: Option<&str>,
        contact: Option<&str>,
    ) -> Result<(), ControlError> {
        if let Some(o) = owner {
            check_owner(o)?;
        }
        let contact = contact.map(parse_contact).transpose()?;
        if owner.is_none() && contact.is_none() {
            return Err(ControlError::usage(
                "usage",
                "nothing to change: neither an owner nor a contact was given",
                "give the owner, the contact, or both (an empty value clears one)",
            ));
        }
        let store_kind = if kind == "certificate" { "certificate" } else { "anchor" };
        let action = if kind == "certificate" { "cert.owner" } else { "trust.owner" };
        let detail = format!(
            "owner {}; contact {}",
            owner.map(|o| format!("'{}'", o.trim())).unwrap_or_else(|| "kept".into()),
            contact.as_ref().map(|c| format!("'{c}'")).unwrap_or_else(|| "kept".into())
        );
        let change = self.change(action, name, detail);
        let mut tx = self.store.begin_change().await?;
        tx.set_owner(store_kind, name, owner.map(str::trim), contact.as_deref()).await.map_err(|e| match e {
            crate::store::StoreError::NotFound(what) => ControlError::NotFound {
                what,
                hint: if kind == "certificate" {
                    Remedy::with("check the name against the list of certificates", Action::ListCertificates)
                } else {
                    Remedy::with("check the name against the list of trust anchors", Action::ListTrustAnchors)
                },
            },
            other => other.into(),
        })?;
        tx.commit(std::slice::from_ref(&change)).await?;
        Ok(())
    }

    /// Everything that expires within `within_days` (expired ones included), soonest first.
    pub async fn expiry(&self, within_days: i64) -> Result<ExpiryReport, ControlError> {
        let now = self.now();
        let mut items = self.expiring_items(now).await?;
        items.retain(|i| i.days_left <= within_days || i.not_after_unix <= now.unix_timestamp());
        items.sort_by(|a, b| (a.not_after_unix, a.kind, &a.name).cmp(&(b.not_after_unix, b.kind, &b.name)));
        Ok(ExpiryReport { now: rfc3339(now), within_days, items })
    }

    /// Every certificate, anchor certificate and partner certificate with its expiry.
    pub async fn expiring_items(&self, now: OffsetDateTime) -> Result<Vec<ExpiryItem>, ControlError> {
        let mut items = Vec::new();
        for rec in self.store.certificates().await? {
            let Ok(leaf) = crate::pki::facts::read(&rec.leaf_der) else { continue };
            let days = days_until(leaf.not_after.unix_timestamp(), now);
            let pending = self.store.requests().await?.iter().any(|r| r.name == rec.name);
            items.push(ExpiryItem {
                kind: "certificate",
                name: rec.name.to_string(),
                subject: leaf.subject.clone(),
                issuer: leaf.issuer.clone(),
                id: rec.id.to_string(),
                not_after: rfc3339(leaf.not_after),
                days_left: days,
                status: status(days),
                owner: rec.owner.clone(),
                contact: rec.contact.clone(),
                action: if pending {
                    format!("a renewal request for '{}' is pending: complete it with the issued certificate", rec.name)
                } else {
                    format!(
                        "renew '{}': request a new certificate (the key is made inside certgate) and complete it, or rotate it with a new file",
                        rec.name
                    )
                },
                loud: false,
                not_after_unix: leaf.not_after.unix_timestamp(),
            });
        }
        for rec in self.store.anchors().await? {
            for c in read_stored(&rec.certs_der) {
                let days = days_until(c.not_after.unix_timestamp(), now);
                items.push(ExpiryItem {
                    kind: "trust-anchor",
                    name: rec.name.clone(),
                    subject: c.subject.clone(),
                    issuer: c.issuer.clone(),
                    id: c.id.to_string(),
                    not_after: rfc3339(c.not_after),
                    days_left: days,
                    status: status(days),
                    owner: rec.owner.clone(),
                    contact: rec.contact.clone(),
                    action: format!(
                        "get the partner's new CA certificate and add it as a trust anchor beside '{}' before this one expires",
                        rec.name
                    ),
                    loud: false,
                    not_after_unix: c.not_after.unix_timestamp(),
                });
            }
        }
        for p in self.store.partner_certificates().await? {
            let days = days_until(p.not_after, now);
            let loud = p.trust == "pin" || p.trust == "self-signed-anchor";
            items.push(ExpiryItem {
                kind: "partner-certificate",
                name: p.destination.clone(),
                subject: p.subject.clone(),
                issuer: p.issuer.clone(),
                id: p.pin.clone(),
                not_after: rfc3339_unix(p.not_after),
                days_left: days,
                status: status(days),
                owner: None,
                contact: None,
                action: match p.trust.as_str() {
                    "pin" => format!(
                        "the partner at {} is trusted by a pin: when it renews, calls fail until the binding's pin is replaced; ask the partner for the new certificate's pin now",
                        p.destination
                    ),
                    "self-signed-anchor" => format!(
                        "the partner at {} is trusted by a self-signed certificate as anchor: when it renews, calls fail until the new one is added as a trust anchor; ask the partner for it now",
                        p.destination
                    ),
                    _ => format!("the partner at {} renews its own certificate; nothing to do unless its CA changes", p.destination),
                },
                loud,
                not_after_unix: p.not_after,
            });
        }
        Ok(items)
    }
}
