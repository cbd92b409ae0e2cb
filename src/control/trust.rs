//! Trust anchors: the CA certificates certgate trusts for verifying partners.

use crate::pki::{bundle, Code, Refusal};
use crate::store::{AnchorRecord, StoreError};

use super::views::{rfc3339, rfc3339_unix, AnchorCertView, AnchorView};
use super::{read_stored, validate_name, Control, ControlError};

impl Control {
    /// Add a named bundle of CA certificates (PEM with one or more, or DER).
    pub async fn add_anchor(&self, name: &str, label: &str, data: &[u8]) -> Result<AnchorView, ControlError> {
        self.add_anchor_owned(name, label, data, None, None).await
    }

    /// [`Control::add_anchor`] with its owner and contact.
    pub async fn add_anchor_owned(
        &self,
        name: &str,
        label: &str,
        data: &[u8],
        owner: Option<&str>,
        contact: Option<&str>,
    ) -> Result<AnchorView, ControlError> {
        validate_name("trust anchor", name)?;
        let (owner, contact) = super::owner_fields(owner, contact)?;
        if self.store.anchor(name).await?.is_some() {
            return Err(StoreError::Conflict(format!("a trust anchor named '{name}' exists already")).into());
        }
        let contents = bundle::read(data, None).map_err(|r| r.in_file(label))?;
        if !contents.keys.is_empty() {
            return Err(Refusal::new(
                Code::NotACertificate,
                format!("{label}: the file holds a private key; a trust anchor is a CA certificate only"),
                "give the partner's CA certificate (public part), never a private key",
            )
            .into());
        }
        if contents.certs.is_empty() {
            return Err(Refusal::new(
                Code::NotACertificate,
                format!("{label}: the file holds no certificate"),
                "give the partner's CA certificate as PEM or DER",
            )
            .into());
        }
        let mut certs: Vec<Vec<u8>> = Vec::new();
        for c in &contents.certs {
            if !certs.contains(&c.der) {
                certs.push(c.der.clone());
            }
        }
        let rec = AnchorRecord {
            name: name.to_string(),
            certs_der: certs,
            owner,
            contact,
            created_at: self.now().unix_timestamp(),
        };
        let subjects: Vec<&str> = contents.certs.iter().map(|c| c.subject.as_str()).collect();
        self.store.insert_anchor(&rec, &self.change("trust.add", name, subjects.join("; "))).await?;
        self.show_anchor(name).await
    }

    pub async fn list_anchors(&self) -> Result<Vec<AnchorView>, ControlError> {
        Ok(self.store.anchors().await?.iter().map(|a| self.anchor_view(a)).collect())
    }

    pub async fn show_anchor(&self, name: &str) -> Result<AnchorView, ControlError> {
        let rec = self.store.anchor(name).await?.ok_or_else(|| ControlError::NotFound {
            what: format!("trust anchor '{name}'"),
            hint: crate::model::Remedy::with(
                "check the name against the list of trust anchors",
                crate::model::Action::ListTrustAnchors,
            ),
        })?;
        Ok(self.anchor_view(&rec))
    }

    pub async fn remove_anchor(&self, name: &str) -> Result<(), ControlError> {
        self.store.delete_anchor(name, &self.change("trust.remove", name, "")).await?;
        Ok(())
    }

    fn anchor_view(&self, rec: &AnchorRecord) -> AnchorView {
        let now = self.now();
        let certs = read_stored(&rec.certs_der);
        let mut warnings = Vec::new();
        for c in &certs {
            if c.not_after < now {
                warnings.push(format!("'{}' expired on {}", c.subject, c.not_after.date()));
            }
            if !c.is_ca && !c.self_signed {
                warnings.push(format!(
                    "'{}' is not a CA certificate: it can only match that exact partner certificate",
                    c.subject
                ));
            }
        }
        AnchorView {
            name: rec.name.clone(),
            certificates: certs
                .iter()
                .map(|c| AnchorCertView {
                    subject: c.subject.clone(),
                    issuer: c.issuer.clone(),
                    id: c.id.clone(),
                    not_after: rfc3339(c.not_after),
                    self_signed: c.self_signed,
                    is_ca: c.is_ca,
                })
                .collect(),
            warnings,
            owner: rec.owner.clone(),
            contact: rec.contact.clone(),
            created_at: rfc3339_unix(rec.created_at),
        }
    }

    pub async fn audit(&self, limit: i64) -> Result<Vec<super::views::AuditView>, ControlError> {
        Ok(self
            .store
            .audit(limit.clamp(1, 10_000))
            .await?
            .into_iter()
            .map(|a| super::views::AuditView {
                seq: a.seq,
                at: rfc3339_unix(a.at),
                actor: a.actor,
                action: a.action,
                target: a.target,
                result: a.result,
                detail: a.detail,
                revision: a.revision,
            })
            .collect())
    }
}
