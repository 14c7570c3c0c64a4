//! The dashboard's login, as Jupyter's: the process that serves the API
//! prints a URL carrying a one-time login token; opening it exchanges the
//! token for a session cookie (HttpOnly, SameSite=Strict), and the token is
//! spent. A request authenticated by the cookie that changes something
//! must also carry the session's CSRF token in `X-CSRF-Token` (the page
//! reads it from `GET /v1/session`): a cookie alone, sent by another site's
//! form, changes nothing. Sessions live in memory: a restart asks for a new
//! login URL.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use crate::tokens::{Caller, Scope};

/// The session cookie's name.
pub const COOKIE: &str = "ccd_session";
/// The header a cookie-authenticated change carries.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// How long a login URL may wait to be opened.
const LOGIN_TTL: Duration = Duration::from_secs(24 * 3600);
/// How long a session lasts.
const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);

#[derive(Debug, Clone)]
pub struct Session {
    pub caller: Caller,
    pub csrf: String,
    expires: Instant,
}

#[derive(Debug, Default)]
pub struct Sessions {
    /// One-time login tokens by their SHA-256.
    logins: Mutex<HashMap<String, (Caller, Instant)>>,
    /// Sessions by the SHA-256 of their cookie.
    sessions: Mutex<HashMap<String, Session>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn random() -> Option<String> {
    ccd_services::password::generate().ok()
}

impl Sessions {
    /// A one-time login token for a session of `scope` on every app.
    pub fn login_token(&self, scope: Scope) -> Option<String> {
        let token = random()?;
        let caller = Caller {
            id: "dashboard".to_owned(),
            scope,
            apps: Vec::new(),
        };
        lock(&self.logins).insert(
            ccd_services::password::sha256_hex(&token),
            (caller, ccd_clock::now() + LOGIN_TTL),
        );
        Some(token)
    }

    /// Spends a login token: the new session's cookie value, or `None` for
    /// a token that is unknown, spent or expired.
    pub fn log_in(&self, token: &str) -> Option<String> {
        let (caller, expires) =
            lock(&self.logins).remove(&ccd_services::password::sha256_hex(token))?;
        if expires < ccd_clock::now() {
            return None;
        }
        let (cookie, csrf) = (random()?, random()?);
        let mut sessions = lock(&self.sessions);
        let now = ccd_clock::now();
        sessions.retain(|_, s| s.expires > now);
        sessions.insert(
            ccd_services::password::sha256_hex(&cookie),
            Session {
                caller,
                csrf,
                expires: now + SESSION_TTL,
            },
        );
        Some(cookie)
    }

    /// The session a cookie value opens, if it is one and has not expired.
    pub fn session(&self, cookie: &str) -> Option<Session> {
        let sessions = lock(&self.sessions);
        let s = sessions.get(&ccd_services::password::sha256_hex(cookie))?;
        (s.expires > ccd_clock::now()).then(|| s.clone())
    }
}

/// The value of `name` in a `Cookie` header.
pub fn cookie<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header
        .split(';')
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_login_token_opens_one_session_once() {
        let s = Sessions::default();
        let token = s.login_token(Scope::Admin).unwrap();
        let cookie = s.log_in(&token).unwrap();
        assert!(s.log_in(&token).is_none(), "spent");
        assert!(s.log_in("guess").is_none());
        let session = s.session(&cookie).unwrap();
        assert_eq!(session.caller.scope, Scope::Admin);
        assert!(!session.csrf.is_empty() && session.csrf != cookie);
        assert!(s.session("other").is_none());
        assert_eq!(cookie_of("a=1; ccd_session=xyz; b=2"), Some("xyz"));
    }

    fn cookie_of(h: &str) -> Option<&str> {
        cookie(h, COOKIE)
    }
}
