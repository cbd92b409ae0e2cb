//! Files written by software nobody here wrote: OpenSSL 3, Java keytool, Python cryptography.
//! Each case imports one fixture (see tests/fixtures/interop/README.md for how each was made)
//! and checks what certgate made of it against tests/fixtures/interop/expected.json: which
//! certificate became the leaf, its key type and size, and the chain that came with it — or the
//! exact refusal code, with the store unchanged.

use serde_json::Value;

use crate::support::{fixtures, Env};

fn expected() -> Value {
    let text = std::fs::read_to_string(fixtures().join("interop/expected.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn entry(file: &str, password: Option<&str>, key: Option<&str>) -> Value {
    let all = expected();
    all["fixtures"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| {
            e["file"].as_str() == Some(file) && e["password"].as_str() == password && e["key_file"].as_str() == key
        })
        .cloned()
        .unwrap_or_else(|| panic!("no expected.json entry for {file} / {password:?} / {key:?}"))
}

/// Import one fixture as a user would and compare with what the producing tool says.
fn case(file: &str, password: Option<&str>, key: Option<&str>) {
    let e = entry(file, password, key);
    let env = Env::new();
    let dir = fixtures().join("interop");
    let path = dir.join(file);
    let mut args: Vec<String> =
        vec!["--json".into(), "cert".into(), "import".into(), "subject".into(), path.display().to_string()];
    if let Some(k) = key {
        args.push("--key".into());
        args.push(dir.join(k).display().to_string());
    }
    for chain in e["chain_files"].as_array().into_iter().flatten() {
        args.push("--chain".into());
        args.push(dir.join(chain.as_str().unwrap()).display().to_string());
    }
    if password.is_some() {
        args.push("--password-env".into());
        args.push("FIXTURE_PASSWORD".into());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let before = env.snapshot();
    let run = env.run_with_env(&args, &[("FIXTURE_PASSWORD", password.unwrap_or(""))]);
    let outcome = e["outcome"].as_str().unwrap();
    if outcome != "ok" {
        run.refused(3, outcome);
        assert_eq!(env.snapshot(), before, "a refused import changed the store");
        return;
    }
    run.ok();
    let got = run.json();
    assert_eq!(got["id"], e["leaf_sha256"], "the leaf certgate picked ({}) is not the tool's leaf", got["subject"]);
    assert_eq!(got["key_type"], e["key_type"]);
    assert_eq!(got["key_bits"], e["key_bits"]);
    let want_chain: Vec<&str> =
        e["chain_subject_cns"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    let got_chain: Vec<String> = got["chain"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let subject = c["subject"].as_str().unwrap();
            subject.split(", ").find_map(|p| p.strip_prefix("CN=")).unwrap_or(subject).to_string()
        })
        .collect();
    assert_eq!(got_chain, want_chain, "chain order: issuer of the leaf first");
    if let Some(root) = got["chain"].as_array().unwrap().last() {
        assert_eq!(root["self_signed"], true, "the root is marked self-signed");
    }
    // What went into the store is what `show` reads back, and the key matches.
    let check = env.run(&["--json", "cert", "check", "subject"]);
    let report = &check.json()[0];
    assert_eq!(report["key"]["matches"], true, "{report}");
}

macro_rules! interop_cases {
    ($($name:ident: $file:literal, $password:expr, $key:expr;)*) => {
        $(
            #[test]
            fn $name() {
                case($file, $password, $key);
            }
        )*

        const CASES: &[(&str, Option<&str>, Option<&str>)] = &[$(($file, $password, $key)),*];
    };
}

const PW: Option<&str> = Some("interop-pass");
const WRONG: Option<&str> = Some("wrong-pass");

interop_cases! {
    imports_openssl3_default_pkcs12_with_rsa2048: "openssl3-default-rsa2048.p12", PW, None;
    imports_openssl3_default_pkcs12_with_rsa4096: "openssl3-default-rsa4096.p12", PW, None;
    imports_openssl3_default_pkcs12_with_rsa8192: "openssl3-default-rsa8192.p12", PW, None;
    imports_openssl3_default_pkcs12_with_ecdsa_p256: "openssl3-default-ecp256.p12", PW, None;
    imports_openssl3_default_pkcs12_with_ecdsa_p384: "openssl3-default-ecp384.p12", PW, None;
    imports_openssl3_default_pkcs12_with_ed25519: "openssl3-default-ed25519.p12", PW, None;
    refuses_pkcs12_with_secp256k1_key_as_unsupported: "openssl3-default-secp256k1.p12", PW, None;
    refuses_pkcs12_with_ed448_key_as_unsupported: "openssl3-default-ed448.p12", PW, None;
    refuses_openssl3_pkcs12_with_wrong_password: "openssl3-default-rsa2048.p12", WRONG, None;
    asks_for_password_of_openssl3_pkcs12_when_none_given: "openssl3-default-rsa2048.p12", None, None;
    imports_windows_style_legacy_pkcs12_3des_rc2_40_sha1_mac: "openssl3-legacy-rsa2048.p12", PW, None;
    refuses_legacy_pkcs12_with_wrong_password: "openssl3-legacy-rsa2048.p12", WRONG, None;
    imports_openssl3_pkcs12_with_aes128: "openssl3-aes128-rsa2048.p12", PW, None;
    imports_pkcs12_without_mac: "openssl3-nomac-rsa2048.p12", PW, None;
    refuses_pkcs12_without_mac_with_wrong_password: "openssl3-nomac-rsa2048.p12", WRONG, None;
    imports_pkcs12_with_empty_password_given_as_empty: "openssl3-emptypass-rsa2048.p12", Some(""), None;
    imports_pkcs12_with_empty_password_when_none_given: "openssl3-emptypass-rsa2048.p12", None, None;
    imports_unencrypted_pkcs12_without_mac: "openssl3-noenc-nomac-rsa2048.p12", None, None;
    imports_pkcs12_whose_leaf_is_not_the_first_certificate: "openssl3-leaf-not-first-rsa2048.p12", PW, None;
    imports_pkcs12_with_rfc7292_null_password_mac_given_as_empty: "handmade-nullpw-mac-noenc-rsa2048.p12", Some(""), None;
    imports_pkcs12_with_rfc7292_null_password_mac_when_none_given: "handmade-nullpw-mac-noenc-rsa2048.p12", None, None;
    imports_java_keytool_pkcs12_keystore: "keytool-importkeystore-rsa2048.p12", PW, None;
    refuses_java_keytool_keystore_with_wrong_password: "keytool-importkeystore-rsa2048.p12", WRONG, None;
    imports_java_keytool_keystore_with_chain_stored_twice: "keytool-chain-twice-rsa2048.p12", PW, None;
    imports_java_keytool_keystore_with_trusted_entry_first: "keytool-trusted-first-rsa2048.p12", PW, None;
    refuses_java_jks_keystore_with_conversion_hint: "keytool-rsa2048.jks", PW, None;
    imports_java_jks_converted_to_pkcs12: "keytool-jks-to-pkcs12-rsa2048.p12", PW, None;
    imports_python_cryptography_best_available_encryption_rsa: "python-cryptography-best-rsa2048.p12", PW, None;
    imports_python_cryptography_best_available_encryption_ecdsa: "python-cryptography-best-ecp256.p12", PW, None;
    imports_python_cryptography_legacy_3des_sha1: "python-cryptography-legacy-3des-rsa2048.p12", PW, None;
    imports_python_cryptography_unencrypted_with_mac: "python-cryptography-noenc-rsa2048.p12", None, None;
    refuses_python_pkcs12_whose_key_matches_no_certificate: "refuse-key-mismatch-python-cryptography.p12", PW, None;
    imports_pem_with_certificate_and_pkcs8_key_in_one_file: "pem-cert-key-pkcs8-rsa2048.pem", None, None;
    imports_pem_certificate_key_and_chain_from_three_files: "pem-cert-rsa2048.crt", None, Some("pem-key-pkcs8-rsa2048.key");
    refuses_pem_certificate_alone_as_no_private_key: "pem-cert-rsa2048.crt", None, None;
    imports_pem_full_chain_with_key: "pem-fullchain-key-rsa2048.pem", None, None;
    imports_pem_with_key_before_certificate: "pem-key-first-rsa2048.pem", None, None;
    imports_pem_certificate_with_pkcs1_rsa_key: "pem-cert-rsa2048.crt", None, Some("pem-key-pkcs1-rsa2048.key");
    imports_pem_certificate_with_sec1_ec_key: "pem-cert-ecp256.crt", None, Some("pem-key-sec1-ecp256.key");
    imports_pem_with_ed25519_key: "pem-cert-key-ed25519.pem", None, None;
    imports_encrypted_pkcs8_key: "pem-cert-rsa2048.crt", PW, Some("pem-key-pkcs8-enc-aes256-rsa2048.key");
    refuses_encrypted_pkcs8_key_with_wrong_password: "pem-cert-rsa2048.crt", WRONG, Some("pem-key-pkcs8-enc-aes256-rsa2048.key");
    asks_for_password_of_encrypted_pkcs8_key: "pem-cert-rsa2048.crt", None, Some("pem-key-pkcs8-enc-aes256-rsa2048.key");
    imports_old_openssl_proc_type_aes128_rsa_key: "pem-cert-rsa2048.crt", PW, Some("pem-key-traditional-aes128-rsa2048.key");
    refuses_old_openssl_proc_type_key_with_wrong_password: "pem-cert-rsa2048.crt", WRONG, Some("pem-key-traditional-aes128-rsa2048.key");
    asks_for_password_of_old_openssl_proc_type_key: "pem-cert-rsa2048.crt", None, Some("pem-key-traditional-aes128-rsa2048.key");
    imports_old_openssl_proc_type_aes256_ec_p384_key: "pem-cert-ecp384.crt", PW, Some("pem-key-traditional-aes256-ecp384.key");
    imports_old_openssl_proc_type_des3_ec_p256_key: "pem-cert-ecp256.crt", PW, Some("pem-key-traditional-des3-ecp256.key");
    imports_der_certificate_with_der_pkcs8_key: "der-leaf-rsa2048.cer", None, Some("der-key-pkcs8-rsa2048.der");
    imports_der_certificate_with_der_pkcs1_key: "der-leaf-rsa2048.cer", None, Some("der-key-pkcs1-rsa2048.der");
    imports_der_ec_certificate_with_der_pkcs8_key: "der-leaf-ecp256.cer", None, Some("der-key-pkcs8-ecp256.der");
    refuses_certificate_signing_request: "refuse-csr-rsa2048.csr", None, None;
    refuses_lone_private_key: "refuse-lone-key-pkcs8-rsa2048.pem", None, None;
    refuses_lone_public_key: "refuse-public-key-rsa2048.pem", None, None;
    refuses_pkcs12_with_certificates_only: "refuse-certs-only-nokeys.p12", PW, None;
    refuses_openssl_pkcs12_whose_key_matches_no_certificate: "refuse-key-mismatch-openssl.p12", PW, None;
    refuses_pem_whose_key_matches_no_certificate: "refuse-key-mismatch.pem", None, None;
    refuses_truncated_pkcs12_as_malformed: "refuse-truncated-openssl3-default-rsa2048.p12", PW, None;
    refuses_empty_file: "refuse-empty.bin", None, None;
    refuses_pem_with_broken_base64_as_malformed: "refuse-broken-base64.pem", None, None;
}

#[test]
fn every_interop_fixture_in_expected_json_has_a_test() {
    let all = expected();
    for e in all["fixtures"].as_array().unwrap() {
        let Some(file) = e["file"].as_str() else { continue };
        let key = (file, e["password"].as_str(), e["key_file"].as_str());
        assert!(CASES.contains(&key), "no test imports {key:?}");
    }
}

#[test]
fn refuses_file_over_one_mebibyte_as_too_large() {
    let env = Env::new();
    let mut data = vec![0u8; 2 * 1024 * 1024];
    aws_lc_rs::rand::fill(&mut data).unwrap();
    let path = env.file("huge.p12", &data);
    let before = env.snapshot();
    env.run(&["--json", "cert", "import", "huge", path.to_str().unwrap()]).refused(3, "too-large");
    assert_eq!(env.snapshot(), before);
}
