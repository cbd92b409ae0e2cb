//! Declarative configuration: `certgate apply`, `export-config`, `import-mendix` and
//! `POST /api/v1/apply`, run as a user would, against real stores, a real gateway and nginx.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

use crate::support::api::Api;
use crate::support::gateway::{Gateway, GatewayConfig};
use crate::support::nginx::{self, Nginx};
use crate::support::{Env, LeafSpec, Minted, TestCa};

/// Write `leaf` (with the CA's intermediate) as a PKCS#12 file made by OpenSSL, under `password`.
fn pfx(env: &Env, path: &Path, leaf: &Minted, ca: &TestCa, password: &str) {
    nginx::require("openssl", "openssl", &["version"], "apt-get install openssl");
    let cert = env.file("pfx-leaf.pem", &leaf.cert_pem);
    let key = env.file("pfx-key.pem", &leaf.key_pem);
    let chain = env.file("pfx-chain.pem", &ca.intermediate.cert_pem);
    let out = Command::new("openssl")
        .args(["pkcs12", "-export", "-passout", "env:PFX_PASSWORD", "-in"])
        .arg(&cert)
        .arg("-inkey")
        .arg(&key)
        .arg("-certfile")
        .arg(&chain)
        .arg("-out")
        .arg(path)
        .env("PFX_PASSWORD", password)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "openssl pkcs12 -export: {}", String::from_utf8_lossy(&out.stderr));
}

/// A PEM file holding a minted leaf, its key and its intermediate (no password).
fn pem_file(env: &Env, name: &str, leaf: &Minted, ca: &TestCa) -> PathBuf {
    env.file(name, format!("{}{}{}", leaf.cert_pem, leaf.key_pem, ca.intermediate.cert_pem))
}

fn revision(env: &Env) -> i64 {
    let out = env.run(&["--json", "audit", "--limit", "1"]);
    out.ok();
    out.json().as_array().and_then(|a| a.first()).map(|e| e["revision"].as_i64().unwrap()).unwrap_or(0)
}

/// Everything the store shows: certificates, anchors, bindings, services, apps, audit.
fn state(env: &Env) -> String {
    let mut out = env.snapshot();
    for args in [&["--json", "bindings"][..], &["--json", "service", "list"], &["--json", "app", "list"]] {
        let run = env.run(args);
        run.ok();
        out.push('\n');
        out.push_str(&run.stdout);
    }
    out
}

fn steps(plan: &Value, action: &str) -> Vec<String> {
    let mut v: Vec<String> = plan["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["action"] == action)
        .map(|s| format!("{} {}", s["kind"].as_str().unwrap(), s["name"].as_str().unwrap()))
        .collect();
    v.sort();
    v
}

/// A store declared by a file: three certificates from PEM files, a trust anchor, bindings
/// (one with pins and SNI, one without certificate), two services and two apps with grants.
struct Declared {
    env: Env,
    ca: TestCa,
    file: PathBuf,
}

impl Declared {
    fn new() -> Declared {
        let env = Env::new();
        let ca = TestCa::new("apply");
        let partner = TestCa::new("partner");
        let mut certs = String::new();
        for (i, name) in ["alpha", "beta", "gamma"].iter().enumerate() {
            let leaf = ca.leaf(LeafSpec::client(name));
            pem_file(&env, &format!("{name}.pem"), &leaf, &ca);
            let owner = if i == 0 { "owner = \"team-a\"\n" } else { "" };
            certs.push_str(&format!("[[certificates]]\nname = \"{name}\"\nfile = \"{name}.pem\"\n{owner}\n"));
        }
        env.file("partner-root.pem", &partner.root.cert_pem);
        let pin = partner.root.spki_pin();
        let text = format!(
            r#"{certs}
[[trust_anchors]]
name = "partner-root"
file = "partner-root.pem"

[[bindings]]
destination = "api.partner.test"
certificate = "alpha"
trust = "ca:partner-root"
sni = "api.partner.test"
pins = ["{pin}"]

[[bindings]]
destination = "open.partner.test:8443"
no_cert = true

[[bindings]]
destination = "*.beta.test"
certificate = "beta"

[[services]]
name = "Billing.Invoice"
url = "https://api.partner.test/soap/"
certificate = "gamma"
trust = "private"

[[services]]
name = "Hosted.Rest"
url = "https://api.partner.test/rest"

[[apps]]
name = "billing"
grants = ["alpha", "gamma"]

[[apps]]
name = "reports"
"#
        );
        let file = env.file("store.toml", text);
        Declared { env, ca, file }
    }

    fn apply(&self, extra: &[&str]) -> Value {
        let mut args = vec!["--json", "apply", self.file.to_str().unwrap()];
        args.extend_from_slice(extra);
        let run = self.env.run(&args);
        run.ok();
        run.json()
    }
}

#[test]
fn apply_twice_plans_nothing_and_audits_one_revision_with_one_apply_id() {
    let d = Declared::new();
    let before = revision(&d.env);
    let dry = d.apply(&["--dry-run"]);
    assert_eq!(dry["applied"], false);
    assert_eq!(revision(&d.env), before, "a dry run changes nothing");
    assert_eq!(dry["summary"], json!({"create": 13, "replace": 0, "remove": 0, "unchanged": 0}), "{dry}");

    let first = d.apply(&[]);
    assert_eq!(first["summary"]["create"], 13, "{first}");
    assert_eq!(first["revision_after"], before + 1, "one revision bump: {first}");
    assert_eq!(first["credentials"].as_array().unwrap().len(), 2, "two new apps' credentials: {first}");
    let id = first["apply_id"].as_str().unwrap();
    let audit = d.env.run(&["--json", "audit", "--limit", "100"]).json();
    let rows: Vec<&Value> = audit.as_array().unwrap().iter().filter(|r| r["revision"] == before + 1).collect();
    assert_eq!(rows.len(), 13, "one audit row per object: {audit}");
    for r in &rows {
        assert!(r["detail"].as_str().unwrap().starts_with(&format!("apply {id}")), "{r}");
        assert_eq!(r["actor"], cli_actor(), "{r}");
        assert!(r["action"].as_str().unwrap().starts_with("apply."), "{r}");
    }
    let certs = d.env.run(&["--json", "cert", "list"]).json();
    assert_eq!(certs[0]["name"], "alpha");
    assert_eq!(certs[0]["owner"], "team-a");

    let second = d.apply(&[]);
    assert_eq!(second["summary"], json!({"create": 0, "replace": 0, "remove": 0, "unchanged": 13}), "{second}");
    assert_eq!(second["revision_after"], before + 1, "nothing to apply: no revision bump");
    assert_eq!(revision(&d.env), before + 1);
}

#[test]
fn export_then_apply_on_an_empty_store_reproduces_it_and_export_gives_the_same_file() {
    let d = Declared::new();
    d.apply(&[]);
    let exported = d.env.run(&["export-config"]);
    exported.ok();
    let declarations: Vec<&str> = exported.stdout.lines().filter(|l| !l.starts_with('#')).collect();
    for secret in ["PRIVATE KEY", "password", "sealed"] {
        assert!(!declarations.iter().any(|l| l.contains(secret)), "no key or password:\n{}", exported.stdout);
    }
    // The same store: nothing to do.
    let same = d.env.file("exported.toml", &exported.stdout);
    let again = d.env.run(&["--json", "apply", same.to_str().unwrap()]);
    again.ok();
    assert_eq!(again.json()["summary"]["unchanged"], 13, "{}", again.stdout);
    assert_eq!(again.json()["summary"]["create"], 0);

    // Another, empty store, with the certificate files at hand: add file next to each id.
    let mut doc: toml::Table = toml::from_str(&exported.stdout).unwrap();
    for c in doc["certificates"].as_array_mut().unwrap() {
        let t = c.as_table_mut().unwrap();
        let name = t["name"].as_str().unwrap().to_string();
        let path = d.env.dir.path().join(format!("{name}.pem"));
        t.insert("file".into(), toml::Value::String(path.display().to_string()));
    }
    let other = Env::new();
    let file = other.file("from-export.toml", toml::to_string(&doc).unwrap());
    let applied = other.run(&["--json", "apply", file.to_str().unwrap()]);
    applied.ok();
    assert_eq!(applied.json()["summary"]["create"], 13, "{}", applied.stdout);
    let exported_again = other.run(&["export-config"]);
    exported_again.ok();
    assert_eq!(exported_again.stdout, exported.stdout, "export -> apply -> export gives the same file");

    // YAML too: the same store written as YAML plans nothing on it.
    let yaml = other.run(&["export-config", "--format", "yaml"]);
    yaml.ok();
    let yaml_file = other.file("again.yaml", &yaml.stdout);
    let run = other.run(&["--json", "apply", yaml_file.to_str().unwrap(), "--dry-run"]);
    run.ok();
    assert_eq!(run.json()["summary"]["unchanged"], 13, "{}", run.stdout);
}

#[test]
fn prune_removes_exactly_what_the_plan_said() {
    let d = Declared::new();
    d.apply(&[]);
    // Things the file does not declare.
    let extra = d.ca.leaf(LeafSpec::client("extra"));
    d.env.import_minted("extra", &extra, &d.ca.intermediate.cert_pem).ok();
    d.env.run(&["bind", "extra.test", "extra"]).ok();
    d.env.run(&["app", "add", "stray"]).ok();
    d.env.run(&["app", "grant", "billing", "beta"]).ok();
    d.env.run(&["token", "create", "keeper", "--role", "viewer"]).ok();

    let without = d.apply(&["--dry-run"]);
    assert!(steps(&without, "remove").is_empty(), "without --prune nothing is removed: {without}");

    let plan = d.apply(&["--prune", "--dry-run"]);
    let expected = vec![
        "app stray".to_string(),
        "binding extra.test".to_string(),
        "certificate extra".to_string(),
        "grant billing/beta".to_string(),
    ];
    assert_eq!(steps(&plan, "remove"), expected, "{plan}");
    let before = revision(&d.env);
    let done = d.apply(&["--prune"]);
    assert_eq!(steps(&done, "remove"), expected, "applied what the plan said: {done}");
    assert_eq!(done["revision_after"], before + 1);
    let list = d.env.run(&["--json", "cert", "list"]).json();
    let names: Vec<&str> = list.as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["alpha", "beta", "gamma"]);
    assert!(!d.env.run(&["--json", "bindings"]).stdout.contains("extra.test"));
    let apps = d.env.run(&["--json", "app", "list"]).json();
    assert_eq!(apps.as_array().unwrap().len(), 2, "{apps}");
    assert_eq!(apps[0]["grants"], json!(["alpha", "gamma"]), "{apps}");
    let tokens = d.env.run(&["--json", "token", "list"]).json();
    assert_eq!(tokens[0]["name"], "keeper", "tokens are never pruned: {tokens}");
    let after = d.apply(&["--prune"]);
    assert_eq!(after["summary"]["remove"], 0, "{after}");
}

#[test]
fn a_plan_whose_last_object_is_refused_changes_nothing() {
    let d = Declared::new();
    d.apply(&[]);
    let text = std::fs::read_to_string(&d.file).unwrap();
    let before = state(&d.env);
    let rev = revision(&d.env);

    // New objects first, then a binding to a certificate the file does not declare.
    let fresh = d.ca.leaf(LeafSpec::client("delta"));
    pem_file(&d.env, "delta.pem", &fresh, &d.ca);
    let bad = format!(
        "[[certificates]]\nname = \"delta\"\nfile = \"delta.pem\"\n\n{text}\n[[bindings]]\ndestination = \"new.partner.test\"\ncertificate = \"delta\"\n\n[[bindings]]\ndestination = \"last.partner.test\"\ncertificate = \"nowhere\"\n"
    );
    let file = d.env.file("bad.toml", &bad);
    let line = bad.lines().position(|l| l.contains("last.partner.test")).unwrap() + 1;
    let run = d.env.run(&["--json", "apply", file.to_str().unwrap()]);
    run.refused(4, "not-found");
    let message = run.error_json()["message"].as_str().unwrap().to_string();
    assert!(message.contains(&format!("bad.toml:{line}:")), "names the file and line: {message}");
    assert!(message.contains("nowhere"), "{message}");
    assert_eq!(state(&d.env), before, "the store is as before");
    assert_eq!(revision(&d.env), rev);

    // The last certificate's password is wrong: refused, nothing written.
    let leaf = d.ca.leaf(LeafSpec::client("locked"));
    pfx(&d.env, &d.env.dir.path().join("locked.pfx"), &leaf, &d.ca, "right");
    let bad =
        format!("{text}\n[[certificates]]\nname = \"locked\"\nfile = \"locked.pfx\"\npassword = \"env:LOCKED_PW\"\n");
    let file = d.env.file("bad2.toml", &bad);
    let run = d.env.run_with_env(&["--json", "apply", file.to_str().unwrap()], &[("LOCKED_PW", "wrong")]);
    run.refused(3, "wrong-password");
    assert_eq!(state(&d.env), before);
    assert_eq!(revision(&d.env), rev);

    // And a syntax error names its line.
    let file = d.env.file("bad3.yaml", "certificates:\n  - name: a\n    colour: blue\n");
    let run = d.env.run(&["--json", "apply", file.to_str().unwrap()]);
    run.refused(3, "malformed");
    assert!(run.error_json()["message"].as_str().unwrap().contains("bad3.yaml:3:"), "{}", run.stderr);
    assert_eq!(revision(&d.env), rev);
}

#[test]
fn the_documented_example_apply_file_is_valid() {
    let env = Env::new();
    let example = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/apply-example.toml"));
    let text = std::fs::read_to_string(example).unwrap();
    // The files it names, made here.
    let ca = TestCa::new("example");
    let partner = TestCa::new("partner");
    std::fs::create_dir_all(env.dir.path().join("certs")).unwrap();
    let leaf = ca.leaf(LeafSpec::client("partner-prod"));
    pfx(&env, &env.dir.path().join("certs/partner-prod.pfx"), &leaf, &ca, "s3cret");
    env.file("certs/partner-root.pem", &partner.root.cert_pem);
    let file = env.file("apply-example.toml", &text);
    let run =
        env.run_with_env(&["--json", "apply", file.to_str().unwrap()], &[("PARTNER_PROD_PFX_PASSWORD", "s3cret")]);
    run.ok();
    let plan = run.json();
    assert_eq!(plan["summary"]["create"], 7, "{plan}");
    assert_eq!(plan["summary"]["remove"], 0);
}

// ---------------------------------------------------------------------------------------------
// Mendix (seed 004)

/// Seed 004's settings, verbatim: single backslashes in the list, doubled in the JSON; a web
/// service, a host, and a web service that gets no certificate.
fn seed_settings(pw1: &str, pw2: &str) -> String {
    format!(
        "ClientCertificates = D:\\App\\Mx1.pfx,D:\\App\\Mx2.pfx\nClientCertificatePasswords = {pw1},{pw2}\nClientCertificateUsages = {}\n",
        r#"{ "Module.WebService1": "D:\\App\\Mx1.pfx", "www.server-to-contact.com": "D:\\App\\Mx2.pfx", "Module.WebService2": "" }"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_mendix_sends_each_certificate_where_the_seed_settings_say() {
    let env = Env::new();
    let client_ca = TestCa::new("mendix client");
    let partner_ca = TestCa::new("partner");
    let root = env.file("partner-root.pem", &partner_ca.root.cert_pem);
    env.run(&["trust", "add", "partnerca", root.to_str().unwrap()]).ok();
    let server = partner_ca.server(&["partner.test", "www.server-to-contact.com"]);
    let nginx = Nginx::start_optional(&server, &partner_ca, &client_ca);
    let port = nginx.port();

    let app_dir = env.dir.path().join("App");
    std::fs::create_dir_all(&app_dir).unwrap();
    let mx1 = client_ca.leaf(LeafSpec::client("Mx1"));
    let mx2 = client_ca.leaf(LeafSpec::client("Mx2"));
    pfx(&env, &app_dir.join("Mx1.pfx"), &mx1, &client_ca, "first-secret");
    pfx(&env, &app_dir.join("Mx2.pfx"), &mx2, &client_ca, "second-secret");
    let settings = env.file("custom-settings.txt", seed_settings("first-secret", "second-secret"));
    let ws1 = format!("Module.WebService1=https://partner.test:{port}/ws1");
    let ws2 = format!("Module.WebService2=https://partner.test:{port}/ws2");
    let rev = revision(&env);

    // Without the partner URL of Module.WebService2: refused with the exact flag to add.
    let base =
        ["--json", "import-mendix", "--settings", settings.to_str().unwrap(), "--cert-dir", app_dir.to_str().unwrap()];
    let mut args = base.to_vec();
    args.extend(["--service-url", &ws1]);
    let run = env.run(&args);
    run.refused(2, "usage");
    assert!(run.error_json()["hint"].as_str().unwrap().contains("--service-url Module.WebService2="), "{}", run.stderr);
    assert_eq!(revision(&env), rev, "the refusal changed nothing");

    let written = env.dir.path().join("mendix.toml");
    let mut args = base.to_vec();
    args.extend(["--service-url", &ws1, "--service-url", &ws2, "--write", written.to_str().unwrap()]);
    let run = env.run(&args);
    run.ok();
    let plan = run.json();
    assert_eq!(
        steps(&plan, "create"),
        [
            "binding www.server-to-contact.com",
            "certificate Mx1",
            "certificate Mx2",
            "service Module.WebService1",
            "service Module.WebService2"
        ],
        "{plan}"
    );
    assert_eq!(plan["revision_after"], rev + 1, "one transaction");

    let gw = Gateway::start(&env, &GatewayConfig::new().resolve(&["partner.test", "www.server-to-contact.com"])).await;
    let client = gw.client();
    let seen = client.service("GET", "Module.WebService1", "/x", &[], "").await;
    assert_eq!(seen.status, 200, "{}", seen.describe());
    let seen = seen.json();
    assert_eq!(seen["verify"], "SUCCESS", "{seen}");
    assert_eq!(seen["fingerprint"], mx1.sha1_hex(), "Mx1 through /svc/Module.WebService1/: {seen}");
    assert_eq!(seen["uri"], "/ws1/x");

    let seen = client.proxy_get(&format!("http://www.server-to-contact.com:{port}/rest")).await;
    assert_eq!(seen.status, 200, "{}", seen.describe());
    let seen = seen.json();
    assert_eq!(seen["fingerprint"], mx2.sha1_hex(), "Mx2 through the proxy for its host: {seen}");

    let seen = client.service("GET", "Module.WebService2", "/y", &[], "").await;
    assert_eq!(seen.status, 200, "{}", seen.describe());
    let seen = seen.json();
    assert_eq!(seen["verify"], "NONE", "no certificate for Module.WebService2: {seen}");
    assert_eq!(seen["uri"], "/ws2/y");

    // The equivalent apply file (certificates by id, no password) plans nothing now.
    let text = std::fs::read_to_string(&written).unwrap();
    assert!(!text.contains("secret"), "{text}");
    assert!(text.contains(&mx1.id()), "{text}");
    let run = env.run(&["--json", "apply", written.to_str().unwrap()]);
    run.ok();
    assert_eq!(run.json()["summary"]["unchanged"], 5, "{}", run.stdout);
    assert_eq!(run.json()["revision_after"], rev + 1);
    drop(nginx);
}

#[test]
fn import_mendix_reads_an_m2ee_yaml() {
    let env = Env::new();
    let ca = TestCa::new("m2ee");
    let leaf = ca.leaf(LeafSpec::client("Mx1"));
    let path = env.dir.path().join("Mx1.pfx");
    pfx(&env, &path, &leaf, &ca, "pw");
    let m2ee = env.file(
        "m2ee.yaml",
        format!(
            "mxruntime:\n  ClientCertificates: {p}\n  ClientCertificatePasswords: pw\n  ClientCertificateUsages: '{{\"api.partner.test\": \"{p}\"}}'\n",
            p = path.display()
        ),
    );
    let run = env.run(&["--json", "import-mendix", "--m2ee", m2ee.to_str().unwrap(), "--dry-run"]);
    run.ok();
    assert_eq!(steps(&run.json(), "create"), ["binding api.partner.test", "certificate Mx1"], "{}", run.stdout);
    assert_eq!(revision(&env), 0, "a dry run writes nothing");
}

// ---------------------------------------------------------------------------------------------
// Crash safety

/// 20 certificates, 430 bindings and 50 services: 500 objects in one apply.
fn large_file(env: &Env, ca: &TestCa) -> PathBuf {
    let mut text = String::new();
    for i in 0..20 {
        let leaf = ca.leaf(LeafSpec::client(&format!("bulk{i}")));
        pem_file(env, &format!("bulk{i}.pem"), &leaf, ca);
        text.push_str(&format!("[[certificates]]\nname = \"bulk{i}\"\nfile = \"bulk{i}.pem\"\n\n"));
    }
    for i in 0..430 {
        text.push_str(&format!(
            "[[bindings]]\ndestination = \"host{i}.bulk.test\"\ncertificate = \"bulk{}\"\n\n",
            i % 20
        ));
    }
    for i in 0..50 {
        text.push_str(&format!(
            "[[services]]\nname = \"Bulk.Service{i}\"\nurl = \"https://host{i}.bulk.test/api\"\ncertificate = \"bulk{}\"\n\n",
            i % 20
        ));
    }
    env.file("large.toml", text)
}

fn counts(env: &Env) -> (usize, usize, usize) {
    let n = |args: &[&str]| {
        let run = env.run(args);
        run.ok();
        run.json().as_array().unwrap().len()
    };
    (n(&["--json", "cert", "list"]), n(&["--json", "bindings"]), n(&["--json", "service", "list"]))
}

#[test]
fn sigkill_in_the_middle_of_a_large_apply_leaves_the_old_or_the_new_state() {
    let env = Env::new();
    let ca = TestCa::new("bulk");
    let seed = ca.leaf(LeafSpec::client("seed"));
    env.import_minted("seed", &seed, &ca.intermediate.cert_pem).ok();
    let file = large_file(&env, &ca);
    let old_rev = revision(&env);
    let old = counts(&env);
    assert_eq!(old, (1, 0, 0));
    let new = (21, 430 + 50, 50);
    let mut outcomes = Vec::new();
    for _round in 0..3 {
        let mut child = env
            .command(&["apply", file.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Kill it as soon as it says the transaction starts.
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.starts_with("applying ") {
                    let _ = tx.send(());
                    return;
                }
            }
        });
        let started = rx.recv_timeout(Duration::from_secs(120)).is_ok();
        let _ = child.kill(); // SIGKILL
        let status = child.wait().unwrap();
        assert!(started, "apply never reached its transaction ({status})");
        let (rev, now) = (revision(&env), counts(&env));
        let outcome = if rev == old_rev && now == old {
            "old"
        } else if rev == old_rev + 1 && now == new {
            "new"
        } else {
            panic!("a mix after SIGKILL: revision {old_rev} -> {rev}, counts {old:?} -> {now:?} (new is {new:?})")
        };
        outcomes.push(format!("{outcome} ({status})"));
        if outcome == "new" {
            break;
        }
    }
    eprintln!("SIGKILL outcomes: {outcomes:?}");
    // Whatever happened, applying again completes it, and the store is whole.
    let run = env.run(&["--json", "apply", file.to_str().unwrap()]);
    run.ok();
    assert_eq!(counts(&env), new);
}

// ---------------------------------------------------------------------------------------------
// Admin API

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_apply_plans_then_applies_and_refuses_server_files() {
    let env = Env::new();
    let ca = TestCa::new("api-apply");
    let alpha = ca.leaf(LeafSpec::client("alpha"));
    env.import_minted("alpha", &alpha, &ca.intermediate.cert_pem).ok();
    let token = env.run(&["--json", "token", "create", "root", "--role", "admin"]).json()["token"]
        .as_str()
        .unwrap()
        .to_string();
    let viewer = env.run(&["--json", "token", "create", "look", "--role", "viewer"]).json()["token"]
        .as_str()
        .unwrap()
        .to_string();
    let gw = Gateway::start(&env, &GatewayConfig::new()).await;
    let admin = Api::new(gw.client(), &token);
    let doc = format!(
        "[[certificates]]\nname = \"alpha\"\nid = \"{}\"\n\n[[bindings]]\ndestination = \"api.partner.test\"\ncertificate = \"alpha\"\n",
        alpha.id()
    );
    let rev = admin.revision().await;
    let plan = Api::expect(&admin.post_json("/api/v1/apply", json!({"document": doc, "dry_run": true})).await, 200);
    assert_eq!(steps(&plan, "create"), ["binding api.partner.test"], "{plan}");
    assert_eq!(admin.revision().await, rev);

    let r = Api::new(gw.client(), &viewer).post_json("/api/v1/apply", json!({"document": doc})).await;
    crate::support::api::api_error(&r, 403, "forbidden");

    let done = Api::expect(&admin.post_json("/api/v1/apply", json!({"document": doc})).await, 200);
    assert_eq!(done["applied"], true);
    assert_eq!(done["revision_after"], rev + 1, "{done}");
    let audit = admin.ok("/api/v1/audit?limit=1").await;
    assert_eq!(audit[0]["actor"], "api:root", "{audit}");

    // A document sent to the server cannot name the server's files or environment.
    let sneaky = "[[certificates]]\nname = \"beta\"\nfile = \"/etc/passwd\"\n";
    let r = admin.post_json("/api/v1/apply", json!({"document": sneaky})).await;
    let e = crate::support::api::api_error(&r, 400, "usage");
    assert!(e["message"].as_str().unwrap().contains("document:2: certificate 'beta'"), "{e}");
    let yaml = "bindings:\n  - destination: x.test\n    certificate: alpha\n    colour: red\n";
    let r = admin.post_json("/api/v1/apply", json!({"document": yaml, "format": "yaml"})).await;
    crate::support::api::api_error(&r, 422, "malformed");
    assert_eq!(admin.revision().await, rev + 1, "refusals changed nothing");
}

/// The audit actor of a CLI change: `cli:` and the OS user name.
fn cli_actor() -> String {
    let id = std::process::Command::new("id").arg("-un").output().expect("id -un");
    format!("cli:{}", String::from_utf8_lossy(&id.stdout).trim())
}

/// Owners and contacts of certificates and trust anchors are declared in the apply file: set,
/// unchanged when applied again, changed alone (the material stays), exported, and a bad contact
/// is refused with the place named and changes nothing.
#[test]
fn apply_sets_owner_and_contact_of_certificates_and_anchors() {
    let env = Env::new();
    let ca = TestCa::new("owners");
    let leaf = ca.leaf(LeafSpec::client("alpha"));
    pem_file(&env, "alpha.pem", &leaf, &ca);
    env.file("root.pem", &ca.root.cert_pem);
    let doc = |cert_contact: &str, anchor_contact: &str| {
        format!(
            "[[certificates]]\nname = \"alpha\"\nfile = \"alpha.pem\"\nowner = \"Team A\"\ncontact = \"{cert_contact}\"\n\n[[trust_anchors]]\nname = \"root\"\nfile = \"root.pem\"\nowner = \"PKI\"\ncontact = \"{anchor_contact}\"\n"
        )
    };
    let apply = |text: String| {
        let path = env.file("certgate.toml", text);
        env.run(&["--json", "apply", path.to_str().unwrap()])
    };
    let first = apply(doc("a@example.com, webhook:ops", "pki@example.com"));
    first.ok();
    assert_eq!(first.json()["summary"]["create"], 2, "{}", first.stdout);
    let cert = env.run(&["--json", "cert", "show", "alpha"]).json();
    assert_eq!(cert["owner"], "Team A");
    assert_eq!(cert["contact"], "a@example.com, webhook:ops");
    let anchor = env.run(&["--json", "trust", "show", "root"]).json();
    assert_eq!(anchor["owner"], "PKI", "{anchor}");
    assert_eq!(anchor["contact"], "pki@example.com", "{anchor}");

    let again = apply(doc("a@example.com, webhook:ops", "pki@example.com"));
    assert_eq!(again.json()["summary"]["unchanged"], 2, "{}", again.stdout);

    // Only the contacts change: two replace steps that say so; the certificate stays the same.
    let changed = apply(doc("b@example.com", "pki-team@example.com"));
    changed.ok();
    let plan = changed.json();
    assert_eq!(steps(&plan, "replace"), ["certificate alpha", "trust-anchor root"], "{plan}");
    let details: Vec<&str> = plan["steps"].as_array().unwrap().iter().map(|s| s["detail"].as_str().unwrap()).collect();
    assert!(details.iter().any(|d| d.contains("contact a@example.com, webhook:ops -> b@example.com")), "{plan}");
    let cert2 = env.run(&["--json", "cert", "show", "alpha"]).json();
    assert_eq!(cert2["id"], cert["id"]);
    assert_eq!(cert2["contact"], "b@example.com");
    assert_eq!(env.run(&["--json", "trust", "show", "root"]).json()["contact"], "pki-team@example.com");

    // The export carries them, so applying it plans nothing.
    let exported = env.run(&["export-config"]);
    exported.ok();
    assert!(exported.stdout.contains("contact = \"b@example.com\""), "{}", exported.stdout);
    assert!(exported.stdout.contains("contact = \"pki-team@example.com\""), "{}", exported.stdout);

    // A contact that is neither an address nor webhook:NAME: refused, named, nothing changes.
    let before = state(&env);
    let bad = apply(doc("not an address", "pki@example.com"));
    assert_eq!(bad.code, 2, "{}{}", bad.stdout, bad.stderr);
    assert!(bad.stderr.contains("certificate 'alpha'") && bad.stderr.contains("'not an address'"), "{}", bad.stderr);
    assert_eq!(state(&env), before);
}
