//! The work queue: which keys are due for a reconcile, and when.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::Notify;
use tokio::time::Instant;

use crate::metrics::Metrics;

/// Keys waiting for a reconcile, each once, at its earliest due time.
///
/// A key is in exactly one of three places: waiting (`due_at`/`by_time`),
/// running, or both running and held (triggered again while running; it is
/// released into waiting when its run ends, so one key never runs twice at
/// once and a trigger during a run is never lost).
#[derive(Debug, Default)]
struct WorkQueue {
    due_at: HashMap<String, Instant>,
    // Ordered by time, then key: the front is the next key due.
    by_time: BTreeSet<(Instant, String)>,
    running: HashSet<String>,
    held: HashMap<String, Instant>,
}

impl WorkQueue {
    /// Queues `key` for `at`, unless it is already queued for earlier.
    fn schedule(&mut self, key: String, at: Instant) {
        if self.running.contains(&key) {
            let held = self.held.entry(key).or_insert(at);
            *held = (*held).min(at);
            return;
        }
        if let Some(&queued) = self.due_at.get(&key) {
            if queued <= at {
                return;
            }
            self.by_time.remove(&(queued, key.clone()));
        }
        self.due_at.insert(key.clone(), at);
        self.by_time.insert((at, key));
    }

    /// Takes the key due first, if it is due by `now`, and marks it running.
    fn start_due(&mut self, now: Instant) -> Option<String> {
        let (at, _) = self.by_time.first()?;
        if *at > now {
            return None;
        }
        let (_, key) = self.by_time.pop_first()?;
        self.due_at.remove(&key);
        self.running.insert(key.clone());
        Some(key)
    }

    /// Ends `key`'s run and queues it again for the earlier of `next` and any
    /// trigger that arrived during the run.
    fn finish(&mut self, key: &str, next: Option<Instant>) {
        self.running.remove(key);
        if let Some(at) = self.held.remove(key) {
            self.schedule(key.to_owned(), at);
        }
        if let Some(at) = next {
            self.schedule(key.to_owned(), at);
        }
    }

    fn next_due(&self) -> Option<Instant> {
        self.by_time.first().map(|(at, _)| *at)
    }

    /// Keys waiting, including those held behind their own running reconcile.
    fn depth(&self) -> usize {
        self.due_at.len() + self.held.len()
    }
}

/// A handle to ask a controller to reconcile a key: for the reflector, and
/// for anything else that knows a key needs another look (another
/// controller, the REST API). Cheap to clone.
#[derive(Clone)]
pub struct Trigger {
    shared: Arc<Shared>,
}

struct Shared {
    queue: Mutex<WorkQueue>,
    // Wakes the controller loop when a key is queued, so it can re-plan
    // its next wake-up. Notify keeps one permit, so no wake-up is lost.
    wake: Notify,
    metrics: Metrics,
}

impl fmt::Debug for Trigger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Trigger")
            .field("queue", &*self.lock())
            .finish()
    }
}

impl Trigger {
    pub(crate) fn new(metrics: Metrics) -> Self {
        Self {
            shared: Arc::new(Shared {
                queue: Mutex::new(WorkQueue::default()),
                wake: Notify::new(),
                metrics,
            }),
        }
    }

    /// Asks for `key` to be reconciled as soon as possible. Repeated pushes
    /// of a key that is still waiting collapse into one reconcile; a push
    /// while the key is being reconciled runs it once more afterwards.
    pub fn push(&self, key: impl Into<String>) {
        self.schedule(key.into(), Instant::now());
    }

    pub(crate) fn push_all(&self, keys: impl IntoIterator<Item = String>) {
        let now = Instant::now();
        self.update(|queue| {
            for key in keys {
                queue.schedule(key, now);
            }
        });
        self.shared.wake.notify_one();
    }

    pub(crate) fn schedule(&self, key: String, at: Instant) {
        self.update(|queue| queue.schedule(key, at));
        self.shared.wake.notify_one();
    }

    pub(crate) fn start_due(&self, now: Instant) -> Option<String> {
        self.update(|queue| queue.start_due(now))
    }

    pub(crate) fn finish(&self, key: &str, next: Option<Instant>) {
        self.update(|queue| queue.finish(key, next));
    }

    pub(crate) fn next_due(&self) -> Option<Instant> {
        self.lock().next_due()
    }

    pub(crate) async fn woken(&self) {
        self.shared.wake.notified().await;
    }

    fn update<R>(&self, f: impl FnOnce(&mut WorkQueue) -> R) -> R {
        let mut queue = self.lock();
        let result = f(&mut queue);
        self.shared
            .metrics
            .set_queue(queue.depth(), queue.running.len());
        result
    }

    fn lock(&self) -> MutexGuard<'_, WorkQueue> {
        // Nothing panics while holding the lock, so a poisoned queue is
        // still consistent.
        self.shared
            .queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_key_is_queued_once_at_its_earliest_time() {
        let now = Instant::now();
        let mut queue = WorkQueue::default();
        queue.schedule("a".into(), now + Duration::from_secs(5));
        queue.schedule("a".into(), now + Duration::from_secs(1));
        queue.schedule("a".into(), now + Duration::from_secs(9));
        assert_eq!(queue.depth(), 1);
        assert_eq!(queue.next_due(), Some(now + Duration::from_secs(1)));
        assert_eq!(queue.start_due(now), None);
        assert_eq!(
            queue.start_due(now + Duration::from_secs(1)).as_deref(),
            Some("a")
        );
        assert_eq!(queue.depth(), 0);
    }

    #[test]
    fn keys_start_in_due_order() {
        let now = Instant::now();
        let mut queue = WorkQueue::default();
        queue.schedule("late".into(), now + Duration::from_secs(2));
        queue.schedule("early".into(), now);
        let later = now + Duration::from_secs(3);
        assert_eq!(queue.start_due(later).as_deref(), Some("early"));
        assert_eq!(queue.start_due(later).as_deref(), Some("late"));
        assert_eq!(queue.start_due(later), None);
    }

    #[test]
    fn a_trigger_during_a_run_is_held_until_the_run_ends() {
        let now = Instant::now();
        let mut queue = WorkQueue::default();
        queue.schedule("a".into(), now);
        assert_eq!(queue.start_due(now).as_deref(), Some("a"));
        queue.schedule("a".into(), now);
        queue.schedule("a".into(), now);
        assert_eq!(queue.start_due(now), None, "never twice at once");
        assert_eq!(queue.depth(), 1);
        // The held trigger is earlier than the requeue the run asked for.
        queue.finish("a", Some(now + Duration::from_secs(60)));
        assert_eq!(queue.start_due(now).as_deref(), Some("a"));
        queue.finish("a", None);
        assert_eq!(queue.depth(), 0);
    }
}
