//! `ccd up` as a user runs it: drop a spec into the folder and the app
//! answers through its load balancer; change its env and a new template
//! rolls out; break the spec and the old revision keeps answering while
//! status says why; `kill -9` the controller mid-deploy and it converges
//! with nothing duplicated; delete the spec and nothing of the app is left.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result};
use ccd_e2e::{binary, eventually, temp_dir};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

const SPEC: &str = "apiVersion: ccd/v1
kind: App
metadata: {name: web}
spec:
  image: example/web:1.0.0
  version: 1.0.0
  run: {command: [ccd-sample-app], args: [--port, \"$(PORT)\"]}
  port: 8080
  env: {GREETING: hello}
  replicas: {min: 2, max: 2}
  health: {http: {path: /healthz}, interval: 1s, timeout: 1s, unhealthyThreshold: 2, initialDelay: 5s}
  rollout: {maxSurge: 1, maxUnavailable: 0, drainTime: 5s}
  expose: {internal: {port: 80, allowFrom: [10.0.0.0/8]}}
";

struct Up {
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
    compute: String,
}

impl Up {
    async fn start(data: &Path) -> Result<Up> {
        let mut child = Command::new(binary("ccd"))
            .args(["up", "--data"])
            .arg(data)
            .args(["--seed", "/nonexistent", "--cloud-listen", "127.0.0.1:0"])
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
        Ok(Up {
            child,
            lines,
            compute,
        })
    }

    /// The URL of the next `ready: web URL ...` line.
    async fn ready(&mut self) -> Result<String> {
        tokio::time::timeout(Duration::from_secs(120), async {
            loop {
                let line = self.lines.next_line().await?.context("ccd up exited")?;
                if let Some(rest) = line.strip_prefix("ready: web ") {
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

    fn stop(&mut self) {
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
        }
    }
}

async fn body(http: &reqwest::Client, url: &str) -> Option<Value> {
    http.get(url)
        .timeout(Duration::from_secs(3))
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()
}

/// Names of every resource of the project the app's name starts, across the collections ccd uses.
async fn resources(http: &reqwest::Client, compute: &str) -> Vec<String> {
    let base = format!("{compute}projects/local");
    let mut out = Vec::new();
    for path in [
        "global/instanceTemplates",
        "global/healthChecks",
        "global/firewalls",
        "global/backendServices",
        "global/urlMaps",
        "global/sslCertificates",
        "global/targetHttpsProxies",
        "global/forwardingRules",
        "global/addresses",
        "zones/europe-west1-b/instanceGroupManagers",
        "zones/europe-west1-b/instances",
        "regions/europe-west1/backendServices",
        "regions/europe-west1/urlMaps",
        "regions/europe-west1/targetHttpProxies",
        "regions/europe-west1/forwardingRules",
        "regions/europe-west1/addresses",
        "regions/europe-west1/healthChecks",
    ] {
        let list: Value = http
            .get(format!("{base}/{path}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        for item in list["items"].as_array().into_iter().flatten() {
            let name = item["name"].as_str().unwrap_or_default();
            if name.starts_with("web") {
                out.push(format!("{path}/{name}"));
            }
        }
    }
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn specs_in_a_folder_become_running_apps() {
    let data = temp_dir("up");
    std::fs::create_dir_all(data.join("specs")).unwrap();
    let mut up = Up::start(&data).await.unwrap();
    let http = reqwest::Client::new();

    // Drop a spec: the app answers through its load balancer.
    std::fs::write(data.join("specs/web.yaml"), SPEC).unwrap();
    let url = up.ready().await.unwrap();
    let first = body(&http, &url)
        .await
        .expect("the app answers through its load balancer");
    assert_eq!(first["app"], "web");
    assert_eq!(first["version"], "1.0.0");
    let status = std::fs::read_to_string(data.join("status/web.yaml")).unwrap();
    assert!(status.contains("phase: Ready"), "{status}");
    let before = resources(&http, &up.compute).await;
    let templates = |r: &[String]| {
        r.iter()
            .filter(|n| n.contains("instanceTemplates"))
            .cloned()
            .collect::<Vec<_>>()
    };
    assert_eq!(templates(&before).len(), 1);

    // Change its env and version: a new template rolls out and the old one is collected.
    std::fs::write(
        data.join("specs/web.yaml"),
        SPEC.replace("GREETING: hello", "GREETING: bonjour")
            .replace("version: 1.0.0", "version: 1.1.0"),
    )
    .unwrap();
    eventually(
        "version 1.1.0 to serve every request",
        Duration::from_secs(120),
        || async {
            for _ in 0..6 {
                if body(&http, &url).await?["version"] != "1.1.0" {
                    return None;
                }
            }
            Some(())
        },
    )
    .await
    .unwrap();
    let after_rollout = eventually(
        "the old template to be collected",
        Duration::from_secs(60),
        || async {
            let r = resources(&http, &up.compute).await;
            (templates(&r).len() == 1 && templates(&r) != templates(&before)).then_some(r)
        },
    )
    .await
    .unwrap();

    // A broken spec: the running revision keeps answering and status says why.
    std::fs::write(data.join("specs/web.yaml"), "apiVersion: ccd/v1\nkind: App\nmetadata: {name: web}\nspec:\n  image: x\n  version: \"2\"\n  port: 70000\n").unwrap();
    let stalled = eventually(
        "status to report the broken spec",
        Duration::from_secs(30),
        || async {
            let s = std::fs::read_to_string(data.join("status/web.yaml")).ok()?;
            s.contains("phase: Stalled").then_some(s)
        },
    )
    .await
    .unwrap();
    assert!(
        stalled.contains("specs/web.yaml:7:9: spec.port: 70000 is out of range"),
        "{stalled}"
    );
    for _ in 0..10 {
        assert_eq!(
            body(&http, &url).await.expect("still serving")["version"],
            "1.1.0"
        );
    }
    assert_eq!(
        resources(&http, &up.compute).await,
        after_rollout,
        "a broken spec changes nothing in the cloud"
    );

    // kill -9 in the middle of a deploy, start again: it converges with no duplicate and no leak.
    std::fs::write(
        data.join("specs/web.yaml"),
        SPEC.replace("version: 1.0.0", "version: 1.2.0"),
    )
    .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let pid = up.child.id().unwrap();
    std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    let _ = up.child.wait().await;
    let mut up = Up::start(&data).await.unwrap();
    let url = up.ready().await.unwrap();
    eventually(
        "version 1.2.0 everywhere after the restart",
        Duration::from_secs(120),
        || async {
            for _ in 0..6 {
                if body(&http, &url).await?["version"] != "1.2.0" {
                    return None;
                }
            }
            Some(())
        },
    )
    .await
    .unwrap();
    let r = eventually(
        "one template, one group, two instances",
        Duration::from_secs(60),
        || async {
            let r = resources(&http, &up.compute).await;
            let count = |s: &str| r.iter().filter(|n| n.contains(s)).count();
            (count("instanceTemplates") == 1
                && count("instanceGroupManagers") == 1
                && count("/instances/") == 2)
                .then_some(r)
        },
    )
    .await
    .unwrap();
    assert_eq!(
        r.iter().filter(|n| n.contains("forwardingRules")).count(),
        1,
        "{r:#?}"
    );

    // Delete the spec: nothing of the app is left.
    std::fs::remove_file(data.join("specs/web.yaml")).unwrap();
    eventually(
        "every resource of the app to be deleted",
        Duration::from_secs(120),
        || async { resources(&http, &up.compute).await.is_empty().then_some(()) },
    )
    .await
    .unwrap();
    assert!(
        !data.join("status/web.yaml").exists(),
        "status goes with the spec"
    );
    up.stop();
    let _ = tokio::time::timeout(Duration::from_secs(60), up.child.wait()).await;
    let _ = std::fs::remove_dir_all(&data);
}
