//! Several `certgate serve` nodes on one PostgreSQL store: a change made through any node (its
//! admin API, or the CLI) reaches every node's route table within a second (LISTEN/NOTIFY, with
//! the revision poll as the safety net), and the master key is shared, explicit, and checked
//! before serving.

use std::process::Stdio;
use std::time::{Duration, Instant};

use base64::Engine;

use crate::support::cluster::{call, wait_for_revision, Cluster, KEY, OTHER_KEY};
use crate::support::gateway::{metric, wait_until, GatewayClient, Resp};
use crate::support::pg::TestDb;
use crate::support::Env;

/// The contract: every node within one second of the change being committed.
const PROPAGATION_LIMIT: Duration = Duration::from_secs(1);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binding_through_node_1_and_rotations_through_nodes_2_and_3_reach_all_three_within_a_second() {
    let db = TestDb::new();
    let c = Cluster::new(&db.url());
    let first = c.client("billing");
    let up = c.partner().await;
    let gateways = c.nodes(3).await;
    let nodes: Vec<GatewayClient> = gateways.iter().map(|g| g.client()).collect();
    for n in &nodes {
        call(n, &up).await.gateway_error(403, "no-binding");
    }

    // An API token (made once; every node reads it from the shared store).
    let token = c.cli(&["token", "create", "ops", "--role", "admin"]).json()["token"].as_str().unwrap().to_string();

    // A binding made through node 1's admin API.
    let before = c.revision().await;
    let body = serde_json::json!({"certificate": "billing", "trust": "ca:partnerca"});
    let r = api(&nodes[0], &token, "PUT", "/api/v1/bindings/partner.test", body).await;
    let committed = Instant::now();
    assert_eq!(r.status, 201, "{}", r.describe());
    let took = wait_for_revision(&nodes, before + 1, committed, PROPAGATION_LIMIT)
        .await
        .unwrap_or_else(|e| panic!("{e}\n--- node 2 log:\n{}\n--- node 3 log:\n{}", nodes[1].log(), nodes[2].log()));
    eprintln!("binding reached the nodes after {took:?}");
    for (i, n) in nodes.iter().enumerate() {
        let echo = call(n, &up).await.echo();
        assert_eq!(echo["client_cert_sha256"], first.id(), "node {} presents the bound certificate", i + 1);
    }

    // A rotation through node 2's admin API: every node presents the new certificate.
    let (next, file) = c.mint("billing");
    let before = c.revision().await;
    let content = base64::engine::general_purpose::STANDARD.encode(std::fs::read(&file).unwrap());
    let r =
        api(&nodes[1], &token, "PUT", "/api/v1/certificates/billing", serde_json::json!({"content": content})).await;
    let committed = Instant::now();
    assert_eq!(r.status, 200, "{}", r.describe());
    let took = wait_for_revision(&nodes, before + 1, committed, PROPAGATION_LIMIT)
        .await
        .unwrap_or_else(|e| panic!("{e}\n--- node 1 log:\n{}", nodes[0].log()));
    eprintln!("rotation reached the nodes after {took:?}");
    for (i, n) in nodes.iter().enumerate() {
        let echo = call(n, &up).await.echo();
        assert_eq!(echo["client_cert_sha256"], next.id(), "node {} presents the rotated certificate", i + 1);
        let ready = n.readyz_json().await;
        assert_eq!(ready["revision"], before + 1);
        assert_eq!(ready["store_revision"], before + 1);
        assert_eq!(ready["store_reachable"], true);
        let metrics = n.metrics_text().await;
        assert_eq!(metric(&metrics, "certgate_route_table_revision", &[]), Some((before + 1) as f64));
        assert_eq!(metric(&metrics, "certgate_store_up", &[]), Some(1.0));
    }
    // The same through the CLI run with node 3's settings.
    let (third, file) = c.mint("billing");
    let before = c.revision().await;
    let config = gateways[2].config_path().to_str().unwrap();
    c.env.run(&["--config", config, "cert", "rotate", "billing", file.to_str().unwrap()]).ok();
    let committed = Instant::now();
    wait_for_revision(&nodes, before + 1, committed, PROPAGATION_LIMIT).await.unwrap();
    for n in &nodes {
        assert_eq!(call(n, &up).await.echo()["client_cert_sha256"], third.id());
    }
    let seen: Vec<String> = up.requests().iter().filter_map(|r| r.client_cert_sha256()).collect();
    assert!(seen.contains(&first.id()) && seen.contains(&next.id()), "the partner saw every certificate");
}

/// `METHOD path` on a node's admin API with a bearer token and a JSON body.
async fn api(node: &GatewayClient, token: &str, method: &str, path: &str, body: serde_json::Value) -> Resp {
    let req = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", node.admin.to_string())
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .body(http_body_util::Full::new(bytes::Bytes::from(body.to_string())))
        .unwrap();
    node.send(node.admin, req).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_from_several_nodes_at_once_all_reach_every_node() {
    let db = TestDb::new();
    let c = Cluster::new(&db.url());
    c.client("billing");
    let gateways = c.nodes(3).await;
    let nodes: Vec<GatewayClient> = gateways.iter().map(|g| g.client()).collect();
    let before = c.revision().await;
    // Twelve binds, four through each node, all at once.
    let mut children = Vec::new();
    for i in 0..12 {
        let host = format!("h{i}.partner.test");
        children.push(
            c.env
                .command(&["--config", gateways[i % 3].config_path().to_str().unwrap(), "bind", &host, "billing"])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap(),
        );
    }
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    assert_eq!(c.revision().await, before + 12, "no change lost");
    let since = Instant::now();
    wait_for_revision(&nodes, before + 12, since, Duration::from_secs(3)).await.unwrap();
    for n in &nodes {
        assert_eq!(n.readyz_json().await["bindings"], 12);
    }
    let bindings = c.cli(&["bindings"]).json();
    assert_eq!(bindings.as_array().unwrap().len(), 12);
}

#[test]
fn a_postgres_store_needs_the_master_key_given_explicitly() {
    let db = TestDb::new();
    // A data directory that has a key file (from an SQLite store) must not lend it.
    let env = Env::new();
    env.run(&["cert", "list"]).ok();
    assert!(env.data_dir().join("master.key").exists());
    let run = env.run(&["--json", "--store", &db.url(), "cert", "list"]);
    run.refused(1, "master-key");
    let message = run.error_json()["message"].as_str().unwrap().to_string();
    assert!(message.contains("explicitly"), "{message}");
    assert!(run.error_json()["hint"].as_str().unwrap().contains("CERTGATE_MASTER_KEY"));
    // Nothing was written: the first node given the key seals the store.
    env.run_with_env(&["--json", "--store", &db.url(), "cert", "list"], &[("CERTGATE_MASTER_KEY", KEY)]).ok();
    let key_file = env.file("shared.key", KEY);
    env.run_with_env(
        &["--store", &db.url(), "cert", "list"],
        &[("CERTGATE_MASTER_KEY_FILE", key_file.to_str().unwrap())],
    )
    .ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_with_another_master_key_is_refused_before_it_serves_anything() {
    let db = TestDb::new();
    let c = Cluster::new(&db.url());
    c.client("billing");
    let _node = c.nodes(1).await;
    let admin = format!("127.0.0.1:{}", crate::support::gateway::free_port());
    let proxy = format!("127.0.0.1:{}", crate::support::gateway::free_port());
    let mut child = c
        .env
        .command(&["serve", "--proxy-listen", &proxy, "--admin-listen", &admin])
        .env("CERTGATE_MASTER_KEY", OTHER_KEY)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let exited = wait_until(Duration::from_secs(20), async || child.try_wait().unwrap()).await;
    let status = exited.unwrap_or_else(|| {
        let _ = child.kill();
        panic!("serve with the wrong master key kept running")
    });
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("master-key") && stderr.contains("not the one the store"), "{stderr}");
    assert!(stderr.contains("same CERTGATE_MASTER_KEY"), "the hint says all nodes share one key: {stderr}");
    assert!(!stderr.contains("certgate serving"), "it never served: {stderr}");
    assert!(std::net::TcpStream::connect(&proxy).is_err() && std::net::TcpStream::connect(&admin).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_whose_announcement_was_missed_is_caught_by_the_revision_check() {
    let db = TestDb::new();
    let c = Cluster::new(&db.url());
    c.client("billing");
    let gateways = c.nodes(2).await;
    let nodes: Vec<GatewayClient> = gateways.iter().map(|g| g.client()).collect();
    let before = c.revision().await;
    // A change committed without its NOTIFY (as if the announcement were lost on the way).
    let url = db.url();
    let sql = "BEGIN; \
        INSERT INTO bindings (destination, certificate, trust, sni, pins, created_at, updated_at) VALUES ('quiet.test', 'billing', 'public', NULL, '[]', 0, 0); \
        UPDATE revision SET value = value + 1 WHERE id = 1; COMMIT;";
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&url).await.unwrap();
    sqlx::raw_sql(sql).execute(&mut conn).await.unwrap();
    let committed = Instant::now();
    let took = wait_for_revision(&nodes, before + 1, committed, PROPAGATION_LIMIT).await.unwrap();
    eprintln!("the unannounced change reached the nodes after {took:?}");
    for n in &nodes {
        assert_eq!(n.readyz_json().await["bindings"], 1);
    }
}
