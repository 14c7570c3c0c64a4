//! What the chaos suite drives and checks: a controller it can kill, a
//! seeded random source it prints so a failure can be replayed, and an
//! app's footprint in the cloud and on the machine.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Stdio;

use ccd_controller::status::Status;
use tokio::process::{Child, Command};

use crate::{LocalCloudProcess, binary};

/// `CCD_CHAOS_<NAME>` as a number, or `default`.
pub fn setting(name: &str, default: u64) -> u64 {
    std::env::var(format!("CCD_CHAOS_{name}"))
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The run's seed: `CCD_CHAOS_SEED` to replay one, else the clock's.
pub fn seed() -> u64 {
    setting(
        "SEED",
        ccd_clock::wall()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64),
    )
}

/// xorshift64*, seeded: the same moments for the same seed.
#[derive(Debug)]
pub struct Dice(u64);

impl Dice {
    pub fn new(seed: u64) -> Self {
        Dice(seed.max(1))
    }

    /// A number in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n.max(1)
    }
}

/// `ccd controller` on the folder store `store` and the local cloud `cloud`,
/// with its events in `dir/events.redb` and its log appended to `dir/controller.log`.
pub fn controller(dir: &Path, store: &Path, cloud: &LocalCloudProcess) -> Child {
    controller_with(dir, store, cloud, serde_json::json!({}))
}

/// The same with `extra` fields in its configuration (`dir/controller.json`).
pub fn controller_with(
    dir: &Path,
    store: &Path,
    cloud: &LocalCloudProcess,
    extra: serde_json::Value,
) -> Child {
    let mut config = serde_json::json!({
        "store": store,
        "project": "local",
        "region": "europe-west1",
        "endpoint": cloud.base,
        "endpointTokenFile": cloud.token_file,
        "events": dir.join("events.redb"),
        "metricsListen": "127.0.0.1:0",
        "apiRequestsPerSecond": 1000,
    });
    if let (Some(config), serde_json::Value::Object(extra)) = (config.as_object_mut(), extra) {
        config.extend(extra);
    }
    let path = dir.join("controller.json");
    std::fs::write(&path, config.to_string()).expect("controller config");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("controller.log"))
        .expect("controller log");
    Command::new(binary("ccd"))
        .args(["controller", "--config"])
        .arg(&path)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::from(log))
        .kill_on_drop(true)
        .spawn()
        .expect("ccd controller starts")
}

/// SIGKILL, and reap it.
pub async fn kill_9(child: &mut Child) {
    if let Some(pid) = child.id() {
        crate::agents::signal(pid, "KILL");
    }
    let _ = child.wait().await;
}

/// `STORE/status/APP.yaml`, read back.
pub fn status(store: &Path, app: &str) -> Option<Status> {
    Status::parse(&std::fs::read(store.join("status").join(format!("{app}.yaml"))).ok()?)
}

/// Whether `app` is Ready on `version` with no rollout open and a single
/// group: where a run of rollouts should end.
pub fn settled(store: &Path, app: &str, version: &str) -> bool {
    status(store, app).is_some_and(|s| {
        s.phase == ccd_controller::Phase::Ready
            && s.revision.as_ref().is_some_and(|r| r.version == version)
            && s.rollout.as_ref().is_none_or(|r| !r.state.is_open())
            && s.serving == [version]
            && s.groups.len() == 1
    })
}

/// An app's resources, counted by collection: `global/firewalls` → 2.
/// Names change from run to run (hashes, blue/green's two groups); how
/// many of each the app has must not.
pub type Footprint = BTreeMap<String, usize>;

/// The footprint of `app` from the names `up::resources` found.
pub fn footprint(names: &[String]) -> Footprint {
    let mut out = Footprint::new();
    for name in names {
        let collection = name.rsplit_once('/').map_or(name.as_str(), |(c, _)| c);
        *out.entry(collection.to_owned()).or_default() += 1;
    }
    out
}

/// The instance processes on this machine, by the instance name in their
/// environment (`CCD_INSTANCE`, set by the local cloud) → pids, for names
/// starting with `prefix`: what runs, whatever the supervisor remembers.
pub fn instance_processes(prefix: &str) -> BTreeMap<String, BTreeSet<u32>> {
    let mut out: BTreeMap<String, BTreeSet<u32>> = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return out;
    };
    for entry in entries.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(environ) = std::fs::read(entry.path().join("environ")) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // A zombie is gone already; its parent has yet to reap it.
        if stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
        {
            continue;
        }
        for var in environ.split(|b| *b == 0) {
            if let Some(name) = var.strip_prefix(b"CCD_INSTANCE=") {
                let name = String::from_utf8_lossy(name).into_owned();
                if name.starts_with(prefix) {
                    out.entry(name).or_default().insert(pid);
                }
            }
        }
    }
    out
}
