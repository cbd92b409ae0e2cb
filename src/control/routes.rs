//! What the gateway compiles its route table from: one consistent snapshot of the store, with
//! the keys of bound certificates unsealed and their chains completed from the store.

use std::collections::HashMap;

use std::sync::Arc;

use crate::model::{AppName, CertificateId, CertificateName};
use crate::pki::{facts, KeyFormat, KeySource, Origin, Pool, PrivateKey};
use crate::routes::{RouteIdentity, RouteInputs, RouteSource, SourceEvent, SourceFuture, StoredIdentity};
use crate::store::MasterKey;

use super::{read_stored, Control, ControlError};

impl Control {
    pub async fn route_inputs(&self) -> Result<RouteInputs, ControlError> {
        self.route_inputs_with(&[]).await
    }

    /// As `route_inputs`, also unsealing the named certificates even when nothing binds them.
    pub async fn route_inputs_with(&self, extra: &[&str]) -> Result<RouteInputs, ControlError> {
        let snap = self.store.snapshot().await?;
        // The pool of every CA certificate the store knows, to complete chains.
        let mut pool = Pool::default();
        for rec in &snap.certificates {
            // Many certificates share their intermediates: parse each CA certificate once.
            let new: Vec<Vec<u8>> = rec
                .chain_der
                .iter()
                .filter(|der| {
                    let id = facts::sha256_hex(der);
                    !pool.certs().iter().any(|c| c.facts.id == id)
                })
                .cloned()
                .collect();
            for f in read_stored(&new) {
                pool.add(f, Origin::Certificate(rec.name.to_string()));
            }
        }
        let mut anchors = HashMap::new();
        for a in &snap.anchors {
            for f in read_stored(&a.certs_der) {
                pool.add(f, Origin::Anchor(a.name.clone()));
            }
            anchors.insert(a.name.clone(), a.certs_der.clone());
        }
        // Bound certificates, and those granted to an app (a request may pick them by header).
        let bound: std::collections::HashSet<&str> = snap
            .bindings
            .iter()
            .flat_map(|b| b.candidates())
            .chain(snap.grants.iter().map(|g| g.certificate.as_str()))
            .collect();
        let mut apps: HashMap<AppName, crate::routes::AppAccess> = snap
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
                        broken_identities
                            .insert(rec.name.clone(), format!("its stored certificate is unreadable: {}", e.message));
                    }
                    continue;
                }
            };
            certificate_expiry.push((rec.name.clone(), leaf.not_after.unix_timestamp()));
            if !wanted {
                continue;
            }
            // The key stays sealed until a route's TLS engine is built (and is then unsealed in
            // memory only); a key that does not open makes only the routes presenting it unavailable.
            let key: Arc<dyn KeySource> = Arc::new(SealedKey {
                master: self.key.clone(),
                sealed: rec.sealed_key.clone(),
                id: rec.id.clone(),
                name: rec.name.clone(),
                format: KeyFormat::parse(&rec.key_format).unwrap_or(KeyFormat::Pkcs8),
            });
            let merged = merged_pools.entry(rec.chain_der.as_slice()).or_insert_with(|| {
                // Own chain first so the certificate's own intermediates win.
                let mut own = Pool::default();
                for f in read_stored(&rec.chain_der) {
                    own.add(f, Origin::Own);
                }
                for f in pool_certs(&pool) {
                    own.add(f, Origin::Certificate(String::new()));
                }
                own
            });
            let path = merged.path(&leaf);
            let mut chain = vec![rec.leaf_der.clone()];
            chain.extend(path.to_send().into_iter().map(|f| f.der.clone()));
            identities.insert(
                rec.name.clone(),
                RouteIdentity {
                    name: rec.name.clone(),
                    id: rec.id.clone(),
                    chain,
                    key,
                    not_before: leaf.not_before.unix_timestamp(),
                    not_after: leaf.not_after.unix_timestamp(),
                    engine_reason: leaf.key.engine_reason(),
                },
            );
        }
        Ok(RouteInputs {
            revision: snap.revision,
            bindings: snap.bindings,
            services: snap.services,
            identities,
            broken_identities,
            anchors,
            certificate_expiry,
            apps,
        })
    }
}

fn pool_certs(pool: &Pool) -> Vec<facts::CertFacts> {
    pool.certs().iter().map(|c| c.facts.clone()).collect()
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
        inputs.bindings.push(crate::store::BindingRecord {
            destination: key,
            certificate: Some(CertificateName::parse(name)?),
            alternates: Vec::new(),
            trust,
            sni: None,
            pins: Vec::new(),
            allow_renegotiation,
            created_at: 0,
            updated_at: 0,
        });
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
