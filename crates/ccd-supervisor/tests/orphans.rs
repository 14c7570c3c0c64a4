//! A supervisor that went away without stopping its processes (killed, or
//! dropped) leaves pid files behind; the next one stops those processes,
//! and only those.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::os::unix::process::CommandExt;
use std::process::Stdio;

use ccd_supervisor::{ProcessState, Supervisor};
use common::*;

fn pid_files(state_dir: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(state_dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".pid"))
        .collect()
}

fn running_pid(supervisor: &Supervisor, name: &str) -> u32 {
    match supervisor.status(name).unwrap().state {
        ProcessState::Running { pid, .. } => pid,
        other => panic!("{name} is not running: {other:?}"),
    }
}

#[tokio::test]
async fn a_new_supervisor_stops_what_the_previous_one_left_running() {
    let dir = tempfile::tempdir().unwrap();
    let state_dir = dir.path().join("state");
    let previous = Supervisor::new(state_dir.clone()).unwrap();
    previous
        .start(sh(dir.path(), "left", "sleep 1000 & echo child=$!; wait"))
        .unwrap();
    let mut stubborn = sh(
        dir.path(),
        "stubborn",
        "trap '' TERM; echo ready; while true; do sleep 0.1; done",
    );
    // Recorded in the pid file: the next supervisor waits this long before
    // SIGKILL.
    stubborn.stop_grace = std::time::Duration::from_millis(500);
    previous.start(stubborn).unwrap();
    let leader = running_pid(&previous, "left");
    let stubborn = running_pid(&previous, "stubborn");
    let child = printed_number(&stdout_log(dir.path(), "left"), "child").await;
    log_contains(&stdout_log(dir.path(), "stubborn"), "ready").await;
    drop(previous);

    // Nobody supervises them now, but they still run.
    assert!(alive(leader) && alive(child) && alive(stubborn));
    assert_eq!(pid_files(&state_dir).len(), 2);

    let current = Supervisor::new(state_dir.clone()).unwrap();
    let reaped = current.reap_orphans().await.unwrap();
    assert_eq!(reaped, ["left", "stubborn"]);
    for pid in [leader, child, stubborn] {
        gone(pid).await;
    }
    assert!(pid_files(&state_dir).is_empty());
    assert!(current.reap_orphans().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_reused_pid_is_never_killed() {
    let dir = tempfile::tempdir().unwrap();
    let state_dir = dir.path().join("state");
    std::fs::create_dir_all(&state_dir).unwrap();
    // An unrelated process that happens to have a recorded pid: same pid,
    // different start time.
    let mut bystander = std::process::Command::new("sleep")
        .arg("1000")
        .stdin(Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap();
    let pid = bystander.id();
    std::fs::write(
        state_dir.join(format!("web.{pid}.pid")),
        format!(r#"{{"name":"web","pid":{pid},"start_time":1,"stop_grace_ms":100}}"#),
    )
    .unwrap();

    let supervisor = Supervisor::new(state_dir.clone()).unwrap();
    let reaped = supervisor.reap_orphans().await.unwrap();
    assert!(reaped.is_empty(), "{reaped:?}");
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(alive(pid));
    assert_eq!(bystander.try_wait().unwrap(), None);
    // The stale record is forgotten.
    assert!(pid_files(&state_dir).is_empty());

    bystander.kill().unwrap();
    bystander.wait().unwrap();
}

#[tokio::test]
async fn reaping_leaves_the_supervisors_own_processes_alone() {
    let dir = tempfile::tempdir().unwrap();
    let supervisor = Supervisor::new(dir.path().join("state")).unwrap();
    supervisor
        .start(sh(dir.path(), "mine", "exec sleep 1000"))
        .unwrap();
    let pid = running_pid(&supervisor, "mine");

    assert!(supervisor.reap_orphans().await.unwrap().is_empty());
    assert!(alive(pid));
    assert_eq!(running_pid(&supervisor, "mine"), pid);
    supervisor.stop_all().await;
    assert!(pid_files(&dir.path().join("state")).is_empty());
}
