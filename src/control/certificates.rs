//! Certificates: import, rotate, list, show, check, export, remove.

use crate::model::CertificateName;
use crate::pki::{self, bundle, facts, CertFacts, Contents, KeyFormat, Password, PrivateKey};
use crate::store::{CertificateRecord, StoreError};

use super::views::{CertificateParts, CertificateView, CheckReport, KeyCheck};
use super::{read_stored, validate_name, Control, ControlError};

/// One file handed over by the user, with a label for messages (its path or upload name).
pub struct InputFile {
    pub label: String,
    pub data: Vec<u8>,
}

pub struct ImportRequest {
    pub name: String,
    /// The main file, then `--key`, then every `--chain` file.
    pub files: Vec<InputFile>,
    pub password: Option<Password>,
    pub owner: Option<String>,
    /// E-mail addresses and/or `webhook:NAME` for expiry alerts.
    pub contact: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExportFormat {
    Pem,
    Der,
}

impl Control {
    /// Parse and check without touching the store: what `import` would store.
    pub fn read_identity(req: &ImportRequest) -> Result<pki::Identity, ControlError> {
        let mut all = Contents::default();
        if req.files.is_empty() {
            return Err(ControlError::usage("usage", "no file given", "name the certificate file"));
        }
        for file in &req.files {
            let c = bundle::read(&file.data, req.password.as_ref()).map_err(|r| r.in_file(&file.label))?;
            all.certs.extend(c.certs);
            all.keys.extend(c.keys);
            all.other.extend(c.other);
        }
        Ok(bundle::assemble(all)?)
    }

    /// [`Control::read_identity`] on the blocking pool: deriving the key of a PKCS#12 file can
    /// take seconds, which must not stall the requests served by the same runtime.
    async fn read_identity_blocking(req: ImportRequest) -> Result<(pki::Identity, ImportRequest), ControlError> {
        tokio::task::spawn_blocking(move || Self::read_identity(&req).map(|identity| (identity, req)))
            .await
            .map_err(|e| ControlError::unavailable(format!("reading the certificate failed: {e}")))?
    }

    pub(super) fn record(
        &self,
        name: &str,
        identity: &pki::Identity,
        owner: Option<String>,
        contact: Option<String>,
    ) -> Result<CertificateRecord, ControlError> {
        let sealed = self
            .key
            .seal(identity.key.secret_der(), identity.leaf.id.as_bytes())
            .map_err(|e| ControlError::crypto(e.to_string()))?;
        let now = self.now().unix_timestamp();
        Ok(CertificateRecord {
            name: CertificateName::parse(name)?,
            id: identity.leaf.id.clone(),
            leaf_der: identity.leaf.der.clone(),
            chain_der: identity.chain.iter().map(|c| c.der.clone()).collect(),
            sealed_key: sealed,
            key_format: identity.key.format().as_str().to_string(),
            owner,
            contact,
            created_at: now,
            updated_at: now,
        })
    }

    pub async fn import_certificate(&self, req: ImportRequest) -> Result<CertificateView, ControlError> {
        validate_name("certificate", &req.name)?;
        if self.store.certificate(&req.name).await?.is_some() {
            return Err(StoreError::Conflict(format!("a certificate named '{}' exists already", req.name)).into());
        }
        let (owner, contact) = super::owner_fields(req.owner.as_deref(), req.contact.as_deref())?;
        let (identity, req) = Self::read_identity_blocking(req).await?;
        let rec = self.record(&req.name, &identity, owner, contact)?;
        let twins = self.names_with_id(&identity.leaf.id, &req.name).await?;
        let detail = format!("id {} subject {}", identity.leaf.id, identity.leaf.subject);
        self.store.insert_certificate(&rec, &self.change("cert.import", &req.name, detail)).await?;
        let mut view = self.show_certificate(&req.name).await?;
        view.notes = identity.notes;
        view.warn_already_stored(&twins);
        Ok(view)
    }

    /// New material under an existing name: bindings and grants refer to the name and stay.
    pub async fn rotate_certificate(&self, req: ImportRequest) -> Result<CertificateView, ControlError> {
        validate_name("certificate", &req.name)?;
        let old = self.existing(&req.name).await?;
        let (owner, contact) = super::owner_fields(req.owner.as_deref(), req.contact.as_deref())?;
        let (identity, req) = Self::read_identity_blocking(req).await?;
        let mut rec = self.record(&req.name, &identity, owner, contact)?;
        rec.created_at = old.created_at;
        let twins = self.names_with_id(&identity.leaf.id, &req.name).await?;
        let detail = format!("id {} -> {} subject {}", old.id, identity.leaf.id, identity.leaf.subject);
        self.store.replace_certificate(&rec, &self.change("cert.rotate", &req.name, detail)).await?;
        let mut view = self.show_certificate(&req.name).await?;
        view.notes = identity.notes;
        view.warn_already_stored(&twins);
        Ok(view)
    }

    /// Other names under which the certificate with this id is stored already (an import of the
    /// same PFX twice would leave two identities to rotate).
    async fn names_with_id(&self, id: &str, except: &str) -> Result<Vec<String>, ControlError> {
        Ok(self
            .store
            .certificates()
            .await?
            .into_iter()
            .filter(|c| c.id == id && c.name != except)
            .map(|c| c.name.into_string())
            .collect())
    }

    async fn existing(&self, name: &str) -> Result<CertificateRecord, ControlError> {
        self.store.certificate(name).await?.ok_or_else(|| ControlError::NotFound {
            what: format!("certificate '{name}'"),
            hint: crate::model::Remedy::with(
                "check the name against the list of certificates",
                crate::model::Action::ListCertificates,
            ),
        })
    }

    async fn view(&self, rec: &CertificateRecord) -> Result<CertificateView, ControlError> {
        let leaf = facts::read(&rec.leaf_der)?;
        let chain = read_stored(&rec.chain_der);
        let pool = self.pool(Some((&rec.name, &chain))).await?;
        let path = pool.path(&leaf);
        Ok(CertificateView::build(CertificateParts {
            name: &rec.name,
            leaf: &leaf,
            chain: &chain,
            path: &path,
            owner: rec.owner.clone(),
            contact: rec.contact.clone(),
            bindings: self.bindings_of(&rec.name).await?,
            created_at: rec.created_at,
            updated_at: rec.updated_at,
            now: self.now(),
        }))
    }

    /// Destinations bound to a certificate.
    pub async fn bindings_of(&self, name: &str) -> Result<Vec<String>, ControlError> {
        Ok(self
            .store
            .bindings()
            .await?
            .into_iter()
            .filter(|b| b.candidates().any(|c| c == name))
            .map(|b| b.destination)
            .collect())
    }

    pub async fn list_certificates(&self) -> Result<Vec<CertificateView>, ControlError> {
        let mut out = Vec::new();
        for rec in self.store.certificates().await? {
            out.push(self.view(&rec).await?);
        }
        Ok(out)
    }

    pub async fn show_certificate(&self, name: &str) -> Result<CertificateView, ControlError> {
        let rec = self.existing(name).await?;
        let mut view = self.view(&rec).await?;
        view.pending_request = self.pending_requests().await?.into_iter().find(|p| p.name == name);
        Ok(view)
    }

    /// Unseal a certificate's private key (for the gateway and for `check`).
    pub fn unseal_key(&self, rec: &CertificateRecord) -> Result<PrivateKey, ControlError> {
        let der = self.key.open(&rec.sealed_key, rec.id.as_bytes()).map_err(|_| ControlError::MasterKey {
            message: format!("the sealed key of certificate '{}' does not open with this master key", rec.name),
            hint: "the row is damaged or was copied from another store: import the certificate again".into(),
        })?;
        let format = KeyFormat::parse(&rec.key_format).unwrap_or(KeyFormat::Pkcs8);
        Ok(PrivateKey::new(der, format))
    }

    pub async fn check_certificates(&self, name: Option<&str>) -> Result<Vec<CheckReport>, ControlError> {
        let records = match name {
            Some(n) => vec![self.existing(n).await?],
            None => self.store.certificates().await?,
        };
        let mut reports = Vec::new();
        for rec in &records {
            reports.push(self.check_one(rec).await?);
        }
        Ok(reports)
    }

    async fn check_one(&self, rec: &CertificateRecord) -> Result<CheckReport, ControlError> {
        let leaf = facts::read(&rec.leaf_der)?;
        let chain = read_stored(&rec.chain_der);
        let pool = self.pool(Some((&rec.name, &chain))).await?;
        let path = pool.path(&leaf);
        let mut problems = pki::assess::assess(&leaf, &path, self.now());
        let key = self.check_key(rec, &leaf);
        if !key.matches {
            problems.insert(
                0,
                pki::assess::Warning {
                    code: "key-mismatch",
                    message: key.detail.clone(),
                    remedy: "import the certificate again with its private key: certgate cert rotate NAME FILE".into(),
                },
            );
        }
        let signatures = match path.verify_signatures(&leaf) {
            Ok(Some(())) => "verified up to the root".to_string(),
            Ok(None) => "not checked: the path does not reach a root in the store".to_string(),
            Err(e) => {
                problems.push(pki::assess::Warning {
                    code: "chain-invalid",
                    message: e.clone(),
                    remedy: "import the correct issuing CA certificates (rotate with --chain FILE)".into(),
                });
                e
            }
        };
        let (links, path_end, missing_issuer) = CheckReport::path_links(&leaf, &path);
        Ok(CheckReport {
            name: rec.name.clone(),
            id: rec.id.clone(),
            subject: leaf.subject.clone(),
            key,
            engine: if leaf.key.engine_reason().is_some() { "openssl" } else { "rustls" }.to_string(),
            engine_reason: leaf.key.engine_reason(),
            path: links,
            path_end,
            missing_issuer,
            signatures,
            not_before: super::views::rfc3339(leaf.not_before),
            not_after: super::views::rfc3339(leaf.not_after),
            days_left: pki::assess::days_left(&leaf, self.now()),
            client_auth_eku: leaf.client_auth_eku,
            ok: problems.is_empty(),
            problems,
        })
    }

    fn check_key(&self, rec: &CertificateRecord, leaf: &CertFacts) -> KeyCheck {
        let key = match self.unseal_key(rec) {
            Ok(k) => k,
            Err(e) => return KeyCheck { present: false, matches: false, detail: e.message() },
        };
        match key.public_key_bits() {
            Ok(bits) if bits == leaf.public_key_bits => KeyCheck {
                present: true,
                matches: true,
                detail: format!("present, sealed, matches the certificate ({})", leaf.key),
            },
            Ok(_) => KeyCheck {
                present: true,
                matches: false,
                detail: "the stored private key does not match the certificate".into(),
            },
            Err(r) => KeyCheck { present: true, matches: false, detail: r.message },
        }
    }

    /// The public part only: the leaf, and with `with_chain` its issuers as far as the store
    /// knows them (root included). Never the key.
    pub async fn export_certificate(
        &self,
        name: &str,
        format: ExportFormat,
        with_chain: bool,
    ) -> Result<Vec<u8>, ControlError> {
        let rec = self.existing(name).await?;
        if format == ExportFormat::Der {
            if with_chain {
                return Err(ControlError::usage(
                    "usage",
                    "DER holds one certificate, so --with-chain needs --format pem",
                    "use --format pem --with-chain, or --format der for the certificate alone (.cer)",
                ));
            }
            return Ok(rec.leaf_der);
        }
        let mut ders = vec![rec.leaf_der.clone()];
        if with_chain {
            let leaf = facts::read(&rec.leaf_der)?;
            let chain = read_stored(&rec.chain_der);
            let pool = self.pool(Some((&rec.name, &chain))).await?;
            ders.extend(pool.path(&leaf).links.into_iter().map(|l| l.facts.der));
        }
        Ok(to_pem(&ders).into_bytes())
    }

    pub async fn remove_certificate(&self, name: &str, force: bool) -> Result<(), ControlError> {
        let rec = self.existing(name).await?;
        let bound = self.bindings_of(name).await?;
        let granted: Vec<String> = self
            .store
            .grants()
            .await?
            .into_iter()
            .filter(|g| g.certificate == name)
            .map(|g| g.app.into_string())
            .collect();
        let mut detail = format!("id {}", rec.id);
        if !bound.is_empty() {
            detail.push_str(&format!("; dropped bindings {}", bound.join(", ")));
        }
        if !granted.is_empty() {
            detail.push_str(&format!("; dropped grants to apps {}", granted.join(", ")));
        }
        self.store.delete_certificate(name, force, &self.change("cert.remove", name, detail)).await.map_err(
            |e| match e {
                crate::store::StoreError::StillBound(users) => ControlError::Conflict {
                    code: crate::model::ErrorCode::StillBound,
                    message: format!("certificate '{name}' is bound to {}", users.join(", ")),
                    hint: crate::model::Remedy::with(
                        "remove those bindings first, or remove the certificate together with its bindings",
                        crate::model::Action::RemoveCertificateForce(name.to_string()),
                    ),
                },
                other => other.into(),
            },
        )?;
        Ok(())
    }
}

pub fn to_pem(ders: &[Vec<u8>]) -> String {
    use base64::Engine;
    let mut out = String::new();
    for der in ders {
        out.push_str("-----BEGIN CERTIFICATE-----\n");
        let b64 = base64::engine::general_purpose::STANDARD.encode(der);
        for chunk in b64.as_bytes().chunks(64) {
            out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
            out.push('\n');
        }
        out.push_str("-----END CERTIFICATE-----\n");
    }
    out
}
