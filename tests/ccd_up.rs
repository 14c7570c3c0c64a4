//! `ccd up` as a user runs it: drop a spec into the folder and the app
//! answers through its load balancer; change its env and a new template
//! rolls out; break the spec and the old revision keeps answering while
//! status says why; `kill -9` the controller mid-deploy and it converges
//! with nothing duplicated; delete the spec and nothing of the app is left.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use ccd_e2e::up::{Up, body, resources};
use ccd_e2e::{eventually, temp_dir};

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn specs_in_a_folder_become_running_apps() {
    let data = temp_dir("up");
    std::fs::create_dir_all(data.join("specs")).unwrap();
    let mut up = Up::start(&data, &[]).await.unwrap();
    let http = reqwest::Client::new();
    let cloud = up.cloud_http();

    // Drop a spec: the app answers through its load balancer.
    std::fs::write(data.join("specs/web.yaml"), SPEC).unwrap();
    let url = up.ready("web").await.unwrap();
    let first = body(&http, &url)
        .await
        .expect("the app answers through its load balancer");
    assert_eq!(first["app"], "web");
    assert_eq!(first["version"], "1.0.0");
    let status = std::fs::read_to_string(data.join("status/web.yaml")).unwrap();
    assert!(status.contains("phase: Ready"), "{status}");
    let before = resources(&cloud, &up.compute, "web").await;
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
            let r = resources(&cloud, &up.compute, "web").await;
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
        resources(&cloud, &up.compute, "web").await,
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
    let mut up = Up::start(&data, &[]).await.unwrap();
    let url = up.ready("web").await.unwrap();
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
            let r = resources(&cloud, &up.compute, "web").await;
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
        || async {
            resources(&cloud, &up.compute, "web")
                .await
                .is_empty()
                .then_some(())
        },
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
