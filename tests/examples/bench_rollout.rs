//! `make bench`'s rollout figures, for three replicas of the sample app
//! under a steady client load through the load balancer (release builds of
//! `ccd` and `ccd-sample-app`, given as arguments):
//!
//! 1. a rolling update: its duration (the rollout record's start to end)
//!    against the sum of its new instances' own start and health times
//!    (created → marked healthy, from the local cloud's log): what ccd adds;
//! 2. a blue/green switch: its duration against its slowest new instance's
//!    (they start together);
//! 3. a version that never turns healthy: the time from its first failed
//!    health check to the whole fleet back on the last good revision;
//!
//! and the client requests that failed in each.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::time::Instant;

use anyhow::{Context, Result, bail};
use ccd_controller::status::Status;
use ccd_e2e::load::{Load, LoadStats};
use ccd_e2e::rollout::{sample_spec, status};
use ccd_e2e::up::Up;
use ccd_e2e::{eventually, temp_dir};

/// Instances that take a second to start, as a small real app would.
fn spec(version: &str, rollout: &str, env: &str) -> String {
    sample_spec(
        version,
        rollout,
        &format!(", SAMPLE_START_DELAY: 1s{env}"),
        "2s",
    )
}

const ROLLING: &str = "{maxSurge: 1, maxUnavailable: 0, drainTime: 1s, deadline: 2m}";
const BLUE_GREEN: &str = "{strategy: blueGreen, drainTime: 1s, deadline: 2m, keepWarm: 0s}";

/// One line of `ccd up`'s log: when, what it says, and its `key=value` fields.
struct LogLine {
    at: jiff::Timestamp,
    text: String,
    fields: BTreeMap<String, String>,
}

impl LogLine {
    fn says(&self, message: &str) -> bool {
        self.text.contains(&format!(" {message} ")) || self.text.ends_with(&format!(" {message}"))
    }

    fn field(&self, key: &str) -> &str {
        self.fields.get(key).map_or("", String::as_str)
    }
}

fn read_log(path: &Path) -> Vec<LogLine> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .filter_map(|line| {
            let (at, rest) = line.split_once(' ')?;
            let at: jiff::Timestamp = at.parse().ok()?;
            let fields = rest
                .split_whitespace()
                .filter_map(|w| w.split_once('='))
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect();
            Some(LogLine {
                at,
                text: rest.to_owned(),
                fields,
            })
        })
        .collect()
}

fn between(from: jiff::Timestamp, to: jiff::Timestamp) -> Duration {
    to.duration_since(from).unsigned_abs()
}

/// Each new instance of `template`: created → first marked healthy.
fn start_and_health(log: &[LogLine], template: &str) -> Vec<Duration> {
    let mut created: BTreeMap<String, jiff::Timestamp> = BTreeMap::new();
    let mut times = Vec::new();
    for l in log {
        let instance = l.field("instance").to_owned();
        if l.says("instance created") && l.field("template").ends_with(template) {
            created.insert(instance, l.at);
        } else if l.says("health changed")
            && l.field("state") == "Healthy"
            && let Some(start) = created.remove(&instance)
        {
            times.push(between(start, l.at));
        }
    }
    times
}

fn record_secs(s: &Status) -> f64 {
    let r = s.rollout.as_ref().expect("a rollout");
    r.ended.map_or(0.0, |e| e.since(r.started).as_secs_f64())
}

fn template_of(s: &Status) -> String {
    s.rollout
        .as_ref()
        .map(|r| r.to.template.clone())
        .unwrap_or_default()
}

struct Row {
    scenario: &'static str,
    figure: String,
    goal: &'static str,
    failed: u64,
    sent: u64,
    met: bool,
}

#[tokio::main]
async fn main() -> Result<()> {
    let args: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    let [ccd] = args.as_slice() else {
        bail!("usage: bench_rollout PATH/TO/ccd (release; ccd-sample-app beside it)");
    };
    let data = temp_dir("bench-rollout");
    std::fs::create_dir_all(data.join("specs"))?;
    let mut up = Up::start_with(ccd, &data, &[]).await?;
    std::fs::write(data.join("specs/web.yaml"), spec("1", ROLLING, ""))?;
    let url = up.ready("web").await?;
    let load = Load::start(&url, 4, Duration::from_millis(5));
    let mut rows = Vec::new();
    let log = data.join("up.log");

    // 1. Rolling.
    let before = load.snapshot();
    std::fs::write(data.join("specs/web.yaml"), spec("2", ROLLING, ""))?;
    let s = ccd_e2e::rollout::rollout_of(&data, "2").await?;
    let own: Duration = start_and_health(&read_log(&log), &template_of(&s))
        .iter()
        .sum();
    let took = record_secs(&s);
    let ratio = took / own.as_secs_f64().max(0.001);
    let l = load.snapshot().since(&before);
    rows.push(Row {
        scenario: "rolling, 3 instances one at a time",
        figure: format!(
            "{took:.1} s / {:.1} s own start+health = {ratio:.2}x",
            own.as_secs_f64()
        ),
        goal: "< 1.2x",
        failed: l.failed,
        sent: l.sent,
        met: ratio < 1.2,
    });

    // 2. Blue/green.
    let before = load.snapshot();
    std::fs::write(data.join("specs/web.yaml"), spec("3", BLUE_GREEN, ""))?;
    let s = ccd_e2e::rollout::rollout_of(&data, "3").await?;
    let slowest = start_and_health(&read_log(&log), &template_of(&s))
        .into_iter()
        .max()
        .unwrap_or_default();
    let took = record_secs(&s);
    let ratio = took / slowest.as_secs_f64().max(0.001);
    let l = load.snapshot().since(&before);
    rows.push(Row {
        scenario: "blue/green, 3 instances together",
        figure: format!(
            "{took:.1} s / {:.1} s slowest start+health = {ratio:.2}x",
            slowest.as_secs_f64()
        ),
        goal: "< 1.2x",
        failed: l.failed,
        sent: l.sent,
        met: ratio < 1.2,
    });
    eventually("one group left", Duration::from_secs(60), || async {
        (status(&data).groups.len() == 1).then_some(())
    })
    .await?;

    // 3. A version that never turns healthy.
    let before = load.snapshot();
    let stable = status(&data)
        .stable()
        .map(|g| g.name.clone())
        .context("no stable group")?;
    let good = template_of(&status(&data));
    std::fs::write(
        data.join("specs/web.yaml"),
        spec("4", ROLLING, ", SAMPLE_FAIL_HEALTH: \"1\""),
    )?;
    let back = fleet_back(&up, &stable, &good).await?;
    let s = ccd_e2e::rollout::rollout_of(&data, "4").await?;
    let bad = template_of(&s);
    let first_failure = first_failed_check(&read_log(&log), &bad)
        .context("no failed health check of the bad version in the log")?;
    let secs = between(first_failure, back).as_secs_f64();
    let l = load.snapshot().since(&before);
    rows.push(Row {
        scenario: "bad version rolled back",
        figure: format!("{secs:.1} s from its first failed check to all on the last good"),
        goal: "< 15 s",
        failed: l.failed,
        sent: l.sent,
        met: secs < 15.0,
    });

    let total: LoadStats = load.stop().await;
    up.stop();
    let _ = tokio::time::timeout(Duration::from_secs(60), up.child.wait()).await;
    println!(
        "rollout-bench: 3 replicas of ccd-sample-app taking 1 s to start, 1 s checks, unhealthyThreshold 2, 4 clients through the load balancer"
    );
    println!(
        "{:<36} {:<62} {:<8} {:>16}",
        "scenario", "figure", "goal", "failed/requests"
    );
    let mut all_met = true;
    for r in &rows {
        let met = r.met && r.failed == 0;
        all_met &= met;
        println!(
            "{:<36} {:<62} {:<8} {:>16} {}",
            r.scenario,
            r.figure,
            r.goal,
            format!("{}/{}", r.failed, r.sent),
            if met { "ok" } else { "MISSED" }
        );
    }
    if total.failed > 0 {
        println!("failures: {:#?}", total.failures);
    }
    if std::env::var("BENCH_KEEP").as_deref() == Ok("1") {
        println!("work folder kept: {}", data.display());
    } else {
        let _ = std::fs::remove_dir_all(&data);
    }
    if !all_met {
        println!("rollout-bench: a goal was missed");
    }
    Ok(())
}

/// The first failed check of an instance of `template` that answered (a
/// bad version that runs), not one still starting.
fn first_failed_check(log: &[LogLine], template: &str) -> Option<jiff::Timestamp> {
    let mut ours = std::collections::BTreeSet::new();
    for l in log {
        let instance = l.field("instance").to_owned();
        if l.says("instance created") && l.field("template").ends_with(template) {
            ours.insert(instance);
        } else if l.says("health check failed")
            && l.field("outcome") == "Failed"
            && ours.contains(&instance)
        {
            return Some(l.at);
        }
    }
    None
}

/// Polls the group until every member runs `good`, healthy and at rest,
/// after one that does not was seen; when that happened.
async fn fleet_back(up: &Up, group: &str, good: &str) -> Result<jiff::Timestamp> {
    let http = up.cloud_http();
    let url = format!(
        "{}projects/local/zones/europe-west1-b/instanceGroupManagers/{group}/listManagedInstances",
        up.compute
    );
    let mut left_good = false;
    let start = Instant::now();
    loop {
        let body: serde_json::Value = http.post(&url).send().await?.json().await?;
        let members = body["managedInstances"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let all_good = !members.is_empty()
            && members.iter().all(|m| {
                m["version"]["instanceTemplate"]
                    .as_str()
                    .is_some_and(|t| t.ends_with(good))
                    && m["currentAction"] == "NONE"
                    && m["instanceHealth"][0]["detailedHealthState"] == "HEALTHY"
            });
        if !all_good {
            left_good = true;
        } else if left_good {
            return Ok(jiff::Timestamp::try_from(ccd_clock::wall()).unwrap_or_default());
        }
        if start.elapsed() > Duration::from_secs(300) {
            bail!("the fleet did not come back to {good} within 5 minutes");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
