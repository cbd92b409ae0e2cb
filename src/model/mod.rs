//! The bottom layer: the product's vocabulary as types. Destinations, trust policies, pins, names
//! and ids, and the one [`ErrorCode`] list with each code's HTTP status, exit code and remedy.
//! Everything above carries these instead of strings; nothing here imports another certgate
//! module.

mod destination;
mod error;
mod names;
mod secret;
mod trust;

pub use destination::{normalize_host, Destination, Parsed};
pub use error::{names_cli, Action, ErrorCode, Remedy};
pub use names::{is_valid_name, AppName, CertificateId, CertificateName, InvalidName};
pub use secret::{hashes_equal, secret_hash};
pub use trust::{Pin, TrustPolicy};
