//! The Cloud port: what ccd's reconcilers ask of a cloud, in ccd's own terms
//! (instance templates and groups, health checks, load balancers, firewall
//! rules), and [`GceCloud`], its adapter for Compute Engine and for ccd's
//! local cloud (same REST API, another endpoint).
//!
//! Every call is idempotent, so a reconciler can repeat it after any failure:
//! `apply_*` creates what is missing and corrects what differs, `delete_*`
//! of something already gone succeeds. Everything created is marked as ccd's
//! and the app's (labels `ccd-managed: "true"` and `ccd-app: <app>` where the
//! resource takes labels, the same words in its description otherwise).

mod error;
mod gce;
pub mod identity;
pub mod model;

use std::future::Future;
use std::time::SystemTime;

pub use error::CloudError;
pub use gce::{ApiCalls, EndpointToken, GceCloud, GceConfig};
pub use gce::{inspect, permissions};
use identity::IdentitySpec;
use model::{
    FirewallSpec, GroupId, GroupSpec, GroupState, HealthCheckSpec, LbId, LbState, LbTraffic,
    LoadBalancerSpec, ManagedInstance, TemplateInfo, TemplateSpec,
};

/// A cloud ccd deploys to. Deleting follows dependency order in reverse:
/// load balancer, group, health check and templates, firewall rules.
pub trait Cloud: Send + Sync + 'static {
    /// The same cloud, seen without the right to change it: every call that
    /// would create, change or delete something fails with
    /// [`CloudError::WouldChange`] instead, naming it. Applying a spec
    /// through this view tells whether the cloud drifted from it.
    fn read_only(&self) -> Self
    where
        Self: Sized;

    /// The region regional groups and internal load balancers go to.
    fn region(&self) -> &str;

    /// Creates the template unless it exists (templates are immutable and
    /// named by content: [`TemplateSpec::name`](model::TemplateSpec::name)); returns its name.
    fn ensure_template(
        &self,
        spec: &TemplateSpec,
    ) -> impl Future<Output = Result<String, CloudError>> + Send;

    /// The app's templates.
    fn list_templates(
        &self,
        app: &str,
    ) -> impl Future<Output = Result<Vec<TemplateInfo>, CloudError>> + Send;

    /// Deletes a template; [`CloudError::InUse`] while a group uses it.
    fn delete_template(
        &self,
        app: &str,
        name: &str,
    ) -> impl Future<Output = Result<(), CloudError>> + Send;

    /// The group and its instances, or `None` when there is no such group.
    fn get_group(
        &self,
        id: &GroupId,
    ) -> impl Future<Output = Result<Option<GroupState>, CloudError>> + Send;

    /// The group's instances as its manager sees them (addresses left out),
    /// or `None` when there is no such group: the cheapest look at a group,
    /// one call.
    fn group_members(
        &self,
        id: &GroupId,
    ) -> impl Future<Output = Result<Option<Vec<ManagedInstance>>, CloudError>> + Send;

    /// Creates the group or brings its versions, update policy, autohealing,
    /// named port (and target size, when given) to the spec; `true` when it
    /// created the group. Returns once the cloud accepted the change; poll
    /// [`Cloud::get_group`] for the rollout.
    fn apply_group(
        &self,
        spec: &GroupSpec,
    ) -> impl Future<Output = Result<bool, CloudError>> + Send;

    /// Sets the group's target size.
    fn resize_group(
        &self,
        id: &GroupId,
        size: u32,
    ) -> impl Future<Output = Result<(), CloudError>> + Send;

    /// Recreates these members from the group's template (same names, new
    /// IDs): what healing does when restarting the app did not help.
    fn recreate_instances(
        &self,
        id: &GroupId,
        instances: &[ManagedInstance],
    ) -> impl Future<Output = Result<(), CloudError>> + Send;

    /// Every group ccd made in the region, of every app, found by ccd's mark
    /// (never through a status file): what removal and the sweep for apps
    /// whose spec is gone go by.
    fn list_groups(&self) -> impl Future<Output = Result<Vec<GroupId>, CloudError>> + Send;

    /// Every app ccd made anything for in the region (a group, or a
    /// template marked with the region), found by ccd's mark: the apps the
    /// sweep compares with the specs.
    fn owned_apps(
        &self,
    ) -> impl Future<Output = Result<std::collections::BTreeSet<String>, CloudError>> + Send;

    /// Deletes the group and its instances; [`CloudError::InUse`] while a load balancer serves it.
    fn delete_group(&self, id: &GroupId) -> impl Future<Output = Result<(), CloudError>> + Send;

    /// Creates or corrects a health check (for autohealing).
    fn apply_health_check(
        &self,
        spec: &HealthCheckSpec,
    ) -> impl Future<Output = Result<(), CloudError>> + Send;

    fn delete_health_check(
        &self,
        app: &str,
        name: &str,
    ) -> impl Future<Output = Result<(), CloudError>> + Send;

    /// Creates what is missing of the load balancer, in dependency order, and
    /// corrects what differs.
    fn apply_load_balancer(
        &self,
        spec: &LoadBalancerSpec,
    ) -> impl Future<Output = Result<LbState, CloudError>> + Send;

    /// Which pieces of the load balancer exist, and its address.
    fn get_load_balancer(
        &self,
        id: &LbId,
    ) -> impl Future<Output = Result<LbState, CloudError>> + Send;

    /// Which of the app's load balancers named `name` exist, of either kind
    /// (any piece of one): a cheap look, one read, for those that should not.
    fn load_balancers(
        &self,
        app: &str,
        name: &str,
    ) -> impl Future<Output = Result<Vec<LbId>, CloudError>> + Send;

    /// Deletes every piece, in reverse dependency order.
    fn delete_load_balancer(
        &self,
        id: &LbId,
    ) -> impl Future<Output = Result<(), CloudError>> + Send;

    /// Requests and server errors per backend group between `since` and now,
    /// as the load balancer saw them (Cloud Monitoring's load-balancer
    /// metrics): what a canary is judged on against the stable group.
    fn lb_traffic(
        &self,
        id: &LbId,
        since: SystemTime,
    ) -> impl Future<Output = Result<LbTraffic, CloudError>> + Send;

    /// The app's firewall rules.
    fn list_firewalls(
        &self,
        app: &str,
    ) -> impl Future<Output = Result<Vec<FirewallSpec>, CloudError>> + Send;

    /// Creates or corrects an ingress rule to the app's instances.
    fn apply_firewall(
        &self,
        spec: &FirewallSpec,
    ) -> impl Future<Output = Result<(), CloudError>> + Send;

    fn delete_firewall(
        &self,
        app: &str,
        name: &str,
    ) -> impl Future<Output = Result<(), CloudError>> + Send;

    /// The email of the account ccd keeps for `app` on this cloud, which its
    /// instances run as unless the spec names one; `None` when ccd keeps no
    /// accounts (they run as the project's default).
    fn app_account(&self, app: &str) -> Option<String>;

    /// Creates the app's account unless it exists, grants it what the spec
    /// needs and takes away the secrets of `spec.revoke`; returns its email. An account of that name ccd did not make
    /// for the app is [`CloudError::NotOwned`].
    fn apply_identity(
        &self,
        spec: &IdentitySpec,
    ) -> impl Future<Output = Result<String, CloudError>> + Send;

    /// Deletes the app's account (its grants go with it), once nothing
    /// runs as it; one ccd did not make for the app is left alone.
    fn delete_identity(&self, app: &str) -> impl Future<Output = Result<(), CloudError>> + Send;
}
