//! The two passes that deploy nothing: an invalid spec (status says why,
//! the cloud is left alone) and a removed one (every resource goes).

use std::sync::PoisonError;

use ccd_cloud::Cloud;
use ccd_runtime::Action;
use ccd_store::SpecStore;

use super::pass::{lb_ids, legacy_group};
use super::{DeployReconciler, ReconcileError};
use crate::decide::{self, WHEN_SETTLED};
use crate::report;
use crate::source::Origin;
use crate::status::{Condition, Status};

/// Why a spec is held back from the cloud.
#[derive(Debug)]
pub(super) enum Held {
    /// It is not a valid spec.
    InvalidSpec,
    /// A service it asks for could not be provided: their states.
    Services(Vec<ccd_services::ServiceStatus>),
}

impl Held {
    /// The Stalled condition's reason, and the event's.
    fn words(&self) -> (&'static str, &'static str) {
        match self {
            Held::InvalidSpec => ("InvalidSpec", "SpecRejected"),
            Held::Services(_) => ("ServiceUnavailable", "ServiceUnavailable"),
        }
    }
}

impl<C: Cloud, S: SpecStore> DeployReconciler<C, S> {
    /// An invalid spec: nothing in the cloud changes; status says why and
    /// still shows what serves.
    pub(super) async fn stall(
        &self,
        app: &str,
        version: &str,
        problems: &[String],
        origin: Option<&Origin>,
    ) -> Result<Action, ReconcileError> {
        self.hold(app, version, problems, origin, Held::InvalidSpec)
            .await
    }

    /// A spec that cannot roll out yet, for `why`: nothing in the cloud
    /// changes; status says why and still shows what serves.
    pub(super) async fn hold(
        &self,
        app: &str,
        version: &str,
        problems: &[String],
        origin: Option<&Origin>,
        why: Held,
    ) -> Result<Action, ReconcileError> {
        // Nothing moves while the spec is invalid: nothing to measure.
        self.probes.stop(app);
        if self.kept_elsewhere(app).await? {
            // Another region's app: its controller says what is wrong.
            return Ok(Action::AwaitChange);
        }
        let recorded = self.recorded(app).await?;
        let mut problems = problems.to_vec();
        if let Some(o) = origin {
            // Where to fix it: the store's copy is overwritten by the next sync.
            problems.push(format!(
                "this spec is {} at commit {}: fix it there and sync again",
                o.path, o.commit
            ));
        }
        let (reason, event) = why.words();
        let mut status = decide::stalled(&recorded, app, version, reason, &problems);
        status.source = origin.cloned();
        if let Held::Services(services) = why {
            status.services = services;
        }
        let mut members = Vec::new();
        for g in &recorded.groups {
            if let Some(m) = self.cloud.group_members(&g.id(app)).await? {
                members.extend(m.into_iter().map(|m| (g.name.clone(), m)));
            }
        }
        let refs: Vec<(&str, &ccd_cloud::model::ManagedInstance)> =
            members.iter().map(|(g, m)| (g.as_str(), m)).collect();
        status.instances = report::instance_views(&refs, recorded.groups.len() > 1);
        status.serving = report::serving(&refs.iter().map(|(_, m)| *m).collect::<Vec<_>>());
        let message = problems.join("\n");
        if self.write_status_as(&status, false).await? {
            self.events.record(app, true, event, &message, None);
        }
        let mut memory = self.memory(app);
        memory.known = None;
        self.remember(app, Some(memory));
        Ok(Action::Requeue(WHEN_SETTLED))
    }

    /// The spec is gone. After the grace period (and unless the app is
    /// protected) every resource of the app goes, in reverse dependency
    /// order: the groups found by ccd's mark as well as those the status
    /// records, so a lost status file leaks nothing.
    pub(super) async fn remove(&self, app: &str) -> Result<Action, ReconcileError> {
        self.probes.stop(app);
        if self.kept_elsewhere(app).await? {
            // Another region's app: its resources are there, not here.
            self.remember(app, None);
            return Ok(Action::AwaitChange);
        }
        let recorded = self.recorded(app).await?;
        let mut memory = self.memory(app);
        let first_look = memory.absent_since.is_none();
        let since = *memory
            .absent_since
            .get_or_insert_with(tokio::time::Instant::now);
        self.remember(app, Some(memory));
        if recorded.deletion_protection {
            let message = format!(
                "the spec was removed, but deletionProtection is true: every resource is kept; \
                 to delete the app, put specs/{app}.yaml back with deletionProtection: false, \
                 then remove it"
            );
            if self
                .note_removal(app, &recorded, "DeletionProtected", &message)
                .await?
            {
                self.events
                    .record(app, true, "DeletionRefused", &message, None);
            }
            return Ok(Action::AwaitChange);
        }
        let left = self.deletion_grace.saturating_sub(since.elapsed());
        if !left.is_zero() {
            if first_look {
                let message = format!(
                    "the spec is gone: every resource of the app is deleted in {}s unless \
                     specs/{app}.yaml comes back",
                    left.as_millis().div_ceil(1000)
                );
                self.note_removal(app, &recorded, "PendingDeletion", &message)
                    .await?;
                self.events
                    .record(app, false, "DeletionScheduled", &message, None);
            }
            return Ok(Action::Requeue(left));
        }
        for id in lb_ids(app) {
            self.cloud.delete_load_balancer(&id).await?;
        }
        let mut groups: Vec<_> = recorded.groups.iter().map(|g| g.id(app)).collect();
        for id in self.cloud.list_groups().await? {
            if id.app == app && !groups.contains(&id) {
                groups.push(id);
            }
        }
        if groups.is_empty() {
            groups.push(legacy_group(app));
        }
        let mut existed = false;
        for id in &groups {
            existed |= self.cloud.group_members(id).await?.is_some();
            self.cloud.delete_group(id).await?;
        }
        self.cloud
            .delete_health_check(app, &format!("{app}-autoheal"))
            .await?;
        for t in self.cloud.list_templates(app).await? {
            self.cloud.delete_template(app, &t.name).await?;
        }
        for rule in self.cloud.list_firewalls(app).await? {
            self.cloud.delete_firewall(app, &rule.name).await?;
        }
        // Last: nothing runs as the account any more.
        self.cloud.delete_identity(app).await?;
        // The services after everything that used them, before the status
        // that names them goes.
        if let Some(services) = &self.services
            && !recorded.services.is_empty()
        {
            let released = services.release(app, &recorded.services).await;
            for problem in &released.problems {
                self.events.record(app, true, "ServiceKept", problem, None);
            }
            if !released.deleted.is_empty() {
                let message = format!(
                    "deleted with the app (onDelete: delete): {}",
                    released.deleted.join(", ")
                );
                self.events
                    .record(app, false, "ServicesDeleted", &message, None);
            }
            if !released.retained.is_empty() {
                let message = format!(
                    "kept (onDelete: retain), their accounts disabled: {}; `ccd services prune {app}` \
                     removes them",
                    released.retained.join(", ")
                );
                self.events
                    .record(app, false, "ServicesRetained", &message, None);
            }
        }
        self.store.delete_status(app).await?;
        self.store.delete_control(app).await?;
        self.store.delete_scaling(app).await?;
        self.remember(app, None);
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

    /// Says in the status why the app is still there without a spec; true
    /// when that is news (not already said).
    async fn note_removal(
        &self,
        app: &str,
        recorded: &Status,
        reason: &str,
        message: &str,
    ) -> Result<bool, ReconcileError> {
        if recorded
            .conditions
            .iter()
            .any(|c| c.kind == REMOVAL && c.reason == reason)
        {
            return Ok(false);
        }
        let mut status = recorded.clone();
        status.app = app.to_owned();
        status.conditions.retain(|c| c.kind != REMOVAL);
        status.conditions.push(Condition {
            kind: REMOVAL.to_owned(),
            status: true,
            reason: reason.to_owned(),
            message: message.to_owned(),
        });
        self.write_status(&status).await?;
        Ok(true)
    }

    /// The spec is there (again): a removal waiting out its grace is off.
    pub(super) fn spec_is_back(&self, app: &str) {
        let was_noted = {
            let mut map = self.memory.lock().unwrap_or_else(PoisonError::into_inner);
            let Some(memory) = map.get_mut(app) else {
                return;
            };
            if memory.absent_since.take().is_none() {
                return;
            }
            // A full pass rewrites the status without the removal's condition.
            memory.known = None;
            memory.status.as_mut().is_some_and(|s| {
                let before = s.conditions.len();
                s.conditions.retain(|c| c.kind != REMOVAL);
                s.conditions.len() != before
            })
        };
        if was_noted {
            self.events.record(
                app,
                false,
                "DeletionCancelled",
                "the spec is back: nothing was deleted",
                None,
            );
        }
    }
}

/// The condition that says why an app without a spec is still there.
const REMOVAL: &str = "Removal";
