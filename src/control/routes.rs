//! What the gateway compiles its route table from: one consistent snapshot of the store, with
//! the keys of bound certificates unsealed and their chains completed from the store.

use std::collections::HashMap;

use std::sync::Arc;

use crate::model::{AppName, CertificateId, CertificateName};
use crate::pki::{facts, KeyFormat, KeySource, Origin, Pool, PrivateKey};
use crate::routes::{
    ChainSources, RouteIdentity, RouteInputs, RouteSource, SourceEvent, SourceFuture, StoredIdentity, Touched,
};
use crate::store::{CertificateRecord, MasterKey};

use super::{read_stored, Control, ControlError};

/// How many changed keys an incremental read takes; more, and the whole store is read.
const INCREMENTAL_LIMIT: usize = 256;

impl Control {
    pub async fn route_inputs(&self) -> Result<RouteInputs, ControlError> {
        self.route_inputs_with(&[]).await
    }

    /// As `route_inputs`, also unsealing the named certificates even when nothing binds them.
    pub async fn route_inputs_with(&self, extra: &[&str]) -> Result<RouteInputs, ControlError> {
        let mut snap = self.store.snapshot().await?;
        // Names in byte order whatever the database's collation: the pool that chains are
        // completed from is built in this order by whole and incremental reads alike.
        snap.certificates.sort_by(|a, b| a.name.as_str().cmp(b.name.as_str()));
        // The pool of every CA certificate the store knows, to complete chains. Many
        // certificates share their intermediates: each CA certificate is parsed once.
        let mut sources = ChainSources::default();
        for rec in &snap.certificates {
            let ids = ca_ids(&mut sources.facts, &rec.chain_der);
            sources.certificates.insert(rec.name.clone(), ids);
        }
        let mut anchors = HashMap::new();
        for a in &snap.anchors {
            let ids = ca_ids(&mut sources.facts, &a.certs_der);
            sources.anchors.insert(a.name.clone(), ids);
            anchors.insert(a.name.clone(), a.certs_der.clone());
        }
        let pool = pool_of(&sources);
        // Bound certificates, and those granted to an app (a request may pick them by header).
        let bound: std::collections::HashSet<&str> = snap
            .bindings
            .iter()
            .flat_map(|b| b.candidates())
            .chain(snap.grants.iter().map(|g| g.certificate.as_str()))
            .collect();
        let mut apps: foldhash::HashMap<AppName, crate::routes::AppAccess> = snap
            .apps
            .iter()
            .map(|a| (a.name.clone(), crate::routes::AppAccess { hash: a.hash.clone(), grants: Default::default() }))
            .collect();
        for g in &snap.grants {
            if let Some(a) = apps.get_mut(&g.app) {
                a.grants.insert(g.certificate.clone());
            }
        }
        let mut identities = HashMap::new();
        let mut certificate_expiry = Vec::new();
        // The pool a chain is completed from depends only on the certificate's own chain: build
        // it once per distinct own chain, not once per certificate.
        let mut merged_pools: HashMap<&[Vec<u8>], Pool> = HashMap::new();
        let mut broken_identities = HashMap::new();
        for rec in &snap.certificates {
            let wanted = bound.contains(rec.name.as_str()) || extra.contains(&rec.name.as_str());
            // One damaged row makes only the routes that present it unavailable.
            let leaf = match facts::read(&rec.leaf_der) {
                Ok(l) => l,
                Err(e) => {
                    if wanted {
                        broken_identities.insert(rec.name.clone(), unreadable(&e));
                    }
                    continue;
                }
            };
            certificate_expiry.push((rec.name.clone(), leaf.not_after.unix_timestamp()));
            if !wanted {
                continue;
            }
            let merged =
                merged_pools.entry(rec.chain_der.as_slice()).or_insert_with(|| merged_pool(&rec.chain_der, &pool));
            identities.insert(rec.name.clone(), Arc::new(self.identity(rec, &leaf, merged)));
        }
        // Not `collect()`: it would reuse the records' buffer (100,000 x 168 bytes) for the
        // pointers and keep all of it.
        let mut bindings = Vec::with_capacity(snap.bindings.len());
        bindings.extend(snap.bindings.into_iter().map(Arc::new));
        Ok(RouteInputs {
            revision: snap.revision,
            bindings,
            services: snap.services,
            identities,
            broken_identities,
            anchors,
            certificate_expiry,
            apps,
            chain_sources: Some(Arc::new(sources)),
        })
    }

    /// A certificate as routes present it: its chain completed from `merged` (its own CA
    /// certificates first, then the store's pool). The key stays sealed until a route's TLS
    /// engine is built (and is then unsealed in memory only); a key that does not open makes
    /// only the routes presenting it unavailable.
    fn identity(&self, rec: &CertificateRecord, leaf: &facts::CertFacts, merged: &Pool) -> RouteIdentity {
        let key: Arc<dyn KeySource> = Arc::new(SealedKey {
            master: self.key.clone(),
            sealed: rec.sealed_key.clone(),
            id: rec.id.clone(),
            name: rec.name.clone(),
            format: KeyFormat::parse(&rec.key_format).unwrap_or(KeyFormat::Pkcs8),
        });
        let path = merged.path(leaf);
        let mut chain = vec![rec.leaf_der.clone()];
        chain.extend(path.to_send().into_iter().map(|f| f.der.clone()));
        RouteIdentity {
            name: rec.name.clone(),
            id: rec.id.clone(),
            chain,
            key,
            not_before: leaf.not_before.unix_timestamp(),
            not_after: leaf.not_after.unix_timestamp(),
            engine_reason: leaf.key.engine_reason(),
        }
    }

    /// The route inputs now, made from `previous` and what changed since its revision, with what
    /// changed (see [`RouteSource::inputs_since`]). `None` when only a whole read gives the same
    /// result safely: no chain sources, a log gap or too many changes (the store says), a trust
    /// anchor changed (it changes the pool chains are completed from and every `public` and
    /// `private` policy), a certificate change altered the pool, or a bound certificate was not
    /// read.
    pub async fn route_inputs_since(
        &self,
        previous: &RouteInputs,
    ) -> Result<Option<(RouteInputs, Touched)>, ControlError> {
        let Some(sources) = previous.chain_sources.as_ref() else { return Ok(None) };
        let Some(delta) = self.store.route_changes(previous.revision, INCREMENTAL_LIMIT).await? else {
            return Ok(None);
        };
        if !delta.anchors.is_empty() {
            return Ok(None);
        }
        let mut touched = Touched::default();
        let mut next = previous.clone();
        next.revision = delta.revision;
        if delta.is_empty() {
            return Ok(Some((next, touched)));
        }
        if !delta.bindings.is_empty() {
            // Kept in byte order of destinations (once sorted, PostgreSQL's collation may read
            // them otherwise), so each change is a binary search and a move of pointers.
            if !next.bindings.is_sorted_by(|a, b| a.destination <= b.destination) {
                next.bindings.sort_by(|a, b| a.destination.cmp(&b.destination));
            }
            for (d, b) in &delta.bindings {
                match (next.bindings.binary_search_by(|x| x.destination.as_str().cmp(d)), b) {
                    (Ok(i), Some(b)) => next.bindings[i] = Arc::new(b.clone()),
                    (Ok(i), None) => {
                        next.bindings.remove(i);
                    }
                    (Err(i), Some(b)) => next.bindings.insert(i, Arc::new(b.clone())),
                    (Err(_), None) => {}
                }
            }
            touched.destinations.extend(delta.bindings.iter().map(|(d, _)| d.clone()));
        }
        if !delta.services.is_empty() {
            let changed: std::collections::HashSet<&str> = delta.services.iter().map(|(n, _)| n.as_str()).collect();
            next.services.retain(|s| !changed.contains(s.name.as_str()));
            next.services.extend(delta.services.iter().filter_map(|(_, s)| s.clone()));
            next.services.sort_by(|a, b| a.name.cmp(&b.name));
        }
        for (name, app) in &delta.apps {
            match app {
                None => {
                    next.apps.remove(name);
                }
                Some((rec, grants)) => {
                    let grants = grants.iter().map(|g| g.certificate.clone()).collect();
                    next.apps.insert(name.clone(), crate::routes::AppAccess { hash: rec.hash.clone(), grants });
                }
            }
        }
        // Changed certificates: the pool must stay what it was, or every chain may change.
        let mut changed_leaves = HashMap::new();
        if !delta.certificates.is_empty() {
            let mut new_sources = (**sources).clone();
            for (name, rec) in &delta.certificates {
                next.certificate_expiry.retain(|(n, _)| n != name);
                touched.certificates.insert(name.clone());
                match rec {
                    None => {
                        new_sources.certificates.remove(name);
                    }
                    Some(rec) => {
                        let ids = ca_ids(&mut new_sources.facts, &rec.chain_der);
                        new_sources.certificates.insert(name.clone(), ids);
                        let leaf = facts::read(&rec.leaf_der);
                        if let Ok(l) = &leaf {
                            next.certificate_expiry.push((name.clone(), l.not_after.unix_timestamp()));
                        }
                        changed_leaves.insert(name.clone(), (rec, leaf));
                    }
                }
            }
            if new_sources.pool_ids() != sources.pool_ids() {
                return Ok(None);
            }
            next.certificate_expiry.sort_by(|a, b| a.0.as_str().cmp(b.0.as_str()));
            next.chain_sources = Some(Arc::new(new_sources));
        }
        // Which certificates routes and grants name now; the others are not kept unsealed.
        let bound: std::collections::HashSet<&CertificateName> = next
            .bindings
            .iter()
            .flat_map(|b| b.candidates_named())
            .chain(next.apps.values().flat_map(|a| a.grants.iter()))
            .collect();
        let mut identities = std::mem::take(&mut next.identities);
        let mut broken = std::mem::take(&mut next.broken_identities);
        identities.retain(|n, _| bound.contains(n) && !touched.certificates.contains(n));
        broken.retain(|n, _| bound.contains(n) && !touched.certificates.contains(n));
        let pool = next.chain_sources.as_deref().map(pool_of).unwrap_or_default();
        let named: HashMap<&CertificateName, &CertificateRecord> = delta.named.iter().map(|c| (&c.name, c)).collect();
        for name in bound {
            if identities.contains_key(name) || broken.contains_key(name) {
                continue;
            }
            let read;
            let (rec, leaf) = match changed_leaves.get(name) {
                Some((rec, leaf)) => (*rec, leaf),
                None => match named.get(name) {
                    Some(rec) => {
                        read = facts::read(&rec.leaf_der);
                        (*rec, &read)
                    }
                    None => return Ok(None),
                },
            };
            match leaf {
                Ok(leaf) => {
                    let merged = merged_pool(&rec.chain_der, &pool);
                    identities.insert(name.clone(), Arc::new(self.identity(rec, leaf, &merged)));
                }
                Err(e) => {
                    broken.insert(name.clone(), unreadable(e));
                }
            }
        }
        next.identities = identities;
        next.broken_identities = broken;
        Ok(Some((next, touched)))
    }
}

/// Why a stored certificate cannot be presented.
fn unreadable(e: &crate::pki::Refusal) -> String {
    format!("its stored certificate is unreadable: {}", e.message)
}

/// The ids of the readable certificates among `ders`, in order; each new one is parsed into
/// `facts` once.
fn ca_ids(facts: &mut HashMap<String, facts::CertFacts>, ders: &[Vec<u8>]) -> Vec<String> {
    let mut ids = Vec::new();
    for der in ders {
        let id = facts::sha256_hex(der);
        if !facts.contains_key(&id) {
            match facts::read(der) {
                Ok(f) => {
                    facts.insert(id.clone(), f);
                }
                Err(_) => continue,
            }
        }
        ids.push(id);
    }
    ids
}

/// The pool chains are completed from.
fn pool_of(sources: &ChainSources) -> Pool {
    let mut pool = Pool::default();
    for id in sources.pool_ids() {
        if let Some(f) = sources.facts.get(id) {
            pool.add(f.clone(), Origin::Certificate(String::new()));
        }
    }
    pool
}

/// A certificate's own chain first (so its own intermediates win), then the store's pool.
fn merged_pool(own_chain: &[Vec<u8>], pool: &Pool) -> Pool {
    let mut own = Pool::default();
    for f in read_stored(own_chain) {
        own.add(f, Origin::Own);
    }
    for c in pool.certs() {
        own.add(c.facts.clone(), Origin::Certificate(String::new()));
    }
    own
}

impl Control {
    /// Route inputs for one `certgate call`: with `--cert NAME`, the URL's host:port is bound
    /// to that certificate for this call only (keeping the trust policy of its binding).
    pub async fn route_inputs_for_call(&self, url: &str, cert: Option<&str>) -> Result<RouteInputs, ControlError> {
        let mut inputs = self.route_inputs().await?;
        let Some(name) = cert else { return Ok(inputs) };
        if self.store.certificate(name).await?.is_none() {
            return Err(ControlError::NotFound {
                what: format!("certificate '{name}'"),
                hint: crate::model::Remedy::with(
                    "check the name against the list of certificates",
                    crate::model::Action::ListCertificates,
                ),
            });
        }
        let uri: http::Uri = url
            .parse()
            .map_err(|_| ControlError::usage("usage", format!("'{url}' is not a URL"), "give https://partner/path"))?;
        let host = uri.host().unwrap_or_default().trim_start_matches('[').trim_end_matches(']').to_ascii_lowercase();
        let key = crate::routes::Destination::HostPort(host, uri.port_u16().unwrap_or(443)).key();
        // Keep the trust policy and the engine option of the host's binding.
        let (trust, allow_renegotiation) = inputs
            .bindings
            .iter()
            .find(|b| b.destination == key)
            .map(|b| (b.trust.clone(), b.allow_renegotiation))
            .unwrap_or((crate::model::TrustPolicy::Public, false));
        inputs.bindings.retain(|b| b.destination != key);
        inputs.bindings.push(Arc::new(crate::store::BindingRecord {
            destination: key,
            certificate: Some(CertificateName::parse(name)?),
            alternates: Vec::new(),
            trust,
            sni: None,
            pins: Vec::new(),
            allow_renegotiation,
            created_at: 0,
            updated_at: 0,
        }));
        if !inputs.identities.contains_key(name) {
            // Unseal just this one certificate, with its chain completed like the others.
            let mut extra = self.route_inputs_with(&[name]).await?;
            if let Some(id) = extra.identities.remove(name) {
                inputs.identities.insert(id.name.clone(), id);
            }
        }
        Ok(inputs)
    }
}

/// The gateway's view of the store.
impl RouteSource for Control {
    fn revision(&self) -> SourceFuture<'_, i64> {
        Box::pin(async move { Control::revision(self).await.map_err(|e| e.message()) })
    }

    fn inputs(&self) -> SourceFuture<'_, RouteInputs> {
        Box::pin(async move { self.route_inputs().await.map_err(|e| e.message()) })
    }

    fn inputs_since(&self, previous: Arc<RouteInputs>) -> SourceFuture<'_, Option<(RouteInputs, Touched)>> {
        Box::pin(async move { self.route_inputs_since(&previous).await.map_err(|e| e.message()) })
    }

    fn changes(&self) -> Option<tokio::sync::mpsc::Receiver<SourceEvent>> {
        self.store.revision_events()
    }
}

/// A certificate's private key as the store keeps it: sealed under the master key, the
/// certificate id as associated data. Opened only when a TLS engine asks for it.
struct SealedKey {
    master: Arc<MasterKey>,
    sealed: Vec<u8>,
    id: CertificateId,
    name: CertificateName,
    format: KeyFormat,
}

impl KeySource for SealedKey {
    fn load(&self) -> Result<PrivateKey, String> {
        let der = self.master.open(&self.sealed, self.id.as_bytes()).map_err(|_| {
            format!(
                "the sealed key of certificate '{}' does not open with this master key (the row is damaged or \
                 was copied from another store: import the certificate again)",
                self.name
            )
        })?;
        Ok(PrivateKey::new(der, self.format))
    }
}

impl Control {
    /// Every stored certificate's public parts (for `probe`: which of them a partner accepts).
    pub async fn stored_identities(&self) -> Result<Vec<StoredIdentity>, ControlError> {
        Ok(self
            .store
            .certificates()
            .await?
            .into_iter()
            .map(|c| StoredIdentity { name: c.name, leaf_der: c.leaf_der, chain_der: c.chain_der })
            .collect())
    }

    /// What `probe` reads, for the CLI and the API alike: the route inputs (also unsealing the
    /// certificate asked for instead of the binding's, which must exist) and every stored
    /// certificate's public parts. Nothing is written.
    /// `cert` may name several candidates, `a,b`, in order of preference.
    pub async fn probe_inputs(&self, cert: Option<&str>) -> Result<(RouteInputs, Vec<StoredIdentity>), ControlError> {
        let names = cert.map(super::split_candidates).unwrap_or_default();
        super::bindings::check_candidates(&names)?;
        for name in &names {
            self.show_certificate(name).await?;
        }
        let extra: Vec<&str> = names.iter().map(String::as_str).collect();
        Ok((self.route_inputs_with(&extra).await?, self.stored_identities().await?))
    }
}
