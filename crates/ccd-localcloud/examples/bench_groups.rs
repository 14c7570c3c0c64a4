//! Scale benchmark of the local cloud: how long 1,000 managed groups of
//! simulated instances take to be created and stable, and how much memory
//! the server holds per simulated instance.
//!
//! `bench_groups CCD_BINARY [GROUPS] [SIZE]`: starts `ccd localcloud` with a
//! fresh data folder, drives it over HTTP with 32 concurrent clients, and
//! prints the figures. Run by `make bench`.
#![allow(clippy::print_stdout, clippy::print_stderr)] // a benchmark reports on stdout

use std::process::Stdio;
use std::time::Duration;
use tokio::time::Instant;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};

const CONCURRENCY: usize = 32;

#[tokio::main]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let binary = args
        .get(1)
        .context("usage: bench_groups CCD_BINARY [GROUPS] [SIZE]")?;
    let groups: usize = args.get(2).map_or(Ok(1000), |a| a.parse())?;
    let size: usize = args.get(3).map_or(Ok(2), |a| a.parse())?;
    let data = std::env::temp_dir().join(format!("ccd-bench-groups-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);

    let mut child = tokio::process::Command::new(binary)
        .args(["localcloud", "--listen", "127.0.0.1:0"])
        .args(if std::env::var_os("BENCH_IN_MEMORY").is_some() {
            vec![]
        } else {
            vec![std::ffi::OsString::from("--data"), data.clone().into()]
        })
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("cannot start ccd localcloud")?;
    let pid = child.id().context("no pid")?;
    let mut lines = BufReader::new(child.stdout.take().context("no stdout")?).lines();
    let (mut base, mut token) = (None, None);
    while base.is_none() || token.is_none() {
        let line = lines
            .next_line()
            .await?
            .context("ccd localcloud exited before it was ready")?;
        if let Some(url) = line.strip_prefix("compute api: ") {
            base = Some(url.trim_end_matches('/').to_owned());
        }
        // The token file with --data (a path), else the token itself.
        if let Some(t) = line.strip_prefix("token: ") {
            token = Some(match t.contains('/') {
                true => std::fs::read_to_string(t).with_context(|| format!("cannot read {t}"))?,
                false => t.to_owned(),
            });
        }
    }
    let (base, token) = (base.unwrap_or_default(), token.unwrap_or_default());
    let mut auth = reqwest::header::HeaderMap::new();
    auth.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {}", token.trim()).parse()?,
    );
    let http = reqwest::Client::builder().default_headers(auth).build()?;
    let project = format!("{base}/projects/bench");
    post(
        &http,
        &format!("{project}/global/instanceTemplates"),
        json!({
            "name": "sim", "properties": {"machineType": "e2-small",
            "metadata": {"items": [{"key": "ccd-local-run", "value": "{\"simulated\": true}"}]}}
        }),
    )
    .await?;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let rss_before = rss_kib(pid)?;

    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..CONCURRENCY {
        let (http, project) = (http.clone(), project.clone());
        tasks.spawn(async move {
            for g in (worker..groups).step_by(CONCURRENCY) {
                let body = json!({"name": format!("g{g}"), "instanceTemplate": "global/instanceTemplates/sim", "targetSize": size});
                post(&http, &format!("{project}/zones/bench-a/instanceGroupManagers"), body).await?;
            }
            anyhow::Ok(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    let created = started.elapsed();
    // Stable: every group's instances exist and run.
    let expected = groups * size;
    loop {
        let running = count_running(&http, &format!("{project}/zones/bench-a/instances")).await?;
        if running >= expected {
            break;
        }
        if started.elapsed() > Duration::from_secs(600) {
            bail!("only {running} of {expected} instances running after 10 minutes");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let stable = started.elapsed();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_after = rss_kib(pid)?;
    let per_instance = (rss_after.saturating_sub(rss_before)) as f64 * 1024.0 / expected as f64;
    println!(
        "local cloud scale: {groups} groups x {size} simulated instances ({expected} instances), {CONCURRENCY} concurrent clients"
    );
    println!(
        "  groups created (API answered):   {:.2} s",
        created.as_secs_f64()
    );
    println!(
        "  all instances RUNNING:            {:.2} s  (goal: under 10 s)",
        stable.as_secs_f64()
    );
    println!(
        "  server memory: {} KiB before, {} KiB after: {:.0} bytes per simulated instance (goal: under 10 KB)",
        rss_before, rss_after, per_instance
    );
    child.kill().await.ok();
    let _ = std::fs::remove_dir_all(&data);
    Ok(())
}

async fn post(http: &reqwest::Client, url: &str, body: Value) -> Result<Value> {
    let response = http.post(url).json(&body).send().await?;
    let status = response.status();
    let value: Value = response.json().await?;
    if !status.is_success() {
        bail!("POST {url}: {status}: {value}");
    }
    Ok(value)
}

async fn count_running(http: &reqwest::Client, url: &str) -> Result<usize> {
    let mut count = 0;
    let mut token = String::new();
    loop {
        let page: Value = http
            .get(url)
            .query(&[
                ("pageToken", token.as_str()),
                ("filter", "status = RUNNING"),
            ])
            .send()
            .await?
            .json()
            .await?;
        count += page["items"].as_array().map_or(0, Vec::len);
        match page["nextPageToken"].as_str() {
            Some(t) => token = t.to_owned(),
            None => return Ok(count),
        }
    }
}

fn rss_kib(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .context("no VmRSS")
}
