//! Compile the store's bindings into a route table: TLS client configs and pools are built here,
//! once per route, never per connection. A route whose inputs did not change is carried over
//! from the previous table with its pool and sessions.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use rustls_pki_types::CertificateDer;

use crate::store::BindingRecord;
use crate::tls;
use crate::upstream::{self, Connector};

use super::inputs::{CompileOptions, RouteIdentity, RouteInputs, Touched};
use super::table::{Route, RouteCertificate, RouteProfile, RouteTable, ServiceRoute};
use crate::model::{CertificateName, Destination, TrustPolicy};

struct Compiler<'a> {
    inputs: &'a RouteInputs,
    options: &'a CompileOptions,
    previous: Option<&'a RouteTable>,
    reuse: HashMap<(&'a str, &'a str), &'a Arc<Route>>,
    sessions: HashMap<String, Arc<dyn rustls::client::ClientSessionStore>>,
    memo: Memo,
}

/// What one compile works out once and shares between routes: with 100,000 bindings over a few
/// thousand certificates and a few trust policies, per-binding work is what costs (see
/// docs/BENCHMARKS.md, "Route tables at scale and propagation").
#[derive(Default)]
struct Memo {
    /// Trust policy -> the policy, its anchors and their ids.
    trusts: HashMap<TrustPolicy, Arc<TrustInputs>>,
    /// Certificate name -> the SHA-256 of each certificate it sends (for fingerprints).
    chains: HashMap<String, String>,
    /// Trust, anchors and pins -> one verifier (its root store is the big part of a config).
    verifiers: HashMap<String, Arc<tls::PartnerVerifier>>,
    /// Verifier key + certificate -> one rustls engine (and client config), shared by the routes
    /// that present that certificate under that policy (the server name is given per connection).
    engines: HashMap<String, Arc<dyn upstream::TlsEngine>>,
    /// Certificates, trust, SNI, pins and renegotiation -> what their routes share, with the
    /// SHA-256 of everything but the destination that a route is compiled from.
    profiles: HashMap<String, Arc<RouteProfile>>,
}

struct TrustInputs {
    policy: TrustPolicy,
    anchors: Vec<Vec<u8>>,
    anchor_ids: BTreeSet<String>,
}

pub fn compile(
    inputs: RouteInputs,
    previous: Option<&RouteTable>,
    options: &CompileOptions,
) -> Result<RouteTable, String> {
    let inputs = Arc::new(inputs);
    let mut table = compile_routes(&inputs, previous, options)?;
    table.apps = inputs.apps.clone();
    table.source = Some(inputs);
    table.options = options.clone();
    Ok(table)
}

impl RouteTable {
    /// The same destination, presenting another certificate (the `Certgate-Certificate` header).
    /// Built the first time a table needs it, then reused.
    pub fn with_certificate(&self, route: &Arc<Route>, certificate: &str) -> Result<Arc<Route>, String> {
        let name = CertificateName::parse(certificate).map_err(|e| e.to_string())?;
        self.with_candidates(route, &[name])
    }

    /// The same destination, offering only `candidates` (in this order): an app granted only
    /// some of a binding's certificates is offered those. Built once per table, then reused.
    pub fn with_candidates(&self, route: &Arc<Route>, candidates: &[CertificateName]) -> Result<Arc<Route>, String> {
        if route.candidates().iter().map(|c| &c.name).eq(candidates.iter()) {
            return Ok(route.clone());
        }
        if let Some(r) = self.variants.lock().unwrap_or_else(|p| p.into_inner()).get(&route.destination, candidates) {
            return Ok(r.clone());
        }
        let mut binding = (*route.binding).clone();
        binding.certificate = candidates.first().cloned();
        binding.alternates = candidates.iter().skip(1).cloned().collect();
        let built = build_route(self, &Arc::new(binding))?;
        let mut variants = self.variants.lock().unwrap_or_else(|p| p.into_inner());
        // Two requests may have built it at once: keep the first, so both use one pool.
        if let Some(r) = variants.get(&route.destination, candidates) {
            return Ok(r.clone());
        }
        variants.insert(&route.destination, candidates, built.clone());
        Ok(built)
    }
}

/// Build one route outside a full compile (a per-request certificate choice), reusing the
/// table's inputs and TLS session stores.
fn build_route(table: &RouteTable, binding: &Arc<BindingRecord>) -> Result<Arc<Route>, String> {
    let inputs = table.source.as_ref().ok_or("the route table has no inputs")?;
    let mut c = Compiler {
        inputs,
        options: &table.options,
        previous: Some(table),
        reuse: HashMap::new(),
        sessions: table.sessions.clone(),
        memo: Memo::default(),
    };
    c.route(binding)
}

fn compile_routes(
    inputs: &RouteInputs,
    previous: Option<&RouteTable>,
    options: &CompileOptions,
) -> Result<RouteTable, String> {
    let mut reuse = HashMap::new();
    if let Some(prev) = previous {
        for r in prev.routes() {
            reuse.insert(r.fingerprint_key(), r);
        }
    }
    let mut c = Compiler { inputs, options, previous, reuse, sessions: HashMap::new(), memo: Memo::default() };
    let mut table = RouteTable {
        revision: inputs.revision,
        certificate_expiry: inputs.certificate_expiry.clone(),
        ..RouteTable::default()
    };
    for b in &inputs.bindings {
        c.place(&mut table, b);
    }
    if options.allow_unbound {
        let unbound = Arc::new(BindingRecord::unbound("(unbound)".into()));
        table.unbound = Some(c.route_or_unavailable(&unbound, &mut table.unavailable));
    }
    c.services(&mut table);
    table.sessions = c.sessions;
    Ok(table)
}

/// Compile a table from `previous` and what changed (see `RouteSource::inputs_since`): the
/// routes of changed bindings, and of bindings that present a changed certificate, are compiled
/// again (reused when their fingerprint did not move), named services are resolved again, and
/// every other route is carried over as it is, with its pool and sessions. The result is the
/// table a whole compile of `inputs` would give.
pub fn compile_changes(
    inputs: RouteInputs,
    previous: &RouteTable,
    touched: &Touched,
    options: &CompileOptions,
) -> Result<RouteTable, String> {
    let inputs = Arc::new(inputs);
    let mut affected: HashSet<&str> = touched.destinations.iter().map(String::as_str).collect();
    let mut bindings: Vec<&Arc<BindingRecord>> = Vec::new();
    for b in &inputs.bindings {
        if affected.contains(b.destination.as_str())
            || !touched.certificates.is_empty() && b.candidates_named().any(|n| touched.certificates.contains(n))
        {
            affected.insert(&b.destination);
            bindings.push(b);
        }
    }
    let mut table = RouteTable {
        revision: inputs.revision,
        certificate_expiry: inputs.certificate_expiry.clone(),
        exact_port: previous.exact_port.clone(),
        exact_host: previous.exact_host.clone(),
        wildcard: previous.wildcard.clone(),
        unbound: previous.unbound.clone(),
        ..RouteTable::default()
    };
    // The routes that may be compiled again, by fingerprint: the affected ones and the services'.
    let mut reuse = HashMap::new();
    for s in previous.services.values() {
        if let Some(r) = &s.route {
            reuse.insert(r.fingerprint_key(), r);
        }
    }
    for d in &affected {
        let Ok(parsed) = Destination::parse(d) else { continue };
        match parsed.destination {
            Destination::HostPort(h, p) => {
                if let Some(hosts) = table.exact_port.get_mut(&p) {
                    hosts.remove(h.as_str());
                    if hosts.is_empty() {
                        table.exact_port.remove(&p);
                    }
                }
            }
            Destination::Host(h) => {
                table.exact_host.remove(h.as_str());
            }
            Destination::Wildcard(w) => {
                table.wildcard.remove(w.as_str());
            }
            Destination::Service(_) => {}
        }
        if let Some(old) = previous.find_key(d) {
            reuse.insert(old.fingerprint_key(), old);
        }
    }
    // What was unavailable and is not compiled again stays so.
    let services: HashSet<String> =
        previous.source.iter().flat_map(|s| s.services.iter()).map(|s| format!("service:{}", s.name)).collect();
    table.unavailable = previous
        .unavailable
        .iter()
        .filter(|(d, _)| !affected.contains(d.as_str()) && !services.contains(d))
        .cloned()
        .collect();
    let mut c = Compiler {
        inputs: &inputs,
        options,
        previous: Some(previous),
        reuse,
        sessions: previous.sessions.clone(),
        memo: Memo::default(),
    };
    for b in bindings {
        c.place(&mut table, b);
    }
    c.services(&mut table);
    // Session stores of certificates no longer in the inputs go (a rotated certificate's).
    let ids: HashSet<&str> = inputs.identities.values().map(|i| i.id.as_str()).collect();
    c.sessions.retain(|key, _| key.is_empty() || key.split(',').all(|id| ids.contains(id)));
    table.sessions = c.sessions;
    table.apps = inputs.apps.clone();
    table.source = Some(inputs.clone());
    table.options = options.clone();
    Ok(table)
}

impl RouteTable {
    /// The route compiled for a binding's destination key (not a lookup by request host).
    fn find_key(&self, destination: &str) -> Option<&Arc<Route>> {
        match Destination::parse(destination).ok()?.destination {
            Destination::HostPort(h, p) => self.exact_port.get(&p)?.get(h.as_str()),
            Destination::Host(h) => self.exact_host.get(h.as_str()),
            Destination::Wildcard(w) => self.wildcard.get(w.as_str()),
            Destination::Service(_) => None,
        }
    }
}

impl Compiler<'_> {
    /// Compile one binding into the table (services' own bindings are compiled with them).
    fn place(&mut self, table: &mut RouteTable, b: &Arc<BindingRecord>) {
        let dest = match Destination::parse(&b.destination) {
            Ok(p) => p.destination,
            Err(e) => {
                // Not reachable by any request: say so, and compile the rest.
                table.unavailable.push((b.destination.clone(), format!("binding '{}': {e}", b.destination)));
                return;
            }
        };
        if matches!(dest, Destination::Service(_)) {
            return; // compiled with its service
        }
        let route = self.route_or_unavailable(b, &mut table.unavailable);
        match dest {
            Destination::HostPort(h, p) => {
                table.exact_port.entry(p).or_default().insert(h.into(), route);
            }
            Destination::Host(h) => {
                // The key is the destination itself: share the route's copy.
                let key = if *h == *route.destination { route.destination.clone() } else { h.into() };
                table.exact_host.insert(key, route);
            }
            Destination::Wildcard(d) => {
                table.wildcard.insert(d.into(), route);
            }
            Destination::Service(_) => {}
        }
    }

    /// Resolve every named service: its own `service:NAME` binding, or the table's route for
    /// its URL's host.
    fn services(&mut self, table: &mut RouteTable) {
        let inputs = self.inputs;
        for svc in &inputs.services {
            let base = match url::Url::parse(&svc.url) {
                Ok(u) => u,
                Err(e) => {
                    table.unavailable.push((
                        format!("service:{}", svc.name),
                        format!("service '{}': bad URL {}: {e}", svc.name, svc.url),
                    ));
                    continue;
                }
            };
            let key = format!("service:{}", svc.name);
            let route = match inputs.bindings.iter().find(|b| b.destination == key) {
                Some(b) => Some(self.route_or_unavailable(b, &mut table.unavailable)),
                None => {
                    let host = base.host_str().unwrap_or_default();
                    table.find(host, base.port_or_known_default().unwrap_or(443)).cloned()
                }
            };
            table.services.insert(svc.name.clone(), ServiceRoute::new(svc.name.clone(), base, route));
        }
    }
}

impl Compiler<'_> {
    /// The binding's route, or when it cannot be built a route that answers every request with
    /// `route-unavailable` and the reason; the rest of the table is unaffected.
    fn route_or_unavailable(&mut self, b: &Arc<BindingRecord>, unavailable: &mut Vec<(String, String)>) -> Arc<Route> {
        match self.route(b) {
            Ok(r) => r,
            Err(reason) => {
                tracing::error!(destination = %b.destination, "route unavailable: {reason}");
                unavailable.push((b.destination.clone(), reason.clone()));
                let engine: Arc<dyn upstream::TlsEngine> = Arc::new(upstream::Unavailable(reason.clone()));
                let destination: Arc<str> = Arc::from(b.destination.as_str());
                let connector =
                    Connector::new(engine.clone(), destination.clone(), None, self.options.settings.clone(), None);
                let profile = Arc::new(RouteProfile {
                    candidates: Box::default(),
                    label: certificate_label(b).into(),
                    trust: b.trust.to_string().into(),
                    response_body_timeout: self.options.settings.response_body_timeout,
                    digest: format!("unavailable|{reason}").into(),
                });
                Arc::new(Route {
                    binding: b.clone(),
                    destination,
                    profile,
                    client: upstream::client(connector),
                    ok_requests: Default::default(),
                    unavailable: Some(reason.into()),
                    engine,
                })
            }
        }
    }

    fn trust(&mut self, policy: &TrustPolicy) -> Result<Arc<TrustInputs>, String> {
        if let Some(t) = self.memo.trusts.get(policy) {
            return Ok(t.clone());
        }
        let anchors = self.anchor_certs(policy)?;
        let anchor_ids = anchors.iter().map(|a| crate::pki::facts::sha256_hex(a)).collect();
        let t = Arc::new(TrustInputs { policy: policy.clone(), anchors, anchor_ids });
        self.memo.trusts.insert(policy.clone(), t.clone());
        Ok(t)
    }

    fn chain_ids(&mut self, identity: &RouteIdentity) -> String {
        self.memo
            .chains
            .entry(identity.name.to_string())
            .or_insert_with(|| {
                identity.chain.iter().map(|c| crate::pki::facts::sha256_hex(c)).collect::<Vec<_>>().join(",")
            })
            .clone()
    }

    fn route(&mut self, b: &Arc<BindingRecord>) -> Result<Arc<Route>, String> {
        let trust_inputs = self.trust(&b.trust).map_err(|e| format!("binding '{}': {e}", b.destination))?;
        let trust = &trust_inputs.policy;
        let inputs = self.inputs;
        // Every candidate must be usable: a broken one makes the route unavailable (and says
        // which), rather than silently changing what the partner may receive.
        let mut identities: Vec<&RouteIdentity> = Vec::new();
        for name in b.candidates() {
            if let Some(why) = inputs.broken_identities.get(name) {
                return Err(format!("binding '{}': certificate '{name}' cannot be used: {why}", b.destination));
            }
            identities.push(
                inputs
                    .identities
                    .get(name)
                    .ok_or_else(|| format!("binding '{}': certificate '{name}' is not in the store", b.destination))?,
            );
        }
        let pins = b.pins.clone();
        let digest_key = format!(
            "{:?}\0{:?}\0{}\0{:?}\0{:?}\0{}",
            b.certificate, b.alternates, b.trust, b.sni, b.pins, b.allow_renegotiation
        );
        let ids = identities.iter().map(|i| i.id.as_str()).collect::<Vec<_>>().join(",");
        let chain_ids = identities.iter().map(|i| self.chain_ids(i)).collect::<Vec<_>>().join(";");
        // What routes of the same inputs share, with the digest of those inputs (a fingerprint
        // is the destination plus this digest).
        let profile = match self.memo.profiles.get(&digest_key) {
            Some(p) => p.clone(),
            None => {
                let all = format!(
                    "{}|{}|{}|{:?}|{:?}|{:?}|{}",
                    if ids.is_empty() { "-" } else { ids.as_str() },
                    chain_ids,
                    trust,
                    trust_inputs.anchor_ids,
                    b.sni,
                    b.pins,
                    b.allow_renegotiation,
                );
                let candidates = identities
                    .iter()
                    .map(|i| RouteCertificate {
                        name: i.name.clone(),
                        id: i.id.clone(),
                        not_before: i.not_before,
                        not_after: i.not_after,
                    })
                    .collect();
                let p = Arc::new(RouteProfile {
                    candidates,
                    label: certificate_label(b).into(),
                    trust: trust.to_string().into(),
                    response_body_timeout: self.options.settings.response_body_timeout,
                    digest: crate::pki::facts::sha256_hex(all.as_bytes()).into(),
                });
                self.memo.profiles.insert(digest_key, p.clone());
                p
            }
        };
        // One resumption store per certificate (per set of candidates), never shared across them.
        let session_key = ids;
        if let Some(r) = self.reuse.get(&(b.destination.as_str(), &*profile.digest)) {
            if let Some(s) = self.previous.and_then(|p| p.sessions.get(&session_key)) {
                self.sessions.entry(session_key).or_insert_with(|| s.clone());
            }
            return Ok(Arc::clone(r));
        }
        let sessions = match self.sessions.get(&session_key) {
            Some(s) => s.clone(),
            None => {
                let s = self
                    .previous
                    .and_then(|p| p.sessions.get(&session_key).cloned())
                    .unwrap_or_else(tls::session_store);
                self.sessions.insert(session_key.clone(), s.clone());
                s
            }
        };
        let trust_label: &str = &profile.trust;
        let verifier_key = format!("{trust_label}|{:?}|{:?}", trust_inputs.anchor_ids, b.pins);
        let verifier = match self.memo.verifiers.get(&verifier_key) {
            Some(v) => v.clone(),
            None => {
                let roots = policy_roots(&trust_inputs.anchors, trust);
                let v = tls::partner_verifier(&roots, trust_label, pins)
                    .map_err(|e| format!("binding '{}': {e}", b.destination))?;
                self.memo.verifiers.insert(verifier_key.clone(), v.clone());
                v
            }
        };
        // The OpenSSL engine presents one identity: a binding with several candidates that also
        // allows renegotiation presents its first candidate (see docs/decisions.md).
        let first = identities.first().copied();
        let engine: Arc<dyn upstream::TlsEngine> = if b.allow_renegotiation
            || identities.iter().any(|i| i.engine_reason.is_some())
        {
            // The OpenSSL engine: one per route (its session cache is the route's).
            let id = match first {
                Some(i) => Some(upstream::OpensslIdentity {
                    chain: i.chain.clone(),
                    key: i.key.load().map_err(|e| {
                        format!("binding '{}': the key of certificate '{}' cannot be used: {e}", b.destination, i.name)
                    })?,
                    weak: i.engine_reason.is_some(),
                }),
                None => None,
            };
            let options = upstream::OpensslOptions { allow_renegotiation: b.allow_renegotiation };
            Arc::new(
                upstream::OpensslEngine::new(verifier, id, options)
                    .map_err(|e| format!("binding '{}': {e}", b.destination))?,
            )
        } else {
            let config_key = format!("{verifier_key}|{session_key}|{chain_ids}");
            self.rustls_engine(&identities, verifier, config_key, sessions, b)?
        };
        let observed = self.options.partners.as_ref().map(|o| upstream::Observed {
            observer: o.clone(),
            pinned: !b.pins.is_empty(),
            trust: profile.trust.clone(),
        });
        let destination: Arc<str> = Arc::from(b.destination.as_str());
        let connector =
            Connector::new(engine.clone(), destination.clone(), b.sni.clone(), self.options.settings.clone(), observed);
        Ok(Arc::new(Route {
            binding: b.clone(),
            destination,
            profile,
            ok_requests: Default::default(),
            client: upstream::client(connector),
            unavailable: None,
            engine,
        }))
    }

    /// The rustls engine presenting `identities` under `verifier`, shared by the routes that
    /// present those certificates under that policy.
    fn rustls_engine(
        &mut self,
        identities: &[&RouteIdentity],
        verifier: Arc<tls::PartnerVerifier>,
        config_key: String,
        sessions: Arc<dyn rustls::client::ClientSessionStore>,
        b: &BindingRecord,
    ) -> Result<Arc<dyn upstream::TlsEngine>, String> {
        if let Some(e) = self.memo.engines.get(&config_key) {
            return Ok(e.clone());
        }
        // The keys of every candidate are opened here, once per table, never per connection.
        let mut candidates = Vec::new();
        for i in identities {
            let key = i.key.load().map_err(|e| {
                format!("binding '{}': the key of certificate '{}' cannot be used: {e}", b.destination, i.name)
            })?;
            let chain = i.chain.iter().map(|c| CertificateDer::from(c.clone())).collect();
            candidates.push(
                tls::Candidate::new(&i.name, chain, key.to_rustls())
                    .map_err(|e| format!("binding '{}': {e}", b.destination))?,
            );
        }
        let config = tls::client_config_candidates(verifier, candidates, sessions)
            .map_err(|e| format!("binding '{}': {e}", b.destination))?;
        let engine: Arc<dyn upstream::TlsEngine> = Arc::new(upstream::RustlsEngine::new(config));
        self.memo.engines.insert(config_key, engine.clone());
        Ok(engine)
    }

    fn anchor_certs(&self, trust: &TrustPolicy) -> Result<Vec<Vec<u8>>, String> {
        anchor_certs(self.inputs, trust)
    }
}

/// The `certificate` label of a route's requests (metrics, logs): the candidates as bound,
/// `a,b` for several, or `none`.
fn certificate_label(b: &BindingRecord) -> String {
    let names: Vec<&str> = b.candidates().collect();
    if names.is_empty() {
        "none".to_string()
    } else {
        names.join(",")
    }
}

/// The CA certificates a trust policy names, from the store's anchors.
fn anchor_certs(inputs: &RouteInputs, trust: &TrustPolicy) -> Result<Vec<Vec<u8>>, String> {
    Ok(match trust {
        TrustPolicy::Public | TrustPolicy::Private => inputs.anchors.values().flatten().cloned().collect(),
        TrustPolicy::Anchors(names) => {
            let mut out = Vec::new();
            for n in names {
                let certs = inputs.anchors.get(n).ok_or_else(|| format!("trust anchor '{n}' is not in the store"))?;
                out.extend(certs.iter().cloned());
            }
            out
        }
    })
}

/// The roots a trust policy verifies partners against: its anchors, plus the system's roots for
/// `public`.
fn policy_roots(anchors: &[Vec<u8>], trust: &TrustPolicy) -> Vec<CertificateDer<'static>> {
    let mut roots: Vec<CertificateDer<'static>> = anchors.iter().map(|a| CertificateDer::from(a.clone())).collect();
    if *trust == TrustPolicy::Public {
        roots.extend(tls::system_roots().iter().cloned());
    }
    roots
}

/// The partner verifier a binding with `trust` and `pins` uses, built the way route compilation
/// builds it (for diagnosis: `certgate probe`).
pub fn partner_verifier(
    inputs: &RouteInputs,
    trust: &TrustPolicy,
    pins: &[crate::model::Pin],
) -> Result<Arc<tls::PartnerVerifier>, String> {
    let anchors = anchor_certs(inputs, trust)?;
    tls::partner_verifier(&policy_roots(&anchors, trust), &trust.to_string(), pins.to_vec())
}

/// Fuzzing entry point (fuzz target `request_target`), not part of the API: a table with one
/// binding of each form (no certificates, so no key is needed) and named services, compiled
/// as `serve` compiles the store's.
#[doc(hidden)]
pub fn fuzz_table() -> RouteTable {
    let binding = |destination: &str| BindingRecord {
        destination: destination.to_string(),
        certificate: None,
        alternates: Vec::new(),
        allow_renegotiation: false,
        trust: TrustPolicy::Public,
        sni: None,
        pins: Vec::new(),
        created_at: 0,
        updated_at: 0,
    };
    let service = |name: &str, url: &str| crate::store::ServiceRecord {
        name: name.to_string(),
        url: url.to_string(),
        created_at: 0,
        updated_at: 0,
    };
    let inputs = RouteInputs {
        revision: 1,
        bindings: ["partner.example", "partner.example:8443", "*.example.com", "127.0.0.1:9443", "::1", "service:Soap"]
            .into_iter()
            .map(binding)
            .map(Arc::new)
            .collect(),
        services: vec![
            service("Soap", "https://soap.partner.example/ws/invoice"),
            service("Rest", "https://api.example.com:8443/v1"),
            service("Root", "https://partner.example"),
        ],
        ..RouteInputs::default()
    };
    compile(inputs, None, &CompileOptions::default()).expect("the fuzz table compiles")
}
