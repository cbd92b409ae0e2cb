//! The partner certificates the gateway verified: kept per destination in memory (with the
//! `certgate_partner_certificate_expiry_timestamp_seconds` gauge), written to the store when one
//! is first seen or changes, and otherwise at most once an hour, so `certgate expiry`, the API,
//! the console and the alert loop of any node see them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::model::Pin;
use crate::store::PartnerRecord;
use crate::upstream::{PartnerObserver, PartnerSeen};

use super::{Control, ControlError};

/// An unchanged partner certificate is written again (its `seen_at`) at most this often.
pub const PARTNER_REWRITE: Duration = Duration::from_secs(3600);

struct Entry {
    /// SHA-256 of the leaf DER and the trust it was met with: what "unchanged" compares.
    key: ([u8; 32], bool, Arc<str>),
    rec: PartnerRecord,
    written: Option<Instant>,
    /// The last handshake that showed it: an unchanged certificate is written again only when
    /// it was seen since the last write (so `seen_at` stays true for partners no longer called).
    last_seen: Instant,
}

/// Fed by every route's connector (`upstream::PartnerObserver`); drained by [`Self::run`].
#[derive(Default)]
pub struct PartnerRegistry {
    seen: Mutex<HashMap<String, Entry>>,
    wake: tokio::sync::Notify,
}

/// How a partner is trusted, for `certgate expiry`: `pin` and `self-signed-anchor` break the
/// day the partner renews, so they are shown loudest.
fn trust_kind(pinned: bool, self_signed: bool, policy: &str) -> &'static str {
    if pinned {
        "pin"
    } else if self_signed {
        "self-signed-anchor"
    } else if policy == "public" {
        "public"
    } else {
        "anchor"
    }
}

impl PartnerObserver for PartnerRegistry {
    fn seen(&self, p: &PartnerSeen<'_>) {
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, p.leaf_der);
        let mut hash = [0u8; 32];
        hash.copy_from_slice(digest.as_ref());
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(e) = seen.get_mut(p.destination) {
            if e.key.0 == hash && e.key.1 == p.pinned && &*e.key.2 == p.trust {
                e.last_seen = Instant::now();
                if e.written.is_some_and(|w| w.elapsed() >= PARTNER_REWRITE) {
                    self.wake.notify_one();
                }
                return;
            }
        }
        let Ok(leaf) = crate::pki::facts::read(p.leaf_der) else { return };
        let Ok((_, x509)) = x509_parser::parse_x509_certificate(p.leaf_der) else { return };
        let pin = Pin::of_spki(x509.public_key().raw).to_string();
        let not_after = leaf.not_after.unix_timestamp();
        crate::telemetry::partner_expiry(p.destination, not_after);
        let rec = PartnerRecord {
            destination: p.destination.to_string(),
            subject: leaf.subject.clone(),
            issuer: leaf.issuer.clone(),
            not_after,
            pin,
            trust: trust_kind(p.pinned, leaf.self_signed, p.trust).to_string(),
            seen_at: 0,
        };
        let entry = Entry { key: (hash, p.pinned, Arc::from(p.trust)), rec, written: None, last_seen: Instant::now() };
        seen.insert(p.destination.to_string(), entry);
        drop(seen);
        self.wake.notify_one();
    }
}

impl PartnerRegistry {
    /// Write what is new, changed, or last written an hour ago. Returns how many were written.
    pub async fn flush(&self, control: &Control) -> Result<usize, ControlError> {
        let due: Vec<PartnerRecord> = {
            let seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
            seen.values()
                .filter(|e| e.written.is_none_or(|w| w.elapsed() >= PARTNER_REWRITE && e.last_seen > w))
                .map(|e| e.rec.clone())
                .collect()
        };
        let now = control.now().unix_timestamp();
        let mut written = 0;
        for mut rec in due {
            rec.seen_at = now;
            control.store.record_partner(&rec).await?;
            written += 1;
            let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(e) = seen.get_mut(&rec.destination) {
                // Unless it changed meanwhile (then it is written at the next wake-up).
                if e.rec.pin == rec.pin && e.rec.not_after == rec.not_after && e.rec.trust == rec.trust {
                    e.written = Some(Instant::now());
                }
            }
        }
        Ok(written)
    }

    /// `serve`'s task: write partner certificates as they are seen (a failed write is retried
    /// a minute later; the gateway never waits for it). It starts by filling the gauge from the
    /// store, so a node that restarts (or has not called a partner yet) still exports when each
    /// recorded partner certificate expires; a handshake then replaces the value.
    pub async fn run(self: Arc<Self>, control: Arc<Control>) {
        match control.store.partner_certificates().await {
            Ok(stored) => {
                let seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
                for rec in stored.iter().filter(|r| !seen.contains_key(&r.destination)) {
                    crate::telemetry::partner_expiry(&rec.destination, rec.not_after);
                }
            }
            Err(e) => tracing::warn!("recorded partner certificates could not be read for the expiry gauge: {e}"),
        }
        loop {
            let _ = tokio::time::timeout(Duration::from_secs(60), self.wake.notified()).await;
            if let Err(e) = self.flush(&control).await {
                tracing::warn!("partner certificates could not be recorded: {e}");
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn pins_and_self_signed_leaves_are_the_loud_kinds() {
        assert_eq!(super::trust_kind(true, true, "public"), "pin");
        assert_eq!(super::trust_kind(false, true, "ca:partner"), "self-signed-anchor");
        assert_eq!(super::trust_kind(false, false, "public"), "public");
        assert_eq!(super::trust_kind(false, false, "private"), "anchor");
    }
}
