//! Unit tests of backend services: health thresholds under a paused clock, selection, updates.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::prober::Probe;
use super::*;
use crate::health::HealthCheckProtocol;
use crate::policy::ConnectionPolicy;

/// A service with no backends, for routing tests.
pub(crate) fn idle_service(name: &str) -> BackendService {
    BackendService::new(BackendServiceConfig::new(name), UpstreamNetwork::default())
        .expect("inside a runtime")
}

/// Probe outcomes set by the test, per target address.
#[derive(Debug, Clone, Default)]
struct ScriptedProbe {
    up: Arc<Mutex<HashMap<SocketAddr, bool>>>,
}

impl ScriptedProbe {
    fn set(&self, target: SocketAddr, up: bool) {
        self.up.lock().unwrap().insert(target, up);
    }
}

impl Probe for ScriptedProbe {
    fn probe(&self, _check: &HealthCheck, target: SocketAddr) -> impl Future<Output = bool> + Send {
        let up = self
            .up
            .lock()
            .unwrap()
            .get(&target)
            .copied()
            .unwrap_or(false);
        async move { up }
    }
}

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

pub(super) fn config(backends: &[(&str, u16)]) -> BackendServiceConfig {
    BackendServiceConfig {
        backends: backends
            .iter()
            .map(|&(id, port)| BackendConfig::new(id, addr(port)))
            .collect(),
        health_check: HealthCheck {
            protocol: HealthCheckProtocol::Tcp,
            check_interval: Duration::from_secs(10),
            timeout: Duration::from_secs(5),
            healthy_threshold: 2,
            unhealthy_threshold: 3,
            ..HealthCheck::default()
        },
        ..BackendServiceConfig::new("svc")
    }
}

fn state_of(service: &BackendService, id: &str) -> HealthState {
    service
        .health()
        .into_iter()
        .find(|health| health.id == id)
        .map(|health| health.state)
        .expect("backend present")
}

/// Sleeps just past the probe round at `seconds` (rounds start at 0, 10, 20, ...).
async fn after_round_at(start: tokio::time::Instant, seconds: u64) {
    tokio::time::sleep_until(start + Duration::from_secs(seconds) + Duration::from_millis(1)).await;
}

#[tokio::test(start_paused = true)]
async fn health_follows_thresholds_round_by_round() {
    let probe = ScriptedProbe::default();
    probe.set(addr(1), true);
    let start = tokio::time::Instant::now();
    let service = BackendService::with_prober(
        config(&[("a", 1)]),
        UpstreamNetwork::default(),
        probe.clone(),
    )
    .unwrap();

    after_round_at(start, 0).await;
    assert_eq!(
        state_of(&service, "a"),
        HealthState::Unknown,
        "1 of 2 successes"
    );
    after_round_at(start, 10).await;
    assert_eq!(
        state_of(&service, "a"),
        HealthState::Healthy,
        "2 of 2 successes"
    );
    assert!(service.pick(&[]).is_some());

    probe.set(addr(1), false);
    after_round_at(start, 20).await;
    after_round_at(start, 30).await;
    assert_eq!(
        state_of(&service, "a"),
        HealthState::Healthy,
        "2 of 3 failures"
    );
    after_round_at(start, 40).await;
    assert_eq!(
        state_of(&service, "a"),
        HealthState::Unhealthy,
        "3 of 3 failures"
    );
    assert!(service.pick(&[]).is_none());

    probe.set(addr(1), true);
    after_round_at(start, 50).await;
    assert_eq!(state_of(&service, "a"), HealthState::Unhealthy);
    after_round_at(start, 60).await;
    assert_eq!(state_of(&service, "a"), HealthState::Healthy);
}

#[derive(Debug)]
struct DenyProbesTo(&'static str);

impl ConnectionPolicy for DenyProbesTo {
    fn allows(&self, source: IpAddr, backend_id: &str, _backend: SocketAddr) -> bool {
        source != UpstreamNetwork::default().probe_source || backend_id != self.0
    }
}

#[tokio::test(start_paused = true)]
async fn denied_probes_count_as_failures() {
    let probe = ScriptedProbe::default();
    probe.set(addr(1), true);
    probe.set(addr(2), true);
    let network = UpstreamNetwork::with_policy(Arc::new(DenyProbesTo("b")));
    let start = tokio::time::Instant::now();
    let service =
        BackendService::with_prober(config(&[("a", 1), ("b", 2)]), network, probe).unwrap();
    after_round_at(start, 20).await;
    assert_eq!(state_of(&service, "a"), HealthState::Healthy);
    assert_eq!(state_of(&service, "b"), HealthState::Unhealthy);
    let denied = service.stats().into_iter().find(|s| s.id == "b").unwrap();
    assert_eq!(denied.denied_connections, 3);
}

fn healthy_service(backends: &[(&str, u16)], policy: LoadBalancingPolicy) -> BackendService {
    let config = BackendServiceConfig {
        load_balancing: policy,
        ..config(backends)
    };
    let service =
        BackendService::with_prober(config, UpstreamNetwork::default(), ScriptedProbe::default())
            .unwrap();
    for backend in service.inner.backends.load().iter() {
        backend.set_health(HealthState::Healthy);
    }
    service
}

#[tokio::test]
async fn round_robin_visits_serving_backends_in_turn() {
    let service = healthy_service(
        &[("a", 1), ("b", 2), ("c", 3)],
        LoadBalancingPolicy::RoundRobin,
    );
    service.inner.backends.load()[2].set_health(HealthState::Unhealthy);
    let mut counts = HashMap::new();
    for _ in 0..300 {
        let backend = service.pick(&[]).unwrap();
        *counts.entry(backend.id.clone()).or_insert(0) += 1;
    }
    assert_eq!(counts.get("c"), None, "unhealthy backend picked");
    assert!((140..=160).contains(&counts["a"]), "{counts:?}");
    assert!((140..=160).contains(&counts["b"]), "{counts:?}");

    let a = Arc::clone(&service.inner.backends.load()[0]);
    assert!((0..10).all(|_| service.pick(std::slice::from_ref(&a)).unwrap().id == "b"));
}

#[tokio::test]
async fn least_request_prefers_idle_backends_scaled_by_capacity() {
    let service = healthy_service(&[("a", 1), ("b", 2)], LoadBalancingPolicy::LeastRequest);
    let a = Arc::clone(&service.inner.backends.load()[0]);
    let _busy = [Arc::clone(&a).start_request(), a.start_request()];
    assert!((0..10).all(|_| service.pick(&[]).unwrap().id == "b"));

    // b at a quarter of its capacity with one request is as loaded as a with four.
    let mut config = config(&[("a", 1), ("b", 2)]);
    config.load_balancing = LoadBalancingPolicy::LeastRequest;
    config.backends[1].capacity_scaler = 0.25;
    service.update(config).unwrap();
    let b = Arc::clone(&service.inner.backends.load()[1]);
    let _b_busy = b.start_request();
    assert!((0..10).all(|_| service.pick(&[]).unwrap().id == "a"));
}

#[tokio::test]
async fn update_keeps_known_backends_and_drains_the_rest() {
    let service = healthy_service(&[("a", 1), ("b", 2)], LoadBalancingPolicy::RoundRobin);
    let old_b = Arc::clone(&service.inner.backends.load()[1]);

    let mut next = config(&[("a", 1), ("c", 3)]);
    next.backends[0].capacity_scaler = 0.0;
    service.update(next).unwrap();

    let health = service.health();
    assert_eq!(health.len(), 2);
    assert_eq!(health[0].state, HealthState::Healthy, "a kept its health");
    assert_eq!(health[0].capacity_scaler, 0.0);
    assert_eq!(health[1].state, HealthState::Unknown, "c is new");
    assert!(!old_b.is_serving(), "removed backend still serving");
    assert!(
        service.pick(&[]).is_none(),
        "drained a and unknown c must get nothing"
    );
}

#[tokio::test]
async fn rejects_invalid_configs() {
    let mut duplicate = config(&[("a", 1), ("a", 2)]);
    assert!(BackendService::new(duplicate.clone(), UpstreamNetwork::default()).is_err());
    duplicate.backends.pop();
    duplicate.backends[0].capacity_scaler = 1.5;
    assert!(BackendService::new(duplicate, UpstreamNetwork::default()).is_err());
}

#[test]
fn needs_a_runtime() {
    let error = BackendService::new(config(&[]), UpstreamNetwork::default()).unwrap_err();
    assert!(matches!(error, LbError::NoRuntime { .. }));
}
