//! What the agent, health and scaling tests look at: instances' processes
//! (by the local cloud's supervisor's pid files), events, the scaling record.

use std::collections::BTreeMap;
use std::path::Path;

use ccd_controller::scale::record::ScalingRecord;

/// The running program of each instance: instance name → pid, from the
/// pid files `DIR/processes/ZONE.NAME.PID.pid` of the local cloud in `cloud`.
pub fn programs(cloud: &Path) -> BTreeMap<String, u32> {
    let mut out = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir(cloud.join("processes")) else {
        return out;
    };
    for entry in entries.flatten() {
        let file = entry.file_name().to_string_lossy().into_owned();
        let Some(stem) = file.strip_suffix(".pid") else {
            continue;
        };
        let Some((rest, pid)) = stem.rsplit_once('.') else {
            continue;
        };
        let Some((_zone, name)) = rest.split_once('.') else {
            continue;
        };
        if let Ok(pid) = pid.parse::<u32>()
            && Path::new(&format!("/proc/{pid}")).exists()
        {
            out.insert(name.to_owned(), pid);
        }
    }
    out
}

/// `ccd events --data DATA APP`: the app's events as the command prints them.
pub async fn events(ccd: &Path, data: &Path, app: &str) -> String {
    let out = tokio::process::Command::new(ccd)
        .args(["events", "--data"])
        .arg(data)
        .arg(app)
        .output()
        .await;
    out.map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

/// `DATA/scaling/APP.yaml`, if the scaling reconciler wrote one.
pub fn scaling(data: &Path, app: &str) -> Option<ScalingRecord> {
    let bytes = std::fs::read(data.join("scaling").join(format!("{app}.yaml"))).ok()?;
    ScalingRecord::parse(&bytes)
}

/// Sends a signal to a process.
pub fn signal(pid: u32, signal: &str) {
    let _ = std::process::Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .status();
}

/// An autoscaled sample app named `busy`: one instance to start with, up to
/// `max`, CPU target 50%, scale-in after `window`; `env` goes inside `env: {…}`.
pub fn busy_spec(max: u32, window: &str, env: &str) -> String {
    format!(
        "apiVersion: ccd/v1
kind: App
metadata: {{name: busy}}
spec:
  image: example/busy:1
  version: \"1\"
  run: {{command: [ccd-sample-app], args: [--port, \"$(PORT)\"]}}
  port: 8080
  env: {{{env}}}
  machine: {{zones: [europe-west1-b]}}
  replicas: {{min: 1, max: {max}}}
  autoscaling: {{cpuUtilization: 0.5, scaleInStabilization: {window}}}
  health: {{http: {{path: /healthz}}, interval: 1s, timeout: 1s, healthyThreshold: 1, unhealthyThreshold: 3, initialDelay: 2s}}
  expose: {{internal: {{port: 80, allowFrom: [10.0.0.0/8]}}}}
"
    )
}

/// Loops of `GET URL/burn?ms=200` until aborted: CPU load on whatever serves.
pub fn burn(url: &str, clients: usize) -> Vec<tokio::task::JoinHandle<()>> {
    (0..clients)
        .map(|_| {
            let url = format!("{url}/burn?ms=200");
            tokio::spawn(async move {
                let http = reqwest::Client::new();
                loop {
                    let _ = http
                        .get(&url)
                        .timeout(std::time::Duration::from_secs(5))
                        .send()
                        .await;
                }
            })
        })
        .collect()
}
