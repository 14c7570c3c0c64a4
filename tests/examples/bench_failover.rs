//! `make bench`'s failover figure: two `ccd controller`s (release builds of
//! `ccd` and `ccd-sample-app`, the first given as argument) with the default
//! lease (15 s, renewal every 5 s, a 10 s renew deadline) on one
//! fake-gcs-server bucket and one local cloud. Each round kills the leader
//! with SIGKILL and measures the time until the standby leads, and then
//! until a new spec version is Ready, against the peer the lease sets: a
//! standby waits out the lease after the last renewal it saw (10 to 15 s
//! after the kill).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr
)]

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use ccd_controller::status::Phase;
use ccd_e2e::agents::signal;
use ccd_e2e::fake_gcs::FakeGcs;
use ccd_e2e::ha::{BUCKET, Controller, put_spec, status};
use ccd_e2e::rollout::sample_spec;
use ccd_e2e::{LocalCloudProcess, eventually, temp_dir};
use tokio::time::Instant;

const ROUNDS: u32 = 3;
const LEASE: (u64, u64, u64) = (15, 5, 10);
const ROLLING: &str = "{maxSurge: 1, maxUnavailable: 0, drainTime: 1s, deadline: 2m}";

#[tokio::main]
async fn main() -> Result<()> {
    let ccd = PathBuf::from(
        std::env::args()
            .nth(1)
            .context("usage: bench_failover CCD")?,
    );
    let dir = temp_dir("bench-failover");
    let gcs = FakeGcs::start().await?;
    gcs.create_bucket(BUCKET).await?;
    let cloud_dir = dir.join("cloud");
    std::fs::create_dir_all(&cloud_dir)?;
    let cloud = LocalCloudProcess::start_of(&ccd, &cloud_dir, &[], &[]).await?;
    let store = ccd_e2e::ha::store(&gcs);
    put_spec(&gcs, "web", sample_spec("1", ROLLING, "", "2s")).await?;
    let start = |name: &str| Controller::start(&ccd, &dir, name, &cloud, &gcs, LEASE);
    let mut controllers = vec![start("c0"), start("c1")];
    let ready = |version: String| {
        let store = &store;
        async move {
            eventually(
                &format!("version {version} Ready"),
                Duration::from_secs(120),
                || async {
                    let s = status(store, "web").await?;
                    (s.phase == Phase::Ready && s.serving == [version.as_str()]).then_some(())
                },
            )
            .await
        }
    };
    ready("1".into()).await?;
    let (mut handovers, mut converged) = (Vec::new(), Vec::new());
    for round in 1..=ROUNDS {
        let leader = eventually("one leader", Duration::from_secs(60), || async {
            let mut leading = Vec::new();
            for (i, c) in controllers.iter().enumerate() {
                if c.leads().await? {
                    leading.push(i);
                }
            }
            (leading.len() == 1).then(|| leading[0])
        })
        .await?;
        let mut dead = controllers.remove(leader);
        signal(dead.pid(), "KILL");
        let killed = Instant::now();
        let standby = &controllers[0];
        eventually("the standby to lead", Duration::from_secs(60), || async {
            standby.leads().await?.then_some(())
        })
        .await?;
        let handover = killed.elapsed();
        let _ = dead.child.wait().await;
        let version = (round + 1).to_string();
        let put = Instant::now();
        put_spec(&gcs, "web", sample_spec(&version, ROLLING, "", "2s")).await?;
        ready(version).await?;
        let rolled = put.elapsed();
        eprintln!(
            "failover-bench: round {round}: the standby led {:.1} s after the kill; the next version was Ready {:.1} s after it was put",
            handover.as_secs_f64(),
            rolled.as_secs_f64()
        );
        handovers.push(handover);
        converged.push(rolled);
        controllers.push(start(&format!("c{}", round + 1)));
    }
    handovers.sort();
    converged.sort();
    let median = |v: &[Duration]| v[v.len() / 2].as_secs_f64();
    println!(
        "failover: {ROUNDS} kill -9 of the leader, lease {}s / renew {}s / deadline {}s",
        LEASE.0, LEASE.1, LEASE.2
    );
    println!(
        "  hand-over: median {:.1} s, worst {:.1} s (goal < 20 s; the lease alone: 10 to 15 s after the kill)",
        median(&handovers),
        handovers.last().map_or(0.0, Duration::as_secs_f64)
    );
    println!(
        "  next version Ready after the hand-over: median {:.1} s, worst {:.1} s",
        median(&converged),
        converged.last().map_or(0.0, Duration::as_secs_f64)
    );
    for c in &controllers {
        signal(c.pid(), "TERM");
    }
    drop(cloud);
    if std::env::var_os("BENCH_KEEP").is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(())
}
