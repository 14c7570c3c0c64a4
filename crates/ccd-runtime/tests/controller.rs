#![allow(clippy::unwrap_used, clippy::expect_used)]
//! What an operator relies on from the controller, observed on Tokio's
//! paused clock: every time below is exact, not slept in real time.

mod common;

use std::time::Duration;

use ccd_runtime::{Backoff, Config};
use common::{FakeSource, Probe, Scripted, Step, config, gaps, secs, start, within};

#[tokio::test(start_paused = true)]
async fn many_triggers_for_a_waiting_key_reconcile_it_once() {
    let probe = Probe::new();
    // One slot, held for 10 s by "busy", so "a" must wait in the queue.
    let reconciler = Scripted {
        probe: probe.clone(),
        script: |key: &str, _, _| {
            if key == "busy" {
                Step::done().taking(secs(10))
            } else {
                Step::done()
            }
        },
    };
    let source = FakeSource::new(&[("busy", 1)]);
    let running = start(
        source,
        reconciler,
        Config {
            concurrency: 1,
            ..config()
        },
    );

    probe.until(secs(1)).await;
    for _ in 0..50 {
        running.trigger.push("a");
        tokio::task::yield_now().await;
    }
    assert_eq!(
        running.metrics.snapshot().queue_depth,
        1,
        "a is queued once"
    );

    probe.until(secs(60)).await;
    let a = probe.calls_for("a");
    assert_eq!(a.len(), 1, "{a:?}");
    assert_eq!(
        a[0].object, None,
        "a is not in the source: reconciled as gone"
    );
    assert_eq!(a[0].started, secs(10), "a ran as soon as the slot freed");
    running.stop().await;
}

#[tokio::test(start_paused = true)]
async fn one_key_is_never_reconciled_twice_at_once() {
    let probe = Probe::new();
    let reconciler = Scripted {
        probe: probe.clone(),
        script: |_: &str, _, _| Step::done().taking(Duration::from_millis(2500)),
    };
    let running = start(FakeSource::new(&[("a", 1)]), reconciler, config());

    // Nudge "a" every 300 ms for a minute, mostly while it is running.
    for _ in 0..200 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        running.trigger.push("a");
    }
    probe.until(secs(90)).await;

    assert_eq!(probe.overlaps(), 0);
    let starts = probe.starts_for("a");
    assert!(starts.len() >= 20, "kept reconciling: {starts:?}");
    for gap in gaps(&starts) {
        assert!(
            gap >= Duration::from_millis(2500),
            "started before the previous run ended"
        );
    }
    running.stop().await;
}

#[tokio::test(start_paused = true)]
async fn triggers_during_a_reconcile_run_it_exactly_once_more() {
    let probe = Probe::new();
    let reconciler = Scripted {
        probe: probe.clone(),
        script: |_: &str, _, _| Step::done().taking(secs(10)),
    };
    let running = start(FakeSource::new(&[("a", 1)]), reconciler, config());

    for at in [2, 3, 4] {
        probe.until(secs(at)).await;
        running.trigger.push("a");
    }
    probe.until(secs(120)).await;

    assert_eq!(probe.starts_for("a"), [secs(0), secs(10)]);
    running.stop().await;
}

#[tokio::test(start_paused = true)]
async fn backoff_doubles_on_errors_and_resets_after_a_success() {
    let probe = Probe::new();
    // Fails 5 times, succeeds, then fails again when next triggered.
    let reconciler = Scripted {
        probe: probe.clone(),
        script: |_: &str, _, nth| if nth == 5 { Step::done() } else { Step::fail() },
    };
    let running = start(FakeSource::new(&[("a", 1)]), reconciler, config());

    probe.until(secs(100)).await;
    let starts = probe.starts_for("a");
    assert_eq!(starts.len(), 6, "5 failures then a success: {starts:?}");
    // Jitter only shortens a backoff, by up to 10 %.
    for (gap, expected) in gaps(&starts).into_iter().zip([1, 2, 4, 8, 16]) {
        let expected = secs(expected);
        assert!(
            within(gap, expected.mul_f64(0.9), expected),
            "gap {gap:?}, expected ~{expected:?}"
        );
    }

    // After the success, failures back off from 1 s again, not from 32 s.
    running.trigger.push("a");
    probe.until(secs(110)).await;
    let starts = probe.starts_for("a");
    assert_eq!(starts[6], secs(100));
    let after_reset = gaps(&starts[6..]);
    assert_eq!(after_reset.len(), 3, "{starts:?}");
    for (gap, expected) in after_reset.into_iter().zip([1, 2, 4]) {
        let expected = secs(expected);
        assert!(
            within(gap, expected.mul_f64(0.9), expected),
            "gap {gap:?}, expected ~{expected:?}"
        );
    }

    let metrics = running.metrics.snapshot();
    assert_eq!(metrics.reconciles_ok, 1);
    assert_eq!(metrics.reconciles_error, 9);
    assert_eq!(metrics.retries, 9);
    running.stop().await;
}

#[tokio::test(start_paused = true)]
async fn backoff_is_capped_at_five_minutes() {
    let probe = Probe::new();
    let reconciler = Scripted {
        probe: probe.clone(),
        script: |_: &str, _, _| Step::fail(),
    };
    let running = start(FakeSource::new(&[("a", 1)]), reconciler, config());

    probe.until(secs(3600)).await;
    let gaps = gaps(&probe.starts_for("a"));
    // 1, 2, 4 … 256 s, then 300 s (less jitter) for as long as it fails.
    assert!(gaps.len() >= 12, "{gaps:?}");
    for gap in &gaps[9..] {
        assert!(within(*gap, secs(270), secs(300)), "capped gap {gap:?}");
    }
    assert!(within(gaps[8], secs(230), secs(256)));
    running.stop().await;
}

#[tokio::test(start_paused = true)]
async fn requeue_runs_again_after_the_chosen_delay_within_jitter() {
    let probe = Probe::new();
    let reconciler = Scripted {
        probe: probe.clone(),
        script: |_: &str, _, _| Step::requeue(secs(100)),
    };
    let running = start(FakeSource::new(&[("a", 1)]), reconciler, config());

    probe.until(secs(2500)).await;
    let gaps = gaps(&probe.starts_for("a"));
    assert!(gaps.len() >= 20, "{gaps:?}");
    for gap in &gaps {
        assert!(within(*gap, secs(90), secs(110)), "requeue gap {gap:?}");
    }
    let first = gaps[0];
    assert!(
        gaps.iter().any(|g| *g != first),
        "requeues are jittered: {gaps:?}"
    );
    assert_eq!(
        running.metrics.snapshot().reconciles_requeue,
        gaps.len() as u64 + 1
    );
    running.stop().await;
}

#[tokio::test(start_paused = true)]
async fn no_more_than_the_concurrency_limit_run_at_once() {
    let probe = Probe::new();
    let reconciler = Scripted {
        probe: probe.clone(),
        script: |_: &str, _, _| Step::done().taking(secs(5)),
    };
    let keys: Vec<String> = (0..30).map(|i| format!("app-{i:02}")).collect();
    let objects: Vec<(&str, u32)> = keys.iter().map(|k| (k.as_str(), 1)).collect();
    let running = start(
        FakeSource::new(&objects),
        reconciler,
        Config {
            concurrency: 4,
            ..config()
        },
    );

    probe.until(Duration::from_millis(2500)).await;
    assert_eq!(probe.running(), 4);
    let metrics = running.metrics.snapshot();
    assert_eq!((metrics.in_flight, metrics.queue_depth), (4, 26));

    probe.until(secs(60)).await;
    assert_eq!(probe.max_running(), 4);
    assert_eq!(probe.calls().len(), 30, "every key reconciled once");
    // 30 keys, 4 at a time, 5 s each: 8 rounds.
    let last = probe.calls().iter().map(|c| c.started).max().unwrap();
    assert_eq!(last, secs(35));
    running.stop().await;
}

#[tokio::test(start_paused = true)]
async fn nothing_is_reconciled_before_the_first_full_list_succeeds() {
    let probe = Probe::new();
    let reconciler = Scripted {
        probe: probe.clone(),
        script: |_: &str, _, _| Step::done(),
    };
    let source = FakeSource::new(&[("a", 1), ("b", 2)]);
    source.fail_lists(2);
    let controller_source = source.clone();
    let running = start(controller_source, reconciler, config());
    // A manual trigger before the cache is ready waits for it.
    running.trigger.push("b");

    probe.until(Duration::from_millis(500)).await;
    assert!(!running.cache.is_ready());
    assert_eq!(running.cache.get("a"), None);

    running.cache.wait_ready().await;
    let lists = source.list_calls();
    assert_eq!(lists.len(), 3, "two failures, then a success");
    let ready_at = lists[2] - lists[0];
    // Retried after ~1 s, then ~2 s (less jitter).
    assert!(
        within(ready_at, Duration::from_millis(2700), secs(3)),
        "{ready_at:?}"
    );

    probe.until(secs(10)).await;
    let calls = probe.calls();
    assert_eq!(calls.len(), 2, "{calls:?}");
    assert!(calls.iter().all(|c| c.started == ready_at), "{calls:?}");
    assert_eq!(probe.calls_for("a")[0].object, Some(1));
    assert_eq!(probe.calls_for("b")[0].object, Some(2));
    assert_eq!(running.cache.keys(), ["a", "b"]);
    running.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_change_hint_reconciles_the_new_object_promptly() {
    let probe = Probe::new();
    let reconciler = Scripted {
        probe: probe.clone(),
        script: |_: &str, _, _| Step::done(),
    };
    let source = FakeSource::new(&[("a", 1)]);
    let running = start(source.clone(), reconciler, config());

    probe.until(secs(5)).await;
    source.set("a", 2);
    source.set("b", 1);
    // A hint for an unchanged object does not reconcile it.
    source.hint("a");
    probe.until(secs(6)).await;

    let a = probe.calls_for("a");
    assert_eq!(a.len(), 2, "{a:?}");
    assert_eq!((a[1].object, a[1].started), (Some(2), secs(5)));
    assert_eq!(probe.calls_for("b")[0].object, Some(1));
    assert_eq!(running.cache.get("a").as_deref(), Some(&2));
    running.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_deleted_object_is_reconciled_with_none() {
    let probe = Probe::new();
    let reconciler = Scripted {
        probe: probe.clone(),
        script: |_: &str, _, _| Step::done(),
    };
    let source = FakeSource::new(&[("a", 1), ("b", 1)]);
    let running = start(source.clone(), reconciler, config());

    probe.until(secs(5)).await;
    source.remove("a");
    probe.until(secs(6)).await;

    let a = probe.calls_for("a");
    assert_eq!(a.len(), 2, "{a:?}");
    assert_eq!((a[1].object, a[1].started), (None, secs(5)));
    assert_eq!(running.cache.keys(), ["b"]);
    assert_eq!(probe.calls_for("b").len(), 1, "b was left alone");
    running.stop().await;
}

#[tokio::test(start_paused = true)]
async fn the_periodic_relist_repairs_lost_change_events() {
    let probe = Probe::new();
    let reconciler = Scripted {
        probe: probe.clone(),
        script: |_: &str, _, _| Step::done(),
    };
    let source = FakeSource::new(&[("a", 1), ("gone", 1), ("same", 1)]);
    let running = start(source.clone(), reconciler, config());

    probe.until(secs(1)).await;
    source.set_silently("a", 2);
    source.remove_silently("gone");
    source.set_silently("new", 1);

    probe.until(secs(29)).await;
    assert_eq!(probe.calls().len(), 3, "nothing seen before the relist");

    probe.until(secs(31)).await;
    let a = probe.calls_for("a");
    assert_eq!((a[1].object, a[1].started), (Some(2), secs(30)));
    let gone = probe.calls_for("gone");
    assert_eq!((gone[1].object, gone[1].started), (None, secs(30)));
    assert_eq!(probe.calls_for("new")[0].started, secs(30));
    assert_eq!(
        probe.calls_for("same").len(),
        1,
        "an unchanged object is not reconciled again"
    );
    assert_eq!(running.cache.keys(), ["a", "new", "same"]);
    running.stop().await;
}

#[tokio::test(start_paused = true)]
async fn shutdown_drains_running_reconciles_and_starts_nothing_new() {
    let probe = Probe::new();
    let reconciler = Scripted {
        probe: probe.clone(),
        script: |_: &str, _, _| Step::done().taking(secs(10)),
    };
    let running = start(FakeSource::new(&[("a", 1)]), reconciler, config());

    probe.until(secs(2)).await;
    running.trigger.push("a");
    running.trigger.push("b");
    let metrics = running.metrics.clone();
    running.stop().await;

    assert_eq!(
        probe.since_start(),
        secs(10),
        "returned once the running reconcile ended"
    );
    let calls = probe.calls();
    assert_eq!(calls.len(), 1, "nothing new started: {calls:?}");
    assert_eq!(calls[0].finished, Some(secs(10)));
    assert_eq!(metrics.snapshot().reconciles_ok, 1);
}

#[tokio::test(start_paused = true)]
async fn shutdown_cancels_reconciles_still_running_at_the_drain_timeout() {
    let probe = Probe::new();
    let reconciler = Scripted {
        probe: probe.clone(),
        script: |_: &str, _, _| Step::done().taking(secs(600)),
    };
    let running = start(
        FakeSource::new(&[("a", 1)]),
        reconciler,
        Config {
            drain_timeout: secs(5),
            ..config()
        },
    );

    probe.until(secs(2)).await;
    running.stop().await;

    assert_eq!(probe.since_start(), secs(7));
    assert_eq!(probe.running(), 0, "the reconcile was cancelled");
    assert_eq!(probe.calls()[0].finished, None);
}

#[tokio::test(start_paused = true)]
async fn a_panicking_reconcile_is_retried_with_backoff() {
    let probe = Probe::new();
    let reconciler = Scripted {
        probe: probe.clone(),
        script: |_: &str, _, nth| {
            assert!(nth > 0, "reconciler bug on the first call");
            Step::done()
        },
    };
    let running = start(
        FakeSource::new(&[("a", 1)]),
        reconciler,
        Config {
            error_backoff: Backoff {
                initial: secs(4),
                max: secs(4),
            },
            ..config()
        },
    );

    probe.until(secs(10)).await;
    let starts = probe.starts_for("a");
    assert_eq!(starts.len(), 2, "{starts:?}");
    assert!(within(starts[1], Duration::from_millis(3600), secs(4)));
    assert_eq!(running.metrics.snapshot().reconciles_error, 1);
    running.stop().await;
}

#[tokio::test(start_paused = true)]
async fn metrics_render_as_prometheus_text() {
    let probe = Probe::new();
    let reconciler = Scripted {
        probe: probe.clone(),
        script: |key: &str, _, _| match key {
            "bad" => Step::fail(),
            _ => Step::done().taking(Duration::from_millis(300)),
        },
    };
    let running = start(
        FakeSource::new(&[("bad", 1), ("good", 1)]),
        reconciler,
        config(),
    );

    probe.until(Duration::from_millis(500)).await;
    let text = running.metrics.render();
    assert!(
        text.contains("ccd_reconciles_total{controller=\"test\",result=\"ok\"} 1\n"),
        "{text}"
    );
    assert!(text.contains("ccd_reconciles_total{controller=\"test\",result=\"error\"} 1\n"));
    assert!(text.contains("ccd_reconcile_retries_total{controller=\"test\"} 1\n"));
    assert!(
        text.contains("ccd_reconcile_queue_depth{controller=\"test\"} 1\n"),
        "bad waits to retry"
    );
    assert!(text.contains("ccd_reconcile_duration_seconds_count{controller=\"test\"} 2\n"));
    assert!(text.contains("ccd_reconcile_duration_seconds_sum{controller=\"test\"} 0.3\n"));
    running.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_change_to_a_failing_object_is_reconciled_at_once_not_after_its_backoff() {
    let probe = Probe::new();
    // Generation 1 is broken; generation 2 fixes it.
    let reconciler = Scripted {
        probe: probe.clone(),
        script: |_: &str, object, _| {
            if object == Some(1) {
                Step::fail()
            } else {
                Step::done()
            }
        },
    };
    let source = FakeSource::new(&[("a", 1)]);
    let running = start(source.clone(), reconciler, config());

    // Failures at 0, ~1, ~3, ~7, ~15 s: the next retry is ~16 s away.
    probe.until(secs(20)).await;
    source.set("a", 2);
    probe.until(secs(21)).await;

    let last = probe.calls_for("a").pop().unwrap();
    assert_eq!((last.object, last.started), (Some(2), secs(20)));
    running.stop().await;
}
