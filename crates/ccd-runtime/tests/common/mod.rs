//! A fake in-memory source, a scripted reconciler that records what it was
//! asked to do and when, and a harness that runs a controller in a task.

#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use ccd_runtime::{
    Action, Cache, Changes, Config, Controller, Metrics, Reconciler, Source, Trigger,
};
use futures_core::Stream;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

#[derive(Debug, thiserror::Error)]
#[error("fake outage")]
pub struct Outage;

/// An in-memory source of `u32` objects (think: a spec's generation).
/// Clones share one store, so a test keeps a clone to change it.
#[derive(Clone)]
pub struct FakeSource {
    state: Arc<Mutex<SourceState>>,
}

struct SourceState {
    objects: BTreeMap<String, u32>,
    failing_lists: u32,
    list_calls: Vec<Instant>,
    hints_tx: mpsc::UnboundedSender<String>,
    hints_rx: Option<mpsc::UnboundedReceiver<String>>,
}

impl FakeSource {
    pub fn new(objects: &[(&str, u32)]) -> Self {
        let (hints_tx, hints_rx) = mpsc::unbounded_channel();
        Self {
            state: Arc::new(Mutex::new(SourceState {
                objects: objects.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect(),
                failing_lists: 0,
                list_calls: Vec::new(),
                hints_tx,
                hints_rx: Some(hints_rx),
            })),
        }
    }

    /// Makes the next `n` full lists fail.
    pub fn fail_lists(&self, n: u32) {
        self.lock().failing_lists = n;
    }

    /// Sets an object and sends a change hint, like a healthy store.
    pub fn set(&self, key: &str, value: u32) {
        self.set_silently(key, value);
        self.hint(key);
    }

    /// Sets an object without a hint: a lost event.
    pub fn set_silently(&self, key: &str, value: u32) {
        self.lock().objects.insert(key.to_owned(), value);
    }

    /// Removes an object and sends a change hint.
    pub fn remove(&self, key: &str) {
        self.remove_silently(key);
        self.hint(key);
    }

    /// Removes an object without a hint: a lost event.
    pub fn remove_silently(&self, key: &str) {
        self.lock().objects.remove(key);
    }

    pub fn hint(&self, key: &str) {
        let _ = self.lock().hints_tx.send(key.to_owned());
    }

    pub fn list_calls(&self) -> Vec<Instant> {
        self.lock().list_calls.clone()
    }

    fn lock(&self) -> MutexGuard<'_, SourceState> {
        self.state.lock().unwrap()
    }
}

struct Hints(mpsc::UnboundedReceiver<String>);

impl Stream for Hints {
    type Item = String;
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<String>> {
        self.get_mut().0.poll_recv(cx)
    }
}

impl Source for FakeSource {
    type Object = u32;
    type Error = Outage;

    async fn list(&self) -> Result<Vec<(String, u32)>, Outage> {
        let mut state = self.lock();
        state.list_calls.push(Instant::now());
        if state.failing_lists > 0 {
            state.failing_lists -= 1;
            return Err(Outage);
        }
        Ok(state.objects.iter().map(|(k, v)| (k.clone(), *v)).collect())
    }

    fn changes(&self) -> Option<Changes> {
        let hints = self.lock().hints_rx.take()?;
        Some(Box::pin(Hints(hints)))
    }

    async fn get(&self, key: &str) -> Result<Option<u32>, Outage> {
        Ok(self.lock().objects.get(key).copied())
    }
}

/// One reconcile as the reconciler saw it; times are since the probe began.
#[derive(Debug, Clone)]
pub struct Call {
    pub key: String,
    pub object: Option<u32>,
    pub started: Duration,
    /// When it returned; `None` if still running or cancelled.
    pub finished: Option<Duration>,
}

/// Records every reconcile and how many ran at once.
#[derive(Clone)]
pub struct Probe {
    t0: Instant,
    state: Arc<Mutex<ProbeState>>,
}

#[derive(Default)]
struct ProbeState {
    calls: Vec<Call>,
    running_per_key: HashMap<String, usize>,
    running: usize,
    max_running: usize,
    overlaps: usize,
}

impl Probe {
    pub fn new() -> Self {
        Self {
            t0: Instant::now(),
            state: Arc::default(),
        }
    }

    pub fn since_start(&self) -> Duration {
        self.t0.elapsed()
    }

    pub fn calls(&self) -> Vec<Call> {
        self.state.lock().unwrap().calls.clone()
    }

    pub fn calls_for(&self, key: &str) -> Vec<Call> {
        self.calls().into_iter().filter(|c| c.key == key).collect()
    }

    pub fn starts_for(&self, key: &str) -> Vec<Duration> {
        self.calls_for(key).iter().map(|c| c.started).collect()
    }

    /// Times the same key was reconciled while already being reconciled.
    pub fn overlaps(&self) -> usize {
        self.state.lock().unwrap().overlaps
    }

    pub fn max_running(&self) -> usize {
        self.state.lock().unwrap().max_running
    }

    pub fn running(&self) -> usize {
        self.state.lock().unwrap().running
    }

    /// Sleeps until `at` after the probe began.
    pub async fn until(&self, at: Duration) {
        tokio::time::sleep_until(self.t0 + at).await;
    }

    fn enter(&self, key: &str, object: Option<u32>) -> (usize, usize) {
        let mut state = self.state.lock().unwrap();
        let nth = state.calls.iter().filter(|c| c.key == key).count();
        let started = self.t0.elapsed();
        state.calls.push(Call {
            key: key.to_owned(),
            object,
            started,
            finished: None,
        });
        let index = state.calls.len() - 1;
        let per_key = state.running_per_key.entry(key.to_owned()).or_insert(0);
        *per_key += 1;
        if *per_key > 1 {
            state.overlaps += 1;
        }
        state.running += 1;
        state.max_running = state.max_running.max(state.running);
        (index, nth)
    }
}

/// Ends a recorded call, whether it returned or was cancelled.
struct Exit {
    probe: Probe,
    key: String,
    index: usize,
    returned: bool,
}

impl Drop for Exit {
    fn drop(&mut self) {
        let mut state = self.probe.state.lock().unwrap();
        if let Some(n) = state.running_per_key.get_mut(&self.key) {
            *n -= 1;
        }
        state.running -= 1;
        if self.returned {
            state.calls[self.index].finished = Some(self.probe.t0.elapsed());
        }
    }
}

/// What the scripted reconciler does for one call: work for a while, then
/// return a result.
#[derive(Debug, Clone, Copy)]
pub struct Step {
    pub work: Duration,
    pub result: Result<Action, ()>,
}

impl Step {
    pub fn done() -> Self {
        Self {
            work: Duration::ZERO,
            result: Ok(Action::AwaitChange),
        }
    }
    pub fn fail() -> Self {
        Self {
            work: Duration::ZERO,
            result: Err(()),
        }
    }
    pub fn requeue(after: Duration) -> Self {
        Self {
            work: Duration::ZERO,
            result: Ok(Action::Requeue(after)),
        }
    }
    pub fn taking(self, work: Duration) -> Self {
        Self { work, ..self }
    }
}

/// A reconciler whose behaviour per call is given by `script(key, object,
/// nth call for that key)`.
pub struct Scripted<F> {
    pub probe: Probe,
    pub script: F,
}

impl<F> Reconciler<u32> for Scripted<F>
where
    F: Fn(&str, Option<u32>, usize) -> Step + Send + Sync + 'static,
{
    type Error = Outage;

    async fn reconcile(&self, key: &str, object: Option<Arc<u32>>) -> Result<Action, Outage> {
        let object = object.as_deref().copied();
        let (index, nth) = self.probe.enter(key, object);
        let mut exit = Exit {
            probe: self.probe.clone(),
            key: key.to_owned(),
            index,
            returned: false,
        };
        let step = (self.script)(key, object, nth);
        tokio::time::sleep(step.work).await;
        exit.returned = true;
        step.result.map_err(|()| Outage)
    }
}

/// A controller running in its own task.
pub struct Running {
    pub cache: Cache<u32>,
    pub trigger: Trigger,
    pub metrics: Metrics,
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

pub fn config() -> Config {
    Config {
        name: "test".to_owned(),
        ..Config::default()
    }
}

pub fn start<R: Reconciler<u32>>(source: FakeSource, reconciler: R, config: Config) -> Running {
    let controller = Controller::new(source, reconciler, config);
    let (stop, stopped) = oneshot::channel::<()>();
    let cache = controller.cache();
    let trigger = controller.trigger();
    let metrics = controller.metrics();
    let task = tokio::spawn(controller.run(async move {
        let _ = stopped.await;
    }));
    Running {
        cache,
        trigger,
        metrics,
        stop,
        task,
    }
}

impl Running {
    /// Asks the controller to stop and waits until `run` returned.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        self.task.await.unwrap();
    }
}

/// Gaps between consecutive times.
pub fn gaps(times: &[Duration]) -> Vec<Duration> {
    times.windows(2).map(|w| w[1] - w[0]).collect()
}

/// Whether `actual` lies in `[low, high]`, give or take the 1 ms resolution
/// of Tokio's timer.
pub fn within(actual: Duration, low: Duration, high: Duration) -> bool {
    let slack = Duration::from_millis(2);
    actual + slack >= low && actual <= high + slack
}

pub fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}
