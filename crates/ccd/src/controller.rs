//! `ccd controller --config FILE`: the production mode. Specs and status in a
//! bucket (or a folder), the cloud is Compute Engine (or any endpoint that
//! speaks its API), credentials from Application Default Credentials.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use ccd_bus::{AnyBus, Drops, PubSubBus, PubSubConfig};
use ccd_cloud::model::LbKind;
use ccd_cloud::{EndpointToken, GceCloud, GceConfig};
use ccd_controller::{DeployReconciler, LocalTarget, SpecSource};
use ccd_runtime::lease::{LeaseTimes, run_elector};
use ccd_store::{AnyStore, StoreUrl};
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use crate::events::Events;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The controller's configuration (JSON, which is also YAML), e.g.
    /// {"store": "gs://acme-ccd/prod", "project": "acme-prod", "region": "europe-west1"}
    #[arg(long)]
    config: PathBuf,
    /// Which reconcilers this process runs, e.g. `health` or
    /// `deploy,health,scaling`. By default the deploy reconciler, and health
    /// and scaling too when the configuration names a `pubsub` bus.
    #[arg(long, value_parser = crate::reconcilers::Set::parse)]
    reconcilers: Option<crate::reconcilers::Set>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ControllerConfig {
    /// `gs://bucket/prefix` or a folder holding specs/ and status/.
    pub store: String,
    pub project: String,
    pub region: String,
    /// Another endpoint speaking the Compute API (a local cloud); Compute Engine when absent.
    /// A local cloud runs each spec's `run` command (found beside this binary,
    /// then on PATH), as under `ccd up`.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// The local cloud's API token file (`DATA/token` of `ccd localcloud
    /// --data DATA`, `DIR/cloud/token` of `ccd up --data DIR`), relative to
    /// the working directory; required when `endpoint` is on this machine.
    #[serde(default)]
    pub endpoint_token_file: Option<PathBuf>,
    /// Where events are kept.
    #[serde(default = "default_events")]
    events: PathBuf,
    /// Calls per second to the cloud's API at most (polls included): keep
    /// it under the project's Compute API rate quotas.
    #[serde(default = "default_api_rate")]
    api_requests_per_second: f64,
    /// How often, in seconds, a converged app is checked for drift from its spec.
    #[serde(default = "default_drift_check")]
    drift_check_seconds: u64,
    /// How long, in seconds, a spec must stay gone before its app is removed.
    #[serde(default = "default_deletion_grace")]
    deletion_grace_seconds: u64,
    /// Where `/metrics` and `/healthz` are served.
    #[serde(default = "default_metrics_listen")]
    metrics_listen: SocketAddr,
    /// Where the REST API is served: loopback by default (put a proxy with
    /// TLS in front of it to reach it from elsewhere).
    #[serde(default = "default_api_listen")]
    api_listen: SocketAddr,
    /// The API's token hashes, relative to the working directory; `ccd
    /// token create --config FILE` adds one.
    #[serde(default = "default_api_tokens")]
    pub api_tokens: PathBuf,
    /// The bus between agents and the health and scaling reconcilers.
    #[serde(default)]
    pub pubsub: Option<PubSubSettings>,
    /// ccd's own image, which instances run `ccd agent` from beside the app.
    #[serde(default)]
    agent_image: Option<String>,
    /// The VPC network of instances, firewall rules and internal load
    /// balancers: a name or `global/networks/NAME` (default `default`).
    /// Normalized by [`load`] to a path.
    #[serde(default = "default_network")]
    pub network: String,
    /// The subnetwork in the region: a name or `regions/REGION/subnetworks/NAME`;
    /// the region's `default` subnetwork when absent. Normalized by [`load`].
    #[serde(default)]
    pub subnetwork: Option<String>,
    /// Apps whose spec names no `machine.serviceAccount` run as an account
    /// ccd creates for each, granted only what the app needs (default);
    /// `false`: as the project's default account.
    #[serde(default = "default_app_service_accounts")]
    pub app_service_accounts: bool,
    /// Several controllers on one bucket elect a leader, which alone
    /// changes the cloud and writes status; the others stand by with their
    /// caches warm. `{}` takes the defaults. A bucket store only.
    #[serde(default)]
    pub leader_election: Option<LeaderElection>,
    /// Cloud Storage's Pub/Sub notifications of the spec bucket: changes
    /// reach the controller in about a second instead of at the next poll.
    /// A bucket store only.
    #[serde(default)]
    pub bucket_notifications: Option<crate::notifications::BucketNotifications>,
    /// Where the apps' `services` live on Google Cloud (a Cloud SQL
    /// instance, a Firestore location, buckets for files and logs).
    #[serde(default)]
    pub services: Option<crate::gcp_services::ServicesSettings>,
}

/// The lease's timings, in seconds (defaults 15, 5 and 10, as Kubernetes').
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LeaderElection {
    #[serde(default = "default_lease_seconds")]
    lease_seconds: u64,
    #[serde(default = "default_renew_seconds")]
    renew_seconds: u64,
    #[serde(default = "default_renew_deadline_seconds")]
    renew_deadline_seconds: u64,
}

fn default_lease_seconds() -> u64 {
    LeaseTimes::default().lease.as_secs()
}

fn default_renew_seconds() -> u64 {
    LeaseTimes::default().renew_every.as_secs()
}

fn default_renew_deadline_seconds() -> u64 {
    LeaseTimes::default().renew_deadline.as_secs()
}

impl LeaderElection {
    pub fn times(&self) -> LeaseTimes {
        LeaseTimes {
            lease: Duration::from_secs(self.lease_seconds),
            renew_every: Duration::from_secs(self.renew_seconds),
            renew_deadline: Duration::from_secs(self.renew_deadline_seconds),
            ..LeaseTimes::default()
        }
    }
}

fn default_app_service_accounts() -> bool {
    GceConfig::default().app_accounts
}

fn default_network() -> String {
    GceConfig::default().network
}

/// A Compute resource name: lowercase letters, digits and dashes, a letter first.
fn valid_name(name: &str) -> bool {
    let b = name.as_bytes();
    (1..=63).contains(&b.len())
        && b[0].is_ascii_lowercase()
        && b[b.len() - 1] != b'-'
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
}

/// `NAME` or `[projects/P/]global/networks/NAME`, as a path.
fn network_path(text: &str) -> Result<String, String> {
    let path = match text.split('/').collect::<Vec<_>>().as_slice() {
        [name] if valid_name(name) => Some(format!("global/networks/{name}")),
        ["global", "networks", name] | ["projects", _, "global", "networks", name]
            if valid_name(name) =>
        {
            Some(text.to_owned())
        }
        _ => None,
    };
    path.ok_or_else(|| {
        format!(
            "network: {text:?} is not a network; write its name, e.g. \"default\", or \"global/networks/NAME\""
        )
    })
}

/// `NAME` or `[projects/P/]regions/REGION/subnetworks/NAME` in `region`, as a path.
fn subnetwork_path(text: &str, region: &str) -> Result<String, String> {
    match text.split('/').collect::<Vec<_>>().as_slice() {
        [name] if valid_name(name) => Ok(format!("regions/{region}/subnetworks/{name}")),
        ["regions", r, "subnetworks", name]
        | ["projects", _, "regions", r, "subnetworks", name]
            if valid_name(name) =>
        {
            if *r == region {
                Ok(text.to_owned())
            } else {
                Err(format!(
                    "subnetwork: {text:?} is in region {r}, but the controller's region is {region}; name a subnetwork of {region}"
                ))
            }
        }
        _ => Err(format!(
            "subnetwork: {text:?} is not a subnetwork; write its name, e.g. \"default\", or \"regions/{region}/subnetworks/NAME\""
        )),
    }
}

/// Google Pub/Sub (or its emulator, at `PUBSUB_EMULATOR_HOST`).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PubSubSettings {
    pub project: String,
    /// Put before every topic and subscription ID (default `ccd-`), so that
    /// several installations share a project.
    #[serde(default)]
    pub prefix: Option<String>,
}

impl PubSubSettings {
    pub fn config(&self) -> PubSubConfig {
        let mut config = PubSubConfig::from_env(&self.project);
        if let Some(prefix) = &self.prefix {
            config.prefix.clone_from(prefix);
        }
        config
    }
}

fn default_api_rate() -> f64 {
    GceConfig::default().rate_limit_per_sec
}

fn default_drift_check() -> u64 {
    ccd_controller::DRIFT_CHECK.as_secs()
}

/// Whether `endpoint` is on this machine, so a local cloud: it takes the
/// local cloud's token, not Google's credentials. Any other endpoint (a
/// Private Service Connect endpoint, a proxy) is Compute Engine.
pub fn on_this_machine(endpoint: Option<&str>) -> bool {
    let Some(uri) = endpoint.and_then(|e| e.parse::<axum::http::Uri>().ok()) else {
        return false;
    };
    let host = uri.host().unwrap_or_default();
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn default_deletion_grace() -> u64 {
    ccd_controller::DELETION_GRACE.as_secs()
}

/// A free loopback port, logged: several controllers (a standby beside its
/// leader) may share a machine; production names one (`apiListen`).
fn default_api_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

fn default_api_tokens() -> PathBuf {
    PathBuf::from("ccd-api-tokens.json")
}

fn default_metrics_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9464))
}

fn default_events() -> PathBuf {
    PathBuf::from("ccd-events.redb")
}

pub fn load(path: &Path) -> anyhow::Result<ControllerConfig> {
    let text = std::fs::read_to_string(path).with_context(|| {
        format!(
            "cannot read {}: give the configuration file `ccd controller --config` runs with",
            path.display()
        )
    })?;
    let config: ControllerConfig = serde_json::from_str(&text).with_context(|| {
        format!("{}: not a controller configuration; write e.g. {{\"store\": \"gs://bucket/prefix\", \"project\": \"my-project\", \"region\": \"europe-west1\"}}", path.display())
    })?;
    if config.project.is_empty() || config.region.is_empty() {
        bail!("{}: project and region must not be empty", path.display());
    }
    let mut config = config;
    let at = |e: String| anyhow::anyhow!("{}: {e}", path.display());
    config.network = network_path(&config.network).map_err(at)?;
    if let Some(sub) = &config.subnetwork {
        config.subnetwork = Some(subnetwork_path(sub, &config.region).map_err(at)?);
    }
    match (&config.endpoint, &config.endpoint_token_file) {
        (None, Some(_)) => bail!(
            "{}: endpointTokenFile is the token of a local cloud, which `endpoint` names; add the endpoint or remove the token file",
            path.display()
        ),
        (Some(endpoint), None) if on_this_machine(Some(endpoint)) => bail!(
            "{}: endpoint {endpoint} is a local cloud, which takes its API token: set \"endpointTokenFile\" to its token file (DATA/token of `ccd localcloud --data DATA`, DIR/cloud/token of `ccd up --data DIR`)",
            path.display()
        ),
        _ => {}
    }
    if let Some(election) = &config.leader_election {
        election.times().check().map_err(|e| {
            anyhow::anyhow!(
                "{}: leaderElection: {e}; e.g. leaseSeconds 15, renewSeconds 5, renewDeadlineSeconds 10",
                path.display()
            )
        })?;
        if config.on_a_folder() {
            bail!(
                "{}: leaderElection needs a bucket store (gs://BUCKET/PREFIX): a folder cannot refuse a stale write; run a single controller on a folder",
                path.display()
            );
        }
    }
    if let Some(notifications) = &config.bucket_notifications {
        notifications.project().map_err(at)?;
        if config.on_a_folder() {
            bail!(
                "{}: bucketNotifications are Cloud Storage's: the store is a folder, whose changes are seen at once without them; remove bucketNotifications",
                path.display()
            );
        }
        if notifications.poll_seconds == 0 {
            bail!(
                "{}: bucketNotifications.pollSeconds must be at least 1 (the backstop for lost messages), e.g. 60",
                path.display()
            );
        }
    }
    if let Some(services) = &config.services {
        services.check().map_err(at)?;
        if config.local_cloud() {
            bail!(
                "{}: services configures Google Cloud's (Cloud SQL, Firestore, buckets), and the endpoint is a local cloud: remove services, or run `ccd up` for services on this machine",
                path.display()
            );
        }
    }
    if !(config.api_requests_per_second.is_finite() && config.api_requests_per_second > 0.0) {
        bail!(
            "{}: apiRequestsPerSecond must be a positive number, e.g. 10",
            path.display()
        );
    }
    Ok(config)
}

impl ControllerConfig {
    /// The store is a folder (what a bucket's preconditions and notifications
    /// cannot apply to).
    fn on_a_folder(&self) -> bool {
        self.store
            .parse::<StoreUrl>()
            .is_ok_and(|u| !matches!(u, StoreUrl::Bucket { .. }))
    }

    /// A local cloud (so the token, not Google's credentials, and its checks).
    pub fn local_cloud(&self) -> bool {
        self.endpoint_token_file.is_some() || on_this_machine(self.endpoint.as_deref())
    }

    /// The local cloud's token, read from `endpointTokenFile`; `None` for
    /// Compute Engine (Application Default Credentials).
    pub fn endpoint_token(&self) -> anyhow::Result<Option<EndpointToken>> {
        let Some(file) = &self.endpoint_token_file else {
            return Ok(None);
        };
        read_token(file).map(Some)
    }
}

/// A local cloud's token file: one token, named in every error.
pub fn read_token(file: &Path) -> anyhow::Result<EndpointToken> {
    let text = std::fs::read_to_string(file).with_context(|| {
        format!(
            "cannot read the local cloud's token file {} (endpointTokenFile)",
            file.display()
        )
    })?;
    let token = EndpointToken::new(&text);
    if token.secret().is_empty() || token.header().is_err() {
        bail!(
            "{} does not hold a local cloud token: point endpointTokenFile at the `token` file in the local cloud's data folder",
            file.display()
        );
    }
    Ok(token)
}

pub fn run(args: Args) -> ExitCode {
    crate::logging::init();
    let config = match load(&args.config) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("{e:#}");
            return ExitCode::from(2);
        }
    };
    let set = args.reconcilers.unwrap_or(crate::reconcilers::Set {
        deploy: true,
        health: config.pubsub.is_some(),
        scaling: config.pubsub.is_some(),
    });
    if set.needs_bus() && config.pubsub.is_none() {
        tracing::error!(
            "{}: the health and scaling reconcilers hear the agents on Pub/Sub; add \"pubsub\": {{\"project\": \"my-project\"}} to the configuration, or run --reconcilers deploy",
            args.config.display()
        );
        return ExitCode::from(2);
    }
    crate::logging::run_async(serve(config, set))
}

async fn serve(config: ControllerConfig, set: crate::reconcilers::Set) -> anyhow::Result<()> {
    let url: StoreUrl = config
        .store
        .parse()
        .with_context(|| format!("store {:?}", config.store))?;
    let poll = config
        .bucket_notifications
        .as_ref()
        .map(|n| Duration::from_secs(n.poll_seconds));
    let store = Arc::new(AnyStore::open_polling(&url, poll).context("cannot open the store")?);
    let stop = CancellationToken::new();
    let (election, elector) = elect(&config, set, &store, &stop).await?;
    let leadership = election.leadership.clone();
    let cloud = GceCloud::new(GceConfig {
        project: config.project.clone(),
        region: config.region.clone(),
        endpoint: config.endpoint.clone(),
        endpoint_token: config.endpoint_token()?,
        rate_limit_per_sec: config.api_requests_per_second,
        agent_image: config.agent_image.clone(),
        network: config.network.clone(),
        subnetwork: config.subnetwork.clone(),
        app_accounts: config.app_service_accounts,
        ..GceConfig::default()
    })
    .await
    .context("cannot set up the Compute client")?
    .with_fence(leadership.clone());
    let cloud = Arc::new(cloud);
    let log = ccd_events::EventLog::open(&config.events).context("cannot open the event log")?;
    let feed = ccd_api::EventFeed::new(log);
    let events = Arc::new(Events {
        feed: feed.clone(),
        print_ready: false,
    });
    let endpoints: ccd_controller::Endpoints = Arc::new(|spec, state| {
        let Some(address) = state.address else {
            return Vec::new();
        };
        match &spec.kind {
            LbKind::External { .. } => vec![format!("https://{address}")],
            LbKind::Internal { port: 80 } => vec![format!("http://{address}")],
            LbKind::Internal { port } => vec![format!("http://{address}:{port}")],
        }
    });
    // A local cloud runs the spec's `run` command where a VM runs its image.
    let local = config.endpoint.as_ref().map(|_| LocalTarget {
        search: std::env::current_exe()
            .ok()
            .and_then(|p| p.parent().map(Path::to_path_buf))
            .into_iter()
            .collect(),
    });
    // The API plans against the same cloud, as the reconciler sees it.
    let (api_local, api_endpoints) = (local.clone(), endpoints.clone());
    let reconciler = DeployReconciler::new(
        cloud.clone(),
        store.clone(),
        local,
        events.clone(),
        endpoints,
    )
    .with_probes(Arc::new(ccd_controller::probes::HttpProbes::default()))
    .with_drift_check(std::time::Duration::from_secs(
        config.drift_check_seconds.max(1),
    ))
    .with_deletion_grace(std::time::Duration::from_secs(
        config.deletion_grace_seconds,
    ))
    .with_leadership(leadership.clone());
    // On Google Cloud the apps' services are provided there; a local cloud
    // has none (`ccd up` provides them on this machine).
    let reconciler = match config.local_cloud() {
        true => reconciler,
        false => {
            let settings = config.services.as_ref();
            let default = crate::gcp_services::ServicesSettings::default();
            let services = crate::gcp_services::open(
                settings.unwrap_or(&default),
                &config.project,
                &config.region,
            )
            .await?;
            reconciler.with_services(services)
        }
    };
    let runtime_config = deploy_runtime();
    let mut source = SpecSource::new(store.clone());
    let mut notice_counts = None;
    if let (Some(settings), Some(notices)) = (&config.bucket_notifications, store.notices()) {
        let counts = Arc::new(crate::notifications::NoticeCounts::default());
        let hints =
            crate::notifications::hints(settings, notices, counts.clone(), stop.clone()).await?;
        source = source.with_hints(hints);
        tracing::info!(subscription = %settings.subscription, poll_seconds = settings.poll_seconds, "bucket notifications consumed");
        notice_counts = Some(counts);
    }
    let controller = ccd_runtime::Controller::new(source, reconciler, runtime_config);
    let mut metrics = Vec::new();
    if set.deploy {
        metrics.push(controller.metrics());
        tokio::spawn(ccd_controller::lease::wake_on_leading(
            leadership.clone(),
            controller.cache(),
            store.clone(),
            controller.trigger(),
            stop.clone(),
        ));
        tokio::spawn(ccd_controller::sweep::run(
            cloud.clone(),
            controller.cache(),
            controller.trigger(),
            ccd_controller::sweep::SWEEP_EVERY,
            stop.clone(),
        ));
    }
    let mut drops = None;
    if let Some(pubsub) = config.pubsub.as_ref().filter(|_| set.needs_bus()) {
        let bus = PubSubBus::new(pubsub.config())
            .await
            .context("cannot connect to Pub/Sub")?;
        let dropped = Arc::new(Drops::default());
        metrics.extend(crate::reconcilers::start(
            set,
            cloud.clone(),
            store,
            Arc::new(AnyBus::PubSub(bus)),
            events,
            dropped.clone(),
            crate::reconcilers::Acting {
                leadership: leadership.clone(),
                stop: stop.clone(),
            },
        ));
        drops = Some(dropped);
    }
    let metrics = crate::metrics::serve(
        config.metrics_listen,
        metrics,
        cloud.clone(),
        drops,
        election,
        notice_counts,
    )
    .await?;
    tracing::info!(%metrics, "metrics served at /metrics");
    let tokens = ccd_api::Tokens::open(&config.api_tokens)?;
    let api_store = AnyStore::open(&url).context("cannot open the store for the API")?;
    let planner = crate::api::CloudPlanner {
        cloud,
        local: api_local,
        endpoints: api_endpoints,
    };
    let api_state = ccd_api::ApiState::new(api_store, tokens, feed).with_planner(Arc::new(planner));
    let api = crate::api::serve(config.api_listen, api_state, stop.clone()).await?;
    tracing::info!(%api, tokens = %config.api_tokens.display(), "REST API served");
    tracing::info!(store = %config.store, project = %config.project, ?set, "controller running");
    let signalled = stop.clone();
    tokio::spawn(async move {
        crate::logging::until_signal().await;
        signalled.cancel();
    });
    if set.deploy {
        controller.run(stop.cancelled()).await;
    } else {
        stop.cancelled().await;
    }
    if let Some(elector) = elector {
        // It gives the lease up once this process has stopped acting.
        let _ = tokio::time::timeout(Duration::from_secs(10), elector).await;
    }
    Ok(())
}

/// Joins the leader election the configuration asks for, once the store
/// has shown it refuses stale writes; alone otherwise. The lease is per
/// region and set of reconcilers, so controllers for other regions, or
/// running other reconcilers, do not compete.
async fn elect(
    config: &ControllerConfig,
    set: crate::reconcilers::Set,
    store: &Arc<AnyStore>,
    stop: &CancellationToken,
) -> anyhow::Result<(
    crate::metrics::Election,
    Option<tokio::task::JoinHandle<()>>,
)> {
    let Some(election) = &config.leader_election else {
        return Ok((crate::metrics::Election::alone(), None));
    };
    let holder = holder_id();
    store
        .check_conditional_writes(&holder)
        .await
        .context("leaderElection")?;
    let lease =
        ccd_controller::lease::StoreLease::new(store.clone(), lease_name(&config.region, set));
    let stopped = stop.clone();
    let (leadership, counts, elector) = run_elector(
        Arc::new(lease),
        holder.clone(),
        election.times(),
        async move { stopped.cancelled().await },
    );
    tracing::info!(holder, "leader election joined");
    let election = crate::metrics::Election {
        leadership,
        counts: Some(counts),
    };
    Ok((election, Some(tokio::spawn(elector))))
}

/// `controller-REGION-RECONCILERS`, e.g. `controller-europe-west1-deploy-health`.
fn lease_name(region: &str, set: crate::reconcilers::Set) -> String {
    let mut name = format!("controller-{region}");
    for (on, reconciler) in [
        (set.deploy, "deploy"),
        (set.health, "health"),
        (set.scaling, "scaling"),
    ] {
        if on {
            name.push('-');
            name.push_str(reconciler);
        }
    }
    name
}

/// This process among the candidates: host, process id and a random part
/// (a restarted process is a new candidate).
fn holder_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "host".to_owned());
    // std's hasher keys are random per process: enough to tell restarts apart.
    let random =
        std::hash::BuildHasher::hash_one(&std::collections::hash_map::RandomState::new(), 0u8);
    format!("{host}-{}-{:08x}", std::process::id(), random as u32)
}

/// The deploy controller's machinery. Most of a reconcile is waiting for
/// the cloud's operations, so many run at once; the API rate limit, not
/// this, bounds the load on the cloud.
pub fn deploy_runtime() -> ccd_runtime::Config {
    ccd_runtime::Config {
        name: "deploy".to_owned(),
        concurrency: 32,
        ..ccd_runtime::Config::default()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn only_an_endpoint_on_this_machine_is_a_local_cloud() {
        for local in [
            "http://127.0.0.1:4000/compute/v1/",
            "http://localhost:4000",
            "http://[::1]:4000/",
        ] {
            assert!(on_this_machine(Some(local)), "{local}");
        }
        for remote in [
            "https://compute-psc.p.googleapis.com",
            "https://10.1.2.3/compute/v1/",
            "not a url",
        ] {
            assert!(!on_this_machine(Some(remote)), "{remote}");
        }
        assert!(!on_this_machine(None));
    }

    #[test]
    fn a_local_endpoint_needs_its_token_file_and_read_errors_name_it() {
        let dir = std::env::temp_dir().join(format!("ccd-config-token-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let config = dir.join("c.json");
        let write = |extra: &str| {
            std::fs::write(
                &config,
                format!(
                    r#"{{"store": "/tmp/s", "project": "p", "region": "europe-west1"{extra}}}"#
                ),
            )
            .unwrap();
        };
        write(r#", "endpoint": "http://127.0.0.1:8787""#);
        let e = format!("{:#}", load(&config).unwrap_err());
        assert!(
            e.contains("endpointTokenFile") && e.contains("DATA/token"),
            "{e}"
        );

        write(r#", "endpointTokenFile": "/tmp/t""#);
        let e = format!("{:#}", load(&config).unwrap_err());
        assert!(
            e.contains("endpointTokenFile") && e.contains("endpoint"),
            "{e}"
        );

        let missing = dir.join("missing-token");
        write(&format!(
            r#", "endpoint": "http://127.0.0.1:8787", "endpointTokenFile": "{}""#,
            missing.display()
        ));
        let c = load(&config).unwrap();
        assert!(c.local_cloud());
        let e = format!("{:#}", c.endpoint_token().unwrap_err());
        assert!(e.contains(&missing.display().to_string()), "{e}");

        let token = dir.join("token");
        std::fs::write(&token, "abc123\n").unwrap();
        write(&format!(
            r#", "endpoint": "http://127.0.0.1:8787", "endpointTokenFile": "{}""#,
            token.display()
        ));
        let read = load(&config).unwrap().endpoint_token().unwrap().unwrap();
        assert_eq!(read.secret(), "abc123");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_example_configuration_loads_and_mistakes_are_named() {
        let example =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/config.example.json");
        let c = load(&example).unwrap();
        assert_eq!(c.api_requests_per_second, 10.0);
        let notes = c.bucket_notifications.as_ref().unwrap();
        assert_eq!(notes.project(), Ok("acme-prod"));
        assert_eq!(notes.poll_seconds, 60);
        assert_eq!(c.drift_check_seconds, 600);
        assert_eq!(c.metrics_listen, default_metrics_listen());
        assert_eq!(c.api_listen, SocketAddr::from(([127, 0, 0, 1], 8090)));
        let services = c.services.as_ref().unwrap().config(&c.project, &c.region);
        assert_eq!(services.sql_instance.as_deref(), Some("ccd-main"));
        assert_eq!(services.logs_bucket.as_deref(), Some("acme-prod-app-logs"));

        let dir = std::env::temp_dir().join(format!("ccd-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let bad = dir.join("bad.json");
        std::fs::write(
            &bad,
            r#"{"store": "gs://b/p", "project": "p", "region": "r", "apiRequestsPerSecond": 0}"#,
        )
        .unwrap();
        let e = load(&bad).unwrap_err().to_string();
        assert!(
            e.contains("apiRequestsPerSecond must be a positive number"),
            "{e}"
        );
        std::fs::write(
            &bad,
            r#"{"store": "gs://b/p", "project": "p", "region": "r", "drift": 1}"#,
        )
        .unwrap();
        let e = format!("{:#}", load(&bad).unwrap_err());
        assert!(e.contains("unknown field `drift`"), "{e}");
        std::fs::write(
            &bad,
            r#"{"store": "gs://b/p", "project": "p", "region": "r", "endpoint": "http://127.0.0.1:8787",
                "endpointTokenFile": "t", "services": {"sql": {"instance": "main"}}}"#,
        )
        .unwrap();
        let e = format!("{:#}", load(&bad).unwrap_err());
        assert!(e.contains("remove services"), "{e}");

        let base = r#""store": "gs://b/p", "project": "p", "region": "europe-west1""#;
        std::fs::write(
            &bad,
            format!(r#"{{{base}, "network": "vpc-a", "subnetwork": "sub-a"}}"#),
        )
        .unwrap();
        let c = load(&bad).unwrap();
        assert_eq!(c.network, "global/networks/vpc-a");
        assert_eq!(
            c.subnetwork.as_deref(),
            Some("regions/europe-west1/subnetworks/sub-a")
        );
        std::fs::write(&bad, format!(r#"{{{base}, "network": "My VPC"}}"#)).unwrap();
        let e = load(&bad).unwrap_err().to_string();
        assert!(
            e.contains("bad.json: network: \"My VPC\" is not a network"),
            "{e}"
        );
        let on_folder = r#""store": "/srv/ccd", "project": "p", "region": "europe-west1""#;
        let notes = r#""bucketNotifications": {"subscription": "projects/p/subscriptions/s"}"#;
        std::fs::write(&bad, format!("{{{on_folder}, {notes}}}")).unwrap();
        let e = load(&bad).unwrap_err().to_string();
        assert!(e.contains("remove bucketNotifications"), "{e}");
        let notes = r#""bucketNotifications": {"subscription": "s"}"#;
        std::fs::write(&bad, format!("{{{base}, {notes}}}")).unwrap();
        let e = load(&bad).unwrap_err().to_string();
        assert!(e.contains("projects/PROJECT/subscriptions/NAME"), "{e}");
        let other = r#""subnetwork": "regions/us-east1/subnetworks/s""#;
        std::fs::write(&bad, format!("{{{base}, {other}}}")).unwrap();
        let e = load(&bad).unwrap_err().to_string();
        assert!(
            e.contains("subnetwork: \"regions/us-east1/subnetworks/s\" is in region us-east1"),
            "{e}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
