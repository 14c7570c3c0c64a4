//! The health reconciler's executor: per app, observe (its groups' members,
//! the agents' reports, the rollout record), [`decide`], act (a restart
//! command to the agent, a recreate to the cloud), tell (events). Runs as a
//! [`ccd_runtime::Controller`] over the same specs as the deploy
//! reconciler: an app is looked at every health interval, and at once when
//! an agent raises an alert.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, PoisonError};

use ccd_bus::messages::{Action as Order, Command, InstanceRef};
use ccd_bus::{Bus, BusError, Outbox};
use ccd_cloud::model::{GroupId, InstanceAction, InstanceStatus, ManagedInstance};
use ccd_cloud::{Cloud, CloudError};
use ccd_runtime::{Action, Reconciler};
use ccd_store::{SpecStore, StoreError};
use tokio::time::Instant;
use tracing::Instrument as _;

use super::{HealAction, Healings, Member, Policy, decide};
use crate::deploy::EventSink;
use crate::heard::Reports;
use crate::source::Desired;
use crate::status::{GroupRole, Status};

#[cfg(test)]
#[path = "reconciler_tests.rs"]
mod tests;

#[derive(Debug, thiserror::Error)]
pub enum HealError {
    #[error(transparent)]
    Cloud(#[from] CloudError),
    #[error("cannot read the status: {0}")]
    Store(#[from] StoreError),
    #[error("cannot send the restart command: {0}")]
    Bus(#[from] BusError),
}

pub struct HealthReconciler<C, S, B> {
    cloud: Arc<C>,
    store: Arc<S>,
    commands: Outbox<B>,
    reports: Reports,
    events: Arc<dyn EventSink>,
    /// What was done to whom, per app: the decision's memory.
    healings: Mutex<HashMap<String, Healings>>,
}

impl<C, S, B> std::fmt::Debug for HealthReconciler<C, S, B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HealthReconciler").finish_non_exhaustive()
    }
}

impl<C: Cloud, S: SpecStore, B: Bus> HealthReconciler<C, S, B> {
    pub fn new(
        cloud: Arc<C>,
        store: Arc<S>,
        bus: Arc<B>,
        reports: Reports,
        events: Arc<dyn EventSink>,
    ) -> Self {
        HealthReconciler {
            cloud,
            store,
            commands: Outbox::new(bus, "health-reconciler"),
            reports,
            events,
            healings: Mutex::default(),
        }
    }

    fn healings(&self) -> std::sync::MutexGuard<'_, HashMap<String, Healings>> {
        self.healings.lock().unwrap_or_else(PoisonError::into_inner)
    }

    async fn heal(&self, name: &str, app: &ccd_spec::App) -> Result<Action, HealError> {
        let health = &app.spec.health;
        let policy = Policy {
            interval: health.interval.as_std(),
            unhealthy_threshold: health.unhealthy_threshold,
            initial_delay: health.initial_delay.as_std(),
        };
        let again = Action::Requeue(policy.interval);
        let Some(status) = self
            .store
            .read_status(name)
            .await?
            .and_then(|b| Status::parse(&b))
        else {
            return Ok(again); // not deployed yet
        };
        // The instances a rollout is judging are its verdict's to decide.
        let judged_template = status
            .rollout
            .as_ref()
            .filter(|r| r.state.is_open())
            .map(|r| r.to.template.clone());
        let mut members = Vec::new();
        let mut judging = BTreeSet::new();
        let mut found: HashMap<String, (GroupId, ManagedInstance)> = HashMap::new();
        for group in status
            .groups
            .iter()
            .filter(|g| g.role != GroupRole::Retired)
        {
            let id = group.id(name);
            let Some(list) = self.cloud.group_members(&id).await? else {
                continue;
            };
            for m in list {
                let Some(instance_id) = m.id.clone() else {
                    continue; // not created yet: nothing to heal
                };
                if judged_template.is_some() && m.template == judged_template {
                    judging.insert(m.name.clone());
                }
                members.push(Member {
                    name: m.name.clone(),
                    id: instance_id,
                    settled: m.status == InstanceStatus::Running
                        && m.action == InstanceAction::None,
                });
                found.insert(m.name.clone(), (id.clone(), m));
            }
        }
        let reports = self.reports.of(name);
        let before = self.healings().get(name).cloned().unwrap_or_default();
        let mut decision = decide(
            Instant::now(),
            &policy,
            &members,
            &reports,
            &judging,
            &before,
        );
        let mut failed = None;
        for action in &decision.actions {
            let done = self.act(name, app, action, &reports, &found).await;
            if let Err(e) = done {
                // Not done: the next pass decides it again.
                let key = match action {
                    HealAction::Restart { instance, id, .. } => (instance.clone(), id.clone()),
                    HealAction::Recreate { instance, .. } => {
                        let id = found.get(instance).and_then(|(_, m)| m.id.clone());
                        (instance.clone(), id.unwrap_or_default())
                    }
                };
                decision.healings.remove(&key);
                failed = Some(e);
            }
        }
        for seen in decision.seen.iter().filter(|s| s.held.is_some()) {
            tracing::debug!(instance = %seen.instance, held = ?seen.held, "unhealthy, not acted on");
        }
        self.healings().insert(name.to_owned(), decision.healings);
        match failed {
            Some(e) => Err(e),
            None => Ok(again),
        }
    }

    async fn act(
        &self,
        name: &str,
        app: &ccd_spec::App,
        action: &HealAction,
        reports: &std::collections::BTreeMap<String, super::Heard>,
        found: &HashMap<String, (GroupId, ManagedInstance)>,
    ) -> Result<(), HealError> {
        match action {
            HealAction::Restart {
                instance,
                id,
                reason,
            } => {
                let version = reports.get(instance).map_or(app.spec.version.clone(), |h| {
                    h.report.instance.version.clone()
                });
                self.commands
                    .publish(Command {
                        instance: InstanceRef {
                            app: name.to_owned(),
                            version: version.clone(),
                            instance: instance.clone(),
                            instance_id: id.clone(),
                        },
                        action: Order::Restart,
                        reason: reason.clone(),
                    })
                    .await?;
                tracing::warn!(%instance, %reason, "restarting the app");
                self.events.record(
                    name,
                    true,
                    "Restarting",
                    &format!("{instance}: {reason}; its agent restarts the app"),
                    Some(&version),
                );
            }
            HealAction::Recreate { instance, reason } => {
                let Some((group, member)) = found.get(instance) else {
                    return Ok(());
                };
                self.cloud
                    .recreate_instances(group, std::slice::from_ref(member))
                    .await?;
                tracing::warn!(%instance, %reason, "recreating the instance");
                let version = member.version.clone();
                self.events.record(
                    name,
                    true,
                    "Recreating",
                    &format!("{instance}: {reason}; the instance is recreated"),
                    version.as_deref(),
                );
            }
        }
        Ok(())
    }
}

impl<C: Cloud, S: SpecStore, B: Bus> Reconciler<Desired> for HealthReconciler<C, S, B> {
    type Error = HealError;

    async fn reconcile(
        &self,
        key: &str,
        object: Option<Arc<Desired>>,
    ) -> Result<Action, HealError> {
        let Some(Desired::Valid { app, .. }) = object.as_deref() else {
            // Gone, or a spec that cannot be read: the deploy reconciler
            // keeps the last good revision; its instances are still healed
            // by the cloud's autohealing.
            self.healings().remove(key);
            return Ok(Action::AwaitChange);
        };
        let span = tracing::info_span!("heal", app = %key, revision = %app.spec.version);
        self.heal(key, app).instrument(span).await
    }
}
