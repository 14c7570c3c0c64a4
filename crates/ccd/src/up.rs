//! `ccd up`: the embedded default. The controller, its local cloud and a
//! folder of specs, in one process, with no Google account.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use ccd_cloud::{GceCloud, GceConfig};
use ccd_controller::{DeployReconciler, EventSink, LocalTarget, SpecSource};
use ccd_localcloud::{Config, LocalCloud};
use ccd_store::FolderStore;

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
}

pub fn run(args: Args) -> ExitCode {
    crate::logging::init();
    crate::logging::run_async(up(args))
}

async fn up(args: Args) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.data)
        .with_context(|| format!("cannot create {}", args.data.display()))?;
    seed(&args.data.join("specs"), &args.seed)?;
    let cloud_config = Config {
        listen: args.cloud_listen,
        data_dir: Some(args.data.join("cloud")),
        ..Config::default()
    };
    let local = LocalCloud::start(cloud_config)
        .await
        .context("cannot start the local cloud")?;
    #[allow(clippy::print_stdout)] // the command's own output
    {
        println!("compute api: {}", local.compute_url());
    }
    let cloud = GceCloud::new(GceConfig {
        project: PROJECT.to_owned(),
        endpoint: Some(local.endpoint()),
        anonymous: true,
        ..GceConfig::default()
    })
    .await
    .context("cannot reach the local cloud")?;
    let store = Arc::new(FolderStore::new(&args.data).context("cannot open the spec folder")?);
    let listeners = local.listener_view();
    let endpoints: ccd_controller::Endpoints = Arc::new(move |_app, state| {
        let Some(address) = state.address else {
            return Vec::new();
        };
        listeners()
            .into_iter()
            .filter(|l| l.requested.ip() == address)
            .map(|l| format!("{}://{}", if l.tls { "https" } else { "http" }, l.listening))
            .collect()
    });
    let search: Vec<PathBuf> = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .into_iter()
        .collect();
    let reconciler = DeployReconciler::new(
        Arc::new(cloud),
        store.clone(),
        Some(LocalTarget { search }),
        Arc::new(Events {
            log: ccd_events::EventLog::open(args.data.join("events.redb"))
                .context("cannot open the event log")?,
        }),
        endpoints,
    );
    let config = ccd_runtime::Config {
        name: "deploy".to_owned(),
        ..ccd_runtime::Config::default()
    };
    let controller = ccd_runtime::Controller::new(SpecSource::new(store), reconciler, config);
    tracing::info!(specs = %args.data.join("specs").display(), "controller running; drop spec files there");
    controller.run(crate::logging::until_signal()).await;
    tracing::info!("stopping: the local cloud stops its instances");
    tokio::time::timeout(Duration::from_secs(90), local.shutdown())
        .await
        .ok();
    Ok(())
}

/// Copies the example specs in on first run, so `ccd up` shows something.
fn seed(specs: &Path, from: &Path) -> anyhow::Result<()> {
    if specs.exists() {
        return Ok(());
    }
    std::fs::create_dir_all(specs).with_context(|| format!("cannot create {}", specs.display()))?;
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
        }
    }
    Ok(())
}

/// Events go to the event log (`ccd events`) and the log, and readiness to
/// stdout: `ready: APP URL`.
#[derive(Debug)]
struct Events {
    log: ccd_events::EventLog,
}

impl EventSink for Events {
    fn record(
        &self,
        app: &str,
        warning: bool,
        reason: &str,
        message: &str,
        revision: Option<&str>,
    ) {
        let kind = if warning {
            ccd_events::Kind::Warning
        } else {
            ccd_events::Kind::Normal
        };
        if let Err(e) = self.log.record(app, kind, reason, message, revision) {
            tracing::warn!(error = %e, "cannot record an event");
        }
        if warning {
            tracing::warn!(app, reason, revision, "{message}");
        } else {
            tracing::info!(app, reason, revision, "{message}");
        }
        if reason == "Ready" {
            #[allow(clippy::print_stdout)] // the line users and scripts wait for
            {
                println!("ready: {app} {message}");
            }
        }
    }
}
