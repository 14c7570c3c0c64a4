//! Plaintext frontends: routing to healthy backends, headers, HTTP/2 prior knowledge, pooling,
//! URL map swaps, weighted splits and graceful shutdown.
// Helpers outside #[test] functions unwrap too: a failed fixture is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use ccd_lb::{
    Frontend, FrontendConfig, HealthState, HostRule, PathMatcher, PathRule, RouteAction, UrlMap,
};
use common::*;
use hyper::StatusCode;

#[tokio::test]
async fn requests_reach_healthy_backends_only() {
    let a = TestBackend::start("a").await;
    let b = TestBackend::start("b").await;
    let sick = TestBackend::start("sick").await;
    sick.set_healthy(false);
    let service = start_service("web", &[&a, &b, &sick]);
    wait_for_health(&service, "a", HealthState::Healthy).await;
    wait_for_health(&service, "b", HealthState::Healthy).await;
    wait_for_health(&service, "sick", HealthState::Unhealthy).await;

    let frontend = Frontend::bind(
        FrontendConfig::http("fr", localhost()),
        &UrlMap::new(RouteAction::service(service.clone())),
    )
    .await
    .unwrap();
    let url = format!("http://{}/", frontend.local_addr());
    let client = client();
    let mut seen = HashMap::new();
    for _ in 0..60 {
        let (status, name) = get(&client, &url).await;
        assert_eq!(status, StatusCode::OK);
        *seen.entry(name).or_insert(0) += 1;
    }
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(seen["a"], 30, "round robin over two backends: {seen:?}");
    assert_eq!(seen["b"], 30, "round robin over two backends: {seen:?}");

    let stats = frontend.stats();
    assert_eq!(stats.requests, 60);
    assert_eq!(stats.responses_5xx, 0);
    let sick_stats = service
        .stats()
        .into_iter()
        .find(|s| s.id == "sick")
        .unwrap();
    assert_eq!(sick_stats.requests, 0);
}

#[tokio::test]
async fn forwarding_headers_are_added_and_hop_by_hop_stripped() {
    let a = TestBackend::start("a").await;
    let service = start_service("web", &[&a]);
    wait_for_health(&service, "a", HealthState::Healthy).await;
    let frontend = Frontend::bind(
        FrontendConfig::http("fr", localhost()),
        &UrlMap::new(RouteAction::service(service)),
    )
    .await
    .unwrap();

    let response = client()
        .get(format!("http://{}/", frontend.local_addr()))
        .header("x-forwarded-for", "203.0.113.7")
        .header("connection", "x-hop")
        .header("x-hop", "secret")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let headers = response.headers();
    assert_eq!(headers["x-seen-xff"], "203.0.113.7, 127.0.0.1");
    assert_eq!(headers["x-seen-proto"], "http");
    assert_eq!(headers["x-seen-via"], "1.1 ccd-lb");
    assert_eq!(
        headers["x-seen-host"],
        frontend.local_addr().to_string().as_str()
    );
    assert!(
        headers.get("x-seen-connection-hop").is_none(),
        "x-hop leaked"
    );
    assert_eq!(headers["via"], "1.1 ccd-lb");
}

#[tokio::test]
async fn no_healthy_backend_answers_503() {
    let sick = TestBackend::start("sick").await;
    sick.set_healthy(false);
    let service = start_service("web", &[&sick]);
    wait_for_health(&service, "sick", HealthState::Unhealthy).await;
    let frontend = Frontend::bind(
        FrontendConfig::http("fr", localhost()),
        &UrlMap::new(RouteAction::service(service)),
    )
    .await
    .unwrap();
    let (status, body) = get(&client(), &format!("http://{}/", frontend.local_addr())).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body, "no healthy upstream\n");
    assert_eq!(frontend.stats().responses_5xx, 1);
}

#[tokio::test]
async fn plaintext_http2_with_prior_knowledge_is_proxied() {
    let a = TestBackend::start("a").await;
    let service = start_service("web", &[&a]);
    wait_for_health(&service, "a", HealthState::Healthy).await;
    let frontend = Frontend::bind(
        FrontendConfig::http("fr", localhost()),
        &UrlMap::new(RouteAction::service(service)),
    )
    .await
    .unwrap();
    let h2c = reqwest::Client::builder()
        .no_proxy()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let response = h2c
        .get(format!("http://{}/x", frontend.local_addr()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.version(), reqwest::Version::HTTP_2);
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "a");
}

#[tokio::test]
async fn upstream_connections_are_kept_alive_and_reused() {
    let a = TestBackend::start("a").await;
    // Probes open a connection each; a slow interval keeps them out of the count.
    let mut config = service_config("web", &[&a]);
    config.health_check.check_interval = Duration::from_secs(60);
    let service = ccd_lb::BackendService::new(config, Default::default()).unwrap();
    wait_for_health(&service, "a", HealthState::Healthy).await;
    let frontend = Frontend::bind(
        FrontendConfig::http("fr", localhost()),
        &UrlMap::new(RouteAction::service(service)),
    )
    .await
    .unwrap();
    let before = a.connections.load(Ordering::SeqCst);
    let client = client();
    let url = format!("http://{}/", frontend.local_addr());
    for _ in 0..25 {
        let (status, _) = get(&client, &url).await;
        assert_eq!(status, StatusCode::OK);
        // Responses without a body (never polled by the server) also free their connection.
        let head = client.head(&url).send().await.unwrap();
        assert_eq!(head.status(), StatusCode::OK);
    }
    let opened = a.connections.load(Ordering::SeqCst) - before;
    assert_eq!(
        opened, 1,
        "50 sequential requests opened {opened} upstream connections"
    );
}

#[tokio::test]
async fn host_and_path_rules_route_and_the_map_can_be_swapped_while_serving() {
    let web = TestBackend::start("web").await;
    let api = TestBackend::start("api").await;
    let web_service = start_service("web", &[&web]);
    let api_service = start_service("api", &[&api]);
    wait_for_health(&web_service, "web", HealthState::Healthy).await;
    wait_for_health(&api_service, "api", HealthState::Healthy).await;

    let map = UrlMap {
        default_route: RouteAction::service(web_service.clone()),
        host_rules: vec![HostRule {
            hosts: vec!["app.test".into()],
            path_matcher: "app".into(),
        }],
        path_matchers: vec![PathMatcher {
            name: "app".into(),
            default_route: RouteAction::service(web_service.clone()),
            path_rules: vec![PathRule {
                paths: vec!["/api/*".into()],
                route: RouteAction::service(api_service.clone()),
            }],
        }],
    };
    let frontend = Frontend::bind(FrontendConfig::http("fr", localhost()), &map)
        .await
        .unwrap();
    let base = format!("http://{}", frontend.local_addr());
    let client = client();
    let routed = |path: &'static str, host: &'static str| {
        let request = client.get(format!("{base}{path}")).header("host", host);
        async move { request.send().await.unwrap().text().await.unwrap() }
    };
    assert_eq!(routed("/api/users", "app.test").await, "api");
    assert_eq!(routed("/", "app.test").await, "web");
    assert_eq!(routed("/api/users", "other.test").await, "web");

    frontend
        .set_url_map(&UrlMap::new(RouteAction::service(api_service)))
        .unwrap();
    assert_eq!(routed("/", "app.test").await, "api");
}

#[tokio::test]
async fn weighted_services_split_traffic_by_weight() {
    let stable = TestBackend::start("stable").await;
    let canary = TestBackend::start("canary").await;
    let stable_service = start_service("stable", &[&stable]);
    let canary_service = start_service("canary", &[&canary]);
    wait_for_health(&stable_service, "stable", HealthState::Healthy).await;
    wait_for_health(&canary_service, "canary", HealthState::Healthy).await;
    let frontend = Frontend::bind(
        FrontendConfig::http("fr", localhost()),
        &UrlMap::new(RouteAction::weighted([
            (stable_service, 80),
            (canary_service, 20),
        ])),
    )
    .await
    .unwrap();
    let client = client();
    let url = format!("http://{}/", frontend.local_addr());
    let total = 500;
    let mut canary_count = 0;
    for _ in 0..total {
        let (status, name) = get(&client, &url).await;
        assert_eq!(status, StatusCode::OK);
        canary_count += usize::from(name == "canary");
    }
    let share = canary_count as f64 / total as f64;
    assert!(
        (0.13..=0.27).contains(&share),
        "canary got {share:.3} of traffic"
    );
}

#[tokio::test]
async fn graceful_shutdown_finishes_in_flight_requests_and_stops_accepting() {
    let a = TestBackend::start("a").await;
    let service = start_service("web", &[&a]);
    wait_for_health(&service, "a", HealthState::Healthy).await;
    let frontend = Frontend::bind(
        FrontendConfig::http("fr", localhost()),
        &UrlMap::new(RouteAction::service(service)),
    )
    .await
    .unwrap();
    let addr = frontend.local_addr();
    let client = client();
    let slow = tokio::spawn({
        let client = client.clone();
        async move { get(&client, &format!("http://{addr}/slow/500")).await }
    });
    eventually("the slow request is in flight", || async {
        frontend.stats().active_requests == 1
    })
    .await;

    frontend.shutdown(Duration::from_secs(10)).await;
    let (status, name) = slow.await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(name, "a");
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "still accepting after shutdown"
    );
}

#[tokio::test]
async fn request_and_response_bodies_stream_through_in_both_http_versions() {
    let a = TestBackend::start("a").await;
    let service = start_service("web", &[&a]);
    wait_for_health(&service, "a", HealthState::Healthy).await;
    let frontend = Frontend::bind(
        FrontendConfig::http("fr", localhost()),
        &UrlMap::new(RouteAction::service(service)),
    )
    .await
    .unwrap();
    let base = format!("http://{}", frontend.local_addr());
    let h1 = client();
    let h2c = reqwest::Client::builder()
        .no_proxy()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let upload: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    for (version, client) in [("h1", &h1), ("h2c", &h2c)] {
        let response = client
            .post(format!("{base}/echo"))
            .body(upload.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(response.headers()["x-seen-framing"], "content-length");
        let echoed = response.bytes().await.unwrap();
        assert!(echoed == upload, "{version}: echoed body differs");

        // A streamed body of unknown length reaches the backend chunked.
        let response = client
            .post(format!("{base}/echo"))
            .body(reqwest::Body::wrap(ChunkedBody::new(&upload, 10_000)))
            .send()
            .await
            .unwrap();
        assert_eq!(response.headers()["x-seen-framing"], "chunked");
        let echoed = response.bytes().await.unwrap();
        assert!(echoed == upload, "{version}: echoed streamed body differs");

        let big = client
            .get(format!("{base}/big/2000000"))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        assert_eq!(big.len(), 2_000_000, "{version}");

        let head = client.head(format!("{base}/")).send().await.unwrap();
        assert_eq!(head.status(), 200, "{version}");
    }
    assert_eq!(frontend.stats().responses_5xx, 0);
}
