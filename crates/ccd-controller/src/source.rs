//! The spec store as the controller's source: each app's spec, parsed and
//! validated, or the located problems that keep it from being deployed.
//!
//! Specs are user input, parsed on every list and read. Parsing runs on
//! Tokio's blocking pool, so that the controller's loop (which polls the
//! reflector, and with it these reads) keeps starting and finishing
//! reconciles meanwhile; and each file is parsed once per content: a relist
//! of unchanged files parses nothing.
//!
//! Each answer also says which commit the spec came from when `ccd sync` put
//! it there: the sync marker is read once per relist (and when the store hints
//! it changed), and an app whose content is the marker's file for it gets the
//! marker's commit and path as its origin.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use ccd_runtime::{Changes, Source};
use ccd_spec::App;
use ccd_store::{MARKER_HINT, SpecFile, SpecStore, StoreError};
pub use ccd_sync::Origin;
use ccd_sync::SyncMarker;
use futures::StreamExt as _;
use tokio::task::{JoinError, spawn_blocking};
use tracing::{debug, error, warn};

/// What the store says about one app.
#[derive(Debug, Clone, PartialEq)]
pub enum Desired {
    /// A valid spec: deploy it.
    Valid {
        app: Box<App>,
        path: String,
        version: String,
        /// The commit and file `ccd sync` put it there from, if it did.
        origin: Option<Origin>,
    },
    /// A spec that cannot be deployed: every problem, located. The running
    /// revision keeps serving; status says why nothing changes.
    Invalid {
        path: String,
        version: String,
        problems: Vec<String>,
        origin: Option<Origin>,
    },
}

impl Desired {
    /// The commit and file `ccd sync` put the spec there from: the sync
    /// marker names this very content.
    pub fn origin(&self) -> Option<&Origin> {
        match self {
            Desired::Valid { origin, .. } | Desired::Invalid { origin, .. } => origin.as_ref(),
        }
    }

    /// The same answer, with the origin `marker` gives `app`'s content.
    fn with_origin(mut self, app: &str, marker: Option<&SyncMarker>) -> Desired {
        let found = marker.and_then(|m| m.origin(app, self.version()));
        match &mut self {
            Desired::Valid { origin, .. } | Desired::Invalid { origin, .. } => *origin = found,
        }
        self
    }

    pub fn path(&self) -> &str {
        match self {
            Desired::Valid { path, .. } | Desired::Invalid { path, .. } => path,
        }
    }

    /// The spec file's content hash.
    pub fn version(&self) -> &str {
        match self {
            Desired::Valid { version, .. } | Desired::Invalid { version, .. } => version,
        }
    }
}

/// Turns a spec file into what the controller wants for its app.
pub fn desired(file: &SpecFile) -> Desired {
    let version = file.version.clone();
    match ccd_spec::parse_file(&file.name, &file.path, &file.bytes) {
        Ok(app) => Desired::Valid {
            app: Box::new(app),
            path: file.path.clone(),
            version,
            origin: None,
        },
        Err(problems) => Desired::Invalid {
            path: file.path.clone(),
            version,
            problems,
            origin: None,
        },
    }
}

/// Why the source could not answer.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The blocking task parsing specs did not finish (the runtime is
    /// shutting down).
    #[error("parsing the specs was interrupted: {0}")]
    Interrupted(#[from] JoinError),
}

/// How many spec files a [`SpecSource`] has parsed: a handle, taken before
/// the source is handed to a controller, for tests and logs.
#[derive(Debug, Clone, Default)]
pub struct ParseCount(Arc<AtomicU64>);

impl ParseCount {
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// The answer for one file's content.
#[derive(Debug)]
struct Parsed {
    path: String,
    version: String,
    desired: Desired,
}

impl Parsed {
    /// The answer, if it was for this very file and content (the version is
    /// the content's hash).
    fn for_file(&self, file: &SpecFile) -> Option<Desired> {
        let same =
            !file.version.is_empty() && self.path == file.path && self.version == file.version;
        same.then(|| self.desired.clone())
    }
}

/// Turns a file into its answer: [`desired`], or a test's stand-in.
type Parser = Arc<dyn Fn(&SpecFile) -> Desired + Send + Sync>;

/// A [`SpecStore`] seen as a [`Source`] of [`Desired`] apps.
pub struct SpecSource<S> {
    store: Arc<S>,
    /// The last answer per app, for the files the last list saw (and those
    /// read since): bounded by the store's files.
    parsed: Mutex<HashMap<String, Parsed>>,
    parses: ParseCount,
    parse: Parser,
    /// The sync marker as last read: read once per relist, and again when the
    /// store hints that it changed; never once per app.
    marker: Arc<Mutex<Option<SyncMarker>>>,
    /// Hints from elsewhere (Cloud Storage's Pub/Sub notifications), merged
    /// with the store's own when the controller subscribes.
    extra: Mutex<Option<Changes>>,
}

impl<S> fmt::Debug for SpecSource<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SpecSource")
            .field("remembered", &self.memo().len())
            .field("parses", &self.parses.get())
            .finish_non_exhaustive()
    }
}

impl<S> SpecSource<S> {
    pub fn new(store: Arc<S>) -> Self {
        SpecSource {
            store,
            parsed: Mutex::new(HashMap::new()),
            parses: ParseCount::default(),
            parse: Arc::new(desired),
            marker: Arc::default(),
            extra: Mutex::new(None),
        }
    }

    /// The same source, with `hints` (app names, or [`MARKER_HINT`]) besides
    /// the store's own: the store's poller stays the backstop.
    pub fn with_hints(self, hints: Changes) -> Self {
        *self.extra.lock().unwrap_or_else(PoisonError::into_inner) = Some(hints);
        self
    }

    /// The same source, parsing with `parse` (a test's slow or counting stand-in).
    #[cfg(test)]
    pub(crate) fn with_parser(
        mut self,
        parse: impl Fn(&SpecFile) -> Desired + Send + Sync + 'static,
    ) -> Self {
        self.parse = Arc::new(parse);
        self
    }

    /// Counts the files this source parses.
    pub fn parses(&self) -> ParseCount {
        self.parses.clone()
    }

    fn memo(&self) -> std::sync::MutexGuard<'_, HashMap<String, Parsed>> {
        // Nothing panics while holding the lock, and the memo is only a
        // shortcut: whatever a poisoned one holds is still right for its
        // version.
        self.parsed.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn job(&self) -> Job {
        Job {
            parse: Arc::clone(&self.parse),
            parses: self.parses.clone(),
        }
    }

    /// Parses `files` on the blocking pool, one after the other, so that one
    /// relist holds at most one of its threads.
    async fn parse_all(&self, files: Vec<SpecFile>) -> Result<Vec<(String, Parsed)>, JoinError> {
        if files.is_empty() {
            return Ok(Vec::new());
        }
        let count = files.len();
        let job = self.job();
        let parsed =
            spawn_blocking(move || files.into_iter().map(|f| job.run(f)).collect()).await?;
        debug!(count, "parsed changed specs");
        Ok(parsed)
    }

    /// Parses one file on the blocking pool.
    async fn parse_one(&self, file: SpecFile) -> Result<(String, Parsed), JoinError> {
        let job = self.job();
        spawn_blocking(move || job.run(file)).await
    }
}

/// The last marker read (a shortcut: a poisoned lock still holds a marker).
fn marker_of(cell: &Mutex<Option<SyncMarker>>) -> std::sync::MutexGuard<'_, Option<SyncMarker>> {
    cell.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Reads the sync marker into `cell`. A marker that cannot be read or parsed
/// leaves origins as they were (read error) or unknown (not a marker): the
/// specs themselves are unaffected either way.
async fn refresh_marker<S: SpecStore>(store: &S, cell: &Mutex<Option<SyncMarker>>) {
    let read = match store.read_marker().await {
        Ok(None) => None,
        Ok(Some(m)) => match SyncMarker::parse(&m.bytes) {
            Ok(marker) => Some(marker),
            Err(why) => {
                warn!(
                    marker = %format!("{}/specs/.ccd-sync", store.location()),
                    %why,
                    "the sync marker is not one this ccd can read; specs are deployed without their commit until the next ccd sync rewrites it"
                );
                None
            }
        },
        Err(e) => {
            warn!(error = %e, "cannot read the sync marker; keeping the last one read");
            return;
        }
    };
    *marker_of(cell) = read;
}

/// What a blocking task needs to parse files.
struct Job {
    parse: Parser,
    parses: ParseCount,
}

impl Job {
    /// The file's answer, under its app's name. A panic (a bug: the spec
    /// parser never panics, whatever the bytes) is kept to the one file
    /// rather than failing every list.
    fn run(&self, file: SpecFile) -> (String, Parsed) {
        self.parses.0.fetch_add(1, Ordering::Relaxed);
        let desired = catch_unwind(AssertUnwindSafe(|| (self.parse)(&file)))
            .unwrap_or_else(|panic| {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                error!(path = %file.path, panic = %what, "parsing a spec panicked");
                Desired::Invalid {
                    path: file.path.clone(),
                    version: file.version.clone(),
                    problems: vec![format!(
                        "{}:1:1: ccd failed while reading this spec, a bug in ccd; please report it: {what}",
                        file.path
                    )],
                    origin: None,
                }
            });
        let parsed = Parsed {
            desired,
            path: file.path,
            version: file.version,
        };
        (file.name, parsed)
    }
}

impl<S: SpecStore> Source for SpecSource<S> {
    type Object = Desired;
    type Error = SourceError;

    async fn list(&self) -> Result<Vec<(String, Desired)>, SourceError> {
        let listing = self.store.list_specs().await?;
        let mut out: Vec<(String, Desired)> = Vec::with_capacity(listing.specs.len());
        let mut changed = Vec::new();
        {
            let memo = self.memo();
            for file in listing.specs {
                match memo.get(&file.name).and_then(|p| p.for_file(&file)) {
                    Some(known) => out.push((file.name, known)),
                    None => changed.push(file),
                }
            }
        }
        let fresh = self.parse_all(changed).await?;
        {
            // The memo keeps only what this list saw: a file gone from the
            // store leaves it.
            let mut memo = self.memo();
            let unchanged: HashSet<&str> = out.iter().map(|(name, _)| name.as_str()).collect();
            memo.retain(|name, _| unchanged.contains(name.as_str()));
            for (name, parsed) in fresh {
                out.push((name.clone(), parsed.desired.clone()));
                memo.insert(name, parsed);
            }
        }
        // A spec that exists but cannot be read is not a deleted app.
        for bad in listing.unreadable {
            out.push((
                bad.name.clone(),
                Desired::Invalid {
                    path: bad.path.clone(),
                    version: String::new(),
                    problems: vec![bad.error.to_string()],
                    origin: None,
                },
            ));
        }
        // Read after the specs: `ccd sync` writes it after them.
        refresh_marker(&*self.store, &self.marker).await;
        let marker = marker_of(&self.marker).clone();
        Ok(out
            .into_iter()
            .map(|(name, d)| {
                let d = d.with_origin(&name, marker.as_ref());
                (name, d)
            })
            .collect())
    }

    /// The store's hints, with the marker's hint turned into a hint for each
    /// app whose origin it changed (an unchanged file keeps its commit, so a
    /// commit touching one spec looks at one app).
    fn changes(&self) -> Option<Changes> {
        let extra = self
            .extra
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let hints = match (self.store.changes(), extra) {
            (None, None) => return None,
            (Some(own), None) => own,
            (None, Some(extra)) => extra,
            (Some(own), Some(extra)) => futures::stream::select(own, extra).boxed(),
        };
        let (store, cell) = (Arc::clone(&self.store), Arc::clone(&self.marker));
        let hints = hints
            .then(move |hint| {
                let (store, cell) = (Arc::clone(&store), Arc::clone(&cell));
                async move {
                    if hint != MARKER_HINT {
                        return vec![hint];
                    }
                    let before = marker_of(&cell).clone();
                    refresh_marker(&*store, &cell).await;
                    let after = marker_of(&cell).clone();
                    SyncMarker::changed_apps(before.as_ref(), after.as_ref())
                }
            })
            .flat_map(futures::stream::iter);
        Some(Box::pin(hints))
    }

    async fn get(&self, key: &str) -> Result<Option<Desired>, SourceError> {
        let file = match self.store.get_spec(key).await {
            Ok(Some(file)) => file,
            Ok(None) => {
                self.memo().remove(key);
                return Ok(None);
            }
            Err(e @ (StoreError::TooLarge { .. } | StoreError::Ambiguous { .. })) => {
                return Ok(Some(Desired::Invalid {
                    path: format!("specs/{key}.yaml"),
                    version: String::new(),
                    problems: vec![e.to_string()],
                    origin: None,
                }));
            }
            Err(e) => return Err(e.into()),
        };
        // The marker as last read: a hint is about one app, never worth a read of it.
        let marker = marker_of(&self.marker).clone();
        let known = self.memo().get(key).and_then(|p| p.for_file(&file));
        if let Some(known) = known {
            return Ok(Some(known.with_origin(key, marker.as_ref())));
        }
        let (name, parsed) = self.parse_one(file).await?;
        let desired = parsed.desired.clone();
        self.memo().insert(name, parsed);
        Ok(Some(desired.with_origin(key, marker.as_ref())))
    }
}

#[cfg(test)]
#[path = "source_tests.rs"]
mod tests;
