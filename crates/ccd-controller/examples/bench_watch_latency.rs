//! Watch latency of the controller with the folder store: how long from a
//! spec file being written until the reconcile of that very spec version
//! starts.
//!
//! `bench_watch_latency [WRITES] [EXISTING]`: runs the real watch path in
//! this process (`ccd_store::FolderStore` over a temporary folder, its
//! inotify change hints, `ccd_controller::SpecSource`, and
//! `ccd_runtime::Controller` with the runtime's default configuration) with
//! a reconciler that only records when each reconcile starts. EXISTING apps
//! (default 100) are in the folder and reconciled before the measurement;
//! then WRITES spec files (default 300) are written one at a time with
//! `std::fs::write`, a random 5–50 ms apart: half new apps, half a new
//! `version` of an existing one. A write whose version is not reconciled
//! within 5 s counts as lost: the figures say so and the run fails.
//! `BENCH_SEED` fixes the random choices. Run by `make bench`
//! (tests/bench/controller.sh).
#![allow(clippy::print_stdout, clippy::print_stderr)] // a benchmark reports on stdout

use std::collections::HashMap;
use std::convert::Infallible;
use std::path::Path;
use std::process::ExitCode;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::time::Instant;

use ccd_controller::{Desired, SpecSource};
use ccd_runtime::{Action, Config, Controller, Reconciler};
use ccd_store::FolderStore;

type Fallible<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// A valid spec; each write changes its name and version.
const TEMPLATE: &str = include_str!("../../../specs/examples/hello.yaml");
/// A write not reconciled within this long is lost.
const DEADLINE: Duration = Duration::from_secs(5);
/// The goal for the 99th percentile.
const GOAL_P99: Duration = Duration::from_millis(200);

/// When the reconcile of each (app, spec `version`) first started, and what
/// else the reconciler saw.
#[derive(Debug, Default)]
struct Seen {
    started: HashMap<(String, String), Instant>,
    reconciles: u64,
    /// Reconciles that saw an invalid spec (e.g. a file read half-written).
    invalid: Vec<String>,
    /// Reconciles of an app that is gone (none is ever deleted here).
    gone: u64,
}

#[derive(Debug, Clone, Default)]
struct Recorder {
    seen: Arc<Mutex<Seen>>,
}

impl Recorder {
    fn seen(&self) -> std::sync::MutexGuard<'_, Seen> {
        self.seen.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn has(&self, app: &str, version: &str) -> bool {
        self.seen()
            .started
            .contains_key(&(app.to_owned(), version.to_owned()))
    }
}

impl Reconciler<Desired> for Recorder {
    type Error = Infallible;

    async fn reconcile(
        &self,
        key: &str,
        object: Option<Arc<Desired>>,
    ) -> Result<Action, Infallible> {
        let now = Instant::now();
        let mut seen = self.seen();
        seen.reconciles += 1;
        match object.as_deref() {
            Some(Desired::Valid { app, .. }) => {
                seen.started
                    .entry((key.to_owned(), app.spec.version.clone()))
                    .or_insert(now);
            }
            Some(Desired::Invalid { problems, .. }) => {
                let first = problems.first().map_or("", String::as_str);
                seen.invalid.push(format!("{key}: {first}"));
            }
            None => seen.gone += 1,
        }
        Ok(Action::AwaitChange)
    }
}

/// xorshift64*: enough randomness for pauses and choices, reproducible by seed.
#[derive(Debug)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn spec(app: &str, version: &str) -> String {
    TEMPLATE
        .replacen("  name: hello\n", &format!("  name: {app}\n"), 1)
        .replacen("  version: 1.2.0\n", &format!("  version: {version}\n"), 1)
}

fn write_spec(specs: &Path, app: &str, version: &str) -> Fallible<()> {
    let path = specs.join(format!("{app}.yaml"));
    std::fs::write(&path, spec(app, version))
        .map_err(|e| format!("cannot write {}: {e}", path.display()).into())
}

/// One measured write.
#[derive(Debug)]
struct Write {
    app: String,
    version: String,
    new_app: bool,
    at: Instant,
}

/// Removed when dropped.
#[derive(Debug)]
struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    // Nearest rank.
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[tokio::main]
async fn main() -> Fallible<ExitCode> {
    let args: Vec<String> = std::env::args().collect();
    let writes: usize = args.get(1).map_or(Ok(300), |a| a.parse())?;
    let existing: usize = args.get(2).map_or(Ok(100), |a| a.parse())?;
    if writes < 2 || existing < 1 {
        return Err("usage: bench_watch_latency [WRITES >= 2] [EXISTING >= 1]".into());
    }
    let seed = match std::env::var("BENCH_SEED") {
        Ok(s) => s.parse().map_err(|_| "BENCH_SEED must be a number")?,
        Err(_) => ccd_clock::wall()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_nanos() as u64,
    };
    let mut rng = Rng(seed | 1);

    // The template must be valid and must change where we change it.
    let probe = spec("probe-app", "9.9.9");
    let app =
        ccd_spec::parse(&probe).map_err(|p| format!("the spec template is not valid: {p:?}"))?;
    if app.metadata.name != "probe-app" || app.spec.version != "9.9.9" {
        return Err(
            "specs/examples/hello.yaml no longer has `  name: hello` and `  version: 1.2.0` lines"
                .into(),
        );
    }

    let dir = TempDir(std::env::temp_dir().join(format!("ccd-bench-watch-{}", std::process::id())));
    let _ = std::fs::remove_dir_all(&dir.0);
    let specs = dir.0.join("specs");
    std::fs::create_dir_all(&specs)?;
    let mut apps: Vec<String> = Vec::new();
    let mut latest: HashMap<String, String> = HashMap::new();
    for i in 0..existing {
        let app = format!("app-{i:05}");
        write_spec(&specs, &app, "1.0.0")?;
        latest.insert(app.clone(), "1.0.0".to_owned());
        apps.push(app);
    }

    let store = Arc::new(FolderStore::new(&dir.0)?);
    let recorder = Recorder::default();
    let config = Config {
        name: "bench-watch".to_owned(),
        ..Config::default()
    };
    let controller = Controller::new(SpecSource::new(store), recorder.clone(), config);
    let metrics = controller.metrics();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(controller.run(stopped));

    // The existing apps are listed and reconciled first: the cache is full
    // and the controller idle when the measurement starts.
    let warm = Instant::now();
    while latest.iter().any(|(app, v)| !recorder.has(app, v)) {
        if warm.elapsed() > Duration::from_secs(30) {
            return Err(format!(
                "the {existing} existing apps were not all reconciled within 30 s"
            )
            .into());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let warm_up = warm.elapsed();
    tokio::time::sleep(Duration::from_millis(200)).await;

    // Half new apps, half changes, in random order.
    let mut kinds: Vec<bool> = (0..writes).map(|i| i < writes / 2).collect();
    for i in (1..kinds.len()).rev() {
        kinds.swap(i, rng.below(i + 1));
    }
    let mut done: Vec<Write> = Vec::with_capacity(writes);
    let mut next_new = existing;
    let mut busy_changes = 0;
    for (i, new_app) in kinds.into_iter().enumerate() {
        let version = format!("2.0.{i}");
        let app = if new_app {
            let app = format!("app-{next_new:05}");
            next_new += 1;
            apps.push(app.clone());
            app
        } else {
            // An app whose last write was already reconciled, so that a
            // pending version is never replaced before it is seen (the
            // controller rightly reconciles only the newest).
            let mut pick = apps[rng.below(apps.len())].clone();
            for _ in 0..apps.len() {
                if recorder.has(&pick, &latest[&pick]) {
                    break;
                }
                pick = apps[rng.below(apps.len())].clone();
            }
            if !recorder.has(&pick, &latest[&pick]) {
                busy_changes += 1;
            }
            pick
        };
        let at = Instant::now();
        write_spec(&specs, &app, &version)?;
        latest.insert(app.clone(), version.clone());
        done.push(Write {
            app,
            version,
            new_app,
            at,
        });
        tokio::time::sleep(Duration::from_millis(5 + rng.below(46) as u64)).await;
    }

    // Every write gets its full deadline.
    let last = done.last().map_or_else(Instant::now, |w| w.at);
    while done.iter().any(|w| !recorder.has(&w.app, &w.version)) && last.elapsed() < DEADLINE {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let _ = stop.send(());
    running.await?;

    let seen = recorder.seen();
    let mut latencies = Vec::with_capacity(done.len());
    let mut lost = Vec::new();
    for w in &done {
        match seen.started.get(&(w.app.clone(), w.version.clone())) {
            Some(start) if start.saturating_duration_since(w.at) <= DEADLINE => {
                latencies.push(start.saturating_duration_since(w.at));
            }
            Some(start) => lost.push(format!(
                "{} version {} ({}) reconciled only after {:.1} s",
                w.app,
                w.version,
                if w.new_app { "new app" } else { "change" },
                start.saturating_duration_since(w.at).as_secs_f64()
            )),
            None => lost.push(format!(
                "{} version {} ({}) never reconciled",
                w.app,
                w.version,
                if w.new_app { "new app" } else { "change" }
            )),
        }
    }
    latencies.sort();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let new_apps = done.iter().filter(|w| w.new_app).count();
    println!(
        "controller watch latency: folder store (inotify), {} spec writes ({} new apps, {} changes) onto {existing} existing apps, 5-50 ms apart, {cores} cores, seed {seed}",
        done.len(),
        new_apps,
        done.len() - new_apps,
    );
    println!(
        "  existing apps listed and reconciled: {:.0} ms",
        ms(warm_up)
    );
    if let (Some(min), Some(max)) = (latencies.first(), latencies.last()) {
        let p50 = percentile(&latencies, 0.50);
        let p99 = percentile(&latencies, 0.99);
        println!(
            "  spec write -> reconcile start: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms (min {:.1} ms) over {} writes  (goal: p99 under {} ms)",
            ms(p50),
            ms(p99),
            ms(*max),
            ms(*min),
            latencies.len(),
            GOAL_P99.as_millis()
        );
        println!(
            "  goal {}",
            if lost.is_empty() && p99 < GOAL_P99 {
                "met"
            } else {
                "missed"
            }
        );
    }
    let m = metrics.snapshot();
    println!(
        "  reconciles: {} ({} of an invalid spec, {} of a gone app); controller counted {} ok, {} errors",
        seen.reconciles,
        seen.invalid.len(),
        seen.gone,
        m.reconciles_ok,
        m.reconciles_error
    );
    for invalid in seen.invalid.iter().take(3) {
        println!("    invalid: {invalid}");
    }
    if busy_changes > 0 {
        println!(
            "  note: {busy_changes} changes went to an app whose previous write was not reconciled yet"
        );
    }
    if !lost.is_empty() {
        println!(
            "  FAILED: {} of {} writes not reconciled within {} s:",
            lost.len(),
            done.len(),
            DEADLINE.as_secs()
        );
        for l in lost.iter().take(10) {
            println!("    {l}");
        }
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}
