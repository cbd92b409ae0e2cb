//! Partners rustls cannot reach (issue 10), end to end with Debian's Apache httpd as the partner:
//! per-path client certificates by TLS 1.2 renegotiation and by TLS 1.3 post-handshake
//! authentication (`--allow-renegotiation`, the OpenSSL engine), the contract code for a rustls
//! route that meets such a partner, an RSA 1024 identity (imported with `weak-key`, presented
//! through OpenSSL), trust failures with the same codes and messages as on rustls, and rotation
//! under load. Every success checks the certificate Apache received (its `X-Client-*` headers).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::gateway::World;
use crate::support::apache::{Apache, ApacheSpec};
use crate::support::gateway::{wait_until, Gateway, GatewayConfig, Resp};
use crate::support::{LeafSpec, TestCa};

/// A change made with the CLI must reach the running gateway within 1 s; polled for 3 s.
const RELOAD_LIMIT: Duration = Duration::from_secs(3);

/// Apache partners for the shared test world (`gateway::World`).
impl World {
    fn apache(&self, protocol: &str) -> Apache {
        let server = self.partner_ca.server(&["partner.test"]);
        Apache::start(&ApacheSpec::per_path(&server, &self.partner_ca, &self.client_ca, protocol))
    }
}

fn url(port: u16, path: &str) -> String {
    format!("http://partner.test:{port}{path}")
}

/// Apache's 200 for `/secure/whoami.txt` after it verified `cn`'s certificate over `protocol`.
#[track_caller]
fn assert_apache_got(r: &Resp, cn: &str, protocol: &str, apache: &Apache) {
    assert_eq!(r.status, 200, "{}\n{}", r.describe(), apache.logs());
    assert!(r.error_code().is_none(), "{}", r.describe());
    assert_eq!(r.text(), "secure ok\n", "{}", r.describe());
    assert_eq!(r.header("x-client-verify").as_deref(), Some("SUCCESS"), "{}", r.describe());
    let dn = r.header("x-client-s-dn").unwrap_or_default();
    assert!(dn.contains(&format!("CN={cn}")), "Apache received the certificate of '{dn}', not {cn}");
    assert_eq!(r.header("x-tls-protocol").as_deref(), Some(protocol), "{}", r.describe());
}

/// Per-path client certificate over `protocol`: with `--allow-renegotiation` the partner
/// receives the bound certificate when it asks after the request, on the same pooled connection
/// as the request before it.
async fn partner_asking_after_the_request_receives_the_bound_certificate(protocol: &str) {
    let w = World::new();
    w.client("alpha");
    let apache = w.apache(protocol);
    let bound = w.bind(&["partner.test", "alpha", "--trust", "ca:partnerca", "--allow-renegotiation"]).json();
    assert_eq!(bound["allow_renegotiation"], true, "{bound}");
    let gw = w.gateway_for_partner().await;

    let open = gw.proxy_get(&url(apache.port(), "/open/whoami.txt")).await;
    assert_eq!(open.status, 200, "{}\n{}", open.describe(), apache.logs());
    assert_eq!(open.header("x-client-verify").as_deref(), Some("NONE"), "not asked yet: {}", open.describe());
    for _ in 0..3 {
        let r = gw.proxy_get(&url(apache.port(), "/secure/whoami.txt")).await;
        assert_apache_got(&r, "alpha", protocol, &apache);
    }
    // One pooled connection (HTTP/1.1) carried all four requests: Apache saw one first request.
    let connections = apache.error_log().matches("AH02034: Initial (No.1) HTTPS request").count();
    assert_eq!(connections, 1, "connections that carried requests\n{}", apache.logs());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls12_partner_renegotiating_for_a_path_receives_the_bound_certificate() {
    partner_asking_after_the_request_receives_the_bound_certificate("TLSv1.2").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls13_partner_asking_by_post_handshake_auth_receives_the_bound_certificate() {
    partner_asking_after_the_request_receives_the_bound_certificate("TLSv1.3").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rustls_route_meeting_a_renegotiation_answers_renegotiation_required_with_the_command() {
    let w = World::new();
    w.client("alpha");
    let apache = w.apache("TLSv1.2");
    w.bind(&["partner.test", "alpha", "--trust", "ca:partnerca"]);
    let gw = w.gateway_for_partner().await;
    let r = gw.proxy_get(&url(apache.port(), "/secure/whoami.txt")).await;
    let body = r.gateway_error(502, "upstream-renegotiation-required");
    let hint = body["hint"].as_str().unwrap();
    assert!(hint.contains("after the request"), "{hint}");
    assert!(
        hint.contains("certgate bind partner.test alpha --trust ca:partnerca --allow-renegotiation"),
        "the hint gives the exact command: {hint}"
    );
    // The paths that need no certificate still work on that route.
    let open = gw.proxy_get(&url(apache.port(), "/open/whoami.txt")).await;
    assert_eq!(open.status, 200, "{}", open.describe());
    // The probe says the same, with the same command.
    let config = GatewayConfig::new().resolve(&["partner.test"]).write(&w.env);
    let target = format!("https://partner.test:{}", apache.port());
    let args = ["--json", "--config", config.to_str().unwrap(), "probe", &target, "--path", "/secure/whoami.txt"];
    let run = w.env.run(&args);
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    let report = run.json();
    let problem =
        report["problems"].as_array().unwrap().iter().find(|p| p["code"] == "upstream-renegotiation-required");
    let problem = problem.unwrap_or_else(|| panic!("{report:#}"));
    assert!(
        problem.to_string().contains("certgate bind partner.test alpha --trust ca:partnerca --allow-renegotiation"),
        "{problem:#}"
    );

    // Running the command from the hint fixes it.
    w.bind(&["partner.test", "alpha", "--trust", "ca:partnerca", "--allow-renegotiation"]);
    let fixed = wait_until(RELOAD_LIMIT, async || {
        let r = gw.proxy_get(&url(apache.port(), "/secure/whoami.txt")).await;
        (r.status == 200).then_some(r)
    })
    .await
    .unwrap_or_else(|| panic!("still failing {RELOAD_LIMIT:?} after allowing renegotiation\n{}", gw.log()));
    assert_apache_got(&fixed, "alpha", "TLSv1.2", &apache);
}

/// A named service (`/svc/NAME`) to such a partner: the hint's command names the service's
/// binding, running it as given fixes the service, and `service add --allow-renegotiation` sets
/// the same from the start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_named_service_meeting_a_renegotiation_gets_a_command_that_fixes_it() {
    let w = World::new();
    w.client("alpha");
    let apache = w.apache("TLSv1.2");
    let base = format!("https://partner.test:{}", apache.port());
    w.cli(&["service", "add", "Iis.Orders", "--url", &base, "--cert", "alpha", "--trust", "ca:partnerca"]);
    let gw = w.gateway_for_partner().await;
    let r = gw.service("GET", "Iis.Orders", "/secure/whoami.txt", &[], Vec::new()).await;
    let body = r.gateway_error(502, "upstream-renegotiation-required");
    let hint = body["hint"].as_str().unwrap();
    let command = "certgate bind service:Iis.Orders alpha --trust ca:partnerca --allow-renegotiation";
    assert!(hint.contains(command), "the hint gives the exact command: {hint}");

    // The command as the hint gives it (without "certgate").
    let before = gw.revision().await;
    let args: Vec<&str> = command.split(' ').skip(1).collect();
    let bound = w.cli(&args).json();
    assert_eq!(
        (bound["destination"].as_str(), bound["allow_renegotiation"].as_bool()),
        (Some("service:Iis.Orders"), Some(true))
    );
    wait_until(RELOAD_LIMIT, async || (gw.revision().await > before).then_some(())).await.expect("reloaded");
    let r = gw.service("GET", "Iis.Orders", "/secure/whoami.txt", &[], Vec::new()).await;
    assert_apache_got(&r, "alpha", "TLSv1.2", &apache);
    let listed = w.cli(&["service", "list"]).json();
    assert_eq!(listed[0]["url"], base.as_str(), "the URL stays the service's: {listed}");
    assert_eq!(listed[0]["binding"]["allow_renegotiation"], true, "{listed}");

    // Set with the service from the start; a service that does not exist cannot be bound.
    let added = w
        .cli(&[
            "service",
            "add",
            "Iis.Other",
            "--url",
            &base,
            "--cert",
            "alpha",
            "--trust",
            "ca:partnerca",
            "--allow-renegotiation",
        ])
        .json();
    assert_eq!(added["binding"]["allow_renegotiation"], true, "{added}");
    // export-config keeps it, and applying the export changes nothing.
    let export = w.env.dir.path().join("export.toml");
    w.cli(&["export-config", "-o", export.to_str().unwrap()]);
    let text = std::fs::read_to_string(&export).unwrap();
    assert_eq!(text.matches("allow_renegotiation = true").count(), 2, "{text}");
    let plan = w.cli(&["apply", export.to_str().unwrap(), "--dry-run"]).json();
    let steps = plan["steps"].as_array().unwrap_or_else(|| panic!("{plan}"));
    assert!(steps.iter().all(|s| s["action"] == "unchanged"), "the export applies as no change: {plan:#}");
    w.env.run(&["--json", "bind", "service:Nobody", "alpha", "--allow-renegotiation"]).refused(4, "not-found");
    w.env
        .run(&["--json", "service", "add", "Iis.Bad", "--url", &base, "--no-cert", "--allow-renegotiation"])
        .refused(2, "usage");
}

/// An RSA 1024 client certificate from the client CA's intermediate, made with OpenSSL (rcgen
/// and aws-lc-rs do not make RSA keys that small): (certificate PEM, PKCS#8 key PEM).
fn rsa1024_leaf(ca: &TestCa, cn: &str) -> (String, String) {
    use openssl::asn1::Asn1Time;
    use openssl::bn::BigNum;
    use openssl::hash::MessageDigest;
    use openssl::pkey::PKey;
    use openssl::x509::extension::{BasicConstraints, ExtendedKeyUsage, KeyUsage};
    use openssl::x509::{X509NameBuilder, X509};
    let key = PKey::from_rsa(openssl::rsa::Rsa::generate(1024).unwrap()).unwrap();
    let issuer_cert = X509::from_pem(ca.intermediate.cert_pem.as_bytes()).unwrap();
    let issuer_key = PKey::private_key_from_pem(ca.intermediate.key_pem.as_bytes()).unwrap();
    let mut name = X509NameBuilder::new().unwrap();
    name.append_entry_by_text("CN", cn).unwrap();
    name.append_entry_by_text("O", "certgate tests").unwrap();
    let name = name.build();
    let mut b = X509::builder().unwrap();
    b.set_version(2).unwrap();
    let serial = BigNum::from_u32(rand_serial()).unwrap().to_asn1_integer().unwrap();
    b.set_serial_number(&serial).unwrap();
    b.set_subject_name(&name).unwrap();
    b.set_issuer_name(issuer_cert.subject_name()).unwrap();
    b.set_pubkey(&key).unwrap();
    b.set_not_before(&Asn1Time::days_from_now(0).unwrap()).unwrap();
    b.set_not_after(&Asn1Time::days_from_now(365).unwrap()).unwrap();
    b.append_extension(BasicConstraints::new().build().unwrap()).unwrap();
    b.append_extension(KeyUsage::new().critical().digital_signature().build().unwrap()).unwrap();
    b.append_extension(ExtendedKeyUsage::new().client_auth().build().unwrap()).unwrap();
    b.sign(&issuer_key, MessageDigest::sha256()).unwrap();
    let cert = b.build();
    (
        String::from_utf8(cert.to_pem().unwrap()).unwrap(),
        String::from_utf8(key.private_key_to_pem_pkcs8().unwrap()).unwrap(),
    )
}

fn rand_serial() -> u32 {
    let mut b = [0u8; 4];
    openssl::rand::rand_bytes(&mut b).unwrap();
    u32::from_be_bytes(b) >> 1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rsa_1024_identity_imports_with_weak_key_and_reaches_a_seclevel_0_partner_through_openssl() {
    let w = World::new();
    let (cert_pem, key_pem) = rsa1024_leaf(&w.client_ca, "legacy");
    let file = w.env.file("legacy.pem", format!("{cert_pem}{key_pem}{}", w.client_ca.intermediate.cert_pem));
    let imported = w.cli(&["cert", "import", "legacy", file.to_str().unwrap()]).json();
    assert_eq!((imported["key_type"].as_str(), imported["key_bits"].as_u64()), (Some("rsa"), Some(1024)));
    assert_eq!(imported["warnings"], serde_json::json!(["weak-key"]), "{imported}");
    assert_eq!(imported["engine"], "openssl", "{imported}");
    assert!(imported["engine_reason"].as_str().unwrap().contains("RSA 1024-bit"), "{imported}");
    let check = w.env.run(&["--json", "cert", "check", "legacy"]);
    let report = &check.json()[0];
    assert_eq!(report["key"]["matches"], true, "{report}");
    assert_eq!(report["engine"], "openssl", "{report}");
    let shown = w.cli(&["cert", "show", "legacy"]);
    assert_eq!(shown.json()["engine"], "openssl");
    let text = w.env.run(&["cert", "show", "legacy"]);
    assert!(text.stdout.contains("engine       openssl: "), "{}", text.stdout);

    let server = w.partner_ca.server(&["partner.test"]);
    let apache = Apache::start(&ApacheSpec {
        ciphers: "DEFAULT@SECLEVEL=0",
        at_handshake: true,
        ..ApacheSpec::per_path(&server, &w.partner_ca, &w.client_ca, "TLSv1.2")
    });
    w.bind(&["partner.test", "legacy", "--trust", "ca:partnerca"]);
    let gw = w.gateway_for_partner().await;
    let r = gw.proxy_get(&url(apache.port(), "/secure/whoami.txt")).await;
    assert_apache_got(&r, "legacy", "TLSv1.2", &apache);
}

/// One request through a binding of partner.test, as (status, Certgate-Error, message).
async fn outcome(w: &World, gw: &Gateway, port: u16, bind: &[&str]) -> (u16, Option<String>, String) {
    let before = gw.revision().await;
    w.bind(bind);
    let reloaded = wait_until(RELOAD_LIMIT, async || (gw.revision().await > before).then_some(())).await;
    assert!(reloaded.is_some(), "the gateway did not reload\n{}", gw.log());
    let r = gw.proxy_get(&url(port, "/secure/whoami.txt")).await;
    let message = if r.error_code().is_some() { r.message() } else { r.text() };
    (r.status, r.error_code(), message)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trust_failures_on_an_openssl_route_give_the_same_codes_and_messages_as_on_rustls() {
    let w = World::new();
    w.client("alpha");
    let other_ca = TestCa::new("other");
    let other_root = w.env.file("other-root.pem", &other_ca.root.cert_pem);
    w.cli(&["trust", "add", "otherca", other_root.to_str().unwrap()]);
    // A partner whose certificate is for another name, and one whose key is pinned elsewhere.
    let server = w.partner_ca.server(&["partner.test"]);
    let apache = Apache::start(&ApacheSpec::per_path(&server, &w.partner_ca, &w.client_ca, "TLSv1.2"));
    let port = apache.port();
    w.bind(&["partner.test", "alpha", "--trust", "ca:partnerca"]);
    let gw = w.gateway_for_partner().await;
    let wrong_pin = w.partner_ca.server(&["partner.test"]).spki_pin();
    let cases: Vec<(&str, Vec<&str>, &str)> = vec![
        ("untrusted CA", vec!["--trust", "ca:otherca"], "upstream-untrusted"),
        ("name mismatch", vec!["--trust", "ca:partnerca", "--sni", "elsewhere.test"], "upstream-name-mismatch"),
        ("pin mismatch", vec!["--trust", "ca:partnerca", "--pin", wrong_pin.as_str()], "upstream-untrusted"),
    ];
    for (what, extra, code) in cases {
        let mut rustls = vec!["partner.test", "alpha"];
        rustls.extend(extra.iter().copied());
        let mut openssl = rustls.clone();
        openssl.push("--allow-renegotiation");
        let by_rustls = outcome(&w, &gw, port, &rustls).await;
        let by_openssl = outcome(&w, &gw, port, &openssl).await;
        assert_eq!(by_rustls.1.as_deref(), Some(code), "{what} on rustls: {by_rustls:?}");
        assert_eq!(by_openssl, by_rustls, "{what}: OpenSSL route vs rustls route");
    }
    let untrusted = outcome(&w, &gw, port, &["partner.test", "alpha", "--trust", "ca:otherca"]).await;
    assert!(untrusted.2.contains("partner root"), "names the missing issuer: {untrusted:?}");

    // The partner refuses a certificate from a CA it does not trust, after the request.
    let stranger = other_ca.leaf(LeafSpec::client("stranger"));
    let before = gw.revision().await;
    w.env.import_minted("stranger", &stranger, &other_ca.intermediate.cert_pem).ok();
    // The import is a revision of its own: `outcome` must not take its reload for the bind's.
    let reloaded = wait_until(RELOAD_LIMIT, async || (gw.revision().await > before).then_some(())).await;
    assert!(reloaded.is_some(), "the gateway did not reload after the import\n{}", gw.log());
    let refused =
        outcome(&w, &gw, port, &["partner.test", "stranger", "--trust", "ca:partnerca", "--allow-renegotiation"]).await;
    assert_eq!(refused.0, 502, "{refused:?}\n{}", apache.logs());
    assert_eq!(refused.1.as_deref(), Some("upstream-rejected-certificate"), "{refused:?}\n{}", apache.logs());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_under_continuous_requests_on_an_openssl_route_fails_none() {
    const TASKS: usize = 3;
    const MAX_PER_TASK: usize = 300;
    let w = World::new();
    w.client("alpha");
    let apache = Arc::new(w.apache("TLSv1.2"));
    w.bind(&["partner.test", "alpha", "--trust", "ca:partnerca", "--allow-renegotiation"]);
    let gw = w.gateway_for_partner().await;
    let target = url(apache.port(), "/secure/whoami.txt");
    let first = gw.proxy_get(&target).await;
    assert_apache_got(&first, "alpha", "TLSv1.2", &apache);

    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let seen_new = Arc::new(AtomicBool::new(false));
    let deadline = Instant::now() + Duration::from_secs(40);
    let mut tasks = Vec::new();
    for _ in 0..TASKS {
        let (client, stop, done, target, seen_new) =
            (gw.client(), stop.clone(), done.clone(), target.clone(), seen_new.clone());
        tasks.push(tokio::spawn(async move {
            let mut failures = Vec::new();
            for _ in 0..MAX_PER_TASK {
                if stop.load(Ordering::SeqCst) || Instant::now() > deadline {
                    break;
                }
                let r = client.proxy_get(&target).await;
                if r.status != 200 || r.header("x-client-verify").as_deref() != Some("SUCCESS") {
                    failures.push(r.describe());
                } else if r.header("x-client-s-dn").unwrap_or_default().contains("CN=alpha-renewed") {
                    seen_new.store(true, Ordering::SeqCst);
                }
                done.fetch_add(1, Ordering::SeqCst);
            }
            failures
        }));
    }
    let warm = wait_until(Duration::from_secs(15), async || (done.load(Ordering::SeqCst) >= 30).then_some(())).await;
    assert!(warm.is_some(), "only {} requests in 15 s before the rotation", done.load(Ordering::SeqCst));
    let new = w.client_ca.leaf(LeafSpec::client("alpha-renewed"));
    let file =
        w.env.file("alpha-new.pem", format!("{}{}{}", new.cert_pem, new.key_pem, w.client_ca.intermediate.cert_pem));
    w.cli(&["cert", "rotate", "alpha", file.to_str().unwrap()]);
    // The gateway replaces the route (new engine, new pool) within a second; requests under way
    // finish on the old connections. Keep the load on a while after the switch.
    let switched = wait_until(RELOAD_LIMIT, async || seen_new.load(Ordering::SeqCst).then_some(())).await;
    let at_switch = done.load(Ordering::SeqCst);
    wait_until(Duration::from_secs(10), async || (done.load(Ordering::SeqCst) >= at_switch + 30).then_some(())).await;
    stop.store(true, Ordering::SeqCst);
    let mut failures = Vec::new();
    for t in tasks {
        failures.extend(t.await.expect("a request task panicked (see above)"));
    }
    let total = done.load(Ordering::SeqCst);
    assert!(failures.is_empty(), "{} of {total} requests failed; first: {}", failures.len(), failures[0]);
    assert!(total >= 60, "only {total} requests were made");
    assert!(
        switched.is_some(),
        "no request reached Apache with the renewed certificate {RELOAD_LIMIT:?} after the rotation"
    );
    let after = gw.proxy_get(&target).await;
    assert_apache_got(&after, "alpha-renewed", "TLSv1.2", &apache);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls13_partner_cannot_ask_a_rustls_route_and_probe_names_renegotiation_required() {
    let w = World::new();
    w.client("alpha");
    let apache = w.apache("TLSv1.3");
    w.bind(&["partner.test", "alpha", "--trust", "ca:partnerca"]);
    let gw = w.gateway_for_partner().await;
    // rustls does not offer post-handshake auth, so Apache cannot ask and answers in its own
    // words: its 403 reaches the application unchanged (docs/decisions.md, "A second TLS engine").
    let r = gw.proxy_get(&url(apache.port(), "/secure/whoami.txt")).await;
    assert_eq!(r.status, 403, "{}", r.describe());
    assert!(r.error_code().is_none(), "{}", r.describe());
    assert!(apache.error_log_with("post-handshake").await.contains("post-handshake"), "{}", apache.logs());

    // The probe recognises it and names the option.
    let config = GatewayConfig::new().resolve(&["partner.test"]).write(&w.env);
    let target = format!("https://partner.test:{}", apache.port());
    let probe = |w: &World| {
        w.env.run(&["--json", "--config", config.to_str().unwrap(), "probe", &target, "--path", "/secure/whoami.txt"])
    };
    let run = probe(&w);
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    let report = run.json();
    let problem = report["problems"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["code"] == "upstream-renegotiation-required")
        .unwrap_or_else(|| panic!("{report:#}"));
    assert!(problem.to_string().contains("--allow-renegotiation"), "{problem:#}");

    // With the option the probe goes through (OpenSSL, post-handshake auth).
    w.bind(&["partner.test", "alpha", "--trust", "ca:partnerca", "--allow-renegotiation"]);
    let run = probe(&w);
    assert_eq!(run.code, 0, "{}\n{}\n{}", run.stdout, run.stderr, apache.logs());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renegotiation_is_allowed_once_per_connection() {
    let w = World::new();
    w.client("alpha");
    let apache = w.apache("TLSv1.2");
    w.bind(&["partner.test", "alpha", "--trust", "ca:partnerca", "--allow-renegotiation"]);
    let gw = w.gateway_for_partner().await;
    let first = gw.proxy_get(&url(apache.port(), "/secure/whoami.txt")).await;
    assert_apache_got(&first, "alpha", "TLSv1.2", &apache);
    // The same pooled connection: Apache asks to renegotiate a second time and is refused (a
    // no_renegotiation alert, as Go's RenegotiateOnceAsClient does); it answers in its own words.
    let second = gw.proxy_get(&url(apache.port(), "/deeper/whoami.txt")).await;
    assert_ne!(second.status, 200, "{}\n{}", second.describe(), apache.logs());
    let log = apache.error_log_with("no renegotiation").await;
    assert_eq!(log.matches("AH02034: Initial (No.1) HTTPS request").count(), 1, "one connection\n{}", apache.logs());
    assert!(log.contains("no renegotiation"), "Apache saw the refusal\n{}", apache.logs());
    // A new connection may renegotiate once: /deeper first works.
    let gw2 = w.gateway_for_partner().await;
    let fresh = gw2.proxy_get(&url(apache.port(), "/deeper/whoami.txt")).await;
    assert_eq!(fresh.status, 200, "{}\n{}", fresh.describe(), apache.logs());
    assert!(fresh.header("x-client-s-dn").unwrap_or_default().contains("CN=alpha"), "{}", fresh.describe());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openssl_route_resumes_its_tls_sessions() {
    for protocol in ["TLSv1.2", "TLSv1.3"] {
        let w = World::new();
        w.client("alpha");
        let server = w.partner_ca.server(&["partner.test"]);
        let apache = Apache::start(&ApacheSpec {
            keep_alive: false,
            ..ApacheSpec::per_path(&server, &w.partner_ca, &w.client_ca, protocol)
        });
        w.bind(&["partner.test", "alpha", "--trust", "ca:partnerca", "--allow-renegotiation"]);
        let gw = w.gateway_for_partner().await;
        let mut seen = Vec::new();
        for _ in 0..3 {
            let r = gw.proxy_get(&url(apache.port(), "/open/whoami.txt")).await;
            assert_eq!(r.status, 200, "{protocol}: {}", r.describe());
            seen.push(r.header("x-tls-session").unwrap_or_default());
        }
        // Apache closes after each response (KeepAlive Off): three handshakes, the later ones
        // resumed from the route's session cache.
        assert_eq!(seen, ["Initial", "Resumed", "Resumed"], "{protocol}\n{}", apache.logs());
    }
}
