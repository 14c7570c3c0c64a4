//! A benchmark load balancer: one plaintext frontend over health-checked backends.
//!
//! Usage: `bench_lb <listen-port> <backend-port>...` (all on 127.0.0.1). The frontend runs one
//! worker thread per core, like nginx's `worker_processes auto`.

use std::net::SocketAddr;
use std::time::Duration;

use ccd_lb::{
    BackendConfig, BackendService, BackendServiceConfig, Frontend, FrontendConfig, HealthCheck,
    HealthCheckProtocol, HealthState, RouteAction, UpstreamNetwork, UrlMap,
};

type Error = Box<dyn std::error::Error + Send + Sync>;

// The frontend has its own worker threads; this runtime only runs the health prober.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let mut ports = std::env::args().skip(1).map(|arg| arg.parse::<u16>());
    let listen = ports
        .next()
        .ok_or("usage: bench_lb <listen-port> <backend-port>...")??;
    let backends = ports
        .enumerate()
        .map(|(index, port)| {
            Ok(BackendConfig::new(
                format!("backend-{index}"),
                SocketAddr::from(([127, 0, 0, 1], port?)),
            ))
        })
        .collect::<Result<Vec<_>, Error>>()?;
    if backends.is_empty() {
        return Err("at least one backend port is needed".into());
    }

    let service = BackendService::new(
        BackendServiceConfig {
            backends,
            health_check: HealthCheck {
                protocol: HealthCheckProtocol::Http {
                    path: "/".to_owned(),
                    host: None,
                },
                check_interval: Duration::from_secs(1),
                timeout: Duration::from_secs(1),
                healthy_threshold: 1,
                ..HealthCheck::default()
            },
            ..BackendServiceConfig::new("bench")
        },
        UpstreamNetwork::default(),
    )?;
    // Serve only once every backend is healthy, so the benchmark never sees a 503.
    for _ in 0..500 {
        if service
            .health()
            .iter()
            .all(|backend| backend.state == HealthState::Healthy)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let frontend = Frontend::bind(
        FrontendConfig::http("bench", SocketAddr::from(([127, 0, 0, 1], listen))),
        &UrlMap::new(RouteAction::service(service.clone())),
    )
    .await?;
    tracing::info!(address = %frontend.local_addr(), "bench lb ready");

    tokio::signal::ctrl_c().await?;
    let stats = frontend.stats();
    tracing::info!(?stats, backends = ?service.stats(), "stopping");
    frontend.shutdown(Duration::from_secs(5)).await;
    Ok(())
}
