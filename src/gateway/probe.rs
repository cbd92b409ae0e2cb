//! `certgate probe`: why does the partner refuse us? Two connections through the gateway's own
//! connector code (TCP as the gateway opens it, the route's TLS engine):
//!
//! 1. an *inspection* handshake that sends no certificate and accepts any partner certificate,
//!    recording what the partner showed (its chain, judged by the binding's real verifier) and
//!    asked for (whether it wants a client certificate, and the CA names it accepts);
//! 2. when the partner is trusted, the binding's own connection (its certificate, its verifier)
//!    and one request, to see whether the partner accepts it: a TLS alert, an HTTP 400 from nginx,
//!    or a refusal after the request (renegotiation / post-handshake authentication).
//!
//! Nothing is stored, no key material is in the report, and a destination without a binding is
//! probed with what the request says (the gateway stays closed to it).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::ResolvesClientCert;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::sign::CertifiedKey;
use rustls::{DigitallySignedStruct, SignatureScheme};
use serde::Serialize;
use x509_parser::prelude::FromDer;

use crate::model::{Action, CertificateName, Destination, ErrorCode, Pin, Remedy, TrustPolicy};
use crate::pki::facts;
use crate::routes::{compile, partner_verifier, BindingRecord, CompileOptions, RouteInputs, StoredIdentity};
use crate::tls::{self, PartnerVerifier, UpstreamFailure};
use crate::upstream::{self, UpstreamSettings};

/// What to probe, and what to try instead of the binding.
#[derive(Clone, Debug, Default)]
pub struct ProbeRequest {
    /// `https://host[:port]/path`, `host`, or `host:port`.
    pub target: String,
    pub cert: Option<String>,
    pub sni: Option<String>,
    pub trust: Option<TrustPolicy>,
    /// The path of the request sent once the handshake works (default `/`, or the URL's path).
    pub path: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct ProbeReport {
    pub target: String,
    pub host: String,
    pub port: u16,
    /// The binding that applies (the gateway's own lookup), or null when none does.
    pub binding: Option<BindingSummary>,
    /// What this probe used: the binding, changed by `--cert`, `--sni` and `--trust`.
    pub probed_with: BindingSummary,
    pub connect: Option<ConnectInfo>,
    pub tls: Option<TlsInfo>,
    pub partner: Option<PartnerInfo>,
    pub client_certificate: ClientCertificateInfo,
    pub outcome: Outcome,
    /// One entry per problem, each with its remedy.
    pub problems: Vec<Problem>,
    /// The path works end to end (exit 0).
    pub ok: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct BindingSummary {
    pub destination: String,
    pub certificate: Option<CertificateName>,
    /// Every candidate, in order of preference.
    pub certificates: Vec<CertificateName>,
    pub trust: String,
    pub sni: Option<String>,
    pub pins: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct ConnectInfo {
    pub address: String,
    pub millis: u64,
}

#[derive(Debug, Serialize)]
pub struct TlsInfo {
    pub version: Option<String>,
    pub cipher: Option<String>,
    pub alpn: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct PartnerInfo {
    /// What the partner sent, leaf first.
    pub chain: Vec<CertificateInfo>,
    pub trusted: bool,
    /// Why not (`upstream-untrusted`, `upstream-name-mismatch`).
    pub error: Option<ErrorCode>,
    pub message: Option<String>,
    /// The SPKI pin of the partner's leaf now (`sha256/BASE64`).
    pub pin: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct CertificateInfo {
    pub subject: String,
    pub issuer: String,
    pub names: Vec<String>,
    pub not_before: String,
    pub not_after: String,
    pub days_left: i64,
    pub self_signed: bool,
    /// The certificate itself (public), so a partner's CA can be saved and trusted.
    pub pem: String,
}

#[derive(Debug, Serialize)]
pub struct ClientCertificateInfo {
    /// The partner asked for a client certificate during the handshake.
    pub requested: bool,
    /// The CA names it said it accepts (`certificate_authorities`); empty when it named none.
    pub acceptable_cas: Vec<String>,
    /// Stored certificates that chain to one of those names.
    pub matching: Vec<CertificateName>,
    /// The binding's certificates in order of preference (empty: none).
    pub candidates: Vec<CertificateName>,
    /// The certificate this binding presents to this partner (null: none): of the candidates,
    /// the first that chains to a CA it named, or the first when it named none.
    pub sent: Option<CertificateName>,
    /// The certificate actually presented in the binding's own handshake (null: none was asked
    /// for, or the handshake did not get that far).
    pub presented: Option<String>,
    /// Whether that one chains to a CA the partner named (null when it named none or none is sent).
    pub sent_acceptable: Option<bool>,
}

#[derive(Debug, Serialize)]
pub struct Outcome {
    /// The partner accepted the connection and answered the request.
    pub accepted: bool,
    pub error: Option<ErrorCode>,
    pub http_status: Option<u16>,
    pub message: String,
}

#[derive(Debug, Serialize)]
pub struct Problem {
    pub code: ErrorCode,
    pub message: String,
    /// Interface-neutral words.
    pub hint: String,
    /// The same as a command line.
    pub command: Option<String>,
    /// The same as data (`id`, `target`): the console offers it as a button.
    pub action: Option<Action>,
}

impl Problem {
    fn new(code: ErrorCode, message: impl Into<String>, remedy: Remedy) -> Self {
        Problem {
            code,
            message: message.into(),
            command: remedy.action.as_ref().map(Action::command),
            hint: remedy.text.into_owned(),
            action: remedy.action,
        }
    }
}

/// Where the target points.
fn parse_target(target: &str) -> Result<(String, u16, Option<String>), String> {
    let text = target.trim();
    if text.contains("://") {
        let url = url::Url::parse(text).map_err(|e| format!("'{text}' is not a URL ({e})"))?;
        let host = url.host_str().ok_or_else(|| format!("the URL '{text}' has no host"))?;
        let host = crate::model::normalize_host(host)?;
        let port = url.port().unwrap_or(443);
        let path = match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_string(),
        };
        return Ok((host, port, Some(path)));
    }
    match Destination::parse(text)?.destination {
        Destination::Host(h) => Ok((h, 443, None)),
        Destination::HostPort(h, p) => Ok((h, p, None)),
        _ => Err(format!("'{text}' is not a host, host:port or URL")),
    }
}

/// Probe `req` with the store's route inputs (`inputs` must include the identity of `req.cert`),
/// every stored certificate (for matching the partner's CA names), and the gateway's settings.
pub async fn probe(
    req: &ProbeRequest,
    inputs: RouteInputs,
    stored: &[StoredIdentity],
    options: &CompileOptions,
    response_timeout: Duration,
) -> Result<ProbeReport, String> {
    let (host, port, url_path) = parse_target(&req.target)?;
    let path = req.path.clone().or(url_path).filter(|p| !p.is_empty()).unwrap_or_else(|| "/".into());
    if !path.starts_with('/') {
        return Err(format!("the path '{path}' does not start with '/'"));
    }
    let mut problems = Vec::new();

    // The binding the gateway would use, and what this probe uses instead.
    let table = compile(inputs, None, options)?;
    let bound = table.find(&host, port).filter(|r| &*r.destination != "(unbound)").cloned();
    let binding = bound.as_ref().map(|r| summary(&r.binding));
    if bound.is_none() {
        problems.push(Problem::new(
            ErrorCode::NoBinding,
            format!("no binding applies to {host}:{port}: the gateway refuses requests to it"),
            Remedy::with(
                "bind the destination to a certificate (or to no certificate)",
                Action::Bind(Some(host.clone())),
            ),
        ));
    }
    let mut probed = match &bound {
        Some(r) => (*r.binding).clone(),
        None => BindingRecord::unbound(String::new()),
    };
    if bound.is_none() {
        probed.destination =
            if port == 443 { Destination::Host(host.clone()) } else { Destination::HostPort(host.clone(), port) }.key();
    }
    if let Some(c) = &req.cert {
        // One certificate, or several candidates `a,b` in order of preference.
        let names = c
            .split(',')
            .map(|n| CertificateName::parse(n.trim()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| e.to_string())?;
        let mut names = names.into_iter();
        probed.certificate = names.next();
        probed.alternates = names.collect();
    }
    if let Some(s) = &req.sni {
        probed.sni = Some(s.clone());
    }
    if let Some(t) = &req.trust {
        probed.trust = t.clone();
    }
    let inputs = table.source_inputs().ok_or("the route table has no inputs")?;
    let verifier = partner_verifier(inputs, &probed.trust, &probed.pins)?;
    let server_name = probed.sni.clone().unwrap_or_else(|| host.clone());
    let settings = options.settings.clone();

    // 1. Inspection: what the partner shows and asks for.
    let started = Instant::now();
    let (tcp, address) = match upstream::connect_tcp(&host, port, &settings).await {
        Ok(c) => c,
        Err(e) => {
            problems.push(Problem::new(e.code, e.message.clone(), e.code.remedy()));
            return Ok(finish(
                req,
                host,
                port,
                binding,
                &probed,
                None,
                None,
                None,
                client_info(&probed),
                failed(e.code, e.message),
                problems,
            ));
        }
    };
    let connect = ConnectInfo { address: address.to_string(), millis: started.elapsed().as_millis() as u64 };
    let inspection = inspect(tcp, &server_name, verifier, &settings).await;
    let partner = partner_info(&inspection);
    let mut client = client_info(&probed);
    client.requested = inspection.requested;
    client.acceptable_cas = inspection.ca_names.iter().map(|n| dn_text(n)).collect();
    client.matching =
        stored.iter().filter(|s| chains_to_one_of(s, &inspection.ca_names)).map(|s| s.name.clone()).collect();
    if !inspection.ca_names.is_empty() {
        // What the candidates' resolver picks for these names.
        if let Some(m) = client.candidates.iter().find(|c| client.matching.contains(c)) {
            client.sent = Some(m.clone());
        }
    }
    if let Some(sent) = &client.sent {
        if !inspection.ca_names.is_empty() {
            client.sent_acceptable = Some(client.matching.contains(sent));
        }
    }
    let mut tls_info = inspection.tls;

    // What the inspection found wrong.
    let trusted = partner.as_ref().is_some_and(|p| p.trusted);
    if let Some(p) = &partner {
        if !p.trusted {
            problems.push(untrusted_problem(p, &probed, &host, inputs));
        }
    } else if let Some(e) = &inspection.error {
        problems.push(Problem::new(e.code, e.message.clone(), e.code.remedy()));
    }
    if client.requested && client.sent.is_none() {
        let words = match client.matching.first() {
            Some(m) => format!("the partner asks for a client certificate; '{m}' chains to a CA it accepts: bind it"),
            None => "the partner asks for a client certificate and none is bound: import the one the partner issued or accepts, and bind it".to_string(),
        };
        problems.push(Problem::new(
            ErrorCode::UpstreamRejectedCertificate,
            "the partner asks for a client certificate, and this binding sends none",
            Remedy::with(words, Action::Bind(Some(probed.destination.clone()))),
        ));
    }
    if client.sent_acceptable == Some(false) {
        let sent = client.sent.clone().unwrap_or_default();
        let words = match client.matching.first() {
            Some(m) => format!("the partner accepts certificates from {}; '{m}' chains to one of them: bind it instead", client.acceptable_cas.join("; ")),
            None => format!("the partner accepts certificates from {} only, and no stored certificate chains to one of them: ask the partner which CA to use", client.acceptable_cas.join("; ")),
        };
        problems.push(Problem::new(
            ErrorCode::UpstreamRejectedCertificate,
            format!("certificate '{sent}' does not chain to a CA the partner named"),
            Remedy::with(words, Action::Bind(Some(probed.destination.clone()))),
        ));
    }

    // 2. The binding's own connection and one request (only to a trusted partner).
    let outcome = if !trusted {
        let (code, message) = match &partner {
            Some(p) => (p.error.unwrap_or(ErrorCode::UpstreamUntrusted), p.message.clone().unwrap_or_default()),
            None => match &inspection.error {
                Some(e) => (e.code, e.message.clone()),
                None => (ErrorCode::UpstreamConnectFailed, "the partner sent no certificate".into()),
            },
        };
        failed(code, format!("not sent: {message}"))
    } else {
        // The probed binding, alone and exact for this host and port.
        let mut one = inputs.clone();
        let mut exact = probed.clone();
        exact.destination = Destination::HostPort(host.clone(), port).key();
        one.bindings.retain(|b| b.destination != exact.destination);
        one.bindings.push(std::sync::Arc::new(exact));
        let own =
            compile(one, None, &CompileOptions { settings: settings.clone(), allow_unbound: false, partners: None })?;
        let route = own.find(&host, port).cloned().ok_or("the probed binding did not compile")?;
        if let Some(why) = &route.unavailable {
            problems.push(Problem::new(ErrorCode::RouteUnavailable, why.clone(), ErrorCode::RouteUnavailable.remedy()));
            failed(ErrorCode::RouteUnavailable, why.to_string())
        } else {
            let (mut outcome, info, presented) =
                exchange(&route.engine, &host, port, &server_name, &path, &settings, response_timeout).await;
            client.presented = presented;
            let unfit = client.requested && (client.sent.is_none() || client.sent_acceptable == Some(false));
            if info.is_some() && unfit && outcome.error == Some(ErrorCode::UpstreamConnectFailed) {
                // TLS 1.3: the partner judges our certificate after the handshake and closes the
                // connection; whether its alert or the closed pipe is seen first is a race.
                outcome = failed(
                    ErrorCode::UpstreamRejectedCertificate,
                    "the partner closed the connection right after the handshake: it refused the client certificate (with TLS 1.3 a partner refuses it this way)".into(),
                );
            }
            if info.is_some() {
                tls_info = info;
            }
            outcome_problems(&outcome, &client, &mut problems, &probed);
            outcome
        }
    };
    let ok = bound.is_some() && problems.is_empty() && outcome.accepted;
    let mut report =
        finish(req, host, port, binding, &probed, Some(connect), tls_info, partner, client, outcome, problems);
    report.ok = ok;
    Ok(report)
}

#[allow(clippy::too_many_arguments)]
fn finish(
    req: &ProbeRequest,
    host: String,
    port: u16,
    binding: Option<BindingSummary>,
    probed: &BindingRecord,
    connect: Option<ConnectInfo>,
    tls: Option<TlsInfo>,
    partner: Option<PartnerInfo>,
    client_certificate: ClientCertificateInfo,
    outcome: Outcome,
    problems: Vec<Problem>,
) -> ProbeReport {
    ProbeReport {
        target: req.target.clone(),
        host,
        port,
        binding,
        probed_with: summary(probed),
        connect,
        tls,
        partner,
        client_certificate,
        outcome,
        problems,
        ok: false,
    }
}

fn summary(b: &BindingRecord) -> BindingSummary {
    BindingSummary {
        destination: b.destination.clone(),
        certificate: b.certificate.clone(),
        certificates: b.certificate.iter().chain(&b.alternates).cloned().collect(),
        trust: b.trust.to_string(),
        sni: b.sni.clone(),
        pins: b.pins.iter().map(Pin::to_string).collect(),
    }
}

fn client_info(b: &BindingRecord) -> ClientCertificateInfo {
    ClientCertificateInfo {
        requested: false,
        acceptable_cas: Vec::new(),
        matching: Vec::new(),
        candidates: b.certificate.iter().chain(&b.alternates).cloned().collect(),
        sent: b.certificate.clone(),
        presented: None,
        sent_acceptable: None,
    }
}

fn failed(code: ErrorCode, message: String) -> Outcome {
    Outcome { accepted: false, error: Some(code), http_status: None, message }
}

// ---------------------------------------------------------------------------------------------
// The inspection handshake

/// The partner's chain (leaf first) and the binding verifier's verdict on it.
type Seen = (Vec<Vec<u8>>, Result<(), UpstreamFailure>);

/// Records the partner's chain and the real verifier's verdict, and lets the handshake go on.
#[derive(Debug)]
struct Inspector {
    verifier: Arc<PartnerVerifier>,
    seen: Mutex<Option<Seen>>,
}

impl ServerCertVerifier for Inspector {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let verdict = self
            .verifier
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
            .map(|_| ())
            .map_err(|e| {
                tls::classify(&e)
                    .unwrap_or(UpstreamFailure { code: ErrorCode::UpstreamUntrusted, message: e.to_string() })
            });
        let chain = std::iter::once(end_entity).chain(intermediates).map(|c| c.to_vec()).collect();
        *self.seen.lock().unwrap_or_else(|p| p.into_inner()) = Some((chain, verdict));
        // Inspection only: nothing is sent on this connection but an empty certificate message.
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.verifier.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.verifier.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.verifier.supported_verify_schemes()
    }
}

/// Records whether the partner asked for a client certificate, and the CA names it sent; presents
/// nothing.
#[derive(Debug, Default)]
struct AskRecorder {
    asked: Mutex<Option<Vec<Vec<u8>>>>,
}

impl ResolvesClientCert for AskRecorder {
    fn resolve(&self, root_hint_subjects: &[&[u8]], _schemes: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        *self.asked.lock().unwrap_or_else(|p| p.into_inner()) =
            Some(root_hint_subjects.iter().map(|s| s.to_vec()).collect());
        None
    }

    fn has_certs(&self) -> bool {
        true
    }
}

struct Inspection {
    chain: Vec<Vec<u8>>,
    verdict: Option<Result<(), UpstreamFailure>>,
    requested: bool,
    ca_names: Vec<Vec<u8>>,
    tls: Option<TlsInfo>,
    /// The handshake itself failed before the partner showed a certificate.
    error: Option<UpstreamFailure>,
}

async fn inspect(
    tcp: tokio::net::TcpStream,
    server_name: &str,
    verifier: Arc<PartnerVerifier>,
    settings: &UpstreamSettings,
) -> Inspection {
    let inspector = Arc::new(Inspector { verifier, seen: Mutex::new(None) });
    let asks = Arc::new(AskRecorder::default());
    let config = rustls::ClientConfig::builder_with_provider(tls::provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map(|b| {
            b.dangerous().with_custom_certificate_verifier(inspector.clone()).with_client_cert_resolver(asks.clone())
        });
    let mut out =
        Inspection { chain: Vec::new(), verdict: None, requested: false, ca_names: Vec::new(), tls: None, error: None };
    let mut config = match config {
        Ok(c) => c,
        Err(e) => {
            out.error = Some(UpstreamFailure { code: ErrorCode::UpstreamConnectFailed, message: e.to_string() });
            return out;
        }
    };
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    config.resumption = rustls::client::Resumption::disabled();
    let Ok(name) = ServerName::try_from(server_name.to_string()) else {
        out.error = Some(UpstreamFailure {
            code: ErrorCode::BadRequest,
            message: format!("'{server_name}' is not a valid server name"),
        });
        return out;
    };
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    match tokio::time::timeout(settings.handshake_timeout, connector.connect(name, tcp)).await {
        Ok(Ok(stream)) => {
            let (_, conn) = stream.get_ref();
            let (version, cipher, alpn) = tls::negotiated(conn);
            out.tls = Some(TlsInfo { version, cipher, alpn });
        }
        Ok(Err(e)) => {
            // A TLS 1.2 partner that requires a certificate ends the handshake when none comes:
            // what it showed and asked for is recorded all the same.
            out.error = Some(tls::classify(&e).unwrap_or(UpstreamFailure {
                code: ErrorCode::UpstreamConnectFailed,
                message: format!("the TLS handshake failed: {e}"),
            }));
        }
        Err(_) => {
            out.error = Some(UpstreamFailure {
                code: ErrorCode::UpstreamTimeout,
                message: format!("the TLS handshake took longer than {} ms", settings.handshake_timeout.as_millis()),
            });
        }
    }
    if let Some((chain, verdict)) = inspector.seen.lock().unwrap_or_else(|p| p.into_inner()).take() {
        out.chain = chain;
        out.verdict = Some(verdict);
    }
    if let Some(names) = asks.asked.lock().unwrap_or_else(|p| p.into_inner()).take() {
        out.requested = true;
        out.ca_names = names;
    }
    out
}

fn partner_info(i: &Inspection) -> Option<PartnerInfo> {
    let verdict = i.verdict.as_ref()?;
    let now = time::OffsetDateTime::now_utc();
    let chain = i
        .chain
        .iter()
        .filter_map(|der| facts::read(der).ok().map(|f| (der, f)))
        .map(|(der, f)| CertificateInfo {
            subject: f.subject.clone(),
            issuer: f.issuer.clone(),
            names: f.alt_names.clone(),
            not_before: f.not_before.format(&time::format_description::well_known::Rfc3339).unwrap_or_default(),
            not_after: f.not_after.format(&time::format_description::well_known::Rfc3339).unwrap_or_default(),
            days_left: (f.not_after - now).whole_days(),
            self_signed: f.subject == f.issuer,
            pem: pem_of(der),
        })
        .collect();
    let pin = i.chain.first().and_then(|leaf| {
        x509_parser::parse_x509_certificate(leaf).ok().map(|(_, c)| Pin::of_spki(c.public_key().raw).to_string())
    });
    let (trusted, error, message) = match verdict {
        Ok(()) => (true, None, None),
        Err(f) => (false, Some(f.code), Some(f.message.clone())),
    };
    Some(PartnerInfo { chain, trusted, error, message, pin })
}

fn pem_of(der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

/// A distinguished name as people read it.
fn dn_text(der: &[u8]) -> String {
    match x509_parser::x509::X509Name::from_der(der) {
        Ok((_, name)) => name.to_string(),
        Err(_) => format!("(unreadable name, {} bytes)", der.len()),
    }
}

/// The DER of a name, as it is compared (the parsed name's own bytes).
fn dn_raw(der: &[u8]) -> Option<Vec<u8>> {
    x509_parser::x509::X509Name::from_der(der).ok().map(|(_, n)| n.as_raw().to_vec())
}

/// Whether a stored certificate's path names one of the CAs: its issuer, or any certificate of
/// its chain (subject or issuer).
fn chains_to_one_of(stored: &StoredIdentity, ca_names: &[Vec<u8>]) -> bool {
    let wanted: Vec<Vec<u8>> = ca_names.iter().filter_map(|n| dn_raw(n)).collect();
    if wanted.is_empty() {
        return false;
    }
    let mut names = Vec::new();
    if let Ok((_, leaf)) = x509_parser::parse_x509_certificate(&stored.leaf_der) {
        names.push(leaf.issuer().as_raw().to_vec());
    }
    for der in &stored.chain_der {
        if let Ok((_, c)) = x509_parser::parse_x509_certificate(der) {
            names.push(c.subject().as_raw().to_vec());
            names.push(c.issuer().as_raw().to_vec());
        }
    }
    names.iter().any(|n| wanted.contains(n))
}

fn untrusted_problem(p: &PartnerInfo, probed: &BindingRecord, host: &str, inputs: &RouteInputs) -> Problem {
    let message = p.message.clone().unwrap_or_else(|| "the partner's certificate is not trusted".into());
    let dest = Some(probed.destination.clone());
    match p.error {
        Some(ErrorCode::UpstreamNameMismatch) => {
            let names = p.chain.first().map(|c| c.names.join(", ")).unwrap_or_default();
            Problem::new(
                ErrorCode::UpstreamNameMismatch,
                message,
                Remedy::with(
                    format!("the partner's certificate is for [{names}], not {host}: call it by one of those names, or set the binding's SNI name to one of them"),
                    Action::Bind(dest),
                ),
            )
        }
        _ if message.contains("pins") => Problem::new(
            ErrorCode::UpstreamUntrusted,
            message,
            Remedy::with(
                format!(
                    "the partner's key changed (its pin now is {}): check with the partner, then update the binding's pins",
                    p.pin.clone().unwrap_or_default()
                ),
                Action::Bind(dest),
            ),
        ),
        _ => {
            // Which issuer is missing, and whether a stored anchor or the partner's own chain has it.
            let top = p.chain.iter().rev().find(|c| !c.self_signed).or(p.chain.first());
            let missing = top.map(|c| c.issuer.clone()).unwrap_or_default();
            let stored_anchor = inputs.anchors.iter().find_map(|(name, certs)| {
                certs.iter().filter_map(|d| facts::read(d).ok()).any(|f| f.subject == missing).then(|| name.clone())
            });
            let sent_root = p.chain.iter().find(|c| c.self_signed && c.subject == missing);
            let words = match (&stored_anchor, sent_root) {
                (Some(a), _) => format!("the trust anchor '{a}' holds the missing issuer '{missing}': use trust policy ca:{a} for this binding"),
                (None, Some(_)) => format!("the partner sent its own root '{missing}' (in the report as PEM): if the partner confirms it, add it as a trust anchor and use it as this binding's trust policy"),
                (None, None) => format!("add the CA '{missing}' (ask the partner for it) as a trust anchor and use it as this binding's trust policy"),
            };
            let action = match &stored_anchor {
                Some(_) => Action::Bind(dest),
                None => Action::AddTrustAnchor,
            };
            Problem::new(ErrorCode::UpstreamUntrusted, message, Remedy::with(words, action))
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The binding's own connection

async fn exchange(
    engine: &Arc<dyn upstream::TlsEngine>,
    host: &str,
    port: u16,
    server_name: &str,
    path: &str,
    settings: &UpstreamSettings,
    response_timeout: Duration,
) -> (Outcome, Option<TlsInfo>, Option<String>) {
    let (tcp, _) = match upstream::connect_tcp(host, port, settings).await {
        Ok(c) => c,
        Err(e) => return (failed(e.code, e.message), None, None),
    };
    let done = match upstream::handshake(engine.as_ref(), tcp, server_name, host, port, settings).await {
        Ok(d) => d,
        Err(e) => return (failed(e.code, e.message), None, None),
    };
    let presented = done.presented.clone();
    let info = TlsInfo { version: done.version.clone(), cipher: done.cipher.clone(), alpn: done.alpn.clone() };
    let authority = if port == 443 { host.to_string() } else { format!("{host}:{port}") };
    let uri = format!("https://{authority}{path}");
    let request = |version| {
        let builder = http::Request::builder().method(http::Method::GET).version(version);
        // HTTP/1.1 names the host in a header (origin-form target); HTTP/2 in the URI.
        let builder = if version == http::Version::HTTP_11 {
            builder.uri(path).header(http::header::HOST, authority.as_str())
        } else {
            builder.uri(uri.as_str())
        };
        builder
            .header(http::header::USER_AGENT, concat!("certgate-probe/", env!("CARGO_PKG_VERSION")))
            .body(Full::new(Bytes::new()))
    };
    let io = TokioIo::new(done.io);
    let result = tokio::time::timeout(response_timeout, async {
        if done.h2 {
            let (mut send, conn) = hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), io)
                .await
                .map_err(|e| e.to_string())?;
            let conn = tokio::spawn(async move { conn.await.map_err(|e| error_chain(&e)) });
            let req = request(http::Version::HTTP_2).map_err(|e| e.to_string())?;
            with_connection_error(collect(send.send_request(req).await).await, conn).await
        } else {
            let (mut send, conn) = hyper::client::conn::http1::handshake(io).await.map_err(|e| e.to_string())?;
            let conn = tokio::spawn(async move { conn.await.map_err(|e| error_chain(&e)) });
            let req = request(http::Version::HTTP_11).map_err(|e| e.to_string())?;
            with_connection_error(collect(send.send_request(req).await).await, conn).await
        }
    })
    .await;
    let outcome = match result {
        Err(_) => failed(
            ErrorCode::UpstreamTimeout,
            format!("the partner did not answer within {} ms", response_timeout.as_millis()),
        ),
        Ok(Err(e)) => match engine
            .classify(&std::io::Error::other(e.clone()))
            .or_else(|| renegotiation_in(&e))
            .or_else(|| alert_in(&e))
        {
            Some(f) => failed(f.code, f.message),
            None => failed(ErrorCode::UpstreamConnectFailed, format!("the exchange failed: {e}")),
        },
        Ok(Ok((status, body))) => Outcome {
            accepted: true,
            error: None,
            http_status: Some(status),
            message: format!(
                "the partner answered HTTP {status}{}",
                if body.is_empty() { String::new() } else { format!(": {}", body.trim()) }
            ),
        },
    };
    (outcome, Some(info), presented)
}

/// When the request failed, the connection's own error says why (a TLS 1.3 partner's alert
/// about our certificate arrives on the connection, and the request only sees it closed).
async fn with_connection_error(
    result: Result<(u16, String), String>,
    conn: tokio::task::JoinHandle<Result<(), String>>,
) -> Result<(u16, String), String> {
    let Err(request_error) = result else {
        return result;
    };
    match tokio::time::timeout(Duration::from_secs(1), conn).await {
        Ok(Ok(Err(conn_error))) => Err(conn_error),
        _ => Err(request_error),
    }
}

/// The engine's renegotiation finding in an error's text (hyper's error chain, as text): the
/// partner asked for the certificate after the request and this binding does not allow it.
fn renegotiation_in(text: &str) -> Option<UpstreamFailure> {
    (text.contains("UpstreamRenegotiationRequired") || text.contains("upstream-renegotiation-required")).then(|| {
        UpstreamFailure {
            code: ErrorCode::UpstreamRenegotiationRequired,
            message: "the partner asked for a TLS renegotiation after the request (it asks for the client \
                      certificate only for this path), which this binding does not allow"
                .into(),
        }
    })
}

/// A TLS alert named in an error's text (what hyper reports after a TLS 1.3 partner's alert).
fn alert_in(text: &str) -> Option<UpstreamFailure> {
    [
        "certificate_required",
        "CertificateRequired",
        "unknown_ca",
        "UnknownCA",
        "bad_certificate",
        "BadCertificate",
        "access_denied",
        "AccessDenied",
    ]
    .iter()
    .find(|a| text.contains(*a))
    .map(|a| UpstreamFailure {
        code: ErrorCode::UpstreamRejectedCertificate,
        message: format!("the partner refused the client certificate with the TLS alert {a}"),
    })
}

async fn collect(resp: Result<http::Response<hyper::body::Incoming>, hyper::Error>) -> Result<(u16, String), String> {
    let resp = resp.map_err(|e| error_chain(&e))?;
    let status = resp.status().as_u16();
    // Enough of the body to recognise nginx's certificate errors; never all of it.
    let mut body = resp.into_body();
    let mut text = Vec::new();
    while text.len() < 2048 {
        match body.frame().await {
            Some(Ok(f)) => {
                if let Some(d) = f.data_ref() {
                    text.extend_from_slice(d);
                }
            }
            _ => break,
        }
    }
    text.truncate(2048);
    Ok((status, summarize_body(&String::from_utf8_lossy(&text))))
}

/// The readable text of an answer (an HTML error page loses its tags and repeats: nginx says
/// `400 Bad Request` then `The SSL certificate error` or `No required SSL certificate was sent`).
fn summarize_body(body: &str) -> String {
    let mut text = String::new();
    let mut in_tag = false;
    for ch in body.chars() {
        match ch {
            '<' => {
                in_tag = true;
                text.push(' ');
            }
            '>' => in_tag = false,
            c if !in_tag => text.push(c),
            _ => {}
        }
    }
    let mut parts: Vec<String> = Vec::new();
    for line in text.split(['\n', '\r']).map(|l| l.split_whitespace().collect::<Vec<_>>().join(" ")) {
        if !line.is_empty() && !parts.contains(&line) {
            parts.push(line);
        }
    }
    parts.join(" / ").chars().take(200).collect()
}

fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![e.to_string()];
    let mut cur = e.source();
    while let Some(s) = cur {
        parts.push(format!("{s:?}"));
        cur = s.source();
    }
    parts.join(": ")
}

fn outcome_problems(
    outcome: &Outcome,
    client: &ClientCertificateInfo,
    problems: &mut Vec<Problem>,
    probed: &BindingRecord,
) {
    if let Some(code) = outcome.error {
        if !problems.iter().any(|p| p.code == code) {
            let remedy = if code == ErrorCode::UpstreamRenegotiationRequired {
                Remedy::with(
                    "allow renegotiation on this binding so the certificate can be sent when the partner asks for it after the request",
                    Action::AllowRenegotiation(probed.destination.clone(), probed.bind_args()),
                )
            } else {
                code.remedy()
            };
            problems.push(Problem::new(code, outcome.message.clone(), remedy));
        }
        return;
    }
    let status = outcome.http_status.unwrap_or(0);
    let lower = outcome.message.to_ascii_lowercase();
    if status == 400 && (lower.contains("certificate") || client.requested) {
        problems.push(Problem::new(
            ErrorCode::UpstreamRejectedCertificate,
            format!("{}: a partner that asked for a client certificate answered HTTP 400 (nginx refuses a missing or unacceptable client certificate this way, after the handshake)", outcome.message),
            Remedy::with(
                "present a certificate the partner accepts: check which CA it trusts and the certificate's chain",
                Action::CheckCertificate(client.sent.as_ref().map(|c| c.to_string())),
            ),
        ));
    } else if (status == 403 || status == 495 || status == 496) && !client.requested {
        problems.push(Problem::new(
            ErrorCode::UpstreamRenegotiationRequired,
            format!("{}; the partner did not ask for a client certificate during the handshake, so it may ask only after the request (TLS renegotiation or post-handshake authentication, as IIS and Apache do per path)", outcome.message),
            Remedy::with(
                "allow renegotiation on this binding so the certificate can be sent when the partner asks for it after the request",
                Action::AllowRenegotiation(probed.destination.clone(), probed.bind_args()),
            ),
        ));
    }
}
