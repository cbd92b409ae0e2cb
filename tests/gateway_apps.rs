//! Calling applications at the gateway: once an app exists every caller authenticates with
//! `Proxy-Authorization: Basic base64(app:credential)`, and may present only the certificates
//! granted to it (the bound one, or another picked with `Certgate-Certificate: NAME`). What the
//! partner received is asserted from the in-process upstream's record.

use std::time::{Duration, Instant};

use base64::Engine;
use bytes::Bytes;
use serde_json::Value;

use crate::support::api::run_bounded;
use crate::support::gateway::{free_port, metric, wait_until, Gateway, GatewayConfig, Resp, ServeOptions};
use crate::support::upstream::{Upstream, UpstreamConfig};
use crate::support::{Env, LeafSpec, Minted, Run, TestCa};

/// A change must reach the running gateway within 1 s; polled for 3 s (as in tests/gateway.rs).
const RELOAD_LIMIT: Duration = Duration::from_secs(3);

/// A store trusting the partner CA as `partnerca`, with client certificates `alpha` and
/// `beta` from the client CA, and `partner.test` bound to `alpha`.
struct World {
    env: Env,
    partner_ca: TestCa,
    client_ca: TestCa,
    alpha: Minted,
    beta: Minted,
}

impl World {
    fn new() -> World {
        let env = Env::new();
        let partner_ca = TestCa::new("partner");
        let client_ca = TestCa::new("client");
        let root = env.file("partner-root.pem", &partner_ca.root.cert_pem);
        env.run(&["trust", "add", "partnerca", root.to_str().unwrap()]).ok();
        let alpha = client_ca.leaf(LeafSpec::client("alpha"));
        env.import_minted("alpha", &alpha, &client_ca.intermediate.cert_pem).ok();
        let beta = client_ca.leaf(LeafSpec::client("beta"));
        env.import_minted("beta", &beta, &client_ca.intermediate.cert_pem).ok();
        let w = World { env, partner_ca, client_ca, alpha, beta };
        w.cli(&["bind", "partner.test", "alpha", "--trust", "ca:partnerca"]);
        w
    }

    fn cli(&self, args: &[&str]) -> Run {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let run = self.env.run(&all);
        run.ok();
        run
    }

    /// `certgate app add NAME --json`: the credential, shown once.
    fn app(&self, name: &str) -> String {
        let v = self.cli(&["app", "add", name]).json();
        assert_eq!(v["name"], name);
        v["credential"].as_str().unwrap().to_string()
    }

    /// A partner for `partner.test` that requires a client certificate from the client CA.
    async fn partner(&self) -> Upstream {
        let server = self.partner_ca.server(&["partner.test", "open.test"]);
        Upstream::start(UpstreamConfig::new(&server, &self.partner_ca).require_client_cert(&self.client_ca)).await
    }

    /// A partner that asks for no client certificate.
    async fn open_partner(&self) -> Upstream {
        let server = self.partner_ca.server(&["open.test"]);
        Upstream::start(UpstreamConfig::new(&server, &self.partner_ca)).await
    }

    async fn gateway(&self) -> Gateway {
        Gateway::start(&self.env, &GatewayConfig::new().resolve(&["partner.test", "open.test"])).await
    }

    /// `gateway` as a child process: its `/metrics` counters are its own.
    async fn gateway_process(&self) -> Gateway {
        Gateway::process(&self.env, &GatewayConfig::new().resolve(&["partner.test", "open.test"])).await
    }
}

fn basic(app: &str, credential: &str) -> String {
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{app}:{credential}")))
}

fn url(host: &str, port: u16, path: &str) -> String {
    format!("http://{host}:{port}{path}")
}

async fn get_as(gw: &Gateway, target: &str, headers: &[(&str, &str)]) -> Resp {
    gw.proxy("GET", target, headers, Bytes::new()).await
}

#[track_caller]
fn assert_partner_got(up: &Upstream, cert: &Minted, resp: &Resp) -> Value {
    let echo = resp.echo();
    assert_eq!(echo["client_cert_sha256"], cert.id(), "certificate in the echo: {}", up.describe());
    assert_eq!(
        up.last_request().and_then(|r| r.client_cert_sha256()),
        Some(cert.id()),
        "certificate the partner recorded: {}",
        up.describe()
    );
    echo
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn once_an_app_exists_a_request_without_proxy_authorization_gets_407_with_proxy_authenticate_basic() {
    let w = World::new();
    let up = w.partner().await;
    let gw = w.gateway().await;
    // No app yet: loopback callers need no credential.
    assert_partner_got(&up, &w.alpha, &get_as(&gw, &url("partner.test", up.port(), "/echo"), &[]).await);
    w.app("billing-app");
    let refused = wait_until(RELOAD_LIMIT, async || {
        let r = get_as(&gw, &url("partner.test", up.port(), "/echo"), &[]).await;
        (r.status == 407).then_some(r)
    })
    .await
    .unwrap_or_else(|| panic!("the gateway still served callers without a credential after app add\n{}", gw.log()));
    let seen = up.request_count();
    let body = refused.gateway_error(407, "proxy-auth-required");
    assert!(body["hint"].as_str().unwrap().contains("Proxy-Authorization"), "{body}");
    let challenge = refused.header("proxy-authenticate").expect("a Proxy-Authenticate header");
    assert!(challenge.starts_with("Basic"), "{challenge}");
    // Named-service requests need it too.
    w.cli(&["service", "add", "Echo.Svc", "--url", &format!("https://partner.test:{}/echo", up.port())]);
    let r = wait_until(RELOAD_LIMIT, async || {
        let r = gw.service("GET", "Echo.Svc", "/x", &[], Bytes::new()).await;
        (r.error_code().as_deref() != Some("no-binding")).then_some(r)
    })
    .await
    .unwrap();
    r.gateway_error(407, "proxy-auth-required");
    assert_eq!(up.request_count(), seen, "nothing reached the partner: {}", up.describe());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_or_malformed_app_credential_gets_407() {
    let w = World::new();
    let credential = w.app("billing-app");
    w.cli(&["app", "grant", "billing-app", "alpha"]);
    let other = w.app("other-app");
    let up = w.partner().await;
    let gw = w.gateway().await;
    let target = url("partner.test", up.port(), "/echo");
    let wrong_secret = basic("billing-app", "cga_wrong");
    let someone_elses = basic("billing-app", &other);
    let unknown_app = basic("nobody", &credential);
    let no_colon = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode("billing-app"));
    for auth in [
        wrong_secret.as_str(),
        someone_elses.as_str(),
        unknown_app.as_str(),
        no_colon.as_str(),
        "Basic !!!not-base64!!!",
        "Bearer cga_token",
        "",
    ] {
        let r = get_as(&gw, &target, &[("proxy-authorization", auth)]).await;
        r.gateway_error(407, "proxy-auth-required");
        assert!(r.header("proxy-authenticate").is_some(), "Proxy-Authenticate for '{auth}'");
    }
    assert_eq!(up.request_count(), 0, "nothing reached the partner: {}", up.describe());
    let ok = get_as(&gw, &target, &[("proxy-authorization", &basic("billing-app", &credential))]).await;
    assert_partner_got(&up, &w.alpha, &ok);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_without_a_grant_for_the_bound_certificate_gets_403_not_granted() {
    let w = World::new();
    let credential = w.app("billing-app");
    w.cli(&["app", "grant", "billing-app", "beta"]);
    let up = w.partner().await;
    let gw = w.gateway().await;
    let r = get_as(
        &gw,
        &url("partner.test", up.port(), "/echo"),
        &[("proxy-authorization", &basic("billing-app", &credential))],
    )
    .await;
    let body = r.gateway_error(403, "not-granted");
    let message = body["message"].as_str().unwrap();
    assert!(message.contains("alpha") && message.contains("billing-app"), "{message}");
    assert!(body["hint"].as_str().unwrap().contains("certgate app grant"), "{body}");
    assert_eq!(up.request_count(), 0, "{}", up.describe());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_with_the_grant_reaches_the_partner_with_that_certificate_and_its_credential_is_not_forwarded() {
    let w = World::new();
    let credential = w.app("billing-app");
    w.cli(&["app", "grant", "billing-app", "alpha"]);
    let up = w.partner().await;
    let gw = w.gateway().await;
    let auth = basic("billing-app", &credential);
    let r = get_as(
        &gw,
        &url("partner.test", up.port(), "/echo?x=1"),
        &[("proxy-authorization", &auth), ("certgate-certificate", "alpha"), ("x-app-header", "kept")],
    )
    .await;
    let echo = assert_partner_got(&up, &w.alpha, &r);
    assert_eq!(echo["path"], "/echo?x=1");
    let recorded = up.last_request().unwrap();
    assert_eq!(recorded.header("proxy-authorization"), None, "the app credential must not reach the partner: {echo}");
    assert_eq!(recorded.header("certgate-certificate"), None, "Certgate-* headers are not forwarded: {echo}");
    assert_eq!(recorded.header("x-app-header"), Some("kept"), "{echo}");
    assert!(!echo.to_string().contains(&credential), "{echo}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certgate_certificate_picks_another_granted_certificate_per_request_and_an_ungranted_one_gets_403() {
    let w = World::new();
    let credential = w.app("billing-app");
    w.cli(&["app", "grant", "billing-app", "alpha"]);
    w.cli(&["app", "grant", "billing-app", "beta"]);
    let limited = w.app("limited-app");
    w.cli(&["app", "grant", "limited-app", "alpha"]);
    let up = w.partner().await;
    let gw = w.gateway().await;
    let target = url("partner.test", up.port(), "/echo");
    let auth = basic("billing-app", &credential);
    // Alternate on the same destination: each request presents what it asked for.
    for (pick, cert) in [(Some("beta"), &w.beta), (None, &w.alpha), (Some("beta"), &w.beta), (Some("alpha"), &w.alpha)]
    {
        let mut headers = vec![("proxy-authorization", auth.as_str())];
        if let Some(p) = pick {
            headers.push(("certgate-certificate", p));
        }
        let r = get_as(&gw, &target, &headers).await;
        assert_partner_got(&up, cert, &r);
        assert!(up.last_request().unwrap().header("certgate-certificate").is_none());
    }
    // One connection per certificate: the second request for beta reused the first one's.
    let opened = up.handshakes();
    assert_eq!(opened.full + opened.resumed, 2, "{}", up.describe());
    let seen = up.request_count();
    let limited_auth = basic("limited-app", &limited);
    let r = get_as(&gw, &target, &[("proxy-authorization", &limited_auth), ("certgate-certificate", "beta")]).await;
    let body = r.gateway_error(403, "not-granted");
    assert!(body["message"].as_str().unwrap().contains("beta"), "{body}");
    // A certificate that does not exist is not granted either.
    let r = get_as(&gw, &target, &[("proxy-authorization", &auth), ("certgate-certificate", "nothing")]).await;
    r.gateway_error(403, "not-granted");
    assert_eq!(up.request_count(), seen, "{}", up.describe());
    // The limited app still has its own grant.
    assert_partner_got(&up, &w.alpha, &get_as(&gw, &target, &[("proxy-authorization", &limited_auth)]).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grant_revoked_while_serving_takes_effect_without_restart() {
    let w = World::new();
    let credential = w.app("billing-app");
    w.cli(&["app", "grant", "billing-app", "alpha"]);
    let up = w.partner().await;
    // A real process, so that "without restart" is something the test can see fail.
    let gw = w.gateway_process().await;
    let pid = gw.pid().expect("a process");
    let target = url("partner.test", up.port(), "/echo");
    let auth = basic("billing-app", &credential);
    assert_partner_got(&up, &w.alpha, &get_as(&gw, &target, &[("proxy-authorization", &auth)]).await);

    w.cli(&["app", "revoke", "billing-app", "alpha"]);
    let started = Instant::now();
    let refused = wait_until(RELOAD_LIMIT, async || {
        let r = get_as(&gw, &target, &[("proxy-authorization", &auth)]).await;
        (r.status == 403).then_some(r)
    })
    .await
    .unwrap_or_else(|| panic!("the revoked grant was still honoured {RELOAD_LIMIT:?} later\n{}", gw.log()));
    refused.gateway_error(403, "not-granted");
    eprintln!("grant revocation took effect after {:?}", started.elapsed());

    // Granting again works the same way; removing the app ends its credential.
    w.cli(&["app", "grant", "billing-app", "alpha"]);
    let ok = wait_until(RELOAD_LIMIT, async || {
        let r = get_as(&gw, &target, &[("proxy-authorization", &auth)]).await;
        (r.status == 200).then_some(r)
    })
    .await
    .unwrap_or_else(|| panic!("the new grant was not honoured within {RELOAD_LIMIT:?}\n{}", gw.log()));
    assert_partner_got(&up, &w.alpha, &ok);
    w.app("keeper");
    w.cli(&["app", "remove", "billing-app"]);
    let gone = wait_until(RELOAD_LIMIT, async || {
        let r = get_as(&gw, &target, &[("proxy-authorization", &auth)]).await;
        (r.status == 407).then_some(r)
    })
    .await
    .unwrap_or_else(|| panic!("a removed app's credential still worked {RELOAD_LIMIT:?} later\n{}", gw.log()));
    gone.gateway_error(407, "proxy-auth-required");
    assert_eq!(gw.pid(), Some(pid), "no restart");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_cert_bindings_need_no_grant() {
    let w = World::new();
    let credential = w.app("plain-app");
    let open = w.open_partner().await;
    w.cli(&["bind", "open.test", "--no-cert", "--trust", "ca:partnerca"]);
    let gw = w.gateway().await;
    let auth = basic("plain-app", &credential);
    let r = get_as(&gw, &url("open.test", open.port(), "/echo"), &[("proxy-authorization", &auth)]).await;
    let echo = r.echo();
    assert_eq!(echo["client_cert_sha256"], Value::Null, "no certificate was sent: {}", open.describe());
    assert!(open.last_request().unwrap().client_chain.is_empty());
    assert_eq!(open.last_request().unwrap().header("proxy-authorization"), None);
    // Still authenticated: no credential, no request.
    let r = get_as(&gw, &url("open.test", open.port(), "/echo"), &[]).await;
    r.gateway_error(407, "proxy-auth-required");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_requests_per_app() {
    let w = World::new();
    let billing = w.app("billing-app");
    w.cli(&["app", "grant", "billing-app", "alpha"]);
    let other = w.app("other-app");
    let up = w.partner().await;
    let gw = w.gateway_process().await;
    let target = url("partner.test", up.port(), "/echo");
    for _ in 0..3 {
        let r = get_as(&gw, &target, &[("proxy-authorization", &basic("billing-app", &billing))]).await;
        assert_eq!(r.status, 200, "{}", r.describe());
    }
    let r = get_as(&gw, &target, &[("proxy-authorization", &basic("other-app", &other))]).await;
    r.gateway_error(403, "not-granted");
    get_as(&gw, &target, &[]).await.gateway_error(407, "proxy-auth-required");
    let text = gw.metrics_text().await;
    let name = "certgate_requests_total";
    assert_eq!(
        metric(&text, name, &[("app", "billing-app"), ("outcome", "ok"), ("certificate", "alpha")]),
        Some(3.0),
        "{text}"
    );
    assert_eq!(metric(&text, name, &[("app", "other-app"), ("outcome", "not-granted")]), Some(1.0), "{text}");
    assert_eq!(metric(&text, name, &[("outcome", "proxy-auth-required")]), Some(1.0), "{text}");
    assert_eq!(metric(&text, name, &[("app", "billing-app"), ("outcome", "not-granted")]), None, "{text}");
}

#[test]
fn serve_refuses_a_proxy_listen_beyond_loopback_while_no_app_exists_before_listening() {
    let env = Env::new();
    // The admin port is taken: had serve listened before its check, it would fail on that.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let admin = taken.local_addr().unwrap().to_string();
    let proxy = "0.0.0.0:0".to_string();
    let run =
        run_bounded(&env, &["serve", "--proxy-listen", &proxy, "--admin-listen", &admin], Duration::from_secs(20));
    assert_eq!(run.code, 2, "exit code\nstdout: {}\nstderr: {}", run.stdout, run.stderr);
    assert!(run.stderr.contains("--unsafe-open-proxy"), "the refusal names --unsafe-open-proxy: {}", run.stderr);
    assert!(run.stderr.contains("certgate app add"), "and the other way out: {}", run.stderr);
    assert!(!run.stderr.contains("cannot listen"), "it refused before listening: {}", run.stderr);
    assert!(!run.stderr.contains("certgate serving"), "{}", run.stderr);
    let json = run_bounded(
        &env,
        &["--json", "serve", "--proxy-listen", &proxy, "--admin-listen", &admin],
        Duration::from_secs(20),
    );
    json.refused(2, "usage");
    drop(taken);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_with_unsafe_open_proxy_starts_on_a_proxy_address_beyond_loopback() {
    // An empty store: nothing is bound, so the open proxy can present no certificate.
    let env = Env::new();
    let opts = ServeOptions {
        args: vec!["--unsafe-open-proxy".into()],
        proxy_listen: Some(format!("0.0.0.0:{}", free_port())),
        ..Default::default()
    };
    // A process: the test reads what serve prints.
    let gw = Gateway::process_with(&env, &GatewayConfig::new(), opts).await;
    assert!(gw.log().contains("beyond loopback"), "serve warns about it:\n{}", gw.log());
    let r = gw.proxy_get("http://nothing.test/").await;
    r.gateway_error(403, "no-binding");
    drop(gw);
}

/// An upload without a credential is answered 407 before its body is read (the app retries with
/// one, as curl's `--proxy-anyauth` does). The 407 must be the only answer on that connection:
/// the body's rest, read when hyper drains it, is not a request head to refuse with a second
/// answer, and the connection ends with a close the client sees, not a reset before the 407.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_refused_407_before_its_body_was_read_gets_that_one_answer() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let w = World::new();
    let up = w.partner().await;
    w.app("billing-app");
    let gw = w.gateway().await;
    let target = url("partner.test", up.port(), "/echo");
    let proxy = gw.client().proxy;
    // A multipart upload, larger than the socket buffers and hyper's read buffer hold: most of it
    // is unread when the answer goes out, and its part headers end in blank lines as a head does.
    let part = "--b0undary\r\nContent-Disposition: form-data; name=\"f\"\r\n\r\n0123456789abcdef\r\n";
    let body = part.repeat(4 * 1024 * 1024 / part.len()).into_bytes();
    for round in 1..=3 {
        let mut stream = tokio::net::TcpStream::connect(proxy).await.unwrap();
        let head = format!(
            "POST {target} HTTP/1.1\r\nHost: partner.test:{}\r\nContent-Type: multipart/form-data; boundary=b0undary\r\nContent-Length: {}\r\n\r\n",
            up.port(),
            body.len()
        );
        let (mut rd, mut wr) = stream.split();
        let send = async {
            wr.write_all(head.as_bytes()).await?;
            wr.write_all(&body).await
        };
        let receive = async {
            let mut got = Vec::new();
            let read = tokio::time::timeout(Duration::from_secs(10), rd.read_to_end(&mut got)).await;
            (got, read)
        };
        let (sent, (got, read)) = tokio::join!(send, receive);
        let text = String::from_utf8_lossy(&got).into_owned();
        assert!(read.is_ok(), "round {round}: the connection did not end within 10 s; got {text}");
        assert!(read.unwrap().is_ok(), "round {round}: the connection was reset; got {text}");
        assert!(text.starts_with("HTTP/1.1 407 "), "round {round}: {text}");
        assert!(text.contains("proxy-auth-required"), "round {round}: {text}");
        assert_eq!(text.matches("HTTP/1.1 ").count(), 1, "round {round}: one answer only, got {text}");
        // The whole body could be written: the gateway read and dropped what it did not need.
        assert!(sent.is_ok(), "round {round}: sending the body failed: {sent:?}; got {text}");
    }
    assert_eq!(up.request_count(), 0, "nothing reached the partner: {}", up.describe());
}

/// curl as the calling app, negotiating its proxy credential (`--proxy-anyauth`): it sends the
/// upload without one first, gets the 407 (before the body was read), and sends it again with
/// `Basic`. The partner must receive the whole body once, with the bound certificate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_negotiating_its_proxy_credential_delivers_an_upload_whole() {
    let w = World::new();
    let up = w.partner().await;
    let credential = w.app("billing-app");
    w.cli(&["app", "grant", "billing-app", "alpha"]);
    let gw = w.gateway().await;
    for size in [100 * 1024, 3 * 1024 * 1024] {
        let body: Vec<u8> = (0..size as u32).map(|i| (i.wrapping_mul(2654435761) >> 24) as u8).collect();
        let file = w.env.file("upload.bin", &body);
        let target = url("partner.test", up.port(), "/echo");
        let proxy = gw.client().proxy_url();
        let user = format!("billing-app:{credential}");
        let out = tokio::task::spawn_blocking(move || {
            crate::support::nginx::curl()
                .args(["-sS", "--fail-with-body", "--max-time", "30", "-x", &proxy, "--proxy-anyauth", "-U", &user])
                .args(["-H", "Content-Type: application/octet-stream", "--data-binary"])
                .arg(format!("@{}", file.display()))
                .arg(&target)
                .output()
                .unwrap()
        })
        .await
        .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{size} bytes: curl {}: {stdout}{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr),
            gw.log()
        );
        let echo: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{size} bytes: {e}: {stdout}"));
        assert_eq!(echo["body_len"], size as u64, "{size} bytes: {echo}");
        assert_eq!(echo["body_sha256"], crate::support::sha256_hex(&body), "{size} bytes: {echo}");
        assert_eq!(echo["client_cert_sha256"], w.alpha.id(), "{size} bytes: {echo}");
    }
}
