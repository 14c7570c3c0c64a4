//! Per-request work of a frontend: route, rewrite headers, dispatch, relay.

use std::convert::Infallible;
use std::net::IpAddr;
use std::sync::Arc;

use arc_swap::ArcSwap;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::uri::PathAndQuery;
use http::{Request, Response, StatusCode, Uri, Version};
use hyper::body::Incoming;

use crate::backend_service::{DispatchError, Dispatched};
use crate::body::ProxyBody;
use crate::request_body::{RETRY_BUFFER_CAP, RequestBody};
use crate::stats::FrontendCounters;
use crate::url_map::Router;

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static VIA_CCD_LB: HeaderValue = HeaderValue::from_static("1.1 ccd-lb");

/// Headers that describe one connection rather than the message (RFC 9110 §7.6.1), plus
/// `Upgrade`, since upgrades are not proxied.
static HOP_BY_HOP: [HeaderName; 9] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// What a frontend needs on the request path.
#[derive(Debug)]
pub(crate) struct Proxy {
    pub(crate) router: ArcSwap<Router>,
    pub(crate) counters: FrontendCounters,
}

/// One client connection: what its requests share, computed once rather than per request.
///
/// Requests clone this per-connection `Arc` rather than shared ones, whose reference counts
/// every worker thread would write to.
#[derive(Debug)]
pub(crate) struct ConnectionContext {
    proxy: Arc<Proxy>,
    ip: IpAddr,
    ip_header: HeaderValue,
    proto: HeaderValue,
}

impl ConnectionContext {
    pub(crate) fn new(proxy: Arc<Proxy>, ip: IpAddr, tls: bool) -> Self {
        let ip_header = HeaderValue::from_str(&ip.to_string())
            .unwrap_or_else(|_| HeaderValue::from_static("unknown"));
        let proto = HeaderValue::from_static(if tls { "https" } else { "http" });
        Self {
            proxy,
            ip,
            ip_header,
            proto,
        }
    }

    pub(crate) async fn handle(
        self: Arc<Self>,
        request: Request<Incoming>,
    ) -> Result<Response<ProxyBody>, Infallible> {
        let proxy = &self.proxy;
        let (service, retry) = {
            let router = proxy.router.load();
            let (service, retry) = router.route(request_host(&request), request.uri().path());
            (service.clone(), retry.cloned())
        };
        let active = ActiveRequest::start(Arc::clone(&self));
        let (parts, body) = request.into_parts();
        // Only a route that retries needs the body kept; others relay it as it comes.
        let body = match &retry {
            None => RequestBody::streamed(body),
            Some(_) => match RequestBody::buffer(body, RETRY_BUFFER_CAP).await {
                Ok(body) => body,
                Err(error) => {
                    tracing::debug!(%error, "client request body failed");
                    return Ok(local_response(
                        StatusCode::BAD_REQUEST,
                        "request body could not be read\n",
                    ));
                }
            },
        };
        let request = upstream_request(Request::from_parts(parts, body), &self);
        let response = match service.dispatch(request, retry.as_deref()).await {
            Ok(Dispatched { response, exchange }) => {
                if response.status().is_server_error() {
                    exchange.backend().count_5xx();
                    proxy.counters.count_5xx();
                }
                let (mut parts, body) = response.into_parts();
                // Our client connection has its own version; hyper frames it.
                parts.version = Version::HTTP_11;
                strip_hop_by_hop(&mut parts.headers);
                parts.headers.append(header::VIA, VIA_CCD_LB.clone());
                Response::from_parts(parts, ProxyBody::relayed(body, exchange, active))
            }
            Err(error) => {
                proxy.counters.count_5xx();
                error_response(service.name(), &error)
            }
        };
        Ok(response)
    }
}

/// A request counted as active on its frontend until dropped (held by the response body).
#[derive(Debug)]
pub(crate) struct ActiveRequest {
    context: Arc<ConnectionContext>,
    shard: usize,
}

impl ActiveRequest {
    fn start(context: Arc<ConnectionContext>) -> Self {
        let shard = context.proxy.counters.start_request();
        Self { context, shard }
    }
}

impl Drop for ActiveRequest {
    fn drop(&mut self) {
        self.context.proxy.counters.end_request(self.shard);
    }
}

fn error_response(service: &str, error: &DispatchError) -> Response<ProxyBody> {
    let (status, text) = match error {
        DispatchError::NoHealthyBackend => {
            tracing::debug!(%service, "no healthy backend");
            (StatusCode::SERVICE_UNAVAILABLE, "no healthy upstream\n")
        }
        DispatchError::Connect { .. } => {
            tracing::warn!(%service, %error, "upstream connect error");
            (StatusCode::BAD_GATEWAY, "upstream connect error\n")
        }
        DispatchError::Upstream { .. } => {
            tracing::warn!(%service, %error, "upstream failed");
            (StatusCode::BAD_GATEWAY, "upstream failed\n")
        }
        DispatchError::Timeout { .. } => {
            tracing::warn!(%service, %error, "upstream timed out");
            (StatusCode::GATEWAY_TIMEOUT, "upstream request timeout\n")
        }
    };
    local_response(status, text)
}

/// A response the load balancer makes itself.
fn local_response(status: StatusCode, text: &'static str) -> Response<ProxyBody> {
    let mut response = Response::new(ProxyBody::local(text));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(header::VIA, VIA_CCD_LB.clone());
    response
}

/// The host a request is for: the URI authority (HTTP/2, absolute-form) or the `Host` header.
fn request_host<B>(request: &Request<B>) -> Option<&str> {
    request.uri().host().or_else(|| {
        request
            .headers()
            .get(header::HOST)
            .and_then(|host| host.to_str().ok())
    })
}

/// Turns a client request into the HTTP/1.1 request for the backend.
fn upstream_request(
    request: Request<RequestBody>,
    client: &ConnectionContext,
) -> Request<RequestBody> {
    let (mut parts, body) = request.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    let headers = &mut parts.headers;

    if let Some(authority) = parts.uri.authority()
        && !headers.contains_key(header::HOST)
        && let Ok(host) = HeaderValue::from_str(authority.as_str())
    {
        headers.insert(header::HOST, host);
    }
    // HTTP/1.1 to an origin server takes origin-form: `/path?query`.
    if parts.uri.scheme().is_some() || parts.uri.authority().is_some() {
        let path = parts
            .uri
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        parts.uri = Uri::from(path);
    }
    parts.version = Version::HTTP_11;

    append_forwarded_for(headers, client);
    headers.insert(X_FORWARDED_PROTO.clone(), client.proto.clone());
    headers.append(header::VIA, VIA_CCD_LB.clone());
    Request::from_parts(parts, body)
}

fn append_forwarded_for(headers: &mut HeaderMap, client: &ConnectionContext) {
    let mut existing = headers.get_all(&X_FORWARDED_FOR).iter().peekable();
    if existing.peek().is_none() {
        headers.insert(X_FORWARDED_FOR.clone(), client.ip_header.clone());
        return;
    }
    let mut joined = Vec::with_capacity(64);
    for value in existing {
        joined.extend_from_slice(value.as_bytes());
        joined.extend_from_slice(b", ");
    }
    joined.extend_from_slice(client.ip.to_string().as_bytes());
    match HeaderValue::from_bytes(&joined) {
        Ok(value) => {
            headers.insert(X_FORWARDED_FOR.clone(), value);
        }
        Err(_) => {
            headers.insert(X_FORWARDED_FOR.clone(), client.ip_header.clone());
        }
    }
}

/// Removes hop-by-hop headers, including those the `Connection` header names.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // Most messages have none: one pass of cheap comparisons beats a hashed removal per name.
    let has_hop_by_hop = headers.keys().any(|name| HOP_BY_HOP.contains(name));
    if !has_hop_by_hop {
        return;
    }
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in &HOP_BY_HOP {
        headers.remove(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_hop_by_hop_and_connection_named_headers() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONNECTION,
            HeaderValue::from_static("close, X-Secret"),
        );
        headers.insert("x-secret", HeaderValue::from_static("1"));
        headers.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        headers.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        strip_hop_by_hop(&mut headers);
        assert_eq!(headers.len(), 1);
        assert!(headers.contains_key(header::CONTENT_TYPE));
    }

    #[tokio::test]
    async fn appends_client_to_forwarded_for() {
        let proxy = Arc::new(Proxy {
            router: ArcSwap::from_pointee(
                Router::new(&crate::UrlMap::new(crate::RouteAction::service(
                    crate::backend_service::tests::idle_service("svc"),
                )))
                .unwrap(),
            ),
            counters: FrontendCounters::default(),
        });
        let client = ConnectionContext::new(proxy, "10.1.2.3".parse().unwrap(), false);
        let mut headers = HeaderMap::new();
        append_forwarded_for(&mut headers, &client);
        assert_eq!(headers[&X_FORWARDED_FOR], "10.1.2.3");

        let mut headers = HeaderMap::new();
        headers.append(&X_FORWARDED_FOR, HeaderValue::from_static("1.1.1.1"));
        headers.append(&X_FORWARDED_FOR, HeaderValue::from_static("2.2.2.2"));
        append_forwarded_for(&mut headers, &client);
        assert_eq!(headers[&X_FORWARDED_FOR], "1.1.1.1, 2.2.2.2, 10.1.2.3");
    }

    #[test]
    fn host_comes_from_authority_or_header() {
        let h2 = Request::get("https://app.example.com/x").body(()).unwrap();
        assert_eq!(request_host(&h2), Some("app.example.com"));
        let h1 = Request::get("/x")
            .header(header::HOST, "app.example.com:8080")
            .body(())
            .unwrap();
        assert_eq!(request_host(&h1), Some("app.example.com:8080"));
    }
}
