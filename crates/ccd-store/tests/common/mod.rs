//! The behaviour suite every store must pass, run by `folder.rs` and `bucket.rs` through
//! `behaviour_suite!`, so the two stores cannot drift apart.
//!
//! A test sees the store through the `SpecStore` port and changes files behind its back
//! through a `Backdoor` (plain filesystem calls, or the GCS JSON API): the way users and
//! `ccd sync` change specs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::time::Duration;

use ccd_store::{Fence, MARKER_HINT, MAX_SPEC_BYTES, MAX_STATUS_BYTES, SpecStore, StoreError};
use futures::StreamExt;
use futures::stream::BoxStream;

/// Raw access to the storage under a store, bypassing it.
pub trait Backdoor: Send + Sync {
    /// Writes `rel` (e.g. `specs/a.yaml`), creating or replacing it.
    fn put(&self, rel: &str, bytes: &[u8]) -> impl Future<Output = ()> + Send;
    /// Removes `rel`.
    fn remove(&self, rel: &str) -> impl Future<Output = ()> + Send;
    /// Something that changes on every write of `rel` (inode and mtime, or the generation);
    /// `None` when `rel` does not exist.
    fn stamp(&self, rel: &str) -> impl Future<Output = Option<String>> + Send;
}

/// A fresh, empty store and a backdoor into it (which keeps its folder or server alive).
pub struct Subject<S, B> {
    pub store: S,
    pub raw: B,
}

/// How long a change hint may take; generous for shared CI machines. Hints are awaited, and
/// this only bounds a failing test.
const HINT_TIMEOUT: Duration = Duration::from_secs(30);

/// Expands to one `#[tokio::test]` per behaviour, each on a fresh subject from `$subject`.
macro_rules! behaviour_suite {
    ($subject:path) => {
        behaviour_suite!(@each $subject;
            empty_store_lists_nothing,
            lists_and_gets_specs_ignoring_other_files,
            version_tracks_content_only,
            oversized_spec_is_reported_not_loaded,
            ambiguous_and_misnamed_specs_are_reported,
            status_is_written_only_when_changed,
            status_delete_is_idempotent,
            statuses_are_listed_whether_or_not_their_spec_remains,
            controls_are_written_read_and_deleted_beside_status,
            controls_are_never_specs,
            bad_app_names_are_refused,
            changes_hint_created_edited_and_deleted_specs,
            a_status_from_a_later_leader_is_not_overwritten,
            specs_are_written_and_deleted_as_sync_does,
            the_marker_is_written_only_at_the_version_read,
        );
    };
    (@each $subject:path; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $name() {
                crate::common::$name($subject().await).await;
            }
        )*
    };
}
pub(crate) use behaviour_suite;

fn names(listing: &ccd_store::SpecListing) -> Vec<&str> {
    listing.specs.iter().map(|s| s.name.as_str()).collect()
}

pub async fn empty_store_lists_nothing<S: SpecStore, B: Backdoor>(s: Subject<S, B>) {
    let listing = s.store.list_specs().await.unwrap();
    assert!(listing.specs.is_empty() && listing.unreadable.is_empty());
    assert_eq!(s.store.get_spec("hello").await.unwrap(), None);
    assert_eq!(s.store.read_status("hello").await.unwrap(), None);
    assert!(s.store.list_statuses().await.unwrap().is_empty());
}

pub async fn lists_and_gets_specs_ignoring_other_files<S: SpecStore, B: Backdoor>(
    s: Subject<S, B>,
) {
    s.raw.put("specs/hello.yaml", b"name: hello\n").await;
    s.raw.put("specs/web.yml", b"name: web\n").await;
    for ignored in [
        "specs/notes.txt",
        "specs/README",
        "specs/.hidden.yaml",
        "specs/.hello.yaml.swp",
        "specs/hello.yaml~",
        "specs/#hello.yaml#",
        "specs/nested/deep.yaml",
        "status/hello.yaml",
        "other/stray.yaml",
        "top.yaml",
    ] {
        s.raw.put(ignored, b"name: ignored\n").await;
    }

    let listing = s.store.list_specs().await.unwrap();
    assert_eq!(names(&listing), ["hello", "web"]);
    assert!(listing.unreadable.is_empty(), "{:?}", listing.unreadable);
    let hello = &listing.specs[0];
    assert_eq!(hello.path, "specs/hello.yaml");
    assert_eq!(hello.bytes.as_ref(), b"name: hello\n");
    assert_eq!(listing.specs[1].path, "specs/web.yml");

    assert_eq!(
        s.store.get_spec("hello").await.unwrap().as_ref(),
        Some(hello)
    );
    let web = s.store.get_spec("web").await.unwrap().unwrap();
    assert_eq!(web.bytes.as_ref(), b"name: web\n");
    assert_eq!(s.store.get_spec("missing").await.unwrap(), None);
    assert_eq!(s.store.get_spec("deep").await.unwrap(), None);
    assert_eq!(s.store.get_spec("notes").await.unwrap(), None);
}

pub async fn version_tracks_content_only<S: SpecStore, B: Backdoor>(s: Subject<S, B>) {
    s.raw.put("specs/app.yaml", b"replicas: 1\n").await;
    let first = s.store.get_spec("app").await.unwrap().unwrap();
    let stamp = s.raw.stamp("specs/app.yaml").await;

    // Same bytes written again: a new file or generation underneath, the same version.
    s.raw.put("specs/app.yaml", b"replicas: 1\n").await;
    assert_ne!(s.raw.stamp("specs/app.yaml").await, stamp);
    let same = s.store.get_spec("app").await.unwrap().unwrap();
    assert_eq!(same.version, first.version);

    s.raw.put("specs/app.yaml", b"replicas: 2\n").await;
    let changed = s.store.get_spec("app").await.unwrap().unwrap();
    assert_ne!(changed.version, first.version);
    let listed = s.store.list_specs().await.unwrap();
    assert_eq!(listed.specs[0].version, changed.version);
    assert_eq!(listed.specs[0].bytes.as_ref(), b"replicas: 2\n");
}

pub async fn oversized_spec_is_reported_not_loaded<S: SpecStore, B: Backdoor>(s: Subject<S, B>) {
    let limit = usize::try_from(MAX_SPEC_BYTES).unwrap();
    s.raw.put("specs/at-limit.yaml", &vec![b'#'; limit]).await;
    s.raw.put("specs/big.yaml", &vec![b'#'; limit + 1]).await;

    let listing = s.store.list_specs().await.unwrap();
    assert_eq!(names(&listing), ["at-limit"]);
    assert_eq!(listing.specs[0].bytes.len(), limit);
    let [big] = listing.unreadable.as_slice() else {
        panic!("expected one unreadable spec: {:?}", listing.unreadable)
    };
    assert_eq!(
        (big.name.as_str(), big.path.as_str()),
        ("big", "specs/big.yaml")
    );
    assert!(
        matches!(big.error, StoreError::TooLarge { .. }),
        "{}",
        big.error
    );
    assert!(
        big.error.to_string().contains("specs/big.yaml"),
        "{}",
        big.error
    );

    let err = s.store.get_spec("big").await.unwrap_err();
    assert!(matches!(err, StoreError::TooLarge { .. }), "{err}");
    assert!(err.to_string().contains("specs/big.yaml"), "{err}");
}

pub async fn ambiguous_and_misnamed_specs_are_reported<S: SpecStore, B: Backdoor>(
    s: Subject<S, B>,
) {
    s.raw.put("specs/dup.yaml", b"a: 1\n").await;
    s.raw.put("specs/dup.yml", b"a: 2\n").await;
    s.raw.put("specs/Bad Name.yaml", b"a: 3\n").await;
    s.raw.put("specs/ok.yaml", b"a: 4\n").await;

    let listing = s.store.list_specs().await.unwrap();
    assert_eq!(names(&listing), ["ok"]);
    let reported: Vec<_> = listing
        .unreadable
        .iter()
        .map(|u| (u.name.as_str(), u.path.as_str()))
        .collect();
    assert_eq!(
        reported,
        [
            ("Bad Name", "specs/Bad Name.yaml"),
            ("dup", "specs/dup.yaml")
        ]
    );
    assert!(matches!(
        listing.unreadable[0].error,
        StoreError::InvalidAppName { .. }
    ));
    let dup = listing.unreadable[1].error.to_string();
    assert!(dup.contains("dup.yaml") && dup.contains("dup.yml"), "{dup}");

    let err = s.store.get_spec("dup").await.unwrap_err();
    assert!(matches!(err, StoreError::Ambiguous { .. }), "{err}");
}

pub async fn status_is_written_only_when_changed<S: SpecStore, B: Backdoor>(s: Subject<S, B>) {
    assert!(
        s.store
            .write_status("hello", b"phase: Ready\n")
            .await
            .unwrap()
    );
    let stamp = s.raw.stamp("status/hello.yaml").await;
    assert!(stamp.is_some());
    assert_eq!(
        s.store
            .read_status("hello")
            .await
            .unwrap()
            .unwrap()
            .as_ref(),
        b"phase: Ready\n"
    );

    assert!(
        !s.store
            .write_status("hello", b"phase: Ready\n")
            .await
            .unwrap()
    );
    assert_eq!(
        s.raw.stamp("status/hello.yaml").await,
        stamp,
        "identical write touched the file"
    );

    assert!(
        s.store
            .write_status("hello", b"phase: Degraded\n")
            .await
            .unwrap()
    );
    assert_ne!(s.raw.stamp("status/hello.yaml").await, stamp);
    assert_eq!(
        s.store
            .read_status("hello")
            .await
            .unwrap()
            .unwrap()
            .as_ref(),
        b"phase: Degraded\n"
    );

    // Someone else rewrote it: the store compares with what is there now, not a memory.
    s.raw.put("status/hello.yaml", b"phase: Ready\n").await;
    assert!(
        s.store
            .write_status("hello", b"phase: Degraded\n")
            .await
            .unwrap()
    );

    // Status never shows up as a spec.
    assert!(s.store.list_specs().await.unwrap().specs.is_empty());
}

pub async fn status_delete_is_idempotent<S: SpecStore, B: Backdoor>(s: Subject<S, B>) {
    s.store.delete_status("ghost").await.unwrap();
    assert!(s.store.write_status("app", b"x: 1\n").await.unwrap());
    s.store.delete_status("app").await.unwrap();
    assert_eq!(s.store.read_status("app").await.unwrap(), None);
    assert_eq!(s.raw.stamp("status/app.yaml").await, None);
    s.store.delete_status("app").await.unwrap();
    assert!(s.store.write_status("app", b"x: 1\n").await.unwrap());
}

pub async fn statuses_are_listed_whether_or_not_their_spec_remains<S: SpecStore, B: Backdoor>(
    s: Subject<S, B>,
) {
    s.raw.put("specs/web.yaml", b"v: 1\n").await;
    s.raw.put("specs/no-status.yaml", b"v: 1\n").await;
    assert!(
        s.store
            .write_status("web", b"phase: Ready\n")
            .await
            .unwrap()
    );
    // The spec is gone, the status remains: exactly when someone looks.
    assert!(
        s.store
            .write_status("gone", b"phase: Ready\n")
            .await
            .unwrap()
    );
    // The store lists it; whether it parses is the reader's business.
    s.raw.put("status/broken.yaml", b"{{{ not yaml").await;
    for not_a_status in [
        "status/Bad Name.yaml",
        "status/.hidden.yaml",
        "status/web.yml",
        "status/web.yaml#3",
        "status/notes.txt",
        "status/nested/deep.yaml",
        "controls/ctl.yaml",
        "scaling/scaled.yaml",
    ] {
        s.raw.put(not_a_status, b"phase: Ready\n").await;
    }
    assert_eq!(
        s.store.list_statuses().await.unwrap(),
        ["broken", "gone", "web"]
    );
    let broken = s.store.read_status("broken").await.unwrap();
    assert_eq!(broken.as_deref(), Some(&b"{{{ not yaml"[..]));

    s.store.delete_status("gone").await.unwrap();
    assert_eq!(s.store.list_statuses().await.unwrap(), ["broken", "web"]);
    // Listing statuses lists no specs, and the other way round.
    assert_eq!(
        names(&s.store.list_specs().await.unwrap()),
        ["no-status", "web"]
    );
}

pub async fn controls_are_written_read_and_deleted_beside_status<S: SpecStore, B: Backdoor>(
    s: Subject<S, B>,
) {
    assert_eq!(s.store.read_control("web").await.unwrap(), None);
    s.store.delete_control("web").await.unwrap();

    s.store
        .write_control("web", b"pause: true\n")
        .await
        .unwrap();
    let read = s.store.read_control("web").await.unwrap();
    assert_eq!(read.as_deref(), Some(&b"pause: true\n"[..]));
    let stamp = s.raw.stamp("controls/web.yaml").await;
    assert!(stamp.is_some(), "no controls/web.yaml in the store");
    // A control is not a status, nor another app's control.
    assert_eq!(s.store.read_status("web").await.unwrap(), None);
    assert_eq!(s.store.read_control("api").await.unwrap(), None);

    s.store
        .write_control("web", b"pause: true\n")
        .await
        .unwrap();
    assert_eq!(
        s.raw.stamp("controls/web.yaml").await,
        stamp,
        "identical write touched the file"
    );
    s.store
        .write_control("web", b"promote: true\n")
        .await
        .unwrap();
    assert_ne!(s.raw.stamp("controls/web.yaml").await, stamp);
    let read = s.store.read_control("web").await.unwrap();
    assert_eq!(read.as_deref(), Some(&b"promote: true\n"[..]));

    // What an operator's tool wrote by itself is read as is.
    s.raw.put("controls/api.yaml", b"abort: true\n").await;
    let read = s.store.read_control("api").await.unwrap();
    assert_eq!(read.as_deref(), Some(&b"abort: true\n"[..]));

    // Deleting a control leaves the status alone, and deleting twice is fine.
    assert!(
        s.store
            .write_status("web", b"phase: Ready\n")
            .await
            .unwrap()
    );
    s.store.delete_control("web").await.unwrap();
    assert_eq!(s.store.read_control("web").await.unwrap(), None);
    assert_eq!(s.raw.stamp("controls/web.yaml").await, None);
    s.store.delete_control("web").await.unwrap();
    let status = s.store.read_status("web").await.unwrap();
    assert_eq!(status.as_deref(), Some(&b"phase: Ready\n"[..]));

    let too_large = vec![b'#'; usize::try_from(MAX_STATUS_BYTES).unwrap() + 1];
    let err = s.store.write_control("web", &too_large).await.unwrap_err();
    assert!(matches!(err, StoreError::TooLarge { .. }), "{err}");
    assert!(err.to_string().contains("controls/web.yaml"), "{err}");
    assert_eq!(s.raw.stamp("controls/web.yaml").await, None);
}

pub async fn controls_are_never_specs<S: SpecStore, B: Backdoor>(s: Subject<S, B>) {
    s.raw.put("specs/web.yaml", b"v: 1\n").await;
    let listing = s.store.list_specs().await.unwrap();
    assert_eq!(names(&listing), ["web"]);
    let mut hints = s.store.changes().expect("this store reports changes");

    s.store
        .write_control("web", b"pause: true\n")
        .await
        .unwrap();
    s.store
        .write_control("ctl", b"pause: true\n")
        .await
        .unwrap();
    s.raw.put("controls/raw.yaml", b"abort: true\n").await;
    s.raw.put("specs/later.yaml", b"v: 1\n").await;
    // Hints come in order of the changes seen: none for the controls before the spec's.
    let seen = hints_until(&mut hints, "later").await;
    assert!(
        !seen.iter().any(|h| h == "ctl" || h == "raw"),
        "controls were hinted as specs: {seen:?}"
    );

    let listing = s.store.list_specs().await.unwrap();
    assert_eq!(names(&listing), ["later", "web"]);
    assert!(listing.unreadable.is_empty(), "{:?}", listing.unreadable);
    assert_eq!(s.store.get_spec("ctl").await.unwrap(), None);
    assert_eq!(
        s.store
            .get_spec("web")
            .await
            .unwrap()
            .unwrap()
            .bytes
            .as_ref(),
        b"v: 1\n"
    );
}

pub async fn bad_app_names_are_refused<S: SpecStore, B: Backdoor>(s: Subject<S, B>) {
    for bad in ["", "../escape", "a/b", ".hidden", "sp ace", "per%cent"] {
        let invalid =
            |r: Result<_, StoreError>| matches!(r, Err(StoreError::InvalidAppName { .. }));
        assert!(invalid(s.store.get_spec(bad).await.map(|_| ())), "{bad:?}");
        assert!(
            invalid(s.store.read_status(bad).await.map(|_| ())),
            "{bad:?}"
        );
        assert!(
            invalid(s.store.write_status(bad, b"x").await.map(|_| ())),
            "{bad:?}"
        );
        assert!(invalid(s.store.delete_status(bad).await), "{bad:?}");
        assert!(
            invalid(s.store.read_control(bad).await.map(|_| ())),
            "{bad:?}"
        );
        assert!(invalid(s.store.write_control(bad, b"x").await), "{bad:?}");
        assert!(invalid(s.store.delete_control(bad).await), "{bad:?}");
    }
    assert_eq!(s.raw.stamp("escape.yaml").await, None);
}

pub async fn changes_hint_created_edited_and_deleted_specs<S: SpecStore, B: Backdoor>(
    s: Subject<S, B>,
) {
    s.raw.put("specs/edited.yaml", b"v: 1\n").await;
    s.raw.put("specs/deleted.yaml", b"v: 1\n").await;
    // The controller's order: list once, then follow hints.
    let listing = s.store.list_specs().await.unwrap();
    assert_eq!(names(&listing), ["deleted", "edited"]);
    let mut hints = s.store.changes().expect("this store reports changes");

    s.raw.put("specs/created.yaml", b"v: 1\n").await;
    expect_hint(&mut hints, "created").await;
    s.raw.put("specs/edited.yaml", b"v: 2\n").await;
    expect_hint(&mut hints, "edited").await;
    s.raw.remove("specs/deleted.yaml").await;
    expect_hint(&mut hints, "deleted").await;
}

pub async fn specs_are_written_and_deleted_as_sync_does<S: SpecStore, B: Backdoor>(
    s: Subject<S, B>,
) {
    assert!(s.store.write_spec("web", b"v: 1\n").await.unwrap());
    let stamp = s.raw.stamp("specs/web.yaml").await;
    assert!(stamp.is_some(), "no specs/web.yaml");
    let web = s.store.get_spec("web").await.unwrap().unwrap();
    assert_eq!(web.bytes.as_ref(), b"v: 1\n");
    // The same bytes again: nothing written.
    assert!(!s.store.write_spec("web", b"v: 1\n").await.unwrap());
    assert_eq!(s.raw.stamp("specs/web.yaml").await, stamp);

    // A `.yml` twin left by hand would make the app ambiguous: the upload removes it.
    s.raw.put("specs/api.yml", b"v: old\n").await;
    assert!(s.store.write_spec("api", b"v: new\n").await.unwrap());
    assert_eq!(s.raw.stamp("specs/api.yml").await, None);
    let listing = s.store.list_specs().await.unwrap();
    assert_eq!(names(&listing), ["api", "web"]);
    assert!(listing.unreadable.is_empty(), "{:?}", listing.unreadable);

    s.raw.put("specs/web.yml", b"v: twin\n").await;
    s.store.delete_spec("web").await.unwrap();
    assert_eq!(s.raw.stamp("specs/web.yaml").await, None);
    assert_eq!(s.raw.stamp("specs/web.yml").await, None);
    s.store.delete_spec("web").await.unwrap();
    assert_eq!(names(&s.store.list_specs().await.unwrap()), ["api"]);

    let too_large = vec![b'#'; usize::try_from(MAX_SPEC_BYTES).unwrap() + 1];
    let err = s.store.write_spec("big", &too_large).await.unwrap_err();
    assert!(matches!(err, StoreError::TooLarge { .. }), "{err}");
    assert!(err.to_string().contains("specs/big.yaml"), "{err}");
    for bad in ["../escape", ".hidden", "a/b"] {
        let err = s.store.write_spec(bad, b"v: 1\n").await.unwrap_err();
        assert!(matches!(err, StoreError::InvalidAppName { .. }), "{err}");
        let err = s.store.delete_spec(bad).await.unwrap_err();
        assert!(matches!(err, StoreError::InvalidAppName { .. }), "{err}");
    }
}

pub async fn the_marker_is_written_only_at_the_version_read<S: SpecStore, B: Backdoor>(
    s: Subject<S, B>,
) {
    s.raw.put("specs/web.yaml", b"v: 1\n").await;
    let listing = s.store.list_specs().await.unwrap();
    let mut hints = s.store.changes().expect("this store reports changes");
    assert_eq!(s.store.read_marker().await.unwrap(), None);

    s.store.write_marker(b"commit: a\n", None).await.unwrap();
    expect_hint(&mut hints, MARKER_HINT).await;
    let first = s.store.read_marker().await.unwrap().unwrap();
    assert_eq!(first.bytes.as_ref(), b"commit: a\n");
    // "Create" loses to a marker that is there.
    let err = s
        .store
        .write_marker(b"commit: x\n", None)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Changed { .. }), "{err}");
    assert!(err.to_string().contains("specs/.ccd-sync"), "{err}");

    s.store
        .write_marker(b"commit: b\n", Some(&first.generation))
        .await
        .unwrap();
    let second = s.store.read_marker().await.unwrap().unwrap();
    assert_eq!(second.bytes.as_ref(), b"commit: b\n");
    assert_ne!(second.generation, first.generation);
    // A second sync that read the first marker finds it changed, and writes nothing.
    let err = s
        .store
        .write_marker(b"commit: c\n", Some(&first.generation))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Changed { .. }), "{err}");
    let now = s.store.read_marker().await.unwrap().unwrap();
    assert_eq!(now, second);

    // The marker is never a spec.
    let after = s.store.list_specs().await.unwrap();
    assert_eq!(names(&after), names(&listing));
    assert!(after.unreadable.is_empty(), "{:?}", after.unreadable);
}

/// Waits for a hint naming `app`, skipping others (hints may repeat or be spurious).
pub async fn expect_hint(hints: &mut BoxStream<'static, String>, app: &str) {
    hints_until(hints, app).await;
}

/// Waits for a hint naming `app`; returns the other hints that came before it.
pub async fn hints_until(hints: &mut BoxStream<'static, String>, app: &str) -> Vec<String> {
    let mut seen = Vec::new();
    let found = tokio::time::timeout(HINT_TIMEOUT, async {
        while let Some(hint) = hints.next().await {
            if hint == app {
                return true;
            }
            seen.push(hint);
        }
        false
    })
    .await;
    assert_eq!(found, Ok(true), "no hint for {app:?}; saw {seen:?}");
    seen
}

/// The election and epoch in a test status: its `epoch: ELECTION N` line.
fn epoch_line(bytes: &[u8]) -> Option<(String, u64)> {
    std::str::from_utf8(bytes).ok()?.lines().find_map(|l| {
        let (election, n) = l.strip_prefix("epoch: ")?.split_once(' ')?;
        Some((election.to_owned(), n.trim().parse().ok()?))
    })
}

pub async fn a_status_from_a_later_leader_is_not_overwritten<S: SpecStore, B: Backdoor>(
    s: Subject<S, B>,
) {
    let fence = |election: &str, epoch| Fence {
        election: election.to_owned(),
        epoch,
        read: epoch_line,
    };
    let ready = b"epoch: eu 7\nphase: Ready\n";
    assert!(
        s.store
            .write_status_fenced("app", ready, fence("eu", 7))
            .await
            .unwrap()
    );
    let refused = s
        .store
        .write_status_fenced("app", b"epoch: eu 5\nphase: Failed\n", fence("eu", 5))
        .await
        .unwrap_err();
    assert!(
        matches!(
            refused,
            StoreError::Fenced {
                theirs: 7,
                ours: 5,
                ..
            }
        ),
        "{refused}"
    );
    assert!(refused.to_string().contains("status/app.yaml"), "{refused}");
    assert_eq!(
        s.store.read_status("app").await.unwrap().unwrap().as_ref(),
        ready
    );
    // The same epoch and a later one write; a controller alone (epoch 0) of
    // the same region too.
    assert!(
        s.store
            .write_status_fenced("app", b"epoch: eu 7\nphase: Moving\n", fence("eu", 7))
            .await
            .unwrap()
    );
    assert!(
        s.store
            .write_status_fenced("app", b"epoch: eu 9\n", fence("eu", 9))
            .await
            .unwrap()
    );
    assert!(
        s.store
            .write_status_fenced("app", b"epoch: eu 0\n", fence("eu", 0))
            .await
            .unwrap()
    );
    // Another region's controller never replaces it, whatever its epoch.
    let other = s
        .store
        .write_status_fenced("app", b"epoch: us 99\n", fence("us", 99))
        .await
        .unwrap_err();
    assert!(other.to_string().contains("controller of eu"), "{other}");
    // A status naming no region is anyone's.
    s.raw.put("status/other.yaml", b"phase: Ready\n").await;
    assert!(
        s.store
            .write_status_fenced("other", b"epoch: us 1\n", fence("us", 1))
            .await
            .unwrap()
    );
}
