//! One probe request: the HTTP client for a target, the URL it asks, and what its answer means.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use reqwest::header::{HOST, HeaderValue};
use reqwest::{StatusCode, Url};

use crate::{ProbeError, ProbeTarget};

/// Body bytes read from an answer before the rest is dropped: enough for any health page, and
/// reading the body lets a keep-alive connection serve the next probe.
const MAX_BODY_BYTES: usize = 64 * 1024;

/// Sent so that app logs can tell probes from users.
const USER_AGENT: &str = concat!("ccd-probe/", env!("CARGO_PKG_VERSION"));

/// Why a probe failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Failure {
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("the app answered {0}")]
    ServerError(StatusCode),
    #[error("{0}")]
    Request(String),
    #[error("not sent: {0} probes are already in flight")]
    TooManyInFlight(usize),
}

/// The client and request for one target; shared by all of its probes.
#[derive(Debug)]
pub(crate) struct ProbeClient {
    client: reqwest::Client,
    url: Url,
    /// An explicit `Host` header, only when the host name cannot go in the URL (see `new`).
    host_header: Option<HeaderValue>,
    timeout: Duration,
}

impl ProbeClient {
    pub(crate) fn new(target: &ProbeTarget) -> Result<Self, ProbeError> {
        let invalid = |field, value: &str, reason: &str| ProbeError::InvalidTarget {
            field,
            value: value.to_owned(),
            reason: reason.to_owned(),
        };
        let base = Url::parse(&target.url).map_err(|e| {
            invalid(
                "url",
                &target.url,
                &format!("{e}; give scheme and address, e.g. http://10.0.0.2:80"),
            )
        })?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(invalid(
                "url",
                &target.url,
                "the scheme must be http or https",
            ));
        }
        if !target.path.starts_with('/') {
            return Err(invalid("path", &target.path, "it must start with '/'"));
        }
        let joined = format!("{}{}", target.url.trim_end_matches('/'), target.path);
        let mut url = Url::parse(&joined)
            .map_err(|e| invalid("path", &target.path, &format!("not a URL path: {e}")))?;

        let mut builder = reqwest::Client::builder()
            // The probe goes straight to the load balancer, whatever HTTP_PROXY says.
            .no_proxy()
            // Keep-alive connections are reused only once an answer was read in full; one that
            // failed, timed out or was cut off is closed by hyper's pool, never handed out again.
            .http1_only()
            .user_agent(USER_AGENT)
            // A redirect is an answer from the app; following it would probe something else.
            .redirect(reqwest::redirect::Policy::none())
            // Availability, not identity: the load balancer's certificate is accepted without
            // verification, since a Google-managed certificate may still be provisioning while
            // it serves, and the local cloud's load balancers present self-signed ones.
            .danger_accept_invalid_certs(true);
        let mut host_header = None;
        if let Some(host) = &target.host {
            let address = base.host_str().and_then(|h| {
                h.trim_start_matches('[')
                    .trim_end_matches(']')
                    .parse::<IpAddr>()
                    .ok()
            });
            let bad_host = |e: String| {
                invalid(
                    "host",
                    host,
                    &format!("{e}; give a host name without port, e.g. app.example.com"),
                )
            };
            // The URL parser would quietly drop a `:port` here; refuse anything but a name.
            let is_name = !host.is_empty()
                && host
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.'));
            if !is_name {
                return Err(bad_host(
                    "use only ASCII letters, digits, '-' and '.'".to_owned(),
                ));
            }
            match address {
                // The load balancer reached by IP: ask for the host name and resolve it to that
                // address, so the name is both the Host header and the TLS server name (SNI).
                Some(ip) => {
                    url.set_host(Some(host))
                        .map_err(|e| bad_host(e.to_string()))?;
                    builder = builder.resolve(host, SocketAddr::new(ip, 0));
                }
                // Reached by name: DNS decides the address; only the Host header changes.
                None => {
                    let value = HeaderValue::from_str(host).map_err(|e| bad_host(e.to_string()))?;
                    host_header = Some(value);
                }
            }
        }
        let client = builder.build().map_err(ProbeError::Client)?;
        Ok(Self {
            client,
            url,
            host_header,
            timeout: target.timeout,
        })
    }

    /// The URL probes ask for, for logs.
    pub(crate) fn url(&self) -> &Url {
        &self.url
    }

    /// One probe: the answer's status, or why there was no acceptable answer.
    pub(crate) async fn probe(&self) -> Result<StatusCode, Failure> {
        match tokio::time::timeout(self.timeout, self.exchange()).await {
            Ok(outcome) => outcome,
            Err(_) => Err(Failure::Timeout(self.timeout)),
        }
    }

    async fn exchange(&self) -> Result<StatusCode, Failure> {
        let mut request = self.client.get(self.url.clone());
        if let Some(host) = &self.host_header {
            request = request.header(HOST, host.clone());
        }
        let mut response = request.send().await.map_err(request_failure)?;
        let status = response.status();
        // The whole answer is part of the probe: a body cut off mid-way is a failed exchange.
        let mut read = 0;
        while let Some(chunk) = response.chunk().await.map_err(request_failure)? {
            read += chunk.len();
            if read > MAX_BODY_BYTES {
                // Dropping the response closes this connection rather than read on.
                break;
            }
        }
        if status.is_server_error() {
            return Err(Failure::ServerError(status));
        }
        Ok(status)
    }
}

/// The error with its causes ("connection refused" is usually two levels down).
fn request_failure(error: reqwest::Error) -> Failure {
    let error = error.without_url();
    let mut text = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    Failure::Request(text)
}
