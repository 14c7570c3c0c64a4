//! The controller: runs the reflector and reconciles due keys, at most
//! `concurrency` at once and never one key twice at once.

use std::collections::HashMap;
use std::fmt;
use std::future::{Future, poll_fn};
use std::pin::pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use tokio::task::{Id, JoinError, JoinSet};
use tokio::time::{Instant, sleep_until, timeout};
use tracing::{Instrument as _, Span, debug, info, info_span, warn};

use crate::backoff::{Backoff, jitter_both_ways};
use crate::cache::Cache;
use crate::metrics::{Metrics, Outcome};
use crate::queue::Trigger;
use crate::reflector::{Pacing, reflect};
use crate::source::Source;

/// What a successful reconcile asks for next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Reconcile again after about this long (±10 %), even if nothing
    /// changes: for state outside the source that needs watching (a cloud
    /// operation in progress, drift).
    Requeue(Duration),
    /// Reconcile again only when the object changes or someone triggers it.
    AwaitChange,
}

/// Converges the world to one object. Called with `None` when the object is
/// gone, to clean up. Must be idempotent: it may run again for the same
/// state at any time. An error is retried with per-key exponential backoff.
pub trait Reconciler<T>: Send + Sync + 'static {
    /// Why a reconcile failed; logged, then retried.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Converges `key` towards `object`.
    fn reconcile(
        &self,
        key: &str,
        object: Option<Arc<T>>,
    ) -> impl Future<Output = Result<Action, Self::Error>> + Send;
}

/// How a controller runs.
#[derive(Debug, Clone)]
pub struct Config {
    /// Names the controller in logs and metrics (the `controller` label).
    pub name: String,
    /// Most reconciles running at once (at least 1).
    pub concurrency: usize,
    /// How often to list everything, catching changes the hints missed.
    pub relist_interval: Duration,
    /// Retry delays for a key whose reconcile keeps failing; reset by a
    /// success.
    pub error_backoff: Backoff,
    /// Retry delays for a failing full list.
    pub list_backoff: Backoff,
    /// How long shutdown waits for running reconciles before cancelling them.
    pub drain_timeout: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            name: "controller".to_owned(),
            concurrency: 8,
            relist_interval: Duration::from_secs(30),
            error_backoff: Backoff {
                initial: Duration::from_secs(1),
                max: Duration::from_secs(300),
            },
            list_backoff: Backoff {
                initial: Duration::from_secs(1),
                max: Duration::from_secs(30),
            },
            drain_timeout: Duration::from_secs(30),
        }
    }
}

/// Watches a [`Source`] and reconciles every key whose object changed,
/// until shut down. Take its [`cache`](Self::cache),
/// [`trigger`](Self::trigger) and [`metrics`](Self::metrics) handles before
/// calling [`run`](Self::run).
pub struct Controller<S: Source, R> {
    source: S,
    reconciler: Arc<R>,
    config: Config,
    cache: Cache<S::Object>,
    trigger: Trigger,
    metrics: Metrics,
}

impl<S: Source, R> fmt::Debug for Controller<S, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Controller")
            .field("config", &self.config)
            .field("cache", &self.cache)
            .field("trigger", &self.trigger)
            .finish_non_exhaustive()
    }
}

impl<S: Source, R: Reconciler<S::Object>> Controller<S, R> {
    /// A controller that is not running yet.
    pub fn new(source: S, reconciler: R, config: Config) -> Self {
        let metrics = Metrics::new(&config.name);
        Self {
            source,
            reconciler: Arc::new(reconciler),
            cache: Cache::new(),
            trigger: Trigger::new(metrics.clone()),
            metrics,
            config,
        }
    }

    /// The objects as last seen; ready after the first full list.
    pub fn cache(&self) -> Cache<S::Object> {
        self.cache.clone()
    }

    /// A handle to queue keys for reconciling.
    pub fn trigger(&self) -> Trigger {
        self.trigger.clone()
    }

    /// This controller's metrics.
    pub fn metrics(&self) -> Metrics {
        self.metrics.clone()
    }

    /// Runs until `shutdown` resolves; then starts nothing new, waits up to
    /// the drain timeout for running reconciles (cancelling the rest), and
    /// returns. Nothing is reconciled before the first full list succeeded.
    pub async fn run(self, shutdown: impl Future) {
        let span = info_span!("controller", controller = %self.config.name);
        self.run_until(shutdown).instrument(span).await;
    }

    async fn run_until(self, shutdown: impl Future) {
        let pacing = Pacing {
            relist_interval: self.config.relist_interval,
            list_backoff: self.config.list_backoff,
        };
        let mut reflector = pin!(reflect(&self.source, &self.cache, &self.trigger, &pacing));
        let mut shutdown = pin!(shutdown);
        let mut runs = Runs {
            reconciler: Arc::clone(&self.reconciler),
            cache: self.cache.clone(),
            trigger: self.trigger.clone(),
            metrics: self.metrics.clone(),
            config: &self.config,
            tasks: JoinSet::new(),
            running: HashMap::new(),
            failures: HashMap::new(),
        };

        loop {
            // Checked before starting anything, so no reconcile starts once
            // shutdown has resolved.
            if poll_fn(|cx| Poll::Ready(shutdown.as_mut().poll(cx).is_ready())).await {
                break;
            }
            let wake_at = if self.cache.is_ready() {
                runs.start_due()
            } else {
                None
            };
            tokio::select! {
                _ = &mut shutdown => break,
                never = &mut reflector => match never {},
                () = self.cache.wait_ready(), if !self.cache.is_ready() => {}
                () = self.trigger.woken() => {}
                Some(done) = runs.tasks.join_next_with_id(), if !runs.tasks.is_empty() => {
                    runs.finish(done);
                }
                () = sleep_until(wake_at.unwrap_or_else(Instant::now)), if wake_at.is_some() => {}
            }
        }

        runs.drain().await;
    }
}

/// Reconciles in flight, and each key's consecutive failures.
struct Runs<'a, T, R: Reconciler<T>> {
    reconciler: Arc<R>,
    cache: Cache<T>,
    trigger: Trigger,
    metrics: Metrics,
    config: &'a Config,
    tasks: JoinSet<Result<Action, R::Error>>,
    running: HashMap<Id, Running>,
    failures: HashMap<String, u32>,
}

struct Running {
    key: String,
    started: Instant,
    span: Span,
}

impl<T: Send + Sync + 'static, R: Reconciler<T>> Runs<'_, T, R> {
    /// Starts due keys while there is room; returns when to look again, or
    /// `None` if only a finishing reconcile (or a new trigger) can start more.
    fn start_due(&mut self) -> Option<Instant> {
        while self.tasks.len() < self.config.concurrency.max(1) {
            let Some(key) = self.trigger.start_due(Instant::now()) else {
                return self.trigger.next_due();
            };
            self.start(key);
        }
        None
    }

    fn start(&mut self, key: String) {
        let object = self.cache.get(&key);
        let span = info_span!("reconcile", key = %key, gone = object.is_none());
        let reconciler = Arc::clone(&self.reconciler);
        let task_key = key.clone();
        let task = async move { reconciler.reconcile(&task_key, object).await };
        let handle = self.tasks.spawn(task.instrument(span.clone()));
        let started = Instant::now();
        self.running
            .insert(handle.id(), Running { key, started, span });
    }

    /// Records how a reconcile ended and queues its key again if needed.
    fn finish(&mut self, done: Result<(Id, Result<Action, R::Error>), JoinError>) {
        let (id, result) = match done {
            Ok((id, result)) => (id, Ok(result)),
            Err(join_error) => (join_error.id(), Err(join_error)),
        };
        let Some(Running { key, started, span }) = self.running.remove(&id) else {
            return;
        };
        let _entered = span.enter();
        let took = started.elapsed();
        let next = match result {
            Ok(Ok(action)) => {
                self.failures.remove(&key);
                let (outcome, delay) = match action {
                    Action::AwaitChange => (Outcome::Ok, None),
                    Action::Requeue(delay) => (Outcome::Requeue, Some(jitter_both_ways(delay))),
                };
                self.metrics.record(outcome, took);
                debug!(?took, requeue_in = ?delay, "reconciled");
                delay
            }
            Ok(Err(error)) => {
                let (failures, delay) = self.failed(&key, took);
                warn!(error = %error, failures, retry_in = ?delay, "reconcile failed");
                Some(delay)
            }
            Err(join_error) => {
                let (failures, delay) = self.failed(&key, took);
                warn!(error = %join_error, failures, retry_in = ?delay, "reconcile panicked or was cancelled");
                Some(delay)
            }
        };
        let next = next.map(|delay| Instant::now() + delay);
        self.trigger.finish(&key, next);
    }

    /// Counts a failure of `key`; returns its consecutive failures and the
    /// backoff before its retry.
    fn failed(&mut self, key: &str, took: Duration) -> (u32, Duration) {
        let failures = self.failures.entry(key.to_owned()).or_insert(0);
        *failures = failures.saturating_add(1);
        self.metrics.record(Outcome::Error, took);
        self.metrics.record_retry();
        (
            *failures,
            self.config.error_backoff.jittered_delay(*failures),
        )
    }

    /// Waits for running reconciles, up to the drain timeout.
    async fn drain(&mut self) {
        if self.tasks.is_empty() {
            info!("stopped");
            return;
        }
        info!(
            running = self.tasks.len(),
            "shutting down: waiting for running reconciles"
        );
        let drained = timeout(self.config.drain_timeout, async {
            while let Some(done) = self.tasks.join_next_with_id().await {
                self.finish(done);
            }
        })
        .await;
        if drained.is_err() {
            warn!(
                cancelled = self.tasks.len(),
                "drain timeout passed; cancelling the remaining reconciles"
            );
            self.tasks.shutdown().await;
        }
        info!("stopped");
    }
}
