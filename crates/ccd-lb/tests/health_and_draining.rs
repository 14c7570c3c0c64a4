//! Backends leaving rotation: failing health checks, draining by capacity 0, removal.
// Helpers outside #[test] functions unwrap too: a failed fixture is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use ccd_lb::{BackendConfig, Frontend, FrontendConfig, HealthState, RouteAction, UrlMap};
use common::*;
use hyper::StatusCode;

#[tokio::test]
async fn failing_backend_leaves_rotation_without_failing_client_requests() {
    let a = TestBackend::start("a").await;
    let b = TestBackend::start("b").await;
    let service = start_service("web", &[&a, &b]);
    wait_for_health(&service, "a", HealthState::Healthy).await;
    wait_for_health(&service, "b", HealthState::Healthy).await;
    let frontend = Frontend::bind(
        FrontendConfig::http("fr", localhost()),
        &UrlMap::new(RouteAction::service(service.clone())),
    )
    .await
    .unwrap();
    let url = format!("http://{}/", frontend.local_addr());

    // Clients keep sending while a's health endpoint starts failing.
    let marked_down = Arc::new(AtomicBool::new(false));
    let load = tokio::spawn({
        let marked_down = Arc::clone(&marked_down);
        let url = url.clone();
        async move {
            let client = client();
            let mut after_down = Vec::new();
            let mut failures = Vec::new();
            let mut sent = 0;
            while after_down.len() < 50 {
                let down = marked_down.load(Ordering::SeqCst);
                let (status, name) = get(&client, &url).await;
                sent += 1;
                if status != StatusCode::OK {
                    failures.push(status);
                }
                if down {
                    after_down.push(name);
                }
                assert!(sent < 100_000, "load loop ran away");
            }
            (failures, after_down)
        }
    });

    a.set_healthy(false);
    wait_for_health(&service, "a", HealthState::Unhealthy).await;
    marked_down.store(true, Ordering::SeqCst);
    let (failures, after_down) = load.await.unwrap();
    assert!(failures.is_empty(), "client requests failed: {failures:?}");
    assert!(
        after_down.iter().all(|name| name == "b"),
        "unhealthy backend still served: {after_down:?}"
    );

    a.set_healthy(true);
    wait_for_health(&service, "a", HealthState::Healthy).await;
    let client = client();
    let mut names = Vec::new();
    for _ in 0..4 {
        names.push(get(&client, &url).await.1);
    }
    assert!(
        names.contains(&"a".to_owned()),
        "recovered backend not used: {names:?}"
    );
}

fn drained(config: &BackendConfig) -> BackendConfig {
    BackendConfig {
        capacity_scaler: 0.0,
        ..config.clone()
    }
}

#[tokio::test]
async fn capacity_zero_drains_while_in_flight_request_completes() {
    let a = TestBackend::start("a").await;
    let b = TestBackend::start("b").await;
    // b starts drained so the slow request surely goes to a.
    let mut config = service_config("web", &[&a, &b]);
    config.backends[1] = drained(&b.config());
    config.connection_draining_timeout = Duration::from_secs(30);
    let service = ccd_lb::BackendService::new(config.clone(), Default::default()).unwrap();
    wait_for_health(&service, "a", HealthState::Healthy).await;
    wait_for_health(&service, "b", HealthState::Healthy).await;
    let frontend = Frontend::bind(
        FrontendConfig::http("fr", localhost()),
        &UrlMap::new(RouteAction::service(service.clone())),
    )
    .await
    .unwrap();
    let url = format!("http://{}", frontend.local_addr());
    let client = client();

    let slow = tokio::spawn({
        let client = client.clone();
        let url = format!("{url}/slow/1000");
        async move { get(&client, &url).await }
    });
    eventually("the slow request reached a", || async {
        service
            .stats()
            .iter()
            .any(|s| s.id == "a" && s.active_requests == 1)
    })
    .await;

    config.backends[0] = drained(&a.config());
    config.backends[1] = b.config();
    service.update(config).unwrap();

    for _ in 0..20 {
        let (status, name) = get(&client, &format!("{url}/")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(name, "b", "drained backend got a new request");
    }
    let (status, name) = slow.await.unwrap();
    assert_eq!(
        (status, name.as_str()),
        (StatusCode::OK, "a"),
        "in-flight request cut"
    );
    let health = service.health();
    assert_eq!(health[0].capacity_scaler, 0.0);
    assert_eq!(
        health[0].state,
        HealthState::Healthy,
        "drained is not unhealthy"
    );
}

#[tokio::test]
async fn removed_backend_requests_are_cut_at_the_draining_timeout() {
    let a = TestBackend::start("a").await;
    let b = TestBackend::start("b").await;
    let mut config = service_config("web", &[&a]);
    config.connection_draining_timeout = Duration::from_millis(200);
    let service = ccd_lb::BackendService::new(config.clone(), Default::default()).unwrap();
    wait_for_health(&service, "a", HealthState::Healthy).await;
    let frontend = Frontend::bind(
        FrontendConfig::http("fr", localhost()),
        &UrlMap::new(RouteAction::service(service.clone())),
    )
    .await
    .unwrap();
    let url = format!("http://{}", frontend.local_addr());
    let client = client();
    let too_slow = tokio::spawn({
        let client = client.clone();
        let url = format!("{url}/slow/5000");
        async move { get(&client, &url).await }
    });
    eventually("the slow request reached a", || async {
        service
            .stats()
            .iter()
            .any(|s| s.id == "a" && s.active_requests == 1)
    })
    .await;

    config.backends = vec![b.config()];
    service.update(config).unwrap();
    let (status, _) = too_slow.await.unwrap();
    assert_eq!(
        status,
        StatusCode::BAD_GATEWAY,
        "request outlived the draining timeout"
    );

    wait_for_health(&service, "b", HealthState::Healthy).await;
    let (status, name) = get(&client, &format!("{url}/")).await;
    assert_eq!((status, name.as_str()), (StatusCode::OK, "b"));
    assert!(service.health().iter().all(|h| h.id != "a"));
}

#[tokio::test]
async fn stopped_backend_is_retried_on_another_before_health_checks_notice() {
    let a = TestBackend::start("a").await;
    let b = TestBackend::start("b").await;
    let mut config = service_config("web", &[&a, &b]);
    config.health_check.check_interval = Duration::from_secs(60);
    config.health_check.timeout = Duration::from_secs(1);
    let service = ccd_lb::BackendService::new(config, Default::default()).unwrap();
    wait_for_health(&service, "a", HealthState::Healthy).await;
    wait_for_health(&service, "b", HealthState::Healthy).await;
    let frontend = Frontend::bind(
        FrontendConfig::http("fr", localhost()),
        &UrlMap::new(RouteAction::service(service.clone())),
    )
    .await
    .unwrap();
    let url = format!("http://{}/", frontend.local_addr());
    drop(a); // its listener closes: connecting to it is refused
    let client = client();
    for _ in 0..10 {
        let (status, name) = get(&client, &url).await;
        assert_eq!((status, name.as_str()), (StatusCode::OK, "b"));
    }
}
