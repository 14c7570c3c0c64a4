//! `ccd-sample-app`: the HTTP app ccd's end-to-end tests deploy. It can be
//! told (by env at start, or by request at run time) to start slowly, fail
//! health checks, burn CPU or crash, so tests can exercise ccd's reactions.

mod config;
mod duration;
mod server;
mod services;

use std::io::IsTerminal;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use tokio::signal::unix::{SignalKind, signal};
use tracing_subscriber::EnvFilter;

use crate::config::{Cli, Config};

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(err) => {
            tracing::error!(%err, "cannot start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!("{err:#}");
            // 2, not 1: a bad start is told apart from a requested crash.
            ExitCode::from(2)
        }
    }
}

fn init_tracing() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour codes only help a terminal; ccd stores these logs as text.
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let config = Config::resolve(&cli, |name| std::env::var(name).ok(), hostname)?;

    // Hook the signals first so a SIGTERM during a slow start is still graceful.
    let mut sigterm = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
    let mut sigint = signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?;
    // Boxed so it can be polled during the start delay and then handed,
    // still pending, to axum (which wants a 'static future).
    let mut shutdown = Box::pin(async move {
        tokio::select! {
            _ = sigterm.recv() => tracing::info!("SIGTERM received; draining in-flight requests"),
            _ = sigint.recv() => tracing::info!("SIGINT received; draining in-flight requests"),
        }
    });

    if let Some(delay) = config.start_delay {
        tracing::info!(
            ?delay,
            "SAMPLE_START_DELAY: waiting before binding the port"
        );
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = &mut shutdown => return Ok(()),
        }
    }

    let listener = tokio::net::TcpListener::bind(config.addr)
        .await
        .with_context(|| format!("cannot listen on {}", config.addr))?;
    let addr = listener
        .local_addr()
        .context("cannot read the bound address")?;
    tracing::info!(
        app = %config.identity.app,
        version = %config.identity.version,
        instance = %config.identity.instance,
        "listening on {addr}"
    );

    if let Some(after) = config.crash_after {
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            tracing::error!(?after, "SAMPLE_CRASH_AFTER: crashing with exit code 1");
            std::process::exit(1);
        });
    }

    let app = server::router(
        config.identity,
        server::Behaviour {
            healthy: !config.fail_health,
            burn_ms: config.burn_ms,
            error_percent: config.error_percent,
            expose_env: config.expose_env,
        },
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
        .context("server failed")?;
    tracing::info!("shut down cleanly");
    Ok(())
}

/// The machine's hostname for `instance`, or "local" when it can't be read.
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|name| name.trim().to_string())
        .ok()
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "local".to_string())
}
