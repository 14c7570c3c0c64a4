//! A hostile spec, as large as the store accepts and as many keys as fit,
//! answers with a short list of problems, and quickly.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly on the first surprise

use std::sync::mpsc;
use std::thread;
use std::time::Duration;

/// A spec under 1 MiB with `keys` keys under `spec` (every fifth one given
/// twice, the rest unknown) and an `allowFrom` of `ranges` distinct ranges
/// followed by each of them again.
fn hostile(keys: usize, ranges: usize) -> String {
    let mut text = String::from(
        "apiVersion: ccd/v1\nkind: App\nmetadata: {name: web}\nspec:\n  image: img:1\n  version: \"1\"\n  port: 8080\n  expose:\n    internal:\n      allowFrom: [",
    );
    for i in (0..ranges).chain(0..ranges / 4) {
        text.push_str(&format!("::{i:x}/128,"));
    }
    text.push_str("]\n");
    for i in 0..keys {
        let n = if i % 5 == 4 { i - 4 } else { i };
        text.push_str("  ");
        text.push_str(&key(n));
        text.push_str(":\n");
    }
    text
}

/// Three letters or digits: short enough for 100,000 keys to fit in 1 MiB.
/// The first is a digit or a capital (below 26·62² keys), so no key is a
/// field name.
fn key(n: usize) -> String {
    const DIGITS: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    [n / (62 * 62), (n / 62) % 62, n % 62]
        .iter()
        .map(|d| char::from(DIGITS[*d]))
        .collect()
}

/// Parses on a thread of its own, so that a regression fails the test
/// rather than hanging it.
fn parse_within(text: String, limit: Duration) -> Result<ccd_spec::App, ccd_spec::Problems> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        // The receiver is gone only if the test already failed.
        let _ = tx.send(ccd_spec::parse(&text));
    });
    rx.recv_timeout(limit)
        .unwrap_or_else(|_| panic!("parsing took longer than {limit:?}"))
}

#[test]
fn a_megabyte_of_keys_gets_a_hundred_problems_and_a_count() {
    let text = hostile(100_000, 24_000);
    assert!(
        text.len() <= 1 << 20,
        "{} bytes: the spec must fit the size limit to be parsed at all",
        text.len()
    );
    // A liveness bound, not a benchmark: before the duplicate checks and the
    // problem cap were linear this took many minutes (100,000² key comparisons,
    // 100,000 problems each re-counting the file's lines); now it takes well
    // under a second in a release build and a few in a debug one. The bound is
    // generous so that a loaded CI machine never fails it.
    let problems = parse_within(text, Duration::from_secs(60)).unwrap_err().0;
    assert_eq!(problems.len(), 101, "{:#?}", &problems[..3]);
    // The first hundred in file order: the first unknown key is on line 11.
    assert!(
        problems[0]
            .to_string()
            .starts_with("11:3: spec.000: unknown field"),
        "{}",
        problems[0]
    );
    assert!(problems[..100].windows(2).all(|w| w[0].at <= w[1].at));
    let last = &problems[100];
    assert_eq!(last.message, "… and 99900 more problems");
    assert!(last.at >= problems[99].at, "{last} comes after the others");
}

#[test]
fn repeats_are_found_at_the_same_places_as_before() {
    let text = "apiVersion: ccd/v1\nkind: App\nmetadata: {name: web}\nspec:\n  image: img:1\n  version: \"1\"\n  port: 8080\n  expose: {internal: {allowFrom: [10.0.0.0/8, 192.168.0.0/16, 10.0.0.0/8, 0.0.0.0/0, 192.168.0.0/16]}}\n";
    let app = ccd_spec::parse(text).unwrap();
    let allow: Vec<String> = app
        .spec
        .expose
        .internal
        .unwrap()
        .allow_from
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        allow,
        ["10.0.0.0/8", "192.168.0.0/16", "0.0.0.0/0"],
        "the first of each, in order"
    );

    let twice =
        ccd_spec::parse(&format!("{text}  port: 80\n  env: {{A: x, B: y, A: z}}\n")).unwrap_err();
    let listed: Vec<String> = twice.0.iter().map(ToString::to_string).collect();
    assert_eq!(
        listed,
        [
            "9:3: spec.port: is given twice; keep one",
            "10:21: spec.env.A: is given twice; keep one",
        ]
    );
}
