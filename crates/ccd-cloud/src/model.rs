//! ccd's model of what it deploys, as the Cloud port speaks it: instance
//! templates, instance groups, health checks, load balancers and firewall
//! rules. Nothing here names a Google API type, so another cloud's adapter
//! can implement the same port.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use serde::Serialize;
use sha2::{Digest, Sha256};

/// Label (or description marker) on everything ccd creates.
pub const MANAGED_LABEL: &str = "ccd-managed";
/// Label (or description marker) naming the app a resource belongs to.
pub const APP_LABEL: &str = "ccd-app";
/// Source ranges of Google's health checkers and external load balancer front ends.
pub const HEALTH_CHECK_RANGES: [&str; 2] = ["35.191.0.0/16", "130.211.0.0/22"];
/// A firewall source that stands for the addresses the cloud's internal
/// load balancer proxies connect from (on Compute Engine, the region's
/// proxy-only subnets); the adapter puts the real ranges in its place.
pub const LB_PROXIES: &str = "lb-proxies";

/// The network tag every instance of `app` carries; firewall rules target it.
pub fn instance_tag(app: &str) -> String {
    format!("ccd-{app}")
}

/// Bumped whenever the meaning of a [`TemplateSpec`] changes, so that the same
/// spec rendered differently gets a new template name. 2: the startup script
/// opens COS's host firewall and retries, and container logs are shipped.
const TEMPLATE_FORMAT: u32 = 2;

/// An immutable instance template: what one revision of an app runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TemplateSpec {
    pub app: String,
    /// The app's version this template runs (recorded, and part of the name's hash).
    pub revision: String,
    /// Container image.
    pub image: String,
    /// The port the app listens on; given to it as `PORT`.
    pub port: u16,
    pub env: BTreeMap<String, String>,
    /// Environment variables read from Secret Manager when an instance starts:
    /// references only, never values. Left out of the name's hash when empty,
    /// so templates without secrets keep the names they had before secrets.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub secrets: BTreeMap<String, SecretRef>,
    pub machine_type: String,
    /// How ccd's local cloud runs the instances, where the image cannot run.
    pub local_run: Option<LocalRun>,
    /// Extra labels for the instances (the spec's metadata labels).
    pub labels: BTreeMap<String, String>,
    /// What the ccd agent on each instance checks and reports, written into
    /// the instance's metadata (`ccd-agent`). Left out of the name's hash
    /// when absent, so templates without an agent keep their names.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent: Option<ccd_agent::AgentConfig>,
    /// Ports besides `port` that the instance's host firewall must admit: a
    /// health check's, when it probes another port. Left out of the name's
    /// hash when empty, so other templates keep their names.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub open_ports: Vec<u16>,
    /// The service account the instances run as; the project's default
    /// when `None` (left out of the name's hash then, so templates made
    /// before the field keep their names).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_account: Option<String>,
}

impl TemplateSpec {
    /// `{app}-{hash}`: templates are immutable, so the name is derived from the
    /// content and an unchanged spec always names the same template.
    pub fn name(&self) -> String {
        let mut h = Sha256::new();
        h.update(TEMPLATE_FORMAT.to_be_bytes());
        // Serializing plain structs and BTreeMaps cannot fail and is deterministic.
        h.update(serde_json::to_vec(self).unwrap_or_default());
        let digest = h.finalize();
        let hex: String = digest.iter().take(5).map(|b| format!("{b:02x}")).collect();
        format!("{}-{hex}", self.app)
    }
}

/// Whether `name` has the form [`TemplateSpec::name`] gives `app`'s templates:
/// `{app}-` and hex digits. Names read back from a status file pass this
/// before they are used, so that a hand-edited status cannot point an app's
/// instances at another app's template (and its account and secrets).
pub fn is_template_of(app: &str, name: &str) -> bool {
    name.strip_prefix(app)
        .and_then(|rest| rest.strip_prefix('-'))
        .is_some_and(|hash| {
            !hash.is_empty()
                && hash
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        })
}

/// A Secret Manager secret version, by name: `projects/{project}/secrets/{secret}/versions/{version}`
/// in the instances' own project.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SecretRef {
    pub secret: String,
    /// `latest` or a version number.
    pub version: String,
}

impl SecretRef {
    /// The secret version's resource name in `project`.
    pub fn resource(&self, project: &str) -> String {
        self.version_in(project).resource()
    }

    /// The secret version in `project`, as the `ccd-secrets` item names it.
    pub fn version_in(&self, project: &str) -> ccd_wire::SecretVersion {
        ccd_wire::SecretVersion {
            project: project.to_owned(),
            secret: self.secret.clone(),
            version: self.version.clone(),
        }
    }
}

/// How the local cloud runs an instance (its `ccd-local-run` metadata).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum LocalRun {
    /// No process: the instance is RUNNING and healthy at once.
    Simulated,
    /// A process per instance; `$(NAME)` in args expands env's NAME (`PORT` is set).
    Process {
        command: Vec<String>,
        args: Vec<String>,
        env: BTreeMap<String, String>,
        stop_grace: Duration,
    },
}

/// A template as found in the cloud.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateInfo {
    pub name: String,
    pub revision: Option<String>,
    /// RFC 3339 creation time, when the cloud reports it.
    pub created: Option<String>,
}

/// An absolute count or a percentage of the group's target size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Share {
    Fixed(u32),
    Percent(u32),
}

/// One version of a group: instances made from `template`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupVersion {
    pub name: String,
    /// Template name.
    pub template: String,
    /// `None` for exactly one version: it takes the instances the others leave.
    pub target: Option<Share>,
}

/// How instances are replaced when the versions change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpdatePolicy {
    pub max_surge: Share,
    pub max_unavailable: Share,
}

impl Default for UpdatePolicy {
    /// Capacity never drops: one extra instance at a time.
    fn default() -> Self {
        UpdatePolicy {
            max_surge: Share::Fixed(1),
            max_unavailable: Share::Fixed(0),
        }
    }
}

/// Instances failing `health_check` (a name from `apply_health_check`) are
/// recreated, once `initial_delay` has passed since they started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Autohealing {
    pub health_check: String,
    pub initial_delay: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedPort {
    pub name: String,
    pub port: u16,
}

/// Where a group is: a zone, or (`zone: None`) the adapter's region.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct GroupId {
    pub app: String,
    pub name: String,
    pub zone: Option<String>,
}

/// The desired state of a managed instance group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupSpec {
    pub app: String,
    pub name: String,
    /// One zone: a zonal group. None or several: a regional group spread over
    /// these zones (all of the region's when empty).
    pub zones: Vec<String>,
    pub versions: Vec<GroupVersion>,
    /// Required to create the group; `None` leaves an existing group's size to
    /// whoever owns scaling.
    pub target_size: Option<u32>,
    /// `(min, max)` when a scaler owns the size: an existing group keeps the
    /// size it has, brought within the range, and `target_size` only
    /// creates it.
    pub size_range: Option<(u32, u32)>,
    pub update: UpdatePolicy,
    pub autohealing: Option<Autohealing>,
    pub named_port: Option<NamedPort>,
}

impl GroupSpec {
    pub fn id(&self) -> GroupId {
        let zone = match self.zones.as_slice() {
            [one] => Some(one.clone()),
            _ => None,
        };
        GroupId {
            app: self.app.clone(),
            name: self.name.clone(),
            zone,
        }
    }
}

/// A group as it is now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupState {
    pub id: GroupId,
    pub target_size: u32,
    pub versions: Vec<GroupVersion>,
    /// No instance is being created, replaced or deleted.
    pub is_stable: bool,
    /// Every instance runs the template its version asks for.
    pub version_target_reached: bool,
    pub named_ports: Vec<NamedPort>,
    pub instances: Vec<ManagedInstance>,
}

impl GroupState {
    /// Stable and on target: a rollout step is complete.
    pub fn converged(&self) -> bool {
        self.is_stable && self.version_target_reached
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManagedInstance {
    pub name: String,
    /// The cloud's ID: an instance recreated under the same name has a new one.
    pub id: Option<String>,
    /// The zone the instance is in (a regional group's span several).
    pub zone: Option<String>,
    /// Template name of the instance's version.
    pub template: Option<String>,
    pub version: Option<String>,
    pub action: InstanceAction,
    pub status: InstanceStatus,
    pub health: InstanceHealth,
    /// Internal address.
    pub address: Option<IpAddr>,
}

/// What the group is doing to an instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InstanceAction {
    None,
    Creating,
    Recreating,
    Deleting,
    Restarting,
    Verifying,
    /// Any other action, by the cloud's name.
    Other(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InstanceStatus {
    /// Being provisioned or started.
    Pending,
    Running,
    Stopping,
    Stopped,
    Unknown(String),
}

impl std::fmt::Display for InstanceStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            InstanceStatus::Pending => f.write_str("Pending"),
            InstanceStatus::Running => f.write_str("Running"),
            InstanceStatus::Stopping => f.write_str("Stopping"),
            InstanceStatus::Stopped => f.write_str("Stopped"),
            InstanceStatus::Unknown(cloud) => f.write_str(cloud),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstanceHealth {
    Healthy,
    /// Reachable, but its answer fails the check (Compute's `UNHEALTHY`).
    Unhealthy,
    /// No connection, or no answer within the check's timeout (Compute's `TIMEOUT`).
    Unreachable,
    Draining,
    /// Not probed (no autohealing check) or not yet known.
    Unknown,
}

/// What a health check probes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    /// Healthy when `path` answers 200.
    Http { path: String, port: u16 },
    /// Healthy when the port accepts connections.
    Tcp { port: u16 },
}

/// A probe and its timing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthDefinition {
    pub probe: Probe,
    pub interval: Duration,
    pub timeout: Duration,
    pub healthy_threshold: u32,
    pub unhealthy_threshold: u32,
}

/// A named health check, for autohealing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheckSpec {
    pub app: String,
    pub name: String,
    pub health: HealthDefinition,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LbKind {
    /// HTTPS on 443 from the internet, with a managed certificate for `domains`.
    External { domains: Vec<String> },
    /// HTTP on `port`, reachable only from inside the network.
    Internal { port: u16 },
}

/// One group behind a load balancer and its share of the requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LbBackend {
    pub group: GroupId,
    /// Relative share, 0 to 1000 (Compute's `weightedBackendServices`): a group
    /// gets `weight / sum of weights` of the requests. A group with weight 0
    /// gets none but stays ready to take traffic in one step.
    pub weight: u32,
}

/// A failure the load balancer retries on another instance (Compute's URL
/// map `retryConditions`; Envoy's meaning).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum RetryOn {
    /// `5xx`: any 5xx response, and no response at all.
    ServerError,
    /// `gateway-error`: 502, 503 and 504, and what the proxy answers with one:
    /// no connection, a reset, the per-try timeout.
    GatewayError,
    /// `connect-failure`: no connection could be made.
    ConnectFailure,
    /// `refused-stream`: the instance refused the request before reading it.
    RefusedStream,
}

impl RetryOn {
    /// Compute's name for it.
    pub fn as_str(self) -> &'static str {
        match self {
            RetryOn::ServerError => "5xx",
            RetryOn::GatewayError => "gateway-error",
            RetryOn::ConnectFailure => "connect-failure",
            RetryOn::RefusedStream => "refused-stream",
        }
    }
}

/// How the load balancer retries a failed request (the URL map's
/// `defaultRouteAction.retryPolicy`). A retry goes to another instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    pub on: Vec<RetryOn>,
    /// Tries after the first, at least 1.
    pub retries: u32,
    /// How long one try may wait for the response's headers.
    pub per_try_timeout: Duration,
}

/// When the load balancer stops sending requests to an instance that keeps
/// failing them (each backend service's `outlierDetection`): ejected for
/// `base_ejection_time` × the times it was, never more than
/// `max_ejection_percent` of the instances at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutlierDetection {
    /// 5xx responses (or no response) in a row that eject.
    pub consecutive_errors: u32,
    /// 502/503/504 (or no response) in a row that eject.
    pub consecutive_gateway_failures: u32,
    /// Chance in percent that `consecutive_errors` ejects.
    pub enforcing_consecutive_errors: u32,
    /// Chance in percent that `consecutive_gateway_failures` ejects.
    pub enforcing_consecutive_gateway_failures: u32,
    /// Time between the sweeps that return ejected instances.
    pub interval: Duration,
    pub base_ejection_time: Duration,
    pub max_ejection_percent: u32,
}

/// A load balancer in front of one or more groups. Every piece is named
/// `{name}-{piece}`, except each backend group's backend service:
/// `{group name}-bs`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadBalancerSpec {
    pub app: String,
    pub name: String,
    /// The groups requests go to, each with its weight; at least one, with a
    /// weight above 0. Backend services of groups no longer listed are removed.
    pub backends: Vec<LbBackend>,
    /// The group's named port traffic goes to.
    pub port_name: String,
    /// The balancer's own health check (kept apart from autohealing's, which
    /// should be slower to condemn an instance).
    pub health: HealthDefinition,
    /// How long a leaving instance keeps finishing in-flight requests.
    pub drain: Duration,
    pub kind: LbKind,
    /// Extra labels, where the cloud's resources take labels.
    pub labels: BTreeMap<String, String>,
    /// How a failed request is retried on another instance; `None` leaves
    /// the URL map without a retry policy.
    pub retry: Option<RetryPolicy>,
    /// When a failing instance stops getting requests; `None` leaves a
    /// backend service's outlier detection as it is.
    pub outlier: Option<OutlierDetection>,
}

impl LoadBalancerSpec {
    pub fn id(&self) -> LbId {
        LbId {
            app: self.app.clone(),
            name: self.name.clone(),
            internal: matches!(self.kind, LbKind::Internal { .. }),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LbId {
    pub app: String,
    pub name: String,
    pub internal: bool,
}

/// The pieces of a load balancer, in creation order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LbPieceKind {
    HealthCheck,
    BackendService,
    UrlMap,
    Certificate,
    TargetProxy,
    Address,
    ForwardingRule,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LbPiece {
    pub kind: LbPieceKind,
    pub name: String,
    pub exists: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LbState {
    /// The address clients connect to, once reserved.
    pub address: Option<IpAddr>,
    pub pieces: Vec<LbPiece>,
    /// The Google-managed certificate for the spec's domains (an external
    /// balancer's newest), as Compute reports it.
    pub certificate: Option<CertificateState>,
}

/// A Google-managed certificate's provisioning, in Compute's words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateState {
    pub name: String,
    /// `ACTIVE` once issued; `PROVISIONING` until DNS points at the load
    /// balancer and the CA has checked it; `PROVISIONING_FAILED`, ...
    pub status: String,
    /// Each domain's status, e.g. `FAILED_NOT_VISIBLE` while its DNS
    /// record does not name the load balancer's address.
    pub domains: std::collections::BTreeMap<String, String>,
}

impl CertificateState {
    pub fn active(&self) -> bool {
        self.status == "ACTIVE"
    }
}

impl LbState {
    /// Every piece exists.
    pub fn complete(&self) -> bool {
        self.pieces.iter().all(|p| p.exists)
    }

    /// No piece exists.
    pub fn absent(&self) -> bool {
        self.pieces.iter().all(|p| !p.exists)
    }
}

/// What a load balancer's backend groups answered over a window of time.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LbTraffic {
    pub backends: Vec<BackendTraffic>,
    /// The counts are complete up to this time. Cloud Monitoring publishes
    /// load-balancer metrics minutes late; `None` when nothing is known yet.
    pub complete_until: Option<SystemTime>,
}

/// Requests one backend group received, and how many its answers or the
/// load balancer turned into a server error (5xx).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BackendTraffic {
    /// The group's name.
    pub group: String,
    pub requests: u64,
    pub server_errors: u64,
}

/// An ingress rule: `sources` may reach the app's instances on `port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirewallSpec {
    pub app: String,
    pub name: String,
    pub port: u16,
    /// CIDR ranges.
    pub sources: Vec<String>,
}

impl FirewallSpec {
    /// Health checkers and the external load balancer's front ends to the app's port.
    pub fn health_checks(app: &str, port: u16) -> Self {
        FirewallSpec {
            app: app.to_owned(),
            name: format!("{app}-allow-health"),
            port,
            sources: HEALTH_CHECK_RANGES
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
        }
    }

    /// The internal load balancer's proxies to the app's port ([`LB_PROXIES`]).
    pub fn load_balancer_proxies(app: &str, port: u16) -> Self {
        FirewallSpec {
            app: app.to_owned(),
            name: format!("{app}-allow-proxies"),
            port,
            sources: vec![LB_PROXIES.to_owned()],
        }
    }

    /// The spec's `allowFrom` ranges to the app's port (`suffix` tells rules apart).
    pub fn allow_from(app: &str, suffix: &str, port: u16, sources: Vec<String>) -> Self {
        FirewallSpec {
            app: app.to_owned(),
            name: format!("{app}-allow-{suffix}"),
            port,
            sources,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> TemplateSpec {
        TemplateSpec {
            app: "web".into(),
            revision: "1.0.0".into(),
            image: "example/web:1".into(),
            port: 8080,
            env: BTreeMap::from([("A".into(), "1".into())]),
            secrets: BTreeMap::new(),
            machine_type: "e2-small".into(),
            local_run: Some(LocalRun::Simulated),
            labels: BTreeMap::new(),
            agent: None,
            open_ports: vec![],
            service_account: None,
        }
    }

    #[test]
    fn template_names_follow_content() {
        let a = spec();
        assert_eq!(a.name(), spec().name());
        assert!(
            a.name().starts_with("web-") && a.name().len() == "web-".len() + 10,
            "{}",
            a.name()
        );
        let mut b = spec();
        b.env.insert("B".into(), "2".into());
        assert_ne!(a.name(), b.name());
    }

    #[test]
    fn secret_references_are_part_of_the_name() {
        let plain = spec();
        // No secrets (nor open ports) hashes as before those fields existed:
        // a template name that predates them does not change, so no app
        // rolls out for nothing (only TEMPLATE_FORMAT changes every name).
        assert_eq!(plain.name(), "web-01fdaf732e", "{}", plain.name());
        let mut health_port = spec();
        health_port.open_ports = vec![9001];
        assert_ne!(health_port.name(), plain.name());
        let with = |version: &str| {
            let mut s = spec();
            s.secrets.insert(
                "DB_PASSWORD".into(),
                SecretRef {
                    secret: "db".into(),
                    version: version.into(),
                },
            );
            s
        };
        assert_ne!(with("latest").name(), plain.name());
        assert_eq!(with("latest").name(), with("latest").name());
        assert_ne!(with("latest").name(), with("3").name());
        assert_eq!(
            with("3").secrets["DB_PASSWORD"].resource("p"),
            "projects/p/secrets/db/versions/3"
        );
    }

    #[test]
    fn one_zone_makes_a_zonal_group() {
        let mut g = GroupSpec {
            app: "web".into(),
            name: "web".into(),
            zones: vec!["europe-west1-b".into()],
            versions: vec![],
            target_size: Some(2),
            size_range: None,
            update: UpdatePolicy::default(),
            autohealing: None,
            named_port: None,
        };
        assert_eq!(g.id().zone.as_deref(), Some("europe-west1-b"));
        g.zones.push("europe-west1-c".into());
        assert_eq!(g.id().zone, None);
    }
}
