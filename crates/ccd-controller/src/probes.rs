//! The synthetic probe's port: during a rollout the controller keeps a
//! steady probe running through the app's load balancer and reads its
//! counts on every pass. The adapter (`ccd-probe`) sends real requests; the
//! tests use a fake.

use crate::decide::ProbeOrder;
use crate::record::ProbeTotals;

pub trait Probes: Send + Sync + 'static {
    /// Keeps a probe running for `app` as `order` says: a probe already
    /// running for the same key and target goes on; otherwise one starts,
    /// counting from `order.initial`.
    fn ensure(&self, app: &str, order: &ProbeOrder);
    /// The running probe's key and counts.
    fn counts(&self, app: &str) -> Option<(String, ProbeTotals)>;
    fn stop(&self, app: &str);
}

/// Real requests through the load balancer (`ccd-probe`), five a second.
#[derive(Debug, Clone, Default)]
pub struct HttpProbes {
    inner: ccd_probe::Probes,
}

/// How often a rollout probe is sent, and how long it may take.
const PROBE_INTERVAL: std::time::Duration = std::time::Duration::from_millis(200);
const PROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

impl Probes for HttpProbes {
    fn ensure(&self, app: &str, order: &ProbeOrder) {
        let target = ccd_probe::ProbeTarget {
            url: order.url.clone(),
            path: order.path.clone(),
            host: None,
            interval: PROBE_INTERVAL,
            timeout: PROBE_TIMEOUT,
        };
        let initial = ccd_probe::ProbeCounts {
            sent: order.initial.sent,
            failed: order.initial.failed,
        };
        if let Err(e) = self.inner.ensure(app, &order.key, target, initial) {
            tracing::warn!(app, error = %e, "cannot probe the rollout; it is judged on health alone");
        }
    }

    fn counts(&self, app: &str) -> Option<(String, ProbeTotals)> {
        self.inner.counts(app).map(|(key, c)| {
            (
                key,
                ProbeTotals {
                    sent: c.sent,
                    failed: c.failed,
                },
            )
        })
    }

    fn stop(&self, app: &str) {
        self.inner.stop(app);
    }
}

/// No probe at all: rollouts record no probe counts.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProbes;

impl Probes for NoProbes {
    fn ensure(&self, _app: &str, _order: &ProbeOrder) {}

    fn counts(&self, _app: &str) -> Option<(String, ProbeTotals)> {
        None
    }

    fn stop(&self, _app: &str) {}
}

/// Wall-clock time as the controller tells it: the system's time when it
/// started, advanced by Tokio's clock since, so tests on a paused clock
/// move it as they advance time.
#[derive(Debug, Clone, Copy)]
pub struct WallClock {
    base: std::time::SystemTime,
    start: tokio::time::Instant,
}

impl WallClock {
    pub fn new() -> WallClock {
        WallClock::starting_at(ccd_clock::wall())
    }

    pub fn starting_at(base: std::time::SystemTime) -> WallClock {
        WallClock {
            base,
            start: tokio::time::Instant::now(),
        }
    }

    pub fn now(&self) -> crate::record::Timestamp {
        crate::record::Timestamp::new(self.base + self.start.elapsed())
    }
}

impl Default for WallClock {
    fn default() -> Self {
        WallClock::new()
    }
}
