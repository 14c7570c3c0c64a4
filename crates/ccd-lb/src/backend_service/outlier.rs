//! Outlier detection (GCE's `outlierDetection`, Envoy's consecutive-failure ejection).
//!
//! Every try tells its backend's outcome. A backend whose tries fail so many times in a row is
//! ejected from the pool at once, unless that would eject more than `max_ejection_percent` of
//! the backends that serve; the sweep, every `interval`, returns it once `base_ejection_time`
//! × the times it was ejected have passed, and forgets one past ejection of a backend that
//! stayed in. Connect failures, resets and timeouts count as gateway failures (502/503/504
//! responses), and every gateway failure as an error (any 5xx response), as in Envoy when
//! local-origin errors are not split out.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Mutex, Weak};
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{Backend, BackendService, ServiceInner};
use crate::retry::is_gateway_error;

/// How often the sweep looks when outlier detection is off: Compute's default interval.
const IDLE_SWEEP: Duration = Duration::from_secs(1);

/// When backends are ejected for failing requests (GCE's `OutlierDetection`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutlierDetection {
    /// Errors (5xx or no response) in a row that eject a backend.
    pub consecutive_errors: u32,
    /// Gateway failures (502, 503, 504 or no response) in a row that eject a backend.
    pub consecutive_gateway_failure: u32,
    /// Chance, in percent, that reaching `consecutive_errors` ejects.
    pub enforcing_consecutive_errors: u32,
    /// Chance, in percent, that reaching `consecutive_gateway_failure` ejects.
    pub enforcing_consecutive_gateway_failure: u32,
    /// Time between sweeps, which return ejected backends.
    pub interval: Duration,
    /// How long a first ejection lasts; the n-th in a row lasts n times as long.
    pub base_ejection_time: Duration,
    /// Most backends, in percent of those serving, ejected at once.
    pub max_ejection_percent: u32,
}

impl Default for OutlierDetection {
    /// Compute's defaults.
    fn default() -> Self {
        Self {
            consecutive_errors: 5,
            consecutive_gateway_failure: 3,
            enforcing_consecutive_errors: 0,
            enforcing_consecutive_gateway_failure: 100,
            interval: Duration::from_secs(1),
            base_ejection_time: Duration::from_secs(30),
            max_ejection_percent: 50,
        }
    }
}

impl OutlierDetection {
    pub(super) fn validate(&self) -> Result<(), String> {
        if self.consecutive_errors == 0 || self.consecutive_gateway_failure == 0 {
            return Err("outlier detection thresholds must be at least 1".to_owned());
        }
        if self.interval.is_zero() || self.base_ejection_time.is_zero() {
            return Err(
                "outlier detection interval and base ejection time must be positive".to_owned(),
            );
        }
        let percents = [
            self.enforcing_consecutive_errors,
            self.enforcing_consecutive_gateway_failure,
            self.max_ejection_percent,
        ];
        if percents.iter().any(|&p| p > 100) {
            return Err("outlier detection percentages must be within 0..=100".to_owned());
        }
        Ok(())
    }
}

/// What one try says about its backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Success,
    /// A 5xx other than a gateway failure.
    Error,
    /// 502, 503, 504, or no response at all.
    GatewayFailure,
}

impl Outcome {
    pub(crate) fn of_status(status: http::StatusCode) -> Self {
        if is_gateway_error(status) {
            Self::GatewayFailure
        } else if status.is_server_error() {
            Self::Error
        } else {
            Self::Success
        }
    }
}

/// One backend's failures in a row and ejection.
#[derive(Debug, Default)]
pub(crate) struct OutlierState {
    errors: AtomicU32,
    gateway_failures: AtomicU32,
    ejected: AtomicBool,
    /// Changed on ejection and by the sweep only, never on the request path.
    ejection: Mutex<Ejection>,
}

#[derive(Debug, Default)]
struct Ejection {
    since: Option<Instant>,
    /// Ejections not yet forgiven: the next one lasts this many + 1 base times.
    count: u32,
}

impl OutlierState {
    pub(crate) fn is_ejected(&self) -> bool {
        self.ejected.load(Ordering::Relaxed)
    }

    fn reset(&self) {
        // Read first: a success, the common case, then writes nothing shared.
        for counter in [&self.errors, &self.gateway_failures] {
            if counter.load(Ordering::Relaxed) != 0 {
                counter.store(0, Ordering::Relaxed);
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Ejection> {
        self.ejection
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl BackendService {
    /// Counts a try's outcome against its backend, ejecting it when it keeps failing.
    pub(crate) fn record(&self, backend: &Backend, outcome: Outcome) {
        let settings = self.inner.settings.load();
        let Some(config) = &settings.outlier else {
            return;
        };
        let state = &backend.outlier;
        let reason = match outcome {
            Outcome::Success => {
                state.reset();
                return;
            }
            Outcome::Error => {
                state.gateway_failures.store(0, Ordering::Relaxed);
                let errors = state.errors.fetch_add(1, Ordering::Relaxed) + 1;
                (errors >= config.consecutive_errors
                    && enforced(config.enforcing_consecutive_errors))
                .then_some("consecutive errors")
            }
            Outcome::GatewayFailure => {
                let errors = state.errors.fetch_add(1, Ordering::Relaxed) + 1;
                let failures = state.gateway_failures.fetch_add(1, Ordering::Relaxed) + 1;
                if failures >= config.consecutive_gateway_failure
                    && enforced(config.enforcing_consecutive_gateway_failure)
                {
                    Some("consecutive gateway failures")
                } else {
                    (errors >= config.consecutive_errors
                        && enforced(config.enforcing_consecutive_errors))
                    .then_some("consecutive errors")
                }
            }
        };
        if let Some(reason) = reason {
            self.eject(backend, config, reason);
        }
    }

    fn eject(&self, backend: &Backend, config: &OutlierDetection, reason: &str) {
        let _ejecting = self
            .inner
            .ejecting
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if backend.outlier.is_ejected() {
            return;
        }
        let backends = self.inner.backends.load();
        let pool = backends.iter().filter(|b| b.is_available()).count();
        let ejected = backends.iter().filter(|b| b.outlier.is_ejected()).count();
        if (ejected + 1) * 100 > pool * config.max_ejection_percent as usize {
            tracing::info!(
                service = %self.name(),
                backend = %backend.id,
                reason,
                ejected,
                pool,
                "not ejecting the backend: too many are ejected already"
            );
            return;
        }
        let mut ejection = backend.outlier.lock();
        ejection.count += 1;
        ejection.since = Some(Instant::now());
        backend.outlier.ejected.store(true, Ordering::Relaxed);
        backend.outlier.errors.store(0, Ordering::Relaxed);
        backend.outlier.gateway_failures.store(0, Ordering::Relaxed);
        tracing::warn!(
            service = %self.name(),
            backend = %backend.id,
            reason,
            ejection_time = ?config.base_ejection_time * ejection.count,
            "backend ejected"
        );
    }
}

/// Runs the sweep every interval until `stop` fires or the service is gone.
pub(super) async fn run(service: Weak<ServiceInner>, stop: CancellationToken) {
    loop {
        let interval = match service.upgrade() {
            Some(service) => service
                .settings
                .load()
                .outlier
                .as_ref()
                .map_or(IDLE_SWEEP, |config| config.interval),
            None => return,
        };
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(interval) => {}
        }
        let Some(service) = service.upgrade() else {
            return;
        };
        sweep(&service, Instant::now());
    }
}

/// Returns backends whose ejection is over; forgives one past ejection of those that stayed in.
fn sweep(service: &ServiceInner, now: Instant) {
    let settings = service.settings.load();
    for backend in service.backends.load().iter() {
        let state = &backend.outlier;
        let mut ejection = state.lock();
        let Some(config) = &settings.outlier else {
            // Turned off: nothing stays ejected.
            state.ejected.store(false, Ordering::Relaxed);
            *ejection = Ejection::default();
            continue;
        };
        if !state.is_ejected() {
            ejection.count = ejection.count.saturating_sub(1);
            continue;
        }
        let until = ejection
            .since
            .map(|since| since + config.base_ejection_time * ejection.count);
        if until.is_none_or(|until| now >= until) {
            state.ejected.store(false, Ordering::Relaxed);
            tracing::info!(service = %service.name, backend = %backend.id, "ejected backend returned");
        }
    }
}

/// Whether an ejection with a `percent` chance happens.
fn enforced(percent: u32) -> bool {
    static ROLLS: AtomicU64 = AtomicU64::new(0);
    match percent {
        0 => false,
        100.. => true,
        _ => {
            crate::split::splitmix64(ROLLS.fetch_add(1, Ordering::Relaxed)) % 100
                < u64::from(percent)
        }
    }
}
