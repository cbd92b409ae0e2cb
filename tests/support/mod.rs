//! Test support: a test CA minted in code (rcgen), and a harness that runs the real `certgate`
//! binary against a fresh data directory.

#![allow(dead_code)]

pub mod apache;
pub mod api;
pub mod cluster;
pub mod gateway;
pub mod nginx;
pub mod openapi;
pub mod pg;
pub mod raw_partner;
pub mod smtp;
pub mod upstream;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SignatureAlgorithm,
};
use time::{Duration, OffsetDateTime};

/// A certificate and its key, as PEM text.
pub struct Minted {
    pub cert_pem: String,
    pub key_pem: String,
    pub der: Vec<u8>,
    pub key: KeyPair,
    pub params: CertificateParams,
}

impl Minted {
    /// SHA-256 of the DER, lowercase hex: the certificate id certgate must report.
    pub fn id(&self) -> String {
        sha256_hex(&self.der)
    }

    pub fn issuer(&self) -> Issuer<'_, &KeyPair> {
        Issuer::from_params(&self.params, &self.key)
    }

    /// The private key as PKCS#8 DER.
    pub fn key_der(&self) -> Vec<u8> {
        self.key.serialize_der()
    }

    /// SHA-1 of the DER, lowercase hex: what nginx reports as `$ssl_client_fingerprint`.
    pub fn sha1_hex(&self) -> String {
        hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, &self.der).as_ref())
    }

    /// The SPKI pin of this certificate's public key, as `certgate bind --pin` takes it:
    /// `sha256/BASE64` of the SubjectPublicKeyInfo read back from the certificate itself.
    pub fn spki_pin(&self) -> String {
        use base64::Engine;
        let (_, cert) = x509_parser::parse_x509_certificate(&self.der).expect("minted certificate parses");
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, cert.public_key().raw);
        format!("sha256/{}", base64::engine::general_purpose::STANDARD.encode(digest.as_ref()))
    }

    /// `notAfter` as Unix seconds (what the expiry gauge must report).
    pub fn not_after_unix(&self) -> i64 {
        self.params.not_after.unix_timestamp()
    }
}

pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data).as_ref())
}

/// What kind of leaf to mint.
#[derive(Clone)]
pub struct LeafSpec {
    pub cn: String,
    pub alg: &'static SignatureAlgorithm,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
    pub eku: Vec<ExtendedKeyUsagePurpose>,
}

impl LeafSpec {
    pub fn client(cn: &str) -> Self {
        let now = OffsetDateTime::now_utc();
        LeafSpec {
            cn: cn.to_string(),
            alg: &rcgen::PKCS_ECDSA_P256_SHA256,
            not_before: now - Duration::days(1),
            not_after: now + Duration::days(365),
            eku: vec![ExtendedKeyUsagePurpose::ClientAuth],
        }
    }
    pub fn expired(mut self) -> Self {
        let now = OffsetDateTime::now_utc();
        self.not_before = now - Duration::days(400);
        self.not_after = now - Duration::days(10);
        self
    }
    pub fn not_yet_valid(mut self) -> Self {
        let now = OffsetDateTime::now_utc();
        self.not_before = now + Duration::days(10);
        self.not_after = now + Duration::days(400);
        self
    }
    pub fn expiring_in_days(mut self, days: i64) -> Self {
        self.not_after = OffsetDateTime::now_utc() + Duration::days(days);
        self
    }
    pub fn server_only(mut self) -> Self {
        self.eku = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self
    }
    pub fn alg(mut self, alg: &'static SignatureAlgorithm) -> Self {
        self.alg = alg;
        self
    }
}

fn name(cn: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    dn.push(DnType::OrganizationName, "certgate tests");
    dn
}

/// A root and an intermediate, minting leaves on demand.
pub struct TestCa {
    pub root: Minted,
    pub intermediate: Minted,
    pub label: String,
}

impl TestCa {
    pub fn new(label: &str) -> Self {
        let root = Self::ca(&format!("{label} root"), None);
        let intermediate = Self::ca(&format!("{label} intermediate"), Some(&root));
        TestCa { root, intermediate, label: label.to_string() }
    }

    fn ca(cn: &str, issuer: Option<&Minted>) -> Minted {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name = name(cn);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages =
            vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        let now = OffsetDateTime::now_utc();
        params.not_before = now - Duration::days(30);
        params.not_after = now + Duration::days(3650);
        let cert = match issuer {
            None => params.self_signed(&key).unwrap(),
            Some(i) => params.signed_by(&key, &i.issuer()).unwrap(),
        };
        Minted { cert_pem: cert.pem(), key_pem: key.serialize_pem(), der: cert.der().to_vec(), key, params }
    }

    /// A partner server certificate issued by the intermediate: the names become DNS SANs (IP
    /// SANs when they parse as addresses), EKU serverAuth, CN = the first name.
    pub fn server(&self, names: &[&str]) -> Minted {
        self.server_with(names, LeafSpec::client(names.first().copied().unwrap_or("server")).server_only())
    }

    /// Like `server`, with validity and algorithm taken from `spec` (its EKU is used as given).
    pub fn server_with(&self, names: &[&str], spec: LeafSpec) -> Minted {
        let key = KeyPair::generate_for(spec.alg).unwrap();
        let sans: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(sans).unwrap();
        params.distinguished_name = name(&spec.cn);
        params.not_before = spec.not_before;
        params.not_after = spec.not_after;
        params.extended_key_usages = spec.eku.clone();
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.use_authority_key_identifier_extension = true;
        let cert = params.signed_by(&key, &self.intermediate.issuer()).unwrap();
        Minted { cert_pem: cert.pem(), key_pem: key.serialize_pem(), der: cert.der().to_vec(), key, params }
    }

    /// The intermediate then the root, as PEM: what a full-chain file carries after its leaf.
    pub fn chain_pem(&self) -> String {
        format!("{}{}", self.intermediate.cert_pem, self.root.cert_pem)
    }

    /// The root's subject CN, which error messages about a missing issuer must name.
    pub fn root_cn(&self) -> String {
        format!("{} root", self.label)
    }

    pub fn leaf(&self, spec: LeafSpec) -> Minted {
        let key = KeyPair::generate_for(spec.alg).unwrap();
        let mut params = CertificateParams::new(vec![format!("{}.client.test", spec.cn)]).unwrap();
        params.distinguished_name = name(&spec.cn);
        params.not_before = spec.not_before;
        params.not_after = spec.not_after;
        params.extended_key_usages = spec.eku.clone();
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.use_authority_key_identifier_extension = true;
        let cert = params.signed_by(&key, &self.intermediate.issuer()).unwrap();
        Minted { cert_pem: cert.pem(), key_pem: key.serialize_pem(), der: cert.der().to_vec(), key, params }
    }
}

/// The result of one CLI run.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}\nstderr: {}", self.stdout, self.stderr))
    }
    pub fn error_json(&self) -> serde_json::Value {
        serde_json::from_str(self.stderr.trim())
            .unwrap_or_else(|e| panic!("stderr is not one JSON error ({e}):\n{}", self.stderr))
    }
    #[track_caller]
    pub fn ok(&self) -> &Self {
        assert_eq!(self.code, 0, "expected success\nstdout: {}\nstderr: {}", self.stdout, self.stderr);
        self
    }
    /// A refusal: the exit code, and with --json the error code on stderr.
    #[track_caller]
    pub fn refused(&self, exit: i32, code: &str) -> &Self {
        assert_eq!(self.code, exit, "exit code\nstdout: {}\nstderr: {}", self.stdout, self.stderr);
        let err = self.error_json();
        assert_eq!(err["error"], code, "error code in {err}");
        assert!(err["message"].as_str().is_some_and(|m| !m.is_empty()), "message in {err}");
        assert!(err["hint"].as_str().is_some_and(|m| !m.is_empty()), "hint in {err}");
        self
    }
}

/// A data directory and the binary, run as a user would.
pub struct Env {
    pub dir: tempfile::TempDir,
    pub vars: Vec<(String, String)>,
}

impl Env {
    pub fn new() -> Self {
        Env { dir: tempfile::tempdir().unwrap(), vars: Vec::new() }
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn db_path(&self) -> PathBuf {
        self.data_dir().join("certgate.db")
    }

    /// Write a file in the scratch folder and return its path.
    pub fn file(&self, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, contents).unwrap();
        path
    }

    pub fn var(mut self, k: &str, v: &str) -> Self {
        self.vars.push((k.into(), v.into()));
        self
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_certgate"));
        cmd.args(args)
            .env_remove("CERTGATE_MASTER_KEY")
            .env_remove("CERTGATE_MASTER_KEY_FILE")
            .env_remove("CERTGATE_STORE")
            .env_remove("CERTGATE_CONFIG")
            .env("CERTGATE_DATA_DIR", self.data_dir())
            .env("USER", "tester")
            .stdin(Stdio::null());
        for (k, v) in &self.vars {
            cmd.env(k, v);
        }
        cmd
    }

    pub fn run(&self, args: &[&str]) -> Run {
        finish(self.command(args).output().unwrap())
    }

    pub fn run_with_env(&self, args: &[&str], vars: &[(&str, &str)]) -> Run {
        let mut cmd = self.command(args);
        for (k, v) in vars {
            cmd.env(k, v);
        }
        finish(cmd.output().unwrap())
    }

    pub fn run_with_stdin(&self, args: &[&str], input: &[u8]) -> Run {
        use std::io::Write;
        let mut child =
            self.command(args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        child.stdin.take().unwrap().write_all(input).unwrap();
        finish(child.wait_with_output().unwrap())
    }

    /// Everything a user can see of the store: certificates, anchors and the audit log.
    pub fn snapshot(&self) -> String {
        let certs = self.run(&["--json", "cert", "list"]);
        let anchors = self.run(&["--json", "trust", "list"]);
        let audit = self.run(&["--json", "audit", "--limit", "1000"]);
        format!("{}\n{}\n{}", certs.stdout, anchors.stdout, audit.stdout)
    }

    /// Import a minted leaf (cert + key PEM in one file) under `name`.
    pub fn import_minted(&self, name: &str, leaf: &Minted, extra_pem: &str) -> Run {
        let safe: String = name.chars().take(40).map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
        let path = self.file(&format!("import-{safe}.pem"), format!("{}{}{}", leaf.cert_pem, leaf.key_pem, extra_pem));
        self.run(&["--json", "cert", "import", name, path.to_str().unwrap()])
    }
}

fn finish(out: Output) -> Run {
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

pub fn fixtures() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures"))
}

/// Stop a server the test started (nginx, Apache httpd): SIGTERM to it (our child, by pid), which
/// stops its workers too, then SIGKILL after 5 s so nothing outlives the test.
pub fn stop_child(child: &mut std::process::Child) {
    let pid = child.id().to_string();
    let _ = std::process::Command::new("kill").args(["-TERM", &pid]).stderr(std::process::Stdio::null()).status();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while std::time::Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}
