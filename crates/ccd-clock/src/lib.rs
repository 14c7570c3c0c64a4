//! The one place ccd reads a clock. `clippy.toml` disallows
//! `std::time::Instant::now`, `SystemTime::now` and `jiff::Timestamp::now`
//! everywhere else, as linkerd2-proxy does, so that a test on Tokio's paused
//! clock moves every timestamp ccd writes, not only its timers.
//!
//! Monotonic time is Tokio's `Instant` (re-exported here): it is the real
//! clock in production and the paused one in a test. Wall time is the
//! system's, shifted by however far Tokio's clock stands from the real one,
//! which is nothing outside a paused test, so production follows NTP as
//! `SystemTime` does.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub use tokio::time::Instant;

/// Monotonic time, as Tokio's timers see it.
pub fn now() -> Instant {
    Instant::now()
}

/// Wall-clock time: the system's, moved as far as a paused test has moved
/// Tokio's clock.
#[allow(clippy::disallowed_methods)] // the one read of the system's clocks
pub fn wall() -> SystemTime {
    let tokio = Instant::now().into_std();
    let real = std::time::Instant::now();
    let system = SystemTime::now();
    match tokio.checked_duration_since(real) {
        Some(ahead) => system + ahead,
        None => system - real.saturating_duration_since(tokio),
    }
}

/// [`wall`] as time since the Unix epoch (zero for a clock set before 1970).
pub fn since_epoch() -> Duration {
    wall().duration_since(UNIX_EPOCH).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn wall_time_moves_with_a_paused_clock() {
        let before = wall();
        tokio::time::advance(Duration::from_secs(3600)).await;
        let moved = wall().duration_since(before).unwrap_or_default();
        // An hour of paused time, give or take the reads' own nanoseconds.
        assert!(moved > Duration::from_millis(3_599_900), "{moved:?}");
        assert!(moved < Duration::from_secs(3660), "{moved:?}");
    }

    #[test]
    #[allow(clippy::disallowed_methods)]
    fn wall_time_is_the_systems_outside_a_paused_test() {
        let system = SystemTime::now();
        let ours = wall();
        let apart = match ours.duration_since(system) {
            Ok(d) => d,
            Err(e) => e.duration(),
        };
        assert!(apart < Duration::from_secs(1), "{apart:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn monotonic_time_is_tokios() {
        let start = now();
        tokio::time::sleep(Duration::from_secs(90)).await;
        assert_eq!(now() - start, Duration::from_secs(90));
    }
}
