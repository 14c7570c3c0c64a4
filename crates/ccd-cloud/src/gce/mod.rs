//! The Cloud port on Compute Engine's REST API v1 through Google's official
//! SDK. The same code serves ccd's local cloud: another endpoint, and its
//! API token as credentials (`bearer.rs`).

/// A mutation as every call here sends it: a fresh request id, marked
/// idempotent so the retry policy may resend it, polled to completion.
macro_rules! idempotent {
    ($builder:expr) => {
        $builder
            .set_request_id($crate::gce::call::request_id())
            .with_idempotency(true)
            .poller()
    };
}

mod bearer;
mod boot;
mod call;
mod counters;
mod firewalls;
mod group_state;
mod groups;
mod health;
mod identity;
pub mod inspect;
mod inventory;
mod lb;
mod marker;
mod operations;
pub mod permissions;
mod rollout_policy;
mod secrets;
mod seen;
mod templates;
mod traffic;

use std::sync::Arc;
use std::time::Duration;

pub use bearer::EndpointToken;
pub use counters::ApiCalls;

use google_cloud_auth::credentials::Credentials;
use google_cloud_compute_v1::client::{
    Addresses, BackendServices, Firewalls, ForwardingRules, GlobalAddresses, GlobalForwardingRules,
    GlobalOperations, HealthChecks, InstanceGroupManagers, InstanceGroups, InstanceTemplates,
    Instances, RegionBackendServices, RegionHealthChecks, RegionInstanceGroupManagers,
    RegionInstanceGroups, RegionOperations, RegionTargetHttpProxies, RegionUrlMaps, Regions,
    SslCertificates, Subnetworks, TargetHttpProxies, TargetHttpsProxies, UrlMaps, ZoneOperations,
};
use google_cloud_gax::exponential_backoff::ExponentialBackoffBuilder;
use google_cloud_gax::retry_policy::RetryPolicyExt as _;

use crate::identity::IdentitySpec;
use crate::model::{
    FirewallSpec, GroupId, GroupSpec, GroupState, HealthCheckSpec, LbId, LbState, LoadBalancerSpec,
    ManagedInstance, TemplateInfo, TemplateSpec,
};
use crate::{Cloud, CloudError};

/// Where and how [`GceCloud`] talks to Compute Engine.
#[derive(Debug, Clone)]
pub struct GceConfig {
    pub project: String,
    /// Regional groups and internal load balancers live here.
    pub region: String,
    /// `None` for Compute Engine; the local cloud's `endpoint()` otherwise.
    pub endpoint: Option<String>,
    /// The local cloud's API token (its data folder's `token` file), sent as
    /// a bearer token; `None`: Application Default Credentials.
    pub endpoint_token: Option<EndpointToken>,
    /// Calls per second at most, polls included.
    pub rate_limit_per_sec: f64,
    /// How long an operation may take to be DONE.
    pub op_timeout: Duration,
    /// First back-off after a throttled call (it doubles up to 65 s).
    pub initial_backoff: Duration,
    /// VPC network of instances, firewall rules and internal load balancers.
    pub network: String,
    /// Subnetwork internal load balancers take their address from; `None`
    /// means the region's `default` subnetwork.
    pub subnetwork: Option<String>,
    /// The image of ccd itself that instances run their agent from (`ccd
    /// agent`, beside the app's container); no agent when `None`.
    pub agent_image: Option<String>,
    /// Apps whose spec names no service account run as one ccd creates and
    /// grants for each (`false`: as the project's default account).
    pub app_accounts: bool,
}

impl Default for GceConfig {
    fn default() -> Self {
        GceConfig {
            project: String::new(),
            region: "europe-west1".to_owned(),
            endpoint: None,
            endpoint_token: None,
            // Well under Compute's default per-minute API rate quotas for one controller.
            rate_limit_per_sec: 10.0,
            op_timeout: Duration::from_secs(300),
            initial_backoff: Duration::from_secs(1),
            network: "global/networks/default".to_owned(),
            subnetwork: None,
            agent_image: None,
            app_accounts: true,
        }
    }
}

/// The SDK's clients, one per collection; each holds a shared connection pool.
#[derive(Debug, Clone)]
struct Clients {
    templates: InstanceTemplates,
    igm: InstanceGroupManagers,
    rigm: RegionInstanceGroupManagers,
    groups: InstanceGroups,
    rgroups: RegionInstanceGroups,
    instances: Instances,
    health_checks: HealthChecks,
    rhealth_checks: RegionHealthChecks,
    backends: BackendServices,
    rbackends: RegionBackendServices,
    url_maps: UrlMaps,
    rurl_maps: RegionUrlMaps,
    certs: SslCertificates,
    https_proxies: TargetHttpsProxies,
    http_proxies: TargetHttpProxies,
    rhttp_proxies: RegionTargetHttpProxies,
    global_addresses: GlobalAddresses,
    addresses: Addresses,
    global_rules: GlobalForwardingRules,
    rules: ForwardingRules,
    firewalls: Firewalls,
    regions: Regions,
    subnetworks: Subnetworks,
    /// Waiting for the operations of mutations, in their scope.
    global_operations: GlobalOperations,
    region_operations: RegionOperations,
    zone_operations: ZoneOperations,
    /// Cloud Monitoring, for the load balancers' traffic.
    metrics: google_cloud_monitoring_v3::client::MetricService,
    /// The apps' own service accounts and their grants.
    iam: google_cloud_iam_admin_v1::client::Iam,
    projects: google_cloud_resourcemanager_v3::client::Projects,
    secrets: google_cloud_secretmanager_v1::client::SecretManagerService,
    registry: google_cloud_artifactregistry_v1::client::ArtifactRegistry,
}

/// [`Cloud`] on Compute Engine (or the local cloud).
#[derive(Debug)]
pub struct GceCloud {
    config: GceConfig,
    c: Clients,
    /// Every call, polls included, takes a token first; a throttled answer pauses it.
    limiter: ccd_runtime::RateLimiter,
    counters: Arc<counters::Counters>,
    /// Which resources were last seen existing: which of insert or read goes first.
    seen: Arc<seen::Seen>,
    /// The region's zones, once asked.
    region_zones: Arc<tokio::sync::OnceCell<Vec<String>>>,
    /// The region's proxy-only subnet ranges, once found.
    proxy_ranges: Arc<tokio::sync::OnceCell<Vec<String>>>,
    /// Mutations are refused ([`Cloud::read_only`]).
    read_only: bool,
    /// Mutations are refused unless this process leads (see [`GceCloud::with_fence`]).
    fence: ccd_runtime::lease::Leadership,
}

macro_rules! client {
    ($ty:ty, $config:expr, $creds:expr, $throttle:expr) => {{
        let backoff = ExponentialBackoffBuilder::new()
            .with_initial_delay($config.initial_backoff)
            .with_maximum_delay(Duration::from_secs(65).max($config.initial_backoff))
            .build()
            .map_err(|e| invalid(format!("back-off: {e}")))?;
        let mut b = <$ty>::builder()
            .with_credentials($creds.clone())
            .with_retry_policy(
                call::ComputeRetry($throttle.clone())
                    .with_attempt_limit(10)
                    .with_time_limit(Duration::from_secs(180)),
            )
            .with_backoff_policy(backoff)
            .with_polling_error_policy(call::ComputePollErrors($throttle.clone()));
        if let Some(endpoint) = &$config.endpoint {
            b = b.with_endpoint(endpoint.clone());
        }
        b.build().await.map_err(|e| CloudError::Other {
            resource: format!("compute client {}", stringify!($ty)),
            message: e.to_string(),
        })?
    }};
}

fn invalid(message: String) -> CloudError {
    CloudError::Invalid {
        resource: "GceConfig".to_owned(),
        message,
    }
}

impl GceCloud {
    pub async fn new(config: GceConfig) -> Result<Self, CloudError> {
        if config.project.is_empty() || config.region.is_empty() {
            return Err(invalid("project and region are required".to_owned()));
        }
        let creds: Credentials = match &config.endpoint_token {
            Some(token) => bearer::credentials(token)?,
            // Once for all clients, so they share one token source.
            None => google_cloud_auth::credentials::Builder::default()
                .build()
                .map_err(|e| invalid(format!("Application Default Credentials: {e}")))?,
        };
        let limiter = call::limiter(config.rate_limit_per_sec)?;
        let throttle = call::Throttle {
            limiter: limiter.clone(),
            pause: config.initial_backoff,
        };
        let c = Clients {
            templates: client!(InstanceTemplates, config, creds, throttle),
            igm: client!(InstanceGroupManagers, config, creds, throttle),
            rigm: client!(RegionInstanceGroupManagers, config, creds, throttle),
            groups: client!(InstanceGroups, config, creds, throttle),
            rgroups: client!(RegionInstanceGroups, config, creds, throttle),
            instances: client!(Instances, config, creds, throttle),
            health_checks: client!(HealthChecks, config, creds, throttle),
            rhealth_checks: client!(RegionHealthChecks, config, creds, throttle),
            backends: client!(BackendServices, config, creds, throttle),
            rbackends: client!(RegionBackendServices, config, creds, throttle),
            url_maps: client!(UrlMaps, config, creds, throttle),
            rurl_maps: client!(RegionUrlMaps, config, creds, throttle),
            certs: client!(SslCertificates, config, creds, throttle),
            https_proxies: client!(TargetHttpsProxies, config, creds, throttle),
            http_proxies: client!(TargetHttpProxies, config, creds, throttle),
            rhttp_proxies: client!(RegionTargetHttpProxies, config, creds, throttle),
            global_addresses: client!(GlobalAddresses, config, creds, throttle),
            addresses: client!(Addresses, config, creds, throttle),
            global_rules: client!(GlobalForwardingRules, config, creds, throttle),
            rules: client!(ForwardingRules, config, creds, throttle),
            firewalls: client!(Firewalls, config, creds, throttle),
            regions: client!(Regions, config, creds, throttle),
            subnetworks: client!(Subnetworks, config, creds, throttle),
            global_operations: client!(GlobalOperations, config, creds, throttle),
            region_operations: client!(RegionOperations, config, creds, throttle),
            zone_operations: client!(ZoneOperations, config, creds, throttle),
            metrics: traffic::metric_client(&config, &creds, &throttle).await?,
            iam: client!(
                google_cloud_iam_admin_v1::client::Iam,
                config,
                creds,
                throttle
            ),
            projects: client!(
                google_cloud_resourcemanager_v3::client::Projects,
                config,
                creds,
                throttle
            ),
            secrets: client!(
                google_cloud_secretmanager_v1::client::SecretManagerService,
                config,
                creds,
                throttle
            ),
            registry: client!(
                google_cloud_artifactregistry_v1::client::ArtifactRegistry,
                config,
                creds,
                throttle
            ),
        };
        Ok(GceCloud {
            config,
            c,
            limiter,
            counters: Default::default(),
            seen: Default::default(),
            region_zones: Default::default(),
            proxy_ranges: Default::default(),
            read_only: false,
            fence: ccd_runtime::lease::Leadership::alone(),
        })
    }

    /// Sends mutations only while `leadership` says this process may act,
    /// checked before each is sent (after any wait for the rate limiter):
    /// a controller whose lease lapsed changes nothing, even mid-pass.
    pub fn with_fence(mut self, leadership: ccd_runtime::lease::Leadership) -> Self {
        self.fence = leadership;
        self
    }

    /// Calls sent so far, by kind.
    pub fn api_calls(&self) -> ApiCalls {
        self.counters.snapshot()
    }

    fn project(&self) -> &str {
        &self.config.project
    }

    fn region(&self) -> &str {
        &self.config.region
    }
}

// Each call's future is boxed: the futures of a deploy pass hold those of
// every call they await, and in debug builds that overflowed a worker's stack.
impl Cloud for GceCloud {
    fn read_only(&self) -> Self {
        GceCloud {
            config: self.config.clone(),
            c: self.c.clone(),
            limiter: self.limiter.clone(),
            counters: self.counters.clone(),
            seen: self.seen.clone(),
            region_zones: self.region_zones.clone(),
            proxy_ranges: self.proxy_ranges.clone(),
            read_only: true,
            fence: self.fence.clone(),
        }
    }

    fn region(&self) -> &str {
        &self.config.region
    }

    async fn ensure_template(&self, spec: &TemplateSpec) -> Result<String, CloudError> {
        Ok(Box::pin(self.ensure_template_impl(spec)).await?)
    }

    async fn list_templates(&self, app: &str) -> Result<Vec<TemplateInfo>, CloudError> {
        Ok(Box::pin(self.list_templates_impl(app)).await?)
    }

    async fn delete_template(&self, app: &str, name: &str) -> Result<(), CloudError> {
        Ok(Box::pin(self.delete_template_impl(app, name)).await?)
    }

    async fn get_group(&self, id: &GroupId) -> Result<Option<GroupState>, CloudError> {
        Ok(Box::pin(self.get_group_impl(id)).await?)
    }

    async fn group_members(
        &self,
        id: &GroupId,
    ) -> Result<Option<Vec<ManagedInstance>>, CloudError> {
        Ok(Box::pin(self.group_members_impl(id)).await?)
    }

    async fn apply_group(&self, spec: &GroupSpec) -> Result<bool, CloudError> {
        Ok(Box::pin(self.apply_group_impl(spec)).await?)
    }

    async fn resize_group(&self, id: &GroupId, size: u32) -> Result<(), CloudError> {
        Ok(Box::pin(self.resize_group_impl(id, size)).await?)
    }

    async fn recreate_instances(
        &self,
        id: &GroupId,
        instances: &[ManagedInstance],
    ) -> Result<(), CloudError> {
        Ok(Box::pin(self.recreate_instances_impl(id, instances)).await?)
    }

    async fn delete_group(&self, id: &GroupId) -> Result<(), CloudError> {
        Ok(Box::pin(self.delete_group_impl(id)).await?)
    }

    async fn apply_health_check(&self, spec: &HealthCheckSpec) -> Result<(), CloudError> {
        Ok(Box::pin(self.apply_health_check_impl(spec)).await?)
    }

    async fn delete_health_check(&self, app: &str, name: &str) -> Result<(), CloudError> {
        Ok(Box::pin(self.delete_health_check_impl(app, name)).await?)
    }

    async fn apply_load_balancer(&self, spec: &LoadBalancerSpec) -> Result<LbState, CloudError> {
        Ok(Box::pin(self.apply_load_balancer_impl(spec)).await?)
    }

    async fn get_load_balancer(&self, id: &LbId) -> Result<LbState, CloudError> {
        Ok(Box::pin(self.get_load_balancer_impl(id)).await?)
    }

    async fn load_balancers(&self, app: &str, name: &str) -> Result<Vec<LbId>, CloudError> {
        Ok(Box::pin(self.load_balancers_impl(app, name)).await?)
    }

    async fn delete_load_balancer(&self, id: &LbId) -> Result<(), CloudError> {
        Ok(Box::pin(self.delete_load_balancer_impl(id)).await?)
    }

    async fn lb_traffic(
        &self,
        id: &LbId,
        since: std::time::SystemTime,
    ) -> Result<crate::model::LbTraffic, CloudError> {
        Ok(Box::pin(self.lb_traffic_impl(id, since)).await?)
    }

    async fn list_groups(&self) -> Result<Vec<GroupId>, CloudError> {
        Ok(Box::pin(self.list_groups_impl()).await?)
    }

    async fn owned_apps(&self) -> Result<std::collections::BTreeSet<String>, CloudError> {
        Ok(Box::pin(self.owned_apps_impl()).await?)
    }

    async fn list_firewalls(&self, app: &str) -> Result<Vec<FirewallSpec>, CloudError> {
        Ok(Box::pin(self.list_firewalls_impl(app)).await?)
    }

    async fn apply_firewall(&self, spec: &FirewallSpec) -> Result<(), CloudError> {
        Ok(Box::pin(self.apply_firewall_impl(spec)).await?)
    }

    async fn delete_firewall(&self, app: &str, name: &str) -> Result<(), CloudError> {
        Ok(Box::pin(self.delete_firewall_impl(app, name)).await?)
    }

    fn app_account(&self, app: &str) -> Option<String> {
        self.config
            .app_accounts
            .then(|| crate::identity::account_email(app, self.project()))
    }

    async fn apply_identity(&self, spec: &IdentitySpec) -> Result<String, CloudError> {
        Ok(Box::pin(self.apply_identity_impl(spec)).await?)
    }

    async fn delete_identity(&self, app: &str) -> Result<(), CloudError> {
        if !self.config.app_accounts {
            return Ok(());
        }
        Ok(Box::pin(self.delete_identity_impl(app)).await?)
    }
}
