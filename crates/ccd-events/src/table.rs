//! The `ccd events` table.

use std::fmt::Write as _;

use crate::{Event, now_ms};

/// Column widths. A cell longer than its column is kept whole and pushes the rest of its row
/// right, so widths stay the same from one call to the next (a `--watch` printing rows as they
/// come stays aligned) and nothing is cut. MESSAGE, the last column, is not padded.
const AGE: usize = 5;
const APP: usize = 16;
const TYPE: usize = 7;
const REASON: usize = 20;
const COUNT: usize = 5;
const GAP: &str = "  ";

/// The `ccd events` table of `events`, ages relative to now. See [`render_table_at`].
pub fn render_table(events: &[Event]) -> String {
    render_table_at(events, now_ms())
}

/// The `ccd events` table of `events` in the order given, ages relative to `now_ms` (unix
/// milliseconds): a header line and one line per event, each ending in `\n`. Columns: AGE (since
/// the event last occurred), APP, TYPE, REASON, COUNT (right-aligned), MESSAGE (line breaks
/// and other control characters shown as spaces, so each event stays on one line).
pub fn render_table_at(events: &[Event], now_ms: u64) -> String {
    let mut out = String::new();
    row(&mut out, "AGE", "APP", "TYPE", "REASON", "COUNT", "MESSAGE");
    for e in events {
        let message: String = e
            .message
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        row(
            &mut out,
            &format_age(now_ms.saturating_sub(e.at_ms)),
            &e.app,
            e.kind.as_str(),
            &e.reason,
            &e.count.to_string(),
            message.trim_end(),
        );
    }
    out
}

fn row(out: &mut String, age: &str, app: &str, kind: &str, reason: &str, count: &str, msg: &str) {
    let line = format!(
        "{age:<AGE$}{GAP}{app:<APP$}{GAP}{kind:<TYPE$}{GAP}{reason:<REASON$}{GAP}{count:>COUNT$}{GAP}{msg}"
    );
    // An empty message would leave the padding of COUNT's gap behind.
    let _ = writeln!(out, "{}", line.trim_end());
}

/// A short age, in the largest whole unit: `0s`..`59s`, `1m`..`59m`, `1h`..`23h`, then days.
pub fn format_age(age_ms: u64) -> String {
    let s = age_ms / 1000;
    match s {
        0..60 => format!("{s}s"),
        60..3_600 => format!("{}m", s / 60),
        3_600..86_400 => format!("{}h", s / 3_600),
        _ => format!("{}d", s / 86_400),
    }
}
