//! Expiry, owners and renewal inside certgate, through the CLI (a fixed "now" through the
//! hidden CERTGATE_TEST_NOW), with OpenSSL as the CA that signs certgate's CSRs.

use std::process::Command;

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::support::{Env, LeafSpec, TestCa};

fn now_text(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap()
}

fn openssl(args: &[&str]) -> std::process::Output {
    let out = Command::new("openssl").args(args).output().expect("openssl must be installed (apt-get install openssl)");
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    out
}

#[test]
fn expiry_lists_what_expires_within_the_window_with_owner_and_exits_1() {
    let t0 = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
    let ca = TestCa::new("expiry");
    let env = Env::new().var("CERTGATE_TEST_NOW", &now_text(t0));
    for days in [31, 30, 14, 7, 1, 0] {
        let leaf = ca.leaf(LeafSpec::client(&format!("d{days}")).expiring_in_days(days));
        env.import_minted(&format!("d{days}"), &leaf, "").ok();
    }
    env.run(&["cert", "owner", "d14", "--owner", "Team Billing", "--contact", "billing@example.com, webhook:teams"])
        .ok();
    let anchor = env.file("root.pem", &ca.root.cert_pem);
    env.run(&["trust", "add", "partner-root", anchor.to_str().unwrap(), "--owner", "Partner desk"]).ok();

    let run = env.run(&["--json", "expiry", "--within", "30d"]);
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    let v = run.json();
    let names: Vec<&str> = v["items"].as_array().unwrap().iter().map(|i| i["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["d0", "d1", "d7", "d14", "d30"], "31 days is outside a 30-day window; soonest first");
    let d14 = &v["items"][3];
    assert_eq!(d14["days_left"], 14);
    assert_eq!(d14["status"], "warning");
    assert_eq!(d14["owner"], "Team Billing");
    assert_eq!(d14["contact"], "billing@example.com, webhook:teams");
    assert!(d14["action"].as_str().unwrap().contains("renew 'd14'"));
    assert_eq!(v["items"][0]["status"], "critical");

    // A month later the 0- and 1-day ones are expired and the anchor (root, 10 years) is not listed.
    let later = now_text(t0 + time::Duration::days(32));
    let run = env.run_with_env(&["--json", "expiry", "--within", "1d"], &[("CERTGATE_TEST_NOW", &later)]);
    assert_eq!(run.code, 1);
    let v = run.json();
    assert!(v["items"].as_array().unwrap().iter().all(|i| i["status"] == "expired"));
    assert_eq!(v["items"].as_array().unwrap().len(), 6);

    // Nothing within a day from now: exit 0. The human output names owner and action.
    let run = env.run(&["expiry", "--within", "0d"]);
    assert_eq!(run.code, 1, "the 0-day certificate expires today: {}", run.stdout);
    assert!(run.stdout.contains("d0") && run.stdout.contains("action"), "{}", run.stdout);
    let fresh = Env::new();
    let ok = fresh.run(&["expiry"]);
    assert_eq!(ok.code, 0, "{}{}", ok.stdout, ok.stderr);
    assert!(ok.stdout.contains("nothing expires within 30 days"));

    // Trust anchors are listed with their owner.
    let far = now_text(t0 + time::Duration::days(3650 * 2));
    let v = env.run_with_env(&["--json", "expiry", "--within", "1d"], &[("CERTGATE_TEST_NOW", &far)]).json();
    let anchor = v["items"].as_array().unwrap().iter().find(|i| i["kind"] == "trust-anchor").expect("anchor listed");
    assert_eq!(anchor["owner"], "Partner desk");
}

#[test]
fn owner_and_contact_are_set_at_import_shown_and_changed_and_bad_contacts_change_nothing() {
    let ca = TestCa::new("owners");
    let env = Env::new();
    let leaf = ca.leaf(LeafSpec::client("owned"));
    let path = env.file("owned.pem", format!("{}{}", leaf.cert_pem, leaf.key_pem));
    let p = path.to_str().unwrap();
    env.run(&["--json", "cert", "import", "owned", p, "--contact", "not an address"]).refused(2, "usage");
    assert_eq!(env.run(&["--json", "cert", "list"]).json(), serde_json::json!([]), "nothing imported");
    let v = env
        .run(&["--json", "cert", "import", "owned", p, "--owner", "Payments", "--contact", "pay@example.com"])
        .json();
    assert_eq!(v["owner"], "Payments");
    assert_eq!(v["contact"], "pay@example.com");
    let before = env.snapshot();
    env.run(&["--json", "cert", "owner", "owned", "--contact", "webhook:bad name"]).refused(2, "invalid-name");
    env.run(&["--json", "cert", "owner", "missing", "--owner", "x"]).refused(4, "not-found");
    assert_eq!(env.snapshot(), before, "refusals change nothing");
    let v = env.run(&["--json", "cert", "owner", "owned", "--contact", "webhook:teams"]).json();
    assert_eq!(v["owner"], "Payments", "the owner stays when only the contact changes");
    assert_eq!(v["contact"], "webhook:teams");
    let v = env.run(&["--json", "cert", "owner", "owned", "--owner", ""]).json();
    assert_eq!(v["owner"], serde_json::Value::Null);
    let audit = env.run(&["--json", "audit"]).json();
    assert!(audit.as_array().unwrap().iter().any(|a| a["action"] == "cert.owner"));
}

#[test]
fn a_csr_from_cert_request_is_signed_by_openssl_and_completed_and_the_key_never_leaves() {
    let ca = TestCa::new("renew");
    let env = Env::new();
    let old = ca.leaf(LeafSpec::client("billing").expiring_in_days(5));
    env.import_minted("billing", &old, &ca.intermediate.cert_pem).ok();
    let csr = env.dir.path().join("billing.csr");
    let run = env.run(&[
        "cert",
        "request",
        "billing",
        "--subject",
        "CN=billing-client,O=Example Ltd,C=NL",
        "--dns",
        "billing.example",
        "--key",
        "ec-p384",
        "-o",
        csr.to_str().unwrap(),
    ]);
    run.ok();
    assert!(run.stderr.contains("keeps serving"), "{}", run.stderr);
    let csr_text = std::fs::read_to_string(&csr).unwrap();
    assert!(csr_text.starts_with("-----BEGIN CERTIFICATE REQUEST-----"));
    assert!(!csr_text.contains("PRIVATE"));
    let verified = openssl(&["req", "-in", csr.to_str().unwrap(), "-verify", "-noout", "-subject"]);
    let said = String::from_utf8_lossy(&verified.stdout).to_string() + &String::from_utf8_lossy(&verified.stderr);
    assert!(said.contains("CN") && said.contains("billing-client"), "{said}");

    // The current certificate still serves; the request is listed with its age.
    let shown = env.run(&["--json", "cert", "show", "billing"]).json();
    assert_eq!(shown["id"], old.id());
    assert_eq!(shown["pending_request"]["key_type"], "ec-p384");
    let pending = env.run(&["--json", "cert", "requests"]).json();
    assert_eq!(pending[0]["name"], "billing");
    assert_eq!(pending[0]["renewal"], true);
    assert!(pending[0]["age_seconds"].as_i64().unwrap() >= 0);

    // The CA signs it (OpenSSL with the test intermediate).
    let ca_cert = env.file("inter.pem", &ca.intermediate.cert_pem);
    let ca_key = env.file("inter.key", &ca.intermediate.key_pem);
    let ext = env.file("ext.cnf", "extendedKeyUsage = clientAuth\nsubjectAltName = DNS:billing.example\n");
    let issued = env.dir.path().join("issued.pem");
    openssl(&[
        "x509",
        "-req",
        "-in",
        csr.to_str().unwrap(),
        "-CA",
        ca_cert.to_str().unwrap(),
        "-CAkey",
        ca_key.to_str().unwrap(),
        "-CAcreateserial",
        "-days",
        "90",
        "-sha384",
        "-extfile",
        ext.to_str().unwrap(),
        "-out",
        issued.to_str().unwrap(),
    ]);

    // A certificate for another key is refused and changes nothing.
    let other = env.file("other.pem", &ca.leaf(LeafSpec::client("other")).cert_pem);
    let before = env.snapshot();
    env.run(&["--json", "cert", "complete", "billing", other.to_str().unwrap()]).refused(3, "key-mismatch");
    assert_eq!(env.snapshot(), before);

    // As a PKCS#7 bundle with its chain, the way Windows CAs return it.
    let p7b = env.dir.path().join("issued.p7b");
    openssl(&[
        "crl2pkcs7",
        "-nocrl",
        "-certfile",
        issued.to_str().unwrap(),
        "-certfile",
        ca_cert.to_str().unwrap(),
        "-outform",
        "DER",
        "-out",
        p7b.to_str().unwrap(),
    ]);
    let done = env.run(&["--json", "cert", "complete", "billing", p7b.to_str().unwrap()]);
    done.ok();
    let v = done.json();
    assert_ne!(v["id"], old.id());
    assert!(v["subject"].as_str().unwrap().contains("billing-client"));
    assert_eq!(v["key_type"], "ec-p384");
    assert_eq!(v["chain"][0]["id"], ca.intermediate.id());
    assert!(v.get("pending_request").is_none());
    assert_eq!(env.run(&["--json", "cert", "requests"]).json(), serde_json::json!([]));
    let check = env.run(&["--json", "cert", "check", "billing"]);
    assert_eq!(check.json()[0]["key"]["matches"], true, "{}", check.stdout);
    let audit = env.run(&["--json", "audit"]).json();
    let actions: Vec<&str> = audit.as_array().unwrap().iter().map(|a| a["action"].as_str().unwrap()).collect();
    assert!(actions.contains(&"cert.request") && actions.contains(&"cert.complete"), "{actions:?}");

    // The key is nowhere outside the sealed column: not in the store file, the CSR or the output.
    let key = unsealed_key(&env, "billing");
    let mut haystacks: Vec<Vec<u8>> = vec![csr_text.into_bytes(), done.stdout.into_bytes(), done.stderr.into_bytes()];
    for entry in std::fs::read_dir(env.data_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.file_name().unwrap().to_string_lossy().starts_with("certgate.db") {
            haystacks.push(std::fs::read(&path).unwrap());
        }
    }
    let scalar = &key[key.len() - 48..];
    for h in &haystacks {
        assert!(!contains(h, scalar), "the private scalar appears in plain");
        assert!(!contains(h, hex::encode(scalar).as_bytes()));
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// The completed identity's private key, opened in-process with the data directory's master key.
fn unsealed_key(env: &Env, name: &str) -> Vec<u8> {
    use certgate::control::{Control, MasterKeySource, OpenOptions, StoreUrl};
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let control = Control::open(OpenOptions {
            store: StoreUrl::Sqlite(env.db_path()),
            master_key: MasterKeySource::DataDir(env.data_dir().join("master.key")),
            actor: "test".into(),
        })
        .await
        .unwrap();
        let rec = control.store().certificate(name).await.unwrap().unwrap();
        let key = control.unseal_key(&rec).unwrap();
        let der = key.secret_der().to_vec();
        control.close().await;
        // PKCS#8 of a P-384 key: the private scalar is the 48-byte OCTET STRING inside.
        find_scalar(&der)
    })
}

/// The 48-byte OCTET STRING (04 30 ...) of a P-384 SEC1 key inside PKCS#8.
fn find_scalar(der: &[u8]) -> Vec<u8> {
    let at = der.windows(2).position(|w| w == [0x04, 0x30]).expect("a P-384 private scalar");
    der[at + 2..at + 2 + 48].to_vec()
}
