//! The health checks against real sockets and programs on loopback.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use ccd_agent::CheckConfig;
use ccd_agent::check::{Check, Probe};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// A server answering every request with `status`; returns its port.
async fn answering(status: &'static str) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf).await;
                let answer =
                    format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
                let _ = s.write_all(answer.as_bytes()).await;
            });
        }
    });
    port
}

/// A port nobody listens on.
async fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap().port()
}

fn check(config: CheckConfig) -> Check {
    Check::new(config, Duration::from_millis(500))
}

#[tokio::test]
async fn http_passes_on_2xx_only_and_says_what_it_got() {
    let ok = answering("204 No Content").await;
    let failing = answering("503 Service Unavailable").await;
    let http = |port| {
        check(CheckConfig::Http {
            port,
            path: "/healthz".into(),
        })
    };
    assert_eq!(http(ok).check().await, Ok(()));
    assert_eq!(
        http(failing).check().await,
        Err("GET /healthz: HTTP 503".into())
    );
    let closed = closed_port().await;
    let refused = http(closed).check().await.unwrap_err();
    assert!(refused.contains("refused"), "{refused}");
}

#[tokio::test]
async fn http_gives_up_after_the_timeout() {
    // Accepts and never answers: a hung app.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            held.push(s);
        }
    });
    let started = tokio::time::Instant::now();
    let answer = check(CheckConfig::Http {
        port,
        path: "/".into(),
    })
    .check()
    .await
    .unwrap_err();
    assert!(answer.contains("no answer within"), "{answer}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn tcp_passes_when_a_connection_is_accepted() {
    let open = answering("200 OK").await;
    assert_eq!(check(CheckConfig::Tcp { port: open }).check().await, Ok(()));
    let closed = closed_port().await;
    assert!(
        check(CheckConfig::Tcp { port: closed })
            .check()
            .await
            .is_err()
    );
}

#[tokio::test]
async fn exec_passes_on_exit_0_and_reports_the_last_line_of_stderr() {
    let exec = |args: &[&str]| {
        check(CheckConfig::Exec {
            command: args.iter().map(|s| s.to_string()).collect(),
        })
    };
    assert_eq!(exec(&["true"]).check().await, Ok(()));
    assert_eq!(
        exec(&[
            "sh",
            "-c",
            "echo starting >&2; echo queue stuck >&2; exit 3"
        ])
        .check()
        .await,
        Err("sh: exit status 3: queue stuck".into())
    );
    let slow = exec(&["sleep", "5"]).check().await.unwrap_err();
    assert!(slow.contains("did not finish within"), "{slow}");
    let missing = exec(&["/nonexistent/worker-check"])
        .check()
        .await
        .unwrap_err();
    assert!(
        missing.starts_with("/nonexistent/worker-check: "),
        "{missing}"
    );
}

#[tokio::test]
async fn checks_reach_the_app_at_its_own_address_and_run_inside_it() {
    // The local cloud gives each instance a loopback address of its own.
    let listener = TcpListener::bind("127.0.0.3:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let tcp = check(CheckConfig::Tcp { port });
    assert!(tcp.check().await.is_err(), "127.0.0.1 has nothing there");
    let tcp = tcp.on("127.0.0.3".parse().unwrap());
    assert_eq!(tcp.check().await, Ok(()));

    // An exec check sees the app's environment, through the prefix that
    // runs it inside the app (here `env`, standing in for `docker exec`).
    let exec = check(CheckConfig::Exec {
        command: vec!["sh".into(), "-c".into(), "test \"$MARK\" = here".into()],
    });
    assert!(exec.check().await.is_err());
    let exec = exec
        .exec_env([("MARK".to_owned(), "here".to_owned())].into())
        .exec_through(vec!["env".into()]);
    assert_eq!(exec.check().await, Ok(()));
}
