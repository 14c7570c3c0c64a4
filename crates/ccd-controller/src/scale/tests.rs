#![allow(clippy::unwrap_used)]

use super::*;

const MINUTE: Duration = Duration::from_secs(60);

fn policy() -> ScalePolicy {
    ScalePolicy {
        min: 2,
        max: 6,
        cpu_target: Some(0.6),
        rps_target: None,
        scale_in_stabilization: 10 * MINUTE,
        cool_down: MINUTE,
    }
}

/// `n` instances created `age` ago, each at `cpu`.
fn fleet(n: usize, age: Duration, cpu: f64) -> Vec<Sample> {
    let since = Instant::now() - age;
    (1..=n)
        .map(|i| Sample {
            instance: format!("web-{i}"),
            since,
            cpu: Some(cpu),
            requests_per_second: None,
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn load_above_the_target_scales_out_once_not_again_while_the_new_instance_starts() {
    tokio::time::advance(10 * MINUTE).await;
    let now = Instant::now();
    let out = decide(
        now,
        &policy(),
        2,
        &fleet(2, 5 * MINUTE, 0.9),
        &History::default(),
    );
    assert_eq!(out.resize, Some(3));
    assert_eq!(
        out.reason,
        "average CPU 90% over 2 instances against a target of 60%: 3 wanted"
    );
    // The next figures: the old two still carry the load, the new one starts.
    let mut members = fleet(2, 5 * MINUTE, 0.9);
    members.push(Sample {
        instance: "web-3".into(),
        since: now,
        cpu: Some(1.0), // start-up, not load
        requests_per_second: None,
    });
    tokio::time::advance(Duration::from_secs(10)).await;
    let next = decide(Instant::now(), &policy(), 3, &members, &out.history);
    assert_eq!(next.resize, None, "{}", next.reason);
    assert!(
        next.reason.contains("(1 still starting)"),
        "{}",
        next.reason
    );
}

#[tokio::test(start_paused = true)]
async fn figures_near_the_target_change_nothing() {
    let d = decide(
        Instant::now(),
        &policy(),
        3,
        &fleet(3, MINUTE, 0.65),
        &History::default(),
    );
    assert_eq!((d.resize, d.recommended), (None, Some(3)));
}

#[tokio::test(start_paused = true)]
async fn scale_in_waits_for_a_whole_window_of_low_load() {
    let p = policy();
    let mut history = History::default();
    let mut resized = None;
    let mut waited = Duration::ZERO;
    while resized.is_none() && waited <= 20 * MINUTE {
        let d = decide(Instant::now(), &p, 4, &fleet(4, MINUTE, 0.1), &history);
        if d.resize.is_none() {
            assert!(d.reason.contains("scale-in waits for 600s"), "{}", d.reason);
        }
        resized = d.resize;
        history = d.history;
        tokio::time::advance(MINUTE).await;
        waited += MINUTE;
    }
    assert_eq!(resized, Some(2), "to replicas.min, not below");
    assert_eq!(waited, 11 * MINUTE, "after the 10 minute window");
}

#[tokio::test(start_paused = true)]
async fn a_spike_within_the_window_keeps_the_instances_it_needed() {
    let p = policy();
    let mut history = History::default();
    // Ten quiet minutes, then a spike that needs all 5, then quiet again.
    for minute in 0..=14 {
        let cpu = if minute == 10 { 0.55 } else { 0.1 };
        let d = decide(Instant::now(), &p, 5, &fleet(5, MINUTE, cpu), &history);
        history = d.history;
        if minute == 12 {
            assert_eq!(
                d.resize, None,
                "the spike 2 minutes ago needed 5: keep them"
            );
        }
        tokio::time::advance(MINUTE).await;
    }
    // Once the spike left the window, the quiet figures decide.
    tokio::time::advance(10 * MINUTE).await;
    let d = decide(Instant::now(), &p, 5, &fleet(5, MINUTE, 0.1), &history);
    assert_eq!(d.resize, Some(2));
}

#[tokio::test(start_paused = true)]
async fn bounds_hold_whatever_the_figures_say() {
    let p = ScalePolicy { max: 3, ..policy() };
    let d = decide(
        Instant::now(),
        &p,
        2,
        &fleet(2, MINUTE, 1.0),
        &History::default(),
    );
    assert_eq!(d.resize, Some(3));
    assert!(
        d.reason.ends_with("held within replicas 2..3"),
        "{}",
        d.reason
    );
    // No figures at all: only the bounds act.
    let below = decide(Instant::now(), &p, 1, &[], &History::default());
    assert_eq!(below.resize, Some(2));
    let none = decide(
        Instant::now(),
        &p,
        2,
        &fleet(2, Duration::ZERO, 0.9),
        &History::default(),
    );
    assert_eq!(none.resize, None, "starting instances only: no figures");
    assert_eq!(none.reason, "no figures from running instances yet");
}

#[tokio::test(start_paused = true)]
async fn requests_per_second_scale_too_and_the_larger_need_wins() {
    let p = ScalePolicy {
        rps_target: Some(100.0),
        ..policy()
    };
    let mut members = fleet(2, MINUTE, 0.3);
    for m in &mut members {
        m.requests_per_second = Some(250.0);
    }
    let d = decide(Instant::now(), &p, 2, &members, &History::default());
    assert_eq!(d.resize, Some(5));
    assert_eq!(
        d.reason,
        "average requests/s 250.0 over 2 instances against a target of 100.0: 5 wanted"
    );
}
