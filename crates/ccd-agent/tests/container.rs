//! The container adapter against a test double of `docker` (the real one is
//! on Container-Optimized OS, not on this machine): it finds the app's
//! processes by the container's init pid, restarts through the runtime, and
//! runs exec checks inside the container.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::time::Duration;

use ccd_agent::CheckConfig;
use ccd_agent::app::{App, Container};
use ccd_agent::check::{Check, Probe};

#[tokio::test]
async fn a_container_is_sampled_restarted_and_checked_through_docker() {
    let dir = std::env::temp_dir().join(format!("ccd-docker-double-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut busy = std::process::Command::new("sh")
        .args(["-c", "while :; do :; done"])
        .process_group(0)
        .spawn()
        .unwrap();
    let log = dir.join("calls");
    let docker = dir.join("docker");
    std::fs::write(
        &docker,
        format!(
            "#!/bin/sh\necho \"$@\" >> '{log}'\ncase \"$1\" in\n  inspect) echo {pid} ;;\n  restart) ;;\n  exec) shift 2; exec \"$@\" ;;\n  *) echo \"unknown command $1\" >&2; exit 1 ;;\nesac\n",
            log = log.display(),
            pid = busy.id()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&docker, std::fs::Permissions::from_mode(0o755)).unwrap();

    let app = Container::new("app", &docker);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let usage = app.usage().await.unwrap();
    assert!(
        usage.cpu_seconds > 0.0 && usage.memory_bytes > 0,
        "{usage:?}"
    );
    app.restart().await.unwrap();

    let check = Check::new(
        CheckConfig::Exec {
            command: vec!["sh".into(), "-c".into(), "exit 3".into()],
        },
        Duration::from_secs(2),
    )
    .exec_through(app.exec_prefix());
    let failed = check.check().await.unwrap_err();
    assert!(failed.contains("exit status 3"), "{failed}");

    let calls = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        calls.lines().collect::<Vec<_>>(),
        [
            "inspect --format {{.State.Pid}} app",
            "restart --time 10 app",
            "exec app sh -c exit 3"
        ]
    );
    // A runtime that refuses says so.
    let broken = Container::new("app", "/nonexistent/docker");
    assert_eq!(broken.usage().await, None);
    assert!(
        broken
            .restart()
            .await
            .unwrap_err()
            .contains("/nonexistent/docker")
    );
    busy.kill().unwrap();
    let _ = busy.wait();
    let _ = std::fs::remove_dir_all(&dir);
}
