//! The web console in a real browser: `certgate serve` on a fresh store, an admin token made
//! with the CLI, then `tests/console/e2e.mjs` drives Debian's Chromium (through playwright-core,
//! never a downloaded browser) as a person would: sign in, a PFX refused for its wrong password,
//! the same PFX imported, the dashboard, the certificate page, a binding, a trust anchor, an app
//! with a grant, the audit log. Afterwards the CLI must see in the store exactly what the browser did.
//!
//! Needs node (20+), `npm ci` in tests/console and /usr/bin/chromium (`.ci/run` installs them);
//! when one is missing the test fails with what to install, it never skips. Screenshots go to
//! `$CERTGATE_SCREENSHOTS` when set (e.g. `CERTGATE_SCREENSHOTS=docs/screenshots`, relative to
//! the repository), else to a temporary directory.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::gateway::{Gateway, GatewayConfig};
use crate::support::upstream::{Upstream, UpstreamConfig};
use crate::support::{fixtures, Env, LeafSpec, TestCa};

const PFX: &str = "interop/openssl3-legacy-rsa2048.p12";
const PFX_PASSWORD: &str = "interop-pass";
/// The leaf inside the PFX (tests/fixtures/interop/expected.json).
const PFX_LEAF: &str = "interop/pki/leaf-rsa2048.crt";
const CERT: &str = "partner-client";
/// The same PFX uploaded a second time, under this name: imported, with a warning.
const DUPLICATE: &str = "partner-client-again";
const HOST: &str = "api.partner.example";
const TOKEN_NAME: &str = "e2e";
const CHROMIUM: &str = "/usr/bin/chromium";
/// The whole browser scenario; each browser action inside has its own 30 s limit.
const E2E_LIMIT: Duration = Duration::from_secs(240);

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn console_dir() -> PathBuf {
    repo().join("tests/console")
}

/// Fail (never skip) with what to install when a tool the browser test needs is missing.
fn require_tools() {
    let mut missing = Vec::new();
    match Command::new("node").arg("--version").output() {
        Ok(out) if out.status.success() => {
            let version = String::from_utf8_lossy(&out.stdout).trim().to_string();
            let major: u32 =
                version.trim_start_matches('v').split('.').next().and_then(|m| m.parse().ok()).unwrap_or(0);
            if major < 20 {
                missing.push(format!("Node.js 20 or newer (found {version}): apt-get install nodejs npm"));
            }
        }
        _ => missing.push("node (Node.js 20 or newer): apt-get install nodejs npm".to_string()),
    }
    if !console_dir().join("node_modules/playwright-core/package.json").exists() {
        missing.push("playwright-core: run 'npm ci' in tests/console".to_string());
    }
    if !Path::new(CHROMIUM).exists() {
        missing.push(format!("Chromium at {CHROMIUM}: apt-get install chromium"));
    }
    assert!(
        missing.is_empty(),
        "the console browser test cannot run; install:\n  - {}\n(.ci/run installs all of them)",
        missing.join("\n  - ")
    );
}

/// Where the screenshots go: `$CERTGATE_SCREENSHOTS` (relative paths from the repository), or
/// a folder of the test's scratch directory.
fn screenshot_dir(env: &Env) -> PathBuf {
    match std::env::var_os("CERTGATE_SCREENSHOTS").filter(|v| !v.is_empty()) {
        Some(dir) => {
            let dir = PathBuf::from(dir);
            if dir.is_absolute() {
                dir
            } else {
                repo().join(dir)
            }
        }
        None => env.dir.path().join("screenshots"),
    }
}

/// The leaf's notAfter as YYYY-MM-DD, read from the certificate the PFX was made from.
fn pfx_expiry_date() -> String {
    let pem = std::fs::read(fixtures().join(PFX_LEAF)).unwrap();
    let (_, block) = x509_parser::pem::parse_x509_pem(&pem).expect("the fixture leaf is PEM");
    let cert = block.parse_x509().expect("the fixture leaf parses");
    cert.validity().not_after.to_datetime().date().to_string()
}

fn find<'a>(list: &'a Value, key: &str, value: &str) -> Option<&'a Value> {
    list.as_array().and_then(|a| a.iter().find(|v| v[key] == value))
}

/// Run `node e2e.mjs ARGS`, killing it after `limit`; its output goes through files so a
/// chatty child never blocks on a full pipe.
fn run_e2e(args: &[String], scratch: &Path, limit: Duration) -> (Option<i32>, String) {
    run_node("e2e.mjs", args, scratch, limit)
}

/// Run `tests/console/SCRIPT` with node, bounded in time; its exit code and output.
fn run_node(script: &str, args: &[String], scratch: &Path, limit: Duration) -> (Option<i32>, String) {
    let out_path = scratch.join(format!("{script}-output.txt"));
    let out = std::fs::File::create(&out_path).unwrap();
    let mut child = Command::new("node")
        .arg(console_dir().join(script))
        .args(args)
        .current_dir(console_dir())
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .expect("spawn node");
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status.code();
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    (status, std::fs::read_to_string(&out_path).unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_imports_binds_and_audits_in_a_real_browser() {
    require_tools();
    let env = Env::new();

    // A store that has seen some life, so the dashboard has warnings to show: one certificate
    // expiring in 12 days, one expired, one whose intermediate CA is missing.
    let acme = TestCa::new("Acme");
    let globex = TestCa::new("Globex");
    env.import_minted("orders-api", &acme.leaf(LeafSpec::client("orders").expiring_in_days(12)), &acme.chain_pem())
        .ok();
    env.import_minted("legacy-soap", &acme.leaf(LeafSpec::client("legacy-soap").expired()), &acme.chain_pem()).ok();
    env.import_minted("payroll", &globex.leaf(LeafSpec::client("payroll")), "").ok();

    let gw = Gateway::start(&env, &GatewayConfig::new()).await;
    let created = env.run(&["--json", "token", "create", TOKEN_NAME, "--role", "admin"]);
    created.ok();
    let token = created.json()["token"].as_str().expect("token create prints the token").to_string();

    // The partner's private CA, which the browser adds as a trust anchor.
    let anchor = env.file("partner-root.pem", &acme.root.cert_pem);
    let shots = screenshot_dir(&env);
    let expiry = pfx_expiry_date();
    let args: Vec<String> = [
        ("--url", gw.admin_url()),
        ("--token", token),
        ("--pfx", fixtures().join(PFX).display().to_string()),
        ("--password", PFX_PASSWORD.to_string()),
        ("--host", HOST.to_string()),
        ("--screenshots", shots.display().to_string()),
        ("--name", CERT.to_string()),
        ("--expect-expiry", expiry.clone()),
        ("--anchor", anchor.display().to_string()),
        // total, expiring within 30 days, expired, with other problems
        ("--expect-counts", "4,1,1,1".to_string()),
        ("--expect-status", "legacy-soap=Expired".to_string()),
        ("--expect-status", "orders-api=Expires in".to_string()),
        ("--expect-status", "payroll=Incomplete chain".to_string()),
        ("--expect-status", format!("{CERT}=OK")),
        // The HTTP_PROXY example names the proxy listener serve really uses (not 9780).
        ("--expect-proxy", gw.proxy.to_string()),
        ("--duplicate", DUPLICATE.to_string()),
        // The binding names a second candidate, after the uploaded certificate.
        ("--also", "orders-api".to_string()),
        // The partner asks for the certificate after the request (IIS): ticked under Advanced.
        ("--renegotiate", "yes".to_string()),
    ]
    .into_iter()
    .flat_map(|(k, v)| [k.to_string(), v])
    .collect();
    let scratch = env.dir.path().to_path_buf();
    let (code, output) = tokio::task::spawn_blocking(move || run_e2e(&args, &scratch, E2E_LIMIT)).await.unwrap();
    assert_eq!(
        code,
        Some(0),
        "the browser scenario failed (exit {code:?}; screenshots in {})\n--- e2e.mjs output:\n{output}\n--- certgate serve (tail):\n{}",
        shots.display(),
        gw.log()
    );
    assert!(output.contains("console e2e passed"), "e2e.mjs exited 0 without passing:\n{output}");
    for name in ["sign-in", "dashboard", "certificate", "upload-refused", "bindings", "apps", "audit"] {
        let png = shots.join(format!("{name}.png"));
        let bytes = std::fs::read(&png).unwrap_or_else(|e| panic!("screenshot {} missing: {e}", png.display()));
        assert!(bytes.starts_with(b"\x89PNG") && bytes.len() > 10_000, "{} is not a real screenshot", png.display());
    }

    // What the browser did, as the CLI sees it.
    let certs = env.run(&["--json", "cert", "list"]).ok().json();
    // The four, plus the second upload of the PFX (a warning, not a refusal).
    assert_eq!(certs.as_array().map(Vec::len), Some(5), "the wrong-password upload must add nothing: {certs}");
    let again = find(&certs, "name", DUPLICATE).unwrap_or_else(|| panic!("'{DUPLICATE}' is not in the store: {certs}"));
    assert_eq!(again["id"], find(&certs, "name", CERT).unwrap()["id"]);
    let cert = find(&certs, "name", CERT).unwrap_or_else(|| panic!("'{CERT}' is not in the store: {certs}"));
    assert_eq!(
        cert["id"], "0aa2b06c4c2c12a1d9bbc5258b021810fd9bdee7c7b43dc26971e4d909d5f9c5",
        "the PFX's leaf: {cert}"
    );
    assert_eq!(cert["owner"], "e2e test team");
    assert!(cert["not_after"].as_str().is_some_and(|t| t.starts_with(&expiry)), "{cert}");
    assert!(cert["bindings"].as_array().is_some_and(|b| b.iter().any(|d| d == HOST)), "{cert}");

    let bindings = env.run(&["--json", "bindings"]).ok().json();
    let binding = find(&bindings, "destination", HOST).unwrap_or_else(|| panic!("no binding for {HOST}: {bindings}"));
    assert_eq!(binding["certificate"], CERT);
    assert_eq!(binding["certificates"], serde_json::json!([CERT, "orders-api"]), "{binding}");
    assert_eq!(binding["trust"], "public");
    assert_eq!(binding["allow_renegotiation"], true, "ticked in the browser: {binding}");
    let services = env.run(&["--json", "service", "list"]).ok().json();
    let service = find(&services, "name", "E2E.Iis").unwrap_or_else(|| panic!("no service E2E.Iis: {services}"));
    assert_eq!(service["binding"]["certificates"], serde_json::json!([CERT]), "{service}");
    assert_eq!(service["binding"]["allow_renegotiation"], true, "ticked in the browser: {service}");

    let anchors = env.run(&["--json", "trust", "list"]).ok().json();
    let added = find(&anchors, "name", "partner-root")
        .unwrap_or_else(|| panic!("the anchor added in the browser is missing: {anchors}"));
    assert_eq!(added["certificates"][0]["id"], acme.root.id(), "{added}");

    let apps = env.run(&["--json", "app", "list"]).ok().json();
    let app =
        find(&apps, "name", "e2e-app").unwrap_or_else(|| panic!("the app added in the browser is missing: {apps}"));
    assert_eq!(app["grants"], serde_json::json!([CERT]));

    let audit = env.run(&["--json", "audit", "--limit", "100"]).ok().json();
    let entries = audit.as_array().expect("audit is a list");
    let actor = format!("api:{TOKEN_NAME}");
    let by_browser: Vec<(&str, &str)> = entries
        .iter()
        .filter(|e| e["actor"] == actor.as_str())
        .map(|e| (e["action"].as_str().unwrap_or(""), e["target"].as_str().unwrap_or("")))
        .collect();
    // Newest first: the second upload of the PFX, then exactly one import (the refused upload
    // left no trace), the bind, the anchor, the app and its grant.
    assert_eq!(
        by_browser,
        vec![
            ("cert.import", DUPLICATE),
            ("app.grant", "e2e-app"),
            ("app.add", "e2e-app"),
            ("trust.add", "partner-root"),
            ("service.add", "E2E.Iis"),
            ("bind", HOST),
            ("cert.import", CERT)
        ],
        "the audit entries made through the console: {audit}"
    );
}

/// The Test connection button on the bindings and services page, in Chromium: a binding whose
/// certificate the partner does not accept, one it accepts, and a service. The partners are the
/// in-process rustls partner (it names the client CA it accepts).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_connection_shows_the_report_in_plain_words_in_a_real_browser() {
    require_tools();
    let env = Env::new();
    let partner_ca = TestCa::new("partner");
    let client_ca = TestCa::new("client");
    let other_ca = TestCa::new("other");
    env.import_minted("alpha", &client_ca.leaf(LeafSpec::client("alpha")), &client_ca.intermediate.cert_pem).ok();
    env.import_minted("stranger", &other_ca.leaf(LeafSpec::client("stranger")), &other_ca.intermediate.cert_pem).ok();
    let root = env.file("partner-root.pem", &partner_ca.root.cert_pem);
    env.run(&["trust", "add", "partnerca", root.to_str().unwrap()]).ok();
    let server = partner_ca.server(&["partner.test"]);
    let working = Upstream::start(UpstreamConfig::new(&server, &partner_ca).require_client_cert(&client_ca)).await;
    let failing = Upstream::start(UpstreamConfig::new(&server, &partner_ca).require_client_cert(&client_ca)).await;
    let good = format!("partner.test:{}", working.port());
    let bad = format!("partner.test:{}", failing.port());
    env.run(&["bind", &good, "alpha", "--trust", "ca:partnerca"]).ok();
    env.run(&["bind", &bad, "stranger", "--trust", "ca:partnerca"]).ok();
    // A binding whose certificate's sealed key is damaged: its route is unavailable.
    env.import_minted("broken", &client_ca.leaf(LeafSpec::client("broken")), &client_ca.intermediate.cert_pem).ok();
    let unavailable = "broken.partner.test".to_string();
    env.run(&["bind", &unavailable, "broken"]).ok();
    crate::gateway::damage_sealed_key(&env, "broken").await;
    let url = format!("https://{good}/echo");
    env.run(&["service", "add", "Billing.Svc", "--url", &url, "--cert", "alpha", "--trust", "ca:partnerca"]).ok();
    let created = env.run(&["--json", "token", "create", "tester", "--role", "operator"]);
    created.ok();
    let token = created.json()["token"].as_str().unwrap().to_string();
    let gw = Gateway::start(&env, &GatewayConfig::new().resolve(&["partner.test"])).await;
    let before = env.run(&["--json", "bindings"]).ok().stdout.clone();

    let shots = screenshot_dir(&env);
    let args: Vec<String> = [
        ("--url", gw.admin_url()),
        ("--token", token),
        ("--screenshots", shots.display().to_string()),
        ("--failing", bad),
        ("--working", good),
        ("--service", "Billing.Svc".to_string()),
        ("--unavailable", unavailable),
    ]
    .into_iter()
    .flat_map(|(k, v)| [k.to_string(), v])
    .collect();
    let scratch = env.dir.path().to_path_buf();
    let (code, output) =
        tokio::task::spawn_blocking(move || run_node("probe.mjs", &args, &scratch, E2E_LIMIT)).await.unwrap();
    assert_eq!(
        code,
        Some(0),
        "the browser scenario failed (exit {code:?})\n--- probe.mjs output:\n{output}\n--- certgate serve (tail):\n{}",
        gw.log()
    );
    assert!(output.contains("console probe passed"), "probe.mjs exited 0 without passing:\n{output}");
    for name in ["probe-failing", "probe-working"] {
        let png = shots.join(format!("{name}.png"));
        let bytes = std::fs::read(&png).unwrap_or_else(|e| panic!("screenshot {} missing: {e}", png.display()));
        assert!(bytes.starts_with(b"\x89PNG") && bytes.len() > 10_000, "{} is not a real screenshot", png.display());
    }
    // The partners saw what was clicked: one request for the working binding, one for the service.
    assert_eq!(working.request_count(), 2, "the working partner answered the binding's and the service's probe");
    assert_eq!(failing.request_count(), 0, "the failing partner refused the certificate");
    assert_eq!(env.run(&["--json", "bindings"]).ok().stdout, before, "testing changed no binding");
}

/// The Expiry page and the renewal flow in Chromium (`tests/console/expiry.mjs`): a certificate
/// 5 days from expiry with its owner, a pinned partner certificate the gateway met 12 days from
/// expiry (marked to act on), a 7-day window, then a renewal started from the page: the CSR
/// downloaded by the browser is signed here by OpenSSL and uploaded back, and the certificate
/// is the new one afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiry_page_and_renewal_with_csr_download_and_upload_in_a_real_browser() {
    require_tools();
    let env = Env::new();
    let partner_ca = TestCa::new("partner");
    let client_ca = TestCa::new("client");
    let billing = client_ca.leaf(LeafSpec::client("billing").expiring_in_days(5));
    env.import_minted("billing", &billing, &client_ca.intermediate.cert_pem).ok();
    env.run(&["cert", "owner", "billing", "--owner", "Team Billing", "--contact", "ops@example.com"]).ok();
    env.import_minted("alpha", &client_ca.leaf(LeafSpec::client("alpha")), &client_ca.intermediate.cert_pem).ok();
    let root = env.file("partner-root.pem", &partner_ca.root.cert_pem);
    env.run(&["trust", "add", "partnerca", root.to_str().unwrap()]).ok();
    let server =
        partner_ca.server_with(&["partner.test"], LeafSpec::client("partner.test").server_only().expiring_in_days(12));
    let up = Upstream::start(UpstreamConfig::new(&server, &partner_ca).require_client_cert(&client_ca)).await;
    let partner = format!("partner.test:{}", up.port());
    env.run(&["bind", &partner, "alpha", "--trust", "ca:partnerca", "--pin", &server.spki_pin()]).ok();
    let created = env.run(&["--json", "token", "create", "renewer", "--role", "admin"]);
    created.ok();
    let token = created.json()["token"].as_str().unwrap().to_string();
    let gw = Gateway::start(&env, &GatewayConfig::new().resolve(&["partner.test"])).await;
    let r = gw.proxy_get(&format!("http://{partner}/echo")).await;
    assert_eq!(r.status, 200, "{}", r.describe());
    let recorded = crate::support::gateway::wait_until(Duration::from_secs(10), async || {
        let v = env.run(&["--json", "expiry"]).json();
        v["items"].as_array().unwrap().iter().any(|i| i["name"] == partner.as_str()).then_some(())
    })
    .await;
    assert!(recorded.is_some(), "the partner certificate is in the store within 10 s");

    let shots = screenshot_dir(&env);
    let exchange = env.dir.path().join("exchange");
    std::fs::create_dir_all(&exchange).unwrap();
    let args: Vec<String> = [
        ("--url", gw.admin_url()),
        ("--token", token),
        ("--screenshots", shots.display().to_string()),
        ("--cert", "billing".to_string()),
        ("--partner", partner.clone()),
        ("--exchange", exchange.display().to_string()),
    ]
    .into_iter()
    .flat_map(|(k, v)| [k.to_string(), v])
    .collect();
    let scratch = env.dir.path().to_path_buf();
    let browser = tokio::task::spawn_blocking(move || run_node("expiry.mjs", &args, &scratch, E2E_LIMIT));

    // The CA: sign the CSR the browser downloaded (OpenSSL with the client intermediate).
    let csr = exchange.join("billing.csr");
    let signed = crate::support::gateway::wait_until(Duration::from_secs(150), async || {
        (csr.exists() || browser.is_finished()).then_some(csr.exists())
    })
    .await;
    if signed == Some(true) {
        let ca_cert = env.file("inter.pem", &client_ca.intermediate.cert_pem);
        let ca_key = env.file("inter.key", &client_ca.intermediate.key_pem);
        let ext = env.file("ext.cnf", "extendedKeyUsage = clientAuth\n");
        let part = exchange.join("issued.part");
        let out = Command::new("openssl")
            .args(["x509", "-req", "-in", csr.to_str().unwrap(), "-CA", ca_cert.to_str().unwrap()])
            .args(["-CAkey", ca_key.to_str().unwrap(), "-CAcreateserial", "-days", "90", "-extfile"])
            .args([ext.to_str().unwrap(), "-out", part.to_str().unwrap()])
            .output()
            .expect("openssl must be installed (apt-get install openssl)");
        assert!(out.status.success(), "openssl x509 -req: {}", String::from_utf8_lossy(&out.stderr));
        std::fs::rename(&part, exchange.join("issued.pem")).unwrap();
    }
    let (code, output) = browser.await.unwrap();
    assert_eq!(
        code,
        Some(0),
        "the browser scenario failed (exit {code:?})\n--- expiry.mjs output:\n{output}\n--- certgate serve (tail):\n{}",
        gw.log()
    );
    assert!(output.contains("console expiry passed"), "expiry.mjs exited 0 without passing:\n{output}");
    for name in ["expiry", "renewal"] {
        let png = shots.join(format!("{name}.png"));
        let bytes = std::fs::read(&png).unwrap_or_else(|e| panic!("screenshot {} missing: {e}", png.display()));
        assert!(bytes.starts_with(b"\x89PNG") && bytes.len() > 10_000, "{} is not a real screenshot", png.display());
    }
    // The store has what the browser did: billing is the renewed certificate, nothing pending.
    let shown = env.run(&["--json", "cert", "show", "billing"]).json();
    assert!(shown["subject"].as_str().unwrap().contains("billing-renewed"), "{shown}");
    assert_eq!(shown["key_type"], "ec-p384");
    assert_ne!(shown["id"], billing.id());
    assert_eq!(env.run(&["--json", "cert", "requests"]).json(), serde_json::json!([]));
    let audit = env.run(&["--json", "audit"]).stdout;
    assert!(audit.contains("api:renewer"), "the request and completion carry the token's name: {audit}");
}
