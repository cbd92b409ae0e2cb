//! Route tables at scale, and propagation across nodes (docs/BENCHMARKS.md, section "Route
//! tables at scale and propagation"). Run it through `bench/routes.sh`, which builds the release
//! binary and writes the section.
//!
//! 1. Fills a fresh PostgreSQL database (on 127.0.0.1:5432 unless `--server`) with
//!    `--certs` client certificates (P-256, issued by 20 intermediates under one root, keys sealed
//!    under a master key) and `--bindings` bindings (70 % host, 20 % host:port, 10 % `*.domain`,
//!    trust `ca:bench`), in one transaction.
//! 2. In process: times a cold reload (snapshot + unseal + chain completion, then compile and
//!    publish), a warm reload after one change (unchanged routes reused), and the memory the
//!    table takes (VmRSS before and after, the previous table dropped).
//! 3. Lookups: `RouteTable::find` over 1,000 / 10,000 / all bindings, hits of each kind and
//!    misses, nanoseconds per lookup.
//! 4. Propagation: starts `--nodes` `certgate serve` processes (`--bin`) on the store, makes
//!    `--changes` changes (one binding each) and polls every node's `/readyz` (kept-alive
//!    connections, every 2 ms) until its table has the new revision: median and worst per change.
//!
//! Every wait is bounded; the database is dropped at the end.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use certgate::control::{Control, MasterKeySource, OpenOptions, Redacted};
use certgate::gateway::{Gateway, GatewaySettings};
use certgate::model::{CertificateId, CertificateName};
use certgate::routes::{compile, CompileOptions, RouteTable};
use certgate::store::{AnchorRecord, BindingRecord, CertificateRecord, Change, CopyPlan, MasterKey, StoreUrl};
use http_body_util::{BodyExt, Empty};
use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair};
use sqlx::Connection;

const KEY: &str = "YmVuY2gtbWFzdGVyLWtleS0zMi1ieXRlcy1sb25nISE=";
const INTERMEDIATES: usize = 20;

struct Args {
    certs: usize,
    bindings: usize,
    changes: usize,
    nodes: usize,
    warm: usize,
    server: String,
    bin: String,
}

fn args() -> Args {
    let mut a = Args {
        certs: 10_000,
        bindings: 100_000,
        changes: 100,
        nodes: 3,
        warm: 5,
        server: "postgres://postgres@127.0.0.1:5432".into(),
        bin: "target/release/certgate".into(),
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    for pair in argv.chunks(2) {
        let v = pair.get(1).cloned().unwrap_or_default();
        match pair[0].as_str() {
            "--certs" => a.certs = v.parse().expect("--certs N"),
            "--bindings" => a.bindings = v.parse().expect("--bindings N"),
            "--changes" => a.changes = v.parse().expect("--changes N"),
            "--nodes" => a.nodes = v.parse().expect("--nodes N"),
            "--warm" => a.warm = v.parse().expect("--warm N"),
            "--server" => a.server = v,
            "--bin" => a.bin = v,
            other => panic!("unknown argument {other}"),
        }
    }
    a
}

fn rss_mib() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
            / 1024.0
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// The bytes malloc holds for live allocations (glibc's mallinfo2: small and mapped chunks),
/// apart from what freed memory the process keeps: what the table itself takes.
fn heap_mib() -> f64 {
    // SAFETY: mallinfo2 only reads the allocator's counters.
    let m = unsafe { libc::mallinfo2() };
    (m.uordblks + m.hblkhd) as f64 / 1048576.0
}

fn pid_rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0)
        / 1024.0
}

fn ca(cn: &str, issuer: Option<&Issuer<'_, KeyPair>>) -> (Vec<u8>, CertificateParams, KeyPair) {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name.push(DnType::CommonName, cn);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let cert = match issuer {
        None => p.self_signed(&key).unwrap(),
        Some(i) => p.signed_by(&key, i).unwrap(),
    };
    (cert.der().to_vec(), p, key)
}

/// The records of a store at scale (built in memory, written in one transaction).
fn records(
    n_certs: usize,
    n_bindings: usize,
    key: &MasterKey,
) -> (AnchorRecord, Vec<CertificateRecord>, Vec<BindingRecord>) {
    let (root_der, root_p, root_k) = ca("bench root", None);
    let root = Issuer::new(root_p, root_k);
    let inters: Vec<(Vec<u8>, Issuer<'static, KeyPair>)> = (0..INTERMEDIATES)
        .map(|i| {
            let (der, p, k) = ca(&format!("bench intermediate {i}"), Some(&root));
            (der, Issuer::new(p, k))
        })
        .collect();
    let now = certgate::store::now_unix();
    let certs = (0..n_certs)
        .map(|i| {
            let (inter_der, inter) = &inters[i % INTERMEDIATES];
            let key_pair = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
            let mut p = CertificateParams::new(vec![format!("c{i}.client.bench")]).unwrap();
            p.distinguished_name.push(DnType::CommonName, format!("client {i}"));
            p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
            p.use_authority_key_identifier_extension = true;
            let leaf = p.signed_by(&key_pair, inter).unwrap();
            let der = leaf.der().to_vec();
            let id = CertificateId::of_der(&der);
            CertificateRecord {
                name: CertificateName::parse(&format!("c{i}")).unwrap(),
                sealed_key: key.seal(&key_pair.serialize_der(), id.as_bytes()).unwrap(),
                id,
                leaf_der: der,
                chain_der: vec![inter_der.clone()],
                key_format: "pkcs8".into(),
                owner: None,
                contact: None,
                created_at: now,
                updated_at: now,
            }
        })
        .collect();
    let bindings = (0..n_bindings).map(|j| binding(j, n_certs, now)).collect();
    let anchor =
        AnchorRecord { name: "bench".into(), certs_der: vec![root_der], owner: None, contact: None, created_at: now };
    (anchor, certs, bindings)
}

fn destination(j: usize) -> String {
    match j % 10 {
        0..=6 => format!("h{j}.bench.example"),
        7 | 8 => format!("h{j}.bench.example:8443"),
        _ => format!("*.w{j}.bench.example"),
    }
}

fn binding(j: usize, n_certs: usize, now: i64) -> BindingRecord {
    BindingRecord {
        destination: destination(j),
        certificate: Some(CertificateName::parse(&format!("c{}", j % n_certs.max(1))).unwrap()),
        alternates: Vec::new(),
        trust: certgate::model::TrustPolicy::parse("ca:bench").expect("a trust policy"),
        sni: None,
        pins: Vec::new(),
        allow_renegotiation: false,
        created_at: now,
        updated_at: now,
    }
}

/// A (host, port) that the binding `j` matches.
fn request_for(j: usize) -> (String, u16) {
    match j % 10 {
        0..=6 => (format!("h{j}.bench.example"), 443),
        7 | 8 => (format!("h{j}.bench.example"), 8443),
        _ => (format!("api.x.w{j}.bench.example"), 443),
    }
}

/// xorshift64*: reproducible picks without a dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self, below: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % below as u64) as usize
    }
}

/// Nanoseconds per `find`, over `n` lookups of requests picked among the first `size` bindings
/// (`miss`: names nothing binds).
fn lookups(table: &RouteTable, size: usize, n: usize, kind: &str) -> f64 {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let picks: Vec<(String, u16)> = (0..n)
        .map(|_| {
            let mut j = rng.next(size);
            match kind {
                "host" => j -= j % 10,
                "host:port" => j = j - j % 10 + 7,
                "wildcard" => j = j - j % 10 + 9,
                _ => return (format!("nobody{j}.elsewhere.example"), 443),
            }
            request_for(j.min(size - 1))
        })
        .collect();
    let start = Instant::now();
    let mut found = 0usize;
    for (h, p) in &picks {
        found += table.find(h, *p).is_some() as usize;
    }
    let ns = start.elapsed().as_nanos() as f64 / n as f64;
    if kind == "miss" {
        assert_eq!(found, 0);
    } else {
        assert_eq!(found, n, "every {kind} lookup finds its route");
    }
    ns
}

/// GET /readyz's `revision` over one kept-alive connection per node.
struct ReadyProbe {
    addr: SocketAddr,
    sender: Option<hyper::client::conn::http1::SendRequest<Empty<Bytes>>>,
}

impl ReadyProbe {
    async fn revision(&mut self) -> Option<i64> {
        if self.sender.as_ref().is_none_or(|s| s.is_closed()) {
            let tcp = tokio::net::TcpStream::connect(self.addr).await.ok()?;
            let (sender, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp)).await.ok()?;
            tokio::spawn(conn);
            self.sender = Some(sender);
        }
        let sender = self.sender.as_mut()?;
        sender.ready().await.ok()?;
        let req = http::Request::get("/readyz").header("host", self.addr.to_string()).body(Empty::new()).ok()?;
        let resp = sender.send_request(req).await.ok()?;
        let body = resp.into_body().collect().await.ok()?.to_bytes();
        serde_json::from_slice::<serde_json::Value>(&body).ok()?["revision"].as_i64()
    }
}

struct Node {
    child: Child,
    probe: ReadyProbe,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

async fn start_node(bin: &str, store: &str, dir: &std::path::Path, i: usize) -> Node {
    let (proxy, admin) = (free_port(), free_port());
    let log = std::fs::File::create(dir.join(format!("node{i}.log"))).unwrap();
    let child = Command::new(bin)
        .args([
            "serve",
            "--proxy-listen",
            &format!("127.0.0.1:{proxy}"),
            "--admin-listen",
            &format!("127.0.0.1:{admin}"),
        ])
        .env("CERTGATE_STORE", store)
        .env("CERTGATE_MASTER_KEY", KEY)
        .env("CERTGATE_DATA_DIR", dir.join(format!("node{i}")))
        .env("CERTGATE_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {bin}: {e} (run bench/routes.sh, which builds it)"));
    Node { child, probe: ReadyProbe { addr: format!("127.0.0.1:{admin}").parse().unwrap(), sender: None } }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let a = args();
    let db = format!("certgate_bench_{}", std::process::id());
    let mut admin = sqlx::PgConnection::connect(&format!("{}/test", a.server))
        .await
        .expect("PostgreSQL is required on 127.0.0.1:5432 (user postgres, database test)");
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {db}"))).execute(&mut admin).await.unwrap();
    let url = format!("{}/{db}", a.server);
    let result = run(&a, &url).await;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP DATABASE {db} WITH (FORCE)"))).execute(&mut admin).await.unwrap();
    if let Err(e) = result {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

async fn run(a: &Args, url: &str) -> Result<(), String> {
    let store_url = StoreUrl::Postgres(url.to_string());
    let opts = OpenOptions {
        store: store_url.clone(),
        master_key: MasterKeySource::Inline(Redacted(zeroize::Zeroizing::new(KEY.to_string()))),
        actor: "bench".into(),
    };
    let control = Control::open(opts).await.map_err(|e| e.message())?;
    let key = MasterKey::from_base64(KEY).unwrap();

    let t = Instant::now();
    let (anchor, certs, bindings) = records(a.certs, a.bindings, &key);
    let t_mint = t.elapsed();
    let t = Instant::now();
    let plan = CopyPlan { anchors: vec![anchor], certificates: certs, bindings, ..CopyPlan::default() };
    let change =
        Change { actor: "bench".into(), action: "bench.fill".into(), target: "-".into(), detail: String::new() };
    control.store().apply_copy(&plan, &change).await.map_err(|e| e.to_string())?;
    drop(plan);
    let t_fill = t.elapsed();
    println!(
        "- store: {} certificates, {} bindings (minted in {:.1} s, written in one transaction in {:.1} s)",
        a.certs,
        a.bindings,
        t_mint.as_secs_f64(),
        t_fill.as_secs_f64()
    );

    // Cold reload through the gateway (what `serve` does at start), with the memory it takes.
    let options = CompileOptions::default();
    let gw = Gateway::new(options.clone(), GatewaySettings::default());
    // A read of the store on its own: what the inputs take, and what a read leaves behind.
    let h = heap_mib();
    let inputs = control.route_inputs().await.map_err(|e| e.message())?;
    let heap_read = heap_mib() - h;
    let mut inputs = inputs;
    let before = heap_mib();
    inputs.bindings = Vec::new();
    let heap_bindings = before - heap_mib();
    let before = heap_mib();
    inputs.identities = Default::default();
    let heap_identities = before - heap_mib();
    drop(inputs);
    let heap_left = heap_mib() - h;
    let (rss0, _) = rss_mib();
    let heap0 = heap_mib();
    let t = Instant::now();
    gw.reload(&control).await?;
    let t_cold = t.elapsed();
    let (rss1, _) = rss_mib();
    let heap1 = heap_mib();
    let routes = gw.current().map(|t| t.len()).unwrap_or(0);
    // Warm reloads after one change each: incremental (only the changed binding is read and
    // compiled; every other route, config and pool is kept).
    let mut warm = Vec::new();
    for k in 0..a.warm.max(1) {
        let now = certgate::store::now_unix();
        control
            .store()
            .put_binding(&binding(a.bindings + 10_000 + k, a.certs, now), &change)
            .await
            .map_err(|e| e.to_string())?;
        let t = Instant::now();
        gw.reload(&control).await?;
        warm.push(t.elapsed().as_secs_f64());
    }
    let (rss2, hwm) = rss_mib();
    let heap2 = heap_mib();
    // The phases of a reload, on their own: reading the store (snapshot, unseal, chains), then
    // compiling from nothing (cold) or next to the table in use (warm).
    let h = heap_mib();
    let t = Instant::now();
    let inputs = control.route_inputs().await.map_err(|e| e.message())?;
    let t_inputs = t.elapsed();
    let heap_inputs = heap_mib() - h;
    let t = Instant::now();
    let table = compile(inputs, None, &options)?;
    let t_compile = t.elapsed();
    let heap_table = heap_mib() - h;
    drop(table);
    let inputs = control.route_inputs().await.map_err(|e| e.message())?;
    let previous = gw.current();
    let t = Instant::now();
    let table = compile(inputs, previous.as_deref(), &options)?;
    let t_compile_warm = t.elapsed();
    drop(table);
    drop(previous);
    println!(
        "- reload, cold (first table, through `Gateway::reload`): {:.2} s for {routes} routes = snapshot + unseal + chains {:.2} s, compile {:.2} s",
        t_cold.as_secs_f64(),
        t_inputs.as_secs_f64(),
        t_compile.as_secs_f64()
    );
    println!(
        "- reload, warm (one binding added, through `Gateway::reload`: only what changed is read and compiled; median of {}): {:.1} ms (a whole read and compile next to the table in use instead: {:.2} s + {:.2} s)",
        warm.len(),
        median(&mut warm) * 1000.0,
        t_inputs.as_secs_f64(),
        t_compile_warm.as_secs_f64()
    );
    println!(
        "- memory: VmRSS {rss0:.0} MiB before the first table, {rss1:.0} MiB with it published (+{:.0} MiB), {rss2:.0} MiB after {} warm reloads; peak {hwm:.0} MiB",
        rss1 - rss0,
        a.warm.max(1)
    );
    println!(
        "- heap in use (malloc's live bytes): {heap0:.0} MiB before the first table, {heap1:.0} MiB with it (+{:.0} MiB, {:.0} bytes per route), {heap2:.0} MiB after the warm reloads; a second table next to it: inputs {heap_inputs:.0} MiB, with its routes {heap_table:.0} MiB ({:.0} bytes per route beyond the inputs); a store read alone: {heap_read:.0} MiB (binding records {heap_bindings:.0}, certificates to present {heap_identities:.0}), {heap_left:.0} MiB left once dropped",
        heap1 - heap0,
        (heap1 - heap0) * 1048576.0 / routes.max(1) as f64,
        (heap_table - heap_inputs) * 1048576.0 / routes.max(1) as f64
    );

    // Lookups at three sizes.
    let mut sizes = vec![1_000usize, 10_000, a.bindings];
    sizes.retain(|s| *s <= a.bindings);
    sizes.dedup();
    println!();
    println!("| bindings in the table | host ns | host:port ns | *.domain ns | miss ns |");
    println!("|--:|--:|--:|--:|--:|");
    for size in sizes {
        let mut inputs = control.route_inputs().await.map_err(|e| e.message())?;
        inputs.bindings.retain(|b| {
            b.destination
                .trim_start_matches("*.w")
                .trim_start_matches('h')
                .split(['.', ':'])
                .next()
                .and_then(|n| n.parse::<usize>().ok())
                .is_some_and(|n| n < size)
        });
        let table = compile(inputs, None, &options)?;
        let n = 1_000_000;
        // Best of three rounds: the machine is shared, and a lookup is short enough for other
        // work to double it.
        let row: Vec<String> = ["host", "host:port", "wildcard", "miss"]
            .iter()
            .map(|k| format!("{:.0}", (0..3).map(|_| lookups(&table, size, n, k)).fold(f64::MAX, f64::min)))
            .collect();
        println!("| {size} | {} |", row.join(" | "));
    }
    drop(gw);

    if a.nodes == 0 {
        control.close().await;
        return Ok(());
    }
    // Propagation across nodes.
    let dir = tempfile::tempdir().unwrap();
    let mut nodes = Vec::new();
    for i in 0..a.nodes {
        nodes.push(start_node(&a.bin, url, dir.path(), i).await);
    }
    let start = Instant::now();
    let revision = control.revision().await.map_err(|e| e.message())?;
    for (i, n) in nodes.iter_mut().enumerate() {
        loop {
            if n.probe.revision().await.is_some_and(|r| r >= revision) {
                break;
            }
            if let Ok(Some(s)) = n.child.try_wait() {
                return Err(format!(
                    "node {i} exited with {s}: see {}",
                    dir.path().join(format!("node{i}.log")).display()
                ));
            }
            if start.elapsed() > Duration::from_secs(600) {
                return Err(format!("node {i} not ready within 600 s"));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let t_ready = start.elapsed();
    let rss_nodes: Vec<String> = nodes.iter().map(|n| format!("{:.0}", pid_rss_mib(n.child.id()))).collect();
    let mut worst_per_change = Vec::new();
    let mut all = Vec::new();
    for k in 0..a.changes {
        let b = binding(a.bindings + 1 + k, a.certs, certgate::store::now_unix());
        let (rev, _) = control.store().put_binding(&b, &change).await.map_err(|e| e.to_string())?;
        let committed = Instant::now();
        let mut took = vec![None; nodes.len()];
        while took.iter().any(Option::is_none) {
            for (i, n) in nodes.iter_mut().enumerate() {
                if took[i].is_none() && n.probe.revision().await.is_some_and(|r| r >= rev) {
                    took[i] = Some(committed.elapsed().as_secs_f64() * 1000.0);
                }
            }
            if committed.elapsed() > Duration::from_secs(60) {
                return Err(format!("change {k} did not reach every node within 60 s"));
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let took: Vec<f64> = took.into_iter().map(Option::unwrap).collect();
        worst_per_change.push(took.iter().cloned().fold(0.0, f64::max));
        all.extend(took);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let worst = worst_per_change.iter().cloned().fold(0.0, f64::max);
    let p90 = {
        let mut v = worst_per_change.clone();
        v.sort_by(|a, b| a.total_cmp(b));
        v[(v.len() * 9 / 10).min(v.len() - 1)]
    };
    println!();
    println!(
        "- propagation over {} nodes, {} changes (one new binding each): every node's table at the new revision after median {:.0} ms, 90th percentile {p90:.0} ms, worst {:.0} ms (per node: median {:.0} ms); nodes ready {:.1} s after start; node VmRSS {} MiB",
        a.nodes,
        a.changes,
        median(&mut worst_per_change),
        worst,
        median(&mut all),
        t_ready.as_secs_f64(),
        rss_nodes.join(" / ")
    );
    drop(nodes);
    control.close().await;
    Ok(())
}
