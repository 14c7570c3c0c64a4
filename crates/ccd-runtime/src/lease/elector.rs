//! The elector: reads and writes the lease around the pure decisions, and
//! publishes this process's [`Role`].

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::watch;
use tokio::time::{Instant, sleep_until};
use tracing::{info, warn};

use super::decide::{LeaderNext, Leading, Seen, StandbyNext, leader_next, standby_next};
use super::{Leadership, LeaseRecord, LeaseStore, LeaseTimes, LeaseWriteError, Role};

/// What the elector counted, for `/metrics`.
#[derive(Debug, Default)]
pub struct ElectorMetrics {
    /// Times this process acquired the lease.
    pub acquired: AtomicU64,
    /// Times it stopped leading without being asked to: a renewal refused
    /// (someone else wrote the lease) or the renew deadline passed.
    pub lost: AtomicU64,
    /// Reads of a lease whose content is not a lease record (edited by hand).
    pub unreadable: AtomicU64,
    /// Reads and writes the store failed.
    pub store_errors: AtomicU64,
}

/// Starts an election for `holder` on `store`: the [`Leadership`] to share,
/// the counters, and the loop to run until `stop`, after which a leader
/// gives the lease up (after it has stopped acting) so a standby takes over
/// at once.
pub fn run_elector<S: LeaseStore>(
    store: Arc<S>,
    holder: String,
    times: LeaseTimes,
    stop: impl Future<Output = ()> + Send + 'static,
) -> (
    Leadership,
    Arc<ElectorMetrics>,
    impl Future<Output = ()> + Send + 'static,
) {
    let (tx, rx) = watch::channel(Role::Standby { leader: None });
    let metrics = Arc::new(ElectorMetrics::default());
    let elector = Elector {
        store,
        holder,
        times,
        role: tx,
        metrics: metrics.clone(),
        seen: None,
        leading: None,
    };
    (Leadership::from_watch(rx), metrics, elector.run(stop))
}

struct Elector<S> {
    store: Arc<S>,
    holder: String,
    times: LeaseTimes,
    role: watch::Sender<Role>,
    metrics: Arc<ElectorMetrics>,
    seen: Option<Seen>,
    leading: Option<Leading>,
}

impl<S: LeaseStore> Elector<S> {
    async fn run(mut self, stop: impl Future<Output = ()> + Send) {
        let location = self.store.lease_location();
        info!(lease = %location, holder = %self.holder, "joining the leader election");
        tokio::pin!(stop);
        loop {
            tokio::select! {
                () = &mut stop => break,
                () = self.step() => {}
            }
        }
        self.release().await;
    }

    /// One step: a leader renews or steps down, a standby looks and maybe
    /// acquires. Each ends with at most one sleep.
    async fn step(&mut self) {
        match self.leading {
            Some(leading) => match leader_next(&leading, Instant::now(), &self.times) {
                LeaderNext::Sleep(until) => sleep_until(until).await,
                LeaderNext::StepDown => {
                    warn!(
                        epoch = leading.epoch,
                        "no renewal within the renew deadline: stopped leading"
                    );
                    self.metrics.lost.fetch_add(1, Ordering::Relaxed);
                    self.stand_by(None);
                }
                LeaderNext::Renew => self.renew(leading).await,
            },
            None => self.look().await,
        }
    }

    async fn look(&mut self) {
        let lease = match self.store.read_lease().await {
            Ok(lease) => lease,
            Err(e) => {
                self.metrics.store_errors.fetch_add(1, Ordering::Relaxed);
                warn!(error = %e, "cannot read the lease; looking again");
                sleep_until(Instant::now() + self.times.retry_every).await;
                return;
            }
        };
        let record = lease.as_ref().map(|l| LeaseRecord::parse(&l.bytes));
        let holder = match &record {
            Some(Ok(r)) => Some(r.holder.clone()),
            Some(Err(e)) => {
                self.metrics.unreadable.fetch_add(1, Ordering::Relaxed);
                warn!(error = %e, "the lease object is not a lease record (edited by hand?); it is taken over once it has not changed for the whole lease");
                None
            }
            None => None,
        };
        self.publish(Role::Standby {
            leader: holder.clone().filter(|h| !h.is_empty()),
        });
        let generation = lease.as_ref().map(|l| l.generation);
        let now = Instant::now();
        let (seen, next) = standby_next(self.seen, generation, now, &self.times);
        self.seen = seen;
        // A lease its holder gave up is free at once: it stopped acting first.
        let next = match (holder.as_deref(), generation) {
            (Some(""), Some(g)) => StandbyNext::Acquire(Some(g)),
            _ => next,
        };
        match next {
            StandbyNext::Sleep(until) => sleep_until(until).await,
            StandbyNext::Acquire(expected) => self.acquire(expected).await,
        }
    }

    async fn acquire(&mut self, expected: Option<u64>) {
        let started = Instant::now();
        match self.store.write_lease(self.record(0), expected).await {
            Ok(generation) => {
                self.metrics.acquired.fetch_add(1, Ordering::Relaxed);
                info!(epoch = generation, "acquired the lease: leading");
                self.lead(Leading {
                    epoch: generation,
                    generation,
                    renewed_at: started,
                    stamped: false,
                    retry_at: None,
                });
            }
            Err(LeaseWriteError::Moved) => {
                info!("another controller acquired the lease first");
                self.seen = None;
            }
            Err(LeaseWriteError::Store(e)) => {
                self.metrics.store_errors.fetch_add(1, Ordering::Relaxed);
                warn!(error = %e, "cannot write the lease; looking again");
                sleep_until(Instant::now() + self.times.retry_every).await;
            }
        }
    }

    async fn renew(&mut self, leading: Leading) {
        let started = Instant::now();
        let written = self
            .store
            .write_lease(self.record(leading.epoch), Some(leading.generation))
            .await;
        match written {
            Ok(generation) => self.lead(Leading {
                generation,
                renewed_at: started,
                stamped: true,
                retry_at: None,
                ..leading
            }),
            Err(LeaseWriteError::Moved) => {
                warn!(
                    epoch = leading.epoch,
                    "the lease was written by someone else: stopped leading"
                );
                self.metrics.lost.fetch_add(1, Ordering::Relaxed);
                self.stand_by(None);
            }
            Err(LeaseWriteError::Store(e)) => {
                self.metrics.store_errors.fetch_add(1, Ordering::Relaxed);
                warn!(error = %e, epoch = leading.epoch, "cannot renew the lease; trying again until the renew deadline");
                self.leading = Some(Leading {
                    retry_at: Some(Instant::now() + self.times.retry_every),
                    ..leading
                });
            }
        }
    }

    fn lead(&mut self, leading: Leading) {
        self.leading = Some(leading);
        self.seen = None;
        self.publish(Role::Leader {
            epoch: leading.epoch,
            valid_until: Some(leading.renewed_at + self.times.renew_deadline),
        });
    }

    fn stand_by(&mut self, leader: Option<String>) {
        self.leading = None;
        self.seen = None;
        self.publish(Role::Standby { leader });
    }

    fn publish(&self, role: Role) {
        self.role.send_if_modified(|current| {
            let changed = *current != role;
            *current = role;
            changed
        });
    }

    /// Gives the lease up on the way out: stop acting first, then write a
    /// record naming no holder, conditional on our own last write.
    async fn release(&mut self) {
        let Some(leading) = self.leading.take() else {
            return;
        };
        self.publish(Role::Standby { leader: None });
        let mut record = self.record_of(leading.epoch);
        record.holder.clear();
        match self
            .store
            .write_lease(record.to_bytes(), Some(leading.generation))
            .await
        {
            Ok(_) => info!(epoch = leading.epoch, "gave the lease up"),
            Err(e) => warn!(error = %e, "could not give the lease up; it expires by itself"),
        }
    }

    fn record(&self, epoch: u64) -> Vec<u8> {
        self.record_of(epoch).to_bytes()
    }

    fn record_of(&self, epoch: u64) -> LeaseRecord {
        LeaseRecord {
            holder: self.holder.clone(),
            epoch,
            renewed_at_unix_ms: u64::try_from(ccd_clock::since_epoch().as_millis()).unwrap_or(0),
            lease_seconds: self.times.lease.as_secs(),
        }
    }
}
