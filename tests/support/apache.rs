//! Debian's Apache httpd (`apache2`) as a partner that asks for the client certificate only for
//! one path: `<Location /secure> SSLVerifyClient require`. Over TLS 1.2 it renegotiates after
//! the request (as IIS and SAP do); over TLS 1.3 it asks by post-handshake authentication. Or,
//! with `Apache::at_handshake`, it asks during the handshake for every path.
//!
//! Started from a config generated in a temp dir, on a free 127.0.0.1 port, in the foreground.
//! Every answer carries what mod_ssl made of the client certificate as headers:
//! `X-Client-Verify`, `X-Client-S-DN`, `X-Client-Serial`, `X-Tls-Protocol`, `X-Tls-Session`
//! (`Initial` or `Resumed`); `/secure/whoami.txt`,
//! `/open/whoami.txt` and `/deeper/whoami.txt` are small static files. `/deeper` asks for
//! another cipher, which makes Apache renegotiate (again) on a TLS 1.2 connection.
//!
//! Missing software fails the test with the package to install; nothing is skipped.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{Minted, TestCa};

const BINARY: &str = "/usr/sbin/apache2";
const MODULES: &str = "/usr/lib/apache2/modules";

/// What the partner is configured to do.
pub struct ApacheSpec<'a> {
    pub server: &'a Minted,
    pub server_ca: &'a TestCa,
    /// The CA whose root the partner trusts for client certificates.
    pub client_ca_pem: String,
    /// `SSLProtocol`, e.g. `TLSv1.2` or `TLSv1.3`.
    pub protocol: &'a str,
    /// `SSLCipherSuite` (e.g. `DEFAULT@SECLEVEL=0` to accept RSA 1024 client keys).
    pub ciphers: &'a str,
    /// Ask for the certificate in the handshake for every path (not only for /secure).
    pub at_handshake: bool,
    /// `KeepAlive` (off: one request per connection, so every request is a new handshake).
    pub keep_alive: bool,
}

impl<'a> ApacheSpec<'a> {
    /// Per-path client certificates over `protocol`, trusting `client_ca`'s root.
    pub fn per_path(server: &'a Minted, server_ca: &'a TestCa, client_ca: &TestCa, protocol: &'a str) -> Self {
        ApacheSpec {
            server,
            server_ca,
            client_ca_pem: client_ca.root.cert_pem.clone(),
            protocol,
            ciphers: "DEFAULT",
            at_handshake: false,
            keep_alive: true,
        }
    }
}

pub struct Apache {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

/// Fail unless Debian's Apache httpd and its mod_ssl are installed.
pub fn require_apache() {
    assert!(
        Path::new(BINARY).exists() && Path::new(MODULES).join("mod_ssl.so").exists(),
        "Apache httpd is required ({BINARY} with mod_ssl): apt-get install apache2 (scripts/test.sh --install)"
    );
}

impl Apache {
    pub fn start(spec: &ApacheSpec<'_>) -> Apache {
        require_apache();
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        // The workers run as www-data (Apache refuses to serve as root): they read these files.
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(
            d.join("server.pem"),
            format!("{}{}", spec.server.cert_pem, spec.server_ca.intermediate.cert_pem),
        )
        .unwrap();
        std::fs::write(d.join("server.key"), &spec.server.key_pem).unwrap();
        std::fs::write(d.join("client-ca.pem"), &spec.client_ca_pem).unwrap();
        for sub in ["secure", "open", "deeper"] {
            std::fs::create_dir_all(d.join("docroot").join(sub)).unwrap();
            std::fs::write(d.join("docroot").join(sub).join("whoami.txt"), format!("{sub} ok\n")).unwrap();
        }
        let port = super::gateway::free_port();
        let p = |name: &str| d.join(name).display().to_string();
        let root = unsafe_is_root();
        let user = if root { "User www-data\nGroup www-data\n" } else { "" };
        let (vhost_verify, location_verify) =
            if spec.at_handshake { ("SSLVerifyClient require", "") } else { ("", "SSLVerifyClient require") };
        let conf = format!(
            r#"ServerRoot "{dir}"
LoadModule mpm_event_module {m}/mod_mpm_event.so
LoadModule authz_core_module {m}/mod_authz_core.so
LoadModule headers_module {m}/mod_headers.so
LoadModule ssl_module {m}/mod_ssl.so
{user}ServerName partner.test
Listen 127.0.0.1:{port}
PidFile {pid}
Mutex file:{dir} default
ErrorLog {error_log}
LogLevel info ssl:debug
StartServers 1
ServerLimit 1
ThreadsPerChild 64
MaxRequestWorkers 64
DocumentRoot {docroot}
<Directory />
    Require all granted
</Directory>
SSLSessionCache none
KeepAlive {keep_alive}
<VirtualHost 127.0.0.1:{port}>
    SSLEngine on
    SSLCertificateFile {cert}
    SSLCertificateKeyFile {key}
    SSLProtocol {protocol}
    SSLCipherSuite {ciphers}
    SSLCACertificateFile {client_ca}
    SSLVerifyDepth 3
    {vhost_verify}
    Header always set X-Client-Verify "%{{SSL_CLIENT_VERIFY}}s"
    Header always set X-Client-S-DN "%{{SSL_CLIENT_S_DN}}s"
    Header always set X-Client-Serial "%{{SSL_CLIENT_M_SERIAL}}s"
    Header always set X-Tls-Protocol "%{{SSL_PROTOCOL}}s"
    Header always set X-Tls-Session "%{{SSL_SESSION_RESUMED}}s"
    <Location /secure>
        {location_verify}
    </Location>
    # Another cipher than the connection negotiated: Apache renegotiates (again) for it.
    <Location /deeper>
        SSLVerifyClient require
        SSLCipherSuite ECDHE-ECDSA-AES128-GCM-SHA256
    </Location>
</VirtualHost>
"#,
            dir = d.display(),
            m = MODULES,
            user = user.replace("{m}", MODULES),
            pid = p("httpd.pid"),
            error_log = p("error.log"),
            docroot = p("docroot"),
            cert = p("server.pem"),
            key = p("server.key"),
            client_ca = p("client-ca.pem"),
            protocol = spec.protocol,
            ciphers = spec.ciphers,
            keep_alive = if spec.keep_alive { "On" } else { "Off" },
        );
        std::fs::write(d.join("httpd.conf"), conf).unwrap();
        let child = Command::new(BINARY)
            .arg("-f")
            .arg(p("httpd.conf"))
            .arg("-DFOREGROUND")
            // Debian's apache2 reads these from /etc/apache2/envvars when started by apache2ctl.
            .env("APACHE_RUN_DIR", d)
            .env("APACHE_LOCK_DIR", d)
            .env("APACHE_LOG_DIR", d)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(std::fs::File::create(d.join("stderr.log")).unwrap()))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {BINARY}: {e} (apt-get install apache2)"));
        let mut apache = Apache { child, port, dir };
        apache.wait_listening();
        apache
    }

    fn wait_listening(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("apache2 exited with {status} before listening\n{}", self.logs());
            }
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            assert!(Instant::now() < deadline, "apache2 did not listen within 15 s\n{}", self.logs());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Apache's error log (`LogLevel info ssl:debug`): what it did per connection.
    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }

    /// The error log once it holds `needle`, or as it is after 5 s: Apache writes a failed
    /// connection's lines after it has answered, so a client can be faster than the log.
    pub async fn error_log_with(&self, needle: &str) -> String {
        let found = super::gateway::wait_until(Duration::from_secs(5), async || {
            Some(self.error_log()).filter(|log| log.contains(needle))
        });
        found.await.unwrap_or_else(|| self.error_log())
    }

    /// Apache's error log and stderr, for failure messages.
    pub fn logs(&self) -> String {
        let read = |n: &str| std::fs::read_to_string(self.dir.path().join(n)).unwrap_or_default();
        let log = read("error.log");
        let tail: Vec<&str> = log.lines().rev().take(60).collect();
        format!(
            "--- apache error.log (last 60 lines):\n{}\n--- apache stderr:\n{}",
            tail.into_iter().rev().collect::<Vec<_>>().join("\n"),
            read("stderr.log")
        )
    }
}

fn unsafe_is_root() -> bool {
    // SAFETY: getuid has no preconditions.
    unsafe { libc::getuid() == 0 }
}

impl Drop for Apache {
    fn drop(&mut self) {
        // SIGTERM to the parent (our child, by pid) stops its workers; SIGKILL after 5 s.
        super::stop_child(&mut self.child);
        if std::thread::panicking() {
            eprintln!("{}", self.logs());
        }
    }
}
