//! What operators wire certgate into: JSON log lines for log shippers, and the Grafana dashboard
//! and Prometheus alert rules in docs/monitoring, checked against the metrics a real gateway
//! exports.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde_json::Value;

use crate::support::gateway::{metric_series, wait_until, Gateway, GatewayConfig, ServeOptions};
use crate::support::upstream::{Upstream, UpstreamConfig};
use crate::support::{Env, LeafSpec, Minted, TestCa};

/// A store with a client certificate bound to `partner.test` and one bound to `wrong.test`
/// whose partner only accepts certificates from another CA, and a gateway process with `args`.
struct Traffic {
    env: Env,
    alpha: Minted,
    ok_partner: Upstream,
    picky_partner: Upstream,
    gw: Gateway,
}

impl Traffic {
    async fn start(args: &[&str]) -> Traffic {
        let env = Env::new();
        let partner_ca = TestCa::new("partner");
        let client_ca = TestCa::new("client");
        let other_ca = TestCa::new("other clients");
        let root = env.file("partner-root.pem", &partner_ca.root.cert_pem);
        env.run(&["trust", "add", "partnerca", root.to_str().unwrap()]).ok();
        let alpha = client_ca.leaf(LeafSpec::client("alpha"));
        env.import_minted("alpha", &alpha, &client_ca.intermediate.cert_pem).ok();
        env.run(&["bind", "partner.test", "alpha", "--trust", "ca:partnerca"]).ok();
        env.run(&["bind", "wrong.test", "alpha", "--trust", "ca:partnerca"]).ok();
        let ok_partner = Upstream::start(
            UpstreamConfig::new(&partner_ca.server(&["partner.test"]), &partner_ca).require_client_cert(&client_ca),
        )
        .await;
        let picky_partner = Upstream::start(
            UpstreamConfig::new(&partner_ca.server(&["wrong.test"]), &partner_ca).require_client_cert(&other_ca),
        )
        .await;
        let opts = ServeOptions { args: args.iter().map(|a| a.to_string()).collect(), ..Default::default() };
        let gw =
            Gateway::process_with(&env, &GatewayConfig::new().resolve(&["partner.test", "wrong.test"]), opts).await;
        Traffic { env, alpha, ok_partner, picky_partner, gw }
    }

    /// Two good requests, one the partner refuses at the handshake, one with no binding.
    async fn send(&self) {
        let ok = format!("http://partner.test:{}/echo?secret-looking=query", self.ok_partner.port());
        for _ in 0..2 {
            let r = self.gw.proxy("GET", &ok, &[("authorization", "Bearer do-not-log-me")], "").await;
            assert_eq!(r.status, 200, "{}", r.describe());
        }
        let refused = format!("http://wrong.test:{}/echo", self.picky_partner.port());
        self.gw.proxy_get(&refused).await.gateway_error(502, "upstream-rejected-certificate");
        self.gw.proxy_get("http://unbound.test/x").await.gateway_error(403, "no-binding");
    }
}

/// Every line of the log as JSON; fails on the first line that is not.
fn json_lines(log: &str) -> Vec<Value> {
    log.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            serde_json::from_str(l).unwrap_or_else(|e| panic!("a log line is not JSON ({e}): {l}\n--- log:\n{log}"))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_log_has_one_request_span_per_proxied_request_with_its_fields_and_no_secrets() {
    let t = Traffic::start(&["--log-format", "json"]).await;
    t.send().await;
    // The span's line is written when it closes, right after the answer went out: poll.
    let spans = wait_until(Duration::from_secs(10), async || {
        let lines = json_lines(&t.gw.log_all());
        let spans: Vec<Value> =
            lines.into_iter().filter(|l| l["span"]["name"] == "request" && l["fields"]["message"] == "close").collect();
        (spans.len() >= 4).then_some(spans)
    })
    .await
    .unwrap_or_else(|| panic!("fewer than 4 closed request spans in the log:\n{}", t.gw.log_all()));
    let log = t.gw.log_all();
    let lines = json_lines(&log);
    // serve's own messages are log events too: every line is JSON, with a level and a time.
    assert!(lines.iter().all(|l| l["level"].is_string() && l["timestamp"].is_string()), "{log}");
    assert!(
        lines.iter().any(|l| l["fields"]["message"].as_str().is_some_and(|m| m.starts_with("certgate serving"))),
        "serve's start message is a JSON event:\n{log}"
    );
    assert_eq!(spans.len(), 4, "one span per request:\n{log}");
    let by_outcome: BTreeMap<String, Vec<&Value>> = spans.iter().fold(BTreeMap::new(), |mut m, l| {
        m.entry(l["span"]["outcome"].as_str().unwrap_or("(none)").to_string()).or_default().push(&l["span"]);
        m
    });
    let ok = &by_outcome.get("ok").unwrap_or_else(|| panic!("no ok span: {by_outcome:?}"));
    assert_eq!(ok.len(), 2, "{by_outcome:?}");
    let s = ok[0];
    assert_eq!(s["destination"], format!("partner.test:{}", t.ok_partner.port()), "{s}");
    assert_eq!(s["binding"], "partner.test", "{s}");
    assert_eq!(s["certificate"], "alpha", "{s}");
    assert_eq!(s["fingerprint"], t.alpha.id(), "{s}");
    assert_eq!(s["app"], "-", "{s}");
    assert_eq!(s["method"], "GET", "{s}");
    assert_eq!(s["status"], 200, "{s}");
    let ms = s["duration_ms"].as_f64().unwrap_or_else(|| panic!("duration_ms is a number: {s}"));
    assert!(ms > 0.0 && ms < 30_000.0, "{s}");

    let refused = by_outcome.get("upstream-rejected-certificate").unwrap_or_else(|| panic!("{by_outcome:?}"));
    assert_eq!(refused[0]["binding"], "wrong.test");
    assert_eq!(refused[0]["status"], 502);
    assert_eq!(refused[0]["fingerprint"], t.alpha.id());
    let unbound = by_outcome.get("no-binding").unwrap_or_else(|| panic!("{by_outcome:?}"));
    assert_eq!(unbound[0]["status"], 403);
    assert_eq!(unbound[0]["destination"], "unbound.test", "what was asked for, though nothing is bound");

    for secret in ["do-not-log-me", "secret-looking", "BEGIN", "PRIVATE"] {
        assert!(!log.contains(secret), "the log holds '{secret}':\n{log}");
    }
    drop(t.env);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_log_stays_the_default_and_log_format_comes_from_the_config_file_too() {
    // Default: plain text lines (not JSON).
    let t = Traffic::start(&[]).await;
    assert!(t.gw.log_all().contains("certgate serving"), "{}", t.gw.log_all());
    assert!(t.gw.log_all().lines().any(|l| serde_json::from_str::<Value>(l).is_err()), "{}", t.gw.log_all());
    // `log_format = "json"` in the config file: JSON without the flag.
    let env = Env::new();
    let gw = Gateway::process(&env, &GatewayConfig::new().log_format("json")).await;
    let log = gw.log_all();
    assert!(log.contains("certgate serving"), "{log}");
    json_lines(&log);
    // A wrong value is refused with the choices.
    let bad = env.run(&["--log-format", "xml", "cert", "list"]);
    assert_eq!(bad.code, 2, "{}", bad.stderr);
    assert!(bad.stderr.contains("json"), "{}", bad.stderr);
}

/// The metric names and the label names an expression of the docs selects on: `name{a="x",b=~"y"}`
/// gives (name, {a, b}). `_bucket`, `_sum` and `_count` belong to their histogram.
fn referenced(text: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while let Some(pos) = text[i..].find("certgate_") {
        let start = i + pos;
        let boundary = start == 0 || !(bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_');
        let end = start
            + text[start..].find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(text.len() - start);
        i = end;
        if !boundary {
            continue;
        }
        let mut name = text[start..end].to_string();
        for suffix in ["_bucket", "_sum", "_count"] {
            if let Some(base) = name.strip_suffix(suffix) {
                name = base.to_string();
            }
        }
        let labels = out.entry(name).or_default();
        if text[end..].starts_with('{') {
            let close = text[end..].find('}').map(|c| end + c).unwrap_or(end);
            for part in text[end + 1..close].split(',') {
                let key = part.split(['=', '!']).next().unwrap_or("").trim();
                if !key.is_empty() {
                    labels.insert(key.to_string());
                }
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_and_alert_rules_reference_only_metrics_and_labels_that_metrics_exports() {
    let docs = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/monitoring");
    let dashboard_text = std::fs::read_to_string(format!("{docs}/certgate-dashboard.json")).unwrap();
    let dashboard: Value = serde_json::from_str(&dashboard_text).expect("the dashboard is JSON");
    // Every panel query, from the JSON structure.
    let mut exprs = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().expect("targets") {
            exprs.push(target["expr"].as_str().expect("expr").to_string());
        }
    }
    assert!(exprs.len() >= 8, "{exprs:?}");
    let rules = std::fs::read_to_string(format!("{docs}/certgate-alerts.yml")).unwrap();
    for alert in ["Expire", "ErrorRate", "Handshake", "Reload", "StoreDown"] {
        assert!(
            rules.lines().any(|l| l.trim_start().starts_with("- alert: Certgate") && l.contains(alert)),
            "no {alert} rule"
        );
    }
    let mut wanted = referenced(&exprs.join("\n"));
    for (name, labels) in referenced(&rules) {
        wanted.entry(name).or_default().extend(labels);
    }
    for name in [
        "certgate_certificate_expiry_timestamp_seconds",
        "certgate_requests_total",
        "certgate_reloads_total",
        "certgate_store_up",
        "certgate_upstream_handshakes_total",
    ] {
        assert!(wanted.contains_key(name), "the docs do not use {name}: {wanted:?}");
    }

    // What a real gateway exports after some traffic (a good request, a handshake refused by
    // the partner, an unbound host) and a reload.
    let t = Traffic::start(&[]).await;
    t.send().await;
    let text = t.gw.metrics_text().await;
    let mut exported: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in text.lines().filter(|l| l.starts_with("# TYPE ")) {
        let name = line.split_whitespace().nth(2).unwrap().to_string();
        let labels: BTreeSet<String> = ["", "_bucket", "_sum", "_count"]
            .iter()
            .flat_map(|suffix| metric_series(&text, &format!("{name}{suffix}")))
            .flat_map(|(l, _)| l.into_keys())
            .filter(|k| k != "le")
            .collect();
        exported.insert(name, labels);
    }
    // Handshake-failure codes named in the docs are certgate's codes.
    for code in
        ["upstream-untrusted", "upstream-name-mismatch", "upstream-rejected-certificate", "client-certificate-expired"]
    {
        assert!(rules.contains(code) && dashboard_text.contains(code), "{code}");
    }
    assert!(
        metric_series(&text, "certgate_requests_total")
            .iter()
            .any(|(l, _)| l["outcome"] == "upstream-rejected-certificate"),
        "the refused handshake is counted with its code:\n{text}"
    );
    let mut problems = Vec::new();
    for (name, labels) in &wanted {
        match exported.get(name) {
            None => problems.push(format!("{name} is not exported")),
            Some(have) => {
                for l in labels.iter().filter(|l| *l != "le") {
                    if !have.contains(l) {
                        problems.push(format!("{name} has no label '{l}' (it has {have:?})"));
                    }
                }
            }
        }
    }
    assert!(
        problems.is_empty(),
        "the monitoring docs reference what /metrics does not export:\n  {}\n--- /metrics:\n{text}",
        problems.join("\n  ")
    );
    drop(t.env);
}
