//! PostgreSQL for tests: a fresh database per test on the shared server (127.0.0.1:5432, user
//! postgres, trust auth; `.ci/run` makes sure it runs), and a private server of a test's own
//! (initdb + pg_ctl on a free loopback port) for tests that stop and start it.
//!
//! PostgreSQL is required: a test that cannot reach it fails with a message saying so. It never
//! skips.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use sqlx::{Connection, PgConnection};

/// The shared server, and the database `.ci/run` guarantees on it.
pub const SERVER: &str = "postgres://postgres@127.0.0.1:5432";
const ADMIN_DB: &str = "test";

/// Run `f` to completion on a runtime of its own, on a thread of its own: usable from plain
/// tests, from inside a tokio runtime, and from `Drop`.
fn blocking<T: Send + 'static>(f: impl std::future::Future<Output = T> + Send + 'static) -> T {
    std::thread::spawn(move || tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f))
        .join()
        .expect("PostgreSQL helper thread panicked")
}

async fn admin_connection(server: &str) -> Result<PgConnection, String> {
    let url = format!("{server}/{ADMIN_DB}");
    match tokio::time::timeout(Duration::from_secs(10), PgConnection::connect(&url)).await {
        Ok(Ok(c)) => Ok(c),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("no answer within 10 s".into()),
    }
}

/// A database of its own on the shared server, dropped (with its connections) at the end.
pub struct TestDb {
    pub name: String,
}

impl TestDb {
    pub fn new() -> TestDb {
        let name = format!("certgate_t_{}", random_suffix());
        let sql = format!("CREATE DATABASE {name}");
        blocking(async move {
            let mut conn = admin_connection(SERVER).await.unwrap_or_else(|e| {
                panic!("PostgreSQL is required on 127.0.0.1:5432 (user postgres): {e} (database {ADMIN_DB}; .ci/run sets it up)")
            });
            sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(&mut conn).await.unwrap_or_else(|e| {
                panic!("PostgreSQL is required on 127.0.0.1:5432 (user postgres): cannot create a test database: {e}")
            });
            let _ = conn.close().await;
        });
        TestDb { name }
    }

    /// `postgres://postgres@127.0.0.1:5432/NAME`
    pub fn url(&self) -> String {
        format!("{SERVER}/{}", self.name)
    }

    pub fn store_url(&self) -> certgate::store::StoreUrl {
        certgate::store::StoreUrl::Postgres(self.url())
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        blocking(async move {
            if let Ok(mut conn) = admin_connection(SERVER).await {
                let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(&mut conn).await;
                let _ = conn.close().await;
            }
        });
    }
}

fn random_suffix() -> String {
    let mut bytes = [0u8; 8];
    aws_lc_rs::rand::fill(&mut bytes).unwrap();
    hex::encode(bytes)
}

/// A PostgreSQL server of the test's own, in a temp dir, on a free 127.0.0.1 port. Stopped
/// (immediately) and removed on drop.
pub struct PgServer {
    pub port: u16,
    dir: tempfile::TempDir,
    bin: PathBuf,
    /// `runuser -u postgres --` when running as root (initdb refuses root).
    run_as: Option<String>,
}

impl PgServer {
    pub fn start() -> PgServer {
        let bin = pg_bin_dir();
        let dir = tempfile::Builder::new().prefix("certgate-pg-").tempdir().unwrap();
        let run_as = is_root().then(|| "postgres".to_string());
        if let Some(user) = &run_as {
            let out = Command::new("chown").args(["-R", user]).arg(dir.path()).output().unwrap();
            assert!(out.status.success(), "chown {user} {}: {}", dir.path().display(), text(&out.stderr));
        }
        let server = PgServer { port: super::gateway::free_port(), dir, bin, run_as };
        let data = server.data_dir();
        server.run(
            "initdb",
            &[
                "-D",
                data.to_str().unwrap(),
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--no-sync",
                "--no-instructions",
            ],
        );
        server.start_again();
        // The database `.ci/run` guarantees on the shared server, so the same helpers work.
        blocking({
            let url = format!("postgres://postgres@127.0.0.1:{}/postgres", server.port);
            async move {
                let mut c = PgConnection::connect(&url).await.expect("connect to the test's own PostgreSQL");
                sqlx::raw_sql("CREATE DATABASE test").execute(&mut c).await.expect("create database test");
                let _ = c.close().await;
            }
        });
        server
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// `postgres://postgres@127.0.0.1:PORT/DB`
    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// Start (again) on the same port, waiting until it accepts connections (at most 60 s).
    pub fn start_again(&self) {
        let data = self.data_dir();
        let log = self.dir.path().join("server.log");
        let opts = format!(
            "-p {} -c listen_addresses=127.0.0.1 -k {} -c fsync=off -c full_page_writes=off -c max_connections=100",
            self.port,
            self.dir.path().display()
        );
        self.run(
            "pg_ctl",
            &["-D", data.to_str().unwrap(), "-l", log.to_str().unwrap(), "-o", &opts, "-w", "-t", "60", "start"],
        );
        let deadline = Instant::now() + Duration::from_secs(60);
        let url = self.url("postgres");
        loop {
            let u = url.clone();
            if blocking(async move { PgConnection::connect(&u).await.map(|_| ()).is_ok() }) {
                return;
            }
            assert!(Instant::now() < deadline, "the test's PostgreSQL did not accept connections:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Stop it (`-m fast`: clients are disconnected), waiting until it is down.
    pub fn stop(&self) {
        let data = self.data_dir();
        self.run("pg_ctl", &["-D", data.to_str().unwrap(), "-m", "fast", "-w", "-t", "60", "stop"]);
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    fn run(&self, tool: &str, args: &[&str]) {
        let exe = self.bin.join(tool);
        let mut cmd = match &self.run_as {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(&exe);
                c
            }
            None => Command::new(&exe),
        };
        // A relative cwd the postgres user cannot read makes initdb complain: run from the dir.
        cmd.args(args).current_dir(self.dir.path()).env("LC_ALL", "C.UTF-8");
        let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {}: {e}", exe.display()));
        assert!(
            out.status.success(),
            "{tool} {} failed: {}\n{}\n--- server log:\n{}",
            args.join(" "),
            text(&out.stdout),
            text(&out.stderr),
            self.log()
        );
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        let data = self.data_dir();
        let exe = self.bin.join("pg_ctl");
        let mut cmd = match &self.run_as {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(&exe);
                c
            }
            None => Command::new(&exe),
        };
        let _ = cmd
            .args(["-D", data.to_str().unwrap(), "-m", "immediate", "-w", "-t", "30", "stop"])
            .current_dir(self.dir.path())
            .output();
        if std::thread::panicking() {
            eprintln!("--- the test's PostgreSQL log (tail):\n{}", tail(&self.log(), 4000));
        }
    }
}

/// `/usr/lib/postgresql/<newest>/bin`, where Debian puts initdb and pg_ctl.
fn pg_bin_dir() -> PathBuf {
    let root = Path::new("/usr/lib/postgresql");
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir(root)
        .unwrap_or_else(|e| panic!("PostgreSQL server binaries are required in {}: {e}", root.display()))
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((v, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, b)| b).unwrap_or_else(|| panic!("no initdb under {}/*/bin", root.display()))
}

fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").map(|m| m.uid() == 0).unwrap_or(false)
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn tail(s: &str, n: usize) -> String {
    let start = s.len().saturating_sub(n);
    let start = (start..s.len()).find(|i| s.is_char_boundary(*i)).unwrap_or(0);
    s[start..].to_string()
}
