//! The same outcomes as `ccd_healing.rs` with every part a process of its
//! own, as on Google Cloud: the local cloud (whose agents publish to Pub/Sub
//! like agents on VMs), and `ccd controller --reconcilers deploy`,
//! `health` and `scaling`, talking over Google's Pub/Sub emulator. A hung
//! app is restarted with no failed client request; CPU load scales a group
//! out, and back in after the window.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use ccd_controller::status::{Phase, Status};
use ccd_e2e::agents::{burn, busy_spec, events, programs, scaling, signal};
use ccd_e2e::load::Load;
use ccd_e2e::rollout::sample_spec;
use ccd_e2e::{LocalCloudProcess, binary, eventually, temp_dir};
use tokio::process::{Child, Command};

const PROJECT: &str = "ccd-e2e";

/// `ccd controller --config DIR/NAME.json --reconcilers NAME`, with its
/// events in `DIR/NAME/events.redb` and its log in `DIR/NAME.log`.
fn controller(dir: &Path, name: &str, cloud: &LocalCloudProcess, emulator: &str) -> Child {
    let own = dir.join(name);
    std::fs::create_dir_all(&own).unwrap();
    let config = serde_json::json!({
        "store": dir.join("store"),
        "project": "local",
        "region": "europe-west1",
        "endpoint": cloud.base,
        "endpointTokenFile": cloud.token_file,
        "events": own.join("events.redb"),
        "metricsListen": "127.0.0.1:0",
        "driftCheckSeconds": 600,
        "apiRequestsPerSecond": 1000,
        "pubsub": {"project": PROJECT},
    });
    let path = dir.join(format!("{name}.json"));
    std::fs::write(&path, config.to_string()).unwrap();
    Command::new(binary("ccd"))
        .args(["controller", "--config"])
        .arg(&path)
        .args(["--reconcilers", name])
        .env("PUBSUB_EMULATOR_HOST", emulator)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::from(
            std::fs::File::create(dir.join(format!("{name}.log"))).unwrap(),
        ))
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

fn status(store: &Path, app: &str) -> Option<Status> {
    let bytes = std::fs::read(store.join("status").join(format!("{app}.yaml"))).ok()?;
    Status::parse(&bytes)
}

async fn ready(store: &Path, app: &str) -> String {
    eventually(
        &format!("{app} to be Ready"),
        Duration::from_secs(120),
        || async {
            let s = status(store, app)?;
            (s.phase == Phase::Ready)
                .then(|| s.endpoints.first().cloned())
                .flatten()
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", tail(&store.with_file_name("deploy.log"))))
}

async fn event(dir: &Path, app: &str, words: &[&str]) -> String {
    let ccd = binary("ccd");
    eventually(
        &format!("an event with {words:?}"),
        Duration::from_secs(90),
        || async {
            events(&ccd, dir, app)
                .await
                .lines()
                .find(|l| words.iter().all(|w| l.contains(w)))
                .map(str::to_owned)
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", tail(&dir.with_extension("log"))))
}

/// The end of a process's log, to tell why it did not do what was awaited.
fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let from = lines.len().saturating_sub(40);
    format!(
        "the last lines of {}:\n{}",
        log.display(),
        lines[from..].join("\n")
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_reconcilers_as_three_processes_over_pubsub_heal_and_scale() {
    let emulator = ccd_bus::emulator::host();
    let dir: PathBuf = temp_dir("three");
    let store = dir.join("store");
    std::fs::create_dir_all(store.join("specs")).unwrap();
    let cloud_dir = dir.join("cloud");
    std::fs::create_dir_all(&cloud_dir).unwrap();
    let cloud = LocalCloudProcess::start_with(
        &cloud_dir,
        &["--agents-pubsub-project", PROJECT],
        &[("PUBSUB_EMULATOR_HOST", emulator)],
    )
    .await
    .unwrap();
    let mut processes = Vec::new();
    for name in ["deploy", "health", "scaling"] {
        processes.push(controller(&dir, name, &cloud, emulator));
    }

    // A hung app is restarted while the others serve.
    std::fs::write(
        store.join("specs/web.yaml"),
        sample_spec(
            "1",
            "{maxSurge: 1, maxUnavailable: 0, drainTime: 2s, deadline: 2m}",
            "",
            "2s",
        ),
    )
    .unwrap();
    let url = ready(&store, "web").await;
    let load = Load::start(&url, 4, Duration::from_millis(20));
    tokio::time::sleep(Duration::from_secs(3)).await;
    let before = programs(&cloud_dir);
    let (hung, pid) = before.iter().next().map(|(n, p)| (n.clone(), *p)).unwrap();
    signal(pid, "STOP");
    let line = event(&dir.join("health"), "web", &["Restarting", &hung]).await;
    assert!(line.contains("unhealthy"), "{line}");
    eventually(
        "the hung app to run again",
        Duration::from_secs(60),
        || async {
            programs(&cloud_dir)
                .get(&hung)
                .filter(|&&p| p != pid)
                .copied()
        },
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let client = load.stop().await;
    assert_eq!(client.failed, 0, "{:#?}", client.failures);
    assert!(client.sent > 200, "the client sent {}", client.sent);

    // CPU load scales a group out, and back in after the window.
    std::fs::write(store.join("specs/busy.yaml"), busy_spec(3, "10s", "")).unwrap();
    let busy = ready(&store, "busy").await;
    let burners = burn(&busy, 3);
    eventually("a scale-out", Duration::from_secs(60), || async {
        scaling(&store, "busy").filter(|r| r.size >= 2)
    })
    .await
    .unwrap();
    event(&dir.join("scaling"), "busy", &["ScaledOut"]).await;
    for b in burners {
        b.abort();
    }
    eventually("a scale-in", Duration::from_secs(90), || async {
        scaling(&store, "busy").filter(|r| r.size == 1)
    })
    .await
    .unwrap();
    event(&dir.join("scaling"), "busy", &["ScaledIn"]).await;

    for p in &processes {
        if let Some(pid) = p.id() {
            signal(pid, "TERM");
        }
    }
    for mut p in processes {
        let _ = tokio::time::timeout(Duration::from_secs(30), p.wait()).await;
    }
    drop(cloud);
}
