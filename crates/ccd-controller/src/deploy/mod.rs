//! The deploy reconciler: for one app, observe what exists, create or
//! correct what differs, remove what the spec no longer asks for, write
//! status. Every step is idempotent, so a crash at any line is repaired by
//! the next pass; an invalid spec changes nothing in the cloud.
//!
//! A revision that was applied once is not applied blindly again: a look at
//! the group's members tells whether it is still whole, and every 10 minutes
//! a read-only pass tells whether the cloud drifted from the spec, which the
//! spec's `drift` mode then corrects, reports or ignores.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use ccd_cloud::model::GroupVersion;
use ccd_cloud::{Cloud, CloudError};
use ccd_runtime::{Action, Reconciler};
use ccd_spec::DriftMode;
use ccd_store::{SpecStore, StoreError};
use tokio::time::Instant;
use tracing::{Instrument, info_span};

use crate::apply::{Observed, apply};
mod finish;
mod remove;

use crate::plan::{LocalTarget, Plan, plan};
use crate::report::{self, Members};
use crate::source::Desired;
use crate::status::{Recorded, Status};

/// How long to wait before looking again while a rollout moves.
const WHILE_PROGRESSING: Duration = Duration::from_secs(2);
/// How often a converged app is looked at.
const WHEN_READY: Duration = Duration::from_secs(30);
/// How often a converged app gets a full (read-only) look for drift by
/// default; in between, a look at its group's members is enough.
pub const DRIFT_CHECK: Duration = Duration::from_secs(600);

/// What the last pass applied when it found the app whole.
#[derive(Debug, Clone)]
struct Known {
    /// The plan made from the spec, and the plan applied (they differ after a rollback).
    planned: Plan,
    applied: Plan,
    spec_version: String,
    status: Status,
    at: Instant,
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

/// Turns an app's load balancer (as asked, and as it is) into the URLs users call.
pub type Endpoints = Arc<
    dyn Fn(&ccd_cloud::model::LoadBalancerSpec, &ccd_cloud::model::LbState) -> Vec<String>
        + Send
        + Sync,
>;

pub struct DeployReconciler<C, S> {
    cloud: Arc<C>,
    store: Arc<S>,
    local: Option<LocalTarget>,
    events: Arc<dyn EventSink>,
    endpoints: Endpoints,
    known: Mutex<HashMap<String, Known>>,
    /// Since when each app's rollout of a template has been under way.
    rollouts: Mutex<HashMap<String, (String, Instant)>>,
    drift_check: Duration,
}

impl<C, S> std::fmt::Debug for DeployReconciler<C, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeployReconciler")
            .field("local", &self.local)
            .finish()
    }
}

/// Whether a pass applied the plan or only looked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pass {
    Applied,
    Checked,
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
            known: Default::default(),
            rollouts: Default::default(),
            drift_check: DRIFT_CHECK,
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

    async fn deploy(
        &self,
        app: &ccd_spec::App,
        path: &str,
        spec_version: &str,
    ) -> Result<Action, ReconcileError> {
        let name = &app.metadata.name;
        let region = &app.spec.machine.region;
        if region != self.cloud.region() {
            let problem = format!(
                "{path}: spec.machine.region: {region} is not the region this controller deploys to \
                 ({}); write `region: {}` or run a controller for {region}",
                self.cloud.region(),
                self.cloud.region()
            );
            return self.stall(name, spec_version, &[problem]).await;
        }
        let planned = plan(app, self.local.as_ref());
        let known = self.known(name, &planned, spec_version);
        if let Some(k) = &known {
            let fresh = k.at.elapsed() < self.drift_check || app.spec.drift == DriftMode::Off;
            if fresh && let Some(action) = self.light_pass(name, k).await? {
                return Ok(action);
            }
        }
        let recorded = self.recorded(name).await?;
        let applied = rollback_plan(&planned, &recorded);
        // Applied once already (it was Ready): what differs now is drift.
        let deployed = known.is_some()
            || recorded
                .last_good
                .as_ref()
                .is_some_and(|g| g.spec == spec_version && g.template == planned.template.name());
        let ctx = Ctx {
            app,
            spec_version,
            planned: &planned,
            applied: &applied,
            recorded: &recorded,
        };
        if deployed {
            let view = self.cloud.read_only();
            let observed = apply(&view, &applied, &self.endpoints, true).await?;
            match app.spec.drift {
                DriftMode::Correct if !observed.drift.is_empty() => {
                    self.events.record(
                        name,
                        true,
                        "DriftCorrected",
                        &observed.drift.join("; "),
                        Some(&app.spec.version),
                    );
                }
                mode => {
                    let drift = if mode == DriftMode::Warn {
                        observed.drift.clone()
                    } else {
                        Vec::new()
                    };
                    return self.finish(&ctx, observed, &drift, Pass::Checked).await;
                }
            }
        }
        let observed = apply(&*self.cloud, &applied, &self.endpoints, false).await?;
        self.record_changes(&ctx, &observed);
        self.finish(&ctx, observed, &[], Pass::Applied).await
    }

    /// Events for what a deployment pass changed. A rollout starts when the
    /// group existed and the status did not target this template yet.
    fn record_changes(&self, ctx: &Ctx<'_>, observed: &Observed) {
        let (app, name) = (ctx.app, &ctx.app.metadata.name);
        let template = ctx.planned.template.name();
        let version = Some(app.spec.version.as_str());
        if !observed.group_existed && observed.members.is_some() {
            self.events.record(
                name,
                false,
                "GroupCreated",
                &format!(
                    "created group {} for version {}",
                    ctx.applied.group.name, app.spec.version
                ),
                version,
            );
        } else if observed.group_existed
            && ctx.recorded.target_template.as_deref() != Some(template.as_str())
        {
            self.events.record(
                name,
                false,
                "RolloutStarted",
                &format!(
                    "rolling out template {template} (spec version {})",
                    app.spec.version
                ),
                version,
            );
        }
        if observed.removed_load_balancer {
            self.events.record(
                name,
                false,
                "LoadBalancerDeleted",
                "removed a load balancer the spec no longer asks for",
                None,
            );
        }
    }

    fn known(&self, app: &str, planned: &Plan, spec_version: &str) -> Option<Known> {
        let map = self.known.lock().unwrap_or_else(PoisonError::into_inner);
        map.get(app)
            .filter(|k| k.planned == *planned && k.spec_version == spec_version)
            .cloned()
    }

    /// For an app the last pass found whole with this very plan: one read
    /// (its group's members). Still whole → status is refreshed and nothing
    /// else is touched; anything else → `None`, and a full pass runs.
    async fn light_pass(&self, app: &str, known: &Known) -> Result<Option<Action>, ReconcileError> {
        let Some(members) = self.cloud.group_members(&known.applied.group.id()).await? else {
            self.remember(app, None);
            return Ok(None);
        };
        let want = wanted_template(&known.applied);
        let target = known.applied.group.target_size.unwrap_or(1);
        if !(report::idle(&members) && Members::of(&members, &want).whole(target)) {
            self.remember(app, None);
            return Ok(None);
        }
        let mut status = known.status.clone();
        status.instances = report::instance_views(&members);
        status.serving = report::serving(&members);
        self.write_status(&status).await?;
        Ok(Some(Action::Requeue(WHEN_READY)))
    }

    fn remember(&self, app: &str, known: Option<Known>) {
        let mut map = self.known.lock().unwrap_or_else(PoisonError::into_inner);
        match known {
            Some(k) => map.insert(app.to_owned(), k),
            None => map.remove(app),
        };
    }

    async fn recorded(&self, app: &str) -> Result<Recorded, StoreError> {
        Ok(self
            .store
            .read_status(app)
            .await?
            .map(|s| Recorded::parse(&s))
            .unwrap_or_default())
    }

    async fn write_status(&self, status: &Status) -> Result<bool, StoreError> {
        self.store
            .write_status(&status.app, status.to_yaml().as_bytes())
            .await
    }
}

/// What one deploy pass works from.
struct Ctx<'a> {
    app: &'a ccd_spec::App,
    spec_version: &'a str,
    planned: &'a Plan,
    applied: &'a Plan,
    recorded: &'a Recorded,
}

/// The plan, or after a failed rollout of this very revision, the plan with
/// its group back on the last good template.
fn rollback_plan(planned: &Plan, recorded: &Recorded) -> Plan {
    let mut applied = planned.clone();
    let failed = recorded.rolled_back
        && recorded.target_template.as_deref() == Some(planned.template.name().as_str());
    if let (true, Some(good)) = (failed, &recorded.last_good) {
        for v in &mut applied.group.versions {
            v.name = good.version.clone();
            v.template = good.template.clone();
        }
    }
    applied
}

/// The group's open version: the one without a target size, which gets
/// every instance the others do not.
fn open_version(plan: &Plan) -> Option<&GroupVersion> {
    plan.group.versions.iter().find(|v| v.target.is_none())
}

/// The template the group's open version runs.
fn wanted_template(plan: &Plan) -> String {
    open_version(plan).map_or_else(|| plan.template.name(), |v| v.template.clone())
}

/// The app's group, in the zone its last status recorded (regional without one).
fn group_id(app: &str, zone: Option<String>) -> ccd_cloud::model::GroupId {
    ccd_cloud::model::GroupId {
        app: app.to_owned(),
        name: app.to_owned(),
        zone,
    }
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
            Some(Desired::Valid { app, path, version }) => {
                let span = info_span!("deploy", app = key, revision = %app.spec.version);
                self.deploy(app, path, version).instrument(span).await
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::LastGood;

    const SPEC: &str = include_str!("../../../../specs/examples/hello.yaml");

    #[test]
    fn a_rolled_back_revision_runs_the_last_good_template_until_the_spec_changes() {
        let planned = plan(&ccd_spec::parse(SPEC).unwrap(), None);
        let good = LastGood {
            version: "0.9.0".into(),
            template: "hello-0000000000".into(),
            spec: "sha256:old".into(),
        };
        let mut recorded = Recorded {
            target_template: Some(planned.template.name()),
            last_good: Some(good.clone()),
            rolled_back: true,
            ..Recorded::default()
        };
        let applied = rollback_plan(&planned, &recorded);
        assert_eq!(wanted_template(&applied), good.template);
        assert_eq!(applied.group.versions[0].name, "0.9.0");
        assert_eq!(
            applied.template, planned.template,
            "the spec's template is kept"
        );

        recorded.target_template = Some("hello-another".into());
        assert_eq!(
            rollback_plan(&planned, &recorded),
            planned,
            "a new revision is tried again"
        );
        recorded.rolled_back = false;
        recorded.target_template = Some(planned.template.name());
        assert_eq!(rollback_plan(&planned, &recorded), planned);
        assert_eq!(wanted_template(&planned), planned.template.name());
    }
}
