//! `make bench`'s healing and scaling figures through `ccd up` (release
//! builds of `ccd` and `ccd-sample-app`, the first given as argument), each
//! against a peer measured in the same run:
//!
//! 1. a hung app (SIGSTOP): the time from the freeze to its instance serving
//!    again, against detection (`unhealthyThreshold` × interval) plus the
//!    app's own start time (its restarted process to its first answer);
//! 2. a load step (CPU on the only instance): the time from the step to a
//!    second instance serving, against two metric intervals plus the new
//!    instance's own start time (its process to its first answer);
//!
//! and the client requests that failed meanwhile.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr
)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;
use tokio::time::Instant;

use anyhow::{Result, bail};
use ccd_e2e::agents::{burn, busy_spec, programs, signal};
use ccd_e2e::load::Load;
use ccd_e2e::rollout::sample_spec;
use ccd_e2e::up::Up;
use ccd_e2e::{eventually, temp_dir};

/// An app that takes a second to start, as a small real app would.
const START: Duration = Duration::from_secs(1);
const INTERVAL: Duration = Duration::from_secs(1);
const UNHEALTHY_THRESHOLD: u32 = 2;

/// Instance name → its address, from the local cloud's Compute API.
async fn addresses(up: &Up) -> BTreeMap<String, String> {
    let url = format!(
        "{}projects/local/zones/europe-west1-b/instances",
        up.compute
    );
    let http = ccd_e2e::authorized(
        &up.token,
        reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(5)),
    );
    let list: serde_json::Value = match http.get(&url).send().await {
        Ok(r) => r.json().await.unwrap_or_default(),
        Err(_) => serde_json::Value::Null,
    };
    list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| {
            let name = i["name"].as_str()?.to_owned();
            let ip = i["networkInterfaces"][0]["networkIP"].as_str()?.to_owned();
            Some((name, ip))
        })
        .collect()
}

/// Polls the app on `ip` directly until it answers (a minute at most); when it did.
async fn answers(http: &reqwest::Client, ip: &str) -> Result<Instant> {
    let url = format!("http://{ip}:8080/healthz");
    let limit = Instant::now() + Duration::from_secs(60);
    loop {
        if Instant::now() > limit {
            bail!("{url} did not answer within a minute");
        }
        let ok = http
            .get(&url)
            .timeout(Duration::from_millis(200))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        if ok {
            return Ok(Instant::now());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let args: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    let [ccd] = args.as_slice() else {
        bail!("usage: bench_healing PATH/TO/ccd (release; ccd-sample-app beside it)");
    };
    let data = temp_dir("bench-healing");
    let cloud = data.join("cloud");
    let http = reqwest::Client::builder().no_proxy().build()?;
    let mut up = Up::start_with(ccd, &data, &[]).await?;
    let mut lines = Vec::new();
    let mut all_met = true;

    // 1. A hung app.
    std::fs::write(
        data.join("specs/web.yaml"),
        sample_spec(
            "1",
            "{maxSurge: 1, maxUnavailable: 0, drainTime: 1s, deadline: 2m}",
            ", SAMPLE_START_DELAY: 1s",
            "2s",
        ),
    )?;
    let url = up.ready("web").await?;
    eprintln!("healing-bench: web is ready at {url}");
    let load = Load::start(&url, 4, Duration::from_millis(5));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = programs(&cloud);
    let (hung, pid) = before.iter().next().map(|(n, p)| (n.clone(), *p)).unwrap();
    let frozen = Instant::now();
    eprintln!("healing-bench: freezing {hung} (pid {pid})");
    signal(pid, "STOP");
    let restarted = eventually(
        "the hung app to restart",
        Duration::from_secs(60),
        || async {
            programs(&cloud)
                .get(&hung)
                .filter(|&&p| p != pid)
                .map(|_| Instant::now())
        },
    )
    .await?;
    // Restarted in place, or recreated by the group's autohealing if that
    // came first: then with an address of its own.
    let ip = eventually("its address", Duration::from_secs(30), || async {
        addresses(&up).await.remove(&hung)
    })
    .await?;
    let serving = answers(&http, &ip).await?;
    let own_start = serving - restarted;
    let detection = INTERVAL * UNHEALTHY_THRESHOLD;
    let took = serving - frozen;
    let goal = detection + own_start + Duration::from_secs(2);
    let client = load.stop().await;
    let met = took <= goal && client.failed == 0;
    all_met &= met;
    lines.push(format!(
        "hung app → serving again     {:>5.1} s  (detection {:.1} s + own start {:.1} s + 2 s = {:.1} s goal; {:.2}x of detection+start)  failed {}/{}  {}",
        took.as_secs_f64(),
        detection.as_secs_f64(),
        own_start.as_secs_f64(),
        goal.as_secs_f64(),
        took.as_secs_f64() / (detection + own_start).as_secs_f64(),
        client.failed,
        client.sent,
        if met { "ok" } else { "MISSED" }
    ));

    // 2. A load step.
    std::fs::write(
        data.join("specs/busy.yaml"),
        busy_spec(2, "1m", "SAMPLE_START_DELAY: 1s"),
    )?;
    let busy = up.ready("busy").await?;
    eprintln!("healing-bench: busy is ready at {busy}");
    // Past the scaler's first look, so the step is all it sees.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let first: Vec<String> = addresses(&up)
        .await
        .into_keys()
        .filter(|n| n.starts_with("busy"))
        .collect();
    let step = Instant::now();
    eprintln!("healing-bench: load step on {first:?}");
    let burners = burn(&busy, 3);
    let (added, ip) = eventually("a second instance", Duration::from_secs(60), || async {
        addresses(&up)
            .await
            .into_iter()
            .find(|(n, _)| n.starts_with("busy") && !first.contains(n))
    })
    .await?;
    let started = eventually("its process", Duration::from_secs(60), || async {
        programs(&cloud).get(&added).map(|_| Instant::now())
    })
    .await?;
    let serving = answers(&http, &ip).await?;
    for b in burners {
        b.abort();
    }
    let own_start = serving - started;
    let took = serving - step;
    let goal = INTERVAL * 2 + own_start;
    // The first interval's figure is a partial one: allow the sampling's own second.
    let met = took <= goal + INTERVAL;
    all_met &= met;
    lines.push(format!(
        "load step → capacity serving {:>5.1} s  (two intervals {:.1} s + own start {:.1} s = {:.1} s goal, +1 s sampling; {:.2}x)  {}",
        took.as_secs_f64(),
        (INTERVAL * 2).as_secs_f64(),
        own_start.as_secs_f64(),
        goal.as_secs_f64(),
        took.as_secs_f64() / goal.as_secs_f64(),
        if met { "ok" } else { "MISSED" }
    ));

    up.stop();
    let _ = tokio::time::timeout(Duration::from_secs(60), up.child.wait()).await;
    println!(
        "healing-bench: ccd-sample-app taking {:.0} s to start, {:.0} s checks, unhealthyThreshold {UNHEALTHY_THRESHOLD}",
        START.as_secs_f64(),
        INTERVAL.as_secs_f64()
    );
    for l in &lines {
        println!("{l}");
    }
    if std::env::var("BENCH_KEEP").as_deref() == Ok("1") {
        println!("work folder kept: {}", data.display());
    } else {
        let _ = std::fs::remove_dir_all(&data);
    }
    if !all_met {
        println!("healing-bench: a goal was missed");
    }
    Ok(())
}
