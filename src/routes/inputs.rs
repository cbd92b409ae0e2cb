//! What a route table is compiled from: one consistent read of the store, with the keys of the
//! certificates that routes present already unsealed.

use std::collections::{BTreeMap, HashMap, HashSet};
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
    /// Why this identity needs the OpenSSL engine (its key is one aws-lc-rs will not sign
    /// with, e.g. RSA 1024), or None.
    pub engine_reason: Option<String>,
}

/// Everything a table is compiled from, read from the store in one snapshot.
#[derive(Clone, Default)]
pub struct RouteInputs {
    pub revision: i64,
    /// Shared with the routes compiled from them (and with the next inputs of an incremental
    /// read).
    pub bindings: Vec<Arc<BindingRecord>>,
    pub services: Vec<ServiceRecord>,
    /// Only the certificates that bindings refer to.
    pub identities: HashMap<CertificateName, Arc<RouteIdentity>>,
    /// Certificates that bindings refer to but that could not be prepared (e.g. a sealed key
    /// that does not open), with the reason: only the routes that present them are unavailable.
    pub broken_identities: HashMap<CertificateName, String>,
    pub anchors: HashMap<String, Vec<Vec<u8>>>,
    pub certificate_expiry: Vec<(CertificateName, i64)>,
    /// Calling applications: name -> (credential hash, certificates granted).
    pub apps: foldhash::HashMap<AppName, AppAccess>,
    /// What the chains of `identities` were completed from (set by the store's reader, so an
    /// incremental read can complete a changed certificate's chain the same way).
    pub chain_sources: Option<Arc<ChainSources>>,
}

/// The pool of CA certificates chains are completed from, as its parts: every stored
/// certificate's own CA certificates and every trust anchor's, added in one order (certificates
/// by name, then anchors by name; the first certificate with an id wins).
#[derive(Clone, Default)]
pub struct ChainSources {
    /// Certificate name -> the ids of the readable CA certificates it came with, in order.
    pub certificates: BTreeMap<CertificateName, Vec<String>>,
    /// Anchor name -> the ids of its readable certificates, in order.
    pub anchors: BTreeMap<String, Vec<String>>,
    /// Id -> the CA certificate (`crate::pki::facts::CertFacts`).
    pub facts: HashMap<String, crate::pki::facts::CertFacts>,
}

impl ChainSources {
    /// The pool's certificate ids, in the order they are added.
    pub fn pool_ids(&self) -> Vec<&str> {
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for id in self.certificates.values().chain(self.anchors.values()).flatten() {
            if seen.insert(id.as_str()) {
                out.push(id.as_str());
            }
        }
        out
    }
}

/// What an incremental read changed: the bindings (by destination) whose records changed or
/// went, and the certificates whose records changed or went. Routes that name neither are
/// carried over from the previous table as they are.
#[derive(Clone, Debug, Default)]
pub struct Touched {
    pub destinations: HashSet<String>,
    pub certificates: HashSet<CertificateName>,
}

/// What the gateway knows of one calling application.
#[derive(Clone, Debug, Default)]
pub struct AppAccess {
    /// SHA-256 (hex) of the app's proxy credential.
    pub hash: String,
    pub grants: foldhash::HashSet<CertificateName>,
}

#[derive(Clone, Default)]
pub struct CompileOptions {
    pub settings: Arc<UpstreamSettings>,
    /// Serve unbound hosts with plain TLS and no client certificate.
    pub allow_unbound: bool,
    /// Told of every partner certificate the routes verify (`serve`); `None` elsewhere.
    pub partners: Option<Arc<dyn crate::upstream::PartnerObserver>>,
}
