//! ccd's spec and status store: where users drop `specs/<app>.yaml`, where the controller
//! writes `status/<app>.yaml` beside them, and where operators leave `controls/<app>.yaml`
//! (pause, resume, promote, abort a rollout) for the controller to read. `ccd sync` writes
//! specs here too, and last its marker (`specs/.ccd-sync`: the commit they came from).
//!
//! One port, [`SpecStore`], and two adapters built on Apache Arrow's `object_store`:
//! [`FolderStore`] (a local folder, the embedded default; change hints from filesystem events)
//! and [`BucketStore`] (a GCS bucket and prefix; change hints from a cheap list poller).
//! [`StoreUrl`] parses what a user types (`./dir`, `/abs/dir`, `file:///dir`, `gs://bucket/prefix`)
//! and [`AnyStore`] opens either, for callers that pick at run time.
//!
//! The trait uses `impl Future + Send` return types (native async in traits) rather than boxed
//! futures: the controller is generic over one store type, and [`AnyStore`] is that type when the
//! choice is made at run time, so nothing needs `dyn SpecStore`.

mod bucket;
#[cfg(test)]
mod conflict_tests;
mod emulator;
mod error;
mod folder;
mod lease;
mod names;
mod notices;
mod objects;
mod url;
mod watch;

use std::future::Future;

pub use bucket::{BucketConfig, BucketStore, EMULATOR_HOST_VAR, GcsAuth};
pub use bytes::Bytes;
pub use error::StoreError;
pub use folder::FolderStore;
use futures::stream::BoxStream;
pub use lease::{LeaseObject, LeaseWrite};
pub use notices::{Notice, Notices};
pub use objects::{Generation, Marker};
pub use url::StoreUrl;

/// The change hint [`SpecStore::changes`] gives when the sync marker changed: the marker's file
/// name (`specs/.ccd-sync`), which no app name can be, since app names never start with '.'.
pub const MARKER_HINT: &str = names::MARKER_FILE;

/// A spec's version as the store reports it: `sha256:<hex>` of its bytes.
pub fn spec_version(bytes: &[u8]) -> String {
    names::version_of(bytes)
}

/// Checks an app name as every per-app call does (ASCII letters, digits, `-`, `_`, `.`), so a
/// command can refuse a bad name before it reads anything.
pub fn check_app_name(name: &str) -> Result<(), StoreError> {
    names::app_name(name)
}

/// Largest spec file the store reads; bigger ones are reported, never loaded.
pub const MAX_SPEC_BYTES: u64 = 1024 * 1024;

/// Largest status or control object the store reads or writes.
pub const MAX_STATUS_BYTES: u64 = 8 * 1024 * 1024;

/// One spec file as read from the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecFile {
    /// The app name: the file stem (`hello` for `specs/hello.yaml`).
    pub name: String,
    /// The path inside the store, for messages: `specs/hello.yaml`.
    pub path: String,
    /// The file's bytes, exactly as stored.
    pub bytes: Bytes,
    /// `sha256:<hex>` of `bytes`: it changes exactly when the content changes, whatever the
    /// backend (a re-upload of identical bytes or a `touch` is not a change).
    pub version: String,
}

/// A file that looks like a spec (`specs/<something>.yaml`) but could not be loaded.
///
/// The controller must not treat such an app as deleted: its spec is still there.
#[derive(Debug)]
pub struct UnreadableSpec {
    /// The app name the file would define (lossy for a name that is not UTF-8).
    pub name: String,
    /// The path inside the store, for messages: `specs/hello.yaml`.
    pub path: String,
    /// Why it could not be loaded; its message names the full location.
    pub error: StoreError,
}

/// Everything `list_specs` found.
#[derive(Debug, Default)]
pub struct SpecListing {
    /// Readable specs, sorted by name.
    pub specs: Vec<SpecFile>,
    /// Spec files that exist but could not be loaded (too large, two files for one app,
    /// an unsupported name, a read error), sorted by path.
    pub unreadable: Vec<UnreadableSpec>,
}

/// The controller's port to the spec and status store.
pub trait SpecStore: Send + Sync + 'static {
    /// Where the store is, for logs and messages: a folder path or `gs://bucket/prefix`.
    fn location(&self) -> &str;

    /// Every `specs/*.yaml` and `specs/*.yml` (not nested folders, not dotfiles or editor
    /// leftovers). An error here means the listing itself failed: keep the last known state.
    fn list_specs(&self) -> impl Future<Output = Result<SpecListing, StoreError>> + Send;

    /// One app's spec, `None` when neither `specs/<name>.yaml` nor `.yml` exists.
    fn get_spec(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<Option<SpecFile>, StoreError>> + Send;

    /// App names whose spec may have changed, and [`MARKER_HINT`] when the sync marker may have.
    /// Hints only: lossy, possibly repeated, possibly about apps that did not change; the
    /// caller still relists periodically. `None` when this store cannot watch.
    fn changes(&self) -> Option<BoxStream<'static, String>>;

    /// The bytes of `status/<app>.yaml`, `None` when there is none.
    fn read_status(
        &self,
        app: &str,
    ) -> impl Future<Output = Result<Option<Bytes>, StoreError>> + Send;

    /// The apps with a `status/<app>.yaml`, sorted by name, including apps whose spec is gone
    /// (their status outlives it until the controller removes the app). Files that are not
    /// a status (other names, a write's leftover temporary file) are left out; a status that
    /// is listed but cannot be read shows up when `read_status` is asked for it.
    fn list_statuses(&self) -> impl Future<Output = Result<Vec<String>, StoreError>> + Send;

    /// Writes `status/<app>.yaml` only if `bytes` differ from what is there; returns whether it
    /// wrote. Writes are atomic (readers see the old or the new file, never a mix) and, where the
    /// backend supports it, conditional on the version just read, so two writers cannot
    /// silently overwrite each other.
    fn write_status(
        &self,
        app: &str,
        bytes: &[u8],
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// As [`write_status`](Self::write_status), but refused
    /// ([`StoreError::Fenced`]) when the stored status was written under a
    /// later leader epoch than `fence.epoch`.
    fn write_status_fenced(
        &self,
        app: &str,
        bytes: &[u8],
        fence: Fence,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Removes `status/<app>.yaml`; succeeds when there is none.
    fn delete_status(&self, app: &str) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The bytes of `controls/<app>.yaml`, `None` when there is none. Controls are an
    /// operator's requests about an app's rollout; they are never listed or hinted as specs.
    fn read_control(
        &self,
        app: &str,
    ) -> impl Future<Output = Result<Option<Bytes>, StoreError>> + Send;

    /// Writes `controls/<app>.yaml`, atomically and conditionally as `write_status` does (and,
    /// like it, not at all when the bytes are already there). The same size cap as status.
    fn write_control(
        &self,
        app: &str,
        bytes: &[u8],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Removes `controls/<app>.yaml`; succeeds when there is none.
    fn delete_control(&self, app: &str) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The bytes of `scaling/<app>.yaml`, the scaling reconciler's last decision (kept apart
    /// from the status, which the deploy reconciler writes, so that neither overwrites the
    /// other); `None` when there is none.
    fn read_scaling(
        &self,
        app: &str,
    ) -> impl Future<Output = Result<Option<Bytes>, StoreError>> + Send;

    /// Writes `scaling/<app>.yaml`, as `write_status` does.
    fn write_scaling(
        &self,
        app: &str,
        bytes: &[u8],
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Removes `scaling/<app>.yaml`; succeeds when there is none.
    fn delete_scaling(&self, app: &str) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Writes `specs/<app>.yaml` (what `ccd sync` uploads) unless it already holds `bytes`,
    /// atomically and conditionally as `write_status` does, within [`MAX_SPEC_BYTES`]; then
    /// removes a `specs/<app>.yml` twin, so that one file defines the app. Returns whether it
    /// wrote.
    fn write_spec(
        &self,
        app: &str,
        bytes: &[u8],
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Removes `specs/<app>.yaml` and `specs/<app>.yml`; succeeds when there is neither.
    fn delete_spec(&self, app: &str) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The sync marker `ccd sync` writes last (`specs/.ccd-sync`: which commit the specs came
    /// from), with the version read; `None` when there is none.
    fn read_marker(&self) -> impl Future<Output = Result<Option<Marker>, StoreError>> + Send;

    /// Writes the sync marker only if it is still at `expected` (`None`: only if there is
    /// none); otherwise fails with [`StoreError::Changed`] and writes nothing. A bucket checks
    /// the generation itself; a folder compares and writes under a lock file.
    fn write_marker(
        &self,
        bytes: &[u8],
        expected: Option<&Generation>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// Which writer may replace a record: the writer's election (controllers of
/// different regions hold different leases) and epoch in it, and how to read
/// both from a stored record (the store does not know the status format).
///
/// A record of another election is never replaced; one of the same election
/// only by an epoch at least as late. A record naming no election is
/// anyone's, and epoch 0 (a controller alone by configuration) does not
/// compare epochs.
#[derive(Debug, Clone)]
pub struct Fence {
    /// The writer's election: its region, say.
    pub election: String,
    /// The writer's epoch in it.
    pub epoch: u64,
    /// The election and epoch a stored record was written under, `None`
    /// when it is not such a record.
    pub read: fn(&[u8]) -> Option<(String, u64)>,
}

impl Fence {
    /// Why the stored record must not be replaced: its election and epoch.
    pub(crate) fn refuses(&self, stored: &[u8]) -> Option<(String, u64)> {
        let (election, theirs) = (self.read)(stored)?;
        let refused = match election.is_empty() {
            true => false,
            false if election != self.election => true,
            false => self.epoch > 0 && theirs > self.epoch,
        };
        refused.then_some((election, theirs))
    }
}

/// Either store, chosen at run time from a [`StoreUrl`].
#[derive(Debug)]
pub enum AnyStore {
    /// A local folder.
    Folder(FolderStore),
    /// A GCS bucket.
    Bucket(BucketStore),
}

impl AnyStore {
    /// Opens the store a URL names; buckets use Application Default Credentials, or the
    /// emulator `STORAGE_EMULATOR_HOST` names (see [`BucketConfig::from_env`]).
    pub fn open(url: &StoreUrl) -> Result<Self, StoreError> {
        Self::open_polling(url, None)
    }

    /// As [`AnyStore::open`], a bucket's change poller listing every `poll` instead of its
    /// default (Pub/Sub notifications make it a backstop that can run seldom).
    pub fn open_polling(
        url: &StoreUrl,
        poll: Option<std::time::Duration>,
    ) -> Result<Self, StoreError> {
        Ok(match url {
            StoreUrl::Folder(path) => Self::Folder(FolderStore::new(path)?),
            StoreUrl::Bucket { bucket, prefix } => {
                let mut config = BucketConfig::from_env(bucket, prefix);
                if poll.is_some() {
                    config.poll_interval = poll;
                }
                Self::Bucket(BucketStore::new(config)?)
            }
        })
    }

    /// The filter for this store's Cloud Storage notifications; `None` for a folder.
    pub fn notices(&self) -> Option<Notices> {
        match self {
            Self::Folder(_) => None,
            Self::Bucket(s) => Some(s.notices()),
        }
    }
}

impl AnyStore {
    fn objects(&self) -> &objects::Objects {
        match self {
            Self::Folder(s) => s.objects(),
            Self::Bucket(s) => s.objects(),
        }
    }
}

impl SpecStore for AnyStore {
    fn location(&self) -> &str {
        match self {
            Self::Folder(s) => s.location(),
            Self::Bucket(s) => s.location(),
        }
    }

    async fn list_specs(&self) -> Result<SpecListing, StoreError> {
        match self {
            Self::Folder(s) => s.list_specs().await,
            Self::Bucket(s) => s.list_specs().await,
        }
    }

    async fn get_spec(&self, name: &str) -> Result<Option<SpecFile>, StoreError> {
        match self {
            Self::Folder(s) => s.get_spec(name).await,
            Self::Bucket(s) => s.get_spec(name).await,
        }
    }

    fn changes(&self) -> Option<BoxStream<'static, String>> {
        match self {
            Self::Folder(s) => s.changes(),
            Self::Bucket(s) => s.changes(),
        }
    }

    async fn read_status(&self, app: &str) -> Result<Option<Bytes>, StoreError> {
        match self {
            Self::Folder(s) => s.read_status(app).await,
            Self::Bucket(s) => s.read_status(app).await,
        }
    }

    async fn list_statuses(&self) -> Result<Vec<String>, StoreError> {
        match self {
            Self::Folder(s) => s.list_statuses().await,
            Self::Bucket(s) => s.list_statuses().await,
        }
    }

    async fn write_status(&self, app: &str, bytes: &[u8]) -> Result<bool, StoreError> {
        match self {
            Self::Folder(s) => s.write_status(app, bytes).await,
            Self::Bucket(s) => s.write_status(app, bytes).await,
        }
    }

    async fn write_status_fenced(
        &self,
        app: &str,
        bytes: &[u8],
        fence: Fence,
    ) -> Result<bool, StoreError> {
        match self {
            Self::Folder(s) => s.write_status_fenced(app, bytes, fence).await,
            Self::Bucket(s) => s.write_status_fenced(app, bytes, fence).await,
        }
    }

    async fn delete_status(&self, app: &str) -> Result<(), StoreError> {
        match self {
            Self::Folder(s) => s.delete_status(app).await,
            Self::Bucket(s) => s.delete_status(app).await,
        }
    }

    async fn read_control(&self, app: &str) -> Result<Option<Bytes>, StoreError> {
        match self {
            Self::Folder(s) => s.read_control(app).await,
            Self::Bucket(s) => s.read_control(app).await,
        }
    }

    async fn write_control(&self, app: &str, bytes: &[u8]) -> Result<(), StoreError> {
        match self {
            Self::Folder(s) => s.write_control(app, bytes).await,
            Self::Bucket(s) => s.write_control(app, bytes).await,
        }
    }

    async fn delete_control(&self, app: &str) -> Result<(), StoreError> {
        match self {
            Self::Folder(s) => s.delete_control(app).await,
            Self::Bucket(s) => s.delete_control(app).await,
        }
    }

    async fn read_scaling(&self, app: &str) -> Result<Option<Bytes>, StoreError> {
        match self {
            Self::Folder(s) => s.read_scaling(app).await,
            Self::Bucket(s) => s.read_scaling(app).await,
        }
    }

    async fn write_scaling(&self, app: &str, bytes: &[u8]) -> Result<bool, StoreError> {
        match self {
            Self::Folder(s) => s.write_scaling(app, bytes).await,
            Self::Bucket(s) => s.write_scaling(app, bytes).await,
        }
    }

    async fn delete_scaling(&self, app: &str) -> Result<(), StoreError> {
        match self {
            Self::Folder(s) => s.delete_scaling(app).await,
            Self::Bucket(s) => s.delete_scaling(app).await,
        }
    }

    async fn write_spec(&self, app: &str, bytes: &[u8]) -> Result<bool, StoreError> {
        match self {
            Self::Folder(s) => s.write_spec(app, bytes).await,
            Self::Bucket(s) => s.write_spec(app, bytes).await,
        }
    }

    async fn delete_spec(&self, app: &str) -> Result<(), StoreError> {
        match self {
            Self::Folder(s) => s.delete_spec(app).await,
            Self::Bucket(s) => s.delete_spec(app).await,
        }
    }

    async fn read_marker(&self) -> Result<Option<Marker>, StoreError> {
        match self {
            Self::Folder(s) => s.read_marker().await,
            Self::Bucket(s) => s.read_marker().await,
        }
    }

    async fn write_marker(
        &self,
        bytes: &[u8],
        expected: Option<&Generation>,
    ) -> Result<(), StoreError> {
        match self {
            Self::Folder(s) => s.write_marker(bytes, expected).await,
            Self::Bucket(s) => s.write_marker(bytes, expected).await,
        }
    }
}
