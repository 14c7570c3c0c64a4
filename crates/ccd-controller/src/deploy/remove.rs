//! The two passes that deploy nothing: an invalid spec (status says why,
//! the cloud is left alone) and a removed one (every resource goes).

use ccd_cloud::Cloud;
use ccd_cloud::model::LbId;
use ccd_runtime::Action;
use ccd_store::SpecStore;

use super::{DeployReconciler, ReconcileError, WHEN_READY, group_id};
use crate::report;
use crate::status::{Condition, Phase, Status};

impl<C: Cloud, S: SpecStore> DeployReconciler<C, S> {
    /// An invalid spec: nothing in the cloud changes; status says why.
    pub(super) async fn stall(
        &self,
        app: &str,
        version: &str,
        problems: &[String],
    ) -> Result<Action, ReconcileError> {
        self.remember(app, None);
        let recorded = self.recorded(app).await?;
        let group = self
            .cloud
            .group_members(&group_id(app, recorded.group_location().flatten()))
            .await?;
        let members = group.as_deref().unwrap_or_default();
        let message = problems.join("\n");
        let status = Status {
            app: app.to_owned(),
            observed_spec: version.to_owned(),
            phase: Phase::Stalled,
            target: None,
            last_good: recorded.last_good,
            rolled_back: false,
            serving: report::serving(members),
            conditions: vec![Condition {
                kind: "Stalled",
                status: true,
                reason: "InvalidSpec".to_owned(),
                message: message.clone(),
            }],
            instances: report::instance_views(members),
            endpoints: Vec::new(),
            zone: recorded.zone,
            region: recorded.region,
        };
        if self.write_status(&status).await? {
            self.events
                .record(app, true, "SpecRejected", &message, None);
        }
        Ok(Action::Requeue(WHEN_READY))
    }

    /// The spec is gone: every resource of the app goes, in reverse dependency order.
    pub(super) async fn remove(&self, app: &str) -> Result<Action, ReconcileError> {
        self.remember(app, None);
        self.forget_rollout(app);
        for internal in [false, true] {
            self.cloud
                .delete_load_balancer(&LbId {
                    app: app.to_owned(),
                    name: app.to_owned(),
                    internal,
                })
                .await?;
        }
        let id = group_id(app, self.recorded(app).await?.group_location().flatten());
        let existed = self.cloud.group_members(&id).await?.is_some();
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
}
