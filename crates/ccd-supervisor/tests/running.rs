//! A supervised process runs with the environment, arguments and logs its
//! spec asks for, and is restarted whenever it exits.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use ccd_supervisor::{Error, ExitStatus, ProcessEvent, ProcessState, Signal, Supervisor};
use common::*;

#[tokio::test]
async fn output_lands_in_the_log_files() {
    let dir = tempfile::tempdir().unwrap();
    let supervisor = Supervisor::new(dir.path().join("state")).unwrap();
    supervisor
        .start(sh(
            dir.path(),
            "web",
            "echo to-stdout; echo to-stderr >&2; exec sleep 1000",
        ))
        .unwrap();

    log_contains(&stdout_log(dir.path(), "web"), "to-stdout\n").await;
    log_contains(&dir.path().join("web/stderr.log"), "to-stderr\n").await;
    assert!(!read(&stdout_log(dir.path(), "web")).contains("to-stderr"));
    supervisor.stop_all().await;
}

#[tokio::test]
async fn args_are_expanded_from_env_and_env_is_exact() {
    let dir = tempfile::tempdir().unwrap();
    let supervisor = Supervisor::new(dir.path().join("state")).unwrap();
    // A variable of this test process that the child must not inherit.
    let leaked = std::env::vars().map(|(name, _)| name).find(|name| {
        !["PATH", "HOME", "PWD", "OLDPWD", "SHLVL", "IFS", "_"].contains(&name.as_str())
            && !name.is_empty()
            && name.chars().all(|c| c.is_ascii_uppercase() || c == '_')
    });
    let leaked = leaked.unwrap_or_else(|| "CCD_NOT_SET".to_owned());
    let mut spec = sh(
        dir.path(),
        "app",
        &format!(
            r#"echo "port=$0 escaped=$1 unknown=$2 env=$PORT leaked=${{{leaked}-unset}} path=${{PATH:+set}} home=${{HOME:+set}}"; exec sleep 1000"#
        ),
    );
    spec.args
        .extend(["$(PORT)", "$$(PORT)", "$(NOPE)"].map(String::from));
    spec.env.insert("PORT".to_owned(), "8080".to_owned());
    supervisor.start(spec).unwrap();

    let log = log_contains(&stdout_log(dir.path(), "app"), "port=").await;
    assert_eq!(
        log.trim(),
        "port=8080 escaped=$(PORT) unknown=$(NOPE) env=8080 leaked=unset path=set home=set"
    );
    supervisor.stop_all().await;
}

#[tokio::test]
async fn an_exiting_process_is_restarted_with_growing_back_off() {
    let dir = tempfile::tempdir().unwrap();
    let supervisor = Supervisor::new(dir.path().join("state")).unwrap();
    let mut events = supervisor.subscribe();
    supervisor
        .start(sh(dir.path(), "crashy", "echo run; exit 3"))
        .unwrap();

    let mut delays = Vec::new();
    while delays.len() < 4 {
        let status = next_event(&mut events, |event| match event {
            ProcessEvent::Exited { status, .. } => Some(status),
            _ => None,
        })
        .await;
        assert_eq!(status, ExitStatus::Code(3));
        let (attempt, delay) = next_event(&mut events, |event| match event {
            ProcessEvent::Restarting { attempt, delay, .. } => Some((attempt, delay)),
            _ => None,
        })
        .await;
        assert_eq!(attempt as usize, delays.len() + 1);
        delays.push(delay);
    }
    assert_eq!(delays, [100, 200, 400, 800].map(Duration::from_millis));

    let status = supervisor.status("crashy").unwrap();
    assert!(status.restarts >= 3, "{status:?}");
    assert_eq!(status.last_exit, Some(ExitStatus::Code(3)));
    // Every run wrote to the same log.
    let runs = read(&stdout_log(dir.path(), "crashy"))
        .matches("run\n")
        .count();
    assert!(runs >= 4, "{runs} runs logged");
    supervisor.stop("crashy").await.unwrap();
}

#[tokio::test]
async fn a_clean_exit_is_restarted_too() {
    let dir = tempfile::tempdir().unwrap();
    let supervisor = Supervisor::new(dir.path().join("state")).unwrap();
    supervisor.start(sh(dir.path(), "job", "exit 0")).unwrap();

    let status = eventually("a restart", || {
        supervisor
            .status("job")
            .filter(|status| status.restarts >= 2)
    })
    .await;
    assert_eq!(status.last_exit, Some(ExitStatus::Code(0)));
    supervisor.stop("job").await.unwrap();
}

#[tokio::test]
async fn sigkill_is_a_crash_and_the_process_comes_back() {
    let dir = tempfile::tempdir().unwrap();
    let supervisor = Supervisor::new(dir.path().join("state")).unwrap();
    let mut events = supervisor.subscribe();
    supervisor
        .start(sh(dir.path(), "vm", "exec sleep 1000"))
        .unwrap();
    let first = next_event(&mut events, |event| match event {
        ProcessEvent::Started { pid, .. } => Some(pid),
        _ => None,
    })
    .await;
    assert!(matches!(
        supervisor.status("vm").unwrap().state,
        ProcessState::Running { pid, .. } if pid == first
    ));

    supervisor.signal("vm", Signal::SIGKILL).await.unwrap();
    let status = next_event(&mut events, |event| match event {
        ProcessEvent::Exited { status, .. } => Some(status),
        _ => None,
    })
    .await;
    assert_eq!(status, ExitStatus::Signal(Signal::SIGKILL as i32));
    let second = next_event(&mut events, |event| match event {
        ProcessEvent::Started { pid, .. } => Some(pid),
        _ => None,
    })
    .await;
    assert_ne!(first, second);
    assert!(!alive(first));
    assert!(alive(second));
    let status = supervisor.status("vm").unwrap();
    assert_eq!(status.restarts, 1);
    assert_eq!(status.last_exit, Some(ExitStatus::Signal(9)));
    supervisor.stop("vm").await.unwrap();
}

#[tokio::test]
async fn a_restart_does_not_leave_the_previous_runs_children_behind() {
    let dir = tempfile::tempdir().unwrap();
    let supervisor = Supervisor::new(dir.path().join("state")).unwrap();
    // The first run starts a background child and exits; later runs stay.
    supervisor
        .start(sh(
            dir.path(),
            "forker",
            "if [ ! -e first-run-done ]; then touch first-run-done; sleep 1000 & echo child=$!; exit 1; fi; exec sleep 1000",
        ))
        .unwrap();
    let child = printed_number(&stdout_log(dir.path(), "forker"), "child").await;
    gone(child).await;
    supervisor.stop("forker").await.unwrap();
}

#[tokio::test]
async fn start_is_idempotent_for_the_same_spec_only() {
    let dir = tempfile::tempdir().unwrap();
    let supervisor = Supervisor::new(dir.path().join("state")).unwrap();
    let spec = sh(dir.path(), "db", "exec sleep 1000");
    supervisor.start(spec.clone()).unwrap();
    let pid = match supervisor.status("db").unwrap().state {
        ProcessState::Running { pid, .. } => pid,
        other => panic!("not running: {other:?}"),
    };

    supervisor.start(spec.clone()).unwrap();
    assert_eq!(supervisor.names(), ["db"]);
    assert!(matches!(
        supervisor.status("db").unwrap().state,
        ProcessState::Running { pid: same, .. } if same == pid
    ));

    let mut changed = spec;
    changed.args[1] = "exec sleep 999".to_owned();
    let error = supervisor.start(changed).unwrap_err();
    assert!(matches!(error, Error::SpecConflict { .. }), "{error}");
    supervisor.stop_all().await;
}

#[tokio::test]
async fn a_command_that_cannot_be_spawned_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let supervisor = Supervisor::new(dir.path().join("state")).unwrap();
    let mut spec = sh(dir.path(), "ghost", "");
    spec.command = "ccd-no-such-command".to_owned();
    let error = supervisor.start(spec.clone()).unwrap_err();
    let message = error.to_string();
    assert!(matches!(error, Error::Spawn { .. }), "{message}");
    assert!(message.contains("ccd-no-such-command"), "{message}");
    assert!(message.contains("No such file"), "{message}");

    let script = dir.path().join("not-executable.sh");
    std::fs::write(&script, "#!/bin/sh\n").unwrap();
    spec.command = script.display().to_string();
    let message = supervisor.start(spec).unwrap_err().to_string();
    assert!(message.contains("not-executable.sh"), "{message}");
    assert!(message.contains("Permission denied"), "{message}");

    assert!(supervisor.names().is_empty());
    assert!(supervisor.status("ghost").is_none());
}

#[tokio::test]
async fn logs_are_rotated_while_the_process_runs() {
    let dir = tempfile::tempdir().unwrap();
    let supervisor = Supervisor::with_max_log_bytes(dir.path().join("state"), 1000).unwrap();
    supervisor
        .start(sh(
            dir.path(),
            "chatty",
            "i=1; while [ $i -le 60 ]; do echo line-$i-padding-padding-padding; i=$((i+1)); sleep 0.01; done; exec sleep 1000",
        ))
        .unwrap();

    let current = log_contains(&stdout_log(dir.path(), "chatty"), "line-60-").await;
    let previous = read(&dir.path().join("chatty/stdout.log.1"));
    assert!(
        previous.len() >= 1000,
        "rotated file has {} bytes",
        previous.len()
    );
    assert!(
        current.len() < 2000,
        "current file has {} bytes",
        current.len()
    );
    // Nothing was lost across the last rotation.
    let numbers: Vec<u32> = previous
        .lines()
        .chain(current.lines())
        .map(|line| line.split('-').nth(1).unwrap().parse().unwrap())
        .collect();
    let first = numbers[0];
    assert_eq!(numbers, (first..=60).collect::<Vec<_>>());
    supervisor.stop_all().await;
}

#[tokio::test]
async fn unknown_names_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let supervisor = Supervisor::new(dir.path().join("state")).unwrap();
    assert!(matches!(
        supervisor.stop("nope").await,
        Err(Error::UnknownProcess { .. })
    ));
    assert!(matches!(
        supervisor.signal("nope", Signal::SIGTERM).await,
        Err(Error::UnknownProcess { .. })
    ));
    assert!(matches!(
        supervisor.start(sh(dir.path(), "bad/name", "true")),
        Err(Error::InvalidName { .. })
    ));
}
