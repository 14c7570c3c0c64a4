//! The chaos suite: ccd killed with SIGKILL at random moments of repeated
//! rollouts, and a cloud that fails a fifth of its calls. After each run
//! every app is on its latest spec with what it needs once, nothing leaked
//! in the cloud and no instance process astray.
//!
//! `make test` runs a short version; `make chaos` the long one. Settings
//! (environment): `CCD_CHAOS_KILLS` per test (1), `CCD_CHAOS_APPS` for the
//! faults test (20), `CCD_CHAOS_SEED` to replay a run (each test prints its
//! seed first).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use ccd_e2e::chaos::{
    Dice, Footprint, controller, footprint, instance_processes, kill_9, seed, setting, settled,
};
use ccd_e2e::up::{Up, resources};
use ccd_e2e::{LocalCloudProcess, cloud_client, eventually, temp_dir};

/// Rolling, blue/green and canary, each behind its own internal load
/// balancer, two instances of the sample app each.
const STRATEGIES: [(&str, &str); 3] = [
    (
        "roll",
        "{maxSurge: 1, maxUnavailable: 0, drainTime: 1s, deadline: 2m}",
    ),
    (
        "blue",
        "{strategy: blueGreen, drainTime: 1s, deadline: 2m, keepWarm: 2s}",
    ),
    (
        "cana",
        "{strategy: canary, drainTime: 1s, deadline: 2m, keepWarm: 2s, steps: [{weight: 50, pause: 3s}]}",
    ),
];

fn spec(app: &str, version: u64, rollout: &str, port: u16) -> String {
    format!(
        "apiVersion: ccd/v1
kind: App
metadata: {{name: {app}}}
spec:
  image: example/{app}:{version}
  version: \"{version}\"
  run: {{command: [ccd-sample-app], args: [--port, \"$(PORT)\"]}}
  port: 8080
  machine: {{zones: [europe-west1-b]}}
  replicas: {{min: 2, max: 2}}
  health: {{http: {{path: /healthz}}, interval: 1s, timeout: 1s, healthyThreshold: 1, unhealthyThreshold: 2, initialDelay: 2s}}
  rollout: {rollout}
  expose: {{internal: {{port: {port}, allowFrom: [10.0.0.0/8]}}}}
"
    )
}

/// The apps of one test: the strategies under names with its own prefix
/// and ports from `first_port`, so that two tests running at once never
/// count each other's processes or take each other's ports.
fn apps(prefix: &str, first_port: u16) -> Vec<(String, &'static str, u16)> {
    STRATEGIES
        .iter()
        .zip(first_port..)
        .map(|((name, rollout), port)| (format!("{prefix}{name}"), *rollout, port))
        .collect()
}

fn write_specs(store: &Path, apps: &[(String, &str, u16)], version: u64, dice: &mut Dice) {
    // Each round changes a random non-empty subset of the apps.
    let mut changed = 0;
    for (i, (app, rollout, port)) in apps.iter().enumerate() {
        let last = i + 1 == apps.len();
        if version == 1 || dice.below(3) > 0 || (last && changed == 0) {
            let path = store.join("specs").join(format!("{app}.yaml"));
            std::fs::write(path, spec(app, version, rollout, *port)).unwrap();
            changed += 1;
        }
    }
}

/// The version each app's spec names now.
fn spec_versions(store: &Path, apps: &[(String, &str, u16)]) -> BTreeMap<String, String> {
    apps.iter()
        .map(|(app, ..)| {
            let text =
                std::fs::read_to_string(store.join("specs").join(format!("{app}.yaml"))).unwrap();
            let version = text
                .lines()
                .find_map(|l| l.trim().strip_prefix("version: "))
                .unwrap()
                .trim_matches('"')
                .to_owned();
            (app.clone(), version)
        })
        .collect()
}

async fn all_settled(store: &Path, apps: &[(String, &str, u16)], limit: Duration) -> Result<()> {
    let want = spec_versions(store, apps);
    eventually("every app settled on its latest spec", limit, || async {
        want.iter()
            .all(|(app, version)| settled(store, app, version))
            .then_some(())
    })
    .await
    .with_context(|| {
        let states: Vec<String> = want
            .iter()
            .map(|(app, version)| {
                let s = ccd_e2e::chaos::status(store, app);
                format!(
                    "{app}: want {version}, status {:?} serving {:?} rollout {:?} groups {}",
                    s.as_ref().map(|s| s.phase),
                    s.as_ref().map(|s| s.serving.clone()),
                    s.as_ref()
                        .and_then(|s| s.rollout.as_ref().map(|r| (r.to.version.clone(), r.state))),
                    s.as_ref().map_or(0, |s| s.groups.len()),
                )
            })
            .collect();
        states.join("\n")
    })
}

/// Each app's footprint in the cloud.
async fn footprints(
    http: &reqwest::Client,
    compute: &str,
    apps: &[(String, &str, u16)],
) -> BTreeMap<String, Footprint> {
    let mut out = BTreeMap::new();
    for (app, ..) in apps {
        out.insert(app.clone(), footprint(&resources(http, compute, app).await));
    }
    out
}

/// Waits (old groups are deleted a little after a rollout ends) until the
/// footprints equal `reference`; then every instance of the apps runs as
/// exactly one process, and no process runs for an instance that is gone.
async fn check_nothing_leaked(
    http: &reqwest::Client,
    compute: &str,
    apps: &[(String, &str, u16)],
    prefix: &str,
    reference: &BTreeMap<String, Footprint>,
) -> Result<()> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let now = footprints(http, compute, apps).await;
        if now == *reference {
            break;
        }
        if tokio::time::Instant::now() > deadline {
            bail!(
                "resources differ from the first deployment's:\nnow:   {now:?}\nfirst: {reference:?}"
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let mut instances = BTreeSet::new();
    for (app, ..) in apps {
        for name in resources(http, compute, app).await {
            if let Some(instance) = name.split_once("/instances/").map(|(_, n)| n.to_owned()) {
                instances.insert(instance);
            }
        }
    }
    eventually(
        "one process per instance, none astray",
        Duration::from_secs(30),
        || async {
            let running = instance_processes(prefix);
            let ok = running.keys().cloned().collect::<BTreeSet<_>>() == instances
                && running.values().all(|pids| pids.len() == 1);
            ok.then_some(())
        },
    )
    .await
    .with_context(|| {
        format!(
            "instances {instances:?}, processes {:?}",
            instance_processes(prefix)
        )
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_controller_killed_at_random_during_rollouts() -> Result<()> {
    let seed = seed();
    let kills = setting("KILLS", 1);
    eprintln!("chaos (controller): seed {seed} (CCD_CHAOS_SEED to replay), {kills} kills");
    let mut dice = Dice::new(seed);
    let dir = temp_dir("chaos-controller");
    let store = dir.join("store");
    std::fs::create_dir_all(store.join("specs"))?;
    let apps = apps("kc", 8101);
    std::fs::create_dir_all(dir.join("cloud"))?;
    let cloud = LocalCloudProcess::start(&dir.join("cloud")).await?;
    let http = cloud.http();

    write_specs(&store, &apps, 1, &mut dice);
    let mut ctl = controller(&dir, &store, &cloud);
    all_settled(&store, &apps, Duration::from_secs(180)).await?;
    let reference = footprints(&http, &cloud.compute, &apps).await;
    eprintln!("first deployment: {reference:?}");

    for round in 1..=kills {
        let version = round + 1;
        write_specs(&store, &apps, version, &mut dice);
        let after = Duration::from_millis(dice.below(8_000));
        tokio::time::sleep(after).await;
        kill_9(&mut ctl).await;
        eprintln!(
            "kill {round}/{kills}: {} ms into the rollouts of version {version}",
            after.as_millis()
        );
        // Now and then the controller stays down a while: rollouts' deadlines run on.
        tokio::time::sleep(Duration::from_millis(dice.below(2_000))).await;
        ctl = controller(&dir, &store, &cloud);
    }
    all_settled(&store, &apps, Duration::from_secs(240)).await?;
    check_nothing_leaked(&http, &cloud.compute, &apps, "kc", &reference).await?;
    kill_9(&mut ctl).await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ccd_up_killed_at_random_during_rollouts() -> Result<()> {
    let seed = seed().wrapping_add(1);
    let kills = setting("KILLS", 1);
    eprintln!("chaos (ccd up): seed {seed} (CCD_CHAOS_SEED to replay, minus one), {kills} kills");
    let mut dice = Dice::new(seed);
    let data = temp_dir("chaos-up");
    std::fs::create_dir_all(data.join("specs"))?;
    let apps = apps("ku", 8111);

    write_specs(&data, &apps, 1, &mut dice);
    let mut up = Up::start(&data, &[]).await?;
    all_settled(&data, &apps, Duration::from_secs(180)).await?;
    let http = cloud_client(&up.token);
    let reference = footprints(&http, &up.compute, &apps).await;
    eprintln!("first deployment: {reference:?}");

    for round in 1..=kills {
        let version = round + 1;
        write_specs(&data, &apps, version, &mut dice);
        let after = Duration::from_millis(dice.below(8_000));
        tokio::time::sleep(after).await;
        // The controller, the local cloud and its load balancers die at
        // once; the instances' processes are left behind as orphans.
        kill_9(&mut up.child).await;
        eprintln!(
            "kill {round}/{kills}: {} ms into the rollouts of version {version}",
            after.as_millis()
        );
        up = Up::start(&data, &[]).await?;
    }
    all_settled(&data, &apps, Duration::from_secs(240)).await?;
    let http = cloud_client(&up.token);
    check_nothing_leaked(&http, &up.compute, &apps, "ku", &reference).await?;
    Ok(())
}

/// Calls the local cloud received while `apps` simulated apps converged:
/// answered, and failed by its fault injection.
#[derive(Debug, Clone, Copy)]
struct Calls {
    answered: u64,
    injected_faults: u64,
}

impl Calls {
    fn total(self) -> u64 {
        self.answered + self.injected_faults
    }
}

/// `apps` apps of two simulated instances each (no `run:`, so no
/// processes), converged by a controller on a fresh local cloud started
/// with `faults` (its command-line flags).
async fn converge_simulated(tag: &str, apps: u64, faults: &[&str]) -> Result<Calls> {
    let dir = temp_dir(tag);
    let store = dir.join("store");
    std::fs::create_dir_all(store.join("specs"))?;
    let names: Vec<String> = (1..=apps).map(|i| format!("fa{i:04}")).collect();
    for app in &names {
        std::fs::write(
            store.join("specs").join(format!("{app}.yaml")),
            format!(
                "apiVersion: ccd/v1\nkind: App\nmetadata: {{name: {app}}}\nspec:\n  image: example/{app}:1\n  version: \"1\"\n  port: 8080\n  replicas: {{min: 2}}\n"
            ),
        )?;
    }
    std::fs::create_dir_all(dir.join("cloud"))?;
    let cloud = LocalCloudProcess::start_with(&dir.join("cloud"), faults, &[]).await?;
    let mut ctl = controller(&dir, &store, &cloud);
    all_settled_on(&store, &names, "1", Duration::from_secs(300)).await?;
    let status = cloud.admin_status().await?;
    kill_9(&mut ctl).await;
    let n = |k: &str| status["calls"][k].as_u64().unwrap_or(0);
    Ok(Calls {
        answered: n("reads") + n("mutations"),
        injected_faults: n("injectedFaults"),
    })
}

async fn all_settled_on(
    store: &Path,
    apps: &[String],
    version: &str,
    limit: Duration,
) -> Result<()> {
    eventually(&format!("{} apps Ready", apps.len()), limit, || async {
        apps.iter()
            .all(|app| settled(store, app, version))
            .then_some(())
    })
    .await
    .with_context(|| {
        let waiting: Vec<&String> = apps
            .iter()
            .filter(|a| !settled(store, a, version))
            .collect();
        format!("not settled: {waiting:?}")
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_app_converges_while_a_fifth_of_cloud_calls_fail() -> Result<()> {
    let apps = setting("APPS", 20);
    let calm = converge_simulated("chaos-calm", apps, &[]).await?;
    // 403 rateLimitExceeded, 429 and 503 in equal shares, and every
    // operation half a second from PENDING to DONE.
    let stormy = converge_simulated(
        "chaos-faults",
        apps,
        &["--error-rate", "0.2", "--operation-latency-ms", "500"],
    )
    .await?;
    eprintln!(
        "{apps} apps: {} calls without faults; {} with a fifth failing ({} of them failed), {:.2}x",
        calm.total(),
        stormy.total(),
        stormy.injected_faults,
        stormy.total() as f64 / calm.total().max(1) as f64
    );
    assert!(
        stormy.injected_faults > 0,
        "the fault injection failed no call"
    );
    assert!(
        stormy.total() <= 3 * calm.total(),
        "converging under faults took {} calls, more than 3x the {} without",
        stormy.total(),
        calm.total()
    );
    Ok(())
}
