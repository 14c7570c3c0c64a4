//! What the shipper remembers between calls and across restarts of `ccd up`
//! (`<logs>/.offsets.json`): how far it read each stream, each app's
//! retention, and which hour files a call was about to append to.
//!
//! Exactly once, even when `ccd up` is killed mid-call: a call that ships
//! first records each hour file's length (`pending`), then appends, then
//! records the new marks with `pending` empty. A call that finds `pending`
//! set cuts those files back: the lines past the lengths were never marked
//! as read, so they are read and shipped again, once.

use std::collections::BTreeMap;
use std::io;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::files;
use super::source::Mark;
use crate::ServiceError;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct State {
    /// `<zone>/<instance>/<stream>` → how far it was shipped.
    #[serde(default)]
    pub marks: BTreeMap<String, Mark>,
    /// App → how long its hour files are kept, in seconds; the last its spec
    /// asked, so that an app gone from the specs expires too.
    #[serde(default)]
    pub retention: BTreeMap<String, u64>,
    /// `<app>/<hour file>` → its length before the call in progress appended.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub pending: BTreeMap<String, u64>,
}

/// The state in `path`; empty when there is none yet.
pub(super) fn load(path: &Path) -> Result<State, ServiceError> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(State::default()),
        Err(e) => return Err(files::io_error(path)(e)),
    };
    serde_json::from_slice(&bytes).map_err(|e| {
        ServiceError::Invalid(format!(
            "{}: not the log shipper's offsets ({e}); remove it, and every instance's \
             log is shipped again from its start",
            path.display()
        ))
    })
}

pub(super) fn save(path: &Path, state: &State) -> Result<(), ServiceError> {
    let bytes = serde_json::to_vec_pretty(state)
        .map_err(|e| ServiceError::Invalid(format!("{}: {e}", path.display())))?;
    files::write_atomic(path, &bytes)
}

/// Undoes the appends of a call cut short (see the module's comment);
/// whether there was one.
pub(super) fn recover(logs: &Path, state: &mut State) -> Result<bool, ServiceError> {
    let pending = std::mem::take(&mut state.pending);
    for (file, len) in &pending {
        // Only `<app>/<hour file>`, as `ship` writes them.
        let mut parts = file.split('/');
        let (Some(app), Some(hour), None) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        if super::check_app(app).is_ok() && super::hour_start(hour).is_some() {
            tracing::info!(file = %file, "undoing the appends of a log shipping cut short");
            files::truncate_to(&logs.join(file), *len)?;
        }
    }
    Ok(!pending.is_empty())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_call_cut_short_is_undone() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("web/2025-06-01T10.jsonl");
        std::fs::create_dir(dir.path().join("web")).unwrap();
        std::fs::write(&file, "kept\nappended before the kill\n").unwrap();
        let mut state = State::default();
        state.pending.insert("web/2025-06-01T10.jsonl".into(), 5);
        state
            .pending
            .insert("../outside/2025-06-01T10.jsonl".into(), 0);
        assert!(recover(dir.path(), &mut state).unwrap());
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "kept\n");
        assert!(state.pending.is_empty());
        assert!(!recover(dir.path(), &mut state).unwrap());
    }

    #[test]
    fn a_damaged_file_names_itself_and_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".offsets.json");
        assert_eq!(load(&path).unwrap(), State::default());
        std::fs::write(&path, "{").unwrap();
        let message = load(&path).unwrap_err().to_string();
        assert!(
            message.contains(".offsets.json") && message.contains("remove it"),
            "{message}"
        );
    }
}
