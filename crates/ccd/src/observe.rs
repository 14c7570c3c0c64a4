//! `ccd events` and `ccd status`: what the controller did, and what it sees.
#![allow(clippy::print_stderr)] // these commands' messages

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use ccd_controller::scale::record::ScalingRecord;

/// Writes to stdout; a reader that went away (`| head`) is not an error.
macro_rules! out {
    ($($arg:tt)*) => {{ let _ = write!(std::io::stdout().lock(), $($arg)*); }};
}
macro_rules! outln {
    ($($arg:tt)*) => {{ let _ = writeln!(std::io::stdout().lock(), $($arg)*); }};
}

#[derive(Debug, clap::Args)]
pub struct EventsArgs {
    /// Only this app's events.
    app: Option<String>,
    /// The data folder `ccd up` uses.
    #[arg(long, default_value = ".ccd")]
    data: PathBuf,
    /// At most this many events.
    #[arg(long, default_value_t = 50)]
    limit: usize,
}

pub fn events(args: EventsArgs) -> ExitCode {
    let path = args.data.join("events.redb");
    let log = match ccd_events::EventLog::open_read_only(&path) {
        Ok(log) => log,
        Err(ccd_events::EventsError::NotFound { .. }) => {
            eprintln!(
                "no events yet: {} does not exist (is `ccd up --data {}` running?)",
                path.display(),
                args.data.display()
            );
            return ExitCode::FAILURE;
        }
        Err(e) => {
            eprintln!("cannot read the events: {e}");
            return ExitCode::FAILURE;
        }
    };
    match log.list(args.app.as_deref(), args.limit) {
        Ok(events) => {
            out!("{}", ccd_events::render_table(&events));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("cannot read the events: {e}");
            ExitCode::FAILURE
        }
    }
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Output {
    Table,
    Yaml,
    Json,
}

#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// Only this app.
    app: Option<String>,
    /// The data folder `ccd up` uses.
    #[arg(long, default_value = ".ccd")]
    data: PathBuf,
    #[arg(short, long, value_enum, default_value = "table")]
    output: Output,
}

/// A status object read back: the few fields the table shows.
struct Row {
    app: String,
    phase: String,
    version: String,
    instances: usize,
    endpoint: String,
    rollout: String,
    text: String,
    /// The scaling reconciler's record (`scaling/<app>.yaml`), for an autoscaled app.
    scaling: Option<ScalingRecord>,
}

fn read_rows(dir: &std::path::Path, only: Option<&str>) -> std::io::Result<Vec<Row>> {
    let mut rows = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let Some(app) = path.file_stem().and_then(|s| s.to_str()).map(str::to_owned) else {
            continue;
        };
        if path.extension().and_then(|e| e.to_str()) != Some("yaml")
            || only.is_some_and(|o| o != app)
        {
            continue;
        }
        let text = std::fs::read_to_string(&path)?;
        let scaling = dir
            .parent()
            .map(|data| data.join("scaling").join(format!("{app}.yaml")))
            .and_then(|p| std::fs::read(p).ok())
            .and_then(|b| ScalingRecord::parse(&b));
        let status = ccd_controller::Status::parse(text.as_bytes()).unwrap_or_default();
        let rollout = status.rollout.as_ref().map_or_else(
            || "-".to_owned(),
            |r| match r.state {
                s if s.is_open() => format!("{} {}", r.to.version, r.step.name),
                s => format!("{} {s:?}", r.to.version),
            },
        );
        rows.push(Row {
            phase: status.phase.as_str().to_owned(),
            version: status
                .revision
                .as_ref()
                .map_or_else(|| "-".to_owned(), |r| r.version.clone()),
            instances: status.instances.len(),
            endpoint: status
                .endpoints
                .first()
                .cloned()
                .unwrap_or_else(|| "-".to_owned()),
            rollout,
            app,
            text,
            scaling,
        });
    }
    rows.sort_by(|a, b| a.app.cmp(&b.app));
    Ok(rows)
}

pub fn status(args: StatusArgs) -> ExitCode {
    let dir = args.data.join("status");
    let rows = match read_rows(&dir, args.app.as_deref()) {
        Ok(rows) => rows,
        Err(e) => {
            eprintln!("cannot read {}: {e}", dir.display());
            return ExitCode::FAILURE;
        }
    };
    if let (Some(app), true) = (&args.app, rows.is_empty()) {
        eprintln!(
            "no status for {app}: is there a spec at {}?",
            args.data
                .join("specs")
                .join(format!("{app}.yaml"))
                .display()
        );
        return ExitCode::FAILURE;
    }
    match args.output {
        Output::Yaml => {
            for (i, r) in rows.iter().enumerate() {
                if i > 0 {
                    outln!("---");
                }
                out!("{}", r.text);
                if let Some(s) = &r.scaling {
                    outln!("---");
                    out!("{}", s.to_yaml(&r.app));
                }
            }
        }
        Output::Json => {
            let items: Vec<serde_json::Value> = rows
                .iter()
                .map(|r| serde_json::json!({"app": r.app, "phase": r.phase, "version": r.version, "instances": r.instances, "endpoint": r.endpoint, "rollout": r.rollout, "scaling": r.scaling}))
                .collect();
            outln!(
                "{}",
                serde_json::to_string_pretty(&items).unwrap_or_default()
            );
        }
        Output::Table => {
            outln!(
                "{:<20} {:<12} {:<12} {:>9}  {:<24} ROLLOUT",
                "APP",
                "PHASE",
                "VERSION",
                "INSTANCES",
                "ENDPOINT"
            );
            for r in &rows {
                outln!(
                    "{:<20} {:<12} {:<12} {:>9}  {:<24} {}",
                    r.app,
                    r.phase,
                    r.version,
                    r.instances,
                    r.endpoint,
                    r.rollout
                );
            }
            for r in rows.iter().filter(|r| r.scaling.is_some()) {
                if let Some(s) = &r.scaling {
                    outln!("{}: scaling: {}", r.app, s.summary());
                }
            }
        }
    }
    ExitCode::SUCCESS
}
