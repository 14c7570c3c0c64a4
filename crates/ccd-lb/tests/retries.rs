//! A hung backend (accepts connections, never answers) behind a route that retries: its
//! requests go to the healthy backend after the per-try timeout, outlier detection takes it
//! out after its first failure, and a request whose body was too large to keep is not retried.
//! A backend answering 503 is retried elsewhere; one answering 500 is not (`gateway-error`).
// Helpers outside #[test] functions unwrap too: a failed fixture is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use ccd_lb::{
    BackendService, BackendServiceConfig, Frontend, FrontendConfig, HealthCheck,
    HealthCheckProtocol, HealthState, OutlierDetection, RetryCondition, RetryPolicy, RouteAction,
    UpstreamNetwork, UrlMap,
};
use common::*;
use hyper::StatusCode;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// Accepts connections and holds them without reading or answering, like a stopped process
/// whose listen backlog still completes handshakes.
struct HungBackend {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl HungBackend {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((stream, _)) = listener.accept().await {
                held.push(stream);
            }
        });
        Self { addr, task }
    }
}

impl Drop for HungBackend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Answers `/` with 503 and any other path with 500, over keep-alive HTTP/1.1 (requests
/// without bodies only).
async fn failing_backend() -> (SocketAddr, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                while let Ok(n) = stream.read(&mut chunk).await {
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head: Vec<u8> = buf.drain(..end + 4).collect();
                        let status = if head.starts_with(b"GET / ") {
                            "503 Service Unavailable"
                        } else {
                            "500 Internal Server Error"
                        };
                        let answer = format!("HTTP/1.1 {status}\r\ncontent-length: 4\r\n\r\nsick");
                        if stream.write_all(answer.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    (addr, task)
}

/// TCP probes: a hung process still completes handshakes, so it stays healthy.
fn tcp_health_check() -> HealthCheck {
    HealthCheck {
        protocol: HealthCheckProtocol::Tcp,
        ..fast_health_check()
    }
}

/// What ccd asks of Compute for a hung instance, with a per-try timeout short enough for a
/// test: `gateway-error` covers the timeout.
fn retry_policy() -> RetryPolicy {
    RetryPolicy::new(
        [
            RetryCondition::ConnectFailure,
            RetryCondition::GatewayError,
            RetryCondition::RefusedStream,
        ],
        1,
        Some(Duration::from_secs(1)),
    )
}

/// The hung backend first, so that round robin starts with it.
async fn serve(
    hung: &HungBackend,
    good: &TestBackend,
    outlier: Option<OutlierDetection>,
) -> (BackendService, Frontend) {
    let config = BackendServiceConfig {
        backends: vec![ccd_lb::BackendConfig::new("hung", hung.addr), good.config()],
        health_check: tcp_health_check(),
        outlier_detection: outlier,
        ..BackendServiceConfig::new("web")
    };
    let service = BackendService::new(config, UpstreamNetwork::default()).unwrap();
    wait_for_health(&service, "hung", HealthState::Healthy).await;
    wait_for_health(&service, "good", HealthState::Healthy).await;
    let route = RouteAction::service(service.clone()).with_retry_policy(retry_policy());
    let frontend = Frontend::bind(FrontendConfig::http("fr", localhost()), &UrlMap::new(route))
        .await
        .unwrap();
    (service, frontend)
}

fn requests_to(service: &BackendService, id: &str) -> u64 {
    service
        .stats()
        .into_iter()
        .find(|s| s.id == id)
        .map_or(0, |s| s.requests)
}

#[tokio::test]
async fn a_hung_backend_costs_no_request() {
    let hung = HungBackend::start().await;
    let good = TestBackend::start("good").await;
    let (service, frontend) = serve(&hung, &good, None).await;
    let url = format!("http://{}/", frontend.local_addr());
    let client = client();
    for _ in 0..4 {
        assert_eq!(
            get(&client, &url).await,
            (StatusCode::OK, "good".to_owned())
        );
    }
    assert!(
        requests_to(&service, "hung") >= 1,
        "round robin sent some to the hung backend first"
    );
    assert_eq!(frontend.stats().responses_5xx, 0);

    // A small body of unknown length is kept, and sent whole on the retry.
    let body = vec![b'x'; 10_000];
    for _ in 0..2 {
        let response = client
            .post(format!("{url}echo"))
            .body(reqwest::Body::wrap(ChunkedBody::new(&body, 1_000)))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.bytes().await.unwrap(), body.as_slice());
    }
}

#[tokio::test]
async fn outlier_detection_takes_a_hung_backend_out_after_its_first_failure() {
    let hung = HungBackend::start().await;
    let good = TestBackend::start("good").await;
    let outlier = OutlierDetection {
        consecutive_gateway_failure: 1,
        base_ejection_time: Duration::from_secs(300),
        ..OutlierDetection::default()
    };
    let (service, frontend) = serve(&hung, &good, Some(outlier)).await;
    let url = format!("http://{}/", frontend.local_addr());
    let client = client();
    for _ in 0..10 {
        assert_eq!(
            get(&client, &url).await,
            (StatusCode::OK, "good".to_owned())
        );
    }
    assert_eq!(
        requests_to(&service, "hung"),
        1,
        "ejected after its first timeout"
    );
    let health = service.health();
    assert!(
        health.iter().all(|h| h.state == HealthState::Healthy),
        "ejection is not health: {health:?}"
    );
}

#[tokio::test]
async fn a_body_too_large_to_keep_is_not_sent_twice() {
    let hung = HungBackend::start().await;
    let good = TestBackend::start("good").await;
    let (service, frontend) = serve(&hung, &good, None).await;
    let url = format!("http://{}/echo", frontend.local_addr());
    let client = client();
    let body = vec![b'x'; 100_000];
    let mut statuses = Vec::new();
    for _ in 0..4 {
        let response = client.post(&url).body(body.clone()).send().await.unwrap();
        statuses.push(response.status().as_u16());
    }
    let timeouts = statuses.iter().filter(|&&s| s == 504).count() as u64;
    assert!(timeouts >= 1, "{statuses:?}");
    assert_eq!(
        timeouts,
        requests_to(&service, "hung"),
        "every request the hung backend got timed out there: {statuses:?}"
    );
    assert!(
        statuses.iter().all(|&s| s == 200 || s == 504),
        "{statuses:?}"
    );
}

#[tokio::test]
async fn a_503_is_retried_on_another_backend_and_a_500_is_not() {
    let (sick, task) = failing_backend().await;
    let good = TestBackend::start("good").await;
    let config = BackendServiceConfig {
        backends: vec![ccd_lb::BackendConfig::new("sick", sick), good.config()],
        health_check: tcp_health_check(),
        ..BackendServiceConfig::new("web")
    };
    let service = BackendService::new(config, UpstreamNetwork::default()).unwrap();
    wait_for_health(&service, "sick", HealthState::Healthy).await;
    wait_for_health(&service, "good", HealthState::Healthy).await;
    let route = RouteAction::service(service.clone()).with_retry_policy(retry_policy());
    let frontend = Frontend::bind(FrontendConfig::http("fr", localhost()), &UrlMap::new(route))
        .await
        .unwrap();
    let base = format!("http://{}", frontend.local_addr());
    let client = client();
    for _ in 0..4 {
        assert_eq!(
            get(&client, &format!("{base}/")).await,
            (StatusCode::OK, "good".to_owned())
        );
    }
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(get(&client, &format!("{base}/bug")).await.0.as_u16());
    }
    assert!(
        statuses.contains(&500),
        "a 500 is the app's answer: {statuses:?}"
    );
    assert!(
        statuses.iter().all(|&s| s == 200 || s == 500),
        "{statuses:?}"
    );
    task.abort();
}
