use std::time::Duration;

/// Delay before restarting a process that exited, as Docker's restart
/// manager does it: 100 ms, doubled after each restart, capped (at 30 s here,
/// where Docker caps at 1 min), and back to 100 ms once a run has lasted
/// [`RESET_AFTER`], so a process that crashes now and then is restarted
/// promptly while a crash loop does not burn the CPU.
#[derive(Debug)]
pub(crate) struct Backoff {
    next: Duration,
}

const INITIAL: Duration = Duration::from_millis(100);
const MAX: Duration = Duration::from_secs(30);

/// A run at least this long counts as healthy and resets the back-off.
pub(crate) const RESET_AFTER: Duration = Duration::from_secs(10);

impl Backoff {
    pub(crate) fn new() -> Self {
        Self { next: INITIAL }
    }

    /// The delay before the next restart, given how long the last run lasted.
    pub(crate) fn next_delay(&mut self, last_run: Duration) -> Duration {
        if last_run >= RESET_AFTER {
            self.next = INITIAL;
        }
        let delay = self.next;
        self.next = (delay * 2).min(MAX);
        delay
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const SHORT: Duration = Duration::from_millis(5);

    #[test]
    fn doubles_up_to_the_cap() {
        let mut backoff = Backoff::new();
        let delays: Vec<u64> = (0..12)
            .map(|_| backoff.next_delay(SHORT).as_millis() as u64)
            .collect();
        assert_eq!(
            delays,
            [
                100, 200, 400, 800, 1600, 3200, 6400, 12800, 25600, 30000, 30000, 30000
            ]
        );
    }

    #[test]
    fn resets_after_a_long_run() {
        let mut backoff = Backoff::new();
        for _ in 0..5 {
            backoff.next_delay(SHORT);
        }
        assert_eq!(backoff.next_delay(RESET_AFTER), INITIAL);
        assert_eq!(backoff.next_delay(SHORT), INITIAL * 2);
    }
}
