use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::runtime::Handle;
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::task::{AbortHandle, JoinSet};
use tracing::{info, warn};

use crate::child;
use crate::logs::{DEFAULT_MAX_LOG_BYTES, Logs};
use crate::monitor::{Control, Monitor, StopOutcome};
use crate::pid_file::{self, PidFiles};
use crate::spec::validate_name;
use crate::status::{ExitStatus, ProcessEvent, ProcessState, ProcessStatus};
use crate::{Error, ProcessSpec, Signal, lock};

/// Events kept for a subscriber that falls behind.
const EVENT_CAPACITY: usize = 1024;

/// Runs named processes with restart policy Always, the way a VM runs its
/// container. Cheap to clone: clones share the same processes.
///
/// Dropping the last clone without [`stop_all`](Self::stop_all) leaves the
/// processes running unsupervised, exactly as if the supervisor had been
/// killed; the next supervisor over the same state directory stops them with
/// [`reap_orphans`](Self::reap_orphans).
#[derive(Clone, Debug)]
pub struct Supervisor {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    runtime: Handle,
    pid_files: PidFiles,
    max_log_bytes: u64,
    processes: Registry,
    events: broadcast::Sender<ProcessEvent>,
    next_id: AtomicU64,
}

type Registry = Arc<Mutex<HashMap<String, Arc<Managed>>>>;

/// One supervised name, as seen from the handle.
#[derive(Debug)]
struct Managed {
    /// Tells this registration from a later one of the same name.
    id: u64,
    spec: ProcessSpec,
    status: Arc<Mutex<ProcessStatus>>,
    control: mpsc::UnboundedSender<Control>,
    stopped: watch::Receiver<StopOutcome>,
    stop_requested: AtomicBool,
    monitor: AbortHandle,
}

impl Supervisor {
    /// A supervisor keeping its pid files in `state_dir` (created as
    /// needed), with log files rotated past 10 MiB. Must be called inside a
    /// Tokio runtime, which then runs the supervision.
    pub fn new(state_dir: PathBuf) -> Result<Self, Error> {
        Self::with_max_log_bytes(state_dir, DEFAULT_MAX_LOG_BYTES)
    }

    /// Like [`new`](Self::new), rotating each log file once it reaches
    /// `max_log_bytes`.
    pub fn with_max_log_bytes(state_dir: PathBuf, max_log_bytes: u64) -> Result<Self, Error> {
        let runtime = Handle::try_current().map_err(|_| Error::NoRuntime)?;
        std::fs::create_dir_all(&state_dir).map_err(|source| Error::StateDir {
            path: state_dir.clone(),
            source,
        })?;
        Ok(Self {
            inner: Arc::new(Inner {
                runtime,
                pid_files: PidFiles::new(state_dir),
                max_log_bytes,
                processes: Registry::default(),
                events: broadcast::channel(EVENT_CAPACITY).0,
                next_id: AtomicU64::new(0),
            }),
        })
    }

    /// Starts supervising `spec`, spawning it right away.
    ///
    /// Idempotent: starting a name that runs with an identical spec does
    /// nothing, and with a different spec is an error. A command that cannot
    /// be spawned is an error here; once the process has started, the same
    /// failure on a restart is treated like a crash and retried.
    ///
    /// The child's environment is exactly `spec.env` plus `PATH` and `HOME`
    /// taken from the supervisor unless `spec.env` sets them: nothing of the
    /// supervisor's own configuration leaks into a VM, but bare command names
    /// resolve and programs find a home directory.
    pub fn start(&self, spec: ProcessSpec) -> Result<(), Error> {
        validate_name(&spec.name)?;
        let mut processes = lock(&self.inner.processes);
        if let Some(existing) = processes.get(&spec.name) {
            return if existing.stop_requested.load(Ordering::Acquire) {
                Err(Error::Stopping { name: spec.name })
            } else if existing.spec == spec {
                Ok(())
            } else {
                Err(Error::SpecConflict { name: spec.name })
            };
        }

        // Spawning registers the child with the runtime's process driver.
        let _runtime = self.inner.runtime.enter();
        let logs = Logs::open(&spec.log_dir, self.inner.max_log_bytes).map_err(|source| {
            Error::LogDir {
                name: spec.name.clone(),
                dir: spec.log_dir.clone(),
                source,
            }
        })?;
        let first_run =
            child::spawn(&spec, &logs, &self.inner.pid_files).map_err(|source| Error::Spawn {
                name: spec.name.clone(),
                command: spec.command.clone(),
                source,
            })?;
        info!(name = %spec.name, pid = first_run.pid(), command = %spec.command, "started process");

        let status = Arc::new(Mutex::new(ProcessStatus {
            state: ProcessState::Starting,
            restarts: 0,
            last_exit: None,
        }));
        let (control, control_rx) = mpsc::unbounded_channel();
        let (stopped_tx, stopped) = watch::channel(None);
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let forget = {
            let registry = self.inner.processes.clone();
            let name = spec.name.clone();
            Box::new(move || {
                let mut processes = lock(&registry);
                if processes.get(&name).is_some_and(|managed| managed.id == id) {
                    processes.remove(&name);
                }
            })
        };
        let monitor = Monitor {
            spec: spec.clone(),
            logs,
            pid_files: self.inner.pid_files.clone(),
            status: status.clone(),
            events: self.inner.events.clone(),
            control: control_rx,
            stopped: stopped_tx,
            forget,
        };
        // Reported before the monitor runs, so that subscribers see Started
        // before anything that follows it.
        monitor.running(&first_run);
        let monitor = self.inner.runtime.spawn(monitor.run(first_run));
        processes.insert(
            spec.name.clone(),
            Arc::new(Managed {
                id,
                spec,
                status,
                control,
                stopped,
                stop_requested: AtomicBool::new(false),
                monitor: monitor.abort_handle(),
            }),
        );
        Ok(())
    }

    /// Stops `name`: SIGTERM to its process group, SIGKILL once
    /// `stop_grace` has passed, then no more restarts and the name is
    /// forgotten. Returns how the process ended, or `None` if it was between
    /// two runs. The stop completes even if this future is dropped.
    pub async fn stop(&self, name: &str) -> Result<Option<ExitStatus>, Error> {
        let managed = self.request_stop(name)?;
        stopped(name, &managed).await
    }

    /// Stops every process, all at once, for shutdown. Returns how each
    /// ended, by name.
    pub async fn stop_all(&self) -> Vec<(String, Option<ExitStatus>)> {
        let requested: Vec<_> = self
            .names()
            .into_iter()
            .filter_map(|name| Some((self.request_stop(&name).ok()?, name)))
            .collect();
        // Every monitor is already stopping its process; this only collects.
        let mut ended = Vec::with_capacity(requested.len());
        for (managed, name) in requested {
            match stopped(&name, &managed).await {
                Ok(status) => ended.push((name, status)),
                Err(error) => warn!(%error, "stop failed"),
            }
        }
        ended
    }

    /// Sends `signal` to the main process of `name`, for tests and fault
    /// injection. A process that exits from it is restarted as after any
    /// other exit; SIGKILL is a crash on demand.
    pub async fn signal(&self, name: &str, signal: Signal) -> Result<(), Error> {
        let managed = self.managed(name)?;
        let not_running = || Error::NotRunning {
            name: name.to_owned(),
        };
        let (reply, answer) = oneshot::channel();
        // The monitor drops requests once it has begun to stop the process.
        managed
            .control
            .send(Control::Signal { signal, reply })
            .map_err(|_| not_running())?;
        answer.await.map_err(|_| not_running())?
    }

    /// A snapshot of `name`, if supervised.
    pub fn status(&self, name: &str) -> Option<ProcessStatus> {
        let managed = lock(&self.inner.processes).get(name)?.clone();
        let status = lock(&managed.status).clone();
        Some(status)
    }

    /// The supervised names, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<_> = lock(&self.inner.processes).keys().cloned().collect();
        names.sort();
        names
    }

    /// Events from now on, from every supervised process.
    pub fn subscribe(&self) -> broadcast::Receiver<ProcessEvent> {
        self.inner.events.subscribe()
    }

    /// Stops the processes that a previous supervisor over the same state
    /// directory left running (it was killed or dropped without stopping
    /// them), and forgets them. A recorded pid now used by an unrelated
    /// process, as told by its start time, is left alone. Processes of this
    /// supervisor are never touched. Returns the names of the processes
    /// stopped.
    pub async fn reap_orphans(&self) -> Result<Vec<String>, Error> {
        let leftovers = self
            .inner
            .pid_files
            .leftovers()
            .map_err(|source| Error::StateDir {
                path: self.inner.pid_files.dir().to_owned(),
                source,
            })?;
        // In parallel: each may wait out its own stop grace.
        let mut reaping = JoinSet::new();
        for path in leftovers {
            reaping.spawn_on(pid_file::reap(path), &self.inner.runtime);
        }
        let mut reaped = Vec::new();
        while let Some(result) = reaping.join_next().await {
            match result {
                Ok(Some(name)) => reaped.push(name),
                Ok(None) => {}
                Err(error) => warn!(%error, "reaping a leftover process failed"),
            }
        }
        reaped.sort();
        Ok(reaped)
    }

    fn managed(&self, name: &str) -> Result<Arc<Managed>, Error> {
        lock(&self.inner.processes)
            .get(name)
            .cloned()
            .ok_or_else(|| Error::UnknownProcess {
                name: name.to_owned(),
            })
    }

    fn request_stop(&self, name: &str) -> Result<Arc<Managed>, Error> {
        let managed = self.managed(name)?;
        managed.stop_requested.store(true, Ordering::Release);
        // Fails only if the monitor is gone, which `stopped` reports.
        let _ = managed.control.send(Control::Stop);
        Ok(managed)
    }
}

/// Waits for a requested stop to complete; the monitor has then forgotten
/// the name.
async fn stopped(name: &str, managed: &Managed) -> Result<Option<ExitStatus>, Error> {
    let mut stopped = managed.stopped.clone();
    match stopped
        .wait_for(Option::is_some)
        .await
        .map(|outcome| *outcome)
    {
        Ok(Some(status)) => Ok(status),
        Ok(None) | Err(_) => Err(Error::MonitorGone {
            name: name.to_owned(),
        }),
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // The monitors end with the supervisor; their processes do not (see
        // `Supervisor`).
        let processes = lock(&self.processes);
        for managed in processes.values() {
            managed.monitor.abort();
        }
    }
}
