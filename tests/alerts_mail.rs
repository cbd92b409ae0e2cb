//! Expiry alerts by e-mail: a real SMTP server (Python's aiosmtpd, started by the test on
//! 127.0.0.1) receives each threshold alert once, addressed to the owner's contact, and not
//! again after a restart; `certgate alert test` mails through STARTTLS with a login and a
//! private CA; a plain connection to a server beyond loopback is refused before anything is sent.

use std::time::Duration;

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::support::gateway::{wait_until, Gateway, GatewayConfig};
use crate::support::smtp::{Mail, SinkOptions, SmtpSink};
use crate::support::{Env, LeafSpec, TestCa};

const DAYS: [i64; 6] = [31, 30, 14, 7, 1, 0];
const PASSWORD: &str = "smtp-password-for-tests-7f3a";

fn contact(days: i64) -> String {
    format!("team-d{days}@example.com")
}

fn config(now: OffsetDateTime, tables: String) -> GatewayConfig {
    let mut cfg = GatewayConfig::new();
    cfg.preamble = format!("test_now = \"{}\"\n", now.format(&Rfc3339).unwrap());
    cfg.tables = tables;
    cfg
}

fn plain_smtp(port: u16) -> String {
    format!(
        "[alerts]\ninterval_seconds = 1\n\n[alerts.smtp]\nhost = \"127.0.0.1\"\nport = {port}\nsecurity = \"none\"\nfrom = \"certgate <certgate@example.com>\"\ntimeout_seconds = 10\n"
    )
}

async fn alerts_json(gw: &Gateway) -> serde_json::Value {
    gw.readyz_json().await["alerts"].clone()
}

/// (recipient, subject) of each mail, sorted.
fn pairs(mails: &[Mail]) -> Vec<(String, String)> {
    let mut out: Vec<_> = mails.iter().map(|m| (m.to.clone(), m.subject.clone())).collect();
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_threshold_alert_is_mailed_to_the_owner_once_and_not_again_after_a_restart() {
    let t0 = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap() - time::Duration::seconds(60);
    let ca = TestCa::new("mail");
    let env = Env::new();
    for days in DAYS {
        let name = format!("d{days}");
        let leaf = ca.leaf(LeafSpec::client(&name).expiring_in_days(days));
        env.import_minted(&name, &leaf, "").ok();
        env.run(&["cert", "owner", &name, "--owner", "Team Billing", "--contact", &contact(days)]).ok();
    }
    let sink = SmtpSink::start(SinkOptions::default());
    let cfg = config(t0, plain_smtp(sink.port));

    let gw = Gateway::start(&env, &cfg).await;
    let done = wait_until(Duration::from_secs(30), async || {
        (alerts_json(&gw).await["sent"].as_u64() == Some(5)).then_some(())
    })
    .await;
    if done.is_none() {
        panic!("5 alerts mailed within 30 s: {} / {:?}", alerts_json(&gw).await, sink.received());
    }
    let mails = sink.received();
    let mut expected: Vec<(String, String)> = [30, 14, 7, 1]
        .iter()
        .map(|d| {
            let when = if *d == 1 { "expires tomorrow".to_string() } else { format!("expires in {d} days") };
            (contact(*d), format!("certgate: certificate 'd{d}' {when}"))
        })
        .collect();
    expected.push((contact(0), "certgate: certificate 'd0' expires today".into()));
    expected.sort();
    assert_eq!(pairs(&mails), expected, "31 days is beyond the 30-day threshold; each other one once, to its owner");
    for m in &mails {
        assert_eq!(m.rcpt_tos.len(), 1, "{m:?}");
        assert_eq!(m.rcpt_tos[0], m.to, "the envelope goes to the contact too: {m:?}");
        assert_eq!(m.mail_from, "certgate@example.com");
        assert!(m.from.contains("certgate@example.com"), "{m:?}");
    }
    let d7 = mails.iter().find(|m| m.to == contact(7)).unwrap();
    assert!(d7.body.contains("the certificate 'd7' (CN=d7") && d7.body.contains("expires in 7 days"), "{}", d7.body);
    assert!(d7.body.contains("Days left:  7"), "{}", d7.body);
    assert!(d7.body.contains("Owner:      Team Billing"), "{}", d7.body);
    assert!(d7.body.contains("What to do: renew 'd7'"), "{}", d7.body);

    // More runs of the loop send nothing new.
    let before = alerts_json(&gw).await["last_run_at"].clone();
    wait_until(Duration::from_secs(10), async || (alerts_json(&gw).await["last_run_at"] != before).then_some(()))
        .await
        .expect("another run within 10 s");
    assert_eq!(sink.received().len(), 5);
    let metrics = gw.metrics_text().await;
    assert!(metrics.lines().any(|l| l == "certgate_alerts_sent_total{channel=\"email\"} 5"), "{metrics}");
    drop(gw);

    // A restarted serve finds them sent in the store.
    let gw = Gateway::start(&env, &cfg).await;
    wait_until(Duration::from_secs(10), async || alerts_json(&gw).await["last_run_at"].as_str().map(|_| ()))
        .await
        .expect("a first run within 10 s");
    assert_eq!(sink.received().len(), 5, "nothing repeated after the restart");
    assert_eq!(alerts_json(&gw).await["sent"], 0);
    drop(gw);

    let audit = env.run(&["--json", "audit", "--limit", "200"]);
    let rows = audit.json();
    let sent: Vec<&serde_json::Value> =
        rows.as_array().unwrap().iter().filter(|r| r["action"] == "alert.sent").collect();
    assert_eq!(sent.len(), 5, "{}", audit.stdout);
    assert!(audit.stdout.contains(&format!("sent to {}", contact(14))), "{}", audit.stdout);

    // A week later d31 crosses 30 days and d14 crosses 7: one mail each, nothing else.
    let later = config(t0 + time::Duration::days(7), plain_smtp(sink.port));
    let gw = Gateway::start(&env, &later).await;
    let next = wait_until(Duration::from_secs(20), async || (sink.received().len() >= 9).then_some(())).await;
    if next.is_none() {
        panic!("the next thresholds within 20 s: {} / {:?}", alerts_json(&gw).await, sink.received());
    }
    let before = alerts_json(&gw).await["last_run_at"].clone();
    wait_until(Duration::from_secs(10), async || (alerts_json(&gw).await["last_run_at"] != before).then_some(()))
        .await
        .expect("another run within 10 s");
    let mut newer: Vec<String> = sink.received()[5..].iter().map(|m| m.to.clone()).collect();
    newer.sort();
    let mut want = vec![contact(1), contact(14), contact(31), contact(7)];
    want.sort();
    assert_eq!(newer, want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mail_server_that_is_down_is_retried_and_shown_in_readyz_until_it_answers() {
    let t0 = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap() - time::Duration::seconds(60);
    let ca = TestCa::new("maildown");
    let env = Env::new();
    let leaf = ca.leaf(LeafSpec::client("soon").expiring_in_days(5));
    env.import_minted("soon", &leaf, "").ok();
    env.run(&["cert", "owner", "soon", "--contact", "ops@example.com"]).ok();
    // A port nobody listens on.
    let closed = crate::support::gateway::free_port();
    let gw = Gateway::start(&env, &config(t0, plain_smtp(closed))).await;
    let failing = wait_until(Duration::from_secs(20), async || {
        let a = alerts_json(&gw).await;
        (a["failing"].as_array().is_some_and(|f| !f.is_empty())).then_some(a)
    })
    .await
    .expect("the failing alert is shown in /readyz within 20 s");
    let f = &failing["failing"][0];
    assert!(f["item"].as_str().unwrap().starts_with("certificate:soon:"), "{failing}");
    assert_eq!(f["threshold_days"], 7);
    let err = f["error"].as_str().unwrap();
    assert!(err.contains("mail to ops@example.com") && err.contains(&format!("127.0.0.1:{closed}")), "{err}");
    let metrics = gw.metrics_text().await;
    assert!(metrics.lines().any(|l| l.starts_with("certgate_alerts_failed_total{channel=\"email\"}")), "{metrics}");
    drop(gw);
    let audit = env.run(&["--json", "audit", "--limit", "50"]);
    assert!(audit.stdout.contains("\"alert.failed\""), "{}", audit.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alert_test_mails_through_starttls_with_a_login_and_refuses_plain_mail_beyond_loopback() {
    let env = Env::new();
    let ca = TestCa::new("smtp-server");
    let server = ca.server(&["127.0.0.1"]);
    let cert = env.file("smtp.crt", format!("{}{}", server.cert_pem, ca.chain_pem()));
    let key = env.file("smtp.key", &server.key_pem);
    let root = env.file("smtp-ca.pem", ca.chain_pem());
    let password = env.file("smtp.password", format!("{PASSWORD}\n"));
    let sink = SmtpSink::start(SinkOptions { tls: Some((&cert, &key)), login: Some(("certgate", &password)) });
    let tables = |security: &str, host: &str, port: u16, pw: &std::path::Path| {
        format!(
            "[alerts]\ndefault_contact = \"oncall@example.com\"\n\n[alerts.smtp]\nhost = \"{host}\"\nport = {port}\nsecurity = \"{security}\"\nfrom = \"certgate@example.com\"\nusername = \"certgate\"\npassword_file = \"{}\"\nca_file = \"{}\"\ntimeout_seconds = 10\n",
            pw.display(),
            root.display()
        )
    };
    let good = env.file("good.toml", tables("starttls", "127.0.0.1", sink.port, &password));
    let run = env.run(&["--config", good.to_str().unwrap(), "alert", "test"]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("oncall@example.com: test message sent"), "{}", run.stdout);
    let got = sink.received();
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].to, "oncall@example.com");
    assert_eq!(got[0].subject, "certgate: test message");
    assert!(got[0].body.contains("test message from 'certgate alert test'"), "{}", got[0].body);
    assert!(got[0].tls && got[0].authenticated, "sent over STARTTLS after AUTH: {:?}", got[0]);
    assert!(!run.stdout.contains(PASSWORD) && !run.stderr.contains(PASSWORD));

    // A wrong password: not sent, the server's refusal named, exit 1; never the password itself.
    let wrong = env.file("wrong.password", "not-the-password\n");
    let bad = env.file("bad.toml", tables("starttls", "127.0.0.1", sink.port, &wrong));
    let run = env.run(&["--config", bad.to_str().unwrap(), "alert", "test"]);
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    assert!(run.stderr.contains("oncall@example.com: not sent") && run.stderr.contains("535"), "{}", run.stderr);
    assert!(!run.stderr.contains("not-the-password"), "{}", run.stderr);
    assert_eq!(sink.received().len(), 1);

    // No TLS towards a server beyond loopback: refused before anything is sent.
    let plain = env.file("plain.toml", tables("none", "mail.example.com", 25, &password));
    let run = env.run(&["--config", plain.to_str().unwrap(), "alert", "test"]);
    assert_eq!(run.code, 2, "{}{}", run.stdout, run.stderr);
    assert!(run.stderr.contains("security = \"none\" is allowed only to a relay on this machine"), "{}", run.stderr);

    // A server certificate the configured CAs do not vouch for: not sent.
    let other = TestCa::new("other");
    let other_root = env.file("other-ca.pem", other.chain_pem());
    let untrusted = tables("starttls", "127.0.0.1", sink.port, &password)
        .replace(root.to_str().unwrap(), other_root.to_str().unwrap());
    let untrusted = env.file("untrusted.toml", untrusted);
    let run = env.run(&["--config", untrusted.to_str().unwrap(), "alert", "test"]);
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    assert!(run.stderr.contains("oncall@example.com: not sent"), "{}", run.stderr);
    assert_eq!(sink.received().len(), 1);
}
