//! Why an input was refused: one contract code, a message that names the facts, and the next step.

use std::fmt;

/// The refusal codes of the product contract (DESIGN.md, "Import and check"): the refusal
/// variants of the one [`crate::model::ErrorCode`] list.
pub use crate::model::ErrorCode as Code;

/// An input that certgate will not take, and what the user should do about it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub code: Code,
    /// What was wrong, with the facts (file, algorithm, count...). No secrets.
    pub message: String,
    /// The next step for the user.
    pub hint: String,
}

impl Refusal {
    pub fn new(code: Code, message: impl Into<String>, hint: impl Into<String>) -> Self {
        Refusal { code, message: message.into(), hint: hint.into() }
    }

    pub fn malformed(message: impl Into<String>) -> Self {
        Refusal::new(Code::Malformed, message, "the file is damaged or truncated: copy or export it again and retry")
    }

    /// Prefix the message with where the problem was found (e.g. the file name).
    pub fn in_file(mut self, file: &str) -> Self {
        self.message = format!("{file}: {}", self.message);
        self
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}): {}", self.message, self.code, self.hint)
    }
}

impl std::error::Error for Refusal {}
