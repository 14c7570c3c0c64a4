//! A local cloud whose instances are real processes (the sample app), for
//! the tests that send requests through load balancers or watch health
//! checks; the REST calls the Cloud port has no verb for (stopping an
//! instance, a backend service's health) are made raw.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ccd_cloud::GceCloud;
use ccd_cloud::model::{HealthDefinition, LocalRun, Probe, TemplateSpec};
use ccd_localcloud::{Config, LocalCloud};
use serde_json::{Value, json};

use crate::common::{self, PROJECT, ZONE};

/// The sample app's binary, built into this test's target folder (cargo
/// builds only this package's dependencies for its tests).
pub fn sample_app() -> PathBuf {
    static BUILD: std::sync::Once = std::sync::Once::new();
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(Path::parent).unwrap().to_path_buf();
    BUILD.call_once(|| {
        let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
            Some("debug") | None => "dev".to_owned(),
            Some(other) => other.to_owned(),
        };
        let status = nested_cargo()
            // As `cargo test --workspace` builds it (same targets, so the same
            // features): fresh under `make test`, not built a second way.
            .args(["build", "--workspace", "--tests", "--bins"])
            .args(["--profile", &profile])
            .env("CARGO_TARGET_DIR", profile_dir.parent().unwrap())
            .status()
            .unwrap();
        assert!(status.success(), "building ccd-sample-app failed");
    });
    profile_dir.join("ccd-sample-app")
}

/// A local cloud that runs processes, its data in a fresh folder, and the adapter.
pub struct Processes {
    pub local: LocalCloud,
    pub cloud: GceCloud,
    pub data: PathBuf,
    http: reqwest::Client,
}

impl Processes {
    pub async fn start(tag: &str) -> Self {
        let data = std::env::temp_dir().join(format!("ccd-cloud-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&data);
        let local = LocalCloud::start(Config {
            data_dir: Some(data.clone()),
            check_responses: true,
            ..Config::default()
        })
        .await
        .expect("the local cloud starts");
        let cloud = GceCloud::new(common::config(&local))
            .await
            .expect("the adapter starts");
        let http = common::http(&local);
        Processes {
            local,
            cloud,
            data,
            http,
        }
    }

    /// Stops every process, checks the responses kept to the discovery
    /// document, and removes the data folder.
    pub async fn finish(self) {
        common::finish(self.local).await;
        let _ = std::fs::remove_dir_all(&self.data);
    }

    fn url(&self, path: &str) -> String {
        format!(
            "{}/compute/v1/projects/{PROJECT}/{path}",
            self.local.endpoint()
        )
    }

    pub async fn get(&self, path: &str) -> Value {
        let r = self.http.get(self.url(path)).send().await.unwrap();
        r.error_for_status().unwrap().json().await.unwrap()
    }

    pub async fn post(&self, path: &str, body: Value) -> Value {
        let r = self
            .http
            .post(self.url(path))
            .json(&body)
            .send()
            .await
            .unwrap();
        r.error_for_status().unwrap().json().await.unwrap()
    }

    /// Stops an instance (the operation is done when this returns).
    pub async fn stop_instance(&self, name: &str) {
        let op = self
            .post(&format!("zones/{ZONE}/instances/{name}/stop"), json!({}))
            .await;
        let op = op["name"].as_str().unwrap().to_owned();
        self.post(&format!("zones/{ZONE}/operations/{op}/wait"), json!({}))
            .await;
    }

    /// Whether every instance of the zonal group is HEALTHY for the backend
    /// service (as the load balancer sees them), and there are `size`.
    pub async fn serving(&self, backend_service: &str, group: &str, size: usize) -> bool {
        let group_link = self.url(&format!("zones/{ZONE}/instanceGroups/{group}"));
        let h = self
            .post(
                &format!("{backend_service}/getHealth"),
                json!({"group": group_link}),
            )
            .await;
        let states: Vec<&str> = h["healthStatus"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s["healthState"].as_str())
            .collect();
        states.len() == size && states.iter().all(|s| *s == "HEALTHY")
    }

    /// Where the forwarding rule named `rule` listens.
    pub async fn listener(&self, rule: &str) -> SocketAddr {
        common::eventually("the forwarding rule to listen", || async {
            self.local
                .listeners()
                .into_iter()
                .find(|l| l.forwarding_rule.ends_with(&format!("/{rule}")))
                .map(|l| l.listening)
        })
        .await
    }
}

/// A quick check, so that a balancer sends traffic soon after instances start.
pub fn quick_health() -> HealthDefinition {
    HealthDefinition {
        probe: Probe::Http {
            path: "/healthz".to_owned(),
            port: 8080,
        },
        interval: Duration::from_secs(1),
        timeout: Duration::from_secs(1),
        healthy_threshold: 1,
        unhealthy_threshold: 2,
    }
}

/// A template running the sample app, answering `version` on `GET /`.
pub fn sample_template(app: &str, version: &str, env: &[(&str, &str)]) -> TemplateSpec {
    let mut spec = common::template(app, version);
    spec.local_run = Some(LocalRun::Process {
        command: vec![sample_app().display().to_string()],
        args: vec!["--port".into(), "$(PORT)".into()],
        env: std::iter::once(("CCD_VERSION".to_owned(), version.to_owned()))
            .chain(env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())))
            .collect::<BTreeMap<_, _>>(),
        stop_grace: Duration::from_secs(2),
    });
    spec
}

/// What one request through a load balancer got: the version that
/// answered, or why it failed.
pub async fn version_of(client: &reqwest::Client, url: &str) -> Result<String, String> {
    let r = client.get(url).send().await.map_err(|e| e.to_string())?;
    let status = r.status();
    if status != 200 {
        return Err(format!("status {status}"));
    }
    let body: Value = r.json().await.map_err(|e| e.to_string())?;
    body["version"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("no version in {body}"))
}

/// `n` requests in a row, counted by the version that answered (failures
/// under `"failed: why"`).
pub async fn tally(client: &reqwest::Client, url: &str, n: usize) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for _ in 0..n {
        let key = version_of(client, url)
            .await
            .unwrap_or_else(|e| format!("failed: {e}"));
        *out.entry(key).or_default() += 1;
    }
    out
}

/// A nested `cargo` that sees the environment a shell would give it: the
/// variables cargo sets for a running test (its package's name, manifest
/// folder, `OUT_DIR`...) are watched by build scripts (ring's), so left in
/// place they make the nested build rebuild half the workspace.
fn nested_cargo() -> std::process::Command {
    let mut cargo = std::process::Command::new(env!("CARGO"));
    for (key, _) in std::env::vars_os() {
        let k = key.to_string_lossy();
        let set_for_tests = [
            "CARGO_PKG_",
            "CARGO_MANIFEST_",
            "CARGO_BIN_",
            "CARGO_CRATE_",
        ]
        .iter()
        .any(|p| k.starts_with(p))
            || matches!(
                &*k,
                "CARGO_PRIMARY_PACKAGE"
                    | "CARGO_TARGET_TMPDIR"
                    | "CARGO_RUSTC_CURRENT_DIR"
                    | "OUT_DIR"
            );
        if set_for_tests {
            cargo.env_remove(&key);
        }
    }
    cargo
}
