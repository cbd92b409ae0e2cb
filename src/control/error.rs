//! Every way a control operation can fail, with its contract code, exit code and next step.

use crate::pki::Refusal;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// The input was refused (exit 3).
    #[error("{0}")]
    Refused(Refusal),
    /// The request itself is wrong (exit 2).
    #[error("{message}")]
    Usage { code: &'static str, message: String, hint: String },
    /// The named object does not exist (exit 4).
    #[error("{what} not found")]
    NotFound { what: String, hint: String },
    /// The change conflicts with what exists (exit 5).
    #[error("{message}")]
    Conflict { code: &'static str, message: String, hint: String },
    /// The master key is missing or is not the store's (exit 1).
    #[error("{message}")]
    MasterKey { message: String, hint: String },
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
                what,
                hint: "list what exists with 'certgate cert list' or 'certgate trust list'".into(),
            },
            StoreError::Conflict(message) => ControlError::Conflict {
                code: "name-taken",
                hint: if message.starts_with("a certificate") {
                    "choose another name, or replace its material by rotating it (certgate cert rotate NAME FILE)".into()
                } else {
                    "choose another name, or remove the existing one first".into()
                },
                message,
            },
            StoreError::StillBound(users) => ControlError::Conflict {
                code: "still-bound",
                message: format!("still in use by the binding(s) {}", users.join(", ")),
                hint: "unbind those destinations first (certgate unbind DESTINATION), or for a certificate remove with --force".into(),
            },
            other => ControlError::Store(other),
        }
    }
}

impl ControlError {
    pub fn code(&self) -> &str {
        match self {
            ControlError::Refused(r) => r.code.as_str(),
            ControlError::Usage { code, .. } | ControlError::Conflict { code, .. } => code,
            ControlError::NotFound { .. } => "not-found",
            ControlError::MasterKey { .. } => "master-key",
            ControlError::Store(_) => "store-unavailable",
        }
    }

    pub fn message(&self) -> String {
        match self {
            ControlError::Refused(r) => r.message.clone(),
            other => other.to_string(),
        }
    }

    pub fn hint(&self) -> String {
        match self {
            ControlError::Refused(r) => r.hint.clone(),
            ControlError::Usage { hint, .. }
            | ControlError::NotFound { hint, .. }
            | ControlError::Conflict { hint, .. }
            | ControlError::MasterKey { hint, .. } => hint.clone(),
            ControlError::Store(_) => "check the --store URL and that the database is reachable and writable".into(),
        }
    }

    /// The process exit code of the contract.
    pub fn exit_code(&self) -> u8 {
        match self {
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

    pub fn usage(code: &'static str, message: impl Into<String>, hint: impl Into<String>) -> Self {
        ControlError::Usage { code, message: message.into(), hint: hint.into() }
    }
}

/// Names of certificates, anchors, services and apps: `[A-Za-z0-9._-]{1,128}`.
pub fn validate_name(kind: &str, name: &str) -> Result<(), ControlError> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(ControlError::usage(
            "invalid-name",
            format!("'{name}' is not a valid {kind} name"),
            "use 1 to 128 letters, digits, '.', '_' or '-' (e.g. Billing.InvoiceService or partner-prod)",
        ))
    }
}
