//! Pure certificate handling: no I/O, no storage. Bytes in, typed facts and refusals out.

pub mod assess;
pub mod bundle;
pub mod chain;
pub mod facts;
pub mod key;
mod legacy_pem;
pub mod password;
pub mod pbe;
pub mod pem;
pub mod pkcs12;
pub mod pkcs7;
pub mod refusal;
pub mod request;

pub use bundle::{Contents, Identity};
pub use chain::{ChainPath, Origin, PathEnd, Pool};
pub use facts::{CertFacts, KeyKind};
pub use key::{KeyFormat, KeySource, PrivateKey};
pub use password::Password;
pub use refusal::{Code, Refusal};
