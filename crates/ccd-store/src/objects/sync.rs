//! What `ccd sync` writes: spec files, and the sync marker (`specs/.ccd-sync`), which is written
//! last and only if it is still the version the sync read, so two syncs cannot interleave
//! silently.
//!
//! A bucket checks that itself (`x-goog-if-generation-match`). A folder cannot, so the marker's
//! compare-and-write runs under an advisory lock on `specs/.ccd-sync.lock` (`flock`, released
//! by the kernel when the holder exits, so a crash leaves no stale lock).

use std::fmt;
use std::path::PathBuf;

use bytes::Bytes;
use object_store::{PutMode, PutOptions, PutPayload, UpdateVersion};
use tracing::debug;

use super::{Lister, Objects, Record, UpdateCheck};
use crate::names::{self, MARKER_FILE, SPECS_DIR};
use crate::{MAX_STATUS_BYTES, StoreError};

/// The lock file beside the marker in a folder store (a dotfile: never a spec).
const FOLDER_LOCK: &str = ".ccd-sync.lock";

/// Which version of the sync marker was read: what a conditional write is conditioned on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generation {
    /// The backend's etag (a folder: inode, size and time of the file).
    e_tag: Option<String>,
    /// The object's generation (GCS).
    version: Option<String>,
}

impl Generation {
    /// A version named by `tag`, for stores outside this crate (test doubles): two generations
    /// are the same version when their tags are equal.
    pub fn tagged(tag: impl Into<String>) -> Self {
        Self {
            e_tag: None,
            version: Some(tag.into()),
        }
    }
}

impl fmt::Display for Generation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.version, &self.e_tag) {
            (Some(version), _) => write!(f, "generation {version}"),
            (None, Some(e_tag)) => write!(f, "etag {e_tag}"),
            (None, None) => write!(f, "an unknown version"),
        }
    }
}

/// The sync marker as read from the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Marker {
    /// Its bytes, as written by `ccd sync`.
    pub bytes: Bytes,
    /// The version read, for [`crate::SpecStore::write_marker`].
    pub generation: Generation,
}

impl Objects {
    /// Writes `specs/<app>.yaml` unless it already holds `bytes`, then removes a
    /// `specs/<app>.yml` twin, which would make the app ambiguous. Returns whether it wrote.
    pub(crate) async fn write_spec(&self, app: &str, bytes: &[u8]) -> Result<bool, StoreError> {
        let wrote = self.write_record(Record::Spec, app, bytes).await?;
        self.delete_file(SPECS_DIR, &format!("{app}.yml")).await?;
        Ok(wrote)
    }

    /// Removes `specs/<app>.yaml` and `specs/<app>.yml`; succeeds when there is neither.
    pub(crate) async fn delete_spec(&self, app: &str) -> Result<(), StoreError> {
        names::app_name(app)?;
        self.delete_file(SPECS_DIR, &format!("{app}.yaml")).await?;
        self.delete_file(SPECS_DIR, &format!("{app}.yml")).await
    }

    pub(crate) async fn read_marker(&self) -> Result<Option<Marker>, StoreError> {
        Ok(self
            .read(SPECS_DIR, MARKER_FILE, MAX_STATUS_BYTES)
            .await?
            .map(|(bytes, meta)| Marker {
                bytes,
                generation: Generation {
                    e_tag: meta.e_tag,
                    version: meta.version,
                },
            }))
    }

    /// Writes the marker only if it is still at `expected` (`None`: only if there is none).
    pub(crate) async fn write_marker(
        &self,
        bytes: &[u8],
        expected: Option<&Generation>,
    ) -> Result<(), StoreError> {
        let location = self.display(SPECS_DIR, MARKER_FILE);
        let size = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
        if size > MAX_STATUS_BYTES {
            return Err(StoreError::TooLarge {
                location,
                size,
                limit: MAX_STATUS_BYTES,
            });
        }
        let mode = match (self.update_check, expected) {
            (_, None) => PutMode::Create,
            (UpdateCheck::Unsupported, Some(_)) => PutMode::Overwrite,
            (UpdateCheck::Version | UpdateCheck::ETag, Some(g)) => PutMode::Update(UpdateVersion {
                e_tag: g.e_tag.clone(),
                version: g.version.clone(),
            }),
        };
        // Held until this function returns: the folder's compare and write are one step.
        let _lock = match (&self.lister, self.update_check) {
            (Lister::Folder(root), UpdateCheck::Unsupported) => {
                let lock = lock_folder(root.join(SPECS_DIR).join(FOLDER_LOCK), &location).await?;
                let current = self.read_marker().await?.map(|m| m.generation);
                if current.as_ref() != expected {
                    return Err(changed(location, expected, current.as_ref()));
                }
                Some(lock)
            }
            _ => None,
        };
        let options = PutOptions {
            mode,
            ..PutOptions::default()
        };
        let payload = PutPayload::from(Bytes::copy_from_slice(bytes));
        match self
            .put_file(SPECS_DIR, MARKER_FILE, payload, options)
            .await
        {
            Ok(_) => {
                debug!(%location, "sync marker written");
                Ok(())
            }
            Err(StoreError::Write {
                source:
                    object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. },
                ..
            }) => {
                let current = self
                    .read_marker()
                    .await
                    .ok()
                    .flatten()
                    .map(|m| m.generation);
                Err(changed(location, expected, current.as_ref()))
            }
            Err(e) => Err(e),
        }
    }
}

fn changed(
    location: String,
    expected: Option<&Generation>,
    found: Option<&Generation>,
) -> StoreError {
    let what = |g: Option<&Generation>| g.map_or_else(|| "none".to_owned(), ToString::to_string);
    StoreError::Changed {
        location,
        expected: what(expected),
        found: what(found),
    }
}

/// An exclusive advisory lock on `path` (created when missing), taken off the async threads.
async fn lock_folder(path: PathBuf, location: &str) -> Result<std::fs::File, StoreError> {
    let shown = path.display().to_string();
    let locked = tokio::task::spawn_blocking(move || {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)?;
        file.lock()?;
        Ok::<_, std::io::Error>(file)
    })
    .await;
    match locked {
        Ok(Ok(file)) => Ok(file),
        Ok(Err(e)) => Err(StoreError::Open {
            location: location.to_owned(),
            reason: format!("cannot lock {shown}: {e}"),
        }),
        Err(e) => Err(StoreError::Open {
            location: location.to_owned(),
            reason: format!("locking {shown} was interrupted: {e}"),
        }),
    }
}
