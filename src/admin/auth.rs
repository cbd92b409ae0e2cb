//! Who is calling the admin API: a bearer token, or the console's session cookie with its CSRF
//! token. Tokens are checked against their stored hashes in constant time (see control::access).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::Method;
use base64::Engine;

use crate::control::{hashes_equal, Principal, Role};

use super::api::ApiError;
use super::AdminState;

pub const SESSION_COOKIE: &str = "certgate_session";
pub const CSRF_HEADER: &str = "x-csrf-token";
const SESSION_TTL: Duration = Duration::from_secs(8 * 3600);

#[derive(Clone)]
pub struct Session {
    pub principal: Principal,
    pub csrf: String,
    created: Instant,
}

/// Console sessions, in memory (a restart signs everyone out).
#[derive(Default)]
pub struct Sessions(Mutex<HashMap<String, Session>>);

pub fn random_id() -> String {
    let mut bytes = [0u8; 32];
    let _ = aws_lc_rs::rand::fill(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

impl Sessions {
    pub fn create(&self, principal: Principal) -> (String, Session) {
        let id = random_id();
        let session = Session { principal, csrf: random_id(), created: Instant::now() };
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.retain(|_, s| s.created.elapsed() < SESSION_TTL);
        map.insert(id.clone(), session.clone());
        (id, session)
    }

    pub fn get(&self, id: &str) -> Option<Session> {
        let map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.get(id).filter(|s| s.created.elapsed() < SESSION_TTL).cloned()
    }

    pub fn remove(&self, id: &str) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).remove(id);
    }
}

pub fn cookie(parts: &Parts, name: &str) -> Option<String> {
    parts
        .headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

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
                "ask an admin for a token with that role: certgate token create NAME --role ROLE",
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
                "send Authorization: Bearer TOKEN (create one with: certgate token create NAME --role admin)",
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
