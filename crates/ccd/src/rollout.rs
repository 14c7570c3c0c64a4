//! `ccd rollout status|pause|resume|promote|abort APP`: an app's rollout as
//! its status records it, and an operator's say over the one under way. A
//! control is written into the store (`controls/APP.yaml`), where the
//! controller reads it on its next pass: it works with a folder and a
//! bucket alike and a pause survives a controller restart.
#![allow(clippy::print_stdout, clippy::print_stderr)] // the command's output

use std::io::Write as _;
use std::process::ExitCode;

use anyhow::{Context, bail};
use ccd_controller::control::{Ask, state_word};
use ccd_controller::record::Rollout;
use ccd_controller::status::Status;
use ccd_store::SpecStore;

use crate::observe::Output;
use crate::remote::RemoteArgs;
use crate::target::Target;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    action: RolloutAction,
}

#[derive(Debug, clap::Subcommand)]
enum RolloutAction {
    /// The rollout under way (or the last one), its steps and the history.
    Status {
        app: String,
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        remote: RemoteArgs,
        #[arg(short, long, value_enum, default_value = "table")]
        output: Output,
    },
    /// Hold the rollout where it stands; its deadline stops running.
    Pause(Operator),
    /// Continue a paused rollout.
    Resume(Operator),
    /// Skip the remaining holds: all traffic to the new version once its instances are healthy.
    Promote(Operator),
    /// Roll back now to the last good version.
    Abort(Operator),
}

#[derive(Debug, clap::Args)]
struct Operator {
    app: String,
    #[command(flatten)]
    target: Target,
    #[command(flatten)]
    remote: RemoteArgs,
}

pub fn run(args: Args) -> ExitCode {
    crate::logging::init();
    let result = crate::logging::block_on(async move {
        match args.action {
            RolloutAction::Status {
                app,
                target,
                remote,
                output,
            } => status(&app, &target, &remote, output).await,
            RolloutAction::Pause(o) => control(&o, Ask::Pause).await,
            RolloutAction::Resume(o) => control(&o, Ask::Resume).await,
            RolloutAction::Promote(o) => control(&o, Ask::Promote).await,
            RolloutAction::Abort(o) => control(&o, Ask::Abort).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ccd rollout: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn read_status(store: &impl SpecStore, app: &str, target: &Target) -> anyhow::Result<Status> {
    let bytes = store
        .read_status(app)
        .await
        .with_context(|| format!("cannot read the status of {app}"))?;
    let Some(bytes) = bytes else {
        bail!(
            "{app} has no status in {}: is there a spec specs/{app}.yaml, and is the controller running?",
            target.describe()
        );
    };
    Status::read(&bytes).map_err(|why| {
        anyhow::anyhow!(
            "{}/status/{app}.yaml is not a status this ccd can read ({why}): if it was edited by hand, the controller writes it anew on its next pass over {app}",
            store.location()
        )
    })
}

async fn control(op: &Operator, ask: Ask) -> anyhow::Result<()> {
    ccd_store::check_app_name(&op.app)?;
    let asked = match op.remote.remote()? {
        Some(remote) => {
            let path = format!("/v1/apps/{}/rollout/{}", op.app, ask.verb());
            let a = remote.post(&path, None).await?;
            ccd_controller::control::Asked {
                rollout: a["rollout"].as_str().unwrap_or_default().to_owned(),
                version: a["version"].as_str().unwrap_or_default().to_owned(),
                note: a["note"].as_str().map(str::to_owned),
            }
        }
        None => {
            let store = op.target.store()?;
            let status = read_status(&store, &op.app, &op.target).await?;
            let by = std::env::var("USER").ok();
            ccd_controller::control::ask(&store, &op.app, &status, ask, by).await?
        }
    };
    if let Some(note) = &asked.note {
        println!("{note}");
    }
    println!(
        "{} asked for the rollout of {} version {} ({}); the controller acts on its next pass: \
         `ccd rollout status {}` shows it",
        ask.verb(),
        op.app,
        asked.version,
        asked.rollout,
        op.app
    );
    Ok(())
}

async fn status(
    app: &str,
    target: &Target,
    remote: &RemoteArgs,
    output: Output,
) -> anyhow::Result<()> {
    ccd_store::check_app_name(app)?;
    let status = match remote.remote()? {
        Some(remote) => {
            let r = remote.get(&format!("/v1/apps/{app}/rollouts")).await?;
            let mut status = Status::default();
            status.rollout = serde_json::from_value(r["rollout"].clone())?;
            status.history = serde_json::from_value(r["history"].clone())?;
            status
        }
        None => read_status(&target.store()?, app, target).await?,
    };
    let mut out = std::io::stdout().lock();
    match output {
        Output::Json => {
            let value = serde_json::json!({
                "app": app,
                "rollout": status.rollout,
                "history": status.history,
            });
            let _ = writeln!(out, "{}", serde_json::to_string_pretty(&value)?);
        }
        Output::Yaml => {
            let value = serde_json::json!({"rollout": status.rollout, "history": status.history});
            let _ = write!(
                out,
                "{}",
                ccd_spec::document::to_yaml(&format!("rollout of {app}"), &value)
            );
        }
        Output::Table => {
            let _ = write!(out, "{}", render(app, &status));
        }
    }
    Ok(())
}

/// The rollout as a person reads it.
fn render(app: &str, status: &Status) -> String {
    let mut s = String::new();
    let Some(r) = &status.rollout else {
        return format!("{app}: no rollout yet\n");
    };
    let from = r.from.as_ref().map_or_else(
        || "first deploy".to_owned(),
        |f| format!("from {}", f.version),
    );
    s += &format!(
        "{app}: version {} ({from}), {:?}, {}\n",
        r.to.version,
        r.strategy,
        state_word(r.state)
    );
    s += &format!("  id:       {}\n  started:  {}\n", r.id, r.started);
    if let Some(ended) = r.ended {
        s += &format!("  ended:    {ended}\n");
    } else {
        let what = if r.step.ready.is_some() {
            "holds until"
        } else {
            "healthy by"
        };
        s += &format!(
            "  step:     {} of {} ({}), {what} {}\n",
            r.step.index + 1,
            r.steps.len(),
            r.step.name,
            r.step.due
        );
    }
    if let Some(v) = &r.verdict {
        s += &format!("  verdict:  {:?}: {}\n", v.result, v.reason);
    }
    s += &format!(
        "  probes:   {} sent, {} failed\n",
        r.probes.sent, r.probes.failed
    );
    s += &steps_table(r);
    for f in &r.failing {
        s += &format!("  failing:  {} ({})\n", f.name, f.health);
    }
    if !status.history.is_empty() {
        s += "history:\n";
        s += &format!(
            "  {:<12} {:<10} {:<26} {:<12} {:>15}\n",
            "VERSION", "STRATEGY", "STARTED", "STATE", "FAILED/PROBES"
        );
        for h in &status.history {
            s += &format!(
                "  {:<12} {:<10} {:<26} {:<12} {:>15}\n",
                h.version,
                format!("{:?}", h.strategy),
                h.started.to_string(),
                format!("{:?}", h.state),
                format!("{}/{}", h.failed_probes, h.probes)
            );
        }
    }
    s
}

fn steps_table(r: &Rollout) -> String {
    let mut s = format!(
        "  {:<3} {:<8} {:>9} {:>7} {:>8} {:>15}\n",
        "", "STEP", "INSTANCES", "WEIGHT", "HOLD", "FAILED/PROBES"
    );
    for (i, step) in r.steps.iter().enumerate() {
        let mark = if u32::try_from(i).ok() == Some(r.step.index) && r.state.is_open() {
            "→"
        } else {
            ""
        };
        let p = &step.plan;
        s += &format!(
            "  {:<3} {:<8} {:>9} {:>7} {:>8} {:>15}\n",
            mark,
            p.name,
            p.instances.map_or("all".to_owned(), |n| n.to_string()),
            p.weight.map_or("-".to_owned(), |w| format!("{w}%")),
            p.hold.map_or("-".to_owned(), |h| h.to_string()),
            format!("{}/{}", step.failed_probes, step.probes)
        );
    }
    s
}
