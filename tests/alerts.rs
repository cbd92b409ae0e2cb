//! Expiry alerts from `certgate serve`: a webhook receiver on 127.0.0.1 (a small hyper server in
//! the test) gets each threshold alert exactly once, signed, and not again after a restart; three
//! serve processes on one PostgreSQL send each alert once between them.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::support::cluster::Cluster;
use crate::support::gateway::{wait_until, Gateway, GatewayConfig};
use crate::support::pg::TestDb;
use crate::support::{Env, LeafSpec, TestCa};

const SECRET: &str = "webhook-signing-secret-for-tests";
const DAYS: [i64; 6] = [31, 30, 14, 7, 1, 0];

/// One POST the receiver got: its signature header and body.
#[derive(Clone, Debug)]
struct Received {
    signature: Option<String>,
    body: Vec<u8>,
}

/// A webhook receiver on 127.0.0.1:0 that answers 200 and keeps every POST.
struct Receiver {
    url: String,
    got: Arc<Mutex<Vec<Received>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    async fn start() -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hooks/certgate", listener.local_addr().unwrap());
        let got: Arc<Mutex<Vec<Received>>> = Arc::default();
        let keep = got.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { return };
                let keep = keep.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                        let keep = keep.clone();
                        async move {
                            let signature = req
                                .headers()
                                .get("x-certgate-signature")
                                .and_then(|v| v.to_str().ok())
                                .map(String::from);
                            let ok = req.method() == hyper::Method::POST && req.uri().path() == "/hooks/certgate";
                            let body =
                                req.into_body().collect().await.map(|b| b.to_bytes().to_vec()).unwrap_or_default();
                            if ok {
                                keep.lock().unwrap().push(Received { signature, body });
                            }
                            Ok::<_, hyper::Error>(Response::new(Full::new(Bytes::from_static(b"ok"))))
                        }
                    });
                    let _ =
                        hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), svc).await;
                });
            }
        });
        Receiver { url, got, task }
    }

    fn received(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Check the HMAC-SHA256 signature (independently of certgate's own code) and parse the body.
fn verified(r: &Received) -> serde_json::Value {
    let sig = r.signature.as_deref().expect("every alert carries X-Certgate-Signature");
    let hex_sig = sig.strip_prefix("sha256=").unwrap_or_else(|| panic!("signature '{sig}' is not sha256=HEX"));
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, SECRET.as_bytes());
    aws_lc_rs::hmac::verify(&key, &r.body, &hex::decode(hex_sig).unwrap()).expect("the signature matches the body");
    serde_json::from_slice(&r.body).unwrap()
}

/// `[alerts]` with one webhook `ops` whose secret is in a file.
fn alert_tables(env: &Env, url: &str) -> String {
    let secret = env.file("webhook.secret", format!("{SECRET}\n"));
    format!(
        "[alerts]\ninterval_seconds = 1\n\n[alerts.webhooks.ops]\nurl = \"{url}\"\nsecret_file = \"{}\"\n",
        secret.display()
    )
}

fn config(now: OffsetDateTime, tables: String) -> GatewayConfig {
    let mut cfg = GatewayConfig::new();
    cfg.preamble = format!("test_now = \"{}\"\n", now.format(&Rfc3339).unwrap());
    cfg.tables = tables;
    cfg
}

/// Certificates `dN` expiring in N days for each of `DAYS`, all with the contact `webhook:ops`.
fn import_expiring(env: &Env, ca: &TestCa) {
    for days in DAYS {
        let name = format!("d{days}");
        let leaf = ca.leaf(LeafSpec::client(&name).expiring_in_days(days));
        env.import_minted(&name, &leaf, "").ok();
        env.run(&["cert", "owner", &name, "--owner", "Team Billing", "--contact", "webhook:ops"]).ok();
    }
}

/// The (name, threshold) pairs received, sorted.
fn pairs(got: &[Received]) -> Vec<(String, i64)> {
    let mut out: Vec<(String, i64)> = got
        .iter()
        .map(verified)
        .map(|v| (v["name"].as_str().unwrap().to_string(), v["threshold_days"].as_i64().unwrap()))
        .collect();
    out.sort();
    out
}

fn expected() -> Vec<(String, i64)> {
    let mut out: Vec<(String, i64)> = [30, 14, 7, 1, 0].iter().map(|d| (format!("d{d}"), *d)).collect();
    out.sort();
    out
}

async fn alerts_json(gw: &Gateway) -> serde_json::Value {
    gw.readyz_json().await["alerts"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_threshold_alert_reaches_the_webhook_once_signed_and_not_again_after_a_restart() {
    let t0 = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap() - time::Duration::seconds(60);
    let ca = TestCa::new("alerts");
    let env = Env::new();
    import_expiring(&env, &ca);
    // One more, whose contact names a webhook nobody configured: it fails, visibly, and retries.
    let lost = ca.leaf(LeafSpec::client("lost").expiring_in_days(3));
    env.import_minted("lost", &lost, "").ok();
    env.run(&["cert", "owner", "lost", "--contact", "webhook:nowhere"]).ok();
    let rx = Receiver::start().await;
    let cfg = config(t0, alert_tables(&env, &rx.url));

    let gw = Gateway::start(&env, &cfg).await;
    let got = wait_until(Duration::from_secs(20), async || {
        let a = alerts_json(&gw).await;
        (a["sent"].as_u64() == Some(5) && a["failed"].as_u64() >= Some(1)).then_some(a)
    })
    .await;
    let Some(got) = got else { panic!("5 alerts sent and 1 failed within 20 s: {}", alerts_json(&gw).await) };
    assert_eq!(pairs(&rx.received()), expected(), "31 days is beyond the 30-day threshold; each other one once");
    let first = verified(&rx.received()[0]);
    assert!(first["text"].as_str().unwrap().starts_with("certgate: the certificate 'd"), "{first}");
    assert_eq!(first["owner"], "Team Billing");
    let failing = got["failing"].as_array().unwrap();
    assert_eq!(failing.len(), 1, "{got}");
    assert!(failing[0]["item"].as_str().unwrap().starts_with("certificate:lost:"), "{got}");
    assert_eq!(failing[0]["threshold_days"], 7);
    assert!(failing[0]["error"].as_str().unwrap().contains("'nowhere' is not configured"), "{got}");
    let d0 = rx.received().iter().map(verified).find(|v| v["name"] == "d0").unwrap();
    assert!(d0["text"].as_str().unwrap().contains("expires today"), "{d0}");

    // Several more runs of the loop (one a second) send nothing new.
    let before = gw.readyz_json().await["alerts"]["last_run_at"].clone();
    wait_until(Duration::from_secs(10), async || (alerts_json(&gw).await["last_run_at"] != before).then_some(()))
        .await
        .expect("another run within 10 s");
    assert_eq!(rx.received().len(), 5);
    drop(gw);

    // A restarted serve finds them sent in the store.
    let gw = Gateway::start(&env, &cfg).await;
    wait_until(Duration::from_secs(10), async || alerts_json(&gw).await["last_run_at"].as_str().map(|_| ()))
        .await
        .expect("a first run within 10 s");
    assert_eq!(rx.received().len(), 5, "nothing repeated after the restart");
    assert_eq!(alerts_json(&gw).await["sent"], 0);
    drop(gw);

    // Each alert sent is an audit row.
    let audit = env.run(&["--json", "audit", "--limit", "200"]);
    let sent = audit.stdout.matches("\"alert.sent\"").count();
    assert_eq!(sent, 5, "{}", audit.stdout);

    // A week later: d31 crosses 30 days, d14 crosses 7, d7 and d1 have expired (d0's went already).
    let later = config(t0 + time::Duration::days(7), alert_tables(&env, &rx.url));
    let gw = Gateway::start(&env, &later).await;
    let next = wait_until(Duration::from_secs(20), async || (rx.received().len() >= 9).then_some(())).await;
    if next.is_none() {
        panic!("the next threshold within 20 s: {}", alerts_json(&gw).await);
    }
    let before = alerts_json(&gw).await["last_run_at"].clone();
    wait_until(Duration::from_secs(10), async || (alerts_json(&gw).await["last_run_at"] != before).then_some(()))
        .await
        .expect("another run within 10 s");
    let newer = pairs(&rx.received()[5..]);
    assert_eq!(newer, [("d1".to_string(), 0), ("d14".to_string(), 7), ("d31".to_string(), 30), ("d7".to_string(), 0)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_on_one_postgresql_send_each_alert_exactly_once() {
    let t0 = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap() - time::Duration::seconds(60);
    let db = TestDb::new();
    let c = Cluster::new(&db.url());
    import_expiring(&c.env, &c.client_ca);
    let rx = Receiver::start().await;
    let cfg = config(t0, alert_tables(&c.env, &rx.url));
    let mut nodes = Vec::new();
    for _ in 0..3 {
        nodes.push(Gateway::process(&c.env, &cfg).await);
    }
    wait_until(Duration::from_secs(30), async || (rx.received().len() >= 5).then_some(()))
        .await
        .unwrap_or_else(|| panic!("5 alerts within 30 s; got {}", rx.received().len()));
    // Let every node run a few more times.
    for n in &nodes {
        let before = alerts_json(n).await["last_run_at"].clone();
        wait_until(Duration::from_secs(10), async || (alerts_json(n).await["last_run_at"] != before).then_some(()))
            .await
            .expect("each node runs again within 10 s");
    }
    assert_eq!(pairs(&rx.received()), expected(), "each alert exactly once across the three nodes");
    let total: u64 = {
        let mut t = 0;
        for n in &nodes {
            t += alerts_json(n).await["sent"].as_u64().unwrap();
        }
        t
    };
    assert_eq!(total, 5);
    let metrics: u64 = {
        let mut t = 0;
        for n in &nodes {
            let text = n.metrics_text().await;
            t += text
                .lines()
                .find(|l| l.starts_with("certgate_alerts_sent_total{channel=\"webhook\"}"))
                .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
                .unwrap_or(0);
        }
        t
    };
    assert_eq!(metrics, 5, "certgate_alerts_sent_total over the nodes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alert_test_sends_a_signed_test_message_on_every_channel_and_names_the_one_that_failed() {
    let env = Env::new();
    let rx = Receiver::start().await;
    let good = env.file("alerts.toml", alert_tables(&env, &rx.url));
    let run = env.run(&["--config", good.to_str().unwrap(), "alert", "test"]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("webhook:ops: test message sent"), "{}", run.stdout);
    let got = rx.received();
    assert_eq!(got.len(), 1);
    let v = verified(&got[0]);
    assert_eq!(v["test"], true);
    assert!(v["text"].as_str().unwrap().contains("test message"), "{v}");

    // A webhook whose secret variable is not set: not sent, named, exit 1; the other still goes.
    let tables = format!(
        "{}\n[alerts.webhooks.teams]\nurl = \"{}\"\nsecret_env = \"CERTGATE_TEST_UNSET_SECRET\"\n",
        alert_tables(&env, &rx.url),
        rx.url
    );
    let mixed = env.file("mixed.toml", tables);
    let run = env.run(&["--config", mixed.to_str().unwrap(), "alert", "test"]);
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stderr.contains("webhook:teams: not sent") && run.stderr.contains("CERTGATE_TEST_UNSET_SECRET"),
        "{}",
        run.stderr
    );
    assert_eq!(rx.received().len(), 2, "ops still got its test message");

    // No channel at all: a usage error that says what to configure.
    let run = env.run(&["alert", "test"]);
    assert_eq!(run.code, 2, "{}{}", run.stdout, run.stderr);
    assert!(run.stderr.contains("no alert channel is configured"), "{}", run.stderr);
}
