//! certgate: one store, one gateway and one control plane for client certificates (mutual TLS).
//!
//! Data flows one way:
//!
//! ```text
//! bytes -> pki (parse, check; pure) -> control (validate, seal, audit) -> store (one transaction,
//!          revision bump) -> routes (compile a route table) -> gateway (reads the current table)
//! ```
//!
//! - [`pki`]: PKCS#12, PEM and DER readers, certificate facts, chains and warnings. No I/O.
//! - [`store`]: the `Store` over SQLite or PostgreSQL (several nodes), sealing of private keys.
//! - [`control`]: the one mutation path shared by the CLI, the admin API and `apply`.
//! - [`cli`]: the command line, one file per noun.
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
