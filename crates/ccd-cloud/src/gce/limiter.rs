//! A token bucket on tokio's clock: caps our calls per second so that a busy
//! controller stays under Compute's per-minute rate quotas instead of
//! learning about them from 403 rateLimitExceeded.

use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

#[derive(Debug)]
pub(crate) struct Limiter {
    /// Tokens per second; also the burst size.
    rate: f64,
    state: Mutex<Bucket>,
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

impl Limiter {
    /// `rate` calls per second (at least one every ten seconds).
    pub(crate) fn new(rate: f64) -> Self {
        let rate = if rate.is_finite() { rate.max(0.1) } else { 1e9 };
        Limiter {
            rate,
            state: Mutex::new(Bucket {
                tokens: rate,
                last: Instant::now(),
            }),
        }
    }

    /// Waits until a call may go out, and takes its token.
    pub(crate) async fn acquire(&self) {
        loop {
            let wait = {
                let mut b = self.state.lock().await;
                let now = Instant::now();
                let refill = now.saturating_duration_since(b.last).as_secs_f64() * self.rate;
                b.tokens = (b.tokens + refill).min(self.rate.max(1.0));
                b.last = now;
                if b.tokens >= 1.0 {
                    b.tokens -= 1.0;
                    return;
                }
                Duration::from_secs_f64((1.0 - b.tokens) / self.rate)
            };
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn calls_beyond_the_burst_wait_for_tokens() {
        let limiter = Limiter::new(10.0);
        let start = Instant::now();
        for _ in 0..30 {
            limiter.acquire().await;
        }
        // 10 from the full bucket, 20 more at 10 per second.
        let took = start.elapsed();
        assert!(
            took >= Duration::from_millis(1990) && took <= Duration::from_millis(2100),
            "{took:?}"
        );
    }
}
