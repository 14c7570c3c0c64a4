#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The rate limiter on Tokio's paused clock.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use ccd_runtime::RateLimiter;
use tokio::time::Instant;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[tokio::test(start_paused = true)]
async fn a_burst_passes_at_once_then_calls_are_spaced_by_the_rate() {
    let limiter = RateLimiter::new(10.0, 3).unwrap();
    let t0 = Instant::now();
    let mut at = Vec::new();
    for _ in 0..7 {
        limiter.acquire().await;
        at.push(t0.elapsed());
    }
    assert_eq!(
        at,
        [ms(0), ms(0), ms(0), ms(100), ms(200), ms(300), ms(400)]
    );
}

#[tokio::test(start_paused = true)]
async fn a_quiet_spell_refills_the_burst_but_no_more() {
    let limiter = RateLimiter::new(2.0, 2).unwrap();
    limiter.acquire().await;
    limiter.acquire().await;
    tokio::time::sleep(Duration::from_secs(60)).await;
    let t0 = Instant::now();
    for _ in 0..3 {
        limiter.acquire().await;
    }
    assert_eq!(
        t0.elapsed(),
        ms(500),
        "two from the refilled burst, then one at 2/s"
    );
}

#[tokio::test(start_paused = true)]
async fn concurrent_callers_share_one_rate() {
    let limiter = RateLimiter::new(5.0, 1).unwrap();
    let t0 = Instant::now();
    let times = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let limiter = limiter.clone();
        let times = Arc::clone(&times);
        tasks.push(tokio::spawn(async move {
            for _ in 0..5 {
                limiter.acquire().await;
                times.lock().unwrap().push(t0.elapsed());
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let mut times = times.lock().unwrap().clone();
    times.sort();
    let expected: Vec<Duration> = (0..20).map(|i| ms(200 * i)).collect();
    assert_eq!(times, expected, "20 calls at 5/s, never two in one slot");
}

#[tokio::test(start_paused = true)]
async fn giving_up_on_a_wait_returns_the_token() {
    let limiter = RateLimiter::new(1.0, 1).unwrap();
    limiter.acquire().await;
    let t0 = Instant::now();
    let gave_up = tokio::time::timeout(ms(100), limiter.acquire()).await;
    assert!(gave_up.is_err());
    // The abandoned caller's slot (t = 1 s) goes to the next one.
    limiter.acquire().await;
    assert_eq!(t0.elapsed(), ms(1000));
}

#[test]
fn a_rate_limit_must_be_enforceable() {
    assert!(RateLimiter::new(0.0, 1).is_err());
    assert!(RateLimiter::new(-1.0, 1).is_err());
    assert!(RateLimiter::new(f64::NAN, 1).is_err());
    assert!(RateLimiter::new(f64::INFINITY, 1).is_err());
    let error = RateLimiter::new(10.0, 0).unwrap_err();
    assert!(error.to_string().contains("burst 0"), "{error}");
}

#[tokio::test(start_paused = true)]
async fn a_pause_holds_every_call_then_the_rate_starts_again_without_a_burst() {
    let limiter = RateLimiter::new(10.0, 10).unwrap();
    limiter.acquire().await;
    limiter.pause(Duration::from_secs(2));
    let t0 = Instant::now();
    let mut at = Vec::new();
    for _ in 0..3 {
        limiter.acquire().await;
        at.push(t0.elapsed());
    }
    assert_eq!(at, [ms(2000), ms(2100), ms(2200)], "nine tokens were left");
}

#[tokio::test(start_paused = true)]
async fn callers_already_waiting_are_held_by_a_pause_and_keep_their_spacing() {
    let limiter = RateLimiter::new(1.0, 1).unwrap();
    limiter.acquire().await;
    let t0 = Instant::now();
    let times = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for _ in 0..2 {
        let limiter = limiter.clone();
        let times = Arc::clone(&times);
        tasks.push(tokio::spawn(async move {
            limiter.acquire().await;
            times.lock().unwrap().push(t0.elapsed());
        }));
        tokio::task::yield_now().await;
    }
    // They would go at 1 s and 2 s.
    tokio::time::sleep(ms(500)).await;
    limiter.pause(Duration::from_secs(3));
    for task in tasks {
        task.await.unwrap();
    }
    let mut times = times.lock().unwrap().clone();
    times.sort();
    assert_eq!(times, [ms(3500), ms(4500)]);
}

#[tokio::test(start_paused = true)]
async fn a_shorter_pause_never_cuts_a_longer_one_short() {
    let limiter = RateLimiter::new(100.0, 1).unwrap();
    let t0 = Instant::now();
    limiter.pause(Duration::from_secs(5));
    limiter.pause(Duration::from_secs(1));
    limiter.acquire().await;
    assert_eq!(t0.elapsed(), ms(5000));
}

#[tokio::test(start_paused = true)]
async fn a_caller_giving_up_after_a_pause_returns_no_token_the_pause_forgave() {
    let limiter = RateLimiter::new(1.0, 1).unwrap();
    limiter.acquire().await;
    let gave_up = tokio::time::timeout(ms(100), async {
        let waiting = limiter.acquire();
        tokio::pin!(waiting);
        tokio::select! {
            () = &mut waiting => {}
            () = tokio::time::sleep(ms(50)) => limiter.pause(Duration::from_secs(2)),
        }
        waiting.await;
    })
    .await;
    assert!(gave_up.is_err());
    let t0 = Instant::now();
    limiter.acquire().await;
    limiter.acquire().await;
    // One token when the pause ends (at 2.05 s), the next a second later.
    assert_eq!(t0.elapsed(), ms(2950));
}
