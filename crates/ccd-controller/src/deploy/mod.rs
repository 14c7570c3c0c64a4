//! The deploy reconciler: for one app, observe (the members of its groups,
//! a canary's traffic, the rollout probe), decide (`decide`, pure), act
//! (apply the shape the decision's status projects), write status. Every
//! step is idempotent, so a crash at any line is repaired by the next pass;
//! a group is recorded in the status before it is created, so none is
//! ever lost track of; an invalid spec changes nothing in the cloud.

mod pass;
mod remove;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use ccd_cloud::{Cloud, CloudError};
use ccd_runtime::lease::Leadership;
use ccd_runtime::{Action, Reconciler};
use ccd_store::{Fence, SpecStore, StoreError};
use tracing::{Instrument, info_span};

use crate::decide::Known;
use crate::plan::LocalTarget;
use crate::probes::{NoProbes, Probes, WallClock};
use crate::source::Desired;
use crate::status::Status;

/// How often a converged app gets a full (read-only) look for drift by
/// default; in between, a look at its group's members is enough.
pub const DRIFT_CHECK: Duration = Duration::from_secs(600);

/// How long a spec must stay gone before its app is removed by default: a
/// file moved away and back, or a sync that deletes before it writes,
/// removes nothing.
pub const DELETION_GRACE: Duration = Duration::from_secs(60);

/// Where the controller tells what it did and why (`ccd events`).
pub trait EventSink: Send + Sync + 'static {
    fn record(&self, app: &str, warning: bool, reason: &str, message: &str, revision: Option<&str>);
}

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error(transparent)]
    Cloud(#[from] CloudError),
    #[error("cannot write the status: {0}")]
    Store(#[from] StoreError),
    /// The lease lapsed during the pass: what is left is the next leader's.
    #[error("stopped: this controller no longer holds the leader lease")]
    NotLeading,
}

/// Turns an app's load balancer (as asked, and as it is) into the URLs users call.
pub type Endpoints = Arc<
    dyn Fn(&ccd_cloud::model::LoadBalancerSpec, &ccd_cloud::model::LbState) -> Vec<String>
        + Send
        + Sync,
>;

/// What the reconciler keeps of an app between passes.
#[derive(Debug, Clone, Default)]
struct Memory {
    /// The status as last written (the store is only read after a restart).
    status: Option<Status>,
    /// When it was written.
    written: Option<tokio::time::Instant>,
    known: Option<Known>,
    /// Since when the spec has been gone (its removal waits out the grace).
    absent_since: Option<tokio::time::Instant>,
}

/// How often a status whose only change is the rollout probe's counts is
/// written (a bucket takes about one write a second per object).
const COUNTS_EVERY: Duration = Duration::from_secs(5);

pub struct DeployReconciler<C, S> {
    cloud: Arc<C>,
    store: Arc<S>,
    local: Option<LocalTarget>,
    events: Arc<dyn EventSink>,
    endpoints: Endpoints,
    probes: Arc<dyn Probes>,
    clock: WallClock,
    memory: Mutex<HashMap<String, Memory>>,
    /// The leader epoch `memory` was built under: another leader may have
    /// written every status since, so a new epoch starts from the store.
    memory_epoch: AtomicU64,
    leadership: Leadership,
    drift_check: Duration,
    poll: Duration,
    deletion_grace: Duration,
    /// Provisions the apps' `services` before the templates that need them.
    services: Option<Arc<dyn ccd_services::Services>>,
}

impl<C, S> std::fmt::Debug for DeployReconciler<C, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeployReconciler")
            .field("local", &self.local)
            .finish()
    }
}

impl<C: Cloud, S: SpecStore> DeployReconciler<C, S> {
    /// `endpoints` turns a load balancer's state into the URLs users call
    /// (the local cloud knows where its listeners really are).
    pub fn new(
        cloud: Arc<C>,
        store: Arc<S>,
        local: Option<LocalTarget>,
        events: Arc<dyn EventSink>,
        endpoints: Endpoints,
    ) -> Self {
        DeployReconciler {
            memory: Default::default(),
            memory_epoch: AtomicU64::new(0),
            leadership: Leadership::alone(),
            drift_check: DRIFT_CHECK,
            deletion_grace: DELETION_GRACE,
            poll: crate::decide::WHILE_MOVING,
            probes: Arc::new(NoProbes),
            services: None,
            clock: WallClock::new(),
            cloud,
            store,
            local,
            events,
            endpoints,
        }
    }

    /// How often a converged app is checked for drift (default [`DRIFT_CHECK`]).
    pub fn with_drift_check(mut self, every: Duration) -> Self {
        self.drift_check = every;
        self
    }

    /// How long a spec must stay gone before its app is removed (default
    /// [`DELETION_GRACE`]).
    pub fn with_deletion_grace(mut self, grace: Duration) -> Self {
        self.deletion_grace = grace;
        self
    }

    /// How often an app whose rollout moves is looked at (default one
    /// second; one read of each of its groups per look).
    pub fn with_poll(mut self, every: Duration) -> Self {
        self.poll = every;
        self
    }

    /// The synthetic probe run through each app's load balancer during rollouts.
    pub fn with_probes(mut self, probes: Arc<dyn Probes>) -> Self {
        self.probes = probes;
        self
    }

    /// Acts only while `leadership` says this process leads (default: alone,
    /// always), and stamps its epoch on every status it writes.
    pub fn with_leadership(mut self, leadership: Leadership) -> Self {
        self.leadership = leadership;
        self
    }

    /// Provisions each app's `services` through `services` (default: none
    /// provided, and the spec's `services` is recorded as not provided).
    pub fn with_services(mut self, services: Arc<dyn ccd_services::Services>) -> Self {
        self.services = Some(services);
        self
    }

    /// The clock rollout records are kept by.
    pub fn with_clock(mut self, clock: WallClock) -> Self {
        self.clock = clock;
        self
    }

    fn memory(&self, app: &str) -> Memory {
        let map = self.memory.lock().unwrap_or_else(PoisonError::into_inner);
        map.get(app).cloned().unwrap_or_default()
    }

    fn remember(&self, app: &str, memory: Option<Memory>) {
        let mut map = self.memory.lock().unwrap_or_else(PoisonError::into_inner);
        match memory {
            Some(m) => map.insert(app.to_owned(), m),
            None => map.remove(app),
        };
    }

    /// The status last written for `app`: from memory, else from the store.
    async fn recorded(&self, app: &str) -> Result<Status, StoreError> {
        if let Some(status) = self.memory(app).status {
            return Ok(status);
        }
        Ok(self
            .store
            .read_status(app)
            .await?
            .and_then(|s| Status::parse(&s))
            .unwrap_or_default())
    }

    /// Forgets what was remembered under another epoch.
    fn start_epoch(&self, epoch: u64) {
        if self.memory_epoch.swap(epoch, Ordering::Relaxed) != epoch {
            self.memory
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clear();
        }
    }

    /// Whether another region's controller keeps `app`'s status: read from
    /// the store, since that controller may have written it a moment ago.
    async fn kept_elsewhere(&self, app: &str) -> Result<bool, StoreError> {
        let stored = self.store.read_status(app).await?;
        let region = stored
            .and_then(|b| Status::parse(&b))
            .map(|s| s.controller_region)
            .unwrap_or_default();
        Ok(!region.is_empty() && region != self.cloud.region())
    }

    /// Writes a status of an app of this controller's region, claiming it
    /// for this region and stamping the epoch.
    async fn write_status(&self, status: &Status) -> Result<bool, ReconcileError> {
        self.write_status_as(status, true).await
    }

    /// Writes a status; `claim: false` keeps its region stamp as recorded
    /// (a stall over a spec that may be another region's app must not stop
    /// that region's controller from taking it).
    async fn write_status_as(&self, status: &Status, claim: bool) -> Result<bool, ReconcileError> {
        let Some(epoch) = self.leadership.epoch() else {
            return Err(ReconcileError::NotLeading);
        };
        let mut status = status.clone();
        if claim {
            status.controller_region = self.cloud.region().to_owned();
        }
        let ours = status.controller_region == self.cloud.region();
        status.leader_epoch = if ours { epoch } else { 0 };
        let status = &status;
        let mut memory = self.memory(&status.app);
        let recent = memory.written.is_some_and(|at| at.elapsed() < COUNTS_EVERY);
        if recent
            && memory
                .status
                .as_ref()
                .is_some_and(|s| s.same_but_probe_counts(status))
        {
            // The probe's counts are cumulative: the next write carries them.
            return Ok(false);
        }
        let bytes = status.to_yaml();
        let fence = Fence {
            election: self.cloud.region().to_owned(),
            epoch,
            read: crate::status::epoch_of,
        };
        let written = self
            .store
            .write_status_fenced(&status.app, bytes.as_bytes(), fence)
            .await?;
        memory.status = Some(status.clone());
        if written {
            memory.written = Some(tokio::time::Instant::now());
        }
        self.remember(&status.app, Some(memory));
        Ok(written)
    }

    fn record_events(&self, app: &str, revision: Option<&str>, events: &[crate::decide::Event]) {
        for e in events {
            self.events
                .record(app, e.warning, e.reason, &e.message, revision);
        }
    }
}

impl<C: Cloud, S: SpecStore> Reconciler<Desired> for DeployReconciler<C, S> {
    type Error = ReconcileError;

    async fn reconcile(
        &self,
        key: &str,
        object: Option<Arc<Desired>>,
    ) -> Result<Action, ReconcileError> {
        let Some(epoch) = self.leadership.epoch() else {
            // A standby: the leader does this app; waking on leading
            // queues it again here.
            tracing::debug!(app = key, "not leading");
            return Ok(Action::AwaitChange);
        };
        self.start_epoch(epoch);
        if object.is_some() {
            self.spec_is_back(key);
        }
        match object.as_deref() {
            None => {
                self.remove(key)
                    .instrument(info_span!("remove", app = key))
                    .await
            }
            Some(Desired::Invalid {
                version,
                problems,
                origin,
                ..
            }) => {
                self.stall(key, version, problems, origin.as_ref())
                    .instrument(info_span!("stall", app = key))
                    .await
            }
            Some(Desired::Valid {
                app,
                path,
                version,
                origin,
            }) => {
                let span = info_span!("deploy", app = key, revision = %app.spec.version);
                self.deploy(app, path, version, origin.as_ref())
                    .instrument(span)
                    .await
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;
