//! `ccd events` and `ccd status`: what the controller did, and what it sees.
#![allow(clippy::print_stderr)] // these commands' messages

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use ccd_controller::Status;
use ccd_controller::scale::record::ScalingRecord;
use ccd_store::{AnyStore, SpecStore as _};

use crate::target::Target;

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
    /// Not used by `ccd events` (a controller's events are in its API: --server).
    #[arg(long, hide = true)]
    config: Option<PathBuf>,
    #[command(flatten)]
    remote: crate::remote::RemoteArgs,
}

pub fn events(args: EventsArgs) -> ExitCode {
    if let Some(config) = &args.config {
        eprintln!(
            "ccd events: --config {}: a controller's events are read through its API: --server URL --token-file FILE",
            config.display()
        );
        return ExitCode::FAILURE;
    }
    match args.remote.remote() {
        Ok(Some(remote)) => return remote_events(&remote, &args),
        Ok(None) => {}
        Err(e) => {
            eprintln!("ccd events: {e:#}");
            return ExitCode::FAILURE;
        }
    }
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

/// `ccd events --server`: the newest events, through the API.
fn remote_events(remote: &crate::remote::Remote, args: &EventsArgs) -> ExitCode {
    crate::logging::init();
    let result = crate::logging::block_on(async {
        let mut path = format!("/v1/events?limit={}", args.limit.clamp(1, 1000));
        if let Some(app) = &args.app {
            ccd_store::check_app_name(app)?;
            path.push_str(&format!("&app={app}"));
        }
        let answer = remote.get(&path).await?;
        let events: Vec<ccd_events::Event> = serde_json::from_value(answer["events"].clone())
            .with_context(|| {
                format!("{} answered events this ccd cannot read", remote.describe())
            })?;
        anyhow::Ok(events)
    });
    match result {
        Ok(events) => {
            out!("{}", ccd_events::render_table(&events));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("ccd events: {e:#}");
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
    #[command(flatten)]
    target: Target,
    #[command(flatten)]
    remote: crate::remote::RemoteArgs,
    #[arg(short, long, value_enum, default_value = "table")]
    output: Output,
}

/// What a row shows for a status that cannot be read.
const UNREADABLE: &str = "Unreadable";
/// Status reads in flight at once (a bucket pays a round trip for each).
const PARALLEL_READS: usize = 8;

/// A status object read back: the few fields the table shows.
struct Row {
    app: String,
    phase: String,
    version: String,
    instances: usize,
    endpoint: String,
    rollout: String,
    /// The commit the spec came from (`ccd sync`), and its file in the repository.
    source: Option<ccd_controller::Origin>,
    text: String,
    /// The scaling reconciler's record (`scaling/<app>.yaml`), for an autoscaled app.
    scaling: Option<ScalingRecord>,
    /// Why the status (or the scaling record) could not be read: the object and the fix.
    problems: Vec<String>,
}

impl Row {
    fn unreadable(app: String, problem: String) -> Self {
        Self {
            app,
            phase: UNREADABLE.to_owned(),
            version: "-".to_owned(),
            instances: 0,
            endpoint: "-".to_owned(),
            rollout: "-".to_owned(),
            source: None,
            text: String::new(),
            scaling: None,
            problems: vec![problem],
        }
    }

    fn of(app: String, text: String, status: &Status) -> Self {
        let rollout = status.rollout.as_ref().map_or_else(
            || "-".to_owned(),
            |r| match r.state {
                s if s.is_open() => format!("{} {}", r.to.version, r.step.name),
                s => format!("{} {s:?}", r.to.version),
            },
        );
        Self {
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
            source: status.source.clone(),
            app,
            text,
            scaling: None,
            problems: Vec::new(),
        }
    }
}

/// One app's row; `None` when it has no status (gone since the listing, or never written).
async fn read_row(store: &AnyStore, app: String) -> Option<Row> {
    let (status, scaling) = tokio::join!(store.read_status(&app), store.read_scaling(&app));
    let object = |dir: &str| format!("{}/{dir}/{app}.yaml", store.location());
    let mut row = match status {
        Ok(None) => return None,
        // The error names the object.
        Err(e) => Row::unreadable(app.clone(), format!("{e}; {}", store_hint(store))),
        Ok(Some(bytes)) => {
            let text = String::from_utf8_lossy(&bytes).into_owned();
            match Status::read(&bytes) {
                Ok(status) => Row::of(app.clone(), text, &status),
                Err(why) => Row::unreadable(
                    app.clone(),
                    format!(
                        "{} is not a status this ccd can read ({why}): if it was edited by hand, \
                         the controller writes it anew on its next pass over {app}; if a newer ccd \
                         wrote it, use that ccd",
                        object("status")
                    ),
                ),
            }
        }
    };
    match scaling {
        Ok(None) => {}
        Ok(Some(bytes)) => match ScalingRecord::read(&bytes) {
            Ok(record) => row.scaling = Some(record),
            Err(why) => row.problems.push(format!(
                "{} is not a scaling record this ccd can read ({why}): the scaling reconciler \
                 writes it anew with its next decision",
                object("scaling")
            )),
        },
        Err(e) => row.problems.push(format!("{e}; {}", store_hint(store))),
    }
    Some(row)
}

/// What to check when the store cannot be read.
fn store_hint(store: &AnyStore) -> &'static str {
    match store {
        AnyStore::Folder(_) => "check that the folder is there and readable",
        AnyStore::Bucket(_) => {
            "check that the bucket exists and that your credentials may read it \
             (`gcloud auth application-default login`, or GOOGLE_APPLICATION_CREDENTIALS; \
             STORAGE_EMULATOR_HOST for an emulator)"
        }
    }
}

/// The rows of `only`, or of every app with a status, sorted by app.
async fn read_rows(store: Arc<AnyStore>, only: Option<&str>) -> anyhow::Result<Vec<Row>> {
    let apps = match only {
        Some(app) => vec![app.to_owned()],
        None => store
            .list_statuses()
            .await
            .with_context(|| store_hint(&store))?,
    };
    let limit = Arc::new(tokio::sync::Semaphore::new(PARALLEL_READS));
    let mut reads = tokio::task::JoinSet::new();
    for app in apps {
        let (store, limit) = (store.clone(), limit.clone());
        reads.spawn(async move {
            let _permit = limit.acquire_owned().await;
            read_row(&store, app).await
        });
    }
    let mut rows = Vec::new();
    while let Some(read) = reads.join_next().await {
        rows.extend(read.context("a status read stopped")?);
    }
    rows.sort_by(|a, b| a.app.cmp(&b.app));
    Ok(rows)
}

/// The rows of `only`, or of every app, through a controller's API.
async fn remote_rows(
    remote: &crate::remote::Remote,
    only: Option<&str>,
) -> anyhow::Result<Vec<Row>> {
    let mut apps = Vec::new();
    match only {
        Some(app) => apps.push(app.to_owned()),
        None => {
            let mut after = String::new();
            loop {
                let page = remote
                    .get(&format!("/v1/apps?limit=500&after={after}"))
                    .await?;
                for row in page["apps"].as_array().into_iter().flatten() {
                    apps.extend(row["name"].as_str().map(str::to_owned));
                }
                match page["next"].as_str() {
                    Some(next) => after = next.to_owned(),
                    None => break,
                }
            }
        }
    }
    let mut rows = Vec::new();
    for app in apps {
        let detail = remote.get(&format!("/v1/apps/{app}")).await?;
        if detail["status"].is_null() {
            continue;
        }
        match serde_json::from_value::<Status>(detail["status"].clone()) {
            Ok(status) => rows.push(Row::of(app, status.to_yaml(), &status)),
            Err(e) => rows.push(Row::unreadable(
                app,
                format!(
                    "{} answered a status this ccd cannot read: {e}",
                    remote.describe()
                ),
            )),
        }
    }
    if let (Some(app), true) = (only, rows.is_empty()) {
        anyhow::bail!(
            "no status for {app} at {}: is there a spec for it?",
            remote.describe()
        );
    }
    Ok(rows)
}

pub fn status(args: StatusArgs) -> ExitCode {
    crate::logging::init();
    let result = crate::logging::block_on(async {
        if let Some(app) = &args.app {
            // Before any read: a name the store refuses is the user's to fix, not a row.
            ccd_store::check_app_name(app)?;
        }
        if let Some(remote) = args.remote.remote()? {
            return remote_rows(&remote, args.app.as_deref()).await;
        }
        let store = Arc::new(args.target.store()?);
        let rows = read_rows(store.clone(), args.app.as_deref()).await?;
        if let (Some(app), true) = (&args.app, rows.is_empty()) {
            anyhow::bail!(
                "no status for {app} in {}: is there a spec {}/specs/{app}.yaml, and is the controller ({}) running?",
                store.location(),
                store.location(),
                args.target.describe()
            );
        }
        Ok(rows)
    });
    let rows = match result {
        Ok(rows) => rows,
        Err(e) => {
            eprintln!("ccd status: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    print_rows(&rows, args.output);
    let mut failed = false;
    for r in &rows {
        for problem in &r.problems {
            eprintln!("ccd status: {}: {problem}", r.app);
            failed = true;
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn print_rows(rows: &[Row], output: Output) {
    match output {
        Output::Yaml => {
            // A status that cannot be read has no document here; stderr says why.
            let readable = rows.iter().filter(|r| r.phase != UNREADABLE);
            for (i, r) in readable.enumerate() {
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
                .map(|r| {
                    let mut item = serde_json::json!({"app": r.app, "phase": r.phase, "version": r.version, "instances": r.instances, "endpoint": r.endpoint, "rollout": r.rollout, "source": r.source, "scaling": r.scaling});
                    if !r.problems.is_empty() {
                        item["problems"] = serde_json::json!(r.problems);
                    }
                    item
                })
                .collect();
            outln!(
                "{}",
                serde_json::to_string_pretty(&items).unwrap_or_default()
            );
        }
        Output::Table => {
            outln!(
                "{:<20} {:<12} {:<12} {:>9}  {:<24} {:<12} ROLLOUT",
                "APP",
                "PHASE",
                "VERSION",
                "INSTANCES",
                "ENDPOINT",
                "COMMIT"
            );
            for r in rows {
                // Twelve characters name a commit in any repository of a sane size.
                let commit = r
                    .source
                    .as_ref()
                    .map_or("-", |s| s.commit.get(..12).unwrap_or(&s.commit));
                outln!(
                    "{:<20} {:<12} {:<12} {:>9}  {:<24} {:<12} {}",
                    r.app,
                    r.phase,
                    r.version,
                    r.instances,
                    r.endpoint,
                    commit,
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
}
