//! Test doubles for the deploy reconciler's ports, and a harness that runs
//! its passes on Tokio's paused clock.
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod fake_cloud;
pub mod fake_services;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ccd_runtime::{Action, Reconciler};
use ccd_store::{Bytes, Generation, Marker, SpecFile, SpecListing, SpecStore, StoreError};
use futures_core::Stream;

type Changes = std::pin::Pin<Box<dyn Stream<Item = String> + Send>>;

use crate::decide::ProbeOrder;
use crate::probes::{Probes, WallClock};
use crate::record::ProbeTotals;
use crate::source::Desired;
use crate::status::Status;
use crate::{DeployReconciler, EventSink};
pub use fake_cloud::{Behaviour, FakeCloud};
pub use fake_services::FakeServices;

/// Specs and status objects in memory.
#[derive(Debug, Default)]
pub struct MemStore {
    /// Spec files by app name (`specs/<name>.yaml`), for tests that run a
    /// whole controller over the store.
    pub specs: Mutex<BTreeMap<String, Vec<u8>>>,
    pub status: Mutex<HashMap<String, Vec<u8>>>,
    pub controls: Mutex<HashMap<String, Vec<u8>>>,
    pub scaling: Mutex<HashMap<String, Vec<u8>>>,
    pub writes: Mutex<usize>,
    /// The sync marker and how many times it was written (its generation).
    pub marker: Mutex<Option<(Vec<u8>, u64)>>,
}

impl SpecStore for MemStore {
    fn location(&self) -> &str {
        "memory"
    }

    async fn list_specs(&self) -> Result<SpecListing, StoreError> {
        let specs = self.specs.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(SpecListing {
            specs: specs
                .iter()
                .map(|(name, bytes)| spec_file(name, bytes))
                .collect(),
            unreadable: vec![],
        })
    }

    async fn get_spec(&self, name: &str) -> Result<Option<SpecFile>, StoreError> {
        let specs = self.specs.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(specs.get(name).map(|bytes| spec_file(name, bytes)))
    }

    fn changes(&self) -> Option<Changes> {
        None
    }

    async fn read_status(&self, app: &str) -> Result<Option<Bytes>, StoreError> {
        let map = self.status.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(map.get(app).map(|b| Bytes::from(b.clone())))
    }

    async fn list_statuses(&self) -> Result<Vec<String>, StoreError> {
        let map = self.status.lock().unwrap_or_else(PoisonError::into_inner);
        let mut apps: Vec<String> = map.keys().cloned().collect();
        apps.sort();
        Ok(apps)
    }

    async fn write_status(&self, app: &str, bytes: &[u8]) -> Result<bool, StoreError> {
        let mut map = self.status.lock().unwrap_or_else(PoisonError::into_inner);
        if map.get(app).is_some_and(|b| b == bytes) {
            return Ok(false);
        }
        map.insert(app.to_owned(), bytes.to_vec());
        *self.writes.lock().unwrap_or_else(PoisonError::into_inner) += 1;
        Ok(true)
    }

    async fn write_status_fenced(
        &self,
        app: &str,
        bytes: &[u8],
        fence: ccd_store::Fence,
    ) -> Result<bool, StoreError> {
        let stored = self
            .status
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(app)
            .cloned();
        let refused = stored.and_then(|b| {
            let (election, theirs) = (fence.read)(&b)?;
            let refuses = !election.is_empty()
                && (election != fence.election || (fence.epoch > 0 && theirs > fence.epoch));
            refuses.then_some((election, theirs))
        });
        if let Some((holder, theirs)) = refused {
            return Err(StoreError::Fenced {
                location: format!("memory/status/{app}.yaml"),
                holder,
                theirs,
                ours: fence.epoch,
            });
        }
        self.write_status(app, bytes).await
    }

    async fn delete_status(&self, app: &str) -> Result<(), StoreError> {
        let mut map = self.status.lock().unwrap_or_else(PoisonError::into_inner);
        map.remove(app);
        Ok(())
    }

    async fn read_control(&self, app: &str) -> Result<Option<Bytes>, StoreError> {
        let map = self.controls.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(map.get(app).map(|b| Bytes::from(b.clone())))
    }

    async fn write_control(&self, app: &str, bytes: &[u8]) -> Result<(), StoreError> {
        let mut map = self.controls.lock().unwrap_or_else(PoisonError::into_inner);
        map.insert(app.to_owned(), bytes.to_vec());
        Ok(())
    }

    async fn delete_control(&self, app: &str) -> Result<(), StoreError> {
        let mut map = self.controls.lock().unwrap_or_else(PoisonError::into_inner);
        map.remove(app);
        Ok(())
    }

    async fn read_scaling(&self, app: &str) -> Result<Option<Bytes>, StoreError> {
        let map = self.scaling.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(map.get(app).map(|b| Bytes::from(b.clone())))
    }

    async fn write_scaling(&self, app: &str, bytes: &[u8]) -> Result<bool, StoreError> {
        let mut map = self.scaling.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(map.insert(app.to_owned(), bytes.to_vec()).as_deref() != Some(bytes))
    }

    async fn delete_scaling(&self, app: &str) -> Result<(), StoreError> {
        let mut map = self.scaling.lock().unwrap_or_else(PoisonError::into_inner);
        map.remove(app);
        Ok(())
    }

    async fn write_spec(&self, app: &str, bytes: &[u8]) -> Result<bool, StoreError> {
        let mut map = self.specs.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(map.insert(app.to_owned(), bytes.to_vec()).as_deref() != Some(bytes))
    }

    async fn delete_spec(&self, app: &str) -> Result<(), StoreError> {
        let mut map = self.specs.lock().unwrap_or_else(PoisonError::into_inner);
        map.remove(app);
        Ok(())
    }

    async fn read_marker(&self) -> Result<Option<Marker>, StoreError> {
        let marker = self.marker.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(marker.as_ref().map(|(bytes, generation)| Marker {
            bytes: Bytes::from(bytes.clone()),
            generation: Generation::tagged(generation.to_string()),
        }))
    }

    async fn write_marker(
        &self,
        bytes: &[u8],
        expected: Option<&Generation>,
    ) -> Result<(), StoreError> {
        let mut marker = self.marker.lock().unwrap_or_else(PoisonError::into_inner);
        let current = marker
            .as_ref()
            .map(|(_, g)| Generation::tagged(g.to_string()));
        if current.as_ref() != expected {
            return Err(StoreError::Changed {
                location: "memory/specs/.ccd-sync".into(),
                expected: format!("{expected:?}"),
                found: format!("{current:?}"),
            });
        }
        let next = marker.as_ref().map_or(1, |(_, g)| g + 1);
        *marker = Some((bytes.to_vec(), next));
        Ok(())
    }
}

impl MemStore {
    pub fn put_spec(&self, name: &str, text: &str) {
        self.specs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(name.to_owned(), text.as_bytes().to_vec());
    }
}

/// A spec file as a store hands it out, versioned by its content's hash.
fn spec_file(name: &str, bytes: &[u8]) -> SpecFile {
    use sha2::{Digest, Sha256};
    SpecFile {
        name: name.to_owned(),
        path: format!("specs/{name}.yaml"),
        bytes: Bytes::from(bytes.to_vec()),
        version: format!("sha256:{:x}", Sha256::digest(bytes)),
    }
}

/// Events as the reconciler recorded them: (app, warning, reason, message).
#[derive(Debug, Default)]
pub struct EventLog(pub Mutex<Vec<(String, bool, String, String)>>);

impl EventSink for EventLog {
    fn record(&self, app: &str, warning: bool, reason: &str, message: &str, _rev: Option<&str>) {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).push((
            app.to_owned(),
            warning,
            reason.to_owned(),
            message.to_owned(),
        ));
    }
}

/// A probe whose counts the test sets.
#[derive(Debug, Default)]
pub struct FakeProbes {
    pub running: Mutex<HashMap<String, (ProbeOrder, ProbeTotals)>>,
}

impl FakeProbes {
    /// Adds to the running probe's counts.
    pub fn count(&self, app: &str, sent: u64, failed: u64) {
        let mut map = self.running.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((_, c)) = map.get_mut(app) {
            c.sent += sent;
            c.failed += failed;
        }
    }

    pub fn is_running(&self, app: &str) -> bool {
        self.running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains_key(app)
    }
}

impl Probes for FakeProbes {
    fn ensure(&self, app: &str, order: &ProbeOrder) {
        let mut map = self.running.lock().unwrap_or_else(PoisonError::into_inner);
        let same = map
            .get(app)
            .is_some_and(|(o, _)| o.key == order.key && o.url == order.url);
        if !same {
            map.insert(app.to_owned(), (order.clone(), order.initial));
        }
    }

    fn counts(&self, app: &str) -> Option<(String, ProbeTotals)> {
        let map = self.running.lock().unwrap_or_else(PoisonError::into_inner);
        map.get(app).map(|(o, c)| (o.key.clone(), *c))
    }

    fn stop(&self, app: &str) {
        self.running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(app);
    }
}

/// A reconciler on fakes, and the spec it deploys.
pub struct Harness {
    pub cloud: Arc<FakeCloud>,
    pub store: Arc<MemStore>,
    pub events: Arc<EventLog>,
    pub probes: Arc<FakeProbes>,
    pub reconciler: DeployReconciler<FakeCloud, MemStore>,
    pub clock: WallClock,
    pub spec: String,
    /// Whether the load balancer's frontend listens yet: the local cloud
    /// starts it a moment after the forwarding rule exists, and until then
    /// a complete load balancer has no URL.
    pub listening: Arc<std::sync::atomic::AtomicBool>,
}

/// 2026-11-30T00:00:00Z: where the test clock starts.
pub fn epoch() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_795_996_800)
}

impl Harness {
    pub fn new(spec: &str) -> Harness {
        Harness::with(
            spec,
            Arc::new(FakeCloud::default()),
            Arc::new(MemStore::default()),
            epoch(),
        )
    }

    /// A new controller process on the same cloud and store, at the same
    /// wall-clock time: nothing of the old one's memory survives.
    pub fn restart(&self) -> Harness {
        Harness::with(
            &self.spec,
            self.cloud.clone(),
            self.store.clone(),
            self.clock.now().system(),
        )
    }

    fn with(spec: &str, cloud: Arc<FakeCloud>, store: Arc<MemStore>, now: SystemTime) -> Harness {
        let clock = WallClock::starting_at(now);
        let events = Arc::new(EventLog::default());
        let probes = Arc::new(FakeProbes::default());
        let listening = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let listens = listening.clone();
        let endpoints: crate::Endpoints = Arc::new(move |_, state| {
            if !listens.load(std::sync::atomic::Ordering::SeqCst) {
                return Vec::new();
            }
            state
                .address
                .map(|a| vec![format!("http://{a}")])
                .unwrap_or_default()
        });
        let reconciler = DeployReconciler::new(
            cloud.clone(),
            store.clone(),
            None,
            events.clone(),
            endpoints,
        )
        .with_probes(probes.clone())
        .with_clock(clock);
        Harness {
            cloud,
            store,
            events,
            probes,
            reconciler,
            clock,
            spec: spec.to_owned(),
            listening,
        }
    }

    /// Another controller on the same store, with its own cloud.
    pub fn beside(&self, cloud: Arc<FakeCloud>) -> Harness {
        Harness::with(
            &self.spec,
            cloud,
            self.store.clone(),
            self.clock.now().system(),
        )
    }

    /// The same harness, provisioning services through `services`.
    pub fn with_services(self, services: Arc<FakeServices>) -> Harness {
        Harness {
            reconciler: self.reconciler.with_services(services),
            ..self
        }
    }

    /// The same harness, acting only while `leadership` says it leads.
    pub fn with_leadership(self, leadership: ccd_runtime::lease::Leadership) -> Harness {
        Harness {
            reconciler: self.reconciler.with_leadership(leadership),
            ..self
        }
    }

    pub fn set_spec(&mut self, spec: &str) {
        self.spec = spec.to_owned();
    }

    /// The current spec as the store's source hands it to reconcilers.
    pub fn desired(&self) -> Desired {
        let file = SpecFile {
            name: "web".into(),
            path: "specs/web.yaml".into(),
            bytes: Bytes::from(self.spec.clone().into_bytes()),
            version: format!("sha256:{:x}", fxhash(&self.spec)),
        };
        crate::source::desired(&file)
    }

    /// One pass over the current spec; the requeue it asked for.
    pub async fn pass(&self) -> Duration {
        let desired = self.desired();
        match self
            .reconciler
            .reconcile("web", Some(Arc::new(desired)))
            .await
        {
            Ok(Action::Requeue(d)) => d,
            Ok(Action::AwaitChange) => Duration::from_secs(3600),
            Err(e) => {
                tracing::info!(error = %e, "pass failed");
                Duration::from_secs(5)
            }
        }
    }

    /// The spec deleted: one removing pass; the requeue it asked for, `None`
    /// when it waits for a change (done, or protected).
    pub async fn removing_pass(&self) -> Option<Duration> {
        match self.reconciler.reconcile("web", None::<Arc<Desired>>).await {
            Ok(Action::Requeue(d)) => Some(d),
            Ok(Action::AwaitChange) => None,
            Err(e) => {
                tracing::info!(error = %e, "removing pass failed");
                Some(Duration::from_secs(5))
            }
        }
    }

    /// The spec deleted: removing passes, as the runtime would run them,
    /// through the grace period until the reconciler waits for a change.
    pub async fn remove(&self) {
        while let Some(wait) = self.removing_pass().await {
            tokio::time::advance(wait.max(Duration::from_millis(1))).await;
        }
    }

    /// Passes as the runtime would run them, for `total` of paused time.
    pub async fn run_for(&self, total: Duration) {
        let end = tokio::time::Instant::now() + total;
        while tokio::time::Instant::now() < end {
            let wait = self.pass().await;
            let left = end.saturating_duration_since(tokio::time::Instant::now());
            tokio::time::advance(wait.min(left).max(Duration::from_millis(1))).await;
        }
    }

    /// Passes until `check` holds, within `limit` of paused time.
    pub async fn until(
        &self,
        what: &str,
        limit: Duration,
        check: impl Fn(&Status) -> bool,
    ) -> Status {
        let end = tokio::time::Instant::now() + limit;
        loop {
            let wait = self.pass().await;
            let status = self.status();
            if check(&status) {
                return status;
            }
            assert!(
                tokio::time::Instant::now() < end,
                "gave up waiting for {what}; status:\n{}\nevents: {:#?}",
                status.to_yaml(),
                self.event_reasons()
            );
            tokio::time::advance(wait.max(Duration::from_millis(1))).await;
        }
    }

    pub fn status(&self) -> Status {
        let map = self
            .store
            .status
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        map.get("web")
            .and_then(|b| Status::parse(b))
            .unwrap_or_default()
    }

    pub fn event_reasons(&self) -> Vec<String> {
        self.events
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|e| e.2.clone())
            .collect()
    }

    pub fn event(&self, reason: &str) -> Option<String> {
        self.events
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .rev()
            .find(|e| e.2 == reason)
            .map(|e| e.3.clone())
    }

    pub fn write_control(&self, control: &crate::control::Control) {
        self.store
            .controls
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert("web".into(), control.to_yaml("web").into_bytes());
    }
}

/// A stable stand-in for the spec's content hash.
fn fxhash(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}
