//! Expiry alerts: thresholds and channels from the config file (`[alerts]`).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

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
}

impl Default for AlertsConfig {
    fn default() -> Self {
        AlertsConfig {
            thresholds_days: vec![30, 14, 7, 1, 0],
            interval_seconds: 3600,
            webhooks: BTreeMap::new(),
            default_contact: None,
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
