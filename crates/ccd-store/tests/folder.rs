#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The folder store: the shared behaviour suite plus what only a folder can get wrong.

mod common;

use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use ccd_store::{AnyStore, FolderStore, SpecStore, StoreError, StoreUrl};
use common::{Backdoor, Subject, behaviour_suite, expect_hint};
use tempfile::TempDir;

/// Plain filesystem access under the store's root.
struct Folder {
    dir: TempDir,
}

impl Folder {
    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }
}

impl Backdoor for Folder {
    async fn put(&self, rel: &str, bytes: &[u8]) {
        let path = self.path(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }

    async fn remove(&self, rel: &str) {
        std::fs::remove_file(self.path(rel)).unwrap();
    }

    async fn stamp(&self, rel: &str) -> Option<String> {
        let meta = std::fs::metadata(self.path(rel)).ok()?;
        Some(format!(
            "{}:{}.{}",
            meta.ino(),
            meta.mtime(),
            meta.mtime_nsec()
        ))
    }
}

async fn folder_subject() -> Subject<FolderStore, Folder> {
    let dir = tempfile::tempdir().unwrap();
    let store = FolderStore::new(dir.path()).unwrap();
    Subject {
        store,
        raw: Folder { dir },
    }
}

behaviour_suite!(folder_subject);

#[tokio::test]
async fn creates_its_folders_and_leaves_no_temporary_files() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("new/store");
    let store = FolderStore::new(&root).unwrap();
    assert!(root.join("specs").is_dir() && root.join("status").is_dir());
    for phase in ["a", "b", "c"] {
        store.write_status("app", phase.as_bytes()).await.unwrap();
    }
    let files: Vec<_> = std::fs::read_dir(root.join("status"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(files, ["app.yaml"]);
}

#[tokio::test]
async fn a_file_name_that_is_not_utf8_is_reported_without_hiding_others() {
    let s = folder_subject().await;
    s.raw.put("specs/good.yaml", b"a: 1\n").await;
    let odd = std::ffi::OsStr::from_bytes(b"caf\xe9.yaml");
    std::fs::write(s.raw.path("specs").join(odd), b"a: 2\n").unwrap();
    std::fs::write(
        s.raw
            .path("specs")
            .join(std::ffi::OsStr::from_bytes(b"\xff.txt")),
        b"",
    )
    .unwrap();

    let listing = s.store.list_specs().await.unwrap();
    assert_eq!(listing.specs.len(), 1);
    assert_eq!(listing.specs[0].name, "good");
    let [odd] = listing.unreadable.as_slice() else {
        panic!("{:?}", listing.unreadable)
    };
    assert!(odd.path.starts_with("specs/caf") && odd.path.ends_with(".yaml"));
    assert!(odd.error.to_string().contains("not UTF-8"), "{}", odd.error);
}

#[tokio::test]
async fn a_spec_that_cannot_be_looked_at_is_reported_never_taken_for_deleted() {
    let s = folder_subject().await;
    s.raw.put("specs/good.yaml", b"a: 1\n").await;
    // A link to a file that is gone (an unmounted volume, a half-done
    // deploy), and a link that loops: both are there, neither can be read.
    std::os::unix::fs::symlink("/nonexistent/web.yaml", s.raw.path("specs/web.yaml")).unwrap();
    std::os::unix::fs::symlink("loop.yaml", s.raw.path("specs/loop.yaml")).unwrap();

    let listing = s.store.list_specs().await.unwrap();
    assert_eq!(listing.specs.len(), 1);
    let names: Vec<&str> = listing.unreadable.iter().map(|u| u.name.as_str()).collect();
    assert_eq!(names, ["loop", "web"], "{:?}", listing.unreadable);
    let web = &listing.unreadable[1];
    assert!(
        web.error.to_string().contains("specs/web.yaml"),
        "the message names the file: {}",
        web.error
    );
}

#[tokio::test]
async fn a_vanished_store_folder_is_an_error_not_an_empty_listing() {
    let s = folder_subject().await;
    s.raw.put("specs/app.yaml", b"a: 1\n").await;
    std::fs::remove_dir_all(s.raw.dir.path()).unwrap();
    let err = s.store.list_specs().await.unwrap_err();
    assert!(matches!(err, StoreError::List { .. }), "{err}");
    let err = s.store.list_statuses().await.unwrap_err();
    assert!(matches!(err, StoreError::List { .. }), "{err}");
    assert!(
        err.to_string().contains("status"),
        "names the folder: {err}"
    );
}

#[tokio::test]
async fn a_status_name_that_is_not_utf8_hides_no_other_status() {
    let s = folder_subject().await;
    s.store.write_status("good", b"a: 1\n").await.unwrap();
    let odd = std::ffi::OsStr::from_bytes(b"caf\xe9.yaml");
    std::fs::write(s.raw.path("status").join(odd), b"a: 2\n").unwrap();
    assert_eq!(s.store.list_statuses().await.unwrap(), ["good"]);
}

#[tokio::test]
async fn a_removed_specs_folder_lists_empty_and_is_watched_again_when_recreated() {
    let s = folder_subject().await;
    let mut hints = s.store.changes().unwrap();
    s.raw.put("specs/app.yaml", b"a: 1\n").await;
    expect_hint(&mut hints, "app").await;

    let specs = s.raw.path("specs");
    let aside = s.raw.path("specs.old");
    std::fs::rename(&specs, &aside).unwrap();
    assert!(s.store.list_specs().await.unwrap().specs.is_empty());

    // A sync tool swapping in a new folder: the store watches it and hints what it holds.
    let staged = s.raw.path("specs.new");
    std::fs::create_dir(&staged).unwrap();
    std::fs::write(staged.join("swapped.yaml"), b"a: 1\n").unwrap();
    std::fs::rename(&staged, &specs).unwrap();
    expect_hint(&mut hints, "swapped").await;
    // And files changed in it later are seen through the new watch.
    std::fs::write(specs.join("later.yaml"), b"a: 1\n").unwrap();
    expect_hint(&mut hints, "later").await;
}

#[tokio::test]
async fn relative_and_file_urls_open_the_same_folder() {
    let dir = tempfile::tempdir().unwrap();
    let url: StoreUrl = format!("file://{}", dir.path().display()).parse().unwrap();
    let store = AnyStore::open(&url).unwrap();
    store.write_status("app", b"x").await.unwrap();
    let again = FolderStore::new(dir.path().join("specs/..")).unwrap();
    assert_eq!(
        again.read_status("app").await.unwrap().unwrap().as_ref(),
        b"x"
    );
    assert_eq!(
        Path::new(store.location()),
        std::fs::canonicalize(dir.path()).unwrap()
    );
}

#[tokio::test]
async fn the_controls_folder_comes_with_the_first_control_and_keeps_no_temporary_files() {
    let dir = tempfile::tempdir().unwrap();
    let url: StoreUrl = dir.path().display().to_string().parse().unwrap();
    let store = AnyStore::open(&url).unwrap();
    assert!(!dir.path().join("controls").exists());
    for control in ["pause: true\n", "resume: true\n", "abort: true\n"] {
        store
            .write_control("app", control.as_bytes())
            .await
            .unwrap();
    }
    let files: Vec<_> = std::fs::read_dir(dir.path().join("controls"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(files, ["app.yaml"]);
    assert_eq!(
        std::fs::read(dir.path().join("controls/app.yaml")).unwrap(),
        b"abort: true\n"
    );
    // Another process (a restarted controller, `ccd rollout`) opening the folder sees it.
    let again = FolderStore::new(dir.path()).unwrap();
    let read = again.read_control("app").await.unwrap();
    assert_eq!(read.as_deref(), Some(&b"abort: true\n"[..]));
    store.delete_control("app").await.unwrap();
    assert_eq!(again.read_control("app").await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn of_racing_marker_writes_from_one_version_exactly_one_wins() {
    // Each writer is its own store, as two `ccd sync` processes are; the lock file makes the
    // folder's compare-and-rename one step.
    let dir = tempfile::tempdir().unwrap();
    let first = FolderStore::new(dir.path()).unwrap();
    first.write_marker(b"commit: base\n", None).await.unwrap();
    let base = first.read_marker().await.unwrap().unwrap().generation;
    let mut writers = tokio::task::JoinSet::new();
    for i in 0..8 {
        let (root, base) = (dir.path().to_owned(), base.clone());
        writers.spawn(async move {
            let store = FolderStore::new(&root).unwrap();
            let bytes = format!("commit: writer-{i}\n");
            store.write_marker(bytes.as_bytes(), Some(&base)).await
        });
    }
    let mut won = 0;
    while let Some(result) = writers.join_next().await {
        match result.unwrap() {
            Ok(()) => won += 1,
            Err(StoreError::Changed { .. }) => {}
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(won, 1);
    let now = first.read_marker().await.unwrap().unwrap();
    assert!(now.bytes.starts_with(b"commit: writer-"), "{:?}", now.bytes);
}
