//! Controller metrics: counters in memory, read as a snapshot or rendered in
//! the Prometheus text format for a `/metrics` endpoint.

use std::fmt::{self, Write as _};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// Upper bounds (seconds) of the reconcile duration histogram's buckets: a
/// reconcile ranges from a no-op (milliseconds) to waiting on the cloud
/// (minutes).
const DURATION_BUCKETS: [f64; 7] = [0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0];

/// One controller's metrics; cheap to clone, all clones count together.
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

struct Inner {
    controller: String,
    queue_depth: AtomicU64,
    in_flight: AtomicU64,
    ok: AtomicU64,
    requeue: AtomicU64,
    error: AtomicU64,
    retries: AtomicU64,
    // Behind a lock, not atomics, so a reader never sees a bucket counted
    // without the matching count and sum.
    durations: Mutex<Histogram>,
}

#[derive(Default)]
struct Histogram {
    count: u64,
    sum: Duration,
    per_bucket: [u64; DURATION_BUCKETS.len()],
}

/// How a reconcile ended, as counted.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Outcome {
    Ok,
    Requeue,
    Error,
}

/// The metrics at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricsSnapshot {
    /// The controller's name, the `controller` label.
    pub controller: String,
    /// Keys waiting for a reconcile.
    pub queue_depth: u64,
    /// Reconciles running now.
    pub in_flight: u64,
    /// Reconciles that succeeded and wait for the next change.
    pub reconciles_ok: u64,
    /// Reconciles that succeeded and asked to run again after a delay.
    pub reconciles_requeue: u64,
    /// Reconciles that failed.
    pub reconciles_error: u64,
    /// Reconciles queued again, with backoff, because they failed.
    pub retries: u64,
    /// How many reconciles were timed.
    pub duration_count: u64,
    /// Their total duration.
    pub duration_sum: Duration,
    /// Cumulative histogram buckets: (upper bound in seconds, reconciles
    /// that took at most that long).
    pub duration_buckets: Vec<(f64, u64)>,
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.snapshot().fmt(f)
    }
}

impl Metrics {
    pub(crate) fn new(controller: &str) -> Self {
        Self {
            inner: Arc::new(Inner {
                controller: controller.to_owned(),
                queue_depth: AtomicU64::new(0),
                in_flight: AtomicU64::new(0),
                ok: AtomicU64::new(0),
                requeue: AtomicU64::new(0),
                error: AtomicU64::new(0),
                retries: AtomicU64::new(0),
                durations: Mutex::new(Histogram::default()),
            }),
        }
    }

    pub(crate) fn set_queue(&self, depth: usize, in_flight: usize) {
        let inner = &self.inner;
        inner.queue_depth.store(depth as u64, Ordering::Relaxed);
        inner.in_flight.store(in_flight as u64, Ordering::Relaxed);
    }

    pub(crate) fn record(&self, outcome: Outcome, took: Duration) {
        let counter = match outcome {
            Outcome::Ok => &self.inner.ok,
            Outcome::Requeue => &self.inner.requeue,
            Outcome::Error => &self.inner.error,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        let mut durations = self.durations();
        durations.count += 1;
        durations.sum += took;
        let seconds = took.as_secs_f64();
        if let Some(bucket) = DURATION_BUCKETS.iter().position(|le| seconds <= *le) {
            durations.per_bucket[bucket] += 1;
        }
    }

    pub(crate) fn record_retry(&self) {
        self.inner.retries.fetch_add(1, Ordering::Relaxed);
    }

    /// The metrics now.
    pub fn snapshot(&self) -> MetricsSnapshot {
        let inner = &self.inner;
        let durations = self.durations();
        let mut cumulative = 0;
        let duration_buckets = DURATION_BUCKETS
            .iter()
            .zip(durations.per_bucket)
            .map(|(le, count)| {
                cumulative += count;
                (*le, cumulative)
            })
            .collect();
        MetricsSnapshot {
            controller: inner.controller.clone(),
            queue_depth: inner.queue_depth.load(Ordering::Relaxed),
            in_flight: inner.in_flight.load(Ordering::Relaxed),
            reconciles_ok: inner.ok.load(Ordering::Relaxed),
            reconciles_requeue: inner.requeue.load(Ordering::Relaxed),
            reconciles_error: inner.error.load(Ordering::Relaxed),
            retries: inner.retries.load(Ordering::Relaxed),
            duration_count: durations.count,
            duration_sum: durations.sum,
            duration_buckets,
        }
    }

    /// This controller's metrics in the Prometheus text exposition format.
    pub fn render(&self) -> String {
        Self::render_all([self])
    }

    /// Several controllers' metrics as one Prometheus text document (each
    /// metric family once, one series per controller), for a process that
    /// runs more than one controller behind one `/metrics`.
    pub fn render_all<'a>(all: impl IntoIterator<Item = &'a Metrics>) -> String {
        let snapshots: Vec<MetricsSnapshot> = all.into_iter().map(Metrics::snapshot).collect();
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = write_families(&mut out, &snapshots);
        out
    }

    fn durations(&self) -> std::sync::MutexGuard<'_, Histogram> {
        // Nothing panics while holding the lock.
        self.inner
            .durations
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

fn write_families(out: &mut String, snapshots: &[MetricsSnapshot]) -> fmt::Result {
    type Gauge = fn(&MetricsSnapshot) -> u64;
    let simple: [(&str, &str, &str, Gauge); 3] = [
        (
            "ccd_reconcile_queue_depth",
            "gauge",
            "Keys waiting for a reconcile.",
            |s| s.queue_depth,
        ),
        (
            "ccd_reconcile_in_flight",
            "gauge",
            "Reconciles running now.",
            |s| s.in_flight,
        ),
        (
            "ccd_reconcile_retries_total",
            "counter",
            "Reconciles queued again with backoff because they failed.",
            |s| s.retries,
        ),
    ];
    for (name, kind, help, value) in simple {
        writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}")?;
        for s in snapshots {
            let controller = escape(&s.controller);
            writeln!(out, "{name}{{controller=\"{controller}\"}} {}", value(s))?;
        }
    }

    let name = "ccd_reconciles_total";
    writeln!(out, "# HELP {name} Reconciles finished, by result.")?;
    writeln!(out, "# TYPE {name} counter")?;
    for s in snapshots {
        let controller = escape(&s.controller);
        for (result, count) in [
            ("ok", s.reconciles_ok),
            ("requeue", s.reconciles_requeue),
            ("error", s.reconciles_error),
        ] {
            writeln!(
                out,
                "{name}{{controller=\"{controller}\",result=\"{result}\"}} {count}"
            )?;
        }
    }

    let name = "ccd_reconcile_duration_seconds";
    writeln!(out, "# HELP {name} How long reconciles took.")?;
    writeln!(out, "# TYPE {name} histogram")?;
    for s in snapshots {
        let controller = escape(&s.controller);
        for (le, count) in &s.duration_buckets {
            writeln!(
                out,
                "{name}_bucket{{controller=\"{controller}\",le=\"{le}\"}} {count}"
            )?;
        }
        let count = s.duration_count;
        writeln!(
            out,
            "{name}_bucket{{controller=\"{controller}\",le=\"+Inf\"}} {count}"
        )?;
        let sum = s.duration_sum.as_secs_f64();
        writeln!(out, "{name}_sum{{controller=\"{controller}\"}} {sum}")?;
        writeln!(out, "{name}_count{{controller=\"{controller}\"}} {count}")?;
    }
    Ok(())
}

/// Escapes a label value as the text format requires.
fn escape(value: &str) -> String {
    value
        .replace('\\', r"\\")
        .replace('"', "\\\"")
        .replace('\n', r"\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_fill_cumulative_buckets() {
        let metrics = Metrics::new("apps");
        metrics.record(Outcome::Ok, Duration::from_millis(50));
        metrics.record(Outcome::Requeue, Duration::from_secs(2));
        metrics.record(Outcome::Error, Duration::from_secs(1000));
        metrics.record_retry();
        let s = metrics.snapshot();
        assert_eq!(
            (
                s.reconciles_ok,
                s.reconciles_requeue,
                s.reconciles_error,
                s.retries
            ),
            (1, 1, 1, 1)
        );
        assert_eq!(s.duration_count, 3);
        assert_eq!(s.duration_sum, Duration::from_millis(1_002_050));
        let counts: Vec<u64> = s.duration_buckets.iter().map(|(_, n)| *n).collect();
        // 50 ms is in every bucket, 2 s from the 5 s bucket on, 1000 s in none.
        assert_eq!(counts, [1, 1, 1, 2, 2, 2, 2]);
    }

    #[test]
    fn render_writes_each_family_once_with_a_series_per_controller() {
        let apps = Metrics::new("apps");
        let dns = Metrics::new("d\"n\\s");
        apps.set_queue(3, 2);
        apps.record(Outcome::Ok, Duration::from_millis(250));
        let text = Metrics::render_all([&apps, &dns]);
        assert_eq!(
            text.matches("# TYPE ccd_reconciles_total counter").count(),
            1
        );
        assert!(text.contains("ccd_reconcile_queue_depth{controller=\"apps\"} 3\n"));
        assert!(text.contains("ccd_reconcile_in_flight{controller=\"apps\"} 2\n"));
        assert!(text.contains("ccd_reconciles_total{controller=\"apps\",result=\"ok\"} 1\n"));
        assert!(
            text.contains(
                "ccd_reconcile_duration_seconds_bucket{controller=\"apps\",le=\"0.5\"} 1\n"
            )
        );
        assert!(text.contains(
            "ccd_reconcile_duration_seconds_bucket{controller=\"apps\",le=\"+Inf\"} 1\n"
        ));
        assert!(text.contains("ccd_reconcile_duration_seconds_sum{controller=\"apps\"} 0.25\n"));
        assert!(text.contains("ccd_reconcile_queue_depth{controller=\"d\\\"n\\\\s\"} 0\n"));
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let (_, value) = line.rsplit_once(' ').unwrap_or_default();
            assert!(value.parse::<f64>().is_ok(), "bad sample line: {line}");
        }
    }
}
