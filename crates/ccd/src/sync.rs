//! `ccd sync REPO --path DIR --to STORE`: a git commit's spec files into the store
//! (`ccd-sync` does the work), once, or every `--interval` with `--watch`.
#![allow(clippy::print_stdout, clippy::print_stderr)] // the command's output

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use ccd_store::{AnyStore, SpecStore as _, StoreUrl};
use ccd_sync::{Options, Report};
use tokio::time::MissedTickBehavior;

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
            watch(&store, &options, args.interval).await;
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

/// Syncs every `interval` until SIGINT or SIGTERM. A failed sync is logged and tried again
/// at the next tick: a repository or store that is briefly unreachable stops nothing.
async fn watch(store: &AnyStore, options: &Options, interval: Duration) {
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
