//! Several `certgate serve` nodes on one PostgreSQL store, with the test CAs and an in-process
//! partner, for the multi-node tests.

use std::time::{Duration, Instant};

use certgate::store::{Store, StoreUrl};

use super::gateway::{wait_until, Gateway, GatewayClient, GatewayConfig, Resp};
use super::upstream::{Upstream, UpstreamConfig};
use super::{Env, LeafSpec, Minted, Run, TestCa};

/// The master key every node of a test cluster shares (base64 of 32 bytes).
pub const KEY: &str = "Y2VydGdhdGUtY2x1c3Rlci10ZXN0LWtleS0zMi1ieXQ=";
/// Another valid key, which the store must refuse.
pub const OTHER_KEY: &str = "b3RoZXIta2V5LW9mLTMyLWJ5dGVzLWZvci10ZXN0cyE=";

pub struct Cluster {
    pub env: Env,
    pub store_url: String,
    pub partner_ca: TestCa,
    pub client_ca: TestCa,
}

impl Cluster {
    /// A store at `store_url` (PostgreSQL) shared through CERTGATE_STORE and
    /// CERTGATE_MASTER_KEY, trusting the partner CA as `partnerca`.
    pub fn new(store_url: &str) -> Cluster {
        let env = Env::new().var("CERTGATE_STORE", store_url).var("CERTGATE_MASTER_KEY", KEY);
        let c = Cluster {
            env,
            store_url: store_url.to_string(),
            partner_ca: TestCa::new("partner"),
            client_ca: TestCa::new("client"),
        };
        let root = c.env.file("partner-root.pem", &c.partner_ca.root.cert_pem);
        c.cli(&["trust", "add", "partnerca", root.to_str().unwrap()]);
        c
    }

    /// `certgate --json ARGS...`, which must succeed.
    pub fn cli(&self, args: &[&str]) -> Run {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let run = self.env.run(&all);
        run.ok();
        run
    }

    /// Mint a client certificate (client CA) and write it with its key and intermediate.
    pub fn mint(&self, name: &str) -> (Minted, std::path::PathBuf) {
        let leaf = self.client_ca.leaf(LeafSpec::client(name));
        let path = self.env.file(
            &format!("{name}-{}.pem", &leaf.id()[..8]),
            format!("{}{}{}", leaf.cert_pem, leaf.key_pem, self.client_ca.intermediate.cert_pem),
        );
        (leaf, path)
    }

    /// Mint and import a client certificate under `name`.
    pub fn client(&self, name: &str) -> Minted {
        let (leaf, path) = self.mint(name);
        self.cli(&["cert", "import", name, path.to_str().unwrap()]);
        leaf
    }

    /// A partner for `partner.test` requiring a client certificate from the client CA.
    pub async fn partner(&self) -> Upstream {
        let server = self.partner_ca.server(&["partner.test"]);
        Upstream::start(UpstreamConfig::new(&server, &self.partner_ca).require_client_cert(&self.client_ca)).await
    }

    /// `n` gateway nodes on the store, sending `partner.test` to 127.0.0.1: one process each,
    /// as in production (the tests stop nodes and read their logs and metrics).
    pub async fn nodes(&self, n: usize) -> Vec<Gateway> {
        let mut out = Vec::new();
        for _ in 0..n {
            out.push(Gateway::process(&self.env, &GatewayConfig::new().resolve(&["partner.test"])).await);
        }
        out
    }

    /// The store's revision, read directly.
    pub async fn revision(&self) -> i64 {
        let store = Store::open(&StoreUrl::Postgres(self.store_url.clone())).await.unwrap();
        let r = store.revision().await.unwrap();
        store.close().await;
        r
    }
}

/// Wait until every node's route table is at `revision` or later; returns how long each took
/// from `since`, or the nodes still behind after `limit`.
pub async fn wait_for_revision(
    nodes: &[GatewayClient],
    revision: i64,
    since: Instant,
    limit: Duration,
) -> Result<Vec<Duration>, String> {
    let mut took = vec![None; nodes.len()];
    let done = wait_until(limit, async || {
        for (i, n) in nodes.iter().enumerate() {
            if took[i].is_none() {
                let r = n.admin_get("/readyz").await;
                if r.status == 200 && r.json()["revision"].as_i64().is_some_and(|v| v >= revision) {
                    took[i] = Some(since.elapsed());
                }
            }
        }
        took.iter().all(Option::is_some).then_some(())
    })
    .await;
    match done {
        Some(()) => Ok(took.into_iter().map(Option::unwrap).collect()),
        None => Err(format!(
            "nodes still behind revision {revision} after {limit:?}: {:?}",
            took.iter().enumerate().filter(|(_, t)| t.is_none()).map(|(i, _)| i + 1).collect::<Vec<_>>()
        )),
    }
}

/// `GET http://partner.test:PORT/echo` through `node`.
pub async fn call(node: &GatewayClient, up: &Upstream) -> Resp {
    node.proxy_get(&format!("http://partner.test:{}/echo", up.port())).await
}
