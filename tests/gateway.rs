//! The egress gateway end to end: the real `certgate serve` between a client (hyper, curl, zeep)
//! and a partner (the in-process upstream or nginx). Every test asserts what the partner actually
//! received: which certificate chain, SNI, ALPN, TLS and HTTP version, path and headers.
//!
//! Names like `partner.test` reach 127.0.0.1 through `[gateway.resolve]` in the config file;
//! the partner's server certificate is issued by the "partner" test CA, which every store here
//! trusts as the anchor `partnerca`; client certificates come from the "client" test CA.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use serde_json::Value;

use crate::support::gateway::{
    free_port, metric, metric_series, read_responses, wait_until, Gateway, GatewayConfig, Resp,
};
use crate::support::nginx::{self, Nginx};
use crate::support::upstream::{self, Upstream, UpstreamConfig};
use crate::support::{Env, LeafSpec, Minted, Run, TestCa};

/// A change made with the CLI must reach the running gateway within 1 s; polled for 3 s.
const RELOAD_LIMIT: Duration = Duration::from_secs(3);
const MIB: u64 = 1 << 20;

/// A store that trusts the partner CA, and the two test CAs (also used by `renegotiation`).
pub(crate) struct World {
    pub(crate) env: Env,
    pub(crate) partner_ca: TestCa,
    pub(crate) client_ca: TestCa,
}

impl World {
    pub(crate) fn new() -> World {
        let env = Env::new();
        let partner_ca = TestCa::new("partner");
        let client_ca = TestCa::new("client");
        let root = env.file("partner-root.pem", &partner_ca.root.cert_pem);
        env.run(&["--json", "trust", "add", "partnerca", root.to_str().unwrap()]).ok();
        World { env, partner_ca, client_ca }
    }

    /// Mint a client certificate and import it under `name`, with its intermediate.
    pub(crate) fn client(&self, name: &str) -> Minted {
        let leaf = self.client_ca.leaf(LeafSpec::client(name));
        self.env.import_minted(name, &leaf, &self.client_ca.intermediate.cert_pem).ok();
        leaf
    }

    /// `certgate --json ARGS...`, which must succeed.
    pub(crate) fn cli(&self, args: &[&str]) -> Run {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let run = self.env.run(&all);
        run.ok();
        run
    }

    /// `certgate --json bind ARGS...`, which must succeed.
    pub(crate) fn bind(&self, args: &[&str]) -> Run {
        let mut all = vec!["bind"];
        all.extend_from_slice(args);
        self.cli(&all)
    }

    /// Trust `ca`'s root under `name`.
    fn trust(&self, name: &str, ca: &TestCa) {
        let path = self.env.file(&format!("anchor-{name}.pem"), &ca.root.cert_pem);
        self.cli(&["trust", "add", name, path.to_str().unwrap()]);
    }

    /// A partner for `names` (server certificate from the partner CA) that requires a client
    /// certificate from the client CA; `adjust` changes anything else.
    async fn partner(&self, names: &[&str], adjust: impl FnOnce(UpstreamConfig) -> UpstreamConfig) -> Upstream {
        let server = self.partner_ca.server(names);
        Upstream::start(adjust(UpstreamConfig::new(&server, &self.partner_ca).require_client_cert(&self.client_ca)))
            .await
    }

    async fn gateway(&self, config: GatewayConfig) -> Gateway {
        Gateway::start(&self.env, &config).await
    }

    /// A gateway that sends `partner.test` to 127.0.0.1.
    pub(crate) async fn gateway_for_partner(&self) -> Gateway {
        self.gateway(GatewayConfig::new().resolve(&["partner.test"])).await
    }

    /// `gateway_for_partner` as a child process: for signals and `/metrics` values.
    async fn gateway_process_for_partner(&self) -> Gateway {
        Gateway::process(&self.env, &GatewayConfig::new().resolve(&["partner.test"])).await
    }
}

fn same<T>(t: T) -> T {
    t
}

fn url(port: u16, path: &str) -> String {
    format!("http://partner.test:{port}{path}")
}

/// The client certificate (SHA-256 of the leaf) on the partner's last request.
fn last_cert(up: &Upstream) -> Option<String> {
    up.last_request().and_then(|r| r.client_cert_sha256())
}

#[track_caller]
fn assert_partner_got(up: &Upstream, cert: &Minted, resp: &Resp) {
    let echo = resp.echo();
    assert_eq!(echo["client_cert_sha256"], cert.id(), "certificate in the echo: {}", up.describe());
    assert_eq!(last_cert(up), Some(cert.id()), "certificate the partner recorded: {}", up.describe());
}

// ---------------------------------------------------------------------------------------------
// Matching destinations

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxies_each_host_with_the_certificate_bound_to_it() {
    let w = World::new();
    let alpha = w.client("alpha");
    let beta = w.client("beta");
    let up = w.partner(&["partner.test", "other.test"], same).await;
    w.bind(&["partner.test", "alpha"]);
    w.bind(&["other.test", "beta"]);
    let gw = w.gateway(GatewayConfig::new().resolve(&["partner.test", "other.test"])).await;

    let r = gw.proxy_get(&url(up.port(), "/echo?n=1")).await;
    assert_partner_got(&up, &alpha, &r);
    let seen = up.last_request().unwrap();
    assert_eq!(seen.sni.as_deref(), Some("partner.test"), "SNI is sent for DNS names");
    assert_eq!(seen.path, "/echo?n=1");
    assert_eq!(seen.method, "GET");
    assert_eq!(seen.client_chain.len(), 2, "leaf and intermediate");

    let r = gw.proxy_get(&format!("http://other.test:{}/echo", up.port())).await;
    assert_partner_got(&up, &beta, &r);
    assert_eq!(up.last_request().unwrap().sni.as_deref(), Some("other.test"));
    assert_eq!(up.request_count(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn absolute_https_target_is_handled_like_http() {
    let w = World::new();
    let alpha = w.client("alpha");
    let up = w.partner(&["partner.test"], same).await;
    w.bind(&["partner.test", "alpha"]);
    let gw = w.gateway_for_partner().await;

    let r = gw.proxy_get(&format!("https://partner.test:{}/echo?via=https", up.port())).await;
    assert_partner_got(&up, &alpha, &r);
    assert_eq!(up.last_request().unwrap().path, "/echo?via=https");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_and_port_binding_beats_host_binding() {
    let w = World::new();
    let alpha = w.client("alpha");
    let beta = w.client("beta");
    let one = w.partner(&["partner.test"], same).await;
    let two = w.partner(&["partner.test"], same).await;
    // The more specific binding is made first, so "last one wins" would fail too.
    w.bind(&[&format!("partner.test:{}", two.port()), "beta"]);
    w.bind(&["partner.test", "alpha"]);
    let gw = w.gateway_for_partner().await;

    let r = gw.proxy_get(&url(two.port(), "/echo")).await;
    assert_partner_got(&two, &beta, &r);
    let r = gw.proxy_get(&url(one.port(), "/echo")).await;
    assert_partner_got(&one, &alpha, &r);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wildcard_binding_covers_any_depth_and_the_longest_suffix_wins() {
    let w = World::new();
    let wide = w.client("wide");
    let narrow = w.client("narrow");
    let names = ["partner.test", "a.partner.test", "c.d.partner.test", "b.x.partner.test", "e.f.x.partner.test"];
    let up = w.partner(&names, same).await;
    w.bind(&["*.x.partner.test", "narrow"]);
    w.bind(&["*.partner.test", "wide"]);
    let gw = w.gateway(GatewayConfig::new().resolve(&names)).await;

    for (host, cert) in [
        ("a.partner.test", &wide),
        ("c.d.partner.test", &wide),
        ("b.x.partner.test", &narrow),
        ("e.f.x.partner.test", &narrow),
    ] {
        let r = gw.proxy_get(&format!("http://{host}:{}/echo", up.port())).await;
        assert_eq!(r.status, 200, "{host}: {}", r.describe());
        assert_eq!(
            last_cert(&up),
            Some(cert.id()),
            "{host} must use {}",
            if cert.id() == wide.id() { "wide" } else { "narrow" }
        );
        assert_eq!(up.last_request().unwrap().sni.as_deref(), Some(host));
    }
    // `*.partner.test` is for names below partner.test, not partner.test itself.
    let before = up.request_count();
    let r = gw.proxy_get(&url(up.port(), "/echo")).await;
    r.gateway_error(403, "no-binding");
    assert_eq!(up.request_count(), before, "nothing reached the partner");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn named_service_appends_path_and_query_to_its_base_url() {
    let w = World::new();
    let alpha = w.client("alpha");
    let up = w.partner(&["partner.test"], same).await;
    let base = format!("https://partner.test:{}/echo/base", up.port());
    w.cli(&["service", "add", "Billing.InvoiceService", "--url", &base, "--cert", "alpha"]);
    let gw = w.gateway_for_partner().await;

    let r = gw.service("GET", "Billing.InvoiceService", "/rest/items?x=1&y=two%20words", &[], Bytes::new()).await;
    assert_partner_got(&up, &alpha, &r);
    assert_eq!(up.last_request().unwrap().path, "/echo/base/rest/items?x=1&y=two%20words");

    let r = gw
        .service("POST", "Billing.InvoiceService", "?op=create", &[("content-type", "text/plain")], "twelve bytes")
        .await;
    assert_partner_got(&up, &alpha, &r);
    let seen = up.last_request().unwrap();
    assert_eq!(seen.path, "/echo/base?op=create");
    assert_eq!(seen.method, "POST");
    assert_eq!(seen.body_len, 12);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn named_service_with_root_base_reaches_the_partner_path() {
    let w = World::new();
    let alpha = w.client("alpha");
    let up = w.partner(&["partner.test"], same).await;
    let base = format!("https://partner.test:{}", up.port());
    w.cli(&["service", "add", "echo", "--url", &base, "--cert", "alpha"]);
    let gw = w.gateway_for_partner().await;

    let r = gw.service("GET", "echo", "/echo?q=a%2Fb", &[], Bytes::new()).await;
    assert_partner_got(&up, &alpha, &r);
    assert_eq!(up.last_request().unwrap().path, "/echo?q=a%2Fb");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_cert_binding_sends_no_certificate_when_the_partner_asks_for_one() {
    let w = World::new();
    w.client("alpha");
    let up = w.partner(&["partner.test"], |c| c.optional_client_cert(&w.client_ca)).await;
    // A wildcard with a certificate covers partner.test too; the exact --no-cert binding wins.
    w.bind(&["*.test", "alpha"]);
    w.bind(&["partner.test", "--no-cert"]);
    let gw = w.gateway_for_partner().await;

    let r = gw.proxy_get(&url(up.port(), "/echo")).await;
    let echo = r.echo();
    assert_eq!(echo["client_cert_sha256"], Value::Null, "{}", up.describe());
    assert!(up.last_request().unwrap().client_chain.is_empty(), "the partner received a certificate");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_cert_binding_to_a_partner_that_requires_one_reports_certificate_required() {
    let w = World::new();
    let up = w.partner(&["partner.test"], |c| c.tls13_only()).await;
    w.bind(&["partner.test", "--no-cert"]);
    let gw = w.gateway_for_partner().await;

    let r = gw.proxy_get(&url(up.port(), "/echo")).await;
    r.gateway_error(502, "upstream-rejected-certificate");
    assert!(r.message().contains("certificate_required"), "the alert is named: {}", r.describe());
    assert_eq!(up.request_count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unbound_destination_is_refused_with_no_binding() {
    let w = World::new();
    w.client("alpha");
    let up = w.partner(&["partner.test", "other.test"], same).await;
    w.bind(&["other.test", "alpha"]);
    let gw = w.gateway_for_partner().await;

    let r = gw.proxy_get(&url(up.port(), "/echo")).await;
    let body = r.gateway_error(403, "no-binding");
    assert!(body["message"].as_str().unwrap().contains("partner.test"), "names the destination: {body}");
    assert!(body["hint"].as_str().unwrap().contains("bind"), "says how to bind it: {body}");
    assert_eq!(up.request_count(), 0);
    assert_eq!(up.handshakes().full + up.handshakes().resumed, 0, "the gateway did not even connect");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unbound_destination_gets_plain_tls_when_allow_unbound_is_set() {
    let w = World::new();
    w.client("alpha");
    let up = w.partner(&["partner.test"], |c| c.optional_client_cert(&w.client_ca)).await;
    w.bind(&["other.test", "alpha"]);
    let gw = w.gateway(GatewayConfig::new().resolve(&["partner.test"]).allow_unbound()).await;

    let r = gw.proxy_get(&url(up.port(), "/echo")).await;
    let echo = r.echo();
    assert_eq!(echo["client_cert_sha256"], Value::Null, "no certificate for an unbound host");
    assert_eq!(echo["sni"], "partner.test");
    assert!(up.last_request().unwrap().client_chain.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_is_refused_with_connect_not_supported() {
    let w = World::new();
    w.client("alpha");
    w.bind(&["partner.test", "alpha"]);
    let gw = w.gateway_for_partner().await;

    let r = gw.connect("partner.test:443").await;
    r.gateway_error(501, "connect-not-supported");
}

// ---------------------------------------------------------------------------------------------
// Verifying the partner

/// Bind partner.test to alpha with `bind_extra`, serve it with a certificate from `server_ca`,
/// and make one request.
async fn request_partner_signed_by(w: &World, server_ca: &TestCa, bind_extra: &[&str]) -> (Upstream, Resp) {
    w.client("alpha");
    let server = server_ca.server(&["partner.test"]);
    let up = Upstream::start(UpstreamConfig::new(&server, server_ca).require_client_cert(&w.client_ca)).await;
    let mut args = vec!["partner.test", "alpha"];
    args.extend_from_slice(bind_extra);
    w.bind(&args);
    let gw = w.gateway_for_partner().await;
    let r = gw.proxy_get(&url(up.port(), "/echo")).await;
    (up, r)
}

#[track_caller]
fn assert_untrusted_naming(up: &Upstream, r: &Resp, missing: &TestCa) {
    r.gateway_error(502, "upstream-untrusted");
    assert!(
        r.message().contains(&missing.root_cn()),
        "the message names the missing issuer '{}': {}",
        missing.root_cn(),
        r.describe()
    );
    assert_eq!(up.request_count(), 0, "nothing was sent to an untrusted partner");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_trust_accepts_a_partner_signed_by_a_certgate_anchor() {
    let w = World::new();
    let (up, r) = request_partner_signed_by(&w, &w.partner_ca, &["--trust", "public"]).await;
    assert_eq!(r.status, 200, "{}", r.describe());
    assert_eq!(up.request_count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_public_trust_refuses_a_partner_from_an_unknown_ca_naming_the_missing_issuer() {
    let w = World::new();
    let stranger = TestCa::new("stranger");
    let (up, r) = request_partner_signed_by(&w, &stranger, &[]).await;
    assert_untrusted_naming(&up, &r, &stranger);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_trust_accepts_a_partner_signed_by_an_anchor() {
    let w = World::new();
    let (up, r) = request_partner_signed_by(&w, &w.partner_ca, &["--trust", "private"]).await;
    assert_eq!(r.status, 200, "{}", r.describe());
    assert_eq!(up.request_count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_trust_refuses_a_partner_from_an_unknown_ca_naming_the_missing_issuer() {
    let w = World::new();
    let stranger = TestCa::new("stranger");
    let (up, r) = request_partner_signed_by(&w, &stranger, &["--trust", "private"]).await;
    assert_untrusted_naming(&up, &r, &stranger);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ca_trust_accepts_a_partner_signed_by_one_of_the_named_anchors() {
    let w = World::new();
    w.trust("otherca", &TestCa::new("other"));
    let (up, r) = request_partner_signed_by(&w, &w.partner_ca, &["--trust", "ca:otherca,partnerca"]).await;
    assert_eq!(r.status, 200, "{}", r.describe());
    assert_eq!(up.request_count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ca_trust_refuses_a_partner_signed_by_an_anchor_it_does_not_name() {
    let w = World::new();
    w.trust("otherca", &TestCa::new("other"));
    // partnerca is trusted by the store, but this binding trusts only otherca.
    let (up, r) = request_partner_signed_by(&w, &w.partner_ca, &["--trust", "ca:otherca"]).await;
    assert_untrusted_naming(&up, &r, &w.partner_ca);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_a_partner_whose_certificate_is_for_another_name() {
    let w = World::new();
    w.client("alpha");
    let up = w.partner(&["elsewhere.test"], same).await;
    w.bind(&["partner.test", "alpha"]);
    let gw = w.gateway_for_partner().await;

    let r = gw.proxy_get(&url(up.port(), "/echo")).await;
    r.gateway_error(502, "upstream-name-mismatch");
    assert!(r.message().contains("partner.test"), "{}", r.describe());
    assert_eq!(up.request_count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sni_override_is_sent_and_verified_instead_of_the_host() {
    let w = World::new();
    let alpha = w.client("alpha");
    let up = w.partner(&["sni.partner.test"], same).await;
    w.bind(&["partner.test", "alpha", "--sni", "sni.partner.test"]);
    let gw = w.gateway_for_partner().await;

    let r = gw.proxy_get(&url(up.port(), "/echo")).await;
    assert_partner_got(&up, &alpha, &r);
    assert_eq!(up.last_request().unwrap().sni.as_deref(), Some("sni.partner.test"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pin_matching_the_partner_key_is_accepted() {
    let w = World::new();
    let alpha = w.client("alpha");
    let server = w.partner_ca.server(&["partner.test"]);
    let up = Upstream::start(UpstreamConfig::new(&server, &w.partner_ca).require_client_cert(&w.client_ca)).await;
    let unrelated = w.partner_ca.server(&["partner.test"]);
    w.bind(&["partner.test", "alpha", "--pin", &unrelated.spki_pin(), "--pin", &server.spki_pin()]);
    let gw = w.gateway_for_partner().await;

    let r = gw.proxy_get(&url(up.port(), "/echo")).await;
    assert_partner_got(&up, &alpha, &r);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pin_not_matching_the_partner_key_is_refused() {
    let w = World::new();
    w.client("alpha");
    let up = w.partner(&["partner.test"], same).await;
    let unrelated = w.partner_ca.server(&["partner.test"]);
    w.bind(&["partner.test", "alpha", "--pin", &unrelated.spki_pin()]);
    let gw = w.gateway_for_partner().await;

    let r = gw.proxy_get(&url(up.port(), "/echo")).await;
    r.gateway_error(502, "upstream-untrusted");
    assert!(r.message().contains("pin"), "says a pin did not match: {}", r.describe());
    assert_eq!(up.request_count(), 0);
}

// ---------------------------------------------------------------------------------------------
// Protocols

async fn echo_with(adjust: impl FnOnce(UpstreamConfig) -> UpstreamConfig) -> upstream::Recorded {
    let w = World::new();
    let alpha = w.client("alpha");
    let up = w.partner(&["partner.test"], adjust).await;
    w.bind(&["partner.test", "alpha"]);
    let gw = w.gateway_for_partner().await;
    let r = gw.proxy_get(&url(up.port(), "/echo")).await;
    assert_partner_got(&up, &alpha, &r);
    up.last_request().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn talks_to_a_tls12_only_partner() {
    let seen = echo_with(|c| c.tls12_only()).await;
    assert_eq!(seen.tls_version, "TLSv1.2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn talks_to_a_tls13_only_partner() {
    let seen = echo_with(|c| c.tls13_only()).await;
    assert_eq!(seen.tls_version, "TLSv1.3");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uses_http2_when_the_partner_offers_h2() {
    let seen = echo_with(same).await;
    assert_eq!(seen.alpn.as_deref(), Some("h2"));
    assert_eq!(seen.http_version, "HTTP/2.0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uses_http11_when_the_partner_offers_only_http11() {
    let seen = echo_with(|c| c.http11_only()).await;
    assert_ne!(seen.alpn.as_deref(), Some("h2"));
    assert_eq!(seen.http_version, "HTTP/1.1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_a_64_mib_upload_without_buffering_it_whole() {
    const TOTAL: u64 = 64 * MIB;
    const CHUNK: usize = 64 * 1024;
    let w = World::new();
    let alpha = w.client("alpha");
    let up = w.partner(&["partner.test"], same).await;
    w.bind(&["partner.test", "alpha"]);
    let gw = w.gateway_for_partner().await;

    let chunk = Bytes::from(upstream::pattern(0, CHUNK));
    let chunks = (TOTAL / CHUNK as u64) as usize;
    let mut expected = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    for _ in 0..chunks {
        expected.update(&chunk);
    }
    let expected = hex::encode(expected.finish().as_ref());

    let (tx, body) = upstream::body_channel(8);
    let req = Request::post(url(up.port(), "/echo"))
        .header("host", format!("partner.test:{}", up.port()))
        .header("content-type", "application/octet-stream")
        .header("content-length", TOTAL.to_string())
        .body(body)
        .unwrap();
    let client = gw.client();
    let pending = tokio::spawn(async move { client.send(client.proxy, req).await });

    let first_half = async {
        for _ in 0..chunks / 2 {
            tx.send(chunk.clone()).await.expect("the gateway stopped reading the upload");
        }
    };
    tokio::time::timeout(Duration::from_secs(30), first_half)
        .await
        .unwrap_or_else(|_| panic!("the gateway did not take the first 32 MiB within 30 s\n{}", gw.log()));
    // The partner must see a good part of the body before the client has sent the rest.
    let flowing = wait_until(Duration::from_secs(15), async || (up.upload_progress() >= 8 * MIB).then_some(())).await;
    assert!(
        flowing.is_some(),
        "after 32 MiB sent, the partner had only {} bytes: the gateway holds the upload back\n{}",
        up.upload_progress(),
        gw.log()
    );
    let second_half = async {
        for _ in chunks / 2..chunks {
            tx.send(chunk.clone()).await.expect("the gateway stopped reading the upload");
        }
    };
    tokio::time::timeout(Duration::from_secs(30), second_half).await.expect("second half of the upload");
    drop(tx);

    let r = pending.await.expect("upload task");
    let echo = r.echo();
    assert_eq!(echo["body_len"], TOTAL);
    assert_eq!(echo["body_sha256"], expected, "the body arrived intact");
    assert_eq!(last_cert(&up), Some(alpha.id()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_a_64_mib_download_without_buffering_it_whole() {
    const TOTAL: u64 = 64 * MIB;
    let w = World::new();
    let alpha = w.client("alpha");
    let up = w.partner(&["partner.test"], same).await;
    w.bind(&["partner.test", "alpha"]);
    let gw = w.gateway_for_partner().await;

    // The partner sends 32 MiB, then waits for `release`, which comes only once the client has
    // read 8 MiB: a gateway that buffers the whole response never lets that happen.
    let req = Request::get(url(up.port(), &format!("/big?bytes={TOTAL}&pause_after={}", 32 * MIB)))
        .header("host", format!("partner.test:{}", up.port()))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let resp = gw.send_streaming(gw.proxy, req).await;
    assert_eq!(resp.status(), 200, "{}", gw.log());
    let mut body = resp.into_body();
    let mut got = 0u64;
    let mut released = false;
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(15), body.frame()).await.unwrap_or_else(|_| {
            panic!(
                "no data for 15 s after {got} bytes{}\n{}",
                if released {
                    ""
                } else {
                    " (the partner holds the rest until the client has 8 MiB: the gateway buffers the response)"
                },
                gw.log()
            )
        });
        let Some(frame) = frame else { break };
        let frame = frame.unwrap_or_else(|e| panic!("download failed after {got} bytes: {e}\n{}", gw.log()));
        if let Some(data) = frame.data_ref() {
            assert!(data[..] == upstream::pattern(got, data.len())[..], "wrong bytes at offset {got}");
            got += data.len() as u64;
        }
        if !released && got >= 8 * MIB {
            up.release();
            released = true;
        }
    }
    assert_eq!(got, TOTAL);
    assert_eq!(last_cert(&up), Some(alpha.id()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_partner_response_headers_time_out_with_504() {
    let w = World::new();
    w.client("alpha");
    let up = w.partner(&["partner.test"], same).await;
    w.bind(&["partner.test", "alpha"]);
    let gw = w.gateway(GatewayConfig::new().resolve(&["partner.test"]).response_header_timeout_ms(500)).await;

    let r = gw.proxy_get(&url(up.port(), "/slow?ms=50")).await;
    assert_eq!(r.status, 200, "a partner faster than the timeout is fine: {}", r.describe());

    let started = Instant::now();
    let r = gw.proxy_get(&url(up.port(), "/slow?ms=8000")).await;
    let took = started.elapsed();
    r.gateway_error(504, "upstream-timeout");
    assert!(took < Duration::from_secs(5), "the 500 ms timeout took {took:?}");
    assert_eq!(up.request_count(), 2, "the slow request did reach the partner");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_partner_connection_is_reported_as_upstream_connect_failed() {
    let w = World::new();
    w.client("alpha");
    let port = free_port();
    w.bind(&[&format!("partner.test:{port}"), "alpha"]);
    let gw = w.gateway(GatewayConfig::new().resolve(&["partner.test"]).connect_timeout_ms(2000)).await;

    let r = gw.proxy_get(&url(port, "/echo")).await;
    r.gateway_error(502, "upstream-connect-failed");
    assert!(r.message().contains(&port.to_string()), "names where it tried to connect: {}", r.describe());
}

async fn rejected_by_a_partner_requiring_another_ca(adjust: impl FnOnce(UpstreamConfig) -> UpstreamConfig) {
    let w = World::new();
    w.client("alpha");
    let other = TestCa::new("other clients");
    let server = w.partner_ca.server(&["partner.test"]);
    let up = Upstream::start(adjust(UpstreamConfig::new(&server, &w.partner_ca).require_client_cert(&other))).await;
    w.bind(&["partner.test", "alpha"]);
    let gw = w.gateway_for_partner().await;

    let r = gw.proxy_get(&url(up.port(), "/echo")).await;
    r.gateway_error(502, "upstream-rejected-certificate");
    assert!(r.message().contains("unknown_ca"), "names the partner's alert: {}", r.describe());
    assert_eq!(up.request_count(), 0);
    assert!(!up.failures().is_empty(), "the partner refused a handshake: {}", up.describe());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partner_rejecting_the_certificate_over_tls13_is_reported_with_its_alert() {
    rejected_by_a_partner_requiring_another_ca(|c| c.tls13_only()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partner_rejecting_the_certificate_over_tls13_with_http11_is_reported_with_its_alert() {
    rejected_by_a_partner_requiring_another_ca(|c| c.tls13_only().http11_only()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partner_rejecting_the_certificate_over_tls12_is_reported_with_its_alert() {
    rejected_by_a_partner_requiring_another_ca(|c| c.tls12_only()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_client_certificate_is_refused_before_it_is_sent() {
    let w = World::new();
    let lapsed = w.client_ca.leaf(LeafSpec::client("lapsed").expired());
    w.env.import_minted("lapsed", &lapsed, &w.client_ca.intermediate.cert_pem).ok();
    let up = w.partner(&["partner.test"], same).await;
    w.bind(&["partner.test", "lapsed"]);
    let gw = w.gateway_for_partner().await;

    let r = gw.proxy_get(&url(up.port(), "/echo")).await;
    r.gateway_error(502, "client-certificate-expired");
    assert!(r.message().contains("lapsed"), "names the certificate: {}", r.describe());
    assert_eq!(up.request_count(), 0);
    assert_eq!(up.handshakes().full + up.handshakes().resumed, 0, "{}", up.describe());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strips_proxy_authorization_certgate_and_hop_by_hop_headers() {
    let w = World::new();
    let alpha = w.client("alpha");
    let up = w.partner(&["partner.test"], |c| c.http11_only()).await;
    w.bind(&["partner.test", "alpha"]);
    let gw = w.gateway_for_partner().await;

    let r = gw
        .proxy(
            "GET",
            &url(up.port(), "/echo"),
            &[
                ("proxy-authorization", "Basic YXBwOnNlY3JldA=="),
                ("certgate-trace", "abc"),
                ("certgate-debug", "1"),
                ("connection", "keep-alive, x-hop-secret"),
                ("x-hop-secret", "only for the next hop"),
                ("keep-alive", "timeout=5"),
                ("proxy-connection", "keep-alive"),
                ("x-kept", "yes"),
                ("soapaction", "\"urn:example#Op\""),
            ],
            Bytes::new(),
        )
        .await;
    assert_partner_got(&up, &alpha, &r);
    let seen = up.last_request().unwrap();
    for gone in
        ["proxy-authorization", "certgate-trace", "certgate-debug", "x-hop-secret", "keep-alive", "proxy-connection"]
    {
        assert_eq!(seen.header(gone), None, "{gone} was forwarded: {:?}", seen.headers);
    }
    assert_eq!(seen.header("x-kept"), Some("yes"), "{:?}", seen.headers);
    assert_eq!(seen.header("soapaction"), Some("\"urn:example#Op\""));
    assert_eq!(seen.header("host"), Some(format!("partner.test:{}", up.port()).as_str()));
}

// ---------------------------------------------------------------------------------------------
// The chain sent, and connections

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_leaf_and_intermediate_but_never_the_root() {
    let w = World::new();
    let full = w.client_ca.leaf(LeafSpec::client("full"));
    w.env.import_minted("full", &full, &w.client_ca.chain_pem()).ok();
    let up = w.partner(&["partner.test"], same).await;
    w.bind(&["partner.test", "full"]);
    let gw = w.gateway_for_partner().await;

    let r = gw.proxy_get(&url(up.port(), "/echo")).await;
    assert_eq!(r.status, 200, "{}", r.describe());
    let chain = up.last_request().unwrap().client_chain;
    assert_eq!(chain, vec![full.der.clone(), w.client_ca.intermediate.der.clone()]);
}

async fn assert_chain_completed(w: &World, leaf: &Minted, name: &str) {
    let up = w.partner(&["partner.test"], same).await;
    w.bind(&["partner.test", name]);
    let gw = w.gateway_for_partner().await;
    let r = gw.proxy_get(&url(up.port(), "/echo")).await;
    assert_eq!(r.status, 200, "a partner trusting only the root accepts the completed chain: {}", r.describe());
    let chain = up.last_request().unwrap().client_chain;
    assert_eq!(chain.len(), 2, "leaf + intermediate, no root");
    assert_eq!(chain[0], leaf.der);
    assert_eq!(chain[1], w.client_ca.intermediate.der);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completes_the_chain_from_a_trust_anchor_bundle_when_the_import_lacked_the_intermediate() {
    let w = World::new();
    let bundle = w.env.file("client-cas.pem", w.client_ca.chain_pem());
    w.cli(&["trust", "add", "client-cas", bundle.to_str().unwrap()]);
    let bare = w.client_ca.leaf(LeafSpec::client("bare"));
    w.env.import_minted("bare", &bare, "").ok();
    assert_chain_completed(&w, &bare, "bare").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completes_the_chain_from_another_import_when_the_import_lacked_the_intermediate() {
    let w = World::new();
    w.client("with-chain");
    let bare = w.client_ca.leaf(LeafSpec::client("bare"));
    w.env.import_minted("bare", &bare, "").ok();
    assert_chain_completed(&w, &bare, "bare").await;
}

async fn assert_sessions_resumed(adjust: impl FnOnce(UpstreamConfig) -> UpstreamConfig) {
    let w = World::new();
    let alpha = w.client("alpha");
    // HTTP/1.1 with `Connection: close` on every response: each request needs a new connection.
    let up = w.partner(&["partner.test"], |c| adjust(c.http11_only().close_after_each_response())).await;
    w.bind(&["partner.test", "alpha"]);
    // A process of its own: the handshake counter below is this gateway's alone.
    let gw = w.gateway_process_for_partner().await;

    for i in 0..6 {
        let r = gw.proxy_get(&url(up.port(), &format!("/echo?i={i}"))).await;
        assert_partner_got(&up, &alpha, &r);
    }
    let hs = up.handshakes();
    assert_eq!(hs.full + hs.resumed, 6, "one connection per request: {}", up.describe());
    assert!(hs.resumed >= 4, "sessions were not resumed: {hs:?}");
    let metrics = gw.metrics_text().await;
    let resumed = metric(&metrics, "certgate_upstream_handshakes_total", &[("resumed", "true")]).unwrap_or(0.0);
    assert!(resumed >= 4.0, "certgate_upstream_handshakes_total{{resumed=\"true\"}} = {resumed}\n{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resumes_tls13_sessions_across_new_connections() {
    assert_sessions_resumed(|c| c.tls13_only()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resumes_tls12_sessions_across_new_connections() {
    assert_sessions_resumed(|c| c.tls12_only()).await;
}

/// A partner connection left idle longer than `idle_timeout_ms` is closed by certgate (the
/// partner sees it go), and the next request opens a new one; within the timeout, requests reuse
/// it. HTTP/1.1 and HTTP/2 partners alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_partner_connections_are_closed_after_the_idle_timeout() {
    for h2 in [false, true] {
        let w = World::new();
        let alpha = w.client("alpha");
        let up = w.partner(&["partner.test"], |c| if h2 { c } else { c.http11_only() }).await;
        w.bind(&["partner.test", "alpha"]);
        let gw = w.gateway(GatewayConfig::new().resolve(&["partner.test"]).set("idle_timeout_ms", 600)).await;
        let version = if h2 { "HTTP/2.0" } else { "HTTP/1.1" };

        for i in 0..3 {
            let r = gw.proxy_get(&url(up.port(), &format!("/echo?i={i}"))).await;
            assert_partner_got(&up, &alpha, &r);
        }
        assert_eq!(up.last_request().unwrap().http_version, version);
        let hs = up.handshakes();
        assert_eq!(hs.full + hs.resumed, 1, "{version}: three requests in a row share one connection: {hs:?}");
        assert_eq!(up.open_connections(), 1, "{version}");

        let idle = Instant::now();
        let closed = wait_until(Duration::from_secs(10), async || (up.open_connections() == 0).then_some(())).await;
        assert!(closed.is_some(), "{version}: the idle connection is still open after {:?}", idle.elapsed());
        assert!(idle.elapsed() >= Duration::from_millis(500), "{version}: closed after {:?}", idle.elapsed());

        let r = gw.proxy_get(&url(up.port(), "/echo?after=idle")).await;
        assert_partner_got(&up, &alpha, &r);
        let hs = up.handshakes();
        assert_eq!(hs.full + hs.resumed, 2, "{version}: a new connection after the idle one was closed: {hs:?}");
    }
}

/// Connections beyond `max_idle_per_host` are not closed the moment they come back: a second
/// wave of requests right after the first reuses them; what stays idle beyond the limit is
/// closed about a second later, down to the limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wave_of_requests_reuses_the_connections_of_the_last_and_the_surplus_closes_later() {
    const WAVE: usize = 16;
    const LIMIT: usize = 2;
    let workers = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1).clamp(1, 64);
    let w = World::new();
    let alpha = w.client("alpha");
    let up = w.partner(&["partner.test"], |c| c.http11_only()).await;
    w.bind(&["partner.test", "alpha"]);
    let gw = w.gateway(GatewayConfig::new().resolve(&["partner.test"]).set("max_idle_per_host", LIMIT)).await;
    let client = gw.client();
    let mut opened = Vec::new();
    for wave in 0..2 {
        let requests: Vec<_> = (0..WAVE)
            .map(|i| {
                let (client, url) = (client.clone(), url(up.port(), &format!("/slow?ms=300&wave={wave}&i={i}")));
                tokio::spawn(async move { client.proxy_get(&url).await })
            })
            .collect();
        for r in requests {
            assert_partner_got(&up, &alpha, &r.await.unwrap());
        }
        let hs = up.handshakes();
        opened.push((hs.full + hs.resumed) as usize);
    }
    assert_eq!(up.request_count(), 2 * WAVE);
    assert_eq!(opened[0], WAVE, "the first wave needs one connection per request");
    // Each application request is a new connection to certgate, landing on either proxy worker
    // (each with its own pool), so the second wave opens about as many as the two waves split
    // differently. Closing all beyond the limit at once would open WAVE - LIMIT * workers or more.
    let again = opened[1] - opened[0];
    assert!(again < WAVE / 2, "the second wave opened {again} new connections ({opened:?})");
    let trimmed =
        wait_until(Duration::from_secs(6), async || (up.open_connections() as usize <= LIMIT * workers).then_some(()))
            .await;
    assert!(trimmed.is_some(), "still {} connections open (limit {LIMIT} per worker)", up.open_connections());
}

/// Requests to an HTTP/2 partner open one connection at a time and share it. When that partner
/// then stops answering handshakes, the requests waiting behind the first do not each wait out a
/// handshake timeout in turn: all are answered `upstream-timeout` within about two.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_behind_a_stalled_http2_connect_do_not_wait_in_turn() {
    const HANDSHAKE_MS: u64 = 1_000;
    let w = World::new();
    let alpha = w.client("alpha");
    let up = w.partner(&["partner.test"], same).await;
    w.bind(&["partner.test", "alpha"]);
    let config = GatewayConfig::new()
        .resolve(&["partner.test"])
        .set("handshake_timeout_ms", HANDSHAKE_MS)
        .set("idle_timeout_ms", 300)
        .response_header_timeout_ms(20_000);
    let gw = w.gateway(config).await;
    let client = gw.client();
    let r = client.proxy_get(&url(up.port(), "/echo")).await;
    assert_partner_got(&up, &alpha, &r);
    assert_eq!(up.last_request().unwrap().http_version, "HTTP/2.0");
    // The shared connection closes when idle; new ones meet a partner that says nothing.
    let gone = wait_until(Duration::from_secs(5), async || (up.open_connections() == 0).then_some(())).await;
    assert!(gone.is_some(), "the idle HTTP/2 connection was not closed");
    up.stall_new_connections();
    let started = Instant::now();
    let requests: Vec<_> = (0..8)
        .map(|i| {
            let (client, url) = (client.clone(), url(up.port(), &format!("/echo?i={i}")));
            tokio::spawn(async move { (client.proxy_get(&url).await, started.elapsed()) })
        })
        .collect();
    for task in requests {
        let (r, after) = task.await.unwrap();
        r.gateway_error(504, "upstream-timeout");
        assert!(r.message().contains("handshake"), "{}", r.describe());
        assert!(after < Duration::from_millis(2 * HANDSHAKE_MS) + Duration::from_secs(2), "answered after {after:?}");
    }
}

/// A partner that closes idle keep-alive connections on its own (Apache's `KeepAliveTimeout`):
/// the next request is sent on a new connection and succeeds; the application never sees the
/// closed one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_the_partner_closed_while_idle_is_not_used_again() {
    let w = World::new();
    let alpha = w.client("alpha");
    let up = w.partner(&["partner.test"], |c| c.http11_only().close_when_idle_for(Duration::from_millis(200))).await;
    w.bind(&["partner.test", "alpha"]);
    let gw = w.gateway_for_partner().await;
    for round in 0..3 {
        let r = gw.proxy_get(&url(up.port(), &format!("/echo?round={round}"))).await;
        assert_partner_got(&up, &alpha, &r);
        let closed = wait_until(Duration::from_secs(5), async || (up.open_connections() == 0).then_some(())).await;
        assert!(closed.is_some(), "the partner did not close its idle connection: {}", up.describe());
    }
    let hs = up.handshakes();
    assert_eq!(hs.full + hs.resumed, 3, "one connection per round: {hs:?}");
    assert_eq!(up.request_count(), 3);
}

// ---------------------------------------------------------------------------------------------
// Admin: health, readiness, metrics

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_and_readyz_answer_and_readyz_follows_the_store_revision() {
    let w = World::new();
    w.client("alpha");
    let gw = w.gateway_for_partner().await;

    assert_eq!(gw.admin_get("/healthz").await.status, 200);
    let before = gw.revision().await;
    assert!(before > 0, "the store has had changes, so its revision is positive: {before}");
    w.bind(&["partner.test", "alpha"]);
    let after = wait_until(RELOAD_LIMIT, async || {
        let r = gw.revision().await;
        (r > before).then_some(r)
    })
    .await;
    assert!(after.is_some(), "/readyz still reports revision {before} after a bind\n{}", gw.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_report_requests_handshakes_revision_reloads_and_expiry() {
    let w = World::new();
    let alpha = w.client("alpha");
    let up = w.partner(&["partner.test"], same).await;
    w.bind(&["partner.test", "alpha"]);
    let gw = w.gateway_process_for_partner().await;
    for _ in 0..2 {
        assert_eq!(gw.proxy_get(&url(up.port(), "/echo")).await.status, 200);
    }
    gw.proxy_get(&url(up.port(), "/echo")).await;

    let text = gw.metrics_text().await;
    let requests = metric_series(&text, "certgate_requests_total");
    let alpha_requests: f64 = requests
        .iter()
        .filter(|(l, _)| l.get("certificate").map(String::as_str) == Some("alpha"))
        .inspect(|(l, _)| {
            assert!(l.get("destination").is_some_and(|d| d.contains("partner.test")), "destination label: {l:?}");
            assert!(l.contains_key("outcome"), "outcome label: {l:?}");
        })
        .map(|(_, v)| v)
        .sum();
    assert!(alpha_requests >= 3.0, "certgate_requests_total for alpha = {alpha_requests}\n{text}");
    let handshakes = metric(&text, "certgate_upstream_handshakes_total", &[]).unwrap_or(0.0);
    assert!(handshakes >= 1.0, "certgate_upstream_handshakes_total\n{text}");
    let expiry = metric(&text, "certgate_certificate_expiry_timestamp_seconds", &[("certificate", "alpha")])
        .unwrap_or_else(|| panic!("no expiry gauge for alpha\n{text}"));
    assert!(
        (expiry - alpha.not_after_unix() as f64).abs() <= 1.0,
        "expiry {expiry} vs notAfter {}",
        alpha.not_after_unix()
    );
    let revision = gw.revision().await as f64;
    assert_eq!(metric(&text, "certgate_route_table_revision", &[]), Some(revision), "{text}");

    // A change while serving is a reload, counted, and moves the revision gauge.
    w.bind(&["other.test", "alpha"]);
    let reloaded = wait_until(RELOAD_LIMIT, async || {
        let text = gw.metrics_text().await;
        let rev = metric(&text, "certgate_route_table_revision", &[])?;
        (rev > revision).then_some(text)
    })
    .await
    .unwrap_or_else(|| panic!("certgate_route_table_revision did not move after a bind\n{}", gw.log()));
    let reloads = metric(&reloaded, "certgate_reloads_total", &[]).unwrap_or(0.0);
    assert!(reloads >= 1.0, "certgate_reloads_total\n{reloaded}");
    assert!(
        metric_series(&reloaded, "certgate_reloads_total").iter().all(|(l, _)| l.contains_key("result")),
        "result label\n{reloaded}"
    );
}

// ---------------------------------------------------------------------------------------------
// Changes while serving

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bind_made_while_serving_takes_effect_without_restart() {
    let w = World::new();
    let alpha = w.client("alpha");
    let up = w.partner(&["partner.test"], same).await;
    // A real process, so that "without restart" is something the test can see fail.
    let gw = w.gateway_process_for_partner().await;
    let pid = gw.pid().expect("a process");
    gw.proxy_get(&url(up.port(), "/echo")).await.gateway_error(403, "no-binding");

    w.bind(&["partner.test", "alpha"]);
    let started = Instant::now();
    let ok = wait_until(RELOAD_LIMIT, async || {
        let r = gw.proxy_get(&url(up.port(), "/echo")).await;
        (r.status == 200).then_some(r)
    })
    .await
    .unwrap_or_else(|| panic!("the new binding was not used within {RELOAD_LIMIT:?}\n{}", gw.log()));
    assert_partner_got(&up, &alpha, &ok);
    assert_eq!(gw.pid(), Some(pid));
    eprintln!("bind took effect after {:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unbind_made_while_serving_takes_effect_without_restart() {
    let w = World::new();
    w.client("alpha");
    let up = w.partner(&["partner.test"], same).await;
    w.bind(&["partner.test", "alpha"]);
    let gw = w.gateway_for_partner().await;
    assert_eq!(gw.proxy_get(&url(up.port(), "/echo")).await.status, 200);

    w.cli(&["unbind", "partner.test"]);
    let refused = wait_until(RELOAD_LIMIT, async || {
        let r = gw.proxy_get(&url(up.port(), "/echo")).await;
        (r.status == 403).then_some(r)
    })
    .await
    .unwrap_or_else(|| panic!("the binding was still used {RELOAD_LIMIT:?} after unbind\n{}", gw.log()));
    refused.gateway_error(403, "no-binding");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebinding_while_serving_switches_certificate_even_on_a_kept_alive_partner() {
    let w = World::new();
    let alpha = w.client("alpha");
    let beta = w.client("beta");
    // Keep-alive (and h2) on: a pool shared across certificates would keep sending alpha.
    let up = w.partner(&["partner.test"], same).await;
    w.bind(&["partner.test", "alpha"]);
    let gw = w.gateway_for_partner().await;
    let r = gw.proxy_get(&url(up.port(), "/echo")).await;
    assert_partner_got(&up, &alpha, &r);

    let replaced = w.bind(&["partner.test", "beta"]).json();
    assert_eq!(replaced["replaced"], true, "{replaced}");
    let switched = wait_until(RELOAD_LIMIT, async || {
        let r = gw.proxy_get(&url(up.port(), "/echo")).await;
        (r.status == 200 && last_cert(&up) == Some(beta.id())).then_some(r)
    })
    .await;
    assert!(switched.is_some(), "still presenting {:?} after rebinding to beta\n{}", last_cert(&up), gw.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_while_serving_presents_the_new_certificate_on_new_connections() {
    let w = World::new();
    let old = w.client("alpha");
    let up = w.partner(&["partner.test"], |c| c.http11_only().close_after_each_response()).await;
    w.bind(&["partner.test", "alpha"]);
    let gw = w.gateway_for_partner().await;
    let r = gw.proxy_get(&url(up.port(), "/echo")).await;
    assert_partner_got(&up, &old, &r);

    let new = w.client_ca.leaf(LeafSpec::client("alpha"));
    let file =
        w.env.file("alpha-new.pem", format!("{}{}{}", new.cert_pem, new.key_pem, w.client_ca.intermediate.cert_pem));
    w.cli(&["cert", "rotate", "alpha", file.to_str().unwrap()]);
    let rotated = wait_until(RELOAD_LIMIT, async || {
        let r = gw.proxy_get(&url(up.port(), "/echo")).await;
        (r.status == 200 && last_cert(&up) == Some(new.id())).then_some(r)
    })
    .await;
    assert!(rotated.is_some(), "still presenting the old certificate {RELOAD_LIMIT:?} after rotate\n{}", gw.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_under_continuous_requests_fails_none_of_them() {
    const TASKS: usize = 4;
    const MAX_PER_TASK: usize = 500;
    let w = World::new();
    let old = w.client("alpha");
    let up = Arc::new(w.partner(&["partner.test"], |c| c.http11_only().close_after_each_response()).await);
    w.bind(&["partner.test", "alpha"]);
    let gw = w.gateway_for_partner().await;

    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(40);
    let target = url(up.port(), "/echo");
    let mut tasks = Vec::new();
    for _ in 0..TASKS {
        let (client, stop, done, target) = (gw.client(), stop.clone(), done.clone(), target.clone());
        tasks.push(tokio::spawn(async move {
            let mut failures = Vec::new();
            for _ in 0..MAX_PER_TASK {
                if stop.load(Ordering::SeqCst) || Instant::now() > deadline {
                    break;
                }
                let r = client.proxy_get(&target).await;
                if r.status != 200 {
                    failures.push(r.describe());
                }
                done.fetch_add(1, Ordering::SeqCst);
            }
            failures
        }));
    }

    let warm = wait_until(Duration::from_secs(15), async || (done.load(Ordering::SeqCst) >= 40).then_some(())).await;
    assert!(warm.is_some(), "only {} requests in 15 s before the rotation", done.load(Ordering::SeqCst));
    let new = w.client_ca.leaf(LeafSpec::client("alpha"));
    let file =
        w.env.file("alpha-new.pem", format!("{}{}{}", new.cert_pem, new.key_pem, w.client_ca.intermediate.cert_pem));
    w.cli(&["cert", "rotate", "alpha", file.to_str().unwrap()]);
    let seen_new = wait_until(RELOAD_LIMIT, async || (last_cert(&up) == Some(new.id())).then_some(())).await;
    let at_switch = done.load(Ordering::SeqCst);
    if seen_new.is_some() {
        // Keep the load on for a while after the switch.
        wait_until(Duration::from_secs(10), async || (done.load(Ordering::SeqCst) >= at_switch + 40).then_some(()))
            .await;
    }
    stop.store(true, Ordering::SeqCst);
    let mut failures = Vec::new();
    for t in tasks {
        failures.extend(t.await.expect("a request task panicked (see above)"));
    }
    assert!(
        failures.is_empty(),
        "{} of {} requests failed; first: {}",
        failures.len(),
        done.load(Ordering::SeqCst),
        failures[0]
    );
    assert!(seen_new.is_some(), "the new certificate was not used {RELOAD_LIMIT:?} after rotate\n{}", gw.log());

    let certs: Vec<Option<String>> = up.requests().iter().map(|r| r.client_cert_sha256()).collect();
    assert!(certs.contains(&Some(old.id())) && certs.contains(&Some(new.id())), "the rotation happened under load");
    assert!(
        certs.iter().all(|c| *c == Some(old.id()) || *c == Some(new.id())),
        "every request carried alpha, old or new"
    );
    for _ in 0..5 {
        let r = gw.proxy_get(&target).await;
        assert_partner_got(&up, &new, &r);
    }
}

// ---------------------------------------------------------------------------------------------
// `certgate call` and the binding commands

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_sends_one_request_through_the_gateway_code_path() {
    let w = World::new();
    let alpha = w.client("alpha");
    let up = w.partner(&["partner.test"], same).await;
    w.bind(&["partner.test", "alpha"]);
    let config = GatewayConfig::new().resolve(&["partner.test"]).write(&w.env);
    let target = url(up.port(), "/echo?from=call");
    let run = w.env.run(&[
        "--config",
        config.to_str().unwrap(),
        "call",
        &target,
        "-X",
        "POST",
        "-H",
        "X-Call: yes",
        "-d",
        "hello",
    ]);
    run.ok();
    let echo = run.json();
    assert_eq!(echo["client_cert_sha256"], alpha.id());
    assert_eq!(echo["method"], "POST");
    assert_eq!(echo["path"], "/echo?from=call");
    assert_eq!(echo["body_len"], 5);
    assert_eq!(echo["headers"]["x-call"], "yes");
    assert_eq!(last_cert(&up), Some(alpha.id()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_to_an_unbound_destination_prints_the_gateway_error_and_exits_1() {
    let w = World::new();
    let up = w.partner(&["partner.test"], same).await;
    let config = GatewayConfig::new().resolve(&["partner.test"]).write(&w.env);
    let run = w.env.run(&["--json", "--config", config.to_str().unwrap(), "call", &url(up.port(), "/echo")]);
    run.refused(1, "no-binding");
    assert_eq!(up.request_count(), 0);
}

#[test]
fn bind_prints_the_binding_and_says_when_it_replaced_one() {
    let w = World::new();
    w.client("alpha");
    w.client("beta");
    let first = w.bind(&["partner.test", "alpha"]).json();
    assert_eq!(first["destination"], "partner.test");
    assert_eq!(first["certificate"], "alpha");
    assert_eq!(first["trust"], "public", "public is the default trust policy");
    assert_eq!(first["sni"], Value::Null);
    assert_eq!(first["pins"], serde_json::json!([]));
    assert_eq!(first["replaced"], false);

    let second = w.bind(&["partner.test", "beta", "--trust", "ca:partnerca", "--sni", "sni.partner.test"]).json();
    assert_eq!(second["replaced"], true);
    assert_eq!(second["certificate"], "beta");
    assert_eq!(second["trust"], "ca:partnerca");
    assert_eq!(second["sni"], "sni.partner.test");
    let plain = w.env.run(&["bind", "partner.test", "alpha"]);
    plain.ok();
    assert!(plain.stdout.to_lowercase().contains("replac"), "the human output says it replaced: {}", plain.stdout);

    let list = w.cli(&["bindings"]).json();
    let list = list.as_array().expect("bindings --json is a list");
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["destination"], "partner.test");
    assert_eq!(list[0]["certificate"], "alpha");
}

#[test]
fn bind_reduces_a_url_destination_to_host_and_port() {
    let w = World::new();
    w.client("alpha");
    let run = w.bind(&["https://api.partner.test:8443/soap/invoice?wsdl", "alpha"]);
    assert_eq!(run.json()["destination"], "api.partner.test:8443");
    let run = w.bind(&["https://api.partner.test/soap", "alpha"]);
    assert_eq!(run.json()["destination"], "api.partner.test");
    let plain = w.env.run(&["bind", "https://b.partner.test/x", "alpha"]);
    plain.ok();
    assert!(
        format!("{}{}", plain.stdout, plain.stderr).contains("b.partner.test"),
        "says what the URL was reduced to: {} {}",
        plain.stdout,
        plain.stderr
    );
}

#[test]
fn bind_no_cert_and_wildcard_bindings_are_listed() {
    let w = World::new();
    w.client("alpha");
    let none = w.bind(&["partner.test", "--no-cert", "--trust", "private"]).json();
    assert_eq!(none["certificate"], Value::Null);
    assert_eq!(none["trust"], "private");
    let pin = w.partner_ca.server(&["partner.test"]).spki_pin();
    let wild = w.bind(&["*.partner.test", "alpha", "--pin", &pin]).json();
    assert_eq!(wild["destination"], "*.partner.test");
    assert_eq!(wild["pins"], serde_json::json!([pin]));
    let list = w.cli(&["bindings"]).json();
    let dests: Vec<&str> = list.as_array().unwrap().iter().filter_map(|b| b["destination"].as_str()).collect();
    assert!(dests.contains(&"partner.test") && dests.contains(&"*.partner.test"), "{list}");
}

#[test]
fn bind_refuses_an_unknown_certificate_and_unbind_an_unknown_destination() {
    let w = World::new();
    w.env.run(&["--json", "bind", "partner.test", "nosuch"]).refused(4, "not-found");
    w.env.run(&["--json", "unbind", "partner.test"]).refused(4, "not-found");
    let list = w.cli(&["bindings"]).json();
    assert_eq!(list, serde_json::json!([]));
}

#[test]
fn service_add_list_and_remove() {
    let w = World::new();
    w.client("alpha");
    w.cli(&[
        "service",
        "add",
        "Billing.InvoiceService",
        "--url",
        "https://partner.test/soap/invoice",
        "--cert",
        "alpha",
    ]);
    let list = w.cli(&["service", "list"]).json();
    let text = list.to_string();
    assert!(text.contains("Billing.InvoiceService") && text.contains("https://partner.test/soap/invoice"), "{list}");
    w.cli(&["service", "remove", "Billing.InvoiceService"]);
    let list = w.cli(&["service", "list"]).json();
    assert!(!list.to_string().contains("Billing.InvoiceService"), "{list}");
}

// ---------------------------------------------------------------------------------------------
// Interop: nginx as the partner, curl and Python zeep as the application

fn require_zeep() {
    nginx::require("python3", "python3", &["--version"], "apt-get install python3");
    nginx::require("python3 zeep", "python3", &["-c", "import zeep"], "pip install zeep");
}

#[track_caller]
fn assert_nginx_saw(out: &std::process::Output, cert: &Minted, cn: &str, nginx: &Nginx, extra: &str) {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "curl failed ({}): {stdout}\n{stderr}\n{extra}\n{}", out.status, nginx.logs());
    let seen: Value =
        serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("nginx answer is not JSON ({e}): {stdout}"));
    assert_eq!(seen["verify"], "SUCCESS", "{seen}");
    assert!(seen["s_dn"].as_str().unwrap_or("").contains(&format!("CN={cn}")), "subject nginx received: {seen}");
    assert_eq!(seen["fingerprint"], cert.sha1_hex(), "fingerprint nginx received: {seen}");
    let pem = nginx::url_decode(seen["escaped_cert"].as_str().unwrap_or(""));
    let squash = |s: &str| s.chars().filter(|c| !c.is_whitespace()).collect::<String>();
    assert_eq!(squash(&pem), squash(&cert.cert_pem), "certificate nginx received");
}

/// nginx requiring the client CA, a store with alpha bound to it, and a running gateway.
async fn nginx_behind_gateway() -> (World, Minted, Nginx, Gateway) {
    let w = World::new();
    let alpha = w.client("alpha");
    let server = w.partner_ca.server(&["partner.test"]);
    let nginx = Nginx::start(&server, &w.partner_ca, &w.client_ca);
    w.bind(&["partner.test", "alpha", "--trust", "ca:partnerca"]);
    let gw = w.gateway_for_partner().await;
    (w, alpha, nginx, gw)
}

#[test]
fn harness_nginx_reports_the_certificate_curl_presents_directly() {
    let w = World::new();
    let alpha = w.client_ca.leaf(LeafSpec::client("alpha"));
    let server = w.partner_ca.server(&["partner.test"]);
    let nginx = Nginx::start(&server, &w.partner_ca, &w.client_ca);
    let cert = w.env.file("alpha-chain.pem", format!("{}{}", alpha.cert_pem, w.client_ca.intermediate.cert_pem));
    let key = w.env.file("alpha.key", &alpha.key_pem);
    let ca = w.env.file("partner-root.pem", &w.partner_ca.root.cert_pem);
    let port = nginx.port();
    let out = nginx::curl()
        .args(["-sS", "--fail-with-body", "--max-time", "30", "--noproxy", "*"])
        .arg("--resolve")
        .arg(format!("partner.test:{port}:127.0.0.1"))
        .arg("--cacert")
        .arg(&ca)
        .arg("--cert")
        .arg(&cert)
        .arg("--key")
        .arg(&key)
        .arg(format!("https://partner.test:{port}/whoami"))
        .output()
        .unwrap();
    assert_nginx_saw(&out, &alpha, "alpha", &nginx, "");

    // And without a certificate nginx refuses, so a pass above means the certificate counted.
    let out = nginx::curl()
        .args(["-sS", "--max-time", "30", "--noproxy", "*", "-o", "/dev/null", "-w", "%{http_code}"])
        .arg("--resolve")
        .arg(format!("partner.test:{port}:127.0.0.1"))
        .arg("--cacert")
        .arg(&ca)
        .arg(format!("https://partner.test:{port}/whoami"))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "400", "nginx answers 400 'No required SSL certificate was sent'");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_with_proxy_option_reaches_nginx_with_the_bound_certificate() {
    let (_w, alpha, nginx, gw) = nginx_behind_gateway().await;
    let out = nginx::curl()
        .args(["-sS", "--fail-with-body", "--max-time", "30", "-x", &gw.proxy_url()])
        .arg(format!("http://partner.test:{}/whoami", nginx.port()))
        .output()
        .unwrap();
    assert_nginx_saw(&out, &alpha, "alpha", &nginx, &gw.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_with_http_proxy_environment_reaches_nginx_with_the_bound_certificate() {
    let (_w, alpha, nginx, gw) = nginx_behind_gateway().await;
    // curl reads only the lowercase http_proxy (HTTP_PROXY is ignored for http://, see
    // "httpoxy"); both are set, as an application's environment would have them.
    let out = nginx::curl()
        .env("http_proxy", gw.proxy_url())
        .env("HTTP_PROXY", gw.proxy_url())
        .args(["-sS", "--fail-with-body", "--max-time", "30"])
        .arg(format!("http://partner.test:{}/whoami", nginx.port()))
        .output()
        .unwrap();
    assert_nginx_saw(&out, &alpha, "alpha", &nginx, &gw.log());
}

fn zeep_script() -> &'static str {
    concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop/zeep_call.py")
}

fn run_zeep(args: &[&str]) -> (Value, String) {
    let mut cmd = std::process::Command::new("python3");
    cmd.arg(zeep_script()).args(args).stdin(std::process::Stdio::null());
    for var in ["http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"] {
        cmd.env_remove(var);
    }
    let out = cmd.output().expect("run python3");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "zeep_call.py failed ({}):\n{stdout}\n{stderr}", out.status);
    let line = stdout.lines().last().unwrap_or("");
    let v = serde_json::from_str(line)
        .unwrap_or_else(|e| panic!("zeep_call.py printed no JSON ({e}):\n{stdout}\n{stderr}"));
    (v, stderr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn harness_zeep_script_calls_the_soap_partner_directly() {
    require_zeep();
    let w = World::new();
    let alpha = w.client_ca.leaf(LeafSpec::client("alpha"));
    let up = w.partner(&["localhost"], same).await;
    let cert = w.env.file("alpha-chain.pem", format!("{}{}", alpha.cert_pem, w.client_ca.intermediate.cert_pem));
    let key = w.env.file("alpha.key", &alpha.key_pem);
    let ca = w.env.file("partner-root.pem", &w.partner_ca.root.cert_pem);
    let base = format!("https://localhost:{}/soap", up.port());
    let (v, _) = run_zeep(&[
        "--wsdl",
        &format!("{base}?wsdl"),
        "--endpoint",
        &base,
        "--text",
        "direct",
        "--ca",
        ca.to_str().unwrap(),
        "--cert",
        cert.to_str().unwrap(),
        "--key",
        key.to_str().unwrap(),
    ]);
    assert_eq!(v["text"], "direct");
    assert_eq!(v["client_cert_sha256"], alpha.id());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zeep_soap_client_calls_the_partner_through_a_named_service() {
    require_zeep();
    let w = World::new();
    let alpha = w.client("alpha");
    let up = w.partner(&["partner.test"], same).await;
    let base = format!("https://partner.test:{}", up.port());
    w.cli(&["service", "add", "Billing.EchoService", "--url", &base, "--cert", "alpha"]);
    let gw = w.gateway_for_partner().await;

    let endpoint = format!("{}/svc/Billing.EchoService/soap", gw.proxy_url());
    let (v, _) =
        run_zeep(&["--wsdl", &format!("{endpoint}?wsdl"), "--endpoint", &endpoint, "--text", "hello-from-zeep"]);
    assert_eq!(v["text"], "hello-from-zeep", "{v}");
    assert_eq!(v["client_cert_sha256"], alpha.id(), "{v}");

    let reqs = up.requests();
    let wsdl = reqs
        .iter()
        .find(|r| r.method == "GET")
        .unwrap_or_else(|| panic!("the WSDL was not fetched through certgate: {}", up.describe()));
    assert_eq!(wsdl.path, "/soap?wsdl");
    let call = reqs.iter().find(|r| r.method == "POST").expect("the SOAP call reached the partner");
    assert_eq!(call.path, "/soap");
    assert_eq!(call.header("soapaction"), Some("\"urn:certgate:test#Echo\""));
    assert!(call.header("content-type").unwrap_or("").starts_with("text/xml"), "{:?}", call.headers);
    assert_eq!(call.client_cert_sha256(), Some(alpha.id()));
}

// ---------------------------------------------------------------------------------------------
// Harness check: the upstream's records, against a plain rustls client (no certgate)

/// A rustls client presenting `cert` (+ the client intermediate), offering h2 and http/1.1.
fn direct_client(w: &World, cert: &Minted) -> Arc<rustls::ClientConfig> {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from(w.partner_ca.root.der.clone())).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(
            vec![CertificateDer::from(cert.der.clone()), CertificateDer::from(w.client_ca.intermediate.der.clone())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.key_der())),
        )
        .unwrap();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Arc::new(config)
}

/// One request straight to the upstream over TLS, HTTP/2 when ALPN says so.
async fn direct_get(config: &Arc<rustls::ClientConfig>, up: &Upstream, path: &str) -> (u16, hyper::body::Incoming) {
    use hyper_util::rt::{TokioExecutor, TokioIo};
    let tcp = tokio::net::TcpStream::connect(up.addr()).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("partner.test").unwrap();
    let tls = tokio_rustls::TlsConnector::from(config.clone()).connect(name, tcp).await.unwrap();
    let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
    let req = |version| {
        Request::get(format!("https://partner.test:{}{path}", up.port()))
            .version(version)
            .header("host", format!("partner.test:{}", up.port()))
            .body(Full::new(Bytes::new()))
            .unwrap()
    };
    let resp = if h2 {
        let (mut send, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls)).await.unwrap();
        tokio::spawn(conn);
        send.send_request(req(hyper::Version::HTTP_2)).await.unwrap()
    } else {
        let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await.unwrap();
        tokio::spawn(conn);
        send.send_request(req(hyper::Version::HTTP_11)).await.unwrap()
    };
    (resp.status().as_u16(), resp.into_body())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn harness_upstream_records_what_a_rustls_client_presented() {
    let w = World::new();
    let alpha = w.client_ca.leaf(LeafSpec::client("alpha"));
    let config = direct_client(&w, &alpha);

    // HTTP/1.1 with Connection: close: three connections, the last two resumed.
    let up = w.partner(&["partner.test"], |c| c.http11_only().close_after_each_response().tls12_only()).await;
    for _ in 0..3 {
        let (status, body) = direct_get(&config, &up, "/echo?x=1").await;
        assert_eq!(status, 200);
        body.collect().await.unwrap();
    }
    let seen = up.last_request().unwrap();
    assert_eq!(seen.client_chain, vec![alpha.der.clone(), w.client_ca.intermediate.der.clone()]);
    assert_eq!((seen.sni.as_deref(), seen.alpn.as_deref()), (Some("partner.test"), Some("http/1.1")));
    assert_eq!((seen.tls_version.as_str(), seen.http_version.as_str()), ("TLSv1.2", "HTTP/1.1"));
    assert_eq!(seen.path, "/echo?x=1");
    assert_eq!(up.handshakes(), upstream::Handshakes { full: 1, resumed: 2 });

    // h2 offered: HTTP/2; a paused /big resumes on release.
    let up = w.partner(&["partner.test"], |c| c.tls13_only()).await;
    let (status, mut body) = direct_get(&config, &up, &format!("/big?bytes={}&pause_after={}", 4 * MIB, 2 * MIB)).await;
    assert_eq!(status, 200);
    let mut got = 0u64;
    let mut released = false;
    while let Some(frame) = tokio::time::timeout(Duration::from_secs(10), body.frame()).await.expect("data flows") {
        let frame = frame.unwrap();
        if let Some(d) = frame.data_ref() {
            assert!(d[..] == upstream::pattern(got, d.len())[..], "pattern at {got}");
            got += d.len() as u64;
        }
        if !released && got >= MIB {
            up.release();
            released = true;
        }
    }
    assert_eq!(got, 4 * MIB);
    let seen = up.last_request().unwrap();
    assert_eq!(
        (seen.alpn.as_deref(), seen.http_version.as_str(), seen.tls_version.as_str()),
        (Some("h2"), "HTTP/2.0", "TLSv1.3")
    );
    assert_eq!(seen.client_cert_sha256(), Some(alpha.id()));

    // A client certificate from another CA is refused with the alert unknown_ca: during the
    // handshake in TLS 1.2, on the client's first read in TLS 1.3.
    let other = TestCa::new("other");
    let stranger = other.leaf(LeafSpec::client("stranger"));
    let bad = direct_client(&w, &stranger);
    let up = w.partner(&["partner.test"], |c| c.tls12_only()).await;
    let tcp = tokio::net::TcpStream::connect(up.addr()).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("partner.test").unwrap();
    let err = tokio_rustls::TlsConnector::from(bad.clone()).connect(name.clone(), tcp).await.expect_err("refused");
    assert!(format!("{err:?}").contains("UnknownCA"), "{err:?}");
    let up = w.partner(&["partner.test"], |c| c.tls13_only()).await;
    let tcp = tokio::net::TcpStream::connect(up.addr()).await.unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(bad).connect(name, tcp).await.expect("TLS 1.3 connect completes");
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    tls.write_all(b"GET /echo HTTP/1.1\r\nhost: partner.test\r\n\r\n").await.unwrap();
    let err = tls.read(&mut [0u8; 64]).await.expect_err("the alert arrives on the first read");
    assert!(format!("{err:?}").contains("UnknownCA"), "{err:?}");
    assert_eq!(up.request_count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_accepting_and_lets_in_flight_requests_finish() {
    let w = World::new();
    let alpha = w.client("alpha");
    let up = w.partner(&["partner.test"], same).await;
    w.bind(&["partner.test", "alpha"]);
    let gw = w.gateway_process_for_partner().await;
    let client = gw.client();
    let slow_url = url(up.port(), "/slow?ms=1500");
    let in_flight = tokio::spawn(async move { client.proxy_get(&slow_url).await });
    // The partner has the request (bounded wait), then the gateway is told to stop.
    wait_until(Duration::from_secs(10), async || (up.request_count() >= 1).then_some(()))
        .await
        .expect("request reached the partner");
    let killed =
        std::process::Command::new("kill").args(["-TERM", &gw.pid().expect("a process").to_string()]).status().unwrap();
    assert!(killed.success());
    // New connections are refused soon after the signal...
    let proxy_addr = gw.proxy_url().trim_start_matches("http://").to_string();
    let refused = wait_until(Duration::from_secs(5), async || {
        tokio::net::TcpStream::connect(proxy_addr.as_str()).await.err().map(|_| ())
    })
    .await;
    assert!(refused.is_some(), "the proxy still accepts connections after SIGTERM");
    // ...while the request that was in flight completes with the partner's answer.
    let r = in_flight.await.unwrap();
    assert_partner_got(&up, &alpha, &r);
}

/// Raw HTTP/1.1 requests on a kept-alive connection, and the text of their `answers` responses.
async fn raw_exchange_n(stream: &mut tokio::net::TcpStream, requests: &str, answers: usize) -> String {
    use tokio::io::AsyncWriteExt;
    stream.write_all(requests.as_bytes()).await.expect("send the requests");
    read_responses(stream, answers).await
}

async fn raw_exchange(stream: &mut tokio::net::TcpStream, request: &str) -> String {
    raw_exchange_n(stream, request, 1).await
}

/// Applications' HTTP clients keep idle connections open for minutes: an idle connection lets
/// hyper's state go (its buffers) and keeps its socket, and the next request on it, or two
/// pipelined, is served as before. A head that is still arriving is never let go in the middle.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_connection_lets_its_http_state_go_and_serves_its_next_requests_on_the_same_socket() {
    let w = World::new();
    let alpha = w.client("alpha");
    let up = w.partner(&["partner.test"], same).await;
    w.bind(&["partner.test", "alpha"]);
    let gw = w.gateway_process_for_partner().await;
    let released = async || {
        let text = gw.metrics_text().await;
        metric(&text, "certgate_client_sessions_released_total", &[("listener", "proxy")]).unwrap_or(0.0)
    };
    let host = format!("partner.test:{}", up.port());
    let get = |n: u32| format!("GET http://{host}/echo?n={n} HTTP/1.1\r\nHost: {host}\r\n\r\n");
    let proxy: std::net::SocketAddr = gw.proxy_url().trim_start_matches("http://").parse().unwrap();
    let mut stream = tokio::net::TcpStream::connect(proxy).await.unwrap();
    let before = released().await;

    let first = raw_exchange(&mut stream, &get(1)).await;
    assert!(first.starts_with("HTTP/1.1 200"), "{first}");
    // Let go between 2 and 4 s after the answer (RELEASE_AFTER, and the watchdog's period).
    let after = wait_until(Duration::from_secs(10), async || {
        let n = released().await;
        (n > before).then_some(n)
    })
    .await
    .expect("the idle connection's HTTP state is let go (certgate_client_sessions_released_total)");
    assert_eq!(after, before + 1.0, "one connection, one release");

    // The same socket serves on: one request, then two pipelined in one write.
    let second = raw_exchange(&mut stream, &get(2)).await;
    assert!(second.starts_with("HTTP/1.1 200"), "{second}");
    assert!(second.contains("n=2"), "the second request's own answer: {second}");
    let both = raw_exchange_n(&mut stream, &format!("{}{}", get(3), get(4)), 2).await;
    assert_eq!(both.matches("HTTP/1.1 200").count(), 2, "both pipelined requests answered: {both}");
    assert!(both.contains("n=3") && both.contains("n=4"), "{both}");
    assert_eq!(up.request_count(), 4);
    assert_eq!(last_cert(&up), Some(alpha.id()), "the bound certificate, after the release as before");

    // Let go again, then half a head that waits longer than a release would: it is not cut off
    // in the middle, and its end is answered.
    let again = wait_until(Duration::from_secs(10), async || {
        let n = released().await;
        (n > after).then_some(n)
    })
    .await
    .expect("let go again once idle");
    use tokio::io::AsyncWriteExt;
    let request = get(5);
    let (start, rest) = request.split_at(20);
    stream.write_all(start.as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(4500)).await;
    assert_eq!(released().await, again, "nothing is let go while a head arrives");
    let fifth = raw_exchange(&mut stream, rest).await;
    assert!(fifth.starts_with("HTTP/1.1 200") && fifth.contains("n=5"), "{fifth}");
    assert_eq!(up.request_count(), 5);
}

/// On SIGTERM, connections that wait for their next request (one idle in its HTTP session, one
/// whose state was let go) are closed at once: the proxy does not wait out its shutdown grace
/// for them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_closes_idle_connections_at_once_whether_or_not_their_state_was_let_go() {
    use tokio::io::AsyncReadExt;
    let w = World::new();
    w.client("alpha");
    let up = w.partner(&["partner.test"], same).await;
    w.bind(&["partner.test", "alpha"]);
    let gw = w.gateway_process_for_partner().await;
    let host = format!("partner.test:{}", up.port());
    let get = format!("GET http://{host}/echo HTTP/1.1\r\nHost: {host}\r\n\r\n");
    let proxy: std::net::SocketAddr = gw.proxy_url().trim_start_matches("http://").parse().unwrap();
    let mut let_go = tokio::net::TcpStream::connect(proxy).await.unwrap();
    assert!(raw_exchange(&mut let_go, &get).await.starts_with("HTTP/1.1 200"));
    wait_until(Duration::from_secs(10), async || {
        let text = gw.metrics_text().await;
        metric(&text, "certgate_client_sessions_released_total", &[("listener", "proxy")]).filter(|n| *n >= 1.0)
    })
    .await
    .expect("the first connection's state is let go");
    let mut in_session = tokio::net::TcpStream::connect(proxy).await.unwrap();
    assert!(raw_exchange(&mut in_session, &get).await.starts_with("HTTP/1.1 200"));

    let signalled = Instant::now();
    let killed =
        std::process::Command::new("kill").args(["-TERM", &gw.pid().expect("a process").to_string()]).status().unwrap();
    assert!(killed.success());
    for (name, stream) in [("let go", &mut let_go), ("in its session", &mut in_session)] {
        let mut buf = [0u8; 256];
        let read = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf)).await;
        assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "the idle connection {name} is closed: {read:?}");
    }
    // Far below the 30 s shutdown grace the proxy would wait for a connection it could not end.
    assert!(signalled.elapsed() < Duration::from_secs(8), "closed after {:?}", signalled.elapsed());
}

// ---------------------------------------------------------------------------------------------
// A binding that cannot be compiled fails alone

/// Damage one certificate's sealed key in the store file, as a bad copy or a disk error would.
pub(crate) async fn damage_sealed_key(env: &Env, name: &str) {
    use sqlx::ConnectOptions;
    let mut conn = sqlx::sqlite::SqliteConnectOptions::new().filename(env.db_path()).connect().await.unwrap();
    let done = sqlx::query("UPDATE certificates SET sealed_key = X'00112233' WHERE name = $1")
        .bind(name)
        .execute(&mut conn)
        .await
        .unwrap();
    assert_eq!(done.rows_affected(), 1);
    // A change through the CLI moves the revision, so every gateway reloads and meets the damage.
    sqlx::query("UPDATE revision SET value = value + 1 WHERE id = 1").execute(&mut conn).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_binding_whose_key_cannot_be_opened_answers_route_unavailable_and_the_others_keep_serving() {
    let w = World::new();
    let alpha = w.client("alpha");
    w.client("beta");
    let up = w.partner(&["partner.test", "other.test"], same).await;
    w.bind(&["partner.test", "alpha"]);
    let gw = w.gateway(GatewayConfig::new().resolve(&["partner.test", "other.test"])).await;
    assert_partner_got(&up, &alpha, &gw.proxy_get(&url(up.port(), "/echo")).await);

    damage_sealed_key(&w.env, "beta").await;
    w.bind(&["other.test", "beta"]);
    let other = format!("http://other.test:{}/echo", up.port());
    let refused = wait_until(RELOAD_LIMIT, async || {
        let r = gw.proxy_get(&other).await;
        (r.status == 502).then_some(r)
    })
    .await
    .expect("the binding to the damaged certificate answers 502 once the table reloads");
    let body = refused.gateway_error(502, "route-unavailable");
    let message = body["message"].as_str().unwrap();
    assert!(message.contains("beta") && message.contains("does not open"), "names the certificate and why: {body}");

    // The rest of the table is the new revision and serves: the healthy binding still works, and a
    // change made after the damage still arrives.
    assert_partner_got(&up, &alpha, &gw.proxy_get(&url(up.port(), "/echo")).await);
    let ready = gw.readyz_json().await;
    assert_eq!(ready["ready"], true, "{ready}");
    assert_eq!(ready["last_reload_error"], serde_json::Value::Null, "the table was published: {ready}");
    let unavailable = ready["unavailable_routes"].as_array().unwrap();
    assert_eq!(unavailable.len(), 1, "{ready}");
    assert_eq!(unavailable[0]["destination"], "other.test");
    w.cli(&["unbind", "partner.test"]);
    wait_until(RELOAD_LIMIT, async || {
        let r = gw.proxy_get(&url(up.port(), "/echo")).await;
        (r.error_code().as_deref() == Some("no-binding")).then_some(())
    })
    .await
    .expect("a later change still reaches the gateway");
}
