//! Unit tests of outlier detection on Tokio's paused clock: ejection after failures in a row,
//! return after the ejection time (longer each time), and the most that may be ejected.

use std::sync::Arc;
use std::time::Duration;

use std::net::SocketAddr;

use super::outlier::Outcome;
use super::prober::Probe;
use super::tests::config;
use super::*;

/// Every probe passes: ejection is all that takes a backend out.
struct AlwaysUp;

impl Probe for AlwaysUp {
    async fn probe(&self, _check: &HealthCheck, _target: SocketAddr) -> bool {
        true
    }
}

fn detecting(backends: &[(&str, u16)], outlier: OutlierDetection) -> BackendService {
    let config = BackendServiceConfig {
        outlier_detection: Some(outlier),
        ..config(backends)
    };
    let service =
        BackendService::with_prober(config, UpstreamNetwork::default(), AlwaysUp).unwrap();
    for backend in service.inner.backends.load().iter() {
        backend.set_health(HealthState::Healthy);
    }
    service
}

fn backend(service: &BackendService, id: &str) -> Arc<Backend> {
    let backends = service.inner.backends.load();
    Arc::clone(backends.iter().find(|b| b.id == id).unwrap())
}

fn record(service: &BackendService, id: &str, outcome: Outcome, times: usize) {
    let backend = backend(service, id);
    for _ in 0..times {
        service.record(&backend, outcome);
    }
}

fn ejected(service: &BackendService, id: &str) -> bool {
    backend(service, id).outlier.is_ejected()
}

fn gateway_failures(threshold: u32) -> OutlierDetection {
    OutlierDetection {
        consecutive_gateway_failure: threshold,
        interval: Duration::from_secs(1),
        base_ejection_time: Duration::from_secs(30),
        ..OutlierDetection::default()
    }
}

#[tokio::test(start_paused = true)]
async fn failures_in_a_row_eject_until_the_ejection_time_has_passed() {
    let start = tokio::time::Instant::now();
    let service = detecting(&[("a", 1), ("b", 2)], gateway_failures(3));
    record(&service, "a", Outcome::GatewayFailure, 2);
    record(&service, "a", Outcome::Success, 1);
    record(&service, "a", Outcome::GatewayFailure, 2);
    assert!(!ejected(&service, "a"), "a success in between starts over");
    record(&service, "a", Outcome::GatewayFailure, 1);
    assert!(ejected(&service, "a"), "3 in a row");
    assert!((0..10).all(|_| service.pick(&[]).unwrap().id == "b"));

    // Sweeps run every second from the start: the one at 30 s returns it.
    tokio::time::sleep_until(start + Duration::from_millis(29_500)).await;
    assert!(ejected(&service, "a"), "30 s not over");
    let returned = start + Duration::from_millis(30_500);
    tokio::time::sleep_until(returned).await;
    assert!(!ejected(&service, "a"), "back after the base ejection time");
    assert!((0..10).any(|_| service.pick(&[]).unwrap().id == "a"));

    // Ejected again before a sweep forgave the first ejection: twice as long.
    record(&service, "a", Outcome::GatewayFailure, 3);
    assert!(ejected(&service, "a"));
    tokio::time::sleep_until(returned + Duration::from_secs(40)).await;
    assert!(ejected(&service, "a"), "second ejection: 60 s");
    tokio::time::sleep_until(returned + Duration::from_secs(61)).await;
    assert!(!ejected(&service, "a"));

    // Each sweep it stays in forgives one ejection: after two, the next lasts 30 s again.
    tokio::time::sleep_until(returned + Duration::from_secs(64)).await;
    record(&service, "a", Outcome::GatewayFailure, 3);
    tokio::time::sleep_until(returned + Duration::from_secs(64 + 31)).await;
    assert!(!ejected(&service, "a"));
}

#[tokio::test(start_paused = true)]
async fn no_more_than_the_max_percent_is_ejected() {
    let service = detecting(&[("a", 1), ("b", 2)], gateway_failures(1));
    record(&service, "a", Outcome::GatewayFailure, 1);
    record(&service, "b", Outcome::GatewayFailure, 5);
    assert!(ejected(&service, "a"));
    assert!(!ejected(&service, "b"), "50 % of two backends is one");

    let alone = detecting(&[("a", 1)], gateway_failures(1));
    record(&alone, "a", Outcome::GatewayFailure, 5);
    assert!(!ejected(&alone, "a"), "the only backend is never ejected");
}

#[tokio::test(start_paused = true)]
async fn plain_errors_eject_only_when_enforced() {
    // Compute's defaults: 5 errors in a row, but enforced 0 % of the time.
    let service = detecting(&[("a", 1), ("b", 2)], OutlierDetection::default());
    record(&service, "a", Outcome::Error, 20);
    assert!(!ejected(&service, "a"));
    let enforced = OutlierDetection {
        enforcing_consecutive_errors: 100,
        ..OutlierDetection::default()
    };
    let service = detecting(&[("a", 1), ("b", 2)], enforced);
    record(&service, "a", Outcome::Error, 4);
    assert!(!ejected(&service, "a"));
    record(&service, "a", Outcome::Error, 1);
    assert!(ejected(&service, "a"));
}

#[tokio::test(start_paused = true)]
async fn turning_detection_off_returns_every_backend() {
    let start = tokio::time::Instant::now();
    let backends = [("a", 1), ("b", 2)];
    let service = detecting(&backends, gateway_failures(1));
    record(&service, "a", Outcome::GatewayFailure, 1);
    assert!(ejected(&service, "a"));
    service.update(config(&backends)).unwrap();
    tokio::time::sleep_until(start + Duration::from_secs(2)).await;
    assert!(!ejected(&service, "a"));
}

#[test]
fn rejects_invalid_detection() {
    for invalid in [
        OutlierDetection {
            consecutive_gateway_failure: 0,
            ..OutlierDetection::default()
        },
        OutlierDetection {
            interval: Duration::ZERO,
            ..OutlierDetection::default()
        },
        OutlierDetection {
            max_ejection_percent: 101,
            ..OutlierDetection::default()
        },
    ] {
        let config = BackendServiceConfig {
            outlier_detection: Some(invalid),
            ..BackendServiceConfig::new("svc")
        };
        assert!(config.validate().is_err());
    }
}
