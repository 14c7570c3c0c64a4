//! Spawning one run of a process and ending it.

use std::io;
use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use tokio::process::{Child, Command};
use tokio::time::{Instant, timeout};
use tracing::{debug, warn};

use crate::logs::{LogCopiers, Logs};
use crate::pid_file::{PidFile, PidFiles};
use crate::spec::{ProcessSpec, expand_arg};
use crate::status::ExitStatus;

/// How long an exited run's remaining output may take to reach the logs.
const LOG_DRAIN_TIMEOUT: Duration = Duration::from_secs(1);

/// The variables a child inherits from the supervisor; everything else comes
/// from the spec, so a VM sees the same environment whoever started the
/// supervisor. `PATH` lets a command given by bare name (`sh`, `python3`) be
/// found, both by the spawn and by the scripts it runs; `HOME` is where
/// shells, language runtimes and tools look for their per-user files, and
/// many fail without it.
const INHERITED_ENV: [&str; 2] = ["PATH", "HOME"];

/// One run of a process: spawned, not yet waited for.
#[derive(Debug)]
pub(crate) struct RunningChild {
    child: Child,
    pid: u32,
    started: Instant,
    pid_file: Option<PidFile>,
    log_copiers: LogCopiers,
}

/// Spawns `spec`, with stdin from /dev/null and its output copied to `logs`.
pub(crate) fn spawn(
    spec: &ProcessSpec,
    logs: &Logs,
    pid_files: &PidFiles,
) -> io::Result<RunningChild> {
    let mut command = Command::new(&spec.command);
    command
        .args(spec.args.iter().map(|arg| expand_arg(arg, &spec.env)))
        .env_clear()
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group, so that a stop reaches whatever the process
        // started, and a Ctrl-C meant for the supervisor's terminal does not
        // hit every VM before the supervisor can shut them down in order.
        .process_group(0)
        // A child must outlive a supervisor that goes away without stopping
        // it (as after `kill -9`), so that dropping works the same way and
        // the successor's `reap_orphans` is what cleans up.
        .kill_on_drop(false);
    for name in INHERITED_ENV
        .into_iter()
        .filter(|name| !spec.env.contains_key(*name))
    {
        if let Some(value) = std::env::var_os(name) {
            command.env(name, value);
        }
    }
    command.envs(&spec.env);
    if let Some(dir) = &spec.working_dir {
        command.current_dir(dir);
    }

    let mut child = command.spawn()?;
    let pid = child
        .id()
        .ok_or_else(|| io::Error::other("spawned child has no pid"))?;
    let log_copiers = logs.attach(&mut child);
    let pid_file = pid_files.record(&spec.name, pid, spec.stop_grace);
    Ok(RunningChild {
        child,
        pid,
        started: Instant::now(),
        pid_file,
        log_copiers,
    })
}

impl RunningChild {
    pub(crate) fn pid(&self) -> u32 {
        self.pid
    }

    pub(crate) fn started(&self) -> Instant {
        self.started
    }

    /// Waits for the process to exit. Cancel safe.
    pub(crate) async fn wait(&mut self) -> io::Result<ExitStatus> {
        self.child.wait().await.map(ExitStatus::from)
    }

    /// Sends `signal` to the main process only, as `docker kill` does. Only
    /// called while the child has not been waited for, so the pid cannot
    /// have been reused.
    pub(crate) fn signal(&self, signal: Signal) -> nix::Result<()> {
        kill(self.nix_pid(), signal)
    }

    /// SIGTERM to the whole group, then SIGKILL if the main process has not
    /// exited within `grace`.
    pub(crate) async fn terminate(&mut self, grace: Duration) -> io::Result<ExitStatus> {
        self.signal_group(Signal::SIGTERM);
        match timeout(grace, self.wait()).await {
            Ok(status) => status,
            Err(_elapsed) => {
                debug!(
                    pid = self.pid,
                    ?grace,
                    "process ignored SIGTERM; sending SIGKILL"
                );
                self.signal_group(Signal::SIGKILL);
                self.wait().await
            }
        }
    }

    /// Cleans up after the main process exited (it must have been waited
    /// for): the rest of its group is killed, as the kernel kills the rest of
    /// a container when its init process ends, so that nothing from this run
    /// holds on to ports or files when the next one starts.
    pub(crate) async fn finish(mut self) {
        // The group id stays reserved while any member lives, and pids are
        // handed out cyclically, so it cannot have been reused in the moment
        // since the main process was waited for.
        self.signal_group(Signal::SIGKILL);
        if let Some(pid_file) = self.pid_file.take() {
            pid_file.remove();
        }
        self.log_copiers.drain(LOG_DRAIN_TIMEOUT).await;
    }

    /// The pid, which is also the process group id.
    fn nix_pid(&self) -> Pid {
        // Pids fit in a pid_t; a failed conversion must not turn into 0 (our
        // own group), so fall back to an id that matches nothing instead.
        Pid::from_raw(i32::try_from(self.pid).unwrap_or(i32::MAX))
    }

    fn signal_group(&self, signal: Signal) {
        match killpg(self.nix_pid(), signal) {
            Ok(()) | Err(nix::errno::Errno::ESRCH) => {}
            Err(error) => warn!(pid = self.pid, %signal, %error, "cannot signal process group"),
        }
    }
}
