#![allow(clippy::unwrap_used, clippy::expect_used)]
//! One prober against a real server on loopback.

mod support;

use std::time::Duration;

use ccd_probe::{ProbeCounts, ProbeError, ProbeTarget, Prober};
use support::{Mode, TestServer, target, wait_prober};
use tokio::time::Instant;

const INTERVAL: Duration = Duration::from_millis(50);
const TIMEOUT: Duration = Duration::from_secs(5);

#[tokio::test]
async fn counts_rise_at_about_the_interval_rate() {
    let server = TestServer::start(Mode::Status(200)).await;
    let started = Instant::now();
    let prober = Prober::start(
        target(server.url(), INTERVAL, TIMEOUT),
        ProbeCounts::default(),
    )
    .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let counts = prober.counts();
    let elapsed = started.elapsed();

    // At most one probe per interval started (the first at once); on a loaded machine, far
    // fewer may have finished, but not a handful.
    let started_at_most = u64::try_from(elapsed.as_millis() / INTERVAL.as_millis()).unwrap() + 1;
    assert!(
        (5..=started_at_most).contains(&counts.sent),
        "{counts:?} in {elapsed:?}"
    );
    assert_eq!(counts.failed, 0, "{counts:?}");
    assert!(server.requests() >= counts.sent);
    assert!(
        server.seen().iter().all(|(_, path)| path == "/healthz"),
        "{:?}",
        server.seen()
    );
}

#[tokio::test]
async fn server_errors_are_failures_and_other_answers_are_not() {
    for (status, fails) in [
        (500, true),
        (503, true),
        (404, false),
        (301, false),
        (200, false),
    ] {
        let server = TestServer::start(Mode::Status(status)).await;
        let prober = Prober::start(
            target(server.url(), INTERVAL, TIMEOUT),
            ProbeCounts::default(),
        )
        .unwrap();
        let counts = wait_prober(&format!("{status}"), &prober, |c| c.sent >= 3).await;
        let expected = if fails { counts.sent } else { 0 };
        assert_eq!(counts.failed, expected, "answering {status}: {counts:?}");
    }
}

#[tokio::test]
async fn a_server_that_stops_listening_fails_probes_until_it_is_back() {
    let server = TestServer::start(Mode::Status(200)).await;
    let addr = server.addr;
    let prober = Prober::start(
        target(server.url(), INTERVAL, TIMEOUT),
        ProbeCounts::default(),
    )
    .unwrap();
    let up = wait_prober("answered", &prober, |c| c.sent >= 3).await;
    assert_eq!(up.failed, 0, "{up:?}");

    drop(server);
    let down = wait_prober("failed while down", &prober, |c| c.failed >= 3).await;

    let server = TestServer::start_on(addr, Mode::Status(200), None).await;
    let answered = |c: ProbeCounts| c.sent - c.failed;
    wait_prober("answered once back", &prober, |c| {
        answered(c) >= answered(down) + 3
    })
    .await;
    assert!(server.requests() >= 3);
}

#[tokio::test]
async fn a_hung_server_counts_timeouts_without_stopping_the_cadence() {
    let server = TestServer::start(Mode::Hang).await;
    let timeout = Duration::from_millis(500);
    let prober = Prober::start(
        target(server.url(), INTERVAL, timeout),
        ProbeCounts::default(),
    )
    .unwrap();
    let counts = wait_prober("timed out", &prober, |c| c.failed >= 5).await;
    assert_eq!(counts.failed, counts.sent, "{counts:?}");
    // New probes went out while earlier ones hung: the server held several at once.
    assert!(
        server.most_hanging() >= 3,
        "at most {} probes were waiting at once",
        server.most_hanging()
    );

    // And once it answers again, probes succeed again.
    server.set_mode(Mode::Status(200));
    let answered = |c: ProbeCounts| c.sent - c.failed;
    wait_prober("answered", &prober, |c| answered(c) >= 3).await;
}

#[tokio::test]
async fn initial_counts_are_continued() {
    let server = TestServer::start(Mode::Status(200)).await;
    let initial = ProbeCounts {
        sent: 1000,
        failed: 7,
    };
    let prober = Prober::start(target(server.url(), INTERVAL, TIMEOUT), initial).unwrap();
    assert_eq!(prober.counts(), initial);
    let counts = wait_prober("continued", &prober, |c| c.sent >= 1003).await;
    assert_eq!(counts.failed, 7, "{counts:?}");
}

#[tokio::test]
async fn a_stopped_or_dropped_prober_sends_nothing_more() {
    let server = TestServer::start(Mode::Status(200)).await;
    for stop in [Prober::stop as fn(Prober), drop] {
        let prober = Prober::start(
            target(server.url(), INTERVAL, TIMEOUT),
            ProbeCounts::default(),
        )
        .unwrap();
        wait_prober("probing", &prober, |c| c.sent >= 3).await;
        stop(prober);
        // Let the abort land, then watch for ten intervals.
        tokio::time::sleep(INTERVAL * 2).await;
        let before = server.requests();
        tokio::time::sleep(INTERVAL * 10).await;
        assert_eq!(server.requests(), before, "requests after stopping");
    }
}

#[tokio::test]
async fn unusable_targets_are_refused_naming_the_field() {
    let good = target("http://127.0.0.1:9".to_owned(), INTERVAL, TIMEOUT);
    let cases: [(&str, ProbeTarget); 7] = [
        (
            "url",
            ProbeTarget {
                url: "ftp://10.0.0.1".into(),
                ..good.clone()
            },
        ),
        (
            "url",
            ProbeTarget {
                url: "10.0.0.1:80".into(),
                ..good.clone()
            },
        ),
        (
            "path",
            ProbeTarget {
                path: "healthz".into(),
                ..good.clone()
            },
        ),
        (
            "host",
            ProbeTarget {
                host: Some("a b".into()),
                ..good.clone()
            },
        ),
        (
            "host",
            ProbeTarget {
                host: Some("app.test:80".into()),
                ..good.clone()
            },
        ),
        (
            "interval",
            ProbeTarget {
                interval: Duration::ZERO,
                ..good.clone()
            },
        ),
        (
            "timeout",
            ProbeTarget {
                timeout: Duration::ZERO,
                ..good.clone()
            },
        ),
    ];
    for (expected, bad) in cases {
        match Prober::start(bad.clone(), ProbeCounts::default()) {
            Err(ProbeError::InvalidTarget { field, .. }) => assert_eq!(field, expected, "{bad:?}"),
            other => panic!("{bad:?}: expected an invalid {expected}, got {other:?}"),
        }
    }
    Prober::start(good, ProbeCounts::default()).unwrap();
}

#[test]
fn starting_outside_a_runtime_is_an_error_not_a_panic() {
    let good = target("http://127.0.0.1:9".to_owned(), INTERVAL, TIMEOUT);
    let result = Prober::start(good, ProbeCounts::default());
    assert!(matches!(result, Err(ProbeError::NoRuntime)), "{result:?}");
}
