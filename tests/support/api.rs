//! A client of the admin API (`/api/v1`) of a running `certgate serve`: bearer tokens, JSON,
//! raw and multipart bodies. Every answer is checked against `the OpenAPI document`
//! (documented status, media type and JSON schema) before the test sees it.

use bytes::Bytes;
use http_body_util::Full;
use hyper::Request;
use serde_json::Value;

use super::gateway::{GatewayClient, Resp};
use super::openapi;

/// One field of a multipart form.
pub struct Part {
    pub name: String,
    pub filename: Option<String>,
    pub data: Vec<u8>,
}

impl Part {
    pub fn text(name: &str, value: &str) -> Part {
        Part { name: name.into(), filename: None, data: value.as_bytes().to_vec() }
    }
    pub fn file(name: &str, filename: &str, data: impl Into<Vec<u8>>) -> Part {
        Part { name: name.into(), filename: Some(filename.into()), data: data.into() }
    }
}

pub enum Body {
    Empty,
    Json(Value),
    /// A body with this content type (or none).
    Raw(Option<&'static str>, Vec<u8>),
    Form(Vec<Part>),
}

const BOUNDARY: &str = "certgate-test-boundary-7d1f0c";

fn multipart(parts: &[Part]) -> Vec<u8> {
    let mut out = Vec::new();
    for p in parts {
        out.extend_from_slice(format!("--{BOUNDARY}\r\n").as_bytes());
        match &p.filename {
            Some(f) => out.extend_from_slice(
                format!(
                    "Content-Disposition: form-data; name=\"{}\"; filename=\"{f}\"\r\nContent-Type: application/octet-stream\r\n\r\n",
                    p.name
                )
                .as_bytes(),
            ),
            None => out.extend_from_slice(format!("Content-Disposition: form-data; name=\"{}\"\r\n\r\n", p.name).as_bytes()),
        }
        out.extend_from_slice(&p.data);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    out
}

/// The admin API of one gateway, as one token (or none).
#[derive(Clone)]
pub struct Api {
    pub gw: GatewayClient,
    pub token: Option<String>,
}

impl Api {
    pub fn new(gw: GatewayClient, token: &str) -> Api {
        Api { gw, token: Some(token.to_string()) }
    }
    pub fn anonymous(gw: GatewayClient) -> Api {
        Api { gw, token: None }
    }
    pub fn as_token(&self, token: &str) -> Api {
        Api::new(self.gw.clone(), token)
    }

    /// Send a request with `Authorization: VALUE` as given (or none) and check the answer
    /// against the OpenAPI document.
    pub async fn raw(&self, method: &str, path: &str, authorization: Option<&str>, body: Body) -> Resp {
        let mut req = Request::builder().method(method).uri(path).header("host", self.gw.admin.to_string());
        if let Some(a) = authorization {
            req = req.header("authorization", a);
        }
        let bytes = match body {
            Body::Empty => Vec::new(),
            Body::Json(v) => {
                req = req.header("content-type", "application/json");
                serde_json::to_vec(&v).unwrap()
            }
            Body::Raw(ctype, data) => {
                if let Some(c) = ctype {
                    req = req.header("content-type", c);
                }
                data
            }
            Body::Form(parts) => {
                req = req.header("content-type", format!("multipart/form-data; boundary={BOUNDARY}"));
                multipart(&parts)
            }
        };
        let resp = self.gw.send(self.gw.admin, req.body(Full::new(Bytes::from(bytes))).unwrap()).await;
        let ctype = resp.header("content-type");
        let problems = openapi::check_response(method, path, resp.status, ctype.as_deref(), &resp.body);
        assert!(
            problems.is_empty(),
            "the answer to {method} {path} does not match the OpenAPI document:\n  {}\n{}",
            problems.join("\n  "),
            resp.describe()
        );
        resp
    }

    pub async fn call(&self, method: &str, path: &str, body: Body) -> Resp {
        let auth = self.token.as_ref().map(|t| format!("Bearer {t}"));
        self.raw(method, path, auth.as_deref(), body).await
    }

    pub async fn get(&self, path: &str) -> Resp {
        self.call("GET", path, Body::Empty).await
    }
    pub async fn delete(&self, path: &str) -> Resp {
        self.call("DELETE", path, Body::Empty).await
    }
    pub async fn post_json(&self, path: &str, v: Value) -> Resp {
        self.call("POST", path, Body::Json(v)).await
    }
    pub async fn put_json(&self, path: &str, v: Value) -> Resp {
        self.call("PUT", path, Body::Json(v)).await
    }
    pub async fn put(&self, path: &str) -> Resp {
        self.call("PUT", path, Body::Empty).await
    }

    /// A 2xx JSON answer with exactly `status`.
    #[track_caller]
    pub fn expect(resp: &Resp, status: u16) -> Value {
        assert_eq!(resp.status, status, "status: {}", resp.describe());
        if resp.body.is_empty() {
            Value::Null
        } else {
            resp.json()
        }
    }

    /// `GET path`, which must answer 200 with JSON.
    pub async fn ok(&self, path: &str) -> Value {
        let r = self.get(path).await;
        assert_eq!(r.status, 200, "GET {path}: {}", r.describe());
        r.json()
    }

    /// The store revision (`GET /api/v1/revision`).
    pub async fn revision(&self) -> i64 {
        let v = self.ok("/api/v1/revision").await;
        v["revision"].as_i64().unwrap_or_else(|| panic!("no integer revision in {v}"))
    }
}

/// An API refusal: the status and `{"error": CODE, "message", "hint"}` (message and hint not
/// empty). Returns the body.
#[track_caller]
pub fn api_error(resp: &Resp, status: u16, code: &str) -> Value {
    assert_eq!(resp.status, status, "status: {}", resp.describe());
    let ctype = resp.header("content-type").unwrap_or_default();
    assert!(ctype.starts_with("application/json"), "an API error is JSON, got '{ctype}': {}", resp.describe());
    let body = resp.json();
    assert_eq!(body["error"], code, "error code: {}", resp.describe());
    for field in ["message", "hint"] {
        assert!(body[field].as_str().is_some_and(|m| !m.trim().is_empty()), "{field} in {}", resp.describe());
    }
    body
}

/// Run the CLI with a time limit (for commands that might not return, like `serve`): the
/// result, or a kill and a panic when `limit` passes first.
pub fn run_bounded(env: &super::Env, args: &[&str], limit: std::time::Duration) -> super::Run {
    use std::io::Read;
    let mut child = env
        .command(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn certgate");
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let out_t = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err_t = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let deadline = std::time::Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for certgate") {
            break status;
        }
        if std::time::Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "certgate {} did not exit within {limit:?}\nstdout: {}\nstderr: {}",
                args.join(" "),
                out_t.join().unwrap_or_default(),
                err_t.join().unwrap_or_default()
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    super::Run {
        code: status.code().unwrap_or(-1),
        stdout: out_t.join().unwrap_or_default(),
        stderr: err_t.join().unwrap_or_default(),
    }
}
