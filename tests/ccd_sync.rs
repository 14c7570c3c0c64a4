//! `ccd sync` as a user runs it, into the folder `ccd up` deploys from: a git repository's
//! commit becomes running apps whose status names the commit; the next commit rolls one app
//! out while a broken file beside it stalls only its own app, which keeps serving; a file
//! deleted from the repository removes its app only when synced with `--prune`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use ccd_e2e::up::Up;
use ccd_e2e::{binary, eventually, temp_dir};
use serde_json::Value;

/// One instance, no load balancer: as little to start as an app can be.
fn spec(app: &str, version: &str) -> String {
    format!(
        "apiVersion: ccd/v1
kind: App
metadata: {{name: {app}}}
spec:
  image: example/{app}:{version}
  version: {version}
  run: {{command: [ccd-sample-app], args: [--port, \"$(PORT)\"]}}
  port: 8080
  replicas: {{min: 1, max: 1}}
  health: {{http: {{path: /healthz}}, interval: 1s, timeout: 1s, unhealthyThreshold: 2, initialDelay: 5s}}
  rollout: {{maxSurge: 1, maxUnavailable: 0, drainTime: 1s}}
"
    )
}

fn git(repo: &Path, args: &[&str]) -> String {
    let out = std::process::Command::new("git")
        .args([
            "-c",
            "user.name=Ada Lovelace",
            "-c",
            "user.email=ada@example.com",
        ])
        .args([
            "-c",
            "init.defaultBranch=main",
            "-c",
            "commit.gpgsign=false",
        ])
        .arg("-C")
        .arg(repo)
        .args(args)
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Commits every change in the repository; returns the commit id.
fn commit(repo: &Path, message: &str) -> String {
    git(repo, &["add", "-A"]);
    git(repo, &["commit", "--quiet", "-m", message]);
    git(repo, &["rev-parse", "HEAD"])
}

async fn ccd(args: &[&str]) -> Output {
    tokio::process::Command::new(binary("ccd"))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .await
        .expect("ccd runs")
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `ccd status -o json`, by app.
async fn statuses(data: &str) -> Option<Vec<Value>> {
    let out = ccd(&["status", "--data", data, "-o", "json"]).await;
    serde_json::from_slice::<Value>(&out.stdout)
        .ok()?
        .as_array()
        .cloned()
}

async fn status_of(data: &str, app: &str) -> Option<Value> {
    statuses(data).await?.into_iter().find(|s| s["app"] == app)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commits_reach_the_apps_and_status_names_them() {
    let root = temp_dir("sync");
    let (repo, data) = (root.join("repo"), root.join("data"));
    std::fs::create_dir_all(repo.join("deploy")).unwrap();
    std::fs::create_dir_all(data.join("specs")).unwrap();
    let (repo_arg, data_arg) = (repo.to_str().unwrap(), data.to_str().unwrap());
    git(&repo, &["init", "--quiet"]);
    std::fs::write(repo.join("deploy/web.yaml"), spec("web", "1.0.0")).unwrap();
    std::fs::write(repo.join("deploy/api.yaml"), spec("api", "1.0.0")).unwrap();
    std::fs::write(repo.join("README.md"), "ops repository\n").unwrap();
    let first = commit(&repo, "web and api");
    let mut up = Up::start(&data, &["--deletion-grace", "2s"]).await.unwrap();
    let sync = ["sync", repo_arg, "--path", "deploy", "--to", data_arg];

    // The first commit: both apps run, and their status names the commit and file.
    let out = ccd(&sync).await;
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(
        stdout.contains(&format!("commit {first} by Ada Lovelace <ada@example.com>")),
        "{stdout}"
    );
    assert!(
        stdout.contains("uploaded specs/api.yaml from deploy/api.yaml"),
        "{stdout}"
    );
    assert!(
        stdout.contains("uploaded specs/web.yaml from deploy/web.yaml"),
        "{stdout}"
    );
    assert!(stdout.contains("unchanged 0"), "{stdout}");
    eventually(
        "both apps Ready from the first commit",
        Duration::from_secs(120),
        || async {
            let all = statuses(data_arg).await?;
            let from_first = all
                .iter()
                .filter(|s| s["phase"] == "Ready" && s["source"]["commit"] == first.as_str());
            (from_first.count() == 2).then_some(())
        },
    )
    .await
    .unwrap();
    let web = status_of(data_arg, "web").await.unwrap();
    assert_eq!(web["source"]["path"], "deploy/web.yaml");
    let table = text(&ccd(&["status", "--data", data_arg]).await).0;
    assert!(
        table.contains("COMMIT") && table.contains(&first[..12]),
        "{table}"
    );

    // The second commit: web moves to 1.1.0, api's file breaks. web rolls out; api stalls
    // with a condition naming the file and the commit, and keeps serving 1.0.0.
    std::fs::write(repo.join("deploy/web.yaml"), spec("web", "1.1.0")).unwrap();
    std::fs::write(
        repo.join("deploy/api.yaml"),
        spec("api", "1.1.0").replace("port: 8080", "port: 70000"),
    )
    .unwrap();
    let second = commit(&repo, "web 1.1.0, api broken");
    let out = ccd(&sync).await;
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains(&format!("commit {second}")), "{stdout}");
    assert!(
        stderr.contains("warning: deploy/api.yaml:8:9: spec.port")
            && stderr.contains(&second[..12]),
        "{stderr}"
    );
    eventually(
        "web 1.1.0 Ready from the second commit",
        Duration::from_secs(120),
        || async {
            let web = status_of(data_arg, "web").await?;
            (web["phase"] == "Ready"
                && web["version"] == "1.1.0"
                && web["source"]["commit"] == second.as_str())
            .then_some(())
        },
    )
    .await
    .unwrap();
    let api = eventually(
        "api Stalled from the second commit",
        Duration::from_secs(30),
        || async {
            let api = status_of(data_arg, "api").await?;
            (api["phase"] == "Stalled" && api["source"]["commit"] == second.as_str()).then_some(api)
        },
    )
    .await
    .unwrap();
    assert_eq!(
        api["instances"], 1,
        "api keeps its last good revision: {api}"
    );
    let yaml = text(&ccd(&["status", "api", "--data", data_arg, "-o", "yaml"]).await).0;
    assert!(yaml.contains("specs/api.yaml:8:9: spec.port"), "{yaml}");
    assert!(
        yaml.contains(&format!("this spec is deploy/api.yaml at commit {second}")),
        "{yaml}"
    );
    assert!(yaml.contains("- \"1.0.0\""), "still serving 1.0.0: {yaml}");

    // The third commit deletes web's file: without --prune it stays; with it, web goes.
    std::fs::remove_file(repo.join("deploy/web.yaml")).unwrap();
    let third = commit(&repo, "web retired");
    let out = ccd(&sync).await;
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains(&format!("commit {third}")), "{stdout}");
    assert!(stdout.contains("kept specs/web.yaml"), "{stdout}");
    assert!(stdout.contains("unchanged 1"), "{stdout}");
    assert!(data.join("specs/web.yaml").is_file());
    let mut pruned = sync.to_vec();
    pruned.push("--prune");
    let out = ccd(&pruned).await;
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("deleted specs/web.yaml"), "{stdout}");
    eventually("web removed", Duration::from_secs(60), || async {
        let all = statuses(data_arg).await?;
        (!all.iter().any(|s| s["app"] == "web")).then_some(())
    })
    .await
    .unwrap();
    let api = status_of(data_arg, "api").await.unwrap();
    assert_eq!(api["phase"], "Stalled", "{api}");
    // api's file did not change in the third commit: its spec still came from the second.
    assert_eq!(api["source"]["commit"], second.as_str(), "{api}");

    up.stop();
    let _ = tokio::time::timeout(Duration::from_secs(60), up.child.wait()).await;
    let _ = std::fs::remove_dir_all(&root);
}
