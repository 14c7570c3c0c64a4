//! What handlers take from a request, each refusal an [`ApiError`] in JSON:
//! the caller behind the bearer token, the app named in the path, and the
//! query string.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use utoipa::IntoParams;

use crate::error::ApiError;
use crate::tokens::{Caller, Scope};
use crate::{ApiState, session};

/// The caller, from `Authorization: Bearer TOKEN`; no token or an unknown
/// one is 401.
pub struct Authorized(pub Caller);

impl FromRequestParts<Arc<ApiState>> for Authorized {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<ApiState>,
    ) -> Result<Self, Self::Rejection> {
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        if header.is_none()
            && let Some(session) = parts
                .headers
                .get(axum::http::header::COOKIE)
                .and_then(|v| v.to_str().ok())
                .and_then(|h| session::cookie(h, session::COOKIE))
                .and_then(|c| state.sessions.session(c))
        {
            // A cookie goes with any request to this host, a forged one
            // too: a change also needs the session's CSRF token.
            let reads = matches!(
                parts.method,
                axum::http::Method::GET | axum::http::Method::HEAD
            );
            let csrf = parts
                .headers
                .get(session::CSRF_HEADER)
                .and_then(|v| v.to_str().ok());
            if !reads && csrf != Some(session.csrf.as_str()) {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "a change from the dashboard needs its X-CSRF-Token (GET /v1/session)",
                ));
            }
            return Ok(Authorized(session.caller));
        }
        let Some(token) = header.and_then(|h| h.strip_prefix("Bearer ")) else {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "no token: send Authorization: Bearer TOKEN (ccd up writes one to DATA/api-token; \
                 `ccd token create` makes more)",
            ));
        };
        state
            .tokens
            .caller(token.trim())
            .map(Authorized)
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "the token is not one of this API's: `ccd token create` makes one",
                )
            })
    }
}

impl Authorized {
    /// The caller may act at `scope` on `app` (every app: `None`), or 403.
    pub fn may(&self, scope: Scope, app: Option<&str>) -> Result<(), ApiError> {
        let c = &self.0;
        if c.scope < scope {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                format!(
                    "token {} has scope {}; this needs {}",
                    c.id,
                    c.scope.as_str(),
                    scope.as_str()
                ),
            ));
        }
        if let Some(app) = app
            && !c.reaches(app)
        {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                format!(
                    "token {} is limited to apps starting with {}",
                    c.id,
                    c.apps.join(", ")
                ),
            ));
        }
        Ok(())
    }
}

/// The app named in a path, as the document describes it (the handlers
/// check it with [`app_name`]).
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct AppPath {
    /// The app's name: its spec file's, a DNS label of at most 40 characters.
    #[param(pattern = r"^[a-z]([-a-z0-9]{0,38}[a-z0-9])?$", max_length = 40)]
    pub name: String,
}

/// An app and an ask of its rollout, as the document describes them.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct RolloutPath {
    /// The app's name.
    #[param(pattern = r"^[a-z]([-a-z0-9]{0,38}[a-z0-9])?$", max_length = 40)]
    pub name: String,
    /// `pause`, `resume`, `promote` or `abort`.
    #[param(pattern = "^(pause|resume|promote|abort)$")]
    pub action: String,
}

/// An app's name from the path, checked as spec file names are: 400 for one
/// no app can have.
pub fn app_name(name: &str) -> Result<&str, ApiError> {
    ccd_spec::app_name(name)
        .map(|()| name)
        .map_err(|e| ApiError::bad_request(format!("app name {e}")))
}

/// The query string, decoded into `T`; 400 naming the parameter otherwise.
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        serde_urlencoded::from_str(query)
            .map(Query)
            .map_err(|e| ApiError::bad_request(format!("query string: {e}")))
    }
}
