//! Stopping: SIGTERM first, SIGKILL after the grace period, to the whole
//! process group, and no restart afterwards.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;
use tokio::time::Instant;

use ccd_supervisor::{Error, ExitStatus, ProcessEvent, ProcessState, Signal, Supervisor};
use common::*;

#[tokio::test]
async fn stop_sends_sigterm_first() {
    let dir = tempfile::tempdir().unwrap();
    let supervisor = Supervisor::new(dir.path().join("state")).unwrap();
    let mut events = supervisor.subscribe();
    supervisor
        .start(sh(
            dir.path(),
            "polite",
            "trap 'echo term > got-term; exit 0' TERM; echo ready; while true; do sleep 0.1; done",
        ))
        .unwrap();
    log_contains(&stdout_log(dir.path(), "polite"), "ready").await;

    let status = supervisor.stop("polite").await.unwrap();
    assert_eq!(status, Some(ExitStatus::Code(0)));
    assert_eq!(read(&dir.path().join("got-term")), "term\n");

    // Forgotten, and never restarted.
    assert!(supervisor.status("polite").is_none());
    assert!(supervisor.names().is_empty());
    next_event(&mut events, |event| {
        matches!(event, ProcessEvent::Stopped { .. }).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    while let Ok(event) = events.try_recv() {
        assert!(!matches!(event, ProcessEvent::Started { .. }), "{event:?}");
    }
}

#[tokio::test]
async fn a_process_ignoring_sigterm_is_killed_after_the_grace_period() {
    let dir = tempfile::tempdir().unwrap();
    let supervisor = Supervisor::new(dir.path().join("state")).unwrap();
    let mut spec = sh(
        dir.path(),
        "stubborn",
        "trap '' TERM; echo ready; while true; do sleep 0.1; done",
    );
    spec.stop_grace = Duration::from_millis(500);
    supervisor.start(spec).unwrap();
    log_contains(&stdout_log(dir.path(), "stubborn"), "ready").await;

    let asked = Instant::now();
    let status = supervisor.stop("stubborn").await.unwrap();
    let took = asked.elapsed();
    assert_eq!(status, Some(ExitStatus::Signal(Signal::SIGKILL as i32)));
    assert!(took >= Duration::from_millis(500), "killed after {took:?}");
    assert!(took < PATIENCE, "killed after {took:?}");
}

#[tokio::test]
async fn stop_reaches_the_whole_process_group() {
    let dir = tempfile::tempdir().unwrap();
    let supervisor = Supervisor::new(dir.path().join("state")).unwrap();
    supervisor
        .start(sh(dir.path(), "parent", "sleep 1000 & echo child=$!; wait"))
        .unwrap();
    let child = printed_number(&stdout_log(dir.path(), "parent"), "child").await;
    assert!(alive(child));

    supervisor.stop("parent").await.unwrap();
    gone(child).await;
}

#[tokio::test]
async fn stop_while_backing_off_reports_no_status() {
    let dir = tempfile::tempdir().unwrap();
    let supervisor = Supervisor::new(dir.path().join("state")).unwrap();
    supervisor
        .start(sh(dir.path(), "flappy", "exit 1"))
        .unwrap();
    // Catch it early in a back-off of 3.2 s (the sixth), so that the stop
    // below lands within that back-off even on a slow machine.
    eventually("a long back-off", || {
        let status = supervisor.status("flappy")?;
        let ProcessState::BackingOff { until } = status.state else {
            return None;
        };
        (until > tokio::time::Instant::now() + Duration::from_secs(2)).then_some(())
    })
    .await;
    assert!(matches!(
        supervisor.signal("flappy", Signal::SIGTERM).await,
        Err(Error::NotRunning { .. })
    ));
    // No process was running, so there is no exit status to report.
    assert_eq!(supervisor.stop("flappy").await.unwrap(), None);
    assert!(supervisor.status("flappy").is_none());
}

#[tokio::test]
async fn a_stopped_name_can_be_started_again() {
    let dir = tempfile::tempdir().unwrap();
    let supervisor = Supervisor::new(dir.path().join("state")).unwrap();
    let spec = sh(dir.path(), "again", "exec sleep 1000");
    supervisor.start(spec.clone()).unwrap();
    supervisor.stop("again").await.unwrap();
    supervisor.start(spec).unwrap();
    assert!(matches!(
        supervisor.status("again").unwrap().state,
        ProcessState::Running { .. }
    ));
    supervisor.stop_all().await;
}

#[tokio::test]
async fn stop_all_stops_every_process_in_parallel() {
    let dir = tempfile::tempdir().unwrap();
    let supervisor = Supervisor::new(dir.path().join("state")).unwrap();
    let grace = Duration::from_secs(2);
    let names = ["a", "b", "c"];
    for name in names {
        let mut spec = sh(
            dir.path(),
            name,
            "trap '' TERM; echo ready; while true; do sleep 0.1; done",
        );
        spec.stop_grace = grace;
        supervisor.start(spec).unwrap();
    }
    for name in names {
        log_contains(&stdout_log(dir.path(), name), "ready").await;
    }

    let asked = Instant::now();
    let mut stopped = supervisor.stop_all().await;
    let took = asked.elapsed();
    stopped.sort_by(|a, b| a.0.cmp(&b.0));
    let killed = Some(ExitStatus::Signal(Signal::SIGKILL as i32));
    assert_eq!(
        stopped,
        names.map(|name| (name.to_owned(), killed)).to_vec()
    );
    // One after the other would take at least 3 grace periods.
    assert!(took < grace * 3, "stop_all took {took:?}");
    assert!(supervisor.names().is_empty());
}
