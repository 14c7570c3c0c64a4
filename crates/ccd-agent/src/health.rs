//! Judging check outcomes against the thresholds: a pure state machine.

use std::time::Duration;

use ccd_bus::messages::Health;
use tokio::time::Instant;

/// A change the agent raises an alert for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// `unhealthy_threshold` failures in a row (the last one's answer).
    BecameUnhealthy(String),
    /// `healthy_threshold` passes in a row after being unhealthy.
    Recovered,
}

/// The app's health from its checks' outcomes.
#[derive(Debug, Clone)]
pub struct Judge {
    healthy_threshold: u32,
    unhealthy_threshold: u32,
    initial_delay: Duration,
    started: Instant,
    health: Health,
    passes: u32,
    failures: u32,
    last_failure: Option<String>,
}

impl Judge {
    pub fn new(healthy_threshold: u32, unhealthy_threshold: u32, initial_delay: Duration) -> Self {
        Judge {
            healthy_threshold,
            unhealthy_threshold,
            initial_delay,
            started: Instant::now(),
            health: Health::Unknown,
            passes: 0,
            failures: 0,
            last_failure: None,
        }
    }

    pub fn health(&self) -> Health {
        self.health
    }

    /// The last failed check's answer while failing.
    pub fn failure(&self) -> Option<&str> {
        (self.failures > 0)
            .then_some(self.last_failure.as_deref())
            .flatten()
    }

    /// The app (re)started: its health is unknown again and failures do not
    /// count for the initial delay.
    pub fn restarted(&mut self) {
        *self = Judge::new(
            self.healthy_threshold,
            self.unhealthy_threshold,
            self.initial_delay,
        );
    }

    /// Counts one check's outcome (`Err` carries the failure's answer).
    pub fn record(&mut self, outcome: Result<(), String>) -> Option<Change> {
        match outcome {
            Ok(()) => {
                self.passes += 1;
                self.failures = 0;
                if self.passes >= self.healthy_threshold && self.health != Health::Healthy {
                    let was = self.health;
                    self.health = Health::Healthy;
                    return (was == Health::Unhealthy).then_some(Change::Recovered);
                }
            }
            Err(answer) => {
                // Still starting: a failure says nothing yet, as with Compute's
                // autohealing initial delay. A pass ends the delay early.
                if self.health == Health::Unknown
                    && self.passes == 0
                    && self.started.elapsed() < self.initial_delay
                {
                    self.last_failure = Some(answer);
                    return None;
                }
                self.passes = 0;
                self.failures += 1;
                self.last_failure = Some(answer.clone());
                if self.failures >= self.unhealthy_threshold && self.health != Health::Unhealthy {
                    self.health = Health::Unhealthy;
                    return Some(Change::BecameUnhealthy(answer));
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fail() -> Result<(), String> {
        Err("HTTP 500".into())
    }

    #[tokio::test(start_paused = true)]
    async fn thresholds_decide_and_changes_are_reported_once() {
        let mut j = Judge::new(2, 3, Duration::ZERO);
        assert_eq!(j.record(Ok(())), None);
        assert_eq!(j.health(), Health::Unknown, "one pass is not two");
        assert_eq!(j.record(Ok(())), None, "unknown to healthy is no alert");
        assert_eq!(j.health(), Health::Healthy);
        assert_eq!(j.record(fail()), None);
        assert_eq!(j.record(fail()), None);
        assert_eq!(j.failure(), Some("HTTP 500"));
        assert_eq!(
            j.record(fail()),
            Some(Change::BecameUnhealthy("HTTP 500".into()))
        );
        assert_eq!(j.record(fail()), None, "said once");
        assert_eq!(j.record(Ok(())), None);
        assert_eq!(j.health(), Health::Unhealthy);
        assert_eq!(j.record(Ok(())), Some(Change::Recovered));
        assert_eq!(j.failure(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn failures_during_the_initial_delay_do_not_count() {
        let mut j = Judge::new(1, 1, Duration::from_secs(30));
        assert_eq!(j.record(fail()), None);
        tokio::time::advance(Duration::from_secs(29)).await;
        assert_eq!(j.record(fail()), None);
        assert_eq!(j.health(), Health::Unknown);
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(matches!(j.record(fail()), Some(Change::BecameUnhealthy(_))));
        j.restarted();
        assert_eq!(j.health(), Health::Unknown);
        assert_eq!(j.record(fail()), None, "a restart starts the delay again");
    }
}
