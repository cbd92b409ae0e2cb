//! Partner certificates: the gateway records the certificate each real nginx partner presented
//! (subject, issuer, expiry, SPKI pin), exports its expiry as a gauge, keeps it in the store for
//! `certgate expiry` (loudest when the partner is trusted by a pin), and mails its alert to the
//! default contact.

use std::time::Duration;

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::support::gateway::{metric_series, wait_until, Gateway, GatewayConfig};
use crate::support::nginx::Nginx;
use crate::support::smtp::{SinkOptions, SmtpSink};
use crate::support::{Env, LeafSpec, TestCa};

fn partner_items(v: &serde_json::Value) -> Vec<serde_json::Value> {
    v["items"].as_array().unwrap().iter().filter(|i| i["kind"] == "partner-certificate").cloned().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_records_each_partner_certificate_and_expiry_warns_loudest_for_a_pinned_partner() {
    let env = Env::new();
    let partner_ca = TestCa::new("partner");
    let client_ca = TestCa::new("client");
    let root = env.file("partner-root.pem", &partner_ca.root.cert_pem);
    env.run(&["trust", "add", "partnerca", root.to_str().unwrap()]).ok();
    let alpha = client_ca.leaf(LeafSpec::client("alpha"));
    env.import_minted("alpha", &alpha, &client_ca.intermediate.cert_pem).ok();

    // Two nginx partners with short-lived server certificates: one pinned, one trusted by its CA.
    let pinned_cert =
        partner_ca.server_with(&["pinned.test"], LeafSpec::client("pinned.test").server_only().expiring_in_days(10));
    let plain_cert =
        partner_ca.server_with(&["plain.test"], LeafSpec::client("plain.test").server_only().expiring_in_days(20));
    let pinned = Nginx::start(&pinned_cert, &partner_ca, &client_ca);
    let plain = Nginx::start(&plain_cert, &partner_ca, &client_ca);
    env.run(&["bind", "pinned.test", "alpha", "--trust", "ca:partnerca", "--pin", &pinned_cert.spki_pin()]).ok();
    env.run(&["bind", "plain.test", "alpha", "--trust", "ca:partnerca"]).ok();
    let pinned_dest = format!("pinned.test:{}", pinned.port());
    let plain_dest = format!("plain.test:{}", plain.port());

    // Nothing is known of partners before the gateway met them.
    let before = env.run(&["--json", "expiry", "--within", "30d"]);
    assert!(partner_items(&before.json()).is_empty(), "{}", before.stdout);

    let sink = SmtpSink::start(SinkOptions::default());
    let t0 = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
    let mut cfg = GatewayConfig::new().resolve(&["pinned.test", "plain.test"]);
    cfg.preamble = format!("test_now = \"{}\"\n", t0.format(&Rfc3339).unwrap());
    cfg.tables = format!(
        "[alerts]\ninterval_seconds = 1\ndefault_contact = \"partners@example.com\"\n\n[alerts.smtp]\nhost = \"127.0.0.1\"\nport = {}\nsecurity = \"none\"\nfrom = \"certgate@example.com\"\n",
        sink.port
    );
    let gw = Gateway::process(&env, &cfg).await;
    for dest in [&pinned_dest, &plain_dest] {
        let r = gw.proxy_get(&format!("http://{dest}/hello")).await;
        assert_eq!(r.status, 200, "{}", r.describe());
    }

    // The gauge: when each partner's certificate expires.
    let metrics = gw.metrics_text().await;
    let series = metric_series(&metrics, "certgate_partner_certificate_expiry_timestamp_seconds");
    for (dest, cert) in [(&pinned_dest, &pinned_cert), (&plain_dest, &plain_cert)] {
        let value = series
            .iter()
            .find(|(l, _)| l.get("destination") == Some(dest))
            .map(|(_, v)| *v)
            .unwrap_or_else(|| panic!("no gauge for {dest}:\n{metrics}"));
        assert_eq!(value as i64, cert.not_after_unix(), "{dest}");
    }

    // The store: `certgate expiry` (another process) lists both, the pinned one loud.
    let listed = wait_until(Duration::from_secs(10), async || {
        let run = env.run(&["--json", "expiry", "--within", "30d"]);
        (partner_items(&run.json()).len() == 2).then_some(run)
    })
    .await
    .expect("both partner certificates are in the store within 10 s");
    assert_eq!(listed.code, 1, "exit 1: something expires within the window");
    let items = partner_items(&listed.json());
    let p = items.iter().find(|i| i["name"] == pinned_dest.as_str()).expect("the pinned partner");
    assert_eq!(p["loud"], true, "{p}");
    assert_eq!(p["id"], pinned_cert.spki_pin());
    assert!(p["subject"].as_str().unwrap().starts_with("CN=pinned.test"), "{p}");
    assert!(p["issuer"].as_str().unwrap().contains("partner"), "{p}");
    assert!(p["action"].as_str().unwrap().contains("trusted by a pin"), "{p}");
    assert!((9..=10).contains(&p["days_left"].as_i64().unwrap()), "{p}");
    let q = items.iter().find(|i| i["name"] == plain_dest.as_str()).expect("the CA-trusted partner");
    assert_eq!(q["loud"], false, "{q}");
    assert_eq!(q["id"], plain_cert.spki_pin());
    let text = env.run(&["expiry", "--within", "30d"]);
    assert!(
        text.stdout.lines().any(|l| l.starts_with("!!! partner-certificate") && l.contains(&pinned_dest)),
        "{}",
        text.stdout
    );

    // The test clock: five days on, only the pinned partner is within a 7-day window.
    let later = (t0 + time::Duration::days(5)).format(&Rfc3339).unwrap();
    let run = env.run_with_env(&["--json", "expiry", "--within", "7d"], &[("CERTGATE_TEST_NOW", &later)]);
    let names: Vec<String> =
        partner_items(&run.json()).iter().map(|i| i["name"].as_str().unwrap().to_string()).collect();
    assert_eq!(names, std::slice::from_ref(&pinned_dest), "{}", run.stdout);

    // The alert loop mails both to the default contact; the pinned one says to act now.
    let mails = wait_until(Duration::from_secs(20), async || {
        let m = sink.received();
        (m.len() >= 2).then_some(m)
    })
    .await
    .unwrap_or_else(|| panic!("two partner alerts within 20 s: {:?}", sink.received()));
    assert_eq!(mails.len(), 2, "{mails:?}");
    let loud = mails.iter().find(|m| m.subject.contains(&pinned_dest)).expect("the pinned partner's mail");
    assert_eq!(loud.to, "partners@example.com");
    assert!(loud.subject.starts_with("[act now] certgate: partner certificate"), "{}", loud.subject);
    assert!(loud.body.contains("trusted by a pin"), "{}", loud.body);
    let quiet = mails.iter().find(|m| m.subject.contains(&plain_dest)).expect("the other partner's mail");
    assert!(quiet.subject.starts_with("certgate: partner certificate"), "{}", quiet.subject);
    drop(gw);

    // After a restart, before any request: the gauge comes from the store.
    let gw = Gateway::process(&env, &cfg).await;
    let series = wait_until(Duration::from_secs(10), async || {
        let series = metric_series(&gw.metrics_text().await, "certgate_partner_certificate_expiry_timestamp_seconds");
        (series.len() == 2).then_some(series)
    })
    .await
    .expect("both partner gauges within 10 s of a restart, without a request");
    for (dest, cert) in [(&pinned_dest, &pinned_cert), (&plain_dest, &plain_cert)] {
        let value = series.iter().find(|(l, _)| l.get("destination") == Some(dest)).map(|(_, v)| *v);
        assert_eq!(value.map(|v| v as i64), Some(cert.not_after_unix()), "{dest}: {series:?}");
    }
    assert_eq!(sink.received().len(), 2, "the restart mails nothing again");
}
