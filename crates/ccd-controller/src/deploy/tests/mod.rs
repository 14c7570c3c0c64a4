//! The deploy reconciler against the in-memory cloud, on Tokio's paused
//! clock: every branch of the decision as a user would see it in the status,
//! the events and the cloud, in milliseconds of real time.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod basics;
mod identity;
mod leadership;
mod rollouts;
mod services;
mod switches;

use std::time::Duration;

use crate::record::RolloutState;
use crate::status::{Phase, Status};
use crate::testing::Harness;

/// An app of three instances behind an internal load balancer, checked
/// every second, with `rollout` as given.
pub fn spec(version: &str, rollout: &str) -> String {
    format!(
        "apiVersion: ccd/v1
kind: App
metadata: {{name: web}}
spec:
  image: example/web:{version}
  version: \"{version}\"
  port: 8080
  machine: {{zones: [europe-west1-b]}}
  replicas: {{min: 3}}
  health: {{http: {{path: /healthz}}, interval: 1s, timeout: 1s, unhealthyThreshold: 2, initialDelay: 5s}}
  rollout: {rollout}
  expose: {{internal: {{port: 80, allowFrom: [10.0.0.0/8]}}}}
"
    )
}

pub const ROLLING: &str = "{deadline: 2m}";
pub const BLUE_GREEN: &str = "{strategy: blueGreen, deadline: 2m, keepWarm: 1m}";
pub const CANARY: &str = "{strategy: canary, deadline: 2m, keepWarm: 30s, steps: [{weight: 10, pause: 1m}, {weight: 50, pause: 2m}]}";

pub const MINUTE: Duration = Duration::from_secs(60);

/// A harness with version 1 deployed and Ready.
pub async fn ready(rollout: &str) -> Harness {
    let h = Harness::new(&spec("1", rollout));
    h.until("version 1 to be Ready", MINUTE, |s| s.phase == Phase::Ready)
        .await;
    h
}

pub fn template_of(h: &Harness, version: &str) -> String {
    h.cloud
        .state()
        .templates
        .values()
        .find(|t| t.revision == version)
        .map(|t| t.name())
        .unwrap_or_else(|| panic!("no template for version {version}"))
}

pub fn rollout_state(s: &Status) -> Option<RolloutState> {
    s.rollout.as_ref().map(|r| r.state)
}

/// Versions the named group's members run, sorted.
pub fn versions(h: &Harness, group: &str) -> Vec<String> {
    let mut v: Vec<String> = h
        .cloud
        .members(group)
        .into_iter()
        .filter_map(|m| m.version)
        .collect();
    v.sort();
    v
}
