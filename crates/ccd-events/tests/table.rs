#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The `ccd events` table, checked character for character.

use ccd_events::{Event, Kind, format_age, render_table, render_table_at};

const NOW: u64 = 1_750_000_000_000;

fn event(ago_ms: u64, app: &str, kind: Kind, reason: &str, count: u64, message: &str) -> Event {
    Event {
        seq: 0,
        at_ms: NOW - ago_ms,
        first_at_ms: NOW - ago_ms,
        app: app.into(),
        kind,
        reason: reason.into(),
        message: message.into(),
        revision: None,
        count,
    }
}

#[test]
fn renders_the_exact_table() {
    let events = [
        event(
            3 * 86_400_000 + 5,
            "hello",
            Kind::Normal,
            "TemplateCreated",
            1,
            "created instance template hello-3fa2c1d9e0 for revision 1.2.0",
        ),
        event(
            2 * 3_600_000 + 59 * 60_000,
            "hello",
            Kind::Warning,
            "SpecRejected",
            12,
            "spec rejected: specs/hello.yaml:7:9: spec.port: 70000 is greater than 65535",
        ),
        event(
            3 * 60_000 + 59_999,
            "world",
            Kind::Normal,
            "RolloutStarted",
            1,
            "rolling out 1.2.1",
        ),
        event(
            5_000,
            "hello",
            Kind::Normal,
            "RolledOut",
            1,
            "rolled out 1.2.1",
        ),
        // Longer than its columns: kept whole, pushing the rest of its row right.
        event(
            0,
            "a-very-long-application-name",
            Kind::Warning,
            "HealthCheckFailedRepeatedly",
            100_000,
            "line one\nline two  \n",
        ),
        // From a clock ahead of ours: age 0s, not a wrap-around.
        event(0, "hello", Kind::Normal, "Empty", 1, ""),
    ];
    let mut events = events.to_vec();
    events[5].at_ms = NOW + 10_000;

    let expected = "\
AGE    APP               TYPE     REASON                COUNT  MESSAGE
3d     hello             Normal   TemplateCreated           1  created instance template hello-3fa2c1d9e0 for revision 1.2.0
2h     hello             Warning  SpecRejected             12  spec rejected: specs/hello.yaml:7:9: spec.port: 70000 is greater than 65535
3m     world             Normal   RolloutStarted            1  rolling out 1.2.1
5s     hello             Normal   RolledOut                 1  rolled out 1.2.1
0s     a-very-long-application-name  Warning  HealthCheckFailedRepeatedly  100000  line one line two
0s     hello             Normal   Empty                     1
";
    assert_eq!(render_table_at(&events, NOW), expected);
}

#[test]
fn empty_table_is_the_header() {
    assert_eq!(
        render_table_at(&[], NOW),
        "AGE    APP               TYPE     REASON                COUNT  MESSAGE\n"
    );
    assert_eq!(render_table(&[]), render_table_at(&[], NOW));
}

#[test]
fn ages_use_the_largest_whole_unit() {
    let cases = [
        (0, "0s"),
        (999, "0s"),
        (5_000, "5s"),
        (59_999, "59s"),
        (60_000, "1m"),
        (3_599_999, "59m"),
        (3_600_000, "1h"),
        (86_399_999, "23h"),
        (86_400_000, "1d"),
        (400 * 86_400_000, "400d"),
    ];
    for (ms, want) in cases {
        assert_eq!(format_age(ms), want, "{ms} ms");
    }
}
