//! `ccd plan FILE`: what a spec would change against what exists now,
//! resource by resource, and the rollout it would start. Reads only: no
//! cloud change, no status written.
#![allow(clippy::print_stdout, clippy::print_stderr)] // the command's output

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use ccd_controller::LocalTarget;
use ccd_controller::preview::{Preview, preview};
use ccd_controller::status::Status;
use ccd_store::SpecStore;

use crate::target::Target;

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The spec file.
    file: PathBuf,
    #[command(flatten)]
    target: Target,
    #[command(flatten)]
    remote: crate::remote::RemoteArgs,
    #[arg(short, long, value_enum, default_value = "table")]
    output: Format,
}

pub fn run(args: Args) -> ExitCode {
    crate::logging::init();
    let bytes = match std::fs::read(&args.file) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("cannot read {}: {e}", args.file.display());
            return ExitCode::FAILURE;
        }
    };
    let app = match ccd_spec::parse_bytes(&bytes) {
        Ok(app) => app,
        Err(problems) => {
            let path = args.file.display().to_string();
            for p in &problems.0 {
                eprintln!("{}", p.display_in(&path));
            }
            return ExitCode::FAILURE;
        }
    };
    let version = ccd_store::spec_version(&bytes);
    match crate::logging::block_on(plan(&args, &app, &version)) {
        Ok(p) => {
            let mut out = std::io::stdout().lock();
            let _ = match args.output {
                Format::Json => writeln!(
                    out,
                    "{}",
                    serde_json::to_string_pretty(&p).unwrap_or_default()
                ),
                Format::Table => {
                    let against = match args.remote.server() {
                        Some(url) => url.to_owned(),
                        None => args.target.describe(),
                    };
                    write!(out, "{}", render(&p, &against))
                }
            };
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("ccd plan: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn plan(args: &Args, app: &ccd_spec::App, version: &str) -> anyhow::Result<Preview> {
    let name = &app.metadata.name;
    if let Some(remote) = args.remote.remote()? {
        let bytes = std::fs::read(&args.file)
            .with_context(|| format!("cannot read {}", args.file.display()))?;
        let answer = remote
            .post(&format!("/v1/apps/{name}/plan"), Some(bytes))
            .await?;
        return serde_json::from_value(answer).with_context(|| {
            format!("{} answered a plan this ccd cannot read", remote.describe())
        });
    }
    let store = args.target.store()?;
    let recorded = store
        .read_status(name)
        .await
        .with_context(|| format!("cannot read the status of {name}"))?
        .and_then(|b| Status::parse(&b))
        .unwrap_or_default();
    let cloud = args.target.cloud().await?;
    let local = args.target.is_local().then(|| LocalTarget {
        search: binary_dir(),
    });
    let endpoints: ccd_controller::Endpoints = Arc::new(|_, state| {
        state
            .address
            .map(|a| vec![a.to_string()])
            .unwrap_or_default()
    });
    preview(&cloud, app, version, &recorded, local.as_ref(), &endpoints)
        .await
        .context("cannot read the cloud")
}

/// Where `ccd up` finds programs named by bare name: beside this binary.
fn binary_dir() -> Vec<PathBuf> {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .into_iter()
        .collect()
}

fn render(p: &Preview, against: &str) -> String {
    let mut s = format!("plan for {} against {against}:\n", p.app);
    if p.changes.is_empty() {
        s += "  no change to the cloud\n";
    } else {
        s += "changes:\n";
        for c in &p.changes {
            s += &format!("  {c}\n");
        }
    }
    let (Some(r), Some(schedule)) = (&p.rollout, &p.schedule) else {
        s += "no rollout: the spec's version is what runs (or was rolled back)\n";
        return s;
    };
    let from = r.from.as_ref().map_or_else(
        || "first deploy".to_owned(),
        |f| format!("from {}", f.version),
    );
    s += &format!(
        "rollout: version {} ({from}), {:?}, each step healthy within its deadline\n",
        r.to.version, r.strategy
    );
    s += &format!(
        "  {:<16} {:>5} {:>5} {:>8} {:>11} {:>8} {:>8}\n",
        "STEP", "NEW", "OLD", "TRAFFIC", "UNAVAILABLE", "UP", "HOLD"
    );
    for step in &schedule.steps {
        s += &format!(
            "  {:<16} {:>5} {:>5} {:>7}% {:>11} {:>8} {:>8}\n",
            step.name,
            step.new_instances,
            step.old_instances,
            step.traffic_to_new,
            step.unavailable,
            duration(step.up),
            duration(step.hold)
        );
    }
    s += &format!(
        "best case: {} ({})\n",
        duration(schedule.best_case),
        schedule.assumes
    );
    s
}

fn duration(d: std::time::Duration) -> String {
    ccd_spec::Duration::from_millis(u64::try_from(d.as_millis()).unwrap_or(u64::MAX)).to_string()
}
