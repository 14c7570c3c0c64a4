#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The per-app registry the controller holds.

mod support;

use std::time::Duration;

use ccd_probe::{ProbeCounts, Probes};
use support::{Mode, PATIENCE, TestServer, target, wait_for};

const INTERVAL: Duration = Duration::from_millis(50);
const TIMEOUT: Duration = Duration::from_secs(5);

fn counts_of(probes: &Probes, app: &str, key: &str) -> ProbeCounts {
    let (running_key, counts) = probes.counts(app).expect("a prober runs for the app");
    assert_eq!(running_key, key);
    counts
}

#[tokio::test]
async fn the_same_key_keeps_counting_and_a_new_key_starts_over() {
    // Every probe fails here, so failed == sent - initial.sent shows where counting started.
    let server = TestServer::start(Mode::Status(503)).await;
    let probes = Probes::new();
    let web = target(server.url(), INTERVAL, TIMEOUT);
    probes
        .ensure("web", "step-1", web.clone(), ProbeCounts::default())
        .unwrap();
    let first = wait_for(
        "step 1",
        || counts_of(&probes, "web", "step-1"),
        |c| c.sent >= 3,
    )
    .await;

    // The controller's next pass: same step, same target, nothing recorded yet.
    probes
        .ensure("web", "step-1", web.clone(), ProbeCounts::default())
        .unwrap();
    let again = counts_of(&probes, "web", "step-1");
    assert!(
        again.sent >= first.sent,
        "{again:?} restarted (was {first:?})"
    );

    let initial = ProbeCounts {
        sent: 1_000_000,
        failed: 0,
    };
    probes
        .ensure("web", "step-2", web.clone(), initial)
        .unwrap();
    let started = counts_of(&probes, "web", "step-2");
    assert!(started.sent >= initial.sent && started.failed == started.sent - initial.sent);
    let second = wait_for(
        "step 2",
        || counts_of(&probes, "web", "step-2"),
        |c| c.failed >= 3,
    )
    .await;
    assert_eq!(second.failed, second.sent - initial.sent, "{second:?}");
}

#[tokio::test]
async fn a_new_target_under_the_same_key_counts_on() {
    let old = TestServer::start(Mode::Status(200)).await;
    let new = TestServer::start(Mode::Status(200)).await;
    let probes = Probes::new();
    let initial = ProbeCounts {
        sent: 10,
        failed: 2,
    };
    let target_old = target(old.url(), INTERVAL, TIMEOUT);
    probes.ensure("web", "step-1", target_old, initial).unwrap();
    let before = wait_for(
        "old",
        || counts_of(&probes, "web", "step-1"),
        |c| c.sent >= 13,
    )
    .await;

    probes
        .ensure(
            "web",
            "step-1",
            target(new.url(), INTERVAL, TIMEOUT),
            initial,
        )
        .unwrap();
    let after = counts_of(&probes, "web", "step-1");
    assert!(
        after.sent >= before.sent,
        "{after:?} restarted (was {before:?})"
    );
    wait_for("new", || new.requests(), |n| n >= 3).await;
    assert_eq!(counts_of(&probes, "web", "step-1").failed, 2);
}

#[tokio::test]
async fn an_unusable_target_leaves_no_prober() {
    let server = TestServer::start(Mode::Status(200)).await;
    let probes = Probes::new();
    probes
        .ensure(
            "web",
            "step-1",
            target(server.url(), INTERVAL, TIMEOUT),
            ProbeCounts::default(),
        )
        .unwrap();
    let bad = target("ftp://10.0.0.1".to_owned(), INTERVAL, TIMEOUT);
    assert!(
        probes
            .ensure("web", "step-1", bad, ProbeCounts::default())
            .is_err()
    );
    assert_eq!(probes.counts("web"), None);
}

#[tokio::test]
async fn stopping_leaves_no_task_and_sends_nothing_more() {
    let server = TestServer::start(Mode::Status(200)).await;
    let runtime = tokio::runtime::Handle::current().metrics();
    // The test and the server's accept loop.
    let baseline = runtime.num_alive_tasks();
    let probes = Probes::new();
    for app in ["a", "b", "c"] {
        let t = target(server.url(), INTERVAL, TIMEOUT);
        probes
            .ensure(app, "step-1", t, ProbeCounts::default())
            .unwrap();
    }
    for app in ["a", "b", "c"] {
        wait_for(app, || counts_of(&probes, app, "step-1"), |c| c.sent >= 3).await;
    }
    assert!(runtime.num_alive_tasks() > baseline);

    probes.stop("a");
    assert_eq!(probes.counts("a"), None);
    assert!(probes.counts("b").is_some());
    probes.clone().stop_all();
    assert_eq!((probes.counts("b"), probes.counts("c")), (None, None));

    // The probers' tasks end, and with their clients gone the server's connections close too.
    let settled = tokio::time::timeout(PATIENCE, async {
        while runtime.num_alive_tasks() > baseline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(
        settled.is_ok(),
        "{} tasks alive, {baseline} before probing",
        runtime.num_alive_tasks()
    );
    let before = server.requests();
    tokio::time::sleep(INTERVAL * 10).await;
    assert_eq!(server.requests(), before, "requests after stop_all");
}

#[test]
fn probes_can_be_shared_between_threads() {
    fn shareable<T: Clone + Send + Sync + 'static>() {}
    shareable::<Probes>();
}
