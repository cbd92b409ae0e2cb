//! What a route table is compiled from: one consistent read of the store, with the keys of the
//! certificates that routes present already unsealed.

use std::collections::HashMap;
use std::sync::Arc;

use crate::model::{AppName, CertificateId, CertificateName};
use crate::pki::KeySource;
pub use crate::store::BindingRecord;
use crate::store::ServiceRecord;
use crate::upstream::UpstreamSettings;

/// A stored certificate's public parts (for matching the CA names a partner accepts).
#[derive(Clone, Debug)]
pub struct StoredIdentity {
    pub name: CertificateName,
    pub leaf_der: Vec<u8>,
    pub chain_der: Vec<Vec<u8>>,
}

/// A certificate as a route presents it: leaf + intermediates to send, and where its key comes
/// from (loaded only when a route's TLS engine is built).
#[derive(Clone)]
pub struct RouteIdentity {
    pub name: CertificateName,
    pub id: CertificateId,
    /// Leaf first, then the intermediates (never the root).
    pub chain: Vec<Vec<u8>>,
    pub key: Arc<dyn KeySource>,
    pub not_before: i64,
    pub not_after: i64,
}

/// Everything a table is compiled from, read from the store in one snapshot.
#[derive(Clone, Default)]
pub struct RouteInputs {
    pub revision: i64,
    pub bindings: Vec<BindingRecord>,
    pub services: Vec<ServiceRecord>,
    /// Only the certificates that bindings refer to.
    pub identities: HashMap<CertificateName, RouteIdentity>,
    /// Certificates that bindings refer to but that could not be prepared (e.g. a sealed key
    /// that does not open), with the reason: only the routes that present them are unavailable.
    pub broken_identities: HashMap<CertificateName, String>,
    pub anchors: HashMap<String, Vec<Vec<u8>>>,
    pub certificate_expiry: Vec<(CertificateName, i64)>,
    /// Calling applications: name -> (credential hash, certificates granted).
    pub apps: HashMap<AppName, AppAccess>,
}

/// What the gateway knows of one calling application.
#[derive(Clone, Debug, Default)]
pub struct AppAccess {
    /// SHA-256 (hex) of the app's proxy credential.
    pub hash: String,
    pub grants: std::collections::HashSet<CertificateName>,
}

#[derive(Clone, Default)]
pub struct CompileOptions {
    pub settings: Arc<UpstreamSettings>,
    /// Serve unbound hosts with plain TLS and no client certificate.
    pub allow_unbound: bool,
    /// Told of every partner certificate the routes verify (`serve`); `None` elsewhere.
    pub partners: Option<Arc<dyn crate::upstream::PartnerObserver>>,
}
