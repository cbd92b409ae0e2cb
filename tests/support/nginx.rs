//! Debian's nginx as a partner that requires a client certificate (`ssl_verify_client on`), on a
//! free 127.0.0.1 port, from a config generated in a temp dir. Every location answers JSON with
//! what nginx made of the client certificate, so a test asserts which certificate it received:
//! `{"verify", "s_dn", "i_dn", "fingerprint" (SHA-1 hex), "serial", "escaped_cert", "protocol",
//! "sni", "uri"}` (the same values also come as `X-Client-*` headers).
//!
//! Missing tools fail the test with the package to install; nothing is skipped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{Minted, TestCa};

/// Fail unless `program args...` runs and exits 0, with "WHAT is required: INSTALL".
#[track_caller]
pub fn require(what: &str, program: &str, args: &[&str], install: &str) {
    let ok = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(ok, "{what} is required: {install}");
}

/// The nginx binary: Debian's `/usr/sbin/nginx`, else `nginx` on PATH; panics when neither.
pub fn nginx_binary() -> PathBuf {
    let debian = Path::new("/usr/sbin/nginx");
    if debian.exists() {
        return debian.to_path_buf();
    }
    let on_path = Command::new("nginx")
        .arg("-v")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(on_path, "nginx is required: apt-get install nginx");
    PathBuf::from("nginx")
}

pub struct Nginx {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Nginx {
    /// Serve `server` (leaf minted by `server_ca`, sent with its intermediate) on a free port of
    /// 127.0.0.1, requiring a client certificate that chains to `client_ca`'s root (the only
    /// certificate in `ssl_client_certificate`: clients must send their intermediate).
    pub fn start(server: &Minted, server_ca: &TestCa, client_ca: &TestCa) -> Nginx {
        Self::start_verify(server, server_ca, client_ca, "on")
    }

    /// Like `start`, with `ssl_verify_client optional`: a client without a certificate gets the
    /// JSON answer too, with `"verify": "NONE"` (so a test can assert that none was sent).
    pub fn start_optional(server: &Minted, server_ca: &TestCa, client_ca: &TestCa) -> Nginx {
        Self::start_verify(server, server_ca, client_ca, "optional")
    }

    fn start_verify(server: &Minted, server_ca: &TestCa, client_ca: &TestCa, verify: &str) -> Nginx {
        let bin = nginx_binary();
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("server.pem"), format!("{}{}", server.cert_pem, server_ca.intermediate.cert_pem))
            .unwrap();
        std::fs::write(d.join("server.key"), &server.key_pem).unwrap();
        std::fs::write(d.join("client-ca.pem"), &client_ca.root.cert_pem).unwrap();
        for sub in ["client_body", "proxy", "fastcgi", "uwsgi", "scgi"] {
            std::fs::create_dir_all(d.join(sub)).unwrap();
        }
        let port = super::gateway::free_port();
        let p = |name: &str| d.join(name).display().to_string();
        // As root, nginx would run its worker as "nobody", which cannot read this temp dir.
        let user = if running_as_root() { "user root root;\n" } else { "" };
        let json = r#"{"verify":"$ssl_client_verify","s_dn":"$ssl_client_s_dn","i_dn":"$ssl_client_i_dn","fingerprint":"$ssl_client_fingerprint","serial":"$ssl_client_serial","escaped_cert":"$ssl_client_escaped_cert","protocol":"$ssl_protocol","sni":"$ssl_server_name","uri":"$request_uri"}"#;
        let conf = format!(
            r#"{user}worker_processes 1;
error_log {error_log} info;
events {{ worker_connections 64; }}
http {{
    access_log {access_log};
    client_body_temp_path {client_body};
    proxy_temp_path {proxy};
    fastcgi_temp_path {fastcgi};
    uwsgi_temp_path {uwsgi};
    scgi_temp_path {scgi};
    server {{
        listen 127.0.0.1:{port} ssl;
        server_name _;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_client_certificate {client_ca};
        ssl_verify_client {verify};
        ssl_verify_depth 3;
        location / {{
            default_type application/json;
            add_header X-Client-Verify $ssl_client_verify always;
            add_header X-Client-S-DN $ssl_client_s_dn always;
            add_header X-Client-Fingerprint $ssl_client_fingerprint always;
            return 200 '{json}';
        }}
    }}
}}
"#,
            error_log = p("error.log"),
            access_log = p("access.log"),
            client_body = p("client_body"),
            proxy = p("proxy"),
            fastcgi = p("fastcgi"),
            uwsgi = p("uwsgi"),
            scgi = p("scgi"),
            cert = p("server.pem"),
            key = p("server.key"),
            client_ca = p("client-ca.pem"),
        );
        std::fs::write(d.join("nginx.conf"), conf).unwrap();
        let child = Command::new(&bin)
            .arg("-p")
            .arg(format!("{}/", d.display()))
            .arg("-e")
            .arg(p("error.log"))
            .arg("-c")
            .arg(p("nginx.conf"))
            .arg("-g")
            .arg(format!("daemon off; pid {};", p("nginx.pid")))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(std::fs::File::create(d.join("stderr.log")).unwrap()))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e} (nginx is required: apt-get install nginx)", bin.display()));
        let mut nginx = Nginx { child, port, dir };
        nginx.wait_listening();
        nginx
    }

    fn wait_listening(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("nginx exited with {status} before listening\n{}", self.logs());
            }
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "nginx did not listen on 127.0.0.1:{} within 10 s\n{}",
                self.port,
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// nginx's error log, access log and stderr, for failure messages.
    pub fn logs(&self) -> String {
        let read = |n: &str| std::fs::read_to_string(self.dir.path().join(n)).unwrap_or_default();
        format!(
            "--- nginx error.log:\n{}\n--- nginx access.log:\n{}\n--- nginx stderr:\n{}",
            read("error.log"),
            read("access.log"),
            read("stderr.log")
        )
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM to the master (our child, by pid) makes it stop its worker too; SIGKILL after
        // 5 s so nothing outlives the test.
        super::stop_child(&mut self.child);
        if std::thread::panicking() {
            eprintln!("{}", self.logs());
        }
    }
}

fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("Uid:")).and_then(|l| l.split_whitespace().nth(2).map(|euid| euid == "0"))
        })
        .unwrap_or(false)
}

/// Undo nginx's `$ssl_client_escaped_cert` (URL-encoded PEM).
pub fn url_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(b) = u8::from_str_radix(&text[i + 1..i + 3], 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// curl with no proxy settings from the environment or a ~/.curlrc (fails loudly when curl is
/// missing).
pub fn curl() -> Command {
    require("curl", "curl", &["--version"], "apt-get install curl");
    let mut cmd = Command::new("curl");
    cmd.arg("-q");
    for var in
        ["http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY", "no_proxy", "NO_PROXY"]
    {
        cmd.env_remove(var);
    }
    cmd.stdin(Stdio::null());
    cmd
}
