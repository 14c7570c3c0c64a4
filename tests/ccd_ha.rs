//! Two `ccd controller`s on one bucket (fake-gcs-server) and one local cloud
//! elect one leader; `kill -9` of the leader hands over within 20 s and the
//! next spec converges; a leader frozen with SIGSTOP past its renew
//! deadline, and resumed after another took over, sends nothing and
//! overwrites no status. Shorter lease timings than the defaults (6 s, 2 s,
//! 4 s) keep the test short; the mechanism is the same.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::Duration;

use ccd_controller::status::Status;
use ccd_e2e::agents::signal;
use ccd_e2e::fake_gcs::FakeGcs;
use ccd_e2e::ha::{
    Controller, LeaseSeconds, cloud_mutations, put_spec, status, status_generation, web_ready_on,
};
use ccd_e2e::rollout::sample_spec;
use ccd_e2e::{LocalCloudProcess, binary, eventually, temp_dir};
use ccd_store::BucketStore;
use tokio::time::Instant;

const ROLLING: &str = "{maxSurge: 1, maxUnavailable: 0, drainTime: 1s, deadline: 2m}";
/// Shorter than the defaults (15, 5, 10) to keep the test short.
const LEASE: LeaseSeconds = (6, 2, 4);

/// The sample app with one instance: the test is about who acts, not how many.
fn spec(version: &str) -> String {
    sample_spec(version, ROLLING, "", "2s")
        .replace("replicas: {min: 3, max: 3}", "replicas: {min: 1, max: 1}")
}

fn controller(dir: &Path, name: &str, cloud: &LocalCloudProcess, gcs: &FakeGcs) -> Controller {
    Controller::start(&binary("ccd"), dir, name, cloud, gcs, LEASE)
}

/// Waits for `web` to be Ready on `version`; its status then.
async fn ready_on(store: &BucketStore, version: &str, dir: &Path) -> Status {
    web_ready_on(store, version)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", logs(dir)))
}

/// Which of `controllers` leads, once exactly one does and the others answer as standbys.
async fn one_leader<'a>(controllers: &[&'a Controller], dir: &Path) -> &'a Controller {
    eventually("exactly one leader", Duration::from_secs(30), || async {
        let mut leaders = Vec::new();
        for c in controllers {
            if c.leads().await? {
                leaders.push(*c);
            }
        }
        (leaders.len() == 1).then(|| leaders[0])
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", logs(dir)))
}

fn logs(dir: &Path) -> String {
    let mut out = String::new();
    for name in ["a", "b", "c"] {
        let text = std::fs::read_to_string(dir.join(format!("{name}.log"))).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let from = lines.len().saturating_sub(15);
        out.push_str(&format!("--- {name}.log\n{}\n", lines[from..].join("\n")));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_controllers_on_one_bucket_elect_one_leader_and_hand_over() {
    let dir = temp_dir("ha");
    let gcs = FakeGcs::start().await.unwrap();
    gcs.create_bucket(ccd_e2e::ha::BUCKET).await.unwrap();
    let cloud_dir = dir.join("cloud");
    std::fs::create_dir_all(&cloud_dir).unwrap();
    let cloud = LocalCloudProcess::start(&cloud_dir).await.unwrap();
    let store = ccd_e2e::ha::store(&gcs);

    put_spec(&gcs, "web", spec("1")).await.unwrap();
    let a = controller(&dir, "a", &cloud, &gcs);
    let b = controller(&dir, "b", &cloud, &gcs);
    let first = one_leader(&[&a, &b], &dir).await;
    let v1 = ready_on(&store, "1", &dir).await;
    assert!(v1.leader_epoch > 0, "the status names the leader's epoch");

    // kill -9 of the leader: the standby takes over within 20 s.
    let (mut dead, standby) = if first.name == "a" { (a, b) } else { (b, a) };
    signal(dead.pid(), "KILL");
    let killed = Instant::now();
    eventually("the standby to lead", Duration::from_secs(20), || async {
        standby.leads().await?.then_some(())
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", logs(&dir)));
    let handover = killed.elapsed();
    let _ = dead.child.wait().await;
    put_spec(&gcs, "web", spec("2")).await.unwrap();
    let v2 = ready_on(&store, "2", &dir).await;
    assert!(
        v2.leader_epoch > v1.leader_epoch,
        "{} then {}",
        v1.leader_epoch,
        v2.leader_epoch
    );
    eprintln!("hand-over after kill -9: {:.1} s", handover.as_secs_f64());

    // A third controller stands by; the leader freezes past its deadline.
    let c = controller(&dir, "c", &cloud, &gcs);
    eventually("c to stand by", Duration::from_secs(30), || async {
        (!c.leads().await?).then_some(())
    })
    .await
    .unwrap();
    let frozen = &standby;
    let sent = frozen.mutations().await.unwrap();
    signal(frozen.pid(), "STOP");
    eventually("c to lead", Duration::from_secs(20), || async {
        c.leads().await?.then_some(())
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", logs(&dir)));
    put_spec(&gcs, "web", spec("3")).await.unwrap();
    let v3 = ready_on(&store, "3", &dir).await;
    assert!(v3.leader_epoch > v2.leader_epoch);
    // The new leader at rest: from here on nobody has reason to write.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let generation = status_generation(&gcs, "web").await.unwrap();
    let cloud_changes = cloud_mutations(&cloud).await.unwrap();

    // Resumed, the old leader finds its lease lapsed: it sends nothing and
    // overwrites no status, though its queue held work from before.
    signal(frozen.pid(), "CONT");
    tokio::time::sleep(Duration::from_secs(8)).await;
    assert_eq!(frozen.leads().await, Some(false), "{}", logs(&dir));
    assert_eq!(
        frozen.mutations().await,
        Some(sent),
        "the frozen leader sent a mutation"
    );
    assert_eq!(
        cloud_mutations(&cloud).await,
        Some(cloud_changes),
        "the local cloud was changed after the frozen leader resumed\n{}",
        logs(&dir)
    );
    assert_eq!(
        status_generation(&gcs, "web").await.as_deref(),
        Some(generation.as_str()),
        "the status object was written after the frozen leader resumed\n{}",
        logs(&dir)
    );
    let now = status(&store, "web").await.unwrap();
    assert_eq!(now.leader_epoch, v3.leader_epoch, "{}", logs(&dir));
    assert_eq!(now.serving, ["3"]);

    for p in [&frozen.child, &c.child] {
        if let Some(pid) = p.id() {
            signal(pid, "TERM");
        }
    }
    drop(cloud);
}
