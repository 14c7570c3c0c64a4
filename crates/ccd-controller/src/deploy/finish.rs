//! The end of a pass: what it saw becomes status, events and, for a
//! rollout past its deadline, the decision to go back to the last good
//! revision; and the housekeeping a whole app allows (unused templates, a
//! group the spec moved away from).

use std::sync::PoisonError;
use std::time::Duration;

use ccd_cloud::{Cloud, CloudError};
use ccd_runtime::Action;
use ccd_spec::DriftMode;
use ccd_store::SpecStore;
use tokio::time::Instant;

use super::{
    Ctx, DeployReconciler, Known, Pass, ReconcileError, WHEN_READY, WHILE_PROGRESSING, group_id,
    open_version, wanted_template,
};
use crate::apply::Observed;
use crate::report::{self, Facts, Members};
use crate::status::{LastGood, Phase, Status};

impl<C: Cloud, S: SpecStore> DeployReconciler<C, S> {
    /// Status from what the pass saw; a rollout past its deadline is rolled back.
    pub(super) async fn finish(
        &self,
        ctx: &Ctx<'_>,
        observed: Observed,
        drift: &[String],
        pass: Pass,
    ) -> Result<Action, ReconcileError> {
        let app = ctx.app;
        let name = &app.metadata.name;
        let version = &app.spec.version;
        let want = wanted_template(ctx.applied);
        let members = observed.members.as_deref().unwrap_or_default();
        let standing = Members::of(members, &want);
        // At rest on the wanted template: what a stable group on its target looks like.
        let converged = observed.members.is_some()
            && report::idle(members)
            && members
                .iter()
                .all(|i| i.template.as_deref() == Some(want.as_str()));
        let whole = converged && standing.whole(ctx.applied.group.target_size.unwrap_or(1));
        let ready = whole && observed.endpoints.is_some();
        let rolled_back = ctx.applied != ctx.planned;
        if converged {
            self.collect_templates(name, &[ctx.planned.template.name(), want.clone()])
                .await;
        }
        let deadline = app.spec.rollout.deadline.as_std();
        let late = !ready && !rolled_back && self.rollout_age(name, &want, ready) > deadline;
        let last_good = if ready && !rolled_back {
            Some(LastGood {
                version: version.clone(),
                template: want.clone(),
                spec: ctx.spec_version.to_owned(),
            })
        } else {
            ctx.recorded.last_good.clone()
        };
        let roll_back = late
            && last_good
                .as_ref()
                .is_some_and(|g| g.template != ctx.planned.template.name());
        let degraded = if rolled_back || roll_back {
            let good = last_good.as_ref().map_or("", |g| g.version.as_str());
            Some(report::rolled_back(version, good, deadline))
        } else if !drift.is_empty() {
            Some(report::drifted(drift))
        } else if late {
            Some(report::stuck(version, deadline, &standing))
        } else if converged && !whole {
            Some(report::unhealthy(&standing))
        } else {
            None
        };
        // After a rollback, what serves is the last good version, not the spec's.
        let serving_version =
            open_version(ctx.applied).map_or(version.as_str(), |v| v.name.as_str());
        let (phase, conditions) = report::conditions(&Facts {
            version: serving_version,
            ready: ready && !roll_back,
            degraded,
        });
        let status = Status {
            app: name.clone(),
            observed_spec: ctx.spec_version.to_owned(),
            phase,
            target: Some((version.clone(), ctx.planned.template.name())),
            last_good,
            rolled_back: rolled_back || roll_back,
            serving: report::serving(members),
            conditions,
            instances: report::instance_views(members),
            endpoints: observed.endpoints.clone().unwrap_or_default(),
            zone: ctx.applied.group.id().zone,
            region: ctx
                .applied
                .group
                .id()
                .zone
                .is_none()
                .then(|| app.spec.machine.region.clone()),
        };
        if ready && pass == Pass::Applied {
            self.retire_moved_group(name, ctx).await?;
        }
        self.remember(
            name,
            (ready && !roll_back).then(|| Known {
                planned: ctx.planned.clone(),
                applied: ctx.applied.clone(),
                spec_version: ctx.spec_version.to_owned(),
                status: status.clone(),
                at: Instant::now(),
            }),
        );
        let changed = self.write_status(&status).await?;
        if roll_back {
            let message = status.conditions.first().map(|c| c.message.clone());
            self.events.record(
                name,
                true,
                "RolledBack",
                &message.unwrap_or_default(),
                Some(version),
            );
            return Ok(Action::Requeue(Duration::ZERO));
        }
        if changed {
            self.record_status_change(name, version, &status, drift);
        }
        // Under warn and off nothing ccd does will change what a look found.
        let hands_off = pass == Pass::Checked && app.spec.drift != DriftMode::Correct;
        Ok(Action::Requeue(if ready || hands_off {
            WHEN_READY
        } else {
            WHILE_PROGRESSING
        }))
    }

    fn record_status_change(&self, app: &str, version: &str, status: &Status, drift: &[String]) {
        if !drift.is_empty() {
            self.events
                .record(app, true, "DriftDetected", &drift.join("; "), Some(version));
        }
        if let Some(c) = status
            .conditions
            .iter()
            .find(|c| c.kind == "Degraded" && c.status)
        {
            if c.reason != "Drifted" && c.reason != report::ROLLED_BACK {
                self.events
                    .record(app, true, &c.reason, &c.message, Some(version));
            }
        } else if status.phase == Phase::Ready {
            let at = if status.endpoints.is_empty() {
                "(not exposed)".to_owned()
            } else {
                status.endpoints.join(" ")
            };
            self.events.record(
                app,
                false,
                "Ready",
                &format!("{at} version {version}"),
                Some(version),
            );
        }
    }

    /// The spec moved the group (other zones): once the new one serves, the
    /// old one goes. Before the status records the new place, so a failure
    /// here is retried with the old place still known.
    async fn retire_moved_group(&self, app: &str, ctx: &Ctx<'_>) -> Result<(), CloudError> {
        let new = ctx.applied.group.id();
        let Some(old) = ctx.recorded.group_location().filter(|z| *z != new.zone) else {
            return Ok(());
        };
        let old = group_id(app, old);
        if self.cloud.group_members(&old).await?.is_some() {
            self.cloud.delete_group(&old).await?;
            self.events.record(
                app,
                false,
                "GroupMoved",
                &format!(
                    "the group moved to {}; the old one ({}) is deleted",
                    new.zone.as_deref().unwrap_or("a regional group"),
                    old.zone.as_deref().unwrap_or("regional")
                ),
                None,
            );
        }
        Ok(())
    }

    pub(super) fn forget_rollout(&self, app: &str) {
        let mut map = self.rollouts.lock().unwrap_or_else(PoisonError::into_inner);
        map.remove(app);
    }

    /// How long the rollout of `template` has been under way; the clock
    /// stops once the app is ready. Kept in memory: a restarted controller
    /// starts the clock again, so a rollout is never rolled back early.
    fn rollout_age(&self, app: &str, template: &str, ready: bool) -> Duration {
        let mut map = self.rollouts.lock().unwrap_or_else(PoisonError::into_inner);
        if ready {
            map.remove(app);
            return Duration::ZERO;
        }
        let entry = map
            .entry(app.to_owned())
            .or_insert_with(|| (template.to_owned(), Instant::now()));
        if entry.0 != template {
            *entry = (template.to_owned(), Instant::now());
        }
        entry.1.elapsed()
    }

    /// Templates no version uses any more, except `keep`.
    async fn collect_templates(&self, app: &str, keep: &[String]) {
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
