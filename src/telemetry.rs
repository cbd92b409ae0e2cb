//! Every metric name in one place, and the recording helpers every layer uses. Recording goes
//! through the `metrics` facade; `/metrics` renders the Prometheus exporter's text plus the gauges
//! that come straight from the current route table (so a removed certificate's expiry disappears
//! instead of going stale). Bottom layer: imports no other certgate module.

use std::fmt::Write as _;
use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

pub const REQUESTS_TOTAL: &str = "certgate_requests_total";
pub const REQUEST_DURATION: &str = "certgate_request_duration_seconds";
pub const HANDSHAKE_DURATION: &str = "certgate_upstream_handshake_duration_seconds";
pub const HANDSHAKES_TOTAL: &str = "certgate_upstream_handshakes_total";
/// Full handshakes in which a client certificate was presented, by destination and the
/// certificate the partner's CA names picked among the binding's candidates.
pub const CLIENT_CERTIFICATE_PRESENTED: &str = "certgate_client_certificate_presented_total";
pub const RELOADS_TOTAL: &str = "certgate_reloads_total";
pub const ROUTE_TABLE_REVISION: &str = "certgate_route_table_revision";
pub const STORE_REVISION: &str = "certgate_store_revision";
/// 1 while the store answers the reload task's revision checks, 0 while it does not (the gateway
/// then serves from its last route table and changes are refused).
pub const STORE_UP: &str = "certgate_store_up";
/// Applications' connections refused or cut off, by listener and reason (`too-many-connections`,
/// `request-timeout`, `headers-too-large`, `idle`, `silent`).
pub const CLIENT_CONNECTIONS_CUT: &str = "certgate_client_connections_cut_total";
/// Idle HTTP/1 connections to the proxy whose HTTP state was let go (the socket stays open and
/// the next request on it is served as before; see `gateway/session.rs`).
pub const CLIENT_SESSIONS_RELEASED: &str = "certgate_client_sessions_released_total";
/// Expiry alerts delivered / not delivered, by channel (`webhook`, `email`).
pub const ALERTS_SENT: &str = "certgate_alerts_sent_total";
pub const ALERTS_FAILED: &str = "certgate_alerts_failed_total";
pub const CERTIFICATE_EXPIRY: &str = "certgate_certificate_expiry_timestamp_seconds";
/// When the partner certificate last verified for a destination expires (unix seconds).
pub const PARTNER_CERTIFICATE_EXPIRY: &str = "certgate_partner_certificate_expiry_timestamp_seconds";

const BUCKETS: &[f64] = &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Install the Prometheus recorder once per process (`serve` only).
pub fn install() -> Option<&'static PrometheusHandle> {
    if HANDLE.get().is_none() {
        let handle = PrometheusBuilder::new().set_buckets(BUCKETS).ok()?.install_recorder().ok()?;
        let _ = HANDLE.set(handle);
    }
    HANDLE.get()
}

/// How often `serve` runs [`upkeep`]: between two upkeeps every request's duration is kept as a
/// sample (8 bytes); every 5 s that was about 1 MB at the peak of the 1,000-connection benchmark.
pub const UPKEEP_EVERY: Duration = Duration::from_secs(1);

/// Fold recorded histogram samples into their buckets. Without it the exporter keeps every
/// sample until `/metrics` is scraped, so memory grows with traffic on a node nobody scrapes.
pub fn upkeep() {
    if let Some(h) = HANDLE.get() {
        h.run_upkeep();
    }
}

/// `certgate_requests_total{destination, certificate, app, outcome="ok"}` of one route: each
/// counter (callers without an app, then each app) is registered the first time it counts, so
/// the common request does not build and hash its labels, and a route nobody calls has no series
/// (100,000 bindings: no 100,000 zero lines in `/metrics`, no registry entry each).
/// Boxed on first use: a route nobody calls keeps one pointer, not the counters and their lock.
#[derive(Default)]
pub struct OkCounters(OnceLock<Box<OkCountersInner>>);

#[derive(Default)]
struct OkCountersInner {
    open: OnceLock<metrics::Counter>,
    apps: std::sync::RwLock<foldhash::HashMap<String, metrics::Counter>>,
}

impl OkCounters {
    /// A successful request by `app` (`-` for none) on the route of `destination` presenting
    /// `certificate` (the route's label).
    pub fn record(&self, destination: &str, certificate: &str, app: &str, elapsed: Duration) {
        static OK_DURATION: OnceLock<metrics::Histogram> = OnceLock::new();
        let register = || metrics::counter!(REQUESTS_TOTAL, "destination" => destination.to_string(), "certificate" => certificate.to_string(), "app" => app.to_string(), "outcome" => "ok");
        let this = self.0.get_or_init(Default::default);
        if app == "-" {
            this.open.get_or_init(register).increment(1);
        } else {
            // Counted under the read lock: no handle cloned (and dropped) per request.
            let counted = match this.apps.read().unwrap_or_else(|p| p.into_inner()).get(app) {
                Some(counter) => {
                    counter.increment(1);
                    true
                }
                None => false,
            };
            if !counted {
                let mut apps = this.apps.write().unwrap_or_else(|p| p.into_inner());
                apps.entry(app.to_string()).or_insert_with(register).increment(1);
            }
        }
        OK_DURATION
            .get_or_init(|| metrics::histogram!(REQUEST_DURATION, "outcome" => "ok"))
            .record(elapsed.as_secs_f64());
    }
}

pub fn request(destination: &str, certificate: &str, app: &str, outcome: &str, elapsed: Duration) {
    metrics::counter!(REQUESTS_TOTAL, "destination" => destination.to_string(), "certificate" => certificate.to_string(), "app" => app.to_string(), "outcome" => outcome.to_string())
        .increment(1);
    metrics::histogram!(REQUEST_DURATION, "outcome" => outcome.to_string()).record(elapsed.as_secs_f64());
}

pub fn handshake(resumed: bool, elapsed: Duration) {
    metrics::counter!(HANDSHAKES_TOTAL, "resumed" => if resumed { "true" } else { "false" }).increment(1);
    metrics::histogram!(HANDSHAKE_DURATION).record(elapsed.as_secs_f64());
}

pub fn client_certificate_presented(destination: &str, certificate: &str) {
    metrics::counter!(CLIENT_CERTIFICATE_PRESENTED, "destination" => destination.to_string(), "certificate" => certificate.to_string())
        .increment(1);
}

pub fn connection_cut(listener: &'static str, reason: &'static str) {
    metrics::counter!(CLIENT_CONNECTIONS_CUT, "listener" => listener, "reason" => reason).increment(1);
}

pub fn session_released(listener: &'static str) {
    metrics::counter!(CLIENT_SESSIONS_RELEASED, "listener" => listener).increment(1);
}

pub fn alert_sent(channel: &'static str) {
    metrics::counter!(ALERTS_SENT, "channel" => channel).increment(1);
}

pub fn alert_failed(channel: &'static str) {
    metrics::counter!(ALERTS_FAILED, "channel" => channel).increment(1);
}

pub fn partner_expiry(destination: &str, not_after: i64) {
    metrics::gauge!(PARTNER_CERTIFICATE_EXPIRY, "destination" => destination.to_string()).set(not_after as f64);
}

pub fn store_up(up: bool) {
    metrics::gauge!(STORE_UP).set(if up { 1.0 } else { 0.0 });
}

pub fn reload(result: &'static str) {
    metrics::counter!(RELOADS_TOTAL, "result" => result).increment(1);
}

/// What `/metrics` shows of the route table in use.
pub struct TableGauges<'a> {
    pub revision: i64,
    /// (certificate name, expiry in unix seconds)
    pub certificate_expiry: &'a [(crate::model::CertificateName, i64)],
}

/// The Prometheus text: recorded metrics, then the table's gauges.
pub fn render(table: Option<TableGauges<'_>>, store_revision: Option<i64>) -> String {
    let mut out = HANDLE.get().map(|h| h.render()).unwrap_or_default();
    if let Some(t) = table {
        let _ = writeln!(out, "# HELP {ROUTE_TABLE_REVISION} Store revision of the route table in use.");
        let _ = writeln!(out, "# TYPE {ROUTE_TABLE_REVISION} gauge");
        let _ = writeln!(out, "{ROUTE_TABLE_REVISION} {}", t.revision);
        if !t.certificate_expiry.is_empty() {
            let _ = writeln!(out, "# HELP {CERTIFICATE_EXPIRY} When each client certificate expires (unix seconds).");
            let _ = writeln!(out, "# TYPE {CERTIFICATE_EXPIRY} gauge");
            for (name, at) in t.certificate_expiry {
                let _ = writeln!(out, "{CERTIFICATE_EXPIRY}{{certificate=\"{name}\"}} {at}");
            }
        }
    }
    if let Some(r) = store_revision {
        let _ = writeln!(out, "# HELP {STORE_REVISION} Newest store revision this node has seen.");
        let _ = writeln!(out, "# TYPE {STORE_REVISION} gauge");
        let _ = writeln!(out, "{STORE_REVISION} {r}");
    }
    out
}
