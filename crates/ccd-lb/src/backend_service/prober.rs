//! The health prober: one task per backend service, probing every backend each interval.

use std::net::SocketAddr;
use std::sync::{Arc, Weak};

use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{Backend, ServiceInner, Settings};
use crate::health::{self, HealthCheck};
use crate::policy::UpstreamNetwork;

/// Probes one backend. A trait so that tests can script outcomes under a paused clock.
pub(super) trait Probe: Send + Sync + 'static {
    /// Whether the backend at `target` passes `check`.
    fn probe(&self, check: &HealthCheck, target: SocketAddr) -> impl Future<Output = bool> + Send;
}

/// Probes over real sockets.
#[derive(Debug)]
pub(super) struct NetworkProber;

impl Probe for NetworkProber {
    fn probe(&self, check: &HealthCheck, target: SocketAddr) -> impl Future<Output = bool> + Send {
        health::probe(check, target)
    }
}

/// Runs until `stop` fires or the service is gone. Holds the service only weakly, so that
/// dropping the last [`super::BackendService`] stops it.
pub(super) async fn run<P: Probe>(
    service: Weak<ServiceInner>,
    probe: P,
    wake: Arc<Notify>,
    stop: CancellationToken,
) {
    let probe = Arc::new(probe);
    loop {
        let round_start = Instant::now();
        let Some(service) = service.upgrade() else {
            return;
        };
        let name: Arc<str> = service.name.as_str().into();
        let settings = service.settings.load_full();
        let backends = service.backends.load_full();
        let network = service.network.clone();
        drop(service);

        let interval = settings.health_check.check_interval;
        tokio::select! {
            () = stop.cancelled() => return,
            () = probe_round(&name, &settings, &backends, &network, &probe) => {}
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep_until(round_start + interval) => {}
            () = wake.notified() => {}
        }
    }
}

/// Probes all backends at once and applies the outcomes.
async fn probe_round<P: Probe>(
    service: &Arc<str>,
    settings: &Arc<Settings>,
    backends: &[Arc<Backend>],
    network: &UpstreamNetwork,
    probe: &Arc<P>,
) {
    let mut probes = JoinSet::new();
    for backend in backends {
        let backend = Arc::clone(backend);
        let settings = Arc::clone(settings);
        let network = network.clone();
        let probe = Arc::clone(probe);
        probes.spawn(async move {
            let healthy = probe_backend(&backend, &settings.health_check, &network, &*probe).await;
            (backend, healthy)
        });
    }
    while let Some(joined) = probes.join_next().await {
        let Ok((backend, healthy)) = joined else {
            continue;
        };
        let changed = backend
            .tracker
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .record(healthy, &settings.health_check);
        if let Some(state) = changed {
            backend.set_health(state);
            tracing::info!(
                service = %service,
                backend = %backend.id,
                address = %backend.addr,
                ?state,
                "backend health changed"
            );
        }
    }
}

async fn probe_backend<P: Probe>(
    backend: &Backend,
    check: &HealthCheck,
    network: &UpstreamNetwork,
    probe: &P,
) -> bool {
    let target = check.target(backend.addr);
    if !network
        .policy
        .allows(network.probe_source, &backend.id, target)
    {
        backend.count_denied();
        tracing::warn!(
            source = %network.probe_source,
            backend = %backend.id,
            address = %target,
            "connection policy denied health probe"
        );
        return false;
    }
    probe.probe(check, target).await
}
