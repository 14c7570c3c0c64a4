//! The agent beside every instance, and the health and scaling reconcilers
//! acting on what it reports, as a user sees them through `ccd up`: a hung
//! app (SIGSTOP) is restarted while the others serve, with no failed client
//! request; a crashed app starts again on the same instance; a worker whose
//! exec check fails is restarted; CPU load scales a group out, and it
//! scales back in once the load is gone and the stabilization window passed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::Duration;

use ccd_e2e::agents::{burn, busy_spec, events, programs, scaling, signal};
use ccd_e2e::load::Load;
use ccd_e2e::rollout::sample_spec;
use ccd_e2e::up::Up;
use ccd_e2e::{binary, eventually, temp_dir};

const ROLLING: &str = "{maxSurge: 1, maxUnavailable: 0, drainTime: 2s, deadline: 2m}";

fn deploy(data: &Path, app: &str, spec: &str) {
    std::fs::write(data.join(format!("specs/{app}.yaml")), spec).unwrap();
}

async fn wait_for_event(data: &Path, app: &str, words: &[&str]) -> String {
    let ccd = binary("ccd");
    eventually(
        &format!("an event of {app} with {words:?}"),
        Duration::from_secs(60),
        || async {
            let all = events(&ccd, data, app).await;
            all.lines()
                .find(|l| words.iter().all(|w| l.contains(w)))
                .map(str::to_owned)
        },
    )
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_app_is_restarted_and_a_crashed_one_starts_again_with_no_failed_request() {
    let data = temp_dir("heal");
    let mut up = Up::start(&data, &[]).await.unwrap();
    deploy(&data, "web", &sample_spec("1", ROLLING, "", "2s"));
    let url = up.ready("web").await.unwrap();
    let load = Load::start(&url, 4, Duration::from_millis(20));
    tokio::time::sleep(Duration::from_secs(2)).await;

    // Hung: the process is there and holds its port, but answers nothing.
    let before = programs(&data.join("cloud"));
    assert_eq!(before.len(), 3, "{before:?}");
    let (hung, hung_pid) = before.iter().next().map(|(n, p)| (n.clone(), *p)).unwrap();
    signal(hung_pid, "STOP");
    let line = wait_for_event(&data, "web", &["Restarting", &hung]).await;
    assert!(line.contains("unhealthy"), "{line}");
    eventually(
        "the hung app to run again",
        Duration::from_secs(60),
        || async {
            let now = programs(&data.join("cloud"));
            now.get(&hung).filter(|&&pid| pid != hung_pid).copied()
        },
    )
    .await
    .unwrap();

    // Crashed: its supervisor (the container runtime on a VM) starts it again.
    let (crashed, crashed_pid) = before
        .iter()
        .find(|(n, _)| **n != hung)
        .map(|(n, p)| (n.clone(), *p))
        .unwrap();
    signal(crashed_pid, "KILL");
    eventually(
        "the crashed app to run again",
        Duration::from_secs(60),
        || async {
            let now = programs(&data.join("cloud"));
            now.get(&crashed)
                .filter(|&&pid| pid != crashed_pid)
                .copied()
        },
    )
    .await
    .unwrap();
    // Both serve again: every instance answers through the load balancer.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let client = load.stop().await;
    assert_eq!(
        client.failed, 0,
        "the client saw failures: {:#?}",
        client.failures
    );
    assert!(client.sent > 200, "the client sent {}", client.sent);
    let after = programs(&data.join("cloud"));
    assert_eq!(
        after.keys().collect::<Vec<_>>(),
        before.keys().collect::<Vec<_>>(),
        "healed in place, not replaced: the instances are the same"
    );
    let all = events(&binary("ccd"), &data, "web").await;
    assert!(!all.contains("Recreating"), "{all}");
    up.stop();
    let _ = up.child.wait().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_whose_exec_check_fails_is_restarted() {
    let data = temp_dir("worker");
    let sick = data.join("sick");
    std::fs::create_dir_all(&sick).unwrap();
    let mut up = Up::start(&data, &[]).await.unwrap();
    let bin = binary("ccd").parent().unwrap().display().to_string();
    // The program clears its instance's mark as it starts; the exec check
    // fails while the mark is there: only a restart makes it pass again.
    let spec = format!(
        "apiVersion: ccd/v1
kind: App
metadata: {{name: worker}}
spec:
  image: example/worker:1
  version: \"1\"
  run: {{command: [sh], args: [-c, 'rm -f \"$SICK/$CCD_INSTANCE\"; exec ccd-sample-app --port \"$PORT\"']}}
  port: 8080
  env: {{SICK: \"{sick}\", PATH: \"{bin}:/usr/local/bin:/usr/bin:/bin\"}}
  machine: {{zones: [europe-west1-b]}}
  replicas: {{min: 2}}
  health: {{exec: {{command: [sh, -c, 'test ! -e \"$SICK/$CCD_INSTANCE\"']}}, interval: 1s, timeout: 1s, healthyThreshold: 1, unhealthyThreshold: 2, initialDelay: 1s}}
",
        sick = sick.display()
    );
    deploy(&data, "worker", &spec);
    up.ready("worker").await.unwrap();
    let before = programs(&data.join("cloud"));
    assert_eq!(before.len(), 2, "{before:?}");
    let (name, pid) = before.iter().next().map(|(n, p)| (n.clone(), *p)).unwrap();
    std::fs::write(sick.join(&name), "").unwrap();
    let line = wait_for_event(&data, "worker", &["Restarting", &name]).await;
    assert!(line.contains("exit status 1"), "{line}");
    eventually(
        "the worker to start again",
        Duration::from_secs(60),
        || async {
            let now = programs(&data.join("cloud"));
            let restarted = now.get(&name).is_some_and(|&p| p != pid);
            (restarted && !sick.join(&name).exists()).then_some(())
        },
    )
    .await
    .unwrap();
    let all = events(&binary("ccd"), &data, "worker").await;
    assert!(!all.contains("Recreating"), "{all}");
    up.stop();
    let _ = up.child.wait().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cpu_load_scales_the_group_out_and_back_in_after_the_window() {
    let data = temp_dir("scale");
    let mut up = Up::start(&data, &[]).await.unwrap();
    let spec = busy_spec(3, "10s", "");
    deploy(&data, "busy", &spec);
    let url = up.ready("busy").await.unwrap();
    let idle = eventually("the scaling record", Duration::from_secs(30), || async {
        scaling(&data, "busy").filter(|r| r.held.is_none())
    })
    .await
    .unwrap();
    assert_eq!((idle.size, idle.min, idle.max), (1, 1, 3), "{idle:?}");

    let load = burn(&url, 3);
    let out = eventually("a scale-out", Duration::from_secs(60), || async {
        scaling(&data, "busy").filter(|r| r.size >= 2)
    })
    .await
    .unwrap();
    let last = out.last.as_ref().unwrap();
    assert!(last.from == 1 && last.to >= 2, "{out:?}");
    assert!(last.reason.contains("average CPU"), "{out:?}");
    eventually(
        "the added instances to run",
        Duration::from_secs(60),
        || async { (programs(&data.join("cloud")).len() >= 2).then_some(()) },
    )
    .await
    .unwrap();
    wait_for_event(&data, "busy", &["ScaledOut", "average CPU"]).await;
    // `ccd status` shows the decision and why.
    let shown = tokio::process::Command::new(binary("ccd"))
        .args(["status", "--data"])
        .arg(&data)
        .arg("busy")
        .output()
        .await
        .unwrap();
    let shown = String::from_utf8_lossy(&shown.stdout);
    assert!(
        shown.contains("busy: scaling: ") && shown.contains("last 1 → "),
        "{shown}"
    );

    for task in load {
        task.abort();
    }
    let back = eventually("a scale-in", Duration::from_secs(90), || async {
        scaling(&data, "busy").filter(|r| r.size == 1)
    })
    .await
    .unwrap();
    let last = back.last.as_ref().unwrap();
    assert_eq!(last.to, 1, "{back:?}");
    // Not before the window of low load.
    assert!(
        last.at.since(out.last.as_ref().unwrap().at) >= Duration::from_secs(10),
        "{back:?}"
    );
    wait_for_event(&data, "busy", &["ScaledIn"]).await;
    up.stop();
    let _ = up.child.wait().await;
}
