//! Exponential backoff and jitter.
//!
//! Jitter spreads retries and requeues of many keys over time, so that a
//! cloud outage that failed 500 apps at once does not retry all 500 in the
//! same second. Its randomness comes from a tiny internal generator: the
//! quality needed is "not in lockstep", not cryptographic.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// How long to wait before retrying something that keeps failing: `initial`
/// doubling with every consecutive failure, never more than `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The wait after the first failure.
    pub initial: Duration,
    /// The longest wait, however many failures.
    pub max: Duration,
}

impl Backoff {
    /// The wait after `failures` consecutive failures (1 = the first), before
    /// jitter.
    pub(crate) fn delay(&self, failures: u32) -> Duration {
        let doublings = failures.saturating_sub(1).min(31);
        self.initial
            .saturating_mul(1_u32 << doublings)
            .min(self.max)
    }

    /// The wait after `failures` consecutive failures, less up to
    /// [`JITTER`]: jitter only shortens, so `max` is a real ceiling and
    /// consecutive waits still visibly double.
    pub(crate) fn jittered_delay(&self, failures: u32) -> Duration {
        self.delay(failures).mul_f64(1.0 - JITTER * unit_random())
    }
}

/// The fraction by which a backoff or requeue delay is randomised.
pub(crate) const JITTER: f64 = 0.1;

/// `delay` moved randomly by up to [`JITTER`] either way.
pub(crate) fn jitter_both_ways(delay: Duration) -> Duration {
    delay.mul_f64(1.0 + JITTER * (2.0 * unit_random() - 1.0))
}

/// A uniform random number in `[0, 1)`.
///
/// SplitMix64 over a shared counter: lock-free, seeded once per process from
/// the standard library's random hasher keys.
fn unit_random() -> f64 {
    const GOLDEN_GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;
    static STATE: OnceLock<AtomicU64> = OnceLock::new();
    let state = STATE.get_or_init(|| AtomicU64::new(RandomState::new().hash_one(0_u64)));
    let mut z = state
        .fetch_add(GOLDEN_GAMMA, Ordering::Relaxed)
        .wrapping_add(GOLDEN_GAMMA);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    // The top 53 bits fill an f64 mantissa exactly.
    (z >> 11) as f64 / (1_u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delay_doubles_from_initial_and_stops_at_max() {
        let backoff = Backoff {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(300),
        };
        let delays: Vec<u64> = (1..=11).map(|n| backoff.delay(n).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300]);
        assert_eq!(backoff.delay(u32::MAX), Duration::from_secs(300));
    }

    #[test]
    fn jitter_stays_within_bounds_and_varies() {
        let backoff = Backoff {
            initial: Duration::from_secs(10),
            max: Duration::from_secs(10),
        };
        let mut seen = std::collections::HashSet::new();
        for _ in 0..1000 {
            let down = backoff.jittered_delay(5);
            assert!(down >= Duration::from_secs(9) && down <= Duration::from_secs(10));
            let both = jitter_both_ways(Duration::from_secs(10));
            assert!(both >= Duration::from_secs(9) && both <= Duration::from_secs(11));
            seen.insert(both);
        }
        assert!(seen.len() > 900, "jitter should rarely repeat");
    }
}
