//! `ccd controller` hearing of spec changes through Cloud Storage's Pub/Sub
//! notifications: fake-gcs-server publishes its object events to Google's
//! Pub/Sub emulator, the controller consumes the subscription named in its
//! configuration (`bucketNotifications`) with its bucket poller slowed to
//! once an hour, and turns each notification into a hint. A new spec and
//! the next version converge; status writes, a message that is not a
//! notification and a notification of an object that does not exist are
//! counted and disturb nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::Duration;

use ccd_controller::status::Status;
use ccd_e2e::agents::signal;
use ccd_e2e::ha::{Controller, put_spec, status, web_ready_on};
use ccd_e2e::notifications::Notified;
use ccd_e2e::rollout::sample_spec;
use ccd_e2e::{LocalCloudProcess, binary, eventually, temp_dir};
use ccd_store::BucketStore;

const ROLLING: &str = "{maxSurge: 1, maxUnavailable: 0, drainTime: 1s, deadline: 2m}";

fn spec(version: &str) -> String {
    sample_spec(version, ROLLING, "", "2s")
        .replace("replicas: {min: 3, max: 3}", "replicas: {min: 1, max: 1}")
}

async fn ready_on(store: &BucketStore, version: &str, dir: &Path) -> Status {
    web_ready_on(store, version)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", log(dir)))
}

fn log(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("n.log")).unwrap_or_default()
}

async fn count(c: &Controller, result: &str) -> u64 {
    c.sample(&format!(
        "ccd_bucket_notifications_total{{result=\"{result}\"}}"
    ))
    .await
    .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spec_changes_arrive_through_bucket_notifications() {
    let dir = temp_dir("notifications");
    let notified = Notified::start().await.unwrap();
    let gcs = &notified.gcs;
    gcs.create_bucket(ccd_e2e::ha::BUCKET).await.unwrap();
    let cloud_dir = dir.join("cloud");
    std::fs::create_dir_all(&cloud_dir).unwrap();
    let cloud = LocalCloudProcess::start(&cloud_dir).await.unwrap();
    let store = ccd_e2e::ha::store(gcs);
    let more = serde_json::json!({
        "bucketNotifications": {"subscription": notified.subscription, "pollSeconds": 3600},
    });
    let c = Controller::start_with(
        &binary("ccd"),
        &dir,
        "n",
        &cloud,
        gcs,
        &more,
        &[("PUBSUB_EMULATOR_HOST", notified.pubsub.as_str())],
    );
    eventually(
        "the controller to serve /metrics",
        Duration::from_secs(60),
        || async {
            c.sample("ccd_bucket_notifications_total{result=\"hint\"}")
                .await
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", log(&dir)));

    put_spec(gcs, "web", spec("1")).await.unwrap();
    ready_on(&store, "1", &dir).await;
    assert!(count(&c, "hint").await >= 1, "{}", log(&dir));
    assert!(
        count(&c, "elsewhere").await >= 1,
        "the controller's own status writes are notified too, and are no hint"
    );

    // Bad input: a message that is not a notification, and a notification
    // of a spec that does not exist. Counted; nothing is created or removed.
    notified
        .publish(serde_json::json!({"hello": "world"}))
        .await
        .unwrap();
    notified
        .publish(serde_json::json!({
            "bucketId": ccd_e2e::ha::BUCKET,
            "objectId": format!("{}/specs/ghost.yaml", ccd_e2e::ha::PREFIX),
            "objectGeneration": "99",
            "eventType": "OBJECT_FINALIZE",
        }))
        .await
        .unwrap();
    eventually(
        "the malformed message counted",
        Duration::from_secs(30),
        || async { (count(&c, "malformed").await == 1).then_some(()) },
    )
    .await
    .unwrap();

    put_spec(gcs, "web", spec("2")).await.unwrap();
    let v2 = ready_on(&store, "2", &dir).await;
    assert_eq!(v2.serving, ["2"]);
    assert!(
        status(&store, "ghost").await.is_none(),
        "no app from a notification alone"
    );
    eprintln!(
        "notifications: {} hints, {} seen, {} elsewhere, {} malformed",
        count(&c, "hint").await,
        count(&c, "seen").await,
        count(&c, "elsewhere").await,
        count(&c, "malformed").await
    );
    if let Some(pid) = c.child.id() {
        signal(pid, "TERM");
    }
    drop(cloud);
}
