//! The files `ccd up`'s services keep: secrets the local cloud reads, and
//! the servers' own settings, each private to its owner.

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

pub(crate) use crate::private::{dir as private_dir, write as write_private};

/// The password kept in `file`, made (and kept) when there is none.
pub(crate) fn kept_password(file: &Path) -> Result<String, String> {
    if let Some(p) = read_secret(file) {
        return Ok(p);
    }
    let p = new_password()?;
    write_private(file, &p).map_err(|e| format!("cannot write {}: {e}", file.display()))?;
    Ok(p)
}

/// A new password, or why there is none.
pub(crate) fn new_password() -> Result<String, String> {
    crate::password::generate().map_err(|e| format!("no randomness for a password: {e}"))
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}
