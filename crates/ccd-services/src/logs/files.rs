//! The file operations of log shipping, each naming its path on failure.
//! Everything is private to the user: an app's output can carry its secrets.

use std::fs;
use std::io::{self, Write as _};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;

use crate::ServiceError;

pub(super) fn io_error(path: &Path) -> impl FnOnce(io::Error) -> ServiceError + '_ {
    move |source| ServiceError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Makes `dir` (and its missing parents) readable by its owner only.
pub(super) fn create_dir(dir: &Path) -> Result<(), ServiceError> {
    crate::private::dir(dir).map_err(io_error(dir))
}

/// Appends `bytes` in one write, so a reader sees whole lines or none.
pub(super) fn append(path: &Path, bytes: &[u8]) -> Result<(), ServiceError> {
    fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut f| f.write_all(bytes))
        .map_err(io_error(path))
}

/// Replaces `path` with `bytes` at once (`crate::private::write`).
pub(super) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ServiceError> {
    crate::private::write(path, bytes).map_err(io_error(path))
}

/// The length of `path`, 0 when it does not exist.
pub(super) fn len(path: &Path) -> Result<u64, ServiceError> {
    match fs::metadata(path) {
        Ok(meta) => Ok(meta.len()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(io_error(path)(e)),
    }
}

/// Cuts `path` back to `len` bytes if it grew past them; nothing if it is gone.
pub(super) fn truncate_to(path: &Path, len: u64) -> Result<(), ServiceError> {
    match fs::OpenOptions::new().write(true).open(path) {
        Ok(f) => match f.metadata() {
            Ok(meta) if meta.len() > len => f.set_len(len),
            Ok(_) => Ok(()),
            Err(e) => Err(e),
        },
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
    .map_err(io_error(path))
}

/// The names of the entries of `dir`, sorted; `None` when it does not exist.
pub(super) fn names(dir: &Path) -> Result<Option<Vec<String>>, ServiceError> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_error(dir)(e)),
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io_error(dir))?;
        // A name that is not UTF-8 is nothing ccd wrote.
        if let Ok(name) = entry.file_name().into_string() {
            names.push(name);
        }
    }
    names.sort();
    Ok(Some(names))
}
