//! One request through the gateway: find the route, rewrite the request for the partner, send
//! it on the route's pooled client, and stream the answer back. The CLI's `call` uses this too.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::header::{HeaderName, HOST};
use http::{HeaderMap, Method, Request, Response, Uri, Version};
use http_body_util::BodyExt;

use crate::model::{Action, CertificateName, ErrorCode, Remedy};
use crate::routes::{AppAccess, Route, RouteTable};
use tracing::Instrument;

/// The request header that picks a certificate per request (the OnBeforeRequest case).
pub const CERTIFICATE_HEADER: &str = "certgate-certificate";
use crate::tls;

use super::error::GatewayError;
use super::guard::{ClientFault, PauseTimer};
use crate::telemetry as metrics;
use crate::upstream::{Body, ConnectError};

/// Where a request goes.
pub struct Target {
    pub route: Arc<Route>,
    pub uri: Uri,
}

/// Hop-by-hop headers (RFC 9110 7.6.1) and the proxy's own, never forwarded.
static HOP_BY_HOP: [HeaderName; 9] = [
    http::header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    http::header::PROXY_AUTHENTICATE,
    http::header::PROXY_AUTHORIZATION,
    http::header::TE,
    http::header::TRAILER,
    http::header::TRANSFER_ENCODING,
    http::header::UPGRADE,
];

/// Where `name` is in [`HOP_BY_HOP`]. Most names are told apart by their length alone.
fn hop_index(name: &HeaderName) -> Option<usize> {
    let name = name.as_str();
    // The lengths of the names in the set.
    if !matches!(name.len(), 2 | 7 | 10 | 16..=19) {
        return None;
    }
    HOP_BY_HOP.iter().position(|h| h.as_str() == name)
}

pub fn strip_hop_by_hop(headers: &mut HeaderMap, request: bool) {
    // One pass over the names first: which of the set above are present (a bit each), and
    // whether a `certgate-` name is. Only what is there is looked up and removed (a removal by
    // name hashes it and probes the map, whether the header is there or not).
    let mut present = 0u16;
    let mut own = false;
    for name in headers.keys() {
        if let Some(i) = hop_index(name) {
            present |= 1 << i;
        } else if request && name.as_str().starts_with("certgate-") {
            own = true;
        }
    }
    if present & 1 != 0 {
        // `Connection` (first in the set): the headers it lists. Those of the set are removed
        // below anyway, and the usual rest (`close`) names no header the request has: a listed
        // name is looked for among the names there, as bytes, and only one found is collected
        // (no allocation, no parse or hash of a name otherwise).
        let mut listed: Vec<HeaderName> = Vec::new();
        for value in headers.get_all(http::header::CONNECTION) {
            for token in value.as_bytes().split(|&b| b == b',').map(<[u8]>::trim_ascii) {
                if token.is_empty() || HOP_BY_HOP.iter().any(|h| token.eq_ignore_ascii_case(h.as_str().as_bytes())) {
                    continue;
                }
                if let Some(name) = headers.keys().find(|k| k.as_str().as_bytes().eq_ignore_ascii_case(token)) {
                    if !listed.contains(name) {
                        listed.push(name.clone());
                    }
                }
            }
        }
        for name in listed {
            headers.remove(name);
        }
    }
    for (i, name) in HOP_BY_HOP.iter().enumerate() {
        if present & (1 << i) != 0 {
            headers.remove(name);
        }
    }
    if own {
        let own: Vec<HeaderName> = headers.keys().filter(|k| k.as_str().starts_with("certgate-")).cloned().collect();
        for name in own {
            headers.remove(name);
        }
    }
}

fn authority(host: &str, port: u16) -> String {
    let host = if host.contains(':') && !host.starts_with('[') { format!("[{host}]") } else { host.to_string() };
    if port == 443 {
        host
    } else {
        format!("{host}:{port}")
    }
}

/// `https://` + the request's authority + its path and query. The request's own parts are reused
/// (no text is built or parsed) when its authority is already what the partner URL needs: no
/// user info, a lowercase host, and no explicit default port.
fn partner_uri(uri: &Uri, host: &str, port: u16) -> Result<Uri, GatewayError> {
    let bad = |e: &dyn std::fmt::Display| {
        GatewayError::new(ErrorCode::BadRequest, format!("cannot build the partner URL: {e}"))
    };
    let reuse = uri.authority().filter(|a| {
        let text = a.as_str();
        !text.contains('@') && a.port_u16() != Some(443) && !text.bytes().any(|b| b.is_ascii_uppercase())
    });
    let authority = match reuse {
        Some(a) => a.clone(),
        None => authority(host, port).parse().map_err(|e| bad(&e))?,
    };
    let mut parts = http::uri::Parts::default();
    parts.scheme = Some(http::uri::Scheme::HTTPS);
    parts.authority = Some(authority);
    parts.path_and_query =
        Some(uri.path_and_query().cloned().unwrap_or_else(|| http::uri::PathAndQuery::from_static("/")));
    Uri::from_parts(parts).map_err(|e| bad(&e))
}

/// Work out the partner URL and route of a request.
pub fn resolve(req: &Request<Body>, table: &RouteTable) -> Result<Target, GatewayError> {
    if req.method() == Method::CONNECT {
        return Err(GatewayError::new(
            ErrorCode::ConnectNotSupported,
            format!(
                "CONNECT {} asks for an end-to-end TLS tunnel, which certgate cannot add a client certificate to",
                req.uri()
            ),
        ));
    }
    let uri = req.uri();
    let path_query = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    // Over HTTP/2 every request carries a scheme and an authority (the gateway's own address
    // for an application that calls `/svc/NAME/...`): a `/svc/` path is a named service there.
    let named_service_over_h2 = req.version() == Version::HTTP_2 && path_query.starts_with("/svc/");
    if let Some(scheme) = uri.scheme_str().filter(|_| !named_service_over_h2) {
        if scheme != "http" && scheme != "https" {
            return Err(GatewayError::new(
                ErrorCode::BadRequest,
                format!("the scheme '{scheme}' is not http or https"),
            ));
        }
        let host = uri.host().ok_or_else(|| GatewayError::new(ErrorCode::BadRequest, "the request URL has no host"))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let host: std::borrow::Cow<'_, str> =
            if host.bytes().any(|b| b.is_ascii_uppercase()) { host.to_ascii_lowercase().into() } else { host.into() };
        let port = uri.port_u16().unwrap_or(443);
        let route = table.find(&host, port).ok_or_else(|| {
            GatewayError::new(
                ErrorCode::NoBinding,
                format!("no binding for {} (nor for the host or a wildcard above it)", authority(&host, port)),
            )
        })?;
        return Ok(Target { route: route.clone(), uri: partner_uri(uri, &host, port)? });
    }
    if let Some(rest) = path_query.strip_prefix("/svc/") {
        let (name, tail) = match rest.find(['/', '?']) {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        let svc = table.service(name).ok_or_else(|| {
            GatewayError::new(
                ErrorCode::NoBinding,
                format!("there is no named service '{name}' (certgate service add {name} --url URL --cert CERT)"),
            )
        })?;
        let route = svc.route.as_ref().ok_or_else(|| {
            GatewayError::new(
                ErrorCode::NoBinding,
                format!(
                    "named service '{name}' has no binding, and nothing is bound to its host {}",
                    svc.base.host_str().unwrap_or("")
                ),
            )
        })?;
        // The partner URL from parts: the service's authority (parsed when the table was
        // compiled), its base path + the request's tail and query.
        let bad = |e: &dyn std::fmt::Display| {
            GatewayError::new(ErrorCode::BadRequest, format!("cannot build the partner URL: {e}"))
        };
        let authority = svc.authority.clone().ok_or_else(|| {
            bad(&format!("the host of {} is not a valid authority (certgate service add {name} --url URL)", svc.base))
        })?;
        let (tail_path, tail_query) = match tail.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (tail, None),
        };
        let base_path = svc.base.path().trim_end_matches('/');
        // Exactly as long as it will be: the text then becomes the URI's bytes as it is.
        let length = match base_path.len() + tail_path.len() {
            0 => 1,
            n => n,
        } + tail_query.map_or(0, |q| q.len() + 1);
        let mut path = String::with_capacity(length);
        path.push_str(base_path);
        path.push_str(tail_path);
        if path.is_empty() {
            path.push('/');
        }
        if let Some(q) = tail_query {
            path.push('?');
            path.push_str(q);
        }
        let mut parts = http::uri::Parts::default();
        parts.scheme = Some(http::uri::Scheme::HTTPS);
        parts.authority = Some(authority);
        parts.path_and_query = Some(http::uri::PathAndQuery::try_from(path).map_err(|e| bad(&e))?);
        let target = Uri::from_parts(parts).map_err(|e| bad(&e))?;
        return Ok(Target { route: route.clone(), uri: target });
    }
    Err(GatewayError::new(
        ErrorCode::BadRequest,
        format!("'{path_query}' is neither a proxy request (absolute URL) nor a named service path (/svc/NAME/...)"),
    ))
}

/// Who the request is from, after the proxy credential was checked.
pub enum Access<'a> {
    /// No apps exist (loopback callers), or the CLI's `call`: every binding, any certificate.
    Trusted,
    /// An authenticated app: only the certificates granted to it.
    App(&'a str, &'a AppAccess),
}

impl Access<'_> {
    fn label(&self) -> &str {
        match self {
            Access::Trusted => "-",
            Access::App(name, _) => name,
        }
    }

    fn may_use(&self, certificate: &str) -> bool {
        match self {
            Access::Trusted => true,
            Access::App(_, access) => access.grants.contains(certificate),
        }
    }
}

/// Send a request to its partner, with every binding available (the CLI's `call`).
pub async fn forward(table: &RouteTable, req: Request<Body>, response_header_timeout: Duration) -> Response<Body> {
    forward_as(table, req, response_header_timeout, &Access::Trusted, None).await
}

/// Whether every proxied request gets a span of its own for its whole life (see [`forward_as`]).
static REQUEST_SPANS: AtomicBool = AtomicBool::new(true);

/// Say whether the per-request span is shipped: with JSON logs (`FmtSpan::CLOSE`) its close line
/// is the request's log line, so every request needs it. Text logs show a span only as the
/// prefix of an event inside it, and a request logs nothing unless it fails: then the span is
/// made only when a failure is logged, with the same fields, and a request that succeeds pays
/// for no span at all. `main` sets this from `--log-format`; the default keeps a span per request.
pub fn set_request_spans(shipped: bool) {
    REQUEST_SPANS.store(shipped, Ordering::Relaxed);
}

/// The log context of one request: the fields of its `request` span, recorded in the span that
/// is current (shipped spans) or kept until a failure is logged (see [`set_request_spans`]).
struct LogContext<'a> {
    shipped: bool,
    method: &'a Method,
    app: &'a str,
    /// Where the application's body records a failure to read it (see `forward_as`); a
    /// failure there is the outcome logged and answered.
    fault: Option<&'a ClientFault>,
}

impl LogContext<'_> {
    fn record(&self, field: &str, value: &str) {
        if self.shipped {
            tracing::Span::current().record(field, value);
        }
    }

    /// Enter the request's span for a failure's log event: the shipped span is already current;
    /// otherwise one is made now with what is known of the request.
    fn failing(
        &self,
        destination: &str,
        binding: Option<&str>,
        route: Option<&Route>,
    ) -> Option<tracing::span::EnteredSpan> {
        if self.shipped {
            return None;
        }
        let span = tracing::info_span!(
            "request",
            method = %self.method,
            destination,
            binding,
            certificate = route.map(|r| r.certificate_label()),
            fingerprint = route.and_then(|r| r.certificate()).map(|c| c.id.as_str()),
            app = self.app,
        );
        Some(span.entered())
    }
}

/// Send a request to its partner on behalf of `access`. Never panics; every failure becomes a
/// gateway error response.
/// `fault`: where the application's request body records a failure to read it (the gateway's
/// `ClientBody`), so that such a failure is answered as the application's, not the partner's.
pub async fn forward_as(
    table: &RouteTable,
    req: Request<Body>,
    response_header_timeout: Duration,
    access: &Access<'_>,
    fault: Option<&ClientFault>,
) -> Response<Body> {
    let started = Instant::now();
    let method = req.method().clone();
    let shipped = REQUEST_SPANS.load(Ordering::Relaxed);
    let log = LogContext { shipped, method: &method, app: access.label(), fault };
    // One span per proxied request (what `--log-format json` ships when the span closes): the
    // partner, the binding that matched, the certificate's name and fingerprint, the app, and,
    // once the answer is known, its outcome (an error code or "ok"), status and time to the
    // response headers. Never a header value, a credential or a body. When nothing ships spans,
    // the request runs under no span (`Span::none`: entering it does nothing), through the same
    // single call below: a second call site would be a second copy of the request's future.
    let span = if shipped {
        tracing::info_span!(
            "request",
            method = %method,
            destination = tracing::field::Empty,
            binding = tracing::field::Empty,
            certificate = tracing::field::Empty,
            fingerprint = tracing::field::Empty,
            app = access.label(),
            outcome = tracing::field::Empty,
            status = tracing::field::Empty,
            duration_ms = tracing::field::Empty,
        )
    } else {
        tracing::Span::none()
    };
    let resp =
        route_and_send(table, req, response_header_timeout, access, started, &log).instrument(span.clone()).await;
    if !shipped {
        return resp;
    }
    let outcome = resp.headers().get("certgate-error").and_then(|v| v.to_str().ok()).unwrap_or("ok");
    span.record("outcome", outcome);
    span.record("status", resp.status().as_u16());
    span.record("duration_ms", started.elapsed().as_secs_f64() * 1000.0);
    resp
}

async fn route_and_send(
    table: &RouteTable,
    mut req: Request<Body>,
    response_header_timeout: Duration,
    access: &Access<'_>,
    started: Instant,
    log: &LogContext<'_>,
) -> Response<Body> {
    let target = match resolve(&req, table) {
        Ok(t) => t,
        Err(e) => {
            // What the caller asked for, as far as it can be told.
            let asked = req.uri().authority().map(|a| a.as_str()).or_else(|| req.headers().get(HOST)?.to_str().ok());
            log.record("destination", asked.unwrap_or(""));
            metrics::request("(none)", "none", access.label(), e.code.as_str(), started.elapsed());
            let _span = log.failing(asked.unwrap_or(""), None, None);
            tracing::info!(code = e.code.as_str(), app = access.label(), "{}", e.message);
            return e.response();
        }
    };
    let destination = target.uri.authority().map(|a| a.as_str()).unwrap_or("");
    log.record("destination", destination);
    log.record("binding", &target.route.destination);
    let fail = |certificate: &str, e: GatewayError| {
        metrics::request(&target.route.destination, certificate, access.label(), e.code.as_str(), started.elapsed());
        let _span = log.failing(destination, Some(&target.route.destination), None);
        tracing::info!(code = e.code.as_str(), app = access.label(), "{}", e.message);
        e.response()
    };
    // The certificate: the one the request asks for by header, or the binding's. The header is
    // taken out here (never forwarded): one lookup, no copy of its text, and none at all when no
    // name has its length (a lookup by a name outside the standard set lowercases and hashes it,
    // found or not; a look at each name's length is a few instructions).
    let named = req.headers().keys().any(|k| k.as_str().len() == CERTIFICATE_HEADER.len());
    let asked = if named { req.headers_mut().remove(CERTIFICATE_HEADER) } else { None };
    let asked = asked.as_ref().map(|v| v.to_str().unwrap_or("").trim());
    let route = match asked {
        Some(name) => {
            if !access.may_use(name) {
                let e = GatewayError::new(
                    ErrorCode::NotGranted,
                    format!("app '{}' may not present certificate '{name}'", access.label()),
                );
                return fail(name, e);
            }
            match table.with_certificate(&target.route, name) {
                Ok(r) => r,
                Err(msg) => {
                    let e = GatewayError::new(
                        ErrorCode::NotGranted,
                        format!("certificate '{name}' cannot be presented: {msg}"),
                    );
                    return fail(name, e);
                }
            }
        }
        None => {
            let candidates = target.route.candidates();
            if candidates.iter().all(|c| access.may_use(&c.name)) {
                // Most apps may use every candidate: nothing to collect.
                target.route.clone()
            } else {
                let granted: Vec<CertificateName> =
                    candidates.iter().filter(|c| access.may_use(&c.name)).map(|c| c.name.clone()).collect();
                if granted.is_empty() {
                    let names = candidates.iter().map(|c| format!("'{}'", c.name)).collect::<Vec<_>>().join(", ");
                    let e = GatewayError::new(
                        ErrorCode::NotGranted,
                        format!(
                            "{} is bound to certificate {names}, which app '{}' has no grant for",
                            target.route.destination,
                            access.label()
                        ),
                    );
                    return fail(target.route.certificate_label(), e);
                }
                // Only the candidates granted to this app are offered to the partner.
                match table.with_candidates(&target.route, &granted) {
                    Ok(r) => r,
                    Err(msg) => {
                        let e = GatewayError::new(
                            ErrorCode::NotGranted,
                            format!("certificates {} cannot be presented: {msg}", granted.join(",")),
                        );
                        return fail(target.route.certificate_label(), e);
                    }
                }
            }
        }
    };
    log.record("certificate", route.certificate_label());
    if let Some(c) = route.certificate() {
        log.record("fingerprint", c.id.as_str());
    }
    send(&route, &target.uri, req, response_header_timeout, access, started, log).await
}

async fn send(
    route: &Arc<Route>,
    uri: &Uri,
    mut req: Request<Body>,
    response_header_timeout: Duration,
    access: &Access<'_>,
    started: Instant,
    log: &LogContext<'_>,
) -> Response<Body> {
    let failing = || {
        let destination = uri.authority().map(|a| a.as_str()).unwrap_or("");
        log.failing(destination, Some(&route.destination), Some(route))
    };
    let app = access.label();
    if let Some(reason) = &route.unavailable {
        let e = GatewayError::new(
            ErrorCode::RouteUnavailable,
            format!("the binding of {} cannot be used: {reason}", route.destination),
        );
        metrics::request(&route.destination, route.certificate_label(), app, e.code.as_str(), started.elapsed());
        let _span = failing();
        tracing::warn!(code = e.code.as_str(), "{}", e.message);
        return e.response();
    }
    // Refused only when no candidate is valid now (the TLS layer prefers the valid ones).
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let valid_now = route.candidates().iter().any(|c| c.not_before <= now && now <= c.not_after);
    if let Some(cert) = route.certificate().filter(|_| !valid_now) {
        let several = if route.candidates().len() > 1 { " (and no other candidate is valid)" } else { "" };
        let e = GatewayError::new(
            ErrorCode::ClientCertificateExpired,
            if now > cert.not_after {
                format!("the client certificate '{}' bound to {} has expired{several}", cert.name, route.destination)
            } else {
                format!(
                    "the client certificate '{}' bound to {} is not valid yet{several}",
                    cert.name, route.destination
                )
            },
        );
        metrics::request(&route.destination, route.certificate_label(), app, e.code.as_str(), started.elapsed());
        return e.response();
    }
    *req.uri_mut() = uri.clone();
    *req.version_mut() = Version::HTTP_11;
    strip_hop_by_hop(req.headers_mut(), true);
    req.headers_mut().remove(HOST);
    // Boxed: the exchange with the partner is the largest part of a request's state, and each
    // async level above would hold (and move) a copy of its size; behind a box they stay small.
    let exchange = Box::pin(route.client.request(req));
    let result = tokio::time::timeout(response_header_timeout, exchange).await;
    // `fault` is set when the application's own body failed (a pause, a broken chunk): its
    // fault, not the partner's, whatever the exchange with the partner made of it.
    if let Some(client) = log.fault.and_then(|f| f.get()).filter(|_| !matches!(result, Ok(Ok(_)))) {
        metrics::request(&route.destination, route.certificate_label(), app, client.code.as_str(), started.elapsed());
        let _span = failing();
        tracing::info!(code = client.code.as_str(), "{}", client.message);
        return client.response();
    }
    let outcome = match result {
        Err(_) => Err(GatewayError::new(
            ErrorCode::UpstreamTimeout,
            format!("{uri} did not answer within {} ms", response_header_timeout.as_millis()),
        )),
        Ok(Err(e)) => Err(upstream_error(&*e, uri, route)),
        Ok(Ok(resp)) => Ok(resp),
    };
    match outcome {
        Ok(resp) => {
            let (mut parts, body) = resp.into_parts();
            strip_hop_by_hop(&mut parts.headers, false);
            route.ok_requests.record(&route.destination, route.certificate_label(), app, started.elapsed());
            let body = PartnerBody::new(body, route.response_body_timeout(), uri.clone());
            Response::from_parts(parts, body.boxed())
        }
        Err(e) => {
            metrics::request(&route.destination, route.certificate_label(), app, e.code.as_str(), started.elapsed());
            let _span = failing();
            tracing::warn!(code = e.code.as_str(), "{}", e.message);
            e.response()
        }
    }
}

/// A partner's response body on its way to the application: a pause longer than
/// `response_body_timeout_ms` ends it with an error (hyper then cuts the application's
/// response: an HTTP/1 connection is closed, an HTTP/2 stream reset), logged as
/// `upstream-timeout`.
struct PartnerBody {
    inner: crate::upstream::ResponseBody,
    pause: PauseTimer,
    uri: Uri,
}

impl PartnerBody {
    fn new(inner: crate::upstream::ResponseBody, pause: Duration, uri: Uri) -> Self {
        PartnerBody { inner, pause: PauseTimer::new(pause), uri }
    }
}

impl hyper::body::Body for PartnerBody {
    type Data = bytes::Bytes;
    type Error = crate::upstream::BoxError;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<bytes::Bytes>, Self::Error>>> {
        use std::task::Poll;
        let this = &mut *self;
        match std::pin::Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                this.pause.frame();
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                tracing::warn!(
                    code = ErrorCode::UpstreamConnectFailed.as_str(),
                    "the response body from {} broke off: {}",
                    this.uri,
                    error_chain(&*e)
                );
                Poll::Ready(Some(Err(e)))
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => {
                if this.pause.expired(cx) {
                    let message = format!(
                        "the response body from {} paused for more than {} ms (response_body_timeout_ms); the response was cut",
                        this.uri,
                        this.pause.pause().as_millis()
                    );
                    tracing::warn!(code = ErrorCode::UpstreamTimeout.as_str(), "{message}");
                    return Poll::Ready(Some(Err(message.into())));
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

fn upstream_error(e: &(dyn std::error::Error + 'static), uri: &Uri, route: &Route) -> GatewayError {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(c) = err.downcast_ref::<ConnectError>() {
            return GatewayError::new(c.code, c.message.clone());
        }
        if matches!(err.downcast_ref::<crate::upstream::H1Error>(), Some(crate::upstream::H1Error::HeadTooLarge)) {
            return GatewayError::new(
                ErrorCode::UpstreamConnectFailed,
                format!(
                    "the response head from {uri} is too large (more than max_response_header_bytes, or more \
                     than 100 header fields)"
                ),
            );
        }
        cur = err.source();
    }
    if let Some(f) = tls::classify(e).or_else(|| route.failures().recent(Duration::from_secs(5))) {
        if f.code == ErrorCode::UpstreamRenegotiationRequired {
            // The exact command: this binding as it is, plus the option that allows it.
            return GatewayError::new(f.code, f.message).with_remedy(Remedy::with(
                "the partner asks for the client certificate after the request (TLS renegotiation or \
                 post-handshake authentication): allow renegotiation on this binding",
                Action::AllowRenegotiation(route.destination.to_string(), route.binding.bind_args()),
            ));
        }
        return GatewayError::new(f.code, f.message);
    }
    GatewayError::new(ErrorCode::UpstreamConnectFailed, format!("the exchange with {uri} failed: {}", error_chain(e)))
}

fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![e.to_string()];
    let mut cur = e.source();
    while let Some(s) = cur {
        parts.push(s.to_string());
        cur = s.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(asked: &str) -> String {
        let uri: Uri = asked.parse().unwrap();
        let host = uri.host().unwrap().trim_start_matches('[').trim_end_matches(']').to_ascii_lowercase();
        partner_uri(&uri, &host, uri.port_u16().unwrap_or(443)).unwrap().to_string()
    }

    #[test]
    fn the_partner_url_is_the_request_url_over_https() {
        assert_eq!(target("http://api.partner.test/a/b?x=1&y=%20"), "https://api.partner.test/a/b?x=1&y=%20");
        assert_eq!(target("http://api.partner.test:8443/a"), "https://api.partner.test:8443/a");
        assert_eq!(target("http://api.partner.test:443/a"), "https://api.partner.test/a");
        assert_eq!(target("http://API.Partner.test/a"), "https://api.partner.test/a");
        assert_eq!(target("http://user@api.partner.test/a"), "https://api.partner.test/a");
        assert_eq!(target("http://[::1]:9443/a"), "https://[::1]:9443/a");
        assert_eq!(target("http://api.partner.test"), "https://api.partner.test/");
    }

    #[test]
    fn every_hop_by_hop_name_is_found_by_its_length() {
        for (i, name) in HOP_BY_HOP.iter().enumerate() {
            assert_eq!(hop_index(name), Some(i), "{name}");
        }
        for name in [HOST, http::header::CONTENT_TYPE, HeaderName::from_static("x-connection")] {
            assert_eq!(hop_index(&name), None, "{name}");
        }
    }

    #[test]
    fn hop_by_hop_and_own_headers_are_removed() {
        let mut h = HeaderMap::new();
        h.insert("connection", "close, x-private,,X-Gone ".parse().unwrap());
        h.insert("x-private", "1".parse().unwrap());
        h.append("x-private", "2".parse().unwrap());
        h.insert("close", "a header named like the option is listed too".parse().unwrap());
        h.insert("keep-alive", "timeout=5".parse().unwrap());
        h.insert("proxy-authorization", "Basic eA==".parse().unwrap());
        h.insert("certgate-certificate", "alpha".parse().unwrap());
        h.insert("soapaction", "urn:x".parse().unwrap());
        strip_hop_by_hop(&mut h, true);
        assert_eq!(h.keys().map(|k| k.as_str()).collect::<Vec<_>>(), ["soapaction"]);
        // Names listed in two `Connection` lines, in any case, beside hop-by-hop ones (`Upgrade`
        // listed but absent); a response keeps its `certgate-` headers.
        let mut h = HeaderMap::new();
        h.append("connection", "Keep-Alive, X-One".parse().unwrap());
        h.append("connection", "upgrade, x-two".parse().unwrap());
        for name in ["x-one", "x-two", "te", "trailer", "keep-alive", "certgate-error", "content-type"] {
            h.insert(name, "v".parse::<http::HeaderValue>().unwrap());
        }
        strip_hop_by_hop(&mut h, false);
        assert_eq!(h.keys().map(|k| k.as_str()).collect::<Vec<_>>(), ["certgate-error", "content-type"]);
        // Nothing to remove: nothing changes.
        let mut h = HeaderMap::new();
        h.insert("content-type", "text/xml".parse().unwrap());
        h.insert("soapaction", "urn:x".parse().unwrap());
        let before = h.clone();
        strip_hop_by_hop(&mut h, true);
        assert_eq!(h, before);
    }
}
