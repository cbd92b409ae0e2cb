//! Who may do what: admin API / console tokens with roles, and calling applications with their
//! proxy credentials and grants (the seeds' "private-key read permission", per certificate).
//! Secrets are random, shown once, and stored as SHA-256 only.

use base64::Engine;
use serde::Serialize;

use crate::model::{AppName, CertificateName};
use crate::store::{AppRecord, GrantRecord, TokenRecord};

use super::views::rfc3339_unix;
use super::{validate_name, Control, ControlError};

/// Roles, weakest first: viewer reads; operator also changes bindings, services, apps and
/// grants; admin also certificates, trust anchors and tokens.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Viewer,
    Operator,
    Admin,
}

impl Role {
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "viewer" => Some(Role::Viewer),
            "operator" => Some(Role::Operator),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }
}

/// A new secret: `PREFIX` + 43 characters of base64url (32 random bytes).
fn new_secret(prefix: &str) -> Result<String, ControlError> {
    let mut bytes = [0u8; 32];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| ControlError::crypto("the system random generator failed"))?;
    Ok(format!("{prefix}{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)))
}

pub use crate::model::{hashes_equal, secret_hash};

/// An API token (never its secret).
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
#[schema(as = Token)]
pub struct TokenView {
    pub name: String,
    pub role: Role,
    #[schema(format = DateTime)]
    pub created_at: String,
}

/// Shown once, when created. `Debug` leaves the token out.
#[derive(Clone, Serialize, utoipa::ToSchema)]
pub struct NewToken {
    pub name: String,
    pub role: Role,
    /// Shown once.
    pub token: String,
}

impl std::fmt::Debug for NewToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewToken")
            .field("name", &self.name)
            .field("role", &self.role)
            .field("token", &"<redacted>")
            .finish()
    }
}

/// A calling application and the certificates it may present.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
#[schema(as = App)]
pub struct AppView {
    pub name: AppName,
    /// Certificates the app may present.
    pub grants: Vec<CertificateName>,
    #[schema(format = DateTime)]
    pub created_at: String,
}

/// Shown once, when created. `Debug` leaves the credential out.
#[derive(Clone, Serialize, utoipa::ToSchema)]
pub struct NewApp {
    pub name: String,
    /// Shown once: Proxy-Authorization: Basic base64(NAME:CREDENTIAL).
    pub credential: String,
}

impl std::fmt::Debug for NewApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewApp").field("name", &self.name).field("credential", &"<redacted>").finish()
    }
}

/// Who a token belongs to.
#[derive(Clone, Debug)]
pub struct Principal {
    pub name: String,
    pub role: Role,
}

impl Control {
    pub async fn create_token(&self, name: &str, role: &str) -> Result<NewToken, ControlError> {
        validate_name("token", name)?;
        let role = Role::parse(role).ok_or_else(|| {
            ControlError::usage("usage", format!("'{role}' is not a role"), "use viewer, operator or admin")
        })?;
        let token = new_secret("cgt_")?;
        let rec = TokenRecord {
            name: name.to_string(),
            role: role.as_str().into(),
            hash: secret_hash(&token),
            created_at: self.now().unix_timestamp(),
        };
        self.store.insert_token(&rec, &self.change("token.create", name, format!("role {}", role.as_str()))).await?;
        Ok(NewToken { name: name.to_string(), role, token })
    }

    pub async fn tokens(&self) -> Result<Vec<TokenView>, ControlError> {
        Ok(self
            .store
            .tokens()
            .await?
            .into_iter()
            .map(|t| TokenView {
                role: Role::parse(&t.role).unwrap_or(Role::Viewer),
                name: t.name,
                created_at: rfc3339_unix(t.created_at),
            })
            .collect())
    }

    pub async fn revoke_token(&self, name: &str) -> Result<(), ControlError> {
        self.store.delete_token(name, &self.change("token.revoke", name, "")).await?;
        Ok(())
    }

    /// The token's owner, or None. Every stored hash is compared in constant time.
    pub async fn authenticate(&self, secret: &str) -> Result<Option<Principal>, ControlError> {
        let hash = secret_hash(secret);
        let mut found = None;
        for t in self.store.tokens().await? {
            if hashes_equal(&t.hash, &hash) {
                found = Role::parse(&t.role).map(|role| Principal { name: t.name.clone(), role });
            }
        }
        Ok(found)
    }

    pub async fn add_app(&self, name: &str) -> Result<NewApp, ControlError> {
        validate_name("app", name)?;
        let (rec, new) = self.new_app_record(name)?;
        self.store.insert_app(&rec, &self.change("app.add", name, "")).await?;
        Ok(new)
    }

    /// A new app's record (its credential hashed) and the credential to show once.
    pub(super) fn new_app_record(&self, name: &str) -> Result<(AppRecord, NewApp), ControlError> {
        let credential = new_secret("cga_")?;
        let rec = AppRecord {
            name: AppName::parse(name)?,
            hash: secret_hash(&credential),
            created_at: self.now().unix_timestamp(),
        };
        Ok((rec, NewApp { name: name.to_string(), credential }))
    }

    pub async fn apps(&self) -> Result<Vec<AppView>, ControlError> {
        let grants = self.store.grants().await?;
        Ok(self
            .store
            .apps()
            .await?
            .into_iter()
            .map(|a| AppView {
                grants: grants.iter().filter(|g| g.app == a.name).map(|g| g.certificate.clone()).collect(),
                name: a.name,
                created_at: rfc3339_unix(a.created_at),
            })
            .collect())
    }

    pub async fn app(&self, name: &str) -> Result<AppView, ControlError> {
        self.apps().await?.into_iter().find(|a| a.name == name).ok_or_else(|| ControlError::NotFound {
            what: format!("app '{name}'"),
            hint: "check the name against the list of apps".into(),
        })
    }

    pub async fn remove_app(&self, name: &str) -> Result<(), ControlError> {
        self.store.delete_app(name, &self.change("app.remove", name, "")).await?;
        Ok(())
    }

    pub async fn grant(&self, app: &str, certificate: &str) -> Result<AppView, ControlError> {
        let rec = GrantRecord {
            app: AppName::parse(app)?,
            certificate: CertificateName::parse(certificate)?,
            created_at: self.now().unix_timestamp(),
        };
        self.store.put_grant(&rec, &self.change("app.grant", app, format!("certificate {certificate}"))).await?;
        self.app(app).await
    }

    pub async fn revoke_grant(&self, app: &str, certificate: &str) -> Result<AppView, ControlError> {
        self.store
            .delete_grant(app, certificate, &self.change("app.revoke", app, format!("certificate {certificate}")))
            .await?;
        self.app(app).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreUrl;

    #[test]
    fn debug_output_never_shows_a_secret() {
        let token = NewToken { name: "ops".into(), role: Role::Admin, token: "cgt_SECRETTOKEN".into() };
        let app = NewApp { name: "billing".into(), credential: "cga_SECRETCRED".into() };
        let urls = [
            StoreUrl::parse("postgres://certgate:S3CRETPW@127.0.0.1:5432/certgate").unwrap(),
            StoreUrl::parse("postgresql://127.0.0.1/certgate?sslmode=disable&password=S3CRETPW").unwrap(),
        ];
        let shown =
            format!("{token:?} {:#?} {app:?} {urls:?} {}", token, StoreUrl::redact_text("postgres://u:S3CRETPW@h/d"));
        for secret in ["SECRETTOKEN", "SECRETCRED", "S3CRETPW"] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        assert!(
            shown.contains("ops") && shown.contains("billing") && shown.contains("127.0.0.1:5432/certgate"),
            "{shown}"
        );
        assert!(shown.contains("sslmode=disable&password=***"), "{shown}");
    }
}
