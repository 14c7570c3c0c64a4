//! Rollouts as a user sees them through `ccd up`, each under a steady client
//! load through the app's load balancer that counts every failure: a rolling
//! update, a blue/green switch, a canary promoted step by step (the share of
//! the new version close to each weight), and a version that never turns
//! healthy rolled back. No client request fails, and the status's rollout
//! record agrees with the client's count.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use ccd_controller::record::RolloutState;
use ccd_controller::status::Status;
use ccd_e2e::load::{Load, LoadStats};
use ccd_e2e::rollout::{sample_spec, status};
use ccd_e2e::up::{Up, resources};
use ccd_e2e::{binary, eventually, temp_dir};

fn spec(version: &str, rollout: &str, env: &str) -> String {
    sample_spec(version, rollout, env, "3s")
}

const ROLLING: &str = "{maxSurge: 1, maxUnavailable: 0, drainTime: 2s, deadline: 2m}";
const BLUE_GREEN: &str = "{strategy: blueGreen, drainTime: 2s, deadline: 2m, keepWarm: 5s}";
const CANARY: &str = "{strategy: canary, drainTime: 2s, deadline: 2m, keepWarm: 5s, steps: [{weight: 20, pause: 12s}, {weight: 50, pause: 12s}]}";

/// Runs `ccd ARGS DATA`; its stdout.
async fn ccd(args: &[&str], data: &std::path::Path) -> String {
    let out = tokio::process::Command::new(binary("ccd"))
        .args(args)
        .arg(data)
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "ccd {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

async fn deploy(data: &std::path::Path, spec: &str) {
    std::fs::write(data.join("specs/web.yaml"), spec).unwrap();
}

async fn rollout_of(data: &std::path::Path, version: &str) -> Status {
    ccd_e2e::rollout::rollout_of(data, version).await.unwrap()
}

fn assert_no_failure(what: &str, client: &LoadStats, s: &Status) {
    let r = s.rollout.as_ref().unwrap();
    assert_eq!(
        client.failed, 0,
        "{what}: the client saw failures: {:#?}",
        client.failures
    );
    assert!(
        client.sent > 100,
        "{what}: the client sent {} requests",
        client.sent
    );
    assert!(r.probes.sent > 0, "{what}: the rollout probe sent nothing");
    assert_eq!(
        r.probes.failed, 0,
        "{what}: the rollout record counts failed probes, the client none"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollouts_under_load_fail_no_request() {
    let data = temp_dir("rollouts");
    std::fs::create_dir_all(data.join("specs")).unwrap();
    let mut up = Up::start(&data, &[]).await.unwrap();
    deploy(&data, &spec("1.0.0", ROLLING, "")).await;
    let url = up.ready("web").await.unwrap();
    let load = Load::start(&url, 4, Duration::from_millis(5));

    // Rolling.
    let before = load.snapshot();
    deploy(&data, &spec("1.1.0", ROLLING, "")).await;
    let s = rollout_of(&data, "1.1.0").await;
    assert_eq!(s.rollout.as_ref().unwrap().state, RolloutState::Succeeded);
    assert_no_failure("rolling", &load.snapshot().since(&before), &s);

    // Blue/green: a second group, one switch, the old one warm, then gone.
    let before = load.snapshot();
    deploy(&data, &spec("1.2.0", BLUE_GREEN, "")).await;
    let s = rollout_of(&data, "1.2.0").await;
    assert_eq!(s.rollout.as_ref().unwrap().state, RolloutState::Succeeded);
    let during = load.snapshot().since(&before);
    assert_no_failure("blue/green", &during, &s);
    eventually("one group left", Duration::from_secs(60), || async {
        (status(&data).groups.len() == 1).then_some(())
    })
    .await
    .unwrap();

    // `ccd plan` tells what the canary would change and how it would go,
    // and changes nothing, not even the status.
    let planned = data.join("canary.yaml");
    std::fs::write(&planned, spec("1.3.0", CANARY, "")).unwrap();
    let status_before = std::fs::read(data.join("status/web.yaml")).unwrap();
    let resources_before = resources(&up.cloud_http(), &up.compute, "web").await;
    let out = ccd(
        &["plan", planned.to_str().unwrap(), "-o", "json", "--data"],
        &data,
    )
    .await;
    let plan: serde_json::Value =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    let changes = plan["changes"].to_string();
    assert!(
        changes.contains("instanceTemplates/") && changes.contains("would be created"),
        "{out}"
    );
    assert_eq!(plan["rollout"]["strategy"], "canary", "{out}");
    let steps: Vec<&str> = plan["schedule"]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(steps, ["20%", "50%", "100%"]);
    assert!(
        plan["schedule"]["bestCase"].as_f64().unwrap() >= 29.0,
        "two 12s holds and 5s warm: {out}"
    );
    let table = ccd(&["plan", planned.to_str().unwrap(), "--data"], &data).await;
    assert!(table.contains("best case:"), "{table}");
    assert_eq!(
        std::fs::read(data.join("status/web.yaml")).unwrap(),
        status_before
    );
    assert_eq!(
        resources(&up.cloud_http(), &up.compute, "web").await,
        resources_before
    );

    // Canary: the served share follows each weight.
    deploy(&data, &spec("1.3.0", CANARY, "")).await;
    let before = load.snapshot();
    for (step, weight) in [("20%", 20.0), ("50%", 50.0)] {
        eventually(
            &format!("step {step} to take traffic"),
            Duration::from_secs(120),
            || async {
                let s = status(&data);
                let r = s.rollout.as_ref()?;
                (r.step.name == step && r.step.ready.is_some()).then_some(())
            },
        )
        .await
        .unwrap();
        // Traffic moved once the URL map changed; measure well inside the hold.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let start = load.snapshot();
        tokio::time::sleep(Duration::from_secs(6)).await;
        let window = load.snapshot().since(&start);
        let share = window.share("1.3.0");
        let answers: u64 = window.versions.values().sum();
        assert!(answers > 200, "{step}: only {answers} answers measured");
        assert!(
            (share - weight).abs() < 10.0,
            "{step}: version 1.3.0 served {share:.1}% of {answers} requests, the weight is {weight}%"
        );
    }
    // An operator holds it, lets it go, then promotes it past the holds.
    let held = ccd(&["rollout", "pause", "web", "--data"], &data).await;
    assert!(held.contains("pause asked"), "{held}");
    eventually("the pause", Duration::from_secs(30), || async {
        (status(&data).rollout?.state == RolloutState::Paused).then_some(())
    })
    .await
    .unwrap();
    let shown = ccd(&["rollout", "status", "web", "--data"], &data).await;
    assert!(
        shown.contains("is paused") && shown.contains("50%"),
        "{shown}"
    );
    ccd(&["rollout", "resume", "web", "--data"], &data).await;
    ccd(&["rollout", "promote", "web", "--data"], &data).await;
    let s = rollout_of(&data, "1.3.0").await;
    assert_eq!(s.rollout.as_ref().unwrap().state, RolloutState::Succeeded);
    assert!(s.rollout.as_ref().unwrap().promoted);
    assert_no_failure("canary", &load.snapshot().since(&before), &s);

    // A version that never turns healthy: rolled back, 1.3.0 serves throughout.
    let before = load.snapshot();
    deploy(
        &data,
        &spec("2.0.0", ROLLING, ", SAMPLE_FAIL_HEALTH: \"1\""),
    )
    .await;
    let s = rollout_of(&data, "2.0.0").await;
    let r = s.rollout.as_ref().unwrap();
    assert_eq!(r.state, RolloutState::Failed, "{}", s.to_yaml());
    assert!(s.rolled_back);
    eventually("only 1.3.0 left", Duration::from_secs(60), || async {
        (status(&data).serving == ["1.3.0"]).then_some(())
    })
    .await
    .unwrap();
    let during = load.snapshot().since(&before);
    assert_no_failure("bad version", &during, &s);
    assert_eq!(
        during.versions.keys().collect::<Vec<_>>(),
        ["1.3.0"],
        "2.0.0 never served"
    );

    let total = load.stop().await;
    assert_eq!(total.failed, 0, "{:#?}", total.failures);
    let text = ccd(&["rollout", "status", "web", "--data"], &data).await;
    assert!(text.contains("version 2.0.0 (from 1.3.0)"), "{text}");
    up.stop();
    let _ = tokio::time::timeout(Duration::from_secs(60), up.child.wait()).await;
    let _ = std::fs::remove_dir_all(&data);
}
