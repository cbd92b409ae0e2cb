//! Who is calling the admin API: a bearer token, or the console's session cookie with its CSRF
//! token. Tokens are checked against their stored hashes in constant time (see control::access).

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::Method;

use crate::control::{hashes_equal, Principal, Role};

use super::error::ApiError;
use super::session::{cookie, CSRF_HEADER, SESSION_COOKIE};
use super::state::AdminState;

/// An authenticated caller of the API.
pub struct Caller(pub Principal);

impl Caller {
    pub fn require(&self, role: Role) -> Result<(), ApiError> {
        if self.0.role >= role {
            Ok(())
        } else {
            Err(ApiError::new(
                axum::http::StatusCode::FORBIDDEN,
                "forbidden",
                format!("token '{}' has the role {}, this needs {}", self.0.name, self.0.role.as_str(), role.as_str()),
                "ask an admin for a token with that role",
            ))
        }
    }
}

impl FromRequestParts<Arc<AdminState>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AdminState>) -> Result<Self, Self::Rejection> {
        let unauthorized = |message: &str| {
            ApiError::new(
                axum::http::StatusCode::UNAUTHORIZED,
                "unauthorized",
                message.to_string(),
                "send Authorization: Bearer TOKEN with a token an admin created for you",
            )
        };
        if let Some(value) = parts.headers.get(axum::http::header::AUTHORIZATION) {
            let token = value
                .to_str()
                .ok()
                .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
                .ok_or_else(|| unauthorized("the Authorization header is not 'Bearer TOKEN'"))?;
            let principal = state
                .control
                .authenticate(token.trim())
                .await
                .map_err(ApiError::from)?
                .ok_or_else(|| unauthorized("the token is not valid (revoked, or never issued)"))?;
            return Ok(Caller(principal));
        }
        if let Some(id) = cookie(parts, SESSION_COOKIE) {
            let session =
                state.sessions.get(&id).ok_or_else(|| unauthorized("the console session has ended: sign in again"))?;
            if parts.method != Method::GET && parts.method != Method::HEAD {
                let sent = parts.headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok()).unwrap_or("");
                if !hashes_equal(sent, &session.csrf) {
                    return Err(ApiError::new(
                        axum::http::StatusCode::FORBIDDEN,
                        "csrf",
                        "the request lacks the console's CSRF token".into(),
                        "reload the console page and try again",
                    ));
                }
            }
            // The token may have been revoked since sign-in.
            let still = state
                .control
                .tokens()
                .await
                .map_err(ApiError::from)?
                .into_iter()
                .any(|t| t.name == session.principal.name);
            if !still {
                state.sessions.remove(&id);
                return Err(unauthorized("the token behind this session was revoked"));
            }
            return Ok(Caller(session.principal));
        }
        Err(unauthorized("no credentials"))
    }
}

pub const VIEWER: u8 = 0;
pub const OPERATOR: u8 = 1;
pub const ADMIN: u8 = 2;

/// An authenticated caller with at least the role `ROLE` (checked before the body is read, so
/// a caller without the role learns nothing from how its body would have been parsed).
pub struct Need<const ROLE: u8>(pub Caller);

impl<const ROLE: u8> FromRequestParts<Arc<AdminState>> for Need<ROLE> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AdminState>) -> Result<Self, Self::Rejection> {
        let caller = Caller::from_request_parts(parts, state).await?;
        caller.require(match ROLE {
            ADMIN => Role::Admin,
            OPERATOR => Role::Operator,
            _ => Role::Viewer,
        })?;
        Ok(Need(caller))
    }
}
