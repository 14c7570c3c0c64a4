//! The store's one error type. Every variant that concerns a file names its full location
//! (a folder path or a `gs://` URL) so a message can be acted on without context.

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The text given as a store location is not one.
    #[error("{input:?} is not a store location: {reason}")]
    InvalidUrl {
        /// What was given.
        input: String,
        /// What is wrong and how to write it instead.
        reason: String,
    },
    /// The store could not be set up (folder missing and not creatable, credentials unusable).
    #[error("cannot open the store at {location}: {reason}")]
    Open {
        /// The folder or bucket.
        location: String,
        /// What went wrong, with the fix where there is one.
        reason: String,
    },
    /// An app name the store cannot map to a file.
    #[error("{name:?} cannot be an app name in the store: {reason}")]
    InvalidAppName {
        /// The name given (lossy when the file name was not UTF-8).
        name: String,
        /// Which rule it breaks.
        reason: &'static str,
    },
    /// A file over the size limit; it was not loaded.
    #[error("{location} is {size} bytes, over the {limit}-byte limit; trim it")]
    TooLarge {
        /// The file's full location.
        location: String,
        /// Its size.
        size: u64,
        /// The limit it exceeds.
        limit: u64,
    },
    /// Both `specs/<app>.yaml` and `specs/<app>.yml` exist.
    #[error("{first} and {second} both define app {name:?}; remove one of them")]
    Ambiguous {
        /// The app name.
        name: String,
        /// One file's full location.
        first: String,
        /// The other's.
        second: String,
    },
    /// Reading a file failed.
    #[error("cannot read {location}: {source}")]
    Read {
        /// The file's full location.
        location: String,
        /// The backend's error.
        #[source]
        source: object_store::Error,
    },
    /// Listing a folder or prefix failed.
    #[error("cannot list {location}: {reason}")]
    List {
        /// The folder or prefix listed.
        location: String,
        /// The backend's error, as text (the folder and bucket listers fail differently).
        reason: String,
    },
    /// Writing a file failed.
    #[error("cannot write {location}: {source}")]
    Write {
        /// The file's full location.
        location: String,
        /// The backend's error.
        #[source]
        source: object_store::Error,
    },
    /// Deleting a file failed.
    #[error("cannot delete {location}: {source}")]
    Delete {
        /// The file's full location.
        location: String,
        /// The backend's error.
        #[source]
        source: object_store::Error,
    },
    /// Another writer kept changing the file between our read and our conditional write.
    #[error("{location} kept changing under another writer; gave up after {attempts} attempts")]
    Conflict {
        /// The file's full location.
        location: String,
        /// How many read-compare-write rounds were tried.
        attempts: u32,
    },
    /// The store does not refuse stale conditional writes, which leader
    /// election needs.
    #[error(
        "{location} cannot hold a leader election: {reason}. Leader election needs a Cloud Storage bucket (gs://BUCKET/PREFIX); on a local folder run a single controller"
    )]
    Unconditional {
        /// The store.
        location: String,
        /// What the check found.
        reason: String,
    },
    /// A status kept by another writer: a controller of another region, or
    /// a later leader of the same one (this writer was deposed).
    #[error(
        "{location} is kept by the controller of {holder} (epoch {theirs}); this one (epoch {ours}) leaves it alone"
    )]
    Fenced {
        /// The file's full location.
        location: String,
        /// The election (region) of the controller that wrote it.
        holder: String,
        /// Its epoch.
        theirs: u64,
        /// The writer's.
        ours: u64,
    },
    /// A conditional write found the object at another version than the one it was read at.
    #[error(
        "{location} was changed by another writer since it was read (expected {expected}, \
         found {found}); read it again and retry"
    )]
    Changed {
        /// The object's full location.
        location: String,
        /// The version the write was conditioned on (`none`: that there was none).
        expected: String,
        /// The version found (`none`: it is gone).
        found: String,
    },
}
