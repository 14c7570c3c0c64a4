//! The app spec v1 as typed data. Decoding lives in `decode_app`; these types
//! carry the serde and JSON Schema shape that editors and `ccd schema` use.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Serialize;

use crate::values::{Cidr, Duration, FixedOrPercent};

/// `apiVersion: ccd/v1`, `kind: App`.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(title = "ccd App v1", description = "One app deployed by ccd.")]
pub struct App {
    #[schemars(schema_with = "crate::schema::api_version")]
    pub api_version: String,
    #[schemars(schema_with = "crate::schema::kind")]
    pub kind: String,
    pub metadata: Metadata,
    pub spec: AppSpec,
}

#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Metadata {
    /// The app's name: a DNS label of at most 40 characters (cloud resource names derive from it).
    #[schemars(regex(pattern = r"^[a-z]([-a-z0-9]{0,38}[a-z0-9])?$"))]
    pub name: String,
    /// Labels copied onto every cloud resource of the app.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AppSpec {
    /// Container image reference, e.g. `europe-docker.pkg.dev/acme/apps/hello:1.2.0`.
    pub image: String,
    /// The app's version; a new version is a new revision.
    pub version: String,
    /// How the app runs in ccd's local cloud, where the image cannot run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run: Option<LocalRun>,
    /// The port the app listens on; given to it as `PORT`.
    #[schemars(range(min = 1, max = 65535))]
    pub port: u16,
    /// Plain environment variables. Never put secret values here: use `secrets`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Environment variables read from Secret Manager at start; only names are stored here.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub secrets: BTreeMap<String, SecretRef>,
    #[serde(default)]
    pub machine: Machine,
    #[serde(default)]
    pub replicas: Replicas,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub autoscaling: Option<Autoscaling>,
    #[serde(default)]
    pub health: Health,
    #[serde(default)]
    pub rollout: Rollout,
    /// How the app is reachable. Nothing is exposed unless asked.
    #[serde(default)]
    pub expose: Expose,
    #[serde(default)]
    pub services: Services,
    /// What the controller does when the cloud drifts from the spec.
    #[serde(default)]
    pub drift: DriftMode,
    /// Keeps every resource of the app when its spec is removed, until the
    /// spec comes back with `false` and is removed again.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deletion_protection: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LocalRun {
    /// Program and leading arguments; `$(PORT)` and `$(NAME)` of env variables are expanded.
    #[schemars(length(min = 1))]
    pub command: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// Extra environment for the local run only.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecretRef {
    /// Secret Manager secret name (not its value).
    #[schemars(regex(pattern = r"^[A-Za-z0-9_-]{1,255}$"))]
    pub secret: String,
    /// Secret version: `latest` or a number.
    #[serde(default = "latest")]
    #[schemars(schema_with = "crate::schema::secret_version")]
    pub version: String,
}

fn latest() -> String {
    "latest".to_owned()
}

#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Machine {
    /// Compute Engine machine type.
    #[serde(rename = "type", default = "default_machine_type")]
    pub machine_type: String,
    #[serde(default = "default_region")]
    pub region: String,
    /// Zones of the region to spread instances over; empty means all of the region's zones.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub zones: Vec<String>,
    /// The service account the instances run as, with only the roles the
    /// app needs. Without it they run as the project's default account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account: Option<String>,
}

fn default_machine_type() -> String {
    "e2-small".to_owned()
}
fn default_region() -> String {
    "europe-west1".to_owned()
}

impl Default for Machine {
    fn default() -> Self {
        Machine {
            machine_type: default_machine_type(),
            region: default_region(),
            zones: vec![],
            service_account: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Replicas {
    /// Never fewer instances than this. Defaults to 2 so one failure never takes the app down.
    #[serde(default = "default_min")]
    #[schemars(range(min = 0, max = 1000))]
    pub min: u32,
    /// Never more instances than this; defaults to `min`.
    #[serde(default = "default_min")]
    #[schemars(range(min = 1, max = 1000))]
    pub max: u32,
}

fn default_min() -> u32 {
    2
}

impl Default for Replicas {
    fn default() -> Self {
        Replicas { min: 2, max: 2 }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Autoscaling {
    /// Target average CPU utilisation, in (0, 1].
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.01, max = 1.0))]
    pub cpu_utilization: Option<f64>,
    /// Target requests per second per instance.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.1))]
    pub requests_per_second: Option<f64>,
    /// How long load must stay low before instances are removed.
    #[serde(default = "default_stabilization")]
    pub scale_in_stabilization: Duration,
}

fn default_stabilization() -> Duration {
    Duration::from_secs(600)
}

#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Health {
    /// Exactly one of `http`, `tcp` or `exec`; the default probes TCP on the app's port.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpProbe>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tcp: Option<TcpProbe>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exec: Option<ExecProbe>,
    #[serde(default = "default_interval")]
    pub interval: Duration,
    #[serde(default = "default_timeout")]
    pub timeout: Duration,
    #[serde(default = "default_threshold")]
    #[schemars(range(min = 1, max = 10))]
    pub healthy_threshold: u32,
    #[serde(default = "default_threshold")]
    #[schemars(range(min = 1, max = 10))]
    pub unhealthy_threshold: u32,
    /// Failures are ignored this long after an instance starts.
    #[serde(default = "default_initial_delay")]
    pub initial_delay: Duration,
}

fn default_interval() -> Duration {
    Duration::from_secs(5)
}
fn default_timeout() -> Duration {
    Duration::from_secs(2)
}
fn default_threshold() -> u32 {
    2
}
/// Long enough for a Compute Engine VM to boot Container-Optimized OS, pull
/// the image (with retries) and start the app, with room to spare: a delay
/// shorter than a boot recreates instances in a loop, while a longer one
/// costs a healthy instance nothing (its first passing check ends it). See
/// docs/decisions.md.
fn default_initial_delay() -> Duration {
    Duration::from_secs(300)
}

impl Default for Health {
    fn default() -> Self {
        Health {
            http: None,
            tcp: None,
            exec: None,
            interval: default_interval(),
            timeout: default_timeout(),
            healthy_threshold: default_threshold(),
            unhealthy_threshold: default_threshold(),
            initial_delay: default_initial_delay(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpProbe {
    #[schemars(regex(pattern = "^/"))]
    pub path: String,
    /// Defaults to the app's port.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: Option<u16>,
}

#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TcpProbe {
    /// Defaults to the app's port.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: Option<u16>,
}

#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExecProbe {
    /// Run on the instance by the ccd agent; exit status 0 means healthy.
    #[schemars(length(min = 1))]
    pub command: Vec<String>,
}

/// Which probe the health definition uses, once decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeKind<'a> {
    Http { path: &'a str, port: u16 },
    Tcp { port: u16 },
    Exec { command: &'a [String] },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, serde::Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum Strategy {
    /// Replace instances a few at a time behind the load balancer.
    #[default]
    Rolling,
    /// Bring up a full new ("cold") group, switch traffic in one step, keep the old one warm for `keepWarm`.
    BlueGreen,
    /// Shift traffic to the new revision in weighted steps.
    Canary,
}

#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Rollout {
    #[serde(default)]
    pub strategy: Strategy,
    #[serde(default = "default_surge")]
    pub max_surge: FixedOrPercent,
    /// Defaults to 0: capacity never drops during a rollout.
    #[serde(default = "default_unavailable")]
    pub max_unavailable: FixedOrPercent,
    /// Canary steps, in order; only with `strategy: canary`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<CanaryStep>,
    /// A rollout not healthy by then is rolled back to the last good revision.
    #[serde(default = "default_deadline")]
    pub deadline: Duration,
    /// How long a leaving instance keeps finishing in-flight requests.
    #[serde(default = "default_drain")]
    pub drain_time: Duration,
    /// After a blue/green or canary switch, how long the previous group keeps running so
    /// that a rollback is instant; then it is removed.
    #[serde(default = "default_keep_warm")]
    pub keep_warm: Duration,
}

fn default_surge() -> FixedOrPercent {
    FixedOrPercent::Fixed(1)
}
fn default_unavailable() -> FixedOrPercent {
    FixedOrPercent::Fixed(0)
}
fn default_deadline() -> Duration {
    Duration::from_secs(600)
}
fn default_drain() -> Duration {
    Duration::from_secs(30)
}
fn default_keep_warm() -> Duration {
    Duration::from_secs(300)
}

impl Default for Rollout {
    fn default() -> Self {
        Rollout {
            strategy: Strategy::Rolling,
            max_surge: default_surge(),
            max_unavailable: default_unavailable(),
            steps: vec![],
            deadline: default_deadline(),
            drain_time: default_drain(),
            keep_warm: default_keep_warm(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CanaryStep {
    /// Percent of traffic on the new revision during this step.
    #[schemars(range(min = 1, max = 100))]
    pub weight: u8,
    /// How long to hold this step while the new revision stays healthy.
    pub pause: Duration,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Expose {
    /// An external HTTPS load balancer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external: Option<ExternalExposure>,
    /// An internal load balancer, reachable only from inside the network.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub internal: Option<InternalExposure>,
}

#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExternalExposure {
    pub https: Https,
    /// Client source ranges admitted; empty denies everyone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_from: Vec<Cidr>,
}

#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Https {
    /// Domains served; a managed certificate is issued for them.
    #[schemars(length(min = 1, max = 100))]
    pub domains: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InternalExposure {
    /// Port of the internal load balancer; defaults to the app's port.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: Option<u16>,
    /// Source ranges admitted; empty denies everyone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_from: Vec<Cidr>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Services {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sql: Option<SqlDatabase>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nosql: Option<NoSqlDatabase>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache: Option<Cache>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub storage: Option<FileStorage>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logs: Option<LogShipping>,
}

/// The variables each service delivers to the app: the one credential
/// contract, the same on one machine and on Google Cloud (the emulator hosts
/// only where an emulator stands in).
pub mod contract {
    pub const SQL: [&str; 6] = [
        "DATABASE_URL",
        "PGHOST",
        "PGPORT",
        "PGUSER",
        "PGPASSWORD",
        "PGDATABASE",
    ];
    pub const NOSQL: [&str; 3] = [
        "FIRESTORE_PROJECT_ID",
        "FIRESTORE_DATABASE_ID",
        "FIRESTORE_EMULATOR_HOST",
    ];
    pub const CACHE: [&str; 1] = ["REDIS_URL"];
    pub const STORAGE: [&str; 3] = ["STORAGE_BUCKET", "STORAGE_PREFIX", "STORAGE_EMULATOR_HOST"];

    /// The variables the service of `kind` (the spec's key) delivers.
    pub fn of(kind: &str) -> &'static [&'static str] {
        match kind {
            "sql" => &SQL,
            "nosql" => &NOSQL,
            "cache" => &CACHE,
            "storage" => &STORAGE,
            _ => &[],
        }
    }
}

impl Services {
    /// The asked services by their spec key, with the variables each delivers.
    pub fn variables(&self) -> Vec<(&'static str, &'static [&'static str])> {
        [
            ("sql", self.sql.is_some()),
            ("nosql", self.nosql.is_some()),
            ("cache", self.cache.is_some()),
            ("storage", self.storage.is_some()),
        ]
        .into_iter()
        .filter(|(_, asked)| *asked)
        .map(|(kind, _)| (kind, contract::of(kind)))
        .collect()
    }

    /// What deleting the app does to the service of `kind` (the spec's key).
    pub fn on_delete(&self, kind: &str) -> OnDelete {
        let said = match kind {
            "sql" => self.sql.as_ref().map(|s| s.on_delete),
            "nosql" => self.nosql.as_ref().map(|s| s.on_delete),
            "cache" => self.cache.as_ref().map(|s| s.on_delete),
            "storage" => self.storage.as_ref().map(|s| s.on_delete),
            "logs" => self.logs.as_ref().map(|s| s.on_delete),
            _ => None,
        };
        said.unwrap_or_default()
    }

    /// Whether the spec asks for any service at all.
    pub fn asks_any(&self) -> bool {
        self.sql.is_some()
            || self.nosql.is_some()
            || self.cache.is_some()
            || self.storage.is_some()
            || self.logs.is_some()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum SqlEngine {
    #[default]
    Postgres,
    Mysql,
}

/// What happens to a service's data when the app is deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum OnDelete {
    /// Keep the data and the account (disabled); `ccd services prune` removes it.
    #[default]
    Retain,
    /// Back the data up into storage (sql only), then remove it.
    Snapshot,
    /// Remove the data and the account with the app.
    Delete,
}

impl OnDelete {
    pub fn is_retain(&self) -> bool {
        *self == OnDelete::Retain
    }

    /// The spec's word for it.
    pub fn as_str(&self) -> &'static str {
        match self {
            OnDelete::Retain => "retain",
            OnDelete::Snapshot => "snapshot",
            OnDelete::Delete => "delete",
        }
    }
}

/// A SQL database with an account of the app's own; credentials arrive as `DATABASE_URL`.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SqlDatabase {
    #[serde(default)]
    pub engine: SqlEngine,
    /// Database name; defaults to the app's name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
    /// Backups with `pg_dump` into the app's storage, each checked by a restore.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backup: Option<SqlBackup>,
    #[serde(default, skip_serializing_if = "OnDelete::is_retain")]
    pub on_delete: OnDelete,
}

/// How often the database is backed up, and how many backups are kept.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SqlBackup {
    /// The time between two backups, e.g. `24h`.
    pub schedule: Duration,
    /// How many of the newest backups are kept (1 to 1000).
    #[serde(default = "default_backups_kept")]
    pub keep: u32,
}

fn default_backups_kept() -> u32 {
    7
}

/// A document database (Firestore) of the app's own.
#[derive(Debug, Clone, PartialEq, Default, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NoSqlDatabase {
    /// The Firestore database id; defaults to `ccd-<app>`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
    #[serde(default, skip_serializing_if = "OnDelete::is_retain")]
    pub on_delete: OnDelete,
}

/// A Redis cache; every key the app writes lives under its namespace.
#[derive(Debug, Clone, PartialEq, Default, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Cache {
    /// Key prefix; defaults to `<app>:`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default, skip_serializing_if = "OnDelete::is_retain")]
    pub on_delete: OnDelete,
}

/// File storage: a prefix of the app's own (`<app>/`) in a bucket.
#[derive(Debug, Clone, PartialEq, Default, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FileStorage {
    /// Bucket name; defaults to the controller's bucket for apps' files.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bucket: Option<String>,
    #[serde(default, skip_serializing_if = "OnDelete::is_retain")]
    pub on_delete: OnDelete,
}

/// Ship the app's stdout and stderr to file storage.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LogShipping {
    /// How long shipped logs are kept.
    #[serde(default = "default_retention")]
    pub retention: Duration,
    #[serde(default, skip_serializing_if = "OnDelete::is_retain")]
    pub on_delete: OnDelete,
}

fn default_retention() -> Duration {
    Duration::from_secs(30 * 24 * 3600)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum DriftMode {
    /// Put the cloud back the way the spec says.
    #[default]
    Correct,
    /// Report drift in status and events, change nothing.
    Warn,
    /// Do not look for drift.
    Off,
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_default_initial_delay_covers_a_vm_boot_and_an_image_pull() {
        let app = crate::parse(
            "apiVersion: ccd/v1\nkind: App\nmetadata: {name: web}\nspec:\n  image: img:1\n  version: \"1\"\n  port: 8080\n",
        )
        .expect("a minimal spec");
        let delay = app.spec.health.initial_delay.as_std();
        assert_eq!(delay, std::time::Duration::from_secs(300));
    }
}
