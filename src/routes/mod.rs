//! Destinations, trust policies, and the route table: the immutable, compiled snapshot of all
//! bindings, with their TLS client configs and upstream pools built once when it is published.

mod compile;
mod inputs;
mod source;
mod table;

pub use crate::model::{normalize_host, Destination, Parsed};
pub use crate::model::{Pin, TrustPolicy};
pub use compile::{compile, compile_changes, fuzz_table, partner_verifier};
pub use inputs::{
    AppAccess, BindingRecord, ChainSources, CompileOptions, RouteIdentity, RouteInputs, StoredIdentity, Touched,
};
pub use source::{RouteSource, SourceEvent, SourceFuture};
pub use table::{Route, RouteCertificate, RouteTable, ServiceRoute};
