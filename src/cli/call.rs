use std::io::Write;

use bytes::Bytes;
use clap::Args;
use http::{HeaderName, HeaderValue, Method, Request};
use http_body_util::{BodyExt, Full};

use crate::control::ControlError;
use crate::gateway;
use crate::routes::{compile, CompileOptions};
use crate::upstream::BoxError;

use super::{open, output, Settings};

#[derive(Debug, Args)]
pub struct CallArgs {
    /// https://partner/path (or http://), or /svc/NAME/path for a named service.
    pub url: String,
    /// HTTP method.
    #[arg(short = 'X', long = "request", value_name = "METHOD")]
    pub method: Option<String>,
    /// Request header 'Name: value' (repeatable).
    #[arg(short = 'H', long = "header", value_name = "'K: V'")]
    pub headers: Vec<String>,
    /// Request body, or @FILE to read it from a file.
    #[arg(short = 'd', long = "data", value_name = "DATA|@FILE")]
    pub data: Option<String>,
    /// Present this certificate instead of the destination's binding.
    #[arg(long, value_name = "NAME")]
    pub cert: Option<String>,
    /// Print the status line and response headers before the body.
    #[arg(short = 'i', long)]
    pub include: bool,
}

fn usage(message: String, hint: &str) -> ControlError {
    ControlError::usage("usage", message, hint)
}

pub async fn run(args: CallArgs, settings: &Settings) -> Result<u8, ControlError> {
    let body = match &args.data {
        None => Bytes::new(),
        Some(d) => match d.strip_prefix('@') {
            Some(path) => Bytes::from(
                std::fs::read(path).map_err(|e| usage(format!("cannot read {path}: {e}"), "check the path after @"))?,
            ),
            None => Bytes::from(d.clone()),
        },
    };
    let method = match &args.method {
        Some(m) => Method::from_bytes(m.to_ascii_uppercase().as_bytes())
            .map_err(|_| usage(format!("'{m}' is not an HTTP method"), "e.g. -X POST"))?,
        None if args.data.is_some() => Method::POST,
        None => Method::GET,
    };
    let mut req = Request::builder().method(method).uri(args.url.as_str());
    for h in &args.headers {
        let (k, v) = h
            .split_once(':')
            .ok_or_else(|| usage(format!("header '{h}' is not 'Name: value'"), "e.g. -H 'SOAPAction: \"urn:x\"'"))?;
        let name = HeaderName::from_bytes(k.trim().as_bytes())
            .map_err(|_| usage(format!("'{k}' is not a header name"), "e.g. -H 'Accept: application/json'"))?;
        let value = HeaderValue::from_str(v.trim())
            .map_err(|_| usage(format!("the value of '{k}' is not valid"), "use printable ASCII"))?;
        req = req.header(name, value);
    }
    let req = req.body(Full::new(body).map_err(|never| -> BoxError { match never {} }).boxed()).map_err(|e| {
        usage(format!("'{}' is not a valid URL: {e}", args.url), "give https://partner/path or /svc/NAME/path")
    })?;

    let control = open(settings).await?;
    let inputs = control.route_inputs_for_call(&args.url, args.cert.as_deref()).await;
    control.close().await;
    let inputs = inputs?;
    let cfg = &settings.gateway;
    let options = CompileOptions {
        settings: std::sync::Arc::new(cfg.upstream()),
        allow_unbound: cfg.allow_unbound,
        partners: None,
    };
    let table = compile(inputs, None, &options)
        .map_err(|e| ControlError::unavailable(format!("the route table cannot be built: {e}")))?;
    let resp = gateway::forward(&table, req, cfg.gateway().response_header_timeout).await;
    if let Some(code) = resp.headers().get("certgate-error").and_then(|v| v.to_str().ok()).map(str::to_string) {
        let bytes = resp.into_body().collect().await.map(|c| c.to_bytes()).unwrap_or_default();
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
        let f = output::Failure {
            error: code,
            message: v["message"].as_str().unwrap_or_default().to_string(),
            hint: v["hint"].as_str().unwrap_or_default().to_string(),
        };
        if settings.json {
            eprintln!("{}", serde_json::to_string(&f).unwrap_or_default());
        } else {
            eprintln!("error ({}): {} — {}", f.error, f.message, f.hint);
        }
        return Ok(1);
    }
    let status = resp.status();
    let headers = resp.headers().clone();
    let mut stdout = std::io::stdout();
    if args.include {
        let _ = writeln!(stdout, "HTTP/1.1 {status}");
        for (k, v) in &headers {
            let _ = writeln!(stdout, "{k}: {}", v.to_str().unwrap_or("<binary>"));
        }
        let _ = writeln!(stdout);
    }
    let mut body = resp.into_body();
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(f) => {
                if let Some(data) = f.data_ref() {
                    let _ = stdout.write_all(data);
                }
            }
            Err(e) => {
                eprintln!("error (upstream-connect-failed): the response body was cut off: {e}");
                return Ok(1);
            }
        }
    }
    let _ = stdout.flush();
    if !args.include && !settings.json {
        eprintln!("{status}");
    }
    Ok(0)
}
