//! `ccd services [APP]`: each app's services and their state, from its
//! status; `ccd services env APP`: the variables the app receives, values
//! included, for a person who needs them (as `heroku config` does).
#![allow(clippy::print_stdout, clippy::print_stderr)] // the command's output

use std::process::ExitCode;

use anyhow::{Context as _, bail};
use ccd_controller::Status;
use ccd_services::{ServiceState, names};
use ccd_store::{SpecStore as _, check_app_name};

use crate::target::Target;

#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Args {
    #[command(subcommand)]
    command: Option<Sub>,
    /// Only this app.
    app: Option<String>,
    #[command(flatten)]
    target: Target,
}

#[derive(Debug, clap::Subcommand)]
enum Sub {
    /// The variables APP receives from its services, as NAME=value lines, values included.
    Env {
        app: String,
        #[command(flatten)]
        target: Target,
    },
    /// Backs APP's SQL database up now (pg_dump), checked by a restore into a scratch database.
    Backup {
        app: String,
        #[command(flatten)]
        target: Target,
    },
    /// A new password for APP's SERVICE (sql or cache), valid beside the old one; ccd up rolls APP
    /// out with it and then retires the old one.
    Rotate {
        app: String,
        /// sql or cache.
        service: String,
        #[command(flatten)]
        target: Target,
    },
    /// What deleting apps kept (onDelete: retain); with --yes, removes APP's data and accounts.
    Prune {
        /// The deleted app whose kept services go.
        app: Option<String>,
        /// Remove them: without it, only list what would go.
        #[arg(long)]
        yes: bool,
        #[command(flatten)]
        target: Target,
    },
}

pub fn run(args: Args) -> ExitCode {
    crate::logging::init();
    let result = crate::logging::block_on(async move {
        match args.command {
            Some(Sub::Env { app, target }) => env(&app, &target).await,
            Some(Sub::Prune { app, yes, target }) => prune(app.as_deref(), yes, &target).await,
            Some(Sub::Backup { app, target }) => backup(&app, &target).await,
            Some(Sub::Rotate {
                app,
                service,
                target,
            }) => rotate(&app, &service, &target).await,
            None => list(args.app.as_deref(), &args.target).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ccd services: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn status(target: &Target, app: &str) -> anyhow::Result<Status> {
    check_app_name(app)?;
    let store = target.store()?;
    let bytes = store.read_status(app).await?.with_context(|| {
        format!(
            "{app} has no status in {}: is it deployed?",
            target.describe()
        )
    })?;
    Status::read(&bytes).map_err(|e| anyhow::anyhow!("status/{app}.yaml: {e}"))
}

async fn list(only: Option<&str>, target: &Target) -> anyhow::Result<()> {
    let apps = match only {
        Some(app) => vec![app.to_owned()],
        None => target.store()?.list_statuses().await?,
    };
    println!(
        "{:<20} {:<8} {:<11} {:<22} {:<14} MESSAGE",
        "APP", "SERVICE", "STATE", "ENDPOINT", "USER"
    );
    for app in apps {
        let status = status(target, &app).await?;
        for s in &status.services {
            let state = match s.state {
                ServiceState::Ready => "Ready",
                ServiceState::Failed => "Failed",
                ServiceState::NotProvided => "NotProvided",
            };
            println!(
                "{:<20} {:<8} {:<11} {:<22} {:<14} {}",
                app,
                s.kind,
                state,
                s.endpoint.as_deref().unwrap_or("-"),
                s.user.as_deref().unwrap_or("-"),
                if s.message.is_empty() {
                    s.scope.as_deref().unwrap_or("")
                } else {
                    &s.message
                }
            );
        }
    }
    Ok(())
}

async fn env(app: &str, target: &Target) -> anyhow::Result<()> {
    let status = status(target, app).await?;
    let Some(secrets) = target.local_secrets() else {
        bail!(
            "with --config the values are in Secret Manager: gcloud secrets versions access latest --secret SECRET (the secret of each service is ccd-{app}-KIND)"
        );
    };
    for s in status
        .services
        .iter()
        .filter(|s| s.state == ServiceState::Ready)
    {
        for name in &s.env {
            let file = secrets.join(names::secret_of(app, &s.kind, name));
            let value = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read {} ({} of {app})", file.display(), s.kind))?;
            println!("{name}={}", value.trim_end());
        }
    }
    Ok(())
}

async fn prune(app: Option<&str>, yes: bool, target: &Target) -> anyhow::Result<()> {
    let (Some(data), Some(secrets)) = (target.local_data(), target.local_secrets()) else {
        bail!(
            "ccd services prune works on ccd up's data folder (--data DIR); with --config it is not built yet"
        );
    };
    let services = ccd_services::LocalServices::new(&data, &secrets);
    let kept = services.retained().map_err(anyhow::Error::msg)?;
    let Some(app) = app else {
        if kept.is_empty() {
            println!("nothing is kept: no deleted app left services behind");
        }
        for r in &kept {
            let what: Vec<String> = r
                .services
                .iter()
                .map(|s| {
                    format!("{} {}", s.kind, s.name.as_deref().unwrap_or(""))
                        .trim_end()
                        .to_owned()
                })
                .collect();
            println!("{:<20} {}", r.app, what.join(", "));
        }
        if !kept.is_empty() {
            println!("`ccd services prune APP --yes` removes an app's kept data and accounts");
        }
        return Ok(());
    };
    check_app_name(app)?;
    let Some(record) = kept.iter().find(|r| r.app == app) else {
        bail!("{app} has nothing kept; `ccd services prune` lists what is");
    };
    if target.store()?.get_spec(app).await?.is_some() {
        bail!(
            "{app} has a spec again (specs/{app}.yaml): its services are in use, not kept; nothing removed"
        );
    }
    if !yes {
        for s in &record.services {
            println!(
                "would remove {} {}",
                s.kind,
                s.name.as_deref().unwrap_or("")
            );
        }
        println!("add --yes to remove them: the data cannot be brought back");
        return Ok(());
    }
    let removed = services.prune(app).await.map_err(anyhow::Error::msg)?;
    println!("removed {app}'s {}", removed.join(", "));
    Ok(())
}

async fn backup(app: &str, target: &Target) -> anyhow::Result<()> {
    check_app_name(app)?;
    let (Some(data), Some(secrets)) = (target.local_data(), target.local_secrets()) else {
        bail!(
            "ccd services backup works on ccd up's data folder (--data DIR); with --config it is not built yet"
        );
    };
    let parsed = spec(app, target).await?;
    let Some(sql) = parsed.spec.services.sql else {
        bail!("{app}'s spec asks for no sql database (services.sql): nothing to back up");
    };
    let keep = sql.backup.as_ref().map_or(7, |b| b.keep);
    let services = ccd_services::LocalServices::new(&data, &secrets);
    let report = services
        .backup(app, sql.database.as_deref(), keep, ccd_clock::wall())
        .await;
    if !report.ok {
        bail!("{app}: {}", report.message);
    }
    let file = report
        .file
        .map(|f| f.display().to_string())
        .unwrap_or_default();
    println!(
        "backed up {app}: {file} ({} tables, {} rows, restored and checked)",
        report.tables, report.rows
    );
    Ok(())
}

/// APP's spec as the store holds it, parsed.
async fn spec(app: &str, target: &Target) -> anyhow::Result<ccd_spec::App> {
    let spec = target
        .store()?
        .get_spec(app)
        .await?
        .with_context(|| format!("{app} has no spec in {}", target.describe()))?;
    ccd_spec::parse_file(app, &spec.path, &spec.bytes)
        .map_err(|e| anyhow::anyhow!("{} is not valid: {}", spec.path, e.join("; ")))
}

async fn rotate(app: &str, service: &str, target: &Target) -> anyhow::Result<()> {
    check_app_name(app)?;
    let (Some(data), Some(secrets)) = (target.local_data(), target.local_secrets()) else {
        bail!(
            "ccd services rotate works on ccd up's data folder (--data DIR); with --config it is not built yet"
        );
    };
    let parsed = spec(app, target).await?;
    let services = ccd_services::LocalServices::new(&data, &secrets);
    let said = services
        .rotate(&parsed, service)
        .await
        .map_err(anyhow::Error::msg)?;
    println!("{app}'s {service}: {said}");
    println!("ccd up rolls {app} out with it; `ccd services {app}` shows when the rotation ends");
    Ok(())
}
