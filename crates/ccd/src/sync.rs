//! `ccd sync REPO --path DIR --to STORE`: a git commit's spec files into the store
//! (`ccd-sync` does the work), once, or every `--interval` with `--watch`, and at once on a
//! signed push with `--listen`.
#![allow(clippy::print_stdout, clippy::print_stderr)] // the command's output

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use ccd_store::{AnyStore, SpecStore as _, StoreUrl};
use ccd_sync::webhook::{self, Push, Secret};
use ccd_sync::{Options, Report};
use tokio::sync::mpsc;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The repository: a local path, or a URL git can fetch (https://, ssh://, git@host:path),
    /// read with your own git credentials (credential helper, ssh agent); never prompts.
    repo: String,
    /// The folder of spec files in the repository, from its top (`.` for the top itself);
    /// its *.yaml and *.yml files are synced, not nested folders.
    #[arg(long)]
    path: String,
    /// The store: a folder (`ccd up`'s data folder) or gs://bucket/prefix (STORAGE_EMULATOR_HOST
    /// for an emulator).
    #[arg(long)]
    to: String,
    /// The branch, tag or commit to sync; default HEAD (a URL's default branch).
    #[arg(long = "ref")]
    reference: Option<String>,
    /// Delete the store's specs that the commit has no file for.
    #[arg(long)]
    prune: bool,
    /// Let --prune delete more than half of the store's specs.
    #[arg(long, requires = "prune")]
    force: bool,
    /// Keep syncing, every --interval, until stopped (Ctrl-C); errors are logged, not fatal.
    #[arg(long)]
    watch: bool,
    /// How often --watch syncs (30s, 5m, ...).
    #[arg(long, default_value = "60s", value_parser = crate::up::parse_duration)]
    interval: Duration,
    /// With --watch, also serve a webhook on ADDR (0.0.0.0:9000) at /hooks/git: a push signed
    /// by GitHub or GitLab syncs at once; --interval's polling goes on as the backstop.
    #[arg(long, value_name = "ADDR", requires_all = ["watch", "secret_file"])]
    listen: Option<SocketAddr>,
    /// The webhook's secret (GitHub: the hook's Secret; GitLab: its signing token, whsec_...),
    /// alone in a file readable only by you (chmod 600).
    #[arg(long, value_name = "FILE", requires_all = ["watch", "listen"])]
    secret_file: Option<PathBuf>,
    /// Where a URL's clone is kept between syncs; default $XDG_CACHE_HOME/ccd/sync
    /// (~/.cache/ccd/sync).
    #[arg(long)]
    cache: Option<PathBuf>,
}

pub fn run(args: Args) -> ExitCode {
    crate::logging::init();
    let result = crate::logging::block_on(async move {
        let options = Options {
            repo: args.repo.parse()?,
            reference: args.reference.clone(),
            path: args.path.clone(),
            prune: args.prune,
            force: args.force,
            cache: args.cache.clone(),
        };
        let url: StoreUrl = args.to.parse().context("--to")?;
        if let StoreUrl::Folder(dir) = &url
            && !dir.is_dir()
        {
            // Opening a folder store creates specs/ in it: a typo must not make a new store.
            anyhow::bail!(
                "--to {}: there is no such folder; give the data folder of `ccd up` (or create it first)",
                dir.display()
            );
        }
        if args.watch {
            let store = AnyStore::open(&url).context("cannot open the store")?;
            let stop = CancellationToken::new();
            let pushes = match (args.listen, &args.secret_file) {
                (Some(addr), Some(file)) => Some(listen(addr, file, &stop).await?),
                _ => None,
            };
            watch(&store, &options, args.interval, pushes).await;
            stop.cancel();
            return Ok(());
        }
        // The repository first: one that cannot be read leaves the store untouched.
        let fetched = ccd_sync::fetch(&options).await?;
        let store = AnyStore::open(&url).context("cannot open the store")?;
        let report = ccd_sync::apply(&store, &fetched, &options).await?;
        print(&report, &store);
        Ok(())
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ccd sync: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Starts `--listen`'s webhook (the secret read first, so a bad file fails before anything
/// listens); it stops when `stop` is cancelled. Its pushes come out of the returned channel.
async fn listen(
    addr: SocketAddr,
    file: &std::path::Path,
    stop: &CancellationToken,
) -> anyhow::Result<mpsc::Receiver<Push>> {
    let secret = Secret::read(file)?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("--listen {addr}: cannot listen there"))?;
    let bound = listener.local_addr()?;
    let (tx, rx) = webhook::channel();
    let stopped = stop.clone().cancelled_owned();
    tokio::spawn(async move {
        if let Err(e) = webhook::serve(listener, secret, tx, stopped).await {
            tracing::error!("{e}; syncs go on every --interval");
        }
    });
    println!("webhook: listening on http://{bound}{}", webhook::PATH);
    Ok(rx)
}

/// Syncs every `interval`, and at once on a webhook's push, until SIGINT or SIGTERM. A failed
/// sync is logged and tried again at the next tick: a repository or store that is briefly
/// unreachable stops nothing.
async fn watch(
    store: &AnyStore,
    options: &Options,
    interval: Duration,
    mut pushes: Option<mpsc::Receiver<Push>>,
) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    // One signal future for the whole loop: a signal during a sync is not lost.
    let stop = crate::logging::until_signal();
    tokio::pin!(stop);
    let mut shown: Option<String> = None;
    loop {
        tokio::select! {
            () = &mut stop => return,
            _ = ticker.tick() => {}
            push = next_push(&mut pushes) => match push {
                Some(push) => {
                    tracing::info!(
                        "push to {} ({}) from {}: syncing",
                        push.reference,
                        push.commit,
                        push.forge
                    );
                    // The next poll is a whole interval after this sync.
                    ticker.reset();
                }
                None => {
                    // The server stopped (its error is logged): polling goes on alone.
                    pushes = None;
                    continue;
                }
            },
        }
        let result = tokio::select! {
            () = &mut stop => return,
            result = ccd_sync::sync(store, options) => result,
        };
        match result {
            Ok(report) => {
                let news = !report.uploaded.is_empty()
                    || !report.deleted.is_empty()
                    || report.marker_written
                    || shown.as_deref() != Some(report.commit.id.as_str());
                if news {
                    print(&report, store);
                    shown = Some(report.commit.id.clone());
                } else {
                    tracing::debug!(commit = %report.commit.id, "nothing changed");
                }
            }
            Err(e) => {
                tracing::error!(
                    "sync failed, trying again in {}s: {e}",
                    interval.as_secs_f32()
                );
                // Say it again once it works.
                shown = None;
            }
        }
    }
}

/// The webhook's next push; never, without `--listen`.
async fn next_push(pushes: &mut Option<mpsc::Receiver<Push>>) -> Option<Push> {
    match pushes {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

fn print(report: &Report, store: &AnyStore) {
    let c = &report.commit;
    println!(
        "commit {} by {} at {} -> {}",
        c.id,
        c.author,
        c.time,
        store.location()
    );
    for u in &report.uploaded {
        println!("uploaded specs/{}.yaml from {}", u.app, u.path);
    }
    for app in &report.deleted {
        println!("deleted specs/{app}.yaml");
    }
    println!("unchanged {}", report.unchanged);
    for app in &report.kept {
        println!("kept specs/{app}.yaml (not in the commit; --prune deletes it)");
    }
    for w in &report.warnings {
        eprintln!("warning: {w}");
    }
}
