//! The admin API (`/api/v1`) of a real `certgate serve`, as each role: authentication (401),
//! roles (403), every success path, and every refusal proven to change nothing (the revision
//! and the listings are the same before and after). Every answer is also checked against
//! the OpenAPI document (generated from the handlers) by `support::api` (documented status, media type and schema), and
//! the document itself is exercised with schemathesis.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use bytes::Bytes;
use http_body_util::Full;
use hyper::Request;
use serde_json::{json, Value};

use crate::support::api::{api_error, run_bounded, Api, Body, Part};
use crate::support::gateway::{Gateway, GatewayConfig, Resp, ServeOptions};
use crate::support::{fixtures, Env, LeafSpec, Minted, TestCa};

fn b64(data: impl AsRef<[u8]>) -> String {
    base64::engine::general_purpose::STANDARD.encode(data)
}

/// `certgate --json token create NAME --role ROLE`: the secret, shown once.
fn cli_token(env: &Env, name: &str, role: &str) -> String {
    let run = env.run(&["--json", "token", "create", name, "--role", role]);
    run.ok();
    let v = run.json();
    assert_eq!(v["name"], name, "{v}");
    assert_eq!(v["role"], role, "{v}");
    let token = v["token"].as_str().unwrap_or_else(|| panic!("no token in {v}")).to_string();
    assert!(token.starts_with("cgt_") && token.len() > 40, "token shape: {token}");
    token
}

/// A running gateway over a store that holds: certificate `alpha` (from the test CA, with its
/// chain), trust anchor `partner` (the test CA root), the binding `api.partner.test -> alpha`,
/// the service `Billing.Svc`, the app `caller` with a grant for `alpha`, and three tokens:
/// `root-admin` (admin), `ops` (operator) and `reader` (viewer).
struct Setup {
    env: Env,
    ca: TestCa,
    alpha: Minted,
    gw: Gateway,
    admin: Api,
    operator: Api,
    viewer: Api,
    caller_credential: String,
}

impl Setup {
    async fn new() -> Setup {
        let env = Env::new();
        let ca = TestCa::new("api");
        let alpha = ca.leaf(LeafSpec::client("alpha"));
        env.import_minted("alpha", &alpha, &ca.chain_pem()).ok();
        let root = env.file("partner-root.pem", &ca.root.cert_pem);
        env.run(&["trust", "add", "partner", root.to_str().unwrap()]).ok();
        env.run(&["bind", "api.partner.test", "alpha", "--trust", "ca:partner"]).ok();
        env.run(&[
            "service",
            "add",
            "Billing.Svc",
            "--url",
            "https://svc.partner.test/soap",
            "--cert",
            "alpha",
            "--trust",
            "ca:partner",
        ])
        .ok();
        let app = env.run(&["--json", "app", "add", "caller"]);
        app.ok();
        let caller_credential = app.json()["credential"].as_str().unwrap().to_string();
        env.run(&["app", "grant", "caller", "alpha"]).ok();
        // A key made inside certgate, waiting for its certificate (the CSR download route).
        env.run(&["cert", "request", "pending", "--subject", "CN=pending,O=certgate tests"]).ok();
        let admin = cli_token(&env, "root-admin", "admin");
        let operator = cli_token(&env, "ops", "operator");
        let viewer = cli_token(&env, "reader", "viewer");
        let gw = Gateway::start(&env, &GatewayConfig::new()).await;
        let client = gw.client();
        Setup {
            admin: Api::new(client.clone(), &admin),
            operator: Api::new(client.clone(), &operator),
            viewer: Api::new(client, &viewer),
            env,
            ca,
            alpha,
            gw,
            caller_credential,
        }
    }

    fn leaf(&self, cn: &str) -> Minted {
        self.ca.leaf(LeafSpec::client(cn))
    }

    /// The JSON import body: certificate and chain as `content`, the key as a separate `key`.
    fn import_json(&self, name: &str, leaf: &Minted) -> Value {
        json!({
            "name": name,
            "content": b64(format!("{}{}", leaf.cert_pem, self.ca.chain_pem())),
            "key": b64(&leaf.key_pem),
        })
    }

    /// Everything the API shows of the store, with its revision.
    async fn snapshot(&self) -> Value {
        let mut out = serde_json::Map::new();
        out.insert("revision".into(), json!(self.admin.revision().await));
        for what in ["certificates", "trust-anchors", "bindings", "services", "apps", "tokens"] {
            out.insert(what.into(), self.admin.ok(&format!("/api/v1/{what}")).await);
        }
        Value::Object(out)
    }

    /// The newest audit entry.
    async fn last_audit(&self) -> Value {
        let list = self.admin.ok("/api/v1/audit?limit=1").await;
        assert_eq!(list.as_array().map(Vec::len), Some(1), "audit?limit=1: {list}");
        list[0].clone()
    }
}

#[track_caller]
fn assert_unchanged(before: &Value, after: &Value, what: &str) {
    assert_eq!(before, after, "{what} changed the store");
}

/// Every route of the API with the role it needs and a valid request for the Setup store.
fn every_route(s: &Setup) -> Vec<(&'static str, &'static str, String, Option<Value>)> {
    let beta = s.leaf("beta");
    let rotated = s.leaf("alpha-2027");
    let mut rotate = s.import_json("alpha", &rotated);
    rotate.as_object_mut().unwrap().remove("name");
    vec![
        ("viewer", "GET", "/api/v1/whoami".into(), None),
        ("viewer", "GET", "/api/v1/revision".into(), None),
        ("viewer", "GET", "/api/v1/audit?limit=5".into(), None),
        ("viewer", "GET", "/api/v1/certificates".into(), None),
        ("admin", "POST", "/api/v1/certificates".into(), Some(s.import_json("beta", &beta))),
        ("viewer", "GET", "/api/v1/certificates/alpha".into(), None),
        ("admin", "PUT", "/api/v1/certificates/alpha".into(), Some(rotate)),
        ("admin", "DELETE", "/api/v1/certificates/alpha?force=true".into(), None),
        ("viewer", "GET", "/api/v1/certificates/alpha/export?format=pem&chain=true".into(), None),
        ("viewer", "GET", "/api/v1/certificates/alpha/check".into(), None),
        ("viewer", "GET", "/api/v1/trust-anchors".into(), None),
        (
            "admin",
            "POST",
            "/api/v1/trust-anchors".into(),
            Some(json!({"name": "other", "content": s.ca.intermediate.cert_pem})),
        ),
        ("viewer", "GET", "/api/v1/trust-anchors/partner".into(), None),
        ("admin", "DELETE", "/api/v1/trust-anchors/partner".into(), None),
        ("viewer", "GET", "/api/v1/bindings".into(), None),
        ("viewer", "GET", "/api/v1/bindings/api.partner.test".into(), None),
        ("operator", "PUT", "/api/v1/bindings/new.partner.test".into(), Some(json!({"certificate": "alpha"}))),
        ("operator", "DELETE", "/api/v1/bindings/api.partner.test".into(), None),
        // A partner that is not there (connection refused at once): a report all the same.
        ("operator", "POST", "/api/v1/probe".into(), Some(json!({"target": "127.0.0.1:1"}))),
        ("viewer", "GET", "/api/v1/services".into(), None),
        ("viewer", "GET", "/api/v1/services/Billing.Svc".into(), None),
        (
            "operator",
            "PUT",
            "/api/v1/services/Other.Svc".into(),
            Some(json!({"url": "https://other.partner.test/x", "certificate": null})),
        ),
        ("operator", "DELETE", "/api/v1/services/Billing.Svc".into(), None),
        ("viewer", "GET", "/api/v1/apps".into(), None),
        ("operator", "POST", "/api/v1/apps".into(), Some(json!({"name": "newapp"}))),
        ("viewer", "GET", "/api/v1/apps/caller".into(), None),
        ("operator", "DELETE", "/api/v1/apps/caller".into(), None),
        ("operator", "PUT", "/api/v1/apps/caller/grants/alpha".into(), None),
        ("operator", "DELETE", "/api/v1/apps/caller/grants/alpha".into(), None),
        ("admin", "GET", "/api/v1/tokens".into(), None),
        ("admin", "POST", "/api/v1/tokens".into(), Some(json!({"name": "extra", "role": "viewer"}))),
        ("admin", "DELETE", "/api/v1/tokens/reader".into(), None),
        ("admin", "POST", "/api/v1/apply".into(), Some(json!({"document": "", "dry_run": true}))),
        ("viewer", "GET", "/api/v1/expiry?within=30d".into(), None),
        ("admin", "PUT", "/api/v1/certificates/alpha/owner".into(), Some(json!({"owner": "payments"}))),
        ("admin", "PUT", "/api/v1/trust-anchors/partner/owner".into(), Some(json!({"owner": "payments"}))),
        ("viewer", "GET", "/api/v1/requests".into(), None),
        ("admin", "POST", "/api/v1/certificates/newkey/request".into(), Some(json!({"subject": "CN=newkey"}))),
        ("viewer", "GET", "/api/v1/certificates/pending/request".into(), None),
        ("admin", "POST", "/api/v1/certificates/pending/complete".into(), Some(json!({"content": "not yet"}))),
    ]
}

fn body_of(v: &Option<Value>) -> Body {
    match v {
        Some(v) => Body::Json(v.clone()),
        None => Body::Empty,
    }
}

// ---------------------------------------------------------------------------------------------
// Authentication and roles

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_api_route_answers_401_without_a_token_or_with_a_bad_one_and_changes_nothing() {
    let s = Setup::new().await;
    let before = s.snapshot().await;
    let anonymous = Api::anonymous(s.gw.client());
    for (_, method, path, body) in every_route(&s) {
        for auth in
            [None, Some("Bearer cgt_not-a-token-anyone-issued"), Some("Basic cmVhZGVyOnNlY3JldA=="), Some("Bearer ")]
        {
            let r = anonymous.raw(method, &path, auth, body_of(&body)).await;
            let e = api_error(&r, 401, "unauthorized");
            assert!(!e["hint"].as_str().unwrap().is_empty());
        }
    }
    // An app's proxy credential is not an API token.
    let r = anonymous.raw("GET", "/api/v1/whoami", Some(&format!("Bearer {}", s.caller_credential)), Body::Empty).await;
    api_error(&r, 401, "unauthorized");
    assert_unchanged(&before, &s.snapshot().await, "unauthenticated requests");
    // Only the document, health and metrics are public.
    let doc = anonymous.get("/api/v1/openapi.json").await;
    assert_eq!(doc.status, 200, "{}", doc.describe());
    assert_eq!(doc.json(), *crate::support::openapi::document());
    for public in ["/healthz", "/readyz", "/metrics"] {
        assert_eq!(s.gw.admin_get(public).await.status, 200, "{public}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_reads_everything_but_tokens_and_every_change_is_refused_with_403() {
    let s = Setup::new().await;
    let before = s.snapshot().await;
    for (needs, method, path, body) in every_route(&s) {
        let r = s.viewer.call(method, &path, body_of(&body)).await;
        if needs == "viewer" {
            assert_eq!(r.status, 200, "viewer {method} {path}: {}", r.describe());
        } else {
            let e = api_error(&r, 403, "forbidden");
            let message = e["message"].as_str().unwrap();
            assert!(message.contains("reader") && message.contains(needs), "{method} {path}: {message}");
        }
    }
    assert_unchanged(&before, &s.snapshot().await, "a viewer's refused changes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_cannot_import_certificates_add_anchors_or_manage_tokens() {
    let s = Setup::new().await;
    let before = s.snapshot().await;
    let mut refused = 0;
    for (needs, method, path, body) in every_route(&s) {
        if needs != "admin" {
            continue;
        }
        let r = s.operator.call(method, &path, body_of(&body)).await;
        api_error(&r, 403, "forbidden");
        refused += 1;
    }
    assert_eq!(refused, 13, "admin-only routes");
    // Multipart imports are refused as well, before the upload is read.
    let beta = s.leaf("beta");
    let form =
        vec![Part::text("name", "beta"), Part::file("file", "beta.pem", format!("{}{}", beta.cert_pem, beta.key_pem))];
    api_error(&s.operator.call("POST", "/api/v1/certificates", Body::Form(form)).await, 403, "forbidden");
    assert_unchanged(&before, &s.snapshot().await, "an operator's refused changes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_binds_destinations_adds_services_apps_and_grants() {
    let s = Setup::new().await;
    let op = &s.operator;
    let r = op.put_json("/api/v1/bindings/new.partner.test", json!({"certificate": "alpha"})).await;
    assert_eq!(Api::expect(&r, 201)["certificate"], "alpha");
    let r = op.put_json("/api/v1/services/Other.Svc", json!({"url": "https://other.partner.test/x"})).await;
    assert_eq!(Api::expect(&r, 201)["binding"], Value::Null);
    let r = op.post_json("/api/v1/apps", json!({"name": "newapp"})).await;
    assert_eq!(Api::expect(&r, 201)["name"], "newapp");
    let r = op.put("/api/v1/apps/newapp/grants/alpha").await;
    assert_eq!(Api::expect(&r, 200)["grants"], json!(["alpha"]));
    assert_eq!(s.last_audit().await["actor"], "api:ops");
    Api::expect(&op.delete("/api/v1/apps/newapp/grants/alpha").await, 200);
    Api::expect(&op.delete("/api/v1/apps/newapp").await, 204);
    Api::expect(&op.delete("/api/v1/services/Other.Svc").await, 204);
    Api::expect(&op.delete("/api/v1/bindings/new.partner.test").await, 204);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whoami_names_the_token_and_its_role() {
    let s = Setup::new().await;
    for (api, name, role) in
        [(&s.admin, "root-admin", "admin"), (&s.operator, "ops", "operator"), (&s.viewer, "reader", "viewer")]
    {
        let who = api.ok("/api/v1/whoami").await;
        assert_eq!((&who["name"], &who["role"]), (&json!(name), &json!(role)));
        assert!(who["proxy"].as_str().is_some_and(|p| p.starts_with("127.0.0.1:")), "{who}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_console_session_needs_the_csrf_token_for_changes() {
    let s = Setup::new().await;
    let gw = s.gw.client();
    let login = |body: Value| {
        Request::builder()
            .method("POST")
            .uri("/console/login")
            .header("host", gw.admin.to_string())
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body.to_string())))
            .unwrap()
    };
    let bad = gw.send(gw.admin, login(json!({"token": "cgt_nope"}))).await;
    assert_eq!(bad.status, 401, "{}", bad.describe());
    let r = gw.send(gw.admin, login(json!({"token": s.admin.token.clone().unwrap()}))).await;
    assert_eq!(r.status, 200, "{}", r.describe());
    let cookie = r.header("set-cookie").expect("a session cookie");
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), "{cookie}");
    assert!(!cookie.contains("Secure"), "plain HTTP: the cookie cannot be Secure: {cookie}");
    let session = cookie.split(';').next().unwrap().to_string();
    let csrf = r.json()["csrf"].as_str().unwrap().to_string();

    let with_cookie = |method: &str, path: &str, csrf: Option<&str>| {
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header("host", gw.admin.to_string())
            .header("cookie", session.clone())
            .header("content-type", "application/json");
        if let Some(c) = csrf {
            req = req.header("x-csrf-token", c);
        }
        req.body(Full::new(Bytes::from(json!({"name": "from-console"}).to_string()))).unwrap()
    };
    let who = gw.send(gw.admin, with_cookie("GET", "/api/v1/whoami", None)).await;
    assert_eq!((who.json()["name"].clone(), who.json()["role"].clone()), (json!("root-admin"), json!("admin")));
    let before = s.snapshot().await;
    for csrf in [None, Some("not-the-token")] {
        let r = gw.send(gw.admin, with_cookie("POST", "/api/v1/apps", csrf)).await;
        api_error(&r, 403, "csrf");
    }
    assert_unchanged(&before, &s.snapshot().await, "a change without the CSRF token");
    let r = gw.send(gw.admin, with_cookie("POST", "/api/v1/apps", Some(&csrf))).await;
    assert_eq!(r.status, 201, "{}", r.describe());
    assert_eq!(s.last_audit().await["actor"], "api:root-admin");
    // Revoking the token ends the session at once.
    s.env.run(&["token", "revoke", "root-admin"]).ok();
    let r = gw.send(gw.admin, with_cookie("GET", "/api/v1/whoami", None)).await;
    api_error(&r, 401, "unauthorized");
}

// ---------------------------------------------------------------------------------------------
// Certificates

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn importing_a_pfx_as_multipart_with_its_password_answers_201_with_the_certificate() {
    let s = Setup::new().await;
    let before = s.admin.revision().await;
    let pfx = std::fs::read(fixtures().join("interop/openssl3-default-rsa2048.p12")).unwrap();
    let form = vec![
        Part::text("name", "billing"),
        Part::file("file", "billing.pfx", pfx),
        Part::text("password", "interop-pass"),
        Part::text("owner", "payments team"),
    ];
    let r = s.admin.call("POST", "/api/v1/certificates", Body::Form(form)).await;
    let v = Api::expect(&r, 201);
    assert_eq!(v["name"], "billing");
    assert_eq!(v["id"], "0aa2b06c4c2c12a1d9bbc5258b021810fd9bdee7c7b43dc26971e4d909d5f9c5");
    assert_eq!(v["key_type"], "rsa");
    assert_eq!(v["key_bits"], 2048);
    assert_eq!(v["owner"], "payments team");
    assert_eq!(v["client_auth_eku"], true);
    assert_eq!(v["chain"].as_array().unwrap().len(), 2, "intermediate and root came with the file: {v}");
    assert_eq!(v["bindings"], json!([]));
    assert_eq!(s.admin.revision().await, before + 1);
    let audit = s.last_audit().await;
    assert_eq!((audit["actor"].as_str(), audit["action"].as_str()), (Some("api:root-admin"), Some("cert.import")));
    assert_eq!(audit["target"], "billing");
    // The same view from GET, list and the CLI.
    let shown = s.admin.ok("/api/v1/certificates/billing").await;
    assert_eq!(shown["id"], v["id"]);
    let listed = s.admin.ok("/api/v1/certificates").await;
    assert!(listed.as_array().unwrap().iter().any(|c| c["name"] == "billing" && c["id"] == v["id"]), "{listed}");
    let cli = s.env.run(&["--json", "cert", "show", "billing"]).json();
    assert_eq!(cli["id"], v["id"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn importing_json_base64_with_a_separate_key_file_answers_201() {
    let s = Setup::new().await;
    let beta = s.leaf("beta");
    let mut body = s.import_json("beta", &beta);
    body["owner"] = json!("integration team");
    let r = s.admin.post_json("/api/v1/certificates", body).await;
    let v = Api::expect(&r, 201);
    assert_eq!(v["id"], beta.id());
    assert_eq!(v["owner"], "integration team");
    assert_eq!(v["key_type"], "ec-p256");
    assert_eq!(v["warnings"], json!([]));
    assert_eq!(v["chain"][0]["id"], s.ca.intermediate.id());
    // The key was stored and matches.
    let check = s.admin.ok("/api/v1/certificates/beta/check").await;
    assert_eq!(check["key"]["present"], true);
    assert_eq!(check["key"]["matches"], true);
    // A key file in a multipart form works too.
    let gamma = s.leaf("gamma");
    let form = vec![
        Part::text("name", "gamma"),
        Part::file("file", "gamma.crt", gamma.cert_pem.clone()),
        Part::file("key", "gamma.key", gamma.key_pem.clone()),
    ];
    let v = Api::expect(&s.admin.call("POST", "/api/v1/certificates", Body::Form(form)).await, 201);
    assert_eq!(v["id"], gamma.id());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotating_keeps_the_name_bindings_and_grants_and_answers_200() {
    let s = Setup::new().await;
    let new = s.leaf("alpha-2027");
    let before = s.admin.revision().await;
    let form = vec![
        Part::file("file", "alpha-2027.pem", format!("{}{}", new.cert_pem, s.ca.chain_pem())),
        Part::file("key", "alpha-2027.key", new.key_pem.clone()),
    ];
    let v = Api::expect(&s.admin.call("PUT", "/api/v1/certificates/alpha", Body::Form(form)).await, 200);
    assert_eq!(v["name"], "alpha");
    assert_eq!(v["id"], new.id());
    assert_ne!(v["id"], s.alpha.id());
    assert_eq!(v["bindings"], json!(["api.partner.test", "service:Billing.Svc"]));
    assert_eq!(s.admin.ok("/api/v1/apps/caller").await["grants"], json!(["alpha"]));
    assert_eq!(s.admin.revision().await, before + 1);
    assert_eq!(s.last_audit().await["action"], "cert.rotate");
    // JSON works too, with or without the same name in the body.
    let newer = s.leaf("alpha-2028");
    let v = Api::expect(&s.admin.put_json("/api/v1/certificates/alpha", s.import_json("alpha", &newer)).await, 200);
    assert_eq!(v["id"], newer.id());

    let snapshot = s.snapshot().await;
    let other = s.leaf("other");
    let r = s.admin.put_json("/api/v1/certificates/alpha", s.import_json("beta", &other)).await;
    api_error(&r, 400, "usage");
    let r = s.admin.put_json("/api/v1/certificates/missing", s.import_json("missing", &other)).await;
    api_error(&r, 404, "not-found");
    assert_unchanged(&snapshot, &s.snapshot().await, "refused rotations");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_gives_the_public_part_as_pem_der_or_with_the_chain_and_never_the_key() {
    let s = Setup::new().await;
    let pem = s.admin.get("/api/v1/certificates/alpha/export").await;
    assert_eq!(pem.status, 200, "{}", pem.describe());
    assert_eq!(pem.header("content-type").as_deref(), Some("application/x-pem-file"));
    assert!(pem.header("content-disposition").unwrap().contains("alpha.pem"));
    let text = pem.text();
    assert_eq!(text.matches("BEGIN CERTIFICATE").count(), 1, "{text}");
    assert_eq!(text.trim(), s.alpha.cert_pem.trim().replace("\r\n", "\n"));

    let der = s.admin.get("/api/v1/certificates/alpha/export?format=der").await;
    assert_eq!(der.status, 200, "{}", der.describe());
    assert_eq!(der.header("content-type").as_deref(), Some("application/pkix-cert"));
    assert!(der.header("content-disposition").unwrap().contains("alpha.cer"));
    assert_eq!(der.body.as_ref(), s.alpha.der.as_slice());

    let chain = s.admin.get("/api/v1/certificates/alpha/export?format=pem&chain=true").await;
    assert_eq!(chain.status, 200, "{}", chain.describe());
    let text = chain.text();
    assert_eq!(text.matches("BEGIN CERTIFICATE").count(), 3, "leaf, intermediate, root: {text}");
    let intermediate_b64: String = s.ca.intermediate.cert_pem.lines().filter(|l| !l.starts_with("-----")).collect();
    assert!(text.replace('\n', "").contains(&intermediate_b64), "the intermediate is in the chain");
    for r in [&pem, &der, &chain] {
        assert!(!r.text().contains("PRIVATE KEY"), "an export never holds the key");
    }

    api_error(&s.admin.get("/api/v1/certificates/alpha/export?format=der&chain=true").await, 400, "usage");
    api_error(&s.admin.get("/api/v1/certificates/alpha/export?format=p12").await, 400, "usage");
    api_error(&s.admin.get("/api/v1/certificates/nothing/export").await, 404, "not-found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_reports_the_key_the_path_to_the_root_and_what_is_missing() {
    let s = Setup::new().await;
    let v = s.viewer.ok("/api/v1/certificates/alpha/check").await;
    assert_eq!(v["name"], "alpha");
    assert_eq!(v["id"], s.alpha.id());
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["key"]["present"], true);
    assert_eq!(v["key"]["matches"], true);
    assert_eq!(v["path_end"], "root");
    assert_eq!(v["missing_issuer"], Value::Null);
    let ids: Vec<&str> = v["path"].as_array().unwrap().iter().map(|l| l["id"].as_str().unwrap()).collect();
    assert_eq!(ids, vec![s.alpha.id(), s.ca.intermediate.id(), s.ca.root.id()]);
    assert_eq!(v["problems"], json!([]));

    // A certificate from another CA, imported without its chain.
    let other_ca = TestCa::new("elsewhere");
    let lone = other_ca.leaf(LeafSpec::client("lone"));
    let body = json!({"name": "lone", "content": b64(&lone.cert_pem), "key": b64(&lone.key_pem)});
    Api::expect(&s.admin.post_json("/api/v1/certificates", body).await, 201);
    let v = s.viewer.ok("/api/v1/certificates/lone/check").await;
    assert_eq!(v["ok"], false, "{v}");
    assert!(v["missing_issuer"].as_str().unwrap().contains("elsewhere intermediate"), "{v}");
    assert!(v["problems"].as_array().unwrap().iter().any(|p| p["code"] == "incomplete-chain"), "{v}");
    api_error(&s.viewer.get("/api/v1/certificates/nothing/check").await, 404, "not-found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn importing_a_stored_certificate_under_another_name_answers_201_with_a_warning_naming_it() {
    let s = Setup::new().await;
    let v = Api::expect(&s.admin.post_json("/api/v1/certificates", s.import_json("alpha-again", &s.alpha)).await, 201);
    assert_eq!(v["name"], "alpha-again");
    assert!(v["warnings"].as_array().unwrap().iter().any(|w| w == "already-stored"), "{v}");
    let w = v["warning_details"].as_array().unwrap().iter().find(|w| w["code"] == "already-stored").unwrap();
    assert!(w["message"].as_str().unwrap().contains("already stored as 'alpha'"), "{w}");
    assert!(!w["remedy"].as_str().unwrap().contains("certgate "), "API remedies name no command: {w}");
    // Imported all the same.
    assert_eq!(s.admin.ok("/api/v1/certificates/alpha-again").await["id"], v["id"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_a_bound_certificate_is_refused_with_409_unless_forced_and_force_drops_its_bindings() {
    let s = Setup::new().await;
    let before = s.snapshot().await;
    for path in ["/api/v1/certificates/alpha", "/api/v1/certificates/alpha?force=false"] {
        let e = api_error(&s.admin.delete(path).await, 409, "still-bound");
        assert!(e["message"].as_str().unwrap().contains("api.partner.test"), "{e}");
    }
    assert_unchanged(&before, &s.snapshot().await, "a refused removal");
    // An unbound certificate goes without force.
    let beta = s.leaf("beta");
    Api::expect(&s.admin.post_json("/api/v1/certificates", s.import_json("beta", &beta)).await, 201);
    Api::expect(&s.admin.delete("/api/v1/certificates/beta").await, 204);
    api_error(&s.admin.get("/api/v1/certificates/beta").await, 404, "not-found");

    let revision = s.admin.revision().await;
    Api::expect(&s.admin.delete("/api/v1/certificates/alpha?force=true").await, 204);
    assert_eq!(s.admin.revision().await, revision + 1);
    api_error(&s.admin.get("/api/v1/certificates/alpha").await, 404, "not-found");
    let bindings = s.admin.ok("/api/v1/bindings").await;
    assert!(bindings.as_array().unwrap().iter().all(|b| b["certificate"] != "alpha"), "{bindings}");
    let audit = s.last_audit().await;
    assert_eq!(audit["action"], "cert.remove");
    assert!(audit["detail"].as_str().unwrap().contains("api.partner.test"), "{audit}");
    api_error(&s.admin.delete("/api/v1/certificates/alpha").await, 404, "not-found");
}

// ---------------------------------------------------------------------------------------------
// Refusals: each one changes nothing

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_is_refused_with_422_wrong_password_and_changes_nothing() {
    let s = Setup::new().await;
    let before = s.snapshot().await;
    let pfx = std::fs::read(fixtures().join("interop/openssl3-default-rsa2048.p12")).unwrap();
    let form = vec![
        Part::text("name", "billing"),
        Part::file("file", "billing.pfx", pfx.clone()),
        Part::text("password", "wrong-pass"),
    ];
    let e = api_error(&s.admin.call("POST", "/api/v1/certificates", Body::Form(form)).await, 422, "wrong-password");
    assert!(e["message"].as_str().unwrap().contains("billing.pfx"), "the message names the upload: {e}");
    let body = json!({"name": "billing", "content": b64(&pfx), "password": "wrong-pass"});
    api_error(&s.admin.post_json("/api/v1/certificates", body).await, 422, "wrong-password");
    let body = json!({"name": "billing", "content": b64(&pfx)});
    api_error(&s.admin.post_json("/api/v1/certificates", body).await, 422, "password-required");
    let body = json!({"content": b64(&pfx), "password": "wrong-pass"});
    api_error(&s.admin.put_json("/api/v1/certificates/alpha", body).await, 422, "wrong-password");
    assert_unchanged(&before, &s.snapshot().await, "a wrong password");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_or_empty_file_is_refused_with_422_and_changes_nothing() {
    let s = Setup::new().await;
    let before = s.snapshot().await;
    let truncated = std::fs::read(fixtures().join("interop/refuse-truncated-openssl3-default-rsa2048.p12")).unwrap();
    let form = vec![
        Part::text("name", "broken"),
        Part::file("file", "broken.pfx", truncated),
        Part::text("password", "interop-pass"),
    ];
    api_error(&s.admin.call("POST", "/api/v1/certificates", Body::Form(form)).await, 422, "malformed");
    let garbage: Vec<u8> = (0..3000u32).map(|i| (i * 7919 % 251) as u8).collect();
    let body = json!({"name": "broken", "content": b64(&garbage)});
    api_error(&s.admin.post_json("/api/v1/certificates", body).await, 422, "malformed");
    let body = json!({"name": "empty", "content": ""});
    api_error(&s.admin.post_json("/api/v1/certificates", body).await, 422, "empty");
    let csr = std::fs::read(fixtures().join("interop/refuse-csr-rsa2048.csr")).unwrap();
    let body = json!({"name": "csr", "content": b64(&csr)});
    api_error(&s.admin.post_json("/api/v1/certificates", body).await, 422, "not-a-certificate");
    let lone = s.leaf("lone");
    let body = json!({"name": "nokey", "content": b64(&lone.cert_pem)});
    api_error(&s.admin.post_json("/api/v1/certificates", body).await, 422, "no-private-key");
    let other = s.leaf("other");
    let body = json!({"name": "mismatch", "content": b64(&lone.cert_pem), "key": b64(&other.key_pem)});
    api_error(&s.admin.post_json("/api/v1/certificates", body).await, 422, "key-mismatch");
    assert_unchanged(&before, &s.snapshot().await, "malformed files");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_over_one_mebibyte_is_refused_as_too_large_and_changes_nothing() {
    let s = Setup::new().await;
    let before = s.snapshot().await;
    let big = vec![b'A'; (1 << 20) + 1];
    let form = vec![Part::text("name", "big"), Part::file("file", "big.pfx", big.clone())];
    let e = api_error(&s.admin.call("POST", "/api/v1/certificates", Body::Form(form)).await, 422, "too-large");
    assert!(e["message"].as_str().unwrap().contains("1048577"), "{e}");
    let body = json!({"name": "big", "content": b64(&big)});
    api_error(&s.admin.post_json("/api/v1/certificates", body).await, 422, "too-large");
    let body = json!({"content": b64(&big)});
    api_error(&s.admin.put_json("/api/v1/certificates/alpha", body).await, 422, "too-large");
    assert_unchanged(&before, &s.snapshot().await, "too-large files");
}

/// An upload far over the body limit is refused from its length before its bytes are read: the
/// refusal must reach the uploader (a lingering close), not be lost to a connection reset while
/// the client is still sending, and a second upload right after must get the same answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_refused_before_its_body_was_read_gets_its_answer_not_a_reset() {
    let s = Setup::new().await;
    let before = s.snapshot().await;
    // More than loopback's socket buffers hold: the body cannot all be written before the answer.
    let big = vec![b'A'; 32 * 1024 * 1024];
    for round in 1..=3 {
        let r = s.admin.call("POST", "/api/v1/certificates", Body::Raw(Some("application/json"), big.clone())).await;
        let e = api_error(&r, 422, "too-large");
        assert!(e["message"].as_str().unwrap().contains("larger than"), "round {round}: {e}");
    }
    assert_unchanged(&before, &s.snapshot().await, "uploads over the body limit");
}

/// The CLI refuses a 2 MiB file as too-large (tests/fixtures/interop/README.md); an upload of
/// the same file must get the same refusal, not a broken-form or body-limit error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_two_mebibyte_upload_is_refused_as_too_large_like_in_the_cli_and_changes_nothing() {
    let s = Setup::new().await;
    let before = s.snapshot().await;
    let big: Vec<u8> = (0..2u32 << 20).map(|i| (i.wrapping_mul(2654435761) >> 24) as u8).collect();
    let mut wrong = Vec::new();
    let form = vec![Part::text("name", "big"), Part::file("file", "big.bin", big.clone())];
    let r = s.admin.call("POST", "/api/v1/certificates", Body::Form(form)).await;
    if r.status != 422 || r.json()["error"] != "too-large" {
        wrong.push(format!("multipart, 2 MiB file: {} {}", r.status, r.text()));
    }
    let body = json!({"name": "big", "content": b64(&big[..1_600_000])});
    let r = s.admin.post_json("/api/v1/certificates", body).await;
    if r.status != 422 || r.json()["error"] != "too-large" {
        wrong.push(format!("JSON, 1.6 MB file: {} {}", r.status, r.text()));
    }
    assert_unchanged(&before, &s.snapshot().await, "too-large uploads");
    assert!(wrong.is_empty(), "a file over 1 MiB must be refused as 422 too-large:\n{}", wrong.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_name_is_refused_with_400_invalid_name_and_changes_nothing() {
    let s = Setup::new().await;
    let before = s.snapshot().await;
    let beta = s.leaf("beta");
    let long = "n".repeat(129);
    for bad in ["has space", "slash/name", "", long.as_str(), "ünïcode"] {
        let r = s.admin.post_json("/api/v1/certificates", s.import_json(bad, &beta)).await;
        let e = api_error(&r, 400, "invalid-name");
        assert!(e["hint"].as_str().unwrap().contains("128"), "{e}");
        let r = s.admin.post_json("/api/v1/trust-anchors", json!({"name": bad, "content": s.ca.root.cert_pem})).await;
        api_error(&r, 400, "invalid-name");
        api_error(&s.operator.post_json("/api/v1/apps", json!({"name": bad})).await, 400, "invalid-name");
        api_error(
            &s.admin.post_json("/api/v1/tokens", json!({"name": bad, "role": "viewer"})).await,
            400,
            "invalid-name",
        );
    }
    let form = vec![
        Part::text("name", "bad name"),
        Part::file("file", "beta.pem", format!("{}{}", beta.cert_pem, beta.key_pem)),
    ];
    api_error(&s.admin.call("POST", "/api/v1/certificates", Body::Form(form)).await, 400, "invalid-name");
    let r = s.operator.put_json("/api/v1/services/bad%20name", json!({"url": "https://x.partner.test/"})).await;
    api_error(&r, 400, "invalid-name");
    api_error(&s.operator.put("/api/v1/apps/caller/grants/bad%20name").await, 400, "invalid-name");
    // Other usage errors of the bodies.
    api_error(&s.admin.post_json("/api/v1/tokens", json!({"name": "t", "role": "root"})).await, 400, "usage");
    let r = s.admin.post_json("/api/v1/certificates", json!({"content": b64(&beta.cert_pem)})).await;
    api_error(&r, 400, "usage");
    let r = s.admin.post_json("/api/v1/certificates", json!({"name": "x", "content": "not base64!"})).await;
    api_error(&r, 400, "usage");
    let r = s.admin.call("POST", "/api/v1/certificates", Body::Form(vec![Part::text("name", "nofile")])).await;
    api_error(&r, 400, "usage");
    let r =
        s.admin.call("POST", "/api/v1/certificates", Body::Raw(Some("application/json"), b"{not json".to_vec())).await;
    api_error(&r, 400, "usage");
    assert_unchanged(&before, &s.snapshot().await, "invalid names and bodies");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_field_is_refused_with_400_in_json_and_changes_nothing() {
    let s = Setup::new().await;
    let before = s.snapshot().await;
    let beta = s.leaf("beta");
    let mut import = s.import_json("beta", &beta);
    import["passphrase"] = json!("x");
    let cases: Vec<(&Api, &str, &str, Value)> = vec![
        (&s.admin, "POST", "/api/v1/certificates", import),
        (&s.admin, "POST", "/api/v1/trust-anchors", json!({"name": "n", "content": s.ca.root.cert_pem, "kind": "ca"})),
        (&s.operator, "PUT", "/api/v1/bindings/new.partner.test", json!({"certificate": "alpha", "cert": "alpha"})),
        (&s.operator, "PUT", "/api/v1/services/New.Svc", json!({"url": "https://n.partner.test/", "cert": "alpha"})),
        (&s.operator, "POST", "/api/v1/apps", json!({"name": "n", "grants": ["alpha"]})),
        (&s.admin, "POST", "/api/v1/tokens", json!({"name": "n", "role": "viewer", "secret": "mine"})),
    ];
    let mut wrong = Vec::new();
    for (api, method, path, body) in cases {
        let r = api.call(method, path, Body::Json(body)).await;
        let is_json = r.header("content-type").is_some_and(|c| c.starts_with("application/json"));
        if r.status != 400 || !is_json || r.json()["error"] != "usage" {
            wrong.push(format!("{method} {path}: {} {}", r.status, r.text()));
        }
    }
    let form = vec![
        Part::text("name", "beta"),
        Part::file("file", "beta.pem", format!("{}{}", beta.cert_pem, beta.key_pem)),
        Part::text("pasword", "typo"),
    ];
    let e = api_error(&s.admin.call("POST", "/api/v1/certificates", Body::Form(form)).await, 400, "usage");
    assert!(e["message"].as_str().unwrap().contains("pasword"), "{e}");
    assert_unchanged(&before, &s.snapshot().await, "unknown fields");
    assert!(
        wrong.is_empty(),
        "an unknown JSON field must be a 400 with {{\"error\": \"usage\", ...}} like every other refusal:\n{}",
        wrong.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_taken_name_is_refused_with_409_name_taken_and_changes_nothing() {
    let s = Setup::new().await;
    let before = s.snapshot().await;
    let other = s.leaf("other");
    let e =
        api_error(&s.admin.post_json("/api/v1/certificates", s.import_json("alpha", &other)).await, 409, "name-taken");
    assert!(e["message"].as_str().unwrap().contains("alpha"), "{e}");
    let r = s.admin.post_json("/api/v1/trust-anchors", json!({"name": "partner", "content": s.ca.root.cert_pem})).await;
    api_error(&r, 409, "name-taken");
    api_error(&s.operator.post_json("/api/v1/apps", json!({"name": "caller"})).await, 409, "name-taken");
    api_error(&s.admin.post_json("/api/v1/tokens", json!({"name": "ops", "role": "admin"})).await, 409, "name-taken");
    assert_unchanged(&before, &s.snapshot().await, "taken names");
    // The operator kept its role.
    assert_eq!(s.operator.ok("/api/v1/whoami").await["role"], "operator");
}

// ---------------------------------------------------------------------------------------------
// Trust anchors, bindings, services

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trust_anchors_are_added_as_pem_or_base64_der_shown_and_removed_unless_in_use() {
    let s = Setup::new().await;
    let other = TestCa::new("other partner");
    let v = Api::expect(
        &s.admin.post_json("/api/v1/trust-anchors", json!({"name": "other-pem", "content": other.root.cert_pem})).await,
        201,
    );
    assert_eq!(v["name"], "other-pem");
    assert_eq!(v["certificates"][0]["id"], other.root.id());
    assert_eq!(v["certificates"][0]["is_ca"], true);
    assert_eq!(v["certificates"][0]["self_signed"], true);
    assert_eq!(v["warnings"], json!([]));
    assert_eq!(s.last_audit().await["action"], "trust.add");
    let v = Api::expect(
        &s.admin
            .post_json("/api/v1/trust-anchors", json!({"name": "other-der", "content": b64(&other.intermediate.der)}))
            .await,
        201,
    );
    assert_eq!(v["certificates"][0]["id"], other.intermediate.id());
    assert_eq!(v["certificates"][0]["self_signed"], false);
    // A bundle with two certificates.
    let v = Api::expect(
        &s.admin.post_json("/api/v1/trust-anchors", json!({"name": "bundle", "content": other.chain_pem()})).await,
        201,
    );
    assert_eq!(v["certificates"].as_array().unwrap().len(), 2);
    // A leaf is accepted with a warning.
    let leaf = other.server(&["partner.other.test"]);
    let v = Api::expect(
        &s.admin.post_json("/api/v1/trust-anchors", json!({"name": "pinned-leaf", "content": leaf.cert_pem})).await,
        201,
    );
    assert!(v["warnings"][0].as_str().unwrap().contains("not a CA"), "{v}");

    let shown = s.viewer.ok("/api/v1/trust-anchors/other-pem").await;
    assert_eq!(shown["certificates"][0]["id"], other.root.id());
    let listed = s.viewer.ok("/api/v1/trust-anchors").await;
    let names: Vec<&str> = listed.as_array().unwrap().iter().map(|a| a["name"].as_str().unwrap()).collect();
    for n in ["partner", "other-pem", "other-der", "bundle", "pinned-leaf"] {
        assert!(names.contains(&n), "{n} in {names:?}");
    }

    let before = s.snapshot().await;
    let r = s.admin.post_json("/api/v1/trust-anchors", json!({"name": "key", "content": leaf.key_pem})).await;
    api_error(&r, 422, "not-a-certificate");
    let r =
        s.admin.post_json("/api/v1/trust-anchors", json!({"name": "junk", "content": b64(b"junk junk junk")})).await;
    assert_eq!(r.status, 422, "{}", r.describe());
    let e = api_error(&s.admin.delete("/api/v1/trust-anchors/partner").await, 409, "still-bound");
    assert!(e["message"].as_str().unwrap().contains("api.partner.test"), "{e}");
    api_error(&s.admin.get("/api/v1/trust-anchors/none").await, 404, "not-found");
    api_error(&s.admin.delete("/api/v1/trust-anchors/none").await, 404, "not-found");
    assert_unchanged(&before, &s.snapshot().await, "refused anchors");

    Api::expect(&s.admin.delete("/api/v1/trust-anchors/other-pem").await, 204);
    api_error(&s.admin.get("/api/v1/trust-anchors/other-pem").await, 404, "not-found");
    assert_eq!(s.last_audit().await["action"], "trust.remove");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn putting_a_binding_creates_it_with_201_and_replacing_it_answers_200() {
    let s = Setup::new().await;
    let op = &s.operator;
    let revision = s.admin.revision().await;
    let pin = s.alpha.spki_pin();
    let r = op
        .put_json(
            "/api/v1/bindings/new.partner.test:8443",
            json!({"certificate": "alpha", "trust": "ca:partner", "sni": "sni.partner.test", "pins": [pin],
                   "allow_renegotiation": true}),
        )
        .await;
    let v = Api::expect(&r, 201);
    assert_eq!(
        v,
        json!({"destination": "new.partner.test:8443", "certificate": "alpha", "certificates": ["alpha"],
               "trust": "ca:partner", "sni": "sni.partner.test", "pins": [pin], "allow_renegotiation": true,
               "replaced": false})
    );
    assert_eq!(s.admin.revision().await, revision + 1);
    assert_eq!(s.last_audit().await["actor"], "api:ops");
    // Replace it with no certificate: 200, certificate null.
    let v =
        Api::expect(&op.put_json("/api/v1/bindings/new.partner.test:8443", json!({"certificate": null})).await, 200);
    assert_eq!(v["certificate"], Value::Null);
    assert_eq!(v["replaced"], true);
    assert_eq!(v["trust"], "public");
    let shown = s.viewer.ok("/api/v1/bindings/new.partner.test:8443").await;
    assert_eq!(
        shown,
        json!({"destination": "new.partner.test:8443", "certificate": null, "certificates": [], "trust": "public",
               "sni": null, "pins": [], "allow_renegotiation": false})
    );
    let cli = s.env.run(&["--json", "bindings"]).json();
    assert!(
        cli.as_array()
            .unwrap()
            .iter()
            .any(|b| b["destination"] == "new.partner.test:8443" && b["certificate"].is_null()),
        "{cli}"
    );
    // Wildcards and URLs (reduced to host[:port], which the answer says).
    let v = Api::expect(&op.put_json("/api/v1/bindings/*.partner.test", json!({"certificate": "alpha"})).await, 201);
    assert_eq!(v["destination"], "*.partner.test");
    let url = "https%3A%2F%2Furl.partner.test%2Fsoap%2Fx";
    let v = Api::expect(&op.put_json(&format!("/api/v1/bindings/{url}"), json!({"certificate": "alpha"})).await, 201);
    assert_eq!(v["destination"], "url.partner.test");
    assert_eq!(v["reduced_from"], "https://url.partner.test/soap/x");

    Api::expect(&op.delete("/api/v1/bindings/new.partner.test:8443").await, 204);
    api_error(&s.viewer.get("/api/v1/bindings/new.partner.test:8443").await, 404, "not-found");
    api_error(&op.delete("/api/v1/bindings/new.partner.test:8443").await, 404, "not-found");
    assert_eq!(s.last_audit().await["action"], "unbind");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_binding_without_the_certificate_field_or_to_something_unknown_is_refused_and_changes_nothing() {
    let s = Setup::new().await;
    let before = s.snapshot().await;
    let op = &s.operator;
    let path = "/api/v1/bindings/api.partner.test";
    let e = api_error(&op.put_json(path, json!({"trust": "public"})).await, 400, "usage");
    assert!(e["message"].as_str().unwrap().contains("certificate"), "{e}");
    api_error(&op.put_json(path, json!({"certificate": "nothing"})).await, 404, "not-found");
    api_error(&op.put_json(path, json!({"certificate": "alpha", "trust": "ca:nothing"})).await, 404, "not-found");
    api_error(&op.put_json(path, json!({"certificate": "alpha", "trust": "everyone"})).await, 400, "usage");
    api_error(&op.put_json(path, json!({"certificate": "alpha", "pins": ["md5/abc"]})).await, 400, "usage");
    api_error(&op.put_json(path, json!({"certificate": "alpha", "sni": "10.0.0.1"})).await, 400, "usage");
    // A named service's binding can be changed here, but only when the service exists
    // (docs/decisions.md).
    api_error(
        &op.put_json("/api/v1/bindings/service:No.Such.Svc", json!({"certificate": "alpha"})).await,
        404,
        "not-found",
    );
    api_error(&op.put_json("/api/v1/bindings/bad%20host", json!({"certificate": "alpha"})).await, 400, "usage");
    assert_unchanged(&before, &s.snapshot().await, "refused bindings");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_are_created_with_201_replaced_with_200_shown_and_removed() {
    let s = Setup::new().await;
    let op = &s.operator;
    let body = json!({"url": "https://inv.partner.test/soap/invoice/", "certificate": "alpha", "trust": "ca:partner"});
    let v = Api::expect(&op.put_json("/api/v1/services/Invoice.Svc", body).await, 201);
    assert_eq!(v["name"], "Invoice.Svc");
    assert_eq!(v["url"], "https://inv.partner.test/soap/invoice");
    assert_eq!(v["replaced"], false);
    assert_eq!(v["binding"]["destination"], "service:Invoice.Svc");
    assert_eq!(v["binding"]["certificate"], "alpha");
    assert_eq!(v["binding"]["trust"], "ca:partner");
    let v = Api::expect(
        &op.put_json(
            "/api/v1/services/Invoice.Svc",
            json!({"url": "https://inv.partner.test/v2", "certificate": null}),
        )
        .await,
        200,
    );
    assert_eq!(v["replaced"], true);
    assert_eq!(v["binding"]["certificate"], Value::Null);
    let shown = s.viewer.ok("/api/v1/services/Invoice.Svc").await;
    assert_eq!(shown["url"], "https://inv.partner.test/v2");
    assert!(shown.get("replaced").is_none(), "{shown}");
    let listed = s.viewer.ok("/api/v1/services").await;
    assert_eq!(listed.as_array().unwrap().len(), 2, "{listed}");

    let before = s.snapshot().await;
    let svc = "/api/v1/services/Invoice.Svc";
    api_error(&op.put_json(svc, json!({"url": "http://inv.partner.test/"})).await, 400, "usage");
    api_error(&op.put_json(svc, json!({"url": "https://inv.partner.test/?q=1"})).await, 400, "usage");
    api_error(&op.put_json(svc, json!({"url": "not a url"})).await, 400, "usage");
    api_error(&op.put_json(svc, json!({"url": "https://inv.partner.test/", "trust": "public"})).await, 400, "usage");
    api_error(
        &op.put_json(svc, json!({"url": "https://inv.partner.test/", "certificate": "nothing"})).await,
        404,
        "not-found",
    );
    api_error(&s.viewer.get("/api/v1/services/Nothing").await, 404, "not-found");
    api_error(&op.delete("/api/v1/services/Nothing").await, 404, "not-found");
    assert_unchanged(&before, &s.snapshot().await, "refused services");

    Api::expect(&op.delete(svc).await, 204);
    api_error(&s.viewer.get(svc).await, 404, "not-found");
    assert_eq!(s.last_audit().await["action"], "service.remove");
}

// ---------------------------------------------------------------------------------------------
// Apps, grants and tokens

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_credential_is_shown_once_and_grants_are_put_and_revoked() {
    let s = Setup::new().await;
    let op = &s.operator;
    let created = Api::expect(&op.post_json("/api/v1/apps", json!({"name": "invoicing"})).await, 201);
    let credential = created["credential"].as_str().unwrap();
    assert!(credential.starts_with("cga_") && credential.len() > 40, "{created}");
    assert_eq!(created.as_object().unwrap().len(), 2, "name and credential: {created}");
    let shown = s.viewer.ok("/api/v1/apps/invoicing").await;
    assert_eq!(shown["name"], "invoicing");
    assert_eq!(shown["grants"], json!([]));
    assert!(!shown.to_string().contains(credential), "the credential is shown once: {shown}");
    let listed = s.viewer.ok("/api/v1/apps").await;
    assert!(!listed.to_string().contains(credential), "{listed}");
    assert!(!s.last_audit().await.to_string().contains(credential));

    let beta = s.leaf("beta");
    Api::expect(&s.admin.post_json("/api/v1/certificates", s.import_json("beta", &beta)).await, 201);
    let v = Api::expect(&op.put("/api/v1/apps/invoicing/grants/alpha").await, 200);
    assert_eq!(v["grants"], json!(["alpha"]));
    let v = Api::expect(&op.put("/api/v1/apps/invoicing/grants/beta").await, 200);
    let mut grants: Vec<String> = serde_json::from_value(v["grants"].clone()).unwrap();
    grants.sort();
    assert_eq!(grants, ["alpha", "beta"]);
    let audit = s.last_audit().await;
    assert_eq!((audit["action"].as_str(), audit["actor"].as_str()), (Some("app.grant"), Some("api:ops")));

    let before = s.snapshot().await;
    api_error(&op.put("/api/v1/apps/invoicing/grants/nothing").await, 404, "not-found");
    api_error(&op.put("/api/v1/apps/nobody/grants/alpha").await, 404, "not-found");
    api_error(&op.delete("/api/v1/apps/nobody/grants/alpha").await, 404, "not-found");
    api_error(&s.viewer.get("/api/v1/apps/nobody").await, 404, "not-found");
    assert_unchanged(&before, &s.snapshot().await, "refused grants");

    let v = Api::expect(&op.delete("/api/v1/apps/invoicing/grants/alpha").await, 200);
    assert_eq!(v["grants"], json!(["beta"]));
    assert_eq!(s.last_audit().await["action"], "app.revoke");
    api_error(&op.delete("/api/v1/apps/invoicing/grants/alpha").await, 404, "not-found");
    Api::expect(&op.delete("/api/v1/apps/invoicing").await, 204);
    api_error(&s.viewer.get("/api/v1/apps/invoicing").await, 404, "not-found");
    api_error(&op.delete("/api/v1/apps/invoicing").await, 404, "not-found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_created_over_the_api_works_at_once_and_gets_401_as_soon_as_it_is_revoked() {
    let s = Setup::new().await;
    let created =
        Api::expect(&s.admin.post_json("/api/v1/tokens", json!({"name": "ci", "role": "operator"})).await, 201);
    assert_eq!(created["name"], "ci");
    assert_eq!(created["role"], "operator");
    let secret = created["token"].as_str().unwrap().to_string();
    assert!(secret.starts_with("cgt_"), "{created}");
    let ci = s.admin.as_token(&secret);
    assert_eq!(ci.ok("/api/v1/whoami").await["name"], "ci");
    Api::expect(&ci.post_json("/api/v1/apps", json!({"name": "made-by-ci"})).await, 201);
    assert_eq!(s.last_audit().await["actor"], "api:ci");

    let tokens = s.admin.ok("/api/v1/tokens").await;
    let names: Vec<(&str, &str)> =
        tokens.as_array().unwrap().iter().map(|t| (t["name"].as_str().unwrap(), t["role"].as_str().unwrap())).collect();
    for want in [("root-admin", "admin"), ("ops", "operator"), ("reader", "viewer"), ("ci", "operator")] {
        assert!(names.contains(&want), "{want:?} in {names:?}");
    }
    assert!(!tokens.to_string().contains(&secret), "tokens are not listed with their secret");
    let cli = s.env.run(&["--json", "token", "list"]).json();
    assert!(cli.as_array().unwrap().iter().any(|t| t["name"] == "ci"), "{cli}");

    Api::expect(&s.admin.delete("/api/v1/tokens/ci").await, 204);
    assert_eq!(s.last_audit().await["action"], "token.revoke");
    let r = ci.get("/api/v1/whoami").await;
    let e = api_error(&r, 401, "unauthorized");
    assert!(e["message"].as_str().unwrap().contains("revoked"), "{e}");
    api_error(&ci.post_json("/api/v1/apps", json!({"name": "after-revoke"})).await, 401, "unauthorized");
    api_error(&s.admin.delete("/api/v1/tokens/ci").await, 404, "not-found");
    // An admin can revoke its own token too; it stops working at once.
    Api::expect(&s.admin.delete("/api/v1/tokens/root-admin").await, 204);
    api_error(&s.admin.get("/api/v1/revision").await, 401, "unauthorized");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_change_is_audited_under_the_token_name_and_moves_the_revision_by_one() {
    let s = Setup::new().await;
    let beta = s.leaf("beta");
    let changes: Vec<(&Api, &str, String, Body, &str, &str)> = vec![
        (
            &s.admin,
            "POST",
            "/api/v1/certificates".into(),
            Body::Json(s.import_json("beta", &beta)),
            "cert.import",
            "api:root-admin",
        ),
        (
            &s.operator,
            "PUT",
            "/api/v1/bindings/b.partner.test".into(),
            Body::Json(json!({"certificate": "beta"})),
            "bind",
            "api:ops",
        ),
        (
            &s.operator,
            "PUT",
            "/api/v1/services/B.Svc".into(),
            Body::Json(json!({"url": "https://b.partner.test/"})),
            "service.add",
            "api:ops",
        ),
        (&s.operator, "POST", "/api/v1/apps".into(), Body::Json(json!({"name": "b-app"})), "app.add", "api:ops"),
        (&s.operator, "PUT", "/api/v1/apps/b-app/grants/beta".into(), Body::Empty, "app.grant", "api:ops"),
        (
            &s.admin,
            "POST",
            "/api/v1/trust-anchors".into(),
            Body::Json(json!({"name": "b-root", "content": s.ca.root.cert_pem})),
            "trust.add",
            "api:root-admin",
        ),
        (
            &s.admin,
            "POST",
            "/api/v1/tokens".into(),
            Body::Json(json!({"name": "b-token", "role": "viewer"})),
            "token.create",
            "api:root-admin",
        ),
        (&s.admin, "DELETE", "/api/v1/tokens/b-token".into(), Body::Empty, "token.revoke", "api:root-admin"),
        (&s.operator, "DELETE", "/api/v1/apps/b-app/grants/beta".into(), Body::Empty, "app.revoke", "api:ops"),
        (&s.operator, "DELETE", "/api/v1/apps/b-app".into(), Body::Empty, "app.remove", "api:ops"),
        (&s.operator, "DELETE", "/api/v1/services/B.Svc".into(), Body::Empty, "service.remove", "api:ops"),
        (&s.operator, "DELETE", "/api/v1/bindings/b.partner.test".into(), Body::Empty, "unbind", "api:ops"),
        (&s.admin, "DELETE", "/api/v1/trust-anchors/b-root".into(), Body::Empty, "trust.remove", "api:root-admin"),
        (&s.admin, "DELETE", "/api/v1/certificates/beta".into(), Body::Empty, "cert.remove", "api:root-admin"),
    ];
    for (api, method, path, body, action, actor) in changes {
        let before = s.admin.revision().await;
        let r = api.call(method, &path, body).await;
        assert!((200..300).contains(&r.status), "{method} {path}: {}", r.describe());
        let after = s.admin.revision().await;
        assert_eq!(after, before + 1, "{method} {path} moves the revision by one");
        let audit = s.last_audit().await;
        assert_eq!(audit["action"], action, "{method} {path}: {audit}");
        assert_eq!(audit["actor"], actor, "{method} {path}: {audit}");
        assert_eq!(audit["result"], "ok");
        assert_eq!(audit["revision"], after, "{audit}");
    }
    let all = s.viewer.ok("/api/v1/audit").await;
    let three = s.viewer.ok("/api/v1/audit?limit=3").await;
    assert_eq!(three.as_array().unwrap().len(), 3);
    assert_eq!(three[0], all[0], "newest first");
    assert!(all[0]["seq"].as_i64() > all[1]["seq"].as_i64());
    // The CLI reads the same log.
    let cli = s.env.run(&["--json", "audit", "--limit", "1"]).json();
    assert_eq!(cli[0]["actor"], "api:root-admin");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_api_routes_answer_404_in_json() {
    let s = Setup::new().await;
    for path in ["/api/v1/nothing", "/api/v1/certificates/alpha/private-key", "/api/v2/certificates"] {
        let r = s.admin.get(path).await;
        assert_eq!(r.status, 404, "{path}: {}", r.describe());
        if path.starts_with("/api/v1/") {
            api_error(&r, 404, "not-found");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_lists_every_route_with_its_auth_errors() {
    let doc = crate::support::openapi::document();
    let s = Setup::new().await;
    let mut documented = std::collections::BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            if method == "parameters" {
                continue;
            }
            documented.insert(format!("{} {path}", method.to_uppercase()));
            let responses = op["responses"].as_object().unwrap();
            if path != "/openapi.json" {
                assert!(responses.contains_key("401"), "{method} {path} documents 401");
                if method != "get" || path == "/tokens" {
                    assert!(responses.contains_key("403"), "{method} {path} documents 403");
                }
            }
        }
    }
    let mut served = std::collections::BTreeSet::new();
    for (_, method, path, _) in every_route(&s) {
        let template = crate::support::openapi::template_for(&path).unwrap_or_else(|| panic!("{path} in the document"));
        served.insert(format!("{method} {template}"));
    }
    served.insert("GET /openapi.json".into());
    assert_eq!(documented, served, "the document lists exactly the routes of src/admin/mod.rs");
    assert_eq!(doc["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");
}

// ---------------------------------------------------------------------------------------------
// HTTPS admin listener

async fn login(gw: &crate::support::gateway::GatewayClient, token: &str) -> Resp {
    let req = Request::builder()
        .method("POST")
        .uri("/console/login")
        .header("host", "localhost")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(json!({"token": token}).to_string())))
        .unwrap();
    gw.send(gw.admin, req).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_listener_serves_https_with_admin_tls_cert_and_the_session_cookie_is_secure() {
    let env = Env::new();
    let ca = TestCa::new("admin tls");
    let server = ca.server(&["localhost"]);
    env.import_minted("admin-tls", &server, &ca.chain_pem()).ok();
    let token = cli_token(&env, "root-admin", "admin");
    let opts = ServeOptions {
        args: vec!["--admin-tls-cert".into(), "admin-tls".into()],
        admin_tls_root: Some(ca.root.der.clone()),
        ..Default::default()
    };
    // A process: the test reads what serve prints.
    let gw = Gateway::process_with(&env, &GatewayConfig::new(), opts).await;
    assert!(gw.log().contains(&format!("https://{}", gw.admin)), "serve says it serves HTTPS:\n{}", gw.log());
    let api = Api::new(gw.client(), &token);
    assert_eq!(api.ok("/api/v1/whoami").await["role"], "admin");
    api_error(&Api::anonymous(gw.client()).get("/api/v1/whoami").await, 401, "unauthorized");
    let r = login(&gw.client(), &token).await;
    assert_eq!(r.status, 200, "{}", r.describe());
    let cookie = r.header("set-cookie").expect("a session cookie");
    assert!(cookie.contains("; Secure"), "over HTTPS the session cookie is Secure: {cookie}");
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), "{cookie}");
    // An upload refused before its body was read gets its answer over TLS too (the lingering
    // close drops the encrypted rest after close_notify).
    let big = vec![b'A'; 16 * 1024 * 1024];
    for _ in 0..2 {
        let r = api.call("POST", "/api/v1/certificates", Body::Raw(Some("application/json"), big.clone())).await;
        api_error(&r, 422, "too-large");
    }

    // Plain HTTP on the same port gets no answer.
    let plain = async {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut tcp = tokio::net::TcpStream::connect(gw.admin).await.ok()?;
        tcp.write_all(b"GET /healthz HTTP/1.1\r\nhost: localhost\r\n\r\n").await.ok()?;
        let mut buf = vec![0u8; 64];
        let n = tcp.read(&mut buf).await.ok()?;
        Some(String::from_utf8_lossy(&buf[..n]).into_owned())
    };
    let answer = tokio::time::timeout(Duration::from_secs(15), plain).await.ok().flatten().unwrap_or_default();
    assert!(!answer.starts_with("HTTP/1.1 200"), "plain HTTP must not be served: {answer}");
}

#[test]
fn serve_refuses_an_admin_tls_cert_that_does_not_exist() {
    let env = Env::new();
    cli_token(&env, "root-admin", "admin");
    // Port 0: serve refuses before it listens.
    let (admin, proxy) = ("127.0.0.1:0", "127.0.0.1:0");
    let run = run_bounded(
        &env,
        &["--json", "serve", "--proxy-listen", proxy, "--admin-listen", admin, "--admin-tls-cert", "nothing"],
        Duration::from_secs(20),
    );
    run.refused(4, "not-found");
}

// ---------------------------------------------------------------------------------------------
// The document under schemathesis

/// Runs `tests/api/schemathesis.sh` against a fresh `certgate serve`: every operation with
/// positive and negative data; no 5xx, and every response matches the document.
#[test]
fn openapi_document_holds_under_schemathesis() {
    let installed = Command::new("schemathesis").arg("--version").output();
    match installed {
        Ok(out) if out.status.success() => {}
        _ => panic!("schemathesis is not installed: pip install schemathesis (it checks the generated OpenAPI document against the server)"),
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/api/schemathesis.sh");
    let mut child = Command::new("timeout")
        .args(["--kill-after=10", "420", "bash", script, env!("CARGO_BIN_EXE_certgate")])
        .env("SCHEMATHESIS_TIMEOUT", "300")
        .env_remove("CERTGATE_STORE")
        .env_remove("CERTGATE_CONFIG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run bash tests/api/schemathesis.sh");
    let started = Instant::now();
    let out_pipe = child.stdout.take().unwrap();
    let err_pipe = child.stderr.take().unwrap();
    let read = |mut p: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = p.read_to_string(&mut s);
            s
        })
    };
    let (out, err) = (read(Box::new(out_pipe)), read(Box::new(err_pipe)));
    let status = child.wait().expect("wait for schemathesis.sh");
    let (out, err) = (out.join().unwrap_or_default(), err.join().unwrap_or_default());
    let summary: Vec<&str> =
        out.lines().filter(|l| l.contains("generated") || l.contains("issues") || l.contains("passed")).collect();
    eprintln!("schemathesis ({:?}): {}", started.elapsed(), summary.join(" | "));
    assert!(status.success(), "schemathesis found problems ({status}):\n{out}\n--- stderr:\n{err}");
    assert!(out.contains("No issues found"), "schemathesis did not report a clean run:\n{out}\n{err}");
}
