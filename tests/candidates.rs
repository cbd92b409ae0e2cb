//! Bindings with several candidate certificates (issue 9): at each handshake the gateway presents
//! the first candidate that chains to a CA name the partner sent in its CertificateRequest, or
//! the first candidate when it sent none. Partners are Debian's nginx (`ssl_client_certificate`
//! of one CA: it names that CA and records the subject it received) and the in-process partner
//! that asks without naming a CA; grants apply per candidate; the probe and the metrics name
//! the certificate chosen.

use bytes::Bytes;
use serde_json::{json, Value};

use crate::support::api::{api_error, Api};
use std::time::Duration;

use crate::support::gateway::{metric, metric_series, wait_until, Gateway, GatewayConfig, Resp};
use crate::support::nginx::Nginx;
use crate::support::upstream::{ClientAuth, Upstream, UpstreamConfig};
use crate::support::{Env, LeafSpec, Minted, Run, TestCa};

/// Two client CAs (`ca-a`, `ca-b`), `alpha` issued by the first and `beta` by the second, and the
/// partners' CA trusted as `partnerca`.
struct World {
    env: Env,
    partner_ca: TestCa,
    ca_a: TestCa,
    ca_b: TestCa,
    alpha: Minted,
    beta: Minted,
    config: std::path::PathBuf,
}

const NAMES: &[&str] = &["a.partner.test", "b.partner.test", "open.partner.test"];

impl World {
    fn new() -> World {
        let env = Env::new();
        let partner_ca = TestCa::new("partner");
        let ca_a = TestCa::new("ca-a");
        let ca_b = TestCa::new("ca-b");
        let root = env.file("partner-root.pem", &partner_ca.root.cert_pem);
        env.run(&["trust", "add", "partnerca", root.to_str().unwrap()]).ok();
        let alpha = ca_a.leaf(LeafSpec::client("alpha"));
        env.import_minted("alpha", &alpha, &ca_a.intermediate.cert_pem).ok();
        let beta = ca_b.leaf(LeafSpec::client("beta"));
        env.import_minted("beta", &beta, &ca_b.intermediate.cert_pem).ok();
        let config = GatewayConfig::new().resolve(NAMES).write(&env);
        World { env, partner_ca, ca_a, ca_b, alpha, beta, config }
    }

    /// `certgate --json --config GATEWAY.toml ARGS` (not checked).
    fn run(&self, args: &[&str]) -> Run {
        let mut all = vec!["--json", "--config", self.config.to_str().unwrap()];
        all.extend_from_slice(args);
        self.env.run(&all)
    }

    #[track_caller]
    fn cli(&self, args: &[&str]) -> Run {
        let run = self.run(args);
        run.ok();
        run
    }

    fn server(&self) -> Minted {
        self.partner_ca.server(NAMES)
    }

    /// A partner that asks for a client certificate without naming a CA, and accepts both CAs.
    async fn no_names_partner(&self) -> Upstream {
        let auth = ClientAuth::AnyNoNames(vec![self.ca_a.root.der.clone(), self.ca_b.root.der.clone()]);
        Upstream::start(UpstreamConfig::new(&self.server(), &self.partner_ca).client_auth(auth)).await
    }

    /// `probe --json TARGET`: its exit code and report.
    fn probe(&self, target: &str) -> (i32, Value) {
        self.probe_with(target, &[])
    }

    fn probe_with(&self, target: &str, more: &[&str]) -> (i32, Value) {
        let mut args = vec!["probe", target];
        args.extend_from_slice(more);
        let run = self.run(&args);
        assert!(run.code == 0 || run.code == 1, "probe exits 0 or 1: {}\n{}", run.stdout, run.stderr);
        (run.code, run.json())
    }
}

/// What nginx recorded of the client certificate (its JSON answer), checked to be `cert`.
#[track_caller]
fn assert_nginx_received(resp: &Resp, cert: &Minted, cn: &str, nginx: &Nginx) {
    assert_eq!(resp.status, 200, "{}\n{}", resp.describe(), nginx.logs());
    let seen: Value = serde_json::from_slice(&resp.body)
        .unwrap_or_else(|e| panic!("nginx answer is not JSON ({e}): {}", resp.describe()));
    assert_eq!(seen["verify"], "SUCCESS", "{seen}");
    assert!(seen["s_dn"].as_str().unwrap_or("").contains(&format!("CN={cn}")), "subject nginx received: {seen}");
    assert_eq!(seen["fingerprint"], cert.sha1_hex(), "fingerprint nginx received: {seen}");
}

fn basic(app: &str, credential: &str) -> String {
    use base64::Engine;
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{app}:{credential}")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_partner_receives_the_candidate_from_the_ca_it_names_and_the_metrics_say_which() {
    let w = World::new();
    let server = w.server();
    let nginx_a = Nginx::start(&server, &w.partner_ca, &w.ca_a);
    let nginx_b = Nginx::start(&server, &w.partner_ca, &w.ca_b);
    let dest_a = format!("a.partner.test:{}", nginx_a.port());
    let dest_b = format!("b.partner.test:{}", nginx_b.port());
    // Each destination lists first the certificate its partner does NOT accept.
    let bound = w.cli(&["bind", &dest_a, "beta,alpha", "--trust", "ca:partnerca"]).json();
    assert_eq!(bound["certificate"], "beta", "{bound}");
    assert_eq!(bound["certificates"], json!(["beta", "alpha"]), "{bound}");
    w.cli(&["bind", &dest_b, "alpha,beta", "--trust", "ca:partnerca"]);

    // A gateway process: its /metrics counters are its own.
    let gw = Gateway::process(&w.env, &GatewayConfig::new().resolve(NAMES)).await;
    for _ in 0..2 {
        assert_nginx_received(&gw.proxy_get(&format!("http://{dest_a}/whoami")).await, &w.alpha, "alpha", &nginx_a);
        assert_nginx_received(&gw.proxy_get(&format!("http://{dest_b}/whoami")).await, &w.beta, "beta", &nginx_b);
    }

    let text = gw.metrics_text().await;
    let presented = "certgate_client_certificate_presented_total";
    let a = metric(&text, presented, &[("destination", &dest_a), ("certificate", "alpha")]);
    assert!(a.is_some_and(|n| n >= 1.0), "alpha presented to {dest_a}: {:?}", metric_series(&text, presented));
    let b = metric(&text, presented, &[("destination", &dest_b), ("certificate", "beta")]);
    assert!(b.is_some_and(|n| n >= 1.0), "beta presented to {dest_b}: {:?}", metric_series(&text, presented));
    assert_eq!(metric(&text, presented, &[("destination", &dest_a), ("certificate", "beta")]), None);
    assert_eq!(metric(&text, presented, &[("destination", &dest_b), ("certificate", "alpha")]), None);
    // Requests are counted under the binding's candidates.
    let ok = metric(&text, "certgate_requests_total", &[("destination", &dest_a), ("certificate", "beta,alpha")]);
    assert_eq!(ok, Some(2.0), "{:?}", metric_series(&text, "certgate_requests_total"));

    // Rotating the second candidate reloads the route: partner A now receives the new alpha.
    let renewed = w.ca_a.leaf(LeafSpec::client("alpha"));
    let file =
        w.env.file("alpha-2.pem", format!("{}{}{}", renewed.cert_pem, renewed.key_pem, w.ca_a.intermediate.cert_pem));
    w.cli(&["cert", "rotate", "alpha", file.to_str().unwrap()]);
    let seen = wait_until(Duration::from_secs(5), async || {
        let r = gw.proxy_get(&format!("http://{dest_a}/whoami")).await;
        let v: Value = serde_json::from_slice(&r.body).ok()?;
        (v["fingerprint"] == renewed.sha1_hex()).then_some(r)
    })
    .await
    .unwrap_or_else(|| panic!("partner A never received the rotated alpha\n{}", gw.log()));
    assert_nginx_received(&seen, &renewed, "alpha", &nginx_a);
    assert_nginx_received(&gw.proxy_get(&format!("http://{dest_b}/whoami")).await, &w.beta, "beta", &nginx_b);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_probe_names_the_candidate_the_partner_picked() {
    let w = World::new();
    let nginx_a = Nginx::start(&w.server(), &w.partner_ca, &w.ca_a);
    let dest_a = format!("a.partner.test:{}", nginx_a.port());
    w.cli(&["bind", &dest_a, "beta,alpha", "--trust", "ca:partnerca"]);
    let (code, r) = w.probe(&format!("https://{dest_a}/"));
    assert_eq!(code, 0, "{r:#}");
    assert_eq!(r["binding"]["certificates"], json!(["beta", "alpha"]), "{r:#}");
    let cc = &r["client_certificate"];
    assert_eq!(cc["requested"], true);
    assert_eq!(cc["candidates"], json!(["beta", "alpha"]));
    assert_eq!(cc["matching"], json!(["alpha"]), "only alpha chains to the CA nginx names: {r:#}");
    assert_eq!(cc["sent"], "alpha", "{r:#}");
    assert_eq!(cc["sent_acceptable"], true);
    assert_eq!(cc["presented"], "alpha", "the binding's own handshake presented alpha: {r:#}");
    assert_eq!(r["outcome"]["http_status"], 200, "{r:#}");
    let text = w.env.run(&["--config", w.config.to_str().unwrap(), "probe", &format!("https://{dest_a}/")]);
    assert!(text.stdout.contains("presented in the handshake: alpha"), "{}", text.stdout);

    // --cert with several candidates probes them as such a binding would be used.
    w.cli(&["bind", &dest_a, "beta", "--trust", "ca:partnerca"]);
    let (code, r) = w.probe_with(&format!("https://{dest_a}/"), &["--cert", "beta,alpha"]);
    assert_eq!(code, 0, "{r:#}");
    assert_eq!(r["binding"]["certificates"], json!(["beta"]), "the binding itself is unchanged");
    assert_eq!(r["probed_with"]["certificates"], json!(["beta", "alpha"]), "{r:#}");
    assert_eq!(r["client_certificate"]["presented"], "alpha", "{r:#}");
    w.run(&["probe", &format!("https://{dest_a}/"), "--cert", "beta,nosuch"]).refused(4, "not-found");

    // A partner that names no CA gets the first candidate.
    let open = w.no_names_partner().await;
    let dest = format!("open.partner.test:{}", open.port());
    w.cli(&["bind", &dest, "beta,alpha", "--trust", "ca:partnerca"]);
    let (code, r) = w.probe(&format!("https://{dest}/echo"));
    assert_eq!(code, 0, "{r:#}");
    assert_eq!(r["client_certificate"]["acceptable_cas"], json!([]), "{r:#}");
    assert_eq!(r["client_certificate"]["sent"], "beta", "{r:#}");
    assert_eq!(r["client_certificate"]["presented"], "beta", "{r:#}");
    assert_eq!(open.last_request().and_then(|q| q.client_cert_sha256()), Some(w.beta.id()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partner_naming_no_ca_gets_the_first_candidate_and_an_app_only_its_granted_ones() {
    let w = World::new();
    let open = w.no_names_partner().await;
    let dest = format!("open.partner.test:{}", open.port());
    w.cli(&["bind", &dest, "beta,alpha", "--trust", "ca:partnerca"]);
    // Apps: one granted both, one granted only alpha (the second candidate), one granted neither.
    let both = w.cli(&["app", "add", "both"]).json()["credential"].as_str().unwrap().to_string();
    w.cli(&["app", "grant", "both", "alpha"]);
    w.cli(&["app", "grant", "both", "beta"]);
    let only_alpha = w.cli(&["app", "add", "only-alpha"]).json()["credential"].as_str().unwrap().to_string();
    w.cli(&["app", "grant", "only-alpha", "alpha"]);
    let neither = w.cli(&["app", "add", "neither"]).json()["credential"].as_str().unwrap().to_string();
    let gw = Gateway::start(&w.env, &GatewayConfig::new().resolve(NAMES)).await;
    let target = format!("http://{dest}/echo");
    let get = async |app: &str, credential: &str| -> Resp {
        gw.proxy("GET", &target, &[("proxy-authorization", &basic(app, credential))], Bytes::new()).await
    };

    let r = get("both", &both).await;
    assert_eq!(r.status, 200, "{}", r.describe());
    assert_eq!(r.echo()["client_cert_sha256"], w.beta.id(), "no CA names: the first candidate");

    let r = get("only-alpha", &only_alpha).await;
    assert_eq!(r.status, 200, "{}", r.describe());
    assert_eq!(r.echo()["client_cert_sha256"], w.alpha.id(), "only the granted candidate is offered");
    assert_eq!(open.last_request().and_then(|q| q.client_cert_sha256()), Some(w.alpha.id()));

    let seen = open.request_count();
    let r = get("neither", &neither).await;
    let body = r.gateway_error(403, "not-granted");
    assert!(body["message"].as_str().unwrap().contains("'beta', 'alpha'"), "{body}");
    assert_eq!(open.request_count(), seen, "nothing reached the partner");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn candidates_round_trip_through_the_api_and_a_bad_list_changes_nothing() {
    let w = World::new();
    let token = w.cli(&["token", "create", "ops", "--role", "operator"]).json()["token"].as_str().unwrap().to_string();
    let gw = Gateway::start(&w.env, &GatewayConfig::new().resolve(NAMES)).await;
    let api = Api::new(gw.client(), &token);

    let r = api.put_json("/api/v1/bindings/x.partner.test", json!({"certificates": ["alpha", "beta"]})).await;
    let v = Api::expect(&r, 201);
    assert_eq!(v["certificate"], "alpha");
    assert_eq!(v["certificates"], json!(["alpha", "beta"]));
    let v = api.ok("/api/v1/bindings/x.partner.test").await;
    assert_eq!(v["certificates"], json!(["alpha", "beta"]), "{v}");
    let listed = w.cli(&["bindings"]).json();
    assert_eq!(listed[0]["certificates"], json!(["alpha", "beta"]), "{listed}");
    let shown = w.cli(&["cert", "show", "beta"]).json();
    assert_eq!(shown["bindings"], json!(["x.partner.test"]), "a further candidate counts as bound: {shown}");

    // The single form still works and replaces the list.
    let v = Api::expect(&api.put_json("/api/v1/bindings/x.partner.test", json!({"certificate": "beta"})).await, 200);
    assert_eq!(v["certificates"], json!(["beta"]));
    Api::expect(
        &api.put_json("/api/v1/bindings/x.partner.test", json!({"certificates": ["beta", "alpha"]})).await,
        200,
    );

    // Refusals: an unknown candidate (not-found), an empty list, both forms, a name twice.
    let before = (w.cli(&["bindings"]).stdout, api.revision().await);
    let r = api.put_json("/api/v1/bindings/x.partner.test", json!({"certificates": ["alpha", "nosuch"]})).await;
    let e = api_error(&r, 404, "not-found");
    assert!(e["message"].as_str().unwrap().contains("nosuch"), "{e}");
    let r = api.put_json("/api/v1/bindings/y.partner.test", json!({"certificates": []})).await;
    api_error(&r, 400, "usage");
    let r = api
        .put_json("/api/v1/bindings/y.partner.test", json!({"certificate": "alpha", "certificates": ["beta"]}))
        .await;
    api_error(&r, 400, "usage");
    let r = api.put_json("/api/v1/bindings/y.partner.test", json!({"certificates": ["alpha", "alpha"]})).await;
    api_error(&r, 400, "usage");
    w.run(&["bind", "y.partner.test", "alpha,nosuch"]).refused(4, "not-found");
    w.run(&["bind", "x.partner.test", "alpha,,beta"]).refused(2, "invalid-name");
    // A certificate that is only a further candidate still blocks its removal.
    w.run(&["cert", "remove", "alpha"]).refused(5, "still-bound");
    assert_eq!((w.cli(&["bindings"]).stdout, api.revision().await), before, "refusals change nothing");

    // A named service takes the same list; a bad one changes nothing.
    let r = api
        .put_json(
            "/api/v1/services/Billing.Soap",
            json!({"url": "https://x.partner.test/soap", "certificates": ["alpha", "beta"]}),
        )
        .await;
    let v = Api::expect(&r, 201);
    assert_eq!(v["binding"]["certificates"], json!(["alpha", "beta"]), "{v}");
    let v = api.ok("/api/v1/services/Billing.Soap").await;
    assert_eq!(v["binding"]["certificates"], json!(["alpha", "beta"]), "{v}");
    let before = (w.cli(&["service", "list"]).stdout, api.revision().await);
    for body in [
        json!({"url": "https://x.partner.test/soap", "certificates": []}),
        json!({"url": "https://x.partner.test/soap", "certificate": "alpha", "certificates": ["beta"]}),
    ] {
        api_error(&api.put_json("/api/v1/services/Billing.Soap", body).await, 400, "usage");
    }
    let r = api
        .put_json(
            "/api/v1/services/Billing.Soap",
            json!({"url": "https://x.partner.test/soap", "certificates": ["nosuch"]}),
        )
        .await;
    api_error(&r, 404, "not-found");
    assert_eq!((w.cli(&["service", "list"]).stdout, api.revision().await), before, "refusals change nothing");
    assert_eq!(api.delete("/api/v1/services/Billing.Soap").await.status, 204);

    // export-config writes the list, and applying the export changes nothing.
    let exported = w.cli(&["export-config", "-o", w.env.dir.path().join("export.toml").to_str().unwrap()]);
    drop(exported);
    let text = std::fs::read_to_string(w.env.dir.path().join("export.toml")).unwrap();
    assert!(text.contains(r#"certificates = ["beta", "alpha"]"#), "{text}");
    let plan = w.cli(&["apply", w.env.dir.path().join("export.toml").to_str().unwrap(), "--dry-run"]).json();
    let changed: Vec<&Value> = plan["steps"]
        .as_array()
        .unwrap_or_else(|| panic!("a plan with steps: {plan}"))
        .iter()
        .filter(|s| s["action"] != "unchanged")
        .collect();
    assert!(changed.is_empty(), "the export applies as no change: {plan:#}");

    // --force removes the bindings that name it as any candidate.
    w.cli(&["cert", "remove", "alpha", "--force"]);
    assert_eq!(w.cli(&["bindings"]).json(), json!([]), "the binding naming alpha went with it");
}
