//! The local folder store: `object_store`'s `LocalFileSystem` for reads and atomic writes,
//! `notify` for change hints.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use futures::stream::BoxStream;
use object_store::local::LocalFileSystem;
use tracing::{info, warn};

use crate::names::{SPECS_DIR, STATUS_DIR};
use crate::objects::{Lister, Objects, Record, UpdateCheck};
use crate::{Generation, Marker, SpecFile, SpecListing, SpecStore, StoreError, watch};

/// Specs and status in a local folder: `<root>/specs/<app>.yaml`, `<root>/status/<app>.yaml`,
/// and operators' controls in `<root>/controls/<app>.yaml` (created with the first one).
///
/// Status and control writes go to a temporary `<dir>/<app>.yaml#<n>` in the same folder and
/// are renamed into place (that is how `LocalFileSystem` writes), so readers never see half a
/// file; a crash mid-write can leave such a temporary file behind, which listings ignore.
#[derive(Debug)]
pub struct FolderStore {
    root: PathBuf,
    objects: Arc<Objects>,
}

impl FolderStore {
    /// The shared object machinery, for records kept in their own modules.
    pub(crate) fn objects(&self) -> &Objects {
        &self.objects
    }

    /// Opens the store at `root`, creating `root`, `specs/` and `status/` when missing.
    pub fn new(root: impl AsRef<Path>) -> Result<Self, StoreError> {
        let given = root.as_ref();
        let open_error = |reason: String| StoreError::Open {
            location: given.display().to_string(),
            reason,
        };
        for dir in [SPECS_DIR, STATUS_DIR] {
            let path = given.join(dir);
            if !path.is_dir() {
                std::fs::create_dir_all(&path)
                    .map_err(|e| open_error(format!("cannot create {}: {e}", path.display())))?;
                info!(folder = %path.display(), "created store folder");
            }
        }
        // Canonical, so that filesystem events (reported under the watched path) and listings
        // name the same files whatever relative path or symlink the user gave.
        let root = std::fs::canonicalize(given).map_err(|e| open_error(e.to_string()))?;
        // Synced file and folder: a status the controller acted on must not vanish in a power
        // cut, or the next start would redo (or forget) what it records.
        let fs = LocalFileSystem::new_with_prefix(&root)
            .map_err(|e| open_error(e.to_string()))?
            .with_fsync(true);
        let objects = Objects::new(
            Arc::new(fs),
            object_store::path::Path::default(),
            root.display().to_string(),
            Lister::Folder(root.clone()),
            UpdateCheck::Unsupported,
        );
        Ok(Self {
            root,
            objects: Arc::new(objects),
        })
    }

    /// The store's folder, canonicalized.
    pub fn root(&self) -> &Path {
        &self.root
    }
}

impl SpecStore for FolderStore {
    fn location(&self) -> &str {
        self.objects.location()
    }

    async fn list_specs(&self) -> Result<SpecListing, StoreError> {
        self.objects.list_specs().await
    }

    async fn get_spec(&self, name: &str) -> Result<Option<SpecFile>, StoreError> {
        self.objects.get_spec(name).await
    }

    /// Filesystem events (inotify on Linux) for `specs/`; `None`, with a warning, when the
    /// platform refuses a watch (for example the inotify watch limit is reached).
    fn changes(&self) -> Option<BoxStream<'static, String>> {
        match watch::watch_specs(self.root.clone()) {
            Ok(stream) => Some(stream),
            Err(e) => {
                warn!(folder = %self.root.display(), error = %e,
                    "cannot watch the spec folder; changes are seen on the next relist only");
                None
            }
        }
    }

    async fn read_status(&self, app: &str) -> Result<Option<Bytes>, StoreError> {
        self.objects.read_record(Record::Status, app).await
    }

    async fn list_statuses(&self) -> Result<Vec<String>, StoreError> {
        self.objects.list_records(Record::Status).await
    }

    async fn write_status(&self, app: &str, bytes: &[u8]) -> Result<bool, StoreError> {
        self.objects.write_record(Record::Status, app, bytes).await
    }

    async fn write_status_fenced(
        &self,
        app: &str,
        bytes: &[u8],
        fence: crate::Fence,
    ) -> Result<bool, StoreError> {
        self.objects
            .write_record_fenced(Record::Status, app, bytes, Some(fence))
            .await
    }

    async fn delete_status(&self, app: &str) -> Result<(), StoreError> {
        self.objects.delete_record(Record::Status, app).await
    }

    async fn read_control(&self, app: &str) -> Result<Option<Bytes>, StoreError> {
        self.objects.read_record(Record::Control, app).await
    }

    async fn write_control(&self, app: &str, bytes: &[u8]) -> Result<(), StoreError> {
        self.objects
            .write_record(Record::Control, app, bytes)
            .await
            .map(drop)
    }

    async fn delete_control(&self, app: &str) -> Result<(), StoreError> {
        self.objects.delete_record(Record::Control, app).await
    }

    async fn read_scaling(&self, app: &str) -> Result<Option<Bytes>, StoreError> {
        self.objects.read_record(Record::Scaling, app).await
    }

    async fn write_scaling(&self, app: &str, bytes: &[u8]) -> Result<bool, StoreError> {
        self.objects.write_record(Record::Scaling, app, bytes).await
    }

    async fn delete_scaling(&self, app: &str) -> Result<(), StoreError> {
        self.objects.delete_record(Record::Scaling, app).await
    }

    async fn write_spec(&self, app: &str, bytes: &[u8]) -> Result<bool, StoreError> {
        self.objects.write_spec(app, bytes).await
    }

    async fn delete_spec(&self, app: &str) -> Result<(), StoreError> {
        self.objects.delete_spec(app).await
    }

    async fn read_marker(&self) -> Result<Option<Marker>, StoreError> {
        self.objects.read_marker().await
    }

    async fn write_marker(
        &self,
        bytes: &[u8],
        expected: Option<&Generation>,
    ) -> Result<(), StoreError> {
        self.objects.write_marker(bytes, expected).await
    }
}
