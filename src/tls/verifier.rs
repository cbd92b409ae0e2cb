//! Partner verification: webpki path building to the binding's roots, host name, validity, and
//! SPKI pins. Failures carry a message that names what was missing.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::{CertificateError, DigitallySignedStruct, Error, OtherError, RootCertStore, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

use crate::model::{ErrorCode, Pin};
use crate::pki::facts;

/// A partner certificate problem, with the gateway error code it maps to.
#[derive(Debug)]
pub struct UpstreamCertError {
    pub code: ErrorCode,
    pub message: String,
}

impl std::fmt::Display for UpstreamCertError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for UpstreamCertError {}

#[derive(Debug)]
pub struct PartnerVerifier {
    inner: Option<Arc<WebPkiServerVerifier>>,
    trust_label: String,
    pins: Vec<Pin>,
    provider: Arc<CryptoProvider>,
}

fn fail(code: ErrorCode, message: String) -> Error {
    Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(UpstreamCertError { code, message }))))
}

impl PartnerVerifier {
    pub fn new(
        roots: RootCertStore,
        trust_label: &str,
        pins: Vec<Pin>,
        provider: Arc<CryptoProvider>,
    ) -> Result<Self, String> {
        let inner = if roots.is_empty() {
            None
        } else {
            Some(
                WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                    .build()
                    .map_err(|e| format!("trust policy {trust_label}: {e}"))?,
            )
        };
        Ok(PartnerVerifier { inner, trust_label: trust_label.to_string(), pins, provider })
    }

    fn explain(
        &self,
        err: Error,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        name: &ServerName<'_>,
    ) -> Error {
        let ee = facts::read(end_entity).ok();
        let subject = ee.as_ref().map(|f| f.subject.clone()).unwrap_or_else(|| "(unreadable)".into());
        let cert_err = match &err {
            Error::InvalidCertificate(c) => c.clone(),
            _ => return err,
        };
        match cert_err {
            CertificateError::UnknownIssuer | CertificateError::BadSignature => {
                // Walk the chain the partner sent to find the issuer we would need.
                let mut chain: Vec<facts::CertFacts> =
                    intermediates.iter().filter_map(|c| facts::read(c).ok()).collect();
                let mut top = ee.clone();
                let mut names = vec![subject.clone()];
                for _ in 0..8 {
                    let Some(cur) = top.clone() else { break };
                    match chain.iter().position(|c| cur.issued_by(c)) {
                        Some(i) => {
                            let next = chain.remove(i);
                            names.push(next.subject.clone());
                            top = Some(next);
                        }
                        None => break,
                    }
                }
                let missing = top.map(|t| t.issuer).unwrap_or_default();
                fail(
                    ErrorCode::UpstreamUntrusted,
                    format!(
                        "the partner's certificate chain ({}) ends at issuer '{missing}', which trust policy '{}' does not contain",
                        names.join(" <- "),
                        self.trust_label
                    ),
                )
            }
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                let alt = ee.map(|f| f.alt_names.join(", ")).unwrap_or_default();
                fail(
                    ErrorCode::UpstreamNameMismatch,
                    format!("the partner's certificate is for [{alt}], not '{}'", name.to_str()),
                )
            }
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => fail(
                ErrorCode::UpstreamUntrusted,
                format!("the partner's certificate '{subject}' (or its chain) has expired"),
            ),
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                fail(ErrorCode::UpstreamUntrusted, format!("the partner's certificate '{subject}' is not valid yet"))
            }
            other => fail(
                ErrorCode::UpstreamUntrusted,
                format!("the partner's certificate '{subject}' was refused: {other:?}"),
            ),
        }
    }
}

impl ServerCertVerifier for PartnerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        let Some(inner) = &self.inner else {
            return Err(fail(
                ErrorCode::UpstreamUntrusted,
                format!("trust policy '{}' holds no CA certificates, so no partner can be verified", self.trust_label),
            ));
        };
        inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
            .map_err(|e| self.explain(e, end_entity, intermediates, server_name))?;
        if !self.pins.is_empty() {
            let spki = x509_parser::parse_x509_certificate(end_entity)
                .map(|(_, c)| c.public_key().raw.to_vec())
                .map_err(|_| fail(ErrorCode::UpstreamUntrusted, "the partner's certificate cannot be read".into()))?;
            let pin = Pin::of_spki(&spki);
            if !self.pins.contains(&pin) {
                return Err(fail(
                    ErrorCode::UpstreamUntrusted,
                    format!("the partner's public key ({pin}) matches none of the binding's pins"),
                ));
            }
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}
