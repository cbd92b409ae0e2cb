//! The web console: static pages embedded in the binary (no build step, nothing fetched from the
//! internet), and the sign-in that turns a token into an HttpOnly, SameSite=Strict session cookie
//! plus a CSRF token the pages send back on every change.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;

use super::error::ApiError;
use super::session::{cookie, SESSION_COOKIE};
use super::state::AdminState;

const INDEX_HTML: &str = include_str!("console/index.html");
const APP_JS: &str = include_str!("console/app.js");
const APP_CSS: &str = include_str!("console/app.css");

pub fn router(state: Arc<AdminState>) -> Router {
    Router::new()
        .route("/", get(|| async { page(INDEX_HTML, "text/html; charset=utf-8") }))
        .route("/console/app.js", get(|| async { page(APP_JS, "text/javascript; charset=utf-8") }))
        .route("/console/app.css", get(|| async { page(APP_CSS, "text/css; charset=utf-8") }))
        .route("/console/login", post(login))
        .route("/console/logout", post(logout))
        .route("/console/session", get(session))
        .with_state(state)
}

fn page(body: &'static str, ctype: &'static str) -> Response {
    let mut headers = HeaderMap::new();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'; form-action 'self'"),
    );
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    (headers, body).into_response()
}

#[derive(Deserialize)]
struct LoginBody {
    token: String,
}

fn session_cookie(id: &str, https: bool, max_age: i64) -> HeaderValue {
    let secure = if https { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}={id}; HttpOnly; SameSite=Strict; Path=/; Max-Age={max_age}{secure}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static(""))
}

async fn login(State(st): State<Arc<AdminState>>, Json(body): Json<LoginBody>) -> Result<Response, ApiError> {
    let principal = st.control.authenticate(body.token.trim()).await?.ok_or_else(|| {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "this token is not valid (revoked, or never issued)".into(),
            "ask an admin for a token; the first admin token is created on the server where certgate runs",
        )
    })?;
    let (id, s) = st.sessions.create(principal)?;
    let mut resp = Json(
        serde_json::json!({"name": s.principal.name, "role": s.principal.role, "csrf": s.csrf, "proxy": st.proxy_addr}),
    )
    .into_response();
    resp.headers_mut().insert(header::SET_COOKIE, session_cookie(&id, st.https, 8 * 3600));
    Ok(resp)
}

async fn logout(State(st): State<Arc<AdminState>>, req: axum::extract::Request) -> Response {
    let (parts, _) = req.into_parts();
    if let Some(id) = cookie(&parts, SESSION_COOKIE) {
        st.sessions.remove(&id);
    }
    let mut resp = StatusCode::NO_CONTENT.into_response();
    resp.headers_mut().insert(header::SET_COOKIE, session_cookie("", st.https, 0));
    resp
}

async fn session(State(st): State<Arc<AdminState>>, req: axum::extract::Request) -> Result<Response, ApiError> {
    let (parts, _) = req.into_parts();
    let s = cookie(&parts, SESSION_COOKIE).and_then(|id| st.sessions.get(&id)).ok_or_else(|| {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", "not signed in".into(), "sign in with a token")
    })?;
    Ok(Json(
        serde_json::json!({"name": s.principal.name, "role": s.principal.role, "csrf": s.csrf, "proxy": st.proxy_addr}),
    )
    .into_response())
}
