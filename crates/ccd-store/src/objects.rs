//! The behaviour both stores share, written once over `object_store` so the folder and the
//! bucket cannot drift: spec listing and loading, size limits, (in `records`) change-only
//! writes of the status and control records, and (in `sync`) what `ccd sync` writes.

mod records;
mod sync;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::stream::{self, StreamExt};
use object_store::path::Path;
use object_store::{GetOptions, ObjectMeta, ObjectStore};

pub(crate) use self::records::Record;
pub use self::sync::{Generation, Marker};
use crate::names::{self, SPECS_DIR, SpecName};
use crate::{MAX_SPEC_BYTES, SpecFile, SpecListing, StoreError, UnreadableSpec};

/// Spec reads in flight at once during a listing (a bucket pays one round trip per new spec).
const PARALLEL_READS: usize = 8;

/// How the files directly under `specs/` are enumerated.
#[derive(Debug)]
pub(crate) enum Lister {
    /// `std::fs::read_dir` of the store folder's `<dir>/` (this is the store's root).
    /// object_store's local listing fails as a whole on one file name that is not UTF-8;
    /// reading the folder ourselves lets one odd file be reported without hiding every other.
    Folder(PathBuf),
    /// object_store's delimited listing of `<root>/<dir>/`.
    Objects,
}

/// How a backend checks `PutMode::Update`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UpdateCheck {
    /// It cannot (object_store's local filesystem).
    Unsupported,
    /// Against the object version read (GCS: the generation, from `x-goog-generation`).
    Version,
    /// Against the etag read (object_store's in-memory store, S3-style stores).
    // Only the in-memory conflict tests build one today.
    #[cfg_attr(not(test), allow(dead_code))]
    ETag,
}

/// One file directly under `specs/`, as listed.
#[derive(Debug)]
pub(crate) struct Listed {
    /// The file name, or its lossy form when it is not UTF-8.
    pub(crate) file_name: Result<String, String>,
    pub(crate) size: u64,
    /// Changes whenever the object changes (etag, size and time); `None` when unknown.
    pub(crate) stamp: Option<String>,
    /// Why the entry exists but could not be looked at (a folder entry that
    /// cannot be stat'ed): the app is reported, never taken for deleted.
    pub(crate) problem: Option<String>,
}

/// Specs already read, keyed by file name, with the listing stamp they were read under.
type SpecCache = Mutex<HashMap<String, (String, SpecFile)>>;

#[derive(Debug)]
pub(crate) struct Objects {
    store: Arc<dyn ObjectStore>,
    /// Key prefix of the store inside `store` (empty for a folder, whose store is rooted there).
    root: Path,
    /// Printable base for messages: a folder path or `gs://bucket/prefix`.
    location: String,
    lister: Lister,
    /// What `PutMode::Update` needs from the backend, if it supports it at all.
    update_check: UpdateCheck,
    /// Reuse unchanged specs between listings (buckets: saves a GET per spec per relist).
    cache: Option<SpecCache>,
    /// Stamp per spec file name at the last `list_specs`, where listings carry stamps: the
    /// change poller's starting point, so it hints whatever changed since the caller listed.
    listed_stamps: Mutex<Option<HashMap<String, String>>>,
}

impl Objects {
    pub(crate) fn new(
        store: Arc<dyn ObjectStore>,
        root: Path,
        location: String,
        lister: Lister,
        update_check: UpdateCheck,
    ) -> Self {
        let cache = matches!(lister, Lister::Objects).then(SpecCache::default);
        Self {
            store,
            root,
            location,
            lister,
            update_check,
            cache,
            listed_stamps: Mutex::new(None),
        }
    }

    /// Stamps of the spec files seen by the last `list_specs` (see [`Listed::stamp`]).
    pub(crate) fn listed_stamps(&self) -> Option<HashMap<String, String>> {
        lock(&self.listed_stamps).clone()
    }

    pub(crate) fn location(&self) -> &str {
        &self.location
    }

    fn key(&self, dir: &str, file: &str) -> Path {
        self.root.clone().join(dir).join(file)
    }

    fn display(&self, dir: &str, file: &str) -> String {
        format!("{}/{dir}/{file}", self.location)
    }

    /// The files directly under `specs/`; nested folders are not included.
    pub(crate) async fn list_raw(&self) -> Result<Vec<Listed>, StoreError> {
        self.list_dir(SPECS_DIR).await
    }

    /// The files directly under `<dir>/` (`specs`, `status`, ...); nested folders are not
    /// included. A missing `<dir>/` in an existing store holds no files.
    pub(crate) async fn list_dir(&self, dir: &str) -> Result<Vec<Listed>, StoreError> {
        match &self.lister {
            Lister::Folder(root) => {
                let dir = root.join(dir);
                let shown = dir.display().to_string();
                tokio::task::spawn_blocking(move || read_folder(&dir))
                    .await
                    .map_err(|e| e.to_string())
                    .and_then(|r| r.map_err(|e| e.to_string()))
                    .map_err(|reason| StoreError::List {
                        location: shown,
                        reason,
                    })
            }
            Lister::Objects => {
                let prefix = self.root.clone().join(dir);
                let listing = self
                    .store
                    .list_with_delimiter(Some(&prefix))
                    .await
                    .map_err(|e| StoreError::List {
                        location: format!("{}/{dir}/", self.location),
                        reason: e.to_string(),
                    })?;
                Ok(listing.objects.into_iter().filter_map(listed).collect())
            }
        }
    }

    pub(crate) async fn list_specs(&self) -> Result<SpecListing, StoreError> {
        let mut by_app: BTreeMap<String, Vec<Listed>> = BTreeMap::new();
        let mut out = SpecListing::default();
        let listed = self.list_raw().await?;
        if matches!(self.lister, Lister::Objects) {
            *lock(&self.listed_stamps) = Some(spec_stamps(&listed));
        }
        for entry in listed {
            let name = match &entry.file_name {
                Ok(name) => name.clone(),
                Err(lossy) => {
                    if let SpecName::App(app) | SpecName::Invalid(app, _) = names::classify(lossy) {
                        out.unreadable.push(UnreadableSpec {
                            error: StoreError::InvalidAppName {
                                name: app.clone(),
                                reason: "the file name is not UTF-8",
                            },
                            name: app,
                            path: format!("{SPECS_DIR}/{lossy}"),
                        });
                    }
                    continue;
                }
            };
            match names::classify(&name) {
                SpecName::Ignored => {}
                SpecName::Invalid(app, reason) => out.unreadable.push(UnreadableSpec {
                    error: StoreError::InvalidAppName {
                        name: app.clone(),
                        reason,
                    },
                    name: app,
                    path: format!("{SPECS_DIR}/{name}"),
                }),
                SpecName::App(app) => by_app.entry(app).or_default().push(entry),
            }
        }

        let mut reads = Vec::new();
        for (app, mut files) in by_app {
            let file = match files.len() {
                1 => files.remove(0),
                _ => {
                    files.sort_by(|a, b| a.file_name.cmp(&b.file_name));
                    let [first, second] = [&files[0], &files[1]].map(|f| {
                        self.display(SPECS_DIR, f.file_name.as_deref().unwrap_or_default())
                    });
                    out.unreadable.push(UnreadableSpec {
                        path: format!("{SPECS_DIR}/{app}.yaml"),
                        error: StoreError::Ambiguous {
                            name: app.clone(),
                            first,
                            second,
                        },
                        name: app,
                    });
                    continue;
                }
            };
            reads.push((app, file));
        }

        let loaded: Vec<_> = stream::iter(reads)
            .map(|(app, file)| self.load_listed(app, file))
            .buffer_unordered(PARALLEL_READS)
            .collect()
            .await;
        for result in loaded {
            match result {
                Ok(Some(spec)) => out.specs.push(spec),
                Ok(None) => {}
                Err(unreadable) => out.unreadable.push(unreadable),
            }
        }
        out.specs.sort_by(|a, b| a.name.cmp(&b.name));
        out.unreadable.sort_by(|a, b| a.path.cmp(&b.path));
        self.prune_cache(&out);
        Ok(out)
    }

    /// Loads one listed spec; `Ok(None)` when it vanished since the listing.
    async fn load_listed(
        &self,
        app: String,
        file: Listed,
    ) -> Result<Option<SpecFile>, UnreadableSpec> {
        let file_name = file.file_name.unwrap_or_default();
        let path = format!("{SPECS_DIR}/{file_name}");
        let unreadable = |error| UnreadableSpec {
            name: app.clone(),
            path: path.clone(),
            error,
        };
        if let Some(reason) = file.problem {
            return Err(unreadable(StoreError::List {
                location: self.display(SPECS_DIR, &file_name),
                reason,
            }));
        }
        if file.size > MAX_SPEC_BYTES {
            return Err(unreadable(StoreError::TooLarge {
                location: self.display(SPECS_DIR, &file_name),
                size: file.size,
                limit: MAX_SPEC_BYTES,
            }));
        }
        if let (Some(cache), Some(stamp)) = (&self.cache, &file.stamp) {
            let cached = lock(cache).get(&file_name).cloned();
            if let Some((cached_stamp, spec)) = cached
                && &cached_stamp == stamp
            {
                return Ok(Some(spec));
            }
        }
        let spec = self.read_spec(&app, &file_name).await.map_err(unreadable)?;
        if let (Some(cache), Some(stamp), Some(spec)) = (&self.cache, file.stamp, &spec) {
            // Cached under the listing's stamp: if the object changed between list and read,
            // the next listing's stamp differs and the spec is simply read again.
            lock(cache).insert(file_name, (stamp, spec.clone()));
        }
        Ok(spec)
    }

    fn prune_cache(&self, listing: &SpecListing) {
        if let Some(cache) = &self.cache {
            lock(cache).retain(|_, (_, spec)| listing.specs.iter().any(|s| s.path == spec.path));
        }
    }

    async fn read_spec(&self, app: &str, file_name: &str) -> Result<Option<SpecFile>, StoreError> {
        Ok(self
            .read(SPECS_DIR, file_name, MAX_SPEC_BYTES)
            .await?
            .map(|(bytes, _)| SpecFile {
                name: app.to_owned(),
                path: format!("{SPECS_DIR}/{file_name}"),
                version: names::version_of(&bytes),
                bytes,
            }))
    }

    pub(crate) async fn get_spec(&self, name: &str) -> Result<Option<SpecFile>, StoreError> {
        names::app_name(name)?;
        let (yaml_file, yml_file) = (format!("{name}.yaml"), format!("{name}.yml"));
        let (yaml, yml) = futures::join!(
            self.read_spec(name, &yaml_file),
            self.read_spec(name, &yml_file)
        );
        match (yaml?, yml?) {
            (Some(_), Some(_)) => Err(StoreError::Ambiguous {
                name: name.to_owned(),
                first: self.display(SPECS_DIR, &yaml_file),
                second: self.display(SPECS_DIR, &yml_file),
            }),
            (Some(spec), None) | (None, Some(spec)) => Ok(Some(spec)),
            (None, None) => Ok(None),
        }
    }

    /// Reads `<dir>/<file>`, refusing anything over `limit` before downloading it.
    /// A file's bytes and metadata, for records kept outside this module
    /// (leases); `None` when there is none.
    pub(crate) async fn read_file(
        &self,
        dir: &str,
        file: &str,
        limit: u64,
    ) -> Result<Option<(Bytes, ObjectMeta)>, StoreError> {
        self.read(dir, file, limit).await
    }

    /// One put with the caller's mode (create-only, conditional update).
    pub(crate) async fn put_file(
        &self,
        dir: &str,
        file: &str,
        payload: object_store::PutPayload,
        options: object_store::PutOptions,
    ) -> Result<object_store::PutResult, StoreError> {
        self.store
            .put_opts(&self.key(dir, file), payload, options)
            .await
            .map_err(|source| StoreError::Write {
                location: self.display(dir, file),
                source,
            })
    }

    /// Removes a file; succeeds when there is none.
    pub(crate) async fn delete_file(&self, dir: &str, file: &str) -> Result<(), StoreError> {
        match object_store::ObjectStoreExt::delete(&*self.store, &self.key(dir, file)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(source) => Err(StoreError::Delete {
                location: self.display(dir, file),
                source,
            }),
        }
    }

    /// A file's full location, for messages.
    pub(crate) fn display_file(&self, dir: &str, file: &str) -> String {
        self.display(dir, file)
    }

    async fn read(
        &self,
        dir: &str,
        file: &str,
        limit: u64,
    ) -> Result<Option<(Bytes, ObjectMeta)>, StoreError> {
        let location = || self.display(dir, file);
        let result = match self
            .store
            .get_opts(&self.key(dir, file), GetOptions::default())
            .await
        {
            Ok(result) => result,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(source) => {
                return Err(StoreError::Read {
                    location: location(),
                    source,
                });
            }
        };
        let too_large = |size| StoreError::TooLarge {
            location: location(),
            size,
            limit,
        };
        if result.meta.size > limit {
            return Err(too_large(result.meta.size));
        }
        let meta = result.meta.clone();
        let bytes = result.bytes().await.map_err(|source| StoreError::Read {
            location: location(),
            source,
        })?;
        match u64::try_from(bytes.len()) {
            Ok(len) if len <= limit => Ok(Some((bytes, meta))),
            Ok(len) => Err(too_large(len)),
            Err(_) => Err(too_large(u64::MAX)),
        }
    }
}

/// Stamp per spec file name (files with a valid app name, and the sync marker), for change
/// detection.
pub(crate) fn spec_stamps(listed: &[Listed]) -> HashMap<String, String> {
    listed
        .iter()
        .filter_map(|l| {
            let name = l.file_name.as_ref().ok()?;
            names::hint_of(name)?;
            Some((name.clone(), l.stamp.clone().unwrap_or_default()))
        })
        .collect()
}

/// A listed object as a [`Listed`] file; `None` for keys with no file name.
fn listed(meta: ObjectMeta) -> Option<Listed> {
    let file_name = meta.location.filename()?.to_owned();
    let stamp = format!(
        "{}|{}|{}",
        meta.e_tag.as_deref().unwrap_or_default(),
        meta.size,
        meta.last_modified.timestamp_micros()
    );
    Some(Listed {
        file_name: Ok(file_name),
        size: meta.size,
        stamp: Some(stamp),
        problem: None,
    })
}

/// Regular files (symlinks followed) directly in `dir`; a missing `dir` holds no files.
fn read_folder(dir: &std::path::Path) -> std::io::Result<Vec<Listed>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && dir_parent_exists(dir) => {
            return Ok(Vec::new());
        }
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry?;
        let file_name = entry
            .file_name()
            .into_string()
            .map_err(|raw| raw.to_string_lossy().into_owned());
        // Follows symlinks. A file deleted meanwhile is simply not there; one
        // that is there but cannot be looked at (no permission, a dangling
        // link) is a spec that cannot be read, not a deleted app.
        let meta = match std::fs::metadata(entry.path()) {
            Ok(meta) => meta,
            Err(e)
                if e.kind() == std::io::ErrorKind::NotFound
                    && std::fs::symlink_metadata(entry.path()).is_err() =>
            {
                continue;
            }
            Err(e) => {
                out.push(Listed {
                    file_name,
                    size: 0,
                    stamp: None,
                    problem: Some(e.to_string()),
                });
                continue;
            }
        };
        if !meta.is_file() {
            continue;
        }
        out.push(Listed {
            file_name,
            size: meta.len(),
            stamp: None,
            problem: None,
        });
    }
    Ok(out)
}

/// A missing `specs/` in an existing store folder means "no specs"; a missing store folder
/// (an unmounted volume, say) is an error, never an empty listing that would delete every app.
fn dir_parent_exists(dir: &std::path::Path) -> bool {
    dir.parent().is_some_and(std::path::Path::is_dir)
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // The cache holds plain data; a panic elsewhere cannot leave it half-updated.
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
