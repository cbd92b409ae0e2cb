//! `certgate store copy`: the way up from one machine (SQLite) to several nodes (PostgreSQL) and
//! back, with the private keys still sealed under the same master key.

use serde_json::Value;

use crate::support::cluster::OTHER_KEY;
use crate::support::pg::TestDb;
use crate::support::{Env, LeafSpec, TestCa};

/// Everything a user sees of a store, minus what a copy legitimately changes (the audit log
/// gains a `store.copy` row, the revision moves on).
fn visible(env: &Env, store: &str) -> Vec<Value> {
    let run = |args: &[&str]| {
        let mut all = vec!["--json", "--store", store];
        all.extend_from_slice(args);
        let r = env.run(&all);
        r.ok();
        r.json()
    };
    vec![
        run(&["cert", "list"]),
        run(&["trust", "list"]),
        run(&["bindings"]),
        run(&["service", "list"]),
        run(&["app", "list"]),
        run(&["token", "list"]),
    ]
}

fn copy(env: &Env, from: &str, to: &str) -> Value {
    let run = env.run(&["--json", "store", "copy", "--from", from, "--to", to]);
    run.ok();
    let out = run.json();
    assert_eq!(out["verified"], true, "{out}");
    out["report"].clone()
}

fn written(report: &Value, kind: &str) -> i64 {
    report["counts"].as_array().unwrap().iter().find(|c| c["kind"] == kind).unwrap()["written"].as_i64().unwrap()
}

#[test]
fn store_copy_round_trip_sqlite_postgres_sqlite_keeps_certificates_ids_and_bindings() {
    let ca = TestCa::new("copy");
    let env = Env::new();
    let sqlite = format!("sqlite://{}", env.db_path().display());
    let alpha = ca.leaf(LeafSpec::client("alpha"));
    let beta = ca.leaf(LeafSpec::client("beta"));
    env.import_minted("alpha", &alpha, &ca.intermediate.cert_pem).ok();
    env.import_minted("beta", &beta, "").ok();
    let root = env.file("root.pem", &ca.root.cert_pem);
    env.run(&["trust", "add", "partnerca", root.to_str().unwrap()]).ok();
    env.run(&["bind", "api.partner.example", "alpha", "--trust", "ca:partnerca"]).ok();
    env.run(&["bind", "*.other.example", "beta"]).ok();
    env.run(&["bind", "plain.example:8443", "--no-cert"]).ok();
    env.run(&["service", "add", "Billing.Invoice", "--url", "https://api.partner.example/soap", "--cert", "beta"]).ok();
    env.run(&["app", "add", "erp"]).ok();
    env.run(&["app", "grant", "erp", "alpha"]).ok();
    env.run(&["token", "create", "ops", "--role", "admin"]).ok();
    let original = visible(&env, &sqlite);
    let audit_rows = env.run(&["--json", "audit", "--limit", "1000"]).json().as_array().unwrap().len() as i64;

    // SQLite -> PostgreSQL: everything written, verified.
    let db = TestDb::new();
    let report = copy(&env, &sqlite, &db.url());
    assert_eq!(written(&report, "certificates"), 2);
    assert_eq!(written(&report, "bindings"), 4, "three bindings and the service's own");
    assert_eq!(written(&report, "audit rows"), audit_rows);
    let ids: Vec<&str> = report["certificates"].as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [alpha.id().as_str(), beta.id().as_str()]);
    let key = std::fs::read_to_string(env.data_dir().join("master.key")).unwrap();
    let pg = Env::new().var("CERTGATE_MASTER_KEY", key.trim());
    assert_eq!(visible(&pg, &db.url()), original, "PostgreSQL shows what SQLite showed");
    // the keys are still sealed under the same master key, and open
    let check = pg.run(&["--json", "--store", &db.url(), "cert", "check", "alpha"]).json();
    assert_eq!(check[0]["key"]["matches"], true, "{check}");

    // A second copy writes nothing and changes nothing.
    let revision = pg.run(&["--json", "--store", &db.url(), "audit", "--limit", "1"]).json()[0]["revision"].clone();
    let again = copy(&env, &sqlite, &db.url());
    assert_eq!(again["revision"], Value::Null, "{again}");
    assert!(again["counts"].as_array().unwrap().iter().all(|c| c["written"] == 0), "{again}");
    let after = pg.run(&["--json", "--store", &db.url(), "audit", "--limit", "1"]).json()[0]["revision"].clone();
    assert_eq!(after, revision);

    // PostgreSQL -> a new SQLite store: the same certificates, ids, bindings and the rest.
    let back = format!("sqlite://{}", env.dir.path().join("back/certgate.db").display());
    let report = copy(&env, &db.url(), &back);
    assert_eq!(written(&report, "certificates"), 2);
    assert_eq!(visible(&env, &back), original, "the round trip gives the same store");
    let check = env.run(&["--json", "--store", &back, "cert", "check", "beta"]).json();
    assert_eq!(check[0]["key"]["matches"], true, "{check}");
    let audit = env.run(&["--json", "--store", &back, "audit", "--limit", "1000"]).json();
    let copies = audit.as_array().unwrap().iter().filter(|a| a["action"] == "store.copy").count();
    assert_eq!(copies, 2, "both copies are in the audit log: {audit}");
    assert_eq!(audit.as_array().unwrap().len() as i64, audit_rows + 2);
}

#[test]
fn store_copy_refuses_a_destination_sealed_with_another_master_key() {
    let ca = TestCa::new("copy");
    let env = Env::new();
    let sqlite = format!("sqlite://{}", env.db_path().display());
    env.import_minted("alpha", &ca.leaf(LeafSpec::client("alpha")), "").ok();
    let db = TestDb::new();
    // Another store, sealed under another key.
    let other = Env::new().var("CERTGATE_MASTER_KEY", OTHER_KEY);
    other.run(&["--store", &db.url(), "cert", "list"]).ok();
    let run = env.run(&["--json", "store", "copy", "--from", &sqlite, "--to", &db.url()]);
    run.refused(1, "master-key");
    assert!(run.error_json()["message"].as_str().unwrap().contains("another master key"));
    assert_eq!(other.run(&["--json", "--store", &db.url(), "cert", "list"]).json(), serde_json::json!([]));
    // A missing source is refused rather than copied as an empty store.
    let missing = format!("sqlite://{}", env.dir.path().join("nothing-here.db").display());
    env.run(&["--json", "store", "copy", "--from", &missing, "--to", &db.url()]).refused(1, "store-unavailable");
    assert!(!env.dir.path().join("nothing-here.db").exists());
}
