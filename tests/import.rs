//! Importing, showing, checking, exporting, rotating and removing certificates through the
//! CLI, with certificates minted by the test CA.

use crate::support::{fixtures, Env, LeafSpec, TestCa};

fn warnings(v: &serde_json::Value) -> Vec<String> {
    v["warnings"].as_array().unwrap().iter().map(|w| w.as_str().unwrap().to_string()).collect()
}

#[test]
fn import_reports_every_contract_field_of_the_identity() {
    let ca = TestCa::new("fields");
    let leaf = ca.leaf(LeafSpec::client("billing-client"));
    let env = Env::new();
    let run = env.import_minted("billing", &leaf, &ca.intermediate.cert_pem);
    run.ok();
    let v = run.json();
    assert_eq!(v["name"], "billing");
    assert_eq!(v["id"], leaf.id());
    assert!(v["subject"].as_str().unwrap().contains("CN=billing-client"));
    assert!(v["issuer"].as_str().unwrap().contains("CN=fields intermediate"));
    assert!(!v["serial"].as_str().unwrap().is_empty());
    assert!(v["not_before"].as_str().unwrap().ends_with('Z'));
    assert!(v["not_after"].as_str().unwrap().contains('T'));
    assert_eq!(v["key_type"], "ec-p256");
    assert_eq!(v["key_bits"], 256);
    assert_eq!(v["client_auth_eku"], true);
    assert_eq!(v["chain"][0]["id"], ca.intermediate.id());
    assert_eq!(v["chain"][0]["self_signed"], false);
    assert_eq!(warnings(&v), Vec::<String>::new());
    assert_eq!(v["owner"], serde_json::Value::Null);
    assert_eq!(v["bindings"], serde_json::json!([]));
    // list and show say the same thing
    let listed = env.run(&["--json", "cert", "list"]).json();
    assert_eq!(listed[0]["id"], leaf.id());
    let shown = env.run(&["--json", "cert", "show", "billing"]).json();
    assert_eq!(shown["chain"], v["chain"]);
}

#[test]
fn root_that_came_with_the_file_is_marked_self_signed_and_not_trusted() {
    let ca = TestCa::new("roots");
    let leaf = ca.leaf(LeafSpec::client("c"));
    let env = Env::new();
    let chain = format!("{}{}", ca.intermediate.cert_pem, ca.root.cert_pem);
    let human = env.run(&[
        "cert",
        "import",
        "c",
        env.file("c.pem", format!("{}{}{}", leaf.cert_pem, leaf.key_pem, chain)).to_str().unwrap(),
    ]);
    human.ok();
    assert!(human.stdout.contains("not trusted for partners"), "{}", human.stdout);
    let v = env.run(&["--json", "cert", "show", "c"]).json();
    assert_eq!(v["chain"][1]["id"], ca.root.id());
    assert_eq!(v["chain"][1]["self_signed"], true);
    assert_eq!(env.run(&["--json", "trust", "list"]).json(), serde_json::json!([]));
}

#[test]
fn warns_when_certificate_has_expired() {
    let ca = TestCa::new("w");
    let env = Env::new();
    let v = env.import_minted("old", &ca.leaf(LeafSpec::client("old").expired()), &ca.intermediate.cert_pem).json();
    assert_eq!(warnings(&v), ["expired"]);
    assert!(v["days_left"].as_i64().unwrap() < 0);
}

#[test]
fn warns_when_certificate_is_not_yet_valid() {
    let ca = TestCa::new("w");
    let env = Env::new();
    let v =
        env.import_minted("future", &ca.leaf(LeafSpec::client("f").not_yet_valid()), &ca.intermediate.cert_pem).json();
    assert_eq!(warnings(&v), ["not-yet-valid"]);
}

#[test]
fn warns_when_certificate_expires_within_thirty_days() {
    let ca = TestCa::new("w");
    let env = Env::new();
    let v = env
        .import_minted("soon", &ca.leaf(LeafSpec::client("s").expiring_in_days(10)), &ca.intermediate.cert_pem)
        .json();
    assert_eq!(warnings(&v), ["expires-soon"]);
    let later = env
        .import_minted("later", &ca.leaf(LeafSpec::client("l").expiring_in_days(45)), &ca.intermediate.cert_pem)
        .json();
    assert_eq!(warnings(&later), Vec::<String>::new());
}

#[test]
fn warns_when_extended_key_usage_lacks_client_auth() {
    let ca = TestCa::new("w");
    let env = Env::new();
    let v =
        env.import_minted("server", &ca.leaf(LeafSpec::client("srv").server_only()), &ca.intermediate.cert_pem).json();
    assert_eq!(v["client_auth_eku"], false);
    assert_eq!(warnings(&v), ["no-client-auth-eku"]);
    let mut spec = LeafSpec::client("any");
    spec.eku.clear();
    let none = env.import_minted("no-eku", &ca.leaf(spec), &ca.intermediate.cert_pem).json();
    assert_eq!(none["client_auth_eku"], serde_json::Value::Null);
    assert_eq!(warnings(&none), Vec::<String>::new());
}

#[test]
fn warns_about_incomplete_chain_and_names_the_missing_issuer() {
    let ca = TestCa::new("gap");
    let env = Env::new();
    let v = env.import_minted("lonely", &ca.leaf(LeafSpec::client("lonely")), "").json();
    assert_eq!(warnings(&v), ["incomplete-chain"]);
    let detail = &v["warning_details"][0]["message"];
    assert!(detail.as_str().unwrap().contains("gap intermediate"), "{detail}");
    let check = env.run(&["--json", "cert", "check", "lonely"]);
    assert_eq!(check.code, 1, "check exits 1 on a problem");
    let report = &check.json()[0];
    assert!(report["missing_issuer"].as_str().unwrap().contains("CN=gap intermediate"));
    let human = env.run(&["cert", "check", "lonely"]);
    assert!(human.stdout.contains("MISSING: CN=gap intermediate"), "{}", human.stdout);
}

#[test]
fn chain_is_completed_from_intermediates_the_store_already_knows() {
    let ca = TestCa::new("known");
    let env = Env::new();
    env.import_minted("lonely", &ca.leaf(LeafSpec::client("lonely")), "").ok();
    // The intermediate and root arrive later as a trust anchor bundle.
    let bundle = env.file("ca.pem", format!("{}{}", ca.intermediate.cert_pem, ca.root.cert_pem));
    env.run(&["trust", "add", "known-ca", bundle.to_str().unwrap()]).ok();
    let v = env.run(&["--json", "cert", "show", "lonely"]).json();
    assert_eq!(warnings(&v), Vec::<String>::new(), "{v}");
    let check = env.run(&["--json", "cert", "check", "lonely"]);
    check.ok();
    let r = &check.json()[0];
    let path: Vec<&str> = r["path"].as_array().unwrap().iter().map(|l| l["id"].as_str().unwrap()).collect();
    assert_eq!(path[1..], [ca.intermediate.id(), ca.root.id()]);
    assert_eq!(r["path"][1]["source"], "trust anchor 'known-ca'");
    assert_eq!(r["path_end"], "root");
    assert_eq!(r["signatures"], "verified up to the root");
}

#[test]
fn check_walks_the_path_to_the_root_and_verifies_signatures() {
    let ca = TestCa::new("path");
    let env = Env::new();
    let leaf = ca.leaf(LeafSpec::client("p"));
    env.import_minted("p", &leaf, &format!("{}{}", ca.intermediate.cert_pem, ca.root.cert_pem)).ok();
    let run = env.run(&["--json", "cert", "check"]);
    run.ok();
    let r = &run.json()[0];
    assert_eq!(r["ok"], true);
    assert_eq!(r["key"]["matches"], true);
    assert_eq!(r["path"].as_array().unwrap().len(), 3);
    assert_eq!(r["signatures"], "verified up to the root");
}

#[test]
fn intermediate_with_the_right_name_but_another_key_is_not_taken_as_the_issuer() {
    // Same names, other keys: the leaf's authority key id does not match, so the chain is
    // incomplete rather than silently wrong.
    let ca = TestCa::new("impostor");
    let other = TestCa::new("impostor");
    let env = Env::new();
    let leaf = ca.leaf(LeafSpec::client("x"));
    let v = env.import_minted("x", &leaf, &format!("{}{}", other.intermediate.cert_pem, other.root.cert_pem)).json();
    assert_eq!(warnings(&v), ["incomplete-chain"]);
    assert_eq!(env.run(&["cert", "check", "x"]).code, 1);
}

#[test]
fn warns_about_sha1_signature() {
    let env = Env::new();
    let path = fixtures().join("odd/sha1-rsa2048.pem");
    let run = env.run(&["--json", "cert", "import", "old-sha1", path.to_str().unwrap()]);
    run.ok();
    assert_eq!(warnings(&run.json()), ["sha1-signature"]);
}

#[test]
fn imports_rsa_1024_key_with_weak_key_warning_for_the_openssl_engine() {
    let env = Env::new();
    let path = fixtures().join("odd/rsa1024.pem");
    let run = env.run(&["--json", "cert", "import", "weak", path.to_str().unwrap()]);
    run.ok();
    let v = run.json();
    assert_eq!((v["key_type"].as_str(), v["key_bits"].as_u64()), (Some("rsa"), Some(1024)), "{v}");
    assert!(warnings(&v).contains(&"weak-key".to_string()), "{v}");
    assert_eq!(v["engine"], "openssl", "{v}");
    let detail = v["warning_details"].as_array().unwrap().iter().find(|w| w["code"] == "weak-key").unwrap();
    assert!(detail["message"].as_str().unwrap().contains("1024 bits"), "{detail}");
    // The sealed key opens and matches (its public half derived through OpenSSL).
    let check = env.run(&["--json", "cert", "check", "weak"]);
    assert_eq!(check.json()[0]["key"]["matches"], true, "{}", check.stdout);
}

#[test]
fn imports_rsa_and_ed25519_leaves_minted_in_code() {
    let ca = TestCa::new("algs");
    let env = Env::new();
    let rsa = env
        .import_minted("rsa", &ca.leaf(LeafSpec::client("r").alg(&rcgen::PKCS_RSA_SHA256)), &ca.intermediate.cert_pem)
        .json();
    assert_eq!((rsa["key_type"].as_str(), rsa["key_bits"].as_u64()), (Some("rsa"), Some(2048)));
    let ed = env
        .import_minted("ed", &ca.leaf(LeafSpec::client("e").alg(&rcgen::PKCS_ED25519)), &ca.intermediate.cert_pem)
        .json();
    assert_eq!(ed["key_type"], "ed25519");
    let p384 = env
        .import_minted(
            "p384",
            &ca.leaf(LeafSpec::client("e").alg(&rcgen::PKCS_ECDSA_P384_SHA384)),
            &ca.intermediate.cert_pem,
        )
        .json();
    assert_eq!(p384["key_type"], "ec-p384");
}

#[test]
fn owner_is_kept_and_shown() {
    let ca = TestCa::new("own");
    let env = Env::new();
    let leaf = ca.leaf(LeafSpec::client("o"));
    let file = env.file("o.pem", format!("{}{}", leaf.cert_pem, leaf.key_pem));
    let v = env
        .run(&["--json", "cert", "import", "o", file.to_str().unwrap(), "--owner", "payments team <pay@example.test>"])
        .json();
    assert_eq!(v["owner"], "payments team <pay@example.test>");
}

#[test]
fn import_refuses_a_name_that_is_taken_and_changes_nothing() {
    let ca = TestCa::new("dup");
    let env = Env::new();
    let first = ca.leaf(LeafSpec::client("first"));
    env.import_minted("partner", &first, "").ok();
    let before = env.snapshot();
    env.import_minted("partner", &ca.leaf(LeafSpec::client("second")), "").refused(5, "name-taken");
    assert_eq!(env.snapshot(), before);
    assert_eq!(env.run(&["--json", "cert", "show", "partner"]).json()["id"], first.id());
}

#[test]
fn import_refuses_invalid_names_as_usage_errors() {
    let ca = TestCa::new("names");
    let env = Env::new();
    let leaf = ca.leaf(LeafSpec::client("n"));
    let before = env.snapshot();
    for bad in ["has space", "slash/name", "", &"x".repeat(129)] {
        env.import_minted(bad, &leaf, "").refused(2, "invalid-name");
    }
    assert_eq!(env.snapshot(), before);
    env.import_minted("Billing.Invoice_Service-2", &leaf, "").ok();
}

#[test]
fn password_is_never_accepted_as_a_plain_argument() {
    let env = Env::new();
    let p12 = fixtures().join("interop/openssl3-default-rsa2048.p12");
    let run = env.run(&["cert", "import", "x", p12.to_str().unwrap(), "--password", "interop-pass"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
}

#[test]
fn password_can_come_from_a_file_or_standard_input() {
    let env = Env::new();
    let p12 = fixtures().join("interop/openssl3-default-rsa2048.p12");
    let pw = env.file("pw.txt", "interop-pass\n");
    env.run(&["cert", "import", "from-file", p12.to_str().unwrap(), "--password-file", pw.to_str().unwrap()]).ok();
    env.run_with_stdin(&["cert", "import", "from-stdin", p12.to_str().unwrap(), "--password-stdin"], b"interop-pass\n")
        .ok();
    let list = env.run(&["--json", "cert", "list"]).json();
    assert_eq!(list.as_array().unwrap().len(), 2);
    // only one password source at a time
    let run = env.run(&[
        "cert",
        "import",
        "x",
        p12.to_str().unwrap(),
        "--password-file",
        pw.to_str().unwrap(),
        "--password-stdin",
    ]);
    assert_eq!(run.code, 2);
}

#[test]
fn rotate_replaces_material_under_the_same_name_and_is_audited() {
    let ca = TestCa::new("rot");
    let env = Env::new();
    let old = ca.leaf(LeafSpec::client("rot").expiring_in_days(5));
    let new = ca.leaf(LeafSpec::client("rot"));
    env.import_minted("partner", &old, &ca.intermediate.cert_pem).ok();
    let file = env.file("new.pem", format!("{}{}{}", new.cert_pem, new.key_pem, ca.intermediate.cert_pem));
    let v = env.run(&["--json", "cert", "rotate", "partner", file.to_str().unwrap()]);
    v.ok();
    let v = v.json();
    assert_eq!(v["name"], "partner");
    assert_eq!(v["id"], new.id());
    assert_eq!(warnings(&v), Vec::<String>::new());
    assert_eq!(env.run(&["--json", "cert", "list"]).json().as_array().unwrap().len(), 1);
    let audit = env.run(&["--json", "audit"]).json();
    assert_eq!(audit[0]["action"], "cert.rotate");
    assert_eq!(audit[0]["target"], "partner");
    // The OS user database's name for the uid (`cli:root` under sudo), not `$USER` (the harness
    // sets USER=tester) and not `cli:uid-N`.
    let id = std::process::Command::new("id").arg("-un").output().expect("id -un");
    let user = String::from_utf8(id.stdout).unwrap().trim().to_string();
    assert_eq!(audit[0]["actor"], format!("cli:{user}"));
    assert!(audit[0]["detail"].as_str().unwrap().contains(&format!("{} -> {}", old.id(), new.id())));
    // the new key is what is sealed now
    env.run(&["cert", "check", "partner"]).ok();
}

#[test]
fn rotate_of_unknown_name_is_not_found_and_changes_nothing() {
    let ca = TestCa::new("rot");
    let env = Env::new();
    let leaf = ca.leaf(LeafSpec::client("x"));
    let file = env.file("x.pem", format!("{}{}", leaf.cert_pem, leaf.key_pem));
    let before = env.snapshot();
    env.run(&["--json", "cert", "rotate", "nope", file.to_str().unwrap()]).refused(4, "not-found");
    assert_eq!(env.snapshot(), before);
}

#[test]
fn rotate_with_a_bad_file_keeps_the_old_material() {
    let ca = TestCa::new("rot");
    let env = Env::new();
    let leaf = ca.leaf(LeafSpec::client("keep"));
    env.import_minted("keep", &leaf, "").ok();
    let before = env.snapshot();
    let p12 = fixtures().join("interop/openssl3-default-rsa2048.p12");
    env.run_with_env(
        &["--json", "cert", "rotate", "keep", p12.to_str().unwrap(), "--password-env", "PW"],
        &[("PW", "nope")],
    )
    .refused(3, "wrong-password");
    assert_eq!(env.snapshot(), before);
}

#[test]
fn export_gives_the_public_part_only_in_pem_and_der() {
    let ca = TestCa::new("exp");
    let env = Env::new();
    let leaf = ca.leaf(LeafSpec::client("e"));
    env.import_minted("e", &leaf, &format!("{}{}", ca.intermediate.cert_pem, ca.root.cert_pem)).ok();
    let der = env.command(&["cert", "export", "e", "--format", "der"]).output().unwrap();
    assert!(der.status.success());
    assert_eq!(der.stdout, leaf.der, "DER export is exactly the leaf (.cer)");
    let pem = env.run(&["cert", "export", "e"]);
    pem.ok();
    assert_eq!(pem.stdout.matches("BEGIN CERTIFICATE").count(), 1);
    assert!(!pem.stdout.contains("PRIVATE KEY"));
    let chain = env.run(&["cert", "export", "e", "--with-chain"]);
    assert_eq!(chain.stdout.matches("BEGIN CERTIFICATE").count(), 3);
    assert!(!chain.stdout.contains("PRIVATE"));
    let out = env.dir.path().join("e.cer");
    env.run(&["cert", "export", "e", "--format", "der", "-o", out.to_str().unwrap()]).ok();
    assert_eq!(std::fs::read(&out).unwrap(), leaf.der);
    assert_eq!(env.run(&["cert", "export", "e", "--format", "der", "--with-chain"]).code, 2);
}

#[test]
fn remove_deletes_certificate_and_audits_it() {
    let ca = TestCa::new("rm");
    let env = Env::new();
    env.import_minted("gone", &ca.leaf(LeafSpec::client("g")), "").ok();
    env.run(&["cert", "remove", "gone"]).ok();
    assert_eq!(env.run(&["--json", "cert", "list"]).json(), serde_json::json!([]));
    assert_eq!(env.run(&["--json", "audit"]).json()[0]["action"], "cert.remove");
    let before = env.snapshot();
    env.run(&["--json", "cert", "remove", "gone"]).refused(4, "not-found");
    env.run(&["--json", "cert", "show", "gone"]).refused(4, "not-found");
    assert_eq!(env.snapshot(), before);
}

#[test]
fn trust_anchors_are_added_listed_shown_and_removed() {
    let ca = TestCa::new("anchor");
    let env = Env::new();
    let root = env.file("root.pem", &ca.root.cert_pem);
    let v = env.run(&["--json", "trust", "add", "partner-root", root.to_str().unwrap()]);
    v.ok();
    assert_eq!(v.json()["certificates"][0]["id"], ca.root.id());
    assert_eq!(v.json()["certificates"][0]["self_signed"], true);
    let der = env.file("root.der", &ca.root.der);
    env.run(&["trust", "add", "partner-root-der", der.to_str().unwrap()]).ok();
    assert_eq!(env.run(&["--json", "trust", "list"]).json().as_array().unwrap().len(), 2);
    assert_eq!(env.run(&["--json", "trust", "show", "partner-root"]).json()["name"], "partner-root");
    let before = env.snapshot();
    env.run(&["--json", "trust", "add", "partner-root", root.to_str().unwrap()]).refused(5, "name-taken");
    let leaf = ca.leaf(LeafSpec::client("k"));
    let with_key = env.file("k.pem", format!("{}{}", leaf.cert_pem, leaf.key_pem));
    env.run(&["--json", "trust", "add", "bad", with_key.to_str().unwrap()]).refused(3, "not-a-certificate");
    let empty = env.file("empty.pem", "");
    env.run(&["--json", "trust", "add", "bad", empty.to_str().unwrap()]).refused(3, "empty");
    assert_eq!(env.snapshot(), before);
    env.run(&["trust", "remove", "partner-root"]).ok();
    env.run(&["--json", "trust", "show", "partner-root"]).refused(4, "not-found");
}

#[test]
fn human_output_lists_certificates_with_expiry_and_status() {
    let ca = TestCa::new("human");
    let env = Env::new();
    env.import_minted("fine", &ca.leaf(LeafSpec::client("fine")), &ca.intermediate.cert_pem).ok();
    env.import_minted("dead", &ca.leaf(LeafSpec::client("dead").expired()), &ca.intermediate.cert_pem).ok();
    let run = env.run(&["cert", "list"]);
    run.ok();
    let dead = run.stdout.lines().find(|l| l.starts_with("dead")).unwrap();
    assert!(dead.contains("expired"), "{dead}");
    let fine = run.stdout.lines().find(|l| l.starts_with("fine")).unwrap();
    assert!(fine.contains(" ok "), "{fine}");
}

#[test]
fn refusal_without_json_is_one_line_with_the_next_step() {
    let env = Env::new();
    let p12 = fixtures().join("interop/openssl3-default-rsa2048.p12");
    let run =
        env.run_with_env(&["cert", "import", "x", p12.to_str().unwrap(), "--password-env", "PW"], &[("PW", "nope")]);
    assert_eq!(run.code, 3);
    assert_eq!(run.stderr.trim().lines().count(), 1, "{}", run.stderr);
    assert!(run.stderr.contains("wrong-password"));
    assert!(run.stderr.contains("check the password"), "{}", run.stderr);
    assert!(!run.stderr.contains("nope"), "the password must not be echoed");
}

#[test]
fn prompts_for_the_password_on_a_terminal_and_does_not_echo_it() {
    // `script` (util-linux) gives the command a pseudo-terminal, as a person at a shell has.
    let env = Env::new();
    let p12 = fixtures().join("interop/openssl3-default-rsa2048.p12");
    let bin = env!("CARGO_BIN_EXE_certgate");
    let cmdline = format!("{bin} cert import prompted {}", p12.display());
    let mut child = std::process::Command::new("script")
        .args(["-qec", &cmdline, "/dev/null"])
        .env("CERTGATE_DATA_DIR", env.data_dir())
        .env_remove("CERTGATE_MASTER_KEY")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the `script` command (util-linux) is required for this test");
    use std::io::{Read, Write};
    // Type only once the prompt is on the screen (echo is off from then on), as a person would.
    let mut stdout = child.stdout.take().unwrap();
    let mut seen = Vec::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let mut buf = [0u8; 256];
    while !String::from_utf8_lossy(&seen).contains("Password for") {
        assert!(std::time::Instant::now() < deadline, "no prompt: {}", String::from_utf8_lossy(&seen));
        let n = stdout.read(&mut buf).unwrap();
        assert!(n > 0, "the command ended without prompting: {}", String::from_utf8_lossy(&seen));
        seen.extend_from_slice(&buf[..n]);
    }
    // A person reads the prompt before typing; rpassword turns echo off right after printing it.
    std::thread::sleep(std::time::Duration::from_millis(300));
    child.stdin.take().unwrap().write_all(b"interop-pass\n").unwrap();
    stdout.read_to_end(&mut seen).unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&seen).into_owned();
    assert!(out.status.success(), "{text}");
    assert!(text.contains("Password for"), "{text}");
    assert!(text.contains("imported 'prompted'"), "{text}");
    assert!(!text.contains("interop-pass"), "the password was echoed: {text}");
}

#[test]
fn importing_a_certificate_stored_under_another_name_warns_with_that_name_and_still_imports() {
    let ca = TestCa::new("twice");
    let env = Env::new();
    let leaf = ca.leaf(LeafSpec::client("twice"));
    let first = env.import_minted("billing", &leaf, &ca.intermediate.cert_pem);
    first.ok();
    assert!(!warnings(&first.json()).contains(&"already-stored".to_string()), "{}", first.stdout);
    // The same PFX a second time, under another name: imported (exit 0), with a warning that
    // names the first name, in the JSON answer and in the text a person reads.
    let second = env.import_minted("billing-copy", &leaf, &ca.intermediate.cert_pem);
    second.ok();
    let v = second.json();
    assert_eq!(v["name"], "billing-copy");
    assert_eq!(v["id"], leaf.id());
    assert!(warnings(&v).contains(&"already-stored".to_string()), "{v}");
    let detail = v["warning_details"].as_array().unwrap().iter().find(|w| w["code"] == "already-stored").unwrap();
    assert!(detail["message"].as_str().unwrap().contains("already stored as 'billing'"), "{detail}");
    let path = env.file("third.pem", format!("{}{}{}", leaf.cert_pem, leaf.key_pem, ca.intermediate.cert_pem));
    let text = env.run(&["cert", "import", "billing-third", path.to_str().unwrap()]);
    text.ok();
    assert!(
        text.stdout.contains("already stored as 'billing' and 'billing-copy'")
            && text.stdout.contains("already-stored"),
        "the text output warns and names both: {}",
        text.stdout
    );
    let list = env.run(&["--json", "cert", "list"]).json();
    assert_eq!(list.as_array().unwrap().len(), 3);
    // The warning is about the import; the certificate itself has no problem to show.
    let show = env.run(&["--json", "cert", "show", "billing-copy"]).json();
    assert!(!warnings(&show).contains(&"already-stored".to_string()), "{show}");
}
