//! The files `ccd up`'s services keep: secrets the local cloud reads, and
//! the servers' own settings, each private to its owner.

use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::Path;
use std::sync::{Mutex, MutexGuard, PoisonError};

/// Writes a secret the local cloud reads: a folder only its owner enters,
/// the file 0600, replaced whole.
pub(crate) fn write_secret(dir: &Path, file: &Path, value: &str) -> Result<(), String> {
    private_dir(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    write_private(file, value).map_err(|e| format!("cannot write {}: {e}", file.display()))
}

/// A secret's value, when it has one.
pub(crate) fn read_secret(file: &Path) -> Option<String> {
    let value = std::fs::read_to_string(file).ok()?;
    let value = value.trim();
    (!value.is_empty()).then(|| value.to_owned())
}

/// `dir` and its parents, the last one 0700.
pub(crate) fn private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

/// `path` holds `text`, mode 0600, replaced whole (a temporary file renamed).
pub(crate) fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// The password kept in `file`, made (and kept) when there is none.
pub(crate) fn kept_password(file: &Path) -> Result<String, String> {
    if let Some(p) = read_secret(file) {
        return Ok(p);
    }
    let p =
        crate::password::generate().map_err(|e| format!("no randomness for a password: {e}"))?;
    write_private(file, &p).map_err(|e| format!("cannot write {}: {e}", file.display()))?;
    Ok(p)
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}
