//! One deploy pass: observe, decide, act, write status.

use ccd_cloud::model::{GroupId, LbId};
use ccd_cloud::{Cloud, CloudError};
use ccd_runtime::Action;
use ccd_store::SpecStore;

use super::{DeployReconciler, ReconcileError};
use crate::apply::{Applied, apply};
use crate::control::Control;
use crate::decide::{self, Decision, Input, Known, Work};
use crate::plan::{Plan, plan};
use crate::shape::{Shape, shape};
use crate::source::Origin;
use crate::status::{AccountStatus, Status};
use crate::steps::target_size;

impl<C: Cloud, S: SpecStore> DeployReconciler<C, S> {
    pub(super) async fn deploy(
        &self,
        app: &ccd_spec::App,
        path: &str,
        spec_version: &str,
        origin: Option<&Origin>,
    ) -> Result<Action, ReconcileError> {
        let name = &app.metadata.name;
        let region = &app.spec.machine.region;
        if region != self.cloud.region() {
            // `stall` leaves an app another region's controller keeps alone.
            let problem = format!(
                "{path}: spec.machine.region: {region} is not the region this controller deploys to \
                 ({}); write `region: {}` or run a controller for {region}",
                self.cloud.region(),
                self.cloud.region()
            );
            return self.stall(name, spec_version, &[problem], origin).await;
        }
        // The services first: the template references their credentials.
        let provisioned = match &self.services {
            Some(services) if app.spec.services.asks_any() => {
                let mut p = services.ensure(app).await;
                // What deleting the app will do to each, from the status then.
                for s in &mut p.services {
                    let on_delete = app.spec.services.on_delete(&s.kind);
                    s.on_delete = Some(on_delete.as_str().to_owned());
                }
                Some(p)
            }
            _ => None,
        };
        if let Some(p) = &provisioned
            && let Some(problem) = &p.problem
        {
            let held = super::remove::Held::Services(p.services.clone());
            return self
                .hold(
                    name,
                    spec_version,
                    std::slice::from_ref(problem),
                    origin,
                    held,
                )
                .await;
        }
        let mut plan = plan(app, self.local.as_ref(), self.cloud.app_account(name));
        if let Some(p) = &provisioned {
            plan.add_credentials(&p.credentials);
        }
        let recorded = self.recorded(name).await?;
        let control = self.control(name, &recorded).await;
        let now = self.clock.now();
        let mut observed = crate::observe::observe(&*self.cloud, name, &plan, &recorded).await?;
        observed.probes = self.probes.counts(name);
        let input = Input {
            app,
            spec_version,
            plan: &plan,
            recorded: &recorded,
            observed: &observed,
            control: control.as_ref(),
            now,
            poll: self.poll,
        };
        let mut decision = decide::decide(&input);
        decision.status.source = origin.cloned();
        let (services_status, credentials) = provisioned
            .map(|p| (p.services, p.credentials))
            .unwrap_or_default();
        decision.status.services = services_status;
        let shape = shape(&plan, &decision.status, target_size(app));
        let memory = self.memory(name);
        let work = decide::work(
            &input,
            &decision,
            &shape,
            memory.known.as_ref(),
            self.drift_check,
        );
        // A group is recorded before it is created: a crash in between
        // leaves a record of it, never a group nobody knows of.
        let new_group = decision
            .status
            .groups
            .iter()
            .any(|g| !recorded.groups.iter().any(|r| r.same(g)));
        if new_group {
            self.write_status(&decision.status).await?;
        }
        let outcome = self
            .act(&input, &mut decision, &shape, work, memory.known.as_ref())
            .await;
        let (endpoints, drift, certificate, created, error) = match outcome {
            Ok(a) => (a.endpoints, a.drift, a.certificate, a.created, None),
            Err(e) => (None, Vec::new(), None, Vec::new(), Some(e)),
        };
        let result = match &error {
            Some(e) => Err(e),
            None => Ok(endpoints),
        };
        decide::finalize(&input, &mut decision, result);
        decide::gate_https(&input, &mut decision, certificate);
        let revoked = error.is_none() && work == Work::Apply;
        decision.status.service_account = account_status(&recorded, &shape, revoked);
        // Every instance runs this template: credentials a rotation replaced
        // are no longer read by anyone, and stop working.
        let whole = decision.settled
            && decision.status.phase == crate::status::Phase::Ready
            && !decision.status.rolled_back;
        if error.is_none()
            && whole
            && !credentials.is_empty()
            && let Some(services) = &self.services
        {
            for retired in services.settle(name, &credentials).await {
                decision.events.push(decide::Event {
                    warning: false,
                    reason: "CredentialRetired",
                    message: retired,
                });
            }
        }
        // Unused templates go on a full pass at rest, and when a rollout
        // that replaced a revision ends (a first deploy made one template).
        let ended = memory.known.as_ref().is_some_and(|k| !k.settled)
            && (decision
                .status
                .rollout
                .as_ref()
                .is_some_and(|r| r.from.is_some())
                || !decision.status.history.is_empty());
        if error.is_none() && decision.settled && (work != Work::Nothing || ended) {
            self.collect_templates(name, &decision.status, &plan).await;
        }
        match &decision.probe {
            Some(order) => self.probes.ensure(name, order),
            None => self.probes.stop(name),
        }
        self.write_status(&decision.status).await?;
        // A controller that starts says once what it finds ready, as it
        // would have had it deployed the app itself.
        let first_here = memory.status.is_none();
        if first_here
            && decision.status.phase == crate::status::Phase::Ready
            && !decision.events.iter().any(|e| e.reason == "Ready")
        {
            let at = if decision.status.endpoints.is_empty() {
                "(not exposed)".to_owned()
            } else {
                decision.status.endpoints.join(" ")
            };
            decision.events.push(decide::Event {
                warning: false,
                reason: "Ready",
                message: format!("{at} version {}", app.spec.version),
            });
        }
        self.record_events(name, Some(app.spec.version.as_str()), &decision.events);
        self.record_created(name, &created, &shape);
        let moving = decision
            .status
            .groups
            .iter()
            .any(|g| g.role != crate::status::GroupRole::Stable)
            || decision
                .status
                .rollout
                .as_ref()
                .is_some_and(|r| r.state.is_open());
        // A load balancer without its URLs yet is not done: the next pass
        // applies again rather than resting on this one.
        let unexposed = !decide::exposed(&plan, &decision.status);
        let known = match work {
            _ if error.is_some() || unexposed || !(decision.settled || moving) => None,
            Work::Nothing => memory.known.map(|k| Known {
                settled: decision.settled,
                ..k
            }),
            Work::Look | Work::Apply => Some(Known {
                shape,
                spec_version: spec_version.to_owned(),
                checked: now,
                drift,
                settled: decision.settled,
            }),
        };
        let mut memory = self.memory(name);
        memory.known = known;
        self.remember(name, Some(memory));
        match error {
            Some(e) => Err(e.into()),
            None => Ok(Action::Requeue(decision.requeue)),
        }
    }

    /// The operator's control, read only while a rollout is open.
    async fn control(&self, app: &str, recorded: &Status) -> Option<Control> {
        recorded.rollout.as_ref().filter(|r| r.state.is_open())?;
        match self.store.read_control(app).await {
            Ok(bytes) => bytes.and_then(|b| Control::parse(&b)),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the rollout controls; going on without them");
                None
            }
        }
    }

    /// Does what `work` says: the endpoints (when the load balancer is
    /// complete) and the drift a look found and left alone, or the cloud's
    /// error.
    async fn act(
        &self,
        input: &Input<'_>,
        decision: &mut Decision,
        shape: &Shape,
        work: Work,
        known: Option<&Known>,
    ) -> Result<Applied, CloudError> {
        match work {
            Work::Nothing => {
                // What the last look found still stands until the next one.
                let drift = known.map(|k| k.drift.clone()).unwrap_or_default();
                decide::conclude_look(input, decision, &drift);
                return Ok(Applied {
                    drift,
                    ..Applied::default()
                });
            }
            Work::Apply => {}
            Work::Look => {
                let view = self.cloud.read_only();
                let looked = apply(&view, shape, &self.endpoints, true).await?;
                if !decide::conclude_look(input, decision, &looked.drift) {
                    return Ok(looked);
                }
            }
        }
        let mut applied = apply(&*self.cloud, shape, &self.endpoints, false).await?;
        if applied.removed_load_balancer {
            decision.events.push(decide::Event {
                warning: false,
                reason: "LoadBalancerDeleted",
                message: "removed a load balancer the spec no longer asks for".to_owned(),
            });
        }
        applied.drift = Vec::new();
        Ok(applied)
    }

    /// Events for groups this pass created.
    fn record_created(&self, app: &str, created: &[GroupId], shape: &Shape) {
        for g in shape.groups.iter().filter(|g| created.contains(&g.id())) {
            let version = g.versions.first().map_or("", |v| v.name.as_str());
            self.events.record(
                app,
                false,
                "GroupCreated",
                &format!("created group {} for version {version}", g.name),
                Some(version),
            );
        }
    }

    /// Templates no group of the app uses, except the spec's and the last good one.
    async fn collect_templates(&self, app: &str, status: &Status, plan: &Plan) {
        let mut keep = vec![plan.template.name()];
        keep.extend(status.last_good.iter().map(|g| g.template.clone()));
        let Ok(templates) = self.cloud.list_templates(app).await else {
            return;
        };
        for t in templates.into_iter().filter(|t| !keep.contains(&t.name)) {
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
}

/// The app's load balancer, of either kind.
pub(super) fn lb_ids(app: &str) -> [LbId; 2] {
    [false, true].map(|internal| LbId {
        app: app.to_owned(),
        name: app.to_owned(),
        internal,
    })
}

/// The group an app had before groups were recorded: named after the app,
/// regional unless a zone is known.
pub(super) fn legacy_group(app: &str) -> GroupId {
    GroupId {
        app: app.to_owned(),
        name: app.to_owned(),
        zone: None,
    }
}

/// What the app's account may hold grants on, for the next pass to take
/// away what it no longer needs: every secret granted so far (recorded as
/// soon as it may have been granted, so none is forgotten after a failed
/// pass), without those this pass took away (`revoked`: it applied them).
fn account_status(recorded: &Status, shape: &Shape, revoked: bool) -> Option<AccountStatus> {
    let identity = shape.identity.as_ref()?;
    let email = shape.template.service_account.clone()?;
    let mut secrets = recorded
        .service_account
        .as_ref()
        .map(|a| a.secrets.clone())
        .unwrap_or_default();
    secrets.extend(identity.secrets.iter().cloned());
    if revoked {
        secrets.retain(|s| !identity.revoke.contains(s));
    }
    Some(AccountStatus { email, secrets })
}
