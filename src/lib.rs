//! certgate: one store, one gateway and one control plane for client certificates (mutual TLS).
//!
//! Data flows one way:
//!
//! ```text
//! bytes -> pki (parse, check; pure) -> control (validate, seal, audit) -> store (one transaction,
//!          revision bump) -> routes (compile a route table) -> gateway (reads the current table)
//! ```
//!
//! Modules are layered; each imports only from its own layer or below, never in a circle
//! (`tests/layers.rs` checks it on the source). Bottom up:
//!
//! 1. Vocabulary. [`model`]: destinations, trust policies, pins, secrets' hashes, and the one
//!    [`model::ErrorCode`] list owning each code's HTTP status, exit code and remedy.
//!    [`telemetry`]: every metric name and the recording helpers.
//! 2. [`pki`]: PKCS#12, PEM and DER readers, certificate facts, chains and warnings; no I/O.
//!    [`tls`]: client configs, trust policies as root stores, partner verification and the mapping
//!    of TLS failures to error codes.
//! 3. [`store`]: the store over SQLite or PostgreSQL (several nodes), sealing of private keys.
//!    [`upstream`]: connections to partners: TCP, a TLS engine behind the `TlsEngine` trait, pooled
//!    HTTP clients per route.
//! 4. [`control`]: the one mutation path shared by the CLI, the admin API and `apply`; it also
//!    implements [`routes::RouteSource`]. [`routes`]: route table compilation (TLS engines and pools
//!    built once per route) and lookup; a route that cannot be built fails alone.
//! 5. [`gateway`]: the proxy listener and request handling; reads routes through a `RouteSource`.
//! 6. [`admin`]: JSON API, web console, health and metrics. [`cli`]: the command line, one file
//!    per noun.
//! 7. `main.rs`: parse, run, print the error, map to the exit code.
//!
//! Vocabulary (DESIGN.md): a *certificate* is a named client identity (leaf + chain + sealed
//! key) whose id is the SHA-256 of the leaf DER; a *trust anchor* is a named bundle of CA
//! certificates trusted for verifying partners.

pub mod admin;
pub mod cli;
pub mod control;
pub mod gateway;
pub mod model;
pub mod pki;
pub mod routes;
pub mod store;
pub mod telemetry;
pub mod tls;
pub mod upstream;
