//! Live state of one backend: health, capacity, load and its upstream connections.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;

use super::outlier::OutlierState;
use crate::health::{HealthState, HealthTracker};
use crate::shard::Sharded;
use crate::stats::{BackendCounters, BackendShard, BackendStats};
use crate::upstream::{UpstreamPool, UpstreamSender};

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
    /// Failures in a row and ejection, for outlier detection.
    pub(crate) outlier: OutlierState,
    counters: BackendCounters,
    upstream: ArcSwap<UpstreamPool>,
    /// Epoch of the next pool, so that a connection from a retired pool is never checked into
    /// its successor.
    next_epoch: AtomicU64,
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
            outlier: OutlierState::default(),
            counters: BackendCounters::default(),
            upstream: ArcSwap::from_pointee(UpstreamPool::new(0)),
            next_epoch: AtomicU64::new(1),
        }
    }

    /// Whether new requests may go to this backend.
    pub(crate) fn is_serving(&self) -> bool {
        self.is_available() && !self.outlier.is_ejected()
    }

    /// Whether it would serve, were it not ejected: in the pool outlier detection limits.
    pub(crate) fn is_available(&self) -> bool {
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
        let epoch = self.next_epoch.fetch_add(1, Ordering::Relaxed);
        let retired = self.upstream.swap(Arc::new(UpstreamPool::new(epoch)));
        retired.retire(draining_timeout);
    }

    /// An idle connection of the current pool, and the pool's epoch.
    pub(crate) fn idle_connection(&self) -> (Option<UpstreamSender>, u64) {
        // A guard rather than an `Arc` clone: no write to the shared reference count.
        let pool = self.upstream.load();
        (pool.checkout(), pool.epoch())
    }

    /// The current pool, to open a connection in.
    pub(crate) fn upstream(&self) -> Arc<UpstreamPool> {
        self.upstream.load_full()
    }

    /// A connection of the pool of `epoch` is free again; reused only if that pool is current.
    pub(crate) fn connection_done(&self, sender: UpstreamSender, epoch: u64) {
        let pool = self.upstream.load();
        if pool.epoch() == epoch {
            pool.checkin(sender);
        }
    }

    pub(crate) fn outstanding(&self) -> u64 {
        self.counters.outstanding()
    }

    /// Counts a request as outstanding (for least-request balancing) until the returned guard
    /// is dropped.
    pub(crate) fn start_request(self: Arc<Self>) -> InFlight {
        let shard = Sharded::<BackendShard>::index();
        self.counters
            .0
            .get(shard)
            .outstanding
            .fetch_add(1, Ordering::Relaxed);
        InFlight {
            backend: self,
            shard,
        }
    }

    /// Counts a request handed to a connection to this backend.
    pub(crate) fn count_request(&self) {
        self.counters
            .local()
            .requests
            .fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn count_5xx(&self) {
        self.counters
            .local()
            .responses_5xx
            .fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn count_denied(&self) {
        self.counters
            .local()
            .denied_connections
            .fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn stats(&self) -> BackendStats {
        self.counters.snapshot(&self.id)
    }
}

/// A request in flight to a backend; dropping it marks the request finished.
#[derive(Debug)]
pub(crate) struct InFlight {
    backend: Arc<Backend>,
    shard: usize,
}

impl InFlight {
    pub(crate) fn backend(&self) -> &Arc<Backend> {
        &self.backend
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.backend
            .counters
            .0
            .get(self.shard)
            .outstanding
            .fetch_sub(1, Ordering::Relaxed);
    }
}

fn to_milli(capacity_scaler: f32) -> u32 {
    // Validation keeps the scaler in 0..=1 already; the cast maps NaN to 0 (drained).
    (capacity_scaler.clamp(0.0, 1.0) * CAPACITY_SCALE).round() as u32
}
