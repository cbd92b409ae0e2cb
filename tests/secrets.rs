//! Secrets never print: scenarios that handle each kind of secret (an import password, an admin
//! token, an app credential, a console login, a proxy request with the credential, PostgreSQL
//! URLs with a password) run against the real binary with `CERTGATE_LOG=trace`; every log line
//! of the serving process, every CLI output (`--json` and plain, stdout and stderr) and every
//! API answer is searched for the secrets of the scenario.

use bytes::Bytes;
use http_body_util::Full;
use hyper::Request;
use serde_json::json;

use crate::support::gateway::{Gateway, GatewayConfig};
use crate::support::{fixtures, Env};

const IMPORT_PASSWORD: &str = "interop-pass";
const PG_PASSWORD: &str = "Pg-S3cret-Never-Shown";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_log_line_output_or_api_answer_shows_a_secret_even_at_trace_level() {
    let env = Env::new().var("CERTGATE_LOG", "trace");
    let mut seen: Vec<(String, String)> = Vec::new();
    let mut record = |what: &str, text: String| seen.push((what.to_string(), text));

    let p12 = fixtures().join("interop/openssl3-default-rsa2048.p12");
    for json in [true, false] {
        let mut args = vec!["cert", "import", if json { "with-json" } else { "plain" }, p12.to_str().unwrap()];
        args.extend(["--password-env", "PW"]);
        if json {
            args.insert(0, "--json");
        }
        let run = env.run_with_env(&args, &[("PW", IMPORT_PASSWORD)]);
        run.ok();
        record("cert import", format!("{}{}", run.stdout, run.stderr));
    }
    // A wrong password: the refusal must not echo it either.
    let run = env.run_with_env(
        &["--json", "cert", "import", "wrong", p12.to_str().unwrap(), "--password-env", "PW"],
        &[("PW", "Wrong-Pass-Never-Shown")],
    );
    assert_eq!(run.code, 3, "{}", run.stderr);
    record("cert import (wrong password)", format!("{}{}", run.stdout, run.stderr));

    let run = env.run(&["--json", "token", "create", "ops", "--role", "admin"]);
    run.ok();
    let token = run.json()["token"].as_str().expect("the token, shown once").to_string();
    let run = env.run(&["--json", "app", "add", "billing"]);
    run.ok();
    let credential = run.json()["credential"].as_str().expect("the credential, shown once").to_string();
    env.run(&["--json", "app", "grant", "billing", "with-json"]).ok();
    for args in [&["--json", "token", "list"][..], &["token", "list"], &["--json", "app", "list"], &["app", "list"]] {
        let run = env.run(args);
        run.ok();
        record("listing", format!("{}{}", run.stdout, run.stderr));
    }

    // PostgreSQL URLs with a password, on a port where nothing listens.
    let pg = format!("postgres://certgate:{PG_PASSWORD}@127.0.0.1:1/certgate");
    let pg_query = format!("postgres://127.0.0.1:1/certgate?password={PG_PASSWORD}");
    for url in [&pg, &pg_query] {
        let run =
            env.run_with_env(&["--json", "--store", url, "cert", "list"], &[("CERTGATE_MASTER_KEY", &"A".repeat(44))]);
        assert_ne!(run.code, 0);
        record("--store postgres", format!("{}{}", run.stdout, run.stderr));
        let from = format!("sqlite://{}", env.db_path().display());
        let run = env.run(&["store", "copy", "--from", &from, "--to", url]);
        assert_ne!(run.code, 0);
        record("store copy", format!("{}{}", run.stdout, run.stderr));
    }

    let gw = Gateway::process(&env, &GatewayConfig::new().resolve(&["partner.test"])).await;
    // Console login with the token; the API answers as that token.
    let login = Request::builder()
        .method("POST")
        .uri("/console/login")
        .header("host", "localhost")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(json!({"token": token}).to_string())))
        .unwrap();
    let r = gw.send(gw.admin, login).await;
    assert_eq!(r.status, 200, "{}", r.describe());
    record("login answer", format!("{:?} {}", r.headers, r.text()));
    for path in ["/api/v1/tokens", "/api/v1/apps", "/api/v1/certificates", "/api/v1/audit?limit=100", "/api/v1/whoami"]
    {
        let req = Request::builder()
            .uri(path)
            .header("host", "localhost")
            .header("authorization", format!("Bearer {token}"))
            .body(Full::new(Bytes::new()))
            .unwrap();
        let r = gw.send(gw.admin, req).await;
        assert_eq!(r.status, 200, "{path}: {}", r.describe());
        record(path, r.text());
    }
    // A proxy request carrying the app credential (to a host with no binding), and a wrong one.
    use base64::Engine;
    for cred in [credential.as_str(), "cga_wrong-credential-never-shown"] {
        let basic = base64::engine::general_purpose::STANDARD.encode(format!("billing:{cred}"));
        let r =
            gw.proxy("GET", "http://partner.test:1/x", &[("proxy-authorization", &format!("Basic {basic}"))], "").await;
        assert!(r.status == 403 || r.status == 407, "{}", r.describe());
        record("proxy answer", format!("{:?} {}", r.headers, r.text()));
    }
    let r = gw.admin_get("/metrics").await;
    record("/metrics", r.text());
    drop(r);
    let log = gw.log();
    assert!(log.len() < 900_000, "the whole log was kept for the search ({} bytes)", log.len());
    assert!(log.contains("TRACE") || log.contains("DEBUG"), "the gateway logged at trace level:\n{log}");
    record("serve log", log);

    let secrets = [
        ("import password", IMPORT_PASSWORD.to_string()),
        ("wrong import password", "Wrong-Pass-Never-Shown".to_string()),
        ("admin token", token.clone()),
        ("token body", token.trim_start_matches("cgt_").to_string()),
        ("app credential", credential.clone()),
        // Everything after the prefix (base64url may itself contain '_').
        ("credential body", credential.strip_prefix("cga_").unwrap_or(&credential).to_string()),
        ("wrong credential", "wrong-credential-never-shown".to_string()),
        ("PostgreSQL password", PG_PASSWORD.to_string()),
    ];
    for (what, text) in &seen {
        for (name, secret) in &secrets {
            assert!(secret.len() >= 12, "{name} is long enough to search for");
            assert!(!text.contains(secret.as_str()), "the {name} shows in {what}:\n{text}");
        }
    }
}
