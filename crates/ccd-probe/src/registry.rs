//! [`Probes`]: one prober per app, for the controller.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::{ProbeCounts, ProbeError, ProbeTarget, Prober};

/// The running probers, one per app, each under a key saying what it measures (a rollout
/// step, say). Cheap to clone; clones share the probers. Dropping the last clone stops them.
#[derive(Debug, Clone, Default)]
pub struct Probes {
    running: Arc<Mutex<HashMap<String, Keyed>>>,
}

#[derive(Debug)]
struct Keyed {
    key: String,
    prober: Prober,
}

impl Probes {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes sure `app` is probed under `key` at `target`:
    /// - a prober with this key and target runs: nothing changes, its counts go on;
    /// - one with this key but another target (the load balancer's address changed): it is
    ///   replaced, and the new one counts on from where the old one was;
    /// - none, or one with another key: a new one starts from `initial`.
    ///
    /// On error (an unusable target) no prober is left running for `app`: one probing a target
    /// the caller no longer asks for would measure the wrong thing. Must be called from within
    /// a tokio runtime.
    pub fn ensure(
        &self,
        app: &str,
        key: &str,
        target: ProbeTarget,
        initial: ProbeCounts,
    ) -> Result<(), ProbeError> {
        let mut running = self.lock();
        let start_from = match running.get(app) {
            Some(current) if current.key == key => {
                if current.prober.target() == &target && current.prober.is_running() {
                    return Ok(());
                }
                current.prober.counts()
            }
            _ => initial,
        };
        // Replacing the entry drops (and so stops) the previous prober.
        match Prober::start(target, start_from) {
            Ok(prober) => {
                let key = key.to_owned();
                running.insert(app.to_owned(), Keyed { key, prober });
                Ok(())
            }
            Err(e) => {
                running.remove(app);
                Err(e)
            }
        }
    }

    /// The key and counts of `app`'s prober, `None` when none runs.
    pub fn counts(&self, app: &str) -> Option<(String, ProbeCounts)> {
        self.lock()
            .get(app)
            .map(|k| (k.key.clone(), k.prober.counts()))
    }

    /// Stops `app`'s prober, if any.
    pub fn stop(&self, app: &str) {
        let stopped = self.lock().remove(app);
        drop(stopped);
    }

    /// Stops every prober.
    pub fn stop_all(&self) {
        let stopped = std::mem::take(&mut *self.lock());
        drop(stopped);
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Keyed>> {
        // Each change is one insert or remove: a panic elsewhere cannot leave the map torn.
        self.running.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
