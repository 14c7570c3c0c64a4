//! Redirecting frontends (GCE's URL map `defaultUrlRedirect`): a listener that answers every
//! request with a redirect and proxies nothing, as the port-80 half of an HTTP-to-HTTPS
//! redirect does.
//!
//! A redirect needs no backend, no upstream pool and no worker threads of its own: its
//! connections run as tasks on the caller's Tokio runtime.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::uri::Authority;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::error::LbError;
use crate::frontend::FrontendConfig;
use crate::tls::{self, CertificatePem, CertificateStore};

/// How long a client may take to complete the TLS handshake or send request headers.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);

/// The status of a redirect (GCE's `redirectResponseCode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RedirectCode {
    /// 301, GCE's default (`MOVED_PERMANENTLY_DEFAULT`).
    #[default]
    MovedPermanently,
    /// 302 (`FOUND`).
    Found,
    /// 303 (`SEE_OTHER`).
    SeeOther,
    /// 307 (`TEMPORARY_REDIRECT`): the client keeps the method.
    TemporaryRedirect,
    /// 308 (`PERMANENT_REDIRECT`): the client keeps the method.
    PermanentRedirect,
}

impl RedirectCode {
    /// The HTTP status sent.
    pub fn status(self) -> StatusCode {
        match self {
            Self::MovedPermanently => StatusCode::MOVED_PERMANENTLY,
            Self::Found => StatusCode::FOUND,
            Self::SeeOther => StatusCode::SEE_OTHER,
            Self::TemporaryRedirect => StatusCode::TEMPORARY_REDIRECT,
            Self::PermanentRedirect => StatusCode::PERMANENT_REDIRECT,
        }
    }
}

/// Where a redirect sends the client (GCE's `HttpRedirectAction`): the request's URL with
/// some parts replaced.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UrlRedirect {
    /// `https` in the Location whatever the request's scheme.
    pub https_redirect: bool,
    /// Host (and port, if any) instead of the request's.
    pub host_redirect: Option<String>,
    /// Path instead of the request's.
    pub path_redirect: Option<String>,
    /// Drops the request's query.
    pub strip_query: bool,
    /// The status sent.
    pub code: RedirectCode,
    /// With `https_redirect` and the request's host: the port the Location names, where the
    /// HTTPS listener really is. `None` (or 443) names none, as GCE does.
    pub https_port: Option<u16>,
}

impl UrlRedirect {
    /// The Location for a request to `host` (authority or `Host` header, port allowed; `None`
    /// when the client sent neither) with `path_and_query`, received over TLS if `tls`.
    /// `None` when the host is not a valid authority.
    pub fn location(&self, host: Option<&str>, path_and_query: &str, tls: bool) -> Option<String> {
        let scheme = if self.https_redirect || tls {
            "https"
        } else {
            "http"
        };
        let host = match (&self.host_redirect, host) {
            (Some(redirect), _) => redirect.clone(),
            (None, Some(host)) => {
                let authority: Authority = host.parse().ok()?;
                match (self.https_redirect && !tls, self.https_port) {
                    // The port the client used was the plaintext listener's.
                    (true, Some(port)) if port != 443 => format!("{}:{port}", authority.host()),
                    (true, _) => authority.host().to_owned(),
                    (false, _) => authority.as_str().to_owned(),
                }
            }
            (None, None) => return None,
        };
        let (path, query) = match path_and_query.split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (path_and_query, None),
        };
        let path = match (&self.path_redirect, path) {
            (Some(redirect), _) => redirect.as_str(),
            (None, "") => "/",
            (None, path) => path,
        };
        let mut location = format!("{scheme}://{host}{path}");
        if let Some(query) = query.filter(|_| !self.strip_query) {
            location.push('?');
            location.push_str(query);
        }
        Some(location)
    }
}

/// A running redirecting frontend. Dropping it closes the listener and every connection at
/// once; [`RedirectFrontend::shutdown`] does so gracefully.
#[derive(Debug)]
pub struct RedirectFrontend {
    name: String,
    local_addr: SocketAddr,
    redirect: Arc<ArcSwap<UrlRedirect>>,
    certificates: Option<Arc<CertificateStore>>,
    connections: TaskTracker,
    /// Stops accepting and asks connections to finish; a child of `abort`.
    drain: CancellationToken,
    abort: CancellationToken,
}

impl RedirectFrontend {
    /// Starts listening where `config` says and answering with `redirect`. `config.workers`
    /// is not used: connections run on the current Tokio runtime.
    pub async fn bind(config: FrontendConfig, redirect: UrlRedirect) -> Result<Self, LbError> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| LbError::NoRuntime {
            task: "redirect frontend",
        })?;
        let certificates = match &config.tls {
            Some(certificates) => Some(Arc::new(CertificateStore::new(certificates)?)),
            None => None,
        };
        let acceptor = match &certificates {
            Some(store) => Some(TlsAcceptor::from(tls::server_config(Arc::clone(store))?)),
            None => None,
        };
        let listener = TcpListener::bind(config.listen)
            .await
            .map_err(|source| LbError::Bind {
                addr: config.listen,
                source,
            })?;
        let local_addr = listener.local_addr().map_err(|source| LbError::Bind {
            addr: config.listen,
            source,
        })?;
        let abort = CancellationToken::new();
        let frontend = Self {
            name: config.name,
            local_addr,
            redirect: Arc::new(ArcSwap::from_pointee(redirect)),
            certificates,
            connections: TaskTracker::new(),
            drain: abort.child_token(),
            abort,
        };
        let serving = Serving {
            redirect: Arc::clone(&frontend.redirect),
            tls: acceptor,
            http: http_builder(),
            connections: frontend.connections.clone(),
            drain: frontend.drain.clone(),
            abort: frontend.abort.clone(),
            local_addr,
        };
        // Tracked, so that shutdown returns once the listener is closed too.
        frontend
            .connections
            .spawn_on(serving.accept(listener), &runtime);
        tracing::info!(frontend = %frontend.name, address = %local_addr,
            tls = frontend.certificates.is_some(), "redirecting frontend listening");
        Ok(frontend)
    }

    /// The address the frontend listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Answers new requests with `redirect`.
    pub fn set_redirect(&self, redirect: UrlRedirect) {
        self.redirect.store(Arc::new(redirect));
    }

    /// Serves `certificates` to new TLS handshakes. Fails on a plaintext frontend.
    pub fn set_certificates(&self, certificates: &[CertificatePem]) -> Result<(), LbError> {
        match &self.certificates {
            Some(store) => store.replace(certificates),
            None => Err(LbError::TlsMismatch {
                frontend: self.name.clone(),
                reason: "a plaintext frontend has no certificates",
            }),
        }
    }

    /// Stops accepting, lets requests in flight finish for up to `deadline`, then closes the
    /// connections that remain.
    pub async fn shutdown(self, deadline: Duration) {
        self.drain.cancel();
        self.connections.close();
        if tokio::time::timeout(deadline, self.connections.wait())
            .await
            .is_err()
        {
            tracing::warn!(frontend = %self.name, "shutdown deadline reached; closing connections");
        }
        self.abort.cancel();
        tracing::info!(frontend = %self.name, "redirecting frontend stopped");
    }
}

impl Drop for RedirectFrontend {
    fn drop(&mut self) {
        self.abort.cancel();
        self.connections.close();
    }
}

fn http_builder() -> auto::Builder<TokioExecutor> {
    let mut http = auto::Builder::new(TokioExecutor::new());
    http.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(CLIENT_TIMEOUT);
    http.http2().timer(TokioTimer::new());
    http
}

/// What the accept loop and its connections share.
#[derive(Clone)]
struct Serving {
    redirect: Arc<ArcSwap<UrlRedirect>>,
    tls: Option<TlsAcceptor>,
    http: auto::Builder<TokioExecutor>,
    connections: TaskTracker,
    drain: CancellationToken,
    abort: CancellationToken,
    local_addr: SocketAddr,
}

impl Serving {
    async fn accept(self, listener: TcpListener) {
        loop {
            let accepted = tokio::select! {
                () = self.drain.cancelled() => return,
                accepted = listener.accept() => accepted,
            };
            match accepted {
                Ok((stream, peer)) => {
                    let serving = self.clone();
                    self.connections.spawn(serving.connection(stream, peer));
                }
                Err(error) => {
                    tracing::warn!(address = %self.local_addr, %error, "accept failed");
                    // Out of file descriptors, say: do not spin.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }

    async fn connection(self, stream: TcpStream, peer: SocketAddr) {
        let Some(acceptor) = &self.tls else {
            self.serve(TokioIo::new(stream), false).await;
            return;
        };
        let handshake = tokio::select! {
            () = self.drain.cancelled() => return,
            handshake = tokio::time::timeout(CLIENT_TIMEOUT, acceptor.accept(stream)) => handshake,
        };
        match handshake {
            Ok(Ok(stream)) => self.serve(TokioIo::new(stream), true).await,
            Ok(Err(error)) => tracing::debug!(%peer, %error, "TLS handshake failed"),
            Err(_elapsed) => tracing::debug!(%peer, "TLS handshake timed out"),
        }
    }

    async fn serve<I>(&self, io: I, tls: bool)
    where
        I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    {
        let redirect = Arc::clone(&self.redirect);
        let fallback_host = self.local_addr.to_string();
        let service = service_fn(move |request: Request<hyper::body::Incoming>| {
            let response = respond(&redirect.load(), &request, tls, &fallback_host);
            async move { Ok::<_, Infallible>(response) }
        });
        let connection = self.http.serve_connection(io, service);
        tokio::pin!(connection);
        let result = tokio::select! {
            biased;
            result = connection.as_mut() => result,
            () = self.drain.cancelled() => {
                connection.as_mut().graceful_shutdown();
                tokio::select! {
                    result = connection.as_mut() => result,
                    () = self.abort.cancelled() => Ok(()),
                }
            }
        };
        if let Err(error) = result {
            tracing::debug!(%error, "client connection ended with an error");
        }
    }
}

/// The redirect for one request; 400 when its host is not a valid authority.
/// `fallback_host` stands in for a request without a host (HTTP/1.0 without `Host`).
pub(crate) fn respond<B>(
    redirect: &UrlRedirect,
    request: &Request<B>,
    tls: bool,
    fallback_host: &str,
) -> Response<Full<Bytes>> {
    let host = request
        .uri()
        .authority()
        .map(Authority::as_str)
        .or_else(|| {
            request
                .headers()
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
        })
        .unwrap_or(fallback_host);
    let path_and_query = request.uri().path_and_query().map_or("/", |p| p.as_str());
    let location = redirect
        .location(Some(host), path_and_query, tls)
        .and_then(|l| HeaderValue::from_str(&l).ok());
    let mut response = Response::new(Full::new(Bytes::new()));
    match location {
        Some(location) => {
            *response.status_mut() = redirect.code.status();
            response.headers_mut().insert(header::LOCATION, location);
        }
        None => *response.status_mut() = StatusCode::BAD_REQUEST,
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn https(code: RedirectCode) -> UrlRedirect {
        UrlRedirect {
            https_redirect: true,
            code,
            ..UrlRedirect::default()
        }
    }

    fn location(redirect: &UrlRedirect, host: &str, target: &str) -> (StatusCode, Option<String>) {
        let request = Request::get(target)
            .header(header::HOST, host)
            .body(())
            .unwrap();
        let response = respond(redirect, &request, false, "127.0.0.1:80");
        let location = response
            .headers()
            .get(header::LOCATION)
            .map(|l| l.to_str().unwrap().to_owned());
        (response.status(), location)
    }

    #[test]
    fn https_redirect_keeps_host_path_and_query_and_drops_the_plaintext_port() {
        let redirect = https(RedirectCode::MovedPermanently);
        assert_eq!(
            location(&redirect, "app.example.com:80", "/a/b?x=1&y=2"),
            (
                StatusCode::MOVED_PERMANENTLY,
                Some("https://app.example.com/a/b?x=1&y=2".to_owned())
            )
        );
        assert_eq!(
            location(&redirect, "app.example.com", "/").1.as_deref(),
            Some("https://app.example.com/")
        );
    }

    #[test]
    fn the_https_port_is_named_unless_it_is_443() {
        let mut redirect = https(RedirectCode::MovedPermanently);
        redirect.https_port = Some(8443);
        assert_eq!(
            location(&redirect, "app.example.com:8080", "/p?q")
                .1
                .as_deref(),
            Some("https://app.example.com:8443/p?q")
        );
        assert_eq!(
            location(&redirect, "[::1]:8080", "/").1.as_deref(),
            Some("https://[::1]:8443/")
        );
        redirect.https_port = Some(443);
        assert_eq!(
            location(&redirect, "app.example.com:8080", "/")
                .1
                .as_deref(),
            Some("https://app.example.com/")
        );
    }

    #[test]
    fn each_code_has_its_status() {
        for (code, status) in [
            (RedirectCode::MovedPermanently, 301),
            (RedirectCode::Found, 302),
            (RedirectCode::SeeOther, 303),
            (RedirectCode::TemporaryRedirect, 307),
            (RedirectCode::PermanentRedirect, 308),
        ] {
            assert_eq!(location(&https(code), "a.com", "/").0.as_u16(), status);
        }
    }

    #[test]
    fn host_and_path_redirects_and_strip_query_replace_their_parts() {
        let redirect = UrlRedirect {
            host_redirect: Some("www.example.com".into()),
            path_redirect: Some("/moved".into()),
            strip_query: true,
            code: RedirectCode::Found,
            ..UrlRedirect::default()
        };
        assert_eq!(
            location(&redirect, "example.com:8080", "/old?x=1"),
            (
                StatusCode::FOUND,
                Some("http://www.example.com/moved".to_owned())
            )
        );
        // Without httpsRedirect the scheme and the port the client used stay.
        let same_scheme = UrlRedirect {
            path_redirect: Some("/moved".into()),
            ..UrlRedirect::default()
        };
        assert_eq!(
            location(&same_scheme, "example.com:8080", "/old?x=1")
                .1
                .as_deref(),
            Some("http://example.com:8080/moved?x=1")
        );
    }

    #[test]
    fn a_malformed_host_is_a_bad_request() {
        let redirect = https(RedirectCode::MovedPermanently);
        assert_eq!(
            location(&redirect, "evil.com/path", "/"),
            (StatusCode::BAD_REQUEST, None)
        );
    }

    #[tokio::test]
    async fn a_listener_answers_every_request_with_the_redirect() {
        let frontend = RedirectFrontend::bind(
            FrontendConfig::http("redirect", "127.0.0.1:0".parse().unwrap()),
            https(RedirectCode::MovedPermanently),
        )
        .await
        .unwrap();
        let addr = frontend.local_addr();
        frontend.set_redirect(UrlRedirect {
            https_port: Some(8443),
            ..https(RedirectCode::MovedPermanently)
        });
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        for method in [reqwest::Method::GET, reqwest::Method::POST] {
            let response = client
                .request(method, format!("http://{addr}/cart?id=7"))
                .body("ignored")
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 301);
            assert_eq!(
                response.headers()[header::LOCATION],
                format!("https://127.0.0.1:8443/cart?id=7")
            );
        }
        frontend.shutdown(Duration::from_secs(1)).await;
        assert!(
            tokio::net::TcpStream::connect(addr).await.is_err(),
            "the listener is closed after shutdown"
        );
    }
}
