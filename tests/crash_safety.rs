//! Crash safety: `certgate` CLI processes are killed (`SIGKILL`) at random moments in the middle
//! of `cert import`, `cert rotate`, `bind` and `store copy`, on SQLite and on PostgreSQL. After
//! every kill the store opens (the CLI lists it), SQLite's `PRAGMA integrity_check` says `ok`,
//! and what the store holds is the state before the command or the state after it, never a mix:
//! certificates, bindings, revision and audit rows move together or not at all.

use std::process::Stdio;
use std::time::{Duration, Instant};

use sqlx::Connection;

use crate::support::pg::TestDb;
use crate::support::{Env, LeafSpec, Minted, TestCa};

/// What a user can see of a store, read with SQL straight from it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct State {
    revision: i64,
    audit_rows: i64,
    certs: Vec<(String, String)>,
    bindings: Vec<(String, Option<String>)>,
}

impl State {
    fn empty() -> State {
        State { revision: 0, audit_rows: 0, certs: vec![], bindings: vec![] }
    }
    /// The same listing, the revision and audit log moved on.
    fn same_listing(&self, other: &State) -> bool {
        self.certs == other.certs && self.bindings == other.bindings
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

/// One of the two backends, with what the test needs to look inside it.
enum Backend {
    Sqlite(std::path::PathBuf),
    Postgres(TestDb),
}

impl Backend {
    fn url(&self) -> String {
        match self {
            Backend::Sqlite(path) => format!("sqlite://{}", path.display()),
            Backend::Postgres(db) => db.url(),
        }
    }

    /// `PRAGMA integrity_check` (SQLite; a file that does not exist yet passes), then the state.
    fn state(&self, rt: &tokio::runtime::Runtime) -> State {
        rt.block_on(async {
            match self {
                Backend::Sqlite(path) => {
                    let options = sqlx::sqlite::SqliteConnectOptions::new().filename(path);
                    let mut conn = sqlx::SqliteConnection::connect_with(&options).await.expect("open the SQLite file");
                    let check: Vec<(String,)> =
                        sqlx::query_as("PRAGMA integrity_check").fetch_all(&mut conn).await.expect("integrity_check");
                    assert_eq!(check, vec![("ok".to_string(),)], "PRAGMA integrity_check on {}", path.display());
                    let s = read_state_sqlite(&mut conn).await;
                    let _ = conn.close().await;
                    s
                }
                Backend::Postgres(db) => {
                    let mut conn = sqlx::PgConnection::connect(&db.url()).await.expect("connect to PostgreSQL");
                    let s = read_state_pg(&mut conn).await;
                    let _ = conn.close().await;
                    s
                }
            }
        })
    }
}

async fn read_state_sqlite(conn: &mut sqlx::SqliteConnection) -> State {
    let revision: (i64,) = sqlx::query_as("SELECT value FROM revision").fetch_one(&mut *conn).await.expect("revision");
    let audit: (i64,) = sqlx::query_as("SELECT count(*) FROM audit").fetch_one(&mut *conn).await.expect("audit");
    let certs = sqlx::query_as("SELECT name, id FROM certificates ORDER BY name")
        .fetch_all(&mut *conn)
        .await
        .expect("certificates");
    let bindings = sqlx::query_as("SELECT destination, certificate FROM bindings ORDER BY destination")
        .fetch_all(&mut *conn)
        .await
        .expect("bindings");
    let further =
        sqlx::query_as("SELECT destination, certificate FROM binding_certificates ORDER BY destination, position")
            .fetch_all(&mut *conn)
            .await
            .expect("binding_certificates");
    State { revision: revision.0, audit_rows: audit.0, certs, bindings: with_candidates(bindings, further) }
}

async fn read_state_pg(conn: &mut sqlx::PgConnection) -> State {
    let revision: (i64,) =
        sqlx::query_as("SELECT value::bigint FROM revision").fetch_one(&mut *conn).await.expect("revision");
    let audit: (i64,) = sqlx::query_as("SELECT count(*) FROM audit").fetch_one(&mut *conn).await.expect("audit");
    let certs = sqlx::query_as("SELECT name, id FROM certificates ORDER BY name")
        .fetch_all(&mut *conn)
        .await
        .expect("certificates");
    let bindings = sqlx::query_as("SELECT destination, certificate FROM bindings ORDER BY destination")
        .fetch_all(&mut *conn)
        .await
        .expect("bindings");
    let further =
        sqlx::query_as("SELECT destination, certificate FROM binding_certificates ORDER BY destination, position")
            .fetch_all(&mut *conn)
            .await
            .expect("binding_certificates");
    State { revision: revision.0, audit_rows: audit.0, certs, bindings: with_candidates(bindings, further) }
}

/// Bindings as `(destination, "first,further,...")`: a binding and its further candidates
/// (`binding_certificates`) are one state.
fn with_candidates(
    bindings: Vec<(String, Option<String>)>,
    further: Vec<(String, String)>,
) -> Vec<(String, Option<String>)> {
    bindings
        .into_iter()
        .map(|(d, first)| {
            let more: Vec<&str> = further.iter().filter(|(fd, _)| *fd == d).map(|(_, c)| c.as_str()).collect();
            let all =
                first.map(|f| std::iter::once(f.as_str()).chain(more.iter().copied()).collect::<Vec<_>>().join(","));
            (d, all)
        })
        .collect()
}

/// A small deterministic generator for the kill delays (the seed is printed).
struct Delays(u64);

impl Delays {
    fn next_below(&mut self, limit: Duration) -> Duration {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        let micros = limit.as_micros().max(1) as u64;
        Duration::from_micros(self.0 % micros)
    }
}

struct Killer<'a> {
    env: &'a Env,
    rt: tokio::runtime::Runtime,
    delays: Delays,
    kills: usize,
    finished: usize,
}

impl Killer<'_> {
    /// Run `args` to completion once and return how long it took.
    fn time_one(&self, args: &[String]) -> Duration {
        let started = Instant::now();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.env.run(&args).ok();
        started.elapsed()
    }

    /// Start `args`, kill it after a random delay below `within`; true when it was killed
    /// (false when it had already finished).
    fn kill_once(&mut self, args: &[String], within: Duration) -> bool {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut child = self.env.command(&args).stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("spawn");
        std::thread::sleep(self.delays.next_below(within));
        let killed = matches!(child.try_wait(), Ok(None));
        let _ = child.kill();
        let status = child.wait().expect("wait for the killed process");
        if killed {
            self.kills += 1;
        } else {
            self.finished += 1;
            assert!(status.success(), "{args:?} failed on its own: {status}");
        }
        killed
    }

    /// The store opens: the CLI lists it (and migrates it when it is new).
    fn opens(&self, store: &str) {
        let r = self.env.run(&["--json", "--store", store, "cert", "list"]);
        assert_eq!(r.code, 0, "the store {store} does not open after a kill: {}", r.stderr);
    }
}

/// Kill `op(i)` at random moments, `kills` times at least (bounded by count and time); after
/// each kill the state is `before` or `after(before, i)`.
fn phase(
    k: &mut Killer,
    name: &str,
    store: &Backend,
    kills: usize,
    mut op: impl FnMut(usize, &State) -> Vec<String>,
    after: impl Fn(usize, &State) -> State,
) {
    let url = store.url();
    let started = Instant::now();
    // One run to completion measures the command (and checks that the expected state is right).
    let before = store.state(&k.rt);
    let args = op(0, &before);
    let took = k.time_one(&args);
    let done = store.state(&k.rt);
    assert!(done.same_listing(&after(0, &before)), "{name}: a completed run: {done:?}");
    assert!(done.revision > before.revision && done.audit_rows > before.audit_rows, "{name}: {done:?}");
    let mut within = took + took / 4;
    let (first_kills, mut i) = (k.kills, 1);
    while k.kills - first_kills < kills && i < kills * 4 && started.elapsed() < Duration::from_secs(25) {
        let before = store.state(&k.rt);
        let args = op(i, &before);
        within = adapt(within, took, k.kill_once(&args, within));
        k.opens(&url);
        let now = store.state(&k.rt);
        let new = after(i, &before);
        let is_old = now == before;
        let is_new = now.same_listing(&new) && now.revision > before.revision && now.audit_rows > before.audit_rows;
        assert!(
            is_old || is_new,
            "{name} #{i}: after the kill the store is neither the old state nor the new one\nold: {before:?}\n\
             expected new listing: {new:?}\nfound: {now:?}"
        );
        i += 1;
    }
    let got = k.kills - first_kills;
    eprintln!("{name}: {got} kills in {i} runs (one run takes {took:?}), {:?}", started.elapsed());
    assert!(got >= kills, "{name}: only {got} of {kills} runs were killed before they finished");
}

/// The window the next kill lands in: narrower after a run finished before its kill (the first
/// run, on a busy machine, may have been slow), wider again after a kill, never over twice the
/// measured run nor under a millisecond.
fn adapt(within: Duration, took: Duration, killed: bool) -> Duration {
    let next = if killed { within + within / 20 } else { within * 4 / 5 };
    next.clamp(Duration::from_millis(1), took * 2)
}

/// What `bind` names: `c0`, or for every other run `c0` and another stored certificate.
fn candidates(i: usize, before: &State) -> String {
    match before.certs.iter().find(|(n, _)| n != "c0") {
        Some((other, _)) if i % 2 == 1 => format!("c0,{other}"),
        _ => "c0".to_string(),
    }
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

fn pem_file(env: &Env, name: &str, leaf: &Minted) -> String {
    env.file(name, format!("{}{}", leaf.cert_pem, leaf.key_pem)).to_str().unwrap().to_string()
}

/// import, rotate and bind on `store`, `each` kills per command.
fn mutations(k: &mut Killer, env: &Env, ca: &TestCa, store: &Backend, label: &str, each: usize) {
    let url = store.url();
    k.opens(&url);
    // Certificates to import, one per run (an import of one already stored is a different path).
    let leaves: Vec<(String, String)> = (0..each * 4 + 1)
        .map(|i| {
            let leaf = ca.leaf(LeafSpec::client(&format!("{label} import {i}")));
            (pem_file(env, &format!("{label}-import-{i}.pem"), &leaf), leaf.id())
        })
        .collect();
    phase(
        k,
        &format!("{label} import"),
        store,
        each,
        |i, _| strings(&["--json", "--store", &url, "cert", "import", &format!("c{i}"), &leaves[i].0]),
        |i, before| {
            let mut s = before.clone();
            s.certs.push((format!("c{i}"), leaves[i].1.clone()));
            s.certs.sort();
            s
        },
    );
    // Rotate `c0` between two certificates.
    let a = ca.leaf(LeafSpec::client(&format!("{label} rotate a")));
    let b = ca.leaf(LeafSpec::client(&format!("{label} rotate b")));
    let files = [
        (pem_file(env, &format!("{label}-a.pem"), &a), a.id()),
        (pem_file(env, &format!("{label}-b.pem"), &b), b.id()),
    ];
    let target = |before: &State| {
        let current = before.certs.iter().find(|(n, _)| n == "c0").map(|(_, id)| id.clone()).unwrap();
        if current == files[0].1 {
            &files[1]
        } else {
            &files[0]
        }
    };
    phase(
        k,
        &format!("{label} rotate"),
        store,
        each,
        |_, before| strings(&["--json", "--store", &url, "cert", "rotate", "c0", &target(before).0]),
        |_, before| {
            let mut s = before.clone();
            let id = target(before).1.clone();
            s.certs.iter_mut().find(|(n, _)| n == "c0").unwrap().1 = id;
            s
        },
    );
    phase(
        k,
        &format!("{label} bind"),
        store,
        each,
        // Every other binding names two candidates (the second in `binding_certificates`).
        |i, before| {
            strings(&["--json", "--store", &url, "bind", &format!("d{i}.partner.example"), &candidates(i, before)])
        },
        |i, before| {
            let mut s = before.clone();
            s.bindings.push((format!("d{i}.partner.example"), Some(candidates(i, before))));
            s.bindings.sort();
            s
        },
    );
}

/// `store copy` from `from` into a new store per run: the target is empty or a full copy.
fn copies(k: &mut Killer, from: &Backend, targets: &mut dyn FnMut(usize) -> Backend, label: &str, kills: usize) {
    let source = from.state(&k.rt);
    let started = Instant::now();
    let first = targets(0);
    let args = strings(&["--json", "store", "copy", "--from", &from.url(), "--to", &first.url()]);
    let took = k.time_one(&args);
    let mut within = took + took / 4;
    assert!(first.state(&k.rt).same_listing(&source));
    let (first_kills, mut i) = (k.kills, 1);
    while k.kills - first_kills < kills && i < kills * 4 && started.elapsed() < Duration::from_secs(25) {
        let to = targets(i);
        let args = strings(&["--json", "store", "copy", "--from", &from.url(), "--to", &to.url()]);
        within = adapt(within, took, k.kill_once(&args, within));
        k.opens(&to.url());
        let now = to.state(&k.rt);
        assert!(
            now.same_listing(&State::empty()) || now.same_listing(&source),
            "{label} copy #{i}: the target is neither empty nor a full copy\nsource: {source:?}\nfound: {now:?}"
        );
        // The source is untouched.
        assert_eq!(from.state(&k.rt), source, "{label} copy #{i}: the source changed");
        i += 1;
    }
    let got = k.kills - first_kills;
    eprintln!("{label} copy: {got} kills in {i} runs (one run takes {took:?}), {:?}", started.elapsed());
    assert!(got >= kills, "{label} copy: only {got} of {kills} runs were killed before they finished");
}

#[test]
fn sigkill_during_import_rotate_bind_and_copy_leaves_the_old_or_the_new_state() {
    let mut env = Env::new();
    let ca = TestCa::new("crash");
    let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64 | 1;
    eprintln!("kill delay seed: {seed}");
    // The data directory and its master key come with the first command; PostgreSQL stores
    // (and copies into them) take that key explicitly.
    env.run(&["--json", "cert", "list"]).ok();
    let key_file = env.data_dir().join("master.key");
    env.vars.push(("CERTGATE_MASTER_KEY_FILE".into(), key_file.to_str().unwrap().into()));
    let mut k = Killer { env: &env, rt: runtime(), delays: Delays(seed), kills: 0, finished: 0 };

    let sqlite = Backend::Sqlite(env.db_path());
    mutations(&mut k, &env, &ca, &sqlite, "sqlite", 45);
    let dir = env.dir.path().to_path_buf();
    copies(&mut k, &sqlite, &mut |i| Backend::Sqlite(dir.join(format!("copy-{i}.db"))), "sqlite -> sqlite", 35);

    let pg = Backend::Postgres(TestDb::new());
    mutations(&mut k, &env, &ca, &pg, "postgres", 8);
    copies(&mut k, &pg, &mut |i| Backend::Sqlite(dir.join(format!("from-pg-{i}.db"))), "postgres -> sqlite", 10);
    copies(&mut k, &sqlite, &mut |_| Backend::Postgres(TestDb::new()), "sqlite -> postgres", 4);

    eprintln!("{} kills in all ({} runs finished before their kill)", k.kills, k.finished);
    assert!(k.kills >= 200, "{} kills", k.kills);
}
