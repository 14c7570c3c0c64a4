use std::fmt;
use std::os::unix::process::ExitStatusExt;
use std::time::Duration;

use tokio::time::Instant;

use crate::Signal;

/// How a process ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitStatus {
    /// It exited on its own with this code.
    Code(i32),
    /// It was killed by this signal number.
    Signal(i32),
}

impl From<std::process::ExitStatus> for ExitStatus {
    fn from(status: std::process::ExitStatus) -> Self {
        match (status.code(), status.signal()) {
            (Some(code), _) => Self::Code(code),
            (None, Some(signal)) => Self::Signal(signal),
            // `wait` reports only exits and deaths by signal; keep the raw
            // status rather than invent one.
            (None, None) => Self::Code(status.into_raw()),
        }
    }
}

impl fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Code(code) => write!(f, "exit code {code}"),
            Self::Signal(number) => match Signal::try_from(number) {
                Ok(signal) => write!(f, "killed by {signal}"),
                Err(_) => write!(f, "killed by signal {number}"),
            },
        }
    }
}

/// Where a supervised process is in its life.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProcessState {
    /// A back-off has just ended and the process is about to be spawned.
    Starting,
    Running {
        pid: u32,
        since: Instant,
    },
    /// It exited and will be started again at `until`.
    BackingOff {
        until: Instant,
    },
    /// A stop was asked for and is in progress (SIGTERM sent, waiting).
    Stopping,
    /// It was stopped and will not be restarted; the supervisor forgets the
    /// name as soon as `stop` returns.
    Stopped,
}

/// A snapshot of one supervised process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcessStatus {
    pub state: ProcessState,
    /// How many times it was started again after exiting.
    pub restarts: u32,
    /// How its most recent run ended, if one has.
    pub last_exit: Option<ExitStatus>,
}

/// What [`Supervisor::subscribe`](crate::Supervisor::subscribe) reports.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProcessEvent {
    Started {
        name: String,
        pid: u32,
    },
    Exited {
        name: String,
        status: ExitStatus,
    },
    /// Restart number `attempt` will happen after `delay`.
    Restarting {
        name: String,
        attempt: u32,
        delay: Duration,
    },
    /// A restart could not spawn the command; another attempt follows after
    /// the next back-off.
    SpawnFailed {
        name: String,
        error: String,
    },
    /// The process was stopped on request and will not be restarted.
    Stopped {
        name: String,
    },
}
