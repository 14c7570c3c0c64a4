//! Live state of one backend: health, capacity, load and its upstream connections.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;

use crate::health::{HealthState, HealthTracker};
use crate::stats::BackendStats;
use crate::upstream::UpstreamPool;

/// Capacity is kept in thousandths so that it can live in an atomic.
const CAPACITY_SCALE: f32 = 1000.0;

#[derive(Debug)]
pub(crate) struct Backend {
    pub(crate) id: String,
    pub(crate) addr: SocketAddr,
    capacity_milli: AtomicU32,
    health: AtomicU8,
    /// Only the prober touches this; the published state is `health`.
    pub(crate) tracker: Mutex<HealthTracker>,
    removed: AtomicBool,
    outstanding: AtomicU64,
    requests: AtomicU64,
    responses_5xx: AtomicU64,
    denied_connections: AtomicU64,
    upstream: ArcSwap<UpstreamPool>,
}

impl Backend {
    pub(crate) fn new(id: String, addr: SocketAddr, capacity_scaler: f32) -> Self {
        Self {
            id,
            addr,
            capacity_milli: AtomicU32::new(to_milli(capacity_scaler)),
            health: AtomicU8::new(HealthState::Unknown.to_u8()),
            tracker: Mutex::new(HealthTracker::default()),
            removed: AtomicBool::new(false),
            outstanding: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            responses_5xx: AtomicU64::new(0),
            denied_connections: AtomicU64::new(0),
            upstream: ArcSwap::from_pointee(UpstreamPool::default()),
        }
    }

    /// Whether new requests may go to this backend.
    pub(crate) fn is_serving(&self) -> bool {
        self.capacity_milli() > 0
            && self.health() == HealthState::Healthy
            && !self.removed.load(Ordering::Relaxed)
    }

    pub(crate) fn health(&self) -> HealthState {
        HealthState::from_u8(self.health.load(Ordering::Relaxed))
    }

    pub(crate) fn set_health(&self, state: HealthState) {
        self.health.store(state.to_u8(), Ordering::Relaxed);
    }

    pub(crate) fn capacity_milli(&self) -> u32 {
        self.capacity_milli.load(Ordering::Relaxed)
    }

    pub(crate) fn capacity_scaler(&self) -> f32 {
        self.capacity_milli() as f32 / CAPACITY_SCALE
    }

    /// Sets the capacity; going to zero drains the backend.
    pub(crate) fn set_capacity(&self, capacity_scaler: f32, draining_timeout: Duration) {
        let milli = to_milli(capacity_scaler);
        let previous = self.capacity_milli.swap(milli, Ordering::Relaxed);
        if milli == 0 && previous != 0 {
            tracing::info!(backend = %self.id, "backend drained (capacity 0)");
            self.retire_connections(draining_timeout);
        }
    }

    /// Takes the backend out of its pool for good.
    pub(crate) fn remove(&self, draining_timeout: Duration) {
        if !self.removed.swap(true, Ordering::Relaxed) {
            tracing::info!(backend = %self.id, "backend removed from its service");
            self.retire_connections(draining_timeout);
        }
    }

    /// Retires the current connections and starts a fresh pool for later traffic.
    fn retire_connections(&self, draining_timeout: Duration) {
        let retired = self.upstream.swap(Arc::new(UpstreamPool::default()));
        retired.retire(draining_timeout);
    }

    pub(crate) fn upstream(&self) -> Arc<UpstreamPool> {
        self.upstream.load_full()
    }

    pub(crate) fn outstanding(&self) -> u64 {
        self.outstanding.load(Ordering::Relaxed)
    }

    /// Counts a request as outstanding (for least-request balancing) until the returned guard
    /// is dropped.
    pub(crate) fn start_request(self: &Arc<Self>) -> InFlight {
        self.outstanding.fetch_add(1, Ordering::Relaxed);
        InFlight {
            backend: Arc::clone(self),
        }
    }

    /// Counts a request handed to a connection to this backend.
    pub(crate) fn count_request(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn count_5xx(&self) {
        self.responses_5xx.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn count_denied(&self) {
        self.denied_connections.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn stats(&self) -> BackendStats {
        BackendStats {
            id: self.id.clone(),
            requests: self.requests.load(Ordering::Relaxed),
            responses_5xx: self.responses_5xx.load(Ordering::Relaxed),
            active_requests: self.outstanding(),
            denied_connections: self.denied_connections.load(Ordering::Relaxed),
        }
    }
}

/// A request in flight to a backend; dropping it marks the request finished.
#[derive(Debug)]
pub(crate) struct InFlight {
    backend: Arc<Backend>,
}

impl InFlight {
    pub(crate) fn backend(&self) -> &Arc<Backend> {
        &self.backend
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.backend.outstanding.fetch_sub(1, Ordering::Relaxed);
    }
}

fn to_milli(capacity_scaler: f32) -> u32 {
    // Validation keeps the scaler in 0..=1 already; the cast maps NaN to 0 (drained).
    (capacity_scaler.clamp(0.0, 1.0) * CAPACITY_SCALE).round() as u32
}
