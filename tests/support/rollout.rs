//! The sample app as a spec, and its rollouts as its status records them:
//! what the rollout tests and the rollout benchmark deploy and wait for.

use std::path::Path;
use std::time::Duration;

use anyhow::Result;
use ccd_controller::status::Status;

use crate::eventually;

/// Three instances of the sample app behind an internal load balancer on
/// port 80, checked every second; `env` is added inside `env: {…}` (start
/// it with a comma), `grace` is `health.initialDelay`.
pub fn sample_spec(version: &str, rollout: &str, env: &str, grace: &str) -> String {
    format!(
        "apiVersion: ccd/v1
kind: App
metadata: {{name: web}}
spec:
  image: example/web:{version}
  version: \"{version}\"
  run: {{command: [ccd-sample-app], args: [--port, \"$(PORT)\"]}}
  port: 8080
  env: {{GREETING: hello{env}}}
  machine: {{zones: [europe-west1-b]}}
  replicas: {{min: 3, max: 3}}
  health: {{http: {{path: /healthz}}, interval: 1s, timeout: 1s, healthyThreshold: 1, unhealthyThreshold: 2, initialDelay: {grace}}}
  rollout: {rollout}
  expose: {{internal: {{port: 80, allowFrom: [10.0.0.0/8]}}}}
"
    )
}

/// `DATA/status/web.yaml`, or an empty status while there is none.
pub fn status(data: &Path) -> Status {
    std::fs::read(data.join("status/web.yaml"))
        .ok()
        .and_then(|b| Status::parse(&b))
        .unwrap_or_default()
}

/// Waits up to five minutes for the rollout of `version` to end; the status then.
pub async fn rollout_of(data: &Path, version: &str) -> Result<Status> {
    eventually(
        &format!("the rollout of {version} to end"),
        Duration::from_secs(300),
        || async {
            let s = status(data);
            let r = s.rollout.as_ref()?;
            (r.to.version == version && !r.state.is_open()).then_some(s)
        },
    )
    .await
}
