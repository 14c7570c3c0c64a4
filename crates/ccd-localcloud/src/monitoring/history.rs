//! The load balancers' traffic over time: each backend service's proxy
//! counters, sampled into a bounded history from which any window's counts
//! are a difference of two samples.
//!
//! ccd-lb counts per backend (instance), and a backend's counters go when
//! it leaves the service (or start again when it comes back at another
//! address), so each sample adds what every backend counted since the
//! previous one to the service's own running totals, which only grow.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, SystemTime};

use ccd_lb::BackendStats;

/// How long samples are kept.
pub const RETENTION: Duration = Duration::from_secs(3600);
/// How often the sampler samples (queries sample too).
pub const SAMPLE_PERIOD: Duration = Duration::from_secs(1);

/// A backend service's totals since it was first sampled.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    /// Requests its backends answered or failed.
    pub requests: u64,
    /// Of those, 5xx answers, and failures the proxy turned into a 5xx.
    pub server_errors: u64,
}

impl Totals {
    fn minus(self, earlier: Totals) -> Totals {
        Totals {
            requests: self.requests.saturating_sub(earlier.requests),
            server_errors: self.server_errors.saturating_sub(earlier.server_errors),
        }
    }
}

#[derive(Debug, Default)]
struct ServiceHistory {
    /// Each backend's counters at the last sample.
    last: HashMap<String, (u64, u64)>,
    totals: Totals,
    /// Oldest first.
    samples: VecDeque<(SystemTime, Totals)>,
}

impl ServiceHistory {
    /// The totals of the last sample at or before `t`: everything counted
    /// until then. Before the oldest sample kept, the oldest (a service's
    /// first is zero; a window reaching back further than the retention is
    /// counted from there).
    fn counted_before(&self, t: SystemTime) -> Totals {
        let i = self.samples.partition_point(|(at, _)| *at <= t);
        self.samples
            .get(i.saturating_sub(1))
            .map(|(_, totals)| *totals)
            .unwrap_or_default()
    }

    /// The totals of the first sample at or after `t`, which holds
    /// everything counted by `t`; the latest when none is.
    fn counted_by(&self, t: SystemTime) -> Totals {
        let after = self.samples.partition_point(|(at, _)| *at <= t);
        let before = self.samples.partition_point(|(at, _)| *at < t);
        // Of samples taken at `t` itself, the last holds the most.
        let i = if after > before { after - 1 } else { before };
        self.samples
            .get(i)
            .or(self.samples.back())
            .map(|(_, totals)| *totals)
            .unwrap_or_default()
    }
}

/// Every backend service's samples, bounded in age and number.
#[derive(Debug)]
pub struct History {
    retention: Duration,
    /// Per service; queries sample too, so age alone does not bound the count.
    max_samples: usize,
    services: HashMap<String, ServiceHistory>,
    last_sample: Option<SystemTime>,
}

impl Default for History {
    fn default() -> Self {
        let per_period = RETENTION.as_secs() / SAMPLE_PERIOD.as_secs().max(1);
        History::new(
            RETENTION,
            usize::try_from(per_period * 2).unwrap_or(usize::MAX),
        )
    }
}

impl History {
    pub fn new(retention: Duration, max_samples: usize) -> Self {
        History {
            retention,
            max_samples: max_samples.max(2),
            services: HashMap::new(),
            last_sample: None,
        }
    }

    /// Records the counters of every running backend service at `now`.
    pub fn record(&mut self, now: SystemTime, services: Vec<(String, Vec<BackendStats>)>) {
        // A service new since the last sample had counted nothing then.
        let born = self
            .last_sample
            .filter(|t| *t < now)
            .or_else(|| now.checked_sub(SAMPLE_PERIOD))
            .unwrap_or(now);
        for (key, backends) in services {
            let history = self.services.entry(key).or_insert_with(|| ServiceHistory {
                samples: VecDeque::from([(born, Totals::default())]),
                ..ServiceHistory::default()
            });
            let mut seen = HashMap::with_capacity(backends.len());
            for b in backends {
                let (requests, errors) = history.last.get(&b.id).copied().unwrap_or((0, 0));
                // Lower than last time: the backend was replaced and counts from zero.
                let delta = |now: u64, before: u64| if now >= before { now - before } else { now };
                history.totals.requests += delta(b.requests, requests);
                history.totals.server_errors += delta(b.responses_5xx, errors);
                seen.insert(b.id, (b.requests, b.responses_5xx));
            }
            history.last = seen;
            history.samples.push_back((now, history.totals));
        }
        self.last_sample = Some(now);
        self.evict(now);
    }

    fn evict(&mut self, now: SystemTime) {
        let horizon = now
            .checked_sub(self.retention)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        let max = self.max_samples;
        self.services.retain(|_, h| {
            while h.samples.len() > max || h.samples.front().is_some_and(|(at, _)| *at < horizon) {
                h.samples.pop_front();
            }
            !h.samples.is_empty()
        });
    }

    /// What `service` counted in `[start, end]`, covered with whole
    /// sampling periods: from the last sample at or before `start` to the
    /// first at or after `end`. A window may so count up to a sampling
    /// period more at each edge, never less. `None` when the service has no
    /// samples (unknown, or gone for longer than the retention).
    pub fn window(&self, service: &str, start: SystemTime, end: SystemTime) -> Option<Totals> {
        let h = self.services.get(service)?;
        Some(h.counted_by(end.max(start)).minus(h.counted_before(start)))
    }

    /// Like [`History::window`], but ending at the last sample at or before
    /// `end`: windows that follow each other this way count each request once.
    pub fn window_before(
        &self,
        service: &str,
        start: SystemTime,
        end: SystemTime,
    ) -> Option<Totals> {
        let h = self.services.get(service)?;
        Some(
            h.counted_before(end.max(start))
                .minus(h.counted_before(start)),
        )
    }

    /// Samples kept, over all services (for the memory bound).
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.services.values().map(|h| h.samples.len()).sum()
    }
}
