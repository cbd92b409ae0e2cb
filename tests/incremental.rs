//! Incremental reloads (issue 14): after every change of a random sequence, the table made from
//! the previous one and only what changed must be the table a whole read and compile gives.

use std::collections::BTreeSet;

use certgate::control::{
    BindRequest, Control, ImportRequest, InputFile, MasterKeySource, OpenOptions, Redacted, StoreUrl,
};
use certgate::routes::{compile, compile_changes, CompileOptions, RouteInputs, RouteTable};

use crate::support::pg::TestDb;
use crate::support::{LeafSpec, Minted, TestCa};

/// xorshift64*: the sequence is the seed's, so a failure can be replayed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 33) as usize % n
    }
}

const CERTS: [&str; 5] = ["c0", "c1", "c2", "c3", "c4"];
const DESTINATIONS: [&str; 8] = [
    "a.partner.test",
    "b.partner.test",
    "a.partner.test:8443",
    "*.wild.test",
    "c.wild.test",
    "10.1.2.3:9443",
    "d.partner.test",
    "service:Soap",
];
const ANCHORS: [&str; 2] = ["anchor-a", "anchor-b"];
const APPS: [&str; 2] = ["billing", "payroll"];

fn pem_file(leaf: &Minted, ca: &TestCa) -> InputFile {
    InputFile {
        label: "client.pem".into(),
        data: format!("{}{}{}", leaf.cert_pem, leaf.key_pem, ca.chain_pem()).into(),
    }
}

fn import(name: &str, leaf: &Minted, ca: &TestCa) -> ImportRequest {
    ImportRequest { name: name.into(), files: vec![pem_file(leaf, ca)], password: None, owner: None, contact: None }
}

/// Everything a table serves, as text: every route with its destination, fingerprint (which
/// covers the certificates' ids and chains, trust anchors, SNI, pins and engine options),
/// label and availability; services; what is unavailable; apps; expiry; unsealed identities.
fn describe(table: &RouteTable) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    out.insert(format!("revision {}", table.revision));
    for r in table.routes() {
        let ids: Vec<&str> = r.candidates().iter().map(|c| c.id.as_str()).collect();
        out.insert(format!(
            "route {} -> {:?} {} {} {:?} {:?} {:?}",
            r.destination,
            r.binding,
            r.certificate_label(),
            r.trust(),
            ids,
            r.unavailable,
            r.fingerprint()
        ));
    }
    for (d, why) in &table.unavailable {
        out.insert(format!("unavailable {d}: {why}"));
    }
    for (name, app) in &table.apps {
        let grants: BTreeSet<&str> = app.grants.iter().map(|g| g.as_str()).collect();
        out.insert(format!("app {name} {} {grants:?}", app.hash));
    }
    for (name, expiry) in &table.certificate_expiry {
        out.insert(format!("expiry {name} {expiry}"));
    }
    let inputs: &RouteInputs = table.source_inputs().expect("inputs");
    for s in &inputs.services {
        let route = table.service(&s.name).map(|s| {
            (s.base.to_string(), s.route.as_ref().map(|r| (r.destination.clone(), r.fingerprint().to_string())))
        });
        out.insert(format!("service {} {} {route:?}", s.name, s.url));
    }
    for b in &inputs.bindings {
        out.insert(format!("binding {b:?}"));
    }
    for (name, id) in &inputs.identities {
        out.insert(format!("identity {name} {} {:?} {:?}", id.id, id.chain, id.engine_reason));
    }
    for (name, why) in &inputs.broken_identities {
        out.insert(format!("broken {name} {why}"));
    }
    out
}

/// One random change through the control plane; refusals (unbinding what is not bound,
/// removing an anchor still named, ...) change nothing and are part of the sequence.
async fn random_change(control: &Control, rng: &mut Rng, ca: &TestCa, other: &TestCa, step: usize) -> String {
    let cert = CERTS[rng.below(CERTS.len())];
    let dest = DESTINATIONS[rng.below(DESTINATIONS.len())];
    let anchor = ANCHORS[rng.below(ANCHORS.len())];
    let app = APPS[rng.below(APPS.len())];
    let trust = match rng.below(4) {
        0 => None,
        1 => Some("private".to_string()),
        2 => Some(format!("ca:{anchor}")),
        _ => Some(format!("ca:{}", ANCHORS.join(","))),
    };
    let what = rng.below(14);
    let done = match what {
        0..=3 => {
            let mut certificates = vec![cert.to_string()];
            if rng.below(3) == 0 {
                certificates.push(CERTS[(CERTS.iter().position(|c| *c == cert).unwrap() + 1) % CERTS.len()].into());
            }
            if rng.below(6) == 0 {
                certificates.clear();
            }
            let req = BindRequest {
                destination: dest.into(),
                certificates,
                trust: trust.clone(),
                sni: (rng.below(4) == 0).then(|| "sni.partner.test".to_string()),
                pins: Vec::new(),
                allow_renegotiation: rng.below(8) == 0,
            };
            if dest.starts_with("service:") {
                // Renegotiation only with a certificate (a service without one refuses it).
                let reneg = req.allow_renegotiation && !req.certificates.is_empty();
                control
                    .add_service("Soap", "https://soap.partner.test/ws", Some(req.certificates), trust, reneg)
                    .await
                    .map(|_| ())
            } else {
                control.bind(req).await.map(|_| ())
            }
        }
        4 | 5 => {
            if dest.starts_with("service:") {
                control.remove_service("Soap").await
            } else {
                control.unbind(dest).await
            }
        }
        6 | 7 => {
            // Rotation; now and then to a certificate under the other CA (a new intermediate).
            let from = if rng.below(4) == 0 { other } else { ca };
            let leaf = from.leaf(LeafSpec::client(&format!("{cert}-{step}")));
            match control.rotate_certificate(import(cert, &leaf, from)).await {
                Ok(_) => Ok(()),
                Err(_) => control.import_certificate(import(cert, &leaf, from)).await.map(|_| ()),
            }
        }
        8 => control.remove_certificate(cert, true).await,
        9 => {
            let data = if rng.below(2) == 0 { ca.root.cert_pem.clone() } else { other.root.cert_pem.clone() };
            control.add_anchor(anchor, "root.pem", data.as_bytes()).await.map(|_| ())
        }
        10 => control.remove_anchor(anchor).await,
        11 => match control.add_app(app).await {
            Ok(_) => Ok(()),
            Err(_) => control.remove_app(app).await,
        },
        12 => control.grant(app, cert).await.map(|_| ()),
        _ => {
            if rng.below(2) == 0 {
                control.revoke_grant(app, cert).await.map(|_| ())
            } else {
                control
                    .add_service("Rest", &format!("https://{}/v1", dest.trim_start_matches("*.")), None, None, false)
                    .await
                    .map(|_| ())
            }
        }
    };
    format!("change {what} ({cert}, {dest}, {anchor}, {app}): {}", if done.is_ok() { "done" } else { "refused" })
}

async fn incremental_equals_full(control: Control, seed: u64, steps: usize) {
    let ca = TestCa::new("incremental a");
    let other = TestCa::new("incremental b");
    for name in &CERTS[..3] {
        control.import_certificate(import(name, &ca.leaf(LeafSpec::client(name)), &ca)).await.unwrap();
    }
    control.add_anchor("anchor-a", "root.pem", ca.root.cert_pem.as_bytes()).await.unwrap();
    let options = CompileOptions::default();
    let mut table = compile(control.route_inputs().await.unwrap(), None, &options).unwrap();
    let mut rng = Rng(seed);
    let (mut incremental, mut whole) = (0, 0);
    for step in 0..steps {
        let what = random_change(&control, &mut rng, &ca, &other, step).await;
        let previous = table.source_inputs().cloned().map(std::sync::Arc::new).unwrap();
        table = match control.route_inputs_since(&previous).await.unwrap() {
            Some((inputs, touched)) => {
                incremental += 1;
                compile_changes(inputs, &table, &touched, &options).unwrap()
            }
            None => {
                whole += 1;
                compile(control.route_inputs().await.unwrap(), Some(&table), &options).unwrap()
            }
        };
        let full = compile(control.route_inputs().await.unwrap(), None, &options).unwrap();
        let (got, want) = (describe(&table), describe(&full));
        let missing: Vec<&String> = want.difference(&got).collect();
        let extra: Vec<&String> = got.difference(&want).collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "seed {seed}, step {step}, after {what}:\nmissing from the incremental table: {missing:#?}\nnot in the whole one: {extra:#?}"
        );
    }
    eprintln!("seed {seed}: {incremental} incremental reloads, {whole} whole ones");
    assert!(incremental > steps / 2, "seed {seed}: only {incremental} of {steps} reloads were incremental");
    control.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incremental_reload_equals_a_whole_one_after_random_changes_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    for seed in [0x9e37_79b9_7f4a_7c15, 14, 2026] {
        let control = Control::open(OpenOptions {
            store: StoreUrl::Sqlite(dir.path().join(format!("{seed}.db"))),
            master_key: MasterKeySource::DataDir(dir.path().join("master.key")),
            actor: "test".into(),
        })
        .await
        .unwrap();
        incremental_equals_full(control, seed, 80).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incremental_reload_equals_a_whole_one_after_random_changes_on_postgres() {
    let db = TestDb::new();
    let key = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, [7u8; 32]);
    let control = Control::open(OpenOptions {
        store: db.store_url(),
        master_key: MasterKeySource::Inline(Redacted(zeroize::Zeroizing::new(key))),
        actor: "test".into(),
    })
    .await
    .unwrap();
    incremental_equals_full(control, 0x5eed, 80).await;
}
