//! `ccd logs APP [--since D] [--follow]`: the shipped lines of an app, read
//! from its hour files (only the hours from `since` on are opened).

use std::fs::File;
use std::io::{Read as _, Seek as _, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::{LogLine, files};
use crate::ServiceError;

/// Every line shipped for `app` at or after `since`, in time order.
pub async fn read(
    logs_dir: &Path,
    app: &str,
    since: SystemTime,
) -> Result<Vec<LogLine>, ServiceError> {
    Cursor::new(logs_dir, app, since).next_batch().await
}

/// Where a reader of an app's logs stands, for `--follow`: the first
/// [`Cursor::next_batch`] gives the lines from `since` on, each later one
/// what was shipped after.
#[derive(Debug, Clone)]
pub struct Cursor {
    dir: PathBuf,
    app: String,
    since: SystemTime,
    /// The hour file read last, and how far (to the end of its last whole line).
    at: Option<(String, u64)>,
}

impl Cursor {
    pub fn new(logs_dir: &Path, app: &str, since: SystemTime) -> Self {
        Cursor {
            dir: logs_dir.join(app),
            app: app.to_owned(),
            since,
            at: None,
        }
    }

    /// The lines shipped since the last batch, in time order; empty when
    /// nothing new was. [`ServiceError::NoLogs`] while the app has no hour
    /// file at all.
    pub async fn next_batch(&mut self) -> Result<Vec<LogLine>, ServiceError> {
        super::check_app(&self.app)?;
        let mut cursor = self.clone();
        let (lines, cursor) = tokio::task::spawn_blocking(move || {
            let lines = cursor.read_blocking();
            (lines, cursor)
        })
        .await
        .map_err(|e| ServiceError::Io {
            path: self.dir.clone(),
            source: std::io::Error::other(e),
        })?;
        // A batch that failed moves nothing: the next call reads it again.
        if lines.is_ok() {
            *self = cursor;
        }
        lines
    }

    fn read_blocking(&mut self) -> Result<Vec<LogLine>, ServiceError> {
        let hours: Vec<String> = files::names(&self.dir)?
            .unwrap_or_default()
            .into_iter()
            .filter(|name| super::hour_start(name).is_some())
            .collect();
        if hours.is_empty() {
            return Err(ServiceError::NoLogs {
                app: self.app.clone(),
                dir: self.dir.clone(),
            });
        }
        let first = match &self.at {
            Some((file, _)) => file.clone(),
            // Files sort by their hour; none before `since`'s holds a line after it.
            None => super::hour_file(self.since).unwrap_or_default(),
        };
        let mut lines = Vec::new();
        for name in hours.into_iter().filter(|name| *name >= first) {
            let from = match &self.at {
                Some((file, offset)) if *file == name => *offset,
                _ => 0,
            };
            let offset = self.read_file(&name, from, &mut lines)?;
            self.at = Some((name, offset));
        }
        // Hour files hold lines in the order shipped; a clock set back is the
        // exception, and a stable sort keeps each batch's own order.
        lines.sort_by_key(|line| line.time);
        Ok(lines)
    }

    /// Adds the lines of `name` after `from` to `lines`; the offset after the
    /// last whole line (an append being written is read next time).
    fn read_file(
        &self,
        name: &str,
        from: u64,
        lines: &mut Vec<LogLine>,
    ) -> Result<u64, ServiceError> {
        let path = self.dir.join(name);
        let mut bytes = Vec::new();
        let start = match File::open(&path) {
            Ok(mut file) => {
                let len = file.metadata().map_err(files::io_error(&path))?.len();
                // Shorter: the shipper undid a call cut short; what follows is new.
                let from = from.min(len);
                file.seek(SeekFrom::Start(from))
                    .and_then(|_| file.read_to_end(&mut bytes))
                    .map_err(files::io_error(&path))?;
                from
            }
            // Expired meanwhile.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(files::io_error(&path)(e)),
        };
        let whole = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        for (number, text) in bytes[..whole].split(|&b| b == b'\n').enumerate() {
            if text.is_empty() {
                continue;
            }
            match serde_json::from_slice::<LogLine>(text) {
                Ok(line) if line.time >= self.since => lines.push(line),
                Ok(_) => {}
                Err(error) => tracing::warn!(
                    file = %path.display(), after_byte = start, line = number + 1, %error,
                    "skipping a line that is not a shipped log line"
                ),
            }
        }
        Ok(start + whole as u64)
    }
}
