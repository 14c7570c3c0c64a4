//! A token bucket to cap calls per second (for ccd: calls to the cloud API,
//! shared by every reconcile that makes them).

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
/// is overtaken.
#[derive(Clone)]
pub struct RateLimiter {
    bucket: Arc<Mutex<Bucket>>,
    per_second: f64,
    burst: f64,
}

struct Bucket {
    // Below zero when callers are waiting: the debt they are sleeping off.
    tokens: f64,
    refilled_at: Instant,
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
            })),
            per_second,
            burst: f64::from(burst),
        })
    }

    /// Waits until one more call is allowed. If this future is dropped while
    /// waiting (a timeout, a shutdown), the token is given back.
    pub async fn acquire(&self) {
        let wait = {
            let mut bucket = self.lock();
            let now = Instant::now();
            let refill = now.duration_since(bucket.refilled_at).as_secs_f64() * self.per_second;
            bucket.tokens = (bucket.tokens + refill).min(self.burst);
            bucket.refilled_at = now;
            bucket.tokens -= 1.0;
            if bucket.tokens >= 0.0 {
                return;
            }
            Duration::from_secs_f64(-bucket.tokens / self.per_second)
        };
        let mut refund = Refund {
            limiter: self,
            armed: true,
        };
        tokio::time::sleep(wait).await;
        refund.armed = false;
    }

    fn lock(&self) -> MutexGuard<'_, Bucket> {
        // Nothing panics while holding the lock.
        self.bucket.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Gives a token back if its holder stops waiting for it.
struct Refund<'a> {
    limiter: &'a RateLimiter,
    armed: bool,
}

impl Drop for Refund<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.limiter.lock().tokens += 1.0;
        }
    }
}
