//! Where each app's credential rotations stand, one file per service:
//! `DATA/services/rotations/<app>/<kind>.json`. A rotation numbers the
//! credential anew (its generation, the secret version the template reads)
//! and, until every instance runs with the new one, records the one it
//! replaced, which stays valid. `ccd services rotate` writes it; `ccd up`
//! reads it on every pass, so a crash at any point leaves either the old
//! rotation or the new one, never a credential nobody can use.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::files::{private_dir, write_private};

/// A service's credential: its generation, and the one it replaced while
/// that is still valid.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Rotation {
    pub generation: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retiring: Option<Retiring>,
}

/// The credential a rotation replaced, valid until every instance runs
/// with the new one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Retiring {
    pub generation: u32,
    /// When the rotation began (RFC 3339).
    pub since: String,
    /// The old password's SHA-256, for a server that keeps several
    /// passwords per user (Redis): what keeps it valid after a restart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_sha256: Option<String>,
}

impl Rotation {
    /// What the app's status says while a rotation runs.
    pub fn message(&self) -> String {
        match &self.retiring {
            Some(r) => format!(
                "rotating since {}: password {} rolls out, and password {} stays valid until every \
                 instance runs with the new one",
                r.since, self.generation, r.generation
            ),
            None => String::new(),
        }
    }
}

fn app_dir(services_dir: &Path, app: &str) -> PathBuf {
    services_dir.join("rotations").join(app)
}

fn file(services_dir: &Path, app: &str, kind: &str) -> PathBuf {
    app_dir(services_dir, app).join(format!("{kind}.json"))
}

/// The rotation of `app`'s `kind`; never rotated: generation 0.
pub(crate) fn read(services_dir: &Path, app: &str, kind: &str) -> Result<Rotation, String> {
    let path = file(services_dir, app, kind);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
            format!(
                "{kind}: {} is not a rotation record ({e}); if it was edited by hand, restore it \
                 or remove it to go back to the first password",
                path.display()
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Rotation::default()),
        Err(e) => Err(format!("{kind}: cannot read {}: {e}", path.display())),
    }
}

/// Records `rotation`, replacing the file at once.
pub(crate) fn write(
    services_dir: &Path,
    app: &str,
    kind: &str,
    rotation: &Rotation,
) -> Result<(), String> {
    let path = file(services_dir, app, kind);
    let text = serde_json::to_string_pretty(rotation)
        .map_err(|e| format!("{kind}: cannot write {}: {e}", path.display()))?;
    private_dir(&app_dir(services_dir, app))
        .and_then(|()| write_private(&path, text))
        .map_err(|e| format!("{kind}: cannot write {}: {e}", path.display()))
}

/// Forgets `app`'s `kind` rotations: its credentials are gone.
pub(crate) fn remove(services_dir: &Path, app: &str, kind: &str) {
    let _ = std::fs::remove_file(file(services_dir, app, kind));
    let _ = std::fs::remove_dir(app_dir(services_dir, app));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rotation_reads_back_as_written_and_none_is_the_first_password() {
        let dir = std::env::temp_dir().join(format!("ccd-rotation-{}", std::process::id()));
        assert_eq!(read(&dir, "web", "sql"), Ok(Rotation::default()));
        let r = Rotation {
            generation: 3,
            retiring: Some(Retiring {
                generation: 2,
                since: "2026-12-01T08:00:00Z".to_owned(),
                password_sha256: None,
            }),
        };
        write(&dir, "web", "sql", &r).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(read(&dir, "web", "sql"), Ok(r.clone()));
        assert!(r.message().contains("password 3 rolls out"));
        std::fs::write(file(&dir, "web", "sql"), "{").unwrap_or_else(|e| panic!("{e}"));
        assert!(
            read(&dir, "web", "sql")
                .unwrap_err()
                .contains("not a rotation record")
        );
        remove(&dir, "web", "sql");
        assert_eq!(read(&dir, "web", "sql"), Ok(Rotation::default()));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
