//! The front door every request passes before any handler. The local cloud
//! runs commands as its user, so only its own clients may call it:
//! - `Host` must name this server (a loopback name or the listen address,
//!   with its port or none: Google's SDK sends the host alone): a page that
//!   rebinds its DNS name to 127.0.0.1 still sends its own name;
//! - an `Origin`, which browsers send on cross-site requests, must be ours;
//! - every call but the metadata server's carries `Authorization: Bearer
//!   TOKEN` (the data folder's `token` file);
//! - a body is JSON (`Content-Type: application/json`): a page can send
//!   text/plain, form or multipart bodies without asking, never JSON.
//!
//! The metadata server takes no token (a VM's agent has none) and keeps
//! Google's rules instead: `Metadata-Flavor: Google` on every request, and
//! no `X-Forwarded-For`, which Google's metadata server refuses as the mark
//! of a proxied request ("View and query VM metadata",
//! https://cloud.google.com/compute/docs/metadata/querying-metadata;
//! 403 for requests that fail its security checks,
//! https://cloud.google.com/compute/docs/troubleshooting/troubleshoot-metadata-server).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::body::HttpBody as _;
use axum::extract::{Request, State};
use axum::http::header::{AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, HOST, ORIGIN};
use axum::http::uri::Authority;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;

/// Names the metadata server also answers to on a VM.
const METADATA_NAMES: [&str; 2] = ["metadata.google.internal", "metadata"];

#[derive(Debug)]
pub struct Guard {
    token: String,
    file: Option<PathBuf>,
    /// Host names (lower case, IPv6 in brackets) that mean this server.
    hosts: Vec<String>,
    port: u16,
}

impl Guard {
    pub fn new(token: String, file: Option<PathBuf>, addr: SocketAddr) -> Self {
        let mut hosts: Vec<String> = ["127.0.0.1", "localhost", "[::1]"]
            .map(str::to_owned)
            .to_vec();
        let listen = match addr {
            SocketAddr::V4(a) => a.ip().to_string(),
            SocketAddr::V6(a) => format!("[{}]", a.ip()),
        };
        if !hosts.contains(&listen) {
            hosts.push(listen);
        }
        Guard {
            token,
            file,
            hosts,
            port: addr.port(),
        }
    }

    /// Why `request` may not pass, as the answer to send; `None` lets it through.
    fn refusal(&self, request: &Request) -> Option<Response> {
        let path = request.uri().path();
        let metadata = is_metadata(path);
        let headers = request.headers();
        if !self.host_allowed(request, metadata) {
            let host = request
                .headers()
                .get(HOST)
                .and_then(|h| h.to_str().ok())
                .or(request.uri().authority().map(Authority::as_str))
                .unwrap_or("none");
            return Some(forbidden(&format!(
                "the Host {host:?} does not name this local cloud (127.0.0.1, localhost or [::1] with port {})",
                self.port
            )));
        }
        if let Some(origin) = one(headers, ORIGIN.as_str()) {
            let ours = origin
                .to_str()
                .ok()
                .and_then(|o| o.strip_prefix("http://"))
                .is_some_and(|a| self.origin_allowed(a));
            if !ours {
                return Some(forbidden(
                    "cross-origin requests are refused: the local cloud runs commands as its user",
                ));
            }
        }
        if metadata {
            if headers.contains_key("x-forwarded-for") {
                return Some(metadata_refusal(
                    "Requests with an X-Forwarded-For header are refused: the metadata server answers its instances only\n",
                ));
            }
            if one(headers, "metadata-flavor").and_then(|v| v.to_str().ok()) != Some("Google") {
                return Some(metadata_refusal(
                    "Missing required header \"Metadata-Flavor\": \"Google\"\n",
                ));
            }
        } else if let Some(answer) = self.unauthenticated(headers) {
            return Some(answer);
        }
        if has_body(request) && !json(headers) {
            let got = headers
                .get(CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("none");
            return Some(
                ApiError::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "badContent",
                    format!(
                        "a request body must be JSON with Content-Type: application/json (got {got})"
                    ),
                )
                .into_response(),
            );
        }
        None
    }

    fn host_allowed(&self, request: &Request, metadata: bool) -> bool {
        let hosts: Vec<&HeaderValue> = request.headers().get_all(HOST).iter().collect();
        match (hosts.as_slice(), request.uri().authority()) {
            // HTTP/1.1 sends Host; HTTP/2 the URI's authority (and maybe Host as well).
            ([], Some(a)) => self.authority_allowed(a.as_str(), metadata),
            ([host], uri) => {
                host.to_str()
                    .is_ok_and(|h| self.authority_allowed(h, metadata))
                    && uri.is_none_or(|a| self.authority_allowed(a.as_str(), metadata))
            }
            _ => false,
        }
    }

    /// A Host naming this server. Google's SDK sends the host without the
    /// port (gax's `host::header`), so no port passes too: a browser always
    /// sends the port it connected to unless that is 80.
    fn authority_allowed(&self, text: &str, metadata: bool) -> bool {
        let Some((host, port)) = split(text) else {
            return false;
        };
        if metadata && METADATA_NAMES.contains(&host.as_str()) {
            return true;
        }
        port.is_none_or(|p| p == self.port) && self.hosts.contains(&host)
    }

    /// An origin (`http://` taken off) that is this server's own: the port
    /// is part of it (none means 80).
    fn origin_allowed(&self, text: &str) -> bool {
        split(text).is_some_and(|(host, port)| {
            port.unwrap_or(80) == self.port && self.hosts.contains(&host)
        })
    }

    /// The 401 for a request without this server's token.
    fn unauthenticated(&self, headers: &HeaderMap) -> Option<Response> {
        let given = one(headers, AUTHORIZATION.as_str())
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim());
        let (reason, what) = match given {
            Some(token) if same(token.as_bytes(), self.token.as_bytes()) => return None,
            Some(_) => ("authError", "Invalid bearer token"),
            None => ("required", "Missing bearer token"),
        };
        let from = match &self.file {
            Some(file) => format!("the token in {}", file.display()),
            None => "the token the local cloud printed when it started (`token: ...`)".to_owned(),
        };
        let message = format!(
            "{what}: the local cloud's API takes `Authorization: Bearer TOKEN` with {from}"
        );
        let mut response = ApiError::new(StatusCode::UNAUTHORIZED, reason, message).into_response();
        response.headers_mut().insert(
            "www-authenticate",
            HeaderValue::from_static("Bearer realm=\"ccd local cloud\""),
        );
        Some(response)
    }
}

/// The middleware: `axum::middleware::from_fn_with_state(guard, check)`.
pub async fn check(State(guard): State<Arc<Guard>>, request: Request, next: Next) -> Response {
    match guard.refusal(&request) {
        None => next.run(request).await,
        Some(answer) => {
            tracing::info!(
                method = %request.method(),
                path = request.uri().path(),
                status = answer.status().as_u16(),
                "request refused"
            );
            answer
        }
    }
}

/// `/computeMetadata/...` or `/instances/ZONE/NAME/computeMetadata/...`
/// (`GCE_METADATA_HOST` names the instance), as `metadata::router` routes.
fn is_metadata(path: &str) -> bool {
    if path.starts_with("/computeMetadata/") {
        return true;
    }
    let mut segments = path.split('/');
    matches!(
        (
            segments.next(),
            segments.next(),
            segments.next(),
            segments.next(),
            segments.next()
        ),
        (
            Some(""),
            Some("instances"),
            Some(_),
            Some(_),
            Some("computeMetadata")
        )
    )
}

/// An authority's host in lower case (IPv6 in brackets) and port.
fn split(text: &str) -> Option<(String, Option<u16>)> {
    let authority = text.parse::<Authority>().ok()?;
    if authority.as_str().contains('@') {
        return None;
    }
    Some((authority.host().to_ascii_lowercase(), authority.port_u16()))
}

/// The header's only value; `None` when it is absent or repeated.
fn one<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a HeaderValue> {
    let mut values = headers.get_all(name).iter();
    match (values.next(), values.next()) {
        (Some(v), None) => Some(v),
        _ => None,
    }
}

fn has_body(request: &Request) -> bool {
    let headers = request.headers();
    match headers.get(CONTENT_LENGTH) {
        Some(length) => length.as_bytes() != b"0",
        None => headers.contains_key("transfer-encoding") || !request.body().is_end_stream(),
    }
}

/// `application/json`, parameters (`; charset=utf-8`) allowed.
fn json(headers: &HeaderMap) -> bool {
    one(headers, CONTENT_TYPE.as_str())
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or_default().trim())
        .is_some_and(|media| media.eq_ignore_ascii_case("application/json"))
}

/// Equal, in time that does not depend on where they differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

fn forbidden(message: &str) -> Response {
    ApiError::new(StatusCode::FORBIDDEN, "forbidden", message).into_response()
}

/// The metadata server answers in text, as Google's does.
fn metadata_refusal(text: &'static str) -> Response {
    (StatusCode::FORBIDDEN, text).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_paths_are_told_apart_as_the_router_routes_them() {
        for path in [
            "/computeMetadata/v1/instance/id",
            "/instances/europe-west1-b/web-1/computeMetadata/v1/instance/id",
        ] {
            assert!(is_metadata(path), "{path}");
        }
        for path in [
            "/compute/v1/projects/p/zones/z/instances",
            "/instances/z/computeMetadata/v1/",
            "//computeMetadata/v1/",
            "/admin/v1/status",
        ] {
            assert!(!is_metadata(path), "{path}");
        }
    }

    #[test]
    fn hosts_name_this_server_with_its_port() {
        let g = Guard::new("t".into(), None, SocketAddr::from(([127, 0, 0, 1], 4000)));
        for ok in [
            "127.0.0.1:4000",
            "LOCALHOST:4000",
            "[::1]:4000",
            "127.0.0.1",
        ] {
            assert!(g.authority_allowed(ok, false), "{ok}");
        }
        for bad in [
            "127.0.0.1:4001",
            "evil.example:4000",
            "evil.example",
            "user@127.0.0.1:4000",
            "metadata.google.internal",
            "",
        ] {
            assert!(!g.authority_allowed(bad, false), "{bad}");
        }
        assert!(g.authority_allowed("metadata.google.internal", true));
        assert!(g.authority_allowed("metadata:80", true));
        assert!(g.origin_allowed("localhost:4000"));
        assert!(!g.origin_allowed("localhost") && !g.origin_allowed("evil.example:4000"));
    }

    #[test]
    fn json_allows_parameters_only() {
        let mut h = HeaderMap::new();
        for (value, ok) in [
            ("application/json", true),
            ("Application/JSON; charset=utf-8", true),
            ("text/plain", false),
            ("application/jsonp", false),
            ("application/x-www-form-urlencoded", false),
        ] {
            h.insert(CONTENT_TYPE, HeaderValue::from_static(value));
            assert_eq!(json(&h), ok, "{value}");
        }
        assert!(same(b"abc", b"abc") && !same(b"abc", b"abd") && !same(b"abc", b"ab"));
    }
}
