//! The task that watches over one supervised name: waits for its process,
//! restarts it with back-off, and carries out stop and signal requests.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::time::{Instant, sleep};
use tracing::{info, warn};

use crate::backoff::Backoff;
use crate::child::{self, RunningChild};
use crate::logs::Logs;
use crate::pid_file::PidFiles;
use crate::status::{ExitStatus, ProcessEvent, ProcessState, ProcessStatus};
use crate::{Error, ProcessSpec, Signal, lock};

/// A request from the [`Supervisor`](crate::Supervisor) handle.
#[derive(Debug)]
pub(crate) enum Control {
    Stop,
    Signal {
        signal: Signal,
        reply: oneshot::Sender<Result<(), Error>>,
    },
}

/// `None` until the monitor has finished a stop; then how the last run
/// ended, `None` inside if the process was backing off.
pub(crate) type StopOutcome = Option<Option<ExitStatus>>;

pub(crate) struct Monitor {
    pub(crate) spec: ProcessSpec,
    pub(crate) logs: Logs,
    pub(crate) pid_files: PidFiles,
    pub(crate) status: Arc<Mutex<ProcessStatus>>,
    pub(crate) events: broadcast::Sender<ProcessEvent>,
    pub(crate) control: mpsc::UnboundedReceiver<Control>,
    pub(crate) stopped: watch::Sender<StopOutcome>,
    /// Removes this name from the supervisor once a stop is complete, even
    /// if whoever asked for the stop is no longer waiting.
    pub(crate) forget: Box<dyn FnOnce() + Send + Sync>,
}

enum RunEnd {
    Exited(Option<ExitStatus>),
    StopRequested,
}

impl Monitor {
    /// Supervises `child`, the first run, which `Supervisor::start` spawned
    /// itself so that it could report a command that cannot be spawned.
    pub(crate) async fn run(mut self, mut child: RunningChild) {
        let mut backoff = Backoff::new();
        loop {
            let status = match self.watch_run(&mut child).await {
                RunEnd::StopRequested => {
                    let status = self.terminate(child).await;
                    return self.finish_stop(status);
                }
                RunEnd::Exited(status) => status,
            };
            let ran_for = child.started().elapsed();
            child.finish().await;
            match status {
                Some(status) => {
                    info!(name = %self.spec.name, %status, ?ran_for, "process exited");
                    self.update(|s| s.last_exit = Some(status));
                    self.emit(ProcessEvent::Exited {
                        name: self.spec.name.clone(),
                        status,
                    });
                }
                None => warn!(name = %self.spec.name, "lost track of how the process exited"),
            }

            let mut delay = backoff.next_delay(ran_for);
            child = loop {
                if !self.back_off(delay).await {
                    return self.finish_stop(None);
                }
                match child::spawn(&self.spec, &self.logs, &self.pid_files) {
                    Ok(child) => break child,
                    Err(error) => {
                        warn!(name = %self.spec.name, command = %self.spec.command, %error, "cannot restart process");
                        self.emit(ProcessEvent::SpawnFailed {
                            name: self.spec.name.clone(),
                            error: error.to_string(),
                        });
                        delay = backoff.next_delay(Duration::ZERO);
                    }
                }
            };
            self.running(&child);
        }
    }

    /// Records that `child` runs and tells subscribers.
    pub(crate) fn running(&self, child: &RunningChild) {
        self.update(|s| {
            s.state = ProcessState::Running {
                pid: child.pid(),
                since: child.started(),
            }
        });
        self.emit(ProcessEvent::Started {
            name: self.spec.name.clone(),
            pid: child.pid(),
        });
    }

    /// Waits for the run to end, answering signal requests meanwhile.
    async fn watch_run(&mut self, child: &mut RunningChild) -> RunEnd {
        loop {
            tokio::select! {
                status = child.wait() => {
                    return RunEnd::Exited(status.map_err(|error| {
                        warn!(name = %self.spec.name, %error, "cannot wait for process");
                    }).ok());
                }
                Some(control) = self.control.recv() => match control {
                    Control::Stop => return RunEnd::StopRequested,
                    Control::Signal { signal, reply } => {
                        let sent = child.signal(signal).map_err(|source| Error::Signal {
                            name: self.spec.name.clone(),
                            signal,
                            source,
                        });
                        let _ = reply.send(sent);
                    }
                },
            }
        }
    }

    /// Sleeps out a back-off before restart `attempt`. False if a stop was
    /// requested meanwhile.
    async fn back_off(&mut self, delay: Duration) -> bool {
        let until = Instant::now() + delay;
        let attempt = lock(&self.status).restarts + 1;
        self.update(|s| s.state = ProcessState::BackingOff { until });
        self.emit(ProcessEvent::Restarting {
            name: self.spec.name.clone(),
            attempt,
            delay,
        });
        let wait = sleep(delay);
        tokio::pin!(wait);
        loop {
            tokio::select! {
                // Requests first: one that arrived during the back-off must
                // not reach the next run.
                biased;
                Some(control) = self.control.recv() => match control {
                    Control::Stop => return false,
                    Control::Signal { reply, .. } => {
                        let _ = reply.send(Err(Error::NotRunning { name: self.spec.name.clone() }));
                    }
                },
                () = &mut wait => break,
            }
        }
        self.update(|s| {
            s.state = ProcessState::Starting;
            s.restarts = attempt;
        });
        self.logs.rotate_if_full().await;
        true
    }

    async fn terminate(&self, mut child: RunningChild) -> Option<ExitStatus> {
        self.update(|s| s.state = ProcessState::Stopping);
        info!(name = %self.spec.name, pid = child.pid(), "stopping process");
        let status = child
            .terminate(self.spec.stop_grace)
            .await
            .map_err(|error| warn!(name = %self.spec.name, %error, "cannot wait for process"))
            .ok();
        child.finish().await;
        if let Some(status) = status {
            self.update(|s| s.last_exit = Some(status));
            self.emit(ProcessEvent::Exited {
                name: self.spec.name.clone(),
                status,
            });
        }
        status
    }

    fn finish_stop(self, status: Option<ExitStatus>) {
        self.update(|s| s.state = ProcessState::Stopped);
        // Forgotten before anyone hears of the stop, so that the name can be
        // started again as soon as `stop` returns.
        let Self {
            spec,
            events,
            stopped,
            forget,
            ..
        } = self;
        forget();
        let _ = events.send(ProcessEvent::Stopped { name: spec.name });
        stopped.send_replace(Some(status));
    }

    fn update(&self, change: impl FnOnce(&mut ProcessStatus)) {
        change(&mut lock(&self.status));
    }

    fn emit(&self, event: ProcessEvent) {
        // An error only means nobody is subscribed.
        let _ = self.events.send(event);
    }
}
