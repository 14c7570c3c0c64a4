//! The connection policy (firewall hook) on proxied and probe connections.
// Helpers outside #[test] functions unwrap too: a failed fixture is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use ccd_lb::{
    BackendService, ConnectionPolicy, Frontend, FrontendConfig, HealthState, RouteAction,
    UpstreamNetwork, UrlMap,
};
use common::*;
use hyper::StatusCode;

/// Denies proxied traffic (not probes) to one backend, like a firewall rule that admits
/// health checkers but not the load balancer's front ends.
#[derive(Debug)]
struct DenyProxyTo(&'static str);

impl ConnectionPolicy for DenyProxyTo {
    fn allows(&self, source: IpAddr, backend_id: &str, _backend: SocketAddr) -> bool {
        source != UpstreamNetwork::default().proxy_source || backend_id != self.0
    }
}

#[derive(Debug)]
struct DenyAll;

impl ConnectionPolicy for DenyAll {
    fn allows(&self, _source: IpAddr, _backend_id: &str, _backend: SocketAddr) -> bool {
        false
    }
}

async fn frontend_for(service: &BackendService) -> Frontend {
    Frontend::bind(
        FrontendConfig::http("fr", localhost()),
        &UrlMap::new(RouteAction::service(service.clone())),
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn denied_backend_gets_no_traffic_and_requests_go_elsewhere() {
    let a = TestBackend::start("a").await;
    let blocked = TestBackend::start("blocked").await;
    let network = UpstreamNetwork::with_policy(Arc::new(DenyProxyTo("blocked")));
    let service = BackendService::new(service_config("web", &[&a, &blocked]), network).unwrap();
    wait_for_health(&service, "a", HealthState::Healthy).await;
    wait_for_health(&service, "blocked", HealthState::Healthy).await;
    let frontend = frontend_for(&service).await;
    let served_before = blocked
        .connections
        .load(std::sync::atomic::Ordering::SeqCst);

    let client = client();
    for _ in 0..20 {
        let (status, name) = get(&client, &format!("http://{}/", frontend.local_addr())).await;
        assert_eq!((status, name.as_str()), (StatusCode::OK, "a"));
    }
    let stats = service.stats();
    let blocked_stats = stats.iter().find(|s| s.id == "blocked").unwrap();
    assert!(blocked_stats.denied_connections >= 10, "{blocked_stats:?}");
    assert_eq!(blocked_stats.requests, 0);
    // Only probes reached it (health checks run every 100 ms; 20 requests are far quicker
    // than 20 probe rounds would be, but allow a few).
    let reached = blocked
        .connections
        .load(std::sync::atomic::Ordering::SeqCst)
        - served_before;
    assert!(reached < 20, "blocked backend saw {reached} connections");
}

#[tokio::test]
async fn denying_everything_keeps_backends_unhealthy_and_refuses_traffic() {
    let a = TestBackend::start("a").await;
    let network = UpstreamNetwork::with_policy(Arc::new(DenyAll));
    let service = BackendService::new(service_config("web", &[&a]), network).unwrap();
    wait_for_health(&service, "a", HealthState::Unhealthy).await;
    let frontend = frontend_for(&service).await;
    let (status, _) = get(&client(), &format!("http://{}/", frontend.local_addr())).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(a.connections.load(std::sync::atomic::Ordering::SeqCst), 0);
    assert!(service.stats()[0].denied_connections >= 2);
}

#[tokio::test]
async fn denied_proxy_connections_to_the_only_backend_answer_502() {
    let a = TestBackend::start("a").await;
    let network = UpstreamNetwork::with_policy(Arc::new(DenyProxyTo("a")));
    let service = BackendService::new(service_config("web", &[&a]), network).unwrap();
    wait_for_health(&service, "a", HealthState::Healthy).await;
    let frontend = frontend_for(&service).await;
    let (status, body) = get(&client(), &format!("http://{}/", frontend.local_addr())).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert_eq!(body, "upstream connect error\n");
}
