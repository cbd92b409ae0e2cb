//! `certgate probe` against real partners: the in-process rustls partner (which names the CAs it
//! accepts, or asks for nothing) and Debian's nginx (which refuses a bad client certificate with
//! HTTP 400 after the handshake). Each report is checked field by field in `--json`.

use serde_json::{json, Value};

use crate::support::api::{api_error, Api};
use crate::support::gateway::{Gateway, GatewayConfig};
use crate::support::nginx::Nginx;
use crate::support::upstream::{Upstream, UpstreamConfig};
use crate::support::{Env, LeafSpec, Minted, Run, TestCa};

struct World {
    env: Env,
    partner_ca: TestCa,
    client_ca: TestCa,
    config: std::path::PathBuf,
}

impl World {
    fn new() -> World {
        let env = Env::new();
        let partner_ca = TestCa::new("partner");
        let client_ca = TestCa::new("client");
        let root = env.file("partner-root.pem", &partner_ca.root.cert_pem);
        env.run(&["--json", "trust", "add", "partnerca", root.to_str().unwrap()]).ok();
        let config = GatewayConfig::new().resolve(&["partner.test", "other.test"]).write(&env);
        World { env, partner_ca, client_ca, config }
    }

    fn client(&self, name: &str, ca: &TestCa) -> Minted {
        let leaf = ca.leaf(LeafSpec::client(name));
        self.env.import_minted(name, &leaf, &ca.intermediate.cert_pem).ok();
        leaf
    }

    fn cli(&self, args: &[&str]) -> Run {
        let mut all = vec!["--json", "--config", self.config.to_str().unwrap()];
        all.extend_from_slice(args);
        self.env.run(&all)
    }

    async fn partner(&self, adjust: impl FnOnce(UpstreamConfig) -> UpstreamConfig) -> Upstream {
        let server = self.partner_ca.server(&["partner.test"]);
        Upstream::start(adjust(UpstreamConfig::new(&server, &self.partner_ca))).await
    }

    /// `probe --json ARGS`, with its exit code and report.
    fn probe(&self, args: &[&str]) -> (i32, Value) {
        let mut all = vec!["probe"];
        all.extend_from_slice(args);
        let run = self.cli(&all);
        assert!(run.code == 0 || run.code == 1, "probe exits 0 or 1: {}\n{}", run.stdout, run.stderr);
        (run.code, run.json())
    }
}

fn url(port: u16) -> String {
    format!("https://partner.test:{port}/echo?probe=1")
}

fn codes(report: &Value) -> Vec<String> {
    report["problems"].as_array().unwrap().iter().map(|p| p["code"].as_str().unwrap().to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_working_path_reports_the_handshake_the_names_asked_for_and_the_answer() {
    let w = World::new();
    w.client("alpha", &w.client_ca);
    let up = w.partner(|c| c.require_client_cert(&w.client_ca)).await;
    w.cli(&["bind", "partner.test", "alpha", "--trust", "ca:partnerca"]).ok();
    let (code, r) = w.probe(&[&url(up.port())]);
    assert_eq!(code, 0, "{r:#}");
    assert_eq!(r["ok"], true);
    assert_eq!(r["binding"]["destination"], "partner.test");
    assert_eq!(r["binding"]["certificate"], "alpha");
    assert_eq!(r["connect"]["address"], format!("127.0.0.1:{}", up.port()));
    assert!(r["tls"]["version"].as_str().unwrap().starts_with("TLSv1."), "{r:#}");
    assert!(!r["tls"]["cipher"].as_str().unwrap().is_empty());
    assert_eq!(r["tls"]["alpn"], "h2");
    assert_eq!(r["partner"]["trusted"], true);
    let chain = r["partner"]["chain"].as_array().unwrap();
    assert_eq!(chain.len(), 2, "leaf and intermediate as the partner sent them");
    assert!(chain[0]["names"].as_array().unwrap().contains(&Value::from("partner.test")));
    assert!(chain[0]["days_left"].as_i64().unwrap() > 0);
    assert!(r["partner"]["pin"].as_str().unwrap().starts_with("sha256/"));
    let cc = &r["client_certificate"];
    assert_eq!(cc["requested"], true);
    let cas = cc["acceptable_cas"].as_array().unwrap();
    assert_eq!(cas.len(), 1, "the partner names the client root: {r:#}");
    assert!(cas[0].as_str().unwrap().contains("client"), "{r:#}");
    assert_eq!(cc["matching"], serde_json::json!(["alpha"]));
    assert_eq!(cc["sent"], "alpha");
    assert_eq!(cc["sent_acceptable"], true);
    assert_eq!(r["outcome"]["accepted"], true);
    assert_eq!(r["outcome"]["http_status"], 200);
    assert!(r["problems"].as_array().unwrap().is_empty(), "{r:#}");
    // The request reached the partner with the bound certificate, on the path asked for.
    let seen = up.last_request().expect("the probe's request");
    assert_eq!(seen.path, "/echo?probe=1");
    assert!(seen.client_cert_sha256().is_some());
    // Plain words too.
    let text = w.env.run(&["--config", w.config.to_str().unwrap(), "probe", &url(up.port())]);
    assert_eq!(text.code, 0);
    assert!(text.stdout.contains("the path works end to end"), "{}", text.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_binding_without_a_certificate_to_a_partner_that_asks_says_which_stored_one_fits() {
    let w = World::new();
    let other_ca = TestCa::new("other");
    w.client("alpha", &w.client_ca);
    w.client("stranger", &other_ca);
    let up = w.partner(|c| c.tls12_only().require_client_cert(&w.client_ca)).await;
    w.cli(&["bind", "partner.test", "--no-cert", "--trust", "ca:partnerca"]).ok();
    let (code, r) = w.probe(&[&url(up.port())]);
    assert_eq!(code, 1, "{r:#}");
    assert_eq!(r["ok"], false);
    assert_eq!(r["client_certificate"]["requested"], true);
    assert_eq!(r["client_certificate"]["matching"], serde_json::json!(["alpha"]), "only alpha chains to the named CA");
    assert_eq!(r["client_certificate"]["sent"], Value::Null);
    assert!(codes(&r).contains(&"upstream-rejected-certificate".to_string()), "{r:#}");
    let p = r["problems"].as_array().unwrap().iter().find(|p| p["code"] == "upstream-rejected-certificate").unwrap();
    assert!(p["hint"].as_str().unwrap().contains("'alpha'"), "names the certificate that fits: {p}");
    assert!(p["command"].as_str().unwrap().starts_with("certgate bind"), "{p}");
    assert_eq!(r["outcome"]["accepted"], false);

    // --cert tries another certificate without changing the binding: the wrong CA is named.
    let (code, r) = w.probe(&[&url(up.port()), "--cert", "stranger"]);
    assert_eq!(code, 1);
    assert_eq!(r["probed_with"]["certificate"], "stranger");
    assert_eq!(r["binding"]["certificate"], Value::Null, "the binding itself is unchanged");
    assert_eq!(r["client_certificate"]["sent_acceptable"], false, "{r:#}");
    assert_eq!(r["outcome"]["error"], "upstream-rejected-certificate", "{r:#}");
    assert_eq!(r["tls"]["version"], Value::Null, "TLS 1.2 partner ended the handshake: {r:#}");

    // With the one that fits, the path works.
    let (code, r) = w.probe(&[&url(up.port()), "--cert", "alpha"]);
    assert_eq!(code, 0, "{r:#}");
    assert_eq!(r["tls"]["version"], "TLSv1.2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partner_that_asks_for_nothing_and_one_that_names_no_ca() {
    let w = World::new();
    w.client("alpha", &w.client_ca);
    let up = w.partner(|c| c.tls13_only()).await;
    w.cli(&["bind", "partner.test", "alpha", "--trust", "ca:partnerca"]).ok();
    let (code, r) = w.probe(&[&url(up.port())]);
    assert_eq!(code, 0, "{r:#}");
    assert_eq!(r["tls"]["version"], "TLSv1.3");
    assert_eq!(r["client_certificate"]["requested"], false);
    assert_eq!(r["client_certificate"]["sent_acceptable"], Value::Null);
    assert_eq!(r["outcome"]["http_status"], 200);

    let any = w
        .partner(|c| {
            c.client_auth(crate::support::upstream::ClientAuth::AnyNoNames(vec![w.client_ca.root.der.clone()]))
        })
        .await;
    let (code, r) = w.probe(&[&url(any.port())]);
    assert_eq!(code, 0, "{r:#}");
    assert_eq!(r["client_certificate"]["requested"], true);
    assert_eq!(r["client_certificate"]["acceptable_cas"], serde_json::json!([]));
    assert_eq!(r["client_certificate"]["sent_acceptable"], Value::Null, "nothing to compare with");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_partner_names_the_missing_issuer_and_the_anchor_that_would_fix_it() {
    let w = World::new();
    w.client("alpha", &w.client_ca);
    let up = w.partner(|c| c.require_client_cert(&w.client_ca)).await;
    // An anchor that does not hold the partner's CA.
    let unrelated = TestCa::new("unrelated");
    let path = w.env.file("unrelated.pem", &unrelated.root.cert_pem);
    w.cli(&["trust", "add", "unrelated", path.to_str().unwrap()]).ok();
    w.cli(&["bind", "partner.test", "alpha", "--trust", "ca:unrelated"]).ok();
    let (code, r) = w.probe(&[&url(up.port())]);
    assert_eq!(code, 1);
    assert_eq!(r["partner"]["trusted"], false);
    assert_eq!(r["partner"]["error"], "upstream-untrusted");
    assert!(r["partner"]["message"].as_str().unwrap().contains("partner"), "{r:#}");
    assert_eq!(r["outcome"]["accepted"], false);
    assert_eq!(up.request_count(), 0, "nothing is sent to an untrusted partner");
    let p = &r["problems"][0];
    assert_eq!(p["code"], "upstream-untrusted");
    assert!(p["hint"].as_str().unwrap().contains("'partnerca'"), "the stored anchor that holds the issuer: {p}");
    // The client certificate question is answered all the same.
    assert_eq!(r["client_certificate"]["requested"], true);
    assert_eq!(r["client_certificate"]["sent_acceptable"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_mismatch_lists_the_names_and_a_pin_mismatch_shows_the_pin_now() {
    let w = World::new();
    w.client("alpha", &w.client_ca);
    let up = w.partner(|c| c.require_client_cert(&w.client_ca)).await;
    // other.test reaches the same partner, whose certificate is for partner.test only.
    w.cli(&["bind", "other.test", "alpha", "--trust", "ca:partnerca"]).ok();
    let (code, r) = w.probe(&[&format!("other.test:{}", up.port())]);
    assert_eq!(code, 1);
    assert_eq!(r["partner"]["error"], "upstream-name-mismatch", "{r:#}");
    let p = &r["problems"][0];
    assert_eq!(p["code"], "upstream-name-mismatch");
    assert!(p["hint"].as_str().unwrap().contains("partner.test"), "lists the names on the certificate: {p}");

    let wrong = format!("sha256/{}", "A".repeat(43) + "=");
    w.cli(&["bind", "partner.test", "alpha", "--trust", "ca:partnerca", "--pin", &wrong]).ok();
    let (code, r) = w.probe(&[&url(up.port())]);
    assert_eq!(code, 1);
    let now = r["partner"]["pin"].as_str().unwrap().to_string();
    assert_ne!(now, wrong);
    let p = &r["problems"][0];
    assert!(p["hint"].as_str().unwrap().contains(&now), "shows the pin the partner has now: {p}");
    // With that pin the path works.
    w.cli(&["bind", "partner.test", "alpha", "--trust", "ca:partnerca", "--pin", &now]).ok();
    assert_eq!(w.probe(&[&url(up.port())]).0, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_destination_without_a_binding_is_probed_without_opening_the_gateway() {
    let w = World::new();
    w.client("alpha", &w.client_ca);
    let up = w.partner(|c| c.require_client_cert(&w.client_ca)).await;
    let before = w.cli(&["bindings"]).stdout;
    let (code, r) = w.probe(&[&url(up.port()), "--cert", "alpha", "--trust", "ca:partnerca"]);
    assert_eq!(code, 1, "the gateway would still refuse it: {r:#}");
    assert_eq!(r["binding"], Value::Null);
    assert_eq!(r["problems"][0]["code"], "no-binding");
    assert_eq!(r["outcome"]["accepted"], true, "the partner accepts alpha: {r:#}");
    assert_eq!(w.cli(&["bindings"]).stdout, before, "the probe changed no binding");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_refusing_a_certificate_with_http_400_is_reported_as_a_rejected_certificate() {
    let w = World::new();
    let other_ca = TestCa::new("other");
    w.client("stranger", &other_ca);
    w.client("alpha", &w.client_ca);
    let server = w.partner_ca.server(&["partner.test"]);
    let nginx = Nginx::start(&server, &w.partner_ca, &w.client_ca);
    w.cli(&["bind", "partner.test", "stranger", "--trust", "ca:partnerca"]).ok();
    let (code, r) = w.probe(&[&format!("https://partner.test:{}/", nginx.port())]);
    assert_eq!(code, 1, "{r:#}");
    assert_eq!(r["client_certificate"]["requested"], true);
    assert_eq!(r["client_certificate"]["sent_acceptable"], false, "nginx names the client root: {r:#}");
    assert_eq!(r["outcome"]["http_status"], 400, "{r:#}");
    assert!(codes(&r).contains(&"upstream-rejected-certificate".to_string()), "{r:#}");
    assert!(
        r["problems"].as_array().unwrap().iter().any(|p| p["message"].as_str().unwrap().contains("HTTP 400")),
        "{r:#}"
    );
    let (code, r) = w.probe(&[&format!("https://partner.test:{}/", nginx.port()), "--cert", "alpha"]);
    assert_eq!(code, 0, "{r:#}");
    assert_eq!(r["outcome"]["http_status"], 200);
}

// ---------------------------------------------------------------------------------------------
// The same report from the admin API

/// A report without what differs from one run to the next: the connect time, and how a TLS 1.3
/// partner's refusal was seen (its alert, or the connection closed first: a race), which must
/// say that it refused the client certificate either way.
fn steady(mut r: Value) -> Value {
    if let Some(c) = r.get_mut("connect").and_then(Value::as_object_mut) {
        c.remove("millis");
    }
    let refusal = "refused the client certificate";
    if r["outcome"]["error"] == "upstream-rejected-certificate" {
        assert!(r["outcome"]["message"].as_str().unwrap().contains(refusal), "{r:#}");
        r["outcome"]["message"] = Value::from(refusal);
        for p in r["problems"].as_array_mut().unwrap() {
            if p["message"].as_str().unwrap().contains(refusal) {
                p["message"] = Value::from(refusal);
            }
        }
    }
    r
}

fn token(w: &World, name: &str, role: &str) -> String {
    let run = w.env.run(&["--json", "token", "create", name, "--role", role]);
    run.ok();
    run.json()["token"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_answers_the_report_of_the_cli_to_an_operator_and_403_to_a_viewer() {
    let w = World::new();
    let other_ca = TestCa::new("other");
    w.client("alpha", &w.client_ca);
    w.client("stranger", &other_ca);
    let up = w.partner(|c| c.require_client_cert(&w.client_ca)).await;
    w.cli(&["bind", "partner.test", "stranger", "--trust", "ca:partnerca"]).ok();
    let operator = token(&w, "ops", "operator");
    let viewer = token(&w, "reader", "viewer");
    let gw = Gateway::start(&w.env, &GatewayConfig::new().resolve(&["partner.test", "other.test"])).await;
    let api = Api::new(gw.client(), &operator);

    // A failing binding and, with the certificate that fits, a working path: the same reports.
    let target = url(up.port());
    for (cli_args, body) in [
        (vec![target.as_str()], json!({"target": target})),
        (vec![target.as_str(), "--cert", "alpha"], json!({"target": target, "cert": "alpha"})),
    ] {
        let (code, cli) = w.probe(&cli_args);
        let r = api.post_json("/api/v1/probe", body.clone()).await;
        assert_eq!(r.status, 200, "{}", r.describe());
        let from_api = r.json();
        assert_eq!(from_api["ok"], code == 0, "{from_api:#}");
        if code == 1 {
            // TLS 1.3: the partner's alert comes after the handshake, on the connection.
            assert_eq!(from_api["outcome"]["error"], "upstream-rejected-certificate", "{from_api:#}");
        }
        assert_eq!(steady(from_api), steady(cli), "{body}");
    }
    assert_eq!(up.request_count(), 2, "the two working probes sent their one request each");

    // A viewer may not probe; a wrong request is a 4xx with a hint; nothing changes.
    let before = w.cli(&["bindings"]).stdout;
    let r = Api::new(gw.client(), &viewer).post_json("/api/v1/probe", json!({"target": target})).await;
    let e = api_error(&r, 403, "forbidden");
    assert!(e["message"].as_str().unwrap().contains("operator"), "{e}");
    let r = api.post_json("/api/v1/probe", json!({"target": target, "cert": "nosuch"})).await;
    api_error(&r, 404, "not-found");
    let r = api.post_json("/api/v1/probe", json!({"target": "https://"})).await;
    api_error(&r, 400, "usage");
    let r = api.post_json("/api/v1/probe", json!({"target": target, "trust": "sometimes"})).await;
    api_error(&r, 400, "usage");
    assert_eq!(up.request_count(), 2, "refused probes send nothing");
    assert_eq!(w.cli(&["bindings"]).stdout, before, "probes change no binding");

    // A partner that accepts the connection and never speaks TLS: a report within seconds.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let started = std::time::Instant::now();
    let r = api
        .post_json("/api/v1/probe", json!({"target": format!("127.0.0.1:{}", silent.local_addr().unwrap().port())}))
        .await;
    assert_eq!(r.status, 200, "{}", r.describe());
    let report = r.json();
    assert_eq!(report["ok"], false);
    assert!(codes(&report).contains(&"upstream-timeout".to_string()), "{report:#}");
    assert!(started.elapsed() < std::time::Duration::from_secs(8), "answered in {:?}", started.elapsed());
    drop(silent);
}
