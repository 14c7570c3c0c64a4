//! `ccd_sync::sync` against real git repositories (made with the `git` command in temporary
//! folders) and a real folder store.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use ccd_store::{FolderStore, SpecStore, StoreError};
use ccd_sync::{Options, Repo, SyncError, SyncMarker, sync};
use tempfile::TempDir;

const WEB: &str = "apiVersion: ccd/v1\nkind: App\nmetadata: {name: web}\nspec:\n  image: example/web:1\n  version: \"1\"\n  port: 8080\n";

fn git(dir: &Path, args: &[&str]) -> String {
    let out = std::process::Command::new("git")
        .args(["-c", "user.name=Ada", "-c", "user.email=ada@example.com"])
        .args([
            "-c",
            "init.defaultBranch=main",
            "-c",
            "commit.gpgsign=false",
        ])
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A repository with `files` (path → text) committed; returns the commit id.
fn commit(repo: &Path, files: &[(&str, Option<&str>)], message: &str) -> String {
    for (path, text) in files {
        let full = repo.join(path);
        match text {
            Some(text) => {
                std::fs::create_dir_all(full.parent().unwrap()).unwrap();
                std::fs::write(full, text).unwrap();
            }
            None => std::fs::remove_file(full).unwrap(),
        }
    }
    git(repo, &["add", "-A"]);
    git(repo, &["commit", "--quiet", "-m", message]);
    git(repo, &["rev-parse", "HEAD"])
}

struct World {
    _tmp: TempDir,
    repo: PathBuf,
    data: PathBuf,
    store: FolderStore,
}

fn world() -> World {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    git(&repo, &["init", "--quiet"]);
    let data = tmp.path().join("data");
    let store = FolderStore::new(&data).unwrap();
    World {
        _tmp: tmp,
        repo,
        data,
        store,
    }
}

fn options(repo: &Path) -> Options {
    Options {
        repo: Repo::Local(repo.to_owned()),
        reference: None,
        path: "deploy".into(),
        prune: false,
        force: false,
        cache: None,
    }
}

fn app(name: &str, version: &str) -> String {
    WEB.replace("name: web", &format!("name: {name}"))
        .replace("version: \"1\"", &format!("version: \"{version}\""))
}

async fn marker(store: &FolderStore) -> SyncMarker {
    let m = store.read_marker().await.unwrap().expect("a marker");
    SyncMarker::parse(&m.bytes).unwrap()
}

#[tokio::test]
async fn a_commit_is_synced_then_only_its_changes() {
    let w = world();
    let web = app("web", "1");
    let first = commit(
        &w.repo,
        &[
            ("deploy/web.yaml", Some(web.as_str())),
            ("deploy/api.yml", Some(app("api", "1").as_str())),
            ("deploy/README.md", Some("not a spec")),
            ("deploy/nested/deep.yaml", Some("not synced")),
            ("other/x.yaml", Some("not synced")),
        ],
        "first",
    );
    let report = sync(&w.store, &options(&w.repo)).await.unwrap();
    assert_eq!(report.commit.id, first);
    assert_eq!(report.commit.author, "Ada <ada@example.com>");
    let uploaded: Vec<_> = report.uploaded.iter().map(|u| u.path.as_str()).collect();
    assert_eq!(uploaded, ["deploy/api.yml", "deploy/web.yaml"]);
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
    assert!(report.marker_written);
    assert_eq!(
        std::fs::read_to_string(w.data.join("specs/web.yaml")).unwrap(),
        web
    );
    // Uploaded under the app's name, whatever the extension in the repository.
    assert!(w.data.join("specs/api.yaml").is_file());
    let m = marker(&w.store).await;
    assert_eq!(
        (m.commit.as_str(), m.path.as_str()),
        (first.as_str(), "deploy")
    );
    let spec = w.store.get_spec("web").await.unwrap().unwrap();
    assert_eq!(
        m.origin("web", &spec.version).unwrap().path,
        "deploy/web.yaml"
    );

    // The same commit again: nothing written.
    let again = sync(&w.store, &options(&w.repo)).await.unwrap();
    assert!(again.uploaded.is_empty() && again.deleted.is_empty());
    assert_eq!(again.unchanged, 2);
    assert!(!again.marker_written);

    // One file changes, a broken one appears: both go up, the broken one with a warning
    // naming the file and the commit.
    let second = commit(
        &w.repo,
        &[
            ("deploy/web.yaml", Some(app("web", "2").as_str())),
            (
                "deploy/broken.yaml",
                Some(
                    "apiVersion: ccd/v1\nkind: App\nmetadata: {name: broken}\nspec:\n  port: 70000\n",
                ),
            ),
        ],
        "second",
    );
    let report = sync(&w.store, &options(&w.repo)).await.unwrap();
    let uploaded: Vec<_> = report.uploaded.iter().map(|u| u.app.as_str()).collect();
    assert_eq!(uploaded, ["broken", "web"]);
    assert_eq!(report.unchanged, 1);
    assert!(!report.warnings.is_empty());
    let short = &second[..12];
    assert!(
        report
            .warnings
            .iter()
            .all(|w| w.starts_with("deploy/broken.yaml:") && w.contains(short)),
        "{:?}",
        report.warnings
    );
    let m = marker(&w.store).await;
    assert_eq!(m.commit, second);
    // api's file did not change: its origin is still the commit that brought it.
    let spec = w.store.get_spec("api").await.unwrap().unwrap();
    assert_eq!(m.origin("api", &spec.version).unwrap().commit, first);
    let spec = w.store.get_spec("web").await.unwrap().unwrap();
    assert_eq!(m.origin("web", &spec.version).unwrap().commit, second);
}

#[tokio::test]
async fn deletions_need_prune_and_more_than_half_needs_force() {
    let w = world();
    let files: Vec<(String, String)> = ["a", "b", "c"]
        .iter()
        .map(|n| (format!("deploy/{n}.yaml"), app(n, "1")))
        .collect();
    let refs: Vec<(&str, Option<&str>)> = files
        .iter()
        .map(|(p, t)| (p.as_str(), Some(t.as_str())))
        .collect();
    commit(&w.repo, &refs, "three apps");
    sync(&w.store, &options(&w.repo)).await.unwrap();

    let one_gone = commit(&w.repo, &[("deploy/c.yaml", None)], "c goes");
    let kept = sync(&w.store, &options(&w.repo)).await.unwrap();
    assert_eq!(kept.kept, ["c"]);
    assert!(kept.deleted.is_empty());
    assert!(w.data.join("specs/c.yaml").is_file());
    // The marker names only the commit's files: c has no origin any more.
    let m = marker(&w.store).await;
    assert_eq!(m.commit, one_gone);
    assert!(m.files.iter().all(|f| f.app != "c"));

    let pruned = sync(
        &w.store,
        &Options {
            prune: true,
            ..options(&w.repo)
        },
    )
    .await
    .unwrap();
    assert_eq!(pruned.deleted, ["c"]);
    assert!(!w.data.join("specs/c.yaml").exists());

    // Both remaining apps gone at once: more than half, refused without --force, and nothing
    // in the store is touched.
    let before = w.store.read_marker().await.unwrap();
    commit(
        &w.repo,
        &[
            ("deploy/a.yaml", None),
            ("deploy/b.yaml", None),
            ("deploy/keep.txt", Some("x")),
        ],
        "all gone",
    );
    let err = sync(
        &w.store,
        &Options {
            prune: true,
            ..options(&w.repo)
        },
    )
    .await
    .unwrap_err();
    assert!(matches!(err, SyncError::Plan(_)), "{err}");
    let message = err.to_string();
    assert!(
        message.contains("2 of the store's 2") && message.contains("--force"),
        "{message}"
    );
    assert!(w.data.join("specs/a.yaml").is_file());
    assert_eq!(w.store.read_marker().await.unwrap(), before);
    let forced = sync(
        &w.store,
        &Options {
            prune: true,
            force: true,
            ..options(&w.repo)
        },
    )
    .await
    .unwrap();
    assert_eq!(forced.deleted, ["a", "b"]);
}

#[tokio::test]
async fn a_url_is_fetched_into_a_cache_clone() {
    let w = world();
    let cache = w._tmp.path().join("cache");
    commit(
        &w.repo,
        &[("deploy/web.yaml", Some(app("web", "1").as_str()))],
        "first",
    );
    let url = format!("file://{}", w.repo.display());
    let remote = Options {
        repo: url.parse().unwrap(),
        cache: Some(cache.clone()),
        ..options(&w.repo)
    };
    let first = sync(&w.store, &remote).await.unwrap();
    assert_eq!(first.uploaded.len(), 1);
    assert_eq!(marker(&w.store).await.repository, url);
    let second = commit(
        &w.repo,
        &[("deploy/web.yaml", Some(app("web", "2").as_str()))],
        "second",
    );
    let report = sync(&w.store, &remote).await.unwrap();
    assert_eq!(report.commit.id, second);
    assert_eq!(report.uploaded.len(), 1);
    let clones: Vec<_> = std::fs::read_dir(&cache)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(clones.len(), 2, "one clone and its lock file: {clones:?}");

    // An older commit by --ref.
    git(&w.repo, &["tag", "v2"]);
    let tagged = sync(
        &w.store,
        &Options {
            reference: Some("v2".into()),
            ..remote.clone()
        },
    )
    .await
    .unwrap();
    assert_eq!(tagged.commit.id, second);
}

#[tokio::test]
async fn a_repository_that_cannot_be_read_touches_nothing() {
    let w = world();
    commit(
        &w.repo,
        &[("deploy/web.yaml", Some(app("web", "1").as_str()))],
        "first",
    );
    sync(&w.store, &options(&w.repo)).await.unwrap();
    let before = w.store.read_marker().await.unwrap();

    let missing = w._tmp.path().join("nowhere");
    let err = sync(&w.store, &options(&missing)).await.unwrap_err();
    assert!(err.to_string().contains("no such folder"), "{err}");
    let not_git = w._tmp.path().join("plain");
    std::fs::create_dir_all(&not_git).unwrap();
    let err = sync(&w.store, &options(&not_git)).await.unwrap_err();
    assert!(matches!(err, SyncError::Git { .. }), "{err}");
    let err = sync(
        &w.store,
        &Options {
            path: "specs".into(),
            ..options(&w.repo)
        },
    )
    .await
    .unwrap_err();
    assert!(matches!(err, SyncError::NoFolder { .. }), "{err}");
    assert!(err.to_string().contains("\"specs\""), "{err}");
    let err = sync(
        &w.store,
        &Options {
            reference: Some("nope".into()),
            ..options(&w.repo)
        },
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("nope"), "{err}");
    let url = Options {
        repo: format!("file://{}", missing.display()).parse().unwrap(),
        cache: Some(w._tmp.path().join("cache")),
        ..options(&w.repo)
    };
    let err = sync(&w.store, &url).await.unwrap_err();
    assert!(matches!(err, SyncError::Git { .. }), "{err}");

    assert_eq!(w.store.read_marker().await.unwrap(), before);
    assert!(w.data.join("specs/web.yaml").is_file());
}

#[tokio::test]
async fn files_the_store_would_refuse_are_skipped_and_kept() {
    let w = world();
    commit(
        &w.repo,
        &[
            ("deploy/web.yaml", Some(app("web", "1").as_str())),
            ("deploy/dup.yaml", Some(app("dup", "1").as_str())),
        ],
        "first",
    );
    sync(&w.store, &options(&w.repo)).await.unwrap();
    let big = "#".repeat(usize::try_from(ccd_store::MAX_SPEC_BYTES).unwrap() + 1);
    commit(
        &w.repo,
        &[
            ("deploy/dup.yml", Some(app("dup", "2").as_str())),
            ("deploy/web.yaml", Some(big.as_str())),
            ("deploy/Bad Name.yaml", Some("x: 1\n")),
        ],
        "trouble",
    );
    let report = sync(
        &w.store,
        &Options {
            prune: true,
            ..options(&w.repo)
        },
    )
    .await
    .unwrap();
    assert!(
        report.uploaded.is_empty() && report.deleted.is_empty(),
        "{report:?}"
    );
    assert_eq!(report.warnings.len(), 3, "{:?}", report.warnings);
    let all = report.warnings.join("\n");
    assert!(all.contains("deploy/dup.yaml and deploy/dup.yml"), "{all}");
    assert!(
        all.contains("deploy/web.yaml") && all.contains("limit"),
        "{all}"
    );
    assert!(all.contains("deploy/Bad Name.yaml"), "{all}");
    assert!(w.data.join("specs/web.yaml").is_file() && w.data.join("specs/dup.yaml").is_file());
}

/// A folder store where "another sync" writes the marker while this one uploads.
struct Meddling {
    inner: FolderStore,
    meddled: std::sync::atomic::AtomicBool,
}

impl SpecStore for Meddling {
    fn location(&self) -> &str {
        self.inner.location()
    }
    async fn list_specs(&self) -> Result<ccd_store::SpecListing, StoreError> {
        self.inner.list_specs().await
    }
    async fn get_spec(&self, name: &str) -> Result<Option<ccd_store::SpecFile>, StoreError> {
        self.inner.get_spec(name).await
    }
    fn changes(&self) -> Option<futures::stream::BoxStream<'static, String>> {
        None
    }
    async fn read_status(&self, app: &str) -> Result<Option<ccd_store::Bytes>, StoreError> {
        self.inner.read_status(app).await
    }
    async fn list_statuses(&self) -> Result<Vec<String>, StoreError> {
        self.inner.list_statuses().await
    }
    async fn write_status(&self, app: &str, bytes: &[u8]) -> Result<bool, StoreError> {
        self.inner.write_status(app, bytes).await
    }
    async fn delete_status(&self, app: &str) -> Result<(), StoreError> {
        self.inner.delete_status(app).await
    }
    async fn write_status_fenced(
        &self,
        app: &str,
        bytes: &[u8],
        fence: ccd_store::Fence,
    ) -> Result<bool, StoreError> {
        self.inner.write_status_fenced(app, bytes, fence).await
    }
    async fn read_control(&self, app: &str) -> Result<Option<ccd_store::Bytes>, StoreError> {
        self.inner.read_control(app).await
    }
    async fn write_control(&self, app: &str, bytes: &[u8]) -> Result<(), StoreError> {
        self.inner.write_control(app, bytes).await
    }
    async fn delete_control(&self, app: &str) -> Result<(), StoreError> {
        self.inner.delete_control(app).await
    }
    async fn read_scaling(&self, app: &str) -> Result<Option<ccd_store::Bytes>, StoreError> {
        self.inner.read_scaling(app).await
    }
    async fn write_scaling(&self, app: &str, bytes: &[u8]) -> Result<bool, StoreError> {
        self.inner.write_scaling(app, bytes).await
    }
    async fn delete_scaling(&self, app: &str) -> Result<(), StoreError> {
        self.inner.delete_scaling(app).await
    }
    async fn write_spec(&self, app: &str, bytes: &[u8]) -> Result<bool, StoreError> {
        if !self.meddled.swap(true, std::sync::atomic::Ordering::SeqCst) {
            let theirs = self.inner.read_marker().await?.map(|m| m.generation);
            self.inner
                .write_marker(b"commit: theirs\n", theirs.as_ref())
                .await?;
        }
        self.inner.write_spec(app, bytes).await
    }
    async fn delete_spec(&self, app: &str) -> Result<(), StoreError> {
        self.inner.delete_spec(app).await
    }
    async fn read_marker(&self) -> Result<Option<ccd_store::Marker>, StoreError> {
        self.inner.read_marker().await
    }
    async fn write_marker(
        &self,
        bytes: &[u8],
        expected: Option<&ccd_store::Generation>,
    ) -> Result<(), StoreError> {
        self.inner.write_marker(bytes, expected).await
    }
}

#[tokio::test]
async fn a_sync_that_loses_the_marker_to_another_says_so() {
    let w = world();
    commit(
        &w.repo,
        &[("deploy/web.yaml", Some(app("web", "1").as_str()))],
        "first",
    );
    let store = Meddling {
        inner: FolderStore::new(&w.data).unwrap(),
        meddled: Default::default(),
    };
    let err = sync(&store, &options(&w.repo)).await.unwrap_err();
    assert!(matches!(err, SyncError::Raced { .. }), "{err}");
    let message = err.to_string();
    assert!(
        message.contains("specs/.ccd-sync") && message.contains("run ccd sync again"),
        "{message}"
    );
    // The other sync's marker stands.
    let m = w.store.read_marker().await.unwrap().unwrap();
    assert_eq!(m.bytes.as_ref(), b"commit: theirs\n");
    // Run again: it wins this time.
    sync(&store, &options(&w.repo)).await.unwrap();
    assert_eq!(marker(&w.store).await.commit.len(), 40);
}
