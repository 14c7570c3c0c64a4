//! Pid files: how a supervisor that died (`kill -9`, a crash) lets its
//! successor find and stop the processes it left running.
//!
//! A pid alone is not enough, since the kernel reuses pids: each file also
//! records the process's start time, and a process is only touched while
//! both still match.

use std::collections::HashSet;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};
use tokio::time::{Instant, sleep};
use tracing::{debug, info, warn};

use crate::{lock, proc_stat};

const EXTENSION: &str = "pid";

/// How often a leftover process is checked while it has time to exit.
const POLL_INTERVAL: Duration = Duration::from_millis(50);

#[derive(Debug, Serialize, Deserialize)]
struct PidRecord {
    name: String,
    pid: u32,
    start_time: u64,
    stop_grace_ms: u64,
}

/// The pid files of one supervisor's state directory.
#[derive(Clone, Debug)]
pub(crate) struct PidFiles {
    dir: PathBuf,
    /// Files this supervisor wrote for processes it still runs, so that
    /// `reap_orphans` leaves them alone.
    owned: Arc<Mutex<HashSet<PathBuf>>>,
}

/// The pid file of one running child. Dropping it keeps the file on disk,
/// on purpose: that happens when the supervisor goes away without stopping
/// its children, and the file is what lets the next one find them.
#[derive(Debug)]
pub(crate) struct PidFile {
    path: PathBuf,
    owned: Arc<Mutex<HashSet<PathBuf>>>,
}

impl PidFiles {
    pub(crate) fn new(dir: PathBuf) -> Self {
        Self {
            dir,
            owned: Arc::default(),
        }
    }

    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// Records a child just spawned. Failures are logged, not returned: a
    /// missing pid file only matters if this supervisor dies.
    pub(crate) fn record(&self, name: &str, pid: u32, stop_grace: Duration) -> Option<PidFile> {
        let written = proc_stat::read(pid).and_then(|stat| {
            let record = PidRecord {
                name: name.to_owned(),
                pid,
                start_time: stat.start_time,
                stop_grace_ms: u64::try_from(stop_grace.as_millis()).unwrap_or(u64::MAX),
            };
            // One file per child rather than per name: a child left over
            // from a previous life keeps its file even if the name is
            // started again before anyone reaps it.
            let path = self.dir.join(format!("{name}.{pid}.{EXTENSION}"));
            write_atomically(&path, &serde_json::to_vec(&record)?)?;
            Ok(path)
        });
        match written {
            Ok(path) => {
                lock(&self.owned).insert(path.clone());
                Some(PidFile {
                    path,
                    owned: self.owned.clone(),
                })
            }
            Err(error) => {
                warn!(name, pid, %error, "cannot write pid file; a successor could not reap this process");
                None
            }
        }
    }

    /// Pid files in the directory that this supervisor did not write.
    pub(crate) fn leftovers(&self) -> io::Result<Vec<PathBuf>> {
        let owned = lock(&self.owned).clone();
        let mut leftovers = Vec::new();
        for entry in std::fs::read_dir(&self.dir)? {
            let path = entry?.path();
            if path.extension().is_some_and(|ext| ext == EXTENSION) && !owned.contains(&path) {
                leftovers.push(path);
            }
        }
        Ok(leftovers)
    }
}

impl PidFile {
    pub(crate) fn remove(self) {
        discard(&self.path);
        lock(&self.owned).remove(&self.path);
    }
}

fn write_atomically(path: &Path, contents: &[u8]) -> io::Result<()> {
    // A reader never sees a half-written file: the name ends in `.tmp` until
    // the content is complete.
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, contents)?;
    std::fs::rename(&tmp, path)
}

/// What a recorded pid refers to now.
enum Leftover {
    /// The recorded process, still alive (or a zombie not yet waited for).
    Ours { zombie: bool },
    /// Another process that got the same pid: never to be touched.
    Reused,
    /// No process has that pid.
    Gone,
}

fn identify(pid: u32, start_time: u64) -> Leftover {
    match proc_stat::read(pid) {
        Ok(stat) if stat.start_time == start_time => Leftover::Ours {
            zombie: stat.is_zombie(),
        },
        Ok(_) => Leftover::Reused,
        Err(error) => {
            if error.kind() != io::ErrorKind::NotFound {
                debug!(pid, %error, "cannot read /proc; treating the process as gone");
            }
            Leftover::Gone
        }
    }
}

/// Stops whatever is left of the process recorded in `path` and deletes the
/// file. Returns the process name if something was stopped.
pub(crate) async fn reap(path: PathBuf) -> Option<String> {
    let record = match std::fs::read(&path)
        .map_err(|e| e.to_string())
        .and_then(|bytes| serde_json::from_slice::<PidRecord>(&bytes).map_err(|e| e.to_string()))
    {
        Ok(record) => record,
        Err(error) => {
            warn!(path = %path.display(), %error, "discarding unreadable pid file");
            discard(&path);
            return None;
        }
    };
    let stopped = stop_leftover(&record).await;
    discard(&path);
    stopped.then_some(record.name)
}

async fn stop_leftover(record: &PidRecord) -> bool {
    let PidRecord { name, pid, .. } = record;
    let Ok(pgid) = i32::try_from(*pid).map(Pid::from_raw) else {
        return false;
    };
    match identify(*pid, record.start_time) {
        Leftover::Reused => {
            info!(
                name,
                pid, "pid was reused by another process; leaving it alone"
            );
            return false;
        }
        Leftover::Gone => {
            // The leader is gone, but members of its group may remain. The
            // kernel does not hand out a pid that is still some group's id,
            // so a group with this id can only be the one we started.
            if killpg(pgid, None).is_ok() {
                info!(
                    name,
                    pid, "killing what is left of a process group from a previous supervisor"
                );
                let _ = killpg(pgid, Signal::SIGKILL);
                return true;
            }
            debug!(name, pid, "leftover process already gone");
            return false;
        }
        Leftover::Ours { .. } => {}
    }

    info!(name, pid, "stopping process left by a previous supervisor");
    let _ = killpg(pgid, Signal::SIGTERM);
    // The grace comes from a file: no deadline at all rather than overflow.
    let deadline = Instant::now().checked_add(Duration::from_millis(record.stop_grace_ms));
    while deadline.is_none_or(|deadline| Instant::now() < deadline) {
        sleep(POLL_INTERVAL).await;
        if !matches!(
            identify(*pid, record.start_time),
            Leftover::Ours { zombie: false }
        ) {
            break;
        }
    }
    // Whatever still runs in the group gets SIGKILL, as a container's other
    // processes do when its main one ends. Checked again first: the pid may
    // have been freed and reused while we waited.
    match identify(*pid, record.start_time) {
        Leftover::Ours { .. } => {
            let _ = killpg(pgid, Signal::SIGKILL);
        }
        Leftover::Gone if killpg(pgid, None).is_ok() => {
            let _ = killpg(pgid, Signal::SIGKILL);
        }
        Leftover::Gone | Leftover::Reused => {}
    }
    true
}

fn discard(path: &Path) {
    match std::fs::remove_file(path) {
        Err(error) if error.kind() != io::ErrorKind::NotFound => {
            warn!(path = %path.display(), %error, "cannot remove pid file");
        }
        _ => {}
    }
}
