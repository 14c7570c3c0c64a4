//! `ccd up` as a child process, as the end-to-end tests drive it: started on
//! a data folder, read for its `compute api:`, `api:` and `ready:` lines.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

use crate::binary;

#[derive(Debug)]
pub struct Up {
    pub child: Child,
    lines: Lines<BufReader<ChildStdout>>,
    /// The local cloud's Compute API root, ending in `/`.
    pub compute: String,
    /// The local cloud's token (`DATA/cloud/token`, which `ccd up` prints).
    pub token: String,
    /// The controller's `/metrics` URL.
    pub metrics: String,
    /// The REST API's root (`api: URL`), and the admin token `ccd up` wrote.
    pub api: String,
    pub api_token: String,
    /// The dashboard's one-time login URL.
    pub dashboard: String,
}

impl Up {
    /// `ccd up --data DATA` plus `extra` arguments; its log goes to `DATA/up.log`.
    pub async fn start(data: &Path, extra: &[&str]) -> Result<Up> {
        Up::start_with(&binary("ccd"), data, extra).await
    }

    /// The same with a given `ccd` binary (a release build, for benchmarks).
    pub async fn start_with(ccd: &Path, data: &Path, extra: &[&str]) -> Result<Up> {
        let mut child = Command::new(ccd)
            .args(["up", "--data"])
            .arg(data)
            .args(["--seed", "/nonexistent", "--cloud-listen", "127.0.0.1:0"])
            .args(extra)
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::from(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(data.join("up.log"))?,
            ))
            .kill_on_drop(true)
            .spawn()
            .context("cannot start ccd up")?;
        let mut lines = BufReader::new(child.stdout.take().context("stdout")?).lines();
        let compute = loop {
            let line = lines.next_line().await?.context("ccd up exited")?;
            if let Some(url) = line.strip_prefix("compute api: ") {
                break url.to_owned();
            }
        };
        let token = loop {
            let line = lines.next_line().await?.context("ccd up exited")?;
            if let Some(file) = line.strip_prefix("token: ") {
                break crate::token_from_line(file)?;
            }
        };
        let metrics = loop {
            let line = lines.next_line().await?.context("ccd up exited")?;
            if let Some(url) = line.strip_prefix("metrics: ") {
                break url.to_owned();
            }
        };
        let api = loop {
            let line = lines.next_line().await?.context("ccd up exited")?;
            if let Some(url) = line.strip_prefix("api: ") {
                break url.to_owned();
            }
        };
        let api_token = loop {
            let line = lines.next_line().await?.context("ccd up exited")?;
            if let Some(file) = line.strip_prefix("api token: ") {
                break crate::token_from_line(file)?;
            }
        };
        let dashboard = loop {
            let line = lines.next_line().await?.context("ccd up exited")?;
            if let Some(url) = line.strip_prefix("dashboard: ") {
                break url.to_owned();
            }
        };
        Ok(Up {
            child,
            lines,
            compute,
            token,
            metrics,
            api,
            api_token,
            dashboard,
        })
    }

    /// A client for the local cloud's API (its token on every request);
    /// apps and load balancers get a plain client.
    pub fn cloud_http(&self) -> reqwest::Client {
        crate::cloud_client(&self.token)
    }

    /// The URL of the next `ready: APP URL ...` line.
    pub async fn ready(&mut self, app: &str) -> Result<String> {
        let prefix = format!("ready: {app} ");
        tokio::time::timeout(Duration::from_secs(120), async {
            loop {
                let line = self.lines.next_line().await?.context("ccd up exited")?;
                if let Some(rest) = line.strip_prefix(&prefix) {
                    return Ok(rest
                        .split_whitespace()
                        .next()
                        .unwrap_or_default()
                        .to_owned());
                }
            }
        })
        .await
        .context("no ready line within 2 minutes")?
    }

    /// SIGTERM: a graceful stop.
    pub fn stop(&mut self) {
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
        }
    }
}

impl Drop for Up {
    /// A test that panics still stops `ccd up` gracefully, so that it stops
    /// its instances' processes: killed outright, it would leave them
    /// serving on their addresses, where a later test's instance may land.
    fn drop(&mut self) {
        let Some(pid) = self.child.id() else { return };
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while std::path::Path::new(&format!("/proc/{pid}")).exists()
            && tokio::time::Instant::now() < deadline
        {
            if self.child.try_wait().ok().flatten().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// The JSON an app answers at `url`, if it answers.
pub async fn body(http: &reqwest::Client, url: &str) -> Option<Value> {
    http.get(url)
        .timeout(Duration::from_secs(3))
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()
}

/// Names of every resource whose name starts with `app`, across the
/// collections ccd uses (zonal ones in every zone of europe-west1). `http`
/// must carry the local cloud's token ([`Up::cloud_http`]).
pub async fn resources(http: &reqwest::Client, compute: &str, app: &str) -> Vec<String> {
    let base = format!("{compute}projects/local");
    let mut paths: Vec<String> = [
        "global/instanceTemplates",
        "global/healthChecks",
        "global/firewalls",
        "global/backendServices",
        "global/urlMaps",
        "global/sslCertificates",
        "global/targetHttpsProxies",
        "global/targetHttpProxies",
        "global/forwardingRules",
        "global/addresses",
        "regions/europe-west1/instanceGroupManagers",
        "regions/europe-west1/backendServices",
        "regions/europe-west1/urlMaps",
        "regions/europe-west1/targetHttpProxies",
        "regions/europe-west1/forwardingRules",
        "regions/europe-west1/addresses",
        "regions/europe-west1/healthChecks",
    ]
    .map(str::to_owned)
    .to_vec();
    for zone in ["a", "b", "c", "d"] {
        paths.push(format!("zones/europe-west1-{zone}/instanceGroupManagers"));
        paths.push(format!("zones/europe-west1-{zone}/instances"));
    }
    let mut out = Vec::new();
    for path in paths {
        let list: Option<Value> = match http.get(format!("{base}/{path}")).send().await {
            // A refused call would read as "nothing left": fail instead.
            Ok(r) if [401, 403].contains(&r.status().as_u16()) => {
                panic!("the local cloud refused {path}: {}", r.status())
            }
            Ok(r) => r.json().await.ok(),
            Err(_) => None,
        };
        let list = list.unwrap_or_default();
        for item in list["items"].as_array().into_iter().flatten() {
            let name = item["name"].as_str().unwrap_or_default();
            if name.starts_with(app) {
                out.push(format!("{path}/{name}"));
            }
        }
    }
    out.sort();
    out
}
