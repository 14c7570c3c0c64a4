//! Logs go to stderr, filtered by `RUST_LOG` (default info); stdout is the
//! commands' own output.

use std::io::IsTerminal;

pub fn init() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}

/// `ccd up`'s logs: everything (as `RUST_LOG` says, default info) into
/// `file`, and on the terminal only warnings and errors, in a line each,
/// unless `verbose` (then everything there too). The terminal's other
/// lines are the command's own (`ready: ...`, and each event).
pub fn init_up(file: &std::path::Path, verbose: bool) -> anyhow::Result<()> {
    use tracing_subscriber::Layer as _;
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let filter = || {
        tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"))
    };
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(file)
        .map_err(|e| anyhow::anyhow!("cannot open the log {}: {e}", file.display()))?;
    let to_file = tracing_subscriber::fmt::layer()
        .with_writer(std::sync::Mutex::new(log))
        .with_ansi(false)
        .with_filter(filter());
    let ansi = std::io::stderr().is_terminal();
    let terminal = if verbose {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(ansi)
            .with_filter(filter())
            .boxed()
    } else {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(ansi)
            .compact()
            .without_time()
            .with_target(false)
            .with_filter(tracing_subscriber::filter::LevelFilter::WARN)
            .boxed()
    };
    let _ = tracing_subscriber::registry()
        .with(to_file)
        .with(terminal)
        .try_init();
    Ok(())
}

/// Resolves on SIGINT or SIGTERM.
pub async fn until_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// Runs a command's work on a multi-threaded runtime; an error is logged
/// with its causes and the command exits 1.
pub fn run_async(
    work: impl std::future::Future<Output = anyhow::Result<()>>,
) -> std::process::ExitCode {
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the async runtime");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(work) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Runs a command's work on a runtime and hands back its result (for
/// commands that word their own errors).
pub fn block_on<T>(
    work: impl std::future::Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| anyhow::anyhow!("cannot start the async runtime: {e}"))?
        .block_on(work)
}
