//! Runs the local cloud's VM instances as local processes.
//!
//! A [`Supervisor`] runs named processes the way a VM runs a container with
//! restart policy Always: it restarts a process whenever it exits, with a
//! back-off, until asked to stop; it appends the process's output to size
//! capped log files; and it keeps a pid file per process, so that a
//! supervisor started after its predecessor was killed can stop whatever that
//! one left running ([`Supervisor::reap_orphans`]).
//!
//! A process's output reaches its log files through pipes read by the
//! supervisor. So a process left behind by a supervisor that died has lost
//! its stdout and stderr: its next write fails (SIGPIPE, or EPIPE if it
//! ignores that), which usually ends it before a successor reaps it.
//!
//! Linux only: it relies on `/proc` and process groups.

mod backoff;
mod child;
mod error;
mod logs;
mod monitor;
mod pid_file;
mod proc_stat;
mod spec;
mod status;
mod supervisor;

pub use error::Error;
pub use logs::DEFAULT_MAX_LOG_BYTES;
pub use nix::sys::signal::Signal;
pub use spec::ProcessSpec;
pub use status::{ExitStatus, ProcessEvent, ProcessState, ProcessStatus};
pub use supervisor::Supervisor;

/// Locks a mutex whose data stays consistent even if a holder panicked
/// (every critical section here is a plain field update).
fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
