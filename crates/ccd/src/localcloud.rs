//! `ccd localcloud`: the local cloud on its own, until interrupted.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use std::sync::Arc;

use ccd_bus::{AnyBus, PubSubBus, PubSubConfig};
use ccd_localcloud::{Config, FaultConfig, LocalCloud};

use crate::guest::AgentGuest;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Address of the Compute API (and of the admin and metadata endpoints).
    #[arg(long, default_value = "127.0.0.1:8787")]
    listen: SocketAddr,
    /// Where state and instance logs live; state survives restarts. Without it,
    /// state is kept in memory and every instance is simulated.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Share of API calls (0 to 1) that fail with 403 rateLimitExceeded, 429 or 503.
    #[arg(long, default_value_t = 0.0)]
    error_rate: f64,
    /// A load balancer on a port below 1024 that cannot be bound (not root)
    /// listens on that port plus this: 443 becomes 8443 by default.
    #[arg(long, default_value_t = 8000)]
    unprivileged_port_offset: u16,
    /// How long each operation takes to be DONE, in milliseconds.
    #[arg(long, default_value_t = 0)]
    operation_latency_ms: u64,
    /// Run ccd's agent beside each instance's process, publishing to Pub/Sub
    /// in this project (the emulator at PUBSUB_EMULATOR_HOST when set), as
    /// agents on Compute Engine do.
    #[arg(long)]
    agents_pubsub_project: Option<String>,
    /// Topic and subscription prefix of the agents' Pub/Sub.
    #[arg(long, default_value = "ccd-")]
    agents_pubsub_prefix: String,
}

pub fn run(args: Args) -> ExitCode {
    crate::logging::init();
    let faults = FaultConfig {
        error_rate: args.error_rate,
        error_codes: vec![],
        operation_latency_ms: args.operation_latency_ms,
    };
    if let Err(e) = faults.check() {
        tracing::error!("{e}");
        return ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let guest: Option<Arc<dyn ccd_localcloud::Guest>> = match &args.agents_pubsub_project {
            None => None,
            Some(project) => {
                let mut config = PubSubConfig::from_env(project);
                config.prefix.clone_from(&args.agents_pubsub_prefix);
                match PubSubBus::new(config).await {
                    Ok(bus) => Some(Arc::new(AgentGuest {
                        bus: Arc::new(AnyBus::PubSub(bus)),
                    })),
                    Err(e) => {
                        tracing::error!("the agents' bus: {e}");
                        return ExitCode::FAILURE;
                    }
                }
            }
        };
        let config = Config {
            listen: args.listen,
            data_dir: args.data,
            faults,
            check_responses: false,
            unprivileged_port_offset: args.unprivileged_port_offset,
            guest,
        };
        let cloud = match LocalCloud::start(config).await {
            Ok(c) => c,
            Err(e) => {
                tracing::error!("{e}");
                return ExitCode::FAILURE;
            }
        };
        #[allow(clippy::print_stdout)] // the lines scripts wait for
        {
            println!("compute api: {}", cloud.compute_url());
            // Every call but the metadata server's takes the token: its file
            // with a data folder, else the token itself (it lives as long as
            // this process and is nowhere else).
            match cloud.token_file() {
                Some(file) => println!("token: {}", file.display()),
                None => println!("token: {}", cloud.token()),
            }
        }
        crate::logging::until_signal().await;
        tracing::info!("stopping the local cloud and its instances");
        cloud.shutdown().await;
        ExitCode::SUCCESS
    })
}
