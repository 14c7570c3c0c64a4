//! Test fixtures: tiny real backends, fast health checks, polling helpers.
// Each test binary uses a different subset; fixtures fail loudly, as the tests do.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use ccd_lb::{
    BackendConfig, BackendService, BackendServiceConfig, HealthCheck, HealthCheckProtocol,
    HealthState, UpstreamNetwork,
};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// A backend answering its own name; `/healthz` follows `healthy`; `/slow/<ms>` answers after
/// sleeping; `/echo` answers the request body; `/big/<bytes>` answers that many bytes. Echoes
/// the forwarding headers it received as `x-seen-*` response headers.
pub struct TestBackend {
    pub name: String,
    pub addr: SocketAddr,
    pub healthy: Arc<AtomicBool>,
    pub connections: Arc<AtomicUsize>,
    server: JoinHandle<()>,
}

impl Drop for TestBackend {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl TestBackend {
    pub async fn start(name: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let healthy = Arc::new(AtomicBool::new(true));
        let connections = Arc::new(AtomicUsize::new(0));
        let server = tokio::spawn(serve(
            listener,
            name.to_owned(),
            Arc::clone(&healthy),
            Arc::clone(&connections),
        ));
        Self {
            name: name.to_owned(),
            addr,
            healthy,
            connections,
            server,
        }
    }

    pub fn set_healthy(&self, healthy: bool) {
        self.healthy.store(healthy, Ordering::SeqCst);
    }

    pub fn config(&self) -> BackendConfig {
        BackendConfig::new(self.name.clone(), self.addr)
    }
}

async fn serve(
    listener: TcpListener,
    name: String,
    healthy: Arc<AtomicBool>,
    connections: Arc<AtomicUsize>,
) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        connections.fetch_add(1, Ordering::SeqCst);
        let name = name.clone();
        let healthy = Arc::clone(&healthy);
        tokio::spawn(async move {
            let service =
                service_fn(move |request| answer(name.clone(), Arc::clone(&healthy), request));
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn answer(
    name: String,
    healthy: Arc<AtomicBool>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = request.uri().path().to_owned();
    if path == "/healthz" {
        let status = if healthy.load(Ordering::SeqCst) {
            StatusCode::OK
        } else {
            StatusCode::INTERNAL_SERVER_ERROR
        };
        let mut response = Response::new(Full::new(Bytes::from(name)));
        *response.status_mut() = status;
        return Ok(response);
    }
    if path == "/echo" {
        let framing = match request.headers().get("transfer-encoding") {
            Some(encoding) => encoding.to_str().unwrap().to_owned(),
            None => "content-length".to_owned(),
        };
        let body = request.into_body().collect().await.unwrap().to_bytes();
        let response = Response::builder().header("x-seen-framing", framing);
        return Ok(response.body(Full::new(body)).unwrap());
    }
    if let Some(size) = path
        .strip_prefix("/big/")
        .and_then(|size| size.parse().ok())
    {
        return Ok(Response::new(Full::new(Bytes::from(vec![b'x'; size]))));
    }
    if let Some(ms) = path.strip_prefix("/slow/").and_then(|ms| ms.parse().ok()) {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    let mut response = Response::builder().header("x-backend", name.as_str());
    for (seen, header) in [
        ("x-seen-xff", "x-forwarded-for"),
        ("x-seen-proto", "x-forwarded-proto"),
        ("x-seen-via", "via"),
        ("x-seen-host", "host"),
        ("x-seen-connection-hop", "x-hop"),
    ] {
        if let Some(value) = request.headers().get(header) {
            response = response.header(seen, value);
        }
    }
    Ok(response.body(Full::new(Bytes::from(name))).unwrap())
}

/// A fast HTTP health check on `/healthz`, so that tests take fractions of a second.
pub fn fast_health_check() -> HealthCheck {
    HealthCheck {
        protocol: HealthCheckProtocol::Http {
            path: "/healthz".to_owned(),
            host: None,
        },
        port: None,
        check_interval: Duration::from_millis(100),
        timeout: Duration::from_millis(100),
        healthy_threshold: 1,
        unhealthy_threshold: 2,
    }
}

pub fn service_config(name: &str, backends: &[&TestBackend]) -> BackendServiceConfig {
    BackendServiceConfig {
        backends: backends.iter().map(|b| b.config()).collect(),
        health_check: fast_health_check(),
        ..BackendServiceConfig::new(name)
    }
}

pub fn start_service(name: &str, backends: &[&TestBackend]) -> BackendService {
    BackendService::new(service_config(name, backends), UpstreamNetwork::default()).unwrap()
}

/// Polls `condition` every 20 ms for up to 10 s.
pub async fn eventually<F, Fut>(what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    for _ in 0..500 {
        if condition().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting until {what}");
}

pub async fn wait_for_health(service: &BackendService, id: &str, state: HealthState) {
    eventually(&format!("{id} is {state:?}"), || async {
        service
            .health()
            .iter()
            .any(|health| health.id == id && health.state == state)
    })
    .await;
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// GETs `url` and returns the status and the body (the backend's name on success).
pub async fn get(client: &reqwest::Client, url: &str) -> (StatusCode, String) {
    let response = client.get(url).send().await.unwrap();
    let status = StatusCode::from_u16(response.status().as_u16()).unwrap();
    (status, response.text().await.unwrap())
}

pub fn localhost() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// A request body of unknown length, sent in chunks: HTTP/1.1 frames it chunked.
pub struct ChunkedBody {
    chunks: std::collections::VecDeque<Bytes>,
}

impl ChunkedBody {
    pub fn new(data: &[u8], chunk_size: usize) -> Self {
        Self {
            chunks: data
                .chunks(chunk_size)
                .map(Bytes::copy_from_slice)
                .collect(),
        }
    }
}

impl http_body::Body for ChunkedBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Infallible>>> {
        std::task::Poll::Ready(
            self.chunks
                .pop_front()
                .map(|chunk| Ok(http_body::Frame::data(chunk))),
        )
    }
}
