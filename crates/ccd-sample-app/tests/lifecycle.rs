//! Process life: crashes, bad start-up config, graceful shutdown.

// Helpers outside #[test] fns panic on setup failure on purpose: that is a
// failed test, not a bug to handle.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::ErrorKind;
use std::net::TcpStream;
use std::process::Command;
use std::thread;
use std::time::Duration;
use tokio::time::Instant;

use common::{App, WAIT, addr, read_response, send_request};

#[test]
fn crash_after_exits_with_code_1() {
    let mut app = App::spawn(&[("SAMPLE_CRASH_AFTER", "300ms")]);
    let status = app.wait_exit();
    let logs = app.logs();
    assert_eq!(status.code(), Some(1), "{logs}");
    // It really came up before crashing.
    assert!(logs.contains("listening on 127.0.0.1:"), "{logs}");
}

#[test]
fn admin_crash_answers_202_then_exits_with_code_1() {
    let mut app = App::start(&[]);
    assert_eq!(app.post("/admin/crash").status, 202);
    assert_eq!(app.wait_exit().code(), Some(1));
}

#[test]
fn bad_env_value_stops_start_with_a_clear_error() {
    let mut app = App::spawn(&[("SAMPLE_START_DELAY", "abc")]);
    let status = app.wait_exit();
    let logs = app.logs();
    assert_eq!(status.code(), Some(2), "{logs}");
    assert!(
        logs.contains(r#"SAMPLE_START_DELAY: "abc" is not a duration; use e.g. 500ms, 5s"#),
        "{logs}"
    );
}

#[test]
fn sigterm_drains_in_flight_requests_and_exits_0() {
    let mut app = App::start(&[]);
    let in_flight = send_request(app.port, "GET", "/slow?ms=1500").unwrap();
    // Only signal once the server is actually handling the request.
    app.wait_log("slow request started");

    let pid = app.pid().to_string();
    let kill = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(kill.success());

    assert_new_connections_refused(app.port);

    let resp = read_response(in_flight).unwrap();
    assert_eq!(resp.status, 200, "{resp:?}");
    let status = app.wait_exit();
    assert!(status.success(), "exit {status}\n{}", app.logs());
}

#[test]
fn sigint_also_exits_0() {
    let mut app = App::start(&[]);
    let pid = app.pid().to_string();
    assert!(
        Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .unwrap()
            .success()
    );
    assert!(app.wait_exit().success());
}

/// Polls until a connect is refused: the signal is handled asynchronously,
/// so a connect right after `kill` may still land in the old backlog.
fn assert_new_connections_refused(port: u16) {
    let deadline = Instant::now() + WAIT;
    loop {
        match TcpStream::connect_timeout(&addr(port), Duration::from_secs(1)) {
            Err(e) if e.kind() == ErrorKind::ConnectionRefused => return,
            other => {
                assert!(
                    Instant::now() < deadline,
                    "still accepting connections: {other:?}"
                );
                thread::sleep(Duration::from_millis(20));
            }
        }
    }
}
