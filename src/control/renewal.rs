//! Renewal inside certgate: `request` makes the key (sealed at once) and a CSR; `complete` takes
//! the issued certificate for that key and makes it the identity under the name in one change
//! (bindings and grants refer to the name and stay; the gateway switches at the next revision,
//! requests in flight finish on the old route table).

use crate::model::{Action, CertificateName, Remedy};
use crate::pki::request::{build_csr, csr_pem, DistinguishedName, KeyType};
use crate::pki::{bundle, Code, Contents, KeyFormat, PrivateKey, Refusal};
use crate::store::{RequestRecord, StoreError};

use super::views::{rfc3339_unix, PendingView};
use super::{validate_name, Control, ControlError, InputFile};

/// What `cert request` asks for.
pub struct CertificateRequest {
    pub name: String,
    pub subject: String,
    pub dns: Vec<String>,
    /// `ec-p256` (default), `ec-p384`, `rsa-2048`, `rsa-3072`, `rsa-4096`.
    pub key_type: Option<String>,
    pub owner: Option<String>,
    pub contact: Option<String>,
}

/// The answer to a request: the CSR (public), never the key.
#[derive(Clone, Debug, serde::Serialize)]
pub struct RequestView {
    pub name: String,
    pub subject: String,
    pub key_type: String,
    pub dns: Vec<String>,
    /// A certificate under this name keeps serving until the request is completed.
    pub renewal: bool,
    pub csr: String,
    pub created_at: String,
}

impl Control {
    pub async fn request_certificate(&self, req: CertificateRequest) -> Result<RequestView, ControlError> {
        validate_name("certificate", &req.name)?;
        let subject = DistinguishedName::parse(&req.subject)?;
        for d in &req.dns {
            crate::model::Destination::parse(d).map_err(|e| {
                ControlError::usage(
                    "usage",
                    format!("'{d}' is not a DNS name: {e}"),
                    "give host names like api.example.com",
                )
            })?;
        }
        let key_type = KeyType::parse(req.key_type.as_deref().unwrap_or("ec-p256"))?;
        let (owner, contact) = super::owner_fields(req.owner.as_deref(), req.contact.as_deref())?;
        let renewal = self.store.certificate(&req.name).await?.is_some();
        let key = key_type.generate()?;
        let csr = build_csr(&key, key_type, &subject, &req.dns)?;
        let created_at = self.now().unix_timestamp();
        let sealed = self
            .key
            .seal(key.secret_der(), &RequestRecord::seal_context(&req.name, created_at))
            .map_err(|e| ControlError::crypto(e.to_string()))?;
        drop(key);
        let rec = RequestRecord {
            name: CertificateName::parse(&req.name)?,
            subject: subject.to_string(),
            key_type: key_type.as_str().to_string(),
            sealed_key: sealed,
            key_format: KeyFormat::Pkcs8.as_str().to_string(),
            csr_der: csr.clone(),
            owner,
            contact,
            created_at,
        };
        let detail = format!(
            "{} key made and sealed; subject {}{}",
            key_type.as_str(),
            subject,
            if renewal { "; the current certificate keeps serving" } else { "" }
        );
        let change = self.change("cert.request", &req.name, detail);
        let mut tx = self.store.begin_change().await?;
        tx.put_request(&rec).await?;
        tx.commit(std::slice::from_ref(&change)).await?;
        Ok(RequestView {
            name: req.name,
            subject: rec.subject,
            key_type: rec.key_type,
            dns: req.dns,
            renewal,
            csr: csr_pem(&csr),
            created_at: rfc3339_unix(created_at),
        })
    }

    /// Pending requests, with their age.
    pub async fn pending_requests(&self) -> Result<Vec<PendingView>, ControlError> {
        let now = self.now().unix_timestamp();
        let names: Vec<CertificateName> = self.store.certificates().await?.into_iter().map(|c| c.name).collect();
        Ok(self
            .store
            .requests()
            .await?
            .into_iter()
            .map(|r| PendingView {
                renewal: names.contains(&r.name),
                age_seconds: (now - r.created_at).max(0),
                created_at: rfc3339_unix(r.created_at),
                name: r.name,
                subject: r.subject,
                key_type: r.key_type,
                owner: r.owner,
                contact: r.contact,
            })
            .collect())
    }

    async fn pending(&self, name: &str) -> Result<RequestRecord, ControlError> {
        self.store.requests().await?.into_iter().find(|r| r.name == name).ok_or_else(|| ControlError::NotFound {
            what: format!("pending certificate request '{name}'"),
            hint: Remedy::with("make a certificate request for this name first", Action::ListCertificates),
        })
    }

    /// The CSR of a pending request, as PEM.
    pub async fn request_csr(&self, name: &str) -> Result<String, ControlError> {
        Ok(csr_pem(&self.pending(name).await?.csr_der))
    }

    /// Take the issued certificate (PEM, DER or PKCS#7, with or without chain) for the pending
    /// key of `name` and make it the identity under that name, in one change.
    pub async fn complete_certificate(
        &self,
        name: &str,
        files: Vec<InputFile>,
    ) -> Result<super::views::CertificateView, ControlError> {
        let pending = self.pending(name).await?;
        let key_der = self
            .key
            .open(&pending.sealed_key, &RequestRecord::seal_context(&pending.name, pending.created_at))
            .map_err(|_| ControlError::MasterKey {
                message: format!("the sealed key of the request for '{name}' does not open with this master key"),
                hint: "the row is damaged or was copied from another store: make a new request".into(),
            })?;
        let key = PrivateKey::new(key_der, KeyFormat::parse(&pending.key_format).unwrap_or(KeyFormat::Pkcs8));
        let mut all = Contents::default();
        for file in &files {
            let c = bundle::read(&file.data, None).map_err(|r| r.in_file(&file.label))?;
            if !c.keys.is_empty() {
                return Err(Refusal::new(
                    Code::Malformed,
                    format!(
                        "{}: the file holds a private key; completing a request takes the issued certificate only",
                        file.label
                    ),
                    "give the certificate the CA returned (PEM, DER or .p7b); the key never leaves certgate",
                )
                .into());
            }
            all.certs.extend(c.certs);
            all.other.extend(c.other);
        }
        let subjects: Vec<String> = all.certs.iter().map(|c| c.subject.clone()).collect();
        all.keys.push(key);
        let identity = bundle::assemble(all).map_err(|r| {
            if r.code == Code::KeyMismatch {
                Refusal::new(
                    Code::KeyMismatch,
                    format!(
                        "none of the certificates given ({}) was issued for the pending key of '{name}' (requested {})",
                        subjects.join("; "),
                        rfc3339_unix(pending.created_at)
                    ),
                    "give the certificate the CA issued for this request's CSR; nothing was changed",
                )
            } else {
                r
            }
        })?;
        let old = self.store.certificate(name).await?;
        let mut rec = self.record(name, &identity, pending.owner.clone(), pending.contact.clone())?;
        let detail = match &old {
            Some(o) => {
                format!("id {} -> {} subject {} (key made in certgate)", o.id, identity.leaf.id, identity.leaf.subject)
            }
            None => format!("id {} subject {} (key made in certgate)", identity.leaf.id, identity.leaf.subject),
        };
        let change = self.change("cert.complete", name, detail);
        let mut tx = self.store.begin_change().await?;
        match &old {
            Some(o) => {
                rec.created_at = o.created_at;
                tx.replace_certificate(&rec).await?;
            }
            None => tx.insert_certificate(&rec).await.map_err(|e| match e {
                StoreError::Conflict(m) => ControlError::from(StoreError::Conflict(m)),
                other => other.into(),
            })?,
        }
        tx.delete_request(name).await?;
        tx.commit(std::slice::from_ref(&change)).await?;
        let mut view = self.show_certificate(name).await?;
        view.notes = identity.notes;
        Ok(view)
    }

    /// Drop a pending request and its key.
    pub async fn cancel_request(&self, name: &str) -> Result<(), ControlError> {
        self.pending(name).await?;
        let change = self.change("cert.request.cancel", name, "");
        let mut tx = self.store.begin_change().await?;
        tx.delete_request(name).await?;
        tx.commit(std::slice::from_ref(&change)).await?;
        Ok(())
    }
}
