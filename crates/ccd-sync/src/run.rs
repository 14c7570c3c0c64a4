//! One sync: read the commit, compare with the store, upload and delete what the plan says,
//! then write the marker, conditionally on the version read before anything was written.

use std::collections::BTreeMap;
use std::path::PathBuf;

use ccd_store::{SpecStore, StoreError};
use tracing::{debug, warn};

use crate::git::{self, Commit, short};
use crate::marker::{MarkedFile, SyncMarker};
use crate::repo::{self, Repo};
use crate::{SyncError, plan};

/// What to sync.
#[derive(Debug, Clone)]
pub struct Options {
    pub repo: Repo,
    /// A branch, tag or commit; `None` for `HEAD`.
    pub reference: Option<String>,
    /// The folder of spec files in the repository (`--path`), as the user wrote it.
    pub path: String,
    /// Delete specs whose file is not in the commit.
    pub prune: bool,
    /// Allow deleting more than half of the store's specs.
    pub force: bool,
    /// Where URLs' cache clones go; `None` for the user's cache folder.
    pub cache: Option<PathBuf>,
}

/// One uploaded spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upload {
    pub app: String,
    /// Its path in the repository.
    pub path: String,
}

/// What a sync did.
#[derive(Debug, Clone)]
pub struct Report {
    pub commit: Commit,
    pub uploaded: Vec<Upload>,
    pub deleted: Vec<String>,
    pub unchanged: usize,
    /// Specs in the store the commit has no file for, left there (no `--prune`).
    pub kept: Vec<String>,
    /// Files passed over, and specs uploaded although the controller will refuse them: one
    /// line each, naming the file and the commit.
    pub warnings: Vec<String>,
    /// Whether the marker was written (it is not when it already said all this).
    pub marker_written: bool,
}

/// A commit read from the repository, ready to be applied to a store.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// The `--path` folder, normalised.
    folder: String,
    snapshot: git::Snapshot,
}

impl Fetched {
    pub fn commit(&self) -> &Commit {
        &self.snapshot.commit
    }
}

/// Syncs the commit `options` names into `store`: [`fetch`], then [`apply`].
pub async fn sync<S: SpecStore>(store: &S, options: &Options) -> Result<Report, SyncError> {
    let fetched = fetch(options).await?;
    apply(store, &fetched, options).await
}

/// Reads the commit `options` names; touches no store.
pub async fn fetch(options: &Options) -> Result<Fetched, SyncError> {
    let folder = repo::spec_folder(&options.path)?;
    let opened = git::open(
        &options.repo,
        options.reference.as_deref(),
        options.cache.as_deref(),
    )
    .await?;
    let snapshot = opened.read(&folder, &options.repo).await?;
    Ok(Fetched { folder, snapshot })
}

/// Puts a fetched commit into `store`: nothing is written unless the plan is made.
pub async fn apply<S: SpecStore>(
    store: &S,
    fetched: &Fetched,
    options: &Options,
) -> Result<Report, SyncError> {
    let snapshot = &fetched.snapshot;
    let folder = fetched.folder.clone();
    let commit = snapshot.commit.clone();
    let mut warnings = snapshot.warnings.clone();

    // Read before any write: the marker is written only if no other sync wrote it meanwhile.
    let before = store.read_marker().await?;
    let previous = before
        .as_ref()
        .and_then(|m| SyncMarker::parse(&m.bytes).ok());
    let listing = store.list_specs().await?;
    let mut stored: BTreeMap<String, Option<String>> = listing
        .specs
        .iter()
        .map(|s| (s.name.clone(), Some(s.version.clone())))
        .collect();
    for bad in &listing.unreadable {
        // Only names the store can write are the sync's to replace or delete.
        if ccd_store::check_app_name(&bad.name).is_ok() {
            stored.entry(bad.name.clone()).or_insert(None);
        }
    }
    let checksums: BTreeMap<String, String> = snapshot
        .files
        .iter()
        .map(|f| (f.app.clone(), ccd_store::spec_version(&f.bytes)))
        .collect();
    let plan = plan(
        &checksums,
        &snapshot.held,
        &stored,
        options.prune,
        options.force,
    )?;

    // Every invalid file of the commit is named, uploaded or already there: it is still
    // synced, since the controller stalls only its own app.
    for file in &snapshot.files {
        if let Err(problems) = ccd_spec::parse_file(&file.app, &file.path, &file.bytes) {
            warnings.extend(problems.iter().map(|p| {
                format!(
                    "{p} (commit {}; synced anyway: the controller stalls only app {}, which keeps its last good revision)",
                    short(&commit.id),
                    file.app
                )
            }));
        }
    }
    let mut uploaded = Vec::new();
    for file in snapshot
        .files
        .iter()
        .filter(|f| plan.upload.contains(&f.app))
    {
        store.write_spec(&file.app, &file.bytes).await?;
        debug!(app = %file.app, path = %file.path, "uploaded");
        uploaded.push(Upload {
            app: file.app.clone(),
            path: file.path.clone(),
        });
    }
    for app in &plan.delete {
        store.delete_spec(app).await?;
        debug!(%app, "deleted");
    }

    let marker = SyncMarker {
        repository: repository(&options.repo),
        path: folder,
        commit: commit.id.clone(),
        author: commit.author.clone(),
        time: commit.time.clone(),
        files: snapshot
            .files
            .iter()
            .map(|f| {
                let checksum = checksums.get(&f.app).cloned().unwrap_or_default();
                // A file unchanged since the last sync keeps the commit that brought it.
                let brought_by = previous
                    .as_ref()
                    .filter(|m| m.files.iter().any(|p| p.app == f.app && p.path == f.path))
                    .and_then(|m| m.commit_of(&f.app, &checksum))
                    .unwrap_or_else(|| commit.id.clone());
                MarkedFile {
                    app: f.app.clone(),
                    path: f.path.clone(),
                    checksum,
                    commit: brought_by,
                }
            })
            .collect(),
    };
    let unchanged_marker = previous.as_ref().is_some_and(|m| *m == marker);
    let marker_written = if unchanged_marker {
        debug!("the marker already names this commit and these files");
        false
    } else {
        let bytes = marker.to_yaml();
        match store
            .write_marker(bytes.as_bytes(), before.as_ref().map(|m| &m.generation))
            .await
        {
            Ok(()) => true,
            Err(StoreError::Changed {
                location,
                expected,
                found,
            }) => {
                warn!(%location, "the marker changed under this sync");
                return Err(SyncError::Raced {
                    location,
                    detail: format!("read at {expected}, found at {found}"),
                });
            }
            Err(e) => return Err(e.into()),
        }
    };
    Ok(Report {
        commit,
        uploaded,
        deleted: plan.delete,
        unchanged: plan.unchanged.len(),
        kept: plan.kept,
        warnings,
        marker_written,
    })
}

/// The repository as the marker names it: a local path made absolute (the same repository
/// synced from another folder is the same marker), a URL without credentials.
fn repository(repo: &Repo) -> String {
    match repo {
        Repo::Local(path) => std::path::absolute(path)
            .unwrap_or_else(|_| path.clone())
            .display()
            .to_string(),
        Repo::Remote(_) => repo.to_string(),
    }
}
