//! The source over the in-memory store: a hostile spec holds up neither the
//! other apps nor the controller's loop, and unchanged files are parsed once.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use ccd_runtime::{Config, Controller, Source};
use tokio::sync::oneshot;

use super::{Desired, SpecSource, desired};
use crate::status::{Phase, Status};
use crate::testing::{Harness, MemStore};

fn good(name: &str) -> String {
    format!(
        "apiVersion: ccd/v1
kind: App
metadata: {{name: {name}}}
spec:
  image: example/{name}:1
  version: \"1\"
  port: 8080
  machine: {{zones: [europe-west1-b]}}
  replicas: {{min: 2}}
  health: {{http: {{path: /healthz}}, interval: 1s, timeout: 1s, unhealthyThreshold: 2, initialDelay: 5s}}
  expose: {{internal: {{port: 80, allowFrom: [10.0.0.0/8]}}}}
"
    )
}

/// About 1 MiB: 100,000 keys under `spec` (every fifth one a repeat, the
/// rest unknown) and an `allowFrom` of 30,000 ranges.
fn hostile(name: &str) -> String {
    let mut text = format!(
        "apiVersion: ccd/v1\nkind: App\nmetadata: {{name: {name}}}\nspec:\n  image: img:1\n  version: \"1\"\n  port: 8080\n  expose:\n    internal:\n      allowFrom: ["
    );
    for i in (0..24_000).chain(0..6_000) {
        text.push_str(&format!("::{i:x}/128,"));
    }
    text.push_str("]\n");
    // Three characters, the first a digit or a capital: no key is a field name.
    const DIGITS: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    for i in 0..100_000_usize {
        let n = if i % 5 == 4 { i - 4 } else { i };
        let key: String = [n / (62 * 62), (n / 62) % 62, n % 62]
            .iter()
            .map(|d| char::from(DIGITS[*d]))
            .collect();
        text.push_str(&format!("  {key}:\n"));
    }
    assert!(text.len() <= 1 << 20, "within the store's size limit");
    text
}

fn status(store: &MemStore, app: &str) -> Option<Status> {
    let map = store.status.lock().unwrap();
    map.get(app).and_then(|b| Status::parse(b))
}

fn config() -> Config {
    Config {
        name: "deploy".into(),
        relist_interval: Duration::from_secs(1),
        ..Config::default()
    }
}

#[tokio::test(start_paused = true)]
async fn a_hostile_spec_beside_a_good_one_is_invalid_and_the_good_one_deploys() {
    let Harness {
        store, reconciler, ..
    } = Harness::new("");
    store.put_spec("web", &good("web"));
    store.put_spec("evil", &hostile("evil"));
    let source = SpecSource::new(store.clone());
    let parses = source.parses();
    let controller = Controller::new(source, reconciler, config());

    // Two minutes of the paused clock: a hundred and twenty relists.
    controller
        .run(tokio::time::sleep(Duration::from_secs(120)))
        .await;

    let web = status(&store, "web").expect("web was reconciled");
    assert_eq!(web.phase, Phase::Ready, "{}", web.to_yaml());
    let evil = status(&store, "evil").expect("evil was reconciled");
    assert_eq!(evil.phase, Phase::Stalled);
    let problems: Vec<&str> = evil.conditions[0].message.lines().collect();
    assert_eq!(problems.len(), ccd_spec::MAX_PROBLEMS + 1);
    assert!(
        problems[0].starts_with("specs/evil.yaml:11:3: spec.000: unknown field"),
        "{}",
        problems[0]
    );
    assert!(
        problems[100].ends_with(": … and 99900 more problems"),
        "{}",
        problems[100]
    );
    assert_eq!(
        parses.get(),
        2,
        "each file parsed once, however many relists"
    );
}

#[tokio::test]
async fn a_relist_of_unchanged_files_parses_nothing_and_forgets_removed_ones() {
    let store = Arc::new(MemStore::default());
    store.put_spec("web", &good("web"));
    store.put_spec("api", &good("api"));
    let source = SpecSource::new(store.clone());
    let parses = source.parses();

    let first = source.list().await.unwrap();
    assert_eq!(parses.get(), 2);
    assert_eq!(source.list().await.unwrap(), first, "the same answers");
    assert!(source.get("web").await.unwrap().is_some());
    assert_eq!(parses.get(), 2, "nothing changed, nothing parsed");

    // A changed file is parsed again, once, whether read or listed first.
    store.put_spec("web", &good("web").replace("\"1\"", "\"2\""));
    let read = source.get("web").await.unwrap().unwrap();
    assert_eq!(parses.get(), 3);
    let listed = source.list().await.unwrap();
    assert_eq!(parses.get(), 3);
    assert!(listed.contains(&("web".to_owned(), read.clone())));
    let Desired::Valid { app, .. } = read else {
        panic!("{read:?}")
    };
    assert_eq!(app.spec.version, "2");

    // A removed file leaves the memory; back, it is parsed again.
    store.specs.lock().unwrap().remove("api");
    let listed = source.list().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(source.memo().len(), 1, "only what the store still holds");
    store.put_spec("api", &good("api"));
    source.list().await.unwrap();
    assert_eq!(parses.get(), 4);

    // Gone on a read: forgotten too.
    store.specs.lock().unwrap().remove("api");
    assert_eq!(source.get("api").await.unwrap(), None);
    assert_eq!(source.memo().len(), 1);
}

#[tokio::test]
async fn a_spec_the_parser_panics_on_is_invalid_alone() {
    let store = Arc::new(MemStore::default());
    store.put_spec("web", &good("web"));
    store.put_spec("bad", &good("bad"));
    let source = SpecSource::new(store).with_parser(|file| {
        assert!(file.name != "bad", "a parser bug");
        desired(file)
    });
    let listed = source.list().await.unwrap();
    let bad = &listed.iter().find(|(name, _)| name == "bad").unwrap().1;
    let Desired::Invalid { problems, .. } = bad else {
        panic!("{bad:?}")
    };
    assert!(problems[0].contains("a bug in ccd"), "{problems:?}");
    assert!(
        listed
            .iter()
            .any(|(name, d)| name == "web" && matches!(d, Desired::Valid { .. }))
    );
}

/// Waits, in real time, for `done` while letting the runtime's other tasks
/// run. (The paused clock stands still while a blocking task runs, so a
/// Tokio sleep would wait for the parse this test holds.)
async fn spin_until(what: &str, done: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "gave up waiting for {what}"
        );
        tokio::task::yield_now().await;
    }
}

#[tokio::test(start_paused = true)]
async fn the_loop_reconciles_while_a_spec_is_being_parsed() {
    let Harness {
        store,
        reconciler,
        cloud,
        ..
    } = Harness::new("");
    store.put_spec("web", &good("web"));

    // Parsing `slow` holds until the test lets it go (or a minute passes, so
    // that a parse on the loop's own thread fails the test, not hangs it).
    let (release, held) = mpsc::channel::<()>();
    let held = Mutex::new(held);
    let parsing = Arc::new(AtomicBool::new(false));
    let parsed = Arc::new(AtomicBool::new(false));
    let (during, after) = (parsing.clone(), parsed.clone());
    let source = SpecSource::new(store.clone()).with_parser(move |file| {
        if file.name == "slow" {
            during.store(true, Ordering::SeqCst);
            let _ = held.lock().unwrap().recv_timeout(Duration::from_secs(60));
            after.store(true, Ordering::SeqCst);
        }
        desired(file)
    });
    let controller = Controller::new(source, reconciler, config());
    let trigger = controller.trigger();
    let (stop, stopped) = oneshot::channel::<()>();
    let running = tokio::spawn(controller.run(stopped));

    while status(&store, "web").is_none() {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    store.put_spec("slow", &good("slow"));
    // The next relist starts parsing `slow`.
    tokio::time::advance(Duration::from_secs(2)).await;
    spin_until("the parse to start", || parsing.load(Ordering::SeqCst)).await;

    let reads = cloud.state().reads;
    trigger.push("web");
    spin_until("web's reconcile", || cloud.state().reads > reads).await;
    assert!(
        !parsed.load(Ordering::SeqCst),
        "web was reconciled only after the parse ended: the parse held the loop"
    );

    release.send(()).unwrap();
    while status(&store, "slow").is_none() {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.send(()).unwrap();
    running.await.unwrap();
}

/// A sync marker naming `files` (app, content) at `commit`.
fn put_marker(store: &MemStore, commit: &str, files: &[(&str, &str)]) {
    let marker = ccd_sync::SyncMarker {
        repository: "https://git.example/ops.git".into(),
        path: "deploy".into(),
        commit: commit.into(),
        files: files
            .iter()
            .map(|(app, text)| ccd_sync::MarkedFile {
                app: (*app).into(),
                path: format!("deploy/{app}.yaml"),
                checksum: ccd_store::spec_version(text.as_bytes()),
                commit: String::new(),
            })
            .collect(),
        ..Default::default()
    };
    *store.marker.lock().unwrap() = Some((marker.to_yaml().into_bytes(), 1));
}

#[tokio::test(start_paused = true)]
async fn status_names_the_commit_a_spec_came_from_while_it_is_that_content() {
    let Harness {
        store, reconciler, ..
    } = Harness::new("");
    let (web, bad) = (
        good("web"),
        good("bad").replace("port: 8080", "port: 70000"),
    );
    store.put_spec("web", &web);
    store.put_spec("bad", &bad);
    put_marker(&store, "c0ffee", &[("web", &web), ("bad", &bad)]);
    let source = SpecSource::new(store.clone());
    let controller = Controller::new(source, reconciler, config());
    let store2 = store.clone();
    controller
        .run(async move {
            tokio::time::sleep(Duration::from_secs(30)).await;
            // Edited in the store by hand: no longer the commit's file.
            store2.put_spec("web", &good("web").replace("\"1\"", "\"2\""));
            tokio::time::sleep(Duration::from_secs(30)).await;
        })
        .await;

    let bad = status(&store, "bad").expect("bad was reconciled");
    assert_eq!(bad.phase, Phase::Stalled);
    let source = bad.source.as_ref().expect("bad's source");
    assert_eq!(
        (source.commit.as_str(), source.path.as_str()),
        ("c0ffee", "deploy/bad.yaml")
    );
    let message = &bad.conditions[0].message;
    assert!(
        message.contains("specs/bad.yaml:7:9: spec.port"),
        "{message}"
    );
    assert!(
        message.contains("this spec is deploy/bad.yaml at commit c0ffee"),
        "{message}"
    );
    let web = status(&store, "web").expect("web was reconciled");
    assert_eq!(web.revision.as_ref().unwrap().version, "2");
    assert_eq!(
        web.source,
        None,
        "an edited spec has no commit: {}",
        web.to_yaml()
    );
}

#[tokio::test]
async fn the_marker_is_read_once_per_list_and_a_broken_one_means_no_origin() {
    let store = Arc::new(MemStore::default());
    let web = good("web");
    store.put_spec("web", &web);
    put_marker(&store, "c0ffee", &[("web", &web)]);
    let source = SpecSource::new(store.clone());
    let listed = source.list().await.unwrap();
    assert_eq!(listed[0].1.origin().unwrap().commit, "c0ffee");
    // A hint for one app uses the marker as last read.
    *store.marker.lock().unwrap() = Some((b"commit: [not, a, marker]".to_vec(), 2));
    let got = source.get("web").await.unwrap().unwrap();
    assert_eq!(got.origin().unwrap().commit, "c0ffee");
    let listed = source.list().await.unwrap();
    assert_eq!(listed[0].1.origin(), None);
}

#[tokio::test]
async fn a_new_marker_hints_every_app_it_names() {
    use ccd_store::SpecStore as _;
    use futures::StreamExt as _;
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(ccd_store::FolderStore::new(dir.path()).unwrap());
    let web = good("web");
    std::fs::write(dir.path().join("specs/web.yaml"), &web).unwrap();
    let source = SpecSource::new(store.clone());
    assert_eq!(source.list().await.unwrap()[0].1.origin(), None);
    let mut hints = source.changes().expect("a folder hints changes");

    let marker = ccd_sync::SyncMarker {
        commit: "c0ffee".into(),
        files: vec![ccd_sync::MarkedFile {
            app: "web".into(),
            path: "deploy/web.yaml".into(),
            checksum: ccd_store::spec_version(web.as_bytes()),
            commit: String::new(),
        }],
        ..Default::default()
    };
    store
        .write_marker(marker.to_yaml().as_bytes(), None)
        .await
        .unwrap();
    let hint = tokio::time::timeout(Duration::from_secs(30), hints.next())
        .await
        .expect("a hint within 30 s");
    assert_eq!(
        hint.as_deref(),
        Some("web"),
        "the marker's hint became its app's"
    );
    let got = source.get("web").await.unwrap().unwrap();
    assert_eq!(got.origin().unwrap().commit, "c0ffee");
}

#[tokio::test]
async fn hints_from_notifications_reach_the_controller_beside_the_stores_own() {
    use futures::StreamExt as _;
    let store = Arc::new(MemStore::default());
    assert!(
        SpecSource::new(store.clone()).changes().is_none(),
        "this store hints nothing itself"
    );
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let notified = tokio_stream_of(rx);
    let source = SpecSource::new(store).with_hints(notified);
    let mut hints = source.changes().expect("the notifications' hints");
    tx.send("web".into()).unwrap();
    assert_eq!(hints.next().await.as_deref(), Some("web"));
    assert!(
        source.changes().is_none(),
        "taken once, by the one subscriber"
    );
}

fn tokio_stream_of(mut rx: tokio::sync::mpsc::UnboundedReceiver<String>) -> ccd_runtime::Changes {
    Box::pin(futures::stream::poll_fn(move |cx| rx.poll_recv(cx)))
}
