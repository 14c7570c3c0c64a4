//! A process's `stdout.log` and `stderr.log`, with a size cap.
//!
//! The child writes into pipes and the supervisor appends what it reads to
//! the files, rather than handing the child the files themselves: a child
//! holding the file would keep writing into `stdout.log.1` after a rotation,
//! so the cap could only be enforced between runs. The price: a process
//! writing faster than the disk takes it waits, as it would for a terminal.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::fs::File;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::sync::Mutex;
use tokio::task::JoinHandle;
use tracing::warn;

/// Default size past which a log file is rotated.
pub const DEFAULT_MAX_LOG_BYTES: u64 = 10 * 1024 * 1024;

/// The two log files of one supervised name, shared by all of its runs so
/// that a run's last lines and the next run's first ones never race over a
/// rotation.
#[derive(Clone, Debug)]
pub(crate) struct Logs {
    stdout: Arc<Mutex<LogFile>>,
    stderr: Arc<Mutex<LogFile>>,
}

impl Logs {
    /// Creates `dir` as needed and opens both files, rotating one that is
    /// already over the cap.
    pub(crate) fn open(dir: &Path, max_bytes: u64) -> io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let open = |file_name| {
            LogFile::open(dir.join(file_name), max_bytes).map(|file| Arc::new(Mutex::new(file)))
        };
        Ok(Self {
            stdout: open("stdout.log")?,
            stderr: open("stderr.log")?,
        })
    }

    /// Called before each restart, so that a file is rotated even when the
    /// process writes nothing more.
    pub(crate) async fn rotate_if_full(&self) {
        for log in [&self.stdout, &self.stderr] {
            let mut log = log.lock().await;
            if !log.is_full() {
                continue;
            }
            if let Err(error) = log.rotate().await {
                warn!(path = %log.path.display(), %error, "cannot rotate log file");
            }
        }
    }

    /// Starts copying a freshly spawned child's stdout and stderr.
    pub(crate) fn attach(&self, child: &mut tokio::process::Child) -> LogCopiers {
        let mut tasks = Vec::with_capacity(2);
        if let Some(stdout) = child.stdout.take() {
            tasks.push(tokio::spawn(copy(stdout, self.stdout.clone())));
        }
        if let Some(stderr) = child.stderr.take() {
            tasks.push(tokio::spawn(copy(stderr, self.stderr.clone())));
        }
        LogCopiers { tasks }
    }
}

/// The tasks copying one run's output. Dropping them stops the copying.
#[derive(Debug)]
pub(crate) struct LogCopiers {
    tasks: Vec<JoinHandle<()>>,
}

impl LogCopiers {
    /// Waits until the child's output has been written out, for at most
    /// `timeout`: a process that escaped the group may hold the pipe open.
    pub(crate) async fn drain(mut self, timeout: Duration) {
        let tasks = std::mem::take(&mut self.tasks);
        let all = async {
            for task in tasks {
                let _ = task.await;
            }
        };
        let _ = tokio::time::timeout(timeout, all).await;
    }
}

impl Drop for LogCopiers {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

async fn copy(mut pipe: impl AsyncRead + Unpin, log: Arc<Mutex<LogFile>>) {
    let mut buf = vec![0; 16 * 1024];
    let mut failing = false;
    loop {
        let n = match pipe.read(&mut buf).await {
            Ok(0) => break,
            Ok(n) => n,
            Err(error) => {
                warn!(%error, "cannot read process output");
                break;
            }
        };
        let mut log = log.lock().await;
        // Keep draining the pipe even when the file cannot be written, so
        // that the process never blocks on its output; warn once per outage.
        match log.write(&buf[..n]).await {
            Ok(()) => failing = false,
            Err(error) if !failing => {
                failing = true;
                warn!(path = %log.path.display(), %error, "cannot write log file; dropping output");
            }
            Err(_) => {}
        }
    }
    let mut log = log.lock().await;
    if let Err(error) = log.file.flush().await {
        warn!(path = %log.path.display(), %error, "cannot flush log file");
    }
}

#[derive(Debug)]
struct LogFile {
    path: PathBuf,
    file: File,
    len: u64,
    max_bytes: u64,
}

impl LogFile {
    fn open(path: PathBuf, max_bytes: u64) -> io::Result<Self> {
        let (file, len) = open_append(&path)?;
        let mut log = Self {
            path,
            file,
            len,
            max_bytes,
        };
        if log.is_full() {
            // Nothing was written through `file` yet, so there is nothing to
            // flush before the rename.
            log.rename_and_reopen()?;
        }
        Ok(log)
    }

    fn is_full(&self) -> bool {
        self.len >= self.max_bytes
    }

    async fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        if self.is_full() {
            self.rotate().await?;
        }
        self.file.write_all(bytes).await?;
        self.len += bytes.len() as u64;
        Ok(())
    }

    async fn rotate(&mut self) -> io::Result<()> {
        self.file.flush().await?;
        self.rename_and_reopen()
    }

    /// `stdout.log` becomes `stdout.log.1`, replacing the previous one.
    fn rename_and_reopen(&mut self) -> io::Result<()> {
        let mut rotated = self.path.clone().into_os_string();
        rotated.push(".1");
        std::fs::rename(&self.path, rotated)?;
        (self.file, self.len) = open_append(&self.path)?;
        Ok(())
    }
}

/// Opens the log readable by its owner only (a program's output can carry
/// its secrets), tightening a file an older version left open to others.
fn open_append(path: &Path) -> io::Result<(File, u64)> {
    use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)?;
    let meta = file.metadata()?;
    let mode = meta.permissions().mode();
    if mode & 0o077 != 0 {
        file.set_permissions(std::fs::Permissions::from_mode(mode & 0o700))?;
    }
    let len = meta.len();
    Ok((File::from_std(file), len))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn logs_are_readable_by_their_owner_only() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let old = dir.path().join("stderr.log");
        std::fs::write(&old, "from an older version\n").unwrap();
        std::fs::set_permissions(&old, std::fs::Permissions::from_mode(0o644)).unwrap();
        let _logs = Logs::open(dir.path(), 1 << 20).unwrap();
        for name in ["stdout.log", "stderr.log"] {
            let mode = std::fs::metadata(dir.path().join(name))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{name}");
        }
    }

    #[tokio::test]
    async fn rotates_past_the_cap_keeping_one_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stdout.log");
        let mut log = LogFile::open(path.clone(), 10).unwrap();
        for chunk in ["0123456789", "abcdefghij", "ABCDEFGHIJ", "xyz"] {
            log.write(chunk.as_bytes()).await.unwrap();
        }
        log.file.flush().await.unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "xyz");
        assert_eq!(
            std::fs::read_to_string(dir.path().join("stdout.log.1")).unwrap(),
            "ABCDEFGHIJ"
        );
    }

    #[tokio::test]
    async fn rotates_a_full_file_when_opened() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stderr.log");
        std::fs::write(&path, "old contents").unwrap();
        let log = LogFile::open(path.clone(), 5).unwrap();
        assert_eq!(log.len, 0);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "");
        assert_eq!(
            std::fs::read_to_string(dir.path().join("stderr.log.1")).unwrap(),
            "old contents"
        );
    }
}
