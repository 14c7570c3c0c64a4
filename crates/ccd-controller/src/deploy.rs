//! The deploy reconciler: for one app, observe what exists, create or
//! correct what differs, remove what the spec no longer asks for, write
//! status. Every step is idempotent, so a crash at any line is repaired by
//! the next pass; an invalid spec changes nothing in the cloud.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use ccd_cloud::model::{GroupId, GroupState, InstanceHealth, InstanceStatus, LbId};
use ccd_cloud::{Cloud, CloudError};
use ccd_runtime::{Action, Reconciler};
use ccd_store::{SpecStore, StoreError};
use tracing::{Instrument, info_span};

use crate::plan::{LocalTarget, Plan, plan};
use crate::source::Desired;
use crate::status::{Condition, InstanceView, Phase, Status};

/// How long to wait before looking again while a rollout moves.
const WHILE_PROGRESSING: Duration = Duration::from_secs(2);
/// How often a converged app is looked at.
const WHEN_READY: Duration = Duration::from_secs(30);
/// How often a converged app gets a full pass (every piece read and
/// corrected); in between, a look at its group is enough.
const FULL_PASS: Duration = Duration::from_secs(600);

/// What the last full pass of a converged app applied and reported.
#[derive(Debug, Clone)]
struct Converged {
    plan: Plan,
    spec_version: String,
    status: Status,
    at: tokio::time::Instant,
}

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
}

pub struct DeployReconciler<C, S> {
    cloud: Arc<C>,
    store: Arc<S>,
    local: Option<LocalTarget>,
    events: Arc<dyn EventSink>,
    endpoints: Endpoints,
    converged: std::sync::Mutex<std::collections::HashMap<String, Converged>>,
}

/// Turns an app's load balancer state into the URLs users call.
pub type Endpoints = Arc<dyn Fn(&str, &ccd_cloud::model::LbState) -> Vec<String> + Send + Sync>;

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
            converged: Default::default(),
            cloud,
            store,
            local,
            events,
            endpoints,
        }
    }

    async fn deploy(
        &self,
        app: &ccd_spec::App,
        spec_version: &str,
    ) -> Result<Action, ReconcileError> {
        let name = &app.metadata.name;
        let plan = plan(app, self.local.as_ref());
        if let Some(action) = self.light_pass(name, &plan, spec_version).await? {
            return Ok(action);
        }
        let template = self.cloud.ensure_template(&plan.template).await?;
        if let Some(hc) = &plan.health_check {
            self.cloud.apply_health_check(hc).await?;
        }
        self.converge_firewalls(&plan).await?;
        let before = self.cloud.get_group(&plan.group.id()).await?;
        let rolling = before
            .as_ref()
            .is_some_and(|g| g.versions.iter().all(|v| v.template != template));
        self.cloud.apply_group(&plan.group).await?;
        if before.is_none() {
            self.events.record(
                name,
                false,
                "GroupCreated",
                &format!(
                    "created group {} for version {}",
                    plan.group.name, app.spec.version
                ),
                Some(&app.spec.version),
            );
        } else if rolling {
            self.events.record(
                name,
                false,
                "RolloutStarted",
                &format!(
                    "rolling out version {} (template {template})",
                    app.spec.version
                ),
                Some(&app.spec.version),
            );
        }
        let endpoints = self.converge_load_balancer(name, &plan).await?;
        let group = self.cloud.get_group(&plan.group.id()).await?;
        let converged = group.as_ref().is_some_and(GroupState::converged);
        if converged {
            self.collect_templates(name, &template).await;
        }
        let healthy = group.as_ref().is_some_and(|g| {
            g.instances.len() as u32 >= plan.group.target_size.unwrap_or(1)
                && g.instances.iter().all(|i| {
                    i.status == InstanceStatus::Running && i.health != InstanceHealth::Unhealthy
                })
        });
        let ready = converged && healthy && endpoints.is_some();
        let (reason, message) = if ready {
            (
                "Converged",
                format!("version {} serves on every instance", app.spec.version),
            )
        } else {
            (
                "RollingOut",
                format!("rolling out version {}", app.spec.version),
            )
        };
        let mut conditions = vec![
            Condition {
                kind: "Ready",
                status: ready,
                reason: reason.to_owned(),
                message: message.clone(),
            },
            Condition {
                kind: "Progressing",
                status: !ready,
                reason: reason.to_owned(),
                message,
            },
            Condition {
                kind: "Stalled",
                status: false,
                reason: "SpecValid".to_owned(),
                message: "the spec is valid".to_owned(),
            },
        ];
        conditions.sort_by_key(|c| c.kind);
        let status = Status {
            app: name.clone(),
            observed_spec: spec_version.to_owned(),
            phase: if ready {
                Phase::Ready
            } else {
                Phase::Progressing
            },
            target: Some((app.spec.version.clone(), template)),
            serving: serving(group.as_ref()),
            conditions,
            instances: instances(group.as_ref()),
            endpoints: endpoints.unwrap_or_default(),
            zone: plan.group.zones.first().cloned(),
        };
        self.remember(
            name,
            ready.then(|| Converged {
                plan: plan.clone(),
                spec_version: spec_version.to_owned(),
                status: status.clone(),
                at: tokio::time::Instant::now(),
            }),
        );
        if self.write_status(&status).await? && ready {
            let at = if status.endpoints.is_empty() {
                "(not exposed)".to_owned()
            } else {
                status.endpoints.join(" ")
            };
            self.events.record(
                name,
                false,
                "Ready",
                &format!("{at} version {}", app.spec.version),
                Some(&app.spec.version),
            );
        }
        Ok(Action::Requeue(if ready {
            WHEN_READY
        } else {
            WHILE_PROGRESSING
        }))
    }

    /// For an app whose last full pass found it converged with this very
    /// plan: one read (its group). Still converged and healthy → status is
    /// refreshed and nothing else is touched; anything else → `None`, and a
    /// full pass runs.
    async fn light_pass(
        &self,
        app: &str,
        plan: &Plan,
        spec_version: &str,
    ) -> Result<Option<Action>, ReconcileError> {
        let last = {
            let map = self.converged.lock().unwrap_or_else(|e| e.into_inner());
            map.get(app).cloned()
        };
        let Some(last) = last.filter(|l| {
            l.plan == *plan && l.spec_version == spec_version && l.at.elapsed() < FULL_PASS
        }) else {
            return Ok(None);
        };
        let group = self.cloud.get_group(&plan.group.id()).await?;
        let template = plan.template.name();
        let still = group.as_ref().is_some_and(|g| {
            g.converged()
                && g.instances.len() as u32 >= plan.group.target_size.unwrap_or(1)
                && g.instances.iter().all(|i| {
                    i.status == InstanceStatus::Running
                        && i.health != InstanceHealth::Unhealthy
                        && i.template.as_deref() == Some(template.as_str())
                })
        });
        if !still {
            self.remember(app, None);
            return Ok(None);
        }
        let mut status = last.status;
        status.instances = instances(group.as_ref());
        status.serving = serving(group.as_ref());
        self.write_status(&status).await?;
        Ok(Some(Action::Requeue(WHEN_READY)))
    }

    fn remember(&self, app: &str, converged: Option<Converged>) {
        let mut map = self.converged.lock().unwrap_or_else(|e| e.into_inner());
        match converged {
            Some(c) => map.insert(app.to_owned(), c),
            None => map.remove(app),
        };
    }

    /// Firewall rules of the plan exist; the app's others are removed.
    async fn converge_firewalls(&self, plan: &Plan) -> Result<(), CloudError> {
        for rule in &plan.firewalls {
            self.cloud.apply_firewall(rule).await?;
        }
        let wanted: BTreeSet<&str> = plan.firewalls.iter().map(|f| f.name.as_str()).collect();
        for rule in self.cloud.list_firewalls(&plan.template.app).await? {
            if !wanted.contains(rule.name.as_str()) {
                self.cloud.delete_firewall(&rule.app, &rule.name).await?;
            }
        }
        Ok(())
    }

    /// The load balancer the spec asks for, and none of the other kind.
    /// Returns the endpoints once it is complete (`None` while it is not),
    /// and `Some(vec![])` for an app that is not exposed.
    async fn converge_load_balancer(
        &self,
        app: &str,
        plan: &Plan,
    ) -> Result<Option<Vec<String>>, CloudError> {
        let wanted = plan.load_balancer.as_ref().map(|lb| lb.id());
        for internal in [false, true] {
            let id = LbId {
                app: app.to_owned(),
                name: app.to_owned(),
                internal,
            };
            if wanted.as_ref() != Some(&id) && !self.cloud.get_load_balancer(&id).await?.absent() {
                self.cloud.delete_load_balancer(&id).await?;
                self.events.record(
                    app,
                    false,
                    "LoadBalancerDeleted",
                    "removed a load balancer the spec no longer asks for",
                    None,
                );
            }
        }
        match &plan.load_balancer {
            None => Ok(Some(Vec::new())),
            Some(spec) => {
                let state = self.cloud.apply_load_balancer(spec).await?;
                Ok(state.complete().then(|| (self.endpoints)(app, &state)))
            }
        }
    }

    /// Templates no version uses any more; one in use is kept for next time.
    async fn collect_templates(&self, app: &str, current: &str) {
        let Ok(templates) = self.cloud.list_templates(app).await else {
            return;
        };
        for t in templates.into_iter().filter(|t| t.name != current) {
            match self.cloud.delete_template(app, &t.name).await {
                Ok(()) => self.events.record(
                    app,
                    false,
                    "TemplateDeleted",
                    &format!("removed unused template {}", t.name),
                    t.revision.as_deref(),
                ),
                Err(CloudError::InUse { .. }) => {}
                Err(e) => tracing::debug!(template = %t.name, error = %e, "template not collected"),
            }
        }
    }

    /// An invalid spec: nothing in the cloud changes; status says why.
    async fn stall(
        &self,
        app: &str,
        version: &str,
        problems: &[String],
    ) -> Result<Action, ReconcileError> {
        self.remember(app, None);
        let zone = self.recorded_zone(app).await?;
        let group = self.cloud.get_group(&group_id(app, zone.clone())).await?;
        let message = problems.join("\n");
        let status = Status {
            app: app.to_owned(),
            observed_spec: version.to_owned(),
            phase: Phase::Stalled,
            target: None,
            serving: serving(group.as_ref()),
            conditions: vec![Condition {
                kind: "Stalled",
                status: true,
                reason: "InvalidSpec".to_owned(),
                message: message.clone(),
            }],
            instances: instances(group.as_ref()),
            endpoints: Vec::new(),
            zone,
        };
        if self.write_status(&status).await? {
            self.events
                .record(app, true, "SpecRejected", &message, None);
        }
        Ok(Action::Requeue(WHEN_READY))
    }

    /// The spec is gone: every resource of the app goes, in reverse dependency order.
    async fn remove(&self, app: &str) -> Result<Action, ReconcileError> {
        self.remember(app, None);
        for internal in [false, true] {
            self.cloud
                .delete_load_balancer(&LbId {
                    app: app.to_owned(),
                    name: app.to_owned(),
                    internal,
                })
                .await?;
        }
        let id = group_id(app, self.recorded_zone(app).await?);
        let existed = self.cloud.get_group(&id).await?.is_some();
        self.cloud.delete_group(&id).await?;
        self.cloud
            .delete_health_check(app, &format!("{app}-autoheal"))
            .await?;
        for t in self.cloud.list_templates(app).await? {
            self.cloud.delete_template(app, &t.name).await?;
        }
        for rule in self.cloud.list_firewalls(app).await? {
            self.cloud.delete_firewall(app, &rule.name).await?;
        }
        self.store.delete_status(app).await?;
        if existed {
            self.events.record(
                app,
                false,
                "Deleted",
                "the spec was removed: every resource of the app is deleted",
                None,
            );
        }
        Ok(Action::AwaitChange)
    }

    async fn recorded_zone(&self, app: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .store
            .read_status(app)
            .await?
            .and_then(|s| crate::status::recorded_zone(&s)))
    }

    async fn write_status(&self, status: &Status) -> Result<bool, StoreError> {
        self.store
            .write_status(&status.app, status.to_yaml().as_bytes())
            .await
    }
}

/// The app's group, in the zone its last status recorded (regional without one).
fn group_id(app: &str, zone: Option<String>) -> GroupId {
    GroupId {
        app: app.to_owned(),
        name: app.to_owned(),
        zone,
    }
}

fn serving(group: Option<&GroupState>) -> Vec<String> {
    let mut versions: Vec<String> = group
        .into_iter()
        .flat_map(|g| g.instances.iter().filter_map(|i| i.version.clone()))
        .collect();
    versions.sort();
    versions.dedup();
    versions
}

fn instances(group: Option<&GroupState>) -> Vec<InstanceView> {
    let mut out: Vec<InstanceView> = group
        .into_iter()
        .flat_map(|g| g.instances.iter())
        .map(|i| InstanceView {
            name: i.name.clone(),
            version: i.version.clone().unwrap_or_default(),
            status: format!("{:?}", i.status),
            health: format!("{:?}", i.health),
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

impl<C: Cloud, S: SpecStore> Reconciler<Desired> for DeployReconciler<C, S> {
    type Error = ReconcileError;

    async fn reconcile(
        &self,
        key: &str,
        object: Option<Arc<Desired>>,
    ) -> Result<Action, ReconcileError> {
        match object.as_deref() {
            None => {
                self.remove(key)
                    .instrument(info_span!("remove", app = key))
                    .await
            }
            Some(Desired::Invalid {
                version, problems, ..
            }) => {
                self.stall(key, version, problems)
                    .instrument(info_span!("stall", app = key))
                    .await
            }
            Some(Desired::Valid { app, version, .. }) => {
                let span = info_span!("deploy", app = key, revision = %app.spec.version);
                self.deploy(app, version).instrument(span).await
            }
        }
    }
}
