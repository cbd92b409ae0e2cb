//! Upstream failures, from whatever error type carried them, to a gateway error code.

use std::error::Error as StdError;

use rustls::{AlertDescription, CertificateError};

use super::verifier::UpstreamCertError;
use crate::model::ErrorCode;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamFailure {
    pub code: ErrorCode,
    pub message: String,
}

/// Walk an error's source chain and say what went wrong with the partner.
pub fn classify(err: &(dyn StdError + 'static)) -> Option<UpstreamFailure> {
    let mut cur: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(r) = e.downcast_ref::<rustls::Error>() {
            return Some(from_rustls(r));
        }
        if let Some(u) = e.downcast_ref::<UpstreamCertError>() {
            return Some(UpstreamFailure { code: u.code, message: u.message.clone() });
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            if let Some(inner) = io.get_ref() {
                if let Some(found) = classify(inner) {
                    return Some(found);
                }
            }
        }
        cur = e.source();
    }
    None
}

fn from_rustls(e: &rustls::Error) -> UpstreamFailure {
    match e {
        rustls::Error::InvalidCertificate(CertificateError::Other(o)) => {
            match o.0.downcast_ref::<UpstreamCertError>() {
                Some(u) => UpstreamFailure { code: u.code, message: u.message.clone() },
                None => UpstreamFailure {
                    code: ErrorCode::UpstreamUntrusted,
                    message: format!("the partner's certificate was refused: {o}"),
                },
            }
        }
        rustls::Error::InvalidCertificate(c) => UpstreamFailure {
            code: ErrorCode::UpstreamUntrusted,
            message: format!("the partner's certificate was refused: {c:?}"),
        },
        rustls::Error::InappropriateHandshakeMessage {
            got_type: rustls::HandshakeType::HelloRequest | rustls::HandshakeType::CertificateRequest,
            ..
        } => UpstreamFailure {
            code: ErrorCode::UpstreamRenegotiationRequired,
            message: "the partner asked for the client certificate after the handshake (renegotiation or \
                      post-handshake authentication), which this binding does not allow"
                .into(),
        },
        rustls::Error::AlertReceived(alert) if rejects_client_certificate(*alert) => UpstreamFailure {
            code: ErrorCode::UpstreamRejectedCertificate,
            message: format!("the partner refused the client certificate with the TLS alert {}", alert_name(*alert)),
        },
        rustls::Error::AlertReceived(alert) => UpstreamFailure {
            code: ErrorCode::UpstreamConnectFailed,
            message: format!("the partner ended the TLS handshake with the alert {}", alert_name(*alert)),
        },
        other => UpstreamFailure {
            code: ErrorCode::UpstreamConnectFailed,
            message: format!("TLS with the partner failed: {other}"),
        },
    }
}

fn rejects_client_certificate(a: AlertDescription) -> bool {
    matches!(
        a,
        AlertDescription::CertificateRequired
            | AlertDescription::BadCertificate
            | AlertDescription::UnknownCA
            | AlertDescription::CertificateUnknown
            | AlertDescription::UnsupportedCertificate
            | AlertDescription::CertificateRevoked
            | AlertDescription::CertificateExpired
            | AlertDescription::AccessDenied
            | AlertDescription::DecryptError
    )
}

/// The alert as the RFC names it: `certificate_required`, `unknown_ca`, ...
pub fn alert_name(a: AlertDescription) -> String {
    let debug = format!("{a:?}");
    let mut out = String::new();
    let mut previous_upper = true;
    for ch in debug.chars() {
        if ch.is_ascii_uppercase() {
            if !previous_upper {
                out.push('_');
            }
            out.push(ch.to_ascii_lowercase());
        } else {
            out.push(ch);
        }
        previous_upper = ch.is_ascii_uppercase();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alert_names_follow_the_rfc_spelling() {
        assert_eq!(alert_name(AlertDescription::CertificateRequired), "certificate_required");
        assert_eq!(alert_name(AlertDescription::UnknownCA), "unknown_ca");
        assert_eq!(alert_name(AlertDescription::BadCertificate), "bad_certificate");
    }
}
