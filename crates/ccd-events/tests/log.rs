#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Recording, folding, listing, retention and persistence of the event log.

use std::time::Duration;

use ccd_events::{Event, EventLog, EventLogOptions, EventsError, Kind};

const T0: u64 = 1_750_000_000_000;

fn log_with(fold_window: Duration, max_per_app: usize) -> EventLog {
    EventLog::in_memory_with(EventLogOptions {
        fold_window,
        max_per_app,
    })
}

fn messages(events: &[Event]) -> Vec<&str> {
    events.iter().map(|e| e.message.as_str()).collect()
}

#[test]
fn record_returns_the_stored_event() {
    let log = EventLog::in_memory();
    let e = log
        .record_at(
            T0,
            "hello",
            Kind::Normal,
            "TemplateCreated",
            "created instance template hello-3fa2c1d9e0 for revision 1.2.0",
            Some("1.2.0"),
        )
        .unwrap();
    assert_eq!(
        e,
        Event {
            seq: 1,
            at_ms: T0,
            first_at_ms: T0,
            app: "hello".into(),
            kind: Kind::Normal,
            reason: "TemplateCreated".into(),
            message: "created instance template hello-3fa2c1d9e0 for revision 1.2.0".into(),
            revision: Some("1.2.0".into()),
            count: 1,
        }
    );
    assert_eq!(log.list(None, 10).unwrap(), vec![e]);
}

#[test]
fn record_uses_the_wall_clock() {
    let log = EventLog::in_memory();
    let before = ccd_events::now_ms();
    let e = log
        .record(
            "hello",
            Kind::Normal,
            "RolloutStarted",
            "rolling out 1.2.1",
            None,
        )
        .unwrap();
    let after = ccd_events::now_ms();
    assert!(
        before <= e.at_ms && e.at_ms <= after,
        "{before} <= {} <= {after}",
        e.at_ms
    );
}

#[test]
fn repeats_within_the_window_fold_into_one_row() {
    let log = log_with(Duration::from_secs(60), 1000);
    let msg = "spec rejected: specs/hello.yaml:7:9: spec.port: 70000 is greater than 65535";
    let first = log
        .record_at(T0, "hello", Kind::Warning, "SpecRejected", msg, None)
        .unwrap();
    let second = log
        .record_at(
            T0 + 5_000,
            "hello",
            Kind::Warning,
            "SpecRejected",
            msg,
            None,
        )
        .unwrap();
    let third = log
        .record_at(
            T0 + 50_000,
            "hello",
            Kind::Warning,
            "SpecRejected",
            msg,
            None,
        )
        .unwrap();

    assert_eq!((first.count, second.count, third.count), (1, 2, 3));
    assert_eq!(third.at_ms, T0 + 50_000);
    assert_eq!(third.first_at_ms, T0);
    assert!(first.seq < second.seq && second.seq < third.seq);
    let all = log.list(None, 100).unwrap();
    assert_eq!(all, vec![third.clone()], "one row, not three");

    // The window runs from the last occurrence: 50 s later still folds.
    let fourth = log
        .record_at(
            T0 + 100_000,
            "hello",
            Kind::Warning,
            "SpecRejected",
            msg,
            None,
        )
        .unwrap();
    assert_eq!(fourth.count, 4);

    // Past the window, a new row starts.
    let late = log
        .record_at(
            T0 + 161_000,
            "hello",
            Kind::Warning,
            "SpecRejected",
            msg,
            None,
        )
        .unwrap();
    assert_eq!(late.count, 1);
    assert_eq!(late.first_at_ms, T0 + 161_000);
    let all = log.list(None, 100).unwrap();
    assert_eq!(all.iter().map(|e| e.count).collect::<Vec<_>>(), vec![4, 1]);
}

#[test]
fn only_identical_events_fold() {
    let log = log_with(Duration::from_secs(600), 1000);
    let base = (
        "hello",
        Kind::Warning,
        "RolloutFailed",
        "health check failed",
        Some("1.2.1"),
    );
    log.record_at(T0, base.0, base.1, base.2, base.3, base.4)
        .unwrap();
    // Each differs from `base` in one field.
    log.record_at(T0 + 1, "other", base.1, base.2, base.3, base.4)
        .unwrap();
    log.record_at(T0 + 2, base.0, Kind::Normal, base.2, base.3, base.4)
        .unwrap();
    log.record_at(T0 + 3, base.0, base.1, "RolloutStalled", base.3, base.4)
        .unwrap();
    log.record_at(
        T0 + 4,
        base.0,
        base.1,
        base.2,
        "health check timed out",
        base.4,
    )
    .unwrap();
    log.record_at(T0 + 5, base.0, base.1, base.2, base.3, Some("1.2.2"))
        .unwrap();
    log.record_at(T0 + 6, base.0, base.1, base.2, base.3, None)
        .unwrap();
    let all = log.list(None, 100).unwrap();
    assert_eq!(all.len(), 7);
    assert!(all.iter().all(|e| e.count == 1));

    // An identical repeat folds even when other events came in between, and moves to the end.
    let again = log
        .record_at(T0 + 7, base.0, base.1, base.2, base.3, base.4)
        .unwrap();
    assert_eq!(again.count, 2);
    let all = log.list(None, 100).unwrap();
    assert_eq!(all.len(), 7);
    assert_eq!(all.last(), Some(&again));
}

#[test]
fn list_is_newest_last_with_increasing_seq() {
    let log = EventLog::in_memory();
    for i in 0..10 {
        log.record_at(
            T0 + i,
            "hello",
            Kind::Normal,
            "Step",
            &format!("step {i}"),
            None,
        )
        .unwrap();
    }
    let all = log.list(None, 100).unwrap();
    assert_eq!(
        messages(&all),
        (0..10).map(|i| format!("step {i}")).collect::<Vec<_>>()
    );
    assert!(all.windows(2).all(|w| w[0].seq < w[1].seq));
    // The limit keeps the newest ones, still oldest first.
    assert_eq!(
        messages(&log.list(None, 3).unwrap()),
        vec!["step 7", "step 8", "step 9"]
    );
    assert!(log.list(None, 0).unwrap().is_empty());
}

#[test]
fn list_filters_by_app_and_limits() {
    let log = EventLog::in_memory();
    for i in 0..6 {
        let app = if i % 2 == 0 { "hello" } else { "world" };
        log.record_at(
            T0 + i,
            app,
            Kind::Normal,
            "Step",
            &format!("{app} {i}"),
            None,
        )
        .unwrap();
    }
    // A name that is a prefix of another must not pick up the other's events.
    log.record_at(
        T0 + 10,
        "hello-api",
        Kind::Normal,
        "Step",
        "hello-api 10",
        None,
    )
    .unwrap();

    assert_eq!(
        messages(&log.list(Some("hello"), 100).unwrap()),
        vec!["hello 0", "hello 2", "hello 4"]
    );
    assert_eq!(
        messages(&log.list(Some("world"), 2).unwrap()),
        vec!["world 3", "world 5"]
    );
    assert_eq!(
        messages(&log.list(Some("hello-api"), 100).unwrap()),
        vec!["hello-api 10"]
    );
    assert!(log.list(Some("nobody"), 100).unwrap().is_empty());
    assert_eq!(
        messages(&log.list(None, 3).unwrap()),
        vec!["hello 4", "world 5", "hello-api 10"]
    );
}

#[test]
fn retention_keeps_the_newest_per_app() {
    let log = log_with(Duration::from_secs(600), 3);
    for i in 0..5 {
        log.record_at(
            T0 + i,
            "hello",
            Kind::Normal,
            "Step",
            &format!("hello {i}"),
            None,
        )
        .unwrap();
    }
    log.record_at(T0 + 10, "world", Kind::Normal, "Step", "world 0", None)
        .unwrap();
    assert_eq!(
        messages(&log.list(Some("hello"), 100).unwrap()),
        vec!["hello 2", "hello 3", "hello 4"]
    );
    // Another app's events do not count against this one's quota.
    assert_eq!(
        messages(&log.list(Some("world"), 100).unwrap()),
        vec!["world 0"]
    );
    assert_eq!(
        messages(&log.list(None, 100).unwrap()),
        vec!["hello 2", "hello 3", "hello 4", "world 0"]
    );
    // Folding does not add a row, so drops nothing.
    let folded = log
        .record_at(T0 + 11, "hello", Kind::Normal, "Step", "hello 3", None)
        .unwrap();
    assert_eq!(folded.count, 2);
    assert_eq!(
        messages(&log.list(Some("hello"), 100).unwrap()),
        vec!["hello 2", "hello 4", "hello 3"]
    );
    // Sequence numbers keep increasing past dropped rows.
    let next = log
        .record_at(T0 + 12, "hello", Kind::Normal, "Step", "hello 5", None)
        .unwrap();
    assert!(next.seq > folded.seq);
    assert_eq!(
        messages(&log.list(Some("hello"), 100).unwrap()),
        vec!["hello 4", "hello 3", "hello 5"]
    );
}

#[test]
fn retention_default_is_1000_per_app() {
    let log = EventLog::in_memory();
    assert_eq!(log.options().max_per_app, 1000);
    for i in 0..1005 {
        log.record_at(T0 + i, "hello", Kind::Normal, "Step", &format!("{i}"), None)
            .unwrap();
    }
    let kept = log.list(Some("hello"), usize::MAX).unwrap();
    assert_eq!(kept.len(), 1000);
    assert_eq!(kept.first().unwrap().message, "5");
    assert_eq!(kept.last().unwrap().message, "1004");
}

#[test]
fn events_persist_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.redb");
    let options = EventLogOptions {
        fold_window: Duration::from_secs(60),
        max_per_app: 1000,
    };
    let (last, rolled) = {
        let log = EventLog::open_with(&path, options.clone()).unwrap();
        log.record_at(
            T0,
            "hello",
            Kind::Normal,
            "TemplateCreated",
            "created",
            Some("1.2.0"),
        )
        .unwrap();
        log.record_at(
            T0 + 1,
            "hello",
            Kind::Warning,
            "HealthCheckFailed",
            "503",
            None,
        )
        .unwrap();
        let rolled = log
            .record_at(
                T0 + 2,
                "hello",
                Kind::Normal,
                "RolledOut",
                "rolled out 1.2.1",
                None,
            )
            .unwrap();
        let clone = log.clone();
        drop(log);
        // The clone keeps the database open; dropping the last handle closes it.
        let last = clone.list(None, 100).unwrap();
        (last, rolled)
    };

    let log = EventLog::open_with(&path, options).unwrap();
    assert_eq!(log.list(None, 100).unwrap(), last);
    // Folding and sequence numbers carry on from the stored state.
    let again = log
        .record_at(
            T0 + 3,
            "hello",
            Kind::Normal,
            "RolledOut",
            "rolled out 1.2.1",
            None,
        )
        .unwrap();
    assert_eq!(again.count, 2);
    assert!(again.seq > rolled.seq);
    let fresh = log
        .record_at(
            T0 + 4,
            "world",
            Kind::Normal,
            "TemplateCreated",
            "created",
            None,
        )
        .unwrap();
    assert_eq!(fresh.seq, again.seq + 1);
}

#[test]
fn invalid_input_is_rejected_and_nothing_is_written() {
    let log = EventLog::in_memory();
    for reason in [
        "",
        "templateCreated",
        "Template Created",
        "Template-Created",
        "Ünicode",
    ] {
        let err = log
            .record("hello", Kind::Normal, reason, "m", None)
            .unwrap_err();
        assert!(
            matches!(err, EventsError::InvalidReason(ref r) if r == reason),
            "{err}"
        );
    }
    for app in ["", "a\nb"] {
        let err = log.record(app, Kind::Normal, "Ok", "m", None).unwrap_err();
        assert!(matches!(err, EventsError::InvalidApp(_)), "{err}");
    }
    assert!(log.list(None, 100).unwrap().is_empty());
    // Digits after the capital are fine.
    log.record("hello", Kind::Normal, "Http2Enabled", "m", None)
        .unwrap();
}

#[test]
fn event_json_shape() {
    let log = EventLog::in_memory();
    let e = log
        .record_at(T0, "hello", Kind::Warning, "SpecRejected", "bad port", None)
        .unwrap();
    let json = serde_json::to_value(&e).unwrap();
    assert_eq!(
        json,
        serde_json::json!({
            "seq": 1, "at_ms": T0, "first_at_ms": T0, "app": "hello", "kind": "Warning",
            "reason": "SpecRejected", "message": "bad port", "revision": null, "count": 1
        })
    );
    let back: Event = serde_json::from_value(json).unwrap();
    assert_eq!(back, e);
}

#[test]
fn the_log_file_is_readable_by_its_owner_only() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;

    let fresh = dir.path().join("events.redb");
    let log = EventLog::open(&fresh).unwrap();
    log.record_at(T0, "hello", Kind::Normal, "Created", "x", None)
        .unwrap();
    drop(log);
    assert_eq!(mode(&fresh), 0o600);

    // A log an older ccd created world-readable is tightened, its events kept.
    std::fs::set_permissions(&fresh, std::fs::Permissions::from_mode(0o644)).unwrap();
    let log = EventLog::open(&fresh).unwrap();
    assert_eq!(mode(&fresh), 0o600);
    assert_eq!(log.list(Some("hello"), 10).unwrap().len(), 1);
}

#[test]
fn after_gives_what_a_follower_has_not_seen_oldest_first() {
    let log = log_with(Duration::from_secs(600), 100);
    for (i, app) in ["web", "api", "web", "web"].iter().enumerate() {
        let at = T0 + i as u64;
        log.record_at(at, app, Kind::Normal, "Step", &format!("m{i}"), None)
            .unwrap();
    }
    assert_eq!(
        messages(&log.after(None, 0, 10).unwrap()),
        ["m0", "m1", "m2", "m3"]
    );
    assert_eq!(messages(&log.after(None, 2, 10).unwrap()), ["m2", "m3"]);
    assert_eq!(messages(&log.after(Some("web"), 1, 1).unwrap()), ["m2"]);
    assert!(log.after(Some("api"), 2, 10).unwrap().is_empty());
    assert!(log.after(None, u64::MAX, 10).unwrap().is_empty());
    // A repeat folds into its event, which comes again under a new seq.
    let folded = log
        .record_at(T0 + 9, "web", Kind::Normal, "Step", "m0", None)
        .unwrap();
    assert_eq!(folded.count, 2);
    let seen = log.after(None, 4, 10).unwrap();
    assert_eq!((messages(&seen), seen[0].seq), (vec!["m0"], folded.seq));
}
