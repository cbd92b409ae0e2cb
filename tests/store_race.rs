//! Referential integrity is the database's: a binding names its trust anchors through
//! `binding_anchors` (foreign keys), so `trust remove X` racing `bind ... --trust ca:X` from two
//! processes cannot leave a binding to a missing anchor, and the route table keeps compiling.
//! Also: several operations in one change (one revision, one audit row per change), a dropped
//! change writes nothing, and migration 004 fills the table from existing policies.

use std::future::Future;
use std::time::{Duration, Instant};

use certgate::store::{anchor_names, AnchorRecord, BindingRecord, Change, Store, StoreError, StoreUrl};

use crate::support::cluster::KEY;
use crate::support::gateway::{wait_until, Gateway, GatewayConfig};
use crate::support::pg::TestDb;
use crate::support::{Env, Run, TestCa};

const ROUNDS: usize = 200;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

fn on_sqlite<F: Future<Output = ()>>(body: impl FnOnce(StoreUrl) -> F) {
    let dir = tempfile::tempdir().unwrap();
    runtime().block_on(body(StoreUrl::Sqlite(dir.path().join("certgate.db"))));
}

fn on_postgres<F: Future<Output = ()>>(body: impl FnOnce(StoreUrl) -> F) {
    let db = TestDb::new();
    runtime().block_on(body(db.store_url()));
}

fn change(action: &str, target: &str) -> Change {
    Change { actor: "test".into(), action: action.into(), target: target.into(), detail: String::new() }
}

fn anchor(ca: &TestCa, name: &str) -> AnchorRecord {
    AnchorRecord { name: name.into(), certs_der: vec![ca.root.der.clone()], owner: None, contact: None, created_at: 1 }
}

fn binding(destination: &str, trust: &str) -> BindingRecord {
    BindingRecord {
        destination: destination.into(),
        certificate: None,
        alternates: Vec::new(),
        trust: certgate::model::TrustPolicy::parse(trust).unwrap(),
        sni: None,
        pins: Vec::new(),
        allow_renegotiation: false,
        created_at: 2,
        updated_at: 2,
    }
}

async fn open(url: &StoreUrl) -> Store {
    Store::open(url).await.unwrap_or_else(|e| panic!("open {}: {e}", url.redacted()))
}

// ---------------------------------------------------------------------------------------------
// The store on both backends

#[test]
fn sqlite_refuses_bindings_to_missing_anchors_in_the_database() {
    on_sqlite(bindings_to_missing_anchors_are_refused_by_the_database)
}

#[test]
fn postgres_refuses_bindings_to_missing_anchors_in_the_database() {
    on_postgres(bindings_to_missing_anchors_are_refused_by_the_database)
}

async fn bindings_to_missing_anchors_are_refused_by_the_database(url: StoreUrl) {
    let ca = TestCa::new("race");
    let s = open(&url).await;
    s.insert_anchor(&anchor(&ca, "a"), &change("trust.add", "a")).await.unwrap();
    let refused = s.put_binding(&binding("x.example", "ca:a,ghost"), &change("bind", "x.example")).await;
    assert!(matches!(&refused, Err(StoreError::NotFound(w)) if w == "trust anchor 'ghost'"), "{refused:?}");
    assert!(s.bindings().await.unwrap().is_empty(), "a refused binding is not half written");
    assert_eq!(s.revision().await.unwrap(), 1);

    s.put_binding(&binding("x.example", "ca:a"), &change("bind", "x.example")).await.unwrap();
    let still = s.delete_anchor("a", &change("trust.remove", "a")).await;
    assert!(matches!(&still, Err(StoreError::StillBound(u)) if u == &["x.example"]), "{still:?}");
    // replacing the policy releases the anchor; removing the binding releases it as well
    s.put_binding(&binding("x.example", "public"), &change("bind", "x.example")).await.unwrap();
    s.delete_anchor("a", &change("trust.remove", "a")).await.unwrap();
    s.insert_anchor(&anchor(&ca, "a"), &change("trust.add", "a")).await.unwrap();
    s.put_binding(&binding("x.example", "ca:a"), &change("bind", "x.example")).await.unwrap();
    s.delete_binding("x.example", &change("unbind", "x.example")).await.unwrap();
    s.delete_anchor("a", &change("trust.remove", "a")).await.unwrap();
    s.close().await;
}

#[test]
fn sqlite_writes_several_operations_in_one_change() {
    on_sqlite(several_operations_are_one_change)
}

#[test]
fn postgres_writes_several_operations_in_one_change() {
    on_postgres(several_operations_are_one_change)
}

async fn several_operations_are_one_change(url: StoreUrl) {
    let ca = TestCa::new("race");
    let s = open(&url).await;
    let mut tx = s.begin_change().await.unwrap();
    tx.insert_anchor(&anchor(&ca, "p")).await.unwrap();
    assert!(!tx.put_binding(&binding("p.example", "ca:p")).await.unwrap(), "a new binding");
    let revision = tx.commit(&[change("trust.add", "p"), change("bind", "p.example")]).await.unwrap();
    assert_eq!(revision, 1);
    let audit = s.audit(10).await.unwrap();
    assert_eq!(
        audit.iter().map(|a| (a.revision, a.action.as_str())).collect::<Vec<_>>(),
        [(1, "bind"), (1, "trust.add")]
    );

    // dropped without commit: nothing written, the revision stays
    let mut tx = s.begin_change().await.unwrap();
    tx.delete_binding("p.example").await.unwrap();
    tx.delete_anchor("p").await.unwrap();
    drop(tx);
    assert_eq!(s.revision().await.unwrap(), 1);
    assert_eq!((s.bindings().await.unwrap().len(), s.anchors().await.unwrap().len()), (1, 1));
    // a refused operation leaves the change usable only to be dropped; nothing of it lands
    let mut tx = s.begin_change().await.unwrap();
    tx.put_binding(&binding("q.example", "public")).await.unwrap();
    assert!(tx.delete_anchor("p").await.is_err());
    drop(tx);
    assert_eq!(s.bindings().await.unwrap().len(), 1);
    s.close().await;
}

#[test]
fn sqlite_migration_004_fills_binding_anchors_from_existing_policies() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("certgate.db");
    runtime().block_on(async {
        let url = StoreUrl::Sqlite(path.clone());
        let mut conn = {
            use sqlx::Connection;
            seed_store(&url).await;
            sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display())).await.unwrap()
        };
        for sql in ROLL_BACK_008_SQLITE.iter().chain(ROLL_BACK_004) {
            sqlx::raw_sql(*sql).execute(&mut conn).await.unwrap();
        }
        drop(conn);
        migrated_store_holds_to_existing_policies(&url).await;
    });
}

#[test]
fn postgres_migration_004_fills_binding_anchors_from_existing_policies() {
    let db = TestDb::new();
    runtime().block_on(async {
        let url = db.store_url();
        seed_store(&url).await;
        let mut conn = {
            use sqlx::Connection;
            sqlx::PgConnection::connect(&db.url()).await.unwrap()
        };
        for sql in ROLL_BACK_008_POSTGRES.iter().chain(ROLL_BACK_004) {
            sqlx::raw_sql(*sql).execute(&mut conn).await.unwrap();
        }
        drop(conn);
        migrated_store_holds_to_existing_policies(&url).await;
    });
}

/// 008 (the route change log) first: its triggers, then its tables.
const ROLL_BACK_008_SQLITE: &[&str] = &[
    "DROP TRIGGER bindings_insert_logged",
    "DROP TRIGGER bindings_update_logged",
    "DROP TRIGGER bindings_delete_logged",
    "DROP TRIGGER binding_certificates_insert_logged",
    "DROP TRIGGER binding_certificates_update_logged",
    "DROP TRIGGER binding_certificates_delete_logged",
    "DROP TRIGGER binding_anchors_insert_logged",
    "DROP TRIGGER binding_anchors_update_logged",
    "DROP TRIGGER binding_anchors_delete_logged",
    "DROP TRIGGER certificates_insert_logged",
    "DROP TRIGGER certificates_update_logged",
    "DROP TRIGGER certificates_delete_logged",
    "DROP TRIGGER trust_anchors_insert_logged",
    "DROP TRIGGER trust_anchors_update_logged",
    "DROP TRIGGER trust_anchors_delete_logged",
    "DROP TRIGGER services_insert_logged",
    "DROP TRIGGER services_update_logged",
    "DROP TRIGGER services_delete_logged",
    "DROP TRIGGER apps_insert_logged",
    "DROP TRIGGER apps_update_logged",
    "DROP TRIGGER apps_delete_logged",
    "DROP TRIGGER grants_insert_logged",
    "DROP TRIGGER grants_update_logged",
    "DROP TRIGGER grants_delete_logged",
    "DROP TABLE route_changes",
    "DROP TABLE route_changes_floor",
    "DELETE FROM schema_version WHERE version = 8",
];
const ROLL_BACK_008_POSTGRES: &[&str] = &[
    "DROP FUNCTION route_changed() CASCADE",
    "DROP TABLE route_changes",
    "DROP TABLE route_changes_floor",
    "DELETE FROM schema_version WHERE version = 8",
];

/// Back to schema 3, with policies written as certgate before 004 could leave them (one of
/// them naming an anchor that was removed meanwhile).
const ROLL_BACK_004: &[&str] = &[
    // 007, 006 and 005 first (schema 3 had none of them)
    "ALTER TABLE bindings DROP COLUMN allow_renegotiation",
    "DELETE FROM schema_version WHERE version = 7",
    "DROP TABLE binding_certificates",
    "DELETE FROM schema_version WHERE version = 6",
    "DROP TABLE certificate_requests",
    "DROP TABLE alerts",
    "DROP TABLE partner_certificates",
    "ALTER TABLE certificates DROP COLUMN contact",
    "ALTER TABLE trust_anchors DROP COLUMN owner",
    "ALTER TABLE trust_anchors DROP COLUMN contact",
    "DELETE FROM schema_version WHERE version = 5",
    "DROP TABLE binding_anchors",
    "DELETE FROM schema_version WHERE version = 4",
    "INSERT INTO bindings (destination, certificate, trust, sni, pins, created_at, updated_at) VALUES ('two.example', NULL, 'ca:a,b', NULL, '[]', 1, 1)",
    "INSERT INTO bindings (destination, certificate, trust, sni, pins, created_at, updated_at) VALUES ('gone.example', NULL, 'ca:gone', NULL, '[]', 1, 1)",
];

async fn seed_store(url: &StoreUrl) {
    let ca = TestCa::new("race");
    let s = open(url).await;
    for name in ["a", "b", "c"] {
        s.insert_anchor(&anchor(&ca, name), &change("trust.add", name)).await.unwrap();
    }
    s.put_binding(&binding("one.example", "ca:b"), &change("bind", "one.example")).await.unwrap();
    s.close().await;
}

async fn migrated_store_holds_to_existing_policies(url: &StoreUrl) {
    let s = open(url).await;
    let still = s.delete_anchor("a", &change("trust.remove", "a")).await;
    assert!(matches!(&still, Err(StoreError::StillBound(u)) if u == &["two.example"]), "{still:?}");
    let still = s.delete_anchor("b", &change("trust.remove", "b")).await;
    assert!(matches!(&still, Err(StoreError::StillBound(u)) if u == &["one.example", "two.example"]), "{still:?}");
    s.delete_anchor("c", &change("trust.remove", "c")).await.unwrap();
    s.close().await;
}

// ---------------------------------------------------------------------------------------------
// Two processes racing, through the real binary

#[test]
fn sqlite_trust_remove_racing_bind_always_ends_consistent() {
    let env = Env::new();
    let url = StoreUrl::Sqlite(env.db_path());
    runtime().block_on(race(env, url));
}

#[test]
fn postgres_trust_remove_racing_bind_always_ends_consistent() {
    let db = TestDb::new();
    // Loopback, and 600 processes: a TLS handshake each (debug build) would be most of the time.
    let env =
        Env::new().var("CERTGATE_STORE", &format!("{}?sslmode=disable", db.url())).var("CERTGATE_MASTER_KEY", KEY);
    runtime().block_on(race(env, db.store_url()));
}

/// `certgate --json ARGS` as a child process, started now.
fn spawn(env: &Env, args: &[&str]) -> std::process::Child {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    env.command(&all).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().unwrap()
}

fn finish(child: std::process::Child) -> Run {
    let out = child.wait_with_output().unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

async fn race(env: Env, url: StoreUrl) {
    let started = Instant::now();
    let ca = TestCa::new("race");
    let root = env.file("root.pem", &ca.root.cert_pem);
    let root = root.to_str().unwrap();
    env.run(&["--json", "trust", "add", "keep", root]).ok();
    let gateway = Gateway::start(&env, &GatewayConfig::new()).await;
    let (mut removed, mut bound) = (0, 0);
    for round in 0..ROUNDS {
        let name = format!("x{round}");
        let host = format!("host-{round}.example");
        env.run(&["--json", "trust", "add", &name, root]).ok();
        let trust = format!("ca:keep,{name}");
        let remove = spawn(&env, &["trust", "remove", &name]);
        let bind = spawn(&env, &["bind", &host, "--no-cert", "--trust", &trust]);
        let (remove, bind) = (finish(remove), finish(bind));
        match (remove.code, bind.code) {
            (0, _) => {
                bind.refused(4, "not-found");
                let message = bind.error_json()["message"].as_str().unwrap_or_default().to_string();
                assert!(message.contains(&format!("trust anchor '{name}'")), "round {round}: {message}");
                removed += 1;
            }
            (_, 0) => {
                remove.refused(5, "still-bound");
                bound += 1;
            }
            _ => panic!(
                "round {round}: neither won\nremove: {} {}\nbind: {} {}",
                remove.code, remove.stderr, bind.code, bind.stderr
            ),
        }
    }
    // The store: every anchor a binding names exists, and every round left exactly one winner.
    let store = open(&url).await;
    let snap = store.snapshot().await.unwrap();
    let anchors: Vec<&str> = snap.anchors.iter().map(|a| a.name.as_str()).collect();
    for b in &snap.bindings {
        for name in anchor_names(&b.trust).iter() {
            assert!(anchors.contains(&name.as_str()), "binding {} names the missing anchor {name}", b.destination);
        }
    }
    assert_eq!(snap.bindings.len(), bound);
    assert_eq!(anchors.len(), 1 + bound, "'keep' and the anchors whose binding won");
    // The route table still compiles and follows the store: one more change reaches it.
    env.run(&["--json", "bind", "last.example", "--no-cert", "--trust", "ca:keep"]).ok();
    let revision = store.revision().await.unwrap();
    store.close().await;
    let seen = wait_until(Duration::from_secs(10), async || {
        let ready = gateway.readyz_json().await;
        (ready["revision"].as_i64() == Some(revision)).then_some(ready)
    })
    .await;
    let ready = seen.unwrap_or_else(|| panic!("the gateway never reached revision {revision}\n{}", gateway.log()));
    assert_eq!(ready["bindings"].as_u64(), Some(bound as u64 + 1), "{ready}");
    // How long it took is printed, not asserted: on a loaded machine it varies several-fold.
    eprintln!("{ROUNDS} rounds: {removed} removals won, {bound} bindings won, {:?}", started.elapsed());
}
