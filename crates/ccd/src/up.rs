//! `ccd up`: the embedded default. The controller, its local cloud and a
//! folder of specs, in one process, with no Google account.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use ccd_bus::{AnyBus, Drops, InProcessBus};
use ccd_cloud::{EndpointToken, GceCloud, GceConfig};
use ccd_controller::{DeployReconciler, LocalTarget, SpecSource};
use ccd_localcloud::{Config, LocalCloud};
use ccd_store::FolderStore;
use tokio_util::sync::CancellationToken;

use crate::events::Events;
use crate::guest::AgentGuest;

/// The project name the embedded local cloud uses.
const PROJECT: &str = "local";

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Where specs (DIR/specs), status (DIR/status), the local cloud's state
    /// and the event log live.
    #[arg(long, default_value = ".ccd")]
    data: PathBuf,
    /// Specs copied into DIR/specs when it does not exist yet.
    #[arg(long, default_value = "specs/examples")]
    seed: PathBuf,
    /// The local cloud's API address.
    #[arg(long, default_value = "127.0.0.1:0")]
    cloud_listen: SocketAddr,
    /// How often a converged app is checked for drift from its spec.
    #[arg(long, default_value = "10m", value_parser = parse_duration)]
    drift_check: Duration,
    /// Where the controller's `/metrics` is served.
    #[arg(long, default_value = "127.0.0.1:0")]
    metrics_listen: SocketAddr,
    /// How long a spec must stay gone before its app is removed.
    #[arg(long, default_value = "1m", value_parser = parse_duration)]
    deletion_grace: Duration,
    /// Where the REST API is served (loopback by default; its admin token
    /// is written to DIR/api-token).
    #[arg(long, default_value = "127.0.0.1:0")]
    api_listen: SocketAddr,
    /// The full log on the terminal too (it always goes to DIR/ccd.log).
    #[arg(short, long)]
    verbose: bool,
}

/// The local cloud runs on this machine and has no quota to protect.
const LOCAL_API_RATE: f64 = 1000.0;

pub fn run(args: Args) -> ExitCode {
    if let Err(e) = std::fs::create_dir_all(&args.data)
        .map_err(anyhow::Error::from)
        .and_then(|()| crate::logging::init_up(&log_file(&args.data), args.verbose))
    {
        crate::logging::init();
        tracing::error!("cannot start: {e:#}");
        return ExitCode::FAILURE;
    }
    crate::logging::run_async(up(args))
}

/// Where `ccd up` writes its full log.
pub fn log_file(data: &Path) -> PathBuf {
    data.join("ccd.log")
}

/// The live view: each event as a line (`APP  REASON  what happened`), as
/// it is recorded; `ready:` lines say the rest.
async fn show_events(feed: ccd_api::EventFeed, stop: CancellationToken) {
    let mut events = feed.subscribe();
    loop {
        let event = tokio::select! {
            e = events.recv() => e,
            () = stop.cancelled() => return,
        };
        match event {
            Ok(e) if e.reason == "Ready" => {}
            Ok(e) => {
                let mark = if e.kind == ccd_events::Kind::Warning {
                    "!"
                } else {
                    " "
                };
                #[allow(clippy::print_stdout)] // the command's own output
                {
                    println!("{mark} {:<20} {:<22} {}", e.app, e.reason, e.message);
                }
            }
            Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                #[allow(clippy::print_stdout)]
                {
                    println!("  ({n} events not shown: `ccd events` lists them)");
                }
            }
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
        }
    }
}

async fn up(args: Args) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.data)
        .with_context(|| format!("cannot create {}", args.data.display()))?;
    seed(&args.data, &args.seed)?;
    // One daemon: agents and reconcilers talk over in-process channels.
    let bus = Arc::new(AnyBus::InProcess(InProcessBus::new()));
    let cloud_config = Config {
        listen: args.cloud_listen,
        data_dir: Some(cloud_dir(&args.data)),
        guest: Some(Arc::new(AgentGuest { bus: bus.clone() })),
        ..Config::default()
    };
    let local = LocalCloud::start(cloud_config)
        .await
        .context("cannot start the local cloud")?;
    #[allow(clippy::print_stdout)] // the command's own output
    {
        println!("compute api: {}", local.compute_url());
        println!("token: {}", token_file(&args.data).display());
    }
    let cloud_config = GceConfig {
        project: PROJECT.to_owned(),
        endpoint: Some(local.endpoint()),
        endpoint_token: Some(EndpointToken::new(local.token())),
        rate_limit_per_sec: LOCAL_API_RATE,
        ..GceConfig::default()
    };
    crate::target::write_up_file(
        &args.data,
        &crate::target::UpFile {
            endpoint: local.endpoint(),
            project: PROJECT.to_owned(),
            region: cloud_config.region.clone(),
            pid: std::process::id(),
        },
    )?;
    let cloud = GceCloud::new(cloud_config)
        .await
        .context("cannot reach the local cloud")?;
    let cloud = Arc::new(cloud);
    let store = Arc::new(FolderStore::new(&args.data).context("cannot open the spec folder")?);
    let listeners = local.listener_view();
    let endpoints: ccd_controller::Endpoints = Arc::new(move |_spec, state| {
        let Some(address) = state.address else {
            return Vec::new();
        };
        let mut found: Vec<_> = listeners()
            .into_iter()
            .filter(|l| l.requested.ip() == address)
            .collect();
        // HTTPS first: port 80 of an external app only redirects to it.
        found.sort_by_key(|l| !l.tls);
        found
            .into_iter()
            .map(|l| format!("{}://{}", if l.tls { "https" } else { "http" }, l.listening))
            .collect()
    });
    let search: Vec<PathBuf> = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .into_iter()
        .collect();
    let feed = ccd_api::EventFeed::new(
        ccd_events::EventLog::open(args.data.join("events.redb"))
            .context("cannot open the event log")?,
    );
    let events: Arc<Events> = Arc::new(Events {
        feed: feed.clone(),
        print_ready: true,
    });
    let services = Arc::new(ccd_services::LocalServices::new(
        &args.data,
        &cloud_dir(&args.data).join("secrets"),
    ));
    let reconciler = DeployReconciler::new(
        cloud.clone(),
        store.clone(),
        Some(LocalTarget {
            search: search.clone(),
        }),
        events.clone(),
        endpoints.clone(),
    )
    .with_probes(Arc::new(ccd_controller::probes::HttpProbes::default()))
    // The local cloud has no quota and its instances start in milliseconds.
    .with_poll(Duration::from_millis(250))
    .with_drift_check(args.drift_check)
    .with_deletion_grace(args.deletion_grace)
    // The apps' services on this machine; credentials as the local cloud's secrets.
    .with_services(services.clone());
    let config = crate::controller::deploy_runtime();
    let controller =
        ccd_runtime::Controller::new(SpecSource::new(store.clone()), reconciler, config);
    let stop = CancellationToken::new();
    // `ccd services rotate` runs in another process: the app it rotated
    // gets a pass now rather than at its next resync.
    let trigger = controller.trigger();
    tokio::spawn(services.clone().watch_rotations(
        move |app| trigger.push(app),
        Duration::from_secs(1),
        stop.clone(),
    ));
    // SQL backups for the apps whose spec asks (`services.sql.backup`).
    tokio::spawn(services.clone().run_backups(stop.clone()));
    // Log shipping for the apps whose spec asks (`services.logs`): what their
    // instances write, into DATA/services/logs, for `ccd logs`.
    tokio::spawn(
        ccd_services::Shipper::new(
            cloud_dir(&args.data).join("instances"),
            ccd_services::LocalServices::logs_dir(&args.data),
        )
        .run(services.log_asks(), Duration::from_secs(1), stop.clone()),
    );
    tokio::spawn(ccd_controller::sweep::run(
        cloud.clone(),
        controller.cache(),
        controller.trigger(),
        ccd_controller::sweep::SWEEP_EVERY,
        stop.clone(),
    ));
    let drops = Arc::new(Drops::default());
    let mut metrics = vec![controller.metrics()];
    metrics.extend(crate::reconcilers::start(
        crate::reconcilers::Set::ALL,
        cloud.clone(),
        store,
        bus,
        events,
        drops.clone(),
        crate::reconcilers::Acting {
            leadership: ccd_runtime::lease::Leadership::alone(),
            stop: stop.clone(),
        },
    ));
    let metrics = crate::metrics::serve(
        args.metrics_listen,
        metrics,
        cloud.clone(),
        Some(drops),
        crate::metrics::Election::alone(),
        None,
    )
    .await?;
    let feed_view = feed.clone();
    let api = crate::api::local_state(&args.data, feed)?;
    let planner = crate::api::CloudPlanner {
        cloud: cloud.clone(),
        local: Some(LocalTarget {
            search: search.clone(),
        }),
        endpoints: endpoints.clone(),
    };
    let api_state = api.with_planner(Arc::new(planner));
    let login = api_state.dashboard_login(ccd_api::Scope::Admin);
    let api = crate::api::serve(args.api_listen, api_state, stop.clone()).await?;
    #[allow(clippy::print_stdout)] // the command's own output
    {
        println!("metrics: http://{metrics}/metrics");
        println!("api: http://{api}");
        println!(
            "api token: {}",
            crate::api::admin_token_file(&args.data).display()
        );
        if let Some(token) = login {
            println!("dashboard: http://{api}/login?token={token}");
        }
        println!("log: {}", log_file(&args.data).display());
    }
    tokio::spawn(show_events(feed_view, stop.clone()));
    tracing::info!(specs = %args.data.join("specs").display(), "controller running; drop spec files there");
    let signalled = stop.clone();
    tokio::spawn(async move {
        crate::logging::until_signal().await;
        signalled.cancel();
    });
    controller.run(stop.cancelled()).await;
    tracing::info!("stopping: the local cloud stops its instances");
    let _ = std::fs::remove_file(args.data.join(crate::target::UP_FILE));
    tokio::time::timeout(Duration::from_secs(90), local.shutdown())
        .await
        .ok();
    Ok(())
}

/// The local cloud's data folder under `ccd up --data DATA`.
pub fn cloud_dir(data: &Path) -> PathBuf {
    data.join("cloud")
}

/// Its API token, which other commands (`ccd status`, `ccd plan`...) and
/// people (curl) send: `DATA/cloud/token`.
pub fn token_file(data: &Path) -> PathBuf {
    cloud_dir(data).join(ccd_localcloud::TOKEN_FILE)
}

/// `30s`, `10m`, `1h`: the spec's duration syntax.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    ccd_spec::Duration::parse(text).map(|d| d.as_std())
}

/// Copies the example specs in on first run, so `ccd up` shows something,
/// with a placeholder value for each secret they name (the local cloud's
/// Secret Manager is `DATA/cloud/secrets/`), so that they start.
fn seed(data: &Path, from: &Path) -> anyhow::Result<()> {
    let specs = data.join("specs");
    if specs.exists() {
        return Ok(());
    }
    std::fs::create_dir_all(&specs)
        .with_context(|| format!("cannot create {}", specs.display()))?;
    let Ok(entries) = std::fs::read_dir(from) else {
        tracing::info!(from = %from.display(), "no example specs to seed");
        return Ok(());
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml")
        ) {
            let target = specs.join(entry.file_name());
            std::fs::copy(&path, &target)
                .with_context(|| format!("cannot copy {}", path.display()))?;
            if let Ok(app) = ccd_spec::parse_bytes(&std::fs::read(&target)?) {
                seed_secrets(&cloud_dir(data), &app)?;
            }
        }
    }
    Ok(())
}

fn seed_secrets(cloud: &Path, app: &ccd_spec::App) -> anyhow::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
    let dir = cloud.join("secrets");
    for reference in app.spec.secrets.values() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let file = dir.join(&reference.secret);
        let created = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&file);
        if let Ok(mut f) = created {
            writeln!(f, "placeholder-for-{}", reference.secret)
                .with_context(|| format!("cannot write {}", file.display()))?;
            tracing::info!(file = %file.display(), app = %app.metadata.name,
                "wrote a placeholder secret for an example; put the real value there");
        }
    }
    Ok(())
}
