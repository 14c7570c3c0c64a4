//! The two passes that deploy nothing: an invalid spec (status says why,
//! the cloud is left alone) and a removed one (every resource goes).

use ccd_cloud::Cloud;
use ccd_runtime::Action;
use ccd_store::SpecStore;

use super::pass::{lb_ids, legacy_group};
use super::{DeployReconciler, ReconcileError};
use crate::decide::{self, WHEN_SETTLED};
use crate::report;

impl<C: Cloud, S: SpecStore> DeployReconciler<C, S> {
    /// An invalid spec: nothing in the cloud changes; status says why and
    /// still shows what serves.
    pub(super) async fn stall(
        &self,
        app: &str,
        version: &str,
        problems: &[String],
    ) -> Result<Action, ReconcileError> {
        // Nothing moves while the spec is invalid: nothing to measure.
        self.probes.stop(app);
        let recorded = self.recorded(app).await?;
        let mut status = decide::stalled(&recorded, app, version, problems);
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
        if self.write_status(&status).await? {
            self.events
                .record(app, true, "SpecRejected", &message, None);
        }
        let mut memory = self.memory(app);
        memory.known = None;
        self.remember(app, Some(memory));
        Ok(Action::Requeue(WHEN_SETTLED))
    }

    /// The spec is gone: every resource of the app goes, in reverse dependency order.
    pub(super) async fn remove(&self, app: &str) -> Result<Action, ReconcileError> {
        self.probes.stop(app);
        let recorded = self.recorded(app).await?;
        for id in lb_ids(app) {
            self.cloud.delete_load_balancer(&id).await?;
        }
        let mut groups: Vec<_> = recorded.groups.iter().map(|g| g.id(app)).collect();
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
}
