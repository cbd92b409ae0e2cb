//! Destinations, trust policies, and the route table: the immutable, compiled snapshot of all
//! bindings, with their TLS client configs and upstream pools built once when it is published.

mod compile;
mod destination;
mod table;
mod trust;

pub use compile::{compile, AppAccess, CompileOptions, RouteIdentity, RouteInputs};
pub use destination::{normalize_host, Destination, Parsed};
pub use table::{Route, RouteCertificate, RouteTable, ServiceRoute};
pub use trust::{Pin, TrustPolicy};
