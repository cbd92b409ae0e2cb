//! The configuration file (TOML). Unknown keys are refused so that a typo is not silently
//! ignored. See `docs/certgate.example.toml`.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::control::ControlError;

/// (`Debug` by hand: `store` may carry a password.)
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// Data directory (SQLite store and master key file).
    pub data_dir: Option<PathBuf>,
    /// Store URL: sqlite://PATH or postgres://...
    pub store: Option<String>,
    /// File holding the master key (base64 of 32 bytes).
    pub master_key_file: Option<PathBuf>,
    /// `text` (default) or `json`: the log lines' format (flag --log-format).
    pub log_format: Option<super::LogFormat>,
    /// The gateway (`certgate serve`, `certgate call`).
    #[serde(default)]
    pub gateway: GatewayConfig,
    /// Expiry alerts: thresholds and channels.
    #[serde(default)]
    pub alerts: AlertsConfig,
    /// Hidden, for tests: a fixed "now" (RFC 3339) for expiry and alerts.
    pub test_now: Option<String>,
}

pub use crate::control::AlertsConfig;

/// A fixed "now" for tests: RFC 3339.
pub fn parse_now(text: &str) -> Result<time::OffsetDateTime, ControlError> {
    time::OffsetDateTime::parse(text.trim(), &time::format_description::well_known::Rfc3339).map_err(|e| {
        ControlError::usage("usage", format!("'{text}' is not an RFC 3339 time: {e}"), "e.g. 2030-01-31T12:00:00Z")
    })
}

impl std::fmt::Debug for ConfigFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfigFile")
            .field("data_dir", &self.data_dir)
            .field("store", &self.store.as_deref().map(crate::control::StoreUrl::redact_text))
            .field("master_key_file", &self.master_key_file)
            .field("gateway", &self.gateway)
            .finish()
    }
}

/// `[gateway]`: listeners, limits, and what to do with unbound hosts.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GatewayConfig {
    pub proxy_listen: Option<String>,
    pub admin_listen: Option<String>,
    /// Unbound hosts get plain TLS without a client certificate instead of 403 no-binding.
    pub allow_unbound: bool,
    pub connect_timeout_ms: u64,
    pub handshake_timeout_ms: u64,
    pub response_header_timeout_ms: u64,
    pub idle_timeout_ms: u64,
    pub reload_interval_ms: u64,
    /// Open application connections, per listener; more get 503 too-many-connections.
    pub max_connections: usize,
    /// Open connections from one client IP address, per listener.
    pub max_connections_per_client: usize,
    /// The request line and headers must arrive within this (408 request-timeout).
    pub header_read_timeout_ms: u64,
    /// An application connection idle between requests is closed after this.
    pub keep_alive_timeout_ms: u64,
    /// The longest pause while a request body arrives (408 request-timeout).
    pub body_read_timeout_ms: u64,
    /// The largest request head (431 headers-too-large).
    pub max_header_bytes: usize,
    /// Idle partner connections kept per route and partner, per proxy worker (0: none).
    pub max_idle_per_host: usize,
    /// The longest pause while a partner's response body arrives; then the response is cut.
    pub response_body_timeout_ms: u64,
    /// The largest response head a partner may send (502 upstream-connect-failed).
    pub max_response_header_bytes: usize,
    pub shutdown_grace_ms: u64,
    /// Static host -> IP overrides, like curl --resolve.
    pub resolve: std::collections::HashMap<String, std::net::IpAddr>,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            proxy_listen: None,
            admin_listen: None,
            allow_unbound: false,
            connect_timeout_ms: 5_000,
            handshake_timeout_ms: 10_000,
            response_header_timeout_ms: 30_000,
            idle_timeout_ms: 90_000,
            reload_interval_ms: 250,
            max_connections: 4096,
            max_connections_per_client: 1024,
            header_read_timeout_ms: 10_000,
            keep_alive_timeout_ms: 60_000,
            body_read_timeout_ms: 30_000,
            max_header_bytes: 64 * 1024,
            max_idle_per_host: 64,
            response_body_timeout_ms: 60_000,
            max_response_header_bytes: 64 * 1024,
            shutdown_grace_ms: 30_000,
            resolve: Default::default(),
        }
    }
}

impl GatewayConfig {
    pub fn upstream(&self) -> crate::upstream::UpstreamSettings {
        use std::time::Duration;
        crate::upstream::UpstreamSettings {
            connect_timeout: Duration::from_millis(self.connect_timeout_ms),
            handshake_timeout: Duration::from_millis(self.handshake_timeout_ms),
            idle_timeout: Duration::from_millis(self.idle_timeout_ms),
            max_idle_per_host: self.max_idle_per_host,
            response_body_timeout: Duration::from_millis(self.response_body_timeout_ms.max(1)),
            max_response_header_bytes: self.max_response_header_bytes.max(8 * 1024),
            resolve: self.resolve.iter().map(|(k, v)| (k.to_ascii_lowercase(), *v)).collect(),
        }
    }

    pub fn gateway(&self) -> crate::gateway::GatewaySettings {
        use std::time::Duration;
        crate::gateway::GatewaySettings {
            response_header_timeout: Duration::from_millis(self.response_header_timeout_ms),
            reload_interval: Duration::from_millis(self.reload_interval_ms.max(20)),
            clients: crate::gateway::ClientLimits {
                max_connections: self.max_connections.max(1),
                max_connections_per_client: self.max_connections_per_client.max(1),
                header_read_timeout: Duration::from_millis(self.header_read_timeout_ms.max(1)),
                keep_alive_timeout: Duration::from_millis(self.keep_alive_timeout_ms.max(1)),
                body_read_timeout: Duration::from_millis(self.body_read_timeout_ms.max(1)),
                max_header_bytes: self.max_header_bytes.max(1024),
            },
            shutdown_grace: Duration::from_millis(self.shutdown_grace_ms),
            unsafe_open_proxy: false,
        }
    }
}

impl ConfigFile {
    pub fn read(path: &Path) -> Result<Self, ControlError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ControlError::usage(
                "usage",
                format!("cannot read the config file {}: {e}", path.display()),
                "check the --config path",
            )
        })?;
        let file: ConfigFile = toml::from_str(&text).map_err(|e| {
            ControlError::usage(
                "usage",
                format!("the config file {} is not valid: {}", path.display(), e.message()),
                "see docs/certgate.example.toml for the keys certgate knows",
            )
        })?;
        file.gateway.check().map_err(|e| {
            ControlError::usage(
                "usage",
                format!("the config file {} is not valid: {e}", path.display()),
                "see docs/certgate.example.toml for the limits and their defaults",
            )
        })?;
        Ok(file)
    }
}

/// The most connections `max_connections` and `max_connections_per_client` may allow: far
/// beyond any file-descriptor limit, and within what the gateway's counters can hold.
pub const MAX_CONNECTIONS_SETTING: usize = 1 << 24;

impl GatewayConfig {
    /// Values `serve` cannot work with, refused when the file is read rather than at the first
    /// connection. (A `max_connections` over tokio's semaphore limit, about 2.3e18, made `serve`
    /// panic while starting; found while writing the `config` fuzz target.)
    pub fn check(&self) -> Result<(), String> {
        for (key, value) in
            [("max_connections", self.max_connections), ("max_connections_per_client", self.max_connections_per_client)]
        {
            if value > MAX_CONNECTIONS_SETTING {
                return Err(format!("[gateway] {key} = {value} is more than {MAX_CONNECTIONS_SETTING}"));
            }
        }
        Ok(())
    }
}

/// Fuzzing entry point (fuzz target `config`), not part of the API: a config file's text read
/// as `--config` reads it, and everything `serve` derives from it: settings, listen addresses,
/// the listeners' server builder and connection limits, webhook URLs, and the deadlines the
/// gateway computes from its durations.
#[doc(hidden)]
pub fn fuzz_config(text: &str) {
    let Ok(file) = toml::from_str::<ConfigFile>(text) else { return };
    let _ = format!("{file:?}");
    if file.gateway.check().is_err() {
        return;
    }
    let Ok(settings) = super::Settings::combine(file, PathBuf::from("/nonexistent"), None, None, false, "fuzz".into())
    else {
        return;
    };
    let g = &settings.gateway;
    for addr in [&g.proxy_listen, &g.admin_listen].into_iter().flatten() {
        let _ = addr.parse::<std::net::SocketAddr>();
    }
    let gateway = g.gateway();
    let upstream = g.upstream();
    // The durations the gateway adds to `Instant::now()` (the others go to tokio timers,
    // which saturate).
    let now = tokio::time::Instant::now();
    for d in [
        gateway.clients.header_read_timeout,
        gateway.clients.keep_alive_timeout,
        gateway.clients.body_read_timeout,
        upstream.response_body_timeout,
    ] {
        let _ = now + d;
    }
    let _ = gateway.clients.server_builder();
    let _ = crate::gateway::Admission::new(gateway.clients.clone(), "fuzz");
    for hook in settings.alerts.webhooks.values() {
        let _ = url::Url::parse(&hook.url);
    }
    if let Some(c) = &settings.alerts.default_contact {
        let _ = crate::control::parse_contact(c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_config_in_docs_parses_and_sets_every_key() {
        let text = include_str!("../../docs/certgate.example.toml");
        let cfg: ConfigFile = toml::from_str(text).expect("docs/certgate.example.toml must parse");
        assert!(cfg.data_dir.is_some() && cfg.store.is_some() && cfg.master_key_file.is_some());
        assert!(cfg.log_format.is_some());
        assert!(cfg.gateway.proxy_listen.is_some() && cfg.gateway.admin_listen.is_some());
        assert!(!cfg.gateway.resolve.is_empty());
        assert!(cfg.alerts.default_contact.is_some() && !cfg.alerts.webhooks.is_empty());
        let smtp = cfg.alerts.smtp.as_ref().expect("the example sets [alerts.smtp]");
        assert!(smtp.username.is_some() && smtp.password_file.is_some() && smtp.ca_file.is_some());
        cfg.alerts.check().expect("the example's alert settings pass their own checks");
        cfg.gateway.check().expect("the example's limits are accepted");
    }

    /// A connection limit tokio's semaphore cannot hold made `serve` panic while starting.
    #[test]
    fn a_connection_limit_beyond_what_can_be_counted_is_refused_when_the_file_is_read() {
        let dir = std::env::temp_dir().join(format!("certgate-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for (key, ok) in [("max_connections", false), ("max_connections_per_client", false), ("max_connections", true)]
        {
            let value = if ok { MAX_CONNECTIONS_SETTING } else { 9_000_000_000_000_000_000 };
            let path = dir.join("certgate.toml");
            std::fs::write(&path, format!("[gateway]\n{key} = {value}\n")).unwrap();
            match ConfigFile::read(&path) {
                Ok(file) if ok => {
                    let _ = crate::gateway::Admission::new(file.gateway.gateway().clients, "test");
                }
                Ok(_) => panic!("{key} = {value} was accepted"),
                Err(e) => {
                    assert!(!ok, "{key} = {value} refused: {e}");
                    assert!(e.to_string().contains(&format!("{key} = {value} is more than")), "{e}");
                }
            }
        }
        std::fs::remove_dir_all(&dir).ok();
    }
}
