//! The store conformance suite: the same test bodies over `certgate::store::Store` on SQLite
//! and on PostgreSQL (each PostgreSQL test on a fresh database of its own, so they run in
//! parallel). Both backends must answer alike: the same records back, the same errors
//! (`Conflict`, `NotFound`, `StillBound`), one revision and one audit row per change, nothing
//! changed by a refusal, and nothing lost when several stores (nodes) write at once.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use certgate::store::{
    AnchorRecord, AppRecord, BindingRecord, CertificateRecord, Change, CopyPlan, GrantRecord, ServiceRecord, Store,
    StoreError, StoreEvent, StoreUrl, TokenRecord,
};

use certgate::model::{AppName, CertificateId, CertificateName};

use crate::support::pg::TestDb;
use crate::support::{LeafSpec, TestCa};

/// Each body runs once per backend: `conformance::sqlite::NAME` and `conformance::postgres::NAME`.
macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $( #[test] fn $name() { super::on_sqlite(super::$name) } )*
        }
        mod postgres {
            $( #[test] fn $name() { super::on_postgres(super::$name) } )*
        }
    };
}

conformance!(
    a_new_store_is_empty_at_revision_zero,
    certificates_come_back_byte_for_byte,
    a_taken_certificate_name_is_a_conflict_and_changes_nothing,
    rotation_replaces_the_material_and_keeps_the_name,
    a_bound_certificate_is_still_bound_unless_its_bindings_go_too,
    bindings_are_created_replaced_and_need_an_existing_certificate,
    a_binding_keeps_its_candidates_in_order_and_each_must_exist,
    trust_anchors_in_use_cannot_be_removed,
    services_carry_their_own_binding_or_none,
    tokens_apps_and_grants_follow_the_same_rules,
    every_change_bumps_the_revision_once_and_writes_one_audit_row,
    meta_init_keeps_the_first_value_even_when_opened_concurrently,
    concurrent_changes_from_several_nodes_lose_nothing,
    a_snapshot_is_one_consistent_revision_while_others_write,
    a_copy_plan_is_written_in_one_change_and_an_empty_one_writes_nothing,
    an_alert_is_claimed_by_one_of_three_nodes_and_retried_only_after_its_backoff,
);

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

async fn open(url: &StoreUrl) -> Store {
    Store::open(url).await.unwrap_or_else(|e| panic!("open {}: {e}", url.redacted()))
}

fn change(action: &str, target: &str) -> Change {
    Change { actor: "test".into(), action: action.into(), target: target.into(), detail: format!("{action} {target}") }
}

fn cert_name(name: &str) -> CertificateName {
    CertificateName::parse(name).unwrap()
}

fn app_name(name: &str) -> AppName {
    AppName::parse(name).unwrap()
}

/// A certificate record around a real leaf and chain (the store splits the chain by DER).
fn cert(ca: &TestCa, name: &str) -> CertificateRecord {
    let leaf = ca.leaf(LeafSpec::client(name));
    CertificateRecord {
        name: cert_name(name),
        id: CertificateId::parse(&leaf.id()).unwrap(),
        leaf_der: leaf.der.clone(),
        chain_der: vec![ca.intermediate.der.clone(), ca.root.der.clone()],
        sealed_key: format!("sealed-{name}").into_bytes(),
        key_format: "pkcs8".into(),
        owner: Some("payments team".into()),
        contact: Some("payments@example.com".into()),
        created_at: 1_700_000_000,
        updated_at: 1_700_000_000,
    }
}

fn binding(destination: &str, certificate: Option<&str>) -> BindingRecord {
    BindingRecord {
        destination: destination.into(),
        certificate: certificate.map(cert_name),
        alternates: Vec::new(),
        trust: certgate::model::TrustPolicy::Public,
        sni: None,
        pins: Vec::new(),
        allow_renegotiation: false,
        created_at: 1_700_000_100,
        updated_at: 1_700_000_100,
    }
}

fn same_cert(a: &CertificateRecord, b: &CertificateRecord) {
    assert_eq!(
        (&a.name, &a.id, &a.leaf_der, &a.chain_der, &a.sealed_key, &a.key_format, &a.owner, a.created_at, a.updated_at),
        (&b.name, &b.id, &b.leaf_der, &b.chain_der, &b.sealed_key, &b.key_format, &b.owner, b.created_at, b.updated_at)
    );
}

#[track_caller]
fn conflict<T: std::fmt::Debug>(r: Result<T, StoreError>, contains: &str) {
    match r {
        Err(StoreError::Conflict(m)) => assert!(m.contains(contains), "conflict message {m:?} lacks {contains:?}"),
        other => panic!("expected Conflict({contains}), got {other:?}"),
    }
}

#[track_caller]
fn not_found<T: std::fmt::Debug>(r: Result<T, StoreError>, what: &str) {
    match r {
        Err(StoreError::NotFound(m)) => assert_eq!(m, what),
        other => panic!("expected NotFound({what}), got {other:?}"),
    }
}

#[track_caller]
fn still_bound<T: std::fmt::Debug>(r: Result<T, StoreError>, users: &[&str]) {
    match r {
        Err(StoreError::StillBound(u)) => assert_eq!(u, users),
        other => panic!("expected StillBound({users:?}), got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------

async fn a_new_store_is_empty_at_revision_zero(url: StoreUrl) {
    let s = open(&url).await;
    assert_eq!(s.revision().await.unwrap(), 0);
    let snap = s.snapshot().await.unwrap();
    assert_eq!(snap.revision, 0);
    assert!(snap.certificates.is_empty() && snap.bindings.is_empty() && snap.anchors.is_empty());
    assert!(s.audit(100).await.unwrap().is_empty());
    assert!(s.tokens().await.unwrap().is_empty());
    assert_eq!(s.meta("master_key_check").await.unwrap(), None);
    s.close().await;
    // opening again (the schema is there) changes nothing
    let s = open(&url).await;
    assert_eq!(s.revision().await.unwrap(), 0);
    s.close().await;
}

async fn certificates_come_back_byte_for_byte(url: StoreUrl) {
    let ca = TestCa::new("conf");
    let s = open(&url).await;
    let a = cert(&ca, "alpha");
    let mut b = cert(&ca, "beta");
    b.owner = None;
    b.chain_der.clear();
    s.insert_certificate(&b, &change("cert.import", "beta")).await.unwrap();
    s.insert_certificate(&a, &change("cert.import", "alpha")).await.unwrap();
    let all = s.certificates().await.unwrap();
    assert_eq!(all.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(), ["alpha", "beta"], "ordered by name");
    same_cert(&all[0], &a);
    same_cert(&all[1], &b);
    same_cert(&s.certificate("alpha").await.unwrap().unwrap(), &a);
    assert!(s.certificate("gamma").await.unwrap().is_none());
    // the snapshot carries the same records
    let snap = s.snapshot().await.unwrap();
    same_cert(&snap.certificates[0], &a);
    s.close().await;
}

async fn a_taken_certificate_name_is_a_conflict_and_changes_nothing(url: StoreUrl) {
    let ca = TestCa::new("conf");
    let s = open(&url).await;
    let first = cert(&ca, "alpha");
    s.insert_certificate(&first, &change("cert.import", "alpha")).await.unwrap();
    conflict(
        s.insert_certificate(&cert(&ca, "alpha"), &change("cert.import", "alpha")).await,
        "'alpha' exists already",
    );
    assert_eq!(s.revision().await.unwrap(), 1);
    assert_eq!(s.audit(10).await.unwrap().len(), 1);
    same_cert(&s.certificate("alpha").await.unwrap().unwrap(), &first);
    s.close().await;
}

async fn rotation_replaces_the_material_and_keeps_the_name(url: StoreUrl) {
    let ca = TestCa::new("conf");
    let s = open(&url).await;
    s.insert_certificate(&cert(&ca, "alpha"), &change("cert.import", "alpha")).await.unwrap();
    let mut next = cert(&ca, "alpha");
    next.owner = None; // keeps the owner
    next.updated_at = 1_800_000_000;
    assert_eq!(s.replace_certificate(&next, &change("cert.rotate", "alpha")).await.unwrap(), 2);
    let got = s.certificate("alpha").await.unwrap().unwrap();
    assert_eq!(got.id, next.id);
    assert_eq!(got.leaf_der, next.leaf_der);
    assert_eq!(got.owner.as_deref(), Some("payments team"));
    assert_eq!((got.created_at, got.updated_at), (1_700_000_000, 1_800_000_000));
    let mut missing = cert(&ca, "ghost");
    missing.owner = None;
    not_found(s.replace_certificate(&missing, &change("cert.rotate", "ghost")).await, "certificate 'ghost'");
    assert_eq!(s.revision().await.unwrap(), 2);
    s.close().await;
}

async fn a_bound_certificate_is_still_bound_unless_its_bindings_go_too(url: StoreUrl) {
    let ca = TestCa::new("conf");
    let s = open(&url).await;
    s.insert_certificate(&cert(&ca, "alpha"), &change("cert.import", "alpha")).await.unwrap();
    s.put_binding(&binding("b.example", Some("alpha")), &change("bind", "b.example")).await.unwrap();
    s.put_binding(&binding("a.example:8443", Some("alpha")), &change("bind", "a.example:8443")).await.unwrap();
    s.insert_app(&AppRecord { name: app_name("app"), hash: "h".into(), created_at: 1 }, &change("app.add", "app"))
        .await
        .unwrap();
    s.put_grant(
        &GrantRecord { app: app_name("app"), certificate: cert_name("alpha"), created_at: 1 },
        &change("grant", "app"),
    )
    .await
    .unwrap();
    let rev = s.revision().await.unwrap();
    still_bound(
        s.delete_certificate("alpha", false, &change("cert.remove", "alpha")).await,
        &["a.example:8443", "b.example"],
    );
    assert_eq!(s.revision().await.unwrap(), rev);
    assert_eq!(s.bindings().await.unwrap().len(), 2);
    assert_eq!(s.delete_certificate("alpha", true, &change("cert.remove", "alpha")).await.unwrap(), rev + 1);
    assert!(s.bindings().await.unwrap().is_empty());
    assert!(s.grants().await.unwrap().is_empty(), "grants of a removed certificate go with it");
    not_found(s.delete_certificate("alpha", true, &change("cert.remove", "alpha")).await, "certificate 'alpha'");
    s.close().await;
}

async fn bindings_are_created_replaced_and_need_an_existing_certificate(url: StoreUrl) {
    let ca = TestCa::new("conf");
    let s = open(&url).await;
    for name in ["one", "two"] {
        let anchor = AnchorRecord {
            name: name.into(),
            certs_der: vec![ca.root.der.clone()],
            owner: None,
            contact: None,
            created_at: 7,
        };
        s.insert_anchor(&anchor, &change("trust.add", name)).await.unwrap();
    }
    s.insert_certificate(&cert(&ca, "alpha"), &change("cert.import", "alpha")).await.unwrap();
    not_found(s.put_binding(&binding("x.example", Some("ghost")), &change("bind", "x")).await, "certificate 'ghost'");
    assert_eq!(s.put_binding(&binding("x.example", Some("alpha")), &change("bind", "x")).await.unwrap(), (4, false));
    let mut again = binding("x.example", None);
    again.trust = certgate::model::TrustPolicy::parse("ca:one,two").unwrap();
    again.sni = Some("sni.example".into());
    again.pins = vec![certgate::model::Pin([0xaa; 32]), certgate::model::Pin([0xbb; 32])];
    again.allow_renegotiation = true; // migration 007
    again.created_at = 5; // the first creation time stays
    again.updated_at = 1_900_000_000;
    assert_eq!(s.put_binding(&again, &change("bind", "x")).await.unwrap(), (5, true));
    let got = s.bindings().await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0], BindingRecord { created_at: 1_700_000_100, ..again.clone() });
    not_found(s.delete_binding("y.example", &change("unbind", "y")).await, "binding for 'y.example'");
    assert_eq!(s.delete_binding("x.example", &change("unbind", "x")).await.unwrap(), 6);
    assert!(s.bindings().await.unwrap().is_empty());
    s.close().await;
}

async fn a_binding_keeps_its_candidates_in_order_and_each_must_exist(url: StoreUrl) {
    let ca = TestCa::new("conf");
    let s = open(&url).await;
    for name in ["alpha", "beta", "gamma"] {
        s.insert_certificate(&cert(&ca, name), &change("cert.import", name)).await.unwrap();
    }
    let mut b = binding("x.example", Some("gamma"));
    b.alternates = vec![cert_name("alpha"), cert_name("beta")];
    s.put_binding(&b, &change("bind", "x")).await.unwrap();
    let mut other = binding("y.example", Some("alpha"));
    other.alternates = vec![cert_name("gamma")];
    s.put_binding(&other, &change("bind", "y")).await.unwrap();
    let got = s.bindings().await.unwrap();
    assert_eq!(got[0].alternates, vec![cert_name("alpha"), cert_name("beta")], "order of preference kept: {got:?}");
    assert_eq!(got[1].alternates, vec![cert_name("gamma")]);
    assert_eq!(s.snapshot().await.unwrap().bindings, got, "the snapshot reads them alike");

    // An unknown candidate is refused and changes nothing.
    let rev = s.revision().await.unwrap();
    let mut bad = b.clone();
    bad.alternates = vec![cert_name("beta"), cert_name("ghost")];
    not_found(s.put_binding(&bad, &change("bind", "x")).await, "certificate 'ghost'");
    assert_eq!(s.revision().await.unwrap(), rev);
    assert_eq!(s.bindings().await.unwrap(), got);

    // A further candidate blocks the removal of its certificate, like the first one.
    still_bound(s.delete_certificate("beta", false, &change("cert.remove", "beta")).await, &["x.example"]);
    still_bound(
        s.delete_certificate("gamma", false, &change("cert.remove", "gamma")).await,
        &["x.example", "y.example"],
    );
    // Replacing the binding replaces its list; removing it removes its candidates.
    let mut fewer = b.clone();
    fewer.alternates = vec![cert_name("alpha")];
    s.put_binding(&fewer, &change("bind", "x")).await.unwrap();
    assert_eq!(s.bindings().await.unwrap()[0].alternates, vec![cert_name("alpha")]);
    s.delete_certificate("beta", false, &change("cert.remove", "beta")).await.unwrap();
    s.delete_binding("y.example", &change("unbind", "y")).await.unwrap();
    // --force: the bindings naming it as any candidate go too.
    s.delete_certificate("alpha", true, &change("cert.remove", "alpha")).await.unwrap();
    assert!(s.bindings().await.unwrap().is_empty(), "x.example named alpha as a further candidate");
    s.close().await;
}

async fn trust_anchors_in_use_cannot_be_removed(url: StoreUrl) {
    let ca = TestCa::new("conf");
    let s = open(&url).await;
    let anchor = AnchorRecord {
        name: "partner".into(),
        certs_der: vec![ca.root.der.clone(), ca.intermediate.der.clone()],
        owner: Some("partner desk".into()),
        contact: None,
        created_at: 7,
    };
    s.insert_anchor(&anchor, &change("trust.add", "partner")).await.unwrap();
    conflict(s.insert_anchor(&anchor, &change("trust.add", "partner")).await, "'partner' exists already");
    let got = s.anchor("partner").await.unwrap().unwrap();
    assert_eq!((got.name.as_str(), &got.certs_der, got.created_at), ("partner", &anchor.certs_der, 7));
    assert_eq!(s.anchors().await.unwrap().len(), 1);
    let other = AnchorRecord { name: "other".into(), ..anchor.clone() };
    s.insert_anchor(&other, &change("trust.add", "other")).await.unwrap();
    let mut b = binding("p.example", None);
    b.trust = certgate::model::TrustPolicy::parse("ca:other,partner").unwrap();
    s.put_binding(&b, &change("bind", "p.example")).await.unwrap();
    still_bound(s.delete_anchor("partner", &change("trust.remove", "partner")).await, &["p.example"]);
    s.delete_binding("p.example", &change("unbind", "p.example")).await.unwrap();
    s.delete_anchor("partner", &change("trust.remove", "partner")).await.unwrap();
    not_found(s.delete_anchor("partner", &change("trust.remove", "partner")).await, "trust anchor 'partner'");
    assert!(s.anchor("partner").await.unwrap().is_none());
    s.close().await;
}

async fn services_carry_their_own_binding_or_none(url: StoreUrl) {
    let ca = TestCa::new("conf");
    let s = open(&url).await;
    s.insert_certificate(&cert(&ca, "alpha"), &change("cert.import", "alpha")).await.unwrap();
    let svc =
        ServiceRecord { name: "Billing".into(), url: "https://b.example/soap".into(), created_at: 1, updated_at: 1 };
    let own = binding("service:Billing", Some("alpha"));
    not_found(
        s.put_service(&svc, Some(&binding("service:Billing", Some("ghost"))), &change("service.add", "Billing")).await,
        "certificate 'ghost'",
    );
    assert!(s.services().await.unwrap().is_empty(), "a refused service is not half written");
    assert_eq!(s.put_service(&svc, Some(&own), &change("service.add", "Billing")).await.unwrap(), (2, false));
    assert_eq!(s.bindings().await.unwrap(), vec![own.clone()]);
    let moved = ServiceRecord { url: "https://c.example/".into(), updated_at: 2, ..svc.clone() };
    assert_eq!(s.put_service(&moved, None, &change("service.add", "Billing")).await.unwrap(), (3, true));
    assert_eq!(s.services().await.unwrap(), vec![ServiceRecord { created_at: 1, ..moved }]);
    assert!(s.bindings().await.unwrap().is_empty(), "without its own binding the host's applies");
    s.put_service(&svc, Some(&own), &change("service.add", "Billing")).await.unwrap();
    s.delete_service("Billing", &change("service.remove", "Billing")).await.unwrap();
    assert!(s.services().await.unwrap().is_empty() && s.bindings().await.unwrap().is_empty());
    not_found(s.delete_service("Billing", &change("service.remove", "Billing")).await, "service 'Billing'");
    s.close().await;
}

async fn tokens_apps_and_grants_follow_the_same_rules(url: StoreUrl) {
    let ca = TestCa::new("conf");
    let s = open(&url).await;
    let token = TokenRecord { name: "ops".into(), role: "admin".into(), hash: "abc".into(), created_at: 3 };
    s.insert_token(&token, &change("token.create", "ops")).await.unwrap();
    conflict(s.insert_token(&token, &change("token.create", "ops")).await, "'ops' exists already");
    assert_eq!(s.tokens().await.unwrap(), vec![token]);
    s.delete_token("ops", &change("token.remove", "ops")).await.unwrap();
    not_found(s.delete_token("ops", &change("token.remove", "ops")).await, "token 'ops'");

    let app = AppRecord { name: app_name("erp"), hash: "h1".into(), created_at: 4 };
    s.insert_app(&app, &change("app.add", "erp")).await.unwrap();
    conflict(s.insert_app(&app, &change("app.add", "erp")).await, "'erp' exists already");
    let grant = GrantRecord { app: app_name("erp"), certificate: cert_name("alpha"), created_at: 5 };
    not_found(s.put_grant(&grant, &change("grant", "erp")).await, "certificate 'alpha'");
    not_found(
        s.put_grant(&GrantRecord { app: app_name("nobody"), ..grant.clone() }, &change("grant", "nobody")).await,
        "app 'nobody'",
    );
    s.insert_certificate(&cert(&ca, "alpha"), &change("cert.import", "alpha")).await.unwrap();
    assert!(s.put_grant(&grant, &change("grant", "erp")).await.unwrap().1, "a new grant");
    assert!(!s.put_grant(&grant, &change("grant", "erp")).await.unwrap().1, "granted already");
    assert_eq!(s.grants().await.unwrap(), vec![grant.clone()]);
    assert_eq!(s.apps().await.unwrap(), vec![app]);
    let snap = s.snapshot().await.unwrap();
    assert_eq!((snap.apps.len(), snap.grants.len()), (1, 1));
    not_found(
        s.delete_grant("erp", "beta", &change("revoke", "erp")).await,
        "grant of certificate 'beta' to app 'erp'",
    );
    s.delete_grant("erp", "alpha", &change("revoke", "erp")).await.unwrap();
    s.put_grant(&grant, &change("grant", "erp")).await.unwrap();
    s.delete_app("erp", &change("app.remove", "erp")).await.unwrap();
    assert!(s.grants().await.unwrap().is_empty(), "an app's grants go with it");
    not_found(s.delete_app("erp", &change("app.remove", "erp")).await, "app 'erp'");
    s.close().await;
}

async fn every_change_bumps_the_revision_once_and_writes_one_audit_row(url: StoreUrl) {
    let ca = TestCa::new("conf");
    let s = open(&url).await;
    s.insert_certificate(&cert(&ca, "alpha"), &change("cert.import", "alpha")).await.unwrap();
    s.put_binding(&binding("a.example", Some("alpha")), &change("bind", "a.example")).await.unwrap();
    not_found(s.delete_binding("zzz", &change("unbind", "zzz")).await, "binding for 'zzz'");
    s.delete_binding("a.example", &change("unbind", "a.example")).await.unwrap();
    assert_eq!(s.revision().await.unwrap(), 3);
    let audit = s.audit(10).await.unwrap();
    let rows: Vec<(i64, &str, &str, &str, &str, &str)> = audit
        .iter()
        .map(|a| {
            (a.revision, a.actor.as_str(), a.action.as_str(), a.target.as_str(), a.result.as_str(), a.detail.as_str())
        })
        .collect();
    assert_eq!(
        rows,
        [
            (3, "test", "unbind", "a.example", "ok", "unbind a.example"),
            (2, "test", "bind", "a.example", "ok", "bind a.example"),
            (1, "test", "cert.import", "alpha", "ok", "cert.import alpha"),
        ]
    );
    assert!(audit.windows(2).all(|w| w[0].seq > w[1].seq), "newest first");
    let now = certgate::store::now_unix();
    assert!(audit.iter().all(|a| (now - a.at).abs() < 600), "audit times are now");
    assert_eq!(s.audit(1).await.unwrap().len(), 1);
    s.close().await;
}

async fn meta_init_keeps_the_first_value_even_when_opened_concurrently(url: StoreUrl) {
    let first = open(&url).await;
    let mut tasks = Vec::new();
    for i in 0..4 {
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            let s = open(&url).await;
            let v = s.meta_init("master_key_check", &format!("value-{i}")).await.unwrap();
            s.close().await;
            v
        }));
    }
    let mut seen = Vec::new();
    for t in tasks {
        seen.push(t.await.unwrap());
    }
    assert!(seen.iter().all(|v| v == &seen[0]), "every opener agrees on one value: {seen:?}");
    assert_eq!(first.meta("master_key_check").await.unwrap().as_deref(), Some(seen[0].as_str()));
    assert_eq!(first.meta_init("master_key_check", "later").await.unwrap(), seen[0]);
    assert_eq!(first.revision().await.unwrap(), 0, "meta is not a change");
    first.close().await;
}

async fn concurrent_changes_from_several_nodes_lose_nothing(url: StoreUrl) {
    const NODES: usize = 4;
    const EACH: usize = 8;
    let ca = Arc::new(TestCa::new("conf"));
    let first = open(&url).await;
    let mut tasks = Vec::new();
    for node in 0..NODES {
        let (url, ca) = (url.clone(), ca.clone());
        tasks.push(tokio::spawn(async move {
            let s = open(&url).await;
            let mut won_shared = 0;
            for i in 0..EACH {
                let name = format!("n{node}-c{i}");
                s.insert_certificate(&cert(&ca, &name), &change("cert.import", &name)).await.unwrap();
                s.put_binding(&binding(&format!("{name}.example"), Some(&name)), &change("bind", &name)).await.unwrap();
                // every node also races for the same names: exactly one wins each
                match s.insert_certificate(&cert(&ca, &format!("shared-{i}")), &change("cert.import", "shared")).await {
                    Ok(_) => won_shared += 1,
                    Err(StoreError::Conflict(_)) => {}
                    Err(e) => panic!("node {node}: {e}"),
                }
            }
            s.close().await;
            won_shared
        }));
    }
    let mut won = 0;
    for t in tasks {
        won += t.await.unwrap();
    }
    assert_eq!(won, EACH, "each shared name was taken exactly once");
    let changes = (NODES * EACH * 2 + EACH) as i64;
    assert_eq!(first.revision().await.unwrap(), changes);
    assert_eq!(first.certificates().await.unwrap().len(), NODES * EACH + EACH);
    assert_eq!(first.bindings().await.unwrap().len(), NODES * EACH);
    let mut revisions: Vec<i64> = first.audit(1000).await.unwrap().iter().map(|a| a.revision).collect();
    revisions.sort();
    assert_eq!(revisions, (1..=changes).collect::<Vec<_>>(), "one audit row per revision, none skipped or doubled");
    first.close().await;
}

async fn a_snapshot_is_one_consistent_revision_while_others_write(url: StoreUrl) {
    const WRITES: usize = 20;
    let ca = Arc::new(TestCa::new("conf"));
    let reader = open(&url).await;
    let writer = {
        let (url, ca) = (url.clone(), ca.clone());
        tokio::spawn(async move {
            let s = open(&url).await;
            for i in 0..WRITES {
                let name = format!("c{i}");
                s.insert_certificate(&cert(&ca, &name), &change("cert.import", &name)).await.unwrap();
            }
            s.close().await;
        })
    };
    // Each change adds one certificate, so a consistent snapshot has as many as its revision.
    let mut snapshots = 0;
    while !writer.is_finished() && snapshots < 500 {
        let snap = reader.snapshot().await.unwrap();
        assert_eq!(snap.certificates.len() as i64, snap.revision, "snapshot mixes revisions");
        snapshots += 1;
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    writer.await.unwrap();
    let snap = reader.snapshot().await.unwrap();
    assert_eq!((snap.revision, snap.certificates.len()), (WRITES as i64, WRITES));
    reader.close().await;
}

async fn a_copy_plan_is_written_in_one_change_and_an_empty_one_writes_nothing(url: StoreUrl) {
    let ca = TestCa::new("conf");
    let s = open(&url).await;
    assert_eq!(s.apply_copy(&CopyPlan::default(), &change("store.copy", "x")).await.unwrap(), None);
    assert_eq!(s.revision().await.unwrap(), 0);
    let c = cert(&ca, "alpha");
    let plan = CopyPlan {
        meta: vec![("master_key_check".into(), "abc".into())],
        certificates: vec![c.clone()],
        bindings: vec![binding("a.example", Some("alpha"))],
        revision_floor: 41,
        ..CopyPlan::default()
    };
    assert_eq!(s.apply_copy(&plan, &change("store.copy", "x")).await.unwrap(), Some(42), "past the source's revision");
    // the same plan again: upserts, the meta row is kept
    let again = CopyPlan { meta: vec![("master_key_check".into(), "other".into())], ..plan };
    assert_eq!(s.apply_copy(&again, &change("store.copy", "x")).await.unwrap(), Some(43));
    assert_eq!(s.meta("master_key_check").await.unwrap().as_deref(), Some("abc"));
    let dump = s.dump().await.unwrap();
    assert_eq!((dump.revision, dump.certificates.len(), dump.bindings.len()), (43, 1, 1));
    same_cert(&dump.certificates[0], &c);
    assert_eq!(dump.audit.iter().map(|a| a.revision).collect::<Vec<_>>(), [42, 43], "oldest first");
    s.close().await;
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL only

#[test]
fn postgres_announces_every_change_with_its_revision() {
    let db = TestDb::new();
    runtime().block_on(async {
        let url = db.store_url();
        let watcher = open(&url).await;
        let mut events = watcher.revision_events().expect("PostgreSQL announces changes");
        let first = tokio::time::timeout(Duration::from_secs(10), events.recv()).await.unwrap();
        assert_eq!(first, Some(StoreEvent::Listening));
        let writer = open(&url).await;
        let ca = TestCa::new("conf");
        for i in 1..=3 {
            let name = format!("c{i}");
            writer.insert_certificate(&cert(&ca, &name), &change("cert.import", &name)).await.unwrap();
            let got = tokio::time::timeout(Duration::from_secs(5), events.recv()).await;
            assert_eq!(got.ok().flatten(), Some(StoreEvent::Changed(i)), "announcement of revision {i}");
        }
        // a refused change announces nothing (its transaction rolled back)
        conflict(writer.insert_certificate(&cert(&ca, "c1"), &change("cert.import", "c1")).await, "exists already");
        assert!(tokio::time::timeout(Duration::from_millis(300), events.recv()).await.is_err());
        writer.close().await;
        watcher.close().await;
        assert!(open(&StoreUrl::Sqlite(tempfile::tempdir().unwrap().path().join("x.db")))
            .await
            .revision_events()
            .is_none());
    });
}

#[test]
fn postgres_that_cannot_be_reached_is_reported_with_its_address() {
    let port = crate::support::gateway::free_port();
    runtime().block_on(async {
        let url = StoreUrl::Postgres(format!("postgres://postgres:secret@127.0.0.1:{port}/nowhere"));
        let err = Store::open(&url).await.err().expect("nothing listens there");
        let text = err.to_string();
        assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
        assert!(text.contains(&format!("127.0.0.1:{port}/nowhere")), "{text}");
        assert!(!text.contains("secret"), "the password is never shown: {text}");
        assert_eq!(url.redacted(), format!("postgres://***@127.0.0.1:{port}/nowhere"));
        // a database that does not exist says so
        let missing = StoreUrl::Postgres(format!("{}/certgate_no_such_db", crate::support::pg::SERVER));
        let text = Store::open(&missing).await.err().expect("no such database").to_string();
        assert!(text.contains("certgate_no_such_db") && text.contains("does not exist"), "{text}");
    });
}

/// Three nodes (three store handles) claim the same (item, threshold) at once: exactly one wins;
/// a failure makes it claimable again only once its retry time has come; a sent one never again.
async fn an_alert_is_claimed_by_one_of_three_nodes_and_retried_only_after_its_backoff(url: StoreUrl) {
    let nodes = [open(&url).await, open(&url).await, open(&url).await];
    let claim = claim_alert_as;
    let (a, b, c) =
        tokio::join!(claim(&nodes[0], "n1", 1000), claim(&nodes[1], "n2", 1000), claim(&nodes[2], "n3", 1000));
    assert_eq!([a, b, c].iter().filter(|w| **w).count(), 1, "exactly one node claims it: {a} {b} {c}");
    // Sending failed: retry at 1060, not before.
    let mut tx = nodes[0].begin_change().await.unwrap();
    tx.finish_alert("certificate:billing:abc", 14, Err(("connection refused".into(), 1060))).await.unwrap();
    tx.commit(&[change("alert.failed", "billing")]).await.unwrap();
    assert!(!claim(&nodes[1], "n2", 1030).await, "not before its retry time");
    assert!(claim(&nodes[2], "n3", 1061).await, "claimable once the retry time has come");
    let mut tx = nodes[2].begin_change().await.unwrap();
    tx.finish_alert("certificate:billing:abc", 14, Ok(1062)).await.unwrap();
    tx.commit(&[change("alert.sent", "billing")]).await.unwrap();
    assert!(!claim(&nodes[0], "n1", 999_999).await, "a sent alert is never claimed again");
    let rows = nodes[0].alerts().await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!((rows[0].state.as_str(), rows[0].attempts, rows[0].sent_at), ("sent", 2, Some(1062)));
    assert_eq!(rows[0].node, "n3");
    for n in &nodes {
        n.close().await;
    }
}

async fn claim_alert_as(s: &Store, node: &'static str, at: i64) -> bool {
    let rec = certgate::store::AlertRecord {
        item: "certificate:billing:abc".into(),
        threshold: 14,
        kind: "certificate".into(),
        name: "billing".into(),
        state: "sending".into(),
        attempts: 0,
        next_attempt_at: at,
        last_error: None,
        node: node.into(),
        claimed_at: at,
        sent_at: None,
    };
    let mut tx = s.begin_change().await.unwrap();
    let won = tx.claim_alert(&rec, at - 600).await.unwrap();
    if won {
        tx.commit(&[change("alert.claim", &rec.item)]).await.unwrap();
    }
    won
}
