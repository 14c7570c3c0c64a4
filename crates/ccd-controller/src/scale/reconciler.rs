//! The scaling reconciler's executor: per autoscaled app, observe (the
//! stable group, the agents' CPU figures, the load balancer's request
//! counts), [`decide`], resize, and tell (an event per resize, the record in
//! `scaling/<app>.yaml`). It owns the stable group's target size and
//! nothing else; the deploy reconciler leaves that size alone within
//! `replicas.min..max` (`GroupSpec::size_range`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use ccd_cloud::model::{GroupId, InstanceAction, InstanceStatus};
use ccd_cloud::{Cloud, CloudError};
use ccd_runtime::{Action, Reconciler};
use ccd_store::{SpecStore, StoreError};
use tokio::time::Instant;
use tracing::Instrument as _;

use super::record::{ScaleEvent, ScalingRecord};
use super::{History, Sample, ScalePolicy, decide};
use crate::deploy::EventSink;
use crate::heal::QUIET_INTERVALS;
use crate::heard::Reports;
use crate::probes::WallClock;
use crate::source::Desired;
use crate::status::Status;
use crate::steps::size_range;

#[cfg(test)]
#[path = "reconciler_tests.rs"]
mod tests;

#[derive(Debug, thiserror::Error)]
pub enum ScaleError {
    #[error(transparent)]
    Cloud(#[from] CloudError),
    #[error("the store: {0}")]
    Store(#[from] StoreError),
}

/// What the reconciler keeps of an app between passes.
#[derive(Debug, Default)]
struct Memory {
    history: History,
    /// When each instance (name, id) was first seen: its start, for the cool-down.
    seen: HashMap<(String, String), Instant>,
    /// The record as last written.
    written: Option<ScalingRecord>,
    last: Option<ScaleEvent>,
    /// Whether the app was looked at before (since this process started).
    known: bool,
}

pub struct ScalingReconciler<C, S> {
    cloud: Arc<C>,
    store: Arc<S>,
    reports: Reports,
    events: Arc<dyn EventSink>,
    clock: WallClock,
    memory: Mutex<HashMap<String, Memory>>,
}

impl<C, S> std::fmt::Debug for ScalingReconciler<C, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScalingReconciler").finish_non_exhaustive()
    }
}

impl<C: Cloud, S: SpecStore> ScalingReconciler<C, S> {
    pub fn new(cloud: Arc<C>, store: Arc<S>, reports: Reports, events: Arc<dyn EventSink>) -> Self {
        ScalingReconciler {
            cloud,
            store,
            reports,
            events,
            clock: WallClock::new(),
            memory: Mutex::default(),
        }
    }

    fn take_memory(&self, app: &str) -> Memory {
        let mut all = self.memory.lock().unwrap_or_else(PoisonError::into_inner);
        all.remove(app).unwrap_or_default()
    }

    fn keep_memory(&self, app: &str, memory: Memory) {
        let mut all = self.memory.lock().unwrap_or_else(PoisonError::into_inner);
        all.insert(app.to_owned(), memory);
    }

    async fn scale(&self, name: &str, app: &ccd_spec::App) -> Result<Action, ScaleError> {
        let Some((min, max)) = size_range(app) else {
            self.take_memory(name);
            self.store.delete_scaling(name).await?;
            return Ok(Action::AwaitChange);
        };
        let policy = policy_of(app, min, max);
        let interval = app.spec.health.interval.as_std();
        let mut memory = self.take_memory(name);
        let result = self.pass(name, app, &policy, &mut memory).await;
        memory.known = true;
        let record = match result {
            Ok(record) => record,
            Err(e) => {
                self.keep_memory(name, memory);
                return Err(e);
            }
        };
        if memory.written.as_ref() != Some(&record) {
            let written = self
                .store
                .write_scaling(name, record.to_yaml(name).as_bytes())
                .await;
            if let Err(e) = written {
                self.keep_memory(name, memory);
                return Err(e.into());
            }
            memory.written = Some(record);
        }
        self.keep_memory(name, memory);
        Ok(Action::Requeue(interval))
    }

    /// One look and decision; returns the record to show.
    async fn pass(
        &self,
        name: &str,
        app: &ccd_spec::App,
        policy: &ScalePolicy,
        memory: &mut Memory,
    ) -> Result<ScalingRecord, ScaleError> {
        let mut record = ScalingRecord {
            min: policy.min,
            max: policy.max,
            target: target_words(policy),
            size: 0,
            held: None,
            last: memory.last.clone(),
        };
        let status = self
            .store
            .read_status(name)
            .await?
            .and_then(|b| Status::parse(&b));
        let Some(stable) = status.as_ref().and_then(|s| s.stable()).cloned() else {
            record.held = Some("the app is not deployed yet".to_owned());
            return Ok(record);
        };
        let id = stable.id(name);
        let Some(group) = self.cloud.get_group(&id).await? else {
            record.held = Some(format!("group {} does not exist", id.name));
            return Ok(record);
        };
        record.size = group.target_size;
        if status
            .as_ref()
            .and_then(|s| s.rollout.as_ref())
            .is_some_and(|r| r.state.is_open())
        {
            // The rollout sizes what it replaces; figures mid-rollout mix
            // two revisions.
            record.held = Some("a rollout is in progress".to_owned());
            return Ok(record);
        }
        let now = Instant::now();
        let reports = self.reports.of(name);
        let rps = match policy.rps_target {
            Some(_) => self.requests_per_second(app, &id, interval_of(app)).await,
            None => None,
        };
        let members: Vec<_> = group
            .instances
            .iter()
            .filter_map(|m| Some((m, m.id.clone()?)))
            .collect();
        memory
            .seen
            .retain(|(n, i), _| members.iter().any(|(m, id)| &m.name == n && id == i));
        let running = |m: &ccd_cloud::model::ManagedInstance| {
            m.status == InstanceStatus::Running && m.action == InstanceAction::None
        };
        let settled_count = members.iter().filter(|(m, _)| running(m)).count().max(1);
        let mut samples = Vec::new();
        for (m, instance_id) in &members {
            // At the first look, what already runs is settled: the cool-down
            // is for instances started since.
            let first = if !memory.known && running(m) {
                now.checked_sub(policy.cool_down).unwrap_or(now)
            } else {
                now
            };
            let since = *memory
                .seen
                .entry((m.name.clone(), instance_id.clone()))
                .or_insert(first);
            let cpu = reports
                .get(&m.name)
                .filter(|h| &h.report.instance.instance_id == instance_id)
                .filter(|h| {
                    now.duration_since(h.at)
                        <= Duration::from_millis(h.report.interval_ms) * QUIET_INTERVALS
                })
                .and_then(|h| h.report.cpu);
            samples.push(Sample {
                instance: m.name.clone(),
                since,
                cpu,
                // The load balancer spreads requests evenly over what serves.
                requests_per_second: rps
                    .filter(|_| running(m))
                    .map(|total| total / settled_count as f64),
            });
        }
        let decision = decide(now, policy, group.target_size, &samples, &memory.history);
        memory.history = decision.history.clone();
        if let Some(to) = decision.resize {
            self.cloud.resize_group(&id, to).await?;
            let from = group.target_size;
            let event = ScaleEvent {
                at: self.clock.now(),
                from,
                to,
                reason: decision.reason.clone(),
            };
            let verb = if to > from { "ScaledOut" } else { "ScaledIn" };
            tracing::info!(from, to, reason = %decision.reason, "resized");
            self.events.record(
                name,
                false,
                verb,
                &format!("{from} → {to} instances: {}", decision.reason),
                Some(&app.spec.version),
            );
            memory.last = Some(event.clone());
            record.last = Some(event);
            record.size = to;
        }
        Ok(record)
    }

    /// Requests per second the stable group received over the last window,
    /// by the load balancer's counts; `None` when they are not known.
    async fn requests_per_second(
        &self,
        app: &ccd_spec::App,
        group: &GroupId,
        interval: Duration,
    ) -> Option<f64> {
        let lb = crate::plan::plan(app, None, None).load_balancer?;
        // Two intervals: enough requests to average, recent enough to react.
        let window = (interval * 2).max(Duration::from_secs(2));
        let since = self.clock.now().system().checked_sub(window)?;
        let traffic = match self.cloud.lb_traffic(&lb.id(), since).await {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(error = %e, "no request counts from the load balancer");
                return None;
            }
        };
        let until = traffic.complete_until?;
        let seconds = until.duration_since(since).ok()?.as_secs_f64();
        let requests = traffic
            .backends
            .iter()
            .find(|b| b.group == group.name)
            .map_or(0, |b| b.requests);
        (seconds > 0.0).then(|| requests as f64 / seconds)
    }
}

fn interval_of(app: &ccd_spec::App) -> Duration {
    app.spec.health.interval.as_std()
}

/// The spec's autoscaling as the decision takes it. New instances are left
/// out of the figures until they could have passed their health checks.
fn policy_of(app: &ccd_spec::App, min: u32, max: u32) -> ScalePolicy {
    let a = app.spec.autoscaling.as_ref();
    let h = &app.spec.health;
    ScalePolicy {
        min,
        max,
        cpu_target: a.and_then(|a| a.cpu_utilization),
        rps_target: a.and_then(|a| a.requests_per_second),
        scale_in_stabilization: a.map_or(Duration::ZERO, |a| a.scale_in_stabilization.as_std()),
        cool_down: h.initial_delay.as_std() + h.interval.as_std() * (h.healthy_threshold + 1),
    }
}

fn target_words(policy: &ScalePolicy) -> String {
    let mut parts = Vec::new();
    if let Some(cpu) = policy.cpu_target {
        parts.push(format!("CPU {:.0}%", cpu * 100.0));
    }
    if let Some(rps) = policy.rps_target {
        parts.push(format!("{rps} requests/s per instance"));
    }
    parts.join(", ")
}

impl<C: Cloud, S: SpecStore> Reconciler<Desired> for ScalingReconciler<C, S> {
    type Error = ScaleError;

    async fn reconcile(
        &self,
        key: &str,
        object: Option<Arc<Desired>>,
    ) -> Result<Action, ScaleError> {
        match object.as_deref() {
            Some(Desired::Valid { app, .. }) => {
                let span = tracing::info_span!("scale", app = %key, revision = %app.spec.version);
                self.scale(key, app).instrument(span).await
            }
            // A spec that cannot be read changes nothing: the size stays.
            Some(Desired::Invalid { .. }) => Ok(Action::AwaitChange),
            None => {
                self.take_memory(key);
                Ok(Action::AwaitChange)
            }
        }
    }
}
