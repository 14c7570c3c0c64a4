//! The dashboard: one page and its script, served by the API with no
//! external CDN, and the login that gives a browser its session
//! (`session.rs`). The page reads the same `/v1` routes as scripts do.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use crate::ApiState;
use crate::error::ApiError;
use crate::extract::{Authorized, Query};
use crate::session;

const PAGE: &str = include_str!("../assets/dashboard.html");
const SCRIPT: &str = include_str!("../assets/dashboard.js");
/// Only this origin's script and data; inline styles (the page's own); no
/// framing by another site.
const CSP: &str = "default-src 'self'; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

fn asset(body: &'static str, content_type: &'static str) -> Response {
    let mut r = body.into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

pub async fn page() -> Response {
    asset(PAGE, "text/html; charset=utf-8")
}

pub async fn script() -> Response {
    asset(SCRIPT, "text/javascript; charset=utf-8")
}

#[derive(Debug, Deserialize)]
pub struct Login {
    token: String,
}

/// Spends a login token for a session cookie, and goes to the page.
pub async fn login(
    State(api): State<Arc<ApiState>>,
    Query(Login { token }): Query<Login>,
) -> Result<Response, ApiError> {
    let Some(cookie) = api.sessions.log_in(&token) else {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "this login link is spent, expired or not one of this server's: ccd up prints a new \
             one when it starts",
        ));
    };
    let mut r = (StatusCode::SEE_OTHER, "").into_response();
    let h = r.headers_mut();
    h.insert(header::LOCATION, HeaderValue::from_static("/"));
    let set = format!(
        "{}={cookie}; HttpOnly; SameSite=Strict; Path=/; Max-Age=43200",
        session::COOKIE
    );
    if let Ok(v) = HeaderValue::from_str(&set) {
        h.insert(header::SET_COOKIE, v);
    }
    // The token must not linger in a Referer or the history's next page.
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    Ok(r)
}

#[derive(Debug, Serialize)]
pub struct SessionInfo {
    /// Send as `X-CSRF-Token` with every change.
    csrf: String,
    scope: &'static str,
}

/// The page's session: its CSRF token and scope (401 without one).
pub async fn current(
    State(api): State<Arc<ApiState>>,
    headers: axum::http::HeaderMap,
    auth: Authorized,
) -> Result<Json<SessionInfo>, ApiError> {
    let csrf = headers
        .get(header::COOKIE)
        .and_then(|v| v.to_str().ok())
        .and_then(|h| session::cookie(h, session::COOKIE))
        .and_then(|c| api.sessions.session(c))
        .map(|s| s.csrf)
        .unwrap_or_default();
    Ok(Json(SessionInfo {
        csrf,
        scope: auth.0.scope.as_str(),
    }))
}
