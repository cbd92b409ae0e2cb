//! Every way a control operation can fail, with its contract code, exit code and next step.

use crate::model::{Action, ErrorCode, Remedy};
use crate::pki::Refusal;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// The input was refused (exit 3).
    #[error("{0}")]
    Refused(Refusal),
    /// The request itself is wrong (exit 2).
    #[error("{message}")]
    Usage { code: ErrorCode, message: String, hint: Remedy },
    /// The named object does not exist (exit 4).
    #[error("{what} not found")]
    NotFound { what: String, hint: Remedy },
    /// The change conflicts with what exists (exit 5).
    #[error("{message}")]
    Conflict { code: ErrorCode, message: String, hint: Remedy },
    /// The master key is missing or is not the store's (exit 1).
    #[error("{message}")]
    MasterKey { message: String, hint: Remedy },
    /// The store could not be used (exit 1).
    #[error("{0}")]
    Store(StoreError),
}

impl From<Refusal> for ControlError {
    fn from(r: Refusal) -> Self {
        ControlError::Refused(r)
    }
}

impl From<StoreError> for ControlError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(what) => ControlError::NotFound {
                hint: if what.starts_with("trust anchor") {
                    Remedy::with("check the name against the list of trust anchors", Action::ListTrustAnchors)
                } else {
                    Remedy::with("check the name against the list of what exists", Action::ListCertificates)
                },
                what,
            },
            StoreError::Conflict(message) => ControlError::Conflict {
                code: ErrorCode::NameTaken,
                hint: if message.starts_with("a certificate") {
                    Remedy::with(
                        "choose another name, or replace its material by rotating the existing certificate",
                        Action::RotateCertificate(None),
                    )
                } else {
                    Remedy::new("choose another name, or remove the existing one first")
                },
                message,
            },
            StoreError::StillBound(users) => ControlError::Conflict {
                code: ErrorCode::StillBound,
                message: format!("still in use by the binding(s) {}", users.join(", ")),
                hint: Remedy::with(
                    "remove those bindings first (a certificate can also be removed together with its bindings)",
                    Action::Unbind(users.first().cloned()),
                ),
            },
            other => ControlError::Store(other),
        }
    }
}

impl ControlError {
    pub fn code(&self) -> ErrorCode {
        match self {
            ControlError::Refused(r) => r.code,
            ControlError::Usage { code, .. } | ControlError::Conflict { code, .. } => *code,
            ControlError::NotFound { .. } => ErrorCode::NotFound,
            ControlError::MasterKey { .. } => ErrorCode::MasterKey,
            ControlError::Store(_) => ErrorCode::StoreUnavailable,
        }
    }

    pub fn message(&self) -> String {
        match self {
            ControlError::Refused(r) => r.message.clone(),
            other => other.to_string(),
        }
    }

    /// What to do about it: words for every interface, and the action as data.
    pub fn remedy(&self) -> Remedy {
        match self {
            // A refusal's own hint is written for the command line; where it names a command or
            // a flag, interfaces other than the CLI show the code's neutral words instead.
            ControlError::Refused(r) if crate::model::names_cli(&r.hint) => r.code.remedy(),
            ControlError::Refused(r) => Remedy::new(r.hint.clone()),
            ControlError::Usage { hint, .. }
            | ControlError::NotFound { hint, .. }
            | ControlError::Conflict { hint, .. }
            | ControlError::MasterKey { hint, .. } => hint.clone(),
            ControlError::Store(_) => {
                Remedy::new("check the store URL, and that the database is reachable and writable")
            }
        }
    }

    /// The remedy as the CLI prints it (words, then the command).
    pub fn hint(&self) -> String {
        match self {
            ControlError::Refused(r) => r.hint.clone(),
            other => other.remedy().for_cli(),
        }
    }

    /// The process exit code of the contract.
    pub fn exit_code(&self) -> u8 {
        match self {
            // Refusals, not-found and conflicts keep their exit codes whatever the code.
            ControlError::Usage { .. } => 2,
            ControlError::Refused(_) => 3,
            ControlError::NotFound { .. } => 4,
            ControlError::Conflict { .. } => 5,
            ControlError::MasterKey { .. } | ControlError::Store(_) => 1,
        }
    }

    /// Sealing or the random generator failed: nothing was written.
    pub fn crypto(message: impl Into<String>) -> Self {
        ControlError::MasterKey {
            message: message.into(),
            hint: "nothing was changed; retry, and if it keeps failing check the master key and the system's random source".into(),
        }
    }

    /// The store (or what is built from it) cannot be used right now.
    pub fn unavailable(message: impl Into<String>) -> Self {
        ControlError::Store(StoreError::Unavailable(message.into()))
    }

    /// A request that is wrong in itself; `code` is `usage` or a more specific code's text.
    pub fn usage(code: &str, message: impl Into<String>, hint: impl Into<Remedy>) -> Self {
        let code = ErrorCode::parse(code).unwrap_or(ErrorCode::Usage);
        ControlError::Usage { code, message: message.into(), hint: hint.into() }
    }
}

/// Names of certificates, anchors, services and apps: `[A-Za-z0-9._-]{1,128}`.
pub fn validate_name(kind: &str, name: &str) -> Result<(), ControlError> {
    if crate::model::is_valid_name(name) {
        Ok(())
    } else {
        Err(invalid_name(format!("'{name}' is not a valid {kind} name")))
    }
}

fn invalid_name(message: String) -> ControlError {
    ControlError::usage(
        ErrorCode::InvalidName.as_str(),
        message,
        "use 1 to 128 letters, digits, '.', '_' or '-' (e.g. Billing.InvoiceService or partner-prod)",
    )
}

impl From<crate::model::InvalidName> for ControlError {
    fn from(e: crate::model::InvalidName) -> Self {
        invalid_name(e.to_string())
    }
}
