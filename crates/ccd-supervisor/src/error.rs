use std::io;
use std::path::PathBuf;

use crate::Signal;

/// Everything a [`Supervisor`](crate::Supervisor) call can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// `Supervisor::new` was called outside a Tokio runtime; the supervisor
    /// needs one to wait for its children.
    #[error("the supervisor must be created inside a Tokio runtime")]
    NoRuntime,

    #[error("cannot use state directory {path}: {source}")]
    StateDir { path: PathBuf, source: io::Error },

    #[error("invalid process name {name:?}: {reason}")]
    InvalidName { name: String, reason: &'static str },

    #[error("process `{name}` is already running with a different spec")]
    SpecConflict { name: String },

    #[error("process `{name}` is being stopped")]
    Stopping { name: String },

    #[error("cannot open the logs of process `{name}` in {dir}: {source}")]
    LogDir {
        name: String,
        dir: PathBuf,
        source: io::Error,
    },

    /// The command could not be executed at all: not found, not executable,
    /// or its working directory is missing.
    #[error("cannot spawn command `{command}` for process `{name}`: {source}")]
    Spawn {
        name: String,
        command: String,
        source: io::Error,
    },

    #[error("no process named `{name}`")]
    UnknownProcess { name: String },

    /// The process is between two runs (backing off) or being stopped, so
    /// there is nothing to signal.
    #[error("process `{name}` is not running")]
    NotRunning { name: String },

    #[error("cannot send {signal} to process `{name}`: {source}")]
    Signal {
        name: String,
        signal: Signal,
        source: nix::Error,
    },

    /// The task that supervises the process ended without reporting; this
    /// is a bug in the supervisor.
    #[error("the task supervising process `{name}` ended unexpectedly")]
    MonitorGone { name: String },
}
