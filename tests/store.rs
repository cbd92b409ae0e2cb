//! The store on disk: keys sealed at rest, the master key, revisions and the audit log, and
//! several processes writing at once.

use std::os::unix::fs::PermissionsExt;

use certgate::store::{Store, StoreUrl};

use crate::support::{fixtures, Env, LeafSpec, TestCa};

fn revision(env: &Env) -> i64 {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let store = Store::open(&StoreUrl::Sqlite(env.db_path())).await.unwrap();
        let r = store.revision().await.unwrap();
        store.close().await;
        r
    })
}

/// All bytes of the SQLite database and its write-ahead log.
fn database_bytes(env: &Env) -> Vec<u8> {
    let mut bytes = std::fs::read(env.db_path()).unwrap();
    if let Ok(wal) = std::fs::read(env.data_dir().join("certgate.db-wal")) {
        bytes.extend(wal);
    }
    bytes
}

#[test]
fn private_key_bytes_cannot_be_found_in_the_database() {
    let ca = TestCa::new("sealed");
    let env = Env::new();
    let leaf = ca.leaf(LeafSpec::client("sealed"));
    env.import_minted("sealed", &leaf, "").ok();
    // also an RSA key from a PKCS#12 file
    let p12 = fixtures().join("interop/openssl3-default-rsa2048.p12");
    env.run_with_env(
        &["cert", "import", "rsa", p12.to_str().unwrap(), "--password-env", "PW"],
        &[("PW", "interop-pass")],
    )
    .ok();
    let db = database_bytes(&env);
    // The EC private scalar: PKCS#8 holds ECPrivateKey { 1, OCTET STRING (32 bytes) d, [1] public }.
    // (The public half is in the certificate, so only the secret part is searched for.)
    let key_der = leaf.key.serialize_der();
    let at = key_der.windows(5).position(|w| w == [0x02, 0x01, 0x01, 0x04, 0x20]).expect("an EC private key") + 5;
    let scalar = &key_der[at..at + 32];
    for window in scalar.windows(12) {
        assert!(!db.windows(12).any(|w| w == window), "EC private key bytes found in the database");
    }
    // RSA: the private exponent and primes come after the modulus; search the last 512 bytes.
    let rsa_key = std::fs::read_to_string(fixtures().join("interop/pem-key-pkcs8-rsa2048.key")).unwrap();
    let rsa_der = base64_body(&rsa_key);
    for window in rsa_der[rsa_der.len() - 512..].windows(16).step_by(8) {
        assert!(!db.windows(16).any(|w| w == window), "RSA private key bytes found in the database");
    }
    // and the public certificate is there in the clear (so the search itself works)
    assert!(db.windows(32).any(|w| w == &leaf.der[leaf.der.len() - 32..]));
}

fn base64_body(pem: &str) -> Vec<u8> {
    use base64::Engine;
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD.decode(body).unwrap()
}

#[test]
fn master_key_file_is_created_with_mode_0600_on_first_use() {
    let ca = TestCa::new("mk");
    let env = Env::new();
    env.import_minted("a", &ca.leaf(LeafSpec::client("a")), "").ok();
    let meta = std::fs::metadata(env.data_dir().join("master.key")).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
}

#[test]
fn second_process_with_the_wrong_master_key_is_refused_cleanly() {
    let ca = TestCa::new("mk");
    let env = Env::new();
    env.import_minted("a", &ca.leaf(LeafSpec::client("a")), "").ok();
    let before = env.snapshot();
    let rev = revision(&env);
    let wrong = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
    for args in [&["--json", "cert", "list"][..], &["--json", "cert", "check"][..]] {
        let run = env.run_with_env(args, &[("CERTGATE_MASTER_KEY", wrong)]);
        run.refused(1, "master-key");
        assert!(run.error_json()["message"].as_str().unwrap().contains("not the one the store"));
        assert!(run.stdout.is_empty(), "nothing printed but the error");
    }
    let leaf = ca.leaf(LeafSpec::client("b"));
    let file = env.file("b.pem", format!("{}{}", leaf.cert_pem, leaf.key_pem));
    env.run_with_env(&["--json", "cert", "import", "b", file.to_str().unwrap()], &[("CERTGATE_MASTER_KEY", wrong)])
        .refused(1, "master-key");
    let garbage = env.run_with_env(&["--json", "cert", "list"], &[("CERTGATE_MASTER_KEY", "not base64!")]);
    garbage.refused(1, "master-key");
    assert_eq!(revision(&env), rev);
    assert_eq!(env.snapshot(), before);
}

#[test]
fn missing_master_key_file_for_a_sealed_store_is_refused() {
    let ca = TestCa::new("mk");
    let env = Env::new();
    env.import_minted("a", &ca.leaf(LeafSpec::client("a")), &ca.intermediate.cert_pem).ok();
    std::fs::rename(env.data_dir().join("master.key"), env.dir.path().join("moved.key")).unwrap();
    let run = env.run(&["--json", "cert", "list"]);
    run.refused(1, "master-key");
    assert!(run.error_json()["message"].as_str().unwrap().contains("missing"));
    assert!(!env.data_dir().join("master.key").exists(), "no new key is made for a sealed store");
    // with the key given explicitly everything is readable again
    let key = std::fs::read_to_string(env.dir.path().join("moved.key")).unwrap();
    env.run_with_env(&["cert", "check"], &[("CERTGATE_MASTER_KEY", key.trim())]).ok();
}

#[test]
fn master_key_from_the_environment_seals_a_new_store() {
    let ca = TestCa::new("mk");
    let key = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
    let env = Env::new().var("CERTGATE_MASTER_KEY", key);
    env.import_minted("a", &ca.leaf(LeafSpec::client("a")), &ca.intermediate.cert_pem).ok();
    assert!(!env.data_dir().join("master.key").exists());
    env.run(&["cert", "check", "a"]).ok();
}

#[test]
fn every_change_bumps_the_revision_once_and_refusals_do_not() {
    let ca = TestCa::new("rev");
    let env = Env::new();
    env.run(&["cert", "list"]).ok();
    assert_eq!(revision(&env), 0);
    env.import_minted("a", &ca.leaf(LeafSpec::client("a")), "").ok();
    assert_eq!(revision(&env), 1);
    env.import_minted("a", &ca.leaf(LeafSpec::client("a")), "").refused(5, "name-taken");
    let bad = env.file("bad.pem", "-----BEGIN CERTIFICATE-----\nAAAA");
    env.run(&["--json", "cert", "import", "b", bad.to_str().unwrap()]).refused(3, "malformed");
    assert_eq!(revision(&env), 1);
    let root = env.file("root.pem", &ca.root.cert_pem);
    env.run(&["trust", "add", "r", root.to_str().unwrap()]).ok();
    env.run(&["cert", "remove", "a"]).ok();
    assert_eq!(revision(&env), 3);
    let audit = env.run(&["--json", "audit"]).json();
    let revs: Vec<i64> = audit.as_array().unwrap().iter().map(|a| a["revision"].as_i64().unwrap()).collect();
    assert_eq!(revs, [3, 2, 1], "one audit row per change, newest first");
    let actions: Vec<&str> = audit.as_array().unwrap().iter().map(|a| a["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["cert.remove", "trust.add", "cert.import"]);
}

#[test]
fn concurrent_imports_from_several_processes_all_land() {
    let ca = TestCa::new("conc");
    let env = Env::new();
    env.run(&["cert", "list"]).ok(); // create the store and the key first
    let mut children = Vec::new();
    for i in 0..6 {
        let leaf = ca.leaf(LeafSpec::client(&format!("c{i}")));
        let file = env.file(&format!("c{i}.pem"), format!("{}{}", leaf.cert_pem, leaf.key_pem));
        let name = format!("c{i}");
        children.push(
            env.command(&["cert", "import", &name, file.to_str().unwrap()])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap(),
        );
    }
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    assert_eq!(revision(&env), 6);
    assert_eq!(env.run(&["--json", "cert", "list"]).json().as_array().unwrap().len(), 6);
}

#[test]
fn config_file_sets_the_store_and_unknown_keys_are_refused() {
    let ca = TestCa::new("cfg");
    let env = Env::new();
    let db = env.dir.path().join("elsewhere/store.db");
    let cfg = env.file("certgate.toml", format!("store = \"sqlite://{}\"\n", db.display()));
    let leaf = ca.leaf(LeafSpec::client("a"));
    let file = env.file("a.pem", format!("{}{}", leaf.cert_pem, leaf.key_pem));
    env.run(&["--config", cfg.to_str().unwrap(), "cert", "import", "a", file.to_str().unwrap()]).ok();
    assert!(db.exists());
    // the flag beats the file
    let other = env.dir.path().join("flag.db");
    let run = env.run(&[
        "--json",
        "--config",
        cfg.to_str().unwrap(),
        "--store",
        &format!("sqlite://{}", other.display()),
        "cert",
        "list",
    ]);
    assert_eq!(run.json(), serde_json::json!([]));
    let bad = env.file("bad.toml", "stor = \"sqlite:///tmp/x.db\"\n");
    let run = env.run(&["--json", "--config", bad.to_str().unwrap(), "cert", "list"]);
    run.refused(2, "usage");
    assert!(run.error_json()["message"].as_str().unwrap().contains("stor"));
}
