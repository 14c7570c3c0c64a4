//! `ccd agent`: the agent on a Compute Engine instance, started by the
//! startup script as a container beside the app's. It reads its
//! configuration and identity from the metadata server, watches the app's
//! container and publishes on Pub/Sub in the instance's project.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use ccd_agent::app::{Container, Machine};
use ccd_agent::check::Check;
use ccd_agent::{Agent, metadata};
use ccd_bus::{PubSubBus, PubSubConfig};
use tokio_util::sync::CancellationToken;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The app's container.
    #[arg(long, default_value = "app")]
    container: String,
    /// The Docker command line.
    #[arg(long, default_value = "docker")]
    docker: PathBuf,
    /// Put before every Pub/Sub topic and subscription ID (as the controller's `pubsub.prefix`).
    #[arg(long, default_value = "ccd-")]
    pubsub_prefix: String,
}

/// Reading the metadata server at boot: it answers within seconds.
const METADATA_ATTEMPTS: u32 = 10;

pub fn run(args: Args) -> ExitCode {
    crate::logging::init();
    crate::logging::run_async(serve(args))
}

async fn serve(args: Args) -> anyhow::Result<()> {
    let host = metadata::host();
    let mut attempt = 1;
    let found = loop {
        match metadata::read(&host).await {
            Ok(found) => break found,
            // A VM not made by ccd has nothing to watch: no point retrying.
            Err(e @ metadata::MetadataError::NoConfig) => return Err(e.into()),
            Err(e) if attempt < METADATA_ATTEMPTS => {
                tracing::warn!(error = %e, attempt, "metadata server; trying again");
                tokio::time::sleep(Duration::from_secs(2)).await;
                attempt += 1;
            }
            Err(e) => return Err(e).context("cannot read the agent's configuration"),
        }
    };
    let mut config = PubSubConfig::from_env(&found.project);
    config.prefix = args.pubsub_prefix;
    let bus = PubSubBus::new(config)
        .await
        .context("cannot connect to Pub/Sub")?;
    let app = Container::new(args.container, args.docker);
    let check = Check::new(found.config.check.clone(), found.config.timeout)
        .exec_through(app.exec_prefix());
    let agent = Agent::new(
        found.config,
        &found.instance,
        &found.instance_id,
        Arc::new(bus),
        check,
        app,
        Machine::this(),
    );
    let stop = CancellationToken::new();
    let signalled = stop.clone();
    tokio::spawn(async move {
        crate::logging::until_signal().await;
        signalled.cancel();
    });
    tracing::info!(instance = %found.instance, "agent running");
    agent.run(stop).await.context("the agent's bus")?;
    Ok(())
}
