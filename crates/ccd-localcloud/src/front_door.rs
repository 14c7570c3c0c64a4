//! The local cloud's whole HTTP surface without a socket, for the fuzz
//! targets: the same router and guard as [`LocalCloud`](crate::LocalCloud)
//! serves, over an in-memory store, with none of the loops that start
//! processes or listeners, so whatever a request declares, nothing runs.

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderValue, Method, Request, Uri};
use tower::ServiceExt as _;

use crate::{Error, cloud, guard, iam, runtime, store, token};

/// See the module's documentation.
#[derive(Debug, Clone)]
pub struct FrontDoor {
    router: axum::Router,
    token: String,
    addr: SocketAddr,
}

impl FrontDoor {
    /// As if listening on `127.0.0.1:8080`. Call inside a Tokio runtime.
    pub fn new() -> Result<Self, Error> {
        let addr = SocketAddr::from(([127, 0, 0, 1], 8080));
        let token = token::fresh()?;
        let store = store::Store::in_memory();
        let cloud = cloud::Cloud::new(store, format!("http://{addr}/compute/v1/"), false);
        let iam = iam::Iam::new(cloud.store.clone(), None);
        let instances = runtime::instances::Instances::new(None, std::env::temp_dir(), None);
        let guard = guard::Guard::new(token.clone(), None, addr);
        Ok(FrontDoor {
            router: crate::router(cloud, iam, instances, guard),
            token,
            addr,
        })
    }

    /// The bearer token this front door accepts.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// The address requests should name in `Host`.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Answers one request, as from a client on `127.0.0.1`: its status
    /// code, or `None` when the parts do not make an HTTP request (a method,
    /// URI or header value HTTP cannot carry: a server never sees those).
    pub async fn call(
        &self,
        method: &[u8],
        uri: &[u8],
        headers: &[(&str, &[u8])],
        body: Vec<u8>,
    ) -> Option<u16> {
        let mut request = Request::builder()
            .method(Method::from_bytes(method).ok()?)
            .uri(Uri::try_from(uri).ok()?);
        for (name, value) in headers {
            request = request.header(*name, HeaderValue::from_bytes(value).ok()?);
        }
        let mut request = request.body(Body::from(body)).ok()?;
        let peer = SocketAddr::from(([127, 0, 0, 1], 40000));
        request.extensions_mut().insert(ConnectInfo(peer));
        let response = match self.router.clone().oneshot(request).await {
            Ok(response) => response,
            Err(never) => match never {},
        };
        Some(response.status().as_u16())
    }
}
