//! Backend services (GCE's `backendServices`): a pool of backends, health-checked, balanced.

mod backend;
mod dispatch;
mod outlier;
mod prober;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::sync::Notify;
use tokio_util::sync::{CancellationToken, DropGuard};

pub(crate) use self::backend::Backend;
pub(crate) use self::dispatch::{DispatchError, Dispatched, Exchange};
pub use self::outlier::OutlierDetection;
use crate::error::LbError;
use crate::health::{HealthCheck, HealthState};
use crate::policy::UpstreamNetwork;
use crate::stats::BackendStats;

/// How requests are spread over the serving backends of a service (GCE's `localityLbPolicy`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LoadBalancingPolicy {
    /// Each backend in turn.
    #[default]
    RoundRobin,
    /// The backend with the fewest outstanding requests relative to its capacity scaler.
    LeastRequest,
}

/// One backend of a service: typically an instance's serving address.
#[derive(Debug, Clone, PartialEq)]
pub struct BackendConfig {
    /// Stable identity, e.g. the instance name; a backend keeps its health and connections
    /// across updates as long as its id and address stay the same.
    pub id: String,
    /// Where it serves HTTP/1.1.
    pub address: SocketAddr,
    /// Share of its capacity in use, 0..=1. 0 drains it: no new requests.
    pub capacity_scaler: f32,
}

impl BackendConfig {
    /// A backend at full capacity.
    pub fn new(id: impl Into<String>, address: SocketAddr) -> Self {
        Self {
            id: id.into(),
            address,
            capacity_scaler: 1.0,
        }
    }
}

/// Configuration of a backend service.
#[derive(Debug, Clone, PartialEq)]
pub struct BackendServiceConfig {
    /// Name, for logs and routing diagnostics; fixed when the service is created.
    pub name: String,
    /// The backends.
    pub backends: Vec<BackendConfig>,
    /// How backends are probed.
    pub health_check: HealthCheck,
    /// How requests are spread.
    pub load_balancing: LoadBalancingPolicy,
    /// How long requests in flight to a drained or removed backend may take to finish before
    /// their connections are closed (GCE's `connectionDraining.drainingTimeoutSec`).
    pub connection_draining_timeout: Duration,
    /// How long to wait for a backend's response headers (GCE's `timeoutSec`); with a retry
    /// policy, for all tries together.
    pub timeout: Duration,
    /// When backends that keep failing requests are ejected; `None`: never.
    pub outlier_detection: Option<OutlierDetection>,
}

impl BackendServiceConfig {
    /// A service with no backends and GCE's defaults.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            backends: Vec::new(),
            health_check: HealthCheck::default(),
            load_balancing: LoadBalancingPolicy::default(),
            connection_draining_timeout: Duration::from_secs(300),
            timeout: Duration::from_secs(30),
            outlier_detection: None,
        }
    }

    fn validate(&self) -> Result<(), LbError> {
        let invalid = |reason: String| LbError::InvalidBackendService {
            service: self.name.clone(),
            reason,
        };
        self.health_check.validate().map_err(invalid)?;
        if self.timeout.is_zero() {
            return Err(invalid("timeout must be positive".to_owned()));
        }
        if let Some(outlier) = &self.outlier_detection {
            outlier.validate().map_err(invalid)?;
        }
        let mut ids = HashSet::new();
        for backend in &self.backends {
            if !ids.insert(backend.id.as_str()) {
                return Err(invalid(format!("duplicate backend {}", backend.id)));
            }
            if !(0.0..=1.0).contains(&backend.capacity_scaler) {
                return Err(invalid(format!(
                    "capacity scaler {} of backend {} is outside 0..=1",
                    backend.capacity_scaler, backend.id
                )));
            }
        }
        Ok(())
    }
}

/// Health of one backend, as reported by GCE's `backendServices.getHealth`.
#[derive(Debug, Clone, PartialEq)]
pub struct BackendHealth {
    /// The backend's id.
    pub id: String,
    /// Its serving address.
    pub address: SocketAddr,
    /// What its probes say.
    pub state: HealthState,
    /// Its capacity scaler; 0 means drained.
    pub capacity_scaler: f32,
}

/// A running backend service: cheap to clone, shared by the URL maps that route to it.
///
/// Its health prober runs for as long as any clone is alive.
#[derive(Debug, Clone)]
pub struct BackendService {
    inner: Arc<ServiceInner>,
}

/// Settings read together on the request path.
#[derive(Debug)]
struct Settings {
    health_check: HealthCheck,
    load_balancing: LoadBalancingPolicy,
    timeout: Duration,
    outlier: Option<OutlierDetection>,
}

impl From<&BackendServiceConfig> for Settings {
    fn from(config: &BackendServiceConfig) -> Self {
        Self {
            health_check: config.health_check.clone(),
            load_balancing: config.load_balancing,
            timeout: config.timeout,
            outlier: config.outlier_detection.clone(),
        }
    }
}

#[derive(Debug)]
struct ServiceInner {
    name: String,
    network: UpstreamNetwork,
    settings: ArcSwap<Settings>,
    backends: ArcSwap<Vec<Arc<Backend>>>,
    /// Where round-robin (and least-request's tie breaking) starts next.
    next: AtomicUsize,
    /// Serialises updates, so that two updates cannot both keep or both drain a backend.
    updating: Mutex<()>,
    /// Serialises ejections, so that two cannot both pass the maximum ejection percent.
    ejecting: Mutex<()>,
    /// Makes the prober probe now, e.g. after backends were added.
    wake_prober: Arc<Notify>,
    _stop_prober: DropGuard,
}

impl BackendService {
    /// Starts a backend service and its health prober, which needs a Tokio runtime.
    ///
    /// Backends start in [`HealthState::Unknown`] and get traffic once healthy.
    pub fn new(config: BackendServiceConfig, network: UpstreamNetwork) -> Result<Self, LbError> {
        Self::with_prober(config, network, prober::NetworkProber)
    }

    fn with_prober<P: prober::Probe>(
        config: BackendServiceConfig,
        network: UpstreamNetwork,
        probe: P,
    ) -> Result<Self, LbError> {
        config.validate()?;
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| LbError::NoRuntime {
            task: "health prober",
        })?;
        let backends = config
            .backends
            .iter()
            .map(|b| Arc::new(Backend::new(b.id.clone(), b.address, b.capacity_scaler)))
            .collect();
        let stop = CancellationToken::new();
        let wake_prober = Arc::new(Notify::new());
        let inner = Arc::new(ServiceInner {
            name: config.name.clone(),
            network,
            settings: ArcSwap::from_pointee(Settings::from(&config)),
            backends: ArcSwap::from_pointee(backends),
            next: AtomicUsize::new(0),
            updating: Mutex::new(()),
            ejecting: Mutex::new(()),
            wake_prober: Arc::clone(&wake_prober),
            _stop_prober: stop.clone().drop_guard(),
        });
        runtime.spawn(outlier::run(Arc::downgrade(&inner), stop.clone()));
        runtime.spawn(prober::run(
            Arc::downgrade(&inner),
            probe,
            wake_prober,
            stop,
        ));
        Ok(Self { inner })
    }

    /// The service's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Applies a new configuration (the name is ignored).
    ///
    /// Backends whose id and address are unchanged keep their health and connections; removed
    /// ones, and those whose capacity drops to 0, are drained: in-flight requests finish (up to
    /// the draining timeout), new requests go elsewhere, idle connections are closed.
    pub fn update(&self, config: BackendServiceConfig) -> Result<(), LbError> {
        config.validate()?;
        let _updating = self
            .inner
            .updating
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let draining_timeout = config.connection_draining_timeout;
        self.inner.settings.store(Arc::new(Settings::from(&config)));

        let current = self.inner.backends.load_full();
        let mut next = Vec::with_capacity(config.backends.len());
        for wanted in &config.backends {
            let kept = current
                .iter()
                .find(|b| b.id == wanted.id && b.addr == wanted.address);
            match kept {
                Some(backend) => {
                    backend.set_capacity(wanted.capacity_scaler, draining_timeout);
                    next.push(Arc::clone(backend));
                }
                None => next.push(Arc::new(Backend::new(
                    wanted.id.clone(),
                    wanted.address,
                    wanted.capacity_scaler,
                ))),
            }
        }
        // Publish the new list before draining, so no new request picks a removed backend
        // after its connections were retired.
        self.inner.backends.store(Arc::new(next));
        let next = self.inner.backends.load();
        for old in current.iter() {
            if !next.iter().any(|b| Arc::ptr_eq(b, old)) {
                old.remove(draining_timeout);
            }
        }
        self.inner.wake_prober.notify_one();
        Ok(())
    }

    /// Health of every backend; cheap, reads published state only.
    pub fn health(&self) -> Vec<BackendHealth> {
        self.inner
            .backends
            .load()
            .iter()
            .map(|backend| BackendHealth {
                id: backend.id.clone(),
                address: backend.addr,
                state: backend.health(),
                capacity_scaler: backend.capacity_scaler(),
            })
            .collect()
    }

    /// Counters of every current backend.
    pub fn stats(&self) -> Vec<BackendStats> {
        self.inner
            .backends
            .load()
            .iter()
            .map(|backend| backend.stats())
            .collect()
    }

    /// A serving backend for a new request, other than those in `exclude`.
    pub(crate) fn pick(&self, exclude: &[Arc<Backend>]) -> Option<Arc<Backend>> {
        let backends = self.inner.backends.load();
        let eligible = |backend: &&Arc<Backend>| {
            backend.is_serving()
                && !exclude
                    .iter()
                    .any(|excluded| Arc::ptr_eq(backend, excluded))
        };
        let count = backends.iter().filter(eligible).count();
        if count == 0 {
            return None;
        }
        // Rotate among eligible backends only: rotating over all of them and skipping the
        // ineligible would hand an ineligible backend's turns to its successor.
        let start = self.inner.next.fetch_add(1, Ordering::Relaxed) % count;
        let mut rotation = backends
            .iter()
            .filter(eligible)
            .cycle()
            .skip(start)
            .take(count);
        let chosen = match self.inner.settings.load().load_balancing {
            LoadBalancingPolicy::RoundRobin => rotation.next(),
            // Compare outstanding/capacity by cross-multiplying, to stay in integers; ties go
            // to the first in rotation order.
            LoadBalancingPolicy::LeastRequest => rotation.min_by(|a, b| {
                let load_a = a.outstanding() * u64::from(b.capacity_milli());
                let load_b = b.outstanding() * u64::from(a.capacity_milli());
                load_a.cmp(&load_b)
            }),
        };
        chosen.cloned()
    }
}

#[cfg(test)]
mod outlier_tests;
#[cfg(test)]
pub(crate) mod tests;
