//! Helpers shared by the integration tests: real processes, polled with
//! generous deadlines since a loaded 2-core machine can be slow.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ccd_supervisor::{ProcessEvent, ProcessSpec};
use tokio::sync::broadcast;

/// Upper bound for anything that should happen "soon".
pub const PATIENCE: Duration = Duration::from_secs(20);

/// A spec running `script` with `sh -c`, logging under `dir/<name>`.
pub fn sh(dir: &Path, name: &str, script: &str) -> ProcessSpec {
    ProcessSpec {
        name: name.to_owned(),
        command: "sh".to_owned(),
        args: vec!["-c".to_owned(), script.to_owned()],
        env: BTreeMap::new(),
        working_dir: Some(dir.to_owned()),
        log_dir: dir.join(name),
        stop_grace: Duration::from_secs(10),
    }
}

pub fn stdout_log(dir: &Path, name: &str) -> PathBuf {
    dir.join(name).join("stdout.log")
}

pub fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// Polls `check` until it returns `Some`, panicking after [`PATIENCE`].
pub async fn eventually<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Waits until `path` contains `needle`, returning the whole content.
pub async fn log_contains(path: &Path, needle: &str) -> String {
    eventually(&format!("{needle:?} in {}", path.display()), || {
        let content = read(path);
        content.contains(needle).then_some(content)
    })
    .await
}

/// Reads `<key>=<number>` that a script printed, e.g. `child=1234`.
pub async fn printed_number(path: &Path, key: &str) -> u32 {
    let needle = format!("{key}=");
    let content = log_contains(path, &needle).await;
    let line = content
        .lines()
        .find(|line| line.starts_with(&needle))
        .unwrap();
    line[needle.len()..].trim().parse().unwrap()
}

/// Whether a process with this pid exists and is not a zombie, per /proc.
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat[stat.rfind(')').unwrap() + 1..]
                .split_whitespace()
                .next();
            state != Some("Z")
        }
        Err(_) => false,
    }
}

pub async fn gone(pid: u32) {
    eventually(&format!("pid {pid} to be gone"), || {
        (!alive(pid)).then_some(())
    })
    .await;
}

/// The next event matching `select`, skipping others.
pub async fn next_event<T>(
    events: &mut broadcast::Receiver<ProcessEvent>,
    mut select: impl FnMut(ProcessEvent) -> Option<T>,
) -> T {
    tokio::time::timeout(PATIENCE, async {
        loop {
            if let Some(found) = select(events.recv().await.unwrap()) {
                return found;
            }
        }
    })
    .await
    .expect("timed out waiting for an event")
}
