//! `make bench`'s commit-to-reconcile figure: how long after a spec object
//! changes in the bucket the controller has reconciled it (its status names
//! the new version), through Cloud Storage's Pub/Sub notifications against
//! the peer measured in the same run: a controller that only polls the
//! bucket (every 10 s, the default). Two `ccd controller`s (release builds,
//! `ccd` given as argument) on two prefixes of one fake-gcs-server bucket,
//! which publishes its object events to Google's Pub/Sub emulator; one
//! local cloud; one app each, changed at the same moment, ROUNDS times.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr
)]

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use ccd_controller::status::Phase;
use ccd_e2e::agents::signal;
use ccd_e2e::ha::{BUCKET, Controller, put_spec_on, status, store_on};
use ccd_e2e::notifications::Notified;
use ccd_e2e::rollout::sample_spec;
use ccd_e2e::{LocalCloudProcess, eventually, temp_dir};
use ccd_store::BucketStore;
use tokio::time::Instant;

const ROUNDS: u32 = 10;
const ROLLING: &str = "{maxSurge: 1, maxUnavailable: 0, drainTime: 1s, deadline: 2m}";

fn spec(app: &str, version: &str) -> String {
    sample_spec(version, ROLLING, "", "2s")
        .replace("replicas: {min: 3, max: 3}", "replicas: {min: 1, max: 1}")
        .replace("name: web", &format!("name: {app}"))
        .replace("example/web", &format!("example/{app}"))
}

/// When `app`'s status first names `version`, from `put`.
async fn reconciled(
    store: &BucketStore,
    app: &str,
    version: &str,
    put: Instant,
) -> Result<Duration> {
    eventually(
        &format!("{app} reconciled on version {version}"),
        Duration::from_secs(120),
        || async {
            let s = status(store, app).await?;
            (s.revision.as_ref()?.version == version).then(|| put.elapsed())
        },
    )
    .await
}

async fn ready(store: &BucketStore, app: &str, version: &str) -> Result<()> {
    eventually(
        &format!("{app} Ready on version {version}"),
        Duration::from_secs(120),
        || async {
            let s = status(store, app).await?;
            (s.phase == Phase::Ready && s.serving == [version]).then_some(())
        },
    )
    .await
}

#[tokio::main]
async fn main() -> Result<()> {
    let ccd = PathBuf::from(
        std::env::args()
            .nth(1)
            .context("usage: bench_notifications CCD")?,
    );
    let dir = temp_dir("bench-notifications");
    let notified = Notified::start().await?;
    let gcs = &notified.gcs;
    gcs.create_bucket(BUCKET).await?;
    let cloud_dir = dir.join("cloud");
    std::fs::create_dir_all(&cloud_dir)?;
    let cloud = LocalCloudProcess::start_of(&ccd, &cloud_dir, &[], &[]).await?;
    let env = [("PUBSUB_EMULATOR_HOST", notified.pubsub.as_str())];
    let with = serde_json::json!({"bucketNotifications": {"subscription": notified.subscription}});
    let without = serde_json::json!({});
    let fast = Controller::start_on(&ccd, &dir, "notified", &cloud, gcs, "notified", &with, &env);
    let slow = Controller::start_on(&ccd, &dir, "polled", &cloud, gcs, "polled", &without, &env);
    let (note_store, poll_store) = (store_on(gcs, "notified"), store_on(gcs, "polled"));
    put_spec_on(gcs, "notified", "note", spec("note", "1")).await?;
    put_spec_on(gcs, "polled", "poll", spec("poll", "1")).await?;
    ready(&note_store, "note", "1").await?;
    ready(&poll_store, "poll", "1").await?;
    let (mut by_note, mut by_poll) = (Vec::new(), Vec::new());
    for round in 1..=ROUNDS {
        let version = (round + 1).to_string();
        // Not in step with the poller.
        tokio::time::sleep(Duration::from_millis(317 * u64::from(round))).await;
        let put = Instant::now();
        put_spec_on(gcs, "notified", "note", spec("note", &version)).await?;
        put_spec_on(gcs, "polled", "poll", spec("poll", &version)).await?;
        let (note, poll) = tokio::join!(
            reconciled(&note_store, "note", &version, put),
            reconciled(&poll_store, "poll", &version, put),
        );
        let (note, poll) = (note?, poll?);
        eprintln!(
            "notifications-bench: round {round}: reconciled {:.2} s after the put with notifications, {:.2} s by polling",
            note.as_secs_f64(),
            poll.as_secs_f64()
        );
        by_note.push(note);
        by_poll.push(poll);
        ready(&note_store, "note", &version).await?;
        ready(&poll_store, "poll", &version).await?;
    }
    by_note.sort();
    by_poll.sort();
    let at = |v: &[Duration], q: f64| v[((v.len() - 1) as f64 * q).round() as usize].as_secs_f64();
    println!(
        "commit-to-reconcile: {ROUNDS} spec changes in the bucket, each until the controller's status names the new version"
    );
    println!(
        "  bucket notifications (Pub/Sub): p50 {:.2} s, p90 {:.2} s, worst {:.2} s (goal p50 < 2 s)",
        at(&by_note, 0.5),
        at(&by_note, 0.9),
        at(&by_note, 1.0)
    );
    println!(
        "  polling every 10 s (peer):      p50 {:.2} s, p90 {:.2} s, worst {:.2} s",
        at(&by_poll, 0.5),
        at(&by_poll, 0.9),
        at(&by_poll, 1.0)
    );
    println!(
        "  ratio of p50s: {:.1}x faster with notifications",
        at(&by_poll, 0.5) / at(&by_note, 0.5).max(0.001)
    );
    for c in [&fast, &slow] {
        signal(c.pid(), "TERM");
    }
    drop(cloud);
    if std::env::var_os("BENCH_KEEP").is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(())
}
