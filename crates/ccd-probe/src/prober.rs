//! [`Prober`]: probes one target at a steady cadence until stopped.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::task::{JoinHandle, JoinSet};
use tokio::time::MissedTickBehavior;
use tracing::{Instrument, debug, info, info_span};

use crate::client::{Failure, ProbeClient};
use crate::{ProbeCounts, ProbeError, ProbeTarget};

/// Fewest probes allowed in flight at once, however long the interval.
const MIN_IN_FLIGHT: u128 = 4;
/// Most probes allowed in flight at once, however short the interval.
const MAX_IN_FLIGHT: u128 = 256;

/// Sends `GET url+path` every `interval` until stopped or dropped, counting failures.
///
/// Each probe runs as a task of its own, so one that hangs (until its `timeout`) never delays
/// the next; probes beyond the in-flight limit are not sent and count as failed. Stopping or
/// dropping the prober aborts its task and every probe still in flight.
#[derive(Debug)]
pub struct Prober {
    target: ProbeTarget,
    tally: Arc<Mutex<Tally>>,
    task: JoinHandle<()>,
}

/// Counts and whether the last probe failed (to log only when that changes).
#[derive(Debug, Default)]
struct Tally {
    counts: ProbeCounts,
    failing: bool,
}

impl Prober {
    /// Starts probing `target` now, counting on from `initial`. Must be called from within a
    /// tokio runtime; the probes run on it.
    pub fn start(target: ProbeTarget, initial: ProbeCounts) -> Result<Self, ProbeError> {
        for (field, value) in [("interval", target.interval), ("timeout", target.timeout)] {
            if value.is_zero() {
                return Err(ProbeError::InvalidTarget {
                    field,
                    value: format!("{value:?}"),
                    reason: "it must be longer than zero, e.g. 1s".to_owned(),
                });
            }
        }
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| ProbeError::NoRuntime)?;
        let client = Arc::new(ProbeClient::new(&target)?);
        let tally = Arc::new(Mutex::new(Tally {
            counts: initial,
            failing: false,
        }));
        let span = info_span!("probe", url = %client.url());
        let run = run(
            client,
            target.interval,
            in_flight_limit(&target),
            Arc::clone(&tally),
        );
        let task = runtime.spawn(run.instrument(span));
        Ok(Self {
            target,
            tally,
            task,
        })
    }

    /// The counts so far, the initial ones included.
    pub fn counts(&self) -> ProbeCounts {
        lock(&self.tally).counts
    }

    /// What this prober probes.
    pub fn target(&self) -> &ProbeTarget {
        &self.target
    }

    /// Whether it still probes: false once stopped, or if its task ended by a panic.
    pub fn is_running(&self) -> bool {
        !self.task.is_finished()
    }

    /// Stops probing; probes in flight are abandoned and not counted. Dropping does the same.
    pub fn stop(self) {}
}

impl Drop for Prober {
    fn drop(&mut self) {
        // Aborting the loop drops its JoinSet, which aborts every probe still in flight.
        self.task.abort();
    }
}

/// Enough for every probe that can still be waiting on its timeout, plus slack for a busy
/// scheduler: the limit is there for a runtime too loaded to fire timeouts, not to cut a
/// slow-but-answering app short.
fn in_flight_limit(target: &ProbeTarget) -> usize {
    let interval = target.interval.as_nanos().max(1);
    let needed = target.timeout.as_nanos().div_ceil(interval) + 2;
    usize::try_from(needed.clamp(MIN_IN_FLIGHT, MAX_IN_FLIGHT)).unwrap_or(usize::MAX)
}

async fn run(client: Arc<ProbeClient>, interval: Duration, limit: usize, tally: Arc<Mutex<Tally>>) {
    let mut ticker = tokio::time::interval(interval);
    // A late tick (a busy machine) shifts the cadence instead of sending a burst to catch up.
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut in_flight = JoinSet::new();
    loop {
        ticker.tick().await;
        while in_flight.try_join_next().is_some() {}
        if in_flight.len() >= limit {
            record(&tally, Err(Failure::TooManyInFlight(limit)));
            continue;
        }
        let client = Arc::clone(&client);
        let tally = Arc::clone(&tally);
        in_flight.spawn(
            async move {
                let outcome = client.probe().await;
                record(&tally, outcome);
            }
            .in_current_span(),
        );
    }
}

fn record(tally: &Mutex<Tally>, outcome: Result<reqwest::StatusCode, Failure>) {
    let was_failing = {
        let mut tally = lock(tally);
        tally.counts.sent += 1;
        tally.counts.failed += u64::from(outcome.is_err());
        std::mem::replace(&mut tally.failing, outcome.is_err())
    };
    match (outcome, was_failing) {
        (Ok(status), true) => info!(%status, "probes answer again"),
        (Ok(_), false) => {}
        (Err(failure), false) => info!(error = %failure, "probes started failing"),
        (Err(failure), true) => debug!(error = %failure, "probe failed"),
    }
}

fn lock(tally: &Mutex<Tally>) -> std::sync::MutexGuard<'_, Tally> {
    // Plain counters, updated in one step: a panic elsewhere cannot leave them half-written.
    tally.lock().unwrap_or_else(PoisonError::into_inner)
}
