//! A real SMTP server for the mail tests: Python's aiosmtpd (`smtp_sink.py` beside this file) on
//! 127.0.0.1, an ephemeral port; every message it receives, as a mail client would read it.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One message the sink received.
#[derive(Clone, Debug, serde::Deserialize)]
pub struct Mail {
    pub mail_from: String,
    pub rcpt_tos: Vec<String>,
    pub from: String,
    pub to: String,
    pub subject: String,
    pub body: String,
    pub tls: bool,
    pub authenticated: bool,
}

/// STARTTLS (required) with this certificate chain and key; AUTH (required) with this login.
#[derive(Default)]
pub struct SinkOptions<'a> {
    pub tls: Option<(&'a Path, &'a Path)>,
    pub login: Option<(&'a str, &'a Path)>,
}

pub struct SmtpSink {
    pub port: u16,
    got: Arc<Mutex<Vec<Mail>>>,
    child: Child,
    stdin: Option<ChildStdin>,
}

impl SmtpSink {
    pub fn start(opts: SinkOptions<'_>) -> SmtpSink {
        super::nginx::require(
            "python3 aiosmtpd",
            "python3",
            &["-c", "import aiosmtpd"],
            "pip install aiosmtpd (scripts/test.sh installs it)",
        );
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/smtp_sink.py");
        let mut cmd = Command::new("python3");
        cmd.arg(script).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::inherit());
        if let Some((cert, key)) = opts.tls {
            cmd.arg("--cert").arg(cert).arg("--key").arg(key);
        }
        if let Some((user, file)) = opts.login {
            cmd.arg("--user").arg(user).arg("--password-file").arg(file);
        }
        let mut child = cmd.spawn().expect("start python3 smtp_sink.py");
        let stdin = child.stdin.take();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let (tx, rx) = std::sync::mpsc::channel();
        let got: Arc<Mutex<Vec<Mail>>> = Arc::default();
        let keep = got.clone();
        std::thread::spawn(move || {
            let first = lines.next().and_then(|l| l.ok()).unwrap_or_default();
            let _ = tx.send(first);
            for line in lines.map_while(Result::ok) {
                let mail: Mail = serde_json::from_str(&line).unwrap_or_else(|e| panic!("sink line {line}: {e}"));
                keep.lock().unwrap().push(mail);
            }
        });
        let first = rx.recv_timeout(Duration::from_secs(20)).expect("the SMTP sink says its port within 20 s");
        let v: serde_json::Value =
            serde_json::from_str(&first).unwrap_or_else(|_| panic!("the SMTP sink did not start: '{first}'"));
        let port = v["port"].as_u64().expect("port") as u16;
        SmtpSink { port, got, child, stdin }
    }

    pub fn received(&self) -> Vec<Mail> {
        self.got.lock().unwrap().clone()
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
