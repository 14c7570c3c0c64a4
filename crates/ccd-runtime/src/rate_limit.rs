//! A token bucket to cap calls per second (for ccd: calls to the cloud API,
//! shared by every reconcile that makes them), which a throttled answer can
//! pause for everyone.

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

/// Caps a rate of calls: on average `per_second`, with bursts of up to
/// `burst` after a quiet spell. Clones share one bucket.
///
/// Callers are served in the order they call [`acquire`](Self::acquire):
/// each takes its token at once (the bucket may go into debt) and sleeps
/// until that token would have been refilled, so nobody polls and nobody
/// is overtaken. [`pause`](Self::pause) holds every caller, those already
/// waiting too, until it ends; the rate then starts again from one token.
#[derive(Clone)]
pub struct RateLimiter {
    bucket: Arc<Mutex<Bucket>>,
    per_second: f64,
    burst: f64,
}

struct Bucket {
    // Below zero when callers are waiting: the debt they are sleeping off.
    tokens: f64,
    // In the future while paused: nothing refills before then.
    refilled_at: Instant,
    // How many pauses so far: a caller that slept through one takes a new token.
    pauses: u64,
}

/// A rate limit that cannot be enforced.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error(
    "a rate limit needs a positive, finite rate and a burst of at least 1 (got {per_second}/s, burst {burst})"
)]
pub struct InvalidRateLimit {
    per_second: f64,
    burst: u32,
}

impl fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimiter")
            .field("per_second", &self.per_second)
            .field("burst", &self.burst)
            .field("tokens", &self.lock().tokens)
            .finish()
    }
}

impl RateLimiter {
    /// A limiter allowing `per_second` calls per second on average, and
    /// `burst` at once; it starts full.
    pub fn new(per_second: f64, burst: u32) -> Result<Self, InvalidRateLimit> {
        if !(per_second.is_finite() && per_second > 0.0) || burst == 0 {
            return Err(InvalidRateLimit { per_second, burst });
        }
        Ok(Self {
            bucket: Arc::new(Mutex::new(Bucket {
                tokens: f64::from(burst),
                refilled_at: Instant::now(),
                pauses: 0,
            })),
            per_second,
            burst: f64::from(burst),
        })
    }

    /// Waits until one more call is allowed. If this future is dropped while
    /// waiting (a timeout, a shutdown), the token is given back.
    pub async fn acquire(&self) {
        loop {
            let (wait, pauses) = {
                let mut bucket = self.lock();
                let now = Instant::now();
                if now > bucket.refilled_at {
                    let refill =
                        now.duration_since(bucket.refilled_at).as_secs_f64() * self.per_second;
                    bucket.tokens = (bucket.tokens + refill).min(self.burst);
                    bucket.refilled_at = now;
                }
                bucket.tokens -= 1.0;
                let paused = bucket.refilled_at.saturating_duration_since(now);
                if bucket.tokens >= 0.0 && paused.is_zero() {
                    return;
                }
                let debt = Duration::from_secs_f64(-bucket.tokens.min(0.0) / self.per_second);
                (paused + debt, bucket.pauses)
            };
            let mut refund = Refund {
                limiter: self,
                pauses,
                armed: true,
            };
            tokio::time::sleep(wait).await;
            refund.armed = false;
            if self.lock().pauses == pauses {
                return;
            }
            // A pause came while this caller slept: it forgave the token
            // taken, so take a new one behind the pause.
        }
    }

    /// Holds every call, those already waiting included, for `length` from
    /// now (a throttled answer: the cloud asks us to slow down). A shorter
    /// pause never cuts a longer one short; after it calls resume at the
    /// rate, starting from a single token (no burst into a throttled API).
    pub fn pause(&self, length: Duration) {
        let mut bucket = self.lock();
        let until = Instant::now() + length;
        bucket.tokens = 1.0;
        bucket.refilled_at = bucket.refilled_at.max(until);
        bucket.pauses += 1;
    }

    fn lock(&self) -> MutexGuard<'_, Bucket> {
        // Nothing panics while holding the lock.
        self.bucket.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Gives a token back if its holder stops waiting for it (unless a pause
/// forgave it already).
struct Refund<'a> {
    limiter: &'a RateLimiter,
    pauses: u64,
    armed: bool,
}

impl Drop for Refund<'_> {
    fn drop(&mut self) {
        if self.armed {
            let mut bucket = self.limiter.lock();
            if bucket.pauses == self.pauses {
                bucket.tokens += 1.0;
            }
        }
    }
}
