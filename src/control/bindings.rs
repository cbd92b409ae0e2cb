//! Bindings (destination -> certificate or none, with the partner's trust policy) and named
//! services (NAME -> base URL).

use serde::Serialize;

use crate::routes::{Destination, Pin, TrustPolicy};
use crate::store::{BindingRecord, ServiceRecord, StoreError};

use super::{validate_name, Control, ControlError};
use crate::model::{Action, CertificateName, Remedy};

/// What to bind a destination to.
pub struct BindRequest {
    pub destination: String,
    /// The certificates to present, in order of preference: at each handshake the first that
    /// chains to a CA name the partner sent, or the first when it sent none. Empty: send no
    /// certificate (`--no-cert`).
    pub certificates: Vec<String>,
    pub trust: Option<String>,
    pub sni: Option<String>,
    pub pins: Vec<String>,
    /// Let the partner renegotiate or ask for the certificate after the handshake (OpenSSL engine).
    pub allow_renegotiation: bool,
}

/// A binding: destination -> certificate (or several candidates, or none), with the partner's
/// trust policy.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
#[schema(as = Binding)]
pub struct BindingView {
    /// host, host:port, *.domain or service:NAME.
    pub destination: String,
    /// The first candidate; null: no certificate is sent.
    #[schema(required = true)]
    pub certificate: Option<CertificateName>,
    /// Every candidate in order of preference (the partner's CA names pick one at each
    /// handshake); empty: no certificate is sent.
    pub certificates: Vec<CertificateName>,
    /// public, private or ca:NAME[,NAME].
    pub trust: String,
    #[schema(required = true)]
    pub sni: Option<String>,
    pub pins: Vec<String>,
    /// The partner may ask for the client certificate after the request (TLS 1.2 renegotiation,
    /// TLS 1.3 post-handshake authentication): the route uses the OpenSSL engine, HTTP/1.1 only.
    pub allow_renegotiation: bool,
    /// Only in the answer to PUT: whether a binding was replaced.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replaced: Option<bool>,
    /// Set when the destination was given as a URL and reduced to host[:port].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reduced_from: Option<String>,
    /// Only in listings, when the gateway cannot use this binding now: why (its requests are
    /// answered `502 route-unavailable`; the other bindings keep serving).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unavailable: Option<String>,
}

impl BindingView {
    fn of(b: &BindingRecord) -> Self {
        BindingView {
            destination: b.destination.clone(),
            certificate: b.certificate.clone(),
            certificates: b.certificate.iter().chain(&b.alternates).cloned().collect(),
            trust: b.trust.to_string(),
            sni: b.sni.clone(),
            pins: b.pins.iter().map(Pin::to_string).collect(),
            allow_renegotiation: b.allow_renegotiation,
            replaced: None,
            reduced_from: None,
            unavailable: None,
        }
    }
}

/// A named service: NAME -> the partner's base URL, called as /svc/NAME/... on the proxy.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
#[schema(as = Service)]
pub struct ServiceView {
    pub name: String,
    /// The partner's base URL (https).
    pub url: String,
    /// The `service:NAME` binding, or null when the URL host's binding applies.
    #[schema(required = true)]
    pub binding: Option<BindingView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replaced: Option<bool>,
}

fn usage(message: String, hint: impl Into<Remedy>) -> ControlError {
    ControlError::usage("usage", message, hint)
}

fn missing_anchor(what: String) -> ControlError {
    ControlError::NotFound {
        what,
        hint: Remedy::with(
            "add the partner's CA as a trust anchor first, or check the name against the list of trust anchors",
            Action::AddTrustAnchor,
        ),
    }
}

/// The anchor check above runs before the write; an anchor removed in between is refused by
/// the store itself (a foreign key), and reads the same.
fn anchor_refused(e: StoreError) -> ControlError {
    match e {
        StoreError::NotFound(what) if what.starts_with("trust anchor ") => missing_anchor(what),
        StoreError::NotFound(what) if what.starts_with("service ") => ControlError::NotFound {
            what,
            hint: Remedy::with("add the service (its partner URL) first", Action::AddService),
        },
        other => other.into(),
    }
}

/// The parts of a binding that need no store: trust policy, SNI name and pins, parsed.
pub(super) fn binding_parts(req: &BindRequest) -> Result<(TrustPolicy, Option<String>, Vec<Pin>), ControlError> {
    let trust = match &req.trust {
        Some(t) => TrustPolicy::parse(t)
            .map_err(|e| usage(e, "the trust policy is public, private or ca:NAME[,NAME] (e.g. ca:partner-root)"))?,
        None => TrustPolicy::Public,
    };
    let sni = match &req.sni {
        Some(s) => {
            Some(crate::routes::normalize_host(s).ok().filter(|h| h.parse::<std::net::IpAddr>().is_err()).ok_or_else(
                || {
                    usage(
                        format!("the SNI name '{s}' is not a DNS name"),
                        "give the host name the partner's certificate is issued for",
                    )
                },
            )?)
        }
        None => None,
    };
    let mut pins = Vec::new();
    for p in &req.pins {
        let pin = Pin::parse(p).map_err(|e| {
            usage(e, "compute it with: openssl x509 -in partner.pem -pubkey -noout | openssl pkey -pubin -outform der | openssl dgst -sha256 -binary | base64")
        })?;
        pins.push(pin);
    }
    Ok((trust, sni, pins))
}

/// The candidates of a binding as the audit log and the CLI write them: `a,b`, or
/// `(no certificate)`.
pub(super) fn candidates_text(b: &BindingRecord) -> String {
    let names: Vec<&str> = b.candidates().collect();
    if names.is_empty() {
        "(no certificate)".to_string()
    } else {
        names.join(",")
    }
}

/// Names of a binding's candidates: each a valid name, none twice.
pub(super) fn check_candidates(names: &[String]) -> Result<(), ControlError> {
    for (i, name) in names.iter().enumerate() {
        validate_name("certificate", name)?;
        if names[..i].contains(name) {
            return Err(usage(
                format!("the certificate '{name}' is named twice in the list of candidates"),
                "name each certificate once, in order of preference (e.g. billing-2026,billing-2027)",
            ));
        }
    }
    Ok(())
}

/// Split `a,b,c` (the command line's list of candidates).
pub fn split_candidates(text: &str) -> Vec<String> {
    text.split(',').map(|s| s.trim().to_string()).collect()
}

/// A named service's base URL, checked and in the form it is stored (no trailing slash).
pub(super) fn service_url(url: &str) -> Result<String, ControlError> {
    let parsed = url::Url::parse(url)
        .map_err(|e| usage(format!("'{url}' is not a URL ({e})"), "e.g. --url https://partner.example/soap/invoice"))?;
    if parsed.scheme() != "https" || parsed.host_str().is_none() {
        return Err(usage(
            format!("'{url}' is not an https:// URL"),
            "certgate calls partners over HTTPS: give https://host[:port]/path",
        ));
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(usage(
            format!("'{url}' has a query or fragment"),
            "give the base URL; callers add the rest of the path and the query",
        ));
    }
    Ok(parsed.to_string().trim_end_matches('/').to_string())
}

impl Control {
    /// Validate the parts of a binding that do not depend on the destination.
    async fn binding_record(&self, destination: String, req: &BindRequest) -> Result<BindingRecord, ControlError> {
        let (trust, sni, pins) = binding_parts(req)?;
        if let TrustPolicy::Anchors(names) = &trust {
            for name in names {
                if self.store.anchor(name).await?.is_none() {
                    return Err(missing_anchor(format!("trust anchor '{name}'")));
                }
            }
        }
        check_candidates(&req.certificates)?;
        let certificates = req.certificates.iter().map(|c| CertificateName::parse(c)).collect::<Result<Vec<_>, _>>()?;
        for cert in &certificates {
            if self.store.certificate(cert).await?.is_none() {
                return Err(ControlError::NotFound {
                    what: format!("certificate '{cert}'"),
                    hint: Remedy::with(
                        "import the certificate first, or check the name against the list of certificates",
                        Action::ImportCertificate(Some(cert.to_string())),
                    ),
                });
            }
        }
        let now = self.now().unix_timestamp();
        Ok(BindingRecord {
            destination,
            certificate: certificates.first().cloned(),
            alternates: certificates.iter().skip(1).cloned().collect(),
            trust,
            sni,
            pins,
            allow_renegotiation: req.allow_renegotiation,
            created_at: now,
            updated_at: now,
        })
    }

    pub async fn bind(&self, req: BindRequest) -> Result<BindingView, ControlError> {
        let parsed = Destination::parse(&req.destination).map_err(|e| {
            usage(
                e,
                "a destination is host, host:port, *.domain or a URL; a named service is bound as part of the service",
            )
        })?;
        // A named service's binding can be changed like any other (its URL stays the service's);
        // the store refuses it, in the write's transaction, when the service does not exist.
        let rec = self.binding_record(parsed.destination.key(), &req).await?;
        let detail = format!(
            "{} trust {}{}",
            candidates_text(&rec),
            rec.trust,
            if rec.allow_renegotiation { " renegotiation allowed" } else { "" }
        );
        let (_, replaced) = self
            .store
            .put_binding(&rec, &self.change("bind", &rec.destination, detail))
            .await
            .map_err(anchor_refused)?;
        let mut view = BindingView::of(&rec);
        view.replaced = Some(replaced);
        view.reduced_from = parsed.reduced_from;
        Ok(view)
    }

    pub async fn unbind(&self, destination: &str) -> Result<(), ControlError> {
        let key =
            Destination::parse(destination).map(|p| p.destination.key()).unwrap_or_else(|_| destination.to_string());
        self.store.delete_binding(&key, &self.change("unbind", &key, "")).await?;
        Ok(())
    }

    pub async fn bindings(&self) -> Result<Vec<BindingView>, ControlError> {
        Ok(self.store.bindings().await?.iter().map(BindingView::of).collect())
    }

    pub async fn add_service(
        &self,
        name: &str,
        url: &str,
        cert: Option<Vec<String>>,
        trust: Option<String>,
        allow_renegotiation: bool,
    ) -> Result<ServiceView, ControlError> {
        validate_name("service", name)?;
        let url = service_url(url)?;
        if allow_renegotiation && cert.as_ref().is_none_or(|c| c.is_empty()) {
            return Err(usage(
                "renegotiation is allowed for a service that presents a certificate".into(),
                "name the certificate the partner asks for after the request",
            ));
        }
        let binding = match cert {
            Some(certificates) => Some(
                self.binding_record(
                    format!("service:{name}"),
                    &BindRequest {
                        destination: String::new(),
                        certificates,
                        trust,
                        sni: None,
                        pins: Vec::new(),
                        allow_renegotiation,
                    },
                )
                .await?,
            ),
            None if trust.is_some() => {
                return Err(usage(
                    "a trust policy for a service goes with a certificate or with 'no certificate'".into(),
                    "choose the certificate (or none) too; without either, the binding of the URL's host applies",
                ))
            }
            None => None,
        };
        let now = self.now().unix_timestamp();
        let svc = ServiceRecord { name: name.to_string(), url, created_at: now, updated_at: now };
        let detail = match &binding {
            Some(b) => format!("{} via {}", svc.url, candidates_text(b)),
            None => format!("{} via the host's binding", svc.url),
        };
        let (_, replaced) = self
            .store
            .put_service(&svc, binding.as_ref(), &self.change("service.add", name, detail))
            .await
            .map_err(anchor_refused)?;
        Ok(ServiceView {
            name: svc.name,
            url: svc.url,
            binding: binding.as_ref().map(BindingView::of),
            replaced: Some(replaced),
        })
    }

    pub async fn services(&self) -> Result<Vec<ServiceView>, ControlError> {
        let bindings = self.store.bindings().await?;
        Ok(self
            .store
            .services()
            .await?
            .into_iter()
            .map(|s| {
                let key = format!("service:{}", s.name);
                ServiceView {
                    binding: bindings.iter().find(|b| b.destination == key).map(BindingView::of),
                    name: s.name,
                    url: s.url,
                    replaced: None,
                }
            })
            .collect())
    }

    pub async fn remove_service(&self, name: &str) -> Result<(), ControlError> {
        self.store.delete_service(name, &self.change("service.remove", name, "")).await?;
        Ok(())
    }
}
