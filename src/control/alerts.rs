//! Expiry alerts: thresholds and channels from the config file (`[alerts]`), and one run of
//! the alert loop `serve` keeps: what is due, claimed in the store, sent, marked sent or failed.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use zeroize::Zeroizing;

use crate::store::AlertRecord;

use super::expiry::ExpiryItem;
use super::notify::{self, SmtpConfig};
use super::views::rfc3339_unix;
use super::{Control, ControlError};

/// A `sending` claim older than this is taken to belong to a node that died while sending.
const STALE_CLAIM_SECONDS: i64 = 600;
/// The first retry after a failure; doubled per attempt up to [`MAX_BACKOFF_SECONDS`].
const FIRST_BACKOFF_SECONDS: i64 = 60;
const MAX_BACKOFF_SECONDS: i64 = 6 * 3600;

/// `[alerts]` in the config file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertsConfig {
    /// Days before expiry at which each certificate and anchor announces itself (0 = on expiry).
    pub thresholds_days: Vec<i64>,
    /// How often `serve` looks for alerts to send.
    pub interval_seconds: u64,
    /// Named webhooks (`webhook:NAME` in a contact).
    pub webhooks: BTreeMap<String, WebhookConfig>,
    /// Where items without a contact (and partner certificates) are announced.
    pub default_contact: Option<String>,
    /// `[alerts.smtp]`: the mail server for contacts that are e-mail addresses.
    pub smtp: Option<SmtpConfig>,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        AlertsConfig {
            thresholds_days: vec![30, 14, 7, 1, 0],
            interval_seconds: 300,
            webhooks: BTreeMap::new(),
            default_contact: None,
            smtp: None,
        }
    }
}

/// `[alerts.webhooks.NAME]`: a JSON POST, signed with HMAC-SHA256 when a secret is set.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    pub url: String,
    /// Environment variable holding the signing secret.
    pub secret_env: Option<String>,
    /// File holding the signing secret.
    pub secret_file: Option<PathBuf>,
}

impl WebhookConfig {
    /// The signing secret, read now from the variable or file the config names.
    pub fn secret(&self, name: &str) -> Result<Option<Zeroizing<Vec<u8>>>, String> {
        if let Some(var) = &self.secret_env {
            return match std::env::var(var) {
                Ok(v) if !v.is_empty() => Ok(Some(Zeroizing::new(v.into_bytes()))),
                _ => Err(format!("the webhook '{name}' takes its secret from the variable {var}, which is not set")),
            };
        }
        if let Some(path) = &self.secret_file {
            let text = std::fs::read_to_string(path).map_err(|e| {
                format!("the webhook '{name}' takes its secret from {}, which cannot be read: {e}", path.display())
            })?;
            let secret = text.trim_end_matches(['\r', '\n']);
            if secret.is_empty() {
                return Err(format!("the secret file {} of the webhook '{name}' is empty", path.display()));
            }
            return Ok(Some(Zeroizing::new(secret.as_bytes().to_vec())));
        }
        Ok(None)
    }
}

/// One place an alert goes: `webhook:NAME` or an e-mail address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Channel {
    Webhook(String),
    Email(String),
}

impl Channel {
    /// The `channel` label of the alert metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Channel::Webhook(_) => "webhook",
            Channel::Email(_) => "email",
        }
    }

    pub fn label(&self) -> String {
        match self {
            Channel::Webhook(n) => format!("webhook:{n}"),
            Channel::Email(a) => a.clone(),
        }
    }
}

/// The channels of a contact text (already checked by `parse_contact`).
pub fn channels(contact: &str) -> Vec<Channel> {
    contact
        .split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .map(|e| match e.strip_prefix("webhook:") {
            Some(n) => Channel::Webhook(n.to_string()),
            None => Channel::Email(e.to_string()),
        })
        .collect()
}

/// An item that crossed a threshold: the smallest threshold at or above its days left (so a
/// certificate first seen 5 days before expiry gets the 7-day alert, not 30 and 14 as well).
#[derive(Clone, Debug)]
pub struct DueAlert {
    pub item: String,
    pub threshold: i64,
    pub entry: ExpiryItem,
}

pub fn due_alerts(items: Vec<ExpiryItem>, thresholds: &[i64]) -> Vec<DueAlert> {
    let mut out = Vec::new();
    for entry in items {
        let Some(threshold) = thresholds.iter().copied().filter(|t| entry.days_left <= *t).min() else { continue };
        let prefix = match entry.kind {
            "certificate" => "certificate",
            "trust-anchor" => "anchor",
            _ => "partner",
        };
        out.push(DueAlert { item: format!("{prefix}:{}:{}", entry.name, entry.id), threshold, entry });
    }
    out
}

/// The message: `text` is what Slack and Teams incoming webhooks display.
pub fn message(due: &DueAlert) -> serde_json::Value {
    let e = &due.entry;
    let kind = e.kind.replace('-', " ");
    let when = match e.days_left {
        d if d < 0 => format!("expired on {}", e.not_after),
        0 => format!("expires today ({})", e.not_after),
        1 => format!("expires tomorrow ({})", e.not_after),
        d => format!("expires in {d} days ({})", e.not_after),
    };
    let owner = e.owner.as_deref().map(|o| format!(" Owner: {o}.")).unwrap_or_default();
    let text = format!("certgate: the {kind} '{}' ({}) {when}.{owner} {}", e.name, e.subject, e.action);
    let short = match e.days_left {
        d if d < 0 => "has expired".to_string(),
        0 => "expires today".to_string(),
        1 => "expires tomorrow".to_string(),
        d => format!("expires in {d} days"),
    };
    let loud = if e.loud { "[act now] " } else { "" };
    let title = format!("{loud}certgate: {kind} '{}' {short}", e.name);
    serde_json::json!({
        "title": title,
        "text": text,
        "kind": e.kind,
        "name": e.name,
        "subject": e.subject,
        "issuer": e.issuer,
        "id": e.id,
        "not_after": e.not_after,
        "days_left": e.days_left,
        "threshold_days": due.threshold,
        "status": e.status,
        "owner": e.owner,
        "action": e.action,
        "item": due.item,
        "test": false,
    })
}

/// The subject and plain-text body of the mail for a message made by [`message`] (or a test).
pub fn mail_text(body: &serde_json::Value) -> (String, String) {
    let field = |k: &str| body.get(k).and_then(|v| v.as_str()).unwrap_or("").to_string();
    let text = field("text");
    let mut subject = field("title");
    if subject.is_empty() {
        subject = "certgate: expiry alert".into();
    }
    if body.get("test").and_then(|v| v.as_bool()) == Some(true) {
        return (subject, format!("{text}\n"));
    }
    let mut out = format!("{text}\n\n");
    let rows = [
        ("Kind", field("kind").replace('-', " ")),
        ("Name", field("name")),
        ("Subject", field("subject")),
        ("Issuer", field("issuer")),
        ("Not after", field("not_after")),
        ("Days left", body.get("days_left").map(|v| v.to_string()).unwrap_or_default()),
        ("Owner", body.get("owner").and_then(|v| v.as_str()).unwrap_or("(none)").to_string()),
        ("What to do", field("action")),
    ];
    for (k, v) in rows {
        out.push_str(&format!("{:<12}{v}\n", format!("{k}:")));
    }
    out.push_str(&format!(
        "\n-- \ncertgate expiry alert {} at the {}-day threshold; it is sent once.\n",
        field("item"),
        body.get("threshold_days").map(|v| v.to_string()).unwrap_or_default()
    ));
    (subject, out)
}

/// What the alert loop shows in `/readyz`.
#[derive(Clone, Debug, Default, Serialize)]
pub struct AlertState {
    /// When the last run ended (RFC 3339, system clock).
    pub last_run_at: Option<String>,
    pub last_run_error: Option<String>,
    /// Alerts this node sent / failed to send since it started.
    pub sent: u64,
    pub failed: u64,
    /// Alerts whose last attempt failed (any node), with the error and the next attempt.
    pub failing: Vec<FailingAlert>,
}

#[derive(Clone, Debug, Serialize)]
pub struct FailingAlert {
    pub item: String,
    pub threshold_days: i64,
    pub attempts: i64,
    pub error: Option<String>,
    pub next_attempt_at: String,
}

/// Shared between the alert loop and `/readyz`.
#[derive(Default)]
pub struct AlertStatus(Mutex<AlertState>);

impl AlertStatus {
    pub fn get(&self) -> AlertState {
        self.0.lock().map(|s| s.clone()).unwrap_or_default()
    }

    fn update(&self, f: impl FnOnce(&mut AlertState)) {
        if let Ok(mut s) = self.0.lock() {
            f(&mut s);
        }
    }
}

fn wall_now() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

/// How one delivery went, per channel.
pub struct Delivery {
    pub channel: Channel,
    pub result: Result<(), String>,
}

/// Send `body` on one channel.
pub async fn deliver(cfg: &AlertsConfig, channel: &Channel, body: &serde_json::Value) -> Result<(), String> {
    match channel {
        Channel::Webhook(name) => {
            let hook = cfg
                .webhooks
                .get(name)
                .ok_or_else(|| format!("the webhook '{name}' is not configured ([alerts.webhooks.{name}])"))?;
            let secret = hook.secret(name)?;
            let bytes = serde_json::to_vec(body).map_err(|e| e.to_string())?;
            notify::post_webhook(&hook.url, bytes, secret.as_deref().map(|s| s.as_slice()))
                .await
                .map_err(|e| format!("webhook '{name}': {e}"))
        }
        Channel::Email(addr) => {
            let smtp = cfg.smtp.as_ref().ok_or_else(|| {
                format!("cannot mail {addr}: no mail server is configured (add [alerts.smtp] to the config file)")
            })?;
            smtp.check()?;
            let (subject, text) = mail_text(body);
            notify::send_mail(smtp, addr, &subject, text).await.map_err(|e| format!("mail to {addr}: {e}"))
        }
    }
}

impl AlertsConfig {
    /// Refuse a channel set-up that cannot work (checked when `serve` and `alert test` start).
    pub fn check(&self) -> Result<(), ControlError> {
        if let Some(smtp) = &self.smtp {
            smtp.check().map_err(|e| {
                ControlError::usage("usage", e, "fix [alerts.smtp] in the config file (see docs/certgate.example.toml)")
            })?;
        }
        if let Some(c) = &self.default_contact {
            super::expiry::parse_contact(c)?;
        }
        Ok(())
    }
}

impl Control {
    /// One run of the alert loop: every due (item, threshold) not yet sent is claimed in the
    /// store (one change, so only one node wins), sent on every channel of its contact (or the
    /// default contact), then marked sent or failed (retried with backoff); each is audited.
    pub async fn run_alerts(&self, cfg: &AlertsConfig, node: &str, status: &AlertStatus) -> Result<(), ControlError> {
        // What this run sent and failed is shown with the failing list read after it, in one
        // update: `/readyz` never shows a failure counted whose alert is not listed yet.
        let mut tally = (0, 0);
        let result = self.alert_pass(cfg, node, &mut tally).await;
        let failing = self.store.alerts().await.ok().map(|rows| {
            rows.into_iter()
                .filter(|r| r.state == "failed")
                .map(|r| FailingAlert {
                    item: r.item,
                    threshold_days: r.threshold,
                    attempts: r.attempts,
                    error: r.last_error,
                    next_attempt_at: rfc3339_unix(r.next_attempt_at),
                })
                .collect::<Vec<_>>()
        });
        status.update(|s| {
            s.sent += tally.0;
            s.failed += tally.1;
            s.last_run_at = Some(rfc3339_unix(wall_now()));
            s.last_run_error = result.as_ref().err().map(|e| e.to_string());
            if let Some(f) = failing {
                s.failing = f;
            }
        });
        result
    }

    /// `tally`: alerts sent and failed by this pass, counted as they go (kept if the pass fails).
    async fn alert_pass(&self, cfg: &AlertsConfig, node: &str, tally: &mut (u64, u64)) -> Result<(), ControlError> {
        let items = self.expiring_items(self.now()).await?;
        let due = due_alerts(items, &cfg.thresholds_days);
        if due.is_empty() {
            return Ok(());
        }
        let known: HashMap<(String, i64), AlertRecord> =
            self.store.alerts().await?.into_iter().map(|r| ((r.item.clone(), r.threshold), r)).collect();
        for alert in due {
            let now = wall_now();
            let prior = known.get(&(alert.item.clone(), alert.threshold));
            let claimable = match prior {
                None => true,
                Some(r) if r.state == "failed" => r.next_attempt_at <= now,
                Some(r) if r.state == "sending" => r.claimed_at < now - STALE_CLAIM_SECONDS,
                Some(_) => false,
            };
            if !claimable {
                continue;
            }
            let contact = alert.entry.contact.clone().or_else(|| cfg.default_contact.clone()).unwrap_or_default();
            let targets = channels(&contact);
            if targets.is_empty() {
                // Nobody to tell: `certgate expiry` still lists it.
                continue;
            }
            let rec = AlertRecord {
                item: alert.item.clone(),
                threshold: alert.threshold,
                kind: alert.entry.kind.to_string(),
                name: alert.entry.name.clone(),
                state: "sending".into(),
                attempts: 0,
                next_attempt_at: now,
                last_error: None,
                node: node.to_string(),
                claimed_at: now,
                sent_at: None,
            };
            let mut tx = self.store.begin_change().await?;
            if !tx.claim_alert(&rec, now - STALE_CLAIM_SECONDS).await? {
                drop(tx);
                continue;
            }
            let claim = self.change(
                "alert.claim",
                &alert.item,
                format!(
                    "{}-day alert for {} '{}' claimed by {node}",
                    alert.threshold, alert.entry.kind, alert.entry.name
                ),
            );
            tx.commit(std::slice::from_ref(&claim)).await?;

            let body = message(&alert);
            let mut errors = Vec::new();
            let mut sent_to = Vec::new();
            for channel in &targets {
                match deliver(cfg, channel, &body).await {
                    Ok(()) => {
                        crate::telemetry::alert_sent(channel.kind());
                        sent_to.push(channel.label());
                    }
                    Err(e) => {
                        crate::telemetry::alert_failed(channel.kind());
                        errors.push(e);
                    }
                }
            }
            let done = wall_now();
            let (outcome, change) = if errors.is_empty() {
                tally.0 += 1;
                (
                    Ok(done),
                    self.change(
                        "alert.sent",
                        &alert.item,
                        format!("{}-day alert sent to {}", alert.threshold, sent_to.join(", ")),
                    ),
                )
            } else {
                tally.1 += 1;
                let attempts = prior.map(|r| r.attempts).unwrap_or(0).clamp(0, 20) as u32;
                let backoff = (FIRST_BACKOFF_SECONDS << attempts).min(MAX_BACKOFF_SECONDS);
                let error = errors.join("; ");
                (
                    Err((error.clone(), done + backoff)),
                    self.change(
                        "alert.failed",
                        &alert.item,
                        format!("{}-day alert not delivered (retry in {backoff} s): {error}", alert.threshold),
                    ),
                )
            };
            let mut tx = self.store.begin_change().await?;
            tx.finish_alert(&alert.item, alert.threshold, outcome).await?;
            tx.commit(std::slice::from_ref(&change)).await?;
        }
        Ok(())
    }

    /// `certgate alert test`: a test message on every configured channel (each webhook, the
    /// default contact's channels, and with a mail server but no e-mail address among them, a
    /// mail to the sender address itself); one result per channel.
    pub async fn test_alerts(&self, cfg: &AlertsConfig) -> Vec<Delivery> {
        let mut targets: Vec<Channel> = cfg.webhooks.keys().map(|n| Channel::Webhook(n.clone())).collect();
        for c in channels(cfg.default_contact.as_deref().unwrap_or("")) {
            if !targets.contains(&c) {
                targets.push(c);
            }
        }
        if let Some(smtp) = &cfg.smtp {
            if !targets.iter().any(|c| matches!(c, Channel::Email(_))) {
                let to = notify::mailbox(&smtp.from).map(|m| m.email.to_string()).unwrap_or_else(|_| smtp.from.clone());
                targets.push(Channel::Email(to));
            }
        }
        let now = rfc3339_unix(self.now().unix_timestamp());
        let body = serde_json::json!({
            "title": "certgate: test message",
            "text": format!("certgate: a test message from 'certgate alert test' at {now}. Expiry alerts will arrive here."),
            "test": true,
        });
        let mut out = Vec::new();
        for channel in targets {
            let result = deliver(cfg, &channel, &body).await;
            out.push(Delivery { channel, result });
        }
        out
    }
}
