//! Console sessions: the cookie that stands for a signed-in token, and the CSRF token that comes
//! with it. In memory only.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::request::Parts;
use base64::Engine;

use crate::control::{ControlError, Principal};

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

/// 32 random bytes, base64url. A failing random generator is an error, never a predictable id.
pub fn random_id() -> Result<String, ControlError> {
    let mut bytes = [0u8; 32];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| ControlError::crypto("the system random generator failed"))?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session").field("principal", &self.principal).field("csrf", &"<redacted>").finish()
    }
}

impl Sessions {
    /// A new session (its id is the cookie value) with its own CSRF token.
    pub fn create(&self, principal: Principal) -> Result<(String, Session), ControlError> {
        let id = random_id()?;
        let session = Session { principal, csrf: random_id()?, created: Instant::now() };
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.retain(|_, s| s.created.elapsed() < SESSION_TTL);
        map.insert(id.clone(), session.clone());
        Ok((id, session))
    }

    pub fn get(&self, id: &str) -> Option<Session> {
        let map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.get(id).filter(|s| s.created.elapsed() < SESSION_TTL).cloned()
    }

    pub fn remove(&self, id: &str) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).remove(id);
    }
}

/// The value of the cookie `name` in a request, if it was sent.
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
