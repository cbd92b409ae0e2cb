//! The compiled route table and its lookup: `host:port` exact, then `host` exact, then the
//! longest `*.domain` suffix, then (when allowed) the unbound route.

use foldhash::HashMap;
use std::sync::Arc;

use rustls::client::ClientSessionStore;

use crate::model::{AppName, CertificateId, CertificateName};
use crate::store::BindingRecord;
use crate::upstream::{LastFailure, UpstreamClient};

use super::inputs::{AppAccess, CompileOptions, RouteInputs};

#[derive(Clone, Debug)]
pub struct RouteCertificate {
    pub name: CertificateName,
    pub id: CertificateId,
    pub not_before: i64,
    pub not_after: i64,
}

/// What the routes compiled from the same certificates, trust policy, SNI, pins and
/// renegotiation option have in common, built once per compile and shared: at 100,000 bindings
/// over a few thousand certificates, a route carries only what is its own.
pub struct RouteProfile {
    /// Every candidate in order of preference (the partner's CA names pick one per handshake).
    pub candidates: Box<[RouteCertificate]>,
    /// The `certificate` label of the requests: `name`, `a,b` for several, or `none`.
    pub label: Box<str>,
    /// Shared with the partner observer of the routes (`upstream::Observed`).
    pub trust: Arc<str>,
    /// The longest pause in the partner's response body (`response_body_timeout_ms`).
    pub response_body_timeout: std::time::Duration,
    /// Everything but the destination that a route is compiled from, digested.
    pub(crate) digest: Box<str>,
}

/// One binding, ready to serve: its certificate, trust policy and pooled client.
pub struct Route {
    /// The binding it was compiled from (for per-request certificate variants).
    pub binding: Arc<BindingRecord>,
    /// The binding's destination key (`host`, `*.domain`, `service:NAME`, or `(unbound)`).
    pub destination: Arc<str>,
    /// Certificates, labels and trust, shared with the routes compiled from the same inputs.
    pub profile: Arc<RouteProfile>,
    pub client: UpstreamClient,
    /// `certgate_requests_total{destination, certificate, app, outcome="ok"}`, registered once
    /// (per app) so the common request does not build its labels.
    pub(crate) ok_requests: crate::telemetry::OkCounters,
    /// Set when the binding could not be compiled: requests get `route-unavailable` with this
    /// reason, and every other route keeps working.
    pub unavailable: Option<Box<str>>,
    /// The route's TLS engine (also inside `client`): diagnosis makes single connections with it.
    pub engine: Arc<dyn crate::upstream::TlsEngine>,
}

impl Route {
    /// The metrics/log label of the certificate: its name, the candidates `a,b`, or `none`.
    pub fn certificate_label(&self) -> &str {
        &self.profile.label
    }

    /// The first candidate (None: no certificate).
    pub fn certificate(&self) -> Option<&RouteCertificate> {
        self.profile.candidates.first()
    }

    /// Every candidate in order of preference.
    pub fn candidates(&self) -> &[RouteCertificate] {
        &self.profile.candidates
    }

    /// The trust policy, as shown (`public`, `private`, `ca:NAME`).
    pub fn trust(&self) -> &str {
        &self.profile.trust
    }

    /// TLS failures seen on this route's connections after the handshake (see `LastFailure`).
    pub fn failures(&self) -> &LastFailure {
        self.client.failures()
    }

    /// The longest pause in the partner's response body.
    pub fn response_body_timeout(&self) -> std::time::Duration {
        self.profile.response_body_timeout
    }

    /// Everything the route was compiled from, digested: equal fingerprints, equal routes.
    pub fn fingerprint(&self) -> String {
        format!("{}|{}", self.destination, self.profile.digest)
    }

    /// Whether `other` was compiled from the same inputs (and may stand in for this route).
    pub(crate) fn fingerprint_key(&self) -> (&str, &str) {
        (&self.destination, &self.profile.digest)
    }
}

/// A named service: base URL and the route that carries it (None: nothing bound).
pub struct ServiceRoute {
    pub name: String,
    pub base: url::Url,
    pub route: Option<Arc<Route>>,
    /// The partner's authority (`host`, `host:port` when not 443), parsed once; None when the
    /// service URL's host cannot be one (requests then get `bad-request`).
    pub authority: Option<http::uri::Authority>,
}

impl ServiceRoute {
    pub fn new(name: String, base: url::Url, route: Option<Arc<Route>>) -> Self {
        let host = base.host_str().unwrap_or_default();
        let port = base.port_or_known_default().unwrap_or(443);
        let text = if port == 443 { host.to_string() } else { format!("{host}:{port}") };
        let authority = text.parse().ok();
        ServiceRoute { name, base, route, authority }
    }
}

#[derive(Default)]
pub struct RouteTable {
    pub revision: i64,
    /// `host:port` bindings, by port then host (so a lookup needs no allocation). Keys are
    /// shared (`Arc<str>`): an incremental reload copies the maps without copying 100,000 names.
    pub(crate) exact_port: HashMap<u16, HashMap<Arc<str>, Arc<Route>>>,
    pub(crate) exact_host: HashMap<Arc<str>, Arc<Route>>,
    pub(crate) wildcard: HashMap<Arc<str>, Arc<Route>>,
    pub(crate) services: HashMap<String, ServiceRoute>,
    pub(crate) unbound: Option<Arc<Route>>,
    /// Bindings and services that could not be compiled: (destination, reason).
    pub unavailable: Vec<(String, String)>,
    /// One TLS session store per certificate id (`""` for no certificate), kept across tables.
    pub(crate) sessions: std::collections::HashMap<String, Arc<dyn ClientSessionStore>>,
    /// Every certificate in the store with its expiry (unix seconds), for metrics.
    pub certificate_expiry: Vec<(CertificateName, i64)>,
    /// Calling applications (empty: no credentials required from loopback callers).
    pub apps: HashMap<AppName, AppAccess>,
    /// What the table was compiled from, to build per-request certificate variants.
    pub(crate) source: Option<Arc<RouteInputs>>,
    pub(crate) options: CompileOptions,
    /// Routes for (destination, certificate chosen by the request header), built once per table.
    pub(crate) variants: std::sync::Mutex<Variants>,
}

/// Routes of one destination offering other certificates than its binding's, found without
/// allocating: a request with a `Certgate-Certificate` header, or from an app granted only some
/// of a binding's certificates, looks here every time.
#[derive(Default)]
pub(crate) struct Variants(HashMap<Arc<str>, ByCertificates>);

/// A destination's variants, by the certificates asked for (in their order).
type ByCertificates = HashMap<Box<[CertificateName]>, Arc<Route>>;

impl Variants {
    /// The route to `destination` built for exactly `candidates`, in this order.
    pub(crate) fn get(&self, destination: &str, candidates: &[CertificateName]) -> Option<&Arc<Route>> {
        self.0.get(destination)?.get(candidates)
    }

    pub(crate) fn insert(&mut self, destination: &Arc<str>, candidates: &[CertificateName], route: Arc<Route>) {
        self.0.entry(destination.clone()).or_default().insert(candidates.into(), route);
    }
}

impl RouteTable {
    /// The route for a host and port, by the contract's precedence.
    pub fn find(&self, host: &str, port: u16) -> Option<&Arc<Route>> {
        let host = host.trim_end_matches('.').trim_start_matches('[').trim_end_matches(']');
        let lowered;
        let host = if host.bytes().any(|b| b.is_ascii_uppercase()) {
            lowered = host.to_ascii_lowercase();
            lowered.as_str()
        } else {
            host
        };
        if let Some(r) = self.exact_port.get(&port).and_then(|hosts| hosts.get(host)) {
            return Some(r);
        }
        if let Some(r) = self.exact_host.get(host) {
            return Some(r);
        }
        // Longest suffix first: walk the dots from the left.
        let mut rest = host;
        while let Some(i) = rest.find('.') {
            rest = &rest[i + 1..];
            if let Some(r) = self.wildcard.get(rest) {
                return Some(r);
            }
        }
        self.unbound.as_ref()
    }

    /// What the table was compiled from.
    pub fn source_inputs(&self) -> Option<&RouteInputs> {
        self.source.as_deref()
    }

    pub fn service(&self, name: &str) -> Option<&ServiceRoute> {
        self.services.get(name)
    }

    pub fn routes(&self) -> impl Iterator<Item = &Arc<Route>> {
        self.exact_port
            .values()
            .flat_map(HashMap::values)
            .chain(self.exact_host.values())
            .chain(self.wildcard.values())
            .chain(self.services.values().filter_map(|s| s.route.as_ref()))
            .chain(self.unbound.iter())
    }

    pub fn len(&self) -> usize {
        self.exact_port.values().map(HashMap::len).sum::<usize>()
            + self.exact_host.len()
            + self.wildcard.len()
            + self.services.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
