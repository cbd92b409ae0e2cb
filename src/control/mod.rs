//! The one mutation path. The CLI, the admin API, the console and `apply` all call these
//! functions, which validate, seal, write in one transaction with the audit row, and bump the
//! store revision. Reads go through here too so that every interface shows the same facts.

mod access;
mod alerts;
mod apply;
mod bindings;
mod certificates;
mod copy;
mod document;
mod error;
mod expiry;
#[doc(hidden)]
pub mod fuzz;
mod mendix;
mod notify;
mod open;
mod partners;
mod renewal;
mod routes;
mod trust;
pub mod views;

pub use crate::store::StoreUrl;
pub use access::{hashes_equal, secret_hash, AppView, NewApp, NewToken, Principal, Role, TokenView};
pub use alerts::{
    channels, due_alerts, AlertState, AlertStatus, AlertsConfig, Channel, Delivery, DueAlert, WebhookConfig,
};
pub use apply::{ApplyInput, PlanView, Prepared, Sources, Step, StepAction, Summary};
pub use bindings::{split_candidates, BindRequest, BindingView, ServiceView};
pub use certificates::{to_pem, ExportFormat, ImportRequest, InputFile};
pub use copy::{copy_store, CopiedCertificate, CopyCount, CopyOptions, CopyReport};
pub use document::{AnchorDecl, AppDecl, BindingDecl, CertificateDecl, Document, Format, ServiceDecl};
pub use error::{validate_name, ControlError};
pub use expiry::{days_until, owner_fields, parse_contact, parse_window, ExpiryItem, ExpiryReport};
pub use mendix::{parse_usages, MendixOptions, MendixSettings};
pub use notify::{signature, SmtpConfig, SmtpSecurity};
pub use open::{MasterKeySource, OpenOptions, Redacted};
pub use partners::{PartnerRegistry, PARTNER_REWRITE};
pub use renewal::{CertificateRequest, RequestView};

use time::OffsetDateTime;

use crate::pki::{facts, CertFacts, Origin, Pool};
use crate::store::{Change, MasterKey, Store};

tokio::task_local! {
    /// Who is acting in this task, when it is not the process's own actor: the admin API runs
    /// each request inside `ACTOR.scope("api:TOKEN-NAME", ...)` so the audit log names the token.
    pub static ACTOR: String;
}

/// The store, opened and unlocked, plus who is acting.
pub struct Control {
    store: Store,
    key: std::sync::Arc<MasterKey>,
    actor: String,
    now: std::sync::Arc<dyn Fn() -> OffsetDateTime + Send + Sync>,
}

impl Control {
    pub fn actor(&self) -> &str {
        &self.actor
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Stand at another moment (tests of expiry warnings).
    pub fn with_clock(mut self, now: impl Fn() -> OffsetDateTime + Send + Sync + 'static) -> Self {
        self.now = std::sync::Arc::new(now);
        self
    }

    /// Stand still at `at` (tests; `certgate` itself only through the hidden `now` setting).
    pub fn with_fixed_now(self, at: OffsetDateTime) -> Self {
        self.with_clock(move || at)
    }

    pub fn now(&self) -> OffsetDateTime {
        (self.now)()
    }

    fn change(&self, action: &str, target: &str, detail: impl Into<String>) -> Change {
        Change {
            actor: ACTOR.try_with(|a| a.clone()).unwrap_or_else(|_| self.actor.clone()),
            action: action.to_string(),
            target: target.to_string(),
            detail: detail.into(),
        }
    }

    pub async fn revision(&self) -> Result<i64, ControlError> {
        Ok(self.store.revision().await?)
    }

    /// Every CA certificate the store knows, for completing chains: the named certificate's
    /// own chain first (so it is credited), then other certificates' chains, then anchors.
    async fn pool(&self, own: Option<(&str, &[CertFacts])>) -> Result<Pool, ControlError> {
        let mut pool = Pool::default();
        if let Some((_, chain)) = own {
            for c in chain {
                pool.add(c.clone(), Origin::Own);
            }
        }
        for rec in self.store.certificates().await? {
            if own.is_some_and(|(n, _)| rec.name == n) {
                continue;
            }
            for der in &rec.chain_der {
                if let Ok(f) = facts::read(der) {
                    pool.add(f, Origin::Certificate(rec.name.to_string()));
                }
            }
        }
        for anchor in self.store.anchors().await? {
            for der in &anchor.certs_der {
                if let Ok(f) = facts::read(der) {
                    pool.add(f, Origin::Anchor(anchor.name.clone()));
                }
            }
        }
        Ok(pool)
    }

    pub async fn close(&self) {
        self.store.close().await;
    }
}

/// Read DER certificates that certgate itself stored.
fn read_stored(ders: &[Vec<u8>]) -> Vec<CertFacts> {
    ders.iter().filter_map(|d| facts::read(d).ok()).collect()
}
