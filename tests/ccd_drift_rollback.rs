//! What ccd does when the world goes wrong after a deploy, as a user sees
//! it through `ccd up`: a firewall rule deleted by hand is put back
//! (`drift: correct`, the default) or only reported (`drift: warn`), and a
//! version that never becomes healthy is rolled back at its rollout
//! deadline while the last good version keeps answering; a spec file that
//! cannot be read stalls the app instead of deleting it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use ccd_e2e::up::{Up, body, resources};
use ccd_e2e::{binary, eventually, temp_dir};

const WEB: &str = "apiVersion: ccd/v1
kind: App
metadata: {name: web}
spec:
  image: example/web:1.0.0
  version: 1.0.0
  run: {command: [ccd-sample-app], args: [--port, \"$(PORT)\"]}
  port: 8080
  machine: {zones: [europe-west1-b]}
  replicas: {min: 2, max: 2}
  health: {http: {path: /healthz}, interval: 1s, timeout: 1s, unhealthyThreshold: 2, initialDelay: 5s}
  rollout: {maxSurge: 1, maxUnavailable: 0, drainTime: 2s, deadline: 20s}
  expose: {internal: {port: 80, allowFrom: [10.0.0.0/8]}}
  drift: warn
";

/// Simulated instances, nothing exposed: drift is all this app is for.
const API: &str = "apiVersion: ccd/v1
kind: App
metadata: {name: api}
spec:
  image: example/api:1.0.0
  version: 1.0.0
  port: 8080
  machine: {zones: [europe-west1-c, europe-west1-d]}
  replicas: {min: 2}
  expose: {internal: {allowFrom: [10.1.0.0/16]}}
";

fn status(data: &std::path::Path, app: &str) -> String {
    std::fs::read_to_string(data.join(format!("status/{app}.yaml"))).unwrap_or_default()
}

/// `ccd events APP` for the data folder.
async fn events(data: &std::path::Path, app: &str) -> String {
    ccd_e2e::agents::events(&binary("ccd"), data, app).await
}

async fn delete(http: &reqwest::Client, compute: &str, path: &str) {
    let r = http
        .delete(format!("{compute}projects/local/{path}"))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "DELETE {path}: {}", r.status());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drift_is_corrected_or_reported_and_a_bad_version_is_rolled_back() {
    let data = temp_dir("drift");
    std::fs::create_dir_all(data.join("specs")).unwrap();
    std::fs::write(data.join("specs/web.yaml"), WEB).unwrap();
    std::fs::write(data.join("specs/api.yaml"), API).unwrap();
    let mut up = Up::start(&data, &["--drift-check", "2s"]).await.unwrap();
    let http = reqwest::Client::new();
    let cloud = up.cloud_http();
    let url = up.ready("web").await.unwrap();
    eventually("api to be Ready", Duration::from_secs(60), || async {
        status(&data, "api").contains("phase: Ready").then_some(())
    })
    .await
    .unwrap();
    assert!(
        status(&data, "api").contains("region: \"europe-west1\""),
        "two zones make a regional group:\n{}",
        status(&data, "api")
    );
    assert!(
        resources(&cloud, &up.compute, "api")
            .await
            .iter()
            .any(|r| r.starts_with("regions/europe-west1/instanceGroupManagers/")),
        "the regional group exists"
    );

    // drift: correct (the default): rules deleted by hand come back.
    let api_rules: Vec<String> = resources(&cloud, &up.compute, "api")
        .await
        .into_iter()
        .filter(|r| r.starts_with("global/firewalls/"))
        .collect();
    assert_eq!(api_rules.len(), 2, "health checkers and allowFrom");
    for rule in &api_rules {
        delete(&cloud, &up.compute, rule).await;
    }
    eventually(
        "api's firewall rules to come back",
        Duration::from_secs(60),
        || async {
            let now = resources(&cloud, &up.compute, "api").await;
            api_rules.iter().all(|r| now.contains(r)).then_some(())
        },
    )
    .await
    .unwrap();
    // The event is written after the rules are recreated, so wait for it too.
    let drift_event = eventually(
        "api's DriftCorrected event",
        Duration::from_secs(30),
        || async {
            let e = events(&data, "api").await;
            e.contains("DriftCorrected").then_some(())
        },
    )
    .await;
    assert!(drift_event.is_ok(), "{}", events(&data, "api").await);

    // drift: warn: the rule stays deleted, status says so, the app still answers.
    let clients = resources(&cloud, &up.compute, "web")
        .await
        .into_iter()
        .find(|r| r.starts_with("global/firewalls/") && r.contains("clients"))
        .expect("web's allowFrom rule");
    delete(&cloud, &up.compute, &clients).await;
    let name = clients.trim_start_matches("global/firewalls/").to_owned();
    eventually(
        "web's status to report the drift",
        Duration::from_secs(60),
        || async {
            let s = status(&data, "web");
            (s.contains("phase: Degraded") && s.contains("reason: Drifted") && s.contains(&name))
                .then_some(())
        },
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(
        !resources(&cloud, &up.compute, "web")
            .await
            .contains(&clients),
        "drift: warn changes nothing"
    );
    assert_eq!(
        body(&http, &url).await.expect("web answers")["version"],
        "1.0.0"
    );
    assert!(events(&data, "web").await.contains("DriftDetected"));
    let metrics = http
        .get(&up.metrics)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for series in [
        "ccd_cloud_api_calls_total{kind=\"read\"}",
        "ccd_cloud_api_calls_total{kind=\"mutation\"}",
        "ccd_reconciles_total{controller=\"deploy\",result=\"requeue\"}",
    ] {
        assert!(metrics.contains(series), "{series} in\n{metrics}");
    }

    // A version that never becomes healthy: rolled back at its deadline,
    // and 1.0.0 answers every request meanwhile.
    std::fs::write(
        data.join("specs/web.yaml"),
        WEB.replace("version: 1.0.0", "version: 2.0.0").replace(
            "port: 8080\n",
            "port: 8080\n  env: {SAMPLE_FAIL_HEALTH: \"1\"}\n",
        ),
    )
    .unwrap();
    let answers = AtomicUsize::new(0);
    let rolled_back = eventually(
        "the rollback of 2.0.0",
        Duration::from_secs(120),
        || async {
            let b = body(&http, &url).await.expect("web keeps answering");
            assert_eq!(b["version"], "1.0.0", "only the last good version serves");
            answers.fetch_add(1, Ordering::Relaxed);
            let s = status(&data, "web");
            (s.contains("rolledBack: true") && s.contains("reason: RolledBack")).then_some(s)
        },
    )
    .await
    .unwrap();
    let answers = answers.into_inner();
    assert!(answers > 5, "sampled while rolling out: {answers}");
    assert!(rolled_back.contains("phase: Degraded"), "{rolled_back}");
    assert!(events(&data, "web").await.contains("RolledBack"));
    eventually(
        "only 1.0.0 instances left",
        Duration::from_secs(60),
        || async {
            let s = status(&data, "web");
            (s.contains("serving:\n  - \"1.0.0\"\n")
                && !s.contains("version: \"2.0.0\"\n    status"))
            .then_some(())
        },
    )
    .await
    .unwrap();

    // A spec file that cannot be read (here: far over the size limit) is not
    // a deleted app: status says why and the app keeps answering.
    std::fs::write(data.join("specs/web.yaml"), vec![b'#'; 2 << 20]).unwrap();
    eventually(
        "web's status to say the spec is unreadable",
        Duration::from_secs(60),
        || async {
            let s = status(&data, "web");
            (s.contains("phase: Stalled") && s.contains("specs/web.yaml")).then_some(())
        },
    )
    .await
    .unwrap();
    assert_eq!(
        body(&http, &url).await.expect("web answers")["version"],
        "1.0.0"
    );

    up.stop();
    let _ = tokio::time::timeout(Duration::from_secs(60), up.child.wait()).await;
    let _ = std::fs::remove_dir_all(&data);
}
