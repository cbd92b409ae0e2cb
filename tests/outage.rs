//! PostgreSQL goes away while three nodes serve: they keep serving from their route tables
//! (no request fails), say so in `/readyz`, the metrics and the log, refuse changes with a
//! clear error, reconnect by themselves when it is back, and catch up with the next change.
//! The test runs a PostgreSQL server of its own (initdb + pg_ctl on a free loopback port).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::cluster::{call, wait_for_revision, Cluster};
use crate::support::gateway::{metric, wait_until, GatewayClient};
use crate::support::pg::PgServer;

/// How long the nodes may take to notice the outage (a revision check waits up to 5 s for a
/// connection) and to notice the server is back.
const NOTICE_LIMIT: Duration = Duration::from_secs(30);

async fn store_reachable(nodes: &[GatewayClient], want: bool) -> bool {
    wait_until(NOTICE_LIMIT, async || {
        for n in nodes {
            let r = n.admin_get("/readyz").await;
            // Still ready (200) while the store is away: the table keeps serving.
            assert_eq!(r.status, 200, "/readyz during the outage: {}", r.describe());
            if r.json()["store_reachable"] != want {
                return None;
            }
        }
        Some(())
    })
    .await
    .is_some()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_keep_serving_through_a_postgres_outage_and_catch_up_after_it() {
    let server = tokio::task::spawn_blocking(PgServer::start).await.unwrap();
    let c = Cluster::new(&server.url("test"));
    let first = c.client("billing");
    c.cli(&["bind", "partner.test", "billing", "--trust", "ca:partnerca"]);
    let up = c.partner().await;
    let gateways = c.nodes(3).await;
    let nodes: Vec<GatewayClient> = gateways.iter().map(|g| g.client()).collect();
    for n in &nodes {
        assert_eq!(call(n, &up).await.echo()["client_cert_sha256"], first.id());
    }

    // Traffic through all three nodes for the whole test.
    let stop = Arc::new(AtomicBool::new(false));
    let served = Arc::new(AtomicUsize::new(0));
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let mut traffic = Vec::new();
    for (i, n) in nodes.iter().enumerate() {
        let (n, stop, served, failures, port) = (n.clone(), stop.clone(), served.clone(), failures.clone(), up.port());
        traffic.push(tokio::spawn(async move {
            for _ in 0..100_000 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let r = n.proxy_get(&format!("http://partner.test:{port}/echo")).await;
                if r.status == 200 {
                    served.fetch_add(1, Ordering::Relaxed);
                } else {
                    failures.lock().unwrap().push(format!("node {}: {}", i + 1, r.describe()));
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }));
    }

    // PostgreSQL stops.
    let revision = c.revision().await;
    let server = Arc::new(server);
    tokio::task::spawn_blocking({
        let s = server.clone();
        move || s.stop()
    })
    .await
    .unwrap();
    let down_at = Instant::now();
    assert!(store_reachable(&nodes, false).await, "the nodes did not notice the outage within {NOTICE_LIMIT:?}");
    eprintln!("all nodes reported the outage after {:?}", down_at.elapsed());
    let served_before = served.load(Ordering::Relaxed);
    for n in &nodes {
        let ready = n.readyz_json().await;
        assert_eq!(ready["ready"], true);
        assert_eq!(ready["revision"], revision, "the table in use stays");
        let error = ready["store_error"].as_str().unwrap_or_default().to_string();
        assert!(error.contains(&format!("127.0.0.1:{}", server.port)), "store_error names the server: {ready}");
        assert_eq!(metric(&n.metrics_text().await, "certgate_store_up", &[]), Some(0.0));
        assert!(n.log().contains("cannot read the store revision"), "the log says so:\n{}", n.log());
    }
    // A change is refused with a clear error, and exit 1.
    let run = c.env.run(&["--json", "bind", "other.test", "billing"]);
    run.refused(1, "store-unavailable");
    let message = run.error_json()["message"].as_str().unwrap().to_string();
    assert!(message.contains("PostgreSQL at 127.0.0.1") && message.contains("cannot connect"), "{message}");
    // Traffic goes on meanwhile.
    let more = wait_until(Duration::from_secs(10), async || {
        (served.load(Ordering::Relaxed) > served_before + 30).then_some(())
    })
    .await;
    assert!(more.is_some(), "requests kept being served during the outage");

    // PostgreSQL is back: the nodes reconnect by themselves.
    tokio::task::spawn_blocking({
        let s = server.clone();
        move || s.start_again()
    })
    .await
    .unwrap();
    let back_at = Instant::now();
    assert!(store_reachable(&nodes, true).await, "the nodes did not reconnect within {NOTICE_LIMIT:?}");
    eprintln!("all nodes reconnected after {:?}", back_at.elapsed());
    for n in &nodes {
        assert_eq!(metric(&n.metrics_text().await, "certgate_store_up", &[]), Some(1.0));
        assert!(n.log().contains("reachable again"), "the log says so:\n{}", n.log());
    }

    // A change now reaches every node.
    let (next, file) = c.mint("billing");
    c.cli(&["cert", "rotate", "billing", file.to_str().unwrap()]);
    let committed = Instant::now();
    let took = wait_for_revision(&nodes, revision + 1, committed, Duration::from_secs(1))
        .await
        .unwrap_or_else(|e| panic!("{e}\n--- node 1 log:\n{}", nodes[0].log()));
    eprintln!("the change after the outage reached the nodes after {took:?}");
    for n in &nodes {
        assert_eq!(call(n, &up).await.echo()["client_cert_sha256"], next.id());
    }

    stop.store(true, Ordering::Relaxed);
    for t in traffic {
        t.await.unwrap();
    }
    let failures = failures.lock().unwrap();
    assert!(failures.is_empty(), "{} request(s) failed, first: {}", failures.len(), failures[0]);
    eprintln!("{} requests served, none failed", served.load(Ordering::Relaxed));
}
