//! The shipper: every new complete line of the instances of the apps that
//! ask, copied into their hour files; old hour files deleted.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::source;
use super::{HOUR, LogLine, OFFSETS_FILE, Stream, files, state};
use crate::ServiceError;

/// Ships the output of `ccd up`'s instances (`DATA/cloud/instances`) into
/// a logs folder, one call at a time.
#[derive(Debug)]
pub struct Shipper {
    instances: PathBuf,
    logs: PathBuf,
    /// Calls on one shipper wait for each other: each reads and writes the offsets.
    busy: tokio::sync::Mutex<()>,
}

/// What one call did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ShipReport {
    /// Lines shipped, per app (apps with none are left out).
    pub shipped: BTreeMap<String, usize>,
    /// Hour files deleted past their app's retention.
    pub expired: Vec<PathBuf>,
    /// Instance files that could not be read (each logged), tried again next call.
    pub unreadable: Vec<PathBuf>,
}

impl Shipper {
    /// Reads instances under `instances_dir` (`<zone>/<instance>/`), writes
    /// under `logs_dir` (`<app>/<hour>.jsonl` and `.offsets.json`).
    pub fn new(instances_dir: impl Into<PathBuf>, logs_dir: impl Into<PathBuf>) -> Self {
        Shipper {
            instances: instances_dir.into(),
            logs: logs_dir.into(),
            busy: tokio::sync::Mutex::new(()),
        }
    }

    /// Ships what is new for the apps in `asks` (app → retention) at `now`,
    /// and deletes hour files past their app's retention.
    pub async fn ship_once(
        &self,
        asks: &BTreeMap<String, Duration>,
        now: SystemTime,
    ) -> Result<ShipReport, ServiceError> {
        let _one = self.busy.lock().await;
        let (instances, logs, asks) = (self.instances.clone(), self.logs.clone(), asks.clone());
        let logs_for_error = logs.clone();
        tokio::task::spawn_blocking(move || ship(&instances, &logs, &asks, now))
            .await
            .map_err(|e| ServiceError::Io {
                path: logs_for_error,
                source: std::io::Error::other(e),
            })?
    }

    /// `ccd up`'s loop: ships every `every` what the specs ask at the time,
    /// until `stop`, then once more. A failed call is logged and retried.
    pub async fn run(
        self,
        asks: watch::Receiver<BTreeMap<String, Duration>>,
        every: Duration,
        stop: CancellationToken,
    ) {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let stopping = tokio::select! {
                () = stop.cancelled() => true,
                _ = tick.tick() => false,
            };
            let current = asks.borrow().clone();
            match self.ship_once(&current, ccd_clock::wall()).await {
                Ok(report) if !report.shipped.is_empty() => {
                    tracing::debug!(shipped = ?report.shipped, "shipped logs");
                }
                Ok(_) => {}
                Err(error) => tracing::warn!(%error, "log shipping failed; trying again"),
            }
            if stopping {
                break;
            }
        }
    }
}

fn ship(
    instances: &Path,
    logs: &Path,
    asks: &BTreeMap<String, Duration>,
    now: SystemTime,
) -> Result<ShipReport, ServiceError> {
    files::create_dir(logs)?;
    let state_path = logs.join(OFFSETS_FILE);
    let mut state = state::load(&state_path)?;
    let before = state.clone();
    state::recover(logs, &mut state)?;
    for (app, keep) in asks {
        super::check_app(app)?;
        state.retention.insert(app.clone(), keep.as_secs());
    }
    let mut report = ShipReport::default();
    let mut marks = state.marks.clone();
    let mut batches = BTreeMap::new();
    if !asks.is_empty() {
        batches = read_instances(instances, asks, now, &mut marks, &mut report)?;
    }
    batches.retain(|_, bytes| !bytes.is_empty());
    report.shipped.retain(|_, n| *n > 0);
    if !batches.is_empty() {
        let hour = super::hour_file(now).ok_or_else(|| {
            ServiceError::Invalid(format!("the clock reads {now:?}, past what ccd can write"))
        })?;
        for app in batches.keys() {
            files::create_dir(&logs.join(app))?;
            let file = format!("{app}/{hour}");
            let len = files::len(&logs.join(&file))?;
            state.pending.insert(file, len);
        }
        state::save(&state_path, &state)?;
        for (app, bytes) in &batches {
            files::append(&logs.join(app).join(&hour), bytes)?;
        }
        state.pending.clear();
    }
    // A stream whose instance is gone will not be read again.
    marks.retain(|key, _| instance_exists(instances, key));
    state.marks = marks;
    report.expired = expire(logs, &mut state, asks, now)?;
    if state != before {
        state::save(&state_path, &state)?;
    }
    Ok(report)
}

/// Per app, the JSON lines of what its instances wrote since `marks`, which
/// move past them.
fn read_instances(
    instances: &Path,
    asks: &BTreeMap<String, Duration>,
    now: SystemTime,
    marks: &mut BTreeMap<String, source::Mark>,
    report: &mut ShipReport,
) -> Result<BTreeMap<String, Vec<u8>>, ServiceError> {
    let mut batches: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    for (zone, name, dir) in instance_dirs(instances)? {
        let Some(app) = app_of(&dir, report).filter(|app| asks.contains_key(app)) else {
            continue;
        };
        for stream in Stream::ALL {
            let key = format!("{zone}/{name}/{stream}");
            match source::read_new(&dir, stream, marks.get(&key)) {
                Ok(None) => {}
                Ok(Some(source::New { lines, mark })) => {
                    let batch = batches.entry(app.clone()).or_default();
                    for line in &lines {
                        let line = LogLine::from_output(now, &name, stream, line);
                        serde_json::to_writer(&mut *batch, &line)
                            .map_err(|e| ServiceError::Invalid(format!("the clock: {e}")))?;
                        batch.push(b'\n');
                    }
                    *report.shipped.entry(app.clone()).or_default() += lines.len();
                    marks.insert(key, mark);
                }
                Err(error) => {
                    // The error names the file (the rotated one, maybe).
                    tracing::warn!(%error, "cannot read an instance's log; trying again next time");
                    report.unreadable.push(dir.join(stream.file()));
                }
            }
        }
    }
    Ok(batches)
}

/// `(zone, instance, folder)` of every instance folder.
fn instance_dirs(instances: &Path) -> Result<Vec<(String, String, PathBuf)>, ServiceError> {
    let mut found = Vec::new();
    for zone in files::names(instances)?.unwrap_or_default() {
        let zone_dir = instances.join(&zone);
        if !zone_dir.is_dir() {
            continue;
        }
        for name in files::names(&zone_dir)?.unwrap_or_default() {
            let dir = zone_dir.join(&name);
            if dir.is_dir() {
                found.push((zone.clone(), name, dir));
            }
        }
    }
    Ok(found)
}

/// The app the local cloud named beside the instance's logs, if any.
fn app_of(dir: &Path, report: &mut ShipReport) -> Option<String> {
    let file = dir.join(ccd_wire::INSTANCE_APP_FILE);
    match std::fs::read_to_string(&file) {
        Ok(app) => Some(app.trim().to_owned()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(error) => {
            tracing::warn!(file = %file.display(), %error, "cannot read which app an instance runs");
            report.unreadable.push(file);
            None
        }
    }
}

fn instance_exists(instances: &Path, key: &str) -> bool {
    let mut parts = key.split('/');
    match (parts.next(), parts.next()) {
        (Some(zone), Some(name)) => instances.join(zone).join(name).is_dir(),
        _ => false,
    }
}

/// Deletes the hour files whose whole hour is older than their app's
/// retention; forgets an app no spec asks for once its files are all gone.
fn expire(
    logs: &Path,
    state: &mut state::State,
    asks: &BTreeMap<String, Duration>,
    now: SystemTime,
) -> Result<Vec<PathBuf>, ServiceError> {
    let mut expired = Vec::new();
    let mut emptied = Vec::new();
    for (app, keep) in &state.retention {
        let dir = logs.join(app);
        let mut left = 0;
        for name in files::names(&dir)?.unwrap_or_default() {
            let Some(start) = super::hour_start(&name) else {
                continue;
            };
            let old = now
                .duration_since(start + HOUR)
                .is_ok_and(|age| age >= Duration::from_secs(*keep));
            if old {
                let file = dir.join(&name);
                std::fs::remove_file(&file).map_err(files::io_error(&file))?;
                expired.push(file);
            } else {
                left += 1;
            }
        }
        if left == 0 && !asks.contains_key(app) {
            emptied.push(app.clone());
        }
    }
    for app in emptied {
        state.retention.remove(&app);
        // Only when empty: a file of someone else's stays, and so does the folder.
        let _ = std::fs::remove_dir(logs.join(&app));
    }
    Ok(expired)
}
