//! The Debian package, as an operator gets it: `packaging/build-deb.sh` builds it (a release
//! build of certgate, completions and man pages from `certgate generate`, cargo-deb), dpkg
//! installs it on this machine, `systemd-analyze` checks the unit, and `certgate serve` runs as
//! the `certgate` user with the packaged /etc/certgate/certgate.toml until /readyz answers.
//! Finally the package is purged (user and state gone).
//!
//! Needs root (dpkg), cargo-deb, dpkg-deb, systemd-analyze and setpriv; scripts/test.sh installs
//! them, and the test fails, never skips, without them. The release build goes to its own
//! target directory (`<target>/package`) so it never waits for the `cargo test` that runs it;
//! later runs reuse it. This machine has no systemd as PID 1: the unit is verified with
//! `systemd-analyze verify` and scored with `systemd-analyze security --offline`, and the
//! service user starts the same command line the unit runs, outside systemd.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::support::gateway::free_port;

const UNIT: &str = "/usr/lib/systemd/system/certgate.service";
const CONFIG: &str = "/etc/certgate/certgate.toml";
const STATE: &str = "/var/lib/certgate";
/// Left in the state directory by this test, so that a later run knows an installed certgate
/// package is its own and may be purged (it never purges an operator's installation).
const MARKER: &str = "/var/lib/certgate/.installed-by-certgate-tests";
/// The release build of every dependency takes about 5 minutes on two cores.
const BUILD_LIMIT: Duration = Duration::from_secs(1500);

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `<target>` of this test binary's build: the release build for the package goes below it.
fn target_dir() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_certgate")).parent().and_then(Path::parent).expect("target dir").to_path_buf()
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd.stdin(Stdio::null()).output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    out
}

#[track_caller]
fn ok(cmd: &mut Command) -> String {
    let out = run(cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn installed() -> bool {
    run(Command::new("dpkg-query").args(["-W", "-f=${Status}", "certgate"])).stdout.starts_with(b"install ok installed")
}

fn require() {
    let mut missing = Vec::new();
    // SAFETY: getuid has no preconditions.
    if unsafe { libc::getuid() } != 0 {
        missing.push("root (dpkg installs the package): run the suite as root, e.g. scripts/test.sh on CI".to_string());
    }
    for (tool, package) in [
        ("cargo-deb", "cargo install cargo-deb --locked"),
        ("dpkg-deb", "apt-get install dpkg"),
        ("systemd-analyze", "apt-get install systemd"),
        ("setpriv", "apt-get install util-linux"),
        ("useradd", "apt-get install passwd"),
    ] {
        if Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .map(|o| !o.status.success())
            .unwrap_or(true)
        {
            missing.push(format!("{tool}: {package}"));
        }
    }
    assert!(
        missing.is_empty(),
        "the package test cannot run; needed:\n  - {}\n(scripts/test.sh installs them)",
        missing.join("\n  - ")
    );
    assert!(
        !installed() || Path::new(MARKER).exists(),
        "a certgate package that this test did not install is on this machine; the test installs and purges \
         its own, so it stops here: remove it first (dpkg --purge certgate) or run the suite on a CI machine"
    );
}

/// Build the .deb and return its path (the last line build-deb.sh prints).
fn build() -> PathBuf {
    let started = Instant::now();
    let mut child = Command::new("timeout")
        .args(["--kill-after=10", &BUILD_LIMIT.as_secs().to_string()])
        .arg(repo().join("packaging/build-deb.sh"))
        .env("CARGO_TARGET_DIR", target_dir().join("package"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run packaging/build-deb.sh");
    let out = child_output(&mut child);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "build-deb.sh failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("package built in {:?}", started.elapsed());
    let path = PathBuf::from(stdout.lines().last().unwrap_or("").trim());
    assert!(
        path.extension().is_some_and(|e| e == "deb") && path.exists(),
        "no .deb at '{}':\n{stdout}",
        path.display()
    );
    path
}

fn child_output(child: &mut Child) -> Output {
    use std::io::Read;
    let (mut out, mut err) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let t = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = err.read_to_end(&mut s);
        s
    });
    let mut stdout = Vec::new();
    let _ = out.read_to_end(&mut stdout);
    let stderr = t.join().unwrap_or_default();
    Output { status: child.wait().expect("wait"), stdout, stderr }
}

/// `certgate serve` as the service user with the packaged config; killed on drop.
struct Service(Child);

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn readyz(admin: &str) -> Option<serde_json::Value> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(admin).await.ok()?;
    tcp.write_all(b"GET /readyz HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n").await.ok()?;
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut buf)).await.ok()?.ok()?;
    let text = String::from_utf8_lossy(&buf);
    if !text.starts_with("HTTP/1.1 200") {
        return None;
    }
    serde_json::from_str(text.split("\r\n\r\n").nth(1)?).ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn debian_package_installs_a_hardened_unit_and_serves_as_the_certgate_user() {
    require();
    let deb = tokio::task::spawn_blocking(build).await.unwrap();

    // What is in it.
    let contents = ok(Command::new("dpkg-deb").arg("--contents").arg(&deb));
    for path in [
        "./usr/bin/certgate",
        "./usr/lib/systemd/system/certgate.service",
        "./etc/certgate/certgate.toml",
        "./usr/share/bash-completion/completions/certgate",
        "./usr/share/zsh/vendor-completions/_certgate",
        "./usr/share/fish/vendor_completions.d/certgate.fish",
        "./usr/share/man/man1/certgate.1.gz",
        "./usr/share/man/man1/certgate-serve.1.gz",
        "./usr/share/man/man1/certgate-cert-import.1.gz",
        "./usr/share/doc/certgate/certgate.example.toml",
    ] {
        assert!(contents.lines().any(|l| l.ends_with(path)), "{path} is not in the package:\n{contents}");
    }
    assert!(!contents.contains("certgate-generate"), "the hidden generate command has no man page:\n{contents}");
    let conffiles = ok(Command::new("dpkg-deb").arg("--info").arg(&deb).arg("conffiles"));
    assert_eq!(conffiles.trim(), CONFIG, "the config is the package's only conffile");

    // Install it (over an earlier run's installation, if any).
    ok(Command::new("dpkg").arg("-i").arg(&deb).env("DEBIAN_FRONTEND", "noninteractive"));
    std::fs::write(MARKER, "certgate's tests/package.rs installed this package and may purge it\n").unwrap();
    assert!(installed());
    let passwd = ok(Command::new("getent").args(["passwd", "certgate"]));
    let fields: Vec<&str> = passwd.trim().split(':').collect();
    assert_eq!(fields.get(5), Some(&STATE), "home: {passwd}");
    assert_eq!(fields.get(6), Some(&"/usr/sbin/nologin"), "shell: {passwd}");
    let uid: u32 = fields[2].parse().unwrap();
    assert!(uid < 1000, "a system user: {passwd}");
    let meta = std::fs::metadata(STATE).unwrap();
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    assert_eq!((meta.uid(), meta.permissions().mode() & 0o777), (uid, 0o700), "{STATE}");
    assert_eq!(std::fs::metadata(CONFIG).unwrap().permissions().mode() & 0o777, 0o640, "{CONFIG}");

    // The unit: what systemd-analyze can check without systemd as PID 1.
    // --man=no: Documentation= names man pages, which minimal images exclude from installs.
    let verify = run(Command::new("systemd-analyze").args(["verify", "--man=no", UNIT]));
    let said = format!("{}{}", String::from_utf8_lossy(&verify.stdout), String::from_utf8_lossy(&verify.stderr));
    assert!(verify.status.success(), "systemd-analyze verify {UNIT} ({}):\n{said}", verify.status);
    assert!(!said.contains("certgate.service:"), "systemd-analyze has remarks about the unit:\n{said}");
    let security = ok(Command::new("systemd-analyze").args(["security", "--offline=true", "--no-pager", UNIT]));
    let exposure = security
        .lines()
        .find_map(|l| l.split("Overall exposure level for certgate.service:").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no exposure level in:\n{security}"));
    assert!(exposure <= 2.0, "the unit's exposure level is {exposure} (2.0 or less is 'OK'):\n{security}");
    let unit = std::fs::read_to_string(UNIT).unwrap();
    for line in [
        "User=certgate",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "PrivateTmp=yes",
        "StateDirectory=certgate",
        "CapabilityBoundingSet=\n",
        "ExecStart=/usr/bin/certgate --config /etc/certgate/certgate.toml serve",
    ] {
        assert!(unit.contains(line), "the unit lacks '{}'", line.trim());
    }

    // The completions work as installed; the man pages are roff made from the CLI definition.
    ok(Command::new("bash").args([
        "-c",
        "source /usr/share/bash-completion/completions/certgate && complete -p certgate | grep -q certgate",
    ]));
    let man = ok(Command::new("sh")
        .args(["-c", "dpkg-deb --fsys-tarfile \"$1\" | tar -xO ./usr/share/man/man1/certgate-serve.1.gz | zcat", "-"])
        .arg(&deb));
    assert!(man.contains(".TH certgate-serve") && man.contains("proxy\\-listen"), "{man}");

    // The service's command line, as the certgate user, with the packaged config (and nothing
    // from this test's environment), on free loopback ports.
    let (proxy, admin) = (format!("127.0.0.1:{}", free_port()), format!("127.0.0.1:{}", free_port()));
    let log = tempfile::NamedTempFile::new().unwrap();
    let child = Command::new("setpriv")
        .args(["--reuid=certgate", "--regid=certgate", "--init-groups", "--no-new-privs", "--"])
        .args(["/usr/bin/certgate", "--config", CONFIG, "serve", "--proxy-listen", &proxy, "--admin-listen", &admin])
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(log.reopen().unwrap())
        .stderr(log.reopen().unwrap())
        .spawn()
        .expect("start certgate serve as certgate");
    let mut service = Service(child);
    let deadline = Instant::now() + Duration::from_secs(30);
    let ready = loop {
        if let Some(v) = readyz(&admin).await {
            break Some(v);
        }
        if Instant::now() > deadline || service.0.try_wait().ok().flatten().is_some() {
            break None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let serve_log = std::fs::read_to_string(log.path()).unwrap_or_default();
    let ready = ready.unwrap_or_else(|| panic!("/readyz on {admin} did not answer 200; serve said:\n{serve_log}"));
    assert_eq!(ready["ready"], true, "{ready}");
    assert!(serve_log.contains("certgate serving"), "{serve_log}");
    // Its state went where the unit allows writes, owned by the service user, the key 0600.
    for (file, mode) in [("certgate.db", None), ("master.key", Some(0o600))] {
        let m = std::fs::metadata(Path::new(STATE).join(file))
            .unwrap_or_else(|e| panic!("{STATE}/{file}: {e}\n{serve_log}"));
        assert_eq!(m.uid(), uid, "{file} belongs to certgate");
        if let Some(mode) = mode {
            assert_eq!(m.permissions().mode() & 0o777, mode, "{file}");
        }
    }
    drop(service);

    // Purge: the user and the state go.
    ok(Command::new("dpkg").args(["--purge", "certgate"]).env("DEBIAN_FRONTEND", "noninteractive"));
    assert!(!installed());
    assert!(!Path::new(STATE).exists(), "{STATE} is left after purge");
    assert!(!run(Command::new("getent").args(["passwd", "certgate"])).status.success(), "the user is left after purge");
}
