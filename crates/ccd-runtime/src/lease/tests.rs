#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::{Instant, advance, sleep, sleep_until};

use super::decide::{LeaderNext, Leading, Seen, StandbyNext, leader_next, standby_next};
use super::*;

/// One lease object with growing generations, as Cloud Storage keeps it.
#[derive(Debug, Default)]
struct Bucket {
    object: Option<StoredLease>,
    last_generation: u64,
    /// Every call fails until then: the store lost for everyone.
    down_until: Option<Instant>,
}

impl Bucket {
    fn put(&mut self, bytes: Vec<u8>) -> u64 {
        self.last_generation += 1000;
        let generation = self.last_generation;
        self.object = Some(StoredLease { bytes, generation });
        generation
    }
}

/// A controller's connection to the bucket: it can hang (a frozen process
/// or a partition), which the others do not see.
#[derive(Debug, Clone)]
struct Connection {
    bucket: Arc<Mutex<Bucket>>,
    hang_until: Arc<Mutex<Option<Instant>>>,
}

impl Connection {
    async fn wait_if_hung(&self) {
        let until = *self.hang_until.lock().unwrap();
        if let Some(until) = until {
            sleep_until(until).await;
        }
    }
}

impl LeaseStore for Connection {
    fn lease_location(&self) -> String {
        "memory://lease".to_owned()
    }

    async fn read_lease(&self) -> Result<Option<StoredLease>, String> {
        self.wait_if_hung().await;
        let bucket = self.bucket.lock().unwrap();
        if bucket.down_until.is_some_and(|t| Instant::now() < t) {
            return Err("connection refused".to_owned());
        }
        Ok(bucket.object.clone())
    }

    async fn write_lease(
        &self,
        bytes: Vec<u8>,
        expected: Option<u64>,
    ) -> Result<u64, LeaseWriteError> {
        self.wait_if_hung().await;
        let mut bucket = self.bucket.lock().unwrap();
        if bucket.down_until.is_some_and(|t| Instant::now() < t) {
            return Err(LeaseWriteError::Store("connection refused".to_owned()));
        }
        let current = bucket.object.as_ref().map(|o| o.generation);
        if current != expected {
            return Err(LeaseWriteError::Moved);
        }
        Ok(bucket.put(bytes))
    }
}

struct Controller {
    leadership: Leadership,
    metrics: Arc<ElectorMetrics>,
    connection: Connection,
    task: JoinHandle<()>,
    stop: Option<oneshot::Sender<()>>,
}

fn join(bucket: &Arc<Mutex<Bucket>>, name: &str) -> Controller {
    let connection = Connection {
        bucket: bucket.clone(),
        hang_until: Arc::default(),
    };
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let (leadership, metrics, elector) = run_elector(
        Arc::new(connection.clone()),
        name.to_owned(),
        LeaseTimes::default(),
        async move {
            let _ = stop_rx.await;
        },
    );
    Controller {
        leadership,
        metrics,
        connection,
        task: tokio::spawn(elector),
        stop: Some(stop_tx),
    }
}

/// Steps time by 100 ms at a time for `span`, checking at every step that
/// at most one controller may act.
async fn run_for(span: Duration, controllers: &[&Controller]) {
    let end = Instant::now() + span;
    while Instant::now() < end {
        sleep(Duration::from_millis(100)).await;
        let acting = controllers
            .iter()
            .filter(|c| c.leadership.epoch().is_some())
            .count();
        assert!(acting <= 1, "{acting} controllers acting at once");
    }
}

fn leaders(controllers: &[&Controller]) -> usize {
    controllers
        .iter()
        .filter(|c| c.leadership.epoch().is_some())
        .count()
}

#[tokio::test(start_paused = true)]
async fn of_two_controllers_one_leads() {
    let bucket = Arc::default();
    let (a, b) = (join(&bucket, "a"), join(&bucket, "b"));
    run_for(Duration::from_secs(60), &[&a, &b]).await;
    assert_eq!(leaders(&[&a, &b]), 1);
    let total: u64 = [&a, &b]
        .iter()
        .map(|c| {
            c.metrics
                .acquired
                .load(std::sync::atomic::Ordering::Relaxed)
        })
        .sum();
    assert_eq!(total, 1, "the leader kept its lease for a minute");
    let leader = if a.leadership.epoch().is_some() {
        "a"
    } else {
        "b"
    };
    let standby = if leader == "a" { &b } else { &a };
    assert_eq!(
        standby.leadership.role(),
        Role::Standby {
            leader: Some(leader.to_owned())
        }
    );
}

#[tokio::test(start_paused = true)]
async fn a_killed_leader_is_replaced_within_twenty_seconds_with_a_larger_epoch() {
    let bucket = Arc::default();
    let a = join(&bucket, "a");
    run_for(Duration::from_secs(1), &[&a]).await;
    let first = a.leadership.epoch().unwrap();
    let b = join(&bucket, "b");
    run_for(Duration::from_secs(30), &[&a, &b]).await;
    assert!(b.leadership.epoch().is_none(), "b waited");
    // kill -9: the loop is gone, nothing is released.
    a.task.abort();
    let killed = Instant::now();
    while b.leadership.epoch().is_none() {
        sleep(Duration::from_millis(100)).await;
        assert!(killed.elapsed() < Duration::from_secs(20), "no hand-over");
    }
    assert!(
        killed.elapsed() >= Duration::from_secs(10),
        "{:?}",
        killed.elapsed()
    );
    assert!(b.leadership.epoch().unwrap() > first);
}

#[tokio::test(start_paused = true)]
async fn a_frozen_leader_stops_acting_before_anyone_takes_over() {
    let bucket = Arc::default();
    let a = join(&bucket, "a");
    run_for(Duration::from_secs(1), &[&a]).await;
    let b = join(&bucket, "b");
    run_for(Duration::from_secs(10), &[&a, &b]).await;
    // a's calls to the store hang for a minute; b's do not.
    *a.connection.hang_until.lock().unwrap() = Some(Instant::now() + Duration::from_secs(60));
    let frozen = Instant::now();
    // run_for asserts at every step that a stopped before b started.
    while b.leadership.epoch().is_none() {
        run_for(Duration::from_millis(100), &[&a, &b]).await;
        assert!(frozen.elapsed() < Duration::from_secs(25), "no hand-over");
    }
    assert!(a.leadership.epoch().is_none());
    // Once its calls come back, a finds the lease moved and stays a standby.
    run_for(Duration::from_secs(70), &[&a, &b]).await;
    assert!(a.leadership.epoch().is_none());
    assert!(b.leadership.epoch().is_some());
}

#[tokio::test(start_paused = true)]
async fn a_store_lost_for_a_minute_stops_every_leader_and_one_leads_after() {
    let bucket: Arc<Mutex<Bucket>> = Arc::default();
    let a = join(&bucket, "a");
    run_for(Duration::from_secs(1), &[&a]).await;
    let b = join(&bucket, "b");
    run_for(Duration::from_secs(10), &[&a, &b]).await;
    assert_eq!(leaders(&[&a, &b]), 1);
    let lost = Instant::now();
    bucket.lock().unwrap().down_until = Some(lost + Duration::from_secs(60));
    // No renewal can succeed: the leader stops by its renew deadline.
    run_for(Duration::from_secs(11), &[&a, &b]).await;
    assert_eq!(leaders(&[&a, &b]), 0, "nobody acts without the store");
    run_for(Duration::from_secs(49), &[&a, &b]).await;
    assert_eq!(leaders(&[&a, &b]), 0);
    let errors: u64 = [&a, &b]
        .iter()
        .map(|c| {
            c.metrics
                .store_errors
                .load(std::sync::atomic::Ordering::Relaxed)
        })
        .sum();
    assert!(errors > 0, "the outage is counted");
    // Back: one leads again within a lease and a renewal or two.
    let back = Instant::now();
    while leaders(&[&a, &b]) == 0 {
        run_for(Duration::from_millis(100), &[&a, &b]).await;
        assert!(
            back.elapsed() < Duration::from_secs(25),
            "nobody leads after the outage"
        );
    }
    run_for(Duration::from_secs(30), &[&a, &b]).await;
    assert_eq!(leaders(&[&a, &b]), 1);
}

#[tokio::test(start_paused = true)]
async fn a_leader_that_stops_gives_the_lease_up_at_once() {
    let bucket = Arc::default();
    let mut a = join(&bucket, "a");
    run_for(Duration::from_secs(1), &[&a]).await;
    let b = join(&bucket, "b");
    run_for(Duration::from_secs(5), &[&a, &b]).await;
    a.stop.take().unwrap().send(()).unwrap();
    let stopped = Instant::now();
    while b.leadership.epoch().is_none() {
        run_for(Duration::from_millis(100), &[&a, &b]).await;
    }
    assert!(
        stopped.elapsed() <= Duration::from_secs(3),
        "{:?}",
        stopped.elapsed()
    );
    a.task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_lease_edited_by_hand_is_counted_and_taken_over_by_one() {
    let bucket: Arc<Mutex<Bucket>> = Arc::default();
    let (a, b) = (join(&bucket, "a"), join(&bucket, "b"));
    run_for(Duration::from_secs(10), &[&a, &b]).await;
    let before = a.leadership.epoch().or(b.leadership.epoch()).unwrap();
    bucket
        .lock()
        .unwrap()
        .put(b"holder: me, I promise".to_vec());
    run_for(Duration::from_secs(30), &[&a, &b]).await;
    assert_eq!(leaders(&[&a, &b]), 1);
    let after = a.leadership.epoch().or(b.leadership.epoch()).unwrap();
    assert!(after > before);
    let unreadable: u64 = [&a, &b]
        .iter()
        .map(|c| {
            c.metrics
                .unreadable
                .load(std::sync::atomic::Ordering::Relaxed)
        })
        .sum();
    assert!(unreadable > 0);
}

#[tokio::test(start_paused = true)]
async fn a_controller_alone_by_configuration_always_acts() {
    let alone = Leadership::alone();
    advance(Duration::from_secs(86_400)).await;
    assert_eq!(alone.epoch(), Some(0));
}

#[test]
fn timings_that_could_overlap_two_leaders_are_refused() {
    assert!(LeaseTimes::default().check().is_ok());
    let late = LeaseTimes {
        renew_deadline: Duration::from_secs(20),
        ..LeaseTimes::default()
    };
    assert!(late.check().is_err());
    let slow = LeaseTimes {
        renew_every: Duration::from_secs(12),
        ..LeaseTimes::default()
    };
    assert!(slow.check().is_err());
}

#[tokio::test(start_paused = true)]
async fn a_leader_renews_on_time_and_steps_down_at_its_deadline() {
    let times = LeaseTimes::default();
    let t0 = Instant::now();
    let leading = Leading {
        epoch: 7,
        generation: 9,
        renewed_at: t0,
        stamped: true,
        retry_at: None,
    };
    assert_eq!(
        leader_next(&leading, t0, &times),
        LeaderNext::Sleep(t0 + times.renew_every)
    );
    assert_eq!(
        leader_next(&leading, t0 + times.renew_every, &times),
        LeaderNext::Renew
    );
    let unstamped = Leading {
        stamped: false,
        ..leading
    };
    assert_eq!(leader_next(&unstamped, t0, &times), LeaderNext::Renew);
    let retrying = Leading {
        retry_at: Some(t0 + Duration::from_secs(8)),
        ..leading
    };
    assert_eq!(
        leader_next(&retrying, t0 + Duration::from_secs(7), &times),
        LeaderNext::Sleep(t0 + Duration::from_secs(8))
    );
    assert_eq!(
        leader_next(&retrying, t0 + times.renew_deadline, &times),
        LeaderNext::StepDown
    );
}

#[tokio::test(start_paused = true)]
async fn a_standby_waits_the_whole_lease_for_one_generation() {
    let times = LeaseTimes::default();
    let t0 = Instant::now();
    let (seen, next) = standby_next(None, None, t0, &times);
    assert_eq!((seen, next), (None, StandbyNext::Acquire(None)));
    let (seen, next) = standby_next(None, Some(5), t0, &times);
    assert_eq!(
        seen,
        Some(Seen {
            generation: 5,
            since: t0
        })
    );
    assert_eq!(next, StandbyNext::Sleep(t0 + times.retry_every));
    // A renewal (a new generation) starts the wait again.
    let later = t0 + Duration::from_secs(14);
    let (renewed, _) = standby_next(seen, Some(6), later, &times);
    assert_eq!(renewed.unwrap().since, later);
    let (_, next) = standby_next(seen, Some(5), t0 + times.lease, &times);
    assert_eq!(next, StandbyNext::Acquire(Some(5)));
}
